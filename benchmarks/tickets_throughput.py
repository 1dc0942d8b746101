"""Ticket throughput: create, accept, dispatch, sign, reply for N tickets with C concurrent clients.

Two paths in the same run, on the same kind of database:
- HTTP: a real server process (``server.py serve``) and C concurrent clients over loopback.
- store: the same five operations straight through ``TicketStore`` in this process (the baseline that shows
  what HTTP, JSON and auth cost).
Both on SQLite and on PostgreSQL. Prints actions/s and p50/p99 latency; writes JSON to benchmarks/out/.

    .venv/bin/python benchmarks/tickets_throughput.py [--tickets 20000] [--clients 50] [--db sqlite,postgres]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.http_accounts import agent_and_handler  # noqa: E402
from tests import services  # noqa: E402

ACTIONS = ("create", "accept", "dispatch", "sign", "reply")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def summary(name: str, latencies: dict[str, list[float]], wall: float) -> dict[str, object]:
    every = [x for v in latencies.values() for x in v]
    return {"path": name, "actions": len(every), "seconds": round(wall, 2),
            "actions_per_s": round(len(every) / wall, 1), "p50_ms": round(pct(every, 0.5), 2),
            "p99_ms": round(pct(every, 0.99), 2),
            "per_action_p99_ms": {k: round(pct(v, 0.99), 2) for k, v in latencies.items()}}


def ticket_body(i: int) -> dict[str, object]:
    return {"caller_name": "王女士", "caller_phone": f"139{i % 100_000_000:08d}", "request_type": "complaint",
            "title": f"小区路灯不亮第{i}号", "content": "幸福小区3栋门口路灯坏了一个多月，晚上出行不安全，请尽快维修。",
            "address": f"幸福路{i % 500}号", "district": "A1区"}


async def http_run(base: str, admin_password: str, tickets: int, clients: int) -> dict[str, object]:
    connector = aiohttp.TCPConnector(limit=clients + 5)
    async with aiohttp.ClientSession(base, connector=connector) as http:
        dept, agent, handler = await agent_and_handler(http, admin_password)
        latencies: dict[str, list[float]] = {a: [] for a in ACTIONS}
        counter = iter(range(tickets))

        async def call(action: str, path: str, body: dict[str, object], headers: dict[str, str]) -> dict:
            t0 = time.perf_counter()
            async with http.post(path, json=body, headers=headers) as r:
                data = await r.json()
                if r.status not in (200, 201):
                    raise RuntimeError(f"{action}: {r.status} {data}")
            latencies[action].append(time.perf_counter() - t0)
            return data

        async def client() -> None:
            for i in counter:
                t = await call("create", "/api/v1/tickets", ticket_body(i), agent)
                n = t["number"]
                await call("accept", f"/api/v1/tickets/{n}/actions/accept", {}, agent)
                await call("dispatch", f"/api/v1/tickets/{n}/actions/dispatch", {"lead_department_id": dept}, agent)
                await call("sign", f"/api/v1/tickets/{n}/actions/sign", {}, handler)
                await call("reply", f"/api/v1/tickets/{n}/actions/reply", {"answer": "已安排维修，路灯已修复。"}, handler)

        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return summary("http", latencies, time.perf_counter() - t0)


async def store_run(db_url: str, redis_url: str, tickets: int, clients: int, data_dir: Path) -> dict[str, object]:
    from sqlalchemy.ext.asyncio import async_sessionmaker

    import server
    from config.settings import load_settings
    from tickets.accounts.service import UserStore
    from tickets.service import TicketStore

    settings = load_settings(env={}).with_overrides(
        server={"data_dir": str(data_dir), "password_time_cost": 1, "password_memory_kib": 1024},
        database={"url": db_url}, redis={"url": redis_url})
    await server.migrate(settings)
    engine = server.make_engine(settings)
    read_engine = server.make_engine(settings, for_reads=True) if db_url.startswith("sqlite") else engine
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    reads = async_sessionmaker(read_engine, expire_on_commit=False)
    clock = lambda: datetime.now(timezone.utc)  # noqa: E731
    users = UserStore(sessions, clock, settings, reads)
    await users.sync_departments(settings.config_file(settings.tickets.departments_file))
    agent = await users.create_user("store-agent", "bench-password", "agent")
    handler = await users.create_user("store-dept", "bench-password", "department", department_code="cgj")
    store = TicketStore(sessions, settings, clock, reads)
    dept = handler.department_id
    latencies: dict[str, list[float]] = {a: [] for a in ACTIONS}
    counter = iter(range(tickets))

    async def timed(action: str, coro):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        result = await coro
        latencies[action].append(time.perf_counter() - t0)
        return result

    async def client() -> None:
        for i in counter:
            t = await timed("create", store.create(ticket_body(i), agent))
            n = t["number"]
            await timed("accept", store.act(n, "accept", {}, agent))
            await timed("dispatch", store.act(n, "dispatch", {"lead_department_id": dept}, agent))
            await timed("sign", store.act(n, "sign", {}, handler))
            await timed("reply", store.act(n, "reply", {"answer": "已安排维修，路灯已修复。"}, handler))

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    result = summary("store", latencies, time.perf_counter() - t0)
    await engine.dispose()
    if read_engine is not engine:
        await read_engine.dispose()
    return result


def start_server(db_url: str, redis_url: str, data_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update({"HOTLINE_DATABASE_URL": db_url, "HOTLINE_REDIS_URL": redis_url,
                "HOTLINE_SERVER_DATA_DIR": str(data_dir), "HOTLINE_SERVER_ADMIN_PASSWORD": "bench-admin-pw",
                "HOTLINE_LOG_LEVEL": "WARNING"})
    proc = subprocess.Popen([sys.executable, "server.py", "serve", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    services._wait_port(port, 60)
    return proc


def run_backend(kind: str, base_url: str | None, redis_url: str, args: argparse.Namespace) -> list[dict[str, object]]:
    results = []
    with tempfile.TemporaryDirectory(prefix=f"bench-{kind}-") as tmp:
        tmpdir = Path(tmp)
        for path in ("store", "http"):
            if kind == "sqlite":
                db_url = f"sqlite+aiosqlite:///{tmpdir / (path + '.db')}"
            else:
                assert base_url
                db_url = services.create_database(base_url, f"bench_{path}")
            if path == "http":
                port = services.free_port()
                proc = start_server(db_url, redis_url, tmpdir / "var-http", port)
                try:
                    res = asyncio.run(http_run(f"http://127.0.0.1:{port}", "bench-admin-pw", args.tickets,
                                               args.clients))
                finally:
                    proc.terminate()
                    proc.wait(20)
            else:
                res = asyncio.run(store_run(db_url, redis_url, args.tickets, args.clients, tmpdir / "var-store"))
            res["db"] = kind
            print(json.dumps(res, ensure_ascii=False), flush=True)
            results.append(res)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--db", default="sqlite,postgres")
    args = parser.parse_args()
    results: list[dict[str, object]] = []
    with services.redis_server() as redis_url:
        for kind in args.db.split(","):
            if kind == "postgres":
                with services.postgres_server() as base:
                    results += run_backend(kind, base, redis_url, args)
            else:
                results += run_backend(kind, None, redis_url, args)
    print(f"\n{args.tickets} tickets x 5 actions, {args.clients} concurrent clients, {os.cpu_count()} cores")
    print(f"{'db':10} {'path':6} {'actions/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for r in results:
        print(f"{r['db']:10} {r['path']:6} {r['actions_per_s']:>10} {r['p50_ms']:>8} {r['p99_ms']:>8}")
    for kind in args.db.split(","):
        by = {r["path"]: r for r in results if r["db"] == kind}
        if "http" in by and "store" in by:
            print(f"{kind}: HTTP throughput = {by['http']['actions_per_s'] / by['store']['actions_per_s']:.2f} x store")
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "tickets_throughput.json").write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
