"""SQLite reads in one hop: a read's whole body runs in a thread of a small pool, on a synchronous connection.

Through aiosqlite every statement is several hops between the event loop and the connection's thread (cursor,
execute, fetch, close; BEGIN and the closing ROLLBACK too), and under a write load each hop waits for the event
loop's next turn: the ticket list (a count and a page) took ~13 of them, which is why the list's p99 during the
write benchmark was two to three times the actions' (BENCHMARKS.md, #15). Here the list or a detail is one hop
however many statements it runs, as the group-commit writer's batch is (tickets/writer.py).

PostgreSQL needs none of this (asyncpg is one round trip per statement, no thread): there the same read bodies
run through ``AsyncSession.run_sync``.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

T = TypeVar("T")


class Reads:
    """Runs ``fn(session)`` for a read: in one hop to a thread on ``engine`` (SQLite), else through the async
    sessions' ``run_sync`` (one greenlet, the driver's own round trips)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], engine: Engine | None, threads: int = 4) -> None:
        self.sessions = sessions
        self.engine = engine
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="ticket-reads") if engine is not None else None

    async def run(self, fn: Callable[[Session], T]) -> T:
        if self._pool is None or self.engine is None:
            async with self.sessions() as session:
                return await session.run_sync(fn)
        engine = self.engine

        def in_thread() -> T:
            with Session(engine) as session:  # a read transaction, rolled back on close
                return fn(session)

        return await asyncio.get_running_loop().run_in_executor(self._pool, in_thread)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if self.engine is not None:
            self.engine.dispose()
