"""callback surveys (回访) and their call attempts

Revision ID: 0006_surveys
Revises: 0001_tickets
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

revision = "0006_surveys"
down_revision = "0005_knowledge"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "surveys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("ticket_number", sa.String(length=20), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("request_type", sa.String(length=20), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("replied_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("satisfaction", sa.String(length=30), nullable=True),
        sa.Column("resolved", sa.Boolean(), nullable=True),
        sa.Column("via", sa.String(length=10), nullable=True),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("ticket_id", "round", name="uq_surveys_ticket_round"),
    )
    op.create_index("ix_surveys_ticket_number", "surveys", ["ticket_number"])
    op.create_index("ix_surveys_state_due", "surveys", ["state", "due_at"])
    op.create_index("ix_surveys_finished_at", "surveys", ["finished_at"])
    op.create_table(
        "survey_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("survey_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=12), nullable=True),
        sa.Column("reason", sa.String(length=20), nullable=True),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("action_id", sa.String(length=100), nullable=True),
        sa.Column("uniqueid", sa.String(length=64), nullable=True),
        sa.Column("placed_by", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(["survey_id"], ["surveys.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("survey_id", "attempt", name="uq_survey_attempts_attempt"),
    )
    op.create_index("ix_survey_attempts_started_at", "survey_attempts", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_survey_attempts_started_at", table_name="survey_attempts")
    op.drop_table("survey_attempts")
    op.drop_index("ix_surveys_finished_at", table_name="surveys")
    op.drop_index("ix_surveys_state_due", table_name="surveys")
    op.drop_index("ix_surveys_ticket_number", table_name="surveys")
    op.drop_table("surveys")
