"""Deadlines on China's working-day calendar: Spring Festival 2026 and its 调休 Saturdays; the city's holiday
file before chinesecalendar; years nobody covers are flagged, never silently guessed; how deadlines read."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from config.settings import DeadlineSettings, HolidaySettings
from tests.tickets.conftest import TZ
from tickets import deadlines as dl

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


# ---------------------------------------------------------------- the holiday file and years nobody covers
# FICTIONAL test data, NOT the State Council's notice for 2027: a New Year holiday of Friday 1 to Monday
# 4 January (the Monday makes the file visibly win over a plain weekend) and a 调休 Sunday 10 January.
FICTIONAL_2027 = HolidaySettings.model_validate({"years": {2027: {
    "holidays": ["2027-01-01..2027-01-04"], "workdays": ["2027-01-10"],
    "notice": "fictional, for tests only"}}})
# chinesecalendar as 1.11 ships it (2004-2026), whatever version is installed: the tests mean the same later.
LIBRARY_2026 = (dl.LIBRARY_YEARS[0], 2026)
WITH_FILE = dl.Calendar.from_settings(FICTIONAL_2027, library=LIBRARY_2026)
WITHOUT_FILE = dl.Calendar.from_settings(HolidaySettings(), library=LIBRARY_2026)


def test_complaint_dispatched_on_11_december_skips_the_holiday_files_new_year() -> None:
    # Friday 11 Dec 2026; 投诉 = 15 working days: 14-18 Dec (5), 21-25 (10), 28-31 (14), 1-4 Jan off
    # (fictional file), Tuesday 5 Jan (15) -> end of 5 Jan 2027.
    d = dl.for_dispatch(at(2026, 12, 11, 10, 0), "complaint", "normal", RULES, TZ, WITH_FILE)
    assert d.reply_due == at(2027, 1, 6, 0, 0)
    assert d.sign_due == at(2026, 12, 15, 0, 0)
    assert d.assumed_years == ()  # every counted day was known
    assert not WITH_FILE.is_working_day(date(2027, 1, 4))  # a Monday, off because the file says so
    assert WITH_FILE.is_working_day(date(2027, 1, 10))  # a Sunday, 调休 because the file says so
    assert WITH_FILE.is_working_day(date(2027, 1, 11))  # any other weekday of a file year works


def test_without_the_year_the_deadline_is_still_given_but_flagged() -> None:
    # Same dispatch with no 2027 entry: New Year's Day is counted Monday-Friday (deadline 1 Jan 24:00), and
    # the result says 2027 was assumed, so a dispatch works and the guess is visible.
    d = dl.for_dispatch(at(2026, 12, 11, 10, 0), "complaint", "normal", RULES, TZ, WITHOUT_FILE)
    assert d.reply_due == at(2027, 1, 2, 0, 0)
    assert d.assumed_years == (2027,)
    # Deadlines that stay inside known years are not flagged.
    inquiry = dl.for_dispatch(at(2026, 12, 11, 10, 0), "inquiry", "normal", RULES, TZ, WITHOUT_FILE)
    assert inquiry.reply_due == at(2026, 12, 17, 0, 0) and inquiry.assumed_years == ()
    # An extension that moves the deadline into the unknown year is flagged the same way.
    extended = dl.extend(at(2026, 12, 24, 0, 0), 10, TZ, WITHOUT_FILE)
    assert dl.assumed_years(at(2026, 12, 24, 0, 0), extended, TZ, WITHOUT_FILE) == (2027,)


def test_the_file_replaces_the_librarys_year() -> None:
    # A year in the file is the whole notice: here a made-up 2026 without Spring Festival (the library's
    # 15-23 Feb is ignored) and with 1 June off.
    made_up = HolidaySettings.model_validate({"years": {2026: {"holidays": ["2026-06-01"]}}})
    cal = dl.Calendar.from_settings(made_up, library=LIBRARY_2026)
    assert cal.is_working_day(date(2026, 2, 16)) and not cal.is_working_day(date(2026, 6, 1))
    assert not cal.is_working_day(date(2026, 2, 14))  # the library's 调休 Saturday is gone with its year
    assert dl.LIBRARY.is_working_day(date(2026, 2, 14))


def test_coverage_warning_starts_when_the_next_60_days_reach_an_unknown_year() -> None:
    assert dl.COVERAGE_DAYS == 60
    assert dl.missing_ahead(WITHOUT_FILE, date(2026, 11, 1)) == ()  # up to 31 Dec: all known
    assert dl.missing_ahead(WITHOUT_FILE, date(2026, 11, 2)) == (2027,)  # 1 Jan is 60 days away
    assert dl.missing_ahead(WITHOUT_FILE, date(2026, 12, 2)) == (2027,)
    assert dl.missing_ahead(WITH_FILE, date(2026, 12, 2)) == ()
    assert dl.missing_ahead(WITH_FILE, date(2027, 11, 2)) == (2028,)  # one notice covers one year
    assert WITHOUT_FILE.missing_years(date(2026, 12, 1), date(2029, 1, 1)) == (2027, 2028, 2029)
    assert dl.Calendar(library=None).missing_years(date(2026, 1, 1), date(2026, 1, 1)) == (2026,)


def test_library_range_is_what_chinesecalendar_ships() -> None:
    import chinese_calendar

    first, last = dl.LIBRARY_YEARS
    assert dl.LIBRARY.covers(last) and not dl.LIBRARY.covers(last + 1)
    with pytest.raises(NotImplementedError):  # the library itself refuses the year after its last
        chinese_calendar.is_workday(date(last + 1, 1, 4))
    with pytest.raises(ValueError):  # a calendar cannot claim years the library does not have
        dl.Calendar(library=(first, last + 1))
    # The module-level function keeps its one-argument form for survey calling hours.
    assert dl.is_working_day(date(2026, 2, 14)) and not dl.is_working_day(date(2026, 2, 16))
    assert dl.is_working_day(date(2027, 1, 4), WITH_FILE) is False


# ---------------------------------------------------------------- how deadlines read
def test_a_deadline_at_midnight_reads_as_the_last_day() -> None:
    assert dl.format_due(at(2026, 12, 6, 0, 0), TZ) == "12月5日 24:00"
    assert dl.format_due(at(2027, 1, 1, 0, 0), TZ, with_year=True) == "2026年12月31日 24:00"
    # The same instant in UTC (16:00 the day before) reads in the centre's time zone.
    assert dl.format_due(datetime(2026, 12, 5, 16, 0, tzinfo=timezone.utc), TZ) == "12月5日 24:00"
    # Hour-precise deadlines (urgent cases, after a suspension) keep their time.
    assert dl.format_due(at(2026, 12, 5, 14, 30), TZ) == "12月5日 14:30"
    assert dl.format_due(at(2026, 12, 6, 0, 0) + timedelta(minutes=1), TZ) == "12月6日 00:01"


def test_workflow_records_which_years_a_deadline_assumed() -> None:
    from tickets import workflow as wf

    agent = wf.Actor(1, "agent", "话务员")
    accepted = wf.TicketState(status="accepted", request_type="complaint")

    def dispatch(calendar: dl.Calendar) -> wf.Transition:
        result = wf.apply(accepted, "dispatch", {"lead_department_id": 10}, agent, at(2026, 12, 11, 10, 0),
                          wf.Policy(RULES, TZ, calendar=calendar))
        assert isinstance(result, wf.Transition), result
        return result

    flagged = dispatch(WITHOUT_FILE)
    assert flagged.entry.data[wf.HOLIDAYS_UNKNOWN] == [2027]
    assert flagged.state.reply_due == at(2027, 1, 2, 0, 0)
    known = dispatch(WITH_FILE)
    assert wf.HOLIDAYS_UNKNOWN not in known.entry.data and known.state.reply_due == at(2027, 1, 6, 0, 0)
    # Missed deadlines, first missed first: the sign deadline, then (still dispatched) the reply deadline.
    s = known.state
    assert wf.missed_deadlines(s.status, s.sign_due, s.reply_due, s.suspended_at, at(2026, 12, 15, 9, 0)) == (
        ("sign", at(2026, 12, 15, 0, 0)),)
    later = wf.missed_deadlines(s.status, s.sign_due, s.reply_due, None, at(2027, 1, 7, 9, 0))
    assert [kind for kind, _ in later] == ["sign", "reply"]
    # Signed (late): signing is no longer owed; a suspended reply deadline is not running.
    assert wf.missed_deadlines("signed", s.sign_due, s.reply_due, None, at(2026, 12, 16, 9, 0)) == ()
    suspended = at(2027, 1, 4, 9, 0)
    assert wf.missed_deadlines("signed", s.sign_due, s.reply_due, suspended, at(2027, 1, 7, 9, 0)) == ()
