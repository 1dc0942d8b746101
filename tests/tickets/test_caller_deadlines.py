"""Citizen-facing deadlines (告知来电人): a progress update on long cases and the result after the reply,
tracked like the other deadlines (on the ticket, in the due list, on the pages)."""
from __future__ import annotations

from datetime import datetime

from tests.tickets.conftest import TZ, Center


async def test_caller_is_told_progress_and_result_on_time_or_it_shows(center: Center) -> None:
    n = (await center.new_ticket(accept=True))["number"]  # a complaint: 15 working days
    t = await center.agent.act(n, "dispatch", lead_department_id=center.departments["swuj"])
    assert datetime.fromisoformat(t["caller_update_due"]) == datetime(2026, 11, 30, 9, 0, tzinfo=TZ)
    await center.water.act(n, "sign")
    center.clock.set_local(2026, 12, 1, 9, 0)
    t = await center.water.get(f"/api/v1/tickets/{n}")
    assert [m["deadline"] for m in t["caller_missed"]] == ["caller_update"] and not t["overdue"]
    assert [x["number"] for x in await center.super.get("/api/v1/tickets/due?kind=caller_overdue")] == [n]
    t = await center.water.act(n, "inform_caller", note="已电话告知来电人：施工单位整改中")
    assert t["caller_missed"] == [] and datetime.fromisoformat(t["caller_update_due"]) == datetime(
        2026, 12, 8, 9, 0, tzinfo=TZ)
    history = await center.super.get(f"/api/v1/tickets/{n}/history")
    assert history[-1]["data"] == {"stage": "progress", "on_time": False}

    t = await center.water.act(n, "reply", answer="已整改。")  # Tuesday 12-01: the result is owed by end of 12-02
    assert datetime.fromisoformat(t["caller_reply_due"]) == datetime(2026, 12, 3, 0, 0, tzinfo=TZ)
    center.clock.set_local(2026, 12, 3, 9, 0)
    assert [x["number"] for x in await center.super.get("/api/v1/tickets/due?kind=caller_overdue")] == [n]
    t = await center.agent.act(n, "inform_caller", note="已告知办理结果")
    assert t["caller_reply_due"] is None and t["caller_missed"] == []
    assert await center.super.get("/api/v1/tickets/due?kind=caller_overdue") == []
