"""Every page every role reaches loads in headless Chromium without a console error, an uncaught exception,
a Content-Security-Policy violation or a request answering 400 or more (the favicon included)."""
from __future__ import annotations

from typing import Any

import pytest

from tickets.accounts.http import USERS
from web.pages import NAV

from .conftest import PASSWORD, Console, login

pytestmark = pytest.mark.browser


def watch(page: Any) -> list[str]:
    """Everything that went wrong on ``page`` from now on, as readable lines."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status} {r.request.method} {r.url}")
            if r.status >= 400 else None)
    # ERR_ABORTED is a request the browser dropped on leaving the page (the favicon of the page before).
    page.on("requestfailed", lambda r: problems.append(f"failed {r.method} {r.url}: {r.failure}")
            if "ERR_ABORTED" not in (r.failure or "") else None)
    return problems


async def settled(page: Any, url: str) -> None:
    await page.goto(url)
    await page.wait_for_load_state("networkidle")
    # Panels that load after the page (hot issues, surveys) say they are busy until they have drawn.
    await page.wait_for_function("() => !document.querySelector('[aria-busy=true]')")


@pytest.mark.parametrize("role,username", [("agent", "agent1"), ("department", "water1"),
                                           ("supervisor", "super1"), ("admin", "admin1")])
async def test_no_console_error_on_any_page(console: Console, browser, role: str, username: str) -> None:
    await console.app[USERS].create_user("admin1", PASSWORD, "admin", display_name="管理员")
    draft = await console.draft()
    number = draft["number"]
    store = console.store
    await store.act(number, "accept", {}, console.users["agent"])
    await store.act(number, "dispatch", {"lead_department_id": console.departments["swuj"]},
                    console.users["agent"])
    await store.act(number, "sign", {}, console.users["water"])
    await store.act(number, "request_extension", {"days": 3, "reason": "需协调施工单位调整工期"}, console.users["water"])

    page = await login(browser, console, username)
    problems = watch(page)
    paths = [href for href, _ in NAV[role]] + [f"/tickets/{number}", "/knowledge"]
    if role in ("supervisor", "admin"):
        paths += ["/reports", "/wallboard"]
    if role == "agent":
        paths.append(f"/agent?ticket={number}")
    for path in dict.fromkeys(paths):
        await settled(page, console.base + path)
        assert problems == [], f"{role} {path}: {problems}"
    if role in ("supervisor", "admin"):
        await settled(page, console.base + "/supervisor")
        row = page.locator(f"#extensions tr[data-number='{number}'] td.reason")
        assert "需协调施工单位调整工期" in await row.inner_text()  # the department's reason, beside 批准
        assert await page.locator("#hot-issues p, #hot-issues li").count() > 0  # data or an empty state
        assert "待回访" in await page.locator("#surveys").inner_text()
    icon = await page.request.get(console.base + "/favicon.ico")
    assert icon.status == 200 and icon.headers["content-type"].startswith("image/")
    assert problems == []


async def test_hot_issues_panel_lists_the_clusters(console: Console, browser) -> None:
    agent = console.users["agent"]
    texts = [("幸福路18号工地夜间打桩噪音扰民", f"幸福路18号工地夜间打桩噪音扰民，晚上{h}点还在施工，孩子睡不着。")
             for h in (10, 11, 12, 1, 2)]
    texts += [("路灯不亮", "人民路路灯坏了三天没人修。"), ("公交晚点", "12路公交车早高峰经常晚点半小时。"),
              ("垃圾清运", "光明小区垃圾桶满了两天没有清运。")]
    for i, (title, content) in enumerate(texts):
        t = await console.draft(title=title, content=content, caller_phone=f"1391234{i:04d}",
                                address="南湖区幸福路18号" if i < 5 else "")
        await console.store.act(t["number"], "accept", {}, agent)
    page = await login(browser, console, "super1")
    problems = watch(page)
    await settled(page, console.base + "/supervisor")
    hot = page.locator("#hot-issues li.hot")
    assert await hot.count() >= 1, await page.locator("#hot-issues").inner_text()
    assert "5 件" in await hot.first.inner_text()
    assert problems == []
