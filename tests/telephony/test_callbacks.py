"""Missed-call callbacks: one owner per entry in real SQLite and PostgreSQL (two agents claiming at once: one
wins), the HTTP refusals another agent gets, and each agent's answered calls of the day from the burst."""
from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta

import pytest
from fake_ami import CAPTURES, requires_captures
from test_http import fixed_clock, login, make_app
from test_store import TZ, store  # noqa: F401  (the fixture: a migrated database of each kind)

from telephony.reducer import fold
from telephony.replay import read_events
from telephony.state import CallEnded, CallMissed
from telephony.store import CallbackTaken, CallStore
from tickets.accounts import http as accounts_http

pytestmark = requires_captures


async def burst_into(calls: CallStore) -> list[CallEnded]:
    _, effects = fold(e for _, e in read_events(CAPTURES / "burst.ami"))
    ended = [e for e in effects if isinstance(e, CallEnded)]
    for e in effects:
        if isinstance(e, CallEnded):
            await calls.save_call(e)
        elif isinstance(e, CallMissed):
            await calls.add_callback(e)
    return ended


async def test_one_agent_takes_a_missed_call_and_two_at_once_never_both(store: CallStore) -> None:  # noqa: F811
    await burst_into(store)
    items, count = await store.callback_page("open", limit=5)
    assert count == 19 and len(items) == 5  # the count covers the entries not sent
    assert [c["missed_at"] for c in items] == sorted(c["missed_at"] for c in items)  # oldest first
    first, second = items[0]["id"], items[1]["id"]

    taken = await store.claim(first, "zx8001", "周晓")
    assert (taken["owner"], taken["owner_name"]) == ("zx8001", "周晓")
    assert (await store.claim(first, "zx8001", "周晓"))["owner"] == "zx8001"  # taking it again is harmless
    with pytest.raises(CallbackTaken) as refused:
        await store.claim(first, "zx8002", "吴敏")
    assert refused.value.owner_name == "周晓"
    assert (await store.get_callback(first))["owner"] == "zx8001"

    # released, anyone may take it
    assert (await store.release(first))["owner"] == ""
    assert (await store.claim(first, "zx8002", "吴敏"))["owner"] == "zx8002"

    # two agents at the same moment: exactly one owner, the other told who
    results = await asyncio.gather(store.claim(second, "zx8001", "周晓"), store.claim(second, "zx8003", "郑凯"),
                                   return_exceptions=True)
    won = [r for r in results if isinstance(r, dict)]
    lost = [r for r in results if isinstance(r, CallbackTaken)]
    assert len(won) == 1 and len(lost) == 1, results
    assert (await store.get_callback(second))["owner"] == won[0]["owner"] == lost[0].owner


async def test_each_agents_answered_calls_and_talk_today(store: CallStore) -> None:  # noqa: F811
    ended = await burst_into(store)
    day = datetime.fromtimestamp(ended[0].ended, TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    figures = await store.agent_day(day, day + timedelta(days=1))
    answered = [e for e in ended if e.outcome == "answered"]
    assert {i: f["answered"] for i, f in figures.items()} == Counter(e.interface for e in answered)
    for iface, f in figures.items():
        talk = [e.talk for e in answered if e.interface == iface]
        assert f["avg_talk"] == round(sum(talk) / len(talk), 1)
    assert await store.agent_day(day + timedelta(days=1), day + timedelta(days=2)) == {}


async def test_http_callbacks_taken_refused_to_another_agent(aiohttp_client, settings_factory, redis_url) -> None:
    settings = settings_factory(redis_url=redis_url)
    app, svc = make_app(settings, fixed_clock(2026, 11, 22, 22, 0))
    client = await aiohttp_client(app)
    users = app[accounts_http.USERS]
    a = await login(client, users, "zx8001", "agent", "Local/8001@agents/n")
    b = await login(client, users, "zx8002", "agent", "Local/8002@agents/n")
    sup = await login(client, users, "banzhang", "supervisor")
    await burst_into(svc.store)
    r = await client.get("/api/v1/telephony/callbacks?status=open", headers=b)
    listed = await r.json()
    assert listed["count"] == 19 == len(listed["items"])
    cb = listed["items"][0]["id"]

    r = await client.post(f"/api/v1/telephony/callbacks/{cb}/claim", headers=a)
    assert r.status == 200 and (await r.json())["owner"] == "zx8001"
    for action, body in (("claim", None), ("call", None), ("release", None), ("result", {"status": "done"})):
        r = await client.post(f"/api/v1/telephony/callbacks/{cb}/{action}", json=body, headers=b)
        assert r.status == 409, (action, await r.text())
        assert (await r.json())["error"] == "callback_taken" and "zx8001" in (await r.json())["message"]
    # every agent sees who holds it
    items = (await (await client.get("/api/v1/telephony/callbacks?status=open", headers=b)).json())["items"]
    assert next(c for c in items if c["id"] == cb)["owner"] == "zx8001"
    r = await client.post(f"/api/v1/telephony/callbacks/{cb}/result", json={"status": "called"}, headers=a)
    assert r.status == 400 and "status" in (await r.json())["message"]
    r = await client.get("/api/v1/telephony/callbacks?status=everything", headers=a)
    assert r.status == 400
    # the owner records 未接通; a supervisor may put an entry back for anyone
    r = await client.post(f"/api/v1/telephony/callbacks/{cb}/result", json={"status": "failed"}, headers=a)
    assert (await r.json())["status"] == "failed"
    other = listed["items"][1]["id"]
    await client.post(f"/api/v1/telephony/callbacks/{other}/claim", headers=a)
    r = await client.post(f"/api/v1/telephony/callbacks/{other}/result", json={"status": "pending"}, headers=sup)
    assert r.status == 200 and (await r.json())["owner"] == ""
    assert (await (await client.get("/api/v1/telephony/callbacks?status=open", headers=b)).json())["count"] == 18
