"""The sample Asterisk configuration in config/asterisk agrees with the server's settings and the captures' lessons."""
from __future__ import annotations

import re

from config.settings import Settings
from tests.conftest import ROOT

ASTERISK = ROOT / "config" / "asterisk"


def _context(text: str, name: str) -> str:
    m = re.search(rf"^\[{re.escape(name)}\][^\n]*\n(.*?)(?=^\[|\Z)", text, re.MULTILINE | re.DOTALL)
    assert m, name
    return m.group(1)


def test_transfer_context_holds_every_destination_and_never_drops_the_caller():
    ext = (ASTERISK / "extensions.conf").read_text(encoding="utf-8")
    transfer = _context(ext, "transfer")
    extens = set(re.findall(r"^exten => ([^,]+),1,", transfer, re.MULTILINE))
    assert {d.exten for d in Settings().ami.transfer_destinations} <= extens
    # transfer_unknown_exten: without an `i` extension Asterisk hangs up on a caller sent to 999
    assert "i" in extens
    assert "Hangup()" not in transfer.replace('ExecIf($["${DIALSTATUS}" = "ANSWER"]?Hangup())', "")
    failed = _context(ext, "transfer-failed")
    assert "QUEUE_PRIO" in failed and "Queue(" in failed


def test_manager_filter_lets_queue_timeouts_through():
    conf = (ASTERISK / "manager.conf").read_text(encoding="utf-8")
    filters = re.findall(r"^eventfilter = (.*)$", conf, re.MULTILINE)
    assert any(re.search(f, "Variable: QUEUESTATUS") for f in filters)
    assert any(re.search(f, "Variable: MIXMONITOR_FILENAME") for f in filters)


def test_hotline_records_stereo_and_speaks_mandarin():
    ext = (ASTERISK / "extensions.conf").read_text(encoding="utf-8")
    hotline = _context(ext, "hotline-in")
    mix = re.findall(r"MixMonitor\([^,]+,([A-Za-z]*)\)", ext)
    assert mix and all("D" in opts for opts in mix)  # caller and agent apart (asr/audio.py reads the channels)
    assert hotline.index("CHANNEL(language)=zh") < hotline.index("Queue(")
    assert "sounds/zh/" in (ASTERISK / "queues.conf").read_text(encoding="utf-8")
