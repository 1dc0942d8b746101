"""``apply(state, event) -> (state, effects)``: the only way live telephony state changes.

Handlers sit in one table keyed by the AMI event name. Every handler is total: an event about an unknown
channel, call or queue changes nothing and never raises. Time comes from the event's ``Timestamp``
(``timestampevents = yes``), else from ``_received`` (stamped by the shell when the bytes arrived), else
the newest time already seen. Pure: no I/O, no clock.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

from . import queue_log
from .state import (
    DEVICE_BUSY,
    DEVICE_RINGING,
    DEVICE_UNAVAILABLE,
    Agent,
    Call,
    CallConnected,
    CallEnded,
    CallMissed,
    Channel,
    LiveState,
    Member,
    OriginateResult,
    Queue,
    QueueAlert,
    QueueStats,
    RecordingReady,
    SurveyResult,
    Waiter,
)

Event = Mapping[str, Any]
Effects = tuple[Any, ...]
NONE: Effects = ()


@dataclass(frozen=True)
class ReducerConfig:
    tz: tzinfo = timezone(timedelta(hours=8))
    answer_rate_target: float = 0.95
    alert_min_calls: int = 5  # do not alarm on the first two calls of the morning
    recording_var: str = "MIXMONITOR_FILENAME"
    # queue_log reconciliation is on (ami.queue_log_path): calls lost in a link gap wait for its verdict
    # (``unresolved``) instead of being closed with a guessed outcome at the resync.
    reconcile: bool = False


# Timestamps outside these bounds (years 2001..2286) are garbage: the event is rejected, the state kept.
MIN_TIME, MAX_TIME = 1e9, 1e10


DEFAULT_CONFIG = ReducerConfig()
Handler = Callable[[LiveState, Event, float, ReducerConfig], "tuple[LiveState, Effects]"]


# ---------------------------------------------------------------- small helpers
def _s(ev: Event, key: str) -> str:
    v = ev.get(key, "")
    if isinstance(v, list):
        return v[-1] if v else ""
    return v if isinstance(v, str) else str(v)


def _f(ev: Event, key: str, default: float = 0.0) -> float:
    try:
        return float(_s(ev, key))
    except ValueError:
        return default


def _i(ev: Event, key: str, default: int = 0) -> int:
    try:
        return int(_s(ev, key))
    except ValueError:
        return default


def _known(num: str) -> str:
    return "" if num in ("", "<unknown>", "<Unknown>") else num


def event_time(state: LiveState, ev: Event) -> float | None:
    """The event's time; None when it carries a time that is not one (the event is then rejected)."""
    for key in ("Timestamp", "_received"):
        v = ev.get(key)
        if v:
            try:
                t = float(v)
            except (TypeError, ValueError):
                return None
            return t if math.isfinite(t) and MIN_TIME <= t <= MAX_TIME else None
    return state.now


def _put(d: Mapping[str, Any], key: str, value: Any) -> dict[str, Any]:
    new = dict(d)
    new[key] = value
    return new


def _drop(d: Mapping[str, Any], key: str) -> dict[str, Any]:
    new = dict(d)
    new.pop(key, None)
    return new


def _roll_day(state: LiveState, ts: float, cfg: ReducerConfig) -> LiveState:
    local = datetime.fromtimestamp(ts, cfg.tz)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=1)).timestamp()
    day = start.date().isoformat()
    if day == state.day:
        return replace(state, day_end=end)
    queues = {k: replace(q, stats=QueueStats(), alert=False) for k, q in state.queues.items()}
    keep = start.timestamp() - 86400  # yesterday's calls may still show up in a queue_log read after midnight
    done = {k: t for d in (state.done, state.done_recent) for k, t in d.items() if t >= keep}
    return replace(state, day=day, day_end=end, queues=queues, done=done, done_recent={})


DONE_BATCH = 256


def _is_done(state: LiveState, call_id: str) -> bool:
    return call_id in state.done_recent or call_id in state.done


def _mark_done(state: LiveState, call_id: str, at: float) -> LiveState:
    """Remember a recorded call; folds the small recent dict into the big one every DONE_BATCH calls."""
    recent = _put(state.done_recent, call_id, at)
    if len(recent) < DONE_BATCH:
        return replace(state, done_recent=recent)
    return replace(state, done={**state.done, **recent}, done_recent={})


def _call_of_channel(state: LiveState, uniqueid: str, linkedid: str = "") -> Call | None:
    if linkedid and linkedid in state.calls:
        return state.calls[linkedid]
    ch = state.channels.get(uniqueid)
    if ch is not None:
        return state.calls.get(ch.call_id)
    return state.calls.get(uniqueid) if uniqueid else None


def _queue(state: LiveState, name: str) -> Queue:
    return state.queues.get(name) or Queue(name=name)


def _with_queue(state: LiveState, q: Queue) -> LiveState:
    return replace(state, queues=_put(state.queues, q.name, q))


def _with_call(state: LiveState, c: Call) -> LiveState:
    return replace(state, calls=_put(state.calls, c.id, c))


def _offer(q: Queue, call: Call) -> tuple[Queue, Call]:
    """Count a call in ``offered`` once, when it is first known to be a queue call of today (the join may have
    happened before a restart or during a gap), so ``offered`` never falls behind the finished calls."""
    if call.counted:
        return q, call
    return replace(q, stats=replace(q.stats, offered=q.stats.offered + 1)), replace(call, counted=True)


