"""Pages under a Content-Security-Policy that still work in Chromium, frame protection, no open redirect after
login, and /metrics only for admins or the scrapers' token."""
from __future__ import annotations

from typing import Any

import aiohttp
import pytest

import server
from web.pages import is_local_path

from .conftest import PASSWORD, Console


@pytest.mark.parametrize("target,ok", [
    ("/agent", True), ("/tickets/20261122-000001?x=1", True), ("//evil.example", False),
    ("/\\evil.example", False), ("/\t/evil.example", False), ("https://evil.example", False), ("", False),
    ("evil.example", False), ("/%5Cevil.example", True),  # still encoded: a path on this server
])
def test_only_local_paths_are_login_targets(target: str, ok: bool) -> None:
    assert is_local_path(target) is ok


async def test_pages_carry_the_policy_and_cannot_be_framed(console: Console) -> None:
    async with aiohttp.ClientSession(console.base) as s:
        resp = await s.get("/login?next=/%5Cevil.example")
        html = await resp.text()
        assert "evil" not in html
        csp = resp.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
        nonce = csp.split("'nonce-")[1].split("'")[0]
        assert f'<script nonce="{nonce}">' in html
        assert resp.headers["X-Frame-Options"] == "DENY" and resp.headers["X-Content-Type-Options"] == "nosniff"
        again = await s.get("/login")
        assert again.headers["Content-Security-Policy"] != csp  # a fresh nonce per page
        api = await s.get("/api/v1/meta")
        assert api.status == 401 and api.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.browser
async def test_the_console_runs_under_the_policy_and_login_stays_on_the_site(console: Console, browser: Any) -> None:
    ctx = await browser.new_context(locale="zh-CN")
    page = await ctx.new_page()
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    await page.goto(console.base + "/login?next=/%5Cevil.example")
    await page.fill("#username", "super1")
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(lambda url: "/login" not in url)
    assert page.url.startswith(console.base + "/"), page.url
    t = await console.draft()
    for path in ("/supervisor", f"/tickets/{t['number']}", "/knowledge", "/reports/print?kind=daily", "/agent",
                 f"/agent?ticket={t['number']}"):
        await page.goto(console.base + path)
        await page.wait_for_load_state("networkidle")
    assert await page.evaluate("typeof window.CONSOLE") == "object"  # the agent page's inline script ran
    assert violations == []
    await ctx.close()

    # Framing by another page is refused by the browser.
    ctx = await browser.new_context()
    framer = await ctx.new_page()
    # set_content waits for the page's load event, which waits for its frame's (the refusal's error page);
    # a fixed 500 ms wait let a slow machine pass the check on a frame that had not loaded at all.
    await framer.set_content(f'<iframe id="f" src="{console.base}/login"></iframe>')
    frame = next(f for f in framer.frames if f != framer.main_frame)
    await frame.wait_for_load_state()
    assert frame.url.startswith("chrome-error://"), frame.url  # Chromium's page for a refused frame
    assert "login-form" not in await frame.content()
    await ctx.close()


async def test_metrics_need_an_admin_or_the_scrapers_token(console_factory: Any, settings_factory: Any) -> None:
    console = await console_factory()
    async with aiohttp.ClientSession(console.base) as s:
        assert (await s.get("/metrics")).status == 401
        admin_pw = console.app[server.SETTINGS].server.admin_password
        token = (await (await s.post("/api/v1/auth/login", json={"username": "admin", "password": admin_pw,
                                                                    "kind": "api"})).json())["token"]
        resp = await s.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 200 and "hotline_http_requests" in await resp.text()
        agent = (await (await s.post("/api/v1/auth/login", json={"username": "agent1", "password": PASSWORD,
                                                                    "kind": "api"})).json())["token"]
        assert (await s.get("/metrics", headers={"Authorization": f"Bearer {agent}"})).status == 403


@pytest.mark.parametrize("path", [
    "/supervisor?department_id=99999999999999999999", "/supervisor?page=99999999999999999999",
    "/supervisor?from=9999-12-31&to=9999-12-31", "/supervisor?from=0001-01-01", "/knowledge?edit=99999999999999999999",
])
async def test_hostile_query_values_on_pages_are_no_500(console: Console, path: str) -> None:
    async with aiohttp.ClientSession(console.base, cookie_jar=aiohttp.CookieJar(unsafe=True),
                                     headers={"Origin": console.base}) as s:
        assert (await s.post("/api/v1/auth/login", json={"username": "super1", "password": PASSWORD})).status == 200
        resp = await s.get(path)
        assert resp.status in (200, 400), (path, resp.status)
