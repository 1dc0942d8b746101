"""Call records and callbacks in real SQLite and PostgreSQL; answer-rate reports per day, queue and agent."""
from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from fake_ami import CAPTURES, requires_captures
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

import migrations
from telephony.reducer import fold
from telephony.replay import read_events
from telephony.state import CallEnded, CallMissed
from telephony.store import CallStore

TZ = ZoneInfo("Asia/Shanghai")


@pytest.fixture
async def store(database_url):
    import asyncio

    await asyncio.get_running_loop().run_in_executor(None, migrations.upgrade, database_url)
    engine = create_async_engine(database_url)
    yield CallStore(async_sessionmaker(engine, expire_on_commit=False),
                    lambda: datetime(2026, 11, 23, 2, 0, tzinfo=UTC))
    await engine.dispose()


@requires_captures
async def test_burst_and_transfer_records_and_report(store):
    effects = []
    for name in ["burst", "transfer", "answered_call", "ring_no_answer"]:
        _, eff = fold(e for _, e in read_events(CAPTURES / f"{name}.ami"))
        effects.extend(eff)
    ended = [e for e in effects if isinstance(e, CallEnded)]
    for e in ended:
        assert await store.save_call(e)
    assert not await store.save_call(ended[0])  # once per Linkedid, even if two writers try
    for m in (e for e in effects if isinstance(m := e, CallMissed)):
        await store.add_callback(m)
    day = datetime.fromtimestamp(ended[0].ended, TZ).date()
    rows = await store.report(day, day, TZ, by=("day", "queue"))
    assert len(rows) == 1
    r = rows[0]
    # burst 32 (13 answered, 19 abandoned) + transfer 1 + answered 1 + ring-no-answer 1 (18 s wait)
    assert (r["offered"], r["answered"], r["abandoned"], r["transferred"]) == (35, 16, 19, 1)
    assert r["answer_rate"] == round(16 / 35, 4)
    burst_within = sum(1 for e in ended if e.outcome in ("answered", "transferred") and e.wait <= 15)
    assert r["answered_15s"] == burst_within and r["answer_rate_15s"] == round(burst_within / 35, 4)
    by_agent = await store.report(day, day, TZ, by=("agent",))
    assert sum(x["answered"] for x in by_agent if x["agent"]) == 16
    assert {x["agent"] for x in by_agent} >= {"agent-8001", "agent-8002", "agent-8003"}
    other_day = await store.report(date(2026, 1, 1), date(2026, 1, 2), TZ)
    assert other_day == []
    pending = await store.callbacks()
    assert len(pending) == 19 and all(c["reason"] == "abandoned" for c in pending)
    first = pending[0]
    upd = await store.update_callback(first["id"], status="done", agent_interface="Local/8001@agents/n",
                                      note="已回电，市民已报修", attempt=True)
    assert upd["status"] == "done" and upd["attempts"] == 1 and upd["note"] == "已回电，市民已报修"
    assert len(await store.callbacks()) == 18


async def test_callback_list_one_entry_per_number_per_day(store):
    # A caller who gives up three times this morning is one entry (missed_count 3), not three; the next day is
    # a new entry; an unknown number is never merged; the same call reported twice is stored once.
    def missed(call_id: str, num: str, hour: int, day: int = 23) -> CallMissed:
        at = datetime(2026, 11, day, hour, 0, tzinfo=TZ).timestamp()
        return CallMissed(call_id, num, "", "12345", at - 30, at, 30.0, "abandoned")

    for m in [missed("1.1", "13900139000", 8), missed("1.2", "13900139000", 9), missed("1.3", "13900139000", 23),
              missed("2.1", "13900139000", 8, day=24), missed("3.1", "13700137000", 10),
              missed("4.1", "", 10), missed("4.2", "", 11)]:
        assert await store.add_callback(m)
    assert not await store.add_callback(missed("1.2", "13900139000", 9))  # queue_log and AMI both saw it
    items = await store.callbacks()
    assert [(i["caller_num"], i["missed_count"], i["call_ids"]) for i in items] == [
        ("13900139000", 3, ["1.1", "1.2", "1.3"]), ("13700137000", 1, ["3.1"]), ("", 1, ["4.1"]), ("", 1, ["4.2"]),
        ("13900139000", 1, ["2.1"])]
    first = items[0]
    done = await store.update_callback(first["id"], status="done", agent_interface="PJSIP/8001", note="已回复",
                                       attempt=True)
    assert done["status"] == "done" and done["missed_count"] == 3 and done["attempts"] == 1
    assert [i["call_ids"] for i in await store.callbacks()] == [["3.1"], ["4.1"], ["4.2"], ["2.1"]]
    assert [i["missed_count"] for i in await store.callbacks("done")] == [3]


async def test_open_list_and_the_entry_pushed_for_a_missed_call(store):
    # The console loads ``status=open`` (pending and calling) once and then takes the entry pushed with each
    # missed call: it must be the entry that list would show.
    def missed(call_id: str, num: str, hour: int) -> CallMissed:
        at = datetime(2026, 11, 23, hour, 0, tzinfo=TZ).timestamp()
        return CallMissed(call_id, num, "", "12345", at - 30, at, 30.0, "abandoned")

    await store.add_callback(missed("1.1", "13900139000", 8))
    await store.add_callback(missed("2.1", "13700137000", 9))
    calling = await store.update_callback((await store.callbacks())[1]["id"], status="calling", attempt=True)
    await store.add_callback(missed("1.2", "13900139000", 10))
    pushed = await store.open_entry("1.2")
    listed = await store.callbacks("open")
    assert [(i["caller_num"], i["status"], i["call_ids"]) for i in listed] == [
        ("13900139000", "pending", ["1.1", "1.2"]), ("13700137000", "calling", ["2.1"])]
    assert pushed == listed[0] and calling == listed[1]
    # a caller called back already who misses again is a new open entry
    await store.update_callback(listed[0]["id"], status="done")
    await store.add_callback(missed("1.3", "13900139000", 11))
    pushed = await store.open_entry("1.3")
    assert pushed["call_ids"] == ["1.3"] and pushed in await store.callbacks("open")
    assert await store.open_entry("no-such-call") is None
