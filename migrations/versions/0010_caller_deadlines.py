"""citizen-facing deadlines: the next progress update and the result owed to the caller (告知来电人)

Revision ID: 0010_caller_deadlines
Revises: 0009_supervision
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_caller_deadlines"
down_revision = "0009_supervision"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as t:
        t.add_column(sa.Column("caller_update_due", sa.DateTime(timezone=True), nullable=True))
        t.add_column(sa.Column("caller_reply_due", sa.DateTime(timezone=True), nullable=True))
    # the caller-overdue list is a range scan on each, like the reply deadline's
    op.create_index("ix_tickets_status_caller_update_due", "tickets", ["status", "caller_update_due"])
    op.create_index("ix_tickets_status_caller_reply_due", "tickets", ["status", "caller_reply_due"])


def downgrade() -> None:
    op.drop_index("ix_tickets_status_caller_reply_due", table_name="tickets")
    op.drop_index("ix_tickets_status_caller_update_due", table_name="tickets")
    with op.batch_alter_table("tickets") as t:
        t.drop_column("caller_reply_due")
        t.drop_column("caller_update_due")
