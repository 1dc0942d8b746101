"""The citizen's pages without login: 我要反映 makes a draft of the web channel and shows its number, a photo is
checked like any attachment, floods from one address or one phone get a 429 in Chinese, 进度查询 needs the
number and the phone's last four digits, and 没有解决 after a reply goes to the dissatisfaction ledger.
Also: these are the only pages (with login, static files and Open311) that answer without a session."""
from __future__ import annotations

import re
from typing import Any

import aiohttp

from tickets.accounts.http import KEY_AUTH_PREFIX, PUBLIC_PAGES, PUBLIC_PATHS, PUBLIC_PREFIXES
from tickets.attachments.http import ATTACHMENTS
from tickets.channels.http import CHANNEL_SERVICE
from tickets.channels.service import Limits

from .conftest import Console
from .test_pages import session_for

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200
PHONE = "13812345678"


def form(**fields: Any) -> aiohttp.FormData:
    data = aiohttp.FormData()
    values = {"content": "幸福小区3号楼楼道灯坏了两周，晚上上下楼很危险。", "category": "城乡建设",
              "address": "南湖区幸福路18号3号楼", "phone": PHONE, "request_type": "help", **fields}
    photo = values.pop("photo", None)
    for key, value in values.items():
        data.add_field(key, value)
    if photo is not None:
        data.add_field("photo", photo[1], filename=photo[0], content_type="application/octet-stream")
    return data


async def submit(s: aiohttp.ClientSession, **fields: Any) -> tuple[int, str]:
    resp = await s.post("/citizen", data=form(**fields))
    return resp.status, await resp.text()


def number_in(page: str) -> str:
    found = re.search(r'id="ticket-number">(\d{8}-\d{6})<', page)
    assert found, page
    return found.group(1)


async def lookup(s: aiohttp.ClientSession, number: str, tail: str) -> tuple[int, str]:
    resp = await s.post("/citizen/status", data={"number": number, "tail": tail})
    return resp.status, await resp.text()


async def drafts(console: Console) -> list[dict[str, Any]]:
    from tickets.service import TicketQuery

    return (await console.store.list(TicketQuery(status=("draft",)), console.users["agent"]))["items"]


async def test_a_citizen_reports_looks_up_and_says_not_resolved(console: Console) -> None:
    s = await session_for(console, None)
    page = await (await s.get("/citizen")).text()
    assert "我要反映" in page and "城乡建设" in page and 'accept="image/*"' in page
    status, page = await submit(s, photo=("楼道.png", PNG))
    assert status == 201 and "提交成功" in page
    number = number_in(page)
    [draft] = await drafts(console)
    assert (draft["number"], draft["channel"], draft["category"], draft["status"]) == (number, "web", "城乡建设",
                                                                                        "draft")
    [photo] = await console.app[ATTACHMENTS].list(number, console.users["super"])
    assert photo["content_type"] == "image/png" and photo["filename"] == "楼道.png"

    status, page = await lookup(s, number, "0000")
    assert status == 404 and "没有找到" in page and "已收到" not in page
    status, page = await lookup(s, number, PHONE[-4:])
    assert status == 200 and "已收到，等待受理" in page and 'id="case-department">处理中<' in page
    assert "没有解决" not in page

    agent, water = console.users["agent"], console.users["water"]
    await console.store.act(number, "accept", {}, agent)
    await console.store.act(number, "dispatch", {"lead_department_id": console.departments["swuj"]}, agent)
    await console.store.act(number, "sign", {}, water)
    await console.store.act(number, "reply", {"answer": "已安排物业更换楼道灯。"}, water)
    status, page = await lookup(s, number, PHONE[-4:])
    assert status == 200 and "已答复" in page and "市水务局" in page and "已安排物业更换楼道灯。" in page
    assert 'id="unresolved"' in page

    resp = await s.post("/citizen/status/unresolved", data={"number": number, "tail": PHONE[-4:],
                                                             "note": "灯还是不亮"})
    page = await resp.text()
    assert resp.status == 200 and "已收到您的反馈" in page and 'id="unresolved"' not in page
    [item] = await console.store.ledger(console.users["super"])
    assert (item["ticket"], item["satisfaction"], item["resolved"], item["decision"]) == (
        number, "dissatisfied", False, "reopened")
    ticket = await console.store.get(number, console.users["super"])
    assert ticket["status"] == "dispatched" and ticket["reopen_count"] == 1  # back to the department
    history = await console.store.history(number, console.users["super"])
    [said] = [h for h in history if h["action"] == "record_survey"]
    assert said["actor_name"] == "市民网页" and "灯还是不亮" in said["note"] and said["data"]["via"] == "citizen_web"
    # a second press is refused: the case is being handled again, no second ledger item
    resp = await s.post("/citizen/status/unresolved", data={"number": number, "tail": PHONE[-4:]})
    assert resp.status == 409 and len(await console.store.ledger(console.users["super"])) == 1
    await s.close()


