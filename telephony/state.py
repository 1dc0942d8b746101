"""Live telephony state as plain frozen data, and the effects the reducer returns.

Collections inside the frozen dataclasses are plain dicts that are never mutated after construction
(copy-on-write in ``reducer.py``), so an unchanged entity keeps its identity and ``diff`` can find
what changed by ``is`` comparison. Times are epoch seconds (floats) taken from AMI ``Timestamp`` fields.
Pure: no I/O, no clock.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

T = TypeVar("T")

# Device states (QueueMemberStatus ``Status``): 1 not in use, 2 in use, 3 busy, 4 invalid, 5 unavailable,
# 6 ringing, 7 ringing+in use, 8 on hold. A Local member being rung reports 2, not 6 (captures README, pitfall 10).
DEVICE_BUSY = {2, 3, 7, 8}
DEVICE_RINGING = {6}
DEVICE_UNAVAILABLE = {0, 4, 5}


@dataclass(frozen=True, slots=True)
class Channel:
    id: str  # Uniqueid
    name: str
    call_id: str  # Linkedid
    created: float


@dataclass(frozen=True, slots=True)
class Call:
    """One citizen call: every leg sharing one Linkedid (Local ;1/;2 halves, agent legs, the transfer to 110)."""

    id: str  # Linkedid
    started: float
    channels: Mapping[str, str] = field(default_factory=dict)  # Uniqueid -> channel name
    caller_num: str = ""
    caller_name: str = ""
    caller_channel: str = ""  # Uniqueid of the channel that sits in the queue ("the caller")
    queue: str = ""
    joined: float | None = None
    left_queue: float | None = None
    answered: float | None = None
    agent_interface: str = ""
    agent_name: str = ""
    agent_channel: str = ""  # Uniqueid of the agent leg bridged to the caller
    agent_left: float | None = None  # the agent leg hung up (or was transferred away)
    counted: bool = False  # counted in today's ``offered`` (so every finished call is also an offered one)
    abandoned: bool = False  # QueueCallerAbandon came (Asterisk 22 sends it for a queue timeout too)
    timed_out: bool = False  # QUEUESTATUS=TIMEOUT (or LEAVEEMPTY/LEAVEUNAVAIL) after that QueueCallerAbandon
    transferred: bool = False
    talk_time: float | None = None  # from AgentComplete when it comes before the call ends
    recording: str = ""
    ringing: str = ""  # interface currently rung for this caller

    @property
    def state(self) -> str:
        if self.answered is not None:
            # After the agent's leg is gone the caller is elsewhere (Redirect to 110): no longer with an agent.
            return "transferred" if self.transferred or self.agent_left is not None else "talking"
        if self.queue and self.left_queue is None:
            return "waiting"
        return "ivr"


@dataclass(frozen=True, slots=True)
class Member:
    queue: str
    interface: str
    name: str = ""
    state_interface: str = ""
    membership: str = ""
    penalty: int = 0
    status: int = 1
    paused: bool = False
    paused_reason: str = ""
    in_call: bool = False
    calls_taken: int = 0
    last_call: float = 0.0
    login_time: float = 0.0


@dataclass(frozen=True, slots=True)
class Waiter:
    call_id: str
    channel_id: str
    caller_num: str
    caller_name: str
    joined: float
    position: int


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Counters of one queue for one local day (reset at local midnight)."""

    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    timed_out: int = 0
    answered_15: int = 0
    answered_30: int = 0
    wait_answered_total: float = 0.0
    longest_wait: float = 0.0
    talk_total: float = 0.0
    completed: int = 0

    @property
    def finished(self) -> int:
        return self.answered + self.abandoned + self.timed_out

    @property
    def answer_rate(self) -> float | None:
        return self.answered / self.finished if self.finished else None

    @property
    def abandon_rate(self) -> float | None:
        return self.abandoned / self.finished if self.finished else None

    def service_level(self, seconds: int = 15) -> float | None:
        hits = self.answered_15 if seconds <= 15 else self.answered_30
        return hits / self.finished if self.finished else None

    @property
    def avg_wait(self) -> float | None:
        return self.wait_answered_total / self.answered if self.answered else None

    @property
    def avg_talk(self) -> float | None:
        return self.talk_total / self.completed if self.completed else None


@dataclass(frozen=True, slots=True)
class Queue:
    name: str
    strategy: str = ""
    members: Mapping[str, Member] = field(default_factory=dict)  # by interface
    waiting: Mapping[str, Waiter] = field(default_factory=dict)  # by call id
    stats: QueueStats = QueueStats()
    alert: bool = False  # answer rate below target right now


