"""Survey scheduler: 100,000 surveys, one simulated day, the real scheduler on a real SQLite and a real Redis.

FAKE-TIME MODE (this benchmark measures the scheduler, not Asterisk): the clock is simulated; an originate
"completes" after a simulated call duration (answered 60-150 s, busy 5 s, no answer 30 s, partial 40 s;
seeded), then its result goes through the real ``SurveyService.on_call_result`` (SQL, ticket workflow,
Redis slot release, next call). Timers come from the periodic sweep every 60 simulated seconds (the arq
deferred jobs are the same code path, ``job()``, one per survey; they are left out to keep the run short).

Reports:
- scheduling: ``schedule()`` rate (insert + arq deferred job) on a sample, the rest bulk-inserted;
- dialing day: originates placed, the simulated originate rate under the limit, and the scheduler's own
  capacity (originates per second of wall time spent inside the scheduler);
- lateness of each originate against its due time (p50/p99), next to a BASELINE measured in the same run:
  an ideal in-memory dispatcher with the same limit, due times and call durations (no SQL, no Redis, no
  sweep granularity). The ratio shows what the real scheduler adds.

    /work/main/.venv/bin/python benchmarks/survey_scheduler.py [--surveys 100000] [--limit 10] [--sample 2000]
"""
from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import services  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
DAY = datetime(2026, 11, 24, tzinfo=TZ)  # a Tuesday (working day)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def draw(survey_id: int, attempt: int) -> tuple[float, str, dict[str, str]]:
    """The simulated call: same for the real run and the baseline."""
    r = random.Random(survey_id * 7919 + attempt)
    x = r.random()
    if x < 0.70:
        return r.uniform(60, 150), "answered", {"resolved": r.choice("12"), "satisfaction": r.choice("1123")}
    if x < 0.80:
        return 5.0, "busy", {}
    if x < 0.95:
        return 30.0, "no_answer", {}
    return 40.0, "answered", {"resolved": "1"}  # hung up before the satisfaction question


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def baseline(due: dict[int, datetime], limit: int, rules: Any, start: datetime, end: datetime) -> dict[str, Any]:
    """Ideal dispatcher: when a line is free, the oldest due survey is dialed at once."""
    from tickets.surveys import schedule as ss

    waiting: list[tuple[datetime, int, int]] = []  # (due, id, attempt), all not yet due included
    for sid, d in due.items():
        heapq.heappush(waiting, (d, sid, 1))
    ends: list[tuple[datetime, int, int, str, dict[str, str], datetime]] = []
    answers: dict[int, dict[str, Any]] = {}
    now = start
    lateness: list[float] = []
    placed = 0
    while now < end:
        while len(ends) < limit and waiting and waiting[0][0] <= now and rules.hours.is_open(now):
            d, sid, att = heapq.heappop(waiting)
            dur, outcome, raw = draw(sid, att)
            lateness.append((now - d).total_seconds())
            placed += 1
            heapq.heappush(ends, (now + timedelta(seconds=dur), sid, att, outcome, raw, now))
        nxt = [e[0] for e in ends[:1]]
        if len(ends) < limit and waiting:
            nxt.append(rules.hours.next_open(max(waiting[0][0], now)))
        if not nxt:
            break
        now = max(now, min(nxt))
        while ends and ends[0][0] <= now:
            t, sid, att, outcome, raw, started = heapq.heappop(ends)
            answers[sid] = ss.merge_answers(answers.get(sid), ss.parse_answers(raw))
            decision = ss.decide(outcome, answers[sid], att, started, t, rules)
            if isinstance(decision, ss.Retry):
                heapq.heappush(waiting, (decision.due_at, sid, att + 1))
    return {"placed": placed, "lateness": lateness}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from arq.connections import ArqRedis
    from sqlalchemy import insert
    from sqlalchemy.ext.asyncio import async_sessionmaker

    import migrations
    import server
    from config.settings import load_settings
    from tickets.models import Ticket
    from tickets.service import TicketStore
    from tickets.surveys import schedule as ss
    from tickets.surveys.service import SurveyService
    from tickets.surveys.store import S, SurveyStore

    tmp = Path(tempfile.mkdtemp(prefix="survey-bench-"))
    url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    await asyncio.get_running_loop().run_in_executor(None, migrations.upgrade, url)
    with services.redis_server() as redis_url:
        settings = load_settings(env={}).with_overrides(
            server={"data_dir": str(tmp)}, database={"url": url}, redis={"url": redis_url},
            survey={"max_concurrent": args.limit})
        clock = FakeClock((DAY - timedelta(days=1)).astimezone(timezone.utc))
        engine = server.make_engine(settings)
        read_engine = server.make_engine(settings, for_reads=True)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        read_sessions = async_sessionmaker(read_engine, expire_on_commit=False)
        store = TicketStore(sessions, settings, clock, read_sessions)
        surveys = SurveyStore(sessions, read_sessions)
        redis = ArqRedis.from_url(redis_url)
        placed: list[tuple[int, int]] = []
        lateness: list[float] = []
        heap: list[tuple[datetime, int, int, int, str, dict[str, str]]] = []
        due: dict[tuple[int, int], datetime] = {}
        seq = 0

        async def originate(req: dict[str, Any]) -> str:
            nonlocal seq
            sid, att = req["survey_id"], req["attempt"]
            d = due[(sid, att)]
            lateness.append((clock() - d).total_seconds())
            placed.append((sid, att))
            dur, outcome, raw = draw(sid, att)
            seq += 1
            heapq.heappush(heap, (clock() + timedelta(seconds=dur), seq, sid, att, outcome, raw))
            return f"bench-{sid}-{att}"

        service = SurveyService(store, surveys, redis, settings, clock, originate=originate, jobs=redis)
        rules = service.rules

        # ---- tickets (bulk) and surveys: a sample through schedule(), the rest bulk-inserted
        rng = random.Random(1)
        n = args.surveys
        replied_base = (DAY - timedelta(days=1)).astimezone(timezone.utc)
        t0 = time.perf_counter()
        row = {c.name: (c.default.arg if c.default is not None and not callable(c.default.arg) else None)
               for c in Ticket.__table__.columns if c.name != "id"}
        row.update(title="小区路灯不亮", content="", address="", address_key="", district="", category="",
                   caller_name="", co_handler_ids=[], channel="phone", request_type="help", urgency="normal",
                   status="replied", version=1, anonymous=False, survey_opt_out=False, extension_days_granted=0,
                   supervised=False, escalation_level=0, survey_unreachable=False, ledger_pending=False,
                   reopen_count=0)
        replied = [replied_base + timedelta(seconds=rng.uniform(0, 86400)) for _ in range(n)]
        async with sessions.begin() as session:
            for i in range(0, n, 5000):
                await session.execute(insert(Ticket.__table__), [
                    {**row, "number": f"20261123-{k + 1:06d}", "caller_phone": f"138{k:08d}",
                     "created_at": replied[k], "updated_at": replied[k], "replied_at": replied[k]}
                    for k in range(i, min(n, i + 5000))])
        tickets_s = time.perf_counter() - t0
        sample = min(args.sample, n)
        t0 = time.perf_counter()
        for k in range(sample):
            clock.now = replied[k]
            await service.schedule({"number": f"20261123-{k + 1:06d}", "caller_phone": f"138{k:08d}",
                                    "title": "小区路灯不亮", "request_type": "help", "replied_at": replied[k],
                                    "reopen_count": 0})
        schedule_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        async with sessions.begin() as session:
            for i in range(sample, n, 5000):
                await session.execute(insert(S), [
                    {"ticket_id": k + 1, "ticket_number": f"20261123-{k + 1:06d}", "round": 0, "mode": "auto",
                     "state": "scheduled", "phone": f"138{k:08d}", "topic": "小区路灯不亮", "request_type": "help",
                     "department_id": None, "replied_at": replied[k], "due_at": ss.first_due(replied[k], rules),
                     "attempts": 0, "answers": {}, "note": "", "created_at": replied[k], "updated_at": replied[k]}
                    for k in range(i, min(n, i + 5000))])
        bulk_s = time.perf_counter() - t0
        for sid, _, d in await surveys.due_ids(datetime(2100, 1, 1, tzinfo=timezone.utc), limit=n + 10):
            due[(sid, 1)] = d
        await redis.delete("arq:queue:hotline:surveys")  # the timers are not exercised below (see docstring)

        # ---- the day
        start = DAY.astimezone(timezone.utc)
        end = (DAY + timedelta(days=1)).astimezone(timezone.utc)
        clock.now = start
        next_sweep = start
        in_scheduler = 0.0
        t_day = time.perf_counter()
        while clock.now < end:
            nxt = heap[0][0] if heap else end
            if next_sweep <= nxt:
                clock.now = next_sweep
                w = time.perf_counter()
                await service.sweep()
                in_scheduler += time.perf_counter() - w
                next_sweep += timedelta(seconds=60)
                continue
            at, _, sid, att, outcome, raw = heapq.heappop(heap)
            clock.now = at
            w = time.perf_counter()
            decision = await service.on_call_result({"survey_id": sid, "attempt": att, "outcome": outcome,
                                                     "answers": raw})
            in_scheduler += time.perf_counter() - w
            if decision == "retry":
                got = await surveys.get(sid)
                due[(sid, att + 1)] = got.due_at
        day_wall = time.perf_counter() - t_day
        await service.drain()
        states = {}
        async with read_sessions() as session:
            from sqlalchemy import func, select
            states = dict((await session.execute(select(S.c.state, func.count()).group_by(S.c.state))).all())
        await redis.aclose()
        await engine.dispose()
        await read_engine.dispose()

    ideal = baseline({sid: d for (sid, a), d in due.items() if a == 1}, args.limit, rules, start, end)
    calling_seconds = 9 * 3600  # 09-12 + 14-20 on a working day
    result = {
        "surveys": n, "limit": args.limit,
        "tickets_bulk_s": round(tickets_s, 2),
        "schedule_per_s": round(sample / schedule_s, 1) if sample else None,
        "bulk_insert_s": round(bulk_s, 2),
        "placed": len(placed), "baseline_placed": ideal["placed"],
        "dup_originates": len(placed) - len(set(placed)),
        "simulated_originates_per_s": round(len(placed) / calling_seconds, 3),
        "scheduler_originates_per_wall_s": round(len(placed) / in_scheduler, 1),
        "day_wall_s": round(day_wall, 1),
        "lateness_p50_s": round(pct(lateness, 0.5), 1), "lateness_p99_s": round(pct(lateness, 0.99), 1),
        "baseline_lateness_p50_s": round(pct(ideal["lateness"], 0.5), 1),
        "baseline_lateness_p99_s": round(pct(ideal["lateness"], 0.99), 1),
        "states_after_day": states,
    }
    result["lateness_p50_ratio"] = round(result["lateness_p50_s"] / max(result["baseline_lateness_p50_s"], 1e-9), 3)
    result["lateness_p99_ratio"] = round(result["lateness_p99_s"] / max(result["baseline_lateness_p99_s"], 1e-9), 3)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--surveys", type=int, default=100_000)
    p.add_argument("--limit", type=int, default=10)
    p.add_argument("--sample", type=int, default=2000, help="surveys scheduled through schedule() (timed)")
    args = p.parse_args()
    result = asyncio.run(run(args))
    print("survey scheduler benchmark (FAKE TIME: simulated calls; measures the scheduler, not Asterisk)")
    for k, v in result.items():
        print(f"  {k:34s} {v}")
    out = ROOT / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    (out / "survey_scheduler.json").write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
