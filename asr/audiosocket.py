"""Asterisk AudioSocket: the frame format, the stream UUID that names a call's leg, and the TCP server.

Facts this module is built on (Asterisk 22, ``../shared/asterisk-captures/audiosocket/``):
- a frame is 1 byte kind, 2 bytes big-endian payload length, the payload. Kinds: 0x01 the stream's UUID
  (16 raw bytes, always the first frame), 0x10 audio (signed 16-bit little-endian, 8 kHz mono, 320 bytes
  = 20 ms), 0x00 hang-up, 0xff error (1 byte code), 0x02 silence (never sent by Asterisk 22 here);
- Asterisk 22 sends no 0x00 frame when the call ends: the connection just closes. So an end of stream
  after whole frames is the normal end; a stream cut inside a frame, or reset, is a dropped connection;
- audio we would write back is played to the channel: this server never writes to the socket (with the
  AudioSocket application inline that would put silence or noise on the call; with the sample dialplan's
  snoop channel it is unheard, but there is no reason to send any);
- ``AudioSocket()`` wants a UUID (libuuid ``uuid_parse``: 8-4-4-4-12 hex digits), while a call is named by its
  Linkedid ``<epoch>.<counter>``: the sample dialplan (config/asterisk/extensions.conf [live-audio]) writes the
  Linkedid's digits into the UUID, which only uses decimal digits (valid hex), and the leg (1 caller, 2 agent).

The parser is pure (bytes in, frames out); ``AudioSocketServer`` is the asyncio edge.
"""
from __future__ import annotations

import asyncio
import logging
import re
import uuid as uuid_mod
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("hotline.asr.audiosocket")

KIND_HANGUP = 0x00
KIND_UUID = 0x01
KIND_SILENCE = 0x02
KIND_AUDIO = 0x10
KIND_ERROR = 0xFF
KNOWN_KINDS = (KIND_HANGUP, KIND_UUID, KIND_SILENCE, KIND_AUDIO, KIND_ERROR)
HEADER = 3
SAMPLE_RATE = 8000
# More unreadable frames than this in one stream: it is not AudioSocket (or it is corrupt beyond use).
MAX_BAD_FRAMES = 20

LEGS = {"1": "caller", "2": "agent"}
LEG_DIGITS = {v: k for k, v in LEGS.items()}
# Why a stream ended, as the agent page says it (asr/streaming.py puts it in the "stopped" message).
END_REASONS = {
    "hangup": "通话已挂断",
    "closed": "通话已结束（Asterisk 关闭了音频连接）",
    "dropped": "音频连接中断",
    "asterisk_error": "Asterisk 报告音频错误",
    "no_uuid": "音频流没有以 UUID 开头，无法对应通话",
    "bad_uuid": "音频流的 UUID 无法识别",
    "bad_frames": "音频流损坏（无法识别的数据过多）",
    "unknown_call": "音频流的 UUID 不属于任何通话",
    "capacity": "实时转写已满，挂机后转写",
    "worker_stopped": "转写进程已停止",
    "worker_lost": "转写进程中断（未收到进程心跳）",
    "idle": "音频流长时间没有数据",
}


@dataclass(frozen=True)
class Frame:
    kind: int
    payload: bytes


