"""Real tickets walked through every path of the 12345 workflow over the HTTP API, on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import datetime

from tests.tickets.conftest import TZ, Center


def local(iso: str) -> datetime:
    return datetime.fromisoformat(iso).astimezone(TZ)


async def test_full_path_accept_dispatch_sign_progress_reply_survey_archive(center: Center) -> None:
    t = await center.new_ticket(accept=True)
    number = t["number"]
    assert number.startswith("20261123-") and t["status"] == "accepted"
    assert t["accepted_by"] == center.agent.user["id"]  # 首接负责

    env = center.departments["sthj"]
    city = center.departments["cgj"]
    t = await center.agent.act(number, "dispatch", lead_department_id=env, co_handler_ids=[city], note="请核查")
    assert t["status"] == "dispatched" and t["co_handler_ids"] == [city]
    # complaint: 15 working days; dispatched Monday 2026-11-23 09:00 -> end of Monday 2026-12-14
    assert local(t["reply_due"]) == datetime(2026, 12, 15, 0, 0, tzinfo=TZ)
    assert local(t["sign_due"]) == datetime(2026, 11, 25, 0, 0, tzinfo=TZ)  # 1 working day

    # The co-handler can see it and report progress, but cannot sign or reply.
    refused = await center.city.act(number, "sign", expect=409)
    assert refused["error"] == "not_permitted" and refused["status"] == "dispatched"

    center.clock.advance(hours=2)
    t = await center.env.act(number, "sign")
    assert t["status"] == "signed"
    await center.env.act(number, "progress_report", note="已联系施工单位，约定夜间停工")
    await center.city.act(number, "progress_report", note="城管已到场检查")

    center.clock.advance(days=1)
    t = await center.env.act(number, "reply", answer="经核查，施工单位已承诺22点后停止施工，并已处罚。")
    assert t["status"] == "replied"
    t = await center.agent.act(number, "record_survey", satisfaction="satisfied", resolved=True, note="来电人表示满意")
    assert t["status"] == "surveyed" and t["satisfaction"] == "satisfied"
    t = await center.agent.act(number, "archive")
    assert t["status"] == "archived"

    history = await center.super.get(f"/api/v1/tickets/{number}/history")
    assert [h["action"] for h in history] == [
        "create", "accept", "dispatch", "sign", "progress_report", "progress_report", "reply", "record_survey",
        "archive"]
    assert history[4]["note"] == "已联系施工单位，约定夜间停工"
    assert history[2]["from_status"] == "accepted" and history[2]["to_status"] == "dispatched"
    assert history[3]["actor_role"] == "department"

    # The history cannot be edited through the API: no route accepts a write.
    for method in ("PUT", "PATCH", "DELETE", "POST"):
        resp = await center.client.request(method, f"/api/v1/tickets/{number}/history",
                                           headers={"Authorization": f"Bearer {center.admin.token}"}, json={})
        assert resp.status == 405


async def test_answer_on_spot_and_invalid(center: Center) -> None:
    t = await center.new_ticket(request_type="inquiry", title="公积金提取需要什么材料", content="想问问公积金提取流程")
    t = await center.agent.act(t["number"], "answer_on_spot", answer="携带身份证和购房合同到公积金中心办理。")
    assert t["status"] == "answered_on_spot" and t["answer"].startswith("携带身份证")
    assert "record_survey" in (await center.agent.get(f"/api/v1/tickets/{t['number']}"))["allowed_actions"]

    bad = await center.new_ticket(title="骚扰电话", content="无实际诉求")
    refused = await center.agent.act(bad["number"], "mark_invalid", expect=400)
    assert refused["field"] == "reason"
    t = await center.agent.act(bad["number"], "mark_invalid", reason="骚扰电话")
    assert t["status"] == "invalid"
    refused = await center.agent.act(bad["number"], "dispatch", lead_department_id=1, expect=409)
    assert refused["status"] == "invalid" and "无效" in refused["message"]


async def test_refusal_names_state_and_allowed_actions(center: Center) -> None:
    t = await center.new_ticket(accept=True)
    refused = await center.agent.act(t["number"], "reply", answer="x", expect=409)
    assert refused["error"] == "not_allowed_in_state"
    assert refused["status"] == "accepted"
    assert "dispatch" in refused["allowed"] and "已受理" in refused["message"] and "派单" in refused["message"]
    resp = await center.agent.act(t["number"], "fly_to_moon", expect=400)
    assert resp["field"] == "action"


async def test_dispatch_to_a_department_that_does_not_exist_names_the_field(center: Center) -> None:
    env = center.departments["sthj"]
    t = await center.new_ticket(accept=True)
    unknown = max(center.departments.values()) + 100
    refused = await center.agent.act(t["number"], "dispatch", lead_department_id=unknown, expect=400)
    assert refused["field"] == "lead_department_id" and str(unknown) in refused["message"]
    refused = await center.agent.act(t["number"], "dispatch", lead_department_id=env, co_handler_ids=[env, unknown],
                                     expect=400)
    assert refused["field"] == "co_handler_ids" and str(unknown) in refused["message"]
    t = await center.agent.act(t["number"], "dispatch", lead_department_id=env, co_handler_ids=[env])
    assert t["status"] == "dispatched" and t["lead_department_id"] == env  # the refusals changed nothing


async def test_return_within_window_reviewed_by_dispatcher(center: Center) -> None:
    water, env = center.departments["swuj"], center.departments["sthj"]
    t = await center.new_ticket(accept=True)
    n = t["number"]
    await center.agent.act(n, "dispatch", lead_department_id=water)
    bad = await center.water.act(n, "return", reason="不想办", expect=400)
    assert bad["field"] == "reason" and "属地不符" in bad["message"]
    t = await center.water.act(n, "return", reason="非本单位职责", note="噪音属生态环境部门")
    assert t["status"] == "returned"
    # The dispatcher rejects the return: same department, same deadlines.
    t2 = await center.agent.act(n, "reject_return", note="供水管网施工属你单位")
    assert t2["status"] == "dispatched" and t2["reply_due"] == t["reply_due"]
    await center.water.act(n, "return", reason="职能交叉")
    t3 = await center.agent.act(n, "approve_return", note="同意，改派")
    assert t3["status"] == "accepted" and t3["lead_department_id"] is None
    # The former department no longer sees the ticket.
    await center.water.get(f"/api/v1/tickets/{n}", expect=404)
    center.clock.advance(hours=1)
    t4 = await center.agent.act(n, "dispatch", lead_department_id=env)
    # The ticket's true age stays visible: first dispatch kept, current dispatch new.
    assert t4["first_dispatched_at"] < t4["dispatched_at"]
    assert t4["accepted_by"] == center.agent.user["id"]


async def test_return_window_closes_after_two_working_days(center: Center) -> None:
    water = center.departments["swuj"]
    # Dispatched Friday 2026-11-27 15:00: the 2 working days are Mon 30 Nov and Tue 1 Dec.
    center.clock.set_local(2026, 11, 27, 15, 0)
    t = await center.new_ticket(accept=True)
    await center.agent.act(t["number"], "dispatch", lead_department_id=water)
    center.clock.set_local(2026, 12, 1, 23, 0)
    await center.water.act(t["number"], "sign")
    center.clock.set_local(2026, 12, 2, 0, 30)
    refused = await center.water.act(t["number"], "return", reason="属地不符", expect=409)
    assert refused["error"] == "return_window_closed"


async def test_extension_and_suspension_move_the_deadline(center: Center) -> None:
    water = center.departments["swuj"]
    t = await center.new_ticket(accept=True, request_type="help")  # 7 working days
    n = t["number"]
    t = await center.agent.act(n, "dispatch", lead_department_id=water)
    assert local(t["reply_due"]) == datetime(2026, 12, 3, 0, 0, tzinfo=TZ)
    await center.water.act(n, "sign")
    too_long = await center.water.act(n, "request_extension", days=11, reason="需协调多部门", expect=400)
    assert too_long["field"] == "days"
    await center.water.act(n, "request_extension", days=5, reason="需协调管网改造")
    again = await center.water.act(n, "request_extension", days=2, reason="再延", expect=409)
    assert again["status"] == "signed"
    # Only a supervisor approves; the department cannot approve its own request.
    await center.water.act(n, "approve_extension", expect=409)
    t = await center.super.act(n, "approve_extension", days=3, note="同意延期3个工作日")
    assert local(t["reply_due"]) == datetime(2026, 12, 8, 0, 0, tzinfo=TZ)
    assert t["extension_days_granted"] == 3
    await center.water.act(n, "request_extension", days=2, reason="材料未到")
    t = await center.super.act(n, "refuse_extension", note="不予延期")
    assert t["extension_pending_days"] is None and local(t["reply_due"]) == datetime(2026, 12, 8, 0, 0, tzinfo=TZ)

    # A department only asks to stop its clock (暂停计时): a supervisor approves, with the reason on record.
    t = await center.water.act(n, "suspend", note="等待来电人补充房产证明")
    assert t["suspended_at"] is None and t["suspend_requested"] == "等待来电人补充房产证明"
    await center.water.act(n, "approve_suspend", expect=409)
    center.clock.advance(hours=1)
    t = await center.super.act(n, "approve_suspend", note="同意")
    assert t["suspended_at"] is not None and t["suspend_requested"] is None
    center.clock.advance(hours=50)
    t = await center.water.act(n, "resume")
    assert local(t["reply_due"]) == datetime(2026, 12, 10, 2, 0, tzinfo=TZ)  # 50 h suspended, not the hour asked


async def test_dissatisfied_survey_goes_to_ledger_and_reopens(center: Center) -> None:
    water = center.departments["swuj"]
    t = await center.new_ticket(accept=True, title="停水三天", content="幸福小区停水三天无人处理")
    n = t["number"]
    await center.agent.act(n, "dispatch", lead_department_id=water)
    await center.water.act(n, "sign")
    await center.water.act(n, "reply", answer="已修复")
    t = await center.agent.act(n, "record_survey", satisfaction="dissatisfied", resolved=False, note="仍然没水")
    # Rule "reopen" (default): straight back to the same department for re-handling (重办).
    assert t["status"] == "dispatched" and t["reopen_count"] == 1 and t["lead_department_id"] == water
    ledger = await center.super.get("/api/v1/ledger")
    assert ledger[0]["ticket"] == n and ledger[0]["decision"] == "reopened"
    assert (await center.water.get("/api/v1/ledger"))[0]["ticket"] == n
    assert await center.env.get("/api/v1/ledger") == []
    await center.water.act(n, "sign")
    await center.water.act(n, "reply", answer="已更换水管，恢复供水")
    t = await center.agent.act(n, "record_survey", satisfaction="basically_satisfied", resolved=True)
    assert t["status"] == "surveyed"
    await center.agent.act(n, "archive")
    # A supervisor can still reopen an archived ticket.
    t = await center.super.act(n, "reopen", note="媒体曝光再次停水")
    assert t["status"] == "dispatched" and t["reopen_count"] == 2


async def test_supervision_and_escalation_at_open_states(center: Center) -> None:
    water = center.departments["swuj"]
    t = await center.new_ticket(accept=True)
    n = t["number"]
    await center.agent.act(n, "supervise", note="x", due="2026-11-30T18:00:00+08:00", expect=409)  # agent may not
    t = await center.super.act(n, "supervise", note="群众反映强烈，限期办结", due="2026-11-30T18:00:00+08:00")
    assert t["supervised"] and local(t["supervision_due"]) == datetime(2026, 11, 30, 18, 0, tzinfo=TZ)
    await center.agent.act(n, "dispatch", lead_department_id=water)
    city = center.departments["cgj"]
    t = await center.super.act(n, "escalate", note="提级至区政府督办", to_department_id=city)
    assert t["escalation_level"] == 1 and t["lead_department_id"] == city
    bad = await center.super.act(n, "supervise", note="x", due="明天", expect=400)
    assert bad["field"] == "due"


async def test_merge_keeps_both_histories(center: Center) -> None:
    first = await center.new_ticket(accept=True, caller_phone="13900001111")
    dup = await center.new_ticket(who="agent2", caller_phone="139-0000-1111")
    assert dup["caller_phone"] == "13900001111"  # normalised
    related = await center.agent2.get(f"/api/v1/tickets/{dup['number']}/related")
    assert related["repeat_caller"] is True
    assert first["number"] in [r["number"] for r in related["same_phone"]]
    assert first["number"] in [r["number"] for r in related["similar"]]
    assert first["number"] in [r["number"] for r in related["same_address"]]
    assert related["same_phone"][0]["caller_phone"] == "139****1111"  # masked in lists

    t = await center.agent2.act(dup["number"], "merge", master=first["number"], note="同一诉求重复来电")
    assert t["status"] == "merged" and t["duplicate_of"] == first["number"]
    master_history = await center.agent.get(f"/api/v1/tickets/{first['number']}/history")
    assert master_history[-1]["action"] == "merged_in" and master_history[-1]["data"]["duplicate"] == dup["number"]
    dup_history = await center.agent.get(f"/api/v1/tickets/{dup['number']}/history")
    assert [h["action"] for h in dup_history] == ["create", "merge"]
    bad = await center.agent.act(first["number"], "merge", master="20990101-000001", expect=400)
    assert bad["field"] == "master"


async def test_department_isolation_is_404(center: Center) -> None:
    water, env = center.departments["swuj"], center.departments["sthj"]
    t = await center.new_ticket(accept=True)
    await center.agent.act(t["number"], "dispatch", lead_department_id=water)
    resp = await center.env.get(f"/api/v1/tickets/{t['number']}", expect=404)
    assert resp["error"] == "ticket_not_found"
    await center.env.get(f"/api/v1/tickets/{t['number']}/history", expect=404)
    await center.env.act(t["number"], "sign", expect=404)
    assert (await center.env.get("/api/v1/tickets"))["total"] == 0
    assert (await center.water.get("/api/v1/tickets"))["total"] == 1
    # An unknown ticket and another department's ticket look exactly the same.
    other = await center.env.get("/api/v1/tickets/20260101-999999", expect=404)
    assert other == resp | {"message": other["message"]}
    # Department handlers cannot create tickets or dispatch.
    await center.water.post("/api/v1/tickets", {"content": "x"}, expect=409)
    assert env != water


async def test_validation_errors_name_the_field(center: Center) -> None:
    cases = [
        ({"content": "x", "request_type": "gossip"}, "request_type"),
        ({"content": "x", "urgency": "very"}, "urgency"),
        ({"content": "x", "channel": "fax"}, "channel"),
        ({"content": "x", "caller_phone": "12"}, "caller_phone"),
        ({"content": "x", "unknown_field": 1}, "unknown_field"),
        ({"content": "x" * 10_001}, "content"),
        ({"title": ""}, "content"),
    ]
    for body, field in cases:
        resp = await center.agent.post("/api/v1/tickets", body, expect=400)
        assert resp["field"] == field, (body, resp)
    raw = await center.client.post("/api/v1/tickets", data=b"{not json",
                                   headers={"Authorization": f"Bearer {center.agent.token}",
                                            "Content-Type": "application/json"})
    assert raw.status == 400 and (await raw.json())["field"] == "body"
    big = await center.client.post("/api/v1/tickets", data=b"{" + b" " * 2_000_000 + b"}",
                                   headers={"Authorization": f"Bearer {center.agent.token}"})
    assert big.status == 413
    unauth = await center.client.get("/api/v1/tickets")
    assert unauth.status == 401 and (await unauth.json())["error"] == "login_required"


async def test_chinese_text_kept_byte_exact(center: Center) -> None:
    content = ("市民反映：𠀀𪚥龘「」、，。！？…—— emoji🙂 全角ＡＢＣ１２３ 半角abc123 \u3000 tab\t换行\n" * 200)[:10_000]
    t = await center.new_ticket(content=content, title="测试：生僻字𠀀与标点", address="西地省Ａ市幸福路１２号")
    back = await center.agent.get(f"/api/v1/tickets/{t['number']}")
    assert back["content"] == content and len(back["content"]) == 10_000
    assert back["content"].encode("utf-8") == content.encode("utf-8")
    assert back["title"] == "测试：生僻字𠀀与标点"


async def test_overdue_and_near_due_lists(center: Center) -> None:
    water = center.departments["swuj"]
    urgent = await center.new_ticket(accept=True, urgency="urgent", title="煤气泄漏", content="楼道里有很重的煤气味")
    normal = await center.new_ticket(accept=True, request_type="inquiry")
    await center.agent.act(urgent["number"], "dispatch", lead_department_id=water)
    await center.agent.act(normal["number"], "dispatch", lead_department_id=water)
    center.clock.advance(minutes=61)  # urgent: sign within 1 hour
    overdue = await center.super.get("/api/v1/tickets/due?kind=overdue")
    assert [t["number"] for t in overdue] == [urgent["number"]]
    assert (await center.super.get("/api/v1/tickets?overdue=1"))["total"] == 1
    near = await center.super.get("/api/v1/tickets/due?kind=near_due&within_hours=24")
    assert urgent["number"] in [t["number"] for t in near]  # reply within 24 h: near due
    assert normal["number"] not in [t["number"] for t in near]
    await center.env.get("/api/v1/tickets/due", expect=200)
    assert await center.env.get("/api/v1/tickets/due") == []


async def test_openapi_document_and_health(center: Center) -> None:
    doc = await (await center.client.get("/api/v1/openapi.json")).json()
    assert doc["openapi"].startswith("3.") and "/api/v1/tickets/{number}/actions/{action}" in doc["paths"]
    assert (await center.client.get("/metrics")).status == 401  # not for everyone on the intranet
    assert (await center.agent.get("/metrics", expect=403))["error"] == "metrics_forbidden"
    metrics = await center.admin.get("/metrics")
    assert 'hotline_http_requests_total{method="GET",route="/api/v1/openapi.json",status="200"} 1.0' in metrics
    health = await (await center.client.get("/health")).json()
    assert health["ok"] and health["checks"]["database"] == "ok" and health["checks"]["redis"] == "ok"


async def test_two_handlers_acting_at_once_only_one_wins(center: Center) -> None:
    import asyncio

    water = center.departments["swuj"]
    t = await center.new_ticket(accept=True)
    await center.agent.act(t["number"], "dispatch", lead_department_id=water)
    second = await center.login("water", "密码-pass-123")
    results = await asyncio.gather(center.water.act(t["number"], "sign", expect=None),
                                   second.act(t["number"], "sign", expect=None))
    statuses = sorted(r.get("error", "ok") if isinstance(r, dict) else r for r in results)
    assert statuses.count("ok") == 1, results
    history = await center.super.get(f"/api/v1/tickets/{t['number']}/history")
    assert [h["action"] for h in history].count("sign") == 1


async def test_logout_ends_the_token_and_admin_manages_departments(center: Center) -> None:
    api = await center.login("agent2", "密码-pass-123")
    await api.post("/api/v1/auth/logout", {})
    resp = await center.client.get("/api/v1/me", headers={"Authorization": f"Bearer {api.token}"})
    assert resp.status == 401
    wrong = await center.client.post("/api/v1/auth/login", json={"username": "agent2", "password": "nope"})
    assert wrong.status == 401 and (await wrong.json())["error"] == "bad_credentials"
    created = await center.admin.post("/api/v1/departments", {"code": "mzj", "name": "市民政局"}, expect=201)
    assert created["name"] == "市民政局"
    await center.agent.post("/api/v1/departments", {"code": "x", "name": "y"}, expect=403)
    dup = await center.admin.post("/api/v1/departments", {"code": "mzj", "name": "again"}, expect=409)
    assert dup["error"] == "department_exists"
    assert "mzj" in [d["code"] for d in await center.agent.get("/api/v1/departments")]


async def test_partial_survey_is_kept_and_not_counted_as_resolved(center: Center) -> None:
    water = center.departments["swuj"]
    t = await center.new_ticket(accept=True)
    n = t["number"]
    await center.agent.act(n, "dispatch", lead_department_id=water)
    await center.water.act(n, "sign")
    await center.water.act(n, "reply", answer="已处理")
    # The caller pressed 1 (满意) and hung up before the "resolved?" question.
    t = await center.agent.act(n, "record_survey", satisfaction="satisfied", resolved=None, via="ivr")
    assert t["status"] == "surveyed" and t["resolved"] is None
    rows = {r["code"]: r for r in (await center.super.get("/api/v1/rates?from=2026-11-01&to=2026-11-30"))["departments"]}
    assert rows["swuj"]["satisfaction_rate"] == 1.0 and rows["swuj"]["resolution_rate"] is None
    bad = await center.agent.act(n, "record_survey", satisfaction="satisfied", resolved="yes", expect=409)
    assert bad["status"] == "surveyed"
