"""Settings: TOML under HOTLINE_* environment, errors that name the key."""
from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import CONFIG_DIR, SettingsError, load_settings


def test_defaults_file_and_environment_layers(tmp_path: Path) -> None:
    assert load_settings(env={}).server.port == 8080
    cfg = tmp_path / "hotline.toml"
    cfg.write_text('[server]\nport = 9000\n[survey]\nmax_concurrent = 4\n', encoding="utf-8")
    (tmp_path / "deadlines.toml").write_text(
        "urgent_sign_hours = 2\n[reply_working_days]\ninquiry = 3\nhelp = 7\nsuggestion = 7\ncomplaint = 15\n"
        "report = 15\npraise = 3\n", encoding="utf-8")
    s = load_settings(cfg, env={"HOTLINE_SERVER_PORT": "9100", "HOTLINE_SURVEY_CALLING_HOURS": '["08:00-12:00"]'})
    assert s.server.port == 9100 and s.survey.max_concurrent == 4 and s.survey.calling_hours == ["08:00-12:00"]
    # The deadlines file beside the main config is read too.
    assert s.deadlines.urgent_sign_hours == 2
    assert s.deadlines.reply_working_days["complaint"] == 15


def test_wrong_value_names_the_key_and_variable() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(env={"HOTLINE_SERVER_PORT": "eighty"})
    assert "server.port" in str(err.value) and "HOTLINE_SERVER_PORT" in str(err.value)
    with pytest.raises(SettingsError, match="tickets.dissatisfied_rule"):
        load_settings(env={"HOTLINE_TICKETS_DISSATISFIED_RULE": "ignore"})


def test_unknown_key_and_secret_in_file_are_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "hotline.toml"
    cfg.write_text('[server]\nprot = 1\n', encoding="utf-8")
    with pytest.raises(SettingsError, match="server.prot"):
        load_settings(cfg, env={})
    cfg.write_text('[ami]\nsecret = "s3cret"\n', encoding="utf-8")
    with pytest.raises(SettingsError, match="HOTLINE_AMI_SECRET"):
        load_settings(cfg, env={})


def test_deadlines_file_errors_name_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "hotline.toml").write_text("", encoding="utf-8")
    (tmp_path / "deadlines.toml").write_text("[reply_working_days]\ninquiry = 3\n", encoding="utf-8")
    with pytest.raises(SettingsError) as err:
        load_settings(tmp_path / "hotline.toml", env={})
    assert "deadlines.toml" in str(err.value) and "reply_working_days" in str(err.value)


def test_holiday_file_is_read_and_the_shipped_file_invents_no_year(tmp_path: Path) -> None:
    assert load_settings(env={}).holidays.years == {}  # config/holidays.toml ships without any year
    (tmp_path / "hotline.toml").write_text("", encoding="utf-8")
    # FICTIONAL dates (not the State Council's notice): a range, a TOML date, a 调休 Sunday.
    (tmp_path / "holidays.toml").write_text('[2027]\nnotice = "fictional"\n'
                                            'holidays = ["2027-01-01..2027-01-03", 2027-02-08]\n'
                                            'workdays = ["2027-01-10"]\n', encoding="utf-8")
    years = load_settings(tmp_path / "hotline.toml", env={}).holidays.years
    assert [str(d) for d in years[2027].holidays] == ["2027-01-01", "2027-01-02", "2027-01-03", "2027-02-08"]
    assert [str(d) for d in years[2027].workdays] == ["2027-01-10"]


def test_the_shipped_example_is_the_2026_notice_chinesecalendar_has() -> None:
    """Uncommented, the example in config/holidays.toml parses and gives exactly chinesecalendar's 2026."""
    import tomllib

    import chinese_calendar

    from config.settings import HolidaySettings

    text = (CONFIG_DIR / "holidays.toml").read_text(encoding="utf-8")
    example = text[text.index("# [2026]"):]
    raw = tomllib.loads("\n".join(line.removeprefix("# ") for line in example.splitlines()))
    year = HolidaySettings.model_validate({"years": raw}).years[2026]
    assert sorted(year.holidays) == sorted(d for d in chinese_calendar.holidays if d.year == 2026)
    assert sorted(year.workdays) == sorted(d for d in chinese_calendar.workdays if d.year == 2026)


@pytest.mark.parametrize("entry, named", [
    ('[2027]\nholidays = ["2027-02-30"]\n', "2027.holidays: item 0: '2027-02-30' is not a date"),
    ('[2027]\nholidays = ["2027-01-01", "2026-10-01"]\n', "2027.holidays: 2026-10-01 is not in 2027"),
    ('[2027]\nholidays = ["2027-02-05..2027-12-11"]\n', "2027.holidays: item 0: range"),
    ('[2027]\nholidays = ["2027-01-01"]\nworkdays = ["2027-01-11"]\n', "2027.workdays: 2027-01-11 is a"),
    ('[2027]\nworkdays = ["2027-01-10"]\n', "2027.holidays: Field required"),
    ('[2027]\nholidays = ["2027-01-01"]\nholyday = []\n', "2027.holyday"),
    ('holidays = ["2027-01-01"]\n', "holidays: every entry must be a year's table"),
    ('[2027]\nholidays = [2027-02-30]\n', "not valid TOML"),
])
def test_a_bad_holiday_entry_stops_loading_naming_file_and_key(tmp_path: Path, entry: str, named: str
                                                                ) -> None:
    (tmp_path / "hotline.toml").write_text("", encoding="utf-8")
    (tmp_path / "holidays.toml").write_text(entry, encoding="utf-8")
    with pytest.raises(SettingsError) as err:
        load_settings(tmp_path / "hotline.toml", env={})
    assert str(tmp_path / "holidays.toml") in str(err.value) and named in str(err.value)


def test_a_named_holiday_file_must_exist(tmp_path: Path) -> None:
    (tmp_path / "hotline.toml").write_text("", encoding="utf-8")
    assert load_settings(tmp_path / "hotline.toml", env={}).holidays.years == {}  # default name, absent: none
    (tmp_path / "hotline.toml").write_text('[tickets]\nholidays_file = "feiertage.toml"\n', encoding="utf-8")
    with pytest.raises(SettingsError, match="tickets.holidays_file: holiday file not found"):
        load_settings(tmp_path / "hotline.toml", env={})
