"""Reading Asterisk's queue_log file from where the last read stopped (the shell side of ``queue_log.py``).

The file is Asterisk's own (``/var/log/asterisk/queue_log``, shared with this machine or copied here). Each read
returns the whole lines appended since the previous one; a torn last line waits for the next read. When the file
was rotated or truncated (a new inode, or smaller than where we stopped) it is read again from the start. Lines
Asterisk wrote to the old file after our last read and before the rotation are not looked for in ``queue_log.0``:
rotate at night, when no gap is being reconciled.

Asterisk's realtime ``queue_log`` table (``queue_log => odbc,...`` in extconfig.conf) holds the same fields and is
parsed by ``queue_log.from_row``; reading it from the database is not built yet (use the file).
"""
from __future__ import annotations

import os
from pathlib import Path

from .queue_log import Entry, parse


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
