"""The SMS outbox and the opt-out list in SQL. The rows are the truth: a sender that dies loses nothing.

A message's ``state``:
  pending    waiting to be sent (from ``not_before``: quiet hours, a retry's backoff)
  sending    claimed by one sender (``claimed_by``, until ``lease_until``), committed before the first byte goes
             to the gateway
  sent       every part accepted by the gateway (``message_ids``, one per part)
  opted_out  not sent: the number is on the opt-out list
  failed     refused by the gateway for good, or too many refusals in a row
  uncertain  a sender stopped after handing the message to the gateway and before hearing back: it may have
             been delivered, so it is never sent again (SMPP 3.4 has no way to ask); listed for a person
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import JSON, Index, Integer, String, Table, Text, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from tickets import phones
from tickets.models import Base

STATES = ("pending", "sending", "sent", "opted_out", "failed", "uncertain")
STATE_LABELS = {"pending": "待发送", "sending": "发送中", "sent": "已发送", "opted_out": "已退订未发",
                "failed": "发送失败", "uncertain": "发送结果不明"}


class SmsMessage(Base):
    __tablename__ = "sms_outbox"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_number: Mapped[str] = mapped_column(String(20), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    phone: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    not_before: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str] = mapped_column(String(100), default="")
    lease_until: Mapped[datetime | None]
    parts_sent: Mapped[int] = mapped_column(Integer, default=0)
    message_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (Index("ix_sms_outbox_state_due", "state", "not_before"),)


class SmsOptOut(Base):
    __tablename__ = "sms_opt_out"
    phone: Mapped[str] = mapped_column(String(32), primary_key=True)
    at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(10))  # api (a person on the citizen's behalf) / reply (回复TD)
    note: Mapped[str] = mapped_column(Text, default="")


OUTBOX = cast(Table, SmsMessage.__table__)
OPT_OUT = cast(Table, SmsOptOut.__table__)


@dataclass(frozen=True)
class Sent:
    """A text every part of which the gateway took."""

    id: int
    at: datetime
    message_ids: tuple[str, ...]


def _sent_update(sent: Sent, owner: str) -> Any:
    return update(OUTBOX).where(OUTBOX.c.id == sent.id, OUTBOX.c.state == "sending", OUTBOX.c.claimed_by == owner) \
        .values(state="sent", sent_at=sent.at, lease_until=None, parts_sent=len(sent.message_ids),
                message_ids=list(sent.message_ids), last_error="")


def _count(result: Any) -> int:
    """Rows an UPDATE/DELETE changed (a CursorResult's rowcount)."""
    return int(result.rowcount or 0)


def view(row: Any, mask: bool = True) -> dict[str, Any]:
    return {"id": row.id, "ticket": row.ticket_number, "kind": row.kind,
            "phone": phones.mask(row.phone) if mask else row.phone, "text": row.text, "state": row.state,
            "state_label": STATE_LABELS.get(row.state, row.state), "created_at": row.created_at,
            "not_before": row.not_before, "attempts": row.attempts, "message_ids": list(row.message_ids or []),
            "sent_at": row.sent_at, "last_error": row.last_error}


class SmsStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession],
                 read_sessions: async_sessionmaker[AsyncSession] | None = None) -> None:
        self.sessions = sessions
        self.read_sessions = read_sessions or sessions

    # ------------------------------------------------------------ sender
    async def has_due(self, now: datetime) -> bool:
        async with self.read_sessions() as session:
            return await session.scalar(select(OUTBOX.c.id).where(
                OUTBOX.c.state == "pending", OUTBOX.c.not_before <= now).limit(1)) is not None

    async def next_due_at(self) -> datetime | None:
        async with self.read_sessions() as session:
            return await session.scalar(select(func.min(OUTBOX.c.not_before)).where(OUTBOX.c.state == "pending"))

    async def claim(self, now: datetime, owner: str, lease_until: datetime, sent: Sent | None = None) -> Any | None:
        """The oldest due message, now ``sending`` for ``owner`` (committed), or None. Safe with several
        senders: the UPDATE only changes a row that is still pending; a lost race tries the next one.

        ``sent``: the previous text's result, committed in the same transaction (one disk sync per text instead
        of two; a sender that dies before it leaves that text ``uncertain``, never sent twice)."""
        for _ in range(5):
            async with self.sessions.begin() as session:
                if sent is not None:
                    await session.execute(_sent_update(sent, owner))
                    sent = None
                sid = await session.scalar(select(OUTBOX.c.id).where(
                    OUTBOX.c.state == "pending", OUTBOX.c.not_before <= now).order_by(OUTBOX.c.id).limit(1))
                if sid is None:
                    return None
                done = await session.execute(update(OUTBOX).where(OUTBOX.c.id == sid, OUTBOX.c.state == "pending")
                                             .values(state="sending", claimed_by=owner, lease_until=lease_until,
                                                     attempts=OUTBOX.c.attempts + 1))
                if _count(done) == 1:
                    return (await session.execute(select(OUTBOX).where(OUTBOX.c.id == sid))).first()
        return None

    async def _update_claimed(self, sid: int, owner: str, **values: Any) -> bool:
        async with self.sessions.begin() as session:
            done = await session.execute(update(OUTBOX).where(
                OUTBOX.c.id == sid, OUTBOX.c.state == "sending", OUTBOX.c.claimed_by == owner).values(**values))
            return _count(done) == 1

    async def finish(self, sid: int, owner: str, state: str, error: str = "",
                     message_ids: Sequence[str] | None = None) -> bool:
        values: dict[str, Any] = {"state": state, "lease_until": None, "last_error": error[:500]}
        if message_ids is not None:
            values.update(message_ids=list(message_ids), parts_sent=len(message_ids))
        return await self._update_claimed(sid, owner, **values)

    async def record_sent(self, sent: Sent, owner: str) -> None:
        async with self.sessions.begin() as session:
            await session.execute(_sent_update(sent, owner))

    async def release(self, sid: int, owner: str, not_before: datetime, error: str, parts_sent: int,
                      message_ids: Sequence[str]) -> bool:
        """Back to pending: the gateway refused a part (that part was not taken; the ones before it were and are
        kept, so the next try sends only what is missing); try again from ``not_before``."""
        return await self._update_claimed(sid, owner, state="pending", claimed_by="", lease_until=None,
                                          not_before=not_before, last_error=error[:500], parts_sent=parts_sent,
                                          message_ids=list(message_ids))

    async def unclaim(self, sid: int, owner: str) -> bool:
        """Back to pending as it was: claimed, but nothing was handed to the gateway (e.g. quiet hours began)."""
        return await self._update_claimed(sid, owner, state="pending", claimed_by="", lease_until=None,
                                          attempts=OUTBOX.c.attempts - 1)

    async def expire(self, now: datetime) -> int:
        """Claims whose sender died (lease over) become ``uncertain``: never sent twice."""
        async with self.read_sessions() as session:  # a read first: most passes find nothing to expire
            if await session.scalar(select(OUTBOX.c.id).where(
                    OUTBOX.c.state == "sending", OUTBOX.c.lease_until < now).limit(1)) is None:
                return 0
        async with self.sessions.begin() as session:
            done = await session.execute(update(OUTBOX).where(
                OUTBOX.c.state == "sending", OUTBOX.c.lease_until < now).values(
                state="uncertain", lease_until=None, last_error="发送进程中断，无法确认是否已送达，未重发"))
            return _count(done)

    async def requeue(self, sid: int, now: datetime) -> Any | None:
        """A person decided a failed or uncertain text was not delivered: it goes out again (as a new try)."""
        async with self.sessions.begin() as session:
            done = await session.execute(update(OUTBOX).where(
                OUTBOX.c.id == sid, OUTBOX.c.state.in_(("failed", "uncertain"))).values(
                state="pending", not_before=now, attempts=0, claimed_by="", lease_until=None, parts_sent=0,
                message_ids=[], last_error=""))
            if _count(done) != 1:
                return None
            return (await session.execute(select(OUTBOX).where(OUTBOX.c.id == sid))).first()

    async def counts(self) -> dict[str, Any]:
        async with self.read_sessions() as session:
            rows = (await session.execute(select(OUTBOX.c.state, func.count()).where(
                OUTBOX.c.state.in_(("pending", "sending", "uncertain", "failed"))).group_by(OUTBOX.c.state))).all()
            oldest = await session.scalar(select(func.min(OUTBOX.c.created_at)).where(OUTBOX.c.state == "pending"))
        out: dict[str, Any] = {s: 0 for s in ("pending", "sending", "uncertain", "failed")}
        out.update({state: int(n) for state, n in rows})
        out["oldest_pending_at"] = oldest
        return out

    async def for_ticket(self, number: str) -> list[Any]:
        async with self.read_sessions() as session:
            return list((await session.execute(select(OUTBOX).where(OUTBOX.c.ticket_number == number)
                                               .order_by(OUTBOX.c.id))).all())

    async def listed(self, states: Sequence[str], limit: int = 500) -> list[Any]:
        async with self.read_sessions() as session:
            return list((await session.execute(select(OUTBOX).where(OUTBOX.c.state.in_(states))
                                               .order_by(OUTBOX.c.id).limit(limit))).all())

    # ------------------------------------------------------------ opt-out
    async def is_opted_out(self, phone: str) -> bool:
        async with self.read_sessions() as session:
            return await session.scalar(select(OPT_OUT.c.phone).where(OPT_OUT.c.phone == phone)) is not None

    async def opt_out(self, phone: str, now: datetime, source: str, note: str = "") -> bool:
        """True when the number was added, False when it was already on the list (kept as it was)."""
        try:
            async with self.sessions.begin() as session:
                if await session.scalar(select(OPT_OUT.c.phone).where(OPT_OUT.c.phone == phone)) is not None:
                    return False
                await session.execute(OPT_OUT.insert().values(phone=phone, at=now, source=source, note=note))
                return True
        except IntegrityError:  # the same number opted out by another request at the same moment
            return False

    async def opt_in(self, phone: str) -> bool:
        async with self.sessions.begin() as session:
            return _count(await session.execute(delete(OPT_OUT).where(OPT_OUT.c.phone == phone))) > 0

    async def opt_out_entry(self, phone: str) -> Any | None:
        async with self.read_sessions() as session:
            return (await session.execute(select(OPT_OUT).where(OPT_OUT.c.phone == phone))).first()
