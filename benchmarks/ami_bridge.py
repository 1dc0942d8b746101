"""AMI bridge benchmark: event-to-every-client latency of the live feed at a big centre's rates.

The real pipeline, each part a real process: a fake Asterisk (child process) writes the ``burst`` capture
(32 overlapping calls, 4 552 events, replayed many times with Uniqueids, Linkedids, Local channel names and
Timestamps made unique per copy: never hand-written events) over real TCP to a real ``hotline serve`` (its AMI
bridge: panoramisk + our framing -> reducer -> Redis pub/sub -> live hub -> WebSocket), with a real
redis-server; ``--clients`` WebSocket clients (50), each logged in with its own API token, in another process.

Clock: from the moment the fake writes an event on the socket (``perf_counter`` = CLOCK_MONOTONIC, the same
clock in every process of one machine) to the moment the LAST client has received a message showing it
folded. A message shows event i folded when its ``now`` (the newest PBX Timestamp folded, sent with every
change) reaches event i's Timestamp; only events that move ``now`` forward are timed, so the proof is exact.
Per phase (paced at ``--rates`` events/s for ``--seconds`` each): p50/p99/max, the sent and delivered rates,
patch messages lost or duplicated per client (their ``seq`` must run on without gap or repeat), fresh
snapshots given to slow clients, AMI reconnects, whether the day's counters survived (``offered`` of queue
12345 = callers who joined so far), and the server's CPU seconds (hotline + redis-server, from /proc).
The saturation rate is where a phase stops keeping up (delivered rate < 95 % of the asked rate, or p99 > 1 s).
Anchor, same run: bare panoramisk (its own decode + split + Message, no dispatch) parsing the same bytes,
in CPU seconds; the ratio is the whole pipeline's events per CPU second over panoramisk's.
At the end one client's view, rebuilt from its snapshot and every patch, is compared with the server's.

    .venv/bin/python benchmarks/ami_bridge.py [--rates 3000,6000,12000] [--seconds 10] [--clients 50] [--servers 1]

``--servers 2`` runs two ``hotline serve`` processes on one Redis (one holds the AMI session, both serve the
feed); the clients are spread over them. Writes benchmarks/out/ami_bridge.json.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import pickle
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CAPTURE = ROOT.parent / "shared" / "asterisk-captures" / "burst.ami"
ADMIN_PW = "bench-admin-pw"

ID_RE = re.compile(rb"(?<=: )(\d{10})\.(\d{1,5})(?=\r\n)")  # Uniqueid / Linkedid (Timestamp has 6 decimals)
CHAN_RE = re.compile(rb"-([0-9a-f]{8});")  # Local/...@ctx-0000001a;1
TS_RE = re.compile(rb"(?<=Timestamp: )(\d+)\.(\d{6})")
SPAN = 70  # seconds of PBX time per copy (the capture lasts 64.6 s): time runs on, the day does not roll


def burst_body() -> bytes:
    data = CAPTURE.read_bytes()
    start = data.index(b"\r\n") + 2  # after the banner
    end = data.rindex(b"Response: Goodbye")  # drop Logoff/EOF: the stream goes on
    body = data[start:end]
    first = body.index(b"\r\n\r\n") + 4  # the capture's own login answer: the fake answers ours itself
    return body[first:]


def copy_of(body: bytes, k: int, shift: int) -> bytes:
    b = ID_RE.sub(lambda m: m.group(1) + b"." + str(int(m.group(2)) + k * 100000).encode(), body)
    b = CHAN_RE.sub(lambda m: b"-" + f"{int(m.group(1), 16) + k * 4096:08x}".encode() + b";", b)
    return TS_RE.sub(lambda m: str(int(m.group(1)) + shift + k * SPAN).encode() + b"." + m.group(2), b)


def event_messages(body: bytes, n: int, start: float) -> list[bytes]:
    """``n`` events from copies of the capture, the first one's Timestamp at ``start`` (epoch s).

    The PBX time starts after the server's clock: what the server stamps itself (the resync) must not be
    newer than the events, or ``now`` would not move with them.
    """
    m = TS_RE.search(body)
    shift = int(start) - int(m.group(1)) if m else 0
    out: list[bytes] = []
    k = 0
    while len(out) < n:
        out += [m + b"\r\n\r\n" for m in copy_of(body, k, shift).split(b"\r\n\r\n") if m.startswith(b"Event: ")]
        k += 1
    return out[:n]


def pbx_time(msg: bytes) -> float | None:
    m = TS_RE.search(msg)
    return float(m.group(0)) if m else None


# ------------------------------------------------------------------ anchor: bare panoramisk, CPU time
def bare_panoramisk_cpu_rate(data: bytes) -> float:
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
    t = time.process_time()
    for i in range(0, len(data), 65536):
        p.data_received(data[i:i + 65536])
    return count / (time.process_time() - t)


# ------------------------------------------------------------------ the fake Asterisk (child process)
def fake_asterisk(port_q: Any, conn: Any, msgs_path: str) -> None:
    """Answer the Login, the resync lists and Pings; stream phases of events when the bench says so."""

    async def main() -> None:
        msgs: list[bytes] = pickle.loads(Path(msgs_path).read_bytes())
        writers: list[asyncio.StreamWriter] = []
        loop = asyncio.get_running_loop()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"Asterisk Call Manager/11.0.0\r\n")
            writers.append(writer)
            buf = b""
            while True:
                try:
                    data = await reader.read(65536)
                except (asyncio.CancelledError, ConnectionError):  # the fake PBX stopping: not a result
                    return
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
                    else:
                        writer.write(f"Response: Success\r\nActionID: {aid}\r\nPing: Pong\r\n\r\n".encode())

        async def phase(first: int, count: int, rate: float) -> list[float]:
            """Write msgs[first:first+count] at ``rate``: every ~1 ms, whatever is due, whole messages only."""
            w = writers[-1]
            sent: list[float] = []
            i, end = first, first + count
            start = time.perf_counter()
            while i < end:
                now = time.perf_counter()
                due = min(end, first + int((now - start) * rate) + 1)
                if due > i:
                    w.write(b"".join(msgs[i:due]))
                    sent.extend([now] * (due - i))
                    i = due
                    if w.transport.get_write_buffer_size() > 1 << 20:
                        await w.drain()  # the bridge stopped reading: TCP backpressure, as on a real link
                await asyncio.sleep(0.0005)
            await w.drain()
            return sent

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port_q.put(server.sockets[0].getsockname()[1])
        async with server:
            while True:
                cmd = await loop.run_in_executor(None, conn.recv)
                if cmd[0] == "stop":
                    return
                conn.send(await phase(*cmd[1:]))

    asyncio.run(main())


# ------------------------------------------------------------------ the WebSocket clients (child process)
SEQ_RE = re.compile(r'"type":"(patch|snapshot)","seq":(\d+)')
NOW_RE = re.compile(r'"op":"now","now":([-0-9.eE+]+)|"data":\{"now":([-0-9.eE+]+)')


def ws_clients(urls: list[str], tokens: list[str], nows: Any, ready: Any, stop: Any, out_path: str) -> None:
    """Each client notes, per frame: receive time, the newest ``now`` it shows, its patch/snapshot numbers.
    Client 0 also rebuilds the whole view (json + apply_patches), to compare with the server's at the end."""
    import aiohttp

    from telephony.live import apply_patches

    async def one(i: int, http: aiohttp.ClientSession, url: str, token: str, log: dict[str, Any]) -> None:
        seen_now = 0.0
        async with http.ws_connect(url, headers={"Authorization": f"Bearer {token}"}, max_msg_size=0,
                                   compress=0) as ws:
            async for frame in ws:
                t = time.perf_counter()
                text = frame.data
                for m in NOW_RE.finditer(text):
                    v = float(m.group(1) or m.group(2))
                    if v > seen_now:
                        seen_now = v
                log["frames"].append((t, seen_now))
                log["seqs"].append([(k == "snapshot", int(s)) for k, s in SEQ_RE.findall(text)])
                nows[i] = seen_now
                if i == 0:
                    data = json.loads(text)
                    for msg in data["messages"] if data["type"] == "batch" else [data]:
                        if msg["type"] == "snapshot":
                            log["view"] = msg["data"]
                        elif msg["type"] == "patch" and log.get("view") is not None:
                            apply_patches(log["view"], msg["patches"])
                if len(log["frames"]) == 1:
                    ready.value += 1

    async def main() -> None:
        logs = [{"frames": [], "seqs": []} for _ in tokens]
        async with aiohttp.ClientSession() as http:
            tasks = [asyncio.create_task(one(i, http, urls[i % len(urls)], tok, logs[i]))
                     for i, tok in enumerate(tokens)]
            while not stop.is_set():
                await asyncio.sleep(0.05)
                for t in tasks:
                    if t.done() and t.exception() is not None:
                        raise t.exception()  # type: ignore[misc]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        Path(out_path).write_bytes(pickle.dumps(logs))

    asyncio.run(main())


