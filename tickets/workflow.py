"""The 12345 ticket workflow (接、转、办、督、考) as a pure state machine.

``apply(state, command, actor, now, policy)`` returns a ``Transition`` (new state, one history entry,
effects for the store to carry out) or a ``Refusal`` that names the current state and what is allowed.
The same table answers "what can this person do now?" for the UI (``allowed_actions``).

No I/O and no clock: ``now`` is passed in, deadlines come from ``tickets.deadlines``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from typing import Any, Callable, Literal, Mapping, Union
from zoneinfo import ZoneInfo

from config.settings import DeadlineSettings
from tickets import deadlines as dl

Role = Literal["agent", "department", "supervisor", "admin", "system"]

STATUSES = (
    "draft", "accepted", "answered_on_spot", "invalid", "dispatched", "returned", "signed",
    "replied", "surveyed", "archived", "merged",
)
STATUS_LABELS = {
    "draft": "草稿", "accepted": "已受理", "answered_on_spot": "直接办结", "invalid": "无效",
    "dispatched": "已派单", "returned": "退单待审", "signed": "办理中", "replied": "已办结",
    "surveyed": "已回访", "archived": "已归档", "merged": "已合并",
}
# Open = still owed something by someone; supervision and escalation apply here.
OPEN_STATUSES = frozenset({"accepted", "dispatched", "returned", "signed", "replied"})
SATISFACTION = ("satisfied", "basically_satisfied", "dissatisfied")
# The class of a reply (办结答复): what the caller was told. 兜底 = no one can handle it; reviewed weekly.
REPLY_OUTCOMES = {"resolved": "已解决", "explained": "已解释说明", "referred": "依法分流", "fallback": "无法办理（兜底）"}
# What a supervisor decided on a dissatisfied answer (不满意台账).
LEDGER_DECISIONS = {"reopened": "重办", "pending_supervisor": "待班长决定", "explained": "解释说明后办结",
                    "referred": "依法分流", "merged_caller": "并单来电人（见主工单）"}
CENTER_ROLES: frozenset[str] = frozenset({"agent", "supervisor", "admin"})
SUPERVISOR_ROLES: frozenset[str] = frozenset({"supervisor", "admin"})


@dataclass(frozen=True)
class Actor:
    user_id: int | None
    role: Role
    name: str
    department_id: int | None = None


@dataclass(frozen=True)
class Policy:
    """The city's rules the workflow needs; built once from settings."""

    deadlines: DeadlineSettings
    tz: ZoneInfo
    dissatisfied_rule: Literal["reopen", "supervisor"] = "reopen"
    calendar: dl.Calendar = dl.LIBRARY  # working days: the city's holiday file, then chinesecalendar


@dataclass(frozen=True)
class TicketState:
    status: str = "draft"
    request_type: str = "inquiry"
    urgency: str = "normal"
    accepted_by: int | None = None  # 首接负责: the accepting agent stays the owner until archived
    lead_department_id: int | None = None
    co_handler_ids: tuple[int, ...] = ()
    first_dispatched_at: datetime | None = None
    dispatched_at: datetime | None = None
    signed_at: datetime | None = None
    replied_at: datetime | None = None
    sign_due: datetime | None = None
    reply_due: datetime | None = None
    return_until: datetime | None = None
    progress_due: datetime | None = None
    return_reason: str | None = None
    extension_pending_days: int | None = None
    extension_days_granted: int = 0
    suspended_at: datetime | None = None
    supervised: bool = False
    supervision_due: datetime | None = None
    escalation_level: int = 0
    answer: str | None = None
    satisfaction: str | None = None
    resolved: bool | None = None
    survey_unreachable: bool = False
    ledger_pending: bool = False  # dissatisfied, waiting for a supervisor to decide (rule "supervisor")
    reopen_count: int = 0
    duplicate_of: str | None = None
    archived_at: datetime | None = None
    reply_outcome: str | None = None  # REPLY_OUTCOMES
    supervision_note: str | None = None  # 督办意见, shown at the top of the department's inbox
    supervision_answered_at: datetime | None = None  # the department's first response (progress or reply) after 督办
    suspend_requested: str | None = None  # a department's 暂停计时 request (its reason), waiting for a supervisor
    follow_up_count: int = 0  # 追加诉求 / 催办: the caller called again about this open case
    caller_update_due: datetime | None = None  # 告知来电人: next progress update owed to the caller (long cases)
    caller_reply_due: datetime | None = None  # 告知来电人: the result owed to the caller after the reply


@dataclass(frozen=True)
class HistoryEntry:
    action: str
    at: datetime
    actor_id: int | None
    actor_role: str
    actor_name: str
    from_status: str
    to_status: str
    note: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


# Effects: what the store must record besides the ticket row (department assignments feed the rates).
@dataclass(frozen=True)
class AssignmentOpened:
    department_id: int
    role: Literal["lead", "co"]
    dispatched_at: datetime
    sign_due: datetime
    reply_due: datetime


@dataclass(frozen=True)
class AssignmentSigned:
    department_id: int
    at: datetime


@dataclass(frozen=True)
class AssignmentClosed:
    department_id: int
    at: datetime
    outcome: Literal["returned", "replied", "withdrawn"]
    reason: str = ""


@dataclass(frozen=True)
class AssignmentRestored:
    """A rejected return: the department's returned assignment counts again, with its original deadlines."""

    department_id: int


@dataclass(frozen=True)
class ReplyDueChanged:
    reply_due: datetime


@dataclass(frozen=True)
class SurveyDue:
    replied_at: datetime


@dataclass(frozen=True)
class SurveyRecorded:
    department_id: int | None
    satisfaction: str
    resolved: bool | None
    at: datetime