@dataclass(frozen=True, slots=True)
class Agent:
    """One agent = one Asterisk interface, over every queue it is a member of."""

    interface: str
    name: str = ""
    state: str = "available"  # available / ringing / in_call / paused / unavailable / logged_out
    pause_reason: str = ""
    call_id: str = ""
    since: float = 0.0
    queues: tuple[str, ...] = ()
    ringing: str = ""  # call id this agent is being rung for


@dataclass(frozen=True, slots=True)
class LiveState:
    now: float = 0.0  # newest event time seen
    day: str = ""  # local date the counters belong to
    day_end: float = 0.0
    channels: Mapping[str, Channel] = field(default_factory=dict)
    calls: Mapping[str, Call] = field(default_factory=dict)
    queues: Mapping[str, Queue] = field(default_factory=dict)
    agents: Mapping[str, Agent] = field(default_factory=dict)
    recording_by_channel: Mapping[str, str] = field(default_factory=dict)
    # Queue calls already recorded (call id -> end time), so queue_log never records or counts one twice.
    # Two levels so that recording a call copies a small dict, not the whole day (see reducer._mark_done).
    done: Mapping[str, float] = field(default_factory=dict)
    done_recent: Mapping[str, float] = field(default_factory=dict)
    # Calls that vanished during a link gap, held until queue_log says how they ended (``_QueueLog``).
    unresolved: Mapping[str, Call] = field(default_factory=dict)


# ---------------------------------------------------------------- effects (data for the shell to carry out)
@dataclass(frozen=True, slots=True)
class CallConnected:
    call_id: str
    channel_id: str
    caller_num: str
    caller_name: str
    queue: str
    interface: str
    member_name: str
    at: float
    wait: float


@dataclass(frozen=True, slots=True)
class CallEnded:
    """A call left the system; ``queue`` empty means it never reached a queue (no call record then)."""

    call_id: str
    caller_num: str
    queue: str
    joined: float | None
    answered: float | None
    ended: float
    wait: float | None
    talk: float | None
    interface: str
    member_name: str
    outcome: str  # answered / abandoned / timed_out / transferred / none
    recording: str
    lost: bool = False  # dropped at a resync: the PBX no longer knew it
    source: str = "ami"  # ami / queue_log: which record of the PBX told us how the call ended


@dataclass(frozen=True, slots=True)
class RecordingReady:
    call_id: str
    path: str
    caller_num: str
    at: float


@dataclass(frozen=True, slots=True)
class CallMissed:
    """An abandoned or timed-out caller: goes on the callback list (漏接回拨)."""

    call_id: str
    caller_num: str
    caller_name: str
    queue: str
    joined: float
    at: float
    wait: float
    reason: str  # abandoned / timed_out


@dataclass(frozen=True, slots=True)
class OriginateResult:
    action_id: str
    success: bool
    reason: str
    channel: str
    uniqueid: str


@dataclass(frozen=True, slots=True)
class SurveyResult:
    ticket: str
    digit: str
    call_id: str
    at: float


@dataclass(frozen=True, slots=True)
class QueueAlert:
    queue: str
    active: bool
    answer_rate: float | None
    service_level_15: float | None
    target: float
    at: float


Effect = CallConnected | CallEnded | RecordingReady | CallMissed | OriginateResult | SurveyResult | QueueAlert


def effect_dict(effect: Any) -> dict[str, Any]:
    d = {f.name: getattr(effect, f.name) for f in fields(effect)}
    d["type"] = type(effect).__name__
    return d


# ---------------------------------------------------------------- views (JSON-ready)
def _r(x: float | None, nd: int = 1) -> float | None:
    return None if x is None else round(x, nd)


def queue_view(q: Queue) -> dict[str, Any]:
    s = q.stats
    return {
        "name": q.name, "strategy": q.strategy, "alert": q.alert,
        "members": [member_view(m) for m in sorted(q.members.values(), key=lambda m: m.name or m.interface)],
        "waiting": [waiter_view(w) for w in sorted(q.waiting.values(), key=lambda w: w.position)],
        "stats": stats_view(s),
    }


def stats_view(s: QueueStats) -> dict[str, Any]:
    return {"offered": s.offered, "answered": s.answered, "abandoned": s.abandoned, "timed_out": s.timed_out,
            "answered_15": s.answered_15, "answered_30": s.answered_30,
            "answer_rate": _r(s.answer_rate, 4), "abandon_rate": _r(s.abandon_rate, 4),
            "service_level_15": _r(s.service_level(15), 4), "service_level_30": _r(s.service_level(30), 4),
            "avg_wait": _r(s.avg_wait), "longest_wait": _r(s.longest_wait), "avg_talk": _r(s.avg_talk)}


def waiter_view(w: Waiter) -> dict[str, Any]:
    return {"call_id": w.call_id, "caller_num": w.caller_num, "caller_name": w.caller_name,
            "joined": w.joined, "position": w.position}