# ------------------------------------------------------------------ servers
def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(tmp: Path, n: int, redis_url: str, ami_port: int,
                 whole_numbers: bool = False) -> tuple[subprocess.Popen[bytes], int]:
    from tests import services

    port = services.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update({"HOTLINE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / f'hotline{n}.db'}",
                "HOTLINE_REDIS_URL": redis_url, "HOTLINE_SERVER_DATA_DIR": str(tmp / f"var{n}"),
                "HOTLINE_SERVER_ADMIN_PASSWORD": ADMIN_PW, "HOTLINE_LOG_LEVEL": "WARNING",
                "HOTLINE_AMI_ENABLED": "true", "HOTLINE_AMI_HOST": "127.0.0.1", "HOTLINE_AMI_PORT": str(ami_port),
                "HOTLINE_AMI_SECRET": "bench"})
    if whole_numbers:  # the clients (admins) get callers' numbers whole: the feed as before it masked them
        env["HOTLINE_WALLBOARD_MASK_NUMBERS"] = "false"
    exe = ROOT / ".venv" / "bin" / "hotline"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "server.py"]
    log = (tmp / f"server{n}.log").open("w")
    proc = subprocess.Popen([*cmd, "serve", "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=log)
    try:
        services._wait_port(port, 120)
    except RuntimeError:
        proc.kill()
        raise RuntimeError(f"server did not start:\n{(tmp / f'server{n}.log').read_text()[-3000:]}") from None
    return proc, port


async def login_tokens(base: str, n: int) -> list[str]:
    import aiohttp

    async with aiohttp.ClientSession(base) as http:
        gate = asyncio.Semaphore(4)

        async def one() -> str:
            async with gate, http.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PW,
                                                                   "kind": "api"}) as r:
                body = await r.json()
                assert r.status == 200, body
                return str(body["token"])

        return list(await asyncio.gather(*(one() for _ in range(n))))


