"""CPU per ticket action: the server process's own CPU seconds (from /proc) per action over HTTP.

A real ``server.py serve`` on SQLite (``synchronous=FULL``) takes tickets through create, accept, dispatch, sign
and reply from ``--clients`` clients (the load of benchmarks/tickets_throughput.py, without readers); the
server's user+system CPU over the phase divided by the actions answered is the figure. It depends much less on
what else the machine runs than actions/s does (a starved process gets fewer actions and less CPU alike), so it
is the measure for changes to the request path. ``--root`` (repeatable) measures other checkouts' servers (the commit
before, a ``git worktree``), interleaved with ours for ``--reps`` repetitions. ``--profile FILE`` runs our server
under py-spy (``--format speedscope`` or raw) for the profile of the same load.

    .venv/bin/python benchmarks/ticket_cpu.py [--seconds 10] [--clients 50] [--reps 3] [--root DIR ...]
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.tickets_throughput import accounts, cpu_seconds, start_servers, stop_servers, write_load
from tests import services


def phase(root: Path, redis_url: str, tmp: Path, args: argparse.Namespace, label: str) -> dict[str, object]:
    data = tmp / f"var-{label}-{time.monotonic_ns()}"
    procs, bases = start_servers(f"sqlite+aiosqlite:///{data / 'hotline.db'}", redis_url, data, 1, root=root)
    spy = None
    try:
        pid = procs[0].pid
        if args.profile and label == "ours":
            spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid),
                                    "--rate", "200", "--nonblocking", "--format", args.profile_format,
                                    "--output", args.profile], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        logged_in = asyncio.run(accounts(bases[0]))  # argon2 logins before the measured window, not in it
        cpu0, load0 = cpu_seconds(pid), os.getloadavg()[0]
        res = asyncio.run(write_load(bases, args.seconds, args.clients, 0, logged_in))
        cpu = cpu_seconds(pid) - cpu0
    finally:
        if spy is not None:
            spy.send_signal(2)  # SIGINT: py-spy writes its file and exits
            spy.wait(60)
        stop_servers(procs)
    actions = int(res["actions"])  # type: ignore[call-overload]
    return {"label": label, "actions": actions, "per_s": res["per_s"], "p50_ms": res["p50_ms"],
            "p99_ms": res["p99_ms"], "cpu_s": round(cpu, 2),
            "cpu_ms_per_action": round(1000 * cpu / actions, 3) if actions else None,
            "errors": res["errors"], "load": [round(load0, 2), round(os.getloadavg()[0], 2)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--root", action="append", default=[],
                        help="another checkout's server, measured interleaved (repeat for several)")
    parser.add_argument("--profile", default=None, help="py-spy output file for our server's profile")
    parser.add_argument("--profile-format", default="raw", help="py-spy format: raw (collapsed stacks), speedscope")
    args = parser.parse_args()
    rows: dict[str, list[dict[str, object]]] = {}
    with services.redis_server() as redis_url, tempfile.TemporaryDirectory(prefix="ticket-cpu-") as t:
        for rep in range(args.reps):
            for label, root in [*((Path(r).name, Path(r)) for r in args.root), ("ours", ROOT)]:
                res = phase(root, redis_url, Path(t), args, label)
                print(json.dumps({"rep": rep + 1, **res}, ensure_ascii=False), flush=True)
                rows.setdefault(label, []).append(res)
    for label, rs in rows.items():
        cpu = [float(r["cpu_ms_per_action"]) for r in rs if r["cpu_ms_per_action"] is not None]  # type: ignore[arg-type]
        print(f"{label}: CPU per action median {statistics.median(cpu):.3f} ms ({', '.join(f'{c:.3f}' for c in cpu)}); "
              f"actions/s median {statistics.median(float(r['per_s']) for r in rs):.1f}")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