def member_view(m: Member) -> dict[str, Any]:
    return {"interface": m.interface, "name": m.name, "status": m.status, "paused": m.paused,
            "paused_reason": m.paused_reason, "membership": m.membership, "penalty": m.penalty,
            "calls_taken": m.calls_taken}


def agent_view(a: Agent, state: LiveState) -> dict[str, Any]:
    return {"interface": a.interface, "name": a.name, "state": a.state, "pause_reason": a.pause_reason,
            "call_id": a.call_id, "since": a.since, "queues": list(a.queues)}


def call_view(c: Call) -> dict[str, Any]:
    return {"id": c.id, "state": c.state, "caller_num": c.caller_num, "caller_name": c.caller_name,
            "queue": c.queue, "started": c.started, "joined": c.joined, "answered": c.answered,
            "agent": c.agent_interface, "agent_name": c.agent_name, "recording": c.recording,
            "transferred": c.transferred, "legs": len(c.channels)}


def snapshot(state: LiveState) -> dict[str, Any]:
    return {
        "now": state.now, "day": state.day,
        "queues": {k: queue_view(q) for k, q in sorted(state.queues.items())},
        "agents": {k: agent_view(a, state) for k, a in sorted(state.agents.items())},
        "calls": {k: call_view(c) for k, c in state.calls.items()},
    }


def _changed(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in new.items() if k not in old or old[k] != v}


def _entities(out: list[dict[str, Any]], kind: str, a: Mapping[str, T], b: Mapping[str, T],
              view: Callable[[T], dict[str, Any]]) -> None:
    """A new entity goes out whole; a changed one as ``set`` with only the fields whose view changed."""
    if a is b:
        return
    for k, v in b.items():
        was = a.get(k)
        if was is v:
            continue
        if was is None:
            out.append({"op": "put", "kind": kind, "key": k, "value": view(v)})
        else:
            fields_ = _changed(view(was), view(v))
            if fields_:
                out.append({"op": "set", "kind": kind, "key": k, "value": fields_})
    for k in a:
        if k not in b:
            out.append({"op": "del", "kind": kind, "key": k})


def _parts(out: list[dict[str, Any]], kind: str, queue: str, a: Mapping[str, T], b: Mapping[str, T],
           view: Callable[[T], dict[str, Any]]) -> None:
    """Members and waiting callers of one queue, each on its own (a queue of 200 callers is never re-sent)."""
    if a is b:
        return
    for k, v in b.items():
        was = a.get(k)
        if was is v:
            continue
        value = view(v)
        if was is None or view(was) != value:
            out.append({"op": "put", "kind": kind, "queue": queue, "key": k, "value": value})
    for k in a:
        if k not in b:
            out.append({"op": "del", "kind": kind, "queue": queue, "key": k})


def _queues(out: list[dict[str, Any]], a: Mapping[str, Queue], b: Mapping[str, Queue]) -> None:
    if a is b:
        return
    for k, q in b.items():
        was = a.get(k)
        if was is q:
            continue
        if was is None:
            out.append({"op": "put", "kind": "queue", "key": k, "value": queue_view(q)})
            continue
        fields_: dict[str, Any] = {}
        if was.strategy != q.strategy:
            fields_["strategy"] = q.strategy
        if was.alert != q.alert:
            fields_["alert"] = q.alert
        if was.stats is not q.stats:
            stats = _changed(stats_view(was.stats), stats_view(q.stats))
            if stats:
                fields_["stats"] = stats
        if fields_:
            out.append({"op": "set", "kind": "queue", "key": k, "value": fields_})
        _parts(out, "member", k, was.members, q.members, member_view)
        _parts(out, "waiter", k, was.waiting, q.waiting, waiter_view)
    for k in a:
        if k not in b:
            out.append({"op": "del", "kind": "queue", "key": k})


def diff(old: LiveState, new: LiveState) -> list[dict[str, Any]]:
    """Patches that turn ``snapshot(old)`` into ``snapshot(new)``, carrying only what changed.

    Relies on copy-on-write identity to skip what is untouched. Ops (``telephony.live`` documents the wire
    format and applies them): ``put``/``del`` of a whole queue, call or agent when it appears or goes; ``set``
    with only the changed fields of one (a queue's ``stats`` only the changed counters); ``put``/``del`` of one
    ``member`` or ``waiter`` of a queue; ``now``.
    """
    out: list[dict[str, Any]] = []
    if old is new:
        return out
    _queues(out, old.queues, new.queues)
    _entities(out, "call", old.calls, new.calls, call_view)
    _entities(out, "agent", old.agents, new.agents, lambda a: agent_view(a, new))
    if old.now != new.now or old.day != new.day:
        out.append({"op": "now", "now": new.now, "day": new.day})
    return out
