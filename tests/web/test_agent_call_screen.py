"""The call's draft over HTTP: routing that follows the draft's unsaved text (POST .../routing, nothing saved)
and a call handled without a ticket closed as 无效件 with its reason, kept in the history and counted."""
from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import server
from web.forms import INVALID_CALL_REASONS

from .conftest import Console, RunningClock
from .test_pages import session_for


async def test_routing_follows_the_drafts_unsaved_text(console: Console) -> None:
    draft = await console.draft(title="来电 13912348888", content="", address="", district="", request_type="inquiry")
    number = draft["number"]
    agent = await session_for(console, "agent1")
    try:
        stored = await (await agent.get(f"/api/v1/tickets/{number}/routing")).json()
        resp = await agent.post(f"/api/v1/tickets/{number}/routing",
                                json={"title": "小区停水", "content": "我们小区停水两天了，一直没有来水"})
        assert resp.status == 200
        heard = await resp.json()
        water = console.departments["swuj"]
        assert heard["suggestions"][0]["department_id"] == water
        assert not stored["suggestions"] or stored["suggestions"][0]["department_id"] != water
        # nothing saved: the ticket keeps its own text
        ticket = await (await agent.get(f"/api/v1/tickets/{number}")).json()
        assert ticket["content"] == "" and ticket["title"] == "来电 13912348888"
        # bad input names the field
        resp = await agent.post(f"/api/v1/tickets/{number}/routing", json={"content": 12})
        assert resp.status == 400 and (await resp.json())["field"] == "content"
        resp = await agent.post(f"/api/v1/tickets/{number}/routing", data=b"not json",
                                headers={"Content-Type": "application/json"})
        assert resp.status == 400
    finally:
        await agent.close()
    # the same visibility as the GET: a department does not see the centre's drafts
    water_user = await session_for(console, "water1")
    try:
        assert (await water_user.get(f"/api/v1/tickets/{number}/routing")).status == 404
        assert (await water_user.post(f"/api/v1/tickets/{number}/routing", json={"content": "停水"})).status == 404
    finally:
        await water_user.close()


async def test_a_call_without_a_ticket_closes_its_draft_with_the_reason_counted(console_factory: Any) -> None:
    # A fixed morning at the real pace: on the real clock a run crossing midnight counted the drafts on one day
    # and their closing on the next.
    start = datetime(2026, 11, 18, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))  # a Wednesday
    console = await console_factory(clock=RunningClock(start))
    wrong, silent = await console.draft(), await console.draft()
    agent = await session_for(console, "agent1")
    sup = await session_for(console, "super1")
    try:
        for t, reason in ((wrong, INVALID_CALL_REASONS[0]), (silent, INVALID_CALL_REASONS[1])):
            resp = await agent.post(f"/api/v1/tickets/{t['number']}/actions/mark_invalid", json={"reason": reason})
            assert resp.status == 200
            ticket = await (await agent.get(f"/api/v1/tickets/{t['number']}")).json()
            assert ticket["status"] == "invalid"
            history = await (await agent.get(f"/api/v1/tickets/{t['number']}/history")).json()
            assert any(h["action"] == "mark_invalid" and h["note"] == reason for h in history)
        # no draft left over in the agent's work list
        work = await (await agent.get("/api/v1/tickets?status=draft")).json()
        assert {wrong["number"], silent["number"]}.isdisjoint(i["number"] for i in work["items"])
        tz = ZoneInfo(console.app[server.SETTINGS].server.timezone)
        created: datetime = wrong["created_at"]
        day = created.astimezone(tz).date().isoformat()
        report = await (await sup.get(f"/api/v1/reports?kind=daily&date={day}")).json()
        counted = {r["reason"]: r["count"] for r in report["totals"]["invalid_reasons"]}
        assert counted == {INVALID_CALL_REASONS[0]: 1, INVALID_CALL_REASONS[1]: 1}
        assert report["totals"]["excluded"]["invalid"] == 2
    finally:
        await agent.close()
        await sup.close()
