"""Multi-level centers: a district sub-center (an agent or supervisor of a district unit) sees and handles its
district's tickets only, as department isolation does for departments; the city center sees all."""
from __future__ import annotations

from tests.tickets.conftest import PASSWORD, Center


async def add_accounts(center: Center) -> None:
    admin = center.admin
    for username, role in [("nh_agent", "agent"), ("nh_super", "supervisor")]:
        await admin.post("/api/v1/users", {"username": username, "password": PASSWORD, "role": role,
                                           "display_name": username, "department": "nh_12345"}, expect=201)
        center.users[username] = await center.login(username, PASSWORD)


async def test_district_sub_center_sees_and_handles_only_its_district(center: Center) -> None:
    await add_accounts(center)
    nh, dc = center.users["nh_agent"], center.users["agent"]
    assert nh.user["district"] == "南湖区" and dc.user["district"] is None
    mine = (await center.new_ticket(address="南湖区幸福路18号", district="南湖区"))["number"]
    other = (await center.new_ticket(address="东城区建设大街66号", district="东城区"))["number"]
    await center.agent.act(mine, "accept")
    await center.agent.act(other, "accept")

    listed = {t["number"] for t in (await nh.get("/api/v1/tickets?limit=500"))["items"]}
    assert mine in listed and other not in listed
    assert (await nh.get(f"/api/v1/tickets/{mine}"))["district"] == "南湖区"
    # another district's ticket does not exist for the sub-center: reading, routing, acting on it
    for path in (f"/api/v1/tickets/{other}", f"/api/v1/tickets/{other}/routing",
                 f"/api/v1/tickets/{other}/duplicates"):
        body = await nh.get(path, expect=404)
        assert body["error"] == "ticket_not_found"
    await nh.act(other, "dispatch", expect=404, lead_department_id=center.departments["dc_cgj"])
    await center.users["nh_super"].act(other, "supervise", expect=404, note="x", due="2026-11-30T10:00:00+08:00")
    # its own district's ticket it handles like the city center does
    await nh.act(mine, "dispatch", lead_department_id=center.departments["nh_xf"])
    assert (await nh.get(f"/api/v1/tickets/{mine}"))["status"] == "dispatched"

    # the city center sees both districts
    city = {t["number"] for t in (await dc.get("/api/v1/tickets?limit=500"))["items"]}
    assert {mine, other} <= city
    city_super = {t["number"] for t in (await center.super.get("/api/v1/tickets?limit=500"))["items"]}
    assert {mine, other} <= city_super


async def test_sub_center_registers_its_own_district(center: Center) -> None:
    await add_accounts(center)
    nh = center.users["nh_agent"]
    body = {"caller_name": "李四", "caller_phone": "13800138001", "request_type": "help", "title": "路灯不亮",
            "content": "滨河花园门口路灯坏了一周。", "address": "滨河花园"}
    created = await nh.post("/api/v1/tickets", body, expect=201)
    assert created["district"] == "南湖区"
    refused = await nh.post("/api/v1/tickets", {**body, "district": "东城区"}, expect=400)
    assert refused["field"] == "district" and "南湖区" in refused["message"]
    # nor can it move one of its cases to another district (it would vanish from its own lists)
    moved = await nh.act(created["number"], "edit", expect=400, district="东城区")
    assert moved["field"] == "district"
    assert (await nh.get(f"/api/v1/tickets/{created['number']}"))["district"] == "南湖区"
    await nh.act(created["number"], "edit", address="滨河花园3栋")


async def test_center_accounts_belong_only_to_district_units(center: Center) -> None:
    refused = await center.admin.post("/api/v1/users", {
        "username": "wrong", "password": PASSWORD, "role": "agent", "department": "zjj"}, expect=400)
    assert refused["field"] == "department" and "区级单位" in refused["message"]
    # an existing city agent moved to the sub-center sees the district only from then on
    agent_id = center.agent.user["id"]
    changed = await center.admin.call("PATCH", f"/api/v1/users/{agent_id}", {"department": "nh_12345"})
    assert changed["district"] == "南湖区"
    other = (await center.new_ticket(who="agent2", district="东城区"))["number"]
    again = await center.login("agent", PASSWORD)
    await again.get(f"/api/v1/tickets/{other}", expect=404)


async def test_sub_center_supervisor_page_shows_its_district_only(center: Center) -> None:
    await add_accounts(center)
    text = "滨河花园小区门口垃圾堆放一周没人清运，臭气熏天，请尽快处理。"
    numbers = {}
    for district in ("南湖区", "东城区"):  # the same matter twice in each district: a duplicate group each
        for _ in range(2):
            t = await center.new_ticket(title="垃圾没人清理", content=text, address=f"{district}滨河花园",
                                        district=district)
            numbers.setdefault(district, []).append(t["number"])
    headers = {"Authorization": f"Bearer {center.users['nh_super'].token}"}
    resp = await center.client.get("/supervisor", headers=headers)
    page = await resp.text()
    assert resp.status == 200, page
    assert all(n in page for n in numbers["南湖区"])
    assert not any(n in page for n in numbers["东城区"])
    resp = await center.client.get("/supervisor", headers={"Authorization": f"Bearer {center.super.token}"})
    city = await resp.text()
    assert all(n in city for n in numbers["南湖区"] + numbers["东城区"])
