"""The centre's reports: 日通报、周研判、月分析, the three rates and ranking, volumes, overdue lists, satisfaction.

Every figure is one SQL aggregate (GROUP BY in the database), never a loop over ticket rows in Python,
so a month of a million tickets is a handful of index or table scans. Local-time grouping (hour of day,
calendar day) is done in SQL for both SQLite (stored as naive UTC text) and PostgreSQL (timestamptz).

Periods are half-open [start, end) in the centre's time zone. Tickets count in the period they were
created; the rates count lead assignments dispatched in the period (``TicketStore.rates``); satisfaction
counts survey answers given in the period.

What each figure counts (the README's "Rates" paragraph says the same):
- 来件总数 ``totals.created``: accepted cases (受理件) created in the period: every ticket except drafts not yet
  accepted, invalid records (无效件) and duplicates merged into another ticket. Types, places, hours and days
  count the same set; ``totals.excluded`` shows the records left out, ``totals.invalid_reasons`` the 无效件 by
  reason (the agent page closes a call's draft with 打错电话, 无声电话, 已转接, 骚扰电话 in one key).
- 环比 ``totals.change``: against the same span of the previous period. A period still running (the month so
  far) is compared with as much of the previous period, up to the same time; a finished one with the whole
  previous period (日: the day before, 周: the week before, 月: the calendar month before).
- 直接办结 ``totals.answered_on_spot``: accepted cases the centre answered itself (当场解答), whatever happened
  later (surveyed, archived); 直接办结率 = 直接办结 / 来件总数.
- 满意率 / 解决率 centre-wide ``satisfaction``: every survey answer given in the period, on dispatched and
  on-spot tickets alike; per department only its lead assignments (``rates``). 解决率 = answers "resolved" /
  answers to the resolved question, everywhere.
- 督办件 ``supervision``: 督办 whose response deadline falls in the period, per lead department, answered on time,
  late, overdue or pending; ``alert`` the open 督办 past due without a response when the report is made.
- 提级件 ``escalated``: tickets escalated and dispatched to the higher level in the period.
- 兜底件 ``fallback``: replies classed 无法办理（兜底） in the period, by department (the weekly 专报).
- 台账决定 ``ledger_decisions``: ledger items recorded in the period by decision; ``decided``: decisions taken in it.
These four read the ticket store's lists (``TicketStore.supervision``, ``fallback_cases``, ``ledger_counts``),
so they count exactly what ``/api/v1/supervision``, ``/api/v1/fallback`` and ``/api/v1/ledger/summary`` count.
"""
from __future__ import annotations

import asyncio
import inspect
import json
import os
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping
from zoneinfo import ZoneInfo

from sqlalchemy import Index, String, and_, case, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tickets import workflow
from tickets.accounts.service import Principal
from tickets.models import Assignment, Department, LedgerItem, Ticket, TicketHistory
from tickets.reports import rates
from tickets.service import TicketStore

# Covering indexes for the report scans: each aggregate reads a range of one index and never the table rows
# (on a million tickets, a range on ix_tickets_created_at alone costs a random row read per ticket).
# Declared here, on the tickets tables, so autogenerate sees them; created by migration 0005_knowledge.
REPORT_INDEXES = (
    Index("ix_tickets_report", Ticket.created_at, Ticket.status, Ticket.request_type, Ticket.urgency,
          Ticket.district, Ticket.channel, Ticket.category),
    Index("ix_assignments_report", Assignment.dispatched_at, Assignment.role, Assignment.department_id,
          Assignment.outcome, Assignment.signed_at, Assignment.sign_due, Assignment.closed_at, Assignment.reply_due,
          Assignment.satisfaction, Assignment.resolved),
    Index("ix_assignments_surveyed", Assignment.surveyed_at, Assignment.role, Assignment.satisfaction,
          Assignment.resolved),
    Index("ix_assignments_reply_due", Assignment.reply_due, Assignment.role, Assignment.department_id,
          Assignment.outcome, Assignment.closed_at),
    # Survey answers by the time they were given (the centre-wide 满意率 counts on-spot tickets' surveys too,
    # which have no assignment); created by migration 0007_report_history.
    Index("ix_ticket_history_action_at", TicketHistory.action, TicketHistory.at, TicketHistory.ticket_id),
)
# Records that are not cases: never in 来件总数, types, places, hours or days.
NOT_CASES = ("draft", "invalid", "merged")
# The longest custom period a report or /api/v1/rates accepts (a year, leap day included).
MAX_REPORT_DAYS = 366
KIND_LABELS = {"daily": "日通报", "weekly": "周研判", "monthly": "月分析"}
TYPE_LABELS = {"inquiry": "咨询", "help": "求助", "complaint": "投诉", "report": "举报", "suggestion": "建议",
               "praise": "表扬"}