async def get_json(base: str, path: str, token: str) -> Any:
    import aiohttp

    async with aiohttp.ClientSession(base) as http, http.get(
            path, headers={"Authorization": f"Bearer {token}"}) as r:
        return await r.json()


# ------------------------------------------------------------------ analysis
def pct(xs: list[float], q: float) -> float:
    return xs[min(len(xs) - 1, int(len(xs) * q))]


def seq_faults(seqs: list[list[tuple[bool, int]]]) -> tuple[int, int, int]:
    """(lost, duplicated, snapshots after the first) over one client's frames."""
    lost = dup = snaps = 0
    last: int | None = None
    for frame in seqs:
        for is_snap, s in frame:
            if is_snap:
                snaps += 1
                last = s
            elif last is not None:
                if s <= last:
                    dup += 1
                else:
                    lost += s - last - 1
                    last = s
    return lost, dup, max(0, snaps - 1)


def main() -> None:
    import numpy as np

    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="3000,6000,12000", help="events/s of each paced phase")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--servers", type=int, default=1)
    ap.add_argument("--grace", type=float, default=30.0, help="s after a phase for the clients to catch up")
    ap.add_argument("--whole-numbers", action="store_true",
                    help="no masking of callers' numbers (the clients log in as admins: masked by default)")
    args = ap.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    if not CAPTURE.exists():
        sys.exit(f"capture not found: {CAPTURE}")
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    body = burst_body()
    counts = [int(r * args.seconds) for r in rates]
    msgs = event_messages(body, sum(counts), time.time() + 60)
    ts = [pbx_time(m) for m in msgs]
    joins = [m.startswith(b"Event: QueueCallerJoin\r\n") and b"Queue: 12345\r\n" in m for m in msgs]
    print(f"prepared {len(msgs):,} events ({sum(map(len, msgs)) / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s",
          flush=True)
    sample = b"".join(msgs[:60_000])
    bare = statistics.median(bare_panoramisk_cpu_rate(sample) for _ in range(3))
    print(f"bare panoramisk parse: {bare:,.0f} events per CPU second (median of 3)", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="ami-bench-"))
    (tmp / "msgs.pkl").write_bytes(pickle.dumps(msgs))
    from tests import services

    redis_port = services.free_port()
    redis = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(redis_port), "--bind",
                              "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    services._wait_port(redis_port)
    redis_url = f"redis://127.0.0.1:{redis_port}"
    ctx = mp.get_context("spawn")
    port_q = ctx.Queue()
    fake_conn, bench_conn = ctx.Pipe()
    fake = ctx.Process(target=fake_asterisk, args=(port_q, fake_conn, str(tmp / "msgs.pkl")), daemon=True)
    fake.start()
    servers: list[tuple[subprocess.Popen[bytes], int]] = []
    clients_proc = None
    stop = ctx.Event()
    try:
        ami_port = port_q.get(timeout=60)
        servers = [start_server(tmp, n, redis_url, ami_port, args.whole_numbers) for n in range(args.servers)]
        bases = [f"http://127.0.0.1:{port}" for _, port in servers]
        # each server has its own accounts database: client i logs in on, and connects to, bases[i % servers]
        by_base = [asyncio.run(login_tokens(b, len(range(i, args.clients, len(bases))))) for i, b in enumerate(bases)]
        ordered = [by_base[i % len(bases)][i // len(bases)] for i in range(args.clients)]
        admin = ordered[0]
        for _ in range(600):
            st = asyncio.run(get_json(bases[0], "/api/v1/telephony/status", admin))
            if st.get("connected"):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"the bridge never connected: {st}")
        nows = ctx.Array("d", args.clients, lock=False)
        ready = ctx.Value("i", 0)
        clients_proc = ctx.Process(target=ws_clients, args=([f"{b}/ws/telephony" for b in bases], ordered, nows,
                                                            ready, stop, str(tmp / "clients.pkl")), daemon=True)
        clients_proc.start()
        deadline = time.monotonic() + 120
        while ready.value < args.clients:
            if time.monotonic() > deadline or not clients_proc.is_alive():
                raise RuntimeError(f"only {ready.value} of {args.clients} clients got their snapshot")
            time.sleep(0.05)
        pids = [p.pid for p, _ in servers]
        print(f"{args.servers} hotline serve (pid {', '.join(map(str, pids))}), {args.clients} logged-in WebSocket "
              f"clients; load average {os.getloadavg()[0]:.2f}", flush=True)
        # what the server burns with no events (its timers, pollers, the other features' background tasks)
        c0, w0 = sum(cpu_seconds(p) for p in pids) + cpu_seconds(redis.pid), time.perf_counter()
        time.sleep(5)
        idle_cpu = (sum(cpu_seconds(p) for p in pids) + cpu_seconds(redis.pid) - c0) / (time.perf_counter() - w0)
        phases: list[dict[str, Any]] = []
        first = 0
        for rate, count in zip(rates, counts):
            last_ts = max(t for t in ts[first:first + count] if t is not None)
            cpu0 = sum(cpu_seconds(p) for p in pids)
            rcpu0 = cpu_seconds(redis.pid)
            wall0 = time.perf_counter()
            load = os.getloadavg()[0]
            bench_conn.send(("phase", first, count, rate))
            sent = bench_conn.recv()
            sent_s = sent[-1] - sent[0]
            deadline = time.monotonic() + args.grace
            while min(nows[:]) < last_ts and time.monotonic() < deadline:
                time.sleep(0.005)
            caught_up = min(nows[:]) >= last_ts
            done_at = time.perf_counter()
            cpu = sum(cpu_seconds(p) for p in pids) - cpu0
            rcpu = cpu_seconds(redis.pid) - rcpu0
            st = asyncio.run(get_json(bases[0], "/api/v1/telephony/status", admin))
            live = asyncio.run(get_json(bases[-1], "/api/v1/telephony/live", ordered[len(bases) - 1]))
            offered = live["queues"].get("12345", {}).get("stats", {}).get("offered")
            phases.append({"rate": rate, "events": count, "first": first, "sent": sent, "sent_seconds": sent_s,
                           "caught_up": caught_up, "lag_after_last_send_s": done_at - sent[-1],
                           "hotline_cpu_s": cpu, "redis_cpu_s": rcpu, "load_average": load,
                           "idle_cpu_s": idle_cpu * (done_at - wall0),
                           "reconnects": st.get("reconnects"), "ami_connected": st.get("connected"),
                           "offered": offered, "joins_sent": sum(joins[:first + count]), "day": live.get("day")})
            print(f"  phase {rate:,.0f}/s: sent {count:,} in {sent_s:.1f} s, clients caught up: {caught_up}, "
                  f"load {load:.2f}", flush=True)
            first += count
            time.sleep(1.0)
        final_live = asyncio.run(get_json(bases[0], "/api/v1/telephony/live", admin))
        stop.set()
        clients_proc.join(120)
        logs = pickle.loads((tmp / "clients.pkl").read_bytes())
    finally:
        stop.set()
        try:
            bench_conn.send(("stop",))
        except Exception:  # the fake is gone already
            pass
        for p, _ in servers:
            p.terminate()
        for p, _ in servers:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        redis.terminate()
        fake.join(5)
        if fake.is_alive():
            fake.terminate()

    # ---- latency: event i is on client c once c's newest ``now`` reaches ts[i]; timed events move ``now`` on
    client_t = [np.array([f[0] for f in lg["frames"]]) for lg in logs]
    client_n = [np.array([f[1] for f in lg["frames"]]) for lg in logs]
    faults = [seq_faults(lg["seqs"]) for lg in logs]
    view = logs[0].get("view") or {}
    keys = ("queues", "agents", "calls", "now", "day")
    view_equal = {k: view.get(k) for k in keys} == {k: final_live.get(k) for k in keys}
    best = float("-inf")
    results = []
    for ph in phases:
        idx, times = [], []
        for j in range(ph["first"], ph["first"] + ph["events"]):
            t = ts[j]
            if t is not None and t > best:
                best = t
                idx.append(j)
                times.append(ph["sent"][j - ph["first"]])
        p = np.array([ts[j] for j in idx])
        s = np.array(times)
        arrive = np.full(len(idx), -np.inf)
        for t_c, n_c in zip(client_t, client_n):
            k = np.searchsorted(n_c, p, side="left")
            got = np.where(k < len(n_c), t_c[np.minimum(k, len(n_c) - 1)], np.inf)
            arrive = np.maximum(arrive, got)
        ok = np.isfinite(arrive)
        lat = sorted(((arrive[ok] - s[ok]) * 1000).tolist())
        delivered_rate = (ph["events"] / (max(arrive[ok]) - ph["sent"][0])) if ok.any() else 0.0
        cpu = ph["hotline_cpu_s"] + ph["redis_cpu_s"]
        end = max(arrive[ok]) if ok.any() else ph["sent"][-1]
        frames = int(((client_t[0] >= ph["sent"][0]) & (client_t[0] <= end)).sum())
        r = {"rate": ph["rate"], "events": ph["events"], "timed_events": len(idx),
             "not_delivered": int((~ok).sum()), "sent_rate": ph["events"] / max(ph["sent_seconds"], 1e-9),
             "delivered_rate": delivered_rate,
             "p50_ms": pct(lat, 0.5) if lat else None, "p99_ms": pct(lat, 0.99) if lat else None,
             "max_ms": lat[-1] if lat else None, "frames_per_client_s": frames / max(end - ph["sent"][0], 1e-9),
             "hotline_cpu_s": ph["hotline_cpu_s"], "redis_cpu_s": ph["redis_cpu_s"],
             "events_per_cpu_s": ph["events"] / cpu if cpu else None,
             "cpu_ratio_vs_panoramisk": (ph["events"] / cpu / bare) if cpu else None,
             "idle_cpu_s": ph["idle_cpu_s"],
             "cpu_ratio_net_of_idle": (ph["events"] / (cpu - ph["idle_cpu_s"]) / bare) if cpu > ph["idle_cpu_s"] else None,
             "reconnects": ph["reconnects"], "ami_connected": ph["ami_connected"],
             "offered": ph["offered"], "joins_sent": ph["joins_sent"], "day": ph["day"],
             "load_average": ph["load_average"], "caught_up": ph["caught_up"]}
        r["keeps_up"] = bool(ph["caught_up"] and r["delivered_rate"] >= 0.95 * ph["rate"]
                             and r["p99_ms"] is not None and r["p99_ms"] < 1000)
        results.append(r)
    lost = sum(f[0] for f in faults)
    dup = sum(f[1] for f in faults)
    resnap = sum(f[2] for f in faults)
    kept = [r["rate"] for r in results if r["keeps_up"]]
    failed = [r["rate"] for r in results if not r["keeps_up"]]
    saturation = (f"between {max(kept):,.0f} and {min(f for f in failed if f > max(kept)):,.0f} events/s"
                  if kept and any(f > max(kept) for f in failed) else
                  f"above {max(kept):,.0f} events/s" if kept else f"below {min(failed):,.0f} events/s")
    print()
    print(f"anchor: bare panoramisk parse {bare:,.0f} events per CPU second")
    print(f"{args.servers} server process(es), {args.clients} logged-in WebSocket clients; "
          f"load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after")
    for r in results:
        print(f"{r['rate']:>7,.0f}/s  sent {r['sent_rate']:>7,.0f}/s delivered {r['delivered_rate']:>7,.0f}/s  "
              f"p50 {r['p50_ms'] or float('nan'):7.1f} ms  p99 {r['p99_ms'] or float('nan'):8.1f} ms  "
              f"max {r['max_ms'] or float('nan'):8.1f} ms  not delivered {r['not_delivered']}  "
              f"CPU hotline {r['hotline_cpu_s']:.1f} s + redis {r['redis_cpu_s']:.1f} s = "
              f"{r['events_per_cpu_s'] or 0:,.0f} ev/CPU-s = {r['cpu_ratio_vs_panoramisk'] or 0:.2f}x panoramisk "
              f"({r['cpu_ratio_net_of_idle'] or 0:.2f}x without the idle {r['idle_cpu_s']:.1f} s)  "
              f"frames/client/s {r['frames_per_client_s']:.0f}  reconnects {r['reconnects']}  offered {r['offered']} / joined {r['joins_sent']}  "
              f"load {r['load_average']:.2f}")
    print(f"patch messages lost {lost}, duplicated {dup} (all clients); fresh snapshots to slow clients {resnap}")
    print(f"client 0's rebuilt view equals the server's: {view_equal}")
    print(f"saturation: {saturation}")
    out = ROOT / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    (out / "ami_bridge.json").write_text(json.dumps(
        {"anchor_panoramisk_events_per_cpu_s": bare, "servers": args.servers, "clients": args.clients,
         "idle_cpu_per_s": idle_cpu, "phases": results, "lost": lost, "duplicated": dup, "resnapshots": resnap, "view_equal": view_equal,
         "saturation": saturation, "load_before": load_before, "load_after": os.getloadavg()}, indent=1))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
