"""AudioSocket: Asterisk 22's recorded streams parsed in pieces of any size, the UUID that names a call's leg,
and the TCP server fed those bytes over real TCP: a bad frame, a stream for no known call, a connection
dropped mid-call. Each ends only its own stream, with a reason; the server keeps serving the others."""
from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from asr import audiosocket
from asr.audiosocket import Frame, StreamState, step
from tests.asr.audiosocket_streams import (
    ANSWERED_CALL,
    CITIZEN,
    GREETING,
    audio_frames,
    index,
    recorded,
    send,
    uuid_frame,
    with_uuid,
)


@pytest.mark.parametrize("name", [CITIZEN, GREETING])
def test_recorded_streams_parse_the_same_in_pieces_of_any_size(name: str) -> None:
    data = recorded(name)
    expected = index(name)
    for seed in range(5):
        rng = random.Random(seed)
        parser = audiosocket.FrameParser()
        got: list[Frame] = []
        at = 0
        while at < len(data):
            n = rng.randint(1, 400)
            got.extend(parser.feed(data[at:at + n]))
            at += n
        assert parser.pending == 0
        assert [(f"0x{f.kind:02x}", len(f.payload)) for f in got] == [(e["kind"], e["len"]) for e in expected]
    assert audiosocket.uuid_text(got[0].payload) == expected[0]["uuid"]


def test_a_leg_uuid_names_the_call_by_its_linkedid() -> None:
    caller = audiosocket.stream_uuid(ANSWERED_CALL, "caller")
    agent = audiosocket.stream_uuid("1795383092.4", "agent")
    assert caller == "17953830-4801-0000-0000-000000000000"
    assert audiosocket.call_of_uuid(caller) == (ANSWERED_CALL, "caller")
    assert audiosocket.call_of_uuid(agent) == ("1795383092.4", "agent")
    assert audiosocket.call_of_uuid(audiosocket.stream_uuid("1795383048.123456789012", "agent")) == \
        ("1795383048.123456789012", "agent")
    # What the lab dialplan used: a UUID that names no call
    assert audiosocket.call_of_uuid(index(CITIZEN)[0]["uuid"]) is None
    with pytest.raises(ValueError):
        audiosocket.stream_uuid("<unknown>", "caller")


def test_unusable_frames_are_skipped_counted_and_end_the_stream_only_when_too_many() -> None:
    s = StreamState()
    assert step(s, Frame(audiosocket.KIND_UUID, bytes(range(16)))) is None and s.uuid
    assert step(s, Frame(0x42, b"junk")) is None and not s.ended  # no such kind: skipped
    assert step(s, Frame(audiosocket.KIND_AUDIO, b"\1\0\2")) == b"\1\0"  # half a sample cut off
    assert step(s, Frame(audiosocket.KIND_AUDIO, b"\0" * 320)) == b"\0" * 320
    assert s.bad_frames == 2 and s.audio_bytes == 322
    for _ in range(audiosocket.MAX_BAD_FRAMES):
        step(s, Frame(0x42, b""))
    assert s.ended == "bad_frames"

    first = StreamState()
    step(first, Frame(audiosocket.KIND_AUDIO, b"\0" * 320))
    assert first.ended == "no_uuid"
    short = StreamState()
    step(short, Frame(audiosocket.KIND_UUID, b"\1" * 4))
    assert short.ended == "bad_uuid"
    err = StreamState(uuid="x")
    step(err, Frame(audiosocket.KIND_ERROR, b"\x02"))
    assert (err.ended, err.detail) == ("asterisk_error", "code 0x02")
    hangup = StreamState(uuid="x")
    step(hangup, Frame(audiosocket.KIND_HANGUP, b""))
    assert hangup.ended == "hangup"


class Recorder(audiosocket.StreamHandler):
    def __init__(self, log: list[dict[str, Any]], follow: bool = True) -> None:
        self.entry: dict[str, Any] = {"uuid": None, "audio": 0, "end": None}
        log.append(self.entry)
        self.follow = follow

    async def start(self, uuid: str) -> bool:
        self.entry["uuid"] = uuid
        return self.follow

    async def audio(self, pcm: bytes) -> None:
        self.entry["audio"] += len(pcm)

    async def end(self, reason: str, detail: str) -> None:
        self.entry["end"] = (reason, detail)