CHANNEL_LABELS = {"phone": "电话", "web": "网站", "wechat": "微信", "app": "APP", "mailbox": "信箱", "walk_in": "来访",
                  "sms": "短信", "email": "电子邮件"}
SATISFACTION_LABELS = {"satisfied": "满意", "basically_satisfied": "基本满意", "dissatisfied": "不满意"}
# Who the reports read the ticket store as (督办, 提级, 兜底 lists): the centre, every department.
REPORTER = Principal(id=0, username="reports", name="统计报表", role="supervisor", department_id=None,
                     department_code=None, interface=None)
SUPERVISION_STATES = ("on_time", "late", "overdue", "pending")
# Provided by telephony (wired in server.py): (start, end) -> one row per queue, then a "合计" row, each
# {queue, offered, answered, abandoned, answer_rate, service_level_seconds, answered_within, answer_rate_within}.
AnswerRates = Callable[[datetime, datetime], "Awaitable[list[dict[str, Any]]] | list[dict[str, Any]]"]


@dataclass(frozen=True)
class Period:
    kind: str
    start: datetime
    end: datetime
    label: str

    @property
    def previous(self) -> "Period":
        if self.kind == "monthly":
            first = (self.start.date() - timedelta(days=1)).replace(day=1)
            return period_for("monthly", first, self.start.tzinfo)  # type: ignore[arg-type]
        length = self.end - self.start
        return Period(self.kind, self.start - length, self.start, "上期")


@dataclass(frozen=True)
class Comparison:
    """The two equal spans 环比 compares: [current_start, current_end) and [previous_start, previous_end)."""

    current_start: datetime
    current_end: datetime
    previous_start: datetime
    previous_end: datetime
    partial: bool  # the period is still running: both spans stop at the same time of the period

    def note(self, tz: ZoneInfo) -> str:
        years = {t.astimezone(tz).year for t in (self.previous_start, self.current_end - timedelta(microseconds=1))}

        def at(t: datetime) -> str:
            t = t.astimezone(tz)
            return (f"{t.year}年" if len(years) > 1 else "") + f"{t.month}月{t.day}日" + \
                (f"{t:%H:%M}" if t.time() != time(0) else "")

        def span(a: datetime, b: datetime) -> str:
            if b.astimezone(tz).time() == time(0):  # whole days: name the last day, not the next midnight
                last = b - timedelta(days=1)
                return at(a) if last.astimezone(tz).date() == a.astimezone(tz).date() else f"{at(a)}至{at(last)}"
            return f"{at(a)}至{at(b)}"

        kind = "同期（等长区间）" if self.partial else "整期"
        return f"环比口径：本期{span(self.current_start, self.current_end)}对比上期{kind}" \
               f"{span(self.previous_start, self.previous_end)}"


def comparison(p: Period, now: datetime) -> Comparison | None:
    """The spans 环比 compares: a finished period with the whole previous one; a running period (now inside
    it) from its start to now with the previous period from its start over the same elapsed time, capped at
    the previous period's end; nothing for a period that has not begun."""
    prev = p.previous
    if now >= p.end:
        return Comparison(p.start, p.end, prev.start, prev.end, False)
    if now <= p.start:
        return None
    return Comparison(p.start, now, prev.start, min(prev.start + (now - p.start), prev.end), True)


def period_for(kind: str, day: date, tz: ZoneInfo) -> Period:
    """daily: that day; weekly: the Monday-to-Sunday week holding it; monthly: its calendar month."""
    if kind == "daily":
        start_day, end_day = day, day + timedelta(days=1)
        label = f"{day.year}年{day.month}月{day.day}日"
    elif kind == "weekly":
        start_day = day - timedelta(days=day.weekday())
        end_day = start_day + timedelta(days=7)
        last = end_day - timedelta(days=1)
        label = f"{start_day.year}年{start_day.month}月{start_day.day}日至{last.month}月{last.day}日"
    elif kind == "monthly":
        start_day = day.replace(day=1)
        end_day = (start_day + timedelta(days=32)).replace(day=1)
        label = f"{start_day.year}年{start_day.month}月"
    else:
        raise ValueError(f"unknown report kind {kind!r}")
    return Period(kind, datetime.combine(start_day, time(0), tz), datetime.combine(end_day, time(0), tz), label)


def custom_period(day_from: date, day_to: date, tz: ZoneInfo) -> Period:
    return Period("custom", datetime.combine(day_from, time(0), tz),
                  datetime.combine(day_to + timedelta(days=1), time(0), tz), f"{day_from} 至 {day_to}")


def ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