def _check_alert(q: Queue, ts: float, cfg: ReducerConfig) -> tuple[Queue, Effects]:
    s = q.stats
    rate = s.answer_rate
    active = rate is not None and s.finished >= cfg.alert_min_calls and rate < cfg.answer_rate_target
    if active == q.alert:
        return q, NONE
    return replace(q, alert=active), (QueueAlert(q.name, active, rate, s.service_level(15), cfg.answer_rate_target, ts),)


def _agent_state(state: LiveState, interface: str, ts: float, call_id: str | None = None,
                 ringing: str | None = None) -> LiveState:
    """Recompute one agent from its queue memberships and its call; ``since`` moves only on a change."""
    members = [q.members[interface] for q in state.queues.values() if interface in q.members]
    prev = state.agents.get(interface)
    cid = prev.call_id if call_id is None and prev else (call_id or "")
    if cid and cid not in state.calls:
        cid = ""
    ring = (prev.ringing if prev else "") if ringing is None else ringing
    if ring and ring not in state.calls:
        ring = ""
    if not members and not cid:
        return replace(state, agents=_drop(state.agents, interface)) if prev else state
    paused = [m for m in members if m.paused]
    statuses = {m.status for m in members}
    if cid:
        st, reason = "in_call", ""
    elif ring:
        st, reason = "ringing", ""
    elif paused:
        st, reason = "paused", paused[0].paused_reason
    elif statuses and statuses <= DEVICE_UNAVAILABLE:
        st, reason = "unavailable", ""
    elif statuses & DEVICE_RINGING:
        st, reason = "ringing", ""
    elif statuses & DEVICE_BUSY or any(m.in_call for m in members):
        st, reason = "in_call", ""
    else:
        st, reason = "available", ""
    name = next((m.name for m in members if m.name), prev.name if prev else "")
    queues = tuple(sorted(m.queue for m in members))
    since = prev.since if prev and prev.state == st and prev.pause_reason == reason else ts
    agent = Agent(interface=interface, name=name, state=st, pause_reason=reason, call_id=cid, since=since,
                  queues=queues, ringing=ring)
    if prev == agent:
        return state
    return replace(state, agents=_put(state.agents, interface, agent))


def _end_call(state: LiveState, call: Call, ts: float, cfg: ReducerConfig, lost: bool = False
              ) -> tuple[LiveState, Effects]:
    """The last leg of a call hung up (or a resync found it gone): close the record and free its agent."""
    effects: list[Any] = []
    calls = _drop(state.calls, call.id)
    state = replace(state, calls=calls)
    if call.answered is None:
        # MixMonitor starts before the queue: an abandoned caller leaves a 44-byte WAV with no talk in it.
        call = replace(call, recording="")
    if call.queue:
        state = _mark_done(state, call.id, ts)
        q, call = _offer(_queue(state, call.queue), call)
        waiting = q.waiting
        if call.id in waiting:
            waiting = _drop(waiting, call.id)
        if call.answered is not None:
            outcome = "transferred" if call.transferred else "answered"
        elif call.timed_out:
            outcome = "timed_out"
        elif call.abandoned:
            outcome = "abandoned"
        elif call.left_queue is None:
            outcome = "abandoned"  # hung up in the queue and no QueueCallerAbandon came (lost event)
        else:
            outcome = "timed_out"  # left the queue without an agent and without hanging up: queue timeout
        stats = q.stats
        talk: float | None = None
        if call.answered is not None:
            talk = max(0.0, (call.agent_left or ts) - call.answered)
            stats = replace(stats, completed=stats.completed + 1, talk_total=stats.talk_total + talk)
        wait: float | None = None
        if call.joined is not None:
            wait = max(0.0, (call.answered or call.left_queue or ts) - call.joined)
        if outcome in ("timed_out", "abandoned"):
            if not call.abandoned:  # counted here unless QueueCallerAbandon counted it already
                stats = replace(stats, **({"timed_out": stats.timed_out + 1} if outcome == "timed_out"
                                          else {"abandoned": stats.abandoned + 1}),
                                longest_wait=max(stats.longest_wait, wait or 0.0))
            # On the callback list once the call is over: only then is abandon told from timeout (the
            # QueueCallerAbandon of a timeout comes first, QUEUESTATUS=TIMEOUT after it).
            effects.append(CallMissed(call.id, call.caller_num, call.caller_name, call.queue, call.joined or ts,
                                      call.left_queue or ts, wait or 0.0, outcome))
        q, alert = _check_alert(replace(q, waiting=waiting, stats=stats), ts, cfg)
        effects.extend(alert)
        state = _with_queue(state, q)
        effects.append(CallEnded(call.id, call.caller_num, call.queue, call.joined, call.answered, ts, wait, talk,
                                 call.agent_interface, call.agent_name, outcome, call.recording, lost))
    elif call.answered is not None or call.recording:
        effects.append(CallEnded(call.id, call.caller_num, "", None, call.answered, ts, None, None,
                                 call.agent_interface, call.agent_name, "none", call.recording, lost))
    if call.recording:
        effects.append(RecordingReady(call.id, call.recording, call.caller_num, ts))
    for iface in {call.agent_interface, call.ringing} - {""}:
        a = state.agents.get(iface)
        if a is not None and (a.call_id == call.id or a.ringing == call.id):
            state = _agent_state(state, iface, ts)
    return state, tuple(effects)


