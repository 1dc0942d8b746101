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
from tests.services import serve
from tests.telephony.fake_ami import Capture, FakeAmi, requires_captures
from tickets.accounts.http import USERS
from tickets.http import STORE

from .conftest import PASSWORD, SYSTEM, Console, login

pytestmark = [pytest.mark.browser, requires_captures]

# answered_call: queue 12345, member agent-8001 at Local/8001@agents/n answers 13800138000 (Linkedid 1795383048.0)
IFACE = "Local/8001@agents/n"
CALLER = "13800138000"
CALL_ID = "1795383048.0"


@pytest.fixture
async def live_server(settings_factory, redis_url, sqlite_url, sqlite_template) -> AsyncIterator[Any]:
    """``make(capture, **fake_kw)``: the whole server (server.create_app, as deployed: console on
    /ws/telephony) on a TCP port, its AMI client connected to a fake Asterisk serving the capture, held at
    the start; and an agent account on the capture's agent-8001 interface."""
    made: list[tuple[aioweb.AppRunner, FakeAmi]] = []

    async def make(capture: str, **fake_kw: Any) -> tuple[Console, FakeAmi, Capture]:
        cap = Capture.load(capture)
        fake = FakeAmi(cap, **fake_kw)
        fake.hold_start()  # stream nothing until the agent is watching
        ami_port = await fake.start()
        shutil.copyfile(sqlite_template, sqlite_url.split("///", 1)[1])
        settings = settings_factory(database_url=sqlite_url, redis_url=redis_url,
                                    ami={"enabled": True, "host": "127.0.0.1", "port": ami_port, "secret": "s",
                                         "action_timeout": 30, "reconnect_min": 0.05, "reconnect_max": 0.5})
        app = server.create_app(settings)
        runner = aioweb.AppRunner(app, access_log=None)
        await runner.setup()
        made.append((runner, fake))
        base = await serve(runner)
        users = app[USERS]
        depts = {d.code: d.id for d in (await users.load_departments()).values()}
        people = {"agent": await users.create_user("zuoxi8001", PASSWORD, "agent", display_name="周晓",
                                                   interface=IFACE)}
        return Console(app, base, depts, people), fake, cap

    try:
        yield make
    finally:
        for runner, fake in made:
            await runner.cleanup()
            await fake.close()


async def test_replayed_call_pops_draft_that_agent_edits_and_dispatches(live_server, browser) -> None:
    console, fake, cap = await live_server("answered_call", errors={"QueuePause": "Interface not found"})
    store: Any = console.app[STORE]
    earlier = await store.create({"channel": "phone", "caller_phone": CALLER, "title": "路灯不亮",
                                  "content": "上次反映过幸福路路灯不亮"}, console.users["agent"])

    page = await login(browser, console, "zuoxi8001")
    assert page.url.endswith("/agent")
    # connected to the PBX, nothing streamed yet: this extension is in no queue
    await page.wait_for_function("() => document.getElementById('status-text').textContent.includes('未签入')",
                                 timeout=90_000)

    # queue sign-in goes to Asterisk as QueueAdd for this account's interface
    await page.fill("#queue-name", "12345")
    await page.click("#btn-qlogin")
    await page.wait_for_function("() => document.getElementById('toast').textContent.includes('已签入队列 12345')")
    add = [a for a in fake.actions if a.get("Action") == "QueueAdd"]
    assert add and add[0]["Queue"] == "12345" and add[0]["Interface"] == IFACE

    # the capture up to the moment the agent answers
    fake.hold_at(cap.index(lambda m: m.get("Event") == "AgentConnect"))
    fake.go()
    await page.wait_for_selector("#screen-pop:not(.hidden)", timeout=90_000)
    assert CALLER in await page.inner_text("#pop-caller")
    assert "队列 12345" in await page.inner_text("#pop-meta")
    await page.wait_for_selector("#pop-repeat:not(.hidden)")
    assert earlier["number"] in await page.inner_text("#pop-history")
    await page.wait_for_function(f"() => document.getElementById('status-call').textContent.includes('{CALLER}')")
    assert "通话中" in await page.inner_text("#status-text")
    assert "12345" in await page.inner_text("#status-queues")

    # Asterisk refuses the pause: its own words reach the agent
    await page.click("#btn-pause")
    await page.wait_for_selector("#agent-error:not(.hidden)")
    assert "Interface not found" in await page.inner_text("#agent-error")

    # the committed draft, linked to the call, opens from the pop
    number = (await page.get_attribute("#pop-open", "href")).split("ticket=", 1)[1]
    assert number in await page.inner_text("#pop-open")
    assert number in await page.inner_text("#work-list")
    await page.click("#pop-open")
    await page.wait_for_url(f"**/agent?ticket={number}")
    assert await page.input_value("[name=caller_phone]") == CALLER
    assert CALL_ID in await page.inner_text("#ticket-editor")
    # still on the call: the pop stays on the draft's page
    await page.wait_for_selector("#screen-pop:not(.hidden)")
    assert CALLER in await page.inner_text("#pop-caller")
    await page.fill("[name=title]", "幸福路路灯仍然不亮")
    await page.fill("[name=content]", "市民反映南湖区幸福路18号附近路灯连续一周不亮，夜间出行不便。")
    await page.fill("[name=address]", "南湖区幸福路18号")
    await page.click("#btn-save")
    await page.wait_for_function("() => document.getElementById('toast').textContent.includes('已保存')")
    lead = next(iter(console.departments.values()))
    await page.select_option("#d-lead", str(lead))
    await page.fill("#d-note", "请尽快维修")
    await page.click("#btn-dispatch")
    await page.wait_for_url(console.base + "/agent", timeout=90_000)

    ticket = await store.get(number, SYSTEM)
    assert ticket["status"] == "dispatched" and ticket["call_id"] == CALL_ID
    assert ticket["lead_department_id"] == lead
    assert ticket["title"] == "幸福路路灯仍然不亮" and "连续一周不亮" in ticket["content"]
    assert ticket["caller_phone"] == CALLER


