"""ORM models of the ticket store. Schema changes go through Alembic (``migrations/``)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from config.db_types import UTCDateTime


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class Department(Base):
    __tablename__ = "departments"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    domains: Mapped[list[Any]] = mapped_column(default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    # An agent's Asterisk queue member: interface (e.g. PJSIP/8001) and member name, for screen pops.
    interface: Mapped[str | None] = mapped_column(String(100), unique=True)
    member_name: Mapped[str | None] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]


class AuthToken(Base):
    __tablename__ = "auth_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex; the token itself is never stored
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # "session" (cookie) or "api" (bearer)
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]


class AuditEntry(Base):
    """The record of access: account changes by admins and every read of a caller's personal data (phone,
    transcript, recording) and every export. Appended only; no route updates or deletes a row."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_category_at", "category", "at"),
                      Index("ix_audit_log_actor_at", "actor_id", "at"))
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    category: Mapped[str] = mapped_column(String(10))  # "account" (admin changes) or "access" (reads, exports)
    action: Mapped[str] = mapped_column(String(40))
    actor_id: Mapped[int | None] = mapped_column(Integer)  # no foreign key: the record outlives any account change
    actor_username: Mapped[str] = mapped_column(String(64), default="")
    actor_role: Mapped[str] = mapped_column(String(20), default="")
    subject: Mapped[str] = mapped_column(String(200), default="", index=True)  # "user:5", "ticket:2026...", "call:..."
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    address: Mapped[str] = mapped_column(String(100), default="")


class TicketCounter(Base):
    """Per-day sequence behind numbers such as 20261122-000123 (one atomic upsert per ticket)."""

    __tablename__ = "ticket_counters"
    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last: Mapped[int] = mapped_column(Integer)


class Ticket(Base):
    __tablename__ = "tickets"
    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    channel: Mapped[str] = mapped_column(String(20))
    caller_name: Mapped[str] = mapped_column(String(100), default="")
    caller_phone: Mapped[str] = mapped_column(String(32), default="", index=True)
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    survey_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    request_type: Mapped[str] = mapped_column(String(20))
    urgency: Mapped[str] = mapped_column(String(10))
    title: Mapped[str] = mapped_column(Text, default="")
    content: Mapped[str] = mapped_column(Text, default="")
    address: Mapped[str] = mapped_column(Text, default="")
    address_key: Mapped[str] = mapped_column(String(200), default="", index=True)  # normalised for "same address"
    district: Mapped[str] = mapped_column(String(100), default="")
    category: Mapped[str] = mapped_column(String(100), default="")
    # Links filled by telephony and recognition (Linkedid of the call, recording path, transcript id).
    call_id: Mapped[str | None] = mapped_column(String(64), index=True)
    recording_path: Mapped[str | None] = mapped_column(Text)
    transcript_id: Mapped[int | None] = mapped_column(Integer)
    draft_fields: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(index=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime]
    # Workflow state (mirror of tickets.workflow.TicketState).
    status: Mapped[str] = mapped_column(String(20))
    accepted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    lead_department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), index=True)
    co_handler_ids: Mapped[list[Any]] = mapped_column(default=list)
    first_dispatched_at: Mapped[datetime | None]
    dispatched_at: Mapped[datetime | None]
    signed_at: Mapped[datetime | None]
    replied_at: Mapped[datetime | None]
    sign_due: Mapped[datetime | None]
    reply_due: Mapped[datetime | None]
    return_until: Mapped[datetime | None]
    progress_due: Mapped[datetime | None]
    return_reason: Mapped[str | None] = mapped_column(String(100))
    extension_pending_days: Mapped[int | None]
    extension_days_granted: Mapped[int] = mapped_column(Integer, default=0)
    suspended_at: Mapped[datetime | None]
    supervised: Mapped[bool] = mapped_column(Boolean, default=False)
    supervision_due: Mapped[datetime | None]
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    answer: Mapped[str | None] = mapped_column(Text)
    satisfaction: Mapped[str | None] = mapped_column(String(30))
    resolved: Mapped[bool | None]
    survey_unreachable: Mapped[bool] = mapped_column(Boolean, default=False)
    ledger_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    duplicate_of: Mapped[str | None] = mapped_column(String(20), index=True)
    archived_at: Mapped[datetime | None]
    reply_outcome: Mapped[str | None] = mapped_column(String(20))  # resolved / explained / referred / fallback
    supervision_note: Mapped[str | None] = mapped_column(Text)
    supervision_answered_at: Mapped[datetime | None]
    suspend_requested: Mapped[str | None] = mapped_column(Text)  # a department's 暂停计时 request, its reason
    follow_up_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # 追加诉求 / 催办
    caller_update_due: Mapped[datetime | None]  # 告知来电人: next progress update owed to the caller
    caller_reply_due: Mapped[datetime | None]  # 告知来电人: the result owed to the caller after the reply

    history: Mapped[list["TicketHistory"]] = relationship(
        back_populates="ticket", order_by="TicketHistory.id", cascade="all, delete-orphan", lazy="raise"
    )

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        # Overdue and near-due lookups are range scans on these, never a scan in Python.
        Index("ix_tickets_status_reply_due", "status", "reply_due"),
        Index("ix_tickets_status_sign_due", "status", "sign_due"),
        Index("ix_tickets_phone_created", "caller_phone", "created_at"),
        Index("ix_tickets_status_created", "status", "created_at"),
        Index("ix_tickets_reply_outcome_replied", "reply_outcome", "replied_at"),
        Index("ix_tickets_supervised_due", "supervised", "supervision_due"),
        Index("ix_tickets_status_caller_update_due", "status", "caller_update_due"),
        Index("ix_tickets_status_caller_reply_due", "status", "caller_reply_due"),
    )


