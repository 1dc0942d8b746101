"""Login flood: /health and ticket-action latency while attackers hammer POST /api/v1/auth/login.

One command, loopback only, bounded in time and in attempts. Per run and per server mode it starts a real
``server.py serve`` process (SQLite in a temp dir, its own private redis-server), creates an agent and a
department account, logs the agent in, then measures in the same run:

- baseline: /health probed every ``--health-interval`` s and ``--agents`` concurrent agent loops taking tickets
  through create + accept + dispatch, for ``--seconds``, with no flood;
- flood: the same for ``--seconds`` while ``--attackers`` clients (a separate process, so the measuring client's
  event loop is not starved by its own attackers) post wrong passwords as fast as the server answers, for
  many usernames plus one targeted account (``admin``), all from 127.0.0.1, like one attacking host.

Modes: ``on`` = the shipped throttle (server.login_free_failures 5, login_lockout_failures 15, the address gets
4x); ``off`` = both raised to 10^9 through HOTLINE_SERVER_* so every attempt reaches argon2 (what the throttle
buys). Counts 429 / 401 answers; every 401 is one argon2 verification (the throttle answers 429 before hashing).
Also the server process's CPU seconds per phase (/proc) and one legitimate login (right password, same address)
during each phase. Prints p50/p95/p99 and the ratios flood p99 / baseline p99; writes benchmarks/out/login_flood.json.

    .venv/bin/python benchmarks/login_flood.py [--runs 1] [--seconds 20] [--attackers 50] [--modes on,off]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.http_accounts import PASSWORD, agent_and_handler
from tests import services

OFF = 1_000_000_000  # "throttle off": limits no flood reaches
TARGET = "admin"
ADMIN_PW = "bench-admin-pw"


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile in ms."""
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1) if ordered else float("nan")


def dist(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50_ms": pct(values, 0.5), "p95_ms": pct(values, 0.95), "p99_ms": pct(values, 0.99),
            "max_ms": pct(values, 1.0)}


