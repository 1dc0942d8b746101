"""channels in: Open311 channel partners (API keys kept as sha256) and the tickets that came through Open311

Revision ID: 0013_channels
Revises: 0012_callback_owner
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_channels"
down_revision = "0012_callback_owner"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "channel_partners",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Integer, nullable=True),
    )
    op.create_table(
        "open311_requests",
        sa.Column("ticket_number", sa.String(20), sa.ForeignKey("tickets.number", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("partner_id", sa.Integer, sa.ForeignKey("channel_partners.id"), nullable=False),
        sa.Column("service_code", sa.String(100), nullable=False),
        sa.Column("lat", sa.Float, nullable=True),
        sa.Column("long", sa.Float, nullable=True),
        sa.Column("address_id", sa.String(100), nullable=False),
        sa.Column("email", sa.String(200), nullable=False),
        sa.Column("device_id", sa.String(100), nullable=False),
        sa.Column("account_id", sa.String(100), nullable=False),
        sa.Column("media_url", sa.Text, nullable=False),
    )
    op.create_index("ix_open311_requests_partner_id", "open311_requests", ["partner_id"])


def downgrade() -> None:
    op.drop_index("ix_open311_requests_partner_id", table_name="open311_requests")
    op.drop_table("open311_requests")
    op.drop_table("channel_partners")
