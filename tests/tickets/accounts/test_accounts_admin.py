"""Admins disable accounts (their sessions and tokens stop at once, in every server process), reset passwords,
change roles and departments; every change is in the audit log, which the API only reads."""
from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import async_sessionmaker

import server
from tickets.accounts.service import UserStore

from ..conftest import PASSWORD, Center


async def test_a_disabled_account_stops_at_once_and_the_change_is_audited(center: Center) -> None:
    admin, water = center.admin, center.water
    water_id = water.user["id"]
    assert (await water.get("/api/v1/me"))["username"] == "water"  # token now in the server's cache
    user = await admin.call("PATCH", f"/api/v1/users/{water_id}", {"active": False})
    assert user["active"] is False
    refused = await water.get("/api/v1/me", expect=401)
    assert refused["error"] == "login_required"
    resp = await center.client.post("/api/v1/auth/login", json={"username": "water", "password": PASSWORD})
    assert resp.status == 401
    log = await admin.get(f"/api/v1/audit?category=account&subject=user:{water_id}")
    entry = log["items"][0]
    assert (entry["action"], entry["actor_username"], entry["actor_role"]) == ("disable", "admin", "admin")
    assert entry["detail"]["tokens_revoked"] >= 1 and entry["address"]
    listed = {u["username"]: u for u in await admin.get("/api/v1/users")}
    assert listed["water"]["active"] is False and listed["env"]["active"] is True

    await admin.call("PATCH", f"/api/v1/users/{water_id}", {"active": True})
    again = await center.login("water", PASSWORD)
    assert (await again.get("/api/v1/me"))["username"] == "water"
    actions = [e["action"] for e in (await admin.get(f"/api/v1/audit?subject=user:{water_id}"))["items"]]
    assert actions[:2] == ["enable", "disable"] and "create_user" in actions


async def test_reset_password_ends_old_sessions_and_returns_a_generated_password_once(center: Center) -> None:
    admin, agent = center.admin, center.agent
    agent_id = agent.user["id"]
    body = await admin.post(f"/api/v1/users/{agent_id}/password", {})
    generated = body["password"]
    assert len(generated) >= 8 and body["user"]["username"] == "agent"
    await agent.get("/api/v1/me", expect=401)
    old = await center.client.post("/api/v1/auth/login", json={"username": "agent", "password": PASSWORD})
    assert old.status == 401
    fresh = await center.login("agent", generated)
    chosen = await admin.post(f"/api/v1/users/{agent_id}/password", {"password": "新密码-new-456"})
    assert "password" not in chosen  # an admin's own choice is not echoed
    await fresh.get("/api/v1/me", expect=401)
    await center.login("agent", "新密码-new-456")
    short = await admin.post(f"/api/v1/users/{agent_id}/password", {"password": "short"}, expect=400)
    assert short["field"] == "password"
    entries = (await admin.get(f"/api/v1/audit?action=reset_password&subject=user:{agent_id}"))["items"]
    assert [e["detail"]["generated"] for e in entries] == [False, True]
    assert all(generated not in str(e) for e in entries)  # the log never holds a password
    await center.super.post(f"/api/v1/users/{agent_id}/password", {}, expect=403)


async def test_role_and_department_changes_take_effect_at_once_and_are_audited(center: Center) -> None:
    admin, water = center.admin, center.water
    water_id = water.user["id"]
    moved = await admin.call("PATCH", f"/api/v1/users/{water_id}", {"department": "sthj"})
    assert moved["department_code"] == "sthj"
    assert (await water.get("/api/v1/me"))["department_code"] == "sthj"  # no stale cached principal
    agent = await admin.call("PATCH", f"/api/v1/users/{water_id}", {"role": "agent"})
    assert (agent["role"], agent["department_id"]) == ("agent", None)
    assert (await water.get("/api/v1/me"))["role"] == "agent"
    bad = await admin.call("PATCH", f"/api/v1/users/{water_id}", {"role": "department"}, expect=400)
    assert bad["field"] == "department"
    await admin.call("PATCH", f"/api/v1/users/{water_id}", {"department": "swuj"}, expect=400)  # not a department
    await admin.call("PATCH", f"/api/v1/users/{water_id}", {"role": "department", "department": "nope"}, expect=400)
    await admin.call("PATCH", "/api/v1/users/999999", {"active": False}, expect=404)
    await center.super.call("PATCH", f"/api/v1/users/{water_id}", {"active": False}, expect=403)
    entries = (await admin.get(f"/api/v1/audit?category=account&subject=user:{water_id}"))["items"]
    details = [(e["action"], e["detail"].get("from"), e["detail"].get("to")) for e in entries[:3]]
    assert details == [("change_department", "sthj", None), ("change_role", "department", "agent"),
                       ("change_department", "swuj", "sthj")]


