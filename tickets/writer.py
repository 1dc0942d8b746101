"""Group commit: one writer per process runs the queued writes of many requests in one transaction.

A request hands in a job (a plain function of a synchronous SQLAlchemy ``Connection``) and waits. The writer
takes every job queued so far, runs them in one transaction and commits once; only then does each request
hear its own outcome. A job refused by the workflow (or failing in any other way of its own) is answered with
its error while the others commit: it either wrote nothing, or the batch is written again with a savepoint per
job and it is rolled back to its own (``run_batch``). If the database
fails the batch itself (connection lost, commit failed), every request of the batch gets ``Unavailable`` (503):
nobody is told of a change that may not have been committed.

While one batch runs (statements, then the fsync of the commit), new requests queue; the next batch takes
them all. At low load a batch is one job and nobody waits for company.

Two ways to reach the database:
- a synchronous engine and one thread of its own (SQLite): the whole batch is one hop to that thread, and
  SQLite releases the GIL while it works and fsyncs, so the event loop keeps parsing the next requests;
- an async engine (PostgreSQL/asyncpg): the batch runs through ``AsyncConnection.run_sync``, and up to
  ``parallel`` batches (``database.write_batches``, default 2) run at once on their own connections. Each batch
  is a chain of round trips, so one at a time leaves the database waiting on the network; but many at once
  make batches of 1-2 jobs, which save nothing of the per-statement work (the deferred history and assignment
  rows go in one statement per batch) and cost 20-30 % more CPU per action on both sides: 9 at once against 2
  (BENCHMARKS.md, #15). PostgreSQL's WAL flush groups the commits of concurrent transactions by itself.
"""
from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from tickets.errors import TicketError
from tickets.prepared import defer_writes, run_sql, statements_written, stop_deferring, track_writes

log = logging.getLogger(__name__)

MAX_BATCH = 256  # bounds one transaction's length (and the lock it holds) under a flood of requests


class Unavailable(TicketError):
    """The database failed the batch: nothing of it is known to be saved."""

    http_status = 503

    def __init__(self) -> None:
        super().__init__("database_unavailable", "数据库暂时不可用，操作未保存，请稍后重试")


@dataclass
class Job:
    fn: Callable[[Connection], Any]
    future: asyncio.Future[Any]
    outcome: tuple[bool, Any] | None = field(default=None)


