"""Open311 GeoReport v2 as a channel partner sees it, called through the PyPI ``georeport`` client (it only
reads: its POST is missing, so posting goes through ``requests`` with the spec's form fields, as a partner's
server would). Answers are checked against the spec's field names, in JSON and XML; malformed requests get
the spec's error list with the right HTTP status, and leave no ticket behind."""
from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest
import requests
import xmltodict
from georeport import GeoReport
from sqlalchemy import text

import server

from tests.tickets.conftest import Center

# The spec's fields (wiki.open311.org/GeoReport_v2), every one present in every answer.
SERVICE_FIELDS = {"service_code", "service_name", "description", "metadata", "type", "keywords", "group"}
REQUEST_FIELDS = {"service_request_id", "status", "status_notes", "service_name", "service_code", "description",
                  "agency_responsible", "service_notice", "requested_datetime", "updated_datetime",
                  "expected_datetime", "address", "address_id", "zipcode", "lat", "long", "media_url"}
ATTRIBUTE_FIELDS = {"variable", "code", "datatype", "required", "datatype_description", "order", "description",
                    "values"}


def root(center: Center) -> str:
    return str(center.client.make_url("/open311/v2"))


async def partner(center: Center, name: str = "市民通APP", channel: str = "app") -> str:
    created = await center.admin.post("/api/v1/channel-partners", {"name": name, "channel": channel}, expect=201)
    assert created["channel"] == channel and created["api_key"].startswith("o311_")
    return str(created["api_key"])


async def post(center: Center, fmt: str = "json", **form: Any) -> requests.Response:
    url = f"{root(center)}/requests.{fmt}"
    return await asyncio.to_thread(requests.post, url, data=form, timeout=30)


GOOD = {"service_code": "城乡建设", "description": "南湖区幸福路18号小区门口路灯坏了一个多月，晚上很黑。",
        "address_string": "南湖区幸福路18号", "first_name": "丽", "last_name": "刘", "phone": "13912345678",
        "attribute[request_type]": "help"}


async def drafts(center: Center) -> list[dict[str, Any]]:
    return (await center.agent.get("/api/v1/tickets?status=draft"))["items"]


async def test_services_and_definitions_through_the_client_in_json_and_xml(center: Center) -> None:
    for fmt in ("json", "xml"):
        client = GeoReport(root(center), output_format=fmt)
        services = await asyncio.to_thread(client.get_service_list)
        codes = [s["service_code"] for s in services]
        # the first-level categories of departments.toml, each once
        assert codes[:3] == ["城乡建设", "劳动和社会保障", "教育文体"] and len(codes) == len(set(codes))
        assert all(set(s) == SERVICE_FIELDS for s in services), services[0]
        first = services[0]
        assert first["group"] == "市住房和城乡建设局" and str(first["metadata"]).lower() == "true"
        assert first["type"] == "realtime"
        definition = await asyncio.to_thread(client.get_service_definition, "城乡建设")
        assert definition["service_code"] == "城乡建设"
        attributes = definition["attributes"]
        attribute = attributes[0] if fmt == "json" else attributes["attribute"]
        assert set(attribute) == ATTRIBUTE_FIELDS and attribute["code"] == "request_type"
        values = attribute["values"] if fmt == "json" else attribute["values"]["value"]
        assert {v["key"] for v in values} == {"inquiry", "help", "complaint", "report", "suggestion", "praise"}
    resp = await center.client.get("/open311/v2/services/没有这类.json")
    assert resp.status == 404
    assert await resp.json() == [{"code": 404, "description": "service_code 不存在：没有这类"}]


