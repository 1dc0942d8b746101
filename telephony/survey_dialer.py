"""The AMI side of 回访: place a survey call with ``Originate`` and follow it until it ends.

Injected, so that it runs on any AMI transport (the bridge, or a bare panoramisk Manager in tests):
- ``send_action(dict) -> Awaitable[response]``: returns the AMI response (a message, or a list of messages
  when the transport collects the whole answer: panoramisk gives ``[Response, OriginateResponse]`` for an
  async Originate when not told otherwise);
- ``on_ami_event(event)``: the bridge feeds every AMI event here;
- ``on_result(dict)``: called once per placed call with its outcome (may return an awaitable).

What Asterisk tells about one survey call (see ../shared/asterisk-captures/survey_callback.jsonl):
- ``Response: Success`` only means "queued"; the result is ``OriginateResponse`` with the same ActionID:
  Success/Reason 4 = answered (its Uniqueid is the channel that runs the IVR), Failure with Reason
  5 busy, 3 no answer, 8 congestion, 0/1 failed, Channel without suffix and Uniqueid ``<unknown>``;
  but the Reason depends on the channel technology (survey_busy.jsonl: SIP 486 via PJSIP = Reason 0), so a
  failure is classified from the dialled channel first: it is named by the ``VarSet`` of our ``SURVEY_ID``
  (or the lab's ``TICKET``), then ``DialEnd DialStatus`` BUSY/NOANSWER/CONGESTION or its ``Hangup Cause``
  17/19/34 decide, and an ambiguous Reason 0/1 waits a moment for that Hangup;
- the IVR reports each answer with ``UserEvent`` on that channel: ours sends
  ``UserEvent(SurveyAnswer,Ticket: T,Survey: ID,Attempt: N,Question: resolved|satisfaction,Digit: D)``,
  the lab IVR ``UserEvent(SurveyResult,Ticket: T,Digit: D)`` (taken as the satisfaction answer);
- ``Hangup`` of that Uniqueid ends the call. Events of one call can be delivered before the Originate's
  awaited response is processed, so answers are matched by Ticket/Survey too and early Hangups remembered.

No import of ``tickets``: the outcome words are plain strings the tickets side understands.
"""
from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping

log = logging.getLogger("hotline.survey_dialer")

SendAction = Callable[[dict[str, Any]], Awaitable[Any]]
# OriginateResponse Reason for a Failure -> outcome. Only a fallback: the Reason depends on the channel
# technology (survey_busy capture: a SIP 486 through PJSIP gives Reason 0, the same busy through Local gives 5).
REASONS = {"0": "failed", "1": "failed", "3": "no_answer", "5": "busy", "8": "congestion"}
# What the dialled channel itself says, first choice: DialEnd DialStatus, then its Hangup Cause (Q.850).
DIAL_STATUSES = {"BUSY": "busy", "NOANSWER": "no_answer", "CONGESTION": "congestion", "CHANUNAVAIL": "failed"}
CAUSES = {"17": "busy", "18": "no_answer", "19": "no_answer", "34": "congestion", "38": "congestion",
          "42": "congestion"}
AMBIGUOUS = {"0", "1"}  # a Reason that does not say why: wait briefly for the dialled channel's Hangup cause
_UNSAFE = re.compile(r"[\r\n\x00]+")


class DialerUnavailable(Exception):
    """The call could not be handed to Asterisk (not connected): nothing was placed."""


def clean_value(text: str, limit: int = 120) -> str:
    """A channel variable value: one line (an AMI header must never be split), no comma (Asterisk splits the
    ``Variable`` header on commas), bounded length."""
    return _UNSAFE.sub(" ", text).replace(",", "，").strip()[:limit]


