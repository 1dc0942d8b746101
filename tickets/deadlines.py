"""办理时限: deadlines on China's working-day calendar (statutory holidays and 调休 make-up workdays).

Pure: no clock, no I/O. chinesecalendar is a table of dates, not a service; the city's holiday file
(``config/holidays.toml``) is read by the shell and passed in as a ``Calendar``.

Which days are working days (``Calendar``):
- the holiday file first: a year entered there (the State Council's notice) replaces chinesecalendar's table;
- then chinesecalendar, for the years it ships (1.11: 2004-2026);
- a year in neither is counted Monday-Friday, never silently: ``Deadlines.assumed_years`` and
  ``Calendar.missing_years`` say which years were assumed, and the shell shows it (/health, start-up log,
  supervisor page, the ticket's history). No year's holidays are ever made up here.

Conventions (a city can change the numbers in ``config/deadlines.toml``, not these rules):
- "N working days after t" ends at local midnight after the Nth working day following t's date;
  the day of ``t`` is never counted, so a ticket dispatched at 17:55 is not penalised.
- Hour-based limits (urgent tickets) are calendar hours: urgent cases do not wait for holidays.
- A suspended clock (waiting for the caller to supply information) pushes the reply deadline by the
  time it stayed suspended.
- A deadline at local midnight is shown as the end of the day before ("12月5日 24:00", ``format_due``).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from chinese_calendar import constants as _library

from config.settings import DeadlineSettings, HolidaySettings

# chinesecalendar knows whole years, from its first table to its last, and refuses any other year.
LIBRARY_YEARS: tuple[int, int] = (min(_library.holidays).year, max(_library.holidays).year)
# How far ahead the calendar must be known. The longest normal deadline (15 working days) plus the longest
# extension (10 working days) spans about 45 calendar days across Spring Festival; warning 60 days ahead gives
# the centre time to enter a newly published notice before any deadline reaches that year.
COVERAGE_DAYS = 60


@dataclass(frozen=True)
class Calendar:
    """Which days are working days: the city's holiday file, then chinesecalendar, else Monday-Friday assumed.

    ``holidays``/``workdays``/``file_years`` come from the holiday file (a year there replaces the library's
    table for that year). ``library`` is the range of years chinesecalendar is used for (``None``: not at
    all); tests narrow it so that they mean the same thing whatever version is installed.
    """

    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    file_years: frozenset[int] = frozenset()
    library: tuple[int, int] | None = LIBRARY_YEARS

    def __post_init__(self) -> None:
        first, last = LIBRARY_YEARS
        if self.library is not None and not first <= self.library[0] <= self.library[1] <= last:
            raise ValueError(f"chinesecalendar knows only {first}-{last}, not {self.library}")

    @classmethod
    def from_settings(cls, holidays: HolidaySettings,
                      library: tuple[int, int] | None = LIBRARY_YEARS) -> Calendar:
        years = holidays.years.values()
        return cls(frozenset(d for y in years for d in y.holidays),
                   frozenset(d for y in years for d in y.workdays), frozenset(holidays.years), library)

    def covers(self, year: int) -> bool:
        """True when the year's holidays are known (holiday file or chinesecalendar)."""
        lib = self.library
        return year in self.file_years or (lib is not None and lib[0] <= year <= lib[1])

    def missing_years(self, first: date, last: date) -> tuple[int, ...]:
        """The years from ``first`` to ``last`` (both included) whose holidays are not known."""
        return tuple(y for y in range(first.year, last.year + 1) if not self.covers(y))

    def is_working_day(self, day: date) -> bool:
        """True on a working day, including a 调休 Saturday or Sunday.

        In a year nobody covers this is Monday-Friday, an assumption: callers report ``missing_years``.
        """
        if day in self.holidays:
            return False
        if day in self.workdays:
            return True
        if day.year not in self.file_years and self.covers(day.year):
            # chinesecalendar's own rule (utils.is_workday), without its per-call scan of the whole table.
            return day in _library.workdays or (day.weekday() < 5 and day not in _library.holidays)
        return day.weekday() < 5


LIBRARY = Calendar()  # chinesecalendar alone: what a server without a holiday file uses


def is_working_day(day: date, calendar: Calendar = LIBRARY) -> bool:
    """True on a working day (``calendar.is_working_day``); survey calling hours take this as a callable."""
    return calendar.is_working_day(day)


