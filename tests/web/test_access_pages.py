"""The console's side of privacy: a department's ticket page shows the caller's number masked with a
显示号码 button (no inline handler under the CSP), the centre's pages and report exports go to the access
log, and admins read the log and manage accounts on /admin/audit."""
from __future__ import annotations

import re
from typing import Any

import aiohttp

from tickets.http import STORE

from .conftest import Console
from .test_pages import dispatched, session_for


async def admin_session(console: Console) -> aiohttp.ClientSession:
    s = aiohttp.ClientSession(console.base, cookie_jar=aiohttp.CookieJar(unsafe=True),
                              headers={"Origin": console.base})
    password = console.app[STORE].settings.server.admin_password
    resp = await s.post("/api/v1/auth/login", json={"username": "admin", "password": password})
    assert resp.status == 200
    return s


async def access_entries(console: Console, **filters: Any) -> list[dict[str, Any]]:
    from tickets.accounts.http import USERS

    return (await console.app[USERS].audit.list(category="access", **filters))["items"]


async def test_department_page_masks_the_number_and_reveals_it_on_the_record(console: Console) -> None:
    number = await dispatched(console)
    water = await session_for(console, "water1")
    page = await (await water.get(f"/tickets/{number}")).text()
    assert "139****8888" in page and "13912348888" not in page
    button = re.search(r'<button[^>]*data-reveal-phone="([^"]+)"[^>]*>显示号码</button>', page)
    assert button and button.group(1) == number and "onclick" not in button.group(0)
    assert await access_entries(console, subject=f"ticket:{number}") == []

    resp = await water.post(f"/api/v1/tickets/{number}/reveal-phone")  # what app.js sends on a click
    assert resp.status == 200 and (await resp.json())["caller_phone"] == "13912348888"
    [entry] = await access_entries(console, subject=f"ticket:{number}")
    assert (entry["action"], entry["actor_username"]) == ("reveal_phone", "water1")
    js = await (await water.get("/static/app.js")).text()
    assert "data-reveal-phone" in js and "/reveal-phone" in js
    await water.close()


async def test_centre_pages_show_the_number_and_log_the_view(console: Console) -> None:
    number = await dispatched(console)
    sup = await session_for(console, "super1")
    page = await (await sup.get(f"/tickets/{number}")).text()
    assert "13912348888" in page and "data-reveal-phone" not in page
    agent = await session_for(console, "agent1")
    assert (await agent.get(f"/agent?ticket={number}")).status == 200
    entries = await access_entries(console, subject=f"ticket:{number}")
    assert [(e["action"], e["actor_username"], e["detail"]["path"]) for e in entries] == [
        ("view_phone", "agent1", "/agent"), ("view_phone", "super1", f"/tickets/{number}")]
    await sup.close()
    await agent.close()


async def test_report_exports_are_logged(console: Console) -> None:
    sup = await session_for(console, "super1")
    assert (await sup.get("/reports/export.csv?kind=monthly")).status == 200
    assert (await sup.get("/reports/export.xlsx?kind=daily")).status == 200
    entries = await access_entries(console, action="export_report")
    assert [(e["actor_username"], e["subject"], e["detail"]["format"]) for e in entries] == [
        ("super1", "report:daily", "xlsx"), ("super1", "report:monthly", "csv")]
    assert entries[1]["detail"]["file"].endswith(".csv") and entries[1]["detail"]["query"] == "kind=monthly"
    await sup.close()


async def test_admins_read_the_log_and_manage_accounts_on_their_page(console: Console) -> None:
    number = await dispatched(console)
    sup = await session_for(console, "super1")
    await sup.get(f"/tickets/{number}")
    assert (await sup.get("/admin/audit")).status == 403
    await sup.close()
    admin = await admin_session(console)
    page = await (await admin.get("/admin/audit")).text()
    assert "审计日志" in page and "查看来电号码" in page and f"ticket:{number}" in page
    assert 'href="/admin/audit"' in page  # in the admin's navigation
    water_id = console.users["water"].id
    assert f'data-action-url="/api/v1/users/{water_id}" data-method="PATCH"' in page and "onclick" not in page
    resp = await admin.patch(f"/api/v1/users/{water_id}", json={"active": False})  # the 停用 form
    assert resp.status == 200
    filtered = await (await admin.get("/admin/audit?category=account")).text()
    assert "停用账号" in filtered and "查看来电号码" not in filtered and "已停用" in filtered
    assert (await admin.get("/admin/audit?from=9999-12-31")).status == 400
    assert (await admin.get("/admin/audit?page=abc&user_id=-1&category=x")).status == 200
    await admin.close()


async def test_the_admin_page_takes_hostile_values_without_a_5xx(console: Console) -> None:
    from urllib.parse import quote

    from .test_page_fuzz import HOSTILE

    admin = await admin_session(console)
    failures = []
    for name in ("category", "user_id", "subject", "from", "to", "page"):
        for value in HOSTILE:
            resp = await admin.get(f"/admin/audit?{name}={quote(value, safe='')}")
            if resp.status >= 500:
                failures.append(f"{name}={value[:20]!r}: {resp.status}")
    assert failures == []
    await admin.close()
