"""supervision with teeth: the 督办 note and the department's response, 暂停计时 requests, 追加诉求/催办 count

Revision ID: 0009_supervision
Revises: 0008_decisions
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_supervision"
down_revision = "0008_decisions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as t:
        t.add_column(sa.Column("supervision_note", sa.Text(), nullable=True))
        t.add_column(sa.Column("supervision_answered_at", sa.DateTime(timezone=True), nullable=True))
        t.add_column(sa.Column("suspend_requested", sa.Text(), nullable=True))
        t.add_column(sa.Column("follow_up_count", sa.Integer(), nullable=False, server_default="0"))
    # the overdue-督办 alert and the 督办件 figures are range scans on this
    op.create_index("ix_tickets_supervised_due", "tickets", ["supervised", "supervision_due"])


def downgrade() -> None:
    op.drop_index("ix_tickets_supervised_due", table_name="tickets")
    with op.batch_alter_table("tickets") as t:
        for name in ("follow_up_count", "suspend_requested", "supervision_answered_at", "supervision_note"):
            t.drop_column(name)
