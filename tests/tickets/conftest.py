"""Fixtures for the ticket tests: a running app on a real database, a clock the test moves, logged-in users."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import server

TZ = ZoneInfo("Asia/Shanghai")


class Clock:
    """A clock the test moves by hand, so deadlines and overdue marks are testable."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def set_local(self, *args: int) -> None:
        self.now = datetime(*args, tzinfo=TZ).astimezone(timezone.utc)


@dataclass
class Api:
    """A logged-in client: one per user, each with its own bearer token."""

    client: Any
    token: str
    user: dict[str, Any]

    async def call(self, method: str, path: str, json: Any = None, expect: int | None = 200, **kw: Any) -> Any:
        resp = await self.client.request(method, path, json=json,
                                         headers={"Authorization": f"Bearer {self.token}"}, **kw)
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        if expect is not None:
            assert resp.status == expect, f"{method} {path}: {resp.status} {body}"
        return body

    async def get(self, path: str, expect: int | None = 200, **kw: Any) -> Any:
        return await self.call("GET", path, expect=expect, **kw)

    async def post(self, path: str, json: Any = None, expect: int | None = 200) -> Any:
        return await self.call("POST", path, json=json, expect=expect)

    async def act(self, number: str, action: str, expect: int | None = 200, **params: Any) -> Any:
        return await self.call("POST", f"/api/v1/tickets/{number}/actions/{action}", json=params, expect=expect)


@dataclass
class Center:
    """A running server with an admin, two agents, a supervisor and two department handlers."""

    client: Any
    clock: Clock
    departments: dict[str, int]
    users: dict[str, Api] = field(default_factory=dict)

    async def login(self, username: str, password: str) -> Api:
        resp = await self.client.post("/api/v1/auth/login",
                                      json={"username": username, "password": password, "kind": "api"})
        body = await resp.json()
        assert resp.status == 200, body
        return Api(self.client, body["token"], body["user"])

    def __getattr__(self, name: str) -> Api:
        try:
            return self.users[name]
        except KeyError:
            raise AttributeError(name) from None

    async def new_ticket(self, who: str = "agent", **fields: Any) -> dict[str, Any]:
        body = {"caller_name": "张三", "caller_phone": "13800138000", "request_type": "complaint",
                "title": "小区夜间施工噪音扰民", "content": "幸福小区旁工地每天夜里十一点后还在施工，噪音很大。",
                "address": "幸福路12号", "district": "A1区", **fields}
        return await self.users[who].post("/api/v1/tickets", body, expect=201)


PASSWORD = "密码-pass-123"


@pytest.fixture
async def center(aiohttp_client, database_url, redis_url, settings_factory) -> Center:
    clock = Clock(datetime(2026, 11, 23, 9, 0, tzinfo=TZ).astimezone(timezone.utc))  # a Monday
    settings = settings_factory(database_url=database_url, redis_url=redis_url)
    app = server.create_app(settings, clock)
    client = await aiohttp_client(app)
    return await staff(Center(client, clock, {}), settings.server.admin_password, [
        ("agent", "agent", None), ("agent2", "agent", None), ("super", "supervisor", None),
        ("water", "department", "swuj"), ("env", "department", "sthj"), ("city", "department", "cgj")])


async def staff(c: Center, admin_password: str, accounts: list[tuple[str, str, str | None]]) -> Center:
    """Log in as admin, create the accounts (username, role, department code) and log each of them in."""
    admin = await c.login("admin", admin_password)
    c.users["admin"] = admin
    c.departments = {d["code"]: d["id"] for d in await admin.get("/api/v1/departments")}
    for username, role, dept in accounts:
        body = {"username": username, "password": PASSWORD, "role": role, "display_name": username}
        if dept:
            body["department"] = dept
        await admin.post("/api/v1/users", body, expect=201)
        c.users[username] = await c.login(username, PASSWORD)
    return c
