"""Login throttle (per account and per address, counted in Redis shared by every server process), the admin's
unlock, argon2 off the event loop, and API token expiry."""
from __future__ import annotations

import asyncio
import os
import threading
import time
from datetime import timedelta
from typing import Any

import redis.asyncio as aioredis

import server
from tickets.accounts.http import THROTTLE, USERS
from tickets.accounts.service import login_delay

PASSWORD = "password-123"
LIMITS = {"login_free_failures": 2, "login_lockout_failures": 4, "login_max_delay_seconds": 1,
          "login_lockout_minutes": 30}


async def app_client(aiohttp_client: Any, settings_factory: Any, redis_url: str, tmp_path: Any) -> Any:
    settings = settings_factory(redis_url=redis_url, server=LIMITS)
    client = await aiohttp_client(server.create_app(settings))
    await client.app[USERS].create_user("agent", PASSWORD, "agent")
    return client


async def attempt(client: Any, username: str, password: str) -> Any:
    return await client.post("/api/v1/auth/login", json={"username": username, "password": password, "kind": "api"})


async def right_after(client: Any, failures: list[tuple[str, str]], then: tuple[str, str]) -> Any:
    """The answer to ``then``, tried right after the failed logins ``failures`` (the last one starts a 1 s wait).

    The wait runs in Redis on the real clock: a loaded machine may take longer than 1 s from the last failure
    to the next attempt, and then nothing can be concluded (the wait is over, the attempt rightly goes through).
    So when the two did not fit in 1 s and the attempt was not refused, the counters are cleared and the whole
    sequence is made again."""
    throttle = client.app[THROTTLE]
    for _ in range(5):
        for username, password in failures[:-1]:
            assert (await attempt(client, username, password)).status == 401
        start = time.monotonic()
        assert (await attempt(client, *failures[-1])).status == 401
        resp = await attempt(client, *then)
        if resp.status == 429 or time.monotonic() - start < 1:
            return resp
        for username in {u for u, _ in failures} | {then[0]}:
            await throttle.unlock(username, None)
        await throttle.unlock(None, "127.0.0.1")
    raise AssertionError("five times the machine took over 1 s for two logins")


def test_delays_grow_after_the_free_attempts() -> None:
    assert [login_delay(n, 3, 60) for n in range(1, 12)] == [0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 60]


