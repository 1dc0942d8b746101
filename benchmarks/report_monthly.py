"""Monthly analysis (月分析) over 1,000,000 tickets: SQL aggregation against a Python-loop baseline.

    /work/main/.venv/bin/python benchmarks/report_monthly.py [--tickets 1000000] [--runs 3] [--keep DB]

Builds a migrated SQLite database holding one month (November 2026) of tickets with their lead
assignments (dispatched, signed, replied, surveyed, some overdue), plus the previous month for the
comparison, then times ``tickets.reports.Reports.build`` for the month. The baseline fetches the
month's ticket and assignment rows and counts the same figures in Python, the way a report would
be written without GROUP BY. Prints medians and the ratio.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import migrations
from config.settings import load_settings

TZ = ZoneInfo("Asia/Shanghai")
FMT = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores DateTime on SQLite (naive UTC here)
TYPES = ["inquiry", "help", "complaint", "report", "suggestion", "praise"]
DISTRICTS = [f"{n}区" for n in "东西南北中高经新湖山"] + ["滨江区", "临港区"]
SAT = ["satisfied", "satisfied", "satisfied", "basically_satisfied", "dissatisfied"]


TICKET_COLS = ("id", "number", "version", "channel", "caller_name", "caller_phone", "anonymous", "survey_opt_out",
               "request_type", "urgency", "title", "content", "address", "address_key", "district", "category",
               "created_at", "updated_at", "status", "lead_department_id", "co_handler_ids",
               "extension_days_granted", "supervised", "escalation_level", "survey_unreachable", "ledger_pending",
               "reopen_count", "sign_due", "reply_due")
ASSIGNMENT_COLS = ("ticket_id", "department_id", "role", "dispatched_at", "sign_due", "reply_due", "signed_at",
                   "closed_at", "outcome", "reason", "satisfaction", "resolved", "surveyed_at")
# The survey answer as the workflow records it: the centre-wide 满意率 reads these history entries.
HISTORY_COLS = ("ticket_id", "action", "at", "actor_role", "actor_name", "from_status", "to_status", "note", "data")


def generate(n: int, seed: int = 1):  # type: ignore[no-untyped-def]
    """Tickets (and lead assignments) with aware UTC datetimes: the month plus 10 % in the month before."""
    rnd = random.Random(seed)
    start = datetime(2026, 10, 31, 16, 0, tzinfo=timezone.utc)  # 2026-11-01 00:00 Shanghai
    span = 30 * 86400
    for i in range(1, n + n // 10 + 1):
        created = start + timedelta(seconds=rnd.random() * span) if i <= n \
            else start - timedelta(seconds=rnd.random() * span)
        r = rnd.random()
        status = "answered_on_spot" if r < 0.25 else "invalid" if r < 0.28 else "surveyed" if r < 0.75 \
            else "replied" if r < 0.85 else "signed" if r < 0.93 else "dispatched"
        dept = rnd.randint(1, 40) if status not in ("answered_on_spot", "invalid") else None
        reply_due = sign_due = sat = None
        assignment = None
        if dept:
            d_at = created + timedelta(minutes=rnd.randint(2, 60))
            sign_due = d_at + timedelta(days=1)
            reply_due = d_at + timedelta(days=rnd.choice([3, 7, 15]))
            signed = d_at + timedelta(hours=rnd.choice([1, 3, 8, 30])) if status != "dispatched" else None
            closed = signed + timedelta(days=rnd.uniform(0.5, 12)) if status in ("replied", "surveyed") else None
            sat = rnd.choice(SAT) if status == "surveyed" else None
            assignment = (i, dept, "lead", d_at, sign_due, reply_due, signed, closed, "replied" if closed else None,
                          "", sat, None if sat is None else sat != "dissatisfied",
                          closed + timedelta(days=1) if sat else None)
        ticket = (i, f"202611-{i:09d}", 1, "phone", "", f"139{i:08d}"[:11], False, False, rnd.choice(TYPES),
                  "urgent" if rnd.random() < 0.05 else "normal", "标题", "内容", "", "", rnd.choice(DISTRICTS), "",
                  created, created, status, dept, "[]", 0, False, 0, False, False, 0, sign_due, reply_due)
        survey = None
        if assignment is not None and sat is not None:
            survey = (i, "record_survey", assignment[-1], "system", "回访", "replied", "surveyed", "",
                      json.dumps({"satisfaction": sat, "resolved": sat != "dissatisfied", "via": "ivr"}))
        yield ticket, assignment, survey


def _sqlite_value(v):  # type: ignore[no-untyped-def]
    if isinstance(v, datetime):
        return v.strftime(FMT)
    return int(v) if isinstance(v, bool) else v


def build(path: Path, n: int, seed: int = 1) -> None:
    migrations.upgrade(f"sqlite+aiosqlite:///{path}")
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.executemany("INSERT INTO departments (id, code, name, domains, active) VALUES (?,?,?,?,?)",
                   [(i, f"d{i}", f"第{i}委办局", "[]", 1) for i in range(1, 41)])
    tickets: list = []
    assignments: list = []
    t_sql = f"INSERT INTO tickets ({', '.join(TICKET_COLS)}) VALUES ({', '.join('?' * len(TICKET_COLS))})"
    a_sql = (f"INSERT INTO assignments ({', '.join(ASSIGNMENT_COLS)}) "
             f"VALUES ({', '.join('?' * len(ASSIGNMENT_COLS))})")
    h_sql = f"INSERT INTO ticket_history ({', '.join(HISTORY_COLS)}) VALUES ({', '.join('?' * len(HISTORY_COLS))})"
    history: list = []
    for ticket, assignment, survey in generate(n, seed):
        tickets.append([_sqlite_value(v) for v in ticket])
        if assignment:
            assignments.append([_sqlite_value(v) for v in assignment])
        if survey:
            history.append([_sqlite_value(v) for v in survey])
        if len(tickets) >= 100_000:
            db.executemany(t_sql, tickets)
            db.executemany(a_sql, assignments)
            db.executemany(h_sql, history)
            tickets.clear()
            assignments.clear()
            history.clear()
    db.executemany(t_sql, tickets)
    db.executemany(a_sql, assignments)
    db.executemany(h_sql, history)
    db.commit()
    db.execute("ANALYZE")
    db.close()


async def build_postgres(url: str, n: int, seed: int = 1) -> None:
    import asyncpg

    await asyncio.get_running_loop().run_in_executor(None, migrations.upgrade, url)  # alembic runs its own loop
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.copy_records_to_table("departments", records=[(i, f"d{i}", f"第{i}委办局", "[]", True)
                                                                 for i in range(1, 41)],
                                         columns=["id", "code", "name", "domains", "active"])
        tickets: list = []
        assignments: list = []
        history: list = []
        for ticket, assignment, survey in generate(n, seed):
            tickets.append(ticket)
            if assignment:
                assignments.append(assignment)
            if survey:
                history.append(survey)
            if len(tickets) >= 100_000:
                await conn.copy_records_to_table("tickets", records=tickets, columns=list(TICKET_COLS))
                await conn.copy_records_to_table("assignments", records=assignments, columns=list(ASSIGNMENT_COLS))
                await conn.copy_records_to_table("ticket_history", records=history, columns=list(HISTORY_COLS))
                tickets.clear()
                assignments.clear()
                history.clear()
        await conn.copy_records_to_table("tickets", records=tickets, columns=list(TICKET_COLS))
        await conn.copy_records_to_table("assignments", records=assignments, columns=list(ASSIGNMENT_COLS))
        await conn.copy_records_to_table("ticket_history", records=history, columns=list(HISTORY_COLS))
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def measure(url: str, runs: int) -> None:
    from sqlalchemy import select
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from tickets.models import Assignment, Ticket
    from tickets.reports.service import NOT_CASES, Reports, period_for
    from tickets.service import TicketStore

    settings = load_settings(env={}).with_overrides(database={"url": url})
    engine = create_async_engine(url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    now = datetime(2026, 12, 1, 9, 0, tzinfo=TZ)
    store = TicketStore(sessions, settings, lambda: now)
    reports = Reports(sessions, store, TZ)
    p = period_for("monthly", date(2026, 11, 15), TZ)

    sql_times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        report = await reports.build(p, now)
        sql_times.append(time.perf_counter() - t0)
    # Baseline: the same headline figures counted in Python over the fetched rows.
    loop_times = []
    for _ in range(max(1, runs // 2) if runs > 1 else 1):
        t0 = time.perf_counter()
        async with sessions() as s:
            rows = (await s.execute(select(Ticket.status, Ticket.request_type, Ticket.district, Ticket.created_at,
                                           Ticket.urgency).where(Ticket.created_at >= p.start,
                                                                 Ticket.created_at < p.end))).all()
            arows = (await s.execute(select(Assignment.department_id, Assignment.signed_at, Assignment.sign_due,
                                            Assignment.outcome, Assignment.closed_at, Assignment.reply_due,
                                            Assignment.satisfaction, Assignment.resolved)
                                     .where(Assignment.dispatched_at >= p.start,
                                            Assignment.dispatched_at < p.end))).all()
        status, types, districts, hours = Counter(), Counter(), Counter(), Counter()
        cases = 0
        for st, rt, di, ca, _u in rows:
            status[st] += 1
            if st in NOT_CASES:  # 来件总数 counts accepted cases only, and so do types, places and hours
                continue
            cases += 1
            types[rt] += 1
            districts[di] += 1
            hours[ca.astimezone(TZ).hour] += 1
        per_dept: dict[int, list[int]] = {}
        for d, signed, sdue, outcome, closed, rdue, sat, res in arows:
            c = per_dept.setdefault(d, [0] * 5)
            c[0] += 1
            c[1] += bool(signed and signed <= sdue)
            c[2] += outcome == "replied"
            c[3] += sat is not None
            c[4] += sat == "satisfied"
        loop_times.append(time.perf_counter() - t0)
    await engine.dispose()
    assert report["totals"]["created"] == cases and sum(report["by_hour"]) == cases
    assert {x["key"]: x["count"] for x in report["by_type"]} == dict(types)
    assert sum(r["counts"]["dispatched"] for r in report["rates"]) == len(arows)
    assert report["satisfaction"]["surveyed"] > 0  # read from the survey entries of the history
    sql, loop = statistics.median(sql_times), statistics.median(loop_times)
    print(f"tickets in the month: {len(rows):,}; lead assignments: {len(arows):,}")
    print(f"monthly report, SQL aggregation (all sections): median {sql:.2f} s over {runs} runs "
          f"(min {min(sql_times):.2f}, max {max(sql_times):.2f})")
    print(f"baseline, fetch rows + count in Python (fewer sections): median {loop:.2f} s over {len(loop_times)} runs")
    print(f"ratio baseline / SQL: {loop / sql:.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tickets", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", help="reuse or create the SQLite database at this path")
    ap.add_argument("--postgres", action="store_true", help="run on a throw-away PostgreSQL cluster instead")
    args = ap.parse_args()
    if args.postgres:
        from tests import services

        with services.postgres_server() as base:
            url = services.create_database(base, "bench")
            t0 = time.perf_counter()
            asyncio.run(build_postgres(url, args.tickets))
            print(f"built {args.tickets:,} tickets (+10% previous month) on PostgreSQL in "
                  f"{time.perf_counter() - t0:.1f} s")
            asyncio.run(measure(url, args.runs))
        return
    with tempfile.TemporaryDirectory(prefix="hotline-bench-") as tmp:
        path = Path(args.keep) if args.keep else Path(tmp) / "bench.db"
        if not path.exists():
            t0 = time.perf_counter()
            build(path, args.tickets)
            print(f"built {args.tickets:,} tickets (+10% previous month) in {time.perf_counter() - t0:.1f} s: {path}")
        asyncio.run(measure(f"sqlite+aiosqlite:///{path}", args.runs))


if __name__ == "__main__":
    main()