async def test_the_last_admin_can_be_neither_disabled_nor_demoted(center: Center) -> None:
    admin = center.admin
    me = admin.user["id"]
    refused = await admin.call("PATCH", f"/api/v1/users/{me}", {"active": False}, expect=409)
    assert refused["error"] == "last_admin"
    await admin.call("PATCH", f"/api/v1/users/{me}", {"role": "supervisor"}, expect=409)
    await admin.post("/api/v1/users", {"username": "admin2", "password": PASSWORD, "role": "admin"}, expect=201)
    await admin.call("PATCH", f"/api/v1/users/{me}", {"role": "supervisor"})
    assert (await admin.get("/api/v1/me"))["role"] == "supervisor"


async def test_the_audit_log_is_for_admins_and_read_only(center: Center) -> None:
    admin = center.admin
    await center.agent.get("/api/v1/audit", expect=403)
    await center.super.get("/api/v1/audit", expect=403)
    log = await admin.get("/api/v1/audit?category=account&limit=500")
    assert log["total"] == len(log["items"]) >= 6  # the fixture's accounts were created by the admin
    assert {e["action"] for e in log["items"]} == {"create_user"}
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        resp = await center.client.request(method, "/api/v1/audit", json={},
                                           headers={"Authorization": f"Bearer {admin.token}"})
        assert resp.status == 405, method
    entry_id = log["items"][0]["id"]
    for method in ("PUT", "PATCH", "DELETE"):
        resp = await center.client.request(method, f"/api/v1/audit/{entry_id}", json={},
                                           headers={"Authorization": f"Bearer {admin.token}"})
        assert resp.status in (404, 405), method
    assert (await admin.get("/api/v1/audit?category=account&limit=500"))["items"] == log["items"]
    assert (await admin.get("/api/v1/audit?category=bogus", expect=400))["field"] == "category"
    assert (await admin.get("/api/v1/audit?from=9999-12-31", expect=400))["field"] == "from"
    assert (await admin.get("/api/v1/audit?limit=0", expect=400))["field"] == "limit"
    mine = await admin.get(f"/api/v1/audit?user_id={admin.user['id']}&limit=1")
    assert len(mine["items"]) == 1 and mine["total"] == log["total"]


async def test_disabling_in_one_process_stops_a_token_cached_by_another(
        settings_factory: Any, database_url: str, redis_url: str) -> None:
    """Two server processes = two UserStores on one database and one Redis. Process A has the token in its
    30-second cache; process B disables the account; A refuses the token at its very next request."""
    settings = settings_factory(database_url=database_url, redis_url=redis_url)
    engine = server.make_engine(settings)
    redis = Redis.from_url(redis_url)
    clock = server.system_clock
    try:
        a = UserStore(async_sessionmaker(engine, expire_on_commit=False), clock, settings)
        b = UserStore(async_sessionmaker(engine, expire_on_commit=False), clock, settings)
        a.marker = b.marker = redis
        await a.load_departments()
        await b.load_departments()
        boss = await a.create_user("boss", PASSWORD, "admin")
        await a.create_user("clerk", PASSWORD, "agent")
        token, clerk = await a.login("clerk", PASSWORD)
        assert await a.authenticate(token) == clerk
        await b.update_user(clerk.id, boss, role="supervisor")
        assert (await a.authenticate(token)).role == "supervisor"  # type: ignore[union-attr]
        await b.update_user(clerk.id, boss, active=False)
        assert await a.authenticate(token) is None

        # Without the shared mark (one process or no Redis) only the cache's 30 seconds would end it.
        await b.update_user(clerk.id, boss, active=True)
        token, clerk = await a.login("clerk", PASSWORD)
        a.marker = b.marker = None
        assert await a.authenticate(token) == clerk
        await b.update_user(clerk.id, boss, active=False)
        assert await a.authenticate(token) == clerk  # stale: what the mark is there for
    finally:
        await redis.aclose()
        await engine.dispose()