# ---------------------------------------------------------------- channel handlers
def on_newchannel(state: LiveState, ev: Event, ts: float, cfg: ReducerConfig) -> tuple[LiveState, Effects]:
    uid = _s(ev, "Uniqueid")
    if not uid or uid in state.channels:
        return state, NONE
    call_id = _s(ev, "Linkedid") or uid
    name = _s(ev, "Channel")
    call = state.calls.get(call_id) or Call(id=call_id, started=ts)
    changes: dict[str, Any] = {"channels": _put(call.channels, uid, name)}
    if not call.caller_num and uid == call_id:
        num = _known(_s(ev, "CallerIDNum"))
        if num:
            changes["caller_num"] = num
            changes["caller_name"] = _known(_s(ev, "CallerIDName"))
    if call.answered is not None and call.agent_left is not None:
        # A new leg after the agent left a connected call: the caller was sent on (AMI Redirect to 110).
        changes["transferred"] = True
    call = replace(call, **changes)
    state = replace(state, channels=_put(state.channels, uid, Channel(uid, name, call_id, ts)))
    return _with_call(state, call), NONE


def on_hangup(state: LiveState, ev: Event, ts: float, cfg: ReducerConfig) -> tuple[LiveState, Effects]:
    uid = _s(ev, "Uniqueid")
    ch = state.channels.get(uid)
    if ch is None:
        return state, NONE
    state = replace(state, channels=_drop(state.channels, uid))
    call = state.calls.get(ch.call_id)
    if call is None:
        return state, NONE
    call = replace(call, channels=_drop(call.channels, uid))
    if uid == call.agent_channel and call.agent_left is None:
        # A leg born after the answer that outlives the agent leg: the caller was sent on (AMI Redirect to 110).
        # Its Newchannel may come before or after this Hangup (a race in Asterisk): both orders end here or
        # in on_newchannel.
        answered = call.answered
        sent_on = answered is not None and any(
            (c := state.channels.get(u)) is not None and c.created > answered and u != call.caller_channel
            for u in call.channels)
        call = replace(call, agent_left=ts, transferred=call.transferred or sent_on)
        state = _with_call(state, call)
        # The agent is free as soon as its leg is gone (after a Redirect AgentComplete comes much later).
        a = state.agents.get(call.agent_interface)
        if a is not None and a.call_id == call.id:
            state = _agent_state(state, call.agent_interface, ts, call_id="")
    if not call.channels:
        return _end_call(state, call, ts, cfg)
    return _with_call(state, call), NONE


def on_varset(state: LiveState, ev: Event, ts: float, cfg: ReducerConfig) -> tuple[LiveState, Effects]:
    if ev.get("Variable") == "QUEUESTATUS":
        return _queue_status(state, ev, ts, cfg)
    # MixMonitorStart carries no file name; MixMonitor sets MIXMONITOR_FILENAME just before (pitfall 11).
    if ev.get("Variable") != cfg.recording_var:
        return state, NONE
    call = _call_of_channel(state, _s(ev, "Uniqueid"), _s(ev, "Linkedid"))
    path = _s(ev, "Value")
    if call is None or not path or call.recording == path:
        return state, NONE
    return _with_call(state, replace(call, recording=path)), NONE


TIMEOUT_STATUSES = {"TIMEOUT", "LEAVEEMPTY", "LEAVEUNAVAIL"}


def _queue_status(state: LiveState, ev: Event, ts: float, cfg: ReducerConfig) -> tuple[LiveState, Effects]:
    """Asterisk 22 sends QueueCallerAbandon also when Queue(...,timeout) expires; QUEUESTATUS tells them apart."""
    call = _call_of_channel(state, _s(ev, "Uniqueid"), _s(ev, "Linkedid"))
    if call is None or _s(ev, "Value") not in TIMEOUT_STATUSES or call.answered is not None or call.timed_out \
            or not call.queue:
        return state, NONE
    q = _queue(state, call.queue)
    s = q.stats
    if call.abandoned:
        s = replace(s, abandoned=max(0, s.abandoned - 1), timed_out=s.timed_out + 1)
    q, alert = _check_alert(replace(q, stats=s), ts, cfg)
    # abandoned stays True: the counters already moved from abandoned to timed_out
    call = replace(call, timed_out=True, abandoned=True, left_queue=call.left_queue or ts)
    return _with_call(_with_queue(state, q), call), alert


def on_new_callerid(state: LiveState, ev: Event, ts: float, cfg: ReducerConfig) -> tuple[LiveState, Effects]:
    uid = _s(ev, "Uniqueid")
    call = _call_of_channel(state, uid, _s(ev, "Linkedid"))
    if call is None or call.caller_num or uid != call.id:
        return state, NONE
    num = _known(_s(ev, "CallerIDNum"))
    if not num:
        return state, NONE
    return _with_call(state, replace(call, caller_num=num, caller_name=_known(_s(ev, "CallerIDName")))), NONE


# ---------------------------------------------------------------- queue caller handlers
def on_queue_caller_join(state: LiveState, ev: Event, ts: float, cfg: ReducerConfig) -> tuple[LiveState, Effects]:
    qname = _s(ev, "Queue")
    uid = _s(ev, "Uniqueid")
    if not qname or not uid:
        return state, NONE
    call = _call_of_channel(state, uid, _s(ev, "Linkedid"))
    if call is None:
        call_id = _s(ev, "Linkedid") or uid
        call = Call(id=call_id, started=ts)
    num = _known(_s(ev, "CallerIDNum")) or call.caller_num
    name = _known(_s(ev, "CallerIDName")) or call.caller_name
    recount = not call.counted
    call = replace(call, queue=qname, joined=ts, left_queue=None, caller_num=num, caller_name=name,
                   caller_channel=uid, abandoned=False, counted=True)
    q = _queue(state, qname)
    waiter = Waiter(call.id, uid, num, name, ts, _i(ev, "Position", len(q.waiting) + 1))
    q = replace(q, waiting=_renumber(_put(_drop(q.waiting, call.id), call.id, waiter), call.id),
                stats=replace(q.stats, offered=q.stats.offered + recount))
    return _with_queue(_with_call(state, call), q), NONE


