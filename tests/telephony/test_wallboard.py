"""The wallboard page in headless Chromium, fed by a replayed capture (no Asterisk: AMI disabled)."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fake_ami import CAPTURES, requires_captures
from test_http import login, make_app

from telephony.replay import read_events, stamp
from tickets.accounts import http as accounts_http

pytestmark = [requires_captures,
              pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="/usr/bin/chromium not installed")]

ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


async def test_wallboard_shows_waiting_callers_and_agent_states(aiohttp_client, settings_factory, redis_url,
                                                                tmp_path):
    from playwright.async_api import async_playwright

    events = list(stamp(e for _, e in read_events(CAPTURES / "status_queries.ami")))
    started = datetime.fromtimestamp(next(float(e["Timestamp"]) for e in events if e.get("Timestamp")), UTC)
    settings = settings_factory(redis_url=redis_url)
    app, svc = make_app(settings, lambda: started)  # the server's clock: the capture's day, not today
    client = await aiohttp_client(app)
    sup = await login(client, app[accounts_http.USERS], "banzhang", "supervisor")
    token = sup["Authorization"].split()[1]
    cut = next(i for i, e in enumerate(events)
               if e.get("Event") == "QueueStatusComplete" and e.get("ActionID") == "status_queries-008")
    base = str(client.make_url("/")).rstrip("/")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        try:
            ctx = await browser.new_context(viewport={"width": 1400, "height": 900}, locale="zh-CN")
            await ctx.add_cookies([{"name": accounts_http.COOKIE, "value": token, "url": base}])
            page = await ctx.new_page()
            await page.goto(base + "/wallboard")
            await page.wait_for_selector("#conn[data-state=offline]")
            assert "未连接" in await page.inner_text("#conn")
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            for e in events[:cut + 1]:
                svc.submit(e)
            await svc.drain()
            await page.wait_for_function("() => document.querySelectorAll('tr.waiter').length === 2", timeout=30000)
            callers = await page.eval_on_selector_all("tr.waiter", "rows => rows.map(r => r.dataset.caller)")
            assert callers == ["15900000003", "15900000004"]
            waits = await page.eval_on_selector_all("tr.waiter td.wait", "cells => cells.map(c => c.textContent)")
            elapsed = loop.time() - t0
            # waits count from the PBX time of the moment (3-4 s here), not from the replay's wall clock, and
            # then keep counting locally: at least the PBX wait, at most that plus the time the test took
            q = svc.state.queues["12345"]
            pbx = [svc.state.now - w.joined for w in sorted(q.waiting.values(), key=lambda w: w.position)]
            shown = [int(m) * 60 + int(s) for m, s in (w.split(":") for w in waits)]
            assert all(int(p) <= s <= p + elapsed + 1 for p, s in zip(pbx, shown, strict=True)), (pbx, shown, elapsed)
            assert all(p > 3 for p in pbx), pbx
            states = await page.eval_on_selector_all(
                "tr.agent", "rows => Object.fromEntries(rows.map(r => [r.dataset.interface, r.dataset.state]))")
            assert states == {"Local/8001@agents/n": "in_call", "Local/8002@agents/n": "in_call",
                              "Local/8003@agents/n": "in_call", "Local/8004@agents/n": "available"}
            body = await page.inner_text("body")
            assert "通话中" in body and "空闲" in body and "15秒接通率" in body
            assert await page.inner_text("[data-queue='12345'] .waiting-count") == "2"
            await page.screenshot(path=str(tmp_path / "wallboard.png"), full_page=True)  # kept by pytest's tmp_path
            # the rest of the capture: two callers give up, every call ends
            for e in events[cut + 1:]:
                svc.submit(e)
            await svc.drain()
            await page.wait_for_function("() => document.querySelectorAll('tr.waiter').length === 0", timeout=30000)
            assert await page.inner_text("[data-queue='12345'] .abandoned") == "2"
            assert await page.inner_text("[data-queue='12345'] .answer-rate") == "60.0%"
            await page.wait_for_selector("#alerts div")  # 60 % is below the 95 % target: supervisors are warned
            assert "低于目标" in await page.inner_text("#alerts")
        finally:
            await browser.close()