@dataclass(frozen=True)
class LedgerDecided:
    """A supervisor's decision on the ticket's pending ledger item (重办, 解释说明后办结, 依法分流)."""

    decision: str
    note: str
    at: datetime
    by: int | None


@dataclass(frozen=True)
class LedgerEntry:
    department_id: int | None
    satisfaction: str
    resolved: bool | None
    at: datetime
    decision: Literal["reopened", "pending_supervisor", "merged_caller"]


Effect = Union[AssignmentOpened, AssignmentSigned, AssignmentClosed, AssignmentRestored, ReplyDueChanged, SurveyDue,
               SurveyRecorded, LedgerEntry, LedgerDecided]


@dataclass(frozen=True)
class Transition:
    state: TicketState
    entry: HistoryEntry
    effects: tuple[Effect, ...] = ()


@dataclass(frozen=True)
class Refusal:
    code: str  # stable slug, e.g. "not_allowed_in_state"
    message: str  # Chinese, for the person who tried
    status: str
    allowed: tuple[str, ...]
    field: str | None = None


class _Refuse(Exception):
    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


# ---------------------------------------------------------------- who may act
def _is_lead(state: TicketState, actor: Actor) -> bool:
    return actor.role == "department" and actor.department_id is not None \
        and actor.department_id == state.lead_department_id


def _is_handler(state: TicketState, actor: Actor) -> bool:
    return actor.role == "department" and actor.department_id is not None and (
        actor.department_id == state.lead_department_id or actor.department_id in state.co_handler_ids
    )


def _center(state: TicketState, actor: Actor) -> bool:
    return actor.role in CENTER_ROLES


def _supervisor(state: TicketState, actor: Actor) -> bool:
    return actor.role in SUPERVISOR_ROLES


def _supervisor_or_system(state: TicketState, actor: Actor) -> bool:
    return actor.role in SUPERVISOR_ROLES or actor.role == "system"


def _center_or_system(state: TicketState, actor: Actor) -> bool:
    return actor.role in CENTER_ROLES or actor.role == "system"


def _lead_or_supervisor(state: TicketState, actor: Actor) -> bool:
    return _is_lead(state, actor) or actor.role in SUPERVISOR_ROLES


# ---------------------------------------------------------------- parameter helpers
def _text(params: Mapping[str, Any], key: str, label: str, required: bool = True) -> str:
    value = params.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise _Refuse("missing_field", f"请填写{label}", key)
        return ""
    if not isinstance(value, str):
        raise _Refuse("invalid_field", f"{label}必须是文字", key)
    return value


def _int(params: Mapping[str, Any], key: str, label: str) -> int:
    value = params.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Refuse("invalid_field", f"{label}必须是整数", key)
    return value


def _open_assignments(state: TicketState, now: datetime, policy: Policy
                      ) -> tuple[TicketState, list[Effect], dict[str, Any]]:
    """New deadlines and assignments; the data says when the deadlines assumed Monday-Friday in some year."""
    assert state.lead_department_id is not None
    d = dl.for_dispatch(now, state.request_type, state.urgency, policy.deadlines, policy.tz, policy.calendar)
    effects: list[Effect] = [AssignmentOpened(state.lead_department_id, "lead", now, d.sign_due, d.reply_due)]
    effects += [AssignmentOpened(c, "co", now, d.sign_due, d.reply_due) for c in state.co_handler_ids]
    new = replace(
        state, status="dispatched", dispatched_at=now, caller_reply_due=None,
        caller_update_due=_caller_update_due(d.reply_due, now, policy),
        first_dispatched_at=state.first_dispatched_at or now,
        signed_at=None, replied_at=None, sign_due=d.sign_due, reply_due=d.reply_due,
        return_until=d.return_until, progress_due=d.progress_due, return_reason=None,
        extension_pending_days=None, extension_days_granted=0, suspended_at=None,
    )
    return new, effects, _assumed(d.assumed_years)


def _caller_update_due(reply_due: datetime | None, now: datetime, policy: Policy) -> datetime | None:
    """The caller hears of progress every ``caller_update_days`` while the reply is further away than that."""
    every = timedelta(days=policy.deadlines.caller_update_days)
    return now + every if reply_due is not None and reply_due - now > every else None


# History data key: deadlines counted Monday-Friday through these years (no holiday notice entered for them).
HOLIDAYS_UNKNOWN = "holidays_unknown_years"


def _assumed(years: tuple[int, ...]) -> dict[str, Any]:
    """History data naming the years whose holidays were unknown when a deadline was counted through them."""
    return {HOLIDAYS_UNKNOWN: list(years)} if years else {}


def _close_all(state: TicketState, now: datetime, outcome: Literal["returned", "replied", "withdrawn"],
               reason: str = "") -> list[Effect]:
    ids = ([state.lead_department_id] if state.lead_department_id is not None else []) + list(state.co_handler_ids)
    return [AssignmentClosed(i, now, outcome, reason) for i in ids]


# ---------------------------------------------------------------- the actions
Result = tuple[TicketState, str, dict[str, Any], list[Effect]]  # new state, note, data, effects


def _edit(s: TicketState, p: Mapping[str, Any], a: Actor, now: datetime, pol: Policy) -> Result:
    changes: dict[str, Any] = {}
    if "request_type" in p:
        changes["request_type"] = p["request_type"]
    if "urgency" in p:
        changes["urgency"] = p["urgency"]
    fields = sorted(k for k in p if k != "note")
    return replace(s, **changes), _text(p, "note", "说明", required=False), {"fields": fields}, []


