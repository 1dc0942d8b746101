"""回访 records in SQL: one ``surveys`` row per replied ticket (per reply round), one ``survey_attempts`` row per
call. The SQL rows are the truth; Redis only holds timers and the concurrency slots, all rebuildable.

A survey's ``state``:
  scheduled   waiting for ``due_at`` (the next attempt)
  dialing     claimed by one process (atomic UPDATE ... WHERE state='scheduled'), call being placed or talked
  manual      for an agent: anonymous caller, no phone number, or taken over by hand
  done        answer recorded on the ticket (record_survey)
  unreachable every attempt failed (survey_unreachable on the ticket)
  opted_out   the caller asked not to be surveyed
  cancelled   the ticket moved on (reopened, archived, surveyed by hand through the ticket API)
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable, Sequence, cast

from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from tickets import phones
from tickets.models import Base, Ticket
from tickets.prepared import Prepared, PreparedInsert

ACTIVE_STATES = ("scheduled", "dialing", "manual")
FINAL_STATES = ("done", "unreachable", "opted_out", "cancelled")
STATES = ACTIVE_STATES + FINAL_STATES
STATE_LABELS = {"scheduled": "待回访", "dialing": "回访中", "manual": "人工回访", "done": "已回访",
                "unreachable": "未接通", "opted_out": "拒绝回访", "cancelled": "已取消"}


class Survey(Base):
    __tablename__ = "surveys"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    ticket_number: Mapped[str] = mapped_column(String(20), index=True)
    # A reopened ticket that is replied again gets a new survey: one per (ticket, reopen round).
    round: Mapped[int] = mapped_column(Integer, default=0)
    mode: Mapped[str] = mapped_column(String(10))  # auto / manual / opted_out
    state: Mapped[str] = mapped_column(String(12))
    phone: Mapped[str] = mapped_column(String(32), default="")
    topic: Mapped[str] = mapped_column(Text, default="")
    request_type: Mapped[str] = mapped_column(String(20), default="")
    department_id: Mapped[int | None] = mapped_column(Integer)
    replied_at: Mapped[datetime]
    due_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_attempt_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    # Answers so far (a partial answer from a hung-up call is kept): {"resolved": bool, "satisfaction": str}.
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    satisfaction: Mapped[str | None] = mapped_column(String(30))
    resolved: Mapped[bool | None] = mapped_column(Boolean)
    via: Mapped[str | None] = mapped_column(String(10))  # ivr / manual
    agent_id: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None] = mapped_column(index=True)

    __table_args__ = (
        UniqueConstraint("ticket_id", "round", name="uq_surveys_ticket_round"),
        # The due sweep and the campaign page are range scans on these.
        Index("ix_surveys_state_due", "state", "due_at"),
    )


class SurveyAttempt(Base):
    __tablename__ = "survey_attempts"
    id: Mapped[int] = mapped_column(primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(index=True)
    ended_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(12))  # answered busy no_answer congestion failed lost
    reason: Mapped[str | None] = mapped_column(String(20))  # OriginateResponse Reason / hangup cause
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # raw digits per question
    action_id: Mapped[str | None] = mapped_column(String(100))
    uniqueid: Mapped[str | None] = mapped_column(String(64))
    placed_by: Mapped[str | None] = mapped_column(String(100))

    __table_args__ = (UniqueConstraint("survey_id", "attempt", name="uq_survey_attempts_attempt"),)


S = cast(Table, Survey.__table__)
A = cast(Table, SurveyAttempt.__table__)


def view(row: Any, mask: bool = True, attempts: Sequence[Any] | None = None) -> dict[str, Any]:
    phone = row.phone or ""
    out = {
        "id": row.id, "ticket": row.ticket_number, "round": row.round, "mode": row.mode, "state": row.state,
        "state_label": STATE_LABELS.get(row.state, row.state), "phone": phones.mask(phone) if mask and phone else phone,
        "topic": row.topic, "request_type": row.request_type, "department_id": row.department_id,
        "replied_at": row.replied_at, "due_at": row.due_at, "attempts": row.attempts,
        "last_attempt_at": row.last_attempt_at, "answers": row.answers or {}, "satisfaction": row.satisfaction,
        "resolved": row.resolved, "via": row.via, "agent_id": row.agent_id, "note": row.note,
        "finished_at": row.finished_at,
    }
    if attempts is not None:
        out["calls"] = [{"attempt": a.attempt, "started_at": a.started_at, "ended_at": a.ended_at,
                         "outcome": a.outcome, "reason": a.reason, "answers": a.answers or {}} for a in attempts]
    return out


# ``create_in``'s statements, built once (it runs in the ticket writer's batches, with every reply) and
# run on the driver's cursor inside the ticket writer's batch (tickets/prepared.py)
_TICKET_ID = Prepared(select(Ticket.__table__.c.id).where(Ticket.__table__.c.number == bindparam("b_number")))
_ROUND_SURVEY = Prepared(select(S.c.id).where(S.c.ticket_id == bindparam("b_ticket_id"),
                                              S.c.round == bindparam("b_round")))
_INSERT_SURVEY = PreparedInsert(S)


class SurveyStore:
    """SQL access for surveys. Every method is one short transaction; none calls the TicketStore while a
    write transaction is open (on SQLite a process has one write connection)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession],
                 read_sessions: async_sessionmaker[AsyncSession] | None = None) -> None:
        self.sessions = sessions
        self.read_sessions = read_sessions or sessions

    # ------------------------------------------------------------ create
    @staticmethod
    def create_in(conn: Connection, number: str, values: dict[str, Any]) -> int | None:
        """A survey for the ticket numbered ``number``, inside the transaction of the reply that asks for it
        (``TicketStore.write_hooks``): the reply and its survey commit together or not at all. None when the
        ticket is unknown or the round has its survey."""
        ticket_id = _TICKET_ID.scalar(conn, {"b_number": number}, key=("number", number))
        if ticket_id is None or _ROUND_SURVEY.scalar(conn, {"b_ticket_id": ticket_id, "b_round": values["round"]}
                                                     ) is not None:
            return None
        return _INSERT_SURVEY.id(conn, {**values, "ticket_id": ticket_id})

    async def ticket_id(self, number: str) -> int | None:
        async with self.read_sessions() as session:
            return await session.scalar(select(Ticket.id).where(Ticket.number == number))

    # ------------------------------------------------------------ read
    async def get(self, survey_id: int) -> Any | None:
        async with self.read_sessions() as session:
            return (await session.execute(select(S).where(S.c.id == survey_id))).first()

    async def get_with_attempts(self, survey_id: int) -> tuple[Any, list[Any]] | None:
        async with self.read_sessions() as session:
            row = (await session.execute(select(S).where(S.c.id == survey_id))).first()
            if row is None:
                return None
            attempts = (await session.execute(select(A).where(A.c.survey_id == survey_id)
                                              .order_by(A.c.attempt))).all()
        return row, list(attempts)

    async def for_ticket(self, number: str) -> list[tuple[Any, list[Any]]]:
        async with self.read_sessions() as session:
            rows = (await session.execute(select(S).where(S.c.ticket_number == number).order_by(S.c.id))).all()
            out = []
            for row in rows:
                attempts = (await session.execute(select(A).where(A.c.survey_id == row.id)
                                                  .order_by(A.c.attempt))).all()
                out.append((row, list(attempts)))
        return out

    async def due_ids(self, now: datetime, limit: int = 10_000) -> list[tuple[int, int, datetime]]:
        """(id, next attempt number, due_at) of scheduled surveys that are due, oldest first."""
        async with self.read_sessions() as session:
            rows = (await session.execute(
                select(S.c.id, S.c.attempts, S.c.due_at).where(S.c.state == "scheduled", S.c.due_at <= now)
                .order_by(S.c.due_at, S.c.id).limit(limit))).all()
        return [(r.id, r.attempts + 1, r.due_at) for r in rows]

    async def scheduled_between(self, start: datetime, end: datetime, limit: int = 10_000
                                ) -> list[tuple[int, int, datetime]]:
        async with self.read_sessions() as session:
            rows = (await session.execute(
                select(S.c.id, S.c.attempts, S.c.due_at).where(S.c.state == "scheduled", S.c.due_at > start,
                                                               S.c.due_at <= end)
                .order_by(S.c.due_at).limit(limit))).all()
        return [(r.id, r.attempts + 1, r.due_at) for r in rows]

    async def stale_dialing(self, claimed_before: datetime) -> list[Any]:
        async with self.read_sessions() as session:
            return list((await session.execute(select(S).where(
                S.c.state == "dialing", S.c.last_attempt_at < claimed_before))).all())

    # ------------------------------------------------------------ the atomic claim
    async def claim(self, survey_id: int, attempt: int, now: datetime, owner: str) -> Any | None:
        """Take a due survey for one call. Exactly one caller wins: the UPDATE matches state='scheduled' and
        the attempt count, so a second process (or a duplicate job) updates 0 rows and gets None."""
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(S).where(S.c.id == survey_id, S.c.state == "scheduled", S.c.attempts == attempt - 1,
                                S.c.due_at <= now)
                .values(state="dialing", attempts=attempt, last_attempt_at=now, claimed_by=owner, updated_at=now))
            if result.rowcount != 1:
                return None
            await session.execute(insert(A).values(survey_id=survey_id, attempt=attempt, started_at=now,
                                                   answers={}, placed_by=owner))
            return (await session.execute(select(S).where(S.c.id == survey_id))).first()

    async def unclaim(self, survey_id: int, attempt: int, now: datetime) -> bool:
        """The call could not even be handed to Asterisk (AMI down): give the attempt back."""
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(S).where(S.c.id == survey_id, S.c.state == "dialing", S.c.attempts == attempt)
                .values(state="scheduled", attempts=attempt - 1, claimed_by=None, updated_at=now))
            if result.rowcount == 1:
                await session.execute(A.delete().where(A.c.survey_id == survey_id, A.c.attempt == attempt))
                return True
            return False

    async def attempt_placed(self, survey_id: int, attempt: int, action_id: str) -> None:
        async with self.sessions.begin() as session:
            await session.execute(update(A).where(A.c.survey_id == survey_id, A.c.attempt == attempt)
                                  .values(action_id=action_id))

    async def end_attempt(self, survey_id: int, attempt: int, now: datetime, outcome: str, reason: str | None,
                          raw_answers: dict[str, Any], uniqueid: str | None, new_answers: dict[str, Any],
                          action_id: str | None = None) -> Any | None:
        """Store the call's result and merge its answers into the survey's (a partial answer from an earlier
        call is kept; a newer answer to the same question wins). Returns the survey row if this attempt was
        still open, else None (already ended by another path, e.g. a sweep that gave up on it)."""
        values: dict[str, Any] = {"ended_at": now, "outcome": outcome, "reason": reason, "answers": raw_answers,
                                  "uniqueid": uniqueid}
        if action_id:
            values["action_id"] = action_id
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(A).where(A.c.survey_id == survey_id, A.c.attempt == attempt, A.c.ended_at.is_(None))
                .values(**values))
            if result.rowcount != 1:
                return None
            current = (await session.execute(select(S.c.answers).where(S.c.id == survey_id))).scalar_one()
            return (await session.execute(update(S).where(S.c.id == survey_id)
                                          .values(answers={**(current or {}), **new_answers}, updated_at=now)
                                          .returning(*S.c))).first()

    async def attempt_outcomes(self, survey_id: int) -> list[str]:
        async with self.read_sessions() as session:
            return [o or "lost" for o in (await session.scalars(
                select(A.c.outcome).where(A.c.survey_id == survey_id).order_by(A.c.attempt))).all()]

    # ------------------------------------------------------------ state changes
    async def reschedule(self, survey_id: int, from_states: Iterable[str], due_at: datetime, now: datetime) -> bool:
        async with self.sessions.begin() as session:
            result = await session.execute(update(S).where(S.c.id == survey_id, S.c.state.in_(list(from_states)))
                                           .values(state="scheduled", due_at=due_at, claimed_by=None,
                                                   updated_at=now))
            return result.rowcount == 1

    async def finish(self, survey_id: int, from_states: Iterable[str], state: str, now: datetime,
                     **values: Any) -> bool:
        async with self.sessions.begin() as session:
            result = await session.execute(update(S).where(S.c.id == survey_id, S.c.state.in_(list(from_states)))
                                           .values(state=state, finished_at=now, updated_at=now, due_at=None,
                                                   claimed_by=None, **values))
            return result.rowcount == 1

    async def take_manual(self, survey_id: int, agent_id: int, now: datetime) -> bool:
        """An agent takes a survey off the dialer (only while no call is running)."""
        async with self.sessions.begin() as session:
            result = await session.execute(update(S).where(S.c.id == survey_id,
                                                           S.c.state.in_(("scheduled", "manual")))
                                           .values(state="manual", agent_id=agent_id, updated_at=now))
            return result.rowcount == 1

    async def cancel_for_ticket(self, ticket_id: int, now: datetime, note: str, states: Sequence[str] = ACTIVE_STATES
                                ) -> int:
        async with self.sessions.begin() as session:
            result = await session.execute(update(S).where(S.c.ticket_id == ticket_id, S.c.state.in_(list(states)))
                                           .values(state="cancelled", finished_at=now, updated_at=now, due_at=None,
                                                   note=note))
            return result.rowcount

    async def close_for_ticket(self, ticket_id: int, now: datetime, state: str, **values: Any) -> int:
        """The ticket was surveyed through the ticket API: close the open survey the same way."""
        async with self.sessions.begin() as session:
            result = await session.execute(update(S).where(S.c.ticket_id == ticket_id,
                                                           S.c.state.in_(("scheduled", "manual", "dialing")))
                                           .values(state=state, finished_at=now, updated_at=now, due_at=None,
                                                   **values))
            return result.rowcount

    # ------------------------------------------------------------ campaign
    async def campaign(self, start: datetime, end: datetime, now: datetime, limit: int = 2000) -> dict[str, Any]:
        """The day's campaign: what is due that day (and the backlog still open), what was called, what ended.

        Counts by state, results of the surveys finished that day, and the calls placed that day by outcome.
        """
        day_activity = or_(
            and_(S.c.state.in_(ACTIVE_STATES), or_(S.c.due_at < end, S.c.due_at.is_(None))),
            and_(S.c.finished_at >= start, S.c.finished_at < end),
            and_(S.c.last_attempt_at >= start, S.c.last_attempt_at < end),
        )
        async with self.read_sessions() as session:
            counts: dict[str, int] = dict((await session.execute(select(S.c.state, func.count()).where(day_activity)
                                                 .group_by(S.c.state))).all())
            finished = and_(S.c.finished_at >= start, S.c.finished_at < end)
            results = (await session.execute(select(S.c.satisfaction, S.c.resolved, func.count())
                                             .where(finished, S.c.state == "done")
                                             .group_by(S.c.satisfaction, S.c.resolved))).all()
            calls: dict[str | None, int] = dict((await session.execute(select(A.c.outcome, func.count())
                                                .where(A.c.started_at >= start, A.c.started_at < end)
                                                .group_by(A.c.outcome))).all())
            rows = (await session.execute(select(S).where(day_activity)
                                          .order_by(S.c.state, S.c.due_at, S.c.id).limit(limit))).all()
        sat = {"satisfied": 0, "basically_satisfied": 0, "dissatisfied": 0}
        res = {"resolved": 0, "unresolved": 0, "not_answered": 0}
        for satisfaction, resolved, n in results:
            if satisfaction in sat:
                sat[satisfaction] += n
            res["resolved" if resolved is True else "unresolved" if resolved is False else "not_answered"] += n
        answered = sum(sat.values())
        return {
            "counts": {state: int(counts.get(state, 0)) for state in STATES},
            "results": {**sat, **res, "answered": answered},
            "calls": {("in_progress" if k is None else k): int(v) for k, v in calls.items()},
            "items": [view(r) for r in rows],
        }

    async def manual_list(self, limit: int = 500) -> list[dict[str, Any]]:
        async with self.read_sessions() as session:
            rows = (await session.execute(select(S).where(S.c.state == "manual").order_by(S.c.replied_at)
                                          .limit(limit))).all()
        return [view(r) for r in rows]
