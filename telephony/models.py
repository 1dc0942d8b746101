"""ORM models of telephony: finished queue calls and the missed-call callback list (漏接回拨)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from config.db_types import UTCDateTime


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime()}


class CallRecord(Base):
    """One finished queue call; ``call_id`` is the Asterisk Linkedid (also on the draft ticket)."""

    __tablename__ = "telephony_calls"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(64), unique=True)
    caller_num: Mapped[str] = mapped_column(String(40), default="")
    queue: Mapped[str] = mapped_column(String(80))
    joined: Mapped[datetime | None]
    answered: Mapped[datetime | None]
    ended: Mapped[datetime]
    wait_seconds: Mapped[float | None] = mapped_column(Float)
    talk_seconds: Mapped[float | None] = mapped_column(Float)
    agent_interface: Mapped[str] = mapped_column(String(100), default="")
    agent_name: Mapped[str] = mapped_column(String(100), default="")
    outcome: Mapped[str] = mapped_column(String(20))  # answered / abandoned / timed_out / transferred
    recording: Mapped[str] = mapped_column(String(400), default="")
    lost: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (Index("ix_telephony_calls_joined", "joined"), Index("ix_telephony_calls_queue", "queue"),
                      Index("ix_telephony_calls_caller", "caller_num"))


class Callback(Base):
    """A caller who gave up or timed out in the queue, to be called back by an agent."""

    __tablename__ = "telephony_callbacks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(64), unique=True)
    caller_num: Mapped[str] = mapped_column(String(40), default="")
    caller_name: Mapped[str] = mapped_column(String(100), default="")
    queue: Mapped[str] = mapped_column(String(80), default="")
    missed_at: Mapped[datetime]
    wait_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    reason: Mapped[str] = mapped_column(String(20))  # abandoned / timed_out
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending / calling / done / failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    agent_interface: Mapped[str] = mapped_column(String(100), default="")
    last_attempt_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    note: Mapped[str] = mapped_column(String(500), default="")
    # The agent who took it (username; empty = anyone may): one agent calls a caller back, never two at once.
    owner: Mapped[str] = mapped_column(String(64), default="", server_default="")
    owner_name: Mapped[str] = mapped_column(String(100), default="", server_default="")
    claimed_at: Mapped[datetime | None]
    draft: Mapped[str] = mapped_column(String(40), default="", server_default="")  # ticket number of its screen pop

    __table_args__ = (Index("ix_telephony_callbacks_status", "status", "missed_at"),)
