"""Supervision with teeth: 督办 deadlines and the department's response, the overdue alert, 提级 along the chain,
暂停计时 approved by a supervisor, and 追加诉求/催办 on an open case."""
from __future__ import annotations

from tests.tickets.conftest import Center
from tickets.http import STORE


async def dispatched_to(center: Center, code: str, **fields: object) -> str:
    number = (await center.new_ticket(accept=True, **fields))["number"]
    await center.agent.act(number, "dispatch", lead_department_id=center.departments[code])
    return number


async def test_supervision_deadline_response_alert_and_figures(center: Center) -> None:
    on_time = await dispatched_to(center, "swuj")
    late = await dispatched_to(center, "swuj")
    ignored = await dispatched_to(center, "sthj")
    for n in (on_time, late, ignored):
        await center.super.act(n, "supervise", note="群众反映强烈，请两日内反馈", due="2026-11-25T18:00:00+08:00")
    refused = await center.super.act(on_time, "supervise", note="x", due="2026-11-01T18:00:00+08:00", expect=400)
    assert refused["field"] == "due"  # a deadline in the past is no deadline

    # The department sees the supervised case with the note, on top of its inbox.
    await center.water.act(on_time, "sign")
    t = await center.water.act(on_time, "progress_report", note="已到现场核查")
    assert t["supervision_state"] == "on_time" and t["supervision_answered_at"] is not None
    assert t["supervision_note"] == "群众反映强烈，请两日内反馈"

    center.clock.set_local(2026, 11, 26, 9, 0)  # past the 督办 deadline
    alert = await center.super.get("/api/v1/supervision?from=2026-11-01&to=2026-11-30")
    assert sorted(t["number"] for t in alert["alert"]) == sorted([late, ignored])
    await center.water.act(late, "sign")
    t = await center.water.act(late, "progress_report", note="迟到的反馈")
    assert t["supervision_state"] == "late"

    report = await center.super.get("/api/v1/supervision?from=2026-11-01&to=2026-11-30")
    assert [t["number"] for t in report["alert"]] == [ignored]
    by = {r["department_id"]: r for r in report["by_department"]}
    water, env = by[center.departments["swuj"]], by[center.departments["sthj"]]
    assert (water["supervised"], water["on_time"], water["late"], water["overdue"]) == (2, 1, 1, 0)
    assert (env["supervised"], env["on_time"], env["late"], env["overdue"]) == (1, 0, 0, 1)
    # a department only sees its own
    mine = await center.env.get("/api/v1/supervision?from=2026-11-01&to=2026-11-30")
    assert [t["number"] for t in mine["items"]] == [ignored]


async def test_escalation_follows_the_chain_and_the_new_level_must_sign_and_reply(center: Center) -> None:
    n = await dispatched_to(center, "swuj")
    await center.water.act(n, "sign")
    refused = await center.super.act(n, "escalate", note="提级", expect=409)
    assert refused["error"] == "no_escalation_level"  # no chain configured, no level named
    center.client.app[STORE].escalation = {"swuj": "cgj", "*": "sthj"}
    t = await center.super.act(n, "escalate", note="群众反复反映，提级办理")
    city = center.departments["cgj"]
    assert (t["status"], t["lead_department_id"], t["escalation_level"]) == ("dispatched", city, 1)
    assert t["co_handler_ids"] == [center.departments["swuj"]]
    assert "sign" not in (await center.water.get(f"/api/v1/tickets/{n}"))["allowed_actions"]
    assert "sign" in (await center.city.get(f"/api/v1/tickets/{n}"))["allowed_actions"]
    refused = await center.city.act(n, "return", reason=center.client.app[STORE].settings.deadlines.return_reasons[0],
                                    note="不归我们", expect=409)
    assert refused["error"] == "escalated"  # the escalated level cannot hand it back
    await center.city.act(n, "sign")
    await center.water.act(n, "progress_report", note="原主办单位配合")
    # the next level up comes from the default of the chain
    t = await center.super.act(n, "escalate", note="再次提级")
    assert t["lead_department_id"] == center.departments["sthj"] and t["escalation_level"] == 2
    await center.env.act(n, "sign")
    t = await center.env.act(n, "reply", answer="市级协调解决。")
    assert t["status"] == "replied"
    report = await center.super.get("/api/v1/supervision")
    assert [e["number"] for e in report["escalated"]] == [n]  # 提级件


async def test_follow_up_adds_the_callers_call_to_the_open_case(center: Center) -> None:
    n = await dispatched_to(center, "swuj")
    t = await center.agent.act(n, "follow_up", kind="chaser", note="来电人催问进度")
    assert t["follow_up_count"] == 1
    t = await center.agent.act(n, "follow_up", kind="added", note="补充：夜里也有噪音")
    assert t["follow_up_count"] == 2
    assert (await center.water.act(n, "follow_up", note="x", expect=409))["error"] == "not_permitted"
    mine = await center.water.get(f"/api/v1/tickets/{n}")
    assert mine["follow_up_count"] == 2
    history = await center.water.get(f"/api/v1/tickets/{n}/history")
    assert [h["data"]["kind"] for h in history if h["action"] == "follow_up"] == ["chaser", "added"]


async def test_a_new_calls_draft_joins_the_open_case_instead_of_becoming_a_ticket(center: Center) -> None:
    n = await dispatched_to(center, "swuj")
    draft = (await center.new_ticket(caller_phone="13800138000", content="又打来催问施工噪音"))["number"]
    t = await center.agent.act(n, "follow_up", kind="chaser", note="来电人再次催办", draft=draft)
    assert t["follow_up_count"] == 1 and t["status"] == "dispatched"
    d = await center.agent.get(f"/api/v1/tickets/{draft}")
    assert (d["status"], d["duplicate_of"]) == ("merged", n)
    case = await center.water.get(f"/api/v1/tickets/{n}")
    assert [c["ticket"] for c in case["callers"]] == [draft]
    history = await center.water.get(f"/api/v1/tickets/{n}/history")
    assert [h["action"] for h in history if h["ticket"] == n][-2:] == ["follow_up", "merged_in"]
    bad = await center.agent.act(n, "follow_up", note="x", draft=n, expect=400)
    assert bad["field"] == "draft"
