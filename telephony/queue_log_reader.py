"""Reading Asterisk's queue_log from where the last read stopped (the shell side of ``queue_log.py``): the file,
or the realtime ``queue_log`` table in Asterisk's database.

The file is Asterisk's own (``/var/log/asterisk/queue_log``, shared with this machine or copied here). Each read
returns the whole lines appended since the previous one; a torn last line waits for the next read. When the file
was rotated or truncated (a new inode, or smaller than where we stopped) it is read again from the start. Lines
Asterisk wrote to the old file after our last read and before the rotation are not looked for in ``queue_log.0``:
rotate at night, when no gap is being reconciled.

Asterisk's realtime ``queue_log`` table (``queue_log => odbc,asterisk`` in extconfig.conf, contrib/realtime schema:
``id, time, callid, queuename, agent, event, data1..data5``) holds the same fields; ``QueueLogTable`` reads the rows
with an ``id`` above the last one read. Asterisk writes ``time`` as a local timestamp, or UTC with
``queue_log_realtime_use_gmt = yes`` in logger.conf: say which with ``tz``.
"""
from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .queue_log import Entry, from_row, parse


class QueueLogFile:
    def __init__(self, path: str | Path, since: float | None = None) -> None:
        self.path = Path(path)
        self.offset = 0
        self.inode: int | None = None
        self.partial = b""
        self.since = since  # the first read skips lines older than this (epoch seconds)

    def read_new(self) -> list[Entry]:
        """Blocking (run it in an executor). Raises OSError when the file cannot be read."""
        st = os.stat(self.path)
        if st.st_ino != self.inode or st.st_size < self.offset:
            self.offset, self.partial, self.inode = 0, b"", st.st_ino
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        data = self.partial + data
        cut = data.rfind(b"\n") + 1
        data, self.partial = data[:cut], data[cut:]
        entries = parse(data.decode("utf-8", errors="replace"))
        if self.since is not None:
            since, self.since = self.since, None
            entries = [e for e in entries if e.time >= since]
        return entries

    async def read(self) -> list[Entry]:
        return await asyncio.get_running_loop().run_in_executor(None, self.read_new)

    @property
    def where(self) -> str:
        return str(self.path)

    async def close(self) -> None:
        return None


class QueueLogTable:
    """The realtime queue_log table; ``url`` is an async SQLAlchemy URL (postgresql+asyncpg, sqlite+aiosqlite)."""

    def __init__(self, url: str, tz: tzinfo = UTC, since: float | None = None, table: str = "queue_log") -> None:
        if not table.replace("_", "").isalnum():
            raise ValueError(f"ami.queue_log_table: not a table name: {table!r}")
        self.url = url
        self.tz = tz
        self.since = since
        self.table = table
        self.last_id = 0
        self._engine: AsyncEngine | None = None

    @property
    def where(self) -> str:
        return f"{self.table} @ {self.url.split('@')[-1]}"  # no credentials in /health

    def _time(self, value: Any) -> float | None:
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                try:
                    value = datetime.fromisoformat(value)
                except ValueError:
                    return None
        if isinstance(value, datetime):
            return (value if value.tzinfo else value.replace(tzinfo=self.tz)).timestamp()
        return None

    async def read(self) -> list[Entry]:
        if self._engine is None:
            self._engine = create_async_engine(self.url)
        q = text(f"SELECT id, time, callid, queuename, agent, event, data1, data2, data3, data4, data5 "
                 f"FROM {self.table} WHERE id > :last ORDER BY id")
        async with self._engine.connect() as conn:
            rows = (await conn.execute(q, {"last": self.last_id})).mappings().all()
        out = []
        for row in rows:
            self.last_id = max(self.last_id, int(row["id"]))
            t = self._time(row["time"])
            if t is None or (self.since is not None and t < self.since):
                continue
            e = from_row({**row, "time": t})
            if e is not None:
                out.append(e)
        self.since = None
        return out

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
