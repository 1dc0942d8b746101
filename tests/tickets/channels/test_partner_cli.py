"""``hotline channel-partner NAME --channel C``: the key is printed once and only its sha256 is stored; a second
partner of the same name is refused with a message and exit code 1."""
from __future__ import annotations

import hashlib
import re
import sqlite3
from pathlib import Path

import pytest

import server


def test_the_command_prints_the_key_once_and_stores_its_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "hotline.db"
    monkeypatch.setenv("HOTLINE_SERVER_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("HOTLINE_DATABASE_URL", f"sqlite+aiosqlite:///{db}")
    assert server.main(["channel-partner", "市民通APP", "--channel", "wechat"]) == 0
    out = capsys.readouterr().out
    key = re.search(r"api_key \(shown once, keep it secret\): (o311_\S+)", out)
    assert key, out
    rows = sqlite3.connect(db).execute("SELECT name, channel, key_hash, active FROM channel_partners").fetchall()
    assert rows == [("市民通APP", "wechat", hashlib.sha256(key.group(1).encode()).hexdigest(), 1)]
    assert server.main(["channel-partner", "市民通APP"]) == 1
    assert "渠道合作方 市民通APP 已存在" in capsys.readouterr().err
