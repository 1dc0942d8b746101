"""The pure reducer on whole captures: invariants at every step, determinism, totality, day roll-over."""
from __future__ import annotations

import ast
import random
from pathlib import Path

import pytest
from fake_ami import CAPTURES, requires_captures

from telephony.reducer import apply, fold
from telephony.replay import read_events
from telephony.state import LiveState, diff, snapshot

ROOT = Path(__file__).resolve().parents[2]


def events(name: str) -> list[dict]:
    return [e for _, e in read_events(CAPTURES / f"{name}.ami")]


def check_invariants(s: LiveState) -> None:
    for q in s.queues.values():
        pos = sorted(w.position for w in q.waiting.values())
        assert pos == list(range(1, len(pos) + 1)), (q.name, pos)
        assert all(w.joined <= s.now + 1e-6 for w in q.waiting.values())
        assert all(w.call_id in s.calls for w in q.waiting.values())
        st = q.stats
        assert st.answered_15 <= st.answered_30 <= st.answered <= st.offered
        assert st.finished <= st.offered
    for a in s.agents.values():
        assert not a.call_id or a.call_id in s.calls
        assert a.since <= s.now + 1e-6
    for c in s.calls.values():
        assert all(s.channels[u].call_id == c.id for u in c.channels)
        assert c.answered is None or c.joined is None or c.answered >= c.joined
    assert sum(len(c.channels) for c in s.calls.values()) == len(s.channels)


@requires_captures
@pytest.mark.parametrize("name", ["burst", "status_queries", "transfer", "blind_transfer", "ring_no_answer"])
def test_invariants_hold_at_every_event(name: str) -> None:
    s = LiveState()
    for e in events(name):
        s, effects = apply(s, e)
        check_invariants(s)
        for eff in effects:
            for field in ("wait", "talk"):
                v = getattr(eff, field, None)
                assert v is None or v >= 0


@requires_captures
def test_same_capture_same_state_and_jsonl_equals_ami() -> None:
    a, ea = fold(events("burst"))
    b, eb = fold(events("burst"))
    c, ec = fold([e for _, e in read_events(CAPTURES / "burst.jsonl")])
    assert a == b == c and ea == eb == ec
    assert snapshot(a) == snapshot(c)


@requires_captures
def test_diff_patches_rebuild_the_snapshot() -> None:
    from telephony.live import apply_patches, empty_view

    view = empty_view()
    s = LiveState()
    for i, e in enumerate(events("burst")):
        new, _ = apply(s, e)
        apply_patches(view, diff(s, new))
        s = new
        if i % 400 == 0:
            snap = snapshot(s)
            assert {k: view[k] for k in snap} == snap
    snap = snapshot(s)
    assert {k: view[k] for k in snap} == snap


@requires_captures
def test_handlers_are_total_on_shuffled_and_truncated_streams() -> None:
    evs = events("transfer") + events("burst")[:800]
    rng = random.Random(7)
    for _ in range(5):
        rng.shuffle(evs)
        s, _ = fold(evs)  # must not raise
        check_invariants(s)
    s0, _ = fold(events("answered_call")[:40])
    for name in ["Hangup", "AgentComplete", "QueueCallerLeave", "QueueCallerAbandon", "AgentConnect",
                 "QueueMemberRemoved", "BlindTransfer", "VarSet", "AgentRingNoAnswer"]:
        s1, eff = apply(s0, {"Event": name, "Uniqueid": "999.9", "Queue": "nope", "Interface": "PJSIP/x",
                             "Timestamp": str(s0.now), "Variable": "MIXMONITOR_FILENAME", "Result": "Success"})
        assert snapshot(s1) == snapshot(s0) and eff == ()
    s2, _ = apply(s0, {"Event": "Hangup"})  # no fields at all
    assert s2 == s0


