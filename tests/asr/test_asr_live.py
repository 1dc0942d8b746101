"""Live transcription in the worker: AudioSocket streams over real TCP -> partial and final lines per speaker
on a real Redis (channel + the call's backlog), draft fields as heard, the per-worker bound, and a stream cut
mid-call. Whisper base (the default backend) and the Korean Vosk model (streaming natively) both run."""
from __future__ import annotations

import asyncio
import json
from typing import Any, Self

import pytest
from redis.asyncio import Redis

from asr import audiosocket, live
from tests.asr.audiosocket_streams import (
    ANSWERED_CALL,
    GREETING,
    audio_frames,
    recorded,
    send,
    speech_stream,
    with_uuid,
)
from tests.asr.test_asr_audiosocket import until
from tests.services import hold_port

LEAK = "hotline_01_leak.wav"  # 我家楼上漏水已经一个星期了物业不管地址是朝阳区幸福小区三号楼


class Listener:
    """What a server process hears on the live channel (decoded)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.messages: list[dict[str, Any]] = []
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(live.CHANNEL)

        async def run() -> None:
            async for m in pubsub.listen():
                if m["type"] == "message":
                    self.messages.append(json.loads(m["data"]))

        self.task = asyncio.get_running_loop().create_task(run())
        self.pubsub = pubsub
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.pubsub.aclose()

    def of(self, call_id: str, event: str | None = None) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["call_id"] == call_id and (event is None or m["event"] == event)]


@pytest.fixture
async def redis(redis_url: str) -> Any:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def send_until(port: int, data: bytes, hang_up: asyncio.Event) -> None:
    """``data`` at 8 kHz real speed, then silence at real speed until ``hang_up`` is set: the leg stays open
    (and holds its place in the worker) until the test says so, however slow the machine."""
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    per_second = 2 * 8000 * 323 / 320  # bytes of 320-byte audio frames behind 3-byte headers
    silence = audio_frames(b"\0\0" * 1600)  # 0.2 s
    pieces = iter([data[i:i + 3230] for i in range(0, len(data), 3230)])
    started, sent = loop.time(), 0
    while (piece := next(pieces, None)) is not None or not hang_up.is_set():
        piece = piece if piece is not None else silence
        writer.write(piece)
        await writer.drain()
        sent += len(piece)
        due = started + sent / per_second
        if due > loop.time():
            await asyncio.sleep(due - loop.time())
    writer.close()
    await writer.wait_closed()


async def _transcriber(backend: Any, redis: Redis, **kw: Any) -> live.LiveTranscriber:
    t = live.LiveTranscriber(backend, live.RedisPublisher(redis), **kw)
    await t.start()
    return t


async def test_whisper_partials_then_a_final_with_the_address_heard(whisper_backend: Any, redis: Redis) -> None:
    t = await _transcriber(whisper_backend, redis)
    caller = audiosocket.stream_uuid(ANSWERED_CALL, "caller")
    try:
        async with Listener(redis) as heard:
            await send(t.server.port, speech_stream(LEAK, caller), real_speed=True)
            await until(lambda: heard.of(ANSWERED_CALL, "stopped"), timeout=180)
    finally:
        await t.close()
    msgs = heard.of(ANSWERED_CALL)
    events = [m["event"] for m in msgs]
    assert events[0] == "started" and events[-1] == "stopped" and msgs[-1]["reason"] == "closed"
    assert all(m["speaker"] == "caller" and m["label"] == "市民" for m in msgs)
    partials = [m for m in msgs if m["event"] == "partial"]
    finals = [m for m in msgs if m["event"] == "final"]
    assert partials and finals
    # partials of a stretch come before its final, each at a whole second of speech (one waits at most:
    # a slow decode skips partials, never a final), growing; the last may be the whole stretch, shown
    # just before its final so that its last words need not wait for the final's slower decode
    assert events.index("final") > events.index("partial")
    spans = [round(p["end"] - p["start"], 2) for p in partials if p["stretch"] == 1]
    whole_stretch = [round(f["end"] - f["start"], 2) for f in finals if f["stretch"] == 1]
    assert spans == sorted(set(spans))
    assert all(abs(x - round(x)) <= 0.02 for x in spans if x not in whole_stretch)
    text = "".join(f["text"] for f in finals)
    assert "朝阳" in text
    words = [w for f in finals for w in f["words"]]
    assert words and all(f["start"] <= w[1] <= w[2] <= f["end"] + 0.05 for f in finals for w in f["words"])
    fields = finals[-1]["fields"]
    assert fields["district"]["value"].startswith("朝阳") and any("朝阳" in h for h in fields["district"]["heard"])
    # the backlog holds the same lines in the same order, for a page opened mid-call
    backlog = [json.loads(x) for x in await redis.lrange(live.BACKLOG_PREFIX + ANSWERED_CALL, 0, -1)]
    assert backlog == msgs


async def test_vosk_streams_natively_with_timed_words(backend: Any, redis: Redis) -> None:
    """The Korean model (the only Vosk model here) reads Mandarin as Korean: this checks the streaming, not
    the words."""
    t = await _transcriber(backend, redis)
    agent = audiosocket.stream_uuid(ANSWERED_CALL, "agent")
    try:
        async with Listener(redis) as heard:
            await send(t.server.port, speech_stream(LEAK, agent), real_speed=True)
            await until(lambda: heard.of(ANSWERED_CALL, "stopped"), timeout=120)
    finally:
        await t.close()
    msgs = heard.of(ANSWERED_CALL)
    assert {m["label"] for m in msgs} == {"座席"}
    assert [m for m in msgs if m["event"] == "partial" and m["text"]]
    finals = [m for m in msgs if m["event"] == "final"]
    assert finals and all("fields" not in f for f in finals)  # the agent's words fill no draft
    for f in finals:
        assert all(f["start"] - 0.05 <= w[1] <= w[2] <= f["end"] + 0.05 for w in f["words"])


async def test_above_the_bound_a_call_falls_back_to_after_call_text_and_says_so(backend: Any, redis: Redis) -> None:
    t = await _transcriber(backend, redis, max_calls=1)
    first, second = "1795383048.0", "1795383075.0"
    hang_up = asyncio.Event()
    try:
        async with Listener(redis) as heard:
            # the first call's caller leg holds the worker's one slot; its agent leg still gets in. The caller
            # leg stays open until the second call was answered (a loaded machine may take longer than its
            # speech lasts to get there, and a finished leg would have freed the slot)
            a = asyncio.ensure_future(send_until(t.server.port, speech_stream(LEAK, audiosocket.stream_uuid(
                first, "caller")), hang_up))
            await until(lambda: heard.of(first, "started"))
            await send(t.server.port, with_uuid(recorded(GREETING), audiosocket.stream_uuid(first, "agent")))
            await send(t.server.port, with_uuid(recorded(GREETING), audiosocket.stream_uuid(second, "caller")))
            await until(lambda: heard.of(second))
            hang_up.set()
            await a
            await until(lambda: len(heard.of(first, "stopped")) == 2, timeout=120)
    finally:
        hang_up.set()
        await t.close()
    fallback = heard.of(second)
    assert [m["event"] for m in fallback] == ["fallback"]
    assert fallback[0]["reason"] == "capacity" and "挂机后转写" in fallback[0]["message"]
    assert {m["speaker"] for m in heard.of(first, "started")} == {"caller", "agent"}
    assert t.stats["capacity"] == 1


async def test_a_stream_cut_mid_call_keeps_what_was_heard_and_says_why_it_stopped(backend: Any, redis: Redis) -> None:
    t = await _transcriber(backend, redis)
    data = speech_stream(LEAK, audiosocket.stream_uuid(ANSWERED_CALL, "caller"))
    try:
        async with Listener(redis) as heard:
            # four seconds of speech at real speed, then a TCP reset inside a frame
            await send(t.server.port, data[:4 * 50 * 323 + 7], reset=True, real_speed=True)
            await until(lambda: heard.of(ANSWERED_CALL, "stopped"), timeout=120)
            # the worker goes on serving: an unknown call is refused without a word on the channel
            await send(t.server.port, recorded(GREETING))
            await until(lambda: t.stats.get("unknown_call") == 1)
    finally:
        await t.close()
    stopped = heard.of(ANSWERED_CALL, "stopped")[0]
    assert stopped["reason"] == "dropped" and stopped["message"] == "音频连接中断"
    assert heard.of(ANSWERED_CALL, "final")  # the stretch heard before the cut is still given its final
    assert {m["call_id"] for m in heard.messages} == {ANSWERED_CALL}


async def test_the_recognition_worker_serves_audiosocket_beside_its_job_queue(
        backend: Any, ko_model: Any, redis: Redis, redis_url: str, sqlite_url: str, sqlite_template: Any) -> None:
    import shutil

    from asr import jobs

    shutil.copyfile(sqlite_template, sqlite_url.split("///", 1)[1])
    # held until the end: no other process can take the port before the worker binds it (with reuse_port)
    held = hold_port()
    port = held.getsockname()[1]
    cfg = jobs.WorkerConfig(redis_url=redis_url, database_url=sqlite_url, model_path=str(ko_model), backend="vosk",
                            live_port=port, live_max_calls=1)
    worker = jobs.build_worker(cfg, backend=backend, handle_signals=False, poll_delay=0.05)
    task = asyncio.ensure_future(worker.async_run())
    try:
        async with Listener(redis) as heard:
            async def listening() -> bool:
                try:
                    _r, w = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    return False
                w.close()
                return True

            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while not await listening():
                assert loop.time() < deadline and not task.done(), "the worker never listened"
                await asyncio.sleep(0.1)
            await send(port, with_uuid(recorded(GREETING), audiosocket.stream_uuid(ANSWERED_CALL, "agent")))
            await until(lambda: heard.of(ANSWERED_CALL, "stopped"))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await worker.close()
        held.close()
    assert heard.of(ANSWERED_CALL)[0]["event"] == "started"
    assert heard.of(ANSWERED_CALL, "stopped")[0]["reason"] == "closed"


async def test_a_worker_killed_mid_call_is_reported_to_the_page_as_stopped(
        tmp_path: Any, redis: Redis, redis_url: str, ko_model: Any) -> None:
    """A real ``hotline worker`` process (python -m asr worker) follows a call and is SIGKILLed: no "stopped"
    can come from it, so the server's feed notices its leg's heartbeat lapse and tells the page why."""
    import os
    import signal
    import subprocess
    import sys

    from asr import live_feed
    from tests.asr.conftest import ROOT
    # held until the end: no other process can take the port before the worker binds it (with reuse_port)
    held = hold_port()
    port = held.getsockname()[1]
    env = {**os.environ, "HOTLINE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'hotline.db'}",
           "HOTLINE_REDIS_URL": redis_url, "HOTLINE_ASR_MODEL_PATH": str(ko_model), "HOTLINE_ASR_BACKEND": "vosk",
           "HOTLINE_ASR_LIVE_PORT": str(port), "HOTLINE_SERVER_DATA_DIR": str(tmp_path)}
    log = tmp_path / "worker.log"
    proc = subprocess.Popen([sys.executable, "-m", "asr", "worker", "--processes", "1"], cwd=ROOT, env=env,  # noqa: ASYNC220
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    feed = live_feed.LiveFeed(redis, lambda user, call: True)
    client = live_feed.Client({"role": "supervisor"})
    client.calls.add(ANSWERED_CALL)
    feed.clients.add(client)
    tasks = [asyncio.ensure_future(feed.run()), asyncio.ensure_future(feed.watch_legs(every=0.5))]
    got: list[dict[str, Any]] = []
    hang_up = asyncio.Event()

    def seen(event: str) -> bool:
        while not client.queue.empty():
            got.append(json.loads(client.queue.get_nowait()))
        return any(m["event"] == event for m in got)

    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 120
        while "live transcription: AudioSocket" not in log.read_text(errors="replace"):
            assert proc.poll() is None and loop.time() < deadline, log.read_text(errors="replace")
            await asyncio.sleep(0.2)
        # the leg stays open until the worker is killed (a loaded machine may take longer than the speech
        # lasts to see "started", and a leg that ended would be "stopped" by the worker itself)
        sending = asyncio.ensure_future(send_until(port, speech_stream(LEAK, audiosocket.stream_uuid(
            ANSWERED_CALL, "caller")), hang_up))
        await until(lambda: seen("started"))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        await until(lambda: seen("stopped"), timeout=60)
        hang_up.set()
        await asyncio.gather(sending, return_exceptions=True)
    finally:
        hang_up.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        held.close()
    stopped = next(m for m in got if m["event"] == "stopped")
    assert stopped["reason"] == "worker_lost" and stopped["speaker"] == "caller" and "心跳" in stopped["message"]
