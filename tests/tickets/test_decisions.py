"""Every dead end gets a decision: on-spot dissatisfied cases reopen, the ledger's decisions are recorded and
counted, replies carry an outcome class and 兜底 cases are listed by week and department."""
from __future__ import annotations

from dataclasses import replace

from tests.tickets.conftest import Center
from tickets.http import STORE


def supervisor_rule(center: Center) -> None:
    store = center.client.app[STORE]
    store.policy = replace(store.policy, dissatisfied_rule="supervisor")


async def test_on_spot_dissatisfied_reopens_to_be_dispatched_or_answered_again(center: Center) -> None:
    supervisor_rule(center)
    number = (await center.new_ticket(request_type="inquiry"))["number"]
    await center.agent.act(number, "answer_on_spot", answer="请到街道办咨询。", outcome="explained")
    t = await center.agent.act(number, "record_survey", satisfaction="dissatisfied", resolved=False)
    assert t["status"] == "surveyed" and t["ledger_pending"]
    assert {"reopen", "explain_close", "refer"} <= set((await center.super.get(f"/api/v1/tickets/{number}"))[
        "allowed_actions"])
    t = await center.super.act(number, "reopen", note="派给水务局核实")
    assert t["status"] == "accepted" and t["reopen_count"] == 1
    t = await center.agent.act(number, "dispatch", lead_department_id=center.departments["swuj"])
    assert t["status"] == "dispatched"
    await center.water.act(number, "sign")
    await center.water.act(number, "reply", answer="已修复。", outcome="resolved")
    t = await center.agent.act(number, "record_survey", satisfaction="satisfied", resolved=True)
    assert t["status"] == "surveyed" and not t["ledger_pending"]
    [item] = await center.super.get("/api/v1/ledger")
    assert item["decision"] == "reopened" and item["decision_note"] == "派给水务局核实"
    assert item["revisit_satisfaction"] == "satisfied" and item["revisit_resolved"] is True  # 重办后回访
    assert (await center.agent.act(number, "archive"))["status"] == "archived"


async def test_default_rule_on_spot_case_waits_for_a_supervisor_then_is_answered_again(center: Center) -> None:
    number = (await center.new_ticket(request_type="inquiry"))["number"]
    await center.agent.act(number, "answer_on_spot", answer="请到街道办咨询。")
    t = await center.agent.act(number, "record_survey", satisfaction="dissatisfied", resolved=False)
    assert t["status"] == "surveyed" and t["ledger_pending"]  # no department to reopen to automatically
    assert (await center.super.act(number, "reopen", note="重新答复"))["status"] == "accepted"
    t = await center.agent.act(number, "answer_on_spot", answer="已帮您联系街道办，明天上门。")
    assert t["status"] == "answered_on_spot" and t["reply_outcome"] == "resolved"
    [item] = await center.super.get("/api/v1/ledger")
    assert (item["decision"], item["decision_note"]) == ("reopened", "重新答复")


async def test_ledger_decisions_are_recorded_and_counted(center: Center) -> None:
    supervisor_rule(center)
    numbers = []
    for _ in range(3):
        number = (await center.new_ticket(accept=True))["number"]
        await center.agent.act(number, "dispatch", lead_department_id=center.departments["sthj"])
        await center.env.act(number, "sign")
        await center.env.act(number, "reply", answer="已处理")
        await center.agent.act(number, "record_survey", satisfaction="dissatisfied", resolved=False)
        numbers.append(number)
    a, b, c = numbers
    refused = await center.agent.act(a, "explain_close", note="x", expect=409)
    assert refused["error"] == "not_permitted"
    t = await center.super.act(a, "explain_close", note="已向来电人解释规划政策，来电人表示理解")
    assert t["status"] == "archived" and not t["ledger_pending"]
    assert (await center.super.act(b, "refer", expect=400))["field"] == "procedure"
    t = await center.super.act(b, "refer", procedure="行政复议", note="告知来电人申请行政复议")
    assert t["status"] == "archived"
    summary = await center.super.get("/api/v1/ledger/summary")
    assert summary["total"] == 3
    assert {k: v for k, v in summary["by_decision"].items() if v} == {
        "explained": 1, "referred": 1, "pending_supervisor": 1}
    ledger = {i["ticket"]: i for i in await center.super.get("/api/v1/ledger")}
    assert ledger[b]["decision_label"] == "依法分流" and ledger[a]["decided_by"] == center.super.user["id"]
    assert ledger[c]["decided_at"] is None


async def test_fallback_replies_are_listed_by_week_and_department(center: Center) -> None:
    center.clock.set_local(2026, 11, 25, 10, 0)  # a Wednesday
    water, env = center.departments["swuj"], center.departments["sthj"]
    for dept, who, outcome in ((water, "water", "fallback"), (water, "water", "fallback"), (env, "env", "fallback"),
                               (env, "env", "resolved")):
        number = (await center.new_ticket(accept=True))["number"]
        await center.agent.act(number, "dispatch", lead_department_id=dept)
        await getattr(center, who).act(number, "sign")
        t = await getattr(center, who).act(number, "reply", answer="无法办理：不属于政府职能", outcome=outcome)
        assert t["reply_outcome"] == outcome
    assert (await center.env.act(number, "reply", answer="x", outcome="nope", expect=409))["status"] == "replied"
    week = await center.super.get("/api/v1/fallback?week=2026-11-23")
    assert week["total"] == 3
    assert week["by_department"] == [{"department_id": water, "count": 2}, {"department_id": env, "count": 1}]
    assert (await center.super.get("/api/v1/fallback?week=2026-11-30"))["total"] == 0
    assert (await center.water.get("/api/v1/fallback?week=2026-11-27"))["total"] == 2  # its own only
