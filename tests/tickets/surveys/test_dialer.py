"""The survey dialer alone: what each AMI answer means for one call."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from config.settings import SurveySettings
from telephony.survey_dialer import DialerUnavailable, SurveyDialer

REQUEST = {"survey_id": 7, "attempt": 2, "ticket": "20261123-000007", "number": "13800138000",
           "topic": "路灯", "request_type": "help"}


def dialer(send: Any) -> tuple[SurveyDialer, list[dict[str, Any]]]:
    results: list[dict[str, Any]] = []
    return SurveyDialer(send, SurveySettings(), results.append, ring_seconds=20), results


async def test_refused_originate_is_a_failed_attempt() -> None:
    async def send(action: dict[str, Any]) -> dict[str, str]:
        return {"Response": "Error", "ActionID": action["ActionID"], "Message": "Asterisk is shutting down"}

    d, results = dialer(send)
    await d.originate(REQUEST)
    assert [(r["outcome"], r["survey_id"], r["attempt"]) for r in results] == [("failed", 7, 2)]
    assert d.active() == 0


async def test_not_connected_places_nothing() -> None:
    async def send(action: dict[str, Any]) -> None:
        raise ConnectionError("AMI not connected")

    d, results = dialer(send)
    with pytest.raises(DialerUnavailable):
        await d.originate(REQUEST)
    assert results == [] and d.active() == 0


@pytest.mark.parametrize("reason, outcome", [("5", "busy"), ("3", "no_answer"), ("8", "congestion"),
                                             ("1", "failed"), ("0", "failed")])
async def test_originate_failure_reasons(reason: str, outcome: str) -> None:
    sent: list[dict[str, Any]] = []

    async def send(action: dict[str, Any]) -> dict[str, str]:
        sent.append(action)
        return {"Response": "Success", "ActionID": action["ActionID"], "Message": "Originate successfully queued"}

    d, results = dialer(send)
    aid = await d.originate(REQUEST)
    assert sent[0]["Timeout"] == "20000" and "SURVEY_ATTEMPT=2" in sent[0]["Variable"]
    d.on_ami_event({"Event": "OriginateResponse", "ActionID": "someone-else", "Response": "Failure", "Reason": "5"})
    assert results == []
    d.on_ami_event({"Event": "OriginateResponse", "ActionID": aid, "Response": "Failure", "Reason": reason,
                    "Uniqueid": "<unknown>"})
    assert [(r["outcome"], r["reason"]) for r in results] == [(outcome, reason)]


async def test_a_call_never_heard_of_again_is_lost() -> None:
    async def send(action: dict[str, Any]) -> dict[str, str]:
        return {"Response": "Success", "ActionID": action["ActionID"]}

    results: list[dict[str, Any]] = []
    d = SurveyDialer(send, SurveySettings(), results.append, ring_seconds=0.05, max_call_seconds=0.05)
    await d.originate(REQUEST)
    await asyncio.sleep(0.2)
    assert [r["outcome"] for r in results] == ["lost"]