async def test_a_posted_request_is_a_draft_that_an_agent_handles_and_its_status_is_public(center: Center) -> None:
    key = await partner(center)
    resp = await post(center, api_key=key, **GOOD)
    assert resp.status_code == 201, resp.text
    [created] = resp.json()
    assert set(created) == {"service_request_id", "service_notice", "account_id"}
    number = created["service_request_id"]

    # It waits among the agents' drafts exactly like a phone draft: not accepted, with its channel.
    [draft] = [t for t in await drafts(center) if t["number"] == number]
    assert (draft["channel"], draft["status"], draft["category"], draft["request_type"]) == (
        "app", "draft", "城乡建设", "help")
    ticket = await center.agent.get(f"/api/v1/tickets/{number}")
    assert ticket["caller_name"] == "刘丽" and ticket["caller_phone"] == "13912345678"
    assert ticket["address"] == "南湖区幸福路18号" and "accept" in ticket["allowed_actions"]
    history = await center.agent.get(f"/api/v1/tickets/{number}/history")
    assert history[0]["actor_name"] == "市民通APP（Open311）"

    client = GeoReport(root(center))
    seen = await asyncio.to_thread(client.get_service_request, number)
    assert set(seen) == REQUEST_FIELDS
    assert (seen["status"], seen["service_code"], seen["agency_responsible"]) == ("open", "城乡建设", "")
    assert seen["description"] == "" and seen["address"] == ""  # what the citizen wrote: only for the partner

    await center.agent.act(number, "accept")
    await center.agent.act(number, "dispatch", lead_department_id=center.departments["swuj"])
    await center.water.act(number, "sign")
    answer = "经查，该路灯线路老化，已于今日更换，恢复照明。"
    await center.water.act(number, "reply", answer=answer)

    water_name = {d["code"]: d["name"] for d in await center.admin.get("/api/v1/departments")}["swuj"]
    for fmt in ("json", "xml"):
        client = GeoReport(root(center), output_format=fmt)
        seen = await asyncio.to_thread(client.get_service_request, number)
        assert set(seen) == REQUEST_FIELDS
        assert (seen["status"], seen["status_notes"]) == ("closed", answer)
        assert seen["agency_responsible"] == water_name
        assert seen["requested_datetime"].endswith("+08:00")
        listed = await asyncio.to_thread(client.get_service_requests, status="closed")
        listed = listed if isinstance(listed, list) else [listed]
        assert [r["service_request_id"] for r in listed] == [number]
        # an empty list: georeport cannot read an empty XML list (<service_requests/>), so read it directly
        empty = await asyncio.to_thread(requests.get, f"{root(center)}/requests.{fmt}", params={"status": "open"},
                                        timeout=30)
        assert empty.status_code == 200
        assert (empty.json() == []) if fmt == "json" else (b"<request>" not in empty.content
                                                           and b"<service_requests" in empty.content)
    # The partner that posted it reads what the citizen wrote, with its key.
    mine = await asyncio.to_thread(requests.get, f"{root(center)}/requests/{number}.json",
                                   params={"api_key": key}, timeout=30)
    assert mine.json()[0]["description"] == GOOD["description"]
    assert mine.json()[0]["address"] == GOOD["address_string"]
    other = await partner(center, "另一渠道", "wechat")
    theirs = await asyncio.to_thread(requests.get, f"{root(center)}/requests/{number}.json",
                                     params={"api_key": other}, timeout=30)
    assert theirs.json()[0]["description"] == ""


@pytest.mark.parametrize("fields, status, words", [
    ({"service_code": ""}, 400, "service_code 必填"),
    ({"service_code": "没有这类"}, 400, "service_code 不存在"),
    ({"description": ""}, 400, "description 必填"),
    ({"description": "长" * 4001}, 400, "description 超过 4000"),
    ({"address_string": ""}, 400, "须提供位置"),
    ({"address_string": "", "lat": "30.1"}, 400, "lat 和 long 须同时提供"),
    ({"lat": "91", "long": "120"}, 400, "lat 须为 -90 到 90"),
    ({"lat": "nan", "long": "120"}, 400, "lat 须为"),
    ({"phone": "12"}, 400, "phone 不是有效的电话号码"),
    ({"email": "not-an-address"}, 400, "email 格式不正确"),
    ({"attribute[request_type]": "gossip"}, 400, "attribute[request_type] 须为"),
    ({"attribute[colour]": "red"}, 400, "未知属性"),
    ({"media_url": "javascript:alert(1)"}, 400, "media_url 须为 http(s)"),
])
async def test_malformed_requests_get_the_spec_errors_and_make_no_ticket(center: Center, fields: dict[str, str],
                                                                         status: int, words: str) -> None:
    key = await partner(center)
    for fmt in ("json", "xml"):
        resp = await post(center, fmt, api_key=key, **{**GOOD, **fields})
        assert resp.status_code == status, resp.text
        if fmt == "json":
            errors = resp.json()
        else:
            errors = xmltodict.parse(resp.content, force_list=("error",))["errors"]["error"]
        assert all(set(e) == {"code", "description"} for e in errors)
        assert int(errors[0]["code"]) == status and any(words in e["description"] for e in errors), errors
    assert await drafts(center) == []


