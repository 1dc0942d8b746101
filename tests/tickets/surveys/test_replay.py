"""The recorded survey capture replayed over a real TCP socket into the real panoramisk client, driving the
real dialer and survey service on a real database and Redis.

The capture (../shared/asterisk-captures/survey_callback.jsonl) holds five Originates: answered with digit 1,
answered with digit 3, busy (Reason 5), no answer (Reason 3), answered without a digit. The fake AMI server
sends the banner, then for each action the client sends, the recorded "in" messages up to the next "out"
line. Recorded ActionIDs and ticket numbers are rewritten to the client's (its k-th Originate gets the k-th
recorded call), so the dialer correlates exactly as it would with Asterisk.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from panoramisk import Manager

from telephony.survey_dialer import SurveyDialer
from tests.tickets.surveys.conftest import World, local

CAPTURE = Path(__file__).resolve().parents[3].parent / "shared" / "asterisk-captures" / "survey_callback.jsonl"
pytestmark = pytest.mark.skipif(not CAPTURE.exists(), reason=f"capture not found: {CAPTURE} (../shared is absent)")


def _headers(raw: str) -> list[tuple[str, str]]:
    out = []
    for line in raw.split("\r\n"):
        if ": " in line:
            k, v = line.split(": ", 1)
            out.append((k, v))
        elif line.endswith(":"):
            out.append((line[:-1], ""))
    return out


class FakeAmi:
    """Replays one capture, answering each client action with the recorded messages that followed it."""

    def __init__(self, path: Path) -> None:
        lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
        self.banner = lines[0]["raw"]
        self.steps: list[tuple[str, list[str]]] = []  # (recorded out message, ins that followed)
        for line in lines[1:]:
            if line["dir"] == "out":
                self.steps.append((line["raw"], []))
            elif line["raw"] and self.steps:
                self.steps[-1][1].append(line["raw"])
        self.replace: dict[str, str] = {}
        self.received: list[dict[str, Any]] = []
        self.scenario_ticket: dict[str, str] = {}  # recorded ticket -> client's ticket
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(self.banner.encode())
        step = 0
        try:
            while True:
                raw = (await reader.readuntil(b"\r\n\r\n")).decode()
                headers = _headers(raw)
                fields = {k.lower(): v for k, v in headers}
                self.received.append(fields)
                action = fields.get("action", "")
                if step < len(self.steps) and _headers(self.steps[step][0])[0][1].lower() == action.lower():
                    recorded_out, ins = self.steps[step]
                    step += 1
                    rec = {k.lower(): v for k, v in _headers(recorded_out)}
                    self.replace[rec["actionid"]] = fields["actionid"]
                    rec_ticket = next((v.split("=", 1)[1] for k, v in _headers(recorded_out)
                                       if k == "Variable" and v.startswith("TICKET=")), None)
                    client_ticket = next((v.split("=", 1)[1] for k, v in headers
                                          if k == "Variable" and v.startswith("TICKET=")), None)
                    if rec_ticket and client_ticket:
                        self.replace[rec_ticket] = client_ticket
                        self.scenario_ticket[rec_ticket] = client_ticket
                    for msg in ins:
                        for old, new in self.replace.items():
                            msg = msg.replace(old, new)
                        writer.write(msg.encode())
                else:  # e.g. a Ping the capture did not record
                    writer.write(f"Response: Success\r\nActionID: {fields.get('actionid', '')}\r\n\r\n".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _wait(cond: Any, timeout: float = 60.0) -> None:  # a failure guard, for a loaded machine
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.02)


async def test_capture_drives_results_and_retries(world: World) -> None:
    ami = FakeAmi(CAPTURE)
    port = await ami.start()
    manager = Manager(loop=asyncio.get_running_loop(), host="127.0.0.1", port=port, username="hotline",
                      secret="hotline-lab-secret", ping_delay=3600, reconnect_timeout=3600)
    results: list[dict[str, Any]] = []

    async def on_result(result: dict[str, Any]) -> None:
        results.append(result)
        await world.service.on_call_result(result)

    settings = world.settings.survey.model_copy(update={"trunk": "Local/{number}@survey-callee"})
    dialer = SurveyDialer(manager.send_action, settings, on_result, ring_seconds=20)
    manager.register_event("*", lambda m, event: dialer.on_ami_event(event))
    world.service.originate = dialer.originate
    try:
        await manager.connect()
        await _wait(lambda: manager.authenticated)
        tickets = [await world.replied(caller_phone=f"1390000000{i}", title=f"回访测试{i}") for i in range(1, 6)]
        world.clock.set_local(2026, 11, 24, 9, 0)
        await world.service.sweep()
        await _wait(lambda: len(results) == 5)
        await world.service.drain()
        await dialer.drain()
        await asyncio.sleep(0.05)
        # What went over the wire: five Originates through the trunk into the survey IVR, with the variables.
        originates = [m for m in ami.received if m.get("action") == "Originate"]
        assert len(originates) == 5
        first = originates[0]
        assert first["context"] == "survey-ivr" and first["exten"] == "s" and first["async"] == "true"
        assert first["channel"].startswith("Local/1390000000") and first["channel"].endswith("@survey-callee")
        assert first["callerid"] == '"12345" <12345>'
        by_scenario = {f"T20261122-000{i}": ami.scenario_ticket[f"T20261122-000{i}"] for i in range(1, 6)}
        assert set(by_scenario.values()) == {t["number"] for t in tickets}

        async def state(number: str) -> tuple[Any, dict[str, Any]]:
            return await world.survey_of(number), await world.store.get(number, world.agent)

        s1, t1 = await state(by_scenario["T20261122-0001"])  # digit 1
        assert (s1.state, s1.satisfaction, t1["status"], t1["satisfaction"]) == \
            ("done", "satisfied", "surveyed", "satisfied")
        assert t1["resolved"] is None  # the lab IVR asks one question only
        s2, t2 = await state(by_scenario["T20261122-0002"])  # digit 3: dissatisfied -> ledger, reopened
        assert (s2.state, s2.satisfaction, t2["status"], t2["reopen_count"]) == \
            ("done", "dissatisfied", "dispatched", 1)
        assert [x["ticket"] for x in await world.store.ledger(world.supervisor)] == [t2["number"]]
        retry_at = local(2026, 11, 24, 11, 0)
        for scenario, outcome, reason in [("T20261122-0003", "busy", "5"), ("T20261122-0004", "no_answer", "3"),
                                          ("T20261122-0005", "answered", "16")]:
            s, t = await state(by_scenario[scenario])
            assert (s.state, s.attempts, s.due_at) == ("scheduled", 1, retry_at), scenario
            assert t["status"] == "replied" and not t["survey_unreachable"]
            got = await world.surveys.get_with_attempts(s.id)
            assert [(a.outcome, a.reason) for a in got[1]] == [(outcome, reason)], scenario
        s5 = await world.survey_of(by_scenario["T20261122-0005"])
        assert s5.answers == {}  # answered, pressed nothing: no answer kept, retried
        assert await world.service.slots_in_use() == 0
        assert dialer.active() == 0
    finally:
        manager.close()
        await ami.stop()


async def test_our_ivr_events_and_an_early_hangup(world: World) -> None:
    """Our IVR's per-question UserEvents (SurveyAnswer), fed as the bridge would: the caller answers
    "resolved: yes" and hangs up before the satisfaction question; the partial answer is kept."""
    sent: list[dict[str, Any]] = []

    async def send_action(action: dict[str, Any]) -> dict[str, str]:
        sent.append(action)
        return {"Response": "Success", "ActionID": action["ActionID"], "Message": "Originate successfully queued"}

    dialer = SurveyDialer(send_action, world.settings.survey, world.service.on_call_result)
    world.service.originate = dialer.originate
    t = await world.replied(title="噪音扰民,夜间施工\r\nAction: Hangup")
    world.clock.set_local(2026, 11, 24, 9, 0)
    await world.service.sweep()
    action = sent[0]
    assert action["Channel"] == "PJSIP/13800138000@trunk"
    variables = dict(v.split("=", 1) for v in action["Variable"])
    # The topic can never break the AMI message or Asterisk's comma-separated variable list.
    assert variables["SURVEY_TOPIC"] == "噪音扰民，夜间施工 Action: Hangup"
    assert variables["TICKET"] == t["number"]
    sid = int(variables["SURVEY_ID"])
    aid = action["ActionID"]
    dialer.on_ami_event({"Event": "OriginateResponse", "ActionID": aid, "Response": "Success", "Reason": "4",
                         "Uniqueid": "1795383152.0", "Channel": "PJSIP/trunk-00000001"})
    dialer.on_ami_event({"Event": "UserEvent", "UserEvent": "SurveyAnswer", "Uniqueid": "1795383152.0",
                         "Ticket": t["number"], "Survey": str(sid), "Attempt": "1", "Question": "resolved",
                         "Digit": "1"})
    dialer.on_ami_event({"Event": "Hangup", "Uniqueid": "1795383152.9", "Cause": "16"})  # someone else's call
    assert dialer.active() == 1
    dialer.on_ami_event({"Event": "Hangup", "Uniqueid": "1795383152.0", "Cause": "16"})
    await dialer.drain()
    s = await world.survey_of(t["number"])
    assert (s.state, s.answers, s.attempts) == ("scheduled", {"resolved": True}, 1)
    ticket = await world.store.get(t["number"], world.agent)
    assert ticket["status"] == "replied"
