"""Routing, duplicates and hot issues through the HTTP API of a real server (SQLite and PostgreSQL)."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

import server
from tests.tickets.conftest import PASSWORD, Api  # noqa: E402
from tickets.routing import http as routing_http
from tickets.routing import service as routing_service
from tickets.routing.model import RouterModel
from tickets.routing.service import model_path

Client = Api  # a logged-in API client, shared with the ticket tests


async def login(client: Any, username: str, password: str) -> Client:
    resp = await client.post("/api/v1/auth/login", json={"username": username, "password": password, "kind": "api"})
    body = await resp.json()
    assert resp.status == 200, body
    return Client(client, body["token"], body["user"])


@pytest.fixture
async def center(aiohttp_client, database_url, redis_url, settings_factory):  # type: ignore[no-untyped-def]
    now = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    settings = settings_factory(database_url=database_url, redis_url=redis_url)
    app = server.create_app(settings, lambda: now)
    routing_http.setup(app, settings, lambda: now)
    client = await aiohttp_client(app)
    admin = await login(client, "admin", settings.server.admin_password)
    depts = {d["code"]: d["id"] for d in await admin.call("GET", "/api/v1/departments")}
    users = {"admin": admin}
    for name, role, dept in [("agent", "agent", None), ("super", "supervisor", None),
                             ("water", "department", "swuj"), ("env", "department", "sthj")]:
        body = {"username": name, "password": PASSWORD, "role": role, "display_name": name}
        if dept:
            body["department"] = dept
        await admin.call("POST", "/api/v1/users", body, expect=201)
        users[name] = await login(client, name, PASSWORD)
    return {"app": app, "settings": settings, "users": users, "depts": depts}


async def new_ticket(agent: Client, **fields: Any) -> str:
    body = {"caller_name": "张三", "caller_phone": "13800138000", "request_type": "complaint", "accept": True,
            "address": "幸福路12号", "district": "A1区", **fields}
    return (await agent.call("POST", "/api/v1/tickets", body, expect=201))["number"]


async def test_routing_duplicates_isolation_and_hot_issues(center: dict[str, Any]) -> None:
    u, depts = center["users"], center["depts"]
    agent = u["agent"]
    first = await new_ticket(agent, title="幸福小区停水三天", content="幸福小区3栋从周一开始停水，自来水一直没来，老人做饭都难。")
    again = await new_ticket(agent, title="幸福小区又停水了",
                             content="幸福小区３栋从周一开始停水，自来水一直没来，老人做饭都难！请尽快处理")
    other = await new_ticket(agent, caller_phone="13900000001", address="和平路8号",
                             title="咨询孩子入学", content="孩子明年上小学，户口不在本区，怎么办理入学手续？")

    # No model trained yet: the rule routes the water ticket, the other one goes to a person.
    r = await agent.call("GET", f"/api/v1/tickets/{first}/routing")
    assert r["suggestions"][0]["department"] == "swuj" and r["suggestions"][0]["source"] == "rule"
    assert "供水停水" in r["suggestions"][0]["reasons"][0] and not r["needs_dispatcher"]
    r = await agent.call("GET", f"/api/v1/tickets/{other}/routing")
    assert r["needs_dispatcher"] and r["suggestions"] == []

    # The re-report finds the first ticket, written the same way, same phone, same address.
    d = await agent.call("GET", f"/api/v1/tickets/{again}/duplicates")
    top = d["duplicates"][0]
    assert top["number"] == first and top["mergeable"] and top["score"] >= 0.9
    assert top["same_phone"] and top["same_address"] and "同一来电号码" in top["reasons"]
    assert all(x["number"] != other or not x["mergeable"] for x in d["duplicates"])

    # Department isolation: another department's ticket does not exist for them.
    await agent.call("POST", f"/api/v1/tickets/{first}/actions/dispatch", {"lead_department_id": depts["swuj"]})
    await u["water"].call("GET", f"/api/v1/tickets/{first}/routing")
    for path in (f"/api/v1/tickets/{first}/routing", f"/api/v1/tickets/{first}/duplicates"):
        body = await u["env"].call("GET", path, expect=404)
        assert body["error"] == "ticket_not_found"
    await u["water"].call("GET", f"/api/v1/tickets/{again}/duplicates", expect=404)

    # A model file appears (train-router ran in another process): the next request uses it.
    texts = ["孩子 上学 入学 学校 户口"] * 20 + ["工资 拖欠 社保 单位"] * 20
    model = RouterModel.train(texts, ["教育文体"] * 20 + ["劳动和社会保障"] * 20, calibrate=False)
    model.save(model_path(center["settings"]))
    r = await agent.call("GET", f"/api/v1/tickets/{other}/routing")
    assert r["suggestions"][0]["department"] == "jyj" and r["suggestions"][0]["source"] == "model"
    assert any("入学" in reason or "孩子" in reason for reason in r["suggestions"][0]["reasons"])

    # Hot issues: for supervisors only; three reports of one matter form a named cluster.
    for i in range(3):
        await new_ticket(agent, caller_phone=f"1390000001{i}", address="建设路", title=f"渣土车夜间抛洒{i}",
                         content=f"建设路渣土车每天夜里抛洒泥土，路面全是泥，第{i}次反映")
    await agent.call("GET", "/api/v1/hot-issues", expect=403)
    hot = await u["super"].call("GET", "/api/v1/hot-issues?days=7")
    assert any("渣土车" in c["name"] and c["size"] >= 3 for c in hot["clusters"]), hot
    await u["super"].call("GET", "/api/v1/hot-issues?days=0", expect=400)

    # train-router's training set: the department that replied is the label, a return a negative.
    replied = await new_ticket(agent, title="河道发臭", content="小河里黑臭水体，夏天味道很大")
    await agent.call("POST", f"/api/v1/tickets/{replied}/actions/dispatch", {"lead_department_id": depts["swuj"]})
    await u["water"].call("POST", f"/api/v1/tickets/{replied}/actions/return", {"reason": "非本单位职责"})
    await agent.call("POST", f"/api/v1/tickets/{replied}/actions/approve_return", {})
    # The department that returned it is never suggested for it again (read with the ticket, one row per return).
    r = await agent.call("GET", f"/api/v1/tickets/{replied}/routing")
    assert r["excluded"] == ["swuj"] and r["suggestions"]
    assert all(s["department"] != "swuj" for s in r["suggestions"])
    await agent.call("POST", f"/api/v1/tickets/{replied}/actions/dispatch", {"lead_department_id": depts["sthj"]})
    await u["env"].call("POST", f"/api/v1/tickets/{replied}/actions/sign", {})
    await u["env"].call("POST", f"/api/v1/tickets/{replied}/actions/reply", {"answer": "已安排清淤"})
    texts, labels, negatives = await routing_service.load_training_set(center["settings"].database_url)
    assert labels == ["sthj"] and "黑臭水体" in texts[0]
    assert [code for _, code in negatives] == ["swuj"]


async def test_same_estate_same_problem_in_other_words_is_linked_not_merged(center: dict[str, Any]) -> None:
    """Issue 20: two neighbours tell one parking dispute in their own words; a burst pipe at the same
    address is another matter and stays out of the list."""
    agent = center["users"]["agent"]
    place = {"address": "滨河路9号伊景园滨河苑", "district": "A7区"}
    first = await new_ticket(agent, caller_phone="13800000001", category="城乡建设/住房/物业车位", **place,
                             title="伊景园滨河苑捆绑销售车位", content="开发商捆绑销售车位，不买车位就不给交房，强烈要求查处。")
    pipe = await new_ticket(agent, caller_phone="13800000003", category="城乡建设/供水/管网维修", **place,
                            title="地下室水管爆裂", content="3栋地下室水管爆裂，水漫进电梯井，请尽快维修。")
    second = await new_ticket(agent, caller_phone="13800000002", category="城乡建设/住房/物业车位", **place,
                              title="买房还要买停车位？", content="我们业主被逼着花十几万买停车位才能拿钥匙，这合法吗？")
    d = await agent.call("GET", f"/api/v1/tickets/{second}/duplicates")
    numbers = [x["number"] for x in d["duplicates"]]
    assert numbers == [first], d
    top = d["duplicates"][0]
    assert "同一地址同类问题（30天内）" in top["reasons"] and not top["mergeable"]
    assert pipe not in numbers
