"""The pure 回访 rules: calling hours on China's calendar, retry spacing, what each outcome means."""
from __future__ import annotations

import ast
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from config.settings import SurveySettings
from tickets.surveys import schedule as ss

TZ = ZoneInfo("Asia/Shanghai")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=TZ).astimezone(timezone.utc)


def rules(**over: object) -> ss.Rules:
    return ss.Rules.from_settings(SurveySettings(**over), TZ)  # type: ignore[arg-type]


def test_pure_module_imports_no_io_and_reads_no_clock() -> None:
    tree = ast.parse(Path(ss.__file__).read_text(encoding="utf-8"))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"asyncio", "aiohttp", "redis", "sqlalchemy", "panoramisk", "arq", "time"}
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr in ("now", "utcnow", "today")]
    assert calls == []


@pytest.mark.parametrize("at, expected", [
    (local(2026, 11, 24, 9, 30), local(2026, 11, 24, 9, 30)),     # Tuesday, inside the morning window
    (local(2026, 11, 24, 8, 0), local(2026, 11, 24, 9, 0)),       # before opening
    (local(2026, 11, 24, 12, 0), local(2026, 11, 24, 14, 0)),     # lunch break: 12:00 is already closed
    (local(2026, 11, 24, 20, 0), local(2026, 11, 25, 9, 0)),      # evening -> next morning
    (local(2026, 11, 28, 9, 0), local(2026, 11, 28, 10, 0)),      # Saturday: rest-day hours 10-12, 14-18
    (local(2026, 11, 28, 18, 30), local(2026, 11, 29, 10, 0)),    # Saturday evening -> Sunday 10:00
    (local(2026, 10, 1, 9, 0), local(2026, 10, 1, 10, 0)),        # National Day (a Thursday): holiday hours
    (local(2026, 10, 10, 9, 0), local(2026, 10, 10, 9, 0)),       # 调休 Saturday is a working day
])
def test_calling_hours_follow_the_working_day_calendar(at: datetime, expected: datetime) -> None:
    assert rules().hours.next_open(at) == expected


def test_per_weekday_hours_and_bad_values() -> None:
    s = SimpleNamespace(calling_hours=["09:00-12:00", "14:00-20:00"], holiday_calling_hours=[],
                        weekday_calling_hours={"fri": ["09:00-11:00"]})
    hours = ss.CallingHours.from_settings(s, TZ)
    assert hours.next_open(local(2026, 11, 27, 11, 30)) == local(2026, 11, 30, 9, 0)  # Fri short, no weekend calls
    assert hours.is_open(local(2026, 11, 26, 19, 59)) and not hours.is_open(local(2026, 11, 27, 19, 0))
    with pytest.raises(ss.CallingHoursError):
        ss.parse_windows(["12:00-09:00"])
    with pytest.raises(ss.CallingHoursError):
        ss.parse_windows(["9h-12h"])
    never = ss.CallingHours((), (), TZ)
    with pytest.raises(ss.CallingHoursError):
        never.next_open(local(2026, 11, 24, 9, 0))


def test_first_attempt_waits_the_delay_then_calling_hours() -> None:
    r = rules()
    assert ss.first_due(local(2026, 11, 23, 9, 0), r) == local(2026, 11, 24, 9, 0)
    assert ss.first_due(local(2026, 11, 23, 21, 0), r) == local(2026, 11, 25, 9, 0)
    assert ss.first_due(local(2026, 11, 23, 13, 0), rules(delay_hours=0)) == local(2026, 11, 23, 14, 0)


def test_retries_are_spaced_and_limited() -> None:
    r = rules()
    start = local(2026, 11, 24, 9, 0)
    d1 = ss.decide("busy", {}, 1, start, start + timedelta(seconds=20), r)
    assert d1 == ss.Retry(local(2026, 11, 24, 11, 0))
    d2 = ss.decide("no_answer", {}, 2, local(2026, 11, 24, 11, 0), local(2026, 11, 24, 11, 1), r)
    assert d2 == ss.Retry(local(2026, 11, 24, 14, 0))  # 13:00 is in the lunch break
    assert ss.decide("congestion", {}, 3, start, start, r) == ss.Unreachable(3)


def test_answers_decide_the_result() -> None:
    r = rules()
    t = local(2026, 11, 24, 9, 0)
    full = ss.parse_answers({"resolved": "1", "satisfaction": "3"})
    assert ss.decide("answered", full, 1, t, t, r) == ss.Record("dissatisfied", True)
    # Satisfaction without resolved: recorded, resolved unknown.
    assert ss.decide("answered", ss.parse_answers({"satisfaction": "2"}), 1, t, t, r) == \
        ss.Record("basically_satisfied", None)
    # Hung up after the first question: a retry, the partial answer kept for later.
    partial = ss.parse_answers({"resolved": "2"})
    assert partial == {"resolved": False}
    assert isinstance(ss.decide("answered", partial, 1, t, t, r), ss.Retry)
    assert ss.merge_answers(partial, ss.parse_answers({"satisfaction": "1"})) == \
        {"resolved": False, "satisfaction": "satisfied"}
    # Empty or invalid digits are no answer.
    assert ss.parse_answers({"satisfaction": "", "resolved": "7"}) == {}
    note = ss.unreachable_note(["answered", "busy", "no_answer"], partial)
    assert "占线" in note and "未解决" in note


@pytest.mark.parametrize("reason, outcome", [(5, "busy"), ("3", "no_answer"), ("8", "congestion"), ("1", "failed"),
                                             ("0", "failed"), (None, "failed"), ("x", "failed")])
def test_originate_failure_reasons(reason: object, outcome: str) -> None:
    assert ss.outcome_of_originate_failure(reason) == outcome  # type: ignore[arg-type]


def test_who_is_called() -> None:
    assert ss.survey_mode({"caller_phone": "13800138000"}) == "auto"
    assert ss.survey_mode({"caller_phone": "13800138000", "anonymous": True}) == "manual"
    assert ss.survey_mode({"caller_phone": "", "channel": "web"}) == "manual"
    assert ss.survey_mode({"caller_phone": "13800138000", "survey_opt_out": True}) == "opted_out"
    assert ss.dial_number("13800138000") == "13800138000"
    assert ss.dial_number("1062345678") == "01062345678"
    assert ss.dial_number("+85291234567") == "0085291234567"
    assert ss.dial_number("12345") == "12345"
