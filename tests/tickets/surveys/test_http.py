"""The survey API on the whole server (server.create_app + tickets.survey_http.setup, as INTEGRATION says):
supervisors see the day's campaign, agents take a survey over and record the answer by hand."""
from __future__ import annotations

from typing import Any

import pytest

import server
from tests.tickets.conftest import PASSWORD, Api  # noqa: E402
from tests.tickets.surveys.conftest import Clock, Phone, local
from tickets.surveys import http as survey_http

Client = Api  # a logged-in API client, shared with the ticket tests


@pytest.fixture
async def hotline(aiohttp_client: Any, redis_url: str, settings_factory: Any, sqlite_template: Any,
                  tmp_path: Any) -> Any:
    import shutil

    db = tmp_path / "hotline.db"
    shutil.copyfile(sqlite_template, db)
    clock = Clock(local(2026, 11, 23, 9, 0))
    settings = settings_factory(database_url=f"sqlite+aiosqlite:///{db}", redis_url=redis_url)
    phone = Phone()
    app = server.create_app(settings, clock, survey_originate=phone.originate, survey_worker=False, survey_tick=3600)
    client = await aiohttp_client(app)

    async def login(username: str, password: str) -> Client:
        resp = await client.post("/api/v1/auth/login", json={"username": username, "password": password,
                                                             "kind": "api"})
        body = await resp.json()
        assert resp.status == 200, body
        return Client(client, body["token"], body["user"])

    admin = await login("admin", settings.server.admin_password)
    depts = {d["code"]: d["id"] for d in await admin.call("GET", "/api/v1/departments")}
    users = {}
    for username, role, dept in [("agent", "agent", None), ("super", "supervisor", None),
                                 ("water", "department", "swuj")]:
        body = {"username": username, "password": PASSWORD, "role": role, "display_name": username}
        if dept:
            body["department"] = dept
        await admin.call("POST", "/api/v1/users", body, expect=201)
        users[username] = await login(username, PASSWORD)
    return app, clock, phone, users, depts


async def _replied(users: dict[str, Client], depts: dict[str, int], **fields: Any) -> str:
    agent, water = users["agent"], users["water"]
    body = {"caller_name": "张三", "caller_phone": "13800138000", "request_type": "help", "title": "井盖缺失",
            "content": "路口井盖丢了。", "accept": True, **fields}
    t = await agent.call("POST", "/api/v1/tickets", body, expect=201)
    n = t["number"]
    await agent.call("POST", f"/api/v1/tickets/{n}/actions/dispatch", {"lead_department_id": depts["swuj"]})
    await water.call("POST", f"/api/v1/tickets/{n}/actions/sign", {})
    await water.call("POST", f"/api/v1/tickets/{n}/actions/reply", {"answer": "已补装井盖。"})
    return n


