"""The citizen's pages in headless Chromium on a phone (390x844, touch, no login): the form fits the width,
a citizen fills it with a photo from the phone, gets the ticket number, looks the case up with the last four
digits of the phone, reads the reply once the department gave it, and taps 没有解决."""
from __future__ import annotations

from typing import Any

import pytest

from tickets.attachments.http import ATTACHMENTS

from .conftest import Console
from .test_dept_phone_browser import PNG, TOO_WIDE, WIDTH

pytestmark = pytest.mark.browser
PHONE = "13698761234"


async def fits(page: Any) -> None:
    width = await page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= WIDTH, (page.url, width, await page.evaluate(TOO_WIDE))
    for sel in ("button[type=submit]", "input:not([type=hidden])", "textarea", "select"):
        for box in [await el.bounding_box() for el in await page.locator(sel).all()]:
            assert box is not None and 0 <= box["x"] and box["x"] + box["width"] <= WIDTH, (page.url, sel, box)


async def test_a_citizen_on_a_phone_reports_and_follows_the_case(console: Console, browser: Any, tmp_path: Any
                                                                 ) -> None:
    ctx = await browser.new_context(viewport={"width": WIDTH, "height": 844}, is_mobile=True, has_touch=True,
                                    device_scale_factor=2, locale="zh-CN")
    page = await ctx.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    await page.goto(console.base + "/citizen")
    await fits(page)
    photo = tmp_path / "路灯.png"
    photo.write_bytes(PNG)
    await page.fill("#content", "南湖区幸福路18号门口路灯不亮已经一周，晚上出行不安全。")
    await page.select_option("#category", "城乡建设")
    await page.fill("#address", "南湖区幸福路18号")
    await page.set_input_files("#photo", str(photo))
    await page.fill("#phone", PHONE)
    await page.tap("#submit")
    await page.wait_for_selector("#ticket-number")
    await fits(page)
    number = (await page.text_content("#ticket-number") or "").strip()
    ticket = await console.store.get(number, console.users["agent"])
    assert (ticket["status"], ticket["channel"], ticket["caller_phone"]) == ("draft", "web", PHONE)
    assert [a["filename"] for a in await console.app[ATTACHMENTS].list(number, console.users["agent"])] == [
        "路灯.png"]

    await page.tap("text=查询进度")
    await page.wait_for_selector("#tail")
    assert await page.input_value("#number") == number  # carried over from the success page
    await page.fill("#tail", PHONE[-4:])
    await page.tap("#lookup")
    await page.wait_for_selector("#case-state")
    await fits(page)
    assert await page.text_content("#case-state") == "已收到，等待受理"
    assert await page.text_content("#case-department") == "处理中"
    assert await page.locator("#unresolved").count() == 0

    agent, water = console.users["agent"], console.users["water"]
    await console.store.act(number, "accept", {}, agent)
    await console.store.act(number, "dispatch", {"lead_department_id": console.departments["swuj"]}, agent)
    await console.store.act(number, "sign", {}, water)
    await console.store.act(number, "reply", {"answer": "路灯已于今日修复。"}, water)

    await page.goto(console.base + f"/citizen/status?number={number}")
    await page.fill("#tail", PHONE[-4:])
    await page.tap("#lookup")
    await page.wait_for_selector("#case-reply")
    await fits(page)
    assert await page.text_content("#case-state") == "已答复"
    assert await page.text_content("#case-department") == "市水务局"
    assert await page.text_content("#case-reply") == "路灯已于今日修复。"
    await page.fill("#note", "还是不亮")
    await page.tap("#unresolved")
    await page.wait_for_selector("#unresolved-recorded")
    await fits(page)
    [item] = await console.store.ledger(console.users["super"])
    assert (item["ticket"], item["resolved"]) == (number, False)
    assert problems == []
    await ctx.close()
