"""AMI bridge benchmark: the burst capture replayed many times over (channel ids made unique) through the whole
bridge: real TCP socket -> panoramisk + our byte framing -> ordered consumer + pure reducer -> Redis pub/sub ->
live hub -> WebSocket -> a connected client. Prints events/s, p50/p99 latency from the AMI bytes arriving to the
WebSocket message, and panoramisk's bare parse rate of the same bytes measured in the same run.

    /work/main/.venv/bin/python benchmarks/ami_bridge.py [--events 1000000] [--rate 2000] [--latency-seconds 10]

The fake Asterisk runs in a child process (the machine has 2 cores: one serves bytes, one runs the bridge).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CAPTURE = ROOT.parent / "shared" / "asterisk-captures" / "burst.ami"

ID_RE = re.compile(rb"(?<=: )(\d{10})\.(\d{1,5})(?=\r\n)")  # Uniqueid / Linkedid (Timestamp has 6 decimals)
CHAN_RE = re.compile(rb"-([0-9a-f]{8});")  # Local/...@ctx-0000001a;1
TS_RE = re.compile(rb"(?<=Timestamp: )(\d+)\.(\d{6})")


def burst_body() -> bytes:
    data = CAPTURE.read_bytes()
    start = data.index(b"\r\n") + 2  # after the banner
    end = data.rindex(b"Response: Goodbye")  # drop Logoff/EOF: the stream goes on
    body = data[start:end]
    # drop the capture's own login answer; the fake answers our Login itself
    first = body.index(b"\r\n\r\n") + 4
    return body[first:]


def make_copies(body: bytes, n_events_target: int, first: int = 0) -> tuple[list[bytes], int]:
    per_copy = body.count(b"\r\n\r\nEvent: ") + (1 if body.startswith(b"Event: ") else 0)
    copies = max(1, -(-n_events_target // per_copy))
    span = 3600  # each copy one hour later, so the reducer sees time move forward

    def copy(k: int) -> bytes:
        b = ID_RE.sub(lambda m: m.group(1) + b"." + str(int(m.group(2)) + k * 100000).encode(), body)
        b = CHAN_RE.sub(lambda m: b"-" + f"{int(m.group(1), 16) + k * 4096:08x}".encode() + b";", b)
        return TS_RE.sub(lambda m: str(int(m.group(1)) + k * span).encode() + b"." + m.group(2), b)

    return [copy(k) for k in range(first, first + copies)], per_copy * copies


def fake_asterisk(port_q: mp.Queue[int], chunks_path: str, rate: float, latency_path: str) -> None:
    """Child process: answer the Login and the resync, then stream the copies (flat out, then paced)."""
    import pickle

    async def main() -> None:
        with open(chunks_path, "rb") as fh:
            copies = pickle.load(fh)
        with open(latency_path, "rb") as fh:
            paced = pickle.load(fh)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"Asterisk Call Manager/11.0.0\r\n")
            buf = b""
            streaming = False
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    msg, buf = buf.split(b"\r\n\r\n", 1)
                    fields = dict(line.split(": ", 1) for line in msg.decode().split("\r\n") if ": " in line)
                    aid = fields.get("ActionID", "")
                    act = fields.get("Action", "").lower()
                    if act == "login":
                        writer.write(f"Response: Success\r\nActionID: {aid}\r\nMessage: Authentication accepted"
                                     f"\r\n\r\n".encode())
                    elif act in ("queuestatus", "coreshowchannels"):
                        name = "QueueStatusComplete" if act == "queuestatus" else "CoreShowChannelsComplete"
                        writer.write(f"Response: Success\r\nActionID: {aid}\r\nEventList: start\r\n\r\n"
                                     f"Event: {name}\r\nActionID: {aid}\r\nEventList: Complete\r\nListItems: 0"
                                     f"\r\n\r\n".encode())
                        if act == "coreshowchannels" and not streaming:
                            streaming = True
                            asyncio.get_running_loop().create_task(stream(writer))
                    elif act == "userevent":  # the bench saw every flat event: start the paced phase
                        writer.write(f"Response: Success\r\nActionID: {aid}\r\n\r\n".encode())
                        asyncio.get_running_loop().create_task(paced_stream(writer))
                    else:
                        writer.write(f"Response: Success\r\nActionID: {aid}\r\nPing: Pong\r\n\r\n".encode())

        async def stream(writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(0.3)
            for c in copies:  # flat out, in chunks cut at message ends so our replies never land inside one
                i = 0
                while i < len(c):
                    j = c.rfind(b"\r\n\r\n", i, i + 65536)
                    j = len(c) if j < 0 else j + 4
                    writer.write(c[i:j])
                    i = j
                    await writer.drain()
            await writer.drain()

        async def paced_stream(writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(0.5)
            start = time.monotonic()
            for i, msg in enumerate(paced):  # paced: one message every 1/rate s
                due = start + i / rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                writer.write(msg)
            writer.write(b"Event: UserEvent\r\nUserEvent: BenchPhase\r\nPhase: end\r\n\r\n")
            await writer.drain()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port_q.put(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def bare_panoramisk_rate(data: bytes) -> tuple[float, int]:
    from panoramisk.ami_protocol import AMIProtocol

    count = 0

    class Factory:
        save_stream = None

        def dispatch(self, m: object) -> None:
            nonlocal count
            count += 1

    p = AMIProtocol()
    p.connection_made(None)
    p.factory = Factory()
    p.version = "11.0.0"
    p.encoding = "utf8"
    t = time.perf_counter()
    for i in range(0, len(data), 65536):
        p.data_received(data[i:i + 65536])
    return count / (time.perf_counter() - t), count


def our_parse_rate(data: bytes) -> float:
    from telephony.framing import Framer, parse_message

    f = Framer()
    n = 0
    t = time.perf_counter()
    for i in range(0, len(data), 65536):
        for text in f.feed(data[i:i + 65536]):
            parse_message(text)
            n += 1
    return n / (time.perf_counter() - t)


def reducer_rate(data: bytes) -> float:
    from telephony.framing import Framer, parse_message
    from telephony.reducer import apply
    from telephony.state import LiveState

    f = Framer()
    evs = [parse_message(t) for t in f.feed(data)]
    s = LiveState()
    t = time.perf_counter()
    for e in evs:
        s, _ = apply(s, e)
    return len(evs) / (time.perf_counter() - t)


async def run_bridge(port: int, redis_url: str, expect: int, paced_count: int) -> dict[str, float]:
    from datetime import UTC, datetime

    import aiohttp
    from aiohttp import web
    from redis.asyncio import Redis

    from config.settings import load_settings
    from telephony.http import setup_routes
    from telephony.service import TelephonyService

    settings = load_settings(env={}).with_overrides(
        server={"data_dir": tempfile.mkdtemp(prefix="bench-")},
        ami={"enabled": True, "host": "127.0.0.1", "port": port, "secret": "x", "ping_interval": 60,
             "action_timeout": 30})
    redis = Redis.from_url(redis_url)
    svc = TelephonyService(settings, lambda: datetime.now(UTC), redis=redis, trace_latency=True)
    app = web.Application()

    @web.middleware
    async def as_supervisor(request: web.Request, handler):  # the bench skips the login
        request["user"] = {"role": "supervisor", "interface": None}
        return await handler(request)

    app.middlewares.append(as_supervisor)
    setup_routes(app, svc)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    http_port = site._server.sockets[0].getsockname()[1]
    phase = {"name": "flat"}
    marks: dict[str, float] = {}
    lat: list[float] = []
    got = {"events": 0, "messages": 0}
    ws_ready = asyncio.Event()

    async def client() -> None:
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(f"http://127.0.0.1:{http_port}/ws/telephony", max_msg_size=0) as ws:
                ws_ready.set()
                async for msg in ws:
                    now = time.perf_counter()
                    data = json.loads(msg.data)
                    rx = data.get("rx")
                    if not rx:
                        continue
                    got["messages"] += 1
                    got["events"] += len(rx)
                    if "first" not in marks:
                        marks["first"] = min(r for r in rx if r)
                    if phase["name"] == "flat":
                        marks["flat_last"] = now
                        if got["events"] >= expect:
                            phase["name"] = "paced"
                            print(f"  flat phase done: {got['events']:,} events, {got['messages']:,} WS messages",
                                  flush=True)
                            await svc.send({"Action": "UserEvent", "UserEvent": "BenchPaced"})
                    else:
                        lat.extend(now - r for r in rx if r)
                        if len(lat) >= paced_count:
                            return

    task = asyncio.get_running_loop().create_task(client())
    await asyncio.wait_for(ws_ready.wait(), 30)
    await svc.start()
    await asyncio.wait_for(task, timeout=3600)
    flat_s = marks["flat_last"] - marks["first"]
    lat.sort()
    result = {"flat_events": expect, "flat_seconds": flat_s, "flat_rate": expect / flat_s,
              "p50_ms": 1000 * lat[len(lat) // 2], "p99_ms": 1000 * lat[int(len(lat) * 0.99)],
              "max_ms": 1000 * lat[-1], "paced_events": len(lat), "ws_messages": got["messages"],
              "folded": svc.folded}
    await svc.stop()
    await runner.cleanup()
    await redis.aclose()
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--rate", type=float, default=2400.0, help="paced phase: events/s (burst peak 240/s x 10)")
    ap.add_argument("--latency-events", type=int, default=24_000)
    args = ap.parse_args()
    if not CAPTURE.exists():
        sys.exit(f"capture not found: {CAPTURE}")
    import pickle

    from embedded_redis import EmbeddedRedis

    body = burst_body()
    t = time.perf_counter()
    copies, n_events = make_copies(body, args.events)
    print(f"prepared {len(copies)} copies of burst = {n_events:,} events, "
          f"{sum(map(len, copies)) / 1e6:.0f} MB in {time.perf_counter() - t:.1f} s", flush=True)
    # paced phase: more copies, shifted past the flat ones, split into messages
    paced_copies, _ = make_copies(body, args.latency_events, first=len(copies))
    paced_msgs = [m + b"\r\n\r\n" for c in paced_copies for m in c.split(b"\r\n\r\n")
                  if m.startswith(b"Event: ")]
    paced_msgs = paced_msgs[:args.latency_events]

    sample = b"".join(copies[:min(len(copies), 20)])
    bare = [bare_panoramisk_rate(sample)[0] for _ in range(3)]
    ours = [our_parse_rate(sample) for _ in range(3)]
    red = [reducer_rate(copies[0]) for _ in range(3)]

    print(f"baselines done: panoramisk {statistics.median(bare):,.0f}/s", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="ami-bench-"))
    (tmp / "copies.pkl").write_bytes(pickle.dumps(copies))
    (tmp / "paced.pkl").write_bytes(pickle.dumps(paced_msgs))
    redis_srv = EmbeddedRedis(tmp / "redis")
    redis_url = redis_srv.start()
    ctx = mp.get_context("spawn")
    port_q: mp.Queue[int] = ctx.Queue()
    proc = ctx.Process(target=fake_asterisk, args=(port_q, str(tmp / "copies.pkl"), args.rate,
                                                   str(tmp / "paced.pkl")), daemon=True)
    proc.start()
    try:
        port = port_q.get(timeout=60)
        print(f"fake asterisk on port {port}; running the bridge", flush=True)
        res = asyncio.run(run_bridge(port, redis_url, n_events, len(paced_msgs)))
    finally:
        proc.terminate()
        redis_srv.stop()
    pano = statistics.median(bare)
    print()
    print(f"panoramisk bare parse (decode+split+Message, no framing fix): {pano:,.0f} events/s (median of 3)")
    print(f"our framing + parse alone:                                    {statistics.median(ours):,.0f} events/s")
    print(f"pure reducer alone (apply):                                   {statistics.median(red):,.0f} events/s")
    print(f"whole bridge, TCP -> reducer -> Redis -> WebSocket client:    {res['flat_rate']:,.0f} events/s "
          f"({res['flat_events']:,} events in {res['flat_seconds']:.1f} s, {res['ws_messages']:,} WS messages)")
    print(f"ratio whole bridge / panoramisk bare parse:                   {res['flat_rate'] / pano:.2f}")
    print(f"latency AMI bytes in -> WebSocket message, paced {args.rate:,.0f} events/s "
          f"({res['paced_events']:,} events): p50 {res['p50_ms']:.1f} ms, p99 {res['p99_ms']:.1f} ms, "
          f"max {res['max_ms']:.1f} ms")


if __name__ == "__main__":
    main()