def _accept(s: TicketState, p: Mapping[str, Any], a: Actor, now: datetime, pol: Policy) -> Result:
    return replace(s, status="accepted", accepted_by=s.accepted_by or a.user_id), \
        _text(p, "note", "说明", False), {}, []


def _outcome(params: Mapping[str, Any]) -> str:
    outcome = params.get("outcome", "resolved")
    if outcome not in REPLY_OUTCOMES:
        raise _Refuse("invalid_field", "办理结果须为：" + "、".join(REPLY_OUTCOMES.values()), "outcome")
    return str(outcome)


def _answer_on_spot(s: TicketState, p: Mapping[str, Any], a: Actor, now: datetime, pol: Policy) -> Result:
    answer = _text(p, "answer", "答复内容")
    outcome = _outcome(p)
    return replace(s, status="answered_on_spot", answer=answer, replied_at=now, reply_outcome=outcome,
                   satisfaction=None, resolved=None, survey_unreachable=False,
                   accepted_by=s.accepted_by or a.user_id), "", {"answer": answer, "outcome": outcome}, [SurveyDue(now)]


def _mark_invalid(s: TicketState, p: Mapping[str, Any], a: Actor, now: datetime, pol: Policy) -> Result:
    return replace(s, status="invalid"), _text(p, "reason", "无效原因"), {}, []


def _dispatch(s: TicketState, p: Mapping[str, Any], a: Actor, now: datetime, pol: Policy) -> Result:
    lead = _int(p, "lead_department_id", "主办单位")
    co_raw = p.get("co_handler_ids") or []
    if not isinstance(co_raw, (list, tuple)) or not all(isinstance(c, int) and not isinstance(c, bool)
                                                         for c in co_raw):
        raise _Refuse("invalid_field", "协办单位必须是单位编号列表", "co_handler_ids")
    co = tuple(dict.fromkeys(c for c in co_raw if c != lead))
    new, effects, assumed = _open_assignments(replace(s, lead_department_id=lead, co_handler_ids=co), now,
                                              pol)
    return new, _text(p, "note", "派单意见", False), \
        {"lead_department_id": lead, "co_handler_ids": list(co), "sign_due": new.sign_due,
         "reply_due": new.reply_due, **assumed}, effects


def _sign(s: TicketState, p: Mapping[str, Any], a: Actor, now: datetime, pol: Policy) -> Result:
    assert s.lead_department_id is not None
    on_time = s.sign_due is None or now <= s.sign_due
    return replace(s, status="signed", signed_at=now), _text(p, "note", "说明", False), \
        {"on_time": on_time}, [AssignmentSigned(s.lead_department_id, now)]


def _return(s: TicketState, p: Mapping[str, Any], a: Actor, now: datetime, pol: Policy) -> Result:
    if s.escalation_level > 0:
        raise _Refuse("escalated", "提级件须由提级后的单位签收办理，不能退单")
    reason = _text(p, "reason", "退单理由")
    if reason not in pol.deadlines.return_reasons:
        raise _Refuse("invalid_field", "退单理由须为：" + "、".join(pol.deadlines.return_reasons), "reason")
    if s.return_until is not None and now > s.return_until:
        raise _Refuse("return_window_closed",
                      f"派单后{pol.deadlines.return_within_working_days}个工作日内才能退单，已超过退单时限")
    note = _text(p, "note", "退单说明", False)
    return replace(s, status="returned", return_reason=reason), note, {"reason": reason}, \
        _close_all(s, now, "returned", reason)


def _approve_return(s: TicketState, p: Mapping[str, Any], a: Actor, now: datetime, pol: Policy) -> Result:
    # The ticket goes back to the dispatcher for re-dispatch; its age still counts from first dispatch.
    new = replace(s, status="accepted", lead_department_id=None, co_handler_ids=(), sign_due=None,
                  reply_due=None, return_until=None, progress_due=None, dispatched_at=None, signed_at=None)
    return new, _text(p, "note", "审核意见", False), {"returned_by": s.lead_department_id}, []


def _reject_return(s: TicketState, p: Mapping[str, Any], a: Actor, now: datetime, pol: Policy) -> Result:
    # The same department keeps it, with its original deadlines: returning must not buy time.
    ids = ([s.lead_department_id] if s.lead_department_id is not None else []) + list(s.co_handler_ids)
    return replace(s, status="dispatched", return_reason=None), _text(p, "note", "驳回理由"), {}, \
        [AssignmentRestored(i) for i in ids]


def _progress_report(s: TicketState, p: Mapping[str, Any], a: Actor, now: datetime, pol: Policy) -> Result:
    from datetime import timedelta

    note = _text(p, "note", "阶段反馈内容")
    sup, sup_data = _answers_supervision(s, now)
    return replace(s, progress_due=now + timedelta(days=pol.deadlines.progress_report_days), **sup), note, \
        {"department_id": a.department_id, **sup_data}, []


def _request_extension(s: TicketState, p: Mapping[str, Any], a: Actor, now: datetime, pol: Policy) -> Result:
    if s.extension_pending_days is not None:
        raise _Refuse("extension_pending", "已有延期申请待审批")
    days = _int(p, "days", "延期工作日数")
    limit = pol.deadlines.max_extension_working_days
    if not 1 <= days <= limit:
        raise _Refuse("invalid_field", f"延期天数须在1到{limit}个工作日之间", "days")
    reason = _text(p, "reason", "延期理由")
    return replace(s, extension_pending_days=days), reason, {"days": days}, []


