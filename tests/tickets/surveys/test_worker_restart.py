"""The survey arq worker outlives a Redis restart: arq's loop stops at the first Redis error, keep_running starts
it again, and jobs queued afterwards are taken."""
from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool

from embedded_redis import EmbeddedRedis
from tickets.surveys.service import SURVEY_QUEUE, keep_running, worker


class Calls:
    def __init__(self) -> None:
        self.done: list[tuple[int, int]] = []

    async def job(self, survey_id: int, attempt: int) -> str:
        self.done.append((survey_id, attempt))
        return "ok"


async def _until(pred: Any, what: str, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.02)


async def _enqueue(jobs: ArqRedis, survey_id: int, timeout: float = 30.0) -> None:
    """Queue a job, retrying while the connection still points at the dead server."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await jobs.enqueue_job("survey_attempt", survey_id, 1, _queue_name=SURVEY_QUEUE)
            return
        except (ConnectionError, OSError) as exc:
            assert asyncio.get_running_loop().time() < deadline, f"enqueue keeps failing: {exc}"
            await asyncio.sleep(0.05)


async def test_worker_takes_jobs_again_after_redis_restarts(tmp_path: Path, caplog: Any) -> None:
    redis = EmbeddedRedis(tmp_path / "redis")
    url = await redis.astart()
    calls = Calls()
    jobs = ArqRedis(connection_pool=ConnectionPool.from_url(url))
    arq_worker = worker(calls, ArqRedis(connection_pool=ConnectionPool.from_url(url)), poll_delay=0.05)
    task = asyncio.get_running_loop().create_task(keep_running(arq_worker, backoff_min=0.05, backoff_max=0.2))
    try:
        await _enqueue(jobs, 1)
        await _until(lambda: (1, 1) in calls.done, "the first job runs")
        pid = redis.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await asyncio.get_running_loop().run_in_executor(None, redis.process.wait)
        await _until(lambda: any("survey worker stopped" in r.getMessage() for r in caplog.records),
                     "the worker notices Redis is gone")
        await redis.astart()
        await _enqueue(jobs, 2)
        await _until(lambda: (2, 1) in calls.done, "a job queued after the restart runs")
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await arq_worker.pool.aclose(close_connection_pool=True)
        await jobs.aclose(close_connection_pool=True)
        await redis.astop()
