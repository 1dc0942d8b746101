"""The pure workflow table: what each role may do in each state, and what it refuses."""
from __future__ import annotations

from dataclasses import replace
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


def test_merge_never_makes_a_draft_the_master_of_a_held_case_and_split_restores_it() -> None:
    signed = run(run(run(wf.TicketState(), "accept", AGENT), "dispatch", AGENT, lead_department_id=10), "sign", WATER)
    signed = run(signed, "request_extension", WATER, days=3, reason="协调")
    signed = run(signed, "approve_extension", SUPER)
    draft = wf.TicketState()
    refused = wf.apply(signed, "merge", {"master": "D1", "master_state": draft}, SUPER, NOW, POLICY)
    assert isinstance(refused, wf.Refusal) and refused.code == "master_not_eligible"
    accepted = run(wf.TicketState(), "accept", AGENT)
    assert wf.merge_refusal(signed, accepted) is not None and wf.merge_refusal(draft, accepted) is None
    assert wf.merge_refusal(accepted, draft) is not None  # a draft is not the master of an accepted case

    other = wf.TicketState(status="dispatched", lead_department_id=11, sign_due=NOW, reply_due=NOW)
    result = wf.apply(signed, "merge", {"master": "M1", "master_state": other}, SUPER, NOW, POLICY)
    assert isinstance(result, wf.Transition) and result.state.status == "merged"
    assert result.entry.data["moved_departments"] == [10]
    assert wf.moved_departments(signed, replace(other, status="replied")) == []  # answered: no one to hand it to
    assert [type(e).__name__ for e in result.effects] == ["AssignmentClosed"]
    master = wf.apply_internal(other, "merged_in", {"duplicate": "X", "departments": [10]}, SUPER, NOW, POLICY)
    assert isinstance(master, wf.Transition) and master.state.co_handler_ids == (10,)
    assert master.state.reply_due == other.reply_due  # the master's deadlines are not reset

    params = {"note": "不是同一件事", "restore": result.entry.data["restore"], "master_state": other}
    assert "split" not in wf.allowed_actions(result.state, AGENT)
    back = wf.apply(result.state, "split", params, SUPER, NOW, POLICY)
    assert isinstance(back, wf.Transition) and back.state == signed
    assert [type(e).__name__ for e in back.effects] == ["AssignmentRestored"]
    archived = replace(other, status="archived")
    late = wf.apply(result.state, "split", {**params, "master_state": archived}, SUPER, NOW, POLICY)
    assert isinstance(late, wf.Refusal) and late.code == "master_closed"


def test_on_spot_dissatisfied_is_never_a_dead_end() -> None:
    spot = run(run(wf.TicketState(), "accept", AGENT), "answer_on_spot", AGENT, answer="按规定办理")
    surveyed = run(spot, "record_survey", AGENT, satisfaction="dissatisfied", resolved=False)
    assert surveyed.ledger_pending  # rule "supervisor": waits for a decision
    assert {"reopen", "explain_close", "refer"} <= set(wf.allowed_actions(surveyed, SUPER))
    reopened = run(surveyed, "reopen", SUPER, note="请派单办理")
    assert reopened.status == "accepted" and reopened.reopen_count == 1
    assert {"dispatch", "answer_on_spot"} <= set(wf.allowed_actions(reopened, AGENT))
    again = run(reopened, "answer_on_spot", AGENT, answer="再次答复", outcome="explained")
    assert again.reply_outcome == "explained" and again.satisfaction is None

    auto = wf.Policy(DeadlineSettings(), ZoneInfo("Asia/Shanghai"), "reopen")
    result = wf.apply(spot, "record_survey", {"satisfaction": "dissatisfied"}, AGENT, NOW, auto)
    assert isinstance(result, wf.Transition) and result.state.ledger_pending  # no department: a supervisor decides
    assert "reopen" in wf.allowed_actions(result.state, SUPER)