async def test_an_account_waits_then_is_locked_out_and_an_admin_lifts_it(
        aiohttp_client: Any, settings_factory: Any, redis_url: str, tmp_path: Any) -> None:
    client = await app_client(aiohttp_client, settings_factory, redis_url, tmp_path)
    # the third failure: wait 1 s from now; even the right password waits (nothing is hashed)
    resp = await right_after(client, [("agent", f"wrong-{i}") for i in (1, 2, 3)], ("agent", PASSWORD))
    assert resp.status == 429 and resp.headers["Retry-After"] == "1"
    assert (await resp.json())["error"] == "login_throttled"
    await asyncio.sleep(1.1)
    assert (await attempt(client, "agent", "wrong-4")).status == 401  # fourth: locked out
    resp = await attempt(client, "agent", PASSWORD)
    assert resp.status == 429 and (await resp.json())["error"] == "login_locked"
    assert 1700 < int(resp.headers["Retry-After"]) <= 1800

    # Another server process on the same Redis refuses too.
    other = await aiohttp_client(server.create_app(settings_factory(redis_url=redis_url, server=LIMITS),
                                                   bootstrap_admin=False, migrate_db=False))
    assert (await attempt(other, "agent", PASSWORD)).status == 429
    # Every counter in Redis expires by itself.
    r = aioredis.Redis.from_url(redis_url)
    keys = await r.keys("hotline:login:*")
    assert keys and all([await r.ttl(k) > 0 for k in keys])
    await r.aclose()

    admin_pw = client.app[server.SETTINGS].server.admin_password
    admin = await attempt(client, "admin", admin_pw)
    assert admin.status == 200, await admin.text()
    token = (await admin.json())["token"]
    agent_pw_before = await attempt(client, "agent", PASSWORD)
    assert agent_pw_before.status == 429
    resp = await client.post("/api/v1/auth/unlock", json={"username": "agent"},
                             headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200, await resp.text()
    assert (await attempt(client, "agent", PASSWORD)).status == 200


async def test_only_admins_unlock(aiohttp_client: Any, settings_factory: Any, redis_url: str, tmp_path: Any) -> None:
    client = await app_client(aiohttp_client, settings_factory, redis_url, tmp_path)
    token = (await (await attempt(client, "agent", PASSWORD)).json())["token"]
    resp = await client.post("/api/v1/auth/unlock", json={"username": "agent"},
                             headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 403


async def test_an_address_trying_many_accounts_is_throttled(
        aiohttp_client: Any, settings_factory: Any, redis_url: str, tmp_path: Any) -> None:
    client = await app_client(aiohttp_client, settings_factory, redis_url, tmp_path)
    # the address gets four times the account's free attempts
    resp = await right_after(client, [(f"guess{i}", "x") for i in range(2 * 4 + 1)], ("someone-new", "x"))
    assert resp.status == 429 and resp.headers["Retry-After"] == "1"


async def test_refusals_are_answered_after_a_pause_that_holds_nothing_else_up(
        aiohttp_client: Any, settings_factory: Any, redis_url: str, tmp_path: Any) -> None:
    """A locked-out address's guesses each wait ``login_refusal_pause_seconds`` for their 429 (a guessing script
    that waits for answers gets one per pause), while the server answers everyone else at once."""
    pause = 2.0
    settings = settings_factory(redis_url=redis_url, server={**LIMITS, "login_refusal_pause_seconds": pause})
    client = await aiohttp_client(server.create_app(settings))
    await client.app[USERS].create_user("agent", PASSWORD, "agent")
    throttle = client.app[THROTTLE]
    for i in range(4 * 4 + 1):  # the address's lock-out: four times the account limit, each a real argon2 failure
        resp = await attempt(client, f"guess{i}", "x")
        assert resp.status in (401, 429)
        if resp.status == 429 and (await resp.json())["error"] == "login_locked":
            break
        await throttle.redis.delete(throttle._key("addr", "127.0.0.1", "wait"))  # skip the waits, not the count
    else:
        raise AssertionError("the address was never locked out")
    loop = asyncio.get_running_loop()
    started = loop.time()
    guesses = [asyncio.ensure_future(attempt(client, f"more{i}", "x")) for i in range(20)]
    health = await client.get("/health")
    health_took = loop.time() - started
    answers = await asyncio.gather(*guesses)
    assert [a.status for a in answers] == [429] * 20
    assert {(await a.json())["error"] for a in answers} == {"login_locked"}
    assert loop.time() - started >= pause  # each refusal waited its pause...
    assert health.status in (200, 503) and health_took < pause  # ...and held nothing else up meanwhile


async def test_argon2_runs_off_the_event_loop_at_a_lower_priority_and_api_tokens_expire(
        aiohttp_client: Any, settings_factory: Any, redis_url: str, tmp_path: Any) -> None:
    client = await app_client(aiohttp_client, settings_factory, redis_url, tmp_path)
    users = client.app[USERS]
    threads: list[int] = []
    priorities: list[int] = []
    hasher = users._hasher

    class Spy:
        def verify(self, *args: Any) -> Any:
            threads.append(threading.get_ident())
            priorities.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
            return hasher.verify(*args)

    users._hasher = Spy()  # type: ignore[assignment]
    resp = await attempt(client, "agent", PASSWORD)
    assert resp.status == 200
    assert threads and threading.get_ident() not in threads
    # and at a lower CPU priority than the server (what `top -H` shows): a flood's hashes yield to the tickets
    steps = client.app[server.SETTINGS].server.password_hash_nice
    assert steps > 0
    assert priorities == [min(19, os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) + steps)]
    token = (await resp.json())["token"]
    now = users.clock()
    days = client.app[server.SETTINGS].server.api_token_days
    users.clock = lambda: now + timedelta(days=days, seconds=1)  # type: ignore[method-assign]
    users._token_cache.clear()
    resp = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 401


async def test_an_admin_revokes_a_users_api_tokens(
        aiohttp_client: Any, settings_factory: Any, redis_url: str, tmp_path: Any) -> None:
    client = await app_client(aiohttp_client, settings_factory, redis_url, tmp_path)
    agent = (await (await attempt(client, "agent", PASSWORD)).json())
    bearer = {"Authorization": f"Bearer {agent['token']}"}
    assert (await client.get("/api/v1/me", headers=bearer)).status == 200
    admin_pw = client.app[server.SETTINGS].server.admin_password
    admin = {"Authorization": f"Bearer {(await (await attempt(client, 'admin', admin_pw)).json())['token']}"}
    uid = agent["user"]["id"]
    assert (await client.delete(f"/api/v1/users/{uid}/tokens?kind=api", headers=bearer)).status == 403
    resp = await client.delete(f"/api/v1/users/{uid}/tokens?kind=api", headers=admin)
    assert resp.status == 200 and (await resp.json())["revoked"] == 1
    assert (await client.get("/api/v1/me", headers=bearer)).status == 401
    assert (await client.delete("/api/v1/users/9223372036854775808/tokens", headers=admin)).status == 404
    assert (await client.get("/api/v1/me", headers=admin)).status == 200  # only that user's tokens


async def test_login_from_a_foreign_origin_is_refused_and_bearer_clients_need_no_origin(
        aiohttp_client: Any, settings_factory: Any, redis_url: str, tmp_path: Any) -> None:
    client = await app_client(aiohttp_client, settings_factory, redis_url, tmp_path)
    body = {"username": "agent", "password": PASSWORD, "kind": "api"}
    resp = await client.post("/api/v1/auth/login", json=body, headers={"Origin": "http://127.0.0.1:1"})
    assert resp.status == 403 and (await resp.json())["error"] == "cross_site_request"
    token = (await (await client.post("/api/v1/auth/login", json=body)).json())["token"]
    resp = await client.post("/api/v1/tickets", json={"title": "接口工单"}, headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 201
    # The same request riding on a session cookie without an Origin is refused.
    session = await client.post("/api/v1/auth/login", json={**body, "kind": "session"},
                                headers={"Origin": str(client.make_url("")).rstrip("/")})
    assert session.status == 200
    resp = await client.post("/api/v1/tickets", json={"title": "无来源"})
    assert resp.status == 403


async def test_a_parallel_flood_is_refused_before_hashing_once_the_failures_are_counted(
        aiohttp_client: Any, settings_factory: Any, redis_url: str, tmp_path: Any) -> None:
    """40 guesses sent at once: without the gate at the hasher, every one of them would run argon2 (the
    failures are only counted after each hash). With it, the attempts queued behind the first ones are
    refused once the account's free failures are used up."""
    client = await app_client(aiohttp_client, settings_factory, redis_url, tmp_path)
    users = client.app[USERS]
    hashed = 0
    verify = users._verify

    def counting(password_hash: str, password: str) -> bool:
        nonlocal hashed
        hashed += 1
        return verify(password_hash, password)

    users._verify = counting
    answers = await asyncio.gather(*(attempt(client, "agent", f"guess-{i}") for i in range(40)))
    statuses = [a.status for a in answers]
    assert set(statuses) <= {401, 429} and statuses.count(401) == hashed
    # The free failures, plus at most one attempt per hashing slot already past the gate when the
    # limit was reached.
    assert hashed <= LIMITS["login_free_failures"] + 1 + users._hashing._value + 1, statuses
    assert statuses.count(429) >= 40 - hashed
