"""HTTP and WebSocket API in the real application (server.create_app wires telephony.service and .http).

The app's clock is the fake PBX's (or a fixed) time: nothing here depends on the day the tests run.
"""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fake_ami import Capture, FakeAmi, requires_captures
from test_bridge_captures import ev

import server
from tickets import http as tickets_http
from tickets.accounts import http as accounts_http


def make_app(settings: Any, clock: Any):
    """The real server app: server.create_app wires telephony (setup, health probe, screen pop)."""
    app = server.create_app(settings, clock, bootstrap_admin=False)
    return app, app[server.TELEPHONY]


def fixed_clock(*args: int) -> Any:
    moment = datetime(*args, tzinfo=UTC)
    return lambda: moment


async def until(pred: Any, what: str, timeout: float = 60.0) -> None:
    """Poll ``pred`` until true; ``timeout`` only bounds a failure."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.02)


async def login(client, users, username: str, role: str, interface: str | None = None) -> dict[str, str]:
    await users.create_user(username, "password-123", role, display_name=username, interface=interface)
    r = await client.post("/api/v1/auth/login", json={"username": username, "password": "password-123",
                                                        "kind": "api"})
    assert r.status == 200, await r.text()
    return {"Authorization": f"Bearer {(await r.json())['token']}"}


async def next_msg(ws, kind: str, timeout: float = 60.0) -> dict[str, Any]:
    """The next live message of ``kind``, also from inside a batch frame (the rest of that batch is skipped)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        msg = await ws.receive_json(timeout=max(0.05, deadline - asyncio.get_running_loop().time()))
        for m in msg["messages"] if msg["type"] == "batch" else [msg]:
            if m["type"] == kind:
                return m


async def test_without_asterisk(aiohttp_client, settings_factory, redis_url):
    settings = settings_factory(redis_url=redis_url)
    app, svc = make_app(settings, fixed_clock(2026, 11, 23, 1, 0))
    client = await aiohttp_client(app)
    users = app[accounts_http.USERS]
    assert (await client.get("/api/v1/telephony/live")).status == 401
    sup = await login(client, users, "banzhang", "supervisor", "PJSIP/9001")
    agent = await login(client, users, "zuoxi1", "agent", "PJSIP/8001")
    r = await client.get("/api/v1/telephony/live", headers=sup)
    assert r.status == 200 and (await r.json())["ami"]["enabled"] is False
    r = await client.post("/api/v1/telephony/agent/pause", json={"paused": True, "reason": "小休"}, headers=agent)
    body = await r.json()
    assert r.status == 503 and body["error"] == "ami_not_connected" and "未连接" in body["message"]
    assert (await client.get("/api/v1/telephony/report", headers=agent)).status == 403
    h = await (await client.get("/health")).json()
    assert h["ok"] and h["checks"]["ami"]["ok"] is True
    page = await client.get("/wallboard", allow_redirects=False)  # its data needs the login: so does the page
    assert page.status == 302 and page.headers["Location"] == "/login?next=/wallboard"
    page = await client.get("/wallboard", headers=sup)
    assert page.status == 200 and "未连接" in await page.text()
    admin = await login(client, users, "root2", "admin")
    r = await client.post("/api/v1/telephony/replay", json={"file": "/etc/passwd"}, headers=admin)
    assert r.status == 400


