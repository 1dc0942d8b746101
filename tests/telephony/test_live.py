"""Several server processes share the live view through a real redis-server (pub/sub plus a snapshot)."""
from __future__ import annotations

import asyncio
import json

from fake_ami import Capture, FakeAmi, requires_captures
from redis.asyncio import Redis

from telephony.state import snapshot

pytestmark = requires_captures


async def _until(pred, timeout: float = 60.0) -> None:
    """Poll until ``pred()`` (a coroutine function's result is awaited); ``timeout`` only bounds a failure."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        done = pred()
        if asyncio.iscoroutine(done):
            done = await done
        if done:
            return
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


class Inbox:
    """A live-hub client that keeps every frame it is sent (batches unpacked by ``messages``)."""

    def __init__(self) -> None:
        self.frames: list[dict] = []

    def send(self, payload: bytes) -> None:
        self.frames.append(json.loads(payload))

    def buffered(self) -> int:
        return 0

    def close(self) -> None:
        pass

    def messages(self) -> list[dict]:
        out = []
        for f in self.frames:
            out.extend(f["messages"] if f["type"] == "batch" else [f])
        return out


def _count_lead_tries(svc) -> list[bool]:
    """Record every answer the leader lock gives ``svc`` (so a test waits for tries, not for a duration)."""
    answers: list[bool] = []
    try_lead = svc.hub.try_lead

    async def recorded(ttl: float) -> bool:
        answers.append(await try_lead(ttl))
        return answers[-1]

    svc.hub.try_lead = recorded
    return answers


async def test_one_leader_feeds_every_process_and_a_follower_takes_over(settings_factory, redis_url):
    from telephony.service import TelephonyService

    cap = Capture.load("status_queries")
    fake = FakeAmi(cap)
    fake.hold_start()
    port = await fake.start()
    settings = settings_factory(ami={"enabled": True, "port": port, "secret": "s", "reconnect_min": 0.05,
                                     "reconnect_max": 0.3, "action_timeout": 30})
    r1, r2 = Redis.from_url(redis_url), Redis.from_url(redis_url)
    # a lock that outlives a busy machine's hiccups (renewed every 2 s, lost after 6 s without a renewal); a stopped
    # leader releases it, so takeover stays quick
    a = TelephonyService(settings, fake.clock, redis=r1, leader_ttl=6.0)
    b = TelephonyService(settings, fake.clock, redis=r2, leader_ttl=6.0)
    try:
        await a.start()
        await _until(lambda: a.connection is not None and a.connection._ready.is_set())
        b_tries = _count_lead_tries(b)
        await b.start()
        await _until(lambda: len(b_tries) >= 2)  # b asked for the lock twice and was refused both times
        assert b_tries[:2] == [False, False]
        assert a.leading and not b.leading and fake.logins == 1  # one AMI session for all processes
        client_b = Inbox()
        b.hub.attach(client_b)
        assert client_b.messages()[0]["type"] == "snapshot"
        fake.hold_at(cap.index(lambda m: m.get("Event") == "QueueStatusComplete"
                               and m.get("ActionID") == "status_queries-008"))
        fake.go()
        await asyncio.wait_for(fake.paused.wait(), 60)
        await a.connection.send({"Action": "Ping"}, timeout=60)
        await a.drain()
        want = snapshot(a.state)
        await _until(lambda: {k: b.hub.view.get(k) for k in want} == want)
        waiting = b.hub.view["queues"]["12345"]["waiting"]
        assert [w["position"] for w in waiting] == [1, 2]
        assert b.hub.view["ami"]["connected"] is True
        # the follower's WebSocket clients got the changes as patches
        assert "patch" in {m["type"] for m in client_b.messages()}
        # a third process joining late reads the snapshot from Redis, then follows
        r3 = Redis.from_url(redis_url)
        c = TelephonyService(settings, fake.clock, redis=r3, leader_ttl=6.0)

        async def snapshot_is_current() -> bool:  # the leader's snapshot writer runs every 0.5 s
            raw = await r3.get(a.hub.k_snapshot)
            return raw is not None and json.loads(raw)["seq"] == a.hub.pub_seq

        await _until(snapshot_is_current)
        await c.start()
        await _until(lambda: c.hub.view["queues"].get("12345", {}).get("waiting") == waiting)
        assert c.health()["ok"] is True  # connected through the leader
        await c.stop()
        await r3.aclose()
        # the leader dies: the follower takes the lock, connects and resyncs
        await a.stop()
        await _until(lambda: b.leading and b.connection is not None and b.connection._ready.is_set())
        assert fake.logins == 2 and b.health()["ok"] is True
    finally:
        await a.stop()
        await b.stop()
        await r1.aclose()
        await r2.aclose()
        await fake.close()


async def test_replay_without_asterisk_drives_the_view(settings_factory, redis_url):
    from fake_ami import CAPTURES

    from telephony.service import TelephonyService

    settings = settings_factory()  # ami.enabled = false
    r = Redis.from_url(redis_url)
    started = Capture.load("abandoned_call").time_at(0)
    svc = TelephonyService(settings, lambda: started, redis=r)
    try:
        await svc.start()
        assert svc.health() == {"ok": True, "enabled": False, "connected": False, "since": None,
                                "last_error": "", "reconnects": 0}
        n = await svc.replay_file(CAPTURES / "abandoned_call.ami", speed=0, until=5)
        await svc.drain()
        assert n > 20
        await _until(lambda: len(svc.hub.view["queues"].get("12345", {}).get("waiting", [])) == 1)
        assert svc.hub.view["ami"]["enabled"] is False
    finally:
        await svc.stop()
        await r.aclose()
