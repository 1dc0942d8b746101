"""Agent console live parts in Chromium against the real server and the real telephony package: the status
panel from the /ws/telephony snapshot and patches, the screen pop, the missed-call list with one-click call,
pause and queue buttons with the server's refusal shown, knowledge search and answer on the spot.

AMI is off here (the server's default), so the telephony service folds what the test submits: AMI events as
Asterisk sends them, through the real reducer, effects (screen-pop lookup, callback list), Redis and the
WebSocket. Agent actions then answer 503 ami_not_connected, which the console must show."""
from __future__ import annotations

import time
from typing import Any

import pytest
from aiohttp import web as aioweb

import server
from tickets.accounts.http import USERS
from tickets.knowledge.http import KNOWLEDGE

from .conftest import PASSWORD, SYSTEM, login

pytestmark = pytest.mark.browser

IFACE = "PJSIP/8001"
# tests/web/conftest.py calls web.setup() a second time, which resets the socket path to web.setup's default
# ("/ws/agent", from before telephony was merged): pass the path server.create_app gives.
WS = "/ws/telephony"


def has_route(app: aioweb.Application, method: str, path: str) -> bool:
    """True when the app already serves ``path`` (another package's route), so no stand-in is added."""
    req_path = path.replace("{number}", "12345-20260101-0001")
    for resource in app.router.resources():
        info = resource.get_info()
        if resource.canonical == path or ("pattern" in info and info["pattern"].fullmatch(req_path)):
            return any(r.method == method for r in resource)
    return False


class Pbx:
    """AMI events in Asterisk's own shape, submitted to the running server's telephony service."""

    def __init__(self, app: aioweb.Application) -> None:
        self.svc: Any = app[server.TELEPHONY]
        self.t = time.time()

    async def send(self, *events: dict[str, str]) -> None:
        for ev in events:
            self.t += 0.5
            self.svc.submit({"Timestamp": f"{self.t:.6f}", **ev})
        await self.svc.drain()

    @staticmethod
    def member(queue: str, iface: str, name: str, paused: bool = False, reason: str = "") -> dict[str, str]:
        return {"Event": "QueueMember", "Queue": queue, "Name": name, "Location": iface, "StateInterface": iface,
                "Membership": "dynamic", "Penalty": "0", "CallsTaken": "3", "LastCall": "0", "LastPause": "0",
                "InCall": "0", "Status": "1", "Paused": "1" if paused else "0", "PausedReason": reason}

    @staticmethod
    def join(queue: str, uid: str, caller: str) -> dict[str, str]:
        return {"Event": "QueueCallerJoin", "Queue": queue, "Uniqueid": uid, "Linkedid": uid, "Channel":
                f"PJSIP/trunk-{uid}", "CallerIDNum": caller, "CallerIDName": caller, "Position": "1", "Count": "1"}


async def agent_user(console: Any, username: str = "agent8001", interface: str | None = IFACE) -> Any:
    return await console.app[USERS].create_user(username, PASSWORD, "agent", display_name="孙悦", interface=interface)


