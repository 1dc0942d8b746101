"""The pure parts: which change texts whom, templates a centre may get wrong, quiet hours across midnight."""
from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from tickets.sms import messages
from tickets.sms.timing import QuietHours, backoff_seconds

TZ = ZoneInfo("Asia/Shanghai")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=TZ).astimezone(UTC)


def test_changes_that_text_the_citizen() -> None:
    assert messages.kind_of("accept", {}) == "accepted"
    assert messages.kind_of("reply", {}) == messages.kind_of("relay_reply", {"survey": True}) == "replied"
    # a merged caller with the master's own number already has the answer: one text per number
    assert messages.kind_of("relay_reply", {"survey": False}) is None
    assert messages.kind_of("reopen", {}) == "reopened"
    assert messages.kind_of("record_survey", {"reopened": True}) == "reopened"
    assert messages.kind_of("record_survey", {"satisfaction": "satisfied"}) is None
    assert messages.kind_of("survey_unreachable", {}) == "survey_invite"
    assert [messages.kind_of(a, {}) for a in ("create", "dispatch", "sign", "archive")] == [None] * 4


def test_only_mainland_mobiles_are_texted() -> None:
    assert messages.mobile_of("13800138000") == "13800138000"
    assert messages.mobile_of("1062345678") is None  # Beijing landline
    assert messages.mobile_of("") is None and messages.mobile_of("+447700900123") is None


def test_template_mistakes_name_the_key() -> None:
    with pytest.raises(ValueError, match=r"templates.accepted: unknown placeholder \{phone\}"):
        messages.load_templates({"templates": {"accepted": "号码{phone}"}})
    with pytest.raises(ValueError, match="templates.closing: unknown kind"):
        messages.load_templates({"templates": {"closing": "x"}})
    with pytest.raises(ValueError, match="templates.replied"):
        messages.load_templates({"templates": {"replied": "答复{answer"}})


def test_compose_keeps_chinese_and_shortens_the_answer() -> None:
    t = messages.load_templates({"answer_chars": 10, "templates": {"replied": "工单{number}：{answer}，见{link}"}})
    text = messages.compose("replied", {"number": "20261123-000001", "answer": "已责令施工单位夜间停工并处罚款两万元"},
                            t, "https://12345.example.gov.cn/")
    assert text == ("【12345热线】工单20261123-000001：已责令施工单位夜间…，"
                    "见https://12345.example.gov.cn/citizen/status?n=20261123-000001回复TD退订")
    assert messages.compose("accepted", {"number": "1"}, t, "") is None  # no template: no text


def test_quiet_hours_wrap_past_midnight() -> None:
    q = QuietHours.parse("21:00-08:00")
    assert not q.contains(local(2026, 11, 23, 20, 59), TZ)
    assert q.contains(local(2026, 11, 23, 21, 0), TZ) and q.contains(local(2026, 11, 24, 7, 59), TZ)
    assert not q.contains(local(2026, 11, 24, 8, 0), TZ)
    assert q.ends_after(local(2026, 11, 23, 23, 0), TZ) == local(2026, 11, 24, 8, 0)
    assert q.ends_after(local(2026, 11, 24, 3, 0), TZ) == local(2026, 11, 24, 8, 0)
    assert q.ends_after(local(2026, 11, 24, 12, 0), TZ) is None
    assert not QuietHours.parse("").contains(local(2026, 11, 24, 3, 0), TZ)
    with pytest.raises(ValueError):
        QuietHours.parse("21-8")


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff_seconds(n, 5, 60) for n in range(6)] == [0, 5, 10, 20, 40, 60]