def _lost(exc: BaseException) -> bool:
    """A failure of the database or the connection, not of one job's data: the batch cannot go on."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    name = type(exc.orig).__name__ if exc.orig is not None else ""
    # sqlite3: disk I/O error, database is locked (busy timeout ran out), readonly; asyncpg: connection closed
    return name in ("OperationalError", "InterfaceError", "ConnectionDoesNotExistError",
                    "ConnectionFailureError", "AdminShutdownError", "CannotConnectNowError")


class _Undo(Exception):
    """A job failed with something of its own in the transaction, or the database refused one of its statements
    (after which PostgreSQL refuses the rest of the transaction): the batch is written again with savepoints."""


def run_batch(conn: Connection, jobs: list[Job]) -> None:
    """One transaction; outcomes are stored on the jobs, read after the commit.

    First without savepoints: a job refused by the workflow (a 409, a 404, a field error) raises before it writes
    anything, so there is nothing to undo and the others go on. Only when a job fails having written
    (``statements_written`` moved) or on a database error is the transaction rolled back and the batch written
    again with one savepoint per job (``_run_with_savepoints``). On PostgreSQL each SAVEPOINT and RELEASE is a
    round trip, two of the ~7 of an action; a batch that never needs them saves both for every job.

    The first pass also defers the writes the jobs hand to ``Prepared.defer`` (history and assignment rows, the
    ticket's UPDATE) and sends them together before the commit (``tickets/prepared.py``, ``PendingWrites``); a
    deferred write that fails sends the batch to the savepoint pass, which runs every statement at once, so the
    failure is the job's own."""
    try:
        with conn.begin():
            pending = defer_writes(conn)
            try:
                for job in jobs:
                    before = statements_written(conn)
                    queued = len(pending)
                    try:
                        result = job.fn(conn)
                    except Exception as exc:
                        if _lost(exc):
                            raise
                        if isinstance(exc, SQLAlchemyError) or statements_written(conn) != before:
                            raise _Undo() from exc
                        pending.discard_from(queued)  # its deferred writes were never sent
                        job.outcome = (False, exc)
                    else:
                        job.outcome = (True, result)
                try:
                    pending.flush(conn)
                except Exception as exc:  # a refusal, or a value the driver cannot encode (not a DBAPIError)
                    if _lost(exc):
                        raise
                    raise _Undo() from exc  # whose row failed is known only with a savepoint per job
            finally:
                stop_deferring(pending)
        return
    except _Undo:
        pass  # rolled back by the context manager: nothing of the first pass remains
    _run_with_savepoints(conn, jobs)  # sets every job's outcome again, or fails the batch (all 503)


def _run_with_savepoints(conn: Connection, jobs: list[Job]) -> None:
    """One transaction, one savepoint per job: a failing job is rolled back to its savepoint, the others commit.

    The savepoints are plain SQL on the driver's cursor, not ``Connection.begin_nested()``: SQLAlchemy's
    nested-transaction objects, and even its ``exec_driver_sql``, cost more CPU per job than SQLite's savepoint
    itself (py-spy, benchmarks/ticket_cpu.py; tickets/prepared.py), and nothing here needs them tracked. A failing
    SAVEPOINT, RELEASE or ROLLBACK TO fails the batch (every request gets 503)."""
    with conn.begin():
        for job in jobs:
            run_sql(conn, "SAVEPOINT job")
            try:
                result = job.fn(conn)
            except Exception as exc:
                if _lost(exc):
                    raise
                # ROLLBACK TO keeps the savepoint open (SQLite and PostgreSQL alike): release it as well
                run_sql(conn, "ROLLBACK TO SAVEPOINT job")
                run_sql(conn, "RELEASE SAVEPOINT job")
                job.outcome = (False, exc)
            else:
                run_sql(conn, "RELEASE SAVEPOINT job")
                job.outcome = (True, result)


class GroupWriter:
    def __init__(self, async_engine: AsyncEngine, sync_engine: Engine | None = None, parallel: int = 1) -> None:
        self.async_engine = async_engine
        self.sync_engine = sync_engine
        track_writes(sync_engine if sync_engine is not None else async_engine.sync_engine)
        # SQLite has one writer at a time: batches run one after the other whatever is asked.
        self.parallel = 1 if sync_engine is not None else max(1, parallel)
        self._running = 0
        self._thread = _WriterThread() if sync_engine else None
        self._handoff = _handoff_path(sync_engine)
        self._queue: list[Job] = []
        # Small jobs a reader waits for (access-log rows of a detail read): a batch of their own, between
        # batches of actions, so the read waits for the batch in progress and one short commit, not for a
        # whole batch of ~50 actions queued meanwhile as well.
        self._urgent: list[Job] = []
        # Creates take the day's row in ticket_counters (gapless numbers) and hold its lock until their batch
        # commits. On PostgreSQL, with batches running side by side, every other batch holding a create waited
        # for it, and the actions batched with those creates waited too: during 50 clients' load 2.3 of ~6.8
        # open transactions (one process) and 7.6 of ~13 (two processes) sat on that lock, and a second process
        # made the whole lower (pg_stat_activity, BENCHMARKS.md). So creates get a lane of their own, one batch
        # at a time per process; the other batches never hold the row.
        self._numbered: list[Job] = []
        self._numbered_running = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0  # committed or failed batches, for /metrics and the benchmark
        self.jobs = 0
        self.failed_batches = 0
        # Monotonic times for /health: a batch that has been running for long, or commits that stopped while
        # jobs queue, say more about write health than one more transaction of /health's own would.
        self._batch_started: float | None = None
        self._last_commit: float | None = None

    @property
    def queued(self) -> int:
        """Jobs waiting for the next batch (not counting the batch being written)."""
        return len(self._queue) + len(self._urgent) + len(self._numbered)

    def status(self) -> dict[str, Any]:
        """The writer's state for /health: queue depth, whether a batch is being written and for how long,
        how long ago the last batch committed (None before the first)."""
        now = time.monotonic()
        return {"queued": self.queued, "writing": self._running > 0 or self._numbered_running,
                "batch_running_s": None if self._batch_started is None else round(now - self._batch_started, 3),
                "last_commit_age_s": None if self._last_commit is None else round(now - self._last_commit, 3),
                "batches": self.batches, "jobs": self.jobs, "failed_batches": self.failed_batches}

    async def submit(self, fn: Callable[[Connection], Any], *, urgent: bool = False, numbered: bool = False) -> Any:
        """Run ``fn`` in the next batch; returns its result after the batch's commit, or raises its error.
        ``urgent``: a short job someone reads behind; it goes into the next batch of urgent jobs only.
        ``numbered``: the job takes a ticket number; where batches run side by side (PostgreSQL) such jobs have
        batches of their own, one at a time. With one batch at a time (SQLite) it changes nothing."""
        loop = asyncio.get_running_loop()
        job = Job(fn, loop.create_future())
        if numbered and self.parallel > 1:
            self._numbered.append(job)
            if not self._numbered_running:
                self._numbered_running = True
                self._spawn(self._drain_numbered())
        else:
            (self._urgent if urgent else self._queue).append(job)
            if self._running < self.parallel:
                self._running += 1
                self._spawn(self._drain())
        return await job.future

    def _spawn(self, drain: Coroutine[Any, Any, None]) -> None:
        """Start a drain task and keep it referenced until it ends (the event loop holds tasks only weakly)."""
        task = asyncio.get_running_loop().create_task(drain)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        try:
            await self._drain_queue()
        finally:
            self._running -= 1

    async def _drain_numbered(self) -> None:
        try:
            while self._numbered:
                batch, self._numbered = self._numbered[:MAX_BATCH], self._numbered[MAX_BATCH:]
                await self._run(batch)
        finally:
            self._numbered_running = False

    async def _drain_queue(self) -> None:
        urgent_turn = True
        while self._queue or self._urgent:
            # urgent and ordinary batches take turns, so a stream of reads cannot hold the actions back
            if self._urgent and (urgent_turn or not self._queue):
                batch, self._urgent = self._urgent[:MAX_BATCH], self._urgent[MAX_BATCH:]
                urgent_turn = False
            else:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                urgent_turn = True
            await self._run(batch)

    async def _run(self, batch: list[Job]) -> None:
        """Write one batch and answer its jobs: each its outcome after the commit, all 503 if the batch failed."""
        batch = [j for j in batch if not j.future.done()]  # a request gone before its turn: nothing to write
        if not batch:
            return
        self.batches += 1
        self.jobs += len(batch)
        self._batch_started = time.monotonic()
        try:
            await self._write(batch)
        except BaseException as exc:
            self._batch_started = None
            self.failed_batches += 1
            if not isinstance(exc, asyncio.CancelledError):
                log.error("ticket write batch of %d failed: %s", len(batch), exc)
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(Unavailable())
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        self._batch_started = None
        self._last_commit = time.monotonic()
        for job in batch:
            if job.future.done() or job.outcome is None:
                continue
            ok, value = job.outcome
            if ok:
                job.future.set_result(value)
            else:
                job.future.set_exception(value)

    async def _write(self, batch: list[Job]) -> None:
        if self._thread is not None and self.sync_engine is not None:
            engine = self.sync_engine
            handoff = self._handoff

            turn = _Turn(handoff)

            def in_thread() -> None:
                if not turn.take():
                    return  # the wait was given up (503 already answered): the lock was let go at once
                try:
                    with engine.connect() as conn:
                        run_batch(conn, batch)
                finally:
                    turn.release()

            # The async engine's one SQLite write connection is the process's write slot (other writers, such
            # as logins and the access log, queue for it in its pool): holding it while the batch runs makes
            # them wait their turn in order instead of polling SQLite's busy handler against this thread.
            async with self.async_engine.connect():
                done = asyncio.get_running_loop().run_in_executor(self._thread, in_thread)
                finished, _ = await asyncio.wait({done}, timeout=HANDOFF_TIMEOUT_S)
                if not finished and turn.give_up():
                    raise HandoffTimeout(f"another process held {handoff} for over {HANDOFF_TIMEOUT_S:g} s")
                await done  # the batch has the lock: it runs to its commit, however long that takes
        else:
            async with self.async_engine.connect() as conn:
                await conn.run_sync(run_batch, batch)

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=True)
        if self.sync_engine is not None:
            self.sync_engine.dispose()


