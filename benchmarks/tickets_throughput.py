"""Ticket throughput: create, accept, dispatch, sign, reply over HTTP against the bare database, same run.

For each database (SQLite, PostgreSQL) and each of ``--reps`` repetitions, interleaved:
- bare: what the database itself commits. SQLite: one thread, WAL, ``synchronous=FULL``, a loop of one-row
  INSERT + COMMIT (each commit an fsync, as a durable ticket needs). PostgreSQL: ``--clients`` asyncpg
  connections each running one-row INSERT transactions.
- http: real ``server.py serve`` processes (``--processes``, PostgreSQL also 2 and 4 on one database) and
  ``--clients`` concurrent clients taking tickets through create, accept, dispatch, sign, reply for
  ``--seconds``; beside them ``--readers`` clients read the ticket list and a ticket's detail (the reads'
  p99 during writes).
Then, on SQLite, a login-flood phase: the same write load for ``--seconds`` while 50 attackers (a child
process, benchmarks/login_flood.py) post wrong passwords, against the same load without the flood, with the
server's and the attackers' CPU seconds (they share the cores); ``--before-root`` runs the other checkout's server
through the same two phases. ``--db ""`` runs the flood phase alone.
Prints medians over the repetitions and the ratio http / bare; writes JSON to benchmarks/out/.

    .venv/bin/python benchmarks/tickets_throughput.py [--seconds 20] [--clients 50] [--reps 3] [--db sqlite,postgres]
        [--sqlite-processes 1,2]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import redis
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.http_accounts import agent_and_handler
from tests import services

ACTIONS = ("create", "accept", "dispatch", "sign", "reply")
ADMIN_PW = "bench-admin-pw"


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile in ms."""
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1) if ordered else float("nan")


def ticket_body(i: int) -> dict[str, object]:
    return {"caller_name": "王女士", "caller_phone": f"139{i % 100_000_000:08d}", "request_type": "complaint",
            "title": f"小区路灯不亮第{i}号", "content": "幸福小区3栋门口路灯坏了一个多月，晚上出行不安全，请尽快维修。",
            "address": f"幸福路{i % 500}号", "district": "A1区"}


