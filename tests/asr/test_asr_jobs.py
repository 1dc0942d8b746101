"""The whole path on real parts: recordings -> Redis queue (arq) -> worker with the real Vosk engine ->
transcripts and job states in SQL -> draft fields handed to the tickets hook. Retries, failures and
running a job twice."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from arq import create_pool
from arq.connections import RedisSettings
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

import migrations
from asr import jobs
from asr.service import AsrService
from asr.store import AsrStore

CLIP = "wenetspeech_net_Y0000000000.wav"
# arq closes its own pool with a call redis-py deprecated; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")


def clock() -> datetime:
    return datetime.now(timezone.utc)


class Env:
    def __init__(self, service: AsrService, cfg: jobs.WorkerConfig, backend: Any) -> None:
        self.service = service
        self.store = service.store
        self.cfg = cfg
        self.backend = backend
        self.drafts: list[tuple[str, int, dict[str, Any]]] = []

    async def work(self) -> None:
        """Run a real arq worker until the queue is empty (burst), in this process, sharing the model."""
        worker = jobs.build_worker(self.cfg, backend=self.backend, burst=True, poll_delay=0.05)
        try:
            await worker.async_run()
        finally:
            await worker.close()


async def make_env(db_url: str, redis_url: str, backend: Any, **cfg: Any) -> AsyncIterator[Env]:
    await asyncio.get_running_loop().run_in_executor(None, migrations.upgrade, db_url)
    engine = create_async_engine(db_url)
    pool = await create_pool(RedisSettings.from_dsn(redis_url), default_queue_name=jobs.QUEUE_NAME)
    config = jobs.WorkerConfig(redis_url=redis_url, database_url=db_url, model_path="", retry_delay=0.05, **cfg)
    env: Env

    async def on_draft_ready(call_id: str, transcript_id: int, fields: dict[str, Any]) -> None:
        env.drafts.append((call_id, transcript_id, fields))

    service = AsrService(AsrStore(async_sessionmaker(engine, expire_on_commit=False), clock), pool,
                         on_draft_ready=on_draft_ready, suggest_department=lambda text: [])
    env = Env(service, config, backend)
    try:
        yield env
    finally:
        await pool.aclose()
        await engine.dispose()


@pytest.fixture
async def env(sqlite_url: str, redis_url: str, backend: Any) -> AsyncIterator[Env]:
    async for e in make_env(sqlite_url, redis_url, backend):
        yield e


async def test_recordings_at_8k_and_16k_become_transcripts_and_drafts(
        env: Env, asterisk_recording: Path, speech_dir: Path) -> None:
    calls = {"1795383048.0": asterisk_recording, "call-8k": speech_dir / "real_8k" / CLIP,
             "call-16k": speech_dir / "real" / CLIP}
    for call_id, path in calls.items():
        job = await env.service.enqueue_transcription(call_id, str(path))
        assert job["state"] == "queued"
    # the bridge may report the same hang-up twice: still one job
    assert (await env.service.enqueue_transcription("call-8k", str(calls["call-8k"])))["state"] == "queued"
    assert await env.service.pool.zcard(jobs.QUEUE_NAME) == 3

    await env.work()

    for call_id, path in calls.items():
        job = await env.store.job(call_id)
        assert (job["state"], job["tries"], job["reason"]) == ("done", 1, "")
        t = await env.store.transcript(call_id)
        assert t["engine"] == "vosk:model" and t["recording_path"] == str(path)
        assert t["words"] and all(0 <= w["start"] <= w["end"] <= t["duration"] + 0.05 for w in t["words"])
        assert t["segments"][0]["speaker"] == "mixed"
    assert (await env.store.transcript("1795383048.0"))["duration"] == pytest.approx(11.9, abs=0.01)

    assert await env.service.deliver_drafts() == 3
    assert sorted(d[0] for d in env.drafts) == sorted(calls)
    for call_id, transcript_id, fields in env.drafts:
        assert fields["needs_confirmation"] and fields["content"]["value"] == \
            (await env.store.transcript(call_id))["text"]
        assert (await env.store.transcript(call_id))["draft"] == fields
    assert await env.service.deliver_drafts() == 0  # each draft handed over once

    # Running a call's job a second time (a supervisor's retry) rewrites, never duplicates.
    first_id = (await env.store.transcript("call-16k"))["id"]
    assert (await env.service.enqueue_transcription("call-16k", str(calls["call-16k"])))["state"] == "done"
    assert await env.service.pool.zcard(jobs.QUEUE_NAME) == 0
    await env.service.enqueue_transcription("call-16k", str(calls["call-16k"]), force=True)
    await env.work()
    assert (await env.store.transcript("call-16k"))["id"] == first_id
    assert await env.store.count_transcripts("call-16k") == 1
    assert await env.store.count_transcripts() == 3

    # arq handing a finished job out again (its worker died between our commit and arq's bookkeeping)
    # does not decode it again.
    before = await env.store.transcript("call-8k")
    await env.service.pool.enqueue_job(jobs.FUNCTION, "call-8k", str(calls["call-8k"]), None,
                                       _job_id="asr:call-8k:again", _queue_name=jobs.QUEUE_NAME)
    await env.work()
    assert (await env.store.transcript("call-8k"))["updated_at"] == before["updated_at"]
    assert (await env.store.job("call-8k"))["state"] == "done"


async def test_a_corrupt_recording_fails_at_once_and_a_missing_one_after_the_tries(
        env: Env, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 200)
    await env.service.enqueue_transcription("corrupt", str(corrupt))
    await env.service.enqueue_transcription("missing", str(tmp_path / "never-written.wav"))
    await env.work()
    bad = await env.store.job("corrupt")
    assert (bad["state"], bad["tries"]) == ("failed", 1)
    assert "损坏" in bad["reason"] and "corrupt.wav" in bad["reason"]
    missing = await env.store.job("missing")
    assert (missing["state"], missing["tries"]) == ("failed", env.cfg.max_tries)
    assert "不存在" in missing["reason"]
    assert await env.store.count_transcripts() == 0
    assert await env.service.deliver_drafts() == 0 and env.drafts == []
    listed = await env.store.jobs("failed")
    assert listed["total"] == 2 and listed["by_state"] == {"failed": 2}


async def test_a_job_whose_workers_all_died_is_marked_failed_not_left_running(env: Env, speech_dir: Path) -> None:
    # arq counts every start; after max_tries starts that never finished, the next start only records it.
    await env.store.queue("died", str(speech_dir / "real" / CLIP), None, jobs.job_id_for("died"))
    await env.service.pool.enqueue_job(jobs.FUNCTION, "died", str(speech_dir / "real" / CLIP), None,
                                       _job_id=jobs.job_id_for("died"), _queue_name=jobs.QUEUE_NAME,
                                       _job_try=env.cfg.max_tries + 1)
    await env.work()
    job = await env.store.job("died")
    assert job["state"] == "failed" and "中断" in job["reason"]
    assert await env.store.count_transcripts() == 0


async def test_jobs_redis_lost_are_queued_again(env: Env, speech_dir: Path) -> None:
    from datetime import timedelta

    await env.service.enqueue_transcription("lost", str(speech_dir / "real_8k" / CLIP))
    await env.service.pool.flushdb()  # Redis restarted empty: SQL still says queued
    assert await env.service.requeue_lost(older_than=timedelta(0)) == 1
    assert await env.service.requeue_lost(older_than=timedelta(0)) == 0  # it is known to Redis again
    await env.work()
    assert (await env.store.job("lost"))["state"] == "done"


async def test_store_upserts_one_transcript_per_call_on_both_databases(database_url: str) -> None:
    await asyncio.get_running_loop().run_in_executor(None, migrations.upgrade, database_url)
    engine = create_async_engine(database_url)
    try:
        store = AsrStore(async_sessionmaker(engine, expire_on_commit=False), clock)
        job, should = await store.queue("c1", "/r/c1.wav", {"caller": "/r/c1-in.wav"}, "asr:c1")
        assert should and job["state"] == "queued"
        assert (await store.queue("c1", "/r/c1.wav", None, "asr:c1"))[1] is False
        result = {"text": "路灯坏了", "segments": [], "words": [{"word": "路灯", "start": 0.1, "end": 0.5}],
                  "duration": 3.0, "engine": "test"}
        first = await store.finish("c1", "/r/c1.wav", result)
        second = await store.finish("c1", "/r/c1.wav", {**result, "text": "路灯坏了三天"})
        assert first == second and await store.count_transcripts() == 1
        assert (await store.transcript("c1"))["text"] == "路灯坏了三天"
        assert [r["call_id"] for r in await store.search(["路灯", "三天"])] == ["c1"]
        assert await store.search(["路灯", "漏水"]) == []
        assert await store.search(["%"]) == []  # LIKE wildcards are searched literally
    finally:
        await engine.dispose()
