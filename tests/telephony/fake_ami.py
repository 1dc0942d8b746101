"""A fake Asterisk for tests: serves a real capture's bytes over a real TCP socket on localhost.

The real panoramisk client connects and logs in; the server answers that Login with the capture's own login
reply (ActionID rewritten to the client's), then streams the captured messages in random-sized chunks (split
anywhere, inside UTF-8 characters too, several messages per chunk at times), optionally at the captured pace.
Client actions are answered between messages: QueueStatus / CoreShowChannels from given lists (real list
items cut from a capture) or empty lists, Ping with Pong (unless told not to), and so on.

``FakeAmi.clock`` is the PBX's time at the point reached in the capture: tests give it to the service as its
clock, so the server and the replayed Asterisk agree on the time as they do live, whatever day the test runs.
"""
from __future__ import annotations

import asyncio
import json
import random
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from telephony.framing import Framer, parse_message

CAPTURES = Path(__file__).resolve().parents[2].parent / "shared" / "asterisk-captures"
requires_captures = pytest.mark.skipif(not CAPTURES.is_dir(), reason="../shared/asterisk-captures is not present")


@dataclass
class Capture:
    name: str
    banner: bytes
    msgs: list[tuple[float, bytes]]  # every "in" message after the banner, EOF excluded
    login_idx: int
    out: list[dict[str, Any]] = field(default_factory=list)
    # PBX time at each message: the newest Timestamp so far (before the first one: the first one)
    times: list[float] = field(default_factory=list)

    @classmethod
    def load(cls, name: str) -> Capture:
        rows = [json.loads(line) for line in (CAPTURES / f"{name}.jsonl").open(encoding="utf-8")]
        banner = b""
        msgs: list[tuple[float, bytes]] = []
        login_aid = ""
        out = []
        for r in rows:
            if r["dir"] == "out":
                m = parse_message(r["raw"].rstrip("\r\n"))
                out.append(m)
                if m.get("Action") == "Login" and not login_aid:
                    login_aid = str(m.get("ActionID"))
                continue
            if not r["raw"]:
                continue
            if r["raw"].startswith("Asterisk Call Manager/"):
                banner = r["raw"].encode()
                continue
            msgs.append((float(r["t"]), r["raw"].encode("utf-8")))
        login_idx = next(i for i, (_, raw) in enumerate(msgs)
                         if raw.startswith(b"Response:") and f"ActionID: {login_aid}\r\n".encode() in raw)
        stamps = [float(m.group(1)) if (m := _TIMESTAMP.search(raw)) else None for _, raw in msgs]
        last = next((t for t in stamps if t is not None), 0.0)
        times = []
        for t in stamps:
            last = max(last, t) if t is not None else last
            times.append(last)
        return cls(name, banner, msgs, login_idx, out, times)

    def time_at(self, index: int) -> datetime:
        """The PBX time of message ``index`` (UTC)."""
        return datetime.fromtimestamp(self.times[max(0, min(index, len(self.times) - 1))], UTC)

    def index(self, pred: Callable[[dict[str, Any]], bool], start: int = 0) -> int:
        """Index of the first message (from ``start``) whose parsed fields satisfy ``pred``."""
        for i in range(start, len(self.msgs)):
            if pred(parse_message(self.msgs[i][1].decode("utf-8").rstrip("\r\n"))):
                return i
        raise LookupError("no such message")

    def list_reply(self, action_id: str) -> list[bytes]:
        """Response + items + Complete of one of the capture's own list actions."""
        tag = f"ActionID: {action_id}\r\n".encode()
        return [raw for _, raw in self.msgs if tag in raw]

    @property
    def login_failed(self) -> bool:
        return self.msgs[self.login_idx][1].startswith(b"Response: Error")


_TIMESTAMP = re.compile(rb"(?:^|\r\n)Timestamp: ([0-9]+(?:\.[0-9]+)?)\r\n")


def _aid(raw: bytes, new: str) -> bytes:
    return re.sub(rb"ActionID: [^\r\n]*", b"ActionID: " + new.encode(), raw, count=1)