# ------------------------------------------------------------------ bare anchors
def bare_sqlite(path: Path, seconds: float) -> dict[str, object]:
    """One-row INSERT + COMMIT in a loop, WAL, synchronous=FULL: the durable commit rate of this disk."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, number TEXT, body TEXT, at REAL)")
    n, lat = 0, []
    t0 = time.perf_counter()
    stop = t0 + seconds
    while (now := time.perf_counter()) < stop:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t (number, body, at) VALUES (?, ?, ?)", (f"n{n}", "幸福小区路灯不亮", now))
        db.execute("COMMIT")
        lat.append(time.perf_counter() - now)
        n += 1
    wall = time.perf_counter() - t0
    db.close()
    return {"path": "bare", "commits": n, "per_s": round(n / wall, 1), "p50_ms": pct(lat, 0.5),
            "p99_ms": pct(lat, 0.99)}


async def bare_asyncpg(url: str, seconds: float, clients: int) -> dict[str, object]:
    """``clients`` connections, each a loop of one-row INSERT transactions."""
    import asyncpg

    dsn = url.replace("postgresql+asyncpg", "postgresql")
    conns = [await asyncpg.connect(dsn) for _ in range(clients)]
    await conns[0].execute("CREATE TABLE IF NOT EXISTS bare_t (id serial PRIMARY KEY, number text, body text, "
                           "at double precision)")
    lat: list[float] = []
    stop = time.perf_counter() + seconds

    async def loop(conn: asyncpg.Connection, c: int) -> None:
        k = 0
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            async with conn.transaction():
                await conn.execute("INSERT INTO bare_t (number, body, at) VALUES ($1, $2, $3)", f"n{c}-{k}",
                                   "幸福小区路灯不亮", t0)
            lat.append(time.perf_counter() - t0)
            k += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(loop(conn, c) for c, conn in enumerate(conns)))
    wall = time.perf_counter() - t0
    for conn in conns:
        await conn.close()
    return {"path": "bare", "commits": len(lat), "per_s": round(len(lat) / wall, 1), "p50_ms": pct(lat, 0.5),
            "p99_ms": pct(lat, 0.99)}


# ------------------------------------------------------------------ the HTTP load
Accounts = tuple[int, dict[str, str], dict[str, str]]


async def accounts(base: str) -> Accounts:
    async with aiohttp.ClientSession(base) as http:
        return await agent_and_handler(http, ADMIN_PW)


async def write_load(bases: list[str], seconds: float, clients: int, readers: int,
                     logged_in: Accounts | None = None) -> dict[str, object]:
    timeout = aiohttp.ClientTimeout(total=300)
    sessions = [aiohttp.ClientSession(b, connector=aiohttp.TCPConnector(limit=clients + readers + 5),
                                      timeout=timeout) for b in bases]
    try:
        dept, agent, handler = logged_in or await agent_and_handler(sessions[0], ADMIN_PW)
        latencies: dict[str, list[float]] = {a: [] for a in ACTIONS}
        reads: dict[str, list[float]] = {"list": [], "detail": []}
        # Also reported without the requests sent in the first second: a server's first requests after start
        # pay one-time work (statements compiled, caches filled), and 50 clients start at once, so the first
        # second can set the whole phase's p99. The p99 of everything stays the headline figure.
        settled: dict[str, list[float]] = {a: [] for a in ACTIONS}
        settled_reads: dict[str, list[float]] = {"list": [], "detail": []}
        errors: dict[str, int] = {}
        done_at: list[float] = []  # when each action was answered, from the phase's start
        recent: list[str] = []
        counter = iter(range(10**9))
        t_start = time.perf_counter()
        stop = t_start + seconds

        async def call(http: aiohttp.ClientSession, action: str, path: str, body: dict[str, object],
                       headers: dict[str, str]) -> dict | None:
            t0 = time.perf_counter()
            async with http.post(path, json=body, headers=headers) as r:
                data = await r.json(content_type=None)
                if r.status not in (200, 201):
                    key = f"{action} {r.status} {data.get('error') if isinstance(data, dict) else ''}"
                    errors[key] = errors.get(key, 0) + 1
                    return None
            latencies[action].append(time.perf_counter() - t0)
            done_at.append(t0 - t_start + latencies[action][-1])
            if t0 - t_start >= 1.0:
                settled[action].append(latencies[action][-1])
            return data

        async def client(c: int) -> None:
            http = sessions[c % len(sessions)]
            while time.perf_counter() < stop:
                t = await call(http, "create", "/api/v1/tickets", ticket_body(next(counter)), agent)
                if t is None:
                    continue
                n = t["number"]
                recent.append(n)
                del recent[:-200]
                for action, body, who in (("accept", {}, agent), ("dispatch", {"lead_department_id": dept}, agent),
                                          ("sign", {}, handler), ("reply", {"answer": "已安排维修，路灯已修复。"}, handler)):
                    if await call(http, action, f"/api/v1/tickets/{n}/actions/{action}", body, who) is None:
                        break

        async def reader(c: int) -> None:
            http = sessions[c % len(sessions)]
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                async with http.get("/api/v1/tickets?limit=20", headers=agent) as r:
                    await r.read()
                reads["list"].append(time.perf_counter() - t0)
                if t0 - t_start >= 1.0:
                    settled_reads["list"].append(reads["list"][-1])
                if recent:
                    t0 = time.perf_counter()
                    async with http.get(f"/api/v1/tickets/{recent[-1]}", headers=agent) as r:
                        await r.read()
                    reads["detail"].append(time.perf_counter() - t0)
                    if t0 - t_start >= 1.0:
                        settled_reads["detail"].append(reads["detail"][-1])
                await asyncio.sleep(0.1)  # a person reading, not a crawler

        t0, cpu0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(client(c) for c in range(clients)), *(reader(c) for c in range(readers)))
        wall, client_cpu = time.perf_counter() - t0, time.process_time() - cpu0
    finally:
        for s in sessions:
            await s.close()
    every = [x for v in latencies.values() for x in v]
    half = seconds / 2
    return {"path": "http", "processes": len(bases), "actions": len(every), "seconds": round(wall, 2),
            "per_s": round(len(every) / wall, 1),
            # A flood's cost is front-loaded (its first guesses reach argon2, then the address is throttled):
            # the second half's rate says what a flood that goes on costs.
            "second_half_per_s": round(sum(t >= half for t in done_at) / max(wall - half, 1e-9), 1),
            "p50_ms": pct(every, 0.5), "p99_ms": pct(every, 0.99),
            "per_action_p99_ms": {k: pct(v, 0.99) for k, v in latencies.items()},
            "reads_p99_ms": {k: pct(v, 0.99) for k, v in reads.items()},
            "after_first_second_p99_ms": {"actions": pct([x for v in settled.values() for x in v], 0.99),
                                          **{k: pct(v, 0.99) for k, v in settled_reads.items()}},
            "after_first_second_per_action_p99_ms": {k: pct(v, 0.99) for k, v in settled.items()},
            "reads": {k: len(v) for k, v in reads.items()}, "errors": errors,
            # The load's own CPU (this process: the clients and readers) shares the machine's cores with the
            # servers; with it the CPU budget of an action is complete (ticket_cpu.py has the rest).
            "client_cpu_ms_per_action": round(1000 * client_cpu / len(every), 3) if every else None}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu(port: int) -> float:
    """CPU seconds of the PostgreSQL cluster listening on ``port``: its postmaster (with the children it has
    reaped) and its live children, the backends."""
    def stat(pid: str) -> list[str]:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()

    tick = os.sysconf("SC_CLK_TCK")
    master = None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if f"-p {port} " in Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " "):
                master = pid
                break
        except OSError:
            continue
    if master is None:
        raise RuntimeError(f"no PostgreSQL on port {port}")
    f = stat(master)
    total = sum(int(x) for x in f[11:15])  # utime, stime, cutime, cstime
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            f = stat(pid)
        except OSError:
            continue
        if f[1] == master:
            total += int(f[11]) + int(f[12])
    return total / tick


def wait_idle(pids: list[int], limit: float = 90) -> None:
    """Until the servers' start-up work (jieba's dictionary, the router) is done: < 5 % CPU over 0.5 s."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = sum(cpu_seconds(p) for p in pids)
        time.sleep(0.5)
        if sum(cpu_seconds(p) for p in pids) - before < 0.025 * len(pids):
            return


