"""A worker process killed (SIGKILL) in the middle of a job: another worker finishes it, once.

Two real ``python -m asr worker`` processes (the ``hotline worker`` command) with the Korean model,
a real redis-server and a SQLite file. The lease is 6 s so the hand-over is quick to see.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from arq import create_pool
from arq.connections import RedisSettings
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

import migrations
from asr import jobs
from asr.service import AsrService
from asr.store import AsrStore

ROOT = Path(__file__).resolve().parents[2]
LONG_CLIP = "funasr_far_3.wav"  # 21.8 s, two speakers: long enough to be killed mid-way


def _start_worker(tmp: Path, name: str, db_url: str, redis_url: str, model: Path) -> tuple[subprocess.Popen, Path]:
    log = tmp / f"{name}.log"
    env = {**os.environ, "HOTLINE_DATABASE_URL": db_url, "HOTLINE_REDIS_URL": redis_url,
           "HOTLINE_ASR_MODEL_PATH": str(model), "HOTLINE_ASR_MAX_TRIES": "3", "HOTLINE_SERVER_DATA_DIR": str(tmp)}
    # The lease is renewed every third of it from the worker's event loop while the decoder thread runs: 2 s left
    # a loaded machine 1.3 s of slack before the other worker took a live job too; 6 s leaves 4 s.
    proc = subprocess.Popen([sys.executable, "-m", "asr", "worker", "--processes", "1", "--lease", "6"],
                            cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    return proc, log


async def _wait(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


async def test_a_killed_worker_job_is_finished_by_another_with_one_transcript(
        tmp_path: Path, redis_url: str, ko_model: Path, speech_dir: Path) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'hotline.db'}"
    await asyncio.get_running_loop().run_in_executor(None, migrations.upgrade, db_url)
    workers = [_start_worker(tmp_path, n, db_url, redis_url, ko_model) for n in ("a", "b")]
    engine = create_async_engine(db_url)
    pool = await create_pool(RedisSettings.from_dsn(redis_url), default_queue_name=jobs.QUEUE_NAME)
    try:
        async def both_loaded() -> bool:
            for proc, log in workers:
                assert proc.poll() is None, log.read_text(errors="replace")
            return all("loaded in" in log.read_text(errors="replace") for _, log in workers)

        await _wait(both_loaded, 90, "both workers to load the model")
        store = AsrStore(async_sessionmaker(engine, expire_on_commit=False), lambda: datetime.now(timezone.utc))
        service = AsrService(store, pool)
        await service.enqueue_transcription("kill-me", str(speech_dir / "real" / LONG_CLIP))

        async def running() -> dict | None:
            job = await store.job("kill-me")
            return job if job and job["state"] == "running" else None

        first = await _wait(running, 30, "a worker to take the job")
        pid = int(first["worker"].rsplit(":", 1)[1])
        by_pid = {proc.pid: proc for proc, _ in workers}
        assert pid in by_pid
        # killed while the job is running (its decode takes seconds), however fast or slow the machine is
        os.kill(pid, signal.SIGKILL)
        by_pid[pid].wait(10)

        async def done() -> dict | None:
            job = await store.job("kill-me")
            assert job["state"] != "failed", job
            return job if job["state"] == "done" else None

        finished = await _wait(done, 120, "the other worker to finish the job")
        assert int(finished["worker"].rsplit(":", 1)[1]) != pid
        assert finished["tries"] == 2  # the killed start counts as a try
        assert await store.count_transcripts() == 1
        transcript = await store.transcript("kill-me")
        assert transcript["duration"] == pytest.approx(21.8, abs=0.05) and transcript["words"]
    finally:
        for proc, _ in workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in workers:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        await pool.aclose()
        await engine.dispose()
