"""办理时限: deadlines on China's working-day calendar (statutory holidays and 调休 make-up workdays).

Pure: no clock, no I/O. chinesecalendar is a table of dates, not a service.

Conventions (a city can change the numbers in ``config/deadlines.toml``, not these rules):
- "N working days after t" ends at local midnight after the Nth working day following t's date;
  the day of ``t`` is never counted, so a ticket dispatched at 17:55 is not penalised.
- Hour-based limits (urgent tickets) are calendar hours: urgent cases do not wait for holidays.
- A suspended clock (waiting for the caller to supply information) pushes the reply deadline by the
  time it stayed suspended.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar

from config.settings import DeadlineSettings

_FIRST_YEAR, _LAST_YEAR = 2004, max(chinese_calendar.constants.holidays).year


@lru_cache(maxsize=4096)
def is_working_day(day: date) -> bool:
    """True on a working day, including a 调休 Saturday or Sunday.

    Years outside chinesecalendar's table fall back to Monday-Friday rather than failing a request.
    """
    if _FIRST_YEAR <= day.year <= _LAST_YEAR:
        return bool(chinese_calendar.is_workday(day))
    return day.weekday() < 5


def add_working_days(start: datetime, days: int, tz: ZoneInfo) -> datetime:
    """The end (next local midnight) of the ``days``-th working day after ``start``'s local date."""
    if days <= 0:
        return start
    day = start.astimezone(tz).date()
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if is_working_day(day):
            counted += 1
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)


def working_days_between(start: datetime, end: datetime, tz: ZoneInfo) -> int:
    """Working days strictly after ``start``'s date up to and including ``end``'s date."""
    a, b = start.astimezone(tz).date(), end.astimezone(tz).date()
    count = 0
    while a < b:
        a += timedelta(days=1)
        if is_working_day(a):
            count += 1
    return count


@dataclass(frozen=True)
class Deadlines:
    sign_due: datetime
    reply_due: datetime
    return_until: datetime
    progress_due: datetime


def for_dispatch(
    dispatched_at: datetime, request_type: str, urgency: str, rules: DeadlineSettings, tz: ZoneInfo
) -> Deadlines:
    """The deadlines that start when a ticket is dispatched to a department."""
    if urgency == "urgent":
        sign_due = dispatched_at + timedelta(hours=rules.urgent_sign_hours)
        reply_due = dispatched_at + timedelta(hours=rules.urgent_reply_hours)
    else:
        sign_due = add_working_days(dispatched_at, rules.normal_sign_working_days, tz)
        reply_due = add_working_days(dispatched_at, rules.reply_working_days[request_type], tz)
    return Deadlines(
        sign_due=sign_due,
        reply_due=reply_due,
        return_until=add_working_days(dispatched_at, rules.return_within_working_days, tz),
        progress_due=dispatched_at + timedelta(days=rules.progress_report_days),
    )


def extend(reply_due: datetime, working_days: int, tz: ZoneInfo) -> datetime:
    """An approved extension: the reply deadline moves to the end of the ``working_days``-th working day
    after the day on which it currently ends."""
    return add_working_days(reply_due - timedelta(microseconds=1), working_days, tz)


def resume(reply_due: datetime, suspended_at: datetime, resumed_at: datetime) -> datetime:
    """The reply deadline after a suspension: pushed by exactly the time spent suspended."""
    return reply_due + max(resumed_at - suspended_at, timedelta(0))