def _approve_extension(s: TicketState, p: Mapping[str, Any], a: Actor, now: datetime, pol: Policy) -> Result:
    if s.extension_pending_days is None:
        raise _Refuse("no_extension_pending", "没有待审批的延期申请")
    days = p.get("days", s.extension_pending_days)
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= s.extension_pending_days:
        raise _Refuse("invalid_field", f"批准天数须在1到{s.extension_pending_days}之间", "days")
    assert s.reply_due is not None
    new_due = dl.extend(s.reply_due, days, pol.tz, pol.calendar)
    assumed = _assumed(dl.assumed_years(s.reply_due, new_due, pol.tz, pol.calendar))
    return replace(s, extension_pending_days=None, extension_days_granted=s.extension_days_granted + days,
                   reply_due=new_due), _text(p, "note", "审批意见", False), \
        {"days": days, "reply_due": new_due, **assumed}, [ReplyDueChanged(new_due)]


def _refuse_extension(s: TicketState, p: Mapping[str, Any], a: Actor, now: datetime, pol: Policy) -> Result:
    if s.extension_pending_days is None:
        raise _Refuse("no_extension_pending", "没有待审批的延期申请")
    return replace(s, extension_pending_days=None), _text(p, "note", "不予延期的理由"), {}, []


def _suspend(s: TicketState, p: Mapping[str, Any], a: Actor, now: datetime, pol: Policy) -> Result:
    """A supervisor stops the clock at once; a department only asks, like an extension (no stopping its own clock)."""
    if s.suspended_at is not None:
        raise _Refuse("already_suspended", "办理时限已暂停")
    if s.suspend_requested is not None:
        raise _Refuse("suspend_pending", "已有暂停计时申请待审批")
    reason = _text(p, "note", "暂停原因（如等待来电人补充材料）")
    if a.role not in SUPERVISOR_ROLES:
        return replace(s, suspend_requested=reason), reason, {"requested": True}, []
    return replace(s, suspended_at=now), reason, {}, []


def _approve_suspend(s: TicketState, p: Mapping[str, Any], a: Actor, now: datetime, pol: Policy) -> Result:
    if s.suspend_requested is None:
        raise _Refuse("no_suspend_pending", "没有待审批的暂停计时申请")
    return replace(s, suspended_at=now, suspend_requested=None), _text(p, "note", "审批意见", False), \
        {"reason": s.suspend_requested}, []


def _refuse_suspend(s: TicketState, p: Mapping[str, Any], a: Actor, now: datetime, pol: Policy) -> Result:
    if s.suspend_requested is None:
        raise _Refuse("no_suspend_pending", "没有待审批的暂停计时申请")
    return replace(s, suspend_requested=None), _text(p, "note", "不予暂停的理由"), {}, []


def _resume(s: TicketState, p: Mapping[str, Any], a: Actor, now: datetime, pol: Policy) -> Result:
    if s.suspended_at is None:
        raise _Refuse("not_suspended", "办理时限未暂停")
    assert s.reply_due is not None
    due = dl.resume(s.reply_due, s.suspended_at, now)
    return replace(s, suspended_at=None, reply_due=due), _text(p, "note", "说明", False), {"reply_due": due}, \
        [ReplyDueChanged(due)]


def _reply(s: TicketState, p: Mapping[str, Any], a: Actor, now: datetime, pol: Policy) -> Result:
    answer = _text(p, "answer", "答复内容")
    state, moved = s, list[Effect]()
    if s.suspended_at is not None and s.reply_due is not None:  # replying ends a suspension
        due = dl.resume(s.reply_due, s.suspended_at, now)
        state = replace(s, suspended_at=None, reply_due=due)
        moved = [ReplyDueChanged(due)]
    outcome = _outcome(p)
    on_time = state.reply_due is None or now <= state.reply_due
    sup, sup_data = _answers_supervision(state, now)
    caller_due = dl.add_working_days(now, pol.deadlines.caller_reply_working_days, pol.tz, pol.calendar)
    return replace(state, status="replied", replied_at=now, answer=answer, extension_pending_days=None,
                   reply_outcome=outcome, caller_update_due=None, caller_reply_due=caller_due, **sup), "", {"answer": answer, "on_time": on_time, "outcome": outcome,
                                                       **sup_data}, \
        moved + _close_all(state, now, "replied") + [SurveyDue(now)]


def _caller_answered(s: TicketState) -> bool:
    """A merged caller who got the master's answer and was not yet surveyed."""
    return s.replied_at is not None and s.satisfaction is None


def _record_survey(s: TicketState, p: Mapping[str, Any], a: Actor, now: datetime, pol: Policy) -> Result:
    if s.status == "merged" and not _caller_answered(s):
        raise _Refuse("not_answered", "该重复件的来电人尚未收到主工单答复")
    sat = p.get("satisfaction")
    if sat not in SATISFACTION:
        raise _Refuse("invalid_field", "满意度须为：满意、基本满意、不满意之一", "satisfaction")
    resolved = p.get("resolved")
    # None = the caller did not answer that question (hung up half way): the partial result is kept.
    if resolved is not None and not isinstance(resolved, bool):
        raise _Refuse("invalid_field", "问题是否已解决须为 true、false 或 null（未回答）", "resolved")
    note = _text(p, "note", "回访记录", False)
    effects: list[Effect] = [SurveyRecorded(s.lead_department_id, sat, resolved, now)]
    data: dict[str, Any] = {"satisfaction": sat, "resolved": resolved, "via": p.get("via", "manual")}
    state = replace(s, status="surveyed", satisfaction=sat, resolved=resolved, survey_unreachable=False)
    if s.status == "merged":  # a merged caller's answer: counted and in the ledger, decided on the master
        state = replace(state, status="merged")
        if sat == "dissatisfied" or resolved is False:
            effects.append(LedgerEntry(s.lead_department_id, sat, resolved, now, "merged_caller"))
        return state, note, {**data, "master": s.duplicate_of}, effects
    if sat == "dissatisfied" or resolved is False:
        reopen = pol.dissatisfied_rule == "reopen" and s.lead_department_id is not None
        effects.append(LedgerEntry(s.lead_department_id, sat, resolved, now,
                                   "reopened" if reopen else "pending_supervisor"))
        if reopen:
            state, opened, assumed = _open_assignments(replace(state, reopen_count=s.reopen_count + 1), now,
                                                       pol)
            effects += opened
            data.update(reopened=True, **assumed)
        else:  # also answered on the spot (no department to reopen to): a supervisor decides
            state = replace(state, ledger_pending=True)
    return state, note, data, effects


