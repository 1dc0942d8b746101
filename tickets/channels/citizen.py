"""The citizen's side of a ticket, pure: what the public page shows of a case (state in plain words, the
department or 处理中, the reply), the check of the ticket number and the phone's last four digits, and when the
citizen may still say "没有解决"."""
from __future__ import annotations

import re
from typing import Any, Mapping

NUMBER = re.compile(r"^\d{8}-\d{6}$")
TAIL = re.compile(r"^\d{4}$")
# What a citizen reads for each workflow state: the centre's inner steps (returned, merged) are not theirs.
STATE_LABELS = {"draft": "已收到，等待受理", "accepted": "已受理", "dispatched": "已转交承办单位办理",
                "returned": "处理中", "signed": "承办单位正在办理", "replied": "已答复",
                "answered_on_spot": "已答复", "surveyed": "已答复", "archived": "已办结", "invalid": "不予受理",
                "merged": "已与相同诉求合并办理"}
# States in which a citizen's "没有解决" is a survey answer the workflow takes (record_survey).
UNRESOLVED_FROM = frozenset({"replied", "answered_on_spot"})


def number_and_tail_ok(number: str, tail: str) -> bool:
    """The shape only (a ticket number such as 20261203-000123, four digits): the store does the matching."""
    return bool(NUMBER.match(number)) and bool(TAIL.match(tail))


def tail_matches(phone: str, tail: str) -> bool:
    digits = "".join(ch for ch in phone if ch.isdigit())
    return len(digits) >= 4 and digits[-4:] == tail


def lookup_view(ticket: Mapping[str, Any], department: str | None) -> dict[str, Any]:
    """The public page's view of a case. The reply is shown once there is one (a merged caller gets the
    master's); the department's name only once a department holds it, 处理中 before."""
    status = ticket["status"]
    return {
        "number": ticket["number"], "status": status, "state_label": STATE_LABELS.get(status, "处理中"),
        "department": department or "处理中", "created_at": ticket["created_at"],
        "title": ticket.get("title") or "", "category": ticket.get("category") or "",
        "reply": ticket.get("answer") or "", "replied_at": ticket.get("replied_at"),
        "can_say_unresolved": status in UNRESOLVED_FROM and ticket.get("satisfaction") is None,
        "said_unresolved": ticket.get("resolved") is False,
    }