async def test_status_pop_callbacks_refusals_and_answer_on_spot(console_factory, browser) -> None:
    console = await console_factory(None, telephony_ws=WS)
    await agent_user(console)
    earlier = await console.draft(title="上月噪音投诉")
    await console.store.act(earlier["number"], "mark_invalid", {"reason": "测试"}, console.users["agent"])
    kb = console.app[KNOWLEDGE]
    await kb.create({"question": "夜间施工噪音如何处理？", "answer": "夜间22时至次日6时禁止施工作业，可转住建部门查处。",
                     "keywords": "噪音 施工"}, console.users["super"])
    await kb.create({"question": "去年的噪音政策", "answer": "已废止", "keywords": "噪音", "valid_to": "2020-01-01"},
                    console.users["super"])
    pbx = Pbx(console.app)

    page = await login(browser, console, "agent8001")
    await page.wait_for_function("() => document.getElementById('status-text').textContent.includes('未签入')")
    # status: my member entries in two queues, paused with the reason; another agent's entries are not mine
    await pbx.send(Pbx.member("12345-main", IFACE, "agent-8001", True, "培训"),
                   Pbx.member("12345-en", IFACE, "agent-8001", True, "培训"),
                   Pbx.member("12345-main", "PJSIP/8002", "agent-8002"))
    await page.wait_for_function("() => document.getElementById('status-text').textContent.includes('示忙（培训）')")
    queues = await page.inner_text("#status-queues")
    assert "12345-main" in queues and "12345-en" in queues and "示忙：培训" in queues
    assert await page.locator("#status-queues li").count() == 2
    assert await page.is_disabled("#btn-pause") and not await page.is_disabled("#btn-unpause")

    # unpausing goes to the real endpoint; without Asterisk its refusal text is shown to the agent
    await page.click("#btn-unpause")
    await page.wait_for_selector("#agent-error:not(.hidden)")
    assert "未连接" in await page.inner_text("#agent-error")

    # a caller gives up in the queue: the missed call appears without a reload (the "missed" broadcast)
    # (the abandon, leave and hang-up in the order and with the fields of the abandoned_call capture: the
    # missed call is listed when the caller's channel hangs up)
    await pbx.send({"Event": "Newchannel", "Channel": "PJSIP/trunk-1732.1", "ChannelState": "4",
                    "ChannelStateDesc": "Ring", "CallerIDNum": "13800001111", "CallerIDName": "13800001111",
                    "Context": "incoming", "Exten": "12345", "Priority": "1", "Uniqueid": "1732.1",
                    "Linkedid": "1732.1"},
                   Pbx.join("12345-main", "1732.1", "13800001111"),
                   {"Event": "QueueCallerAbandon", "Queue": "12345-main", "Uniqueid": "1732.1", "Linkedid": "1732.1",
                    "Position": "1", "OriginalPosition": "1", "HoldTime": "42"},
                   {"Event": "QueueCallerLeave", "Queue": "12345-main", "Uniqueid": "1732.1", "Linkedid": "1732.1",
                    "Channel": "PJSIP/trunk-1732.1", "Position": "1", "Count": "0"},
                   {"Event": "Hangup", "Channel": "PJSIP/trunk-1732.1", "Uniqueid": "1732.1", "Linkedid": "1732.1",
                    "CallerIDNum": "13800001111", "Cause": "16", "Cause-txt": "Normal Clearing"})
    await page.wait_for_selector("#callbacks li.callback")
    assert "13800001111" in await page.inner_text("#callbacks")
    await page.click("#callbacks button.cb-call")
    await page.wait_for_function("() => document.getElementById('agent-error').textContent.includes('未连接')")

    # a queue call connects to this agent: the pop shows the caller, the earlier ticket and the committed draft
    await pbx.send(Pbx.join("12345-main", "1733.5", "13912348888"),
                   {"Event": "AgentConnect", "Queue": "12345-main", "Uniqueid": "1733.5", "Linkedid": "1733.5",
                    "Interface": IFACE, "MemberName": "agent-8001", "DestUniqueid": "1733.6", "HoldTime": "4",
                    "RingTime": "2", "CallerIDNum": "13912348888"})
    await page.wait_for_selector("#screen-pop:not(.hidden)")
    assert "13912348888" in await page.inner_text("#pop-caller")
    await page.wait_for_selector("#pop-repeat:not(.hidden)")
    assert earlier["number"] in await page.inner_text("#pop-history")
    await page.wait_for_function("() => document.getElementById('status-call').textContent.includes('13912348888')")
    href = await page.get_attribute("#pop-open", "href")
    number = href.split("ticket=", 1)[1]
    draft = await console.store.get(number, SYSTEM)
    assert draft["status"] == "draft" and draft["call_id"] == "1733.5" and draft["caller_phone"] == "13912348888"

    # recognition fills the draft (as asr does when the call ends): the city's rule now routes it
    await console.store.attach_draft("1733.5", None, {}, {"content": "楼下工地夜间施工，噪音很大，影响休息。"}, SYSTEM)
    await page.click("#pop-open")
    await page.wait_for_url(f"**/agent?ticket={number}")
    await page.wait_for_selector("#routing-card:not(.hidden)")
    assert "关键词：夜间施工" in await page.inner_text("#routing")
    assert await page.input_value("#d-lead") == str(console.departments["sthj"])
    # knowledge: Alt+K focuses the search ("/" finds a ticket); only the valid entry is found; quoting fills the answer
    await page.fill("[name=content]", "楼下工地夜间施工噪音。")
    await page.evaluate("document.activeElement.blur()")
    await page.keyboard.press("Alt+k")
    await page.keyboard.type("噪音")
    await page.wait_for_selector("#kb-results .kb-item")
    results = await page.inner_text("#kb-results")
    assert "夜间施工噪音如何处理" in results and "已废止" not in results
    await page.click("#kb-results .kb-use")
    assert "禁止施工作业" in await page.input_value("#a-answer")
    await page.keyboard.press("Alt+j")
    await page.wait_for_url(console.base + "/agent")
    ticket = await console.store.get(number, SYSTEM)
    assert ticket["status"] == "answered_on_spot" and "禁止施工作业" in ticket["answer"]
    assert ticket["content"] == "楼下工地夜间施工噪音。"