async def test_campaign_and_manual_takeover(hotline: Any) -> None:
    app, clock, phone, users, depts = hotline
    svc = app[survey_http.SURVEYS]
    a = await _replied(users, depts)
    b = await _replied(users, depts, caller_phone="13900139000")
    c = await _replied(users, depts, anonymous=True)
    await svc.drain()
    sup, agent, water = users["super"], users["agent"], users["water"]
    # Department handlers do not see the callback campaign.
    await water.call("GET", "/api/v1/surveys/campaign", expect=403)
    manual = await agent.call("GET", "/api/v1/surveys/manual")
    assert [m["ticket"] for m in manual] == [c]
    clock.set_local(2026, 11, 24, 9, 0)
    await svc.sweep()
    day = await sup.call("GET", "/api/v1/surveys/campaign?date=2026-11-24")
    assert (day["scheduled"], day["in_progress"], day["manual"]) == (0, 2, 1)
    assert day["slots"] == {"in_use": 2, "limit": 10}
    assert {i["ticket"] for i in day["items"]} == {a, b, c}
    assert all("****" in i["phone"] for i in day["items"] if i["phone"])  # masked in lists
    # A call in progress cannot be taken over.
    sid_a = next(i["id"] for i in day["items"] if i["ticket"] == a)
    err = await agent.call("POST", f"/api/v1/surveys/{sid_a}/manual", {}, expect=409)
    assert err["error"] == "survey_in_progress"
    # a: answered on the phone, satisfied; b: busy -> retry later.
    key_a = next(k for k, r in phone.open.items() if r["ticket"] == a)
    key_b = next(k for k, r in phone.open.items() if r["ticket"] == b)
    phone.end(key_a)
    await svc.on_call_result({"survey_id": key_a[0], "attempt": key_a[1], "outcome": "answered",
                              "answers": {"resolved": "1", "satisfaction": "1"}})
    phone.end(key_b)
    await svc.on_call_result({"survey_id": key_b[0], "attempt": key_b[1], "outcome": "busy", "reason": "5"})
    # The agent takes b over and records a "basically satisfied, not resolved" answer by hand.
    sid_b = key_b[0]
    taken = await agent.call("POST", f"/api/v1/surveys/{sid_b}/manual", {})
    assert taken["state"] == "manual" and taken["phone"] == "13900139000"  # the agent needs the number
    bad = await agent.call("POST", f"/api/v1/surveys/{sid_b}/manual", {"resolved": True}, expect=400)
    assert bad["field"] == "satisfaction"
    done = await agent.call("POST", f"/api/v1/surveys/{sid_b}/manual",
                            {"satisfaction": "basically_satisfied", "resolved": False, "note": "来电人说还没修好"})
    assert (done["state"], done["via"], done["resolved"]) == ("done", "agent", False)
    assert [x["outcome"] for x in done["calls"]] == ["busy"]
    ticket_b = await agent.call("GET", f"/api/v1/tickets/{b}")
    assert ticket_b["status"] == "dispatched" and ticket_b["reopen_count"] == 1  # unresolved -> reopened
    # c (anonymous): the agent could not reach the caller by other means.
    sid_c = next(i["id"] for i in day["items"] if i["ticket"] == c)
    await agent.call("POST", f"/api/v1/surveys/{sid_c}/manual", {"unreachable": True, "note": "短信无回复"})
    closed = await agent.call("POST", f"/api/v1/surveys/{sid_c}/manual", {}, expect=409)
    assert closed["error"] == "survey_closed"
    day = await sup.call("GET", "/api/v1/surveys/campaign?date=2026-11-24")
    assert (day["done"], day["unreachable"], day["in_progress"], day["scheduled"]) == (2, 1, 0, 0)
    assert day["results"]["satisfied"] == 1 and day["results"]["basically_satisfied"] == 1
    assert day["results"]["unresolved"] == 1 and day["satisfaction_rate"] == 1.0
    assert day["calls"] == {"answered": 1, "busy": 1}
    hist = await agent.call("GET", f"/api/v1/surveys?ticket={b}")
    assert hist[0]["satisfaction"] == "basically_satisfied"
    await agent.call("GET", "/api/v1/surveys/999999", expect=404)
    await agent.call("GET", "/api/v1/surveys/campaign?date=tomorrow", expect=400)
    # Another day's campaign is empty.
    other = await sup.call("GET", "/api/v1/surveys/campaign?date=2026-12-01")
    assert other["done"] == 0 and other["items"] == [] and other["satisfaction_rate"] is None


async def test_app_starts_and_stops_with_the_worker(aiohttp_client: Any, redis_url: str, settings_factory: Any,
                                                    sqlite_template: Any, tmp_path: Any) -> None:
    """The real cleanup context: survey loop and arq worker start, a due job runs through arq, all stops."""
    import asyncio
    import shutil

    db = tmp_path / "hotline.db"
    shutil.copyfile(sqlite_template, db)
    # A pinned Tuesday morning (the clock used to be the real now, which for a minute each night lies outside
    # 00:00-23:59): arq defers the job to that moment in real time, already past, so the worker runs it at once.
    clock = Clock(local(2026, 11, 24, 10, 0))
    settings = settings_factory(database_url=f"sqlite+aiosqlite:///{db}", redis_url=redis_url,
                                survey={"delay_hours": 0, "calling_hours": ["00:00-23:59"],
                                        "holiday_calling_hours": ["00:00-23:59"]})
    phone = Phone()
    app = server.create_app(settings, clock, survey_originate=phone.originate, survey_tick=3600)
    client = await aiohttp_client(app)
    resp = await client.post("/api/v1/auth/login", json={"username": "admin",
                                                         "password": settings.server.admin_password, "kind": "api"})
    token = (await resp.json())["token"]
    h = {"Authorization": f"Bearer {token}"}
    resp = await client.post("/api/v1/tickets", headers=h, json={
        "caller_phone": "13800138000", "title": "咨询公积金提取", "content": "怎么提取？", "accept": True})
    number = (await resp.json())["number"]
    resp = await client.post(f"/api/v1/tickets/{number}/actions/answer_on_spot", headers=h,
                             json={"answer": "携带身份证到服务大厅办理。"})
    assert resp.status == 200
    # The arq worker polls every second; the bound is generous for a loaded machine (5 s was not), only a failure
    # waits for it.
    deadline = asyncio.get_running_loop().time() + 60
    while not phone.placed and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    assert [p["ticket"] for p in phone.placed] == [number]


def test_every_survey_route_is_documented() -> None:
    from aiohttp import web

    app = web.Application()
    survey_http.setup_routes(app)
    routes = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    assert routes == set(survey_http.openapi_paths())
