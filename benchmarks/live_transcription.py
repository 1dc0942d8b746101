"""Live transcription: N calls replayed at real speed into one recognition worker (one decoding thread), and the
delay from a word's end in the audio to text covering it on the agent's WebSocket.

    /work/main/.venv/bin/python benchmarks/live_transcription.py [--backends whisper,vosk] [--calls 1,2,3]

The path measured is the deployed one: AudioSocket frames over TCP -> ``asr.live.LiveTranscriber`` in its own
process (the backend loaded as the worker loads it; one decoding thread, so about one core at most) -> real redis-server -> ``asr.live_feed``'s
``/ws/asr/live`` (in this process, a bare aiohttp app with a supervisor user, the server's fan-out code) ->
a WebSocket client following every call. Each call is one caller leg: a recording of ../shared/speech/
synthetic_8k framed as Asterisk's 20 ms AudioSocket frames, sent at 8 kHz real speed (all calls start
together). The clock of "when was this word said" is the time its last sample was sent.

Per word of each final (its end time from the recognizer): **first text** = the first partial or final of its
stretch whose audio window reached the word's end; **final** = the final itself. p50/p99 over all words,
partials per call-second, the worker's CPU time / wall time (1.0 = a core is full), its CPU seconds per second of
call audio (how many real-time calls one core can carry at the partial rate reached: 1 / this), and calls that got no
live text at all. Vosk runs the Korean stand-in model (the only Vosk model here): the timing is Vosk's, the
words are not Chinese.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FILES = ["hotline_01_leak.wav", "hotline_02_noise.wav", "hotline_04_streetlight.wav", "hotline_05_wages.wav",
         "hotline_07_clinic.wav", "hotline_08_heating.wav", "hotline_06_garbage.wav", "hotline_09_bus.wav"]


# ---------------------------------------------------------------- the worker process
def serve(port: int, redis_url: str, backend_kind: str, max_calls: int) -> None:
    # Not pinned: decoding is one thread (plus the event loop), so the worker uses at most about one core;
    # pinned to CPU 0 on a machine shared with other work it only got what CPU 0's other tenants left.
    from redis.asyncio import Redis

    from asr import backends, live
    from tests.asr.conftest import korean_model_path

    if backend_kind == "vosk":
        cfg = backends.BackendConfig("vosk", str(korean_model_path()))
    else:
        cfg = backends.BackendConfig("whisper")
    backend = backends.load(cfg)

    async def run() -> None:
        redis = Redis.from_url(redis_url)
        t = live.LiveTranscriber(backend, live.RedisPublisher(redis), max_calls=max_calls, port=port)
        await t.start()
        print("ready", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await t.close()
        await redis.aclose()

    asyncio.run(run())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- one run
async def feed_app(redis_url: str) -> tuple[Any, int]:
    from aiohttp import web
    from redis.asyncio import Redis

    from asr import live_feed
    from tests.services import free_port

    @web.middleware
    async def supervisor(request: web.Request, handler: Any) -> Any:
        request["user"] = {"role": "supervisor", "username": "bench"}
        return await handler(request)

    app = web.Application(middlewares=[supervisor])
    redis = Redis.from_url(redis_url)
    live_feed.setup(app, redis=lambda: redis, may_follow=lambda user, call: True)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


async def one_run(backend: str, calls: int, redis_url: str) -> dict[str, Any]:
    import aiohttp

    from asr import audiosocket
    from tests.asr.audiosocket_streams import send, speech_stream
    from tests.services import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--redis", redis_url,  # noqa: ASYNC220
                             "--backend", backend, "--max-calls", str(calls)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    runner, ws_port = await feed_app(redis_url)
    loop = asyncio.get_running_loop()
    run = int(time.time() * 10) % 100_000  # calls of another run must not share a backlog
    ids = [f"17953{run:05d}.{i}" for i in range(calls)]
    received: list[tuple[float, dict[str, Any]]] = []
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(f"http://127.0.0.1:{ws_port}/ws/asr/live") as ws:
            for call in ids:
                await ws.send_str(json.dumps({"follow": call}))
            await asyncio.sleep(0.3)

            async def reader() -> None:
                async for msg in ws:
                    received.append((loop.time(), json.loads(msg.data)))

            read_task = asyncio.ensure_future(reader())
            cpu0 = cpu_seconds(proc.pid)
            started = loop.time()
            t0 = {call: started for call in ids}
            await asyncio.gather(*(send(port, speech_stream(FILES[i % len(FILES)],
                                                            audiosocket.stream_uuid(call, "caller"), silence_after=1.5),
                                        real_speed=True, seed=i) for i, call in enumerate(ids)))
            deadline = loop.time() + 120
            while sum(1 for _, m in received if m.get("event") == "stopped") < calls and loop.time() < deadline:
                await asyncio.sleep(0.05)
            wall = loop.time() - started
            cpu = cpu_seconds(proc.pid) - cpu0
            read_task.cancel()
    finally:
        await runner.cleanup()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    if os.environ.get("LIVE_BENCH_DEBUG"):
        for t, m in received:
            print(round(t - started, 2), m.get("event"), m.get("stretch"), m.get("start"), m.get("end"),
                  (m.get("text") or "")[:30], [w[2] for w in m.get("words", [])][-3:])
    first: list[float] = []
    final: list[float] = []
    partials = 0
    live_calls = set()
    audio_seconds = 0.0
    for call in ids:
        msgs = [(t, m) for t, m in received if m.get("call_id") == call]
        partials += sum(1 for _, m in msgs if m.get("event") == "partial")
        if any(m.get("event") in ("partial", "final") and m.get("text") for _, m in msgs):
            live_calls.add(call)
        for t_final, f in [(t, m) for t, m in msgs if m.get("event") == "final"]:
            audio_seconds = max(audio_seconds, f["end"])
            window = [(t, m) for t, m in msgs if m.get("event") in ("partial", "final") and m["stretch"] == f["stretch"]]
            for _word, _start, end in f["words"]:
                said = t0[call] + end
                covering = [t for t, m in window if m["end"] >= end - 0.02]
                first.append(min(covering) - said)
                final.append(t_final - said)

    def pct(xs: list[float], q: float) -> float:
        return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")

    return {"backend": backend, "calls": calls, "words": len(first),
            "first_p50": pct(first, 0.5), "first_p99": pct(first, 0.99),
            "final_p50": pct(final, 0.5), "final_p99": pct(final, 0.99),
            "partials_per_call_s": partials / max(1e-9, calls * wall),
            "cpu_per_wall": cpu / wall, "cpu_per_audio_s": cpu / max(1e-9, calls * audio_seconds), "calls_with_live_text": len(live_calls),
            "stopped": sum(1 for _, m in received if m.get("event") == "stopped"),
            "loadavg": os.getloadavg()}


async def main_async(args: argparse.Namespace) -> None:
    from tests.services import redis_server

    rows = []
    with redis_server() as url:
        for backend in args.backends.split(","):
            for n in [int(x) for x in args.calls.split(",")]:
                r = await one_run(backend, n, f"{url}/0")
                rows.append(r)
                la = r["loadavg"]
                print(f"{backend:7s} calls={n:2d} words={r['words']:4d} first text p50 {r['first_p50']:.2f} s "
                      f"p99 {r['first_p99']:.2f} s | final p50 {r['final_p50']:.2f} s p99 {r['final_p99']:.2f} s | "
                      f"partials/call-s {r['partials_per_call_s']:.2f} | worker cpu/wall {r['cpu_per_wall']:.2f}, "
                      f"cpu s per call-audio s {r['cpu_per_audio_s']:.2f} | "
                      f"live calls {r['calls_with_live_text']}/{n} | load {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}",
                      flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", default="whisper,vosk")
    parser.add_argument("--calls", default="1,2,3")
    parser.add_argument("--json", default="")
    parser.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--redis", default="", help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="whisper", help=argparse.SUPPRESS)
    parser.add_argument("--max-calls", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.redis, args.backend, args.max_calls)
        return
    started = time.perf_counter()
    asyncio.run(main_async(args))
    print(f"({time.perf_counter() - started:.0f} s, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
