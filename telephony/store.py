"""Call records and the callback list in SQL; answer-rate reports per day, queue and agent."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .models import Callback, CallRecord
from .state import CallEnded, CallMissed

Clock = Callable[[], datetime]


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


class CallStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock, tz: tzinfo | None = None) -> None:
        self.sessions = sessions
        self.clock = clock
        self.tz = tz or timezone(timedelta(hours=8))  # the centre's day, for one callback entry per number per day

    async def save_call(self, e: CallEnded) -> bool:
        """Store a finished queue call once (Linkedid is unique: a second writer is a no-op)."""
        if not e.queue:
            return False
        rec = CallRecord(call_id=e.call_id, caller_num=e.caller_num, queue=e.queue, joined=_dt(e.joined),
                         answered=_dt(e.answered), ended=_dt(e.ended), wait_seconds=e.wait, talk_seconds=e.talk,
                         agent_interface=e.interface, agent_name=e.member_name, outcome=e.outcome,
                         recording=e.recording, lost=e.lost)
        return await self._insert_once(rec)

    async def _insert_once(self, row: Any) -> bool:
        """Insert unless a row with the same unique key exists (an event folded twice); True if inserted."""
        async with self.sessions() as s:
            s.add(row)
            try:
                await s.commit()
            except IntegrityError:
                await s.rollback()
                return False
        return True

    async def add_callback(self, m: CallMissed) -> bool:
        cb = Callback(call_id=m.call_id, caller_num=m.caller_num, caller_name=m.caller_name, queue=m.queue,
                      missed_at=_dt(m.at), wait_seconds=m.wait, reason=m.reason, status="pending", attempts=0,
                      agent_interface="", note="")
        return await self._insert_once(cb)

    # One row per missed call (idempotent by Linkedid, whichever source saw it first); the list shows one entry
    # per number per local day, the first missed call's row, with how many times the caller tried
    # (``missed_count``). Acting on the entry acts on every row of it.
    def _group_key(self, c: Callback) -> tuple[str, str]:
        day = c.missed_at.astimezone(self.tz).date().isoformat()
        return (c.caller_num or f"#{c.call_id}", day)  # an unknown number is never merged

    async def _group(self, s: AsyncSession, c: Callback) -> list[Callback]:
        if not c.caller_num:
            return [c]
        local = c.missed_at.astimezone(self.tz)
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        q = select(Callback).where(Callback.caller_num == c.caller_num, Callback.missed_at >= start,
                                   Callback.missed_at < start + timedelta(days=1)).order_by(Callback.missed_at,
                                                                                           Callback.id)
        return list((await s.scalars(q)).all())

    async def callbacks(self, status: str | None = "pending", limit: int = 200) -> list[dict[str, Any]]:
        """The list, oldest first; ``status="open"`` is what an agent still has to do (pending and calling,
        one entry each)."""
        return (await self.callback_page(status, limit))[0]

    async def callback_page(self, status: str | None = "pending", limit: int = 200
                            ) -> tuple[list[dict[str, Any]], int]:
        """The first ``limit`` entries, oldest first, and how many entries there are in all."""
        async with self.sessions() as s:
            q = select(Callback).order_by(Callback.missed_at, Callback.id)
            if status == "open":
                q = q.where(Callback.status.in_(OPEN))
            elif status:
                q = q.where(Callback.status == status)
            groups: dict[tuple[str, str], list[Callback]] = {}
            for c in (await s.scalars(q)).all():
                groups.setdefault(self._group_key(c), []).append(c)
            return [callback_dict(g[0], g) for g in list(groups.values())[:limit]], len(groups)

    async def claim(self, callback_id: int, username: str, name: str) -> dict[str, Any] | None:
        """Make ``username`` the owner of the entry (every row of it) unless another agent holds it: then
        ``CallbackTaken``. One conditional UPDATE, so of two agents claiming at once exactly one wins."""
        now = self.clock()
        async with self.sessions() as s:
            first = await s.get(Callback, callback_id)
            if first is None:
                return None
            ids = [c.id for c in await self._group(s, first)]
            res = await s.execute(update(Callback).where(Callback.id.in_(ids),
                                                         Callback.owner.in_(("", username)))
                                  .values(owner=username, owner_name=name, claimed_at=now)
                                  .execution_options(synchronize_session=False))
            if res.rowcount != len(ids):  # type: ignore[attr-defined]
                await s.rollback()
                holder = await s.scalar(select(Callback).where(Callback.id.in_(ids), Callback.owner != "",
                                                               Callback.owner != username))
                raise CallbackTaken(holder.owner if holder else "", holder.owner_name if holder else "")
            await s.commit()
        return await self.get_callback(callback_id)

    async def release(self, callback_id: int) -> dict[str, Any] | None:
        """Nobody owns the entry any more: any agent may take it."""
        async with self.sessions() as s:
            first = await s.get(Callback, callback_id)
            if first is None:
                return None
            for c in await self._group(s, first):
                c.owner, c.owner_name, c.claimed_at = "", "", None
            await s.commit()
        return await self.get_callback(callback_id)

    async def set_draft(self, callback_id: int, number: str) -> None:
        """The draft ticket its first callback opened (later callbacks pop the same draft)."""
        async with self.sessions() as s:
            first = await s.get(Callback, callback_id)
            if first is None:
                return
            for c in await self._group(s, first):
                c.draft = number
            await s.commit()

    async def agent_day(self, start: datetime, end: datetime) -> dict[str, dict[str, Any]]:
        """Per agent interface, the queue calls it answered that joined in [start, end) and have ended:
        ``answered``, ``talk_total`` and ``avg_talk`` (seconds). Summed by the database: every wall screen asks
        every 10 s, and loading a big city's day of rows took 1.7 s (benchmarks/wallboard_figures.py)."""
        when = func.coalesce(CallRecord.joined, CallRecord.ended)
        q = (select(CallRecord.agent_interface, func.count(), func.coalesce(func.sum(CallRecord.talk_seconds), 0.0))
             .where(CallRecord.outcome.in_(("answered", "transferred")), CallRecord.agent_interface != "",
                    CallRecord.ended >= start - timedelta(hours=12), CallRecord.ended < end + timedelta(hours=12),
                    when >= start, when < end)
             .group_by(CallRecord.agent_interface))
        async with self.sessions() as s:
            rows = (await s.execute(q)).all()
        return {iface: {"answered": n, "talk_total": round(float(talk), 1), "avg_talk": round(float(talk) / n, 1)}
                for iface, n, talk in rows}

    async def open_entry(self, call_id: str) -> dict[str, Any] | None:
        """The ``status=open`` list's entry holding the missed call ``call_id`` (pushed to the agent consoles)."""
        async with self.sessions() as s:
            c = await s.scalar(select(Callback).where(Callback.call_id == call_id))
            if c is None:
                return None
            group = [g for g in await self._group(s, c) if g.status in OPEN]
            return callback_dict(group[0], group) if group else callback_dict(c)

    async def get_callback(self, callback_id: int) -> dict[str, Any] | None:
        async with self.sessions() as s:
            c = await s.get(Callback, callback_id)
            return callback_dict(c, await self._group(s, c)) if c else None

    async def update_callback(self, callback_id: int, *, status: str, agent_interface: str | None = None,
                              note: str | None = None, attempt: bool = False) -> dict[str, Any] | None:
        now = self.clock()
        async with self.sessions() as s:
            first = await s.get(Callback, callback_id)
            if first is None:
                return None
            group = await self._group(s, first)
            for c in group:
                c.status = status
                if agent_interface is not None:
                    c.agent_interface = agent_interface
                if note is not None:
                    c.note = note
                if attempt:
                    c.attempts += 1
                    c.last_attempt_at = now
                if status == "done":
                    c.done_at = now
            await s.commit()
            return callback_dict(first, group)

    async def calls(self, start: datetime, end: datetime, queue: str | None = None) -> list[CallRecord]:
        async with self.sessions() as s:
            q = select(CallRecord).where(CallRecord.ended >= start, CallRecord.ended < end)
            if queue:
                q = q.where(CallRecord.queue == queue)
            return list((await s.scalars(q.order_by(CallRecord.ended))).all())

    async def day_calls(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Calls of one local day (joined, else ended, in [start, end)) as plain dicts for the reducer's
        ``_DayCalls``: epoch seconds, outcome, wait and talk."""
        out = []
        for r in await self.calls(start - timedelta(hours=12), end + timedelta(hours=12)):
            when = r.joined or r.ended
            if not (start <= when < end):
                continue
            out.append({"call_id": r.call_id, "queue": r.queue, "outcome": r.outcome,
                        "joined": r.joined.timestamp() if r.joined else None, "ended": r.ended.timestamp(),
                        "wait": r.wait_seconds, "talk": r.talk_seconds})
        return out

    async def report(self, start_day: date, end_day: date, tz: tzinfo, *, by: tuple[str, ...] = ("day", "queue"),
                     service_level_seconds: int = 15) -> list[dict[str, Any]]:
        """Answer rate and N-second answer rate per group; ``by`` from ``day``, ``queue``, ``agent``.

        A call counts on the local day its caller joined the queue. Answer rate = answered / offered where
        offered = every finished queue call (transferred calls were answered first, so they count as answered).
        Agent groups only hold answered calls (an abandoned call has no agent).
        """
        start = datetime.combine(start_day, datetime.min.time(), tz)
        end = datetime.combine(end_day + timedelta(days=1), datetime.min.time(), tz)
        rows = await self.calls(start - timedelta(hours=12), end + timedelta(hours=12))
        groups: dict[tuple[Any, ...], Counters] = {}
        for r in rows:
            t = (r.joined or r.ended).astimezone(tz)
            if not (start <= t < end):
                continue
            key_parts = {"day": t.date().isoformat(), "queue": r.queue, "agent": r.agent_name or r.agent_interface}
            key = tuple(key_parts[k] for k in by)
            groups.setdefault(key, Counters()).add(r, service_level_seconds)
        out = []
        for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
            d = dict(zip(by, key))
            d.update(groups[key].as_dict(service_level_seconds))
            out.append(d)
        return out


@dataclass
class Counters:
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    timed_out: int = 0
    transferred: int = 0
    within: int = 0
    wait_total: float = 0.0
    talk_total: float = 0.0

    def add(self, r: CallRecord, sl: int) -> None:
        self.offered += 1
        if r.outcome in ("answered", "transferred"):
            self.answered += 1
            self.transferred += r.outcome == "transferred"
            self.wait_total += r.wait_seconds or 0.0
            self.talk_total += r.talk_seconds or 0.0
            if (r.wait_seconds or 0.0) <= sl:
                self.within += 1
        elif r.outcome == "abandoned":
            self.abandoned += 1
        else:
            self.timed_out += 1

    def as_dict(self, sl: int) -> dict[str, Any]:
        return {
            "offered": self.offered, "answered": self.answered, "abandoned": self.abandoned,
            "timed_out": self.timed_out, "transferred": self.transferred, f"answered_{sl}s": self.within,
            "answer_rate": round(self.answered / self.offered, 4) if self.offered else None,
            f"answer_rate_{sl}s": round(self.within / self.offered, 4) if self.offered else None,
            "avg_wait": round(self.wait_total / self.answered, 1) if self.answered else None,
            "avg_talk": round(self.talk_total / self.answered, 1) if self.answered else None,
        }


OPEN = ("pending", "calling")  # an agent still has to call back (the console lists these)


class CallbackTaken(Exception):
    """Another agent already took this missed call."""

    def __init__(self, owner: str, owner_name: str) -> None:
        super().__init__(owner)
        self.owner = owner
        self.owner_name = owner_name


def callback_dict(c: Callback, group: list[Callback] | None = None) -> dict[str, Any]:
    group = group or [c]
    return {"id": c.id, "call_id": c.call_id, "caller_num": c.caller_num, "caller_name": c.caller_name,
            "missed_count": len(group), "call_ids": [g.call_id for g in group],
            "last_missed_at": max(g.missed_at for g in group).isoformat(),
            "queue": c.queue, "missed_at": c.missed_at.isoformat(), "wait_seconds": round(c.wait_seconds, 1),
            "reason": c.reason, "status": c.status, "attempts": c.attempts, "agent_interface": c.agent_interface,
            "last_attempt_at": c.last_attempt_at.isoformat() if c.last_attempt_at else None,
            "done_at": c.done_at.isoformat() if c.done_at else None, "note": c.note,
            "owner": c.owner, "owner_name": c.owner_name,
            "claimed_at": c.claimed_at.isoformat() if c.claimed_at else None, "draft": c.draft}
