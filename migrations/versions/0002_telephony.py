"""telephony: finished queue calls and the missed-call callback list

Revision ID: 0002_telephony
Revises: 0001_tickets
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_telephony"
down_revision = "0001_tickets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "telephony_calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("caller_num", sa.String(length=40), nullable=False),
        sa.Column("queue", sa.String(length=80), nullable=False),
        sa.Column("joined", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended", sa.DateTime(timezone=True), nullable=False),
        sa.Column("wait_seconds", sa.Float(), nullable=True),
        sa.Column("talk_seconds", sa.Float(), nullable=True),
        sa.Column("agent_interface", sa.String(length=100), nullable=False),
        sa.Column("agent_name", sa.String(length=100), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("recording", sa.String(length=400), nullable=False),
        sa.Column("lost", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("call_id"),
    )
    op.create_index("ix_telephony_calls_joined", "telephony_calls", ["joined"])
    op.create_index("ix_telephony_calls_queue", "telephony_calls", ["queue"])
    op.create_index("ix_telephony_calls_caller", "telephony_calls", ["caller_num"])
    op.create_table(
        "telephony_callbacks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("caller_num", sa.String(length=40), nullable=False),
        sa.Column("caller_name", sa.String(length=100), nullable=False),
        sa.Column("queue", sa.String(length=80), nullable=False),
        sa.Column("missed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("wait_seconds", sa.Float(), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("agent_interface", sa.String(length=100), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("call_id"),
    )
    op.create_index("ix_telephony_callbacks_status", "telephony_callbacks", ["status", "missed_at"])


def downgrade() -> None:
    op.drop_index("ix_telephony_callbacks_status", table_name="telephony_callbacks")
    op.drop_table("telephony_callbacks")
    op.drop_index("ix_telephony_calls_caller", table_name="telephony_calls")
    op.drop_index("ix_telephony_calls_queue", table_name="telephony_calls")
    op.drop_index("ix_telephony_calls_joined", table_name="telephony_calls")
    op.drop_table("telephony_calls")