def _renumber(waiting: Mapping[str, Waiter], first: str = "") -> dict[str, Waiter]:
    """Positions 1..n in queue order, whatever events were lost; ``first`` wins a tie (it was just placed)."""
    order = sorted(waiting.values(), key=lambda w: (w.position, w.call_id != first, w.joined))
    out = {}
    for i, w in enumerate(order, 1):
        out[w.call_id] = w if w.position == i else replace(w, position=i)
    return out


def _remove_waiter(q: Queue, call_id: str) -> Queue:
    if call_id not in q.waiting:
        return q
    # Asterisk moves everyone behind the leaver up one place.
    return replace(q, waiting=_renumber(_drop(q.waiting, call_id)))


def on_queue_caller_leave(state: LiveState, ev: Event, ts: float, cfg: ReducerConfig) -> tuple[LiveState, Effects]:
    qname = _s(ev, "Queue")
    if qname not in state.queues:
        return state, NONE
    call = _call_of_channel(state, _s(ev, "Uniqueid"), _s(ev, "Linkedid"))
    q = state.queues[qname]
    if call is None:
        return state, NONE
    q = _remove_waiter(q, call.id)
    if call.left_queue is None:
        call = replace(call, left_queue=ts)
    return _with_call(_with_queue(state, q), call), NONE


def on_queue_caller_abandon(state: LiveState, ev: Event, ts: float, cfg: ReducerConfig) -> tuple[LiveState, Effects]:
    qname = _s(ev, "Queue")
    call = _call_of_channel(state, _s(ev, "Uniqueid"), _s(ev, "Linkedid"))
    if not qname or call is None or call.abandoned:
        return state, NONE
    wait = ts - call.joined if call.joined is not None else _f(ev, "HoldTime")
    q, call = _offer(_remove_waiter(_queue(state, qname), call.id), call)
    s = q.stats
    q = replace(q, stats=replace(s, abandoned=s.abandoned + 1, longest_wait=max(s.longest_wait, wait)))
    q, alert = _check_alert(q, ts, cfg)
    call = replace(call, abandoned=True, left_queue=ts)
    return _with_call(_with_queue(state, q), call), alert


# ---------------------------------------------------------------- agent handlers
def on_agent_called(state: LiveState, ev: Event, ts: float, cfg: ReducerConfig) -> tuple[LiveState, Effects]:
    iface = _s(ev, "Interface")
    call = _call_of_channel(state, _s(ev, "Uniqueid"), _s(ev, "Linkedid"))
    if not iface or call is None:
        return state, NONE
    state = _with_call(state, replace(call, ringing=iface))
    return _agent_state(state, iface, ts, ringing=call.id), NONE


def on_agent_ring_no_answer(state: LiveState, ev: Event, ts: float, cfg: ReducerConfig) -> tuple[LiveState, Effects]:
    iface = _s(ev, "Interface")
    call = _call_of_channel(state, _s(ev, "Uniqueid"), _s(ev, "Linkedid"))
    if call is not None and call.ringing == iface:
        state = _with_call(state, replace(call, ringing=""))
    if iface not in state.agents:
        return state, NONE
    return _agent_state(state, iface, ts, ringing=""), NONE


def on_agent_connect(state: LiveState, ev: Event, ts: float, cfg: ReducerConfig) -> tuple[LiveState, Effects]:
    iface = _s(ev, "Interface")
    qname = _s(ev, "Queue")
    call = _call_of_channel(state, _s(ev, "Uniqueid"), _s(ev, "Linkedid"))
    if call is None or not iface or call.answered is not None:
        return state, NONE
    wait = ts - call.joined if call.joined is not None else _f(ev, "HoldTime")
    wait = max(wait, 0.0)
    call = replace(call, answered=ts, agent_interface=iface, agent_name=_s(ev, "MemberName"),
                   agent_channel=_s(ev, "DestUniqueid"), ringing="", queue=call.queue or qname,
                   left_queue=call.left_queue or ts)
    effects: list[Any] = []
    if qname:
        q, call = _offer(_remove_waiter(_queue(state, qname), call.id), call)
        s = q.stats
        q = replace(q, stats=replace(
            s, answered=s.answered + 1, answered_15=s.answered_15 + (wait <= 15), answered_30=s.answered_30 + (wait <= 30),
            wait_answered_total=s.wait_answered_total + wait, longest_wait=max(s.longest_wait, wait)))
        q, alert = _check_alert(q, ts, cfg)
        effects.extend(alert)
        state = _with_queue(state, q)
    state = _with_call(state, call)
    state = _agent_state(state, iface, ts, call_id=call.id, ringing="")
    effects.insert(0, CallConnected(call.id, call.caller_channel or _s(ev, "Uniqueid"), call.caller_num,
                                    call.caller_name, call.queue, iface, call.agent_name, ts, wait))
    return state, tuple(effects)


