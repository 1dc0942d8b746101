"""The CPU floor of the live feed's fan-out, against bare panoramisk's parse of the same events (issue #19).

Issue #19 asks the whole pipeline (AMI bytes -> state -> Redis -> WebSocket) to spend no more CPU per event
than bare panoramisk spends parsing it, at 3,000 events/s to 50 clients with p99 <= 20 ms. This measures the
part no code change can remove: writing each frame to each of 50 sockets, done the cheapest way there is (one
pre-framed ``transport.write`` per client per frame, as ``telephony/http.py:_WsSink`` does; no parsing, no
state, no Redis, no JSON). A frame interval of F ms bounds the latency from below by ~F, so p99 <= 20 ms needs
frames every ~10 ms or less. If this floor alone costs more CPU than panoramisk's parse of the events, the
ratio >= 1.0x cannot be met together with the latency goal, whatever the rest of the pipeline does.

    .venv/bin/python benchmarks/ws_fanout_floor.py [--clients 50] [--rate 3000] [--seconds 10] [--reps 3]

Real processes: the writer (this process, CPU measured with process_time) and 50 reading sockets in a child
process that only drains them. Anchor: bare panoramisk parsing the `burst` capture's bytes (same function as
benchmarks/ami_bridge.py), events per CPU second, median of the reps.
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.ami_bridge import bare_panoramisk_cpu_rate  # noqa: E402

CAPTURE = Path(__file__).resolve().parent.parent.parent / "shared" / "asterisk-captures" / "burst.ami"
FRAME = b"\x81\x7e\x01\x2c" + b"x" * 300  # an unmasked 300-byte text frame: a typical patch of a few fields


def _drain(port: int, clients: int, ready: "mp.synchronize.Event") -> None:
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(clients)]
    ready.set()

    async def run() -> None:
        loop = asyncio.get_running_loop()

        async def read(s: socket.socket) -> None:
            s.setblocking(False)
            while await loop.sock_recv(s, 65536):
                pass
        await asyncio.gather(*(read(s) for s in socks))
    asyncio.run(run())


async def _phase(clients: int, interval: float, seconds: float) -> float:
    """CPU seconds this process spends writing one frame every ``interval`` s to every client."""
    transports: list[asyncio.Transport] = []
    got_all = asyncio.Event()

    class Keep(asyncio.Protocol):
        def connection_made(self, t: asyncio.BaseTransport) -> None:
            transports.append(t)  # type: ignore[arg-type]
            if len(transports) == clients:
                got_all.set()

    loop = asyncio.get_running_loop()
    server = await loop.create_server(Keep, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    ready = mp.get_context("spawn").Event()
    child = mp.get_context("spawn").Process(target=_drain, args=(port, clients, ready), daemon=True)
    child.start()
    await asyncio.wait_for(got_all.wait(), 60)
    cpu0, t0 = time.process_time(), time.monotonic()
    n = 0
    while time.monotonic() - t0 < seconds:
        for t in transports:
            t.write(FRAME)
        n += 1
        await asyncio.sleep(max(0.0, t0 + n * interval - time.monotonic()))
    cpu = time.process_time() - cpu0
    for t in transports:
        t.close()
    server.close()
    child.kill()
    child.join()
    return cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--rate", type=int, default=3000, help="AMI events/s the frames stand for")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--intervals", default="4,10,20", help="ms between frames (the fold interval)")
    a = ap.parse_args()
    data = CAPTURE.read_bytes()
    events = a.rate * a.seconds
    print(f"load average before: {os.getloadavg()}")
    bare = statistics.median(bare_panoramisk_cpu_rate(data) for _ in range(a.reps))
    parse_cpu = events / bare
    print(f"bare panoramisk: {bare:,.0f} events per CPU s -> {parse_cpu:.3f} CPU s for {events:,.0f} events "
          f"({a.rate}/s for {a.seconds:g} s)")
    for ms in (float(x) for x in a.intervals.split(",")):
        cpus = [asyncio.run(_phase(a.clients, ms / 1000, a.seconds)) for _ in range(a.reps)]
        cpu = statistics.median(cpus)
        print(f"frames every {ms:g} ms to {a.clients} sockets: {cpu:.3f} CPU s (median of {a.reps}: "
              f"{', '.join(f'{c:.3f}' for c in cpus)}) -> the best ratio any pipeline with this fan-out could "
              f"reach, with everything else free: {parse_cpu / cpu:.2f}x")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
