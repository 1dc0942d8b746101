"""the record of access: account changes by admins, reads of callers' personal data, exports (audit_log)

Revision ID: 0011_audit_log
Revises: 0010_caller_deadlines
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_audit_log"
down_revision = "0010_caller_deadlines"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("category", sa.String(10), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("actor_id", sa.Integer, nullable=True),
        sa.Column("actor_username", sa.String(64), nullable=False, server_default=""),
        sa.Column("actor_role", sa.String(20), nullable=False, server_default=""),
        sa.Column("subject", sa.String(200), nullable=False, server_default=""),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("address", sa.String(100), nullable=False, server_default=""),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_subject", "audit_log", ["subject"])
    # the admin page filters by category and by person, newest first
    op.create_index("ix_audit_log_category_at", "audit_log", ["category", "at"])
    op.create_index("ix_audit_log_actor_at", "audit_log", ["actor_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_actor_at", table_name="audit_log")
    op.drop_index("ix_audit_log_category_at", table_name="audit_log")
    op.drop_index("ix_audit_log_subject", table_name="audit_log")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