def on_agent_complete(state: LiveState, ev: Event, ts: float, cfg: ReducerConfig) -> tuple[LiveState, Effects]:
    # In some Asterisk paths AgentComplete has no channel fields (pitfall 3): fall back to Queue + Interface.
    iface = _s(ev, "Interface")
    qname = _s(ev, "Queue")
    call = _call_of_channel(state, _s(ev, "Uniqueid"), _s(ev, "Linkedid"))
    if call is None:
        call = next((c for c in state.calls.values()
                     if c.agent_interface == iface and c.queue == qname and c.answered is not None), None)
    if call is not None:
        changes: dict[str, Any] = {"talk_time": _f(ev, "TalkTime")}
        if _s(ev, "Reason") == "transfer":
            changes["transferred"] = True
            changes["agent_left"] = call.agent_left or ts
        state = _with_call(state, replace(call, **changes))
    a = state.agents.get(iface)
    if a is not None and a.call_id and (call is None or a.call_id == call.id):
        state = _agent_state(state, iface, ts, call_id="")
    return state, NONE


def on_blind_transfer(state: LiveState, ev: Event, ts: float, cfg: ReducerConfig) -> tuple[LiveState, Effects]:
    if _s(ev, "Result") != "Success":
        return state, NONE
    call = _call_of_channel(state, _s(ev, "TransfereeUniqueid"), _s(ev, "TransfereeLinkedid"))
    if call is None or call.transferred:
        return state, NONE
    return _with_call(state, replace(call, transferred=True)), NONE


def on_attended_transfer(state: LiveState, ev: Event, ts: float, cfg: ReducerConfig) -> tuple[LiveState, Effects]:
    if _s(ev, "Result") != "Success":
        return state, NONE
    call = _call_of_channel(state, _s(ev, "OrigTransfererUniqueid"), _s(ev, "OrigTransfererLinkedid"))
    if call is None or call.answered is None:
        return state, NONE
    return _with_call(state, replace(call, transferred=True)), NONE


# ---------------------------------------------------------------- members and queues
def _member_from(ev: Event, qname: str, prev: Member | None, list_item: bool = False) -> Member | None:
    # The QueueMember list item names the interface Location and the member Name (pitfall 7).
    iface = _s(ev, "Location") if list_item else _s(ev, "Interface")
    if not iface:
        return None
    base = prev or Member(queue=qname, interface=iface)
    get = ev.get
    return replace(
        base,
        name=_s(ev, "Name" if list_item else "MemberName") or base.name,
        state_interface=_s(ev, "StateInterface") or base.state_interface,
        membership=_s(ev, "Membership") or base.membership,
        penalty=_i(ev, "Penalty", base.penalty) if get("Penalty") is not None else base.penalty,
        status=_i(ev, "Status", base.status) if get("Status") is not None else base.status,
        paused=(_s(ev, "Paused") in ("1", "true", "yes")) if get("Paused") is not None else base.paused,
        paused_reason=_s(ev, "PausedReason") if get("Paused") is not None else base.paused_reason,
        in_call=(_s(ev, "InCall") == "1") if get("InCall") is not None else base.in_call,
        calls_taken=_i(ev, "CallsTaken", base.calls_taken),
        last_call=_f(ev, "LastCall", base.last_call),
        login_time=_f(ev, "LoginTime", base.login_time),
    )


def _upsert_member(state: LiveState, ev: Event, ts: float, list_item: bool = False) -> LiveState:
    qname = _s(ev, "Queue")
    if not qname:
        return state
    q = _queue(state, qname)
    iface = _s(ev, "Location") if list_item else _s(ev, "Interface")
    m = _member_from(ev, qname, q.members.get(iface), list_item)
    if m is None:
        return state
    if q.members.get(iface) != m:
        state = _with_queue(state, replace(q, members=_put(q.members, iface, m)))
    elif qname not in state.queues:
        state = _with_queue(state, q)
    return _agent_state(state, iface, ts)


def on_member_change(state: LiveState, ev: Event, ts: float, cfg: ReducerConfig) -> tuple[LiveState, Effects]:
    return _upsert_member(state, ev, ts), NONE


def on_queue_member(state: LiveState, ev: Event, ts: float, cfg: ReducerConfig) -> tuple[LiveState, Effects]:
    return _upsert_member(state, ev, ts, list_item=True), NONE


def on_member_removed(state: LiveState, ev: Event, ts: float, cfg: ReducerConfig) -> tuple[LiveState, Effects]:
    qname, iface = _s(ev, "Queue"), _s(ev, "Interface")
    q = state.queues.get(qname)
    if q is None or iface not in q.members:
        return state, NONE
    state = _with_queue(state, replace(q, members=_drop(q.members, iface)))
    return _agent_state(state, iface, ts), NONE


def on_queue_params(state: LiveState, ev: Event, ts: float, cfg: ReducerConfig) -> tuple[LiveState, Effects]:
    qname = _s(ev, "Queue")
    if not qname:
        return state, NONE
    q = _queue(state, qname)
    strategy = _s(ev, "Strategy") or q.strategy
    if qname in state.queues and strategy == q.strategy:
        return state, NONE
    return _with_queue(state, replace(q, strategy=strategy)), NONE


