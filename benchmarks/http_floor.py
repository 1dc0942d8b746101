"""The floor of the ticket write path over HTTP: the same 50 clients against servers that do nothing (issue #15).

Issue #15 asks create-accept-dispatch-sign-reply over HTTP at >= 0.25x a bare SQLite FULL commit loop, with
p99 <= 50 ms at 50 clients. This measures what is left for our code on this machine: the same load generator as
``tickets_throughput.py`` (``write_load``: 50 clients, 5 readers, aiohttp on both sides, clients and servers on
the same cores) against aiohttp servers whose handlers only parse the JSON body and answer a small JSON object
(no auth, no database, no workflow, no Redis). Whatever these servers reach is the most any ticket server built
on aiohttp can reach here; the bare SQLite FULL loop is measured interleaved in the same run, as in the real
benchmark, and the ratio floor / bare is the ceiling of the ratio the issue asks for.

    .venv/bin/python benchmarks/http_floor.py [--seconds 10] [--reps 3] [--processes 1,2]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.tickets_throughput import bare_sqlite, cpu_seconds, loadavg, write_load
from tests import services


def serve(port: int) -> None:
    """A server with the real routes and nothing behind them."""
    from aiohttp import web

    numbers = iter(range(10**9))

    async def create(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"number": f"F{next(numbers):09d}", "status": "待受理", "title": body.get("title")},
                                 status=201, dumps=lambda o: json.dumps(o, ensure_ascii=False))

    async def action(request: web.Request) -> web.Response:
        await request.json()
        return web.json_response({"number": request.match_info["number"], "status": "已处理"},
                                 dumps=lambda o: json.dumps(o, ensure_ascii=False))

    async def read(request: web.Request) -> web.Response:
        return web.json_response({"items": []})

    app = web.Application()
    app.router.add_post("/api/v1/tickets", create)
    app.router.add_post("/api/v1/tickets/{number}/actions/{action}", action)
    app.router.add_get("/api/v1/tickets", read)
    app.router.add_get("/api/v1/tickets/{number}", read)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def phase(n: int, seconds: float, clients: int, readers: int) -> dict[str, object]:
    procs, bases = [], []
    for _ in range(n):
        port = services.free_port()
        procs.append(subprocess.Popen([sys.executable, __file__, "--serve", str(port)], cwd=ROOT))
        services._wait_port(port, 60)
        bases.append(f"http://127.0.0.1:{port}")
    try:
        cpu0 = sum(cpu_seconds(p.pid) for p in procs)
        accounts = (1, {"Authorization": "Bearer floor"}, {"Authorization": "Bearer floor"})
        res = asyncio.run(write_load(bases, seconds, clients, readers, accounts))
        res["server_cpu_ms_per_action"] = round(
            (sum(cpu_seconds(p.pid) for p in procs) - cpu0) * 1000 / max(1, int(res["actions"])), 3)  # type: ignore[call-overload]
        return res
    finally:
        for p in procs:
            p.terminate()
            p.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--bare-seconds", type=float, default=5)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--readers", type=int, default=5)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve)
        return
    counts = [int(x) for x in args.processes.split(",")]
    rows: dict[str, list[dict[str, object]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as t:
        for rep in range(args.reps):
            for name in ["bare", *(f"floor{n}" for n in counts)]:
                load0 = loadavg()
                if name == "bare":
                    res = bare_sqlite(Path(t) / f"bare-{rep}.db", args.bare_seconds)
                else:
                    res = phase(int(name[5:]), args.seconds, args.clients, args.readers)
                res.update(rep=rep + 1, phase=name, load=[load0, loadavg()])
                print(json.dumps(res, ensure_ascii=False), flush=True)
                rows.setdefault(name, []).append(res)
    bare = statistics.median(float(r["per_s"]) for r in rows["bare"])  # type: ignore[arg-type]
    print(f"\n{args.clients} clients, {args.seconds:g} s per phase, medians of {args.reps}, {os.cpu_count()} cores, "
          f"load now {loadavg()}\nbare SQLite FULL: {bare:.0f} commits/s; 0.25x = {bare / 4:.0f}/s")
    for n in counts:
        rs = rows[f"floor{n}"]
        per_s = statistics.median(float(r["per_s"]) for r in rs)  # type: ignore[arg-type]
        ratio = statistics.median(float(r["per_s"]) / float(b["per_s"])  # type: ignore[arg-type]
                                  for r, b in zip(rs, rows["bare"]))
        print(f"  do-nothing aiohttp, {n} process(es): {per_s:.0f} requests/s = {ratio:.3f}x bare; "
              f"p50 {statistics.median(float(r['p50_ms']) for r in rs):.1f} ms, "  # type: ignore[arg-type]
              f"p99 {statistics.median(float(r['p99_ms']) for r in rs):.1f} ms; server CPU "  # type: ignore[arg-type]
              f"{statistics.median(float(r['server_cpu_ms_per_action']) for r in rs):.3f} ms/request; "  # type: ignore[arg-type]
              f"errors {[r['errors'] for r in rs]}")
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "http_floor.json").write_text(json.dumps({"args": vars(args), "runs": rows}, ensure_ascii=False,
                                                    indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
