"""Two real server processes (their own Redis connections, database engines and schedulers) against one Redis
and one database never place the same survey call twice and together never exceed the call limit."""
from __future__ import annotations

import asyncio
import sys
from collections import Counter
from pathlib import Path

from tests.tickets.surveys.conftest import World

ROOT = Path(__file__).resolve().parents[3]


async def test_two_processes_never_dial_the_same_survey_twice(world: World) -> None:
    tickets = [await world.replied(caller_phone=f"1360013{i:04d}") for i in range(40)]
    url = world.settings.database_url
    redis_url = world.settings.redis.url
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.tickets.surveys.scheduler_process", url, redis_url, "6", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE) for _ in range(2)]
    outputs = [await asyncio.wait_for(p.communicate(), 300) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err.decode()[-3000:]
    placed = [x.decode() for x in await world.redis.lrange("test:originates", 0, -1)]
    calls = Counter(":".join(p.split(":")[:2]) for p in placed)
    assert len(calls) == 40 and max(calls.values()) == 1, calls.most_common(3)
    # Both processes ran their scheduler to the end. How many surveys each still found due when it got
    # going depends on scheduling (on a loaded machine one may start after the other has called most),
    # so only the invariants are asserted: every call placed once, never more than the limit at once.
    tried = [x.decode().split(":") for x in await world.redis.lrange("test:tried", 0, -1)]
    assert len({who for who, _ in tried}) == 2 and all(0 <= int(n) <= 40 for _, n in tried)
    assert max(int(x) for x in await world.redis.lrange("test:max", 0, -1)) <= 6
    for t in tickets:
        history = await world.store.history(t["number"], world.agent)
        assert [h["action"] for h in history].count("record_survey") == 1
        assert (await world.survey_of(t["number"])).state == "done"
