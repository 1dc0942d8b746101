"""Survey calls that fail: busy, no answer and failure told apart (survey_busy capture, Asterisk 22).

A SIP 486 through PJSIP gives ``OriginateResponse Reason 0`` (the same busy through a Local channel gives 5):
the dialer classifies from the dialled channel's ``DialEnd DialStatus`` or its ``Hangup Cause``, Reason last.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any

from fake_ami import CAPTURES, requires_captures
from panoramisk import Manager

from config.settings import SurveySettings
from telephony.framing import parse_message
from telephony.survey_dialer import SurveyDialer
from tests.tickets.surveys.test_replay import FakeAmi as StepFakeAmi

pytestmark = requires_captures
CAPTURE = CAPTURES / "survey_busy.jsonl"
# the four recorded Originates, in order: PJSIP busy, PJSIP no answer, Local busy, Local no answer
WANT = [("T20261203-0003", "busy"), ("T20261203-0004", "no_answer"), ("T20261203-0013", "busy"),
        ("T20261203-0014", "no_answer")]


def _requests() -> list[dict[str, Any]]:
    return [{"survey_id": i, "attempt": 1, "ticket": t, "number": f"1390000000{i}"} for i, (t, _) in enumerate(WANT, 1)]


async def _until(cond: Any, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


async def test_busy_no_answer_and_failure_over_tcp() -> None:
    ami = StepFakeAmi(CAPTURE)
    port = await ami.start()
    manager = Manager(loop=asyncio.get_running_loop(), host="127.0.0.1", port=port, username="hotline",
                      secret="hotline-lab-secret", ping_delay=3600, reconnect_timeout=3600)
    results: list[dict[str, Any]] = []
    dialer = SurveyDialer(manager.send_action, SurveySettings(), results.append, ring_seconds=20)
    manager.register_event("*", lambda m, event: dialer.on_ami_event(event))
    try:
        await manager.connect()
        await _until(lambda: manager.authenticated)
        for i, request in enumerate(_requests(), 1):
            await dialer.originate(request)
            await _until(lambda i=i: len(results) == i)
        assert [(r["ticket"], r["outcome"]) for r in results] == WANT
        assert dialer.active() == 0 and dialer._legs == {}
    finally:
        manager.close()
        await ami.stop()


async def test_without_dial_events_the_hangup_cause_decides() -> None:
    # The same recorded events fed in order, but without DialEnd (as a manager.conf filter without it would):
    # the PJSIP busy's Reason 0 waits for the Hangup with Cause 17 that follows it.
    rows = [json.loads(x) for x in CAPTURE.read_text(encoding="utf-8").splitlines()]
    events = [parse_message(r["raw"].rstrip("\r\n")) for r in rows if r["dir"] == "in" and r["raw"].startswith("Event:")]
    results: list[dict[str, Any]] = []

    async def send(action: dict[str, Any]) -> dict[str, str]:
        return {"Response": "Success", "ActionID": action["ActionID"], "Message": "Originate successfully queued"}

    dialer = SurveyDialer(send, SurveySettings(), results.append, ring_seconds=20, action_prefix="t")
    ids = {f"survey_busy-00{n}": await dialer.originate(r) for n, r in enumerate(_requests(), 2)}
    for e in events:
        if e.get("Event") == "DialEnd":
            continue
        if e.get("ActionID") in ids:
            e = {**e, "ActionID": ids[str(e["ActionID"])]}
        dialer.on_ami_event(e)
    assert [(r["ticket"], r["outcome"]) for r in results] == WANT
    assert results[0]["reason"] == "0"  # Asterisk's Reason is kept as said