def on_queue_entry(state: LiveState, ev: Event, ts: float, cfg: ReducerConfig) -> tuple[LiveState, Effects]:
    qname, uid = _s(ev, "Queue"), _s(ev, "Uniqueid")
    if not qname or not uid:
        return state, NONE
    call = _call_of_channel(state, uid)
    if call is None:
        call = Call(id=uid, started=ts - _f(ev, "Wait"), channels={uid: _s(ev, "Channel")})
        state = replace(state, channels=_put(state.channels, uid, Channel(uid, _s(ev, "Channel"), uid, call.started)))
    q = _queue(state, qname)
    old = q.waiting.get(call.id)
    joined = old.joined if old else (call.joined if call.joined is not None else ts - _f(ev, "Wait"))
    num = _known(_s(ev, "CallerIDNum")) or call.caller_num
    name = _known(_s(ev, "CallerIDName")) or call.caller_name
    w = Waiter(call.id, uid, num, name, joined, _i(ev, "Position", 1))
    if old == w:
        return state, NONE
    call = replace(call, queue=qname, joined=joined, caller_num=num, caller_name=name, caller_channel=uid,
                   left_queue=None)
    if joined >= state.day_end - 86400:
        q, call = _offer(q, call)
    waiting = _renumber(_put(_drop(q.waiting, call.id), call.id, w), call.id)
    return _with_call(_with_queue(state, replace(q, waiting=waiting)), call), NONE


def on_core_show_channel(state: LiveState, ev: Event, ts: float, cfg: ReducerConfig) -> tuple[LiveState, Effects]:
    uid = _s(ev, "Uniqueid")
    if not uid or uid in state.channels:
        return state, NONE
    return on_newchannel(state, ev, ts - _duration(_s(ev, "Duration")), cfg)


def _duration(text: str) -> float:
    try:
        h, m, s = (int(x) for x in text.split(":"))
        return h * 3600 + m * 60 + s
    except ValueError:
        return 0.0


# ---------------------------------------------------------------- originate, surveys
def on_originate_response(state: LiveState, ev: Event, ts: float, cfg: ReducerConfig) -> tuple[LiveState, Effects]:
    return state, (OriginateResult(_s(ev, "ActionID"), _s(ev, "Response") == "Success", _s(ev, "Reason"),
                                   _s(ev, "Channel"), _s(ev, "Uniqueid")),)


def on_user_event(state: LiveState, ev: Event, ts: float, cfg: ReducerConfig) -> tuple[LiveState, Effects]:
    if _s(ev, "UserEvent") != "SurveyResult":
        return state, NONE
    call = _call_of_channel(state, _s(ev, "Uniqueid"), _s(ev, "Linkedid"))
    return state, (SurveyResult(_s(ev, "Ticket"), _s(ev, "Digit"), call.id if call else _s(ev, "Linkedid"), ts),)


# ---------------------------------------------------------------- resync after (re)connect
def on_resync(state: LiveState, ev: Event, ts: float, cfg: ReducerConfig) -> tuple[LiveState, Effects]:
    """Rebuild from complete ``QueueStatus`` and ``CoreShowChannels`` lists (synthetic ``_Resync`` event).

    Anything the PBX no longer knows goes: calls without a live channel end (``lost=True``), waiting callers
    and members not listed vanish, agents whose call is gone become free. Counters of the day stay.
    """
    items_q: Iterable[Event] = ev.get("queue_status") or ()
    items_c: Iterable[Event] = ev.get("channels") or ()
    effects: list[Any] = []
    live = {_s(c, "Uniqueid"): c for c in items_c if _s(c, "Uniqueid")}
    # 1. channels and calls
    for call in list(state.calls.values()):
        keep = {u: n for u, n in call.channels.items() if u in live}
        if not keep and cfg.reconcile and call.queue:
            # Ended during the gap: queue_log will say how (``_QueueLog`` comes right after this resync).
            state = replace(state, calls=_drop(state.calls, call.id), unresolved=_put(state.unresolved, call.id, call),
                            channels={k: v for k, v in state.channels.items() if v.call_id != call.id})
        elif not keep:
            state, eff = _end_call(replace(state, channels={k: v for k, v in state.channels.items()
                                                            if v.call_id != call.id}),
                                   replace(call, channels={}), ts, cfg, lost=True)
            effects.extend(eff)
        elif len(keep) != len(call.channels):
            state = _with_call(state, replace(call, channels=keep))
    state = replace(state, channels={u: c for u, c in state.channels.items() if u in live})
    for c in live.values():
        state, _ = on_core_show_channel(state, c, ts, cfg)
    # 2. queues: members and waiting callers replaced by the lists
    members: dict[str, dict[str, Member]] = {}
    waiting: dict[str, list[Event]] = {}
    strategies: dict[str, str] = {}
    for item in items_q:
        name, qname = _s(item, "Event"), _s(item, "Queue")
        if not qname:
            continue
        members.setdefault(qname, {})
        waiting.setdefault(qname, [])
        if name == "QueueParams":
            strategies[qname] = _s(item, "Strategy")
        elif name == "QueueMember":
            prev = state.queues.get(qname, Queue(qname)).members.get(_s(item, "Location"))
            m = _member_from(item, qname, prev, list_item=True)
            if m is not None:
                members[qname][m.interface] = m
        elif name == "QueueEntry":
            waiting[qname].append(item)
    if members:
        old_ifaces = {i for q in state.queues.values() for i in q.members}
        queues = {}
        for qname in members:
            old = state.queues.get(qname) or Queue(qname)
            queues[qname] = replace(old, strategy=strategies.get(qname, old.strategy), members=members[qname],
                                    waiting={})
        state = replace(state, queues=queues)
        for qname, entries in waiting.items():
            for item in entries:
                state, _ = on_queue_entry(state, item, ts, cfg)
        for call in state.calls.values():
            if call.queue and call.answered is None and call.left_queue is None and \
                    call.id not in state.queues.get(call.queue, Queue("")).waiting:
                state = _with_call(state, replace(call, left_queue=ts))
        ifaces = old_ifaces | {i for q in state.queues.values() for i in q.members} | set(state.agents)
        for iface in ifaces:
            a = state.agents.get(iface)
            cid = a.call_id if a and a.call_id in state.calls and \
                state.calls[a.call_id].agent_channel in state.channels else ""
            state = _agent_state(state, iface, ts, call_id=cid, ringing="")
    return state, tuple(effects)


