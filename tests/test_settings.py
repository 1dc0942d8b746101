"""Settings: TOML under HOTLINE_* environment, errors that name the key."""
from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import SettingsError, load_settings


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
