"""One survey scheduler process for the multi-process test: its own Redis connection, its own database engine,
an originate that logs every call to a shared Redis list and "answers" after a short random call.

Run: python -m tests.tickets.surveys.scheduler_process DATABASE_URL REDIS_URL MAX_CONCURRENT
"""
from __future__ import annotations

import asyncio
import os
import random
import sys
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import async_sessionmaker

import server
from config.settings import load_settings
from tickets.service import TicketStore
from tickets.surveys.service import SurveyService
from tickets.surveys.store import SurveyStore

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(timezone.utc)


async def main(database_url: str, redis_url: str, limit: int) -> None:
    settings = load_settings(env={}).with_overrides(database={"url": database_url}, redis={"url": redis_url},
                                                    survey={"max_concurrent": limit})
    engine = server.make_engine(settings)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    redis = ArqRedis.from_url(redis_url)
    store = TicketStore(sessions, settings, lambda: NOW)
    surveys = SurveyStore(sessions)
    me = f"p{os.getpid()}"
    service: SurveyService

    async def call(request: dict[str, Any]) -> None:
        open_now = await redis.incr("test:open")
        await redis.rpush("test:max", open_now)
        await asyncio.sleep(random.uniform(0.005, 0.03))
        await redis.decr("test:open")
        await service.on_call_result({"survey_id": request["survey_id"], "attempt": request["attempt"],
                                      "outcome": "answered", "answers": {"satisfaction": "1", "resolved": "1"}})

    tasks: set[asyncio.Task[Any]] = set()

    async def originate(request: dict[str, Any]) -> str:
        await redis.rpush("test:originates", f"{request['survey_id']}:{request['attempt']}:{me}")
        task = asyncio.create_task(call(request))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return f"{me}-{request['survey_id']}"

    service = SurveyService(store, surveys, redis, settings, lambda: NOW, originate=originate, owner=me)
    # Both processes wait at the same start line, then race on every survey: the duplicate arq jobs
    # (same id delivered twice), the sweep and the pump.
    await redis.incr("test:ready")
    while int(await redis.get("test:ready") or 0) < 2:
        await asyncio.sleep(0.01)
    ids = [i for i, _, _ in await surveys.due_ids(NOW)]
    random.shuffle(ids)
    outcomes = await asyncio.gather(*(service.job(i, 1) for i in ids), service.sweep())
    await redis.rpush("test:tried", f"{me}:{len(outcomes) - 1}")
    # A generous bound for a loaded machine; the loop ends as soon as every survey is done.
    deadline = asyncio.get_running_loop().time() + 240
    while asyncio.get_running_loop().time() < deadline:
        await service.pump()
        if not tasks and not await surveys.due_ids(NOW) and await redis.zcard(service.k_waiting) == 0 \
                and int(await redis.get("test:open") or 0) == 0:
            break
        await asyncio.sleep(0.02)
    while tasks:
        await asyncio.gather(*list(tasks))
    await redis.aclose()
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
