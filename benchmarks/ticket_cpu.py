"""CPU per ticket action: the server process's own CPU seconds (from /proc) per action over HTTP.

A real ``server.py serve`` on SQLite (``synchronous=FULL``), or with ``--db postgres`` on a throw-away PostgreSQL
cluster (``tests/services.py``; then PostgreSQL's own CPU per action is reported too: its postmaster and every
backend, exited ones included), takes tickets through create, accept, dispatch, sign
and reply from ``--clients`` clients (the load of benchmarks/tickets_throughput.py; its ``--readers``, reading
the list and a detail, only when asked, their CPU then counting in the server's); the
server's user+system CPU over the phase divided by the actions answered is the figure. It depends much less on
what else the machine runs than actions/s does (a starved process gets fewer actions and less CPU alike), so it
is the measure for changes to the request path. ``--root`` (repeatable) measures other checkouts' servers (the commit
before, a ``git worktree``), interleaved with ours for ``--reps`` repetitions. ``--profile FILE`` runs our server
under py-spy (``--format speedscope`` or raw) for the profile of the same load. Redis commands per action
(INFO commandstats, commands inside scripts and transactions included) are reported too, and so is the CPU
per action of the load's client and of Redis: on a small machine they share the cores with the server. Redis is
emptied before each phase, as a new deployment's would be.

    .venv/bin/python benchmarks/ticket_cpu.py [--seconds 10] [--clients 50] [--readers 0] [--reps 3]
        [--root DIR ...] [--db sqlite|postgres]
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.tickets_throughput import (
    accounts,
    counted_load,
    empty_redis,
    start_servers,
    stop_servers,
)
from tests import services


def redis_calls(redis_url: str) -> int:
    """Commands Redis has run (INFO commandstats: a MULTI..EXEC's commands and a script's each count), this
    INFO call included."""
    with redis.Redis.from_url(redis_url) as client:
        return sum(int(v["calls"]) for v in client.info("commandstats").values())


def redis_cpu(redis_url: str) -> float:
    """CPU seconds the Redis server has used (INFO cpu: user + system)."""
    with redis.Redis.from_url(redis_url) as client:
        info = client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def phase(root: Path, redis_url: str, tmp: Path, args: argparse.Namespace, label: str,
          pg_base: str | None = None) -> dict[str, object]:
    data = tmp / f"var-{label}-{time.monotonic_ns()}"
    if pg_base is None:
        db_url = f"sqlite+aiosqlite:///{data / 'hotline.db'}"
    else:
        db_url = services.create_database(pg_base, f"cpu_{label}_{time.monotonic_ns()}".replace("-", "_"))
    empty_redis(redis_url)
    procs, bases = start_servers(db_url, redis_url, data, 1, root=root)
    pg_port = int(pg_base.rsplit(":", 1)[1]) if pg_base else None
    spy = None
    try:
        pid = procs[0].pid
        if args.profile and label == "ours":
            spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid),
                                    "--rate", "200", "--nonblocking", "--format", args.profile_format,
                                    "--output", args.profile], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        logged_in = asyncio.run(accounts(bases[0]))  # argon2 logins before the measured window, not in it
        load0 = os.getloadavg()[0]
        calls0, rcpu0 = redis_calls(redis_url), redis_cpu(redis_url)
        res = counted_load(procs, bases, pg_port, args, logged_in)
        calls = redis_calls(redis_url) - calls0 - 1
        rcpu = redis_cpu(redis_url) - rcpu0
    finally:
        if spy is not None:
            spy.send_signal(2)  # SIGINT: py-spy writes its file and exits
            spy.wait(60)
        stop_servers(procs)
    actions = int(res["actions"])  # type: ignore[call-overload]
    return {"label": label, "actions": actions, "per_s": res["per_s"], "p50_ms": res["p50_ms"],
            "p99_ms": res["p99_ms"], "cpu_s": res["servers_cpu_s"],
            "cpu_ms_per_action": res["servers_cpu_ms_per_action"],
            "postgres_cpu_ms_per_action": res.get("postgres_cpu_ms_per_action"),
            # Redis commands per action, those run inside a script or a MULTI..EXEC included (so more than the
            # round trips): reads shared per turn of the event loop make it depend on the load too.
            "redis_calls_per_action": round(calls / actions, 3) if actions else None,
            # The rest of what an action costs the machine's cores: the load's client and Redis.
            "client_cpu_ms_per_action": res["client_cpu_ms_per_action"],
            "redis_cpu_ms_per_action": round(1000 * rcpu / actions, 3) if actions else None,
            "errors": res["errors"], "load": [round(load0, 2), round(os.getloadavg()[0], 2)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--readers", type=int, default=0,
                        help="clients reading the list and a detail meanwhile, as tickets_throughput.py's (their CPU "
                             "counts in the server's)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--root", action="append", default=[],
                        help="another checkout's server, measured interleaved (repeat for several)")
    parser.add_argument("--profile", default=None, help="py-spy output file for our server's profile")
    parser.add_argument("--profile-format", default="raw", help="py-spy format: raw (collapsed stacks), speedscope")
    args = parser.parse_args()
    rows: dict[str, list[dict[str, object]]] = {}
    with contextlib.ExitStack() as stack:
        redis_url = stack.enter_context(services.redis_server())
        t = stack.enter_context(tempfile.TemporaryDirectory(prefix="ticket-cpu-"))
        pg_base = stack.enter_context(services.postgres_server()) if args.db == "postgres" else None
        for rep in range(args.reps):
            for label, root in [*((Path(r).name, Path(r)) for r in args.root), ("ours", ROOT)]:
                res = phase(root, redis_url, Path(t), args, label, pg_base)
                print(json.dumps({"rep": rep + 1, **res}, ensure_ascii=False), flush=True)
                rows.setdefault(label, []).append(res)
    for label, rs in rows.items():
        cpu = [float(r["cpu_ms_per_action"]) for r in rs if r["cpu_ms_per_action"] is not None]  # type: ignore[arg-type]
        pg = [float(r["postgres_cpu_ms_per_action"]) for r in rs  # type: ignore[arg-type]
              if r.get("postgres_cpu_ms_per_action") is not None]
        also = f"; PostgreSQL's median {statistics.median(pg):.3f} ms ({', '.join(f'{c:.3f}' for c in pg)})" if pg else ""
        print(f"{label}: CPU per action median {statistics.median(cpu):.3f} ms ({', '.join(f'{c:.3f}' for c in cpu)})"
              f"{also}; actions/s median {statistics.median(float(r['per_s']) for r in rs):.1f}"  # type: ignore[arg-type]
              f"; Redis commands per action median "
              f"{statistics.median(float(r['redis_calls_per_action'] or 0) for r in rs):.3f}"  # type: ignore[arg-type]
              f"; CPU per action of the load's client {statistics.median(float(r['client_cpu_ms_per_action'] or 0) for r in rs):.3f} ms"  # type: ignore[arg-type]
              f", of Redis {statistics.median(float(r['redis_cpu_ms_per_action'] or 0) for r in rs):.3f} ms")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
