"""回访 rules as pure functions: calling hours, when the next attempt may ring, what an attempt's outcome means.

No clock and no I/O: every function takes ``now`` or the times it needs. The working-day calendar
(statutory holidays and 调休 make-up days) is passed in as ``is_working_day`` so tests can use any calendar;
the default is ``tickets.deadlines.is_working_day`` (chinesecalendar's table).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Callable, Literal, Mapping, Sequence
from zoneinfo import ZoneInfo

from tickets.deadlines import is_working_day as _default_working_day

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SATISFACTION_DIGITS = {"1": "satisfied", "2": "basically_satisfied", "3": "dissatisfied"}
RESOLVED_DIGITS = {"1": True, "2": False}
# What the dialer reports for one attempt. "answered" = the callee picked up (answers may still be missing).
CallOutcome = Literal["answered", "busy", "no_answer", "congestion", "failed", "lost"]
CALL_OUTCOMES = ("answered", "busy", "no_answer", "congestion", "failed", "lost")
OUTCOME_LABELS = {"answered": "已接通", "busy": "占线", "no_answer": "无人接听", "congestion": "线路拥塞",
                  "failed": "呼叫失败", "lost": "呼叫结果丢失"}
# AMI OriginateResponse Reason (Asterisk's AST_CONTROL_* values) for a Failure.
ORIGINATE_REASONS: dict[int, CallOutcome] = {0: "failed", 1: "failed", 3: "no_answer", 5: "busy", 8: "congestion"}
# 11 digits starting 13-19: a mainland mobile number, dialled as is.
_MOBILE_PREFIXES = tuple(f"1{d}" for d in "3456789")


class CallingHoursError(ValueError):
    """A calling-hours setting could not be read (the message names the bad value)."""


Window = tuple[time, time]


def parse_windows(specs: Sequence[str]) -> tuple[Window, ...]:
    """``["09:00-12:00", "14:00-20:00"]`` -> sorted (start, end) pairs; end is exclusive."""
    out: list[Window] = []
    for spec in specs:
        try:
            a, b = (part.strip() for part in spec.split("-", 1))
            start, end = time.fromisoformat(a), time.fromisoformat(b)
        except ValueError:
            raise CallingHoursError(f"calling hours must look like 09:00-12:00, got {spec!r}") from None
        if end <= start:
            raise CallingHoursError(f"calling hours {spec!r} end before they start")
        out.append((start, end))
    return tuple(sorted(out))


@dataclass(frozen=True)
class CallingHours:
    """When a survey call may ring, per local day.

    A working day (including a 调休 Saturday) uses ``weekday[day]`` when the city set one for that weekday,
    else ``workday``; a rest day (weekend or statutory holiday) uses ``holiday``.
    """

    workday: tuple[Window, ...]
    holiday: tuple[Window, ...]
    tz: ZoneInfo
    weekday: Mapping[str, tuple[Window, ...]] = field(default_factory=dict)
    is_working_day: Callable[[date], bool] = _default_working_day

    @classmethod
    def from_settings(cls, survey: Any, tz: ZoneInfo,
                      is_working_day: Callable[[date], bool] = _default_working_day) -> "CallingHours":
        by_day = getattr(survey, "weekday_calling_hours", None) or {}
        weekday = {}
        for name, specs in by_day.items():
            key = name.strip().lower()[:3]
            if key not in WEEKDAYS:
                raise CallingHoursError(f"unknown weekday {name!r} in survey.weekday_calling_hours")
            weekday[key] = parse_windows(specs)
        return cls(parse_windows(survey.calling_hours), parse_windows(survey.holiday_calling_hours), tz,
                   weekday, is_working_day)

    def windows_on(self, day: date) -> tuple[Window, ...]:
        if not self.is_working_day(day):
            return self.holiday
        return self.weekday.get(WEEKDAYS[day.weekday()], self.workday)

    def is_open(self, at: datetime) -> bool:
        local = at.astimezone(self.tz)
        t = local.time().replace(tzinfo=None)
        return any(a <= t < b for a, b in self.windows_on(local.date()))

    def next_open(self, earliest: datetime, horizon_days: int = 60) -> datetime:
        """The first instant at or after ``earliest`` inside calling hours (aware UTC).

        Raises ``CallingHoursError`` when no window opens within ``horizon_days`` (all windows empty).
        """
        local = earliest.astimezone(self.tz)
        day = local.date()
        for offset in range(horizon_days + 1):
            d = day + timedelta(days=offset)
            for start, end in self.windows_on(d):
                opens = datetime.combine(d, start, self.tz)
                closes = datetime.combine(d, end, self.tz)
                if closes <= local:
                    continue
                return max(opens, local).astimezone(earliest.tzinfo or self.tz)
        raise CallingHoursError(f"no calling hours within {horizon_days} days after {earliest.isoformat()}")

    def closes_at(self, at: datetime) -> datetime | None:
        """End of the window ``at`` is in, or None when closed."""
        local = at.astimezone(self.tz)
        t = local.time().replace(tzinfo=None)
        for a, b in self.windows_on(local.date()):
            if a <= t < b:
                return datetime.combine(local.date(), b, self.tz)
        return None


@dataclass(frozen=True)
class Rules:
    hours: CallingHours
    delay: timedelta
    spacing: timedelta
    max_attempts: int

    @classmethod
    def from_settings(cls, survey: Any, tz: ZoneInfo,
                      is_working_day: Callable[[date], bool] = _default_working_day) -> "Rules":
        return cls(CallingHours.from_settings(survey, tz, is_working_day), timedelta(hours=survey.delay_hours),
                   timedelta(hours=survey.min_spacing_hours), survey.max_attempts)


# ---------------------------------------------------------------- who is surveyed how
Mode = Literal["auto", "manual", "opted_out"]


def survey_mode(ticket: Mapping[str, Any]) -> Mode:
    """Opted out: no survey. Anonymous or no phone number: an agent surveys by other means (manual list)."""
    if ticket.get("survey_opt_out"):
        return "opted_out"
    if ticket.get("anonymous") or not (ticket.get("caller_phone") or "").strip():
        return "manual"
    return "auto"


def dial_number(phone: str) -> str:
    """The digits the trunk dials for a stored (normalised) number: mobiles as is, landlines with the 0 trunk
    prefix (``1062345678`` -> ``01062345678``), foreign E.164 with the 00 international prefix."""
    phone = phone.strip()
    if phone.startswith("+"):
        return "00" + "".join(c for c in phone[1:] if c.isdigit())
    digits = "".join(c for c in phone if c.isdigit())
    if len(digits) == 11 and digits.startswith(_MOBILE_PREFIXES):
        return digits
    if digits.startswith("0") or len(digits) <= 8:  # already prefixed, or a short local/service number
        return digits
    return "0" + digits


def first_due(replied_at: datetime, rules: Rules) -> datetime:
    return rules.hours.next_open(replied_at + rules.delay)


def retry_due(last_attempt_at: datetime, now: datetime, rules: Rules) -> datetime:
    """Next attempt: at least ``spacing`` after the previous one started, and inside calling hours."""
    return rules.hours.next_open(max(last_attempt_at + rules.spacing, now))


# ---------------------------------------------------------------- answers and outcomes
def outcome_of_originate_failure(reason: int | str | None) -> CallOutcome:
    try:
        code = int(reason) if reason is not None and reason != "" else 0
    except (TypeError, ValueError):
        return "failed"
    return ORIGINATE_REASONS.get(code, "failed")


def parse_answers(raw: Mapping[str, str]) -> dict[str, Any]:
    """IVR digits -> answers. Unknown digits and empty ones (timeout) are "not answered" (key absent)."""
    out: dict[str, Any] = {}
    sat = SATISFACTION_DIGITS.get((raw.get("satisfaction") or "").strip())
    if sat is not None:
        out["satisfaction"] = sat
    res = (raw.get("resolved") or "").strip()
    if res in RESOLVED_DIGITS:
        out["resolved"] = RESOLVED_DIGITS[res]
    return out


def merge_answers(earlier: Mapping[str, Any] | None, latest: Mapping[str, Any]) -> dict[str, Any]:
    """A partial answer from an earlier attempt is kept; a newer answer to the same question wins."""
    return {**(earlier or {}), **latest}


@dataclass(frozen=True)
class Record:
    """The caller answered the satisfaction question: record it on the ticket."""

    satisfaction: str
    resolved: bool | None


@dataclass(frozen=True)
class Retry:
    due_at: datetime


@dataclass(frozen=True)
class Unreachable:
    attempts: int


Decision = Record | Retry | Unreachable


def decide(outcome: str, answers: Mapping[str, Any], attempt: int, started_at: datetime, now: datetime,
           rules: Rules) -> Decision:
    """What follows one attempt.

    Only a satisfaction answer completes a survey (``resolved`` may be missing: recorded as not answered).
    Busy, no answer, congestion, a failed originate, a lost result, and a call hung up before the
    satisfaction question all count as "not reached": retry while attempts remain, then unreachable.
    """
    sat = answers.get("satisfaction")
    if isinstance(sat, str) and sat in SATISFACTION_DIGITS.values():
        resolved = answers.get("resolved")
        return Record(sat, resolved if isinstance(resolved, bool) else None)
    if attempt < rules.max_attempts:
        return Retry(retry_due(started_at, now, rules))
    return Unreachable(attempt)


def unreachable_note(attempt_outcomes: Sequence[str], answers: Mapping[str, Any]) -> str:
    parts = [f"自动回访{len(attempt_outcomes)}次未能完成：" + "、".join(OUTCOME_LABELS.get(o, o) for o in attempt_outcomes)]
    if "resolved" in answers:
        parts.append("来电人已回答问题" + ("已解决" if answers["resolved"] else "未解决") + "，未回答满意度")
    return "；".join(parts)