def test_counters_reset_at_local_midnight_and_alert_recovers() -> None:
    from telephony.reducer import ReducerConfig

    cfg = ReducerConfig(alert_min_calls=2, answer_rate_target=0.5)
    from datetime import datetime
    from zoneinfo import ZoneInfo

    day1 = datetime(2026, 11, 22, 23, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
    s = LiveState()
    n = 0

    def call(s, t, answered):
        nonlocal n
        n += 1
        u = f"{t:.0f}.{n}"
        evs = [{"Event": "Newchannel", "Uniqueid": u, "Linkedid": u, "Channel": f"PJSIP/t-{n}", "Timestamp": str(t)},
               {"Event": "QueueCallerJoin", "Uniqueid": u, "Queue": "12345", "Position": "1", "CallerIDNum": "1",
                "Timestamp": str(t)}]
        if answered:
            evs.append({"Event": "AgentConnect", "Uniqueid": u, "Queue": "12345", "Interface": "PJSIP/8001",
                        "MemberName": "a", "Timestamp": str(t + 3)})
        else:
            evs.append({"Event": "QueueCallerAbandon", "Uniqueid": u, "Queue": "12345", "Timestamp": str(t + 3)})
        evs.append({"Event": "Hangup", "Uniqueid": u, "Timestamp": str(t + 20)})
        return fold(evs, s, cfg)

    s, e1 = call(s, day1, False)
    s, e2 = call(s, day1 + 60, False)
    assert [x.active for x in e2 if type(x).__name__ == "QueueAlert"] == [True]
    s, e3 = call(s, day1 + 120, True)
    s, e4 = call(s, day1 + 180, True)
    assert [x.active for x in e4 if type(x).__name__ == "QueueAlert"] == [False]
    assert s.queues["12345"].stats.offered == 4
    s, _ = call(s, day1 + 3600 + 5, True)  # 00:00:05 the next day
    assert s.queues["12345"].stats.offered == 1 and s.day == "2026-11-23"


def test_pure_modules_import_no_io_and_read_no_clock() -> None:
    banned = {"asyncio", "aiohttp", "redis", "sqlalchemy", "panoramisk", "time", "socket"}
    for name in ["framing", "state", "reducer", "actions"]:
        tree = ast.parse((ROOT / "telephony" / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not {a.name.split(".")[0] for a in node.names} & banned, name
            elif isinstance(node, ast.ImportFrom) and node.module:
                assert node.module.split(".")[0] not in banned, name
            elif isinstance(node, ast.Attribute) and node.attr in ("now", "utcnow", "today", "time") and \
                    isinstance(node.value, ast.Name) and node.value.id in ("datetime", "date", "time"):
                pytest.fail(f"{name}.py reads the clock")


def test_queue_timeout_is_timed_out_and_goes_on_the_callback_list() -> None:
    # Queue(...,600) gives up: QueueCallerLeave without AgentConnect or Abandon; the dialplan plays a message
    # and hangs up. No capture has it, so the events are written out here.
    t = 1795400000.0
    evs = [
        {"Event": "Newchannel", "Uniqueid": "1.0", "Linkedid": "1.0", "Channel": "PJSIP/trunk-1",
         "CallerIDNum": "13700000000", "Timestamp": str(t)},
        {"Event": "QueueCallerJoin", "Uniqueid": "1.0", "Linkedid": "1.0", "Queue": "12345", "Position": "1",
         "Count": "1", "CallerIDNum": "13700000000", "Timestamp": str(t + 1)},
        {"Event": "QueueCallerLeave", "Uniqueid": "1.0", "Linkedid": "1.0", "Queue": "12345", "Position": "1",
         "Count": "0", "Timestamp": str(t + 601)},
        {"Event": "Hangup", "Uniqueid": "1.0", "Linkedid": "1.0", "Timestamp": str(t + 605)},
    ]
    s, effects = fold(evs)
    kinds = [type(e).__name__ for e in effects]
    assert kinds == ["CallMissed", "CallEnded"]
    missed, ended = effects
    assert (missed.reason, missed.caller_num, round(missed.wait)) == ("timed_out", "13700000000", 600)
    assert ended.outcome == "timed_out" and round(ended.wait) == 600 and ended.talk is None
    st = s.queues["12345"].stats
    assert (st.offered, st.timed_out, st.answered, st.answer_rate) == (1, 1, 0, 0.0)
    assert s.calls == {} and s.queues["12345"].waiting == {}


def test_a_malformed_timestamp_is_rejected_and_the_day_is_kept():
    # Real events of answered_call; one of them is replayed with its Timestamp garbled (copied, then changed).
    events = [e for _, e in read_events(CAPTURES / "answered_call.jsonl")]
    i = next(i for i, e in enumerate(events) if e.get("Event") == "AgentConnect")
    state, _ = fold(events[:i + 1])
    for bad in ("1e400", "nan", "inf", "17953830x8.5", "99999999999999", "-5"):
        garbled = {**events[i + 1], "Timestamp": bad}
        after, effects = apply(state, garbled)
        assert after is state and effects == ()
    final, effects = fold(events[i + 1:], state)
    assert final.queues["12345"].stats.answered == 1 and final.day == state.day
