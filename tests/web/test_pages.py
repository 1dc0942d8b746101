"""Pages and console APIs over HTTP (no browser): login redirects, roles, department isolation,
attachment checks, report exports, and where draft fields came from."""
from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from openpyxl import load_workbook

from web.pages import provenance

from .conftest import PASSWORD, Console, RunningClock

SHANGHAI = ZoneInfo("Asia/Shanghai")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


async def session_for(console: Console, username: str | None) -> aiohttp.ClientSession:
    # cookies on 127.0.0.1; a browser names its origin on every POST, and cookie sessions need it (CSRF check)
    s = aiohttp.ClientSession(console.base, cookie_jar=aiohttp.CookieJar(unsafe=True),
                              headers={"Origin": console.base})
    if username:
        resp = await s.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
        assert resp.status == 200
    return s


async def dispatched(console: Console, dept: str = "swuj") -> str:
    t = await console.draft()
    agent = console.users["agent"]
    await console.store.act(t["number"], "accept", {}, agent)
    await console.store.act(t["number"], "dispatch", {"lead_department_id": console.departments[dept]}, agent)
    return t["number"]


async def test_pages_need_login_and_the_right_role(console: Console) -> None:
    anon = await session_for(console, None)
    resp = await anon.get("/agent", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/login?next=/agent"
    resp = await anon.get("/wallboard", allow_redirects=False)  # a wall screen logs in like any console page
    assert resp.status == 302 and resp.headers["Location"] == "/login?next=/wallboard"
    assert (await anon.get("/login")).status == 200
    resp = await anon.get("/api/v1/knowledge")
    assert resp.status == 401
    await anon.close()
    expected_home = {"agent1": "/agent", "water1": "/dept", "super1": "/supervisor"}
    forbidden = {"agent1": ["/dept", "/supervisor", "/reports"], "water1": ["/agent", "/supervisor", "/reports",
                                                                          "/reports/export.xlsx", "/wallboard"],
                 "super1": ["/dept"]}
    for user, home in expected_home.items():
        s = await session_for(console, user)
        resp = await s.get("/", allow_redirects=False)
        assert resp.headers["Location"] == home
        resp = await s.get("/login", allow_redirects=False)
        assert resp.status == 302  # already logged in
        assert (await s.get(home)).status == 200
        assert (await s.get("/knowledge")).status == 200
        for path in forbidden[user]:
            resp = await s.get(path)
            assert resp.status == 403, (user, path)
            assert "无权访问" in await resp.text()
        await s.close()


async def test_login_page_refuses_foreign_next(console: Console) -> None:
    s = await session_for(console, None)
    text = await (await s.get("/login?next=//evil.example/x")).text()
    assert "evil.example" not in text
    await s.close()


async def test_department_isolation_on_pages_and_attachments(console: Console) -> None:
    number = await dispatched(console)
    water, env = await session_for(console, "water1"), await session_for(console, "env1")
    assert (await water.get(f"/tickets/{number}")).status == 200
    resp = await env.get(f"/tickets/{number}")
    assert resp.status == 404 and "不存在" in await resp.text()
    inbox = await (await env.get("/dept")).text()
    assert number not in inbox
    inbox = await (await water.get("/dept")).text()
    assert number in inbox and f"/api/v1/tickets/{number}/actions/sign" in inbox  # one-click sign in the inbox

    form = aiohttp.FormData()
    form.add_field("file", PNG, filename="现场.png", content_type="image/png")
    form.add_field("note", "整改前")
    resp = await water.post(f"/api/v1/tickets/{number}/attachments", data=form)
    assert resp.status == 201, await resp.text()
    att = await resp.json()
    assert (att["content_type"], att["size"], att["filename"]) == ("image/png", len(PNG), "现场.png")
    got = await water.get(att["url"])
    assert got.status == 200 and await got.read() == PNG and got.headers["Content-Type"] == "image/png"
    assert (await env.get(att["url"])).status == 404
    form = aiohttp.FormData()
    form.add_field("file", PNG, filename="x.png", content_type="image/png")
    assert (await env.post(f"/api/v1/tickets/{number}/attachments", data=form)).status == 404
    await water.close()
    await env.close()


@pytest.mark.parametrize("name,data,status,slug", [
    ("病毒.png", b"MZ\x90\x00" + b"\x00" * 100, 400, "invalid_field"),  # type decided by content, not name
    ("空.pdf", b"", 400, "invalid_field"),
    ("答复.pdf", PDF, 201, None),
])
async def test_attachment_type_checks(console: Console, name: str, data: bytes, status: int, slug: Any) -> None:
    number = await dispatched(console)
    water = await session_for(console, "water1")
    form = aiohttp.FormData()
    form.add_field("file", data, filename=name, content_type="image/png")
    resp = await water.post(f"/api/v1/tickets/{number}/attachments", data=form)
    body = await resp.json()
    assert resp.status == status, body
    if slug:
        assert body["error"] == slug
    else:
        assert body["content_type"] == "application/pdf"
        files = list((console.store.settings.data_path / "attachments").rglob("*.pdf"))
        assert len(files) == 1 and files[0].read_bytes() == PDF
    await water.close()


async def test_attachment_size_limit(console_factory) -> None:
    console = await console_factory(attachment_max_bytes=1024)
    number = await dispatched(console)
    water = await session_for(console, "water1")
    form = aiohttp.FormData()
    form.add_field("file", PNG + b"\x00" * 2000, filename="big.png", content_type="image/png")
    resp = await water.post(f"/api/v1/tickets/{number}/attachments", data=form)
    assert resp.status == 413 and (await resp.json())["error"] == "attachment_too_large"
    assert not list((console.store.settings.data_path / "attachments").rglob("*.png"))
    await water.close()


async def test_report_exports_and_print_page(console_factory: Any) -> None:
    # The day's, week's and month's reports of the real now lost the ticket when a run crossed a midnight
    # (a Sunday's, a month's end): a fixed Wednesday morning, at the real pace.
    console = await console_factory(clock=RunningClock(datetime(2026, 11, 18, 10, 0, tzinfo=SHANGHAI)))
    number = await dispatched(console)
    await console.store.act(number, "sign", {}, console.users["water"])
    sup = await session_for(console, "super1")
    resp = await sup.get("/reports/export.csv?kind=monthly")
    assert resp.status == 200 and "attachment" in resp.headers["Content-Disposition"]
    text = (await resp.read()).decode("utf-8")
    assert text.startswith("\ufeff排名,单位,派单数") and "市水务局,1,1,1.0," in text
    resp = await sup.get("/reports/export.xlsx?kind=daily")
    wb = load_workbook(io.BytesIO(await resp.read()))
    assert {r[0]: r[1] for r in wb["概览"].iter_rows(min_row=2, values_only=True)}["来件总数"] == 1
    page = await (await sup.get("/reports/print?kind=weekly")).text()
    assert "12345政务服务便民热线周研判" in page and "共受理群众诉求 <b>1</b> 件" in page
    api = await (await sup.get("/api/v1/reports?kind=monthly")).json()
    assert api["totals"]["created"] == 1 and api["kind_label"] == "月分析"
    assert (await sup.get("/reports?kind=yearly")).status == 400
    assert (await sup.get("/reports?kind=custom&from=2026-11-05&to=2026-11-01")).status == 400
    await sup.close()


async def test_supervisor_search_filters(console: Console) -> None:
    number = await dispatched(console)
    other = await console.draft(title="路灯不亮", content="幸福路路灯坏了", district="北山区", request_type="help")
    sup = await session_for(console, "super1")

    async def results(qs: str) -> str:
        page = await (await sup.get("/supervisor?" + qs)).text()
        return page[page.index('<table id="results">'):].split("</table>", 1)[0]

    page = await results("q=路灯")
    assert other["number"] in page and number not in page
    page = await results(f"department_id={console.departments['swuj']}")
    assert number in page and other["number"] not in page
    page = await results("request_type=help&district=北山区")
    assert other["number"] in page and number not in page
    page = await results("status=dispatched")
    assert number in page and other["number"] not in page
    # the two share an address and a phone but not the matter: never offered as duplicates
    full = await (await sup.get("/supervisor")).text()
    dup = full[full.index('id="duplicates"'):].split("</section>", 1)[0]
    assert other["number"] not in dup
    # the same matter from another caller (an older-style draft): grouped, the dispatched case is the master
    same = await console.draft(caller_phone="13700001111", caller_name="王先生")
    full = await (await sup.get("/supervisor")).text()
    dup = full[full.index('id="duplicates"'):].split("</section>", 1)[0]
    assert f'data-master="{number}"' in dup and same["number"] in dup and other["number"] not in dup
    assert f'/api/v1/tickets/{same["number"]}/actions/merge' in dup
    assert f"/api/v1/tickets/{number}/actions/merge" not in dup  # a dispatched case is never merged into a draft
    await sup.close()


def test_provenance_marks_transcript_and_source_text() -> None:
    transcript = "我姓刘，住在幸福路18号"
    fields = {"caller_name": {"value": "刘女士", "source_text": transcript, "start": 1, "end": 3},
              "address": {"value": "幸福路18号", "source_text": transcript, "start": 6, "end": 12},
              "request_type": {"value": "complaint"}, "broken": "just a string"}
    p = provenance(fields, transcript)
    assert [(text, field) for text, field in p["transcript"] if field] == [("姓刘", "caller_name"),
                                                                          ("幸福路18号", "address")]
    assert "".join(text for text, _ in p["transcript"]) == transcript
    by_name = {f["name"]: f for f in p["fields"]}
    assert by_name["request_type"]["display"] == "投诉" and not by_name["request_type"]["has_source"]
    assert by_name["broken"]["display"] == "just a string"
    # without the full transcript, start/end point into each field's own source text
    p = provenance({"address": {"value": "幸福路18号", "source_text": "住在幸福路18号", "start": 2, "end": 8}}, None)
    assert [s for s in p["fields"][0]["segments"] if s[1]] == [("幸福路18号", "address")]
    # out-of-range offsets fall back to finding the value in the source
    p = provenance({"address": {"value": "幸福路", "source_text": "住在幸福路", "start": 50, "end": 60}}, None)
    assert [s for s in p["fields"][0]["segments"] if s[1]] == [("幸福路", "address")]
    assert provenance(None, None) == {"fields": [], "transcript": []}


async def test_pages_offer_follow_up_split_supervision_and_suspension(console_factory: Any) -> None:
    from datetime import timedelta

    from tests.tickets.conftest import TZ, Clock

    # The server's clock is the test's (it was the real one, with a 1 s 督办 deadline and a sleep to pass it).
    clock = Clock(datetime(2026, 11, 23, 9, 0, tzinfo=TZ).astimezone(UTC))  # a Monday
    console = await console_factory(clock=clock)
    number = await dispatched(console)
    store, users = console.store, console.users
    await store.act(number, "sign", {}, users["water"])
    # the agent's screen on a new call of the same caller offers to add it to the open case
    new = await console.draft(content="又来催问工地夜间施工的事")
    agent = await session_for(console, "agent1")
    page = await (await agent.get(f"/agent?ticket={new['number']}")).text()
    assert f"/api/v1/tickets/{number}/actions/follow_up" in page and f'value="{new["number"]}"' in page
    await agent.close()

    due = clock.now + timedelta(hours=1)
    await store.act(number, "supervise", {"note": "请明日前书面反馈", "due": due}, users["super"])
    await store.act(number, "suspend", {"note": "等待来电人补充材料"}, users["water"])
    clock.advance(hours=2)  # past the 督办 deadline
    water = await session_for(console, "water1")
    inbox = await (await water.get("/dept")).text()
    top = inbox[inbox.index('id="supervised"'):].split("</section>", 1)[0]
    assert number in top and "请明日前书面反馈" in top and "督办超期" in top
    await water.close()
    sup = await session_for(console, "super1")
    page = await (await sup.get("/supervisor")).text()
    assert 'id="supervision-banner"' in page and number in page.split('id="supervision-banner"', 1)[1][:600]
    pending = page[page.index('id="suspensions"'):].split("</section>", 1)[0]
    assert f"/api/v1/tickets/{number}/actions/approve_suspend" in pending and "等待来电人补充材料" in pending
    # a merged ticket offers the supervisor a split
    dup = await console.draft(caller_phone="13700001111")
    await store.act(dup["number"], "merge", {"master": number}, users["agent"])
    page = await (await sup.get(f"/tickets/{dup['number']}")).text()
    assert 'data-action="split"' in page or f"/api/v1/tickets/{dup['number']}/actions/split" in page
    await sup.close()