@dataclass
class SurveyCall:
    survey_id: int
    attempt: int
    ticket: str
    action_id: str
    uniqueid: str | None = None
    answered: bool = False
    answers: dict[str, str] = field(default_factory=dict)
    done: bool = False
    timer: asyncio.TimerHandle | None = None
    legs: set[str] = field(default_factory=set)  # Uniqueids of the channels dialled for it (VarSet of our vars)
    dial_status: str = ""
    cause: str = ""
    failed_reason: str | None = None  # an ambiguous OriginateResponse Failure waiting for the cause


def _get(msg: Any, key: str) -> str:
    """Header lookup on a panoramisk Message (case-insensitive) or a plain dict."""
    if msg is None:
        return ""
    try:
        value = msg.get(key)
    except AttributeError:
        return ""
    if value is None and isinstance(msg, Mapping):
        low = key.lower()
        value = next((v for k, v in msg.items() if str(k).lower() == low), None)
    return "" if value is None else str(value)


class SurveyDialer:
    def __init__(self, send_action: SendAction, survey_settings: Any,
                 on_result: Callable[[dict[str, Any]], Any], *, ring_seconds: float | None = None,
                 max_call_seconds: float | None = None, action_prefix: str | None = None) -> None:
        self.send_action = send_action
        self.settings = survey_settings
        self.on_result = on_result
        self.ring_seconds = float(ring_seconds or getattr(survey_settings, "ring_seconds", None) or 30)
        # A call whose end we never hear about (lost AMI events) is reported as "lost" after this.
        self.max_call_seconds = float(max_call_seconds or getattr(survey_settings, "max_call_seconds", None) or 900)
        # ActionIDs are seen by every AMI connection: make ours unique per process.
        self.action_prefix = action_prefix or f"survey-{uuid.uuid4().hex[:8]}"
        self.calls: dict[str, SurveyCall] = {}  # by ActionID
        self._by_uniqueid: dict[str, SurveyCall] = {}
        self._hungup: OrderedDict[str, str] = OrderedDict()  # recent Hangups of channels not yet known
        self._legs: dict[str, SurveyCall] = {}  # dialled channel Uniqueid -> call, until the call is decided
        self.cause_wait = 2.0  # seconds an ambiguous failure waits for the dialled channel's Hangup
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------ placing
    def build_action(self, request: Mapping[str, Any], action_id: str) -> dict[str, Any]:
        s = self.settings
        number = re.sub(r"[^0-9+*#]", "", str(request["number"]))
        variables = [
            f"TICKET={clean_value(str(request['ticket']), 40)}",
            f"SURVEY_TOPIC={clean_value(str(request.get('topic') or ''))}",
            f"SURVEY_TOPIC_CODE={clean_value(str(request.get('request_type') or ''), 20)}",
            f"SURVEY_ID={int(request['survey_id'])}",
            f"SURVEY_ATTEMPT={int(request['attempt'])}",
        ]
        return {
            "Action": "Originate", "ActionID": action_id,
            "Channel": s.trunk.format(number=number),
            "Context": s.ivr_context, "Exten": s.ivr_exten, "Priority": "1",
            "CallerID": s.caller_id, "Timeout": str(int(self.ring_seconds * 1000)), "Async": "true",
            "Variable": variables,
        }

    async def originate(self, request: Mapping[str, Any], *, placed_wait: float = 0.5) -> str:
        """Place one survey call; returns its ActionID once Asterisk has it (or the outcome is known).

        Raises ``DialerUnavailable`` (or the transport's error) when nothing was placed. The outcome arrives
        later through ``on_result``.
        """
        action_id = f"{self.action_prefix}-{int(request['survey_id'])}-{int(request['attempt'])}"
        call = SurveyCall(int(request["survey_id"]), int(request["attempt"]), str(request["ticket"]), action_id)
        self.calls[action_id] = call
        task = asyncio.get_running_loop().create_task(self._send(call, self.build_action(request, action_id)))
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._send_done(t, call))
        # An async Originate's answer may be held until the callee answers (panoramisk collects the
        # OriginateResponse with it): wait a little for an early refusal, not for the whole ringing.
        done, _ = await asyncio.wait({task}, timeout=placed_wait)
        if task in done and task.exception() is not None:
            self.calls.pop(action_id, None)
            raise task.exception()  # type: ignore[misc]
        loop = asyncio.get_running_loop()
        call.timer = loop.call_later(self.ring_seconds + self.max_call_seconds, self._give_up, action_id)
        return action_id

    async def _send(self, call: SurveyCall, action: dict[str, Any]) -> None:
        try:
            response = await self.send_action(action)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            unavailable = isinstance(exc, (ConnectionError, DialerUnavailable)) \
                or type(exc).__name__ == "AmiNotConnected" or "not connected" in str(exc).lower()
            if unavailable and call.timer is None:  # still inside originate(): nothing was placed
                raise DialerUnavailable(str(exc)) from exc
            # Refused by Asterisk (e.g. "Asterisk is shutting down", bad channel): a failed attempt.
            self._finish(call, "failed", reason=str(exc)[:20])
            return
        messages = response if isinstance(response, list) else [response]
        first = messages[0] if messages else None
        if _get(first, "Response") not in ("Success", "") and not _get(first, "Event"):
            self._finish(call, "failed", reason=_get(first, "Message")[:20] or "error")
            return
        for msg in messages:
            if _get(msg, "Event") == "OriginateResponse":
                self._on_originate_response(msg)

    def _send_done(self, task: asyncio.Task[Any], call: SurveyCall) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        if call.timer is not None:  # failed after originate() returned: the call's fate is unknown
            self._finish(call, "lost", reason="ami")

    # ------------------------------------------------------------ events
    def on_ami_event(self, event: Mapping[str, str]) -> None:
        name = _get(event, "Event")
        if name == "OriginateResponse":
            self._on_originate_response(event)
        elif name == "UserEvent":
            self._on_user_event(event)
        elif name == "Hangup":
            self._on_hangup(event)
        elif name == "VarSet":
            self._on_varset(event)
        elif name == "DialEnd":
            call = self._legs.get(_get(event, "DestUniqueid"))
            if call is not None and not call.done:
                call.dial_status = _get(event, "DialStatus")

    def _on_varset(self, event: Mapping[str, str]) -> None:
        # Originate's variables are set on the channel it dials, before it rings: that names the leg.
        var, value, uid = _get(event, "Variable"), _get(event, "Value"), _get(event, "Uniqueid")
        if var not in ("SURVEY_ID", "TICKET") or not uid or uid in self._legs:
            return
        if var == "SURVEY_ID":
            found = [c for c in self.calls.values() if not c.done and str(c.survey_id) == value]
        else:  # the lab's Originates only set TICKET
            found = [c for c in self.calls.values() if not c.done and c.ticket == value]
        if len(found) == 1 and found[0].uniqueid is None:
            found[0].legs.add(uid)
            self._legs[uid] = found[0]

    def _failure_outcome(self, call: SurveyCall, reason: str) -> str:
        return DIAL_STATUSES.get(call.dial_status) or CAUSES.get(call.cause) or REASONS.get(reason, "failed")

    def _on_originate_response(self, event: Any) -> None:
        call = self.calls.get(_get(event, "ActionID"))
        if call is None or call.done:
            return
        if _get(event, "Response") == "Success":
            call.answered = True
            uid = _get(event, "Uniqueid")
            if uid and uid != "<unknown>":
                call.uniqueid = uid
                self._by_uniqueid[uid] = call
                if uid in self._hungup:  # the Hangup was delivered before this response was processed
                    self._finish(call, "answered", reason=self._hungup.pop(uid))
        else:
            reason = _get(event, "Reason")
            if reason in AMBIGUOUS and call.legs and not call.dial_status and call.cause not in CAUSES:
                # PJSIP busy: Reason 0 comes before the Hangup that carries Cause 17 "User busy".
                call.failed_reason = reason
                if call.timer is not None:
                    call.timer.cancel()
                call.timer = asyncio.get_running_loop().call_later(self.cause_wait, self._decide, call)
                return
            self._finish(call, self._failure_outcome(call, reason), reason=reason or None)

    def _decide(self, call: SurveyCall) -> None:
        reason = call.failed_reason or ""
        self._finish(call, self._failure_outcome(call, reason), reason=reason or None)

    def _call_for_user_event(self, event: Mapping[str, str]) -> SurveyCall | None:
        for key in ("Uniqueid", "Linkedid"):
            call = self._by_uniqueid.get(_get(event, key))
            if call is not None:
                return call
        survey, attempt = _get(event, "Survey"), _get(event, "Attempt")
        ticket = _get(event, "Ticket")
        for call in self.calls.values():
            if call.done:
                continue
            if survey and str(call.survey_id) == survey and (not attempt or str(call.attempt) == attempt):
                return call
        # By ticket number alone (the lab IVR): only when exactly one open call is for that ticket.
        matches = [c for c in self.calls.values() if not c.done and ticket and c.ticket == ticket]
        return matches[0] if len(matches) == 1 else None

    def _on_user_event(self, event: Mapping[str, str]) -> None:
        kind = _get(event, "UserEvent")
        if kind not in ("SurveyAnswer", "SurveyResult"):
            return
        call = self._call_for_user_event(event)
        if call is None or call.done:
            return
        uid = _get(event, "Uniqueid")
        if uid and call.uniqueid is None:
            call.uniqueid = uid
            self._by_uniqueid[uid] = call
        call.answered = True
        question = _get(event, "Question") if kind == "SurveyAnswer" else "satisfaction"
        digit = _get(event, "Digit").strip()
        if question in ("resolved", "satisfaction") and digit:
            call.answers[question] = digit

    def _on_hangup(self, event: Mapping[str, str]) -> None:
        uid = _get(event, "Uniqueid")
        leg = self._legs.get(uid)
        if leg is not None and not leg.answered and not leg.done:
            cause = _get(event, "Cause")
            if cause in CAUSES or not leg.cause:
                leg.cause = cause
            leg.legs.discard(uid)
            self._legs.pop(uid, None)
            if leg.failed_reason is not None and (cause in CAUSES or not leg.legs):
                self._decide(leg)
            return
        call = self._by_uniqueid.get(uid)
        if call is None:
            self._hungup[uid] = _get(event, "Cause")
            while len(self._hungup) > 2000:
                self._hungup.popitem(last=False)
            return
        self._finish(call, "answered", reason=_get(event, "Cause") or None)

    def _give_up(self, action_id: str) -> None:
        call = self.calls.get(action_id)
        if call is not None and not call.done:
            self._finish(call, "lost", reason="timeout")

    # ------------------------------------------------------------ results
    def _finish(self, call: SurveyCall, outcome: str, reason: str | None = None) -> None:
        if call.done:
            return
        call.done = True
        if call.timer is not None:
            call.timer.cancel()
        self.calls.pop(call.action_id, None)
        if call.uniqueid:
            self._by_uniqueid.pop(call.uniqueid, None)
        for uid in call.legs:
            self._legs.pop(uid, None)
        result = {"survey_id": call.survey_id, "attempt": call.attempt, "ticket": call.ticket,
                  "outcome": outcome, "reason": reason, "answers": dict(call.answers), "uniqueid": call.uniqueid,
                  "action_id": call.action_id}
        try:
            ret = self.on_result(result)
        except Exception:
            log.exception("survey result handler failed for %s", result)
            return
        if asyncio.iscoroutine(ret) or isinstance(ret, asyncio.Future):
            task = asyncio.ensure_future(ret)
            self._tasks.add(task)
            task.add_done_callback(self._result_done)

    def _result_done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)  # type: ignore[arg-type]
        if not task.cancelled() and task.exception() is not None:
            log.error("survey result handler failed", exc_info=task.exception())

    def active(self) -> int:
        return len(self.calls)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
