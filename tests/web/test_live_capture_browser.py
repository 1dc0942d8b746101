"""Done when: a real Asterisk capture, served by a fake AMI over real TCP to the running server (panoramisk,
reducer, Redis live view, screen-pop lookup in the ticket store, /ws/telephony), makes the logged-in agent's
console in headless Chromium pop the caller with the committed draft; the agent edits the draft and
dispatches it. On the way, queue sign-in reaches Asterisk and Asterisk's refusal of a pause is shown."""
from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web as aioweb

import server
from tests.services import free_port
from tests.telephony.fake_ami import Capture, FakeAmi, requires_captures
from tickets.http import STORE, USERS

from .conftest import PASSWORD, SYSTEM, Console, login

pytestmark = [pytest.mark.browser, requires_captures]

# answered_call: queue 12345, member agent-8001 at Local/8001@agents/n answers 13800138000 (Linkedid 1795383048.0)
IFACE = "Local/8001@agents/n"
CALLER = "13800138000"
CALL_ID = "1795383048.0"


@pytest.fixture
async def live_server(settings_factory, redis_url, sqlite_url, sqlite_template) -> AsyncIterator[tuple[Console, FakeAmi, Capture]]:
    cap = Capture.load("answered_call")
    fake = FakeAmi(cap, errors={"QueuePause": "Interface not found"})
    fake.hold_start()  # stream nothing until the agent is watching
    ami_port = await fake.start()
    shutil.copyfile(sqlite_template, sqlite_url.split("///", 1)[1])
    settings = settings_factory(database_url=sqlite_url, redis_url=redis_url,
                                ami={"enabled": True, "host": "127.0.0.1", "port": ami_port, "secret": "s",
                                     "action_timeout": 5, "reconnect_min": 0.05, "reconnect_max": 0.5})
    app = server.create_app(settings)  # as deployed: console.setup with /ws/telephony, telephony wired
    runner = aioweb.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    try:
        await aioweb.TCPSite(runner, "127.0.0.1", port).start()
        users = app[USERS]
        depts = {d.code: d.id for d in (await users.load_departments()).values()}
        people = {"agent": await users.create_user("zuoxi8001", PASSWORD, "agent", display_name="周晓",
                                                   interface=IFACE)}
        yield Console(app, f"http://127.0.0.1:{port}", depts, people), fake, cap
    finally:
        await runner.cleanup()
        await fake.close()


async def test_replayed_call_pops_draft_that_agent_edits_and_dispatches(live_server, browser) -> None:
    console, fake, cap = live_server
    store: Any = console.app[STORE]
    earlier = await store.create({"channel": "phone", "caller_phone": CALLER, "title": "路灯不亮",
                                  "content": "上次反映过幸福路路灯不亮"}, console.users["agent"])

    page = await login(browser, console, "zuoxi8001")
    assert page.url.endswith("/agent")
    # connected to the PBX, nothing streamed yet: this extension is in no queue
    await page.wait_for_function("document.getElementById('status-text').textContent.includes('未签入')",
                                 timeout=30000)

    # queue sign-in goes to Asterisk as QueueAdd for this account's interface
    await page.fill("#queue-name", "12345")
    await page.click("#btn-qlogin")
    await page.wait_for_function("document.getElementById('toast').textContent.includes('已签入队列 12345')")
    add = [a for a in fake.actions if a.get("Action") == "QueueAdd"]
    assert add and add[0]["Queue"] == "12345" and add[0]["Interface"] == IFACE

    # the capture up to the moment the agent answers
    fake.hold_at(cap.index(lambda m: m.get("Event") == "AgentConnect"))
    fake.go()
    await page.wait_for_selector("#screen-pop:not(.hidden)", timeout=30000)
    assert CALLER in await page.inner_text("#pop-caller")
    assert "队列 12345" in await page.inner_text("#pop-meta")
    await page.wait_for_selector("#pop-repeat:not(.hidden)")
    assert earlier["number"] in await page.inner_text("#pop-history")
    await page.wait_for_function(f"document.getElementById('status-call').textContent.includes('{CALLER}')")
    assert "通话中" in await page.inner_text("#status-text")
    assert "12345" in await page.inner_text("#status-queues")

    # Asterisk refuses the pause: its own words reach the agent
    await page.click("#btn-pause")
    await page.wait_for_selector("#agent-error:not(.hidden)")
    assert "Interface not found" in await page.inner_text("#agent-error")

    # the committed draft, linked to the call, opens from the pop
    number = (await page.get_attribute("#pop-open", "href")).split("ticket=", 1)[1]
    assert number in await page.inner_text("#pop-open")
    await page.click("#pop-open")
    await page.wait_for_url(f"**/agent?ticket={number}")
    assert await page.input_value("[name=caller_phone]") == CALLER
    assert CALL_ID in await page.inner_text("#ticket-editor")
    await page.fill("[name=title]", "幸福路路灯仍然不亮")
    await page.fill("[name=content]", "市民反映南湖区幸福路18号附近路灯连续一周不亮，夜间出行不便。")
    await page.fill("[name=address]", "南湖区幸福路18号")
    await page.click("#btn-save")
    await page.wait_for_function("document.getElementById('toast').textContent.includes('已保存')")
    lead = next(iter(console.departments.values()))
    await page.select_option("#d-lead", str(lead))
    await page.fill("#d-note", "请尽快维修")
    await page.click("#btn-dispatch")
    await page.wait_for_url(console.base + "/agent", timeout=30000)

    ticket = await store.get(number, SYSTEM)
    assert ticket["status"] == "dispatched" and ticket["call_id"] == CALL_ID
    assert ticket["lead_department_id"] == lead
    assert ticket["title"] == "幸福路路灯仍然不亮" and "连续一周不亮" in ticket["content"]
    assert ticket["caller_phone"] == CALLER
