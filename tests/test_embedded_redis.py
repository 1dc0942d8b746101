"""The private redis-server (no redis.url) is supervised: killed under a running server, it comes back, /health
recovers and the live view reaches WebSocket clients again."""
from __future__ import annotations

import asyncio
import os
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis.exceptions

import server
from telephony.service import SERVICE
from tickets.accounts import http as accounts_http


async def _until(pred: Any, what: str, timeout: float = 30.0) -> None:
    """Poll an async or plain predicate; ``timeout`` only bounds a failure."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        ok = pred()
        if asyncio.iscoroutine(ok):
            ok = await ok
        if ok:
            return
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.05)


async def _queue_seen(ws: Any, name: str, timeout: float = 30.0) -> None:
    """Read the socket until the live view it describes (snapshots and patches) has queue ``name``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        frame = await ws.receive_json(timeout=max(0.05, deadline - asyncio.get_running_loop().time()))
        for msg in frame["messages"] if frame["type"] == "batch" else [frame]:  # a batch: several, in order
            if msg["type"] == "snapshot" and name in msg["data"]["queues"]:
                return
            if msg["type"] == "patch" and any(p.get("kind") == "queue" and p.get("key") == name
                                              for p in msg["patches"]):
                return


async def test_killed_private_redis_is_restarted_and_the_live_view_comes_back(aiohttp_client, settings_factory,
                                                                               tmp_path: Path) -> None:
    moment = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    settings = settings_factory()  # no redis.url: the server starts its own redis-server
    app = server.create_app(settings, lambda: moment, bootstrap_admin=False)
    client = await aiohttp_client(app)
    embedded = app[server.EMBEDDED_REDIS]
    svc = app[SERVICE]
    users = app[accounts_http.USERS]
    await users.create_user("banzhang", "password-123", "supervisor", display_name="班长")
    r = await client.post("/api/v1/auth/login", json={"username": "banzhang", "password": "password-123",
                                                        "kind": "api"})
    headers = {"Authorization": f"Bearer {(await r.json())['token']}"}
    assert (await (await client.get("/health")).json())["checks"]["redis"] == "ok"

    ws = await client.ws_connect("/ws/telephony", headers=headers)
    assert (await ws.receive_json(timeout=60))["type"] == "snapshot"
    svc.submit({"Event": "QueueParams", "Queue": "12345", "Strategy": "rrmemory"})
    await _queue_seen(ws, "12345")

    first_pid = embedded.pid
    assert first_pid is not None
    os.kill(first_pid, signal.SIGKILL)
    await _until(lambda: embedded.pid not in (None, first_pid) and embedded.process.poll() is None,
                 "the redis-server is started again")

    async def healthy() -> bool:
        resp = await client.get("/health")
        body = await resp.json()
        return resp.status == 200 and body["checks"]["redis"] == "ok"

    await _until(healthy, "/health recovers after the restart")
    # The restarted server was empty: the view is published again (snapshot in Redis, sockets get it) ...
    async def snapshot_back() -> bool:
        try:
            return bool(await svc.hub.redis.exists(svc.hub.k_snapshot))
        except redis.exceptions.ConnectionError:
            # a pooled connection still open to the killed server fails once, then is replaced; /health
            # above may have been answered on another connection of the pool
            return False

    await _until(snapshot_back, "the live snapshot is in Redis again")
    # ... and changes made afterwards reach the socket opened before the kill.
    svc.submit({"Event": "QueueParams", "Queue": "12346", "Strategy": "linear"})
    await _queue_seen(ws, "12346")
    # A new socket gets the whole view, both queues.
    ws2 = await client.ws_connect("/ws/telephony", headers=headers)
    first = await ws2.receive_json(timeout=60)
    assert first["type"] == "snapshot" and {"12345", "12346"} <= set(first["data"]["queues"])
    # Logins still work (the throttle and revocation mark live in the restarted Redis).
    r = await client.post("/api/v1/auth/login", json={"username": "banzhang", "password": "password-123",
                                                        "kind": "api"})
    assert r.status == 200
    await ws.close()
    await ws2.close()


async def test_supervisor_retries_a_failing_start_then_recovers(tmp_path: Path, caplog: Any) -> None:
    """A start that fails is retried (with growing pauses) until it works; cancelling stops the supervisor."""
    from embedded_redis import EmbeddedRedis

    redis = EmbeddedRedis(tmp_path / "r")
    await redis.astart()
    task = None
    try:
        redis.binary = "no-such-redis-server"  # every restart now fails
        os.kill(redis.pid, signal.SIGKILL)  # type: ignore[arg-type]
        task = asyncio.get_running_loop().create_task(redis.supervise(check_every=0.01, backoff_min=0.01,
                                                                      backoff_max=0.05))
        failures = lambda: [r for r in caplog.records if "restarting the private redis-server failed" in r.message]
        await _until(lambda: len(failures()) >= 3, "failed starts are retried")
        pauses = [float(r.message.split("next try in ")[1].split(" s")[0]) for r in failures()]
        assert pauses == sorted(pauses) and max(pauses) <= 0.05
        # a start that fails in Popen itself (a file that cannot be executed; as a fork refused on a loaded
        # machine) is retried as well, rather than ending the supervisor
        broken = tmp_path / "broken-redis-server"
        broken.write_bytes(b"\x7fELF not really")
        broken.chmod(0o755)
        seen = len(failures())
        redis.binary = str(broken)
        await _until(lambda: len(failures()) >= seen + 2, "starts failing in Popen are retried")
        assert "Exec format error" in failures()[-1].message
        redis.binary = "redis-server"
        await _until(lambda: redis.process.poll() is None, "restarted once the binary is back")
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            assert task.cancelled()
        await redis.astop()