def missing_ahead(calendar: Calendar, today: date, days: int = COVERAGE_DAYS) -> tuple[int, ...]:
    """The years in the next ``days`` days (from ``today``) whose holidays are not known."""
    return calendar.missing_years(today, today + timedelta(days=days))


def add_working_days(start: datetime, days: int, tz: ZoneInfo, calendar: Calendar = LIBRARY) -> datetime:
    """The end (next local midnight) of the ``days``-th working day after ``start``'s local date."""
    if days <= 0:
        return start
    day = start.astimezone(tz).date()
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if calendar.is_working_day(day):
            counted += 1
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)


def assumed_years(start: datetime, end: datetime, tz: ZoneInfo, calendar: Calendar) -> tuple[int, ...]:
    """The unknown years among the days counted from ``start`` to the deadline ``end`` (a midnight)."""
    first = start.astimezone(tz).date()
    last = (end - timedelta(microseconds=1)).astimezone(tz).date()
    return calendar.missing_years(first, max(first, last))


def working_days_between(start: datetime, end: datetime, tz: ZoneInfo, calendar: Calendar = LIBRARY) -> int:
    """Working days strictly after ``start``'s date up to and including ``end``'s date."""
    a, b = start.astimezone(tz).date(), end.astimezone(tz).date()
    count = 0
    while a < b:
        a += timedelta(days=1)
        if calendar.is_working_day(a):
            count += 1
    return count


@dataclass(frozen=True)
class Deadlines:
    sign_due: datetime
    reply_due: datetime
    return_until: datetime
    progress_due: datetime
    # Years whose holidays are unknown that these deadlines were counted through, Monday-Friday: a holiday
    # there may have been counted as a working day. Empty when every counted day was known.
    assumed_years: tuple[int, ...] = ()


def for_dispatch(
    dispatched_at: datetime, request_type: str, urgency: str, rules: DeadlineSettings, tz: ZoneInfo,
    calendar: Calendar = LIBRARY,
) -> Deadlines:
    """The deadlines that start when a ticket is dispatched to a department.

    Always gives deadlines (a dispatch must not fail); ``assumed_years`` says when they rest on a guess.
    """
    return_until = add_working_days(dispatched_at, rules.return_within_working_days, tz, calendar)
    counted = [return_until]
    if urgency == "urgent":
        sign_due = dispatched_at + timedelta(hours=rules.urgent_sign_hours)
        reply_due = dispatched_at + timedelta(hours=rules.urgent_reply_hours)
    else:
        sign_due = add_working_days(dispatched_at, rules.normal_sign_working_days, tz, calendar)
        reply_due = add_working_days(dispatched_at, rules.reply_working_days[request_type], tz, calendar)
        counted += [sign_due, reply_due]
    return Deadlines(
        sign_due=sign_due,
        reply_due=reply_due,
        return_until=return_until,
        progress_due=dispatched_at + timedelta(days=rules.progress_report_days),
        assumed_years=assumed_years(dispatched_at, max(counted), tz, calendar),
    )


def extend(reply_due: datetime, working_days: int, tz: ZoneInfo, calendar: Calendar = LIBRARY) -> datetime:
    """An approved extension: the reply deadline moves to the end of the ``working_days``-th working day
    after the day on which it currently ends (check ``assumed_years(reply_due, new, ...)``)."""
    return add_working_days(reply_due - timedelta(microseconds=1), working_days, tz, calendar)


def resume(reply_due: datetime, suspended_at: datetime, resumed_at: datetime) -> datetime:
    """The reply deadline after a suspension: pushed by exactly the time spent suspended."""
    return reply_due + max(resumed_at - suspended_at, timedelta(0))


def format_due(due: datetime, tz: ZoneInfo, with_year: bool = False) -> str:
    """A deadline as people read it. One that ends at local midnight is the last day ("12月5日 24:00", not
    "12月6日 00:00", which reads as a day more); an hour-precise one keeps its time ("12月5日 14:30")."""
    local = due.astimezone(tz)
    day, clock = local.date(), local.strftime("%H:%M")
    if local.time() == time(0):
        day, clock = day - timedelta(days=1), "24:00"
    return f"{f'{day.year}年' if with_year else ''}{day.month}月{day.day}日 {clock}"