async def test_keys_are_checked_stored_hashed_and_revocable(center: Center) -> None:
    resp = await post(center, **GOOD)
    assert resp.status_code == 403 and resp.json()[0]["code"] == 403 and "api_key" in resp.json()[0]["description"]
    resp = await post(center, "xml", api_key="o311_guess", **GOOD)
    assert resp.status_code == 403
    assert xmltodict.parse(resp.content)["errors"]["error"]["code"] == "403"
    key = await partner(center)
    partners = await center.admin.get("/api/v1/channel-partners")
    assert key not in str(partners) and partners[0]["active"] is True
    async with center.client.app[server.SESSIONS]() as session:  # only its sha256 is in the database
        stored = (await session.execute(text("SELECT key_hash FROM channel_partners"))).scalars().all()
    assert stored == [hashlib.sha256(key.encode()).hexdigest()]
    await center.agent.call("POST", "/api/v1/channel-partners", {"name": "x"}, expect=403)
    await center.admin.call("PATCH", f"/api/v1/channel-partners/{partners[0]['id']}", {"active": False})
    resp = await post(center, api_key=key, **GOOD)
    assert resp.status_code == 403
    assert await drafts(center) == []


async def test_request_queries_are_checked(center: Center) -> None:
    for query, words in [("start_date=yesterday", "start_date 须为 W3C 时间"),
                         ("start_date=2026-01-01T00:00:00Z&end_date=2026-06-01T00:00:00Z", "不能超过 90 天"),
                         ("status=pending", "status 须为 open 或 closed")]:
        resp = await center.client.get(f"/open311/v2/requests.json?{query}")
        assert resp.status == 400
        [error] = await resp.json()
        assert error["code"] == 400 and words in error["description"]
    resp = await center.client.get("/open311/v2/requests/20261123-999999.xml")
    assert resp.status == 404 and resp.content_type == "text/xml"
    # a phone ticket is not an Open311 request: not readable here even by its number
    phone = await center.new_ticket()
    resp = await center.client.get(f"/open311/v2/requests/{phone['number']}.json")
    assert resp.status == 404


async def test_partners_post_from_their_own_pages_but_the_citizen_form_only_from_ours(center: Center) -> None:
    key = await partner(center)
    resp = await center.client.post("/open311/v2/requests.json", data={**GOOD, "api_key": key},
                                     headers={"Origin": "https://app.partner.example"})
    assert resp.status == 201
    resp = await center.client.post("/citizen", data={"content": "x"}, headers={"Origin": "https://evil.example"})
    assert resp.status == 403


async def test_requests_posted_at_once_each_keep_their_own_record(center: Center) -> None:
    """The writer batches creations from many requests: every ticket still gets the Open311 record of the post
    that made it (its own text, location and photo link), and identical posts get one record each."""
    key = await partner(center)
    posts = [{**GOOD, "description": f"第{i}号路灯不亮", "media_url": f"https://img.example/{i}.jpg"}
             for i in range(12)] + [GOOD, GOOD]
    answers = await asyncio.gather(*(center.client.post("/open311/v2/requests.json", data={**p, "api_key": key})
                                     for p in posts))
    numbers = []
    for resp in answers:
        assert resp.status == 201, await resp.text()
        numbers.append((await resp.json())[0]["service_request_id"])
    assert len(set(numbers)) == len(posts)
    for number, sent in zip(numbers, posts):
        resp = await center.client.get(f"/open311/v2/requests/{number}.json", params={"api_key": key})
        [seen] = await resp.json()
        assert (seen["description"], seen["media_url"]) == (sent["description"], sent.get("media_url", ""))
