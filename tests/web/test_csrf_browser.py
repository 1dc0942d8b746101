"""Cross-site request forgery and WebSocket hijacking, driven by a real Chromium: an admin is logged in to the
hotline, and a page served by another server on another port of the same host (same site, so SameSite
cookies do not help) posts a form and fetches and opens the live telephony WebSocket."""
from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web as aioweb

import server
from tests.services import serve
from tickets.accounts.http import USERS
from tickets.service import TicketQuery

from .conftest import SYSTEM, Console

pytestmark = pytest.mark.browser

ATTACK = """<!doctype html><meta charset="utf-8"><title>抽奖</title>
<form id="f" method="POST" action="{target}/api/v1/tickets" enctype="text/plain">
<input type="hidden" name='{{"title":"csrf-form","content":"' value='"}}'></form>
<script>
window.results = {{}};
const T = "{target}";
const done = (k, v) => {{ window.results[k] = v; }};
fetch(T + "/api/v1/users", {{method: "POST", mode: "no-cors", credentials: "include",
  headers: {{"Content-Type": "text/plain"}},
  body: JSON.stringify({{username: "evil", password: "evil-pass-123", role: "admin"}})}})
  .then(() => done("users", "sent"), e => done("users", "error " + e));
fetch(T + "/api/v1/tickets", {{method: "POST", mode: "no-cors", credentials: "include",
  body: JSON.stringify({{title: "csrf-fetch"}})}})
  .then(() => done("tickets", "sent"), e => done("tickets", "error " + e));
const ws = new WebSocket(T.replace("http", "ws") + "/ws/telephony");
ws.onopen = () => done("ws_open", true);
ws.onmessage = e => done("ws_message", e.data);
ws.onclose = e => done("ws_closed", e.code);
</script>"""


async def attacker_server(target: str) -> tuple[aioweb.AppRunner, str]:
    async def page(request: aioweb.Request) -> aioweb.Response:
        return aioweb.Response(text=ATTACK.format(target=target), content_type="text/html")

    app = aioweb.Application()
    app.router.add_get("/", page)
    runner = aioweb.AppRunner(app, access_log=None)
    await runner.setup()
    return runner, await serve(runner)


async def wait_for(page: Any, expr: str, timeout: float = 90.0) -> Any:  # a failure guard, for a loaded machine
    await page.wait_for_function(expr, timeout=timeout * 1000)
    return await page.evaluate(expr)


async def test_a_page_on_another_port_can_neither_write_nor_listen(console: Console, browser: Any) -> None:
    admin_password = console.app[server.SETTINGS].server.admin_password
    ctx = await browser.new_context(locale="zh-CN")
    victim = await ctx.new_page()
    await victim.goto(console.base + "/login")
    await victim.fill("#username", "admin")
    await victim.fill("#password", admin_password)
    await victim.click("button[type=submit]")
    await victim.wait_for_url(lambda url: "/login" not in url)
    cookie = next(c for c in await ctx.cookies() if c["name"] == "hotline_session")
    assert cookie["sameSite"] == "Strict" and cookie["httpOnly"]

    runner, evil = await attacker_server(console.base)
    try:
        attack = await ctx.new_page()
        await attack.goto(evil + "/")
        results = await wait_for(attack, "window.results.users && window.results.tickets && "
                                         "(window.results.ws_closed !== undefined || window.results.ws_message !== undefined) && "
                                         "window.results")
        assert not results.get("ws_open") and "ws_message" not in results, results
        # The form posts as a top-level navigation; the browser lands on the server's answer.
        async with attack.expect_navigation():
            await attack.evaluate("document.getElementById('f').submit()")
        answer = json.loads(await attack.evaluate("document.body.innerText"))
        assert answer["error"] == "cross_site_request", answer
    finally:
        await runner.cleanup()

    await asyncio.sleep(0.2)
    users = await console.app[USERS].list_users()
    assert "evil" not in {u.username for u in users}
    made = await console.store.list(TicketQuery(text="csrf", limit=10), SYSTEM)
    assert made["total"] == 0, made["items"]

    # The console's own fetches and socket keep working in the same browser.
    created = await victim.evaluate("""Hotline.api("POST", "/api/v1/tickets", {title: "本站工单", content: "x"})""")
    assert created["number"]
    opened = await victim.evaluate("""new Promise(ok => { const ws = new WebSocket(location.origin.replace("http",
        "ws") + "/ws/telephony"); ws.onmessage = () => { ok(true); ws.close(); }; ws.onclose = () => ok(false); })""")
    assert opened is True
    await ctx.close()
