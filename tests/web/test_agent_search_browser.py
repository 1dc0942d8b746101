"""Agents find a case in one keystroke: "/" from anywhere on the agent page, then the caller's last 4 digits,
a ticket number or words; "?" lists the page's shortcuts."""
from __future__ import annotations

import pytest

from .conftest import Console, login

pytestmark = pytest.mark.browser


async def test_slash_then_last_four_digits_finds_the_ticket(console: Console, browser) -> None:
    mine = await console.draft(caller_phone="13977776543", title="路灯不亮", content="幸福路路灯坏了三天")
    other = await console.draft(caller_phone="13800001234", title="噪音", content="工地夜间施工")
    await console.store.act(mine["number"], "accept", {}, console.users["agent"])
    page = await login(browser, console, "agent1")
    await page.goto(console.base + f"/agent?ticket={other['number']}")
    await page.click("h2")  # focus somewhere on the page, not in a field
    await page.keyboard.press("/")
    assert await page.evaluate("document.activeElement.id") == "ts-q"
    await page.keyboard.type("6543")
    result = page.locator(f"#ts-results li[data-number='{mine['number']}']")
    await result.wait_for()
    assert "号码后四位" in await result.inner_text()
    assert await page.locator(f"#ts-results li[data-number='{other['number']}']").count() == 0

    await page.fill("#ts-q", mine["number"])  # the whole ticket number
    await page.wait_for_function("n => [...document.querySelectorAll('#ts-results li')].map(li => li.dataset.number)"
                                 ".join() === n", arg=mine["number"])
    await page.fill("#ts-q", "路灯")  # words
    await page.wait_for_function("n => [...document.querySelectorAll('#ts-results li')].map(li => li.dataset.number)"
                                 ".join() === n", arg=mine["number"])
    await page.keyboard.press("Enter")  # opens the first result: an accepted ticket opens on the agent page
    await page.wait_for_url(f"**/agent?ticket={mine['number']}")

    await page.click("h2")
    await page.keyboard.press("?")
    help_box = page.locator("#shortcut-help")
    await help_box.wait_for(state="visible")
    text = await help_box.inner_text()
    assert "查找工单" in text and "受理并派单" in text and "搜索知识库" in text
    await page.keyboard.press("Escape")
    await help_box.wait_for(state="hidden")
