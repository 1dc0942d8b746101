"""A real server (real redis, real SQLite) with the console, served on a TCP port inside the test's event
loop, and headless Chromium driven by Playwright against it."""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web as aioweb

import server
import web
from tests.services import serve
from tickets.accounts.http import USERS
from tickets.http import STORE
from tickets.accounts.service import Principal

PASSWORD = "console-密码-1"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
SYSTEM = Principal(0, "system", "系统", "system", None, None, None)
TRANSCRIPT = "喂你好，我姓刘，住在南湖区幸福路18号，楼下工地每天晚上十一点多还在打桩，吵得孩子睡不着。"


class RunningClock:
    """The server's clock for browser tests whose outcome depends on the date: it starts at a fixed moment and
    runs at the real pace (sessions, toasts and timestamps behave as usual), so the test means the same on any
    day, never crosses a midnight or month end, and never reaches a year whose holidays are unknown."""

    def __init__(self, start: datetime) -> None:
        # in UTC, as the server's own clock gives it (stored times are compared across the code in UTC)
        self.start, self.began = start.astimezone(timezone.utc), time.monotonic()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self.began)


@dataclass
class Console:
    app: aioweb.Application
    base: str
    departments: dict[str, int]
    users: dict[str, Principal]

    @property
    def store(self) -> Any:
        return self.app[STORE]

    async def draft(self, **fields: Any) -> dict[str, Any]:
        """A draft as speech recognition leaves it: fields pre-filled, with where each came from."""
        data = {"title": "夜间施工噪音", "content": "南湖区幸福路18号楼下工地夜间打桩施工，噪音扰民。",
                "address": "南湖区幸福路18号", "district": "南湖区", "caller_name": "刘女士",
                "caller_phone": "13912348888", "request_type": "complaint", **fields}
        return await self.store.create(data, SYSTEM, call_id="1732280000.42", draft_fields={
            "caller_name": {"value": "刘女士", "source_text": TRANSCRIPT, "start": 5, "end": 7},
            "address": {"value": "南湖区幸福路18号", "source_text": TRANSCRIPT, "start": 10, "end": 19}})


@pytest.fixture
async def console_factory(settings_factory, redis_url, sqlite_url, sqlite_template
                          ) -> AsyncIterator[Callable[..., Awaitable[Console]]]:
    """Start the server; ``routes`` may add endpoints of packages not built yet (before the router freezes);
    ``clock`` is the server's clock (default: the real one), for tests whose outcome depends on the date."""
    runners: list[aioweb.AppRunner] = []

    async def make(routes: Callable[[aioweb.Application], None] | None = None,
                   clock: Callable[[], Any] | None = None, **setup: Any) -> Console:
        shutil.copyfile(sqlite_template, sqlite_url.split("///", 1)[1])
        settings = settings_factory(database_url=sqlite_url, redis_url=redis_url)
        app = server.create_app(settings, clock) if clock else server.create_app(settings)
        web.setup(app, schedule_reports=False, **setup)
        if routes:
            routes(app)
        runner = aioweb.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        base = await serve(runner)
        users = app[USERS]
        depts = {d.code: d.id for d in (await users.load_departments()).values()}
        people = {
            "agent": await users.create_user("agent1", PASSWORD, "agent", display_name="王丽"),
            "water": await users.create_user("water1", PASSWORD, "department", display_name="水务 李强",
                                             department_code="swuj"),
            "env": await users.create_user("env1", PASSWORD, "department", display_name="生态 陈静",
                                           department_code="sthj"),
            "super": await users.create_user("super1", PASSWORD, "supervisor", display_name="赵敏"),
        }
        return Console(app, base, depts, people)

    try:
        yield make
    finally:
        for runner in runners:
            await runner.cleanup()


@pytest.fixture
async def console(console_factory: Callable[..., Awaitable[Console]]) -> Console:
    return await console_factory()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=WAIT_MS)
        b.new_context = patient(b.new_context)
        try:
            yield b
        finally:
            await b.close()


# Every wait and navigation without a timeout of its own: Playwright's 30 s is short for Chromium on a loaded
# machine; a generous bound only delays a failure.
WAIT_MS = 90_000


def patient(new_context: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """``browser.new_context`` whose contexts wait up to ``WAIT_MS`` by default."""

    async def make(**kw: Any) -> Any:
        ctx = await new_context(**kw)
        ctx.set_default_timeout(WAIT_MS)
        ctx.set_default_navigation_timeout(WAIT_MS)
        return ctx

    return make


async def login(browser: Any, console: Console, username: str) -> Any:
    """A fresh browser context (own cookies) logged in through the login page; returns its page."""
    ctx = await browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN", accept_downloads=True)
    page = await ctx.new_page()
    await page.goto(console.base + "/login")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(lambda url: "/login" not in url)
    return page