HANDOFF_TIMEOUT_S = 30.0  # as SQLite's busy_timeout: a peer stuck inside its batch costs a 503, not a hang


def _handoff_path(sync_engine: Engine | None) -> str | None:
    """The lock file through which the writers of several processes on one SQLite file take turns.

    Without it a writer that finds the file locked by another process's batch gets SQLITE_BUSY, and SQLite's busy
    handler sleeps 1, 2, 5, 10 ... up to 100 ms between tries while the other batch takes a few ms: two server
    processes on one file ran no faster than one, with a p99 of 1.1 s against 0.3 s
    (benchmarks/tickets_throughput.py --sqlite-processes 1,2, BENCHMARKS.md)."""
    if sync_engine is None or sync_engine.dialect.name != "sqlite":
        return None
    database = sync_engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return f"{database}-writers.lock"


class HandoffTimeout(OSError):
    """Another process held the writers' lock for longer than ``HANDOFF_TIMEOUT_S``."""


class _WriterThread(Executor):
    """The SQLite writer's one thread, a daemon thread (unlike a ThreadPoolExecutor's).

    Its batch may wait in a blocking ``flock`` for a peer process that never lets go (``_Turn``). A pool's thread
    is joined when the interpreter exits, so the server could not stop until that peer did. ``shutdown`` waits
    ``HANDOFF_TIMEOUT_S`` for the batch in hand, ample for a commit; a thread still waiting for the lock after that
    has started nothing, and exiting without it loses nothing (a batch that never committed answered nobody)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = queue.SimpleQueue()
        self._worker = threading.Thread(target=self._work, name="ticket-writer", daemon=True)
        self._worker.start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._jobs.put((future, lambda: fn(*args, **kwargs)))
        return future

    def _work(self) -> None:
        while (item := self._jobs.get()) is not None:
            future, call = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call())
            except BaseException as exc:  # noqa: BLE001 - handed to whoever awaits the future, as an executor does
                future.set_exception(exc)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._jobs.put(None)
        if wait:
            self._worker.join(HANDOFF_TIMEOUT_S)


class _Turn:
    """One batch's turn at the cross-process writers' lock at ``path`` (None: nobody to take turns with).

    The writer's thread waits in a blocking ``flock``, which the kernel ends the moment the peer lets go. An
    earlier version polled a non-blocking ``flock`` with pauses growing to 1 ms, and each poll also waited for
    the GIL behind its own event loop: with two processes the lock stood free between batches, and a blocking
    wait gave p99 77-91 ms against 101-105 in the same run (BENCHMARKS.md, #15). A blocking wait has no bound
    of its own, so the event loop bounds it: after ``HANDOFF_TIMEOUT_S`` it gives the turn up (``give_up``) and
    answers 503; the thread, once it has the lock, finds the turn given up and lets the lock go at once. A
    threading lock makes "the batch started" and "the wait was given up" exclusive."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._decided = threading.Lock()
        self._started = False
        self._given_up = False
        self._fd: int | None = None

    def take(self) -> bool:
        """In the writer's thread: wait for the lock; False if the event loop gave the turn up meanwhile."""
        if self.path is not None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        with self._decided:
            if self._given_up:
                self.release()
                return False
            self._started = True
            return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor lets the lock go
            self._fd = None

    def give_up(self) -> bool:
        """On the event loop, when the wait ran out: True if the batch had not started (and now never will)."""
        with self._decided:
            if self._started:
                return False
            self._given_up = True
            return True


# One writer per database per process: every TicketStore on the same engine (the demo builds one per clock)
# queues into the same batches.
_WRITERS: WeakKeyDictionary[Any, GroupWriter] = WeakKeyDictionary()


def writer_for(async_engine: AsyncEngine, sync_engine: Engine | None = None, batches: int = 2) -> GroupWriter:
    """The process's writer for this database; on PostgreSQL it runs up to ``batches`` batches at once, and
    never more than the pool has connections less one (for the other writers, such as logins)."""
    key = async_engine.sync_engine
    writer = _WRITERS.get(key)
    if writer is None or (sync_engine is not None and writer.sync_engine is not sync_engine):
        room = async_engine.pool.size() - 1 if hasattr(async_engine.pool, "size") else 1
        writer = _WRITERS[key] = GroupWriter(async_engine, sync_engine, max(1, min(batches, room)))
    return writer
