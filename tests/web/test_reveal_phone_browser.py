"""显示号码 in headless Chromium under the page's Content-Security-Policy: the department's ticket page shows the
caller's number masked, one click shows the whole number (app.js, no inline handler) and it is on the record."""
from __future__ import annotations

import pytest

from tickets.accounts.http import USERS

from .conftest import Console, login
from .test_pages import dispatched

pytestmark = pytest.mark.browser


async def test_a_department_reveals_the_number_with_one_click(console: Console, browser) -> None:
    number = await dispatched(console)
    page = await login(browser, console, "water1")
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    await page.goto(f"{console.base}/tickets/{number}")
    assert await page.inner_text("#caller-phone") == "139****8888"
    await page.click("#reveal-phone")
    await page.wait_for_function("() => document.getElementById('caller-phone').textContent === '13912348888'")
    assert await page.locator("#reveal-phone").count() == 0
    log = await console.app[USERS].audit.list(category="access", subject=f"ticket:{number}")
    assert [(e["action"], e["actor_username"]) for e in log["items"]] == [("reveal_phone", "water1")]
    assert [e for e in errors if "Content Security Policy" in e] == []