def start_servers(db_url: str, redis_url: str, data_dir: Path, n: int, extra_env: dict[str, str] | None = None,
                  root: Path = ROOT) -> tuple[list[subprocess.Popen[str]], list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update({"HOTLINE_DATABASE_URL": db_url, "HOTLINE_REDIS_URL": redis_url,
                "HOTLINE_SERVER_DATA_DIR": str(data_dir), "HOTLINE_SERVER_ADMIN_PASSWORD": ADMIN_PW,
                "HOTLINE_LOG_LEVEL": "WARNING", **(extra_env or {})})
    procs, bases = [], []
    data_dir.mkdir(parents=True, exist_ok=True)
    for i in range(n):  # one after the other: the first migrates and creates the admin
        port = services.free_port()
        log = (data_dir / f"server-{i}.log").open("w")  # a file, never a pipe nobody reads
        procs.append(subprocess.Popen([sys.executable, "server.py", "serve", "--host", "127.0.0.1", "--port",
                                       str(port)], cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=log,
                                      text=True))
        services._wait_port(port, 120)
        bases.append(f"http://127.0.0.1:{port}")
    wait_idle([p.pid for p in procs])
    return procs, bases


def stop_servers(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)


def empty_redis(redis_url: str) -> None:
    """Before a phase on a fresh database, whose ids start at 1 again: the previous phase's keys (a survey's arq
    job "survey:<id>:<attempt>", a login throttle) would let the server skip work a new deployment does."""
    with redis.Redis.from_url(redis_url) as client:
        client.flushall()


def http_phase(kind: str, db_url: str, redis_url: str, tmp: Path, n: int, args: argparse.Namespace,
               root: Path = ROOT) -> dict[str, object]:
    empty_redis(redis_url)
    procs, bases = start_servers(db_url, redis_url, tmp / f"var-{kind}-{n}-{time.monotonic_ns()}", n, root=root)
    pg_port = make_url(db_url).port if kind == "postgres" else None
    try:
        logged_in = asyncio.run(accounts(bases[0]))  # the logins' argon2 before the CPU is counted, not in it
        return counted_load(procs, bases, pg_port, args, logged_in)
    finally:
        stop_servers(procs)


def counted_load(procs: list[subprocess.Popen[str]], bases: list[str], pg_port: int | None,
                 args: argparse.Namespace, logged_in: Accounts) -> dict[str, object]:
    """``write_load`` with the CPU the servers and, on PostgreSQL (``pg_port``), the cluster spent over it: with
    the client's, which ``write_load`` counts, the whole CPU budget of an action on this machine's cores."""
    cpu0 = sum(cpu_seconds(p.pid) for p in procs)
    pg0 = postgres_cpu(pg_port) if pg_port else 0.0
    res = asyncio.run(write_load(bases, args.seconds, args.clients, args.readers, logged_in))
    cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu0
    actions = int(res["actions"])  # type: ignore[call-overload]
    res["servers_cpu_s"] = round(cpu, 2)
    res["servers_cpu_ms_per_action"] = round(1000 * cpu / actions, 3) if actions else None
    if pg_port:
        res["postgres_cpu_ms_per_action"] = (round(1000 * (postgres_cpu(pg_port) - pg0) / actions, 3)
                                             if actions else None)
    return res


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


def med(rs: list[dict[str, object]], key: str) -> float:
    return round(statistics.median(float(r[key]) for r in rs), 1)  # type: ignore[arg-type]


def run_db(kind: str, base: str | None, redis_url: str, args: argparse.Namespace) -> dict[str, object]:
    rows: dict[str, list[dict[str, object]]] = {}
    procs = [int(p) for p in (args.sqlite_processes if kind == "sqlite" else args.pg_processes).split(",")]
    with tempfile.TemporaryDirectory(prefix=f"bench-{kind}-", dir=args.tmp) as t:
        tmp = Path(t)
        for rep in range(args.reps):
            for phase in ["bare", *(["before"] if args.before_root else []), *(f"http{n}" for n in procs)]:
                load0 = loadavg()
                if phase == "bare":
                    if kind == "sqlite":
                        res = bare_sqlite(tmp / f"bare-{rep}.db", args.bare_seconds)
                    else:
                        assert base
                        res = asyncio.run(bare_asyncpg(services.create_database(base, f"bare_{rep}"),
                                                       args.bare_seconds, args.clients))
                else:
                    n = 1 if phase == "before" else int(phase[4:])
                    url = (f"sqlite+aiosqlite:///{tmp / f'{phase}-{rep}.db'}" if kind == "sqlite"
                           else services.create_database(base or "", f"{phase}_{rep}_{n}"))
                    res = http_phase(kind, url, redis_url, tmp, n, args,
                                     Path(args.before_root) if phase == "before" else ROOT)
                res.update(db=kind, rep=rep + 1, phase=phase, load=[load0, loadavg()])
                print(json.dumps(res, ensure_ascii=False), flush=True)
                rows.setdefault(phase, []).append(res)
    bare = med(rows["bare"], "per_s")
    summary: dict[str, object] = {"db": kind, "bare_per_s": bare, "bare_p99_ms": med(rows["bare"], "p99_ms")}
    for key in [*(["before"] if args.before_root else []), *(f"http{n}" for n in procs)]:
        rs = rows[key]
        ratio = [float(r["per_s"]) / float(b["per_s"]) for r, b in zip(rs, rows["bare"])]  # type: ignore[arg-type]
        summary[key] = {
            "per_s": med(rs, "per_s"), "p50_ms": med(rs, "p50_ms"), "p99_ms": med(rs, "p99_ms"),
            "ratio_to_bare": round(statistics.median(ratio), 3),
            "list_p99_ms": round(statistics.median(r["reads_p99_ms"]["list"] for r in rs), 1),  # type: ignore[index]
            "detail_p99_ms": round(statistics.median(r["reads_p99_ms"]["detail"] for r in rs), 1),  # type: ignore[index]
            "after_first_second_p99_ms": {k: round(statistics.median(r["after_first_second_p99_ms"][k] for r in rs), 1)  # type: ignore[index]
                                          for k in ("actions", "list", "detail")},
            "cpu_ms_per_action": {k: round(statistics.median(float(r[f"{k}_cpu_ms_per_action"]) for r in rs), 3)  # type: ignore[arg-type]
                                  for k in ("servers", "client", "postgres")
                                  if all(r.get(f"{k}_cpu_ms_per_action") is not None for r in rs)},
            "errors": [r["errors"] for r in rs]}
        # What the machine's cores allow at this CPU per action (every process of the phase counted): how far
        # code can move the rate before the box, not the code, is the limit.
        cpu_total = sum(summary[key]["cpu_ms_per_action"].values())  # type: ignore[index]
        if cpu_total:
            summary[key]["cpu_ceiling_per_s"] = round((os.cpu_count() or 1) * 1000 / cpu_total, 1)  # type: ignore[index]
            summary[key]["ratio_allowed_by_cpu"] = round(summary[key]["cpu_ceiling_per_s"] / bare, 3)  # type: ignore[index]
    return {"summary": summary, "runs": rows}


def _flood_child(base: str, seconds: float, out: mp.Queue[dict]) -> None:
    """The attackers (benchmarks/login_flood.py's), reporting their own CPU: they share this machine's cores with
    the server, so part of what a flood costs here is theirs, not the server's."""
    from benchmarks.login_flood import _flood

    result = asyncio.run(_flood(base, 50, seconds, 200_000, 1))
    result["cpu_s"] = round(time.process_time(), 2)
    out.put(result)


def flood_phase(redis_url: str, args: argparse.Namespace) -> dict[str, dict[str, dict]]:
    """SQLite, one process: the write load alone, then the same with 50 attackers guessing passwords. With
    ``--before-root``, the other checkout's server goes through the same two phases right after ours."""
    roots = [("ours", ROOT)] + ([("before", Path(args.before_root))] if args.before_root else [])
    out: dict[str, dict[str, dict]] = {}
    for label, root in roots:
        empty_redis(redis_url)  # also: the previous flood's lock-out of 127.0.0.1 must not carry over
        with tempfile.TemporaryDirectory(prefix="bench-flood-", dir=args.tmp) as t:
            tmp = Path(t)
            procs, bases = start_servers(f"sqlite+aiosqlite:///{tmp / 'flood.db'}", redis_url, tmp / "var", 1,
                                         root=root)
            try:
                logged_in = asyncio.run(accounts(bases[0]))  # before the flood: the attackers' address gets throttled
                for phase in ("quiet", "flood"):
                    load0 = loadavg()
                    child = None
                    q: mp.Queue[dict] = mp.Queue()
                    if phase == "flood":
                        child = mp.get_context("fork").Process(target=_flood_child, args=(bases[0], args.seconds, q),
                                                               daemon=True)
                        child.start()
                    cpu0 = cpu_seconds(procs[0].pid)
                    res = asyncio.run(write_load(bases, args.seconds, args.clients, args.readers, logged_in))
                    res["server_cpu_s"] = round(cpu_seconds(procs[0].pid) - cpu0, 2)
                    if child is not None:
                        flood = q.get(True, args.seconds + 300)
                        child.join(30)
                        res["flood"] = {"attempts": flood["attempts"], "answers": flood["answers"],
                                        "attempts_per_s": flood["attempts_per_s"], "attackers_cpu_s": flood["cpu_s"]}
                    res["load"] = [load0, loadavg()]
                    print(json.dumps({"phase": f"login-{phase}", "server": label, **res}, ensure_ascii=False),
                          flush=True)
                    out.setdefault(label, {})[phase] = res
            finally:
                stop_servers(procs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20, help="length of each HTTP phase")
    parser.add_argument("--bare-seconds", type=float, default=5, help="length of each bare-database phase")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--readers", type=int, default=5, help="clients reading list + detail during the writes")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--pg-processes", default="1,2,4")
    parser.add_argument("--sqlite-processes", default="1",
                        help="server processes on one SQLite file, e.g. 1,2 (each has its own writer; SQLite "
                             "takes their transactions in turn)")
    parser.add_argument("--flood", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--before-root", default=None,
                        help="also run (interleaved, 1 process) the server of another checkout, e.g. the commit before")
    parser.add_argument("--tmp", default=None, help="directory for the SQLite files (the disk being measured)")
    args = parser.parse_args()
    results: dict[str, object] = {"args": vars(args), "cores": os.cpu_count()}
    with services.redis_server() as redis_url:
        for kind in filter(None, args.db.split(",")):
            if kind == "postgres":
                with services.postgres_server() as base:
                    results[kind] = run_db(kind, base, redis_url, args)
            else:
                results[kind] = run_db(kind, None, redis_url, args)
        if args.flood:
            results["login_flood"] = flood_phase(redis_url, args)
    print(f"\n{args.clients} clients, {args.seconds:g} s per HTTP phase, medians of {args.reps}, "
          f"{os.cpu_count()} cores, load now {loadavg()}")
    for kind in filter(None, args.db.split(",")):
        s = results[kind]["summary"]  # type: ignore[index]
        print(f"{kind}: bare {s['bare_per_s']} commits/s (p99 {s['bare_p99_ms']} ms)")
        for key, h in s.items():
            if key.startswith("http") or key == "before":
                label = "before-root, 1 process" if key == "before" else f"{key[4:]} process(es)"
                print(f"  {label}: {h['per_s']} actions/s = {h['ratio_to_bare']} x bare; "
                      f"p50 {h['p50_ms']} ms, p99 {h['p99_ms']} ms; reads p99 list {h['list_p99_ms']} ms, "
                      f"detail {h['detail_p99_ms']} ms; after the first second p99 actions / list / detail "
                      f"{' / '.join(str(v) for v in h['after_first_second_p99_ms'].values())} ms; CPU ms per action "
                      f"{h['cpu_ms_per_action']}: {os.cpu_count()} cores allow {h.get('cpu_ceiling_per_s')} actions/s "
                      f"= {h.get('ratio_allowed_by_cpu')} x bare; errors {h['errors']}")
    if args.flood:
        for label, phases in results["login_flood"].items():  # type: ignore[attr-defined]
            q, f = phases["quiet"], phases["flood"]
            print(f"login flood (SQLite, 1 process, {label}): {q['per_s']} -> {f['per_s']} actions/s (second half "
                  f"{q['second_half_per_s']} -> {f['second_half_per_s']}), p99 "
                  f"{q['p99_ms']} -> {f['p99_ms']} ms, reads p99 {q['reads_p99_ms']} -> {f['reads_p99_ms']}; server "
                  f"CPU {q['server_cpu_s']} -> {f['server_cpu_s']} s, attackers' CPU {f['flood']['attackers_cpu_s']} s; "
                  f"attempts {f['flood']['attempts']} {f['flood']['answers']}")
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "tickets_throughput.json").write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