class Reports:
    """Aggregate queries over the ticket tables. Takes the sessionmaker and the ticket store (for the rates)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], store: TicketStore, tz: ZoneInfo,
                 answer_rates: AnswerRates | None = None) -> None:
        self.sessions = sessions
        self.store = store
        self.tz = tz
        self.answer_rates = answer_rates

    # ------------------------------------------------------------ local time in SQL
    def _dialect(self) -> str:
        bind = self.sessions.kw.get("bind")
        return bind.dialect.name if bind is not None else "sqlite"

    def _local(self, column: Any, fmt: str, at: datetime) -> Any:
        """``fmt`` '%Y-%m-%d' (day) or '%Y-%m-%d %H' (day and hour) of ``column`` in the centre's zone, as text."""
        if self._dialect() == "postgresql":
            pg = {"%Y-%m-%d": "YYYY-MM-DD", "%Y-%m-%d %H": "YYYY-MM-DD HH24"}[fmt]
            return func.to_char(func.timezone(str(self.tz), column), pg)
        # SQLite keeps naive UTC; the zone's offset at the period start is exact for zones without DST
        # (China) and off by at most one hour on a DST night elsewhere.
        offset = int((at.utcoffset() or timedelta(0)).total_seconds() // 60)
        return func.strftime(fmt, column, f"{offset:+d} minutes")

    # ------------------------------------------------------------ sections
    async def _scalar_rows(self, stmt: Any) -> list[Any]:
        async with self.sessions() as session:
            return list((await session.execute(stmt)).all())

    def _hour_key(self, column: Any) -> Any:
        """The UTC hour a timestamp falls in: a cheap text prefix on SQLite, date_trunc on PostgreSQL.

        Converting each hour to local time happens in Python on at most 24 × days rows, which is exact for
        every zone whose offset is whole hours (China's is), DST included."""
        if self._dialect() == "postgresql":
            return func.date_trunc("hour", column)
        return func.substr(column, 1, 13)

    def _local_hour(self, key: Any) -> datetime:
        if isinstance(key, datetime):
            return key.astimezone(self.tz)
        return datetime.strptime(key, "%Y-%m-%d %H").replace(tzinfo=timezone.utc).astimezone(self.tz)

    async def ticket_cube(self, p: Period) -> list[dict[str, Any]]:
        """One range scan of ``ix_tickets_report``: counts by (UTC hour, type, status, urgency), at most
        24 × days × 6 × 11 × 2 rows whatever the number of tickets. Totals, type, hour and day are folded
        from these rows (measured: a multi-column GROUP BY beats one CASE sum per type and status).
        ``count``, ``urgent`` and ``types`` count cases only (not ``NOT_CASES``); ``statuses`` every record."""
        hour = self._hour_key(Ticket.created_at)
        stmt = (select(hour, Ticket.request_type, Ticket.status, Ticket.urgency, func.count())
                .where(Ticket.created_at >= p.start, Ticket.created_at < p.end)
                .group_by(hour, Ticket.request_type, Ticket.status, Ticket.urgency))
        cells: dict[Any, dict[str, Any]] = {}
        for key, rtype, status, urgency, n in await self._scalar_rows(stmt):
            cell = cells.get(key)
            if cell is None:
                cell = cells[key] = {"at": self._local_hour(key), "count": 0, "urgent": 0,
                                     "types": dict.fromkeys(TYPE_LABELS, 0),
                                     "statuses": dict.fromkeys(workflow.STATUSES, 0)}
            n = int(n)
            cell["statuses"][status] = cell["statuses"].get(status, 0) + n
            if status in NOT_CASES:
                continue
            cell["count"] += n
            cell["urgent"] += n if urgency == "urgent" else 0
            cell["types"][rtype] = cell["types"].get(rtype, 0) + n
        return list(cells.values())

    async def place_cube(self, p: Period) -> dict[str, dict[str, int]]:
        """The second scan: cases by (district, channel, category), folded per dimension."""
        stmt = (select(Ticket.district, Ticket.channel, Ticket.category, func.count())
                .where(Ticket.created_at >= p.start, Ticket.created_at < p.end, Ticket.status.not_in(NOT_CASES))
                .group_by(Ticket.district, Ticket.channel, Ticket.category))
        out: dict[str, dict[str, int]] = {"district": {}, "channel": {}, "category": {}}
        for district, channel, category, n in await self._scalar_rows(stmt):
            for dim, value in (("district", district), ("channel", channel), ("category", category)):
                out[dim][value or ""] = out[dim].get(value or "", 0) + int(n)
        return out

    async def _cases(self, start: datetime, end: datetime) -> int:
        async with self.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(Ticket).where(
                Ticket.created_at >= start, Ticket.created_at < end, Ticket.status.not_in(NOT_CASES))) or 0)

    async def _answered_on_spot_later(self, p: Period) -> int:
        """Cases answered on the spot that have moved on since (surveyed, archived): no lead department and a
        reply time. A dispatched case always keeps its lead; an invalid record archived has no reply time."""
        async with self.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(Ticket).where(
                Ticket.created_at >= p.start, Ticket.created_at < p.end, Ticket.status.in_(("surveyed", "archived")),
                Ticket.lead_department_id.is_(None), Ticket.replied_at.is_not(None))) or 0)

    async def totals(self, p: Period, cube: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
        by_status = {s: sum(h["statuses"][s] for h in cube) for s in workflow.STATUSES}
        by_status = {s: n for s, n in by_status.items() if n}
        urgent = sum(h["urgent"] for h in cube)
        created = sum(h["count"] for h in cube)
        span = comparison(p, now)
        previous = current = None
        if span is not None:
            previous = await self._cases(span.previous_start, span.previous_end)
            current = await self._cases(span.current_start, span.current_end) if span.partial else created
        async with self.sessions() as session:
            ledger = int(await session.scalar(select(func.count()).select_from(LedgerItem).where(
                LedgerItem.at >= p.start, LedgerItem.at < p.end)) or 0)
            # Calls handled without a ticket (打错电话, 无声电话, 已转接...): the reason is the history note.
            invalid = (await session.execute(
                select(TicketHistory.note, func.count()).join(Ticket, Ticket.id == TicketHistory.ticket_id)
                .where(TicketHistory.action == "mark_invalid", Ticket.created_at >= p.start,
                       Ticket.created_at < p.end).group_by(TicketHistory.note))).all()
        on_spot = by_status.get("answered_on_spot", 0)
        if by_status.get("surveyed") or by_status.get("archived"):
            on_spot += await self._answered_on_spot_later(p)
        return {
            "created": created, "counts": "受理件（不含草稿、无效件和合并的重复件）",
            "excluded": {s: by_status.get(s, 0) for s in NOT_CASES},
            "invalid_reasons": [{"reason": r, "count": int(n)}
                                for r, n in sorted(invalid, key=lambda rn: (-rn[1], rn[0]))],
            "previous_created": previous, "compared_created": current,
            "change": ratio(current - previous, previous) if current is not None and previous is not None else None,
            "comparison": None if span is None else {
                "current_start": span.current_start, "current_end": span.current_end,
                "previous_start": span.previous_start, "previous_end": span.previous_end, "partial": span.partial,
                "note": span.note(self.tz)},
            "urgent": urgent, "ledger": ledger,
            "answered_on_spot": on_spot, "on_spot_rate": ratio(on_spot, created),
            "by_status": [{"key": s, "label": workflow.STATUS_LABELS.get(s, s), "count": by_status[s]}
                          for s in workflow.STATUSES if s in by_status],
        }

    @staticmethod
    def _ranked(counts: Mapping[str, int], labels: Mapping[str, str] | None = None, limit: int = 50,
                empty_label: str = "未填写") -> list[dict[str, Any]]:
        rows = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        return [{"key": k, "label": (labels or {}).get(k, k) or empty_label, "count": n} for k, n in rows]

    def by_hour(self, cube: list[dict[str, Any]]) -> list[int]:
        counts = [0] * 24
        for h in cube:
            counts[h["at"].hour] += h["count"]
        return counts

    def by_day(self, p: Period, cube: list[dict[str, Any]]) -> list[dict[str, Any]]:
        per_day: dict[str, int] = {}
        for h in cube:
            day = h["at"].date().isoformat()
            per_day[day] = per_day.get(day, 0) + h["count"]
        out, d = [], p.start.date()
        while d < p.end.date():
            out.append({"day": d.isoformat(), "count": per_day.get(d.isoformat(), 0)})
            d += timedelta(days=1)
        return out

    async def satisfaction(self, p: Period) -> dict[str, Any]:
        """Every survey answer given in the period (the ``record_survey`` entries of the history), on dispatched
        and on-spot tickets alike; a reopened ticket's second answer is a second answer."""
        H = TicketHistory
        day = self._local(H.at, "%Y-%m-%d", p.start)
        sat = H.data["satisfaction"].as_string()
        # JSON true/false: 1/0 from SQLite's json_extract, 'true'/'false' from PostgreSQL's ->>; null is NULL.
        res = cast(H.data["resolved"].as_string(), String)
        rows = await self._scalar_rows(select(day, sat, res, func.count())
                                       .where(H.action == "record_survey", H.at >= p.start, H.at < p.end)
                                       .group_by(day, sat, res))
        by_day: dict[str, list[int]] = {}
        for d_key, answer, resolved, n in rows:
            cell = by_day.setdefault(d_key, [0, 0, 0, 0, 0, 0])  # s, b, x, resolved, resolved_answered, n
            n = int(n)
            if answer in SATISFACTION_LABELS:
                cell[list(SATISFACTION_LABELS).index(answer)] += n
            if resolved is not None:
                cell[4] += n
                cell[3] += n if str(resolved).lower() in ("1", "true") else 0
            cell[5] += n
        w = self.store.settings.tickets.basically_satisfied_weight
        series, d = [], p.start.date()
        tot = [0] * 6
        while d < p.end.date():
            s, b, x, res_n, answered, n = by_day.get(d.isoformat(), [0] * 6)
            tot = [a + v for a, v in zip(tot, (s, b, x, res_n, answered, n))]
            series.append({"day": d.isoformat(), "satisfied": s, "basically_satisfied": b, "dissatisfied": x,
                           "resolved": res_n, "resolved_answered": answered, "surveyed": n,
                           "satisfaction_rate": ratio(s + w * b, n), "resolution_rate": ratio(res_n, answered)})
            d += timedelta(days=1)
        s, b, x, res_n, answered, n = tot
        return {"by_day": series, "satisfied": s, "basically_satisfied": b, "dissatisfied": x, "resolved": res_n,
                "resolved_answered": answered, "surveyed": n, "satisfaction_rate": ratio(s + w * b, n),
                "resolution_rate": ratio(res_n, answered)}

    async def overdue(self, p: Period, now: datetime, departments: Mapping[int, Department]) -> dict[str, Any]:
        """Lead assignments whose reply deadline fell in the period and were replied late or not at all."""
        A = Assignment
        late = and_(A.role == "lead", A.reply_due >= p.start, A.reply_due < p.end, A.reply_due < now,
                    or_(A.outcome.is_(None), A.outcome == "replied"),
                    or_(A.closed_at.is_(None), A.closed_at > A.reply_due))
        rows = await self._scalar_rows(select(A.department_id, func.count()).where(late).group_by(A.department_id)
                                       .order_by(func.count().desc()))
        by_dept = [{"department_id": d, "department": departments[d].name if d in departments else str(d),
                    "count": int(n)} for d, n in rows]
        open_stmt = (select(Ticket.number, Ticket.title, Ticket.lead_department_id, Ticket.reply_due,
                            Ticket.sign_due, Ticket.status, Ticket.supervised)
                     .where(self.store._overdue_clause(now)).order_by(Ticket.reply_due).limit(200))
        open_rows = await self._scalar_rows(open_stmt)
        open_list = [{"number": n, "title": t, "department": departments[d].name if d in departments else "",
                      "reply_due": rd, "sign_due": sd, "status": s,
                      "missed": "签收" if s == "dispatched" and sd and sd < now else "办结",
                      "due": sd if s == "dispatched" and sd and sd < now else rd,
                      "status_label": workflow.STATUS_LABELS.get(s, s), "supervised": sup,
                      "overdue_hours": round(((now - (sd if s == "dispatched" and sd and sd < now else rd))
                                              .total_seconds()) / 3600, 1) if (rd or sd) else None}
                     for n, t, d, rd, sd, s, sup in open_rows]
        async with self.sessions() as session:
            open_total = int(await session.scalar(select(func.count()).select_from(Ticket).where(
                self.store._overdue_clause(now))) or 0)
        return {"late_by_department": by_dept, "late_total": sum(r["count"] for r in by_dept),
                "open": open_list, "open_total": open_total}

    # ------------------------------------------------------------ 督办, 提级, 兜底, 台账决定 (from the store)
    @staticmethod
    def _department(departments: Mapping[int, Department], department_id: int | None) -> str:
        department = departments.get(department_id) if department_id is not None else None
        return department.name if department is not None else "未派单"

    def _case(self, t: Mapping[str, Any], departments: Mapping[int, Department], *fields: str) -> dict[str, Any]:
        """The few fields of a ticket view a report lists (never the caller or the whole text)."""
        return {"number": t["number"], "title": t["title"], "department_id": t["lead_department_id"],
                "department": self._department(departments, t["lead_department_id"]), "status": t["status"],
                "status_label": t["status_label"], **{f: t[f] for f in fields}}

    async def supervision(self, p: Period, departments: Mapping[int, Department]
                          ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The 督办 section and the 提级件 section, from one ``TicketStore.supervision`` read.

        督办件 whose response deadline falls in the period, per lead department: answered on time, late,
        overdue (deadline passed, no response) or pending (``TicketStore.supervision``), the overdue ones of the
        period, and ``alert``: every open 督办 past its deadline without a response when the report is made
        (``TicketStore.supervision_overdue``; the bulletin's 督办超期提醒). 提级件: see ``escalated``."""
        data = await self.store.supervision(REPORTER, p.start, p.end)
        alert: list[dict[str, Any]] = await self.store.supervision_overdue(REPORTER)
        fields = ("supervision_due", "supervision_answered_at", "supervision_state", "supervision_note")
        by_dept = [{"department_id": r["department_id"],
                    "department": self._department(departments, r["department_id"]), "count": r["supervised"],
                    **{s: r.get(s, 0) for s in SUPERVISION_STATES}}
                   for r in data["by_department"] if r["supervised"]]
        by_dept.sort(key=lambda r: (-r["overdue"], -r["count"], r["department"]))
        section = {"count": sum(r["count"] for r in by_dept),
                   **{s: sum(r[s] for r in by_dept) for s in SUPERVISION_STATES},
                   "by_department": by_dept,
                   "overdue_items": [self._case(t, departments, *fields) for t in data["overdue"]],
                   "alert": [self._case(t, departments, *fields) for t in alert]}
        return self.escalated(data, departments), section

    def escalated(self, data: Mapping[str, Any], departments: Mapping[int, Department]) -> dict[str, Any]:
        """提级件: tickets escalated (提级) and dispatched to the higher level in the period, under their lead now."""
        items = [self._case(t, departments, "escalation_level", "dispatched_at") for t in data["escalated"]]
        by_dept: dict[str, int] = {}
        for t in items:
            by_dept[t["department"]] = by_dept.get(t["department"], 0) + 1
        ranked = sorted(by_dept.items(), key=lambda kv: (-kv[1], kv[0]))
        return {"count": len(items), "items": items,
                "by_department": [{"department": d, "count": n} for d, n in ranked]}

    async def fallback(self, p: Period, departments: Mapping[int, Department]) -> dict[str, Any]:
        """兜底件: replies classed 无法办理（兜底） in the period, by lead department, with the cases; the weekly
        周研判 is the supervisors' weekly 专报 of them (``special_report``)."""
        data = await self.store.fallback_cases(REPORTER, p.start, p.end)
        return {"count": data["total"], "special_report": p.kind == "weekly",
                "by_department": [{"department_id": r["department_id"],
                                   "department": self._department(departments, r["department_id"]),
                                   "count": r["count"]} for r in data["by_department"]],
                "items": [self._case(t, departments, "replied_at", "answer") for t in data["items"]]}

    async def first_response(self, p: Period, now: datetime) -> list[dict[str, Any]]:
        """首次响应 by channel, for the channels with a deadline (``deadlines.first_response_minutes``, GB/T 33358):
        requests that arrived in the period, handled in time (受理, 直接办结, 无效 or 并单 within the minutes),
        late, and still waiting past it. One grouped scan; the elapsed time is computed in SQL."""
        limits = self.store.settings.deadlines.first_response_minutes
        if not limits:
            return []
        first = (select(TicketHistory.ticket_id, func.min(TicketHistory.at).label("at"))
                 .where(TicketHistory.from_status == "draft", TicketHistory.to_status != "draft")
                 .group_by(TicketHistory.ticket_id).subquery())
        if self._dialect() == "postgresql":
            elapsed = func.extract("epoch", first.c.at - Ticket.created_at) / 60.0
        else:
            elapsed = (func.julianday(first.c.at) - func.julianday(Ticket.created_at)) * 1440.0
        limit = case(*[(Ticket.channel == ch, float(m)) for ch, m in limits.items()], else_=0.0)
        overdue_waiting = or_(*[and_(Ticket.channel == ch, Ticket.created_at < now - timedelta(minutes=m))
                                for ch, m in limits.items()])
        stmt = (select(Ticket.channel, func.count(),
                       func.sum(case((and_(first.c.at.is_not(None), elapsed <= limit), 1), else_=0)),
                       func.sum(case((and_(first.c.at.is_not(None), elapsed > limit), 1), else_=0)),
                       func.sum(case((and_(first.c.at.is_(None), overdue_waiting), 1), else_=0)))
                .outerjoin(first, first.c.ticket_id == Ticket.id)
                .where(Ticket.created_at >= p.start, Ticket.created_at < p.end, Ticket.channel.in_(list(limits)))
                .group_by(Ticket.channel))
        found = {ch: (int(n), int(ok or 0), int(late or 0), int(waiting or 0))
                 for ch, n, ok, late, waiting in await self._scalar_rows(stmt)}
        out = []
        for ch, minutes in limits.items():
            n, ok, late, waiting = found.get(ch, (0, 0, 0, 0))
            due = ok + late + waiting  # requests whose deadline has been decided one way or the other
            out.append({"channel": ch, "label": CHANNEL_LABELS.get(ch, ch), "minutes": minutes, "arrived": n,
                        "on_time": ok, "late": late, "waiting_overdue": waiting,
                        "on_time_rate": round(ok / due, 4) if due else None})
        return out

    async def ledger_decisions(self, p: Period) -> dict[str, Any]:
        """不满意台账 items recorded in the period (``totals.ledger``) counted by their decision (重办,
        解释说明后办结, 依法分流, still waiting) and their 回访 after re-handling, by ``TicketStore.ledger_counts``
        (the same count as ``/api/v1/ledger/summary``); ``decided``: the supervisors' decisions taken in the
        period, whenever the item was recorded."""
        L = LedgerItem
        revisited = L.revisit_at.is_not(None)
        rows = await self._scalar_rows(
            select(L.decision, revisited, L.revisit_satisfaction, L.revisit_resolved, func.count())
            .where(L.at >= p.start, L.at < p.end)
            .group_by(L.decision, revisited, L.revisit_satisfaction, L.revisit_resolved))
        items = [{"decision": d, "revisit_at": True if was else None, "revisit_satisfaction": sat,
                  "revisit_resolved": res} for d, was, sat, res, n in rows for _ in range(int(n))]
        counts = self.store.ledger_counts(items)
        decided = dict(await self._scalar_rows(select(L.decision, func.count()).where(
            L.decided_at >= p.start, L.decided_at < p.end).group_by(L.decision)))
        labels = workflow.LEDGER_DECISIONS
        return {"total": counts["total"], "revisited": counts["revisited"],
                "revisit_satisfied": counts["revisit_satisfied"],
                "by_decision": [{"key": k, "label": labels.get(k, k), "count": n}
                                for k, n in counts["by_decision"].items()],
                "decided": [{"key": k, "label": labels.get(k, k), "count": int(decided.get(k, 0))}
                            for k in labels if k != "pending_supervisor"]}

    async def department_counts(self, start: datetime, end: datetime) -> dict[int, rates.Counts]:
        """Counts behind the core rates, aggregated in SQL over lead assignments dispatched in [start, end).

        Assignments the dispatcher agreed were not the department's (approved returns) and tickets merged
        away do not count against the department.
        """
        A = Assignment
        counted = or_(A.outcome.is_(None), A.outcome == "replied")
        one = lambda cond: func.sum(case((cond, 1), else_=0))  # noqa: E731
        # "+ 0": SQLite's planner would pick (department_id, dispatched_at) to avoid sorting for the GROUP BY
        # and then read every table row; on an expression it reads the period's range of the covering index
        # ix_assignments_report instead (2x faster on a month of 700k assignments).
        dept = (A.department_id + 0).label("department_id")
        stmt = select(
            dept,
            one(counted),
            one(and_(counted, A.signed_at.is_not(None), A.signed_at <= A.sign_due)),
            one(and_(counted, A.outcome == "replied")),
            one(and_(counted, A.outcome == "replied", A.closed_at <= A.reply_due)),
            one(and_(counted, A.satisfaction.is_not(None))),
            one(and_(counted, A.resolved.is_(True))),
            one(and_(counted, A.resolved.is_not(None))),
            one(and_(counted, A.satisfaction == "satisfied")),
            one(and_(counted, A.satisfaction == "basically_satisfied")),
            one(and_(counted, A.satisfaction == "dissatisfied")),
        ).where(A.role == "lead", A.dispatched_at >= start, A.dispatched_at < end).group_by(dept)
        async with self.sessions() as session:
            rows = (await session.execute(stmt)).all()
        return {row[0]: rates.Counts(*[int(v or 0) for v in row[1:]]) for row in rows}

    async def rates(self, start: datetime, end: datetime, departments: Mapping[int, Department]
                    ) -> list[dict[str, Any]]:
        """Rates and composite ranking: the same query as ``/api/v1/rates`` (one definition of the rates).
        Ranked departments first, then the unranked (``unranked``: 样本不足 or 无派单), see ``rates.ranking``."""
        counts = await self.department_counts(start, end)
        t = self.store.settings.tickets
        weights = rates.Weights(t.weight_response, t.weight_resolution, t.weight_satisfaction,
                                t.basically_satisfied_weight)
        table = rates.ranking({d: counts.get(d, rates.Counts()) for d in departments if departments[d].active
                               or d in counts}, weights, t.min_cases_to_rank)
        return [{"department_id": row.department_id, "department": departments[row.department_id].name,
                 "code": departments[row.department_id].code, **row.as_dict()} for row in table]

    async def departments(self) -> dict[int, Department]:
        async with self.sessions() as session:
            return {d.id: d for d in (await session.scalars(select(Department))).all()}

    async def answer_rate_section(self, p: Period) -> list[dict[str, Any]] | None:
        if self.answer_rates is None:
            return None
        result = self.answer_rates(p.start, p.end)
        if inspect.isawaitable(result):
            result = await result
        return list(result)

    # ------------------------------------------------------------ the whole report
    async def build(self, p: Period, now: datetime) -> dict[str, Any]:
        departments = await self.departments()
        ranking = await self.rates(p.start, p.end, departments)
        cube = await self.ticket_cube(p)
        places = await self.place_cube(p)
        escalated, supervision = await self.supervision(p, departments)
        report = {
            "kind": p.kind, "kind_label": KIND_LABELS.get(p.kind, "统计报表"), "label": p.label,
            "start": p.start, "end": p.end, "generated_at": now,
            "totals": await self.totals(p, cube, now),
            "by_type": self._ranked({t: n for t in TYPE_LABELS if (n := sum(h["types"][t] for h in cube))},
                                    TYPE_LABELS),
            "by_channel": self._ranked(places["channel"], CHANNEL_LABELS),
            "by_district": self._ranked(places["district"], limit=30),
            "by_category": self._ranked(places["category"], limit=15),
            "by_hour": self.by_hour(cube),
            "by_day": self.by_day(p, cube) if p.kind != "daily" else [],
            "rates": ranking,
            "ranking_rule": ranking_rule(self.store.settings.tickets.min_cases_to_rank),
            "satisfaction": await self.satisfaction(p),
            "overdue": await self.overdue(p, now, departments),
            "answer_rates": await self.answer_rate_section(p),
            "escalated": escalated, "supervision": supervision,
            "fallback": await self.fallback(p, departments),
            "ledger_decisions": await self.ledger_decisions(p),
            "first_response": await self.first_response(p, now),
        }
        return report


def ranking_rule(min_cases: int) -> str:
    return (f"派单不少于{min_cases}件的单位参加排名，不足的列出但不排名（样本不足）；综合评分中没有数据的指标"
            f"（如尚无回访）按0计。")


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(type(value).__name__)


async def generate_scheduled(reports: Reports, out_dir: Path, now: datetime,
                             render: Callable[[dict[str, Any]], bytes] | None = None) -> list[Path]:
    """Run once a day (after midnight): yesterday's 日通报; on Mondays last week's 周研判; on the 1st last
    month's 月分析. Writes ``<kind>-<start>.json`` and ``.xlsx`` atomically and skips files already there,
    so two server processes running it at once do no harm."""
    from tickets.reports import export

    yesterday = now.astimezone(reports.tz).date() - timedelta(days=1)
    due = [period_for("daily", yesterday, reports.tz)]
    today = yesterday + timedelta(days=1)
    if today.weekday() == 0:
        due.append(period_for("weekly", yesterday, reports.tz))
    if today.day == 1:
        due.append(period_for("monthly", yesterday, reports.tz))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for p in due:
        stem = out_dir / f"{p.kind}-{p.start.date().isoformat()}"
        if stem.with_suffix(".xlsx").exists():
            continue
        report = await reports.build(p, now)
        xlsx = await asyncio.get_running_loop().run_in_executor(None, export.to_xlsx, report)
        outputs = {".json": json.dumps(report, ensure_ascii=False, default=_json_default, indent=1).encode(),
                   ".xlsx": xlsx}
        if render is not None:
            outputs[".html"] = render(report)
        for suffix, data in outputs.items():
            tmp = stem.with_suffix(suffix + f".{os.getpid()}.part")
            tmp.write_bytes(data)
            os.replace(tmp, stem.with_suffix(suffix))
            written.append(stem.with_suffix(suffix))
    return written


# ---------------------------------------------------------------- supervisor work lists
async def pending_extensions(sessions: async_sessionmaker[AsyncSession], district: str | None = None
                             ) -> list[dict[str, Any]]:
    """延期待审批; ``district``: a district sub-center's own only."""
    stmt = select(Ticket.number, Ticket.title, Ticket.lead_department_id, Ticket.extension_pending_days,
                  Ticket.reply_due).where(Ticket.extension_pending_days.is_not(None), Ticket.status == "signed")
    if district:
        stmt = stmt.where(Ticket.district == district)
    async with sessions() as session:
        rows = (await session.execute(stmt.order_by(Ticket.reply_due).limit(200))).all()
        # The department's reason is the note of its latest 申请延期 (the ticket keeps only the days).
        asked: dict[str, tuple[str, str, datetime | None]] = {}
        if rows:
            found = (await session.execute(
                select(Ticket.number, TicketHistory.note, TicketHistory.actor_name, TicketHistory.at)
                .join(TicketHistory, TicketHistory.ticket_id == Ticket.id)
                .where(Ticket.number.in_([r[0] for r in rows]), TicketHistory.action == "request_extension")
                .order_by(TicketHistory.at, TicketHistory.id))).all()
            asked = {n: (note, by, at) for n, note, by, at in found}
    none: tuple[str, str, datetime | None] = ("", "", None)
    return [{"number": n, "title": t, "lead_department_id": d, "days": days, "reply_due": due,
             "reason": asked.get(n, none)[0], "requested_by": asked.get(n, none)[1],
             "requested_at": asked.get(n, none)[2]}
            for n, t, d, days, due in rows]
