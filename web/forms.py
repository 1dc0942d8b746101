"""The input each workflow action needs, as data the ticket page renders into small forms.

Keys mirror the parameters ``tickets.workflow`` reads; labels are what the person sees.
"""
from __future__ import annotations

from typing import Any

# field: (name, label, kind, extra); kinds: text, textarea, number, select, datetime, bool, department, departments
Field = dict[str, Any]


def _f(name: str, label: str, kind: str = "text", **extra: Any) -> Field:
    return {"name": name, "label": label, "kind": kind, **extra}


OUTCOME = _f("outcome", "办理结果", "select", options=[
    ("resolved", "已解决"), ("explained", "已解释说明"), ("referred", "依法分流"), ("fallback", "无法办理（兜底）")])
# A call the agent handled without a ticket closes its draft as 无效件 with one of these (one key each on the
# agent page, Alt+1..); the reason is the history note, so the report can count them by reason.
INVALID_CALL_REASONS = ("打错电话", "无声电话", "已转接", "骚扰电话")
REFER_PROCEDURES = ("行政复议", "行政诉讼", "民事诉讼", "仲裁", "信访", "纪检监察", "其他法定途径")


def action_forms(return_reasons: list[str], max_extension: int) -> dict[str, dict[str, Any]]:
    return {
        "sign": {"fields": [_f("note", "签收说明（可不填）", optional=True)], "primary": True},
        "return": {"fields": [_f("reason", "退单理由", "select", options=[(r, r) for r in return_reasons]),
                              _f("note", "退单说明", "textarea")], "danger": True},
        "progress_report": {"fields": [_f("note", "阶段办理情况", "textarea")]},
        "request_extension": {"fields": [_f("days", f"延期工作日数（1–{max_extension}）", "number", min=1,
                                            max=max_extension), _f("reason", "延期理由", "textarea")]},
        "reply": {"fields": [_f("answer", "办结答复（将告知来电人）", "textarea", rows=5), OUTCOME], "primary": True},
        "suspend": {"fields": [_f("note", "暂停原因（如等待来电人补充材料；承办单位申请须班长批准）", "textarea")]},
        "resume": {"fields": [_f("note", "说明（可不填）", optional=True)]},
        "approve_extension": {"fields": [_f("days", "批准天数（不填为全部）", "number", optional=True, min=1),
                                         _f("note", "审批意见", optional=True)], "primary": True},
        "refuse_extension": {"fields": [_f("note", "不予延期的理由", "textarea")], "danger": True},
        "approve_return": {"fields": [_f("note", "审核意见", optional=True)], "primary": True},
        "reject_return": {"fields": [_f("note", "驳回理由", "textarea")], "danger": True},
        "supervise": {"fields": [_f("due", "督办时限", "datetime"), _f("note", "督办意见", "textarea")]},
        "escalate": {"fields": [_f("to_department_id", "提级到（不选则按 departments.toml 的提级链）", "department",
                                   optional=True), _f("note", "提级理由", "textarea")]},
        "approve_suspend": {"fields": [_f("note", "审批意见", optional=True)], "primary": True},
        "refuse_suspend": {"fields": [_f("note", "不予暂停的理由", "textarea")], "danger": True},
        "inform_caller": {"fields": [_f("note", "已告知来电人的内容（办理进度或办理结果）", "textarea")]},
        "follow_up": {"fields": [_f("kind", "类型", "select", options=[("chaser", "催办"), ("added", "追加诉求")]),
                                 _f("note", "来电人这次说的内容", "textarea")]},
        "merge": {"fields": [_f("master", "主工单编号"), _f("note", "说明", optional=True)], "danger": True},
        "split": {"fields": [_f("note", "拆分理由（恢复为合并前的状态）", "textarea")], "danger": True},
        "record_survey": {"fields": [_f("satisfaction", "满意度", "select", options=[
            ("satisfied", "满意"), ("basically_satisfied", "基本满意"), ("dissatisfied", "不满意")]),
            _f("resolved", "问题是否解决", "bool"), _f("note", "回访记录", optional=True)]},
        "survey_unreachable": {"fields": [_f("note", "说明", optional=True)]},
        "reopen": {"fields": [_f("note", "重办意见", "textarea")], "danger": True},
        "archive": {"fields": [_f("note", "说明", optional=True)]},
        "mark_invalid": {"fields": [_f("reason", "无效原因")], "danger": True},
        "accept": {"fields": [], "primary": True},
        "answer_on_spot": {"fields": [_f("answer", "答复内容", "textarea"), OUTCOME]},
        "explain_close": {"fields": [_f("note", "解释说明情况（办结说明）", "textarea")], "primary": True},
        "refer": {"fields": [_f("procedure", "分流途径", "select", options=[(p, p) for p in REFER_PROCEDURES]),
                             _f("note", "分流说明", optional=True)]},
        "dispatch": {"fields": [_f("lead_department_id", "主办单位", "department"),
                                _f("co_handler_ids", "协办单位（可多选）", "departments"),
                                _f("note", "派单意见", optional=True)], "primary": True},
    }
