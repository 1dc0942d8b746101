"""Record the raw AMI stream to rotating files, and replay such a file (or a capture) into the bridge.

A recording is the bytes exactly as Asterisk sent them (the format of ``../shared/asterisk-captures/*.ami``).
Replay paces by the events' ``Timestamp`` (``timestampevents = yes``) or, for a capture ``.jsonl``, by its
``t`` column; ``speed`` 1 is real time, 10 is ten times faster, 0/None as fast as possible.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .framing import Framer, parse_message


class AmiRecorder:
    """Appends raw AMI bytes to ``<dir>/ami-<UTC time>.ami``; a new file per connection and past ``max_bytes``."""

    def __init__(self, directory: str | Path, clock: Callable[[], datetime], *, max_bytes: int = 64 * 1024 * 1024,
                 keep: int = 20) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self.max_bytes = max_bytes
        self.keep = keep
        self._fh: Any = None
        self._size = 0

    def new_file(self) -> None:
        """Start a file; called by the connection when a TCP connection is made, before its first byte."""
        self.close()
        stamp = self.clock().astimezone(UTC).strftime("%Y%m%dT%H%M%S%f")
        path = self.dir / f"ami-{stamp}.ami"
        n = 1
        while path.exists():  # two connections within one clock tick never share a file
            path = self.dir / f"ami-{stamp}-{n}.ami"
            n += 1
        self._fh = open(path, "ab")
        self._size = 0
        files = sorted(self.dir.glob("ami-*.ami"))
        for old in files[:-self.keep]:
            old.unlink(missing_ok=True)

    def write(self, data: bytes) -> None:
        # The connection starts each file (``new_file`` at connect), so every file replays from the banner: looking
        # for the banner in the bytes missed it whenever the first read held only part of it.
        if self._fh is None or self._size > self.max_bytes:
            self.new_file()
        self._fh.write(data)
        self._fh.flush()
        self._size += len(data)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def read_events(path: str | Path) -> Iterator[tuple[float | None, dict[str, Any]]]:
    """(pacing time, event) for every event of an ``.ami`` recording or a capture ``.jsonl``."""
    p = Path(path)
    if p.suffix == ".jsonl":
        framer = Framer()
        with p.open(encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                if row.get("dir") != "in" or not row.get("raw"):
                    continue
                for text in framer.feed(row["raw"].encode("utf-8")):
                    msg = parse_message(text)
                    if "Event" in msg:
                        yield float(row["t"]), msg
        return
    framer = Framer()
    with p.open("rb") as fh:
        while True:
            chunk = fh.read(65536)
            if not chunk:
                break
            for text in framer.feed(chunk):
                msg = parse_message(text)
                if "Event" in msg:
                    ts = msg.get("Timestamp")
                    try:
                        t = float(ts) if isinstance(ts, str) and ts else None
                    except ValueError:
                        t = None
                    yield t, msg


def stamp(events: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Give events without ``Timestamp`` (list items, FullyBooted) the time of the event before them.

    Live, the shell stamps them with the arrival time; in a replay the arrival time is not the PBX time.
    """
    last = ""
    for ev in events:
        ts = ev.get("Timestamp")
        if isinstance(ts, str) and ts:
            last = ts
        elif "_received" not in ev:
            ev["_received"] = last  # "" before the first Timestamp: no time rather than the wall clock
        yield ev


async def replay(path: str | Path, sink: Callable[[dict[str, Any]], Any], *, speed: float | None = 1.0,
                 until: float | None = None) -> int:
    """Feed every event of ``path`` to ``sink`` (the bridge's enqueue), paced at ``speed``; returns the count.

    ``until`` stops after that many seconds of capture time.
    """
    n = 0
    first: float | None = None
    start = time.monotonic()
    last_ts = ""
    for t, ev in read_events(path):
        ts = ev.get("Timestamp")
        if isinstance(ts, str) and ts:
            last_ts = ts
        else:
            ev.setdefault("_received", last_ts)
        if t is not None:
            if first is None:
                first = t
            elapsed = t - first
            if until is not None and elapsed > until:
                break
            if speed:
                delay = elapsed / speed - (time.monotonic() - start)
                if delay > 0:
                    await asyncio.sleep(delay)
        res = sink(ev)
        if isinstance(res, Awaitable):
            await res
        n += 1
        if not speed and n % 500 == 0:
            await asyncio.sleep(0)
    return n

