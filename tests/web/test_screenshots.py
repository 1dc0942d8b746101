"""`hotline screenshots OUTDIR` produces every main page at 1366x768 from a throw-away demo server."""
from __future__ import annotations

import struct
from pathlib import Path

import pytest

import server
from web import screenshots

pytestmark = pytest.mark.browser


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_screenshots_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `hotline screenshots` is a real sub-command, and server.py hands it the app factory
    taken: list[object] = []
    take = screenshots.take

    async def recording_take(outdir: Path, settings: object, app_factory: object, *args: object) -> list[Path]:
        taken.append(app_factory)
        return await take(outdir, settings, app_factory, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(screenshots, "take", recording_take)
    monkeypatch.setenv("HOTLINE_SERVER_PASSWORD_TIME_COST", "1")
    out = tmp_path / "shots"
    assert server.main(["screenshots", str(out)]) == 0
    assert taken == [server.create_app]
    names = sorted(p.stem for p in out.glob("*.png") if not p.stem.endswith("-full"))
    assert names == ["01-login", "02-agent-draft", "03-agent-new", "04-knowledge-agent", "05-dept-inbox",
                     "06-dept-ticket", "07-supervisor", "08-reports-monthly", "09-reports-weekly",
                     "10-report-print", "11-knowledge-editor", "12-ticket-supervisor", "13-reports-2560x1440",
                     "14-dept-inbox-390", "15-dept-ticket-390", "16-ticket-recording", "17-knowledge-dept",
                     "18-admin-audit", "19-wallboard-1920x1080"]
    for name in names[:12] + names[15:18]:
        assert png_size(out / f"{name}.png") == (1366, 768)
        width, height = png_size(out / f"{name}-full.png")
        assert width == 1366 and height >= 768
    for name in names[13:15]:
        assert png_size(out / f"{name}.png") == (390, 844)
        assert png_size(out / f"{name}-full.png")[0] == 390  # no horizontal scroll: the full page is as wide
    assert png_size(out / "13-reports-2560x1440.png") == (2560, 1440)
    assert png_size(out / "19-wallboard-1920x1080.png") == (1920, 1080)