def test_ledger_decisions_close_with_a_record() -> None:
    s = run(run(run(wf.TicketState(), "accept", AGENT), "dispatch", AGENT, lead_department_id=10), "sign", WATER)
    s = run(run(s, "reply", WATER, answer="已处理", outcome="resolved"), "record_survey", AGENT,
            satisfaction="dissatisfied", resolved=True)
    explained = wf.apply(s, "explain_close", {"note": "已向来电人解释政策"}, SUPER, NOW, POLICY)
    assert isinstance(explained, wf.Transition) and explained.state.status == "archived"
    assert not explained.state.ledger_pending
    assert [(type(e).__name__, getattr(e, "decision", "")) for e in explained.effects] == [
        ("LedgerDecided", "explained")]
    referred = wf.apply(s, "refer", {"procedure": "行政复议"}, SUPER, NOW, POLICY)
    assert isinstance(referred, wf.Transition) and referred.entry.data["procedure"] == "行政复议"
    refused = wf.apply(s, "refer", {}, SUPER, NOW, POLICY)
    assert isinstance(refused, wf.Refusal) and refused.field == "procedure"
    bad = wf.apply(run(s, "reopen", SUPER, note="重办"), "explain_close", {"note": "x"}, SUPER, NOW, POLICY)
    assert isinstance(bad, wf.Refusal)
    wrong = wf.apply(wf.TicketState(status="signed", lead_department_id=10), "reply",
                     {"answer": "x", "outcome": "done"}, WATER, NOW, POLICY)
    assert isinstance(wrong, wf.Refusal) and wrong.field == "outcome"


def test_a_department_cannot_stop_its_own_clock() -> None:
    s = run(run(run(wf.TicketState(), "accept", AGENT), "dispatch", AGENT, lead_department_id=10), "sign", WATER)
    asked = run(s, "suspend", WATER, note="等待来电人补充材料")
    assert asked.suspended_at is None and asked.suspend_requested == "等待来电人补充材料"
    assert "approve_suspend" not in wf.allowed_actions(asked, WATER)
    assert {"approve_suspend", "refuse_suspend"} <= set(wf.allowed_actions(asked, SUPER))
    approved = run(asked, "approve_suspend", SUPER)
    assert approved.suspended_at == NOW and approved.suspend_requested is None
    refused = run(asked, "refuse_suspend", SUPER, note="材料可后补")
    assert refused.suspended_at is None and refused.suspend_requested is None
    assert run(s, "suspend", SUPER, note="班长决定暂停").suspended_at == NOW


def test_supervision_is_answered_by_the_departments_first_response() -> None:
    from datetime import timedelta

    s = run(run(run(wf.TicketState(), "accept", AGENT), "dispatch", AGENT, lead_department_id=10), "sign", WATER)
    s = run(s, "supervise", SUPER, note="限期反馈", due=NOW + timedelta(days=1))
    result = wf.apply(s, "progress_report", {"note": "已处理"}, WATER, NOW + timedelta(hours=2), POLICY)
    assert isinstance(result, wf.Transition) and result.entry.data["supervision_on_time"] is True
    assert result.state.supervision_answered_at == NOW + timedelta(hours=2)
    escalated = run(s, "escalate", SUPER, note="提级", to_department_id=20)
    assert (escalated.status, escalated.lead_department_id, escalated.co_handler_ids) == ("dispatched", 20, (10,))
    assert "return" not in wf.allowed_actions(escalated, wf.Actor(9, "department", "城管", department_id=20))


def test_citizen_facing_deadlines() -> None:
    from datetime import timedelta

    complaint = run(run(wf.TicketState(request_type="complaint"), "accept", AGENT), "dispatch", AGENT,
                    lead_department_id=10)
    assert complaint.caller_update_due == NOW + timedelta(days=7)  # 15 working days: the caller hears weekly
    short = run(run(wf.TicketState(request_type="inquiry"), "accept", AGENT), "dispatch", AGENT,
                lead_department_id=10)
    assert short.caller_update_due is None  # 3 working days: the reply itself comes first
    s = run(complaint, "sign", WATER)
    later = NOW + timedelta(days=8)
    assert wf.missed_caller_deadlines(s.status, s.caller_update_due, s.caller_reply_due, None, later) == (
        ("caller_update", NOW + timedelta(days=7)),)
    told = wf.apply(s, "inform_caller", {"note": "已电话告知进度"}, WATER, later, POLICY)
    assert isinstance(told, wf.Transition) and told.entry.data == {"stage": "progress", "on_time": False}
    assert told.state.caller_update_due == later + timedelta(days=7)
    replied = run(s, "reply", WATER, answer="已处理")
    assert replied.caller_update_due is None and replied.caller_reply_due is not None
    # replied Monday 2026-11-23 (Beijing): the result is owed by the end of Tuesday
    assert replied.caller_reply_due == datetime(2026, 11, 25, 0, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    done = run(replied, "inform_caller", AGENT, note="已告知办理结果")
    assert done.caller_reply_due is None
