"""knowledge base entries and ticket attachments

Revision ID: 0005_knowledge
Revises: 0001_tickets
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_knowledge"
down_revision = "0003_asr"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "knowledge_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("keywords", sa.Text(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.Column("updated_by_name", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(["department_id"], ["departments.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_knowledge_valid_to", "knowledge_entries", ["valid_to"])
    op.create_table(
        "ticket_attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("stored_name", sa.String(length=200), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("uploaded_by", sa.Integer(), nullable=True),
        sa.Column("uploaded_by_name", sa.String(length=100), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("stored_name"),
    )
    op.create_index("ix_ticket_attachments_ticket_id", "ticket_attachments", ["ticket_id"])
    # Covering indexes for the centre's reports (declared in tickets/reports.py): every aggregate is a range
    # scan of one index instead of a random table read per ticket.
    op.create_index("ix_tickets_report", "tickets", ["created_at", "status", "request_type", "urgency", "district",
                                                     "channel", "category"])
    op.create_index("ix_assignments_report", "assignments", ["dispatched_at", "role", "department_id", "outcome",
                                                             "signed_at", "sign_due", "closed_at", "reply_due",
                                                             "satisfaction", "resolved"])
    op.create_index("ix_assignments_surveyed", "assignments", ["surveyed_at", "role", "satisfaction", "resolved"])
    op.create_index("ix_assignments_reply_due", "assignments", ["reply_due", "role", "department_id", "outcome",
                                                                "closed_at"])


def downgrade() -> None:
    op.drop_index("ix_assignments_reply_due", table_name="assignments")
    op.drop_index("ix_assignments_surveyed", table_name="assignments")
    op.drop_index("ix_assignments_report", table_name="assignments")
    op.drop_index("ix_tickets_report", table_name="tickets")
    op.drop_index("ix_ticket_attachments_ticket_id", table_name="ticket_attachments")
    op.drop_table("ticket_attachments")
    op.drop_index("ix_knowledge_valid_to", table_name="knowledge_entries")
    op.drop_table("knowledge_entries")