def _survey_unreachable(s: TicketState, p: Mapping[str, Any], a: Actor, now: datetime, pol: Policy) -> Result:
    if s.status == "merged" and not _caller_answered(s):
        raise _Refuse("not_answered", "该重复件的来电人尚未收到主工单答复")
    attempts = p.get("attempts")
    return replace(s, survey_unreachable=True), _text(p, "note", "说明", False), {"attempts": attempts}, []


def _reopen(s: TicketState, p: Mapping[str, Any], a: Actor, now: datetime, pol: Policy) -> Result:
    note = _text(p, "note", "重办意见")
    base = replace(s, reopen_count=s.reopen_count + 1, ledger_pending=False, archived_at=None,
                   satisfaction=None, resolved=None, survey_unreachable=False)
    decided: list[Effect] = [LedgerDecided("reopened", note, now, a.user_id)] if s.ledger_pending else []
    if s.lead_department_id is None:  # answered on the spot: back to the agents, to dispatch or answer again
        return replace(base, status="accepted"), note, {"reopen_count": base.reopen_count}, decided
    state, effects, assumed = _open_assignments(base, now, pol)
    return state, note, {"reopen_count": state.reopen_count, **assumed}, decided + effects


def _ledger_close(decision: Literal["explained", "referred"]) -> Callable[..., Result]:
    def run(s: TicketState, p: Mapping[str, Any], a: Actor, now: datetime, pol: Policy) -> Result:
        if not s.ledger_pending:
            raise _Refuse("no_ledger_pending", "该工单没有待决定的不满意回访")
        if decision == "explained":
            note = _text(p, "note", "解释说明情况")
            data: dict[str, Any] = {"decision": decision}
        else:
            procedure = _text(p, "procedure", "分流途径（如行政复议、诉讼、仲裁、信访）")
            note = _text(p, "note", "分流说明", False)
            data = {"decision": decision, "procedure": procedure}
        return replace(s, status="archived", archived_at=now, ledger_pending=False), note, data, \
            [LedgerDecided(decision, note or str(data.get("procedure", "")), now, a.user_id)]
    return run


def _archive(s: TicketState, p: Mapping[str, Any], a: Actor, now: datetime, pol: Policy) -> Result:
    if s.ledger_pending:
        raise _Refuse("ledger_pending", "不满意工单待班长决定是否重办，暂不能归档")
    if s.status == "replied" and not s.survey_unreachable and a.role not in SUPERVISOR_ROLES:
        raise _Refuse("survey_missing", "工单尚未回访，须回访或由班长决定后归档")
    return replace(s, status="archived", archived_at=now), _text(p, "note", "说明", False), {}, []


def _supervise(s: TicketState, p: Mapping[str, Any], a: Actor, now: datetime, pol: Policy) -> Result:
    note = _text(p, "note", "督办意见")
    due = p.get("due")
    if not isinstance(due, datetime):
        raise _Refuse("invalid_field", "请填写督办时限", "due")
    if due.tzinfo is None:
        raise _Refuse("invalid_field", "督办时限须带时区", "due")
    if due <= now:
        raise _Refuse("invalid_field", "督办时限须晚于现在", "due")
    return replace(s, supervised=True, supervision_due=due, supervision_note=note, supervision_answered_at=None), \
        note, {"due": due}, []


