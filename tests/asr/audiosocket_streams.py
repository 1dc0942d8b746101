"""AudioSocket streams for the live-transcription tests and benchmark: the bytes Asterisk 22 sent
(../shared/asterisk-captures/audiosocket/), and real speech framed the same way.

The recorded streams carry espeak-ng voices that Whisper base does not understand (it reads them as digits and
letters, after the call as well as live), so tests that check words frame a recording of ../shared/speech in
Asterisk's 320-byte audio frames behind a UUID frame, as AudioSocket sends it.
"""
from __future__ import annotations

import asyncio
import json
import random
import uuid as uuid_mod
from pathlib import Path

from asr import audiosocket

SHARED = Path(__file__).resolve().parents[3] / "shared"
CAPTURES = SHARED / "asterisk-captures"
STREAMS = CAPTURES / "audiosocket"
SPEECH = SHARED / "speech"
CITIZEN = "app_audiosocket_citizen_call"  # the caller's leg (AudioSocket application)
GREETING = "chan_audiosocket_playback"  # the agent greeting (AudioSocket channel)
# answered_call: the Linkedid of the call (Uniqueid of the caller's ;1 channel)
ANSWERED_CALL = "1795383048.0"


def recorded(name: str) -> bytes:
    return (STREAMS / f"{name}.bin").read_bytes()


def index(name: str) -> list[dict]:
    return [json.loads(line) for line in (STREAMS / f"{name}.frames.jsonl").read_text().splitlines() if line.strip()]


def frames(data: bytes) -> list[audiosocket.Frame]:
    return audiosocket.FrameParser().feed(data)


def uuid_frame(text: str) -> bytes:
    return audiosocket.encode(audiosocket.KIND_UUID, uuid_mod.UUID(text).bytes)


def with_uuid(data: bytes, text: str) -> bytes:
    """The same stream as if the dialplan had named it ``text`` (the first frame is the UUID)."""
    first = frames(data)[0]
    assert first.kind == audiosocket.KIND_UUID
    return uuid_frame(text) + data[audiosocket.HEADER + len(first.payload):]


def audio_frames(pcm: bytes, size: int = 320) -> bytes:
    return b"".join(audiosocket.encode(audiosocket.KIND_AUDIO, pcm[i:i + size]) for i in range(0, len(pcm), size))


def speech_pcm(name: str) -> bytes:
    import soundfile as sf

    samples, rate = sf.read(str(SPEECH / "synthetic_8k" / name), dtype="int16")
    assert rate == 8000
    return samples.tobytes()


def speech_stream(name: str, uuid: str, *, silence_after: float = 1.0) -> bytes:
    """A recording of ../shared/speech/synthetic_8k framed as Asterisk's AudioSocket sends a leg."""
    return uuid_frame(uuid) + audio_frames(speech_pcm(name) + b"\0\0" * int(8000 * silence_after))


def transcript(name: str) -> str:
    for line in (SPEECH / "transcripts.tsv").read_text(encoding="utf-8").splitlines():
        path, _, text = line.partition("\t")
        if path == f"synthetic_8k/{name}":
            return text
    raise KeyError(name)


async def send(port: int, data: bytes, *, seed: int = 0, real_speed: bool = False, reset: bool = False) -> None:
    """Write ``data`` to the server in random-sized pieces (frames split anywhere), at 8 kHz real speed if
    asked; close normally, or with a TCP RST (``reset``: a connection dropped by the network or a crash)."""
    rng = random.Random(seed)
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent_audio = 0
    at = 0
    while at < len(data):
        n = rng.randint(1, 700)
        writer.write(data[at:at + n])
        sent_audio += n
        at += n
        await writer.drain()
        if real_speed:
            due = started + sent_audio / (2 * 8000 * 323 / 320)
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
    if reset:
        sock = writer.get_extra_info("socket")
        import socket
        import struct

        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()
    try:
        await writer.wait_closed()
    except ConnectionError:
        pass
