"""What one wallboard poll costs (``GET /api/v1/telephony/wallboard`` -> ``CallStore.agent_day``): each agent's
answered calls and average talk today, over a big city's day of call records in SQLite (and PostgreSQL with
``--database-url``). Every wall screen asks every 10 s.

    python -m benchmarks.wallboard_figures [--calls 20000] [--agents 120] [--database-url URL]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

import migrations
from telephony.models import CallRecord
from telephony.store import CallStore

DAY = datetime(2026, 11, 22, 16, 0, tzinfo=UTC)  # 2026-11-23 00:00 in Asia/Shanghai


async def fill(store: CallStore, calls: int, agents: int) -> None:
    rng = random.Random(7)
    rows = []
    for i in range(calls):
        joined = DAY + timedelta(seconds=rng.uniform(0, 86400))
        answered = rng.random() < 0.9
        wait = rng.uniform(1, 60)
        talk = rng.uniform(30, 600) if answered else None
        rows.append(CallRecord(
            call_id=f"bench.{i}", caller_num=f"138{i:08d}", queue="12345", joined=joined,
            answered=joined + timedelta(seconds=wait) if answered else None,
            ended=joined + timedelta(seconds=wait + (talk or 0)), wait_seconds=wait, talk_seconds=talk,
            agent_interface=f"PJSIP/{8000 + rng.randrange(agents)}" if answered else "",
            outcome="answered" if answered else "abandoned"))
    async with store.sessions() as s:
        s.add_all(rows)
        await s.commit()


async def run(url: str, calls: int, agents: int, rounds: int) -> None:
    await asyncio.get_running_loop().run_in_executor(None, migrations.upgrade, url)
    engine = create_async_engine(url)
    store = CallStore(async_sessionmaker(engine, expire_on_commit=False), lambda: DAY)
    await fill(store, calls, agents)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        figures = await store.agent_day(DAY, DAY + timedelta(days=1))
        times.append(time.perf_counter() - t0)
    await engine.dispose()
    answered = sum(f["answered"] for f in figures.values())
    print(f"{url.split(':')[0]}: {calls} calls, {len(figures)} agents, {answered} answered; agent_day "
          f"median {statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms over {rounds} polls; "
          f"load average {os.getloadavg()[0]:.2f}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--calls", type=int, default=20000)
    p.add_argument("--agents", type=int, default=120)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--database-url", default="")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = a.database_url or f"sqlite+aiosqlite:///{tmp}/bench.db"
        asyncio.run(run(url, a.calls, a.agents, a.rounds))


if __name__ == "__main__":
    main()