def ticket_body(i: int) -> dict[str, object]:
    return {"caller_name": "王女士", "caller_phone": f"139{i % 100_000_000:08d}", "request_type": "complaint",
            "title": f"小区路灯不亮第{i}号", "content": "幸福小区3栋门口路灯坏了一个多月，晚上出行不安全，请尽快维修。",
            "address": f"幸福路{i % 500}号", "district": "A1区"}


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (and its reaped children: none here) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ the flood (child process)
async def _flood(base: str, attackers: int, seconds: float, max_attempts: int, seed: int) -> dict[str, object]:
    counts: dict[str, int] = {}
    latencies: list[float] = []
    rng = random.Random(seed)
    stop = time.monotonic() + seconds
    per_attacker = max(1, max_attempts // attackers)
    connector = aiohttp.TCPConnector(limit=attackers)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(base, connector=connector, timeout=timeout) as http:
        async def attacker(a: int) -> None:
            for k in range(per_attacker):
                if time.monotonic() >= stop:
                    return
                # one attempt in four on the targeted account, the rest spread over 5,000 usernames
                user = TARGET if k % 4 == 0 else f"user{rng.randrange(5000)}"
                t0 = time.perf_counter()
                try:
                    async with http.post("/api/v1/auth/login", json={"username": user, "password": f"guess-{a}-{k}",
                                                                      "kind": "api"}) as r:
                        body = await r.json(content_type=None)
                        key = f"{r.status} {body.get('error', '') if isinstance(body, dict) else ''}".strip()
                except Exception as exc:  # noqa: BLE001 - an attacker counts what it gets
                    key = f"error {type(exc).__name__}"
                latencies.append(time.perf_counter() - t0)
                counts[key] = counts.get(key, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(attacker(a) for a in range(attackers)))
        wall = time.perf_counter() - t0
    total = sum(counts.values())
    return {"attempts": total, "seconds": round(wall, 2), "attempts_per_s": round(total / wall, 1),
            "answers": dict(sorted(counts.items())), "latency": dist(latencies)}


def _flood_main(base: str, attackers: int, seconds: float, max_attempts: int, seed: int, out: mp.Queue[dict]) -> None:
    out.put(asyncio.run(_flood(base, attackers, seconds, max_attempts, seed)))


# ------------------------------------------------------------------ the measured client
async def measure(http: aiohttp.ClientSession, agent: dict[str, str], dept: int, seconds: float, agents: int,
                  interval: float, counter: list[int], legit_login: tuple[str, str]) -> dict[str, object]:
    health: list[float] = []
    actions: list[float] = []
    late_health: list[float] = []  # samples started in the second half of the phase (the flood's steady state)
    late_actions: list[float] = []
    per_action: dict[str, list[float]] = {"create": [], "accept": [], "dispatch": []}
    cycles: list[float] = []
    errors: dict[str, int] = {}
    stop = time.monotonic() + seconds
    half = stop - seconds / 2

    async def health_loop() -> None:
        while time.monotonic() < stop:
            late = time.monotonic() >= half
            t0 = time.perf_counter()
            async with http.get("/health") as r:
                await r.read()
                if r.status != 200:
                    errors[f"health {r.status}"] = errors.get(f"health {r.status}", 0) + 1
            health.append(time.perf_counter() - t0)
            if late:
                late_health.append(health[-1])
            await asyncio.sleep(interval)

    async def call(action: str, path: str, body: dict[str, object]) -> dict:
        late = time.monotonic() >= half
        t0 = time.perf_counter()
        async with http.post(path, json=body, headers=agent) as r:
            data = await r.json()
            if r.status not in (200, 201):
                raise RuntimeError(f"{action}: {r.status} {data}")
        dt = time.perf_counter() - t0
        actions.append(dt)
        if late:
            late_actions.append(dt)
        per_action[action].append(dt)
        return data

    async def agent_loop() -> None:
        while time.monotonic() < stop:
            counter[0] += 1
            t0 = time.perf_counter()
            n = (await call("create", "/api/v1/tickets", ticket_body(counter[0])))["number"]
            await call("accept", f"/api/v1/tickets/{n}/actions/accept", {})
            await call("dispatch", f"/api/v1/tickets/{n}/actions/dispatch", {"lead_department_id": dept})
            cycles.append(time.perf_counter() - t0)

    async def one_login() -> dict[str, object]:
        await asyncio.sleep(seconds / 2)  # mid-phase: the flood has run for a while
        t0 = time.perf_counter()
        async with http.post("/api/v1/auth/login", json={"username": legit_login[0], "password": legit_login[1],
                                                          "kind": "api"}) as r:
            body = await r.json()
            return {"status": r.status, "error": body.get("error"), "retry_after": r.headers.get("Retry-After"),
                    "ms": round((time.perf_counter() - t0) * 1000, 1)}

    t0 = time.perf_counter()
    *_, legit = await asyncio.gather(health_loop(), *(agent_loop() for _ in range(agents)), one_login())
    wall = time.perf_counter() - t0
    return {"seconds": round(wall, 2), "health": dist(health), "actions": dist(actions),
            "per_action_p99_ms": {k: pct(v, 0.99) for k, v in per_action.items()}, "cycle": dist(cycles),
            "cycles_per_s": round(len(cycles) / wall, 2), "errors": errors, "legit_login": legit,
            "second_half": {"health": dist(late_health), "actions": dist(late_actions)}}


async def scenario(base: str, pid: int, args: argparse.Namespace, mode: str, seed: int) -> dict[str, object]:
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(base, connector=aiohttp.TCPConnector(limit=args.agents + 5),
                                     timeout=timeout) as http:
        dept, agent, _ = await agent_and_handler(http, ADMIN_PW)
        counter = [0]
        legit = ("bench-dept", PASSWORD)
        await measure(http, agent, dept, min(3.0, args.seconds), args.agents, args.health_interval, counter, legit)

        cpu0 = cpu_seconds(pid)
        baseline = await measure(http, agent, dept, args.seconds, args.agents, args.health_interval, counter, legit)
        baseline["server_cpu_s"] = round(cpu_seconds(pid) - cpu0, 2)

        out: mp.Queue[dict] = mp.Queue()
        flood_proc = mp.get_context("fork").Process(
            target=_flood_main, args=(base, args.attackers, args.seconds, args.max_attempts, seed, out), daemon=True)
        cpu0 = cpu_seconds(pid)
        flood_proc.start()
        flood = await measure(http, agent, dept, args.seconds, args.agents, args.health_interval, counter, legit)
        flood_result = await asyncio.get_running_loop().run_in_executor(None, out.get, True, args.seconds + 300)
        flood_proc.join(30)
        flood["server_cpu_s"] = round(cpu_seconds(pid) - cpu0, 2)
        flood["flood"] = flood_result
        answers = flood_result["answers"]
        flood["argon2_verifications"] = sum(v for k, v in answers.items() if k.startswith("401"))
        flood["refused_429"] = sum(v for k, v in answers.items() if k.startswith("429"))
    ratios = {"health_p99": round(flood["health"]["p99_ms"] / baseline["health"]["p99_ms"], 2),
              "actions_p99": round(flood["actions"]["p99_ms"] / baseline["actions"]["p99_ms"], 2),
              "cycle_p99": round(flood["cycle"]["p99_ms"] / baseline["cycle"]["p99_ms"], 2),
              "health_p50": round(flood["health"]["p50_ms"] / baseline["health"]["p50_ms"], 2),
              "actions_p50": round(flood["actions"]["p50_ms"] / baseline["actions"]["p50_ms"], 2),
              # the flood's second half against the whole baseline: after the burst of the first attempts
              "health_p99_second_half": round(flood["second_half"]["health"]["p99_ms"] / baseline["health"]["p99_ms"], 2),
              "actions_p99_second_half": round(flood["second_half"]["actions"]["p99_ms"]
                                               / baseline["actions"]["p99_ms"], 2)}
    return {"mode": mode, "baseline": baseline, "flood": flood, "ratios": ratios}


def start_server(db_url: str, redis_url: str, data_dir: Path, port: int, mode: str, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update({"HOTLINE_DATABASE_URL": db_url, "HOTLINE_REDIS_URL": redis_url,
                "HOTLINE_SERVER_DATA_DIR": str(data_dir), "HOTLINE_SERVER_ADMIN_PASSWORD": ADMIN_PW,
                "HOTLINE_LOG_LEVEL": "WARNING"})
    if mode == "off":
        env.update({"HOTLINE_SERVER_LOGIN_FREE_FAILURES": str(OFF), "HOTLINE_SERVER_LOGIN_LOCKOUT_FAILURES": str(OFF)})
    with log.open("w") as fh:  # a file, not a pipe: lock-out warnings must never block the server on a full pipe
        proc = subprocess.Popen([sys.executable, "server.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=fh, text=True)
    try:
        services._wait_port(port, 90)
    except RuntimeError:
        proc.kill()
        raise RuntimeError(f"server did not start:\n{log.read_text()[-3000:]}") from None
    return proc


def run_mode(mode: str, args: argparse.Namespace, seed: int) -> dict[str, object]:
    with services.redis_server() as redis_url, tempfile.TemporaryDirectory(prefix=f"bench-flood-{mode}-") as tmp:
        tmpdir = Path(tmp)
        port = services.free_port()
        proc = start_server(f"sqlite+aiosqlite:///{tmpdir / 'hotline.db'}", redis_url, tmpdir / "var", port, mode,
                            tmpdir / "server.log")
        try:
            return asyncio.run(scenario(f"http://127.0.0.1:{port}", proc.pid, args, mode, seed))
        finally:
            services.stop(proc)


def med(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="repeat everything; medians over runs are printed")
    parser.add_argument("--seconds", type=float, default=20, help="length of each measured phase (baseline, flood)")
    parser.add_argument("--attackers", type=int, default=50, help="concurrent attacking clients")
    parser.add_argument("--max-attempts", type=int, default=200_000, help="cap on login attempts per flood")
    parser.add_argument("--agents", type=int, default=2, help="concurrent agents taking tickets")
    parser.add_argument("--health-interval", type=float, default=0.05, help="pause between /health probes, s")
    parser.add_argument("--modes", default="on,off", help="on = shipped throttle, off = throttle limits at 10^9")
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    assert set(modes) <= {"on", "off"}, modes
    results: list[dict[str, object]] = []
    for run in range(args.runs):
        for mode in modes:
            load0 = os.getloadavg()[0]
            res = run_mode(mode, args, seed=run)
            res["run"], res["loadavg_1m"] = run + 1, [round(load0, 2), round(os.getloadavg()[0], 2)]
            print(json.dumps(res, ensure_ascii=False), flush=True)
            results.append(res)

    print(f"\n{args.runs} run(s), {args.seconds:g} s per phase, {args.attackers} attackers, {args.agents} agents, "
          f"{os.cpu_count()} cores")
    for r in results:
        b, f = r["baseline"], r["flood"]
        fl = f["flood"]
        print(f"run {r['run']} throttle {r['mode']:3} load {r['loadavg_1m']}: "
              f"/health p50/p95/p99 {b['health']['p50_ms']}/{b['health']['p95_ms']}/{b['health']['p99_ms']} -> "
              f"{f['health']['p50_ms']}/{f['health']['p95_ms']}/{f['health']['p99_ms']} ms; "
              f"actions {b['actions']['p50_ms']}/{b['actions']['p95_ms']}/{b['actions']['p99_ms']} -> "
              f"{f['actions']['p50_ms']}/{f['actions']['p95_ms']}/{f['actions']['p99_ms']} ms; "
              f"cycles/s {b['cycles_per_s']} -> {f['cycles_per_s']}; "
              f"attempts {fl['attempts']} ({fl['attempts_per_s']}/s): 429 {f['refused_429']}, "
              f"401 = argon2 {f['argon2_verifications']}; server CPU s {b['server_cpu_s']} -> {f['server_cpu_s']}; "
              f"legit login {f['legit_login']['status']} {f['legit_login']['error'] or ''} {f['legit_login']['ms']} ms")
    print("\nmedians over runs (flood p99 / baseline p99):")
    for mode in modes:
        rs = [r for r in results if r["mode"] == mode]
        print(f"throttle {mode}: /health {med([r['ratios']['health_p99'] for r in rs])} x, "
              f"ticket actions {med([r['ratios']['actions_p99'] for r in rs])} x, "
              f"cycle {med([r['ratios']['cycle_p99'] for r in rs])} x; second half of the flood: /health "
              f"{med([r['ratios']['health_p99_second_half'] for r in rs])} x, actions "
              f"{med([r['ratios']['actions_p99_second_half'] for r in rs])} x; "
              f"argon2 verifications {med([r['flood']['argon2_verifications'] for r in rs])} of "
              f"{med([r['flood']['flood']['attempts'] for r in rs])} attempts")
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "login_flood.json").write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