async def test_bad_input_is_named_and_stores_nothing(console_factory: Any) -> None:
    console = await console_factory(attachment_max_bytes=4096)
    s = await session_for(console, None)
    for fields, status, words in [
        ({"photo": ("大.png", PNG + b"\x00" * 5000)}, 413, "照片不能超过"),
        ({"photo": ("假的.png", b"%PDF-1.4 not a photo")}, 400, "照片只接受"),
        ({"photo": ("x.png", b"MZ\x90\x00")}, 400, "照片只接受"),
        ({"category": "外星人"}, 400, "没有这个分类"),
        ({"category": ""}, 400, "请选择问题分类"),
        ({"content": "  "}, 400, "请描述您要反映的问题"),
        ({"address": ""}, 400, "请填写问题发生的地址"),
        ({"phone": "12"}, 400, "手机号码无效"),
    ]:
        got, page = await submit(s, **fields)
        assert got == status and words in page, (fields, got)
        if "address" not in fields:
            assert 'value="南湖区幸福路18号3号楼"' in page  # what was typed is kept on the form
    assert await drafts(console) == []
    await s.close()


async def test_floods_from_one_address_or_one_phone_get_a_429_in_chinese(console: Console) -> None:
    console.app[CHANNEL_SERVICE].limits = Limits(submit_per_address_hour=3, submit_per_phone_day=2,
                                                 wrong_tail_per_ticket_hour=3)
    s = await session_for(console, None)
    assert (await submit(s))[0] == 201
    status, page = await submit(s)
    number = number_in(page)
    status, page = await submit(s)
    assert status == 429 and "该手机号今天已提交 2 件诉求" in page
    assert (await submit(s, phone="13900001111"))[0] == 201
    resp = await s.post("/citizen", data=form(phone="13700002222"))
    assert resp.status == 429 and "同一网络每小时最多 3 件" in await resp.text()
    assert 3000 < int(resp.headers["Retry-After"]) <= 3600
    assert len(await drafts(console)) == 3
    # four digits cannot be tried through: after 3 wrong guesses even the right one waits
    for tail in ("1111", "2222", "3333"):
        assert (await lookup(s, number, tail))[0] == 404
    status, page = await lookup(s, number, PHONE[-4:])
    assert status == 429 and "查询错误次数过多" in page
    await s.close()


async def test_only_these_pages_answer_without_a_session(console: Console) -> None:
    s = aiohttp.ClientSession(console.base)
    public: set[str] = set()
    for route in console.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path")
        if route.method != "GET" or not path or path.startswith(("/ws/", "/static")):
            continue
        resp = await s.get(path, allow_redirects=False)
        if resp.status < 300:
            public.add(path)
    # /metrics answers 401 itself; login and unresolved are POST only; the wallboard sends whoever is not
    # logged in to the login page, like the console's pages
    expected = (PUBLIC_PATHS | PUBLIC_PAGES) - {"/metrics", "/api/v1/auth/login", "/citizen/status/unresolved"}
    assert public == expected, public ^ expected
    assert KEY_AUTH_PREFIX == "/open311/v2/" and PUBLIC_PREFIXES == ("/static/",)
    # a form of another site cannot post into the public pages
    for path in sorted(PUBLIC_PAGES):
        resp = await s.post(path, data={"number": "x"}, headers={"Origin": "https://evil.example"})
        assert resp.status == 403, path
    await s.close()


async def test_done_when_both_channels_reach_an_agent_are_handled_and_their_status_is_visible(console: Console
                                                                                          ) -> None:
    """Issue 21's 'done when': one request through Open311 and one through the page reach the agent's list,
    are handled, and their status shows through Open311 and on the lookup page."""
    from tickets.accounts.service import Principal

    admin = Principal(1, "admin", "管理员", "admin", None, None, None)
    key, _ = await console.app[CHANNEL_SERVICE].create_partner("市民通APP", "app", admin)
    anon = aiohttp.ClientSession(console.base)
    resp = await anon.post("/open311/v2/requests.json", data={
        "api_key": key, "service_code": "城乡建设", "description": "幸福路18号窨井盖破损，容易绊倒行人。",
        "lat": "28.6829", "long": "115.8579", "phone": "13511112222"})
    assert resp.status == 201, await resp.text()
    via_open311 = (await resp.json())[0]["service_request_id"]
    citizen = await session_for(console, None)
    status, page = await submit(citizen)
    via_page = number_in(page)

    agent = await session_for(console, "agent1")
    listing = await (await agent.get("/agent")).text()
    assert via_open311 in listing and via_page in listing  # the agent's 待处理 list, like phone drafts
    for number in (via_open311, via_page):
        resp = await agent.post(f"/api/v1/tickets/{number}/actions/accept", json={})
        assert resp.status == 200
        resp = await agent.post(f"/api/v1/tickets/{number}/actions/dispatch",
                                json={"lead_department_id": console.departments["swuj"]})
        assert resp.status == 200
        await console.store.act(number, "sign", {}, console.users["water"])
        await console.store.act(number, "reply", {"answer": f"{number} 已处理完毕。"}, console.users["water"])

    [seen] = await (await anon.get(f"/open311/v2/requests/{via_open311}.json")).json()
    assert (seen["status"], seen["status_notes"], seen["agency_responsible"]) == (
        "closed", f"{via_open311} 已处理完毕。", "市水务局")
    status, page = await lookup(citizen, via_page, PHONE[-4:])
    assert status == 200 and f"{via_page} 已处理完毕。" in page and "市水务局" in page
    status, page = await lookup(citizen, via_open311, "2222")  # its citizen can use the lookup page too
    assert status == 200 and f"{via_open311} 已处理完毕。" in page
    for s in (anon, citizen, agent):
        await s.close()
