"""What the citizen is told by SMS, and when: which ticket change sends which template, to which number.

Pure: templates come in as data (``config/sms.toml`` is read by the service), a ticket's view and its history
entry come in, the text goes out.
"""
from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

KINDS = ("accepted", "replied", "reopened", "survey_invite")
KIND_LABELS = {"accepted": "受理通知", "replied": "答复通知", "reopened": "重办通知", "survey_invite": "评价邀请"}
PLACEHOLDERS = frozenset({"number", "link", "answer", "title"})
# Mainland mobile numbers as phones.normalize keeps them (national significant number); landlines get no SMS.
_MOBILE = re.compile(r"1[3-9]\d{9}")
STATUS_PATH = "/citizen/status"


@dataclass(frozen=True)
class Templates:
    texts: Mapping[str, str]
    signature: str = "【12345热线】"
    unsubscribe: str = "回复TD退订"
    answer_chars: int = 40


def load_templates(data: Mapping[str, Any]) -> Templates:
    """Templates from ``sms.toml``'s content. Raises ValueError naming the key at fault."""
    raw = data.get("templates", {})
    if not isinstance(raw, Mapping):
        raise ValueError("templates: must be a table of kind = \"text\"")
    texts: dict[str, str] = {}
    for kind, text in raw.items():
        if kind not in KINDS:
            raise ValueError(f"templates.{kind}: unknown kind (known: {', '.join(KINDS)})")
        if not isinstance(text, str):
            raise ValueError(f"templates.{kind}: must be text")
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
        except ValueError as exc:
            raise ValueError(f"templates.{kind}: {exc}") from None
        unknown = names - PLACEHOLDERS
        if unknown:
            raise ValueError(f"templates.{kind}: unknown placeholder {{{min(unknown)}}} "
                             f"(known: {', '.join('{' + p + '}' for p in sorted(PLACEHOLDERS))})")
        texts[kind] = text
    out = Templates(texts)
    for key in ("signature", "unsubscribe"):
        if key in data:
            if not isinstance(data[key], str):
                raise ValueError(f"{key}: must be text")
            out = replace(out, **{key: data[key]})
    if "answer_chars" in data:
        n = data["answer_chars"]
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError("answer_chars: must be a whole number >= 0")
        out = replace(out, answer_chars=n)
    return out


def kind_of(action: str, data: Mapping[str, Any]) -> str | None:
    """The SMS a ticket change calls for, if any."""
    if action == "accept":
        return "accepted"
    if action == "reply":
        return "replied"
    if action == "relay_reply":
        # a caller merged into the answered case; ``survey`` is False when that phone was already answered
        return "replied" if data.get("survey", True) else None
    if action == "reopen" or action == "record_survey" and data.get("reopened"):
        return "reopened"  # a dissatisfied survey answer reopens the case in the same step
    if action == "survey_unreachable":
        return "survey_invite"  # the phone survey could not reach the caller: ask by SMS instead
    return None


def mobile_of(phone: str) -> str | None:
    """The number to text, or None (no number, a landline, a foreign number)."""
    return phone if _MOBILE.fullmatch(phone or "") else None


def status_link(base: str, number: str) -> str:
    return f"{base.rstrip('/')}{STATUS_PATH}?n={quote(number)}"


def shorten(text: str, limit: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[:max(limit - 1, 0)] + "…"


def compose(kind: str, ticket: Mapping[str, Any], templates: Templates, link_base: str) -> str | None:
    """The whole text (signature, body, opt-out line) or None when the centre left that template empty."""
    body = templates.texts.get(kind, "")
    if not body:
        return None
    number = str(ticket.get("number") or "")
    values = {"number": number, "link": status_link(link_base, number),
              "answer": shorten(str(ticket.get("answer") or ""), templates.answer_chars),
              "title": shorten(str(ticket.get("title") or ""), 20)}
    return f"{templates.signature}{body.format_map(values)}{templates.unsubscribe}"


def is_unsubscribe(text: str) -> bool:
    """A citizen's reply that asks for no more texts (回复TD退订 and its usual variants)."""
    return text.strip().upper().rstrip("。.!！") in ("TD", "T", "退订")