async def test_abandoned_caller_is_called_back_in_one_click(live_server, browser) -> None:
    console, fake, cap = await live_server("abandoned_call")
    page = await login(browser, console, "zuoxi8001")
    await page.wait_for_function("() => document.getElementById('status-text').textContent.includes('未签入')",
                                 timeout=90_000)
    # up to the end of the abandoned call: the hotline-side channel's Hangup after QueueCallerAbandon (the
    # missed call is listed when the call ends, when it is known to be an abandon and not a queue timeout);
    # the socket stays open: no Logoff yet
    abandon = cap.index(lambda m: m.get("Event") == "QueueCallerAbandon")
    ended = cap.index(lambda m: m.get("Event") == "Hangup" and m.get("Uniqueid") == m.get("Linkedid")
                      and m.get("Channel", "").endswith(";1"))
    assert ended > abandon
    fake.hold_at(ended)
    fake.go()
    # the capture's agents are all paused for paperwork, this one included
    await page.wait_for_function("() => document.getElementById('status-text').textContent.includes('busy-with-paperwork')",
                                 timeout=90_000)
    assert "示忙" in await page.inner_text("#status-text")
    assert not await page.is_disabled("#btn-unpause")
    # the missed call arrives without a reload
    await page.wait_for_selector("#callbacks li.callback", timeout=90_000)
    assert "13900139000" in await page.inner_text("#callbacks")
    assert "放弃" in await page.inner_text("#callbacks")
    await page.click("#callbacks button.cb-call")
    await page.wait_for_selector("#callbacks li.callback[data-status=calling]")
    orig = [a for a in fake.actions if a.get("Action") == "Originate"]
    # the agent's own phone first, then the dialplan dials the citizen
    assert orig and (orig[-1]["Channel"], orig[-1]["Exten"]) == (IFACE, "13900139000")
    await page.click("#callbacks button.cb-result[data-result=done]")
    await page.wait_for_function("() => document.getElementById('callbacks').textContent.includes('暂无未接来电')")
    done = await console.app[server.TELEPHONY].store.callbacks("done")
    assert [c["caller_num"] for c in done] == ["13900139000"] and done[0]["agent_interface"] == IFACE
    # unpausing reaches Asterisk as QueuePause for this interface
    await page.click("#btn-unpause")
    await page.wait_for_function("() => document.getElementById('toast').textContent.includes('已示闲')")
    pause = [a for a in fake.actions if a.get("Action") == "QueuePause"][-1]
    assert pause["Interface"] == IFACE and pause["Paused"] == "false"
