"""Agent console live parts in Chromium: telephony WebSocket status and screen pop, knowledge search,
answer on the spot with the keyboard, optional APIs of other packages shown only when they answer."""
from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web as aioweb

from tickets.knowledge_http import KNOWLEDGE

from .conftest import SYSTEM, login

pytestmark = pytest.mark.browser


async def test_screen_pop_knowledge_and_answer_on_spot(console_factory, browser) -> None:
    calls: dict[str, str] = {}
    dialled: list[str] = []

    async def agent_ws(request: aioweb.Request) -> aioweb.WebSocketResponse:
        # Stands in for the telephony package's /ws/agent: the messages its agent console sends.
        ws = aioweb.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(json.dumps({"type": "agent_status", "queues": ["12345-main", "12345-en"],
                                      "paused": True, "reason": "培训"}))
        await asyncio.sleep(0.3)
        await ws.send_str(json.dumps({"type": "call_connected", "caller": "13912348888", "call_id": "1732.7",
                                      "queue": "12345-main", "ticket": calls.get("draft")}))
        async for _ in ws:
            pass
        return ws

    async def callbacks(request: aioweb.Request) -> aioweb.Response:
        return aioweb.json_response([{"id": "cb1", "caller": "13800001111", "at": "2026-11-23T01:00:00+00:00",
                                      "waited": 42}])

    async def dial(request: aioweb.Request) -> aioweb.Response:
        dialled.append(request.match_info["id"])
        return aioweb.json_response({"ok": True})

    async def routing(request: aioweb.Request) -> aioweb.Response:
        return aioweb.json_response({"suggestions": [{"department_id": console_ids["sthj"], "department": "市生态环境局",
                                                      "score": 0.82, "reasons": ["关键词：噪音", "地址：南湖区"]}]})

    console_ids: dict[str, int] = {}

    def routes(app: aioweb.Application) -> None:
        app.router.add_get("/ws/agent", agent_ws)
        app.router.add_get("/api/v1/telephony/callbacks", callbacks)
        app.router.add_post("/api/v1/telephony/callbacks/{id}/dial", dial)
        app.router.add_get("/api/v1/tickets/{number}/routing", routing)

    console = await console_factory(routes)
    console_ids.update(console.departments)
    earlier = await console.draft(title="上月噪音投诉")
    await console.store.act(earlier["number"], "mark_invalid", {"reason": "测试"}, console.users["agent"])
    draft = await console.draft()
    calls["draft"] = draft["number"]
    kb = console.app[KNOWLEDGE]
    await kb.create({"question": "夜间施工噪音如何处理？", "answer": "夜间22时至次日6时禁止施工作业，可转住建部门查处。",
                     "keywords": "噪音 施工"}, console.users["super"])
    await kb.create({"question": "去年的噪音政策", "answer": "已废止", "keywords": "噪音", "valid_to": "2020-01-01"},
                    console.users["super"])

    page = await login(browser, console, "agent1")
    # status and screen pop from the WebSocket
    await page.wait_for_function("document.getElementById('status-text').textContent.includes('培训')")
    assert "12345-main" in await page.inner_text("#status-queues")
    await page.wait_for_selector("#screen-pop:not(.hidden)")
    assert "13912348888" in await page.inner_text("#pop-caller")
    await page.wait_for_selector("#pop-repeat:not(.hidden)")  # the caller has an earlier ticket
    assert earlier["number"] in await page.inner_text("#pop-history")
    # missed calls with one-click callback
    await page.click("#callbacks button[data-id=cb1]")
    await page.wait_for_function("document.getElementById('toast').textContent.includes('回拨')")
    assert dialled == ["cb1"]

    await page.click("#pop-open")
    await page.wait_for_url(f"**/agent?ticket={draft['number']}")
    # routing suggestion pre-selects the department, with its reasons
    await page.wait_for_selector("#routing-card:not(.hidden)")
    assert "关键词：噪音" in await page.inner_text("#routing")
    assert await page.input_value("#d-lead") == str(console.departments["sthj"])
    # knowledge: "/" focuses the search; only the valid entry is found; quoting fills the answer
    await page.keyboard.press("/")
    await page.keyboard.type("噪音")
    await page.wait_for_selector("#kb-results .kb-item")
    results = await page.inner_text("#kb-results")
    assert "夜间施工噪音如何处理" in results and "已废止" not in results
    await page.click("#kb-results .kb-use")
    assert "禁止施工作业" in await page.input_value("#a-answer")
    await page.keyboard.press("Alt+j")
    await page.wait_for_url(console.base + "/agent")
    ticket = await console.store.get(draft["number"], SYSTEM)
    assert ticket["status"] == "answered_on_spot" and "禁止施工作业" in ticket["answer"]


async def test_optional_panels_stay_hidden_without_their_apis(console, browser) -> None:
    draft = await console.draft()
    page = await login(browser, console, "agent1")
    await page.goto(console.base + f"/agent?ticket={draft['number']}")
    await page.wait_for_load_state("networkidle")
    assert await page.locator("#routing-card.hidden").count() == 1
    assert await page.locator("#callbacks-card.hidden").count() == 1
    assert "未连接" in await page.inner_text("#status-text")
