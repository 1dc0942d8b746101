"""asr: transcripts and recognition jobs (one row each per call_id)

Revision ID: 0003_asr
Revises: 0001_tickets
Create Date: 2026-11-22 22:12:52.313920
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0003_asr'
down_revision = '0002_telephony'
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('asr_jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('call_id', sa.String(length=64), nullable=False),
    sa.Column('recording_path', sa.Text(), nullable=False),
    sa.Column('speaker_paths', sa.JSON(), nullable=True),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('job_id', sa.String(length=120), nullable=False),
    sa.Column('tries', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('worker', sa.String(length=100), nullable=False),
    sa.Column('transcript_id', sa.Integer(), nullable=True),
    sa.Column('queued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('draft_claimed_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('draft_delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('draft_error', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('call_id')
    )
    with op.batch_alter_table('asr_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_asr_jobs_state'), ['state'], unique=False)

    op.create_table('transcripts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('call_id', sa.String(length=64), nullable=False),
    sa.Column('recording_path', sa.Text(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('segments', sa.JSON(), nullable=False),
    sa.Column('words', sa.JSON(), nullable=False),
    sa.Column('duration', sa.Float(), nullable=False),
    sa.Column('engine', sa.String(length=200), nullable=False),
    sa.Column('draft', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('call_id')
    )



def downgrade() -> None:
    
    op.drop_table('transcripts')
    with op.batch_alter_table('asr_jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_asr_jobs_state'))

    op.drop_table('asr_jobs')