class TicketHistory(Base):
    """Append-only: the API offers no way to change or delete an entry."""

    __tablename__ = "ticket_history"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime]
    actor_id: Mapped[int | None]
    actor_role: Mapped[str] = mapped_column(String(20))
    actor_name: Mapped[str] = mapped_column(String(100))
    from_status: Mapped[str] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)

    ticket: Mapped[Ticket] = relationship(back_populates="history", lazy="raise")


class Assignment(Base):
    """One dispatch of a ticket to one department (lead or co-handler): the unit of the rates."""

    __tablename__ = "assignments"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    role: Mapped[str] = mapped_column(String(4))  # lead / co
    dispatched_at: Mapped[datetime]
    sign_due: Mapped[datetime]
    reply_due: Mapped[datetime]
    signed_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(10))  # returned / replied / withdrawn
    reason: Mapped[str] = mapped_column(String(100), default="")
    satisfaction: Mapped[str | None] = mapped_column(String(30))
    resolved: Mapped[bool | None]
    surveyed_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_assignments_dept_dispatched", "department_id", "dispatched_at"),)


class LedgerItem(Base):
    """不满意台账: every dissatisfied or unresolved survey answer, with what was decided."""

    __tablename__ = "dissatisfaction_ledger"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    satisfaction: Mapped[str] = mapped_column(String(30))
    resolved: Mapped[bool | None]
    at: Mapped[datetime] = mapped_column(index=True)
    # reopened / pending_supervisor / explained / referred / merged_caller
    decision: Mapped[str] = mapped_column(String(30))
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[int | None]
    decision_note: Mapped[str] = mapped_column(Text, default="", server_default="")
    # 回访 after re-handling: the next survey answer of a reopened ticket
    revisit_satisfaction: Mapped[str | None] = mapped_column(String(30))
    revisit_resolved: Mapped[bool | None]
    revisit_at: Mapped[datetime | None]


class TicketHandler(Base):
    """Which departments currently handle a ticket (lead and co-handlers): department isolation is a join here."""

    __tablename__ = "ticket_handlers"
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(4))

    __table_args__ = (Index("ix_ticket_handlers_department", "department_id", "ticket_id"),)
