"""survey answers by time in the ticket history, for the centre-wide 满意率 of the reports

Revision ID: 0007_report_history
Revises: 0006_surveys
"""
from __future__ import annotations

from alembic import op

revision = "0007_report_history"
down_revision = "0006_surveys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Declared in tickets/reports/service.py (REPORT_INDEXES): the reports read the survey answers given in a
    # period from the history (on-spot tickets' surveys have no assignment to hold them).
    op.create_index("ix_ticket_history_action_at", "ticket_history", ["action", "at", "ticket_id"])


def downgrade() -> None:
    op.drop_index("ix_ticket_history_action_at", table_name="ticket_history")