class FakeAmi:
    def __init__(self, capture: Capture, *, speed: float | None = None, chunking: str = "random", seed: int = 1,
                 answer_pings: bool = True, never_answer: set[str] | None = None,
                 errors: dict[str, str] | None = None, lists: dict[str, list[bytes]] | None = None) -> None:
        self.cap = capture
        self.speed = speed
        self.chunking = chunking
        self.rng = random.Random(seed)
        self.answer_pings = answer_pings
        self.never_answer = {a.lower() for a in (never_answer or set())}
        self.errors = {k.lower(): v for k, v in (errors or {}).items()}
        self.lists = {k.lower(): v for k, v in (lists or {}).items()}
        self.pos = capture.login_idx + 1
        self.banner_split = 0  # > 0: send the banner in two writes, cut after this many bytes
        self.pause_after: set[int] = set()
        self.cut_after: int | None = None
        self.skip_to: int | None = None
        self.paused = asyncio.Event()
        self.resume = asyncio.Event()
        self.resume.set()
        self.done = asyncio.Event()
        self.connections = 0
        self.logins = 0
        self.actions: list[dict[str, Any]] = []
        self.server: asyncio.AbstractServer | None = None
        self.port = 0
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self, port: int = 0, *, sock: socket.socket | None = None) -> int:
        """Listen on ``port`` (0: one the kernel picks), or on ``sock``: a test taking the PBX down keeps its
        port with ``tests.services.hold_port`` (hence reuse_port) and starts it again on that socket."""
        if sock is not None:
            self.server = await asyncio.start_server(self._handle, sock=sock)
        else:
            self.server = await asyncio.start_server(self._handle, "127.0.0.1", port, reuse_address=True,
                                                     reuse_port=True)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()  # no new connections from here on
        # A connection accepted just before has its transport but its handler may not have run yet (so it is
        # not in _writers); on Python 3.11.7+ wait_closed waits for every connection, so let those handlers
        # start before aborting them all.
        await asyncio.sleep(0)
        for w in self._writers:
            w.transport.abort()
        if self.server is not None:
            await self.server.wait_closed()

    def clock(self) -> datetime:
        """The PBX's time now: that of the last message streamed (before any, the login's)."""
        return self.cap.time_at(self.pos - 1)

    def hold_at(self, index: int) -> None:
        """Stop streaming right after message ``index`` until ``go()``."""
        self.pause_after.add(index)

    def hold_start(self) -> None:
        self.resume.clear()

    def go(self) -> None:
        self.paused.clear()
        self.resume.set()

    async def send_raw(self, data: bytes, chunk: int = 65536) -> None:
        """Write ``data`` as it is (garbage, a corrupt stream) to every connected client."""
        for w in self._writers:
            if w.transport.is_closing():
                continue
            for i in range(0, len(data), chunk):
                w.write(data[i:i + chunk])
                await w.drain()

    def kill_socket(self) -> None:
        for w in self._writers:
            w.transport.abort()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        pending: list[bytes] = []
        streaming = {"active": False}
        if self.banner_split:
            # The client may read the first part alone (as over a slow link); nothing depends on whether it does.
            writer.write(self.cap.banner[:self.banner_split])
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(self.cap.banner[self.banner_split:])
        else:
            writer.write(self.cap.banner)
        framer = Framer()
        stream_task: asyncio.Task[None] | None = None
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                for text in framer.feed(data):
                    action = parse_message(text)
                    self.actions.append(action)
                    name = str(action.get("Action", "")).lower()
                    aid = str(action.get("ActionID", ""))
                    replies = self._reply(name, aid, action)
                    if name == "login":
                        await self._login(writer, aid)
                        if self.cap.login_failed:
                            await writer.drain()
                            writer.close()
                            return
                        self.logins += 1
                        stream_task = asyncio.get_running_loop().create_task(
                            self._stream(writer, pending, streaming))
                        continue
                    if streaming["active"]:
                        pending.extend(replies)
                    else:
                        for r in replies:
                            writer.write(r)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if stream_task is not None:
                stream_task.cancel()
            writer.transport.abort()

    async def _login(self, writer: asyncio.StreamWriter, aid: str) -> None:
        cap = self.cap
        if self.logins == 0 and self.connections == 1 or cap.login_failed:
            for _, raw in cap.msgs[:cap.login_idx]:
                writer.write(raw)
            writer.write(_aid(cap.msgs[cap.login_idx][1], aid))
        else:
            writer.write(f"Response: Success\r\nActionID: {aid}\r\nMessage: Authentication accepted\r\n\r\n"
                         .encode())
            writer.write(b"Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n")
        if self.skip_to is not None:
            self.pos = max(self.pos, self.skip_to)
            self.skip_to = None

    def _reply(self, name: str, aid: str, action: dict[str, Any]) -> list[bytes]:
        if name in ("login",) or name in self.never_answer:
            return []
        if name == "ping":
            if not self.answer_pings:
                return []
            return [f"Response: Success\r\nActionID: {aid}\r\nPing: Pong\r\nTimestamp: 0.0\r\n\r\n".encode()]
        if name in self.errors:
            return [f"Response: Error\r\nActionID: {aid}\r\nMessage: {self.errors[name]}\r\n\r\n".encode()]
        if name in self.lists:
            return [_aid(raw, aid) for raw in self.lists[name]]
        if name == "queuestatus":
            return [f"Response: Success\r\nActionID: {aid}\r\nEventList: start\r\nMessage: Queue status will follow\r\n\r\n"
                    .encode(),
                    f"Event: QueueStatusComplete\r\nActionID: {aid}\r\nEventList: Complete\r\nListItems: 0\r\n\r\n"
                    .encode()]
        if name == "coreshowchannels":
            return [f"Response: Success\r\nActionID: {aid}\r\nEventList: start\r\nMessage: Channels will follow\r\n\r\n"
                    .encode(),
                    f"Event: CoreShowChannelsComplete\r\nActionID: {aid}\r\nEventList: Complete\r\nListItems: 0\r\n\r\n"
                    .encode()]
        return [f"Response: Success\r\nActionID: {aid}\r\nMessage: ok\r\n\r\n".encode()]

    def _chunk_size(self) -> int:
        if self.chunking == "bytewise":
            return 1
        if self.chunking == "whole":
            return 1 << 30
        r = self.rng.random()
        return self.rng.randint(1, 7) if r < 0.3 else self.rng.randint(8, 300) if r < 0.8 else self.rng.randint(300, 6000)

    async def _stream(self, writer: asyncio.StreamWriter, pending: list[bytes], streaming: dict[str, bool]) -> None:
        streaming["active"] = True
        out = bytearray()
        n = self._chunk_size()
        loop = asyncio.get_running_loop()
        start = loop.time()
        t0 = self.cap.msgs[self.pos][0] if self.pos < len(self.cap.msgs) else 0.0

        async def flush() -> None:
            if out:
                writer.write(bytes(out))
                out.clear()
            for r in pending:
                writer.write(r)
            pending.clear()
            await writer.drain()

        sent_any = False
        try:
            while not self.resume.is_set():  # held before the first message (hold_start)
                if pending:
                    await flush()
                await asyncio.sleep(0.005)
            start = loop.time()
            while self.pos < len(self.cap.msgs):
                sent_any = True
                i = self.pos
                t, raw = self.cap.msgs[i]
                if self.speed:
                    delay = (t - t0) / self.speed - (loop.time() - start)
                    if delay > 0:
                        await flush()
                        await asyncio.sleep(delay)
                out += raw
                while len(out) >= n:
                    writer.write(bytes(out[:n]))
                    del out[:n]
                    n = self._chunk_size()
                    if n < 8:
                        await writer.drain()
                self.pos = i + 1
                if pending:
                    await flush()
                if i == self.cut_after:
                    self.cut_after = None
                    await flush()
                    writer.transport.abort()
                    return
                if i in self.pause_after:
                    self.pause_after.discard(i)
                    await flush()
                    self.resume.clear()
                    self.paused.set()
                    while not self.resume.is_set():
                        if pending:
                            await flush()
                        await asyncio.sleep(0.005)
                    start = loop.time()
                    t0 = t
                elif i % 50 == 0:
                    await writer.drain()
            await flush()
            streaming["active"] = False
            await flush()  # replies queued while the last flush was draining
            if sent_any:
                self.done.set()
                # The capture ends with EOF (Logoff/Goodbye, Shutdown): close like Asterisk does.
                await asyncio.sleep(0.01)
                writer.close()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            streaming["active"] = False


async def until(cond: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Wait for ``cond`` (checked every 10 ms); fail naming ``what`` after ``timeout`` s."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.01)
