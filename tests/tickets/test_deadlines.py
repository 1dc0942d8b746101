"""Deadlines on China's working-day calendar: Spring Festival 2026 and its 调休 Saturdays."""
from __future__ import annotations

from datetime import date, datetime

from config.settings import DeadlineSettings
from tickets import deadlines as dl
from tests.tickets.conftest import TZ

RULES = DeadlineSettings()


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=TZ)


def test_spring_festival_2026_is_not_working_time_and_its_saturdays_are() -> None:
    # 2026 春节: 15-23 February off; Saturday 14 Feb and Saturday 28 Feb are make-up workdays (调休).
    assert dl.is_working_day(date(2026, 2, 14))
    assert not any(dl.is_working_day(date(2026, 2, d)) for d in range(15, 24))
    assert dl.is_working_day(date(2026, 2, 28))
    assert not dl.is_working_day(date(2026, 3, 1))  # an ordinary Sunday


def test_inquiry_dispatched_before_the_festival_ends_after_it() -> None:
    # Dispatched Friday 13 Feb 16:00; 咨询 = 3 working days: Sat 14 (调休), Tue 24, Wed 25 -> end of 25 Feb.
    d = dl.for_dispatch(at(2026, 2, 13, 16, 0), "inquiry", "normal", RULES, TZ)
    assert d.reply_due == at(2026, 2, 26, 0, 0)
    assert d.sign_due == at(2026, 2, 15, 0, 0)  # 1 working day: the 调休 Saturday counts
    assert d.return_until == at(2026, 2, 25, 0, 0)  # 2 working days: Sat 14, Tue 24


def test_complaint_counts_the_make_up_saturday() -> None:
    # Dispatched Monday 23 Feb (last holiday day): 15 working days = 24-27 Feb (4), Sat 28 (5, 调休),
    # 2-6 Mar (10), 9-13 Mar (15) -> end of Friday 13 March.
    d = dl.for_dispatch(at(2026, 2, 23, 10, 0), "complaint", "normal", RULES, TZ)
    assert d.reply_due == at(2026, 3, 14, 0, 0)
    # Without the 调休 Saturday it would have been Monday 16 March.
    assert dl.working_days_between(at(2026, 2, 23, 10, 0), at(2026, 3, 13, 12, 0), TZ) == 15


def test_urgent_deadlines_are_calendar_hours_even_on_holidays() -> None:
    d = dl.for_dispatch(at(2026, 2, 17, 3, 0), "complaint", "urgent", RULES, TZ)
    assert d.sign_due == at(2026, 2, 17, 4, 0)
    assert d.reply_due == at(2026, 2, 18, 3, 0)


def test_extension_skips_the_holiday() -> None:
    # Reply due at the end of Friday 13 Feb; +3 working days: Sat 14, Tue 24, Wed 25.
    assert dl.extend(at(2026, 2, 14, 0, 0), 3, TZ) == at(2026, 2, 26, 0, 0)


def test_suspension_pushes_by_the_time_suspended() -> None:
    due = at(2026, 3, 10, 0, 0)
    assert dl.resume(due, at(2026, 3, 2, 9, 0), at(2026, 3, 4, 9, 30)) == at(2026, 3, 12, 0, 30)