def _answers_supervision(s: TicketState, now: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """A department's progress report or reply is its response to a 督办: (state changes, history data)."""
    if not s.supervised or s.supervision_answered_at is not None:
        return {}, {}
    on_time = s.supervision_due is None or now <= s.supervision_due
    return {"supervision_answered_at": now}, {"supervision_on_time": on_time}


def _escalate(s: TicketState, p: Mapping[str, Any], a: Actor, now: datetime, pol: Policy) -> Result:
    """提级: the next level of the chain (the store fills it in from departments.toml, or the supervisor names it)
    becomes the lead and must sign and reply, on new deadlines; the former lead stays as a co-handler and its
    own assignment keeps its deadlines (escalating never takes an overdue case off a department's figures)."""
    note = _text(p, "note", "提级理由")
    value = p.get("to_department_id")
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Refuse("no_escalation_level", "没有配置上一级承办单位，请指定提级到的单位", "to_department_id")
    if value in _handlers(s):
        raise _Refuse("invalid_field", "提级单位须不同于当前承办单位", "to_department_id")
    d = dl.for_dispatch(now, s.request_type, s.urgency, pol.deadlines, pol.tz, pol.calendar)
    level = s.escalation_level + 1
    new = replace(s, status="dispatched", lead_department_id=value, co_handler_ids=tuple(_handlers(s)),
                  escalation_level=level, dispatched_at=now, signed_at=None, sign_due=d.sign_due,
                  reply_due=d.reply_due, return_until=now, progress_due=d.progress_due, extension_pending_days=None,
                  suspend_requested=None)
    return new, note, {"level": level, "to_department_id": value, "from_department_id": s.lead_department_id,
                       "sign_due": d.sign_due, "reply_due": d.reply_due, **_assumed(d.assumed_years)}, \
        [AssignmentOpened(value, "lead", now, d.sign_due, d.reply_due)]


def _inform_caller(s: TicketState, p: Mapping[str, Any], a: Actor, now: datetime, pol: Policy) -> Result:
    """告知来电人: the caller was told the progress (while handled) or the result (after the reply)."""
    note = _text(p, "note", "告知内容")
    if s.status == "replied":
        on_time = s.caller_reply_due is None or now <= s.caller_reply_due
        return replace(s, caller_reply_due=None), note, {"stage": "result", "on_time": on_time}, []
    on_time = s.caller_update_due is None or now <= s.caller_update_due
    return replace(s, caller_update_due=_caller_update_due(s.reply_due, now, pol)), note, \
        {"stage": "progress", "on_time": on_time}, []


def _handler_or_center(s: TicketState, a: Actor) -> bool:
    return _is_handler(s, a) or a.role in CENTER_ROLES


def _follow_up(s: TicketState, p: Mapping[str, Any], a: Actor, now: datetime, pol: Policy) -> Result:
    """追加诉求 / 催办: the caller called again about this open case; no new ticket, the department sees the count."""
    kind = p.get("kind", "chaser")
    if kind not in ("chaser", "added"):
        raise _Refuse("invalid_field", "类型须为 chaser（催办）或 added（追加诉求）", "kind")
    note = _text(p, "note", "来电内容")
    return replace(s, follow_up_count=s.follow_up_count + 1), note, \
        {"kind": kind, "count": s.follow_up_count + 1, "call_id": p.get("call_id")}, []


# ---------------------------------------------------------------- merge (并单) and split (拆分)
# How far along a case is, for choosing the master of a duplicate group: furthest along first.
MERGE_STAGE = {"draft": 0, "accepted": 1, "returned": 2, "dispatched": 2, "signed": 3, "replied": 4}
HELD_STATUSES = frozenset({"dispatched", "returned", "signed", "replied"})  # a department holds the case


def _level(status: str) -> int:
    """Draft < accepted < held by a department: a master never sits at a lower level than its duplicate."""
    return 2 if status in HELD_STATUSES else (1 if status == "accepted" else 0)


def merge_refusal(duplicate: TicketState, master: TicketState) -> str | None:
    """Why ``master`` cannot absorb ``duplicate`` (Chinese), or None. A draft is never the master of an
    accepted case, an unassigned case never the master of one a department holds."""
    if master.status not in MERGE_STAGE:
        return f"主工单当前为「{STATUS_LABELS.get(master.status, master.status)}」，不能作为主工单"
    if _level(master.status) < _level(duplicate.status):
        return (f"主工单为「{STATUS_LABELS[master.status]}」，不能并入已{STATUS_LABELS[duplicate.status]}的工单；"
                "请以办理进度更靠前的工单为主工单")
    return None


def _handlers(s: TicketState) -> list[int]:
    return ([s.lead_department_id] if s.lead_department_id is not None else []) + list(s.co_handler_ids)


def moved_departments(duplicate: TicketState, master: TicketState) -> list[int]:
    """Departments holding the duplicate that the master must take on as co-handlers (nobody loses a case).
    None once the master is replied: the case is answered, the duplicate's caller gets that answer."""
    if duplicate.status not in ("dispatched", "signed") or master.status not in ("dispatched", "signed", "returned"):
        return []
    held = set(_handlers(master))
    return [d for d in _handlers(duplicate) if d not in held]


_DATETIME_FIELDS = frozenset(f.name for f in fields(TicketState) if "datetime" in str(f.type))


def state_to_json(s: TicketState) -> dict[str, Any]:
    """The whole state as JSON (kept in the merge's history entry so a split restores it exactly)."""
    out: dict[str, Any] = {}
    for f in fields(TicketState):
        value = getattr(s, f.name)
        out[f.name] = value.isoformat() if isinstance(value, datetime) else \
            list(value) if isinstance(value, tuple) else value
    return out


def state_from_json(data: Mapping[str, Any]) -> TicketState:
    values: dict[str, Any] = {}
    for f in fields(TicketState):
        if f.name not in data:
            continue
        value = data[f.name]
        if f.name in _DATETIME_FIELDS and isinstance(value, str):
            value = datetime.fromisoformat(value)
        elif f.name == "co_handler_ids":
            value = tuple(value or ())
        values[f.name] = value
    return TicketState(**values)


def _master_state(p: Mapping[str, Any]) -> TicketState:
    master = p.get("master_state")  # filled in by the store from the master's row, never by the client
    if not isinstance(master, TicketState):
        raise _Refuse("invalid_field", "主工单不存在", "master")
    return master


def _merge(s: TicketState, p: Mapping[str, Any], a: Actor, now: datetime, pol: Policy) -> Result:
    master = _text(p, "master", "主工单编号")
    master_state = _master_state(p)
    why = merge_refusal(s, master_state)
    if why:
        raise _Refuse("master_not_eligible", why, "master")
    moved = moved_departments(s, master_state)
    effects = _close_all(s, now, "withdrawn", "merged") if s.status in ("dispatched", "signed") else []
    return replace(s, status="merged", duplicate_of=master), _text(p, "note", "说明", False), \
        {"master": master, "moved_departments": moved, "restore": state_to_json(s)}, effects


def _split(s: TicketState, p: Mapping[str, Any], a: Actor, now: datetime, pol: Policy) -> Result:
    note = _text(p, "note", "拆分理由")
    master_state = _master_state(p)
    if master_state.status == "archived":
        raise _Refuse("master_closed", "主工单已归档，不能再拆分")
    restore = p.get("restore")
    if not isinstance(restore, Mapping):
        raise _Refuse("no_merge_record", "找不到合并记录，无法拆分")
    restored = state_from_json(restore)
    # The department's withdrawn assignment counts again, with its original deadlines (as after 驳回退单).
    effects: list[Effect] = [AssignmentRestored(d) for d in _handlers(restored)] \
        if restored.status in ("dispatched", "signed") else []
    return replace(restored, duplicate_of=None), note, {"master": s.duplicate_of, "restored_status": restored.status}, \
        effects


# Actions the store takes on a ticket as the consequence of an action on another (never from the API).
def _merged_in(s: TicketState, p: Mapping[str, Any], a: Actor, now: datetime, pol: Policy) -> Result:
    moved = [d for d in p.get("departments", ()) if d not in _handlers(s)]
    effects: list[Effect] = []
    if moved and s.sign_due is not None and s.reply_due is not None:  # the master's deadlines, not new ones
        effects = [AssignmentOpened(d, "co", now, s.sign_due, s.reply_due) for d in moved]
    return replace(s, co_handler_ids=s.co_handler_ids + tuple(moved)), _text(p, "note", "说明", False), \
        {"duplicate": p.get("duplicate"), "departments": moved}, effects


def _split_out(s: TicketState, p: Mapping[str, Any], a: Actor, now: datetime, pol: Policy) -> Result:
    gone = [d for d in p.get("departments", ()) if d in s.co_handler_ids]
    return replace(s, co_handler_ids=tuple(c for c in s.co_handler_ids if c not in gone)), \
        _text(p, "note", "说明", False), {"duplicate": p.get("duplicate"), "departments": gone}, \
        [AssignmentClosed(d, now, "withdrawn", "split") for d in gone]


def _relay_reply(s: TicketState, p: Mapping[str, Any], a: Actor, now: datetime, pol: Policy) -> Result:
    """The master was answered: the merged caller gets the same answer and, unless already surveyed as
    another caller of the case, a survey of its own."""
    answer = _text(p, "answer", "答复内容")
    survey = p.get("survey") is True
    return replace(s, answer=answer, replied_at=now, satisfaction=None, resolved=None, survey_unreachable=False), \
        "", {"master": p.get("master"), "answer": answer, "survey": survey}, [SurveyDue(now)] if survey else []


@dataclass(frozen=True)
class Rule:
    label: str
    from_states: frozenset[str]
    who: Callable[[TicketState, Actor], bool]
    run: Callable[[TicketState, Mapping[str, Any], Actor, datetime, Policy], Result]
    when: Callable[[TicketState], bool] = lambda s: True  # extra condition on the state for "allowed now"


def _S(*names: str) -> frozenset[str]:
    return frozenset(names)


RULES: dict[str, Rule] = {
    "edit": Rule("修改", _S("draft", "accepted"), _center, _edit),
    "accept": Rule("受理", _S("draft"), _center, _accept),
    "answer_on_spot": Rule("直接办结", _S("draft", "accepted"), _center, _answer_on_spot),
    "mark_invalid": Rule("无效件", _S("draft", "accepted"), _center, _mark_invalid),
    "dispatch": Rule("派单", _S("accepted"), _center, _dispatch),
    "sign": Rule("签收", _S("dispatched"), _is_lead, _sign),
    "return": Rule("退单", _S("dispatched", "signed"), _is_lead, _return, lambda s: s.escalation_level == 0),
    "approve_return": Rule("同意退单", _S("returned"), _center, _approve_return),
    "reject_return": Rule("驳回退单", _S("returned"), _center, _reject_return),
    "progress_report": Rule("阶段反馈", _S("signed"), _is_handler, _progress_report),
    "request_extension": Rule("申请延期", _S("signed"), _is_lead, _request_extension,
                              lambda s: s.extension_pending_days is None),
    "approve_extension": Rule("批准延期", _S("signed"), _supervisor, _approve_extension,
                              lambda s: s.extension_pending_days is not None),
    "refuse_extension": Rule("不予延期", _S("signed"), _supervisor, _refuse_extension,
                             lambda s: s.extension_pending_days is not None),
    "suspend": Rule("暂停计时", _S("signed"), _lead_or_supervisor, _suspend,
                    lambda s: s.suspended_at is None and s.suspend_requested is None),
    "approve_suspend": Rule("批准暂停计时", _S("signed"), _supervisor, _approve_suspend,
                            lambda s: s.suspend_requested is not None),
    "refuse_suspend": Rule("不予暂停计时", _S("signed"), _supervisor, _refuse_suspend,
                           lambda s: s.suspend_requested is not None),
    "resume": Rule("恢复计时", _S("signed"), _lead_or_supervisor, _resume, lambda s: s.suspended_at is not None),
    "reply": Rule("办结答复", _S("signed"), _is_lead, _reply),
    "record_survey": Rule("回访结果", _S("replied", "answered_on_spot", "merged"), _center_or_system, _record_survey,
                          lambda s: s.status != "merged" or _caller_answered(s)),
    "survey_unreachable": Rule("回访未接通", _S("replied", "answered_on_spot", "merged"), _center_or_system,
                               _survey_unreachable, lambda s: not s.survey_unreachable
                               and (s.status != "merged" or _caller_answered(s))),
    "reopen": Rule("重办", _S("replied", "surveyed", "archived"), _supervisor_or_system, _reopen),
    "explain_close": Rule("解释说明后办结", _S("surveyed"), _supervisor, _ledger_close("explained"),
                          lambda s: s.ledger_pending),
    "refer": Rule("依法分流", _S("surveyed"), _supervisor, _ledger_close("referred"), lambda s: s.ledger_pending),
    "archive": Rule("归档", _S("surveyed", "answered_on_spot", "replied", "invalid"), _center_or_system, _archive,
                    lambda s: not s.ledger_pending),
    "supervise": Rule("督办", OPEN_STATUSES, _supervisor, _supervise),
    "escalate": Rule("提级", _S("dispatched", "signed"), _supervisor, _escalate),
    "follow_up": Rule("追加诉求/催办", OPEN_STATUSES, _center, _follow_up),
    "inform_caller": Rule("告知来电人", _S("signed", "replied"), _handler_or_center, _inform_caller),
    "merge": Rule("合并为重复件", _S("draft", "accepted", "dispatched", "returned", "signed"), _center, _merge),
    "split": Rule("拆分", _S("merged"), _supervisor, _split),
}
ACTIONS = tuple(RULES)
# Taken by the store on the master (merge, split) or on merged callers (the master's reply), in the same
# transaction as the action that causes them; not offered to anyone and refused from the API.
INTERNAL_RULES: dict[str, Rule] = {
    "merged_in": Rule("并入重复件", _S(*MERGE_STAGE), _center_or_system, _merged_in),
    "split_out": Rule("拆出重复件", _S(*STATUSES), _center_or_system, _split_out),
    "relay_reply": Rule("转达主工单答复", _S("merged"), _center_or_system, _relay_reply),
}


def allowed_actions(state: TicketState, actor: Actor) -> tuple[str, ...]:
    """The actions this actor may take on this ticket now, in table order."""
    return tuple(
        name for name, rule in RULES.items()
        if state.status in rule.from_states and rule.who(state, actor) and rule.when(state)
    )


def apply(state: TicketState, action: str, params: Mapping[str, Any], actor: Actor, now: datetime,
          policy: Policy) -> Transition | Refusal:
    """Take one action on one ticket. Never raises for a refused action; returns a ``Refusal``."""
    rule = RULES.get(action)
    allowed = allowed_actions(state, actor)
    label = STATUS_LABELS.get(state.status, state.status)
    if rule is None:
        return Refusal("unknown_action", f"未知操作：{action}", state.status, allowed)
    if state.status not in rule.from_states:
        return Refusal("not_allowed_in_state",
                       f"工单当前状态为「{label}」，不能{rule.label}；可执行：" + _labels(allowed),
                       state.status, allowed)
    if not rule.who(state, actor):
        return Refusal("not_permitted", f"您无权对该工单执行「{rule.label}」；可执行：" + _labels(allowed),
                       state.status, allowed)
    try:
        new, note, data, effects = rule.run(state, params, actor, now, policy)
    except _Refuse as refused:
        return Refusal(refused.code, refused.message, state.status, allowed, refused.field)
    entry = HistoryEntry(action, now, actor.user_id, actor.role, actor.name, state.status, new.status, note, data)
    return Transition(new, entry, tuple(effects))


def apply_internal(state: TicketState, action: str, params: Mapping[str, Any], actor: Actor, now: datetime,
                   policy: Policy) -> Transition | Refusal:
    """One of ``INTERNAL_RULES``, on the ticket an action on another ticket touches (same transaction)."""
    rule = INTERNAL_RULES[action]
    if state.status not in rule.from_states:
        return Refusal("not_allowed_in_state", f"工单当前状态为「{STATUS_LABELS.get(state.status, state.status)}」，"
                       f"不能{rule.label}", state.status, ())
    try:
        new, note, data, effects = rule.run(state, params, actor, now, policy)
    except _Refuse as refused:
        return Refusal(refused.code, refused.message, state.status, (), refused.field)
    entry = HistoryEntry(action, now, actor.user_id, actor.role, actor.name, state.status, new.status, note, data)
    return Transition(new, entry, tuple(effects))


def _labels(actions: tuple[str, ...]) -> str:
    return "、".join(RULES[a].label for a in actions) or "无"


# ---------------------------------------------------------------- overdue
DEADLINE_LABELS = {"sign": "签收", "reply": "办结", "caller_update": "告知来电人进度", "caller_reply": "告知来电人结果"}


def missed_deadlines(status: str, sign_due: datetime | None, reply_due: datetime | None,
                     suspended_at: datetime | None, now: datetime) -> tuple[tuple[str, datetime], ...]:
    """The deadlines a ticket has missed and still owes, first missed first: ("sign", due), ("reply", due).

    The same conditions as the store's overdue query: signing is owed while dispatched, the reply while
    dispatched or signed and not suspended. Empty when the ticket is not overdue.
    """
    missed: list[tuple[str, datetime]] = []
    if status == "dispatched" and sign_due is not None and sign_due < now:
        missed.append(("sign", sign_due))
    owes_reply = status in ("dispatched", "signed") and suspended_at is None
    if owes_reply and reply_due is not None and reply_due < now:
        missed.append(("reply", reply_due))
    return tuple(missed)


def missed_caller_deadlines(status: str, caller_update_due: datetime | None, caller_reply_due: datetime | None,
                            suspended_at: datetime | None, now: datetime) -> tuple[tuple[str, datetime], ...]:
    """The citizen-facing deadlines missed and still owed: ("caller_update", due) while handled and not
    suspended, ("caller_reply", due) once replied. Kept apart from ``missed_deadlines``: a department can be
    on time for its reply and still owe the caller a call."""
    missed: list[tuple[str, datetime]] = []
    if status in ("dispatched", "signed") and suspended_at is None and caller_update_due is not None \
            and caller_update_due < now:
        missed.append(("caller_update", caller_update_due))
    if status == "replied" and caller_reply_due is not None and caller_reply_due < now:
        missed.append(("caller_reply", caller_reply_due))
    return tuple(missed)
