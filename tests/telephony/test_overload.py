"""Past saturation the bridge keeps its AMI session: a Pong that waits behind unread events is not a dead link."""
from __future__ import annotations

import time

from fake_ami import requires_captures, until

pytestmark = requires_captures


async def test_a_busy_loop_delaying_the_pong_does_not_reconnect(bridge_factory):
    # A slow step on every event (as when the loop is saturated) makes the bridge read the burst capture far
    # slower than the fake writes it, so each Pong sits behind a backlog of unread events for longer than
    # ping_timeout. The events keep arriving: the link is alive and must not be torn down.
    b = await bridge_factory("burst", ami={"ping_interval": 0.2, "ping_timeout": 0.3})
    await b.ready()

    def busy(event: dict) -> None:
        time.sleep(0.0006)

    b.svc.raw_listeners.append(busy)
    before_logoff = b.fake.cap.index(lambda m: m.get("Response") == "Goodbye") - 1
    pings_before = len([a for a in b.fake.actions if a.get("Action") == "Ping"])
    b.fake.hold_at(before_logoff)
    b.fake.go()
    await until(b.fake.paused.is_set, "the fake streamed the capture up to its Logoff", timeout=120)
    await b.sync(timeout=60)  # the bridge read and folded everything (its own Ping came back behind it)
    pings = [a for a in b.fake.actions if a.get("Action") == "Ping"]
    assert len(pings) - pings_before >= 3, "the pinger did not run while the bridge was busy"
    conn = b.svc.connection
    assert b.fake.logins == 1 and conn.reconnects == 0 and conn.sessions == 1
    # every caller of the burst was counted once; nothing was reset by a resync
    stats = b.svc.full_view()["queues"]["12345"]["stats"]
    assert stats["offered"] == 32
