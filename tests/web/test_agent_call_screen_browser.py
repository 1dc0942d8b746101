"""Done when, during a replayed call (the answered_call AMI capture served by a fake Asterisk to the running
server, the caller's words published as a recognition worker publishes them) in Chromium at 1366x768: the
screen pop leaves one form, the call's draft; caller, live words, draft, suggestions and 受理并派单 are all
in the window without scrolling; the routing suggestion follows the words heard; after the call the
recording's transcript replaces the live lines and the fields it reads differently are marked; and a call
handled without a ticket closes its draft as 无效件 with its reason in one key, listed under "?"."""
from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from asr import live
from asr import service as asr_service
from tests.telephony.fake_ami import requires_captures
from tests.web.test_live_capture_browser import CALL_ID, live_server  # noqa: F401  (fixture)
from tickets.http import STORE

from .conftest import SYSTEM, login

pytestmark = [pytest.mark.browser, requires_captures]

SAID = "我们小区停水两天了，地址是朝阳区幸福小区三号楼"


async def answered(live_server: Any, browser: Any) -> tuple[Any, Any, Any, Any]:  # noqa: F811
    console, fake, cap = await live_server("answered_call")
    page = await login(browser, console, "zuoxi8001")
    await page.wait_for_function("() => document.getElementById('status-text').textContent.length > 0")
    fake.hold_at(cap.index(lambda m: m.get("Event") == "AgentConnect"))
    fake.go()
    await page.wait_for_selector("#screen-pop:not(.hidden)", timeout=90_000)
    return console, fake, cap, page


async def in_window(page: Any, selector: str) -> bool:
    box = await page.locator(selector).bounding_box()
    return box is not None and box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= 1366 \
        and box["y"] + box["height"] <= 768


async def test_one_screen_for_the_call_with_routing_following_the_words_and_the_recording_after(
        live_server: Any, browser: Any, redis_url: str) -> None:  # noqa: F811
    console, fake, cap, page = await answered(live_server, browser)
    redis = Redis.from_url(redis_url)
    try:
        # the pop leaves one form: the call's draft, not the unlinked new-ticket form
        assert await page.is_hidden("#new-ticket")
        await page.click("#pop-open")
        await page.wait_for_url("**/agent?ticket=*")
        number = page.url.split("ticket=", 1)[1]
        await page.wait_for_selector("#screen-pop:not(.hidden)")
        assert await page.evaluate("() => document.querySelectorAll('form#ticket-form').length") == 1
        assert await page.locator("#new-ticket").count() == 0

        await live.RedisPublisher(redis)({
            "type": "asr_live", "call_id": CALL_ID, "speaker": "caller", "label": "市民", "event": "final",
            "stretch": 1, "text": SAID, "start": 0.5, "end": 4.0, "words": [], "fields": live.live_fields(SAID)})
        await page.wait_for_selector("#live-transcript .live-line.final[data-speaker=caller]", timeout=90_000)
        # the content follows the caller's words, and the routing suggestion follows the content
        await page.wait_for_function("() => document.querySelector('[name=content]').value.includes('停水')",
                                     timeout=90_000)
        water = str(console.departments["swuj"])
        await page.wait_for_function(f"() => document.getElementById('d-lead').value === '{water}'", timeout=90_000)
        assert not await page.is_hidden("#routing-card")
        # nothing of it saved behind the agent's back
        assert "停水" not in ((await console.app[STORE].get(number, SYSTEM))["content"] or "")

        # one screen at 1366x768, nothing scrolled
        assert await page.evaluate("() => window.scrollY") == 0
        for selector in ("#btn-dispatch", "#screen-pop", "#pop-caller", "#live-transcript-card", "#routing-card",
                         "#f-title", "#f-content", "#f-address"):
            assert await in_window(page, selector), selector

        # the call ends; recognition of the recording reads the district differently
        await live.RedisPublisher(redis)({
            "type": "asr_live", "call_id": CALL_ID, "speaker": "caller", "label": "市民", "event": "stopped",
            "reason": "hangup", "message": "通话结束"})
        fake.go()
        store = console.app[asr_service.SERVICE].store
        full = "喂你好，我们小区停水两天了，地址是海淀区幸福小区三号楼，麻烦尽快处理。"
        await store.queue(CALL_ID, f"/rec/{CALL_ID}.wav", None, "job-1")
        await store.finish(CALL_ID, f"/rec/{CALL_ID}.wav", {
            "text": full, "segments": [{"speaker": "caller", "start": 0.0, "end": 6.0, "text": full}],
            "words": [], "duration": 6.0, "engine": "test"})
        await page.wait_for_selector("#live-transcript .after-call", timeout=60000)
        assert "海淀" in await page.inner_text("#live-transcript")
        assert "录音转写" in await page.inner_text("#live-status")
        await page.wait_for_selector(".field.changed [name=district]", timeout=90_000)
        assert (await page.input_value("[name=district]")).startswith("海淀")
        assert "实时：朝阳" in await page.inner_text(".field.changed:has([name=district]) .after-call-was")
    finally:
        await redis.aclose()


async def test_a_call_handled_without_a_ticket_closes_its_draft_in_one_key(live_server: Any, browser: Any
                                                                            ) -> None:  # noqa: F811
    console, fake, cap, page = await answered(live_server, browser)
    await page.click("#pop-open")
    await page.wait_for_url("**/agent?ticket=*")
    number = page.url.split("ticket=", 1)[1]
    await page.wait_for_selector("#screen-pop:not(.hidden)")
    await page.keyboard.press("?")
    await page.wait_for_selector("#shortcut-help:not(.hidden)")
    help_text = await page.inner_text("#shortcut-help")
    assert "无效件：打错电话" in help_text and "无效件：无声电话" in help_text
    await page.keyboard.press("Escape")
    await page.keyboard.press("Alt+2")
    await page.wait_for_url(console.base + "/agent", timeout=90_000)
    ticket = await console.app[STORE].get(number, SYSTEM)
    assert ticket["status"] == "invalid"
    history = await console.app[STORE].history(number, SYSTEM)
    assert [h["note"] for h in history if h["action"] == "mark_invalid"] == ["无声电话"]
    assert number not in await page.inner_text("#work-list")  # no draft left over
    # still on the call, the call's draft closed: the new-ticket form is there again for what comes next
    await page.wait_for_selector("#screen-pop:not(.hidden)")
    assert not await page.is_hidden("#new-ticket")
