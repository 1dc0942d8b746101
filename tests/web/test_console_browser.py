"""The whole path through the real pages in headless Chromium: agent -> department -> supervisor's reports."""
from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from tickets.attachments.http import ATTACHMENTS

from .conftest import SYSTEM, RunningClock, login

pytestmark = pytest.mark.browser
TZ = ZoneInfo("Asia/Shanghai")
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
       b"\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82")


async def test_agent_dispatches_department_replies_supervisor_sees_rates(console_factory, browser) -> None:
    # A Wednesday morning mid-month: on the real clock a run crossing a month's end counted the ticket in one
    # month's report and its dispatch in the next.
    console = await console_factory(clock=RunningClock(datetime(2026, 11, 18, 10, 0, tzinfo=TZ)))
    draft = await console.draft()
    number = draft["number"]
    water_code = "swuj"

    # The supervisor's report before: the water department has no dispatch this month.
    sup = await login(browser, console, "super1")
    assert sup.url.endswith("/supervisor")
    await sup.goto(console.base + "/reports?kind=monthly")
    assert await sup.locator(f"#rates-table tr[data-code={water_code}]").count() == 0

    # Agent: opens the draft from the work list, sees where the fields came from, edits and dispatches.
    agent = await login(browser, console, "agent1")
    assert agent.url.endswith("/agent")
    await agent.click(f"#work-list a[href='/agent?ticket={number}']")
    await agent.wait_for_url(f"**/agent?ticket={number}")
    marks = await agent.locator("#provenance mark").all_inner_texts()
    assert marks == ["姓刘", "南湖区幸福路18号"]  # the words the caller said, not the value
    await agent.fill("#f-title", "幸福路工地夜间打桩噪音扰民")
    await agent.select_option("#d-lead", str(console.departments[water_code]))
    await agent.keyboard.press("Alt+d")  # the keyboard path: save, accept and dispatch in one go
    await agent.wait_for_url(console.base + "/agent")
    ticket = await console.store.get(number, SYSTEM)
    assert (ticket["status"], ticket["title"], ticket["lead_department_id"]) == \
        ("dispatched", "幸福路工地夜间打桩噪音扰民", console.departments[water_code])
    assert await agent.locator(f"#work-list a[href='/agent?ticket={number}']").count() == 0

    # Department handler: inbox, sign, attach a photo, reply.
    dept = await login(browser, console, "water1")
    assert dept.url.endswith("/dept")
    row = dept.locator(f"#inbox tr[data-number='{number}']")
    await row.locator("a").click()
    await dept.wait_for_url(f"**/tickets/{number}")
    await dept.click("details[data-action=sign] button[type=submit]")
    await dept.wait_for_function("() => document.getElementById('ticket-status').textContent.includes('办理中')")
    await dept.set_input_files("#up-file", files=[{"name": "整改后.png", "mimeType": "image/png", "buffer": PNG}])
    await dept.fill("#up-note", "整改后现场")
    await dept.click("#upload-form button[type=submit]")
    await dept.wait_for_selector("img[alt='整改后.png']")
    assert await dept.get_attribute("details[data-action=reply]", "open") is not None  # the usual next step is open
    await dept.fill("#reply-answer", "已责令施工单位停止夜间施工，并安排夜间巡查。")
    await dept.click("details[data-action=reply] button[type=submit]")
    await dept.wait_for_function("() => document.getElementById('ticket-status').textContent.includes('已办结')")
    assert "已责令施工单位" in await dept.inner_text("#ticket-answer")
    history = await dept.inner_text("#history")
    assert "签收" in history and "办结答复" in history

    # The callback survey (done by the IVR in production) records a satisfied, resolved caller.
    await console.store.act(number, "record_survey", {"satisfaction": "satisfied", "resolved": True}, SYSTEM)

    # Supervisor: the rates have changed, and the Excel export holds the same numbers.
    await sup.reload()
    row = sup.locator(f"#rates-table tr[data-code={water_code}]")
    assert await row.locator("[data-col=response_rate]").inner_text() == "100.0%"
    assert await row.locator("[data-col=completion_rate]").inner_text() == "100.0%"
    assert await row.locator("[data-col=satisfaction_rate]").inner_text() == "100.0%"
    async with sup.expect_download() as info:
        await sup.click("#export-xlsx")
    download = await info.value
    assert download.suggested_filename.endswith(".xlsx")
    wb = load_workbook(io.BytesIO(Path(await download.path()).read_bytes()))  # the temp file has no suffix
    rows = {r[1]: r for r in wb["三率排名"].iter_rows(min_row=2, values_only=True)}
    water = rows["市水务局"]
    # rank, dispatched, signed on time, response rate, replied, completion rate, satisfaction rate, composite;
    # one case is below tickets.min_cases_to_rank: scored and listed, not ranked.
    assert (water[0], water[2], water[3], water[4], water[5], water[6], water[15], water[16]) == \
        ("样本不足", 1, 1, 1.0, 1, 1.0, 1.0, 100.0)
    overview = {r[0]: r[1] for r in wb["概览"].iter_rows(min_row=2, values_only=True)}
    assert overview["来件总数"] == 1 and overview["满意率"] == 1.0

    # Another department's handler cannot open the ticket page (nor its attachment).
    other = await login(browser, console, "env1")
    resp = await other.goto(console.base + f"/tickets/{number}")
    assert resp.status == 404 and "不存在" in await other.inner_text("main")
    att = await console.app[ATTACHMENTS].list(number, SYSTEM)
    resp = await other.goto(console.base + att[0]["url"])
    assert resp.status == 404
