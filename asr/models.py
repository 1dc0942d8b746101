"""ORM models of the recognition package: one transcript and one job row per call.

``call_id`` is unique in both tables, so a job that runs twice (a worker died after the commit, a
duplicate enqueue) updates the same rows instead of adding a second transcript.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from config.db_types import UTCDateTime

JOB_STATES = ("queued", "running", "done", "failed")


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class Transcript(Base):
    __tablename__ = "transcripts"
    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[str] = mapped_column(String(64), unique=True)
    recording_path: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text, default="")
    segments: Mapped[list[Any]] = mapped_column(default=list)
    words: Mapped[list[Any]] = mapped_column(default=list)
    duration: Mapped[float] = mapped_column(Float, default=0.0)
    engine: Mapped[str] = mapped_column(String(200), default="")
    # Draft ticket fields computed from the text (with where each came from); filled on delivery.
    draft: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class AsrJob(Base):
    __tablename__ = "asr_jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[str] = mapped_column(String(64), unique=True)
    recording_path: Mapped[str] = mapped_column(Text)
    # Separate caller/agent files (MixMonitor r()/t() options): {"caller": path, "agent": path}.
    speaker_paths: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    state: Mapped[str] = mapped_column(String(10), index=True)
    job_id: Mapped[str] = mapped_column(String(120), default="")  # the arq job id of the current attempt
    tries: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(Text, default="")
    worker: Mapped[str] = mapped_column(String(100), default="")  # host:pid of the last worker that took it
    transcript_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    queued_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    # Outbox for the draft ticket: the server process hands each finished transcript to
    # on_draft_ready once; a claim with an expiry lets several server processes share the work.
    draft_claimed_until: Mapped[datetime | None]
    draft_delivered_at: Mapped[datetime | None]
    draft_error: Mapped[str] = mapped_column(Text, default="")