@requires_captures
async def test_screen_pop_actions_and_refusals(aiohttp_client, settings_factory, redis_url):
    cap = Capture.load("answered_call")
    fake = FakeAmi(cap, errors={"QueuePause": "Interface not found"})
    fake.hold_start()
    port = await fake.start()
    # the lab's transfer target (captures: Context transfer-110, Exten s) is the one destination configured
    settings = settings_factory(redis_url=redis_url, ami={"enabled": True, "port": port, "secret": "s",
                                                          "action_timeout": 30, "reconnect_min": 0.05,
                                                          "transfer_destinations": [
                                                              {"exten": "s", "name": "110 转接",
                                                               "context": "transfer-110"}]})
    app, svc = make_app(settings, fake.clock)
    client = await aiohttp_client(app)
    try:
        users, store = app[accounts_http.USERS], app[tickets_http.STORE]
        sup = await login(client, users, "banzhang", "supervisor", "PJSIP/9001")
        agent = await login(client, users, "zuoxi1", "agent", "Local/8001@agents/n")
        who = await users.user_by_interface("Local/8001@agents/n")
        earlier = await store.create({"channel": "phone", "caller_phone": "13800138000", "title": "路灯不亮",
                                      "content": "上次反映过路灯问题"}, who)
        await until(lambda: svc.connection is not None and svc.connection._ready.is_set(), "AMI not ready")
        ws_agent = await client.ws_connect("/ws/telephony", headers=agent)
        ws_sup = await client.ws_connect("/ws/telephony", headers=sup)
        assert (await ws_agent.receive_json())["type"] == "snapshot"
        assert (await ws_sup.receive_json())["type"] == "snapshot"
        r = await client.post("/api/v1/telephony/agent/pause", json={"paused": True, "reason": "培训"}, headers=agent)
        body = await r.json()
        assert r.status == 409 and body["error"] == "ami_refused" and "Interface not found" in body["message"]
        pause = [a for a in fake.actions if a.get("Action") == "QueuePause"][0]
        assert (pause["Interface"], pause["Reason"], pause["Paused"]) == ("Local/8001@agents/n", "培训", "true")
        fake.hold_at(cap.index(ev("AgentConnect")))
        fake.go()
        pop = await next_msg(ws_agent, "screen_pop")
        assert pop["call"]["caller_num"] == "13800138000" and pop["call"]["call_id"] == "1795383048.0"
        assert pop["repeat_caller"] is True
        assert [t["number"] for t in pop["earlier_tickets"]] == [earlier["number"]]
        assert pop["draft"]["call_id"] == "1795383048.0" and pop["draft"]["status"] == "draft"
        patch = await next_msg(ws_sup, "patch")
        assert patch["patches"]
        await asyncio.wait_for(fake.paused.wait(), 60)
        await svc.connection.send({"Action": "Ping"}, timeout=60)
        await svc.drain()
        r = await client.post("/api/v1/telephony/spy", json={"agent_interface": "Local/8001@agents/n",
                                                             "mode": "whisper"}, headers=sup)
        assert r.status == 200, await r.text()
        spy = [a for a in fake.actions if a.get("Application") == "ChanSpy"][0]
        assert spy["Channel"] == "PJSIP/9001" and spy["Data"] == "Local/8001@agents-00000001;1,qEw"
        # A mistyped destination never reaches Asterisk (which would say "Transfer succeeded" and hang up on
        # the caller, transfer_unknown_exten capture): 400 naming the field, no BlindTransfer sent.
        r = await client.post("/api/v1/telephony/agent/transfer", json={"exten": "999"}, headers=agent)
        body = await r.json()
        assert r.status == 400 and body["error"] == "invalid_field" and "exten" in body["message"]
        assert "s（110 转接）" in body["message"]
        r = await client.post("/api/v1/telephony/agent/transfer", json={"exten": "s", "context": "default"},
                              headers=agent)
        assert r.status == 400 and "context" in (await r.json())["message"]
        assert not [a for a in fake.actions if a.get("Action") in ("BlindTransfer", "Redirect")]
        r = await client.get("/api/v1/telephony/transfer-destinations", headers=agent)
        assert (await r.json())["destinations"] == [{"exten": "s", "name": "110 转接", "context": "transfer-110"}]
        r = await client.post("/api/v1/telephony/agent/transfer", json={"exten": "s", "context": "transfer-110"},
                              headers=agent)
        assert r.status == 200, await r.text()
        bt = [a for a in fake.actions if a.get("Action") == "BlindTransfer"][0]
        assert (bt["Channel"], bt["Context"], bt["Exten"]) == ("Local/8001@agents-00000001;1", "transfer-110", "s")
        fake.hold_at(len(cap.msgs) - 2)
        fake.go()
        await asyncio.wait_for(fake.paused.wait(), 60)
        await svc.connection.send({"Action": "Ping"}, timeout=60)
        await svc.drain()
        # the call counts on the local day its caller joined, as the PBX says (not the day the test runs)
        joined = cap.time_at(cap.index(ev("QueueCallerJoin")))
        day = joined.astimezone(ZoneInfo(settings.server.timezone)).date().isoformat()
        assert svc.state.day == day
        want = [{"queue": "12345", "agent": "agent-8001", "offered": 1, "answered": 1, "abandoned": 0,
                 "timed_out": 0, "transferred": 0, "answered_15s": 1, "answer_rate": 1.0,
                 "answer_rate_15s": 1.0, "avg_wait": 1.0, "avg_talk": 10.9}]
        r = await client.get(f"/api/v1/telephony/report?from={day}&to={day}&by=queue,agent", headers=sup)
        assert (await r.json())["rows"] == want
        # without dates: the week up to today, and "today" is the app's clock
        r = await client.get("/api/v1/telephony/report?by=queue,agent", headers=sup)
        assert (await r.json())["to"] == day and (await r.json())["rows"] == want
        r = await client.post("/api/v1/telephony/agent/transfer", json={"exten": "s"}, headers=agent)
        assert r.status == 409 and (await r.json())["error"] == "no_active_call"
        h = await (await client.get("/health")).json()
        assert h["checks"]["ami"]["connected"] is True
        await ws_agent.close()
        await ws_sup.close()
    finally:
        await fake.close()


@requires_captures
async def test_missed_call_callback_list(aiohttp_client, settings_factory, redis_url):
    cap = Capture.load("abandoned_call")
    fake = FakeAmi(cap)
    port = await fake.start()
    settings = settings_factory(redis_url=redis_url, ami={"enabled": True, "port": port, "secret": "s",
                                                          "reconnect_min": 0.05})
    app, svc = make_app(settings, fake.clock)
    client = await aiohttp_client(app)
    try:
        agent = await login(client, app[accounts_http.USERS], "zuoxi2", "agent", "PJSIP/8002")
        await asyncio.wait_for(fake.done.wait(), 20)
        # the capture ended with Logoff/EOF: once reconnected, every event before the EOF was queued
        await until(lambda: fake.logins >= 2 and svc.connection is not None and svc.connection._ready.is_set(),
                    "no reconnect")
        await svc.drain()
        [cb] = (await (await client.get("/api/v1/telephony/callbacks", headers=agent)).json())["items"]
        assert (cb["caller_num"], cb["reason"], cb["status"]) == ("13900139000", "abandoned", "pending")
        r = await client.post(f"/api/v1/telephony/callbacks/{cb['id']}/call", headers=agent)
        assert r.status == 200, await r.text()
        assert (await r.json())["status"] == "calling"
        orig = [a for a in fake.actions if a.get("Action") == "Originate"][-1]
        # the agent's phone first, then the dialplan dials the citizen
        assert (orig["Channel"], orig["Exten"], orig["Context"]) == ("PJSIP/8002", "13900139000", "callback-out")
        r = await client.post(f"/api/v1/telephony/callbacks/{cb['id']}/result",
                              json={"status": "done", "note": "已回电"}, headers=agent)
        assert (await r.json())["status"] == "done"
        items = (await (await client.get("/api/v1/telephony/callbacks", headers=agent)).json())["items"]
        assert items == []
    finally:
        await fake.close()