# ---------------------------------------------------------------- queue_log reconciliation after a gap
def on_queue_log(state: LiveState, ev: Event, ts: float, cfg: ReducerConfig) -> tuple[LiveState, Effects]:
    """Fold what queue_log recorded (synthetic ``_QueueLog`` event, ``entries``: parsed lines read since the
    last read) into the calls AMI missed: calls that ended in a link gap, joined and ended inside it, or were
    answered during it and are still talking. A call already recorded (``done``) is never recorded or counted
    again, whichever source saw it first. Calls lost at the resync that queue_log does not know end as before
    (a guessed outcome, ``lost``)."""
    entries: Iterable[queue_log.Entry] = ev.get("entries") or ()
    logged = queue_log.calls(e for e in entries if isinstance(e, queue_log.Entry))
    effects: list[Any] = []
    names = {m.name: m.interface for q in state.queues.values() for m in q.members.values() if m.name}
    for lc in sorted(logged.values(), key=lambda c: (c.ended or 0.0, c.call_id)):
        if _is_done(state, lc.call_id):
            continue
        live = state.calls.get(lc.call_id)
        if not lc.outcome:
            if live is not None and lc.answered is not None and live.answered is None:
                # Answered in the gap and still talking: the resync only saw bare channels (and maybe a waiter).
                iface = names.get(lc.agent, lc.agent)
                leg = lc.agent_leg if lc.agent_leg in live.channels else ""
                call = replace(live, queue=live.queue or lc.queue, joined=live.joined or lc.joined,
                               answered=lc.answered, left_queue=lc.answered, agent_interface=iface,
                               agent_name=lc.agent, agent_channel=leg, caller_channel=live.caller_channel or lc.call_id,
                               caller_num=live.caller_num or lc.caller_num, ringing="")
                q = _remove_waiter(_queue(state, call.queue), call.id)
                joined = call.joined
                if joined is not None and state.day_end - 86400 <= joined < state.day_end:
                    q, call = _offer(q, call)
                    w = lc.wait if lc.wait is not None else max(0.0, lc.answered - joined)
                    s = q.stats
                    q = replace(q, stats=replace(
                        s, answered=s.answered + 1, answered_15=s.answered_15 + (w <= 15),
                        answered_30=s.answered_30 + (w <= 30), wait_answered_total=s.wait_answered_total + w,
                        longest_wait=max(s.longest_wait, w)))
                state = _with_queue(_with_call(state, call), q)
                if any(iface in qq.members for qq in state.queues.values()):
                    state = _agent_state(state, iface, ts, call_id=call.id, ringing="")
            continue
        if live is not None:
            continue  # AMI still follows this call (its end is newer than the resync): AMI records it
        state, eff = _logged_call_ended(state, lc, state.unresolved.get(lc.call_id), names, cfg)
        effects.extend(eff)
    for call in list(state.unresolved.values()):
        state = replace(state, unresolved=_drop(state.unresolved, call.id))
        state, eff = _end_call(state, replace(call, channels={}), ts, cfg, lost=True)
        effects.extend(eff)
    return state, tuple(effects)


def _logged_call_ended(state: LiveState, lc: queue_log.LoggedCall, seen: Call | None, names: Mapping[str, str],
                       cfg: ReducerConfig) -> tuple[LiveState, Effects]:
    ended = lc.ended or state.now
    joined = lc.joined if lc.joined is not None else (seen.joined if seen else None)
    state = _mark_done(replace(state, unresolved=_drop(state.unresolved, lc.call_id)), lc.call_id, ended)
    effects: list[Any] = []
    answered = lc.outcome in ("answered", "transferred")
    wait = lc.wait if lc.wait is not None else (None if joined is None else max(0.0, ended - joined))
    talk = lc.talk if answered else None
    iface = names.get(lc.agent, lc.agent) if answered else ""
    caller_num = (seen.caller_num if seen else "") or lc.caller_num
    caller_name = seen.caller_name if seen else ""
    # Today's counters: only for a call that joined today; ``offered`` only if AMI never saw it join.
    day_start = state.day_end - 86400
    if joined is not None and day_start <= joined < state.day_end:
        q = _queue(state, lc.queue)
        s = q.stats
        counted_offer = seen is not None and seen.counted
        w = wait or 0.0
        s = replace(s, offered=s.offered + (not counted_offer))
        if answered:
            s = replace(s, answered=s.answered + 1, answered_15=s.answered_15 + (w <= 15),
                        answered_30=s.answered_30 + (w <= 30), wait_answered_total=s.wait_answered_total + w,
                        longest_wait=max(s.longest_wait, w), completed=s.completed + 1,
                        talk_total=s.talk_total + (talk or 0.0))
        elif seen is not None and seen.abandoned:
            if lc.outcome == "timed_out" and not seen.timed_out:  # AMI counted it abandoned before the gap
                s = replace(s, abandoned=max(0, s.abandoned - 1), timed_out=s.timed_out + 1)
        elif lc.outcome == "timed_out":
            s = replace(s, timed_out=s.timed_out + 1, longest_wait=max(s.longest_wait, w))
        else:
            s = replace(s, abandoned=s.abandoned + 1, longest_wait=max(s.longest_wait, w))
        q, alert = _check_alert(replace(q, stats=s, waiting=_drop(q.waiting, lc.call_id)), ended, cfg)
        effects.extend(alert)
        state = _with_queue(state, q)
    if lc.outcome in ("abandoned", "timed_out"):
        effects.append(CallMissed(lc.call_id, caller_num, caller_name, lc.queue, joined or ended, ended, wait or 0.0,
                                  lc.outcome))
    recording = seen.recording if seen is not None and answered else ""
    effects.append(CallEnded(lc.call_id, caller_num, lc.queue, joined, lc.answered if answered else None, ended,
                             wait, talk, iface, lc.agent if answered else "", lc.outcome, recording,
                             lost=False, source="queue_log"))
    if recording:
        effects.append(RecordingReady(lc.call_id, recording, caller_num, ended))
    return state, tuple(effects)