async def test_requests_arriving_together_all_see_another_process_revoking_before_them(
        settings_factory: Any, database_url: str, redis_url: str) -> None:
    """Requests arriving at once share one read of the revocation mark (one Redis GET per turn of the event
    loop); every one of them that arrives after process B revoked the token is refused, every earlier burst
    answered."""
    settings = settings_factory(database_url=database_url, redis_url=redis_url)
    engine = server.make_engine(settings)
    redis = Redis.from_url(redis_url)
    try:
        a = UserStore(async_sessionmaker(engine, expire_on_commit=False), server.system_clock, settings)
        b = UserStore(async_sessionmaker(engine, expire_on_commit=False), server.system_clock, settings)
        a.marker = b.marker = redis
        await a.load_departments()
        await b.load_departments()
        await a.create_user("clerk", PASSWORD, "agent")
        token, clerk = await a.login("clerk", PASSWORD)
        for _ in range(3):  # the token is in A's cache, read by bursts of requests
            assert await asyncio.gather(*(a.authenticate(token) for _ in range(20))) == [clerk] * 20
        await b.revoke_tokens(clerk.id)
        assert await asyncio.gather(*(a.authenticate(token) for _ in range(20))) == [None] * 20
    finally:
        await redis.aclose()
        await engine.dispose()



async def _slow_replies(redis_url: str, delay: float
                        ) -> tuple[asyncio.Server, list[asyncio.StreamWriter], str]:
    """A TCP relay in front of Redis that passes commands on at once and holds each reply back ``delay``
    seconds: process A's reads of the mark are in flight long enough for process B to revoke meanwhile."""
    host, port = redis_url.removeprefix("redis://").split("/")[0].split(":")

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, hold: float) -> None:
        try:
            while data := await reader.read(65536):
                if hold:
                    await asyncio.sleep(hold)
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    streams: list[asyncio.StreamWriter] = []  # for the test to close: Server.close leaves them open

    async def relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        redis_r, redis_w = await asyncio.open_connection(host, int(port))
        streams.extend((client_w, redis_w))
        await asyncio.gather(pipe(client_r, redis_w, 0), pipe(redis_r, client_w, delay), return_exceptions=True)

    relay_server = await asyncio.start_server(relay, "127.0.0.1", 0)
    relay_port = relay_server.sockets[0].getsockname()[1]
    return relay_server, streams, f"redis://127.0.0.1:{relay_port}/{redis_url.rsplit('/', 1)[1]}"


async def test_under_a_stream_of_requests_none_started_after_a_revocation_is_let_in(
        settings_factory: Any, database_url: str, redis_url: str) -> None:
    """Twenty clients keep process A busy with one token while process B revokes it; A's Redis answers slowly.
    A's requests share reads of the mark, yet a request that started after B's revocation never shares a read
    sent before it: every such request is refused."""
    settings = settings_factory(database_url=database_url, redis_url=redis_url)
    engine = server.make_engine(settings)
    relay, relayed, slow_url = await _slow_replies(redis_url, 0.02)
    redis, slow = Redis.from_url(redis_url), Redis.from_url(slow_url)
    clients: list[asyncio.Task[None]] = []
    try:
        a = UserStore(async_sessionmaker(engine, expire_on_commit=False), server.system_clock, settings)
        b = UserStore(async_sessionmaker(engine, expire_on_commit=False), server.system_clock, settings)
        a.marker, b.marker = slow, redis
        await a.load_departments()
        await b.load_departments()
        await a.create_user("clerk", PASSWORD, "agent")
        token, clerk = await a.login("clerk", PASSWORD)
        revoked = asyncio.Event()
        let_in_after: list[int] = []
        answered = {"before": 0, "after": 0}

        async def client(c: int) -> None:
            while answered["after"] < 100:
                await asyncio.sleep(0.001 * (c % 7))  # staggered: requests keep arriving while a read is out
                after = revoked.is_set()
                principal = await a.authenticate(token)
                answered["after" if after else "before"] += 1
                if after and principal is not None:
                    let_in_after.append(1)

        clients += [asyncio.create_task(client(c)) for c in range(20)]
        deadline = asyncio.get_running_loop().time() + 60
        while answered["before"] < 100:
            assert not any(c.done() for c in clients), [c.exception() for c in clients if c.done()]
            assert asyncio.get_running_loop().time() < deadline, "the clients made no progress"
            await asyncio.sleep(0.005)
        await b.revoke_tokens(clerk.id)
        revoked.set()
        # New requests the instant the revocation returned, while A's read sent before it may still be out.
        assert await asyncio.gather(*(a.authenticate(token) for _ in range(5))) == [None] * 5
        await asyncio.wait_for(asyncio.gather(*clients), 60)
        assert let_in_after == []
    finally:
        for task in clients:
            task.cancel()
        await slow.aclose()
        await redis.aclose()
        relay.close()
        for stream in relayed:
            stream.close()
        await relay.wait_closed()
        await engine.dispose()