async def test_console_without_calls_or_interface(console_factory, browser) -> None:
    console = await console_factory(telephony_ws=WS)
    draft = await console.draft()
    await agent_user(console)
    page = await login(browser, console, "agent8001")
    await page.goto(console.base + f"/agent?ticket={draft['number']}")
    # the real callbacks API answers (empty); the status panel comes from the snapshot
    await page.wait_for_selector("#callbacks-card:not(.hidden)")
    assert "暂无未接来电" in await page.inner_text("#callbacks")
    await page.wait_for_function("() => document.getElementById('status-text').textContent.includes('未签入')")
    assert "未签入任何队列" in await page.inner_text("#status-queues")
    # signing in to a queue without Asterisk: the server's message, not a silent failure
    await page.fill("#queue-name", "12345")
    await page.click("#btn-qlogin")
    await page.wait_for_selector("#agent-error:not(.hidden)")
    assert "未连接" in await page.inner_text("#agent-error")
    # the city's rule for night-time construction routes the draft, with the rule named as the reason
    await page.wait_for_selector("#routing-card:not(.hidden)")
    assert "规则：噪音扰民(夜间施工)" in await page.inner_text("#routing")
    # an account without an extension gets no queue or pause buttons, and is told why
    page2 = await login(browser, console, "agent1")
    await page2.wait_for_selector("#agent-status")
    assert await page2.locator("#agent-controls").count() == 0
    assert "没有绑定分机" in await page2.inner_text("#agent-status")


def abandoned(uid: str, caller: str, queue: str = "12345-main") -> list[dict[str, str]]:
    """One caller giving up in the queue, in the abandoned_call capture's order (listed at the Hangup)."""
    chan = f"PJSIP/trunk-{uid}"
    return [{"Event": "Newchannel", "Channel": chan, "ChannelState": "4", "ChannelStateDesc": "Ring",
             "CallerIDNum": caller, "CallerIDName": caller, "Context": "incoming", "Exten": "12345",
             "Priority": "1", "Uniqueid": uid, "Linkedid": uid},
            Pbx.join(queue, uid, caller),
            {"Event": "QueueCallerAbandon", "Queue": queue, "Uniqueid": uid, "Linkedid": uid, "Position": "1",
             "OriginalPosition": "1", "HoldTime": "30"},
            {"Event": "QueueCallerLeave", "Queue": queue, "Uniqueid": uid, "Linkedid": uid, "Channel": chan,
             "Position": "1", "Count": "0"},
            {"Event": "Hangup", "Channel": chan, "Uniqueid": uid, "Linkedid": uid, "CallerIDNum": caller,
             "Cause": "16", "Cause-txt": "Normal Clearing"}]


async def test_missed_calls_reach_the_console_on_the_socket_without_list_requests(console_factory, browser) -> None:
    """200 abandoned calls: the console's list follows the socket alone (no request per missed call)."""
    import aiohttp

    console = await console_factory(None, telephony_ws=WS)
    await agent_user(console)
    pbx = Pbx(console.app)
    # 10:00 in the centre's day (Asia/Shanghai) of a fixed date: the 200 calls never straddle a midnight,
    # so a caller's repeated misses are one entry whatever the day the test runs
    pbx.t = 1795399200.0  # 2026-11-23 10:00 +08:00
    page = await login(browser, console, "agent8001")
    await page.wait_for_selector("#callbacks-card:not(.hidden)")  # the initial load over HTTP answered
    list_requests: list[str] = []
    page.on("request", lambda r: list_requests.append(r.url)
            if r.method == "GET" and "/api/v1/telephony/callbacks" in r.url else None)

    numbers = [f"1380000{n:04d}" for n in range(150)]
    events = [ev for i in range(200) for ev in abandoned(f"1795399.{i}", numbers[i % 150])]
    await pbx.send(*events)
    await page.wait_for_function("() => document.querySelectorAll('#callbacks li.callback').length === 150",
                                 timeout=60_000)
    text = await page.inner_text("#callbacks")
    assert all(n in text for n in numbers)
    # numbers 0-49 tried twice: one entry each, with the count
    first = page.locator("#callbacks li.callback", has_text=numbers[0])
    assert await first.count() == 1 and "2次" in await first.inner_text()
    assert "2次" not in await page.locator("#callbacks li.callback", has_text=numbers[149]).inner_text()

    # another agent records a result over the API: this console drops the entry from the socket's message
    async with aiohttp.ClientSession(console.base) as http:
        r = await http.post("/api/v1/auth/login", json={"username": "super1", "password": PASSWORD, "kind": "api"})
        token = (await r.json())["token"]
        entry_id = await first.get_attribute("data-id")
        r = await http.post(f"/api/v1/telephony/callbacks/{entry_id}/result", json={"status": "done"},
                            headers={"Authorization": f"Bearer {token}"})
        assert r.status == 200 and (await r.json())["missed_count"] == 2
    await page.wait_for_function("() => document.querySelectorAll('#callbacks li.callback').length === 149")
    assert numbers[0] not in await page.inner_text("#callbacks")
    assert list_requests == []  # nothing beyond the initial load
    # the HTTP list (the initial load) agrees with what the socket built
    page2 = await login(browser, console, "agent8001")
    await page2.wait_for_function("() => document.querySelectorAll('#callbacks li.callback').length === 149")
