"""A sender process killed in the middle of a burst and started again: every text reaches the SMPP server
exactly once. The kill comes while the gateway holds back its answer to one submit (the one moment a sender
cannot know whether a text went out): that text is never sent again, and every other one goes once."""
from __future__ import annotations

import asyncio
import sys
from collections import Counter
from datetime import timedelta

from tests.conftest import ROOT
from tests.tickets.sms.conftest import until
from tickets.sms.store import OUTBOX

BURST = 20
HELD = 8  # the gateway answers this many submits, takes the next one and never answers it


async def start_sender(database_url: str, port: int, start) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.tickets.sms.sender_process", database_url, str(port), start.isoformat(),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 120)
    assert line.strip() == b"started", line + (await proc.stderr.read() if proc.stderr else b"")
    return proc


async def test_sender_killed_mid_burst_and_restarted_sends_every_text_exactly_once(sms_world, database_url):
    # The app's own sender is held by quiet hours all day: the burst is left to the sender processes.
    world = await sms_world(quiet_hours="00:00-23:59")
    c, smsc = world.center, world.smsc
    phones = [f"139{i:08d}" for i in range(BURST)]
    numbers = []
    for phone in phones:
        t = await c.new_ticket(caller_phone=phone)
        await c.agent.act(t["number"], "accept")
        numbers.append(t["number"])
    engine = world.app[__import__("server").ENGINE]

    async def states() -> Counter:
        async with engine.connect() as conn:
            return Counter(r[0] for r in await conn.execute(OUTBOX.select().with_only_columns(OUTBOX.c.state)))
    assert await states() == Counter({"pending": BURST})

    smsc.hold_after = HELD
    first = await start_sender(database_url, smsc.port, c.clock.now)
    try:
        await until(lambda: len(smsc.parts) == HELD + 1, what="the burst to reach the held submit")
    finally:
        first.kill()  # SIGKILL: no unbind, no cleanup
        await first.wait()
    smsc.hold_after = None
    assert (await states())["sending"] == 1  # the claim was committed before the submit

    # Restarted later (its lease of 60 s is over): the held text is "uncertain", never sent again.
    second = await start_sender(database_url, smsc.port, c.clock.now + timedelta(hours=1))
    try:
        async def done() -> bool:
            s = await states()
            return s["pending"] == 0 and s["sending"] == 0
        await until(done, what="the outbox to drain")
    finally:
        second.terminate()
        await second.wait()

    received = Counter(m.destination for m in smsc.messages())
    assert received == Counter(phones)  # every text, each exactly once
    assert len(smsc.parts) == BURST
    assert await states() == Counter({"sent": BURST - 1, "uncertain": 1})
    attention = await c.agent.get("/api/v1/sms/attention")
    assert [r["phone"] for r in attention] == [smsc.parts[HELD].destination]
    assert [r["state"] for r in attention] == ["uncertain"]
    for number in numbers:
        [row] = await world.outbox(number)
        part = next(p for p in smsc.parts if p.destination == row["phone"])
        assert row["message_ids"] == ([part.message_id] if row["state"] == "sent" else [])


async def test_two_sender_processes_at_once_send_each_text_once(sms_world, database_url):
    world = await sms_world(quiet_hours="00:00-23:59")  # the app's own sender stays out of it
    c, smsc = world.center, world.smsc
    phones = [f"137{i:08d}" for i in range(BURST)]
    for phone in phones:
        t = await c.new_ticket(caller_phone=phone)
        await c.agent.act(t["number"], "accept")
    engine = world.app[__import__("server").ENGINE]

    async def states() -> Counter:
        async with engine.connect() as conn:
            return Counter(r[0] for r in await conn.execute(OUTBOX.select().with_only_columns(OUTBOX.c.state)))
    procs = await asyncio.gather(*(start_sender(database_url, smsc.port, c.clock.now) for _ in range(2)))
    try:
        await until(lambda: len(smsc.parts) >= BURST, what="the burst")

        async def drained() -> bool:
            return await states() == Counter({"sent": BURST})
        await until(drained, what="every row sent")
    finally:
        for proc in procs:
            proc.terminate()
        await asyncio.gather(*(proc.wait() for proc in procs))
    assert Counter(m.destination for m in smsc.messages()) == Counter(phones)
    assert len(smsc.parts) == BURST


async def test_sender_killed_at_any_moment_never_sends_twice_and_leaves_at_most_one_text_to_a_person(
        sms_world, database_url):
    """SIGKILL wherever the sender is (no held answer): between its claim and the gateway's answer a text cannot
    be known to have gone. That one text, at most, is left uncertain for a person; every other text arrives
    exactly once, and none arrives twice."""
    world = await sms_world(quiet_hours="00:00-23:59")
    c, smsc = world.center, world.smsc
    phones = [f"136{i:08d}" for i in range(BURST)]
    for phone in phones:
        t = await c.new_ticket(caller_phone=phone)
        await c.agent.act(t["number"], "accept")
    engine = world.app[__import__("server").ENGINE]

    async def rows() -> dict[str, str]:
        async with engine.connect() as conn:
            return {r.phone: r.state for r in await conn.execute(OUTBOX.select())}
    first = await start_sender(database_url, smsc.port, c.clock.now)
    try:
        await until(lambda: len(smsc.parts) >= 5, what="the burst to start")
    finally:
        first.kill()
        await first.wait()
    second = await start_sender(database_url, smsc.port, c.clock.now + timedelta(hours=1))
    try:
        async def done() -> bool:
            return not {"pending", "sending"} & set((await rows()).values())
        await until(done, what="the outbox to drain")
    finally:
        second.terminate()
        await second.wait()

    received = Counter(m.destination for m in smsc.messages())
    assert set(received.values()) == {1}  # never twice
    states = await rows()
    uncertain = [p for p, s in states.items() if s == "uncertain"]
    assert len(uncertain) <= 1 and set(states.values()) <= {"sent", "uncertain"}
    assert {p for p, s in states.items() if s == "sent"} <= set(received)
    assert set(phones) - set(received) <= set(uncertain)  # only an uncertain text may be missing
