"""every dead end gets a decision: the reply's outcome class, and the ledger's decisions and revisits

Revision ID: 0008_decisions
Revises: 0007_report_history
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_decisions"
down_revision = "0007_report_history"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as t:
        # 已解决 resolved / 已解释说明 explained / 依法分流 referred / 无法办理(兜底) fallback
        t.add_column(sa.Column("reply_outcome", sa.String(20), nullable=True))
    op.create_index("ix_tickets_reply_outcome_replied", "tickets", ["reply_outcome", "replied_at"])
    with op.batch_alter_table("dissatisfaction_ledger") as t:
        t.add_column(sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True))
        t.add_column(sa.Column("decided_by", sa.Integer(), nullable=True))
        t.add_column(sa.Column("decision_note", sa.Text(), nullable=False, server_default=""))
        t.add_column(sa.Column("revisit_satisfaction", sa.String(30), nullable=True))
        t.add_column(sa.Column("revisit_resolved", sa.Boolean(), nullable=True))
        t.add_column(sa.Column("revisit_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dissatisfaction_ledger") as t:
        for name in ("revisit_at", "revisit_resolved", "revisit_satisfaction", "decision_note", "decided_by",
                     "decided_at"):
            t.drop_column(name)
    op.drop_index("ix_tickets_reply_outcome_replied", table_name="tickets")
    with op.batch_alter_table("tickets") as t:
        t.drop_column("reply_outcome")
