"""Asterisk's ``queue_log``: parse its lines and fold them into one record per queue call. Pure: no I/O, no clock.

Asterisk writes every queue call to queue_log whether or not anyone listens on AMI, so after a link gap it is the
record of what AMI missed (QueueMetrics-class tools read it the same way). A line is
``<epoch>|<callid>|<queue>|<agent>|<EVENT>|<data1>|...|<data5>``; ``callid`` is the Uniqueid of the channel in the
queue (the caller ``;1`` of a Local pair, the SIP channel of a real caller): the Linkedid of the call, our key.
``agent`` is the member name (``MemberName`` in AMI), or the interface when the member has none. The realtime
``queue_log`` table (``time, callid, queuename, agent, event, data1..data5``) holds the same fields.

Data fields by event (Asterisk 18-22, app_queue.c):
ENTERQUEUE url|callerid|position; CONNECT holdtime|agent leg uniqueid|ringtime;
COMPLETECALLER / COMPLETEAGENT holdtime|talktime|origposition; ABANDON position|origposition|waittime;
EXITWITHTIMEOUT position|origposition|waittime; EXITEMPTY position|origposition|waittime;
EXITWITHKEY key|position|origposition|waittime; BLINDTRANSFER exten|context|holdtime|talktime|origposition;
ATTENDEDTRANSFER method|target...|holdtime|talktime|origposition (the last three are always these);
TRANSFER (before Asterisk 12) exten|context|holdtime|talktime|origposition.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

# queue_log event -> our outcome (the names of telephony_calls.outcome)
FINAL = {
    "COMPLETECALLER": "answered",
    "COMPLETEAGENT": "answered",
    "BLINDTRANSFER": "transferred",
    "ATTENDEDTRANSFER": "transferred",
    "TRANSFER": "transferred",
    "ABANDON": "abandoned",
    "EXITWITHKEY": "abandoned",  # the caller chose to leave the queue
    "EXITWITHTIMEOUT": "timed_out",
    "EXITEMPTY": "timed_out",  # the queue emptied (leavewhenempty): nobody could take the call
}


@dataclass(frozen=True, slots=True)
class Entry:
    time: float
    call_id: str
    queue: str
    agent: str
    event: str
    data: tuple[str, ...] = ()

    def field(self, i: int) -> str:
        return self.data[i] if 0 <= i < len(self.data) else ""

    def number(self, i: int) -> float | None:
        try:
            x = float(self.field(i))
        except ValueError:
            return None
        return x if math.isfinite(x) else None


@dataclass(frozen=True, slots=True)
class LoggedCall:
    """What queue_log says about one queue call; ``outcome`` is empty while the call is still open."""

    call_id: str
    queue: str
    caller_num: str = ""
    joined: float | None = None
    answered: float | None = None
    ended: float | None = None
    wait: float | None = None
    talk: float | None = None
    agent: str = ""  # member name as queue_log writes it
    agent_leg: str = ""  # Uniqueid of the bridged agent leg (CONNECT)
    outcome: str = ""
    last_event: str = ""


def parse_line(line: str) -> Entry | None:
    """One queue_log line, or None when it is not one (a torn last line, garbage)."""
    parts = line.rstrip("\r\n").split("|")
    if len(parts) < 5 or not parts[4]:
        return None
    try:
        t = float(parts[0])
    except ValueError:
        return None
    if not math.isfinite(t) or t <= 0:
        return None
    return Entry(t, parts[1], parts[2], parts[3], parts[4], tuple(parts[5:]))


def parse(text: str) -> list[Entry]:
    return [e for line in text.splitlines() if (e := parse_line(line)) is not None]


def from_row(row: Mapping[str, object]) -> Entry | None:
    """A row of Asterisk's realtime ``queue_log`` table (time may be epoch or a datetime's ``timestamp()``)."""
    t = row.get("time")
    data = [str(row.get(f"data{i}") or "") for i in range(1, 6)]
    while data and not data[-1]:
        data.pop()  # the table has five data columns; the file line only the fields the event has
    line = "|".join([str(t), *(str(row.get(k) or "") for k in ("callid", "queuename", "agent", "event")), *data])
    return parse_line(line)


def _fold(c: LoggedCall, e: Entry) -> LoggedCall:
    ev = e.event
    if ev == "ENTERQUEUE":
        return replace(c, queue=e.queue or c.queue, caller_num=e.field(1) or c.caller_num, joined=e.time)
    if ev == "CONNECT":
        return replace(c, answered=e.time, agent=e.agent, agent_leg=e.field(1), wait=e.number(0),
                       last_event=ev)
    outcome = FINAL.get(ev)
    if outcome is None or c.outcome:
        return c  # RINGNOANSWER, PAUSE... or a second final line (transfer then complete): the first wins
    if outcome in ("answered", "transferred"):
        n = len(e.data)
        hold_i, talk_i = {"COMPLETECALLER": (0, 1), "COMPLETEAGENT": (0, 1),
                          "ATTENDEDTRANSFER": (n - 3, n - 2)}.get(ev, (2, 3))
        talk = e.number(talk_i)
        wait = c.wait if c.wait is not None else e.number(hold_i)
        answered = c.answered if c.answered is not None else (e.time - talk if talk is not None else None)
        return replace(c, outcome=outcome, ended=e.time, talk=talk, wait=wait, answered=answered,
                       agent=c.agent or e.agent, last_event=ev)
    waited = e.number(3 if ev == "EXITWITHKEY" else 2)
    joined = c.joined if c.joined is not None else (e.time - waited if waited is not None else None)
    return replace(c, outcome=outcome, ended=e.time, wait=waited, joined=joined, last_event=ev)


def calls(entries: Iterable[Entry], known: Mapping[str, LoggedCall] | None = None) -> dict[str, LoggedCall]:
    """Fold entries (in file order) into calls by callid, on top of ``known`` (calls read earlier)."""
    out: dict[str, LoggedCall] = dict(known or {})
    for e in entries:
        if not e.call_id or e.call_id == "NONE" or not e.queue or e.queue == "NONE":
            continue
        c = out.get(e.call_id) or LoggedCall(call_id=e.call_id, queue=e.queue)
        out[e.call_id] = _fold(c, e)
    return out
