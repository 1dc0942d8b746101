"""SQL side of recognition: job states, transcripts (upserted by call_id), the draft outbox, search.

Every method runs in its own transaction. Idempotence comes from the unique ``call_id`` in both tables:
a job run twice updates the same transcript row, never adds one.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Callable, Sequence, cast

from sqlalchemy import CursorResult, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from asr.models import AsrJob, Transcript

Clock = Callable[[], datetime]


def _insert(session: AsyncSession, model: Any) -> Any:
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


def job_view(job: AsrJob) -> dict[str, Any]:
    return {"call_id": job.call_id, "state": job.state, "tries": job.tries, "reason": job.reason,
            "worker": job.worker, "recording_path": job.recording_path, "speaker_paths": job.speaker_paths,
            "transcript_id": job.transcript_id, "queued_at": job.queued_at, "started_at": job.started_at,
            "finished_at": job.finished_at, "updated_at": job.updated_at,
            "draft_delivered_at": job.draft_delivered_at, "draft_error": job.draft_error or None}


def transcript_view(t: Transcript, *, with_words: bool = True) -> dict[str, Any]:
    out = {"id": t.id, "call_id": t.call_id, "recording_path": t.recording_path, "text": t.text,
           "segments": t.segments, "duration": t.duration, "engine": t.engine, "draft": t.draft,
           "created_at": t.created_at, "updated_at": t.updated_at}
    if with_words:
        out["words"] = t.words
    return out


class AsrStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self.sessions = sessions
        self.clock = clock

    # ------------------------------------------------------------ jobs
    async def queue(self, call_id: str, recording_path: str, speaker_paths: dict[str, str] | None,
                    job_id: str, *, force: bool = False) -> tuple[dict[str, Any], bool]:
        """Record a job as queued. Returns (job, should_enqueue): a call already queued, running or
        done is not queued again; a failed one only with ``force`` (a supervisor's retry)."""
        now = self.clock()
        async with self.sessions.begin() as session:
            stmt = _insert(session, AsrJob).values(
                call_id=call_id, recording_path=recording_path, speaker_paths=speaker_paths, state="queued",
                job_id=job_id, tries=0, reason="", worker="", queued_at=now, updated_at=now, draft_error="",
            ).on_conflict_do_nothing(index_elements=["call_id"])
            inserted = cast(CursorResult[Any], await session.execute(stmt)).rowcount == 1
            job = (await session.execute(select(AsrJob).where(AsrJob.call_id == call_id).with_for_update())).scalar_one()
            if inserted:
                return job_view(job), True
            if force and job.state in ("failed", "done"):
                job.state, job.tries, job.reason, job.job_id = "queued", 0, "", job_id
                job.recording_path, job.speaker_paths = recording_path, speaker_paths
                job.queued_at = job.updated_at = now
                job.started_at = job.finished_at = None
                return job_view(job), True
            return job_view(job), False

    async def start(self, call_id: str, attempt: int, worker: str) -> dict[str, Any] | None:
        now = self.clock()
        async with self.sessions.begin() as session:
            job = (await session.execute(select(AsrJob).where(AsrJob.call_id == call_id).with_for_update())).scalar_one_or_none()
            if job is None:
                return None
            if job.state == "done":
                # arq ran a finished job again (its worker died between our commit and arq's bookkeeping):
                # the transcript is already stored; a supervisor's retry resets the state first.
                return job_view(job)
            job.state, job.tries, job.worker, job.started_at, job.updated_at = "running", attempt, worker, now, now
            return job_view(job)

    async def finish(self, call_id: str, recording_path: str, result: dict[str, Any]) -> int:
        """Store the transcript (insert or replace by call_id) and mark the job done, atomically."""
        now = self.clock()
        values = {"recording_path": recording_path, "text": result["text"], "segments": result["segments"],
                  "words": result["words"], "duration": result["duration"], "engine": result["engine"],
                  "updated_at": now}
        async with self.sessions.begin() as session:
            stmt = _insert(session, Transcript).values(call_id=call_id, created_at=now, **values)
            stmt = stmt.on_conflict_do_update(index_elements=["call_id"], set_=values)
            await session.execute(stmt)
            tid = (await session.execute(select(Transcript.id).where(Transcript.call_id == call_id))).scalar_one()
            await session.execute(update(AsrJob).where(AsrJob.call_id == call_id).values(
                state="done", reason="", transcript_id=tid, finished_at=now, updated_at=now))
            return int(tid)

    async def set_state(self, call_id: str, state: str, reason: str, attempt: int | None = None) -> None:
        now = self.clock()
        values: dict[str, Any] = {"state": state, "reason": reason[:2000], "updated_at": now}
        if attempt is not None:
            values["tries"] = attempt
        if state == "failed":
            values["finished_at"] = now
        async with self.sessions.begin() as session:
            await session.execute(update(AsrJob).where(AsrJob.call_id == call_id, AsrJob.state != "done").values(**values))

    async def job(self, call_id: str) -> dict[str, Any] | None:
        async with self.sessions() as session:
            job = (await session.execute(select(AsrJob).where(AsrJob.call_id == call_id))).scalar_one_or_none()
            return job_view(job) if job else None

    async def jobs(self, state: str | None = None, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        async with self.sessions() as session:
            stmt = select(AsrJob)
            count = select(func.count()).select_from(AsrJob)
            if state:
                stmt, count = stmt.where(AsrJob.state == state), count.where(AsrJob.state == state)
            rows = (await session.execute(stmt.order_by(AsrJob.updated_at.desc(), AsrJob.id.desc())
                                          .limit(limit).offset(offset))).scalars().all()
            by_state = dict((await session.execute(select(AsrJob.state, func.count()).group_by(AsrJob.state))).all())
            return {"items": [job_view(j) for j in rows], "total": (await session.execute(count)).scalar_one(),
                    "by_state": by_state}

    async def stale_jobs(self, older_than: timedelta) -> list[dict[str, Any]]:
        """Queued or running jobs not touched for a while (their Redis job may be gone)."""
        cutoff = self.clock() - older_than
        async with self.sessions() as session:
            rows = (await session.execute(select(AsrJob).where(AsrJob.state.in_(("queued", "running")),
                                                               AsrJob.updated_at < cutoff))).scalars().all()
            return [{**job_view(j), "job_id": j.job_id} for j in rows]

    async def set_job_id(self, call_id: str, job_id: str) -> None:
        async with self.sessions.begin() as session:
            await session.execute(update(AsrJob).where(AsrJob.call_id == call_id).values(
                job_id=job_id, updated_at=self.clock()))

    # ------------------------------------------------------------ transcripts
    async def transcript(self, call_id: str) -> dict[str, Any] | None:
        async with self.sessions() as session:
            t = (await session.execute(select(Transcript).where(Transcript.call_id == call_id))).scalar_one_or_none()
            return transcript_view(t) if t else None

    async def count_transcripts(self, call_id: str | None = None) -> int:
        async with self.sessions() as session:
            stmt = select(func.count()).select_from(Transcript)
            if call_id is not None:
                stmt = stmt.where(Transcript.call_id == call_id)
            return int((await session.execute(stmt)).scalar_one())

    async def search(self, terms: Sequence[str], *, limit: int = 20, offset: int = 0,
                     call_ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Transcripts containing every term (newest first). ``call_ids`` limits the search when the
        caller may see only some calls."""
        async with self.sessions() as session:
            stmt = select(Transcript)
            for term in terms:
                escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                stmt = stmt.where(Transcript.text.like(f"%{escaped}%", escape="\\"))
            if call_ids is not None:
                stmt = stmt.where(Transcript.call_id.in_(list(call_ids)))
            rows = (await session.execute(stmt.order_by(Transcript.created_at.desc(), Transcript.id.desc())
                                          .limit(limit).offset(offset))).scalars().all()
            return [transcript_view(t) for t in rows]

    # ------------------------------------------------------------ draft outbox
    async def claim_drafts(self, lease: timedelta, limit: int = 20) -> list[dict[str, Any]]:
        """Done jobs whose draft was not delivered, claimed for ``lease`` so another server process
        skips them; a claim that expires (process died) is taken again."""
        now = self.clock()
        claimed = []
        async with self.sessions() as session:
            ids = (await session.execute(
                select(AsrJob.id).where(AsrJob.state == "done", AsrJob.draft_delivered_at.is_(None),
                                        or_(AsrJob.draft_claimed_until.is_(None), AsrJob.draft_claimed_until < now))
                .order_by(AsrJob.finished_at).limit(limit))).scalars().all()
        for job_id in ids:
            async with self.sessions.begin() as session:
                result = await session.execute(
                    update(AsrJob).where(AsrJob.id == job_id, AsrJob.draft_delivered_at.is_(None),
                                         or_(AsrJob.draft_claimed_until.is_(None), AsrJob.draft_claimed_until < now))
                    .values(draft_claimed_until=now + lease))
                if cast(CursorResult[Any], result).rowcount != 1:
                    continue
                row = (await session.execute(select(AsrJob.call_id, Transcript).join(
                    Transcript, and_(Transcript.call_id == AsrJob.call_id)).where(AsrJob.id == job_id))).first()
                if row is not None:
                    claimed.append({"call_id": row[0], "transcript_id": row[1].id, "text": row[1].text,
                                    "words": row[1].words})
        return claimed

    async def draft_done(self, call_id: str, draft: dict[str, Any] | None, error: str = "") -> None:
        now = self.clock()
        async with self.sessions.begin() as session:
            if draft is not None:
                await session.execute(update(Transcript).where(Transcript.call_id == call_id).values(draft=draft))
            await session.execute(update(AsrJob).where(AsrJob.call_id == call_id).values(
                draft_delivered_at=None if error else now, draft_error=error[:2000],
                # on error, let the claim expire a little later so a broken callback is not hammered
                draft_claimed_until=now + timedelta(seconds=30) if error else None))
