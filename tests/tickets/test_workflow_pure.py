"""The pure workflow table: what each role may do in each state, and what it refuses."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from config.settings import DeadlineSettings
from tickets import workflow as wf

NOW = datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc)
POLICY = wf.Policy(DeadlineSettings(), ZoneInfo("Asia/Shanghai"), "supervisor")
AGENT = wf.Actor(1, "agent", "话务员甲")
SUPER = wf.Actor(2, "supervisor", "班长")
WATER = wf.Actor(3, "department", "水务", department_id=10)
OTHER = wf.Actor(4, "department", "环保", department_id=11)


def run(state: wf.TicketState, action: str, actor: wf.Actor, **params: object) -> wf.TicketState:
    result = wf.apply(state, action, params, actor, NOW, POLICY)
    assert isinstance(result, wf.Transition), result
    return result.state


def test_allowed_actions_follow_role_and_relation() -> None:
    s = run(run(wf.TicketState(), "accept", AGENT), "dispatch", AGENT, lead_department_id=10)
    assert wf.allowed_actions(s, WATER) == ("sign", "return")
    assert wf.allowed_actions(s, OTHER) == ()
    assert "supervise" in wf.allowed_actions(s, SUPER) and "supervise" not in wf.allowed_actions(s, AGENT)


def test_supervisor_rule_keeps_dissatisfied_ticket_for_decision() -> None:
    s = run(run(wf.TicketState(), "accept", AGENT), "dispatch", AGENT, lead_department_id=10)
    s = run(run(s, "sign", WATER), "reply", WATER, answer="已处理")
    result = wf.apply(s, "record_survey", {"satisfaction": "dissatisfied", "resolved": True}, AGENT, NOW, POLICY)
    assert isinstance(result, wf.Transition)
    assert result.state.status == "surveyed" and result.state.ledger_pending
    assert [type(e).__name__ for e in result.effects] == ["SurveyRecorded", "LedgerEntry"]
    assert "archive" not in wf.allowed_actions(result.state, SUPER)
    refused = wf.apply(result.state, "archive", {}, SUPER, NOW, POLICY)
    assert isinstance(refused, wf.Refusal) and refused.code == "ledger_pending"
    reopened = run(result.state, "reopen", SUPER, note="班长决定重办")
    assert reopened.status == "dispatched" and not reopened.ledger_pending and reopened.reopen_count == 1


def test_every_refusal_names_the_state_and_never_raises() -> None:
    states = [wf.TicketState(status=s, lead_department_id=10) for s in wf.STATUSES]
    for state in states:
        for action in wf.ACTIONS:
            for actor in (AGENT, SUPER, WATER, OTHER):
                result = wf.apply(state, action, {}, actor, NOW, POLICY)
                if isinstance(result, wf.Refusal):
                    assert result.status == state.status
                    assert set(result.allowed) == set(wf.allowed_actions(state, actor))
                else:
                    assert action in wf.allowed_actions(state, actor)