async def until(cond: Any, timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.fixture
async def served() -> Any:
    log: list[dict[str, Any]] = []
    server = audiosocket.AudioSocketServer(lambda: Recorder(log), idle_timeout=30)
    port = await server.start()
    yield port, log
    await server.close()


async def test_recorded_streams_over_tcp_end_when_asterisk_closes(served: Any) -> None:
    port, log = served
    caller = with_uuid(recorded(CITIZEN), audiosocket.stream_uuid(ANSWERED_CALL, "caller"))
    await asyncio.gather(send(port, caller, seed=1), send(port, recorded(GREETING), seed=2))
    await until(lambda: len(log) == 2 and all(e["end"] for e in log))
    by_uuid = {e["uuid"]: e for e in log}
    assert by_uuid[audiosocket.stream_uuid(ANSWERED_CALL, "caller")]["audio"] == sum(e["len"] for e in index(CITIZEN)[1:])
    assert by_uuid[index(GREETING)[0]["uuid"]]["audio"] == sum(e["len"] for e in index(GREETING)[1:])
    # Asterisk 22 sends no hang-up frame: the end of whole frames is the normal end
    assert {e["end"] for e in log} == {("closed", "")}


async def test_a_bad_frame_mid_call_is_skipped_and_the_stream_goes_on(served: Any) -> None:
    port, log = served
    uuid = audiosocket.stream_uuid(ANSWERED_CALL, "caller")
    data = uuid_frame(uuid) + audio_frames(b"\1\0" * 1600) + audiosocket.encode(0x42, b"not audio") \
        + audio_frames(b"\2\0" * 1600) + audiosocket.encode(audiosocket.KIND_HANGUP)
    await send(port, data)
    await until(lambda: log and log[0]["end"])
    assert log[0]["audio"] == 6400 and log[0]["end"] == ("hangup", "")


async def test_garbage_ends_its_own_stream_with_a_reason_and_the_next_call_is_served(served: Any) -> None:
    port, log = served
    await send(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # not AudioSocket at all
    await send(port, audiosocket.encode(audiosocket.KIND_UUID, b"short"))
    await send(port, uuid_frame(audiosocket.stream_uuid(ANSWERED_CALL, "agent"))
               + b"".join(audiosocket.encode(0x55, b"x") for _ in range(30)))
    await send(port, recorded(GREETING))
    await until(lambda: len(log) == 4 and all(e["end"] for e in log))
    assert [e["end"][0] for e in log] == ["no_uuid", "bad_uuid", "bad_frames", "closed"]
    assert log[3]["audio"] > 50_000


@pytest.mark.parametrize("reset", [False, True], ids=["cut-mid-frame", "tcp-reset"])
async def test_a_connection_dropped_mid_call_ends_the_stream_as_dropped(served: Any, reset: bool) -> None:
    port, log = served
    data = with_uuid(recorded(CITIZEN), audiosocket.stream_uuid(ANSWERED_CALL, "caller"))
    cut = len(data) // 2 + 7  # inside an audio frame
    await send(port, data[:cut], reset=reset)
    await until(lambda: log and log[0]["end"])
    assert log[0]["end"][0] == "dropped"
    assert 0 < log[0]["audio"] < sum(e["len"] for e in index(CITIZEN)[1:])


async def test_a_worker_stopping_mid_call_ends_the_stream_even_when_audio_arrives_at_that_moment() -> None:
    """Stopping the worker ends every open leg as "worker_stopped" (the page says so) and lets close() return.

    Audio arrives every 20 ms, so a stop often meets a read that has just completed; Python 3.11's
    ``asyncio.wait_for`` then returns that read's bytes and drops the cancel. The leg then went on until the
    caller hung up, and close() (the worker's shutdown) waited for it. Here the frame and the stop arrive in the
    same loop turn on purpose, every time: the StreamReader is fed as its TCP protocol feeds it."""
    reader = asyncio.StreamReader()
    log: list[dict[str, Any]] = []
    uuid = audiosocket.stream_uuid(ANSWERED_CALL, "caller")
    task = asyncio.get_running_loop().create_task(
        audiosocket.serve_stream(reader, Recorder(log), idle_timeout=3600))
    reader.feed_data(uuid_frame(uuid) + audio_frames(b"\1\0" * 1600))
    await until(lambda: log and log[0]["audio"] == 3200)
    reader.feed_data(audio_frames(b"\2\0" * 160))  # the next 20 ms of the call ...
    task.cancel()  # ... and the worker stopping, in the same turn of the loop
    done, _ = await asyncio.wait({task}, timeout=60)
    assert task in done, "the leg went on after the worker stopped"
    assert task.cancelled()
    assert log[0]["end"] == ("worker_stopped", "")
