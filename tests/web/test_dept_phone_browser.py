"""The department portal on a phone (390x844, touch): every page fits the width with no horizontal scroll,
退出 and 签收 are on screen, the ticket text reads in lines, and a handler signs, reports progress, asks for an
extension, attaches a photo from the phone's camera and replies, all by tapping."""
from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from .conftest import PASSWORD, Console, RunningClock

pytestmark = pytest.mark.browser
WIDTH = 390
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
       b"\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82")
# The widest elements when a page is too wide: what to fix.
TOO_WIDE = """() => [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 390.5)
  .slice(0, 8).map(e => e.tagName + '#' + e.id + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))"""


async def phone(browser: Any, console: Console, username: str) -> Any:
    ctx = await browser.new_context(viewport={"width": WIDTH, "height": 844}, is_mobile=True, has_touch=True,
                                    device_scale_factor=2, locale="zh-CN")
    page = await ctx.new_page()
    await page.goto(console.base + "/login")
    await fits(page)
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.tap("button[type=submit]")
    await page.wait_for_url(lambda url: "/login" not in url)
    return page


async def fits(page: Any) -> None:
    width = await page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= WIDTH, (page.url, width, await page.evaluate(TOO_WIDE))
    for sel in ("#logout", "header.top nav a"):
        for box in [await el.bounding_box() for el in await page.locator(sel).all()]:
            assert box is not None and 0 <= box["x"] and box["x"] + box["width"] <= WIDTH, (page.url, sel, box)


async def open_ticket(page: Any, console: Console, number: str) -> None:
    await page.goto(console.base + f"/tickets/{number}")
    await fits(page)
    text = await page.locator("#ticket-content").bounding_box()
    assert text is not None and text["width"] > WIDTH * 0.6  # lines of text, not one character per line
    actions = await page.locator("#actions").bounding_box()
    history = await page.locator("#history").bounding_box()
    assert actions is not None and history is not None and text["y"] < actions["y"] < history["y"]  # text, actions


async def act(page: Any, action: str, fields: dict[str, str], status: str) -> None:
    box = page.locator(f"details[data-action={action}]")
    if await box.get_attribute("open") is None:
        await box.locator("summary").tap()
    for sel, value in fields.items():
        await page.fill(sel, value)
    await fits(page)
    async with page.expect_navigation():  # done: the page reloads with the new state
        await box.locator("button[type=submit]").tap()
    await page.wait_for_function("s => document.getElementById('ticket-status').textContent.includes(s)", arg=status)
    await fits(page)


async def test_every_department_page_works_at_390_px(console_factory, browser) -> None:
    # What the pages hold depends on the date (deadlines, a note when they reach a year whose holidays are not
    # entered, as dispatches from mid-December do): a fixed Monday morning at the real pace, so the widths
    # checked are the same on any day.
    start = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    console = await console_factory(clock=RunningClock(start))
    agent = console.users["agent"]
    numbers = []
    for title in ("幸福路自来水管爆裂，水漫到小区门口，请尽快派人维修，已经持续两个多小时", "停水", "水压低"):
        t = await console.draft(title=title, content="南湖区幸福路18号小区门口自来水管爆裂，" * 6)
        await console.store.act(t["number"], "accept", {}, agent)
        await console.store.act(t["number"], "dispatch", {"lead_department_id": console.departments["swuj"]}, agent)
        numbers.append(t["number"])
    first, second, third = numbers

    page = await phone(browser, console, "water1")
    assert page.url.endswith("/dept")
    await fits(page)
    sign = page.locator(f"#inbox [data-number='{first}'] button[type=submit]")
    await sign.tap()  # 签收 straight from the inbox
    await page.wait_for_function("n => !document.querySelector(`#inbox [data-number='${n}'] button[type=submit]`)",
                                 arg=first)
    await fits(page)
    for tab in ("co", "done", "inbox"):
        await page.goto(console.base + f"/dept?tab={tab}")
        await fits(page)

    await open_ticket(page, console, first)
    await act(page, "progress_report", {"#progress_report-note": "已安排抢修队到场"}, "办理中")
    await act(page, "request_extension", {"#request_extension-days": "2",
                                          "#request_extension-reason": "需更换主管道，等待材料"}, "办理中")
    camera = page.locator("#up-camera")
    assert (await camera.get_attribute("accept"), await camera.get_attribute("capture")) == ("image/*", "environment")
    await camera.set_input_files(files=[{"name": "现场.png", "mimeType": "image/png", "buffer": PNG}])
    await page.locator("#upload-form button[type=submit]").tap()
    await page.wait_for_selector("img[alt='现场.png']")
    await fits(page)
    await act(page, "reply", {"#reply-answer": "已更换爆裂管道，恢复供水。"}, "已办结")

    await open_ticket(page, console, second)
    await act(page, "sign", {}, "办理中")
    await open_ticket(page, console, third)
    await act(page, "return", {"#return-note": "不属于本单位职责，应由燃气公司办理"}, "退单")
    await page.goto(console.base + "/knowledge")
    await fits(page)
