"""who took a missed call to call back (漏接回拨 owner), and the draft its callback opened

Revision ID: 0012_callback_owner
Revises: 0011_audit_log
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_callback_owner"
down_revision = "0011_audit_log"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("telephony_callbacks") as batch:
        batch.add_column(sa.Column("owner", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("owner_name", sa.String(100), nullable=False, server_default=""))
        batch.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("draft", sa.String(40), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("telephony_callbacks") as batch:
        batch.drop_column("draft")
        batch.drop_column("claimed_at")
        batch.drop_column("owner_name")
        batch.drop_column("owner")