# ---------------------------------------------------------------- today's counters after a restart
def on_day_calls(state: LiveState, ev: Event, ts: float, cfg: ReducerConfig) -> tuple[LiveState, Effects]:
    """Rebuild today's counters from the stored call records (synthetic ``_DayCalls`` event at start, ``calls``:
    dicts with call_id, queue, joined, ended, wait, outcome as in telephony_calls), so the wallboard and the
    report count the same calls after a restart. A call already counted (``done``) is skipped."""
    day_start, day_end = state.day_end - 86400, state.day_end
    for row in ev.get("calls") or ():
        cid, qname, outcome = str(row.get("call_id") or ""), str(row.get("queue") or ""), row.get("outcome")
        joined, ended = row.get("joined"), row.get("ended")
        when = joined if isinstance(joined, (int, float)) else ended
        if not cid or not qname or _is_done(state, cid) or not isinstance(when, (int, float)) \
                or not (day_start <= when < day_end):
            continue
        q = _queue(state, qname)
        s = q.stats
        w = float(row.get("wait") or 0.0)
        s = replace(s, offered=s.offered + 1)
        if outcome in ("answered", "transferred"):
            talk = float(row.get("talk") or 0.0)
            s = replace(s, answered=s.answered + 1, answered_15=s.answered_15 + (w <= 15),
                        answered_30=s.answered_30 + (w <= 30), wait_answered_total=s.wait_answered_total + w,
                        longest_wait=max(s.longest_wait, w), completed=s.completed + 1, talk_total=s.talk_total + talk)
        elif outcome == "abandoned":
            s = replace(s, abandoned=s.abandoned + 1, longest_wait=max(s.longest_wait, w))
        else:
            s = replace(s, timed_out=s.timed_out + 1, longest_wait=max(s.longest_wait, w))
        q, _ = _check_alert(replace(q, stats=s), ts, cfg)
        state = _mark_done(_with_queue(state, q), cid, float(ended) if isinstance(ended, (int, float)) else ts)
    return state, NONE


HANDLERS: dict[str, Handler] = {
    "Newchannel": on_newchannel,
    "Hangup": on_hangup,
    "VarSet": on_varset,
    "NewCallerid": on_new_callerid,
    "QueueCallerJoin": on_queue_caller_join,
    "QueueCallerLeave": on_queue_caller_leave,
    "QueueCallerAbandon": on_queue_caller_abandon,
    "AgentCalled": on_agent_called,
    "AgentRingNoAnswer": on_agent_ring_no_answer,
    "AgentConnect": on_agent_connect,
    "AgentComplete": on_agent_complete,
    "AgentDump": on_agent_ring_no_answer,
    "BlindTransfer": on_blind_transfer,
    "AttendedTransfer": on_attended_transfer,
    "QueueMemberAdded": on_member_change,
    "QueueMemberStatus": on_member_change,
    "QueueMemberPause": on_member_change,
    "QueueMemberPenalty": on_member_change,
    "QueueMemberRinginuse": on_member_change,
    "QueueMemberRemoved": on_member_removed,
    "QueueMember": on_queue_member,
    "QueueParams": on_queue_params,
    "QueueEntry": on_queue_entry,
    "CoreShowChannel": on_core_show_channel,
    "OriginateResponse": on_originate_response,
    "UserEvent": on_user_event,
    "_Resync": on_resync,
    "_QueueLog": on_queue_log,
    "_DayCalls": on_day_calls,
}


def apply(state: LiveState, event: Event, config: ReducerConfig = DEFAULT_CONFIG) -> tuple[LiveState, Effects]:
    """Fold one AMI event (a dict mirroring the wire) into the state; returns the new state and effects."""
    name = event.get("Event")
    handler = HANDLERS.get(name) if isinstance(name, str) else None
    ts = event_time(state, event)
    if ts is None:
        # A malformed Timestamp (garbled line, a PBX clock gone mad) would roll the day and reset the counters:
        # reject that one event and keep the state.
        return state, NONE
    if ts > state.now:
        state = replace(state, now=ts)
        if ts >= state.day_end:
            state = _roll_day(state, ts, config)
    if handler is None:
        return state, NONE
    return handler(state, event, ts, config)


def fold(events: Iterable[Event], state: LiveState | None = None, config: ReducerConfig = DEFAULT_CONFIG
         ) -> tuple[LiveState, list[Any]]:
    """Apply many events; returns the final state and every effect in order (tests, replay)."""
    state = state or LiveState()
    out: list[Any] = []
    for ev in events:
        state, eff = apply(state, ev, config)
        out.extend(eff)
    return state, out
