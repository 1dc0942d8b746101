"""Today's wallboard counters survive a restart: rebuilt from telephony_calls, equal to the report."""
from __future__ import annotations

from zoneinfo import ZoneInfo

from fake_ami import requires_captures
from fake_ami import until as _until

from telephony.store import CallStore

pytestmark = requires_captures




async def test_restart_keeps_todays_counters(bridge_factory, sessions):
    first = await bridge_factory("burst", sessions=sessions)
    await first.at(len(first.fake.cap.msgs) - 2)
    await _until(lambda: len(first.of("CallEnded")) == 32, "burst not finished")
    before = first.svc.state.queues["12345"].stats
    assert (before.offered, before.answered, before.abandoned) == (32, 13, 19)
    await first.svc.stop()

    # The server restarts (same PBX day): nothing streamed yet, the counters come from the stored calls.
    again = await bridge_factory("burst", sessions=sessions)
    await again.sync()
    after = again.svc.state.queues["12345"].stats
    assert (after.offered, after.answered, after.abandoned, after.timed_out, after.answered_15) == \
        (before.offered, before.answered, before.abandoned, before.timed_out, before.answered_15)
    assert abs(after.wait_answered_total - before.wait_answered_total) < 0.01
    tz = ZoneInfo(again.svc.settings.server.timezone)
    day = again.fake.clock().astimezone(tz).date()
    [row] = await CallStore(sessions, again.fake.clock).report(day, day, tz, by=("queue",))
    assert (row["offered"], row["answered"], row["abandoned"]) == (after.offered, after.answered, after.abandoned)
    assert row["answered_15s"] == after.answered_15


async def test_a_reducer_failure_resets_the_live_state_but_not_the_day(bridge_factory, sessions, monkeypatch):
    from telephony import reducer

    b = await bridge_factory("burst", sessions=sessions)
    await b.at(len(b.fake.cap.msgs) - 2)
    await _until(lambda: len(b.of("CallEnded")) == 32, "burst not finished")
    before = b.svc.state.queues["12345"].stats

    def boom(*args):
        raise RuntimeError("a bug in a handler")

    monkeypatch.setitem(reducer.HANDLERS, "_Boom", boom)  # a synthetic event: no AMI event makes a handler fail
    b.svc.submit({"Event": "_Boom"})
    await b.svc.drain()  # folded: the state is reset now (the old counters would satisfy the wait below at once)
    await _until(lambda: b.svc.state.queues.get("12345") is not None
                 and b.svc.state.queues["12345"].stats.offered == 32, "counters not rebuilt after the reset")
    await b.sync()
    after = b.svc.state.queues["12345"].stats
    assert (after.answered, after.abandoned) == (before.answered, before.abandoned)
