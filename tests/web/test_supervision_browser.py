"""Extension request and approval, supervision and escalation through the real pages in Chromium."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from .conftest import SYSTEM, RunningClock, login

pytestmark = pytest.mark.browser


async def test_extension_approval_supervision_and_escalation(console_factory, browser) -> None:
    # A fixed start (running at the real pace): the 督办 deadline typed below must stay in the future, and the
    # deadlines never reach a year whose holidays are unknown.
    start = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))  # a Monday
    console = await console_factory(clock=RunningClock(start))
    t = await console.draft()
    number = t["number"]
    await console.store.act(number, "accept", {}, console.users["agent"])
    await console.store.act(number, "dispatch", {"lead_department_id": console.departments["swuj"]},
                            console.users["agent"])
    await console.store.act(number, "sign", {}, console.users["water"])
    due_before = (await console.store.get(number, SYSTEM))["reply_due"]

    dept = await login(browser, console, "water1")
    await dept.goto(console.base + f"/tickets/{number}")
    await dept.click("details[data-action=progress_report] summary")
    await dept.fill("#progress_report-note", "已联系施工单位，正在整改")
    await dept.click("details[data-action=progress_report] button[type=submit]")
    await dept.wait_for_function("() => document.getElementById('history').textContent.includes('阶段反馈')")
    await dept.click("details[data-action=request_extension] summary")
    await dept.fill("#request_extension-days", "3")
    await dept.fill("#request_extension-reason", "需协调供电部门迁移线路")
    await dept.click("details[data-action=request_extension] button[type=submit]")
    await dept.wait_for_selector("text=延期待批 3 个工作日")

    sup = await login(browser, console, "super1")
    row = sup.locator("#extensions tr", has_text=number)
    assert "3" in await row.inner_text()
    await row.locator("button[type=submit]").click()  # one click: approve as requested
    await sup.wait_for_function(f"() => !document.getElementById('extensions').textContent.includes('{number}')")
    after = await console.store.get(number, SYSTEM)
    assert after["extension_days_granted"] == 3 and after["reply_due"] > due_before

    await sup.goto(console.base + f"/tickets/{number}")
    await sup.click("details[data-action=supervise] summary")
    await sup.fill("#supervise-due", "2030-01-15T17:00")
    await sup.fill("#supervise-note", "请于期限内办结并书面报告")
    await sup.click("details[data-action=supervise] button[type=submit]")
    await sup.wait_for_selector("h1 .tag.red:has-text('督办')")
    await sup.click("details[data-action=escalate] summary")
    await sup.select_option("#escalate-to_department_id", label="市城市管理综合行政执法局")
    await sup.fill("#escalate-note", "群众反复反映，提级办理")
    await sup.click("details[data-action=escalate] button[type=submit]")
    await sup.wait_for_selector("h1 .tag.red:has-text('提级 1')")
    final = await console.store.get(number, SYSTEM)
    assert final["supervised"] and final["escalation_level"] == 1
    assert final["lead_department_id"] == console.departments["cgj"] and final["status"] == "dispatched"
    # the due time typed in the browser (local, Asia/Shanghai here as in the browser's zone) is kept
    assert final["supervision_due"].year == 2030
    # the former lead (now a co-handler of the escalated case) still sees the supervision and its note
    await dept.goto(console.base + "/dept?tab=co")
    assert "督办" in await dept.inner_text(f"#inbox tr[data-number='{number}']")
    assert "请于期限内办结并书面报告" in await dept.inner_text("#supervised")
