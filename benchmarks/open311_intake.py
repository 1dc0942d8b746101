"""Open311 intake: how fast partners' ``POST /open311/v2/requests.json`` become committed drafts on a real
``hotline serve`` (SQLite, its own redis-server), next to a BASELINE in the same run: the same number of
drafts made by an agent through ``POST /api/v1/tickets`` (the core's own path: JSON, bearer token).

The Open311 path adds: a form body, the key's sha256 looked up in SQL, the spec's checks, and the Open311
record written by a row hook in the ticket's own transaction. Runs alternate (baseline, Open311, ...) so both
see the same machine load; the load average is printed beside each figure.

    /work/main/.venv/bin/python benchmarks/open311_intake.py [--requests 400] [--concurrency 20] [--reps 3]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ADMIN_PASSWORD = "bench-admin-密码"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_up(base: str) -> None:
    async with aiohttp.ClientSession(base) as http:
        for _ in range(600):
            try:
                async with http.get("/health") as r:
                    if r.status in (200, 503):
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("server did not start")


async def burst(http: aiohttp.ClientSession, n: int, concurrency: int, send: object) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue = list(range(n))

    async def worker() -> None:
        while queue:
            i = queue.pop()
            t = time.perf_counter()
            status = await send(http, i)  # type: ignore[operator]
            assert status == 201, status
            latencies.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0, latencies


async def run(args: argparse.Namespace, base: str) -> None:
    from benchmarks.http_accounts import PASSWORD, api_login

    async with aiohttp.ClientSession(base) as http:
        admin = await api_login(http, "admin", ADMIN_PASSWORD)
        async with http.post("/api/v1/users", headers=admin, json={
                "username": "bench-agent", "password": PASSWORD, "role": "agent"}) as r:
            assert r.status == 201, await r.text()
        agent = await api_login(http, "bench-agent", PASSWORD)
        async with http.post("/api/v1/channel-partners", headers=admin,
                             json={"name": "bench-app", "channel": "app"}) as r:
            key = (await r.json())["api_key"]

        async def open311(h: aiohttp.ClientSession, i: int) -> int:
            async with h.post("/open311/v2/requests.json", data={
                    "api_key": key, "service_code": "城乡建设", "description": f"第{i}号路灯不亮，晚上很黑。",
                    "address_string": "南湖区幸福路18号", "phone": "13912345678"}) as r:
                await r.read()
                return r.status

        async def core(h: aiohttp.ClientSession, i: int) -> int:
            async with h.post("/api/v1/tickets", headers=agent, json={
                    "channel": "app", "category": "城乡建设", "content": f"第{i}号路灯不亮，晚上很黑。",
                    "address": "南湖区幸福路18号", "caller_phone": "13912345678"}) as r:
                await r.read()
                return r.status

        for rep in range(args.reps):
            for name, send in (("baseline POST /api/v1/tickets", core), ("POST /open311/v2/requests", open311)):
                load = os.getloadavg()[0]
                took, lat = await burst(http, args.requests, args.concurrency, send)
                lat.sort()
                print(f"rep {rep + 1} {name:32s} {args.requests / took:7.1f} req/s  p50 {lat[len(lat) // 2] * 1000:6.1f} ms"
                      f"  p95 {lat[int(len(lat) * 0.95)] * 1000:6.1f} ms  (load {load:.2f})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {**os.environ, "HOTLINE_SERVER_DATA_DIR": tmp, "HOTLINE_SERVER_ADMIN_PASSWORD": ADMIN_PASSWORD,
               "HOTLINE_LOG_LEVEL": "WARNING"}
        proc = subprocess.Popen([sys.executable, "server.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            asyncio.run(wait_up(base))
            asyncio.run(run(args, base))
        finally:
            proc.terminate()
            proc.wait(timeout=60)


if __name__ == "__main__":
    main()