class FrameParser:
    """Frames from a byte stream read in chunks of any size (a frame may span reads)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        at = 0
        buf = self._buf
        while len(buf) - at >= HEADER:
            length = int.from_bytes(buf[at + 1:at + 3], "big")
            if len(buf) - at - HEADER < length:
                break
            frames.append(Frame(buf[at], bytes(buf[at + HEADER:at + HEADER + length])))
            at += HEADER + length
        del buf[:at]
        return frames

    @property
    def next_kind(self) -> int | None:
        """The kind byte of the frame still being received (None when nothing is pending)."""
        return self._buf[0] if self._buf else None

    @property
    def pending(self) -> int:
        """Bytes of an unfinished frame: non-zero at the end of a stream means it was cut mid-frame."""
        return len(self._buf)


def encode(kind: int, payload: bytes = b"") -> bytes:
    return bytes([kind]) + len(payload).to_bytes(2, "big") + payload


def uuid_text(payload: bytes) -> str | None:
    return str(uuid_mod.UUID(bytes=payload)) if len(payload) == 16 else None


_STREAM_UUID = re.compile(r"^(\d{8})-(\d{2})0([12])-0000-(\d{4})-(\d{12})$")


def stream_uuid(call_id: str, speaker: str) -> str:
    """The UUID the sample dialplan builds for one leg of a call (Linkedid ``<10-digit epoch>.<counter>``)."""
    epoch, _, counter = call_id.partition(".")
    if len(epoch) != 10 or not epoch.isdigit() or not counter.isdigit() or len(counter) > 16:
        raise ValueError(f"not an Asterisk Linkedid: {call_id!r}")
    seq = counter.zfill(16)
    return f"{epoch[:8]}-{epoch[8:]}0{LEG_DIGITS[speaker]}-0000-{seq[:4]}-{seq[4:]}"


def call_of_uuid(text: str) -> tuple[str, str] | None:
    """(call_id, speaker) of a UUID made by ``stream_uuid``; None for any other UUID (a stream we cannot
    place: the server says so and drops it)."""
    m = _STREAM_UUID.match(text)
    if not m:
        return None
    epoch, counter = m.group(1) + m.group(2), int(m.group(4) + m.group(5))
    return f"{epoch}.{counter}", LEGS[m.group(3)]


# ---------------------------------------------------------------- one stream, as plain data
@dataclass
class StreamState:
    """What one connection has said so far; ``step`` folds a frame into it and says what to do."""

    uuid: str = ""
    audio_bytes: int = 0
    bad_frames: int = 0
    ended: str = ""  # a key of END_REASONS once the stream is over
    detail: str = ""
    kinds: dict[int, int] = field(default_factory=dict)


def step(state: StreamState, frame: Frame) -> bytes | None:
    """Fold one frame; returns the audio payload to recognise, if any. Sets ``state.ended`` when the stream
    must end. Never raises: a frame it cannot use is counted, and too many of them end the stream."""
    state.kinds[frame.kind] = state.kinds.get(frame.kind, 0) + 1
    if state.ended:
        return None
    if not state.uuid:
        if frame.kind != KIND_UUID:
            state.ended, state.detail = "no_uuid", f"first frame kind 0x{frame.kind:02x}"
            return None
        text = uuid_text(frame.payload)
        if text is None:
            state.ended, state.detail = "bad_uuid", f"{len(frame.payload)} bytes"
            return None
        state.uuid = text
        return None
    if frame.kind == KIND_AUDIO:
        payload = frame.payload
        if len(payload) % 2:
            state.bad_frames += 1
            payload = payload[:-1]  # half a sample: keep the rest, in step
        state.audio_bytes += len(payload)
        out: bytes | None = payload or None
    elif frame.kind == KIND_SILENCE:
        out = None
    elif frame.kind == KIND_HANGUP:
        state.ended = "hangup"
        return None
    elif frame.kind == KIND_ERROR:
        state.ended = "asterisk_error"
        state.detail = f"code 0x{frame.payload[0]:02x}" if frame.payload else ""
        return None
    else:  # a kind this protocol does not have (or a second UUID): skip it, the frame bounds are known
        state.bad_frames += 1
        out = None
    if state.bad_frames > MAX_BAD_FRAMES:
        state.ended, state.detail = "bad_frames", f"{state.bad_frames} unusable frames"
    return out


# ---------------------------------------------------------------- the TCP server
class StreamHandler:
    """What the server calls for one stream (asr/live.py provides it)."""

    async def start(self, uuid: str) -> bool:
        """The stream said who it is; False = do not follow it (the handler has said why)."""
        raise NotImplementedError

    async def audio(self, pcm: bytes) -> None:
        raise NotImplementedError

    async def end(self, reason: str, detail: str) -> None:
        raise NotImplementedError


class AudioSocketServer:
    """Accepts Asterisk's AudioSocket connections; one ``StreamHandler`` per connection.

    ``reuse_port`` lets every worker process of one machine listen on the same port (the kernel spreads the
    connections); a connection that stays silent for ``idle_timeout`` seconds is ended ("idle")."""

    def __init__(self, handler_factory: Callable[[], StreamHandler], host: str = "127.0.0.1", port: int = 0,
                 *, reuse_port: bool = False, idle_timeout: float = 10.0, read_size: int = 4096) -> None:
        self.handler_factory = handler_factory
        self.host = host
        self.port = port
        self.reuse_port = reuse_port
        self.idle_timeout = idle_timeout
        self.read_size = read_size
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, self.host, self.port, reuse_port=self.reuse_port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        """Stop accepting; streams still open end with "worker_stopped"."""
        if self._server is not None:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await serve_stream(reader, self.handler_factory(), self.idle_timeout, self.read_size)
        finally:
            self._tasks.discard(task)
            writer.close()


async def serve_stream(reader: asyncio.StreamReader, handler: StreamHandler, idle_timeout: float,
                       read_size: int = 4096) -> StreamState:
    """Read one connection to its end; the handler hears the UUID, the audio, and exactly one end."""
    parser = FrameParser()
    state = StreamState()
    following = False
    try:
        while not state.ended:
            try:
                data = await asyncio.wait_for(reader.read(read_size), idle_timeout)
            except TimeoutError:
                state.ended = "idle"
                break
            except (ConnectionError, OSError) as exc:
                state.ended, state.detail = "dropped", f"{type(exc).__name__}: {exc}"
                break
            # Audio arrives every 20 ms, so a stop (close()) often meets a read that has just completed: Python
            # 3.11's asyncio.wait_for then returns the bytes and drops the cancel, and the leg would go on until
            # the caller hangs up while close() waits for it.
            me = asyncio.current_task()
            if me is not None and me.cancelling():
                raise asyncio.CancelledError
            if not data:
                if parser.pending:
                    state.ended, state.detail = "dropped", f"cut inside a frame ({parser.pending} bytes)"
                else:
                    state.ended = "closed"
                break
            batch = parser.feed(data)
            if not batch and not state.uuid and parser.next_kind not in (None, KIND_UUID):
                # Not AudioSocket (its length field may say anything): do not wait for a frame that never ends.
                state.ended, state.detail = "no_uuid", f"first frame kind 0x{parser.next_kind:02x}"
                break
            for frame in batch:
                had_uuid = bool(state.uuid)
                pcm = step(state, frame)
                if state.uuid and not had_uuid:
                    following = await handler.start(state.uuid)
                    if not following:
                        return state  # the handler ended it (unknown call, capacity) and said so
                if pcm and following:
                    await handler.audio(pcm)
                if state.ended:
                    break
    except asyncio.CancelledError:
        state.ended = state.ended or "worker_stopped"
        await asyncio.shield(handler.end(state.ended, state.detail))
        raise
    if state.ended != "closed" or state.bad_frames:
        log.info("audiosocket stream %s ended: %s %s (%d audio bytes, %d bad frames)", state.uuid or "?",
                 state.ended, state.detail, state.audio_bytes, state.bad_frames)
    await handler.end(state.ended, state.detail)
    return state
