"""SMS to the citizen: the outbox written with each workflow change (sms_outbox) and the opt-out list

Revision ID: 0014_sms_outbox
Revises: 0013_channels
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_sms_outbox"
down_revision = "0013_channels"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sms_outbox",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ticket_number", sa.String(20), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("phone", sa.String(32), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("claimed_by", sa.String(100), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("parts_sent", sa.Integer, nullable=False),
        sa.Column("message_ids", sa.JSON, nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text, nullable=False),
    )
    op.create_index("ix_sms_outbox_ticket_number", "sms_outbox", ["ticket_number"])
    # the sender's query: the oldest pending text that is due
    op.create_index("ix_sms_outbox_state_due", "sms_outbox", ["state", "not_before"])
    op.create_table(
        "sms_opt_out",
        sa.Column("phone", sa.String(32), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(10), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sms_opt_out")
    op.drop_index("ix_sms_outbox_state_due", table_name="sms_outbox")
    op.drop_index("ix_sms_outbox_ticket_number", table_name="sms_outbox")
    op.drop_table("sms_outbox")
