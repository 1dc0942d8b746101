"""HTTP API of the ticket core under ``/api/v1`` (JSON): create, list, read and act on tickets, the
dissatisfaction ledger, the dictionaries the UI needs, and the OpenAPI document every feature adds to."""
from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import Field

from config.settings import REQUEST_TYPES
from tickets import workflow
from tickets.accounts.http import COOKIE, USERS, principal
from tickets.accounts.service import ROLES, Principal
from tickets.errors import InvalidField
from tickets.json_http import (
    OPENAPI_PATHS,
    STANDARD_ERRORS,
    Body,
    body_schema,
    ok,
    parse,
    parse_datetime,
    parse_day,
    query_id,
    query_int,
    query_number,
    read_json,
)
from tickets.service import CHANNELS, TicketQuery, TicketStore, shown_to

STORE = web.AppKey("ticket_store", TicketStore)
MAX_WITHIN_HOURS = 24 * 31  # "near due" looks at most a month ahead
TZ = web.AppKey("tickets_tz", ZoneInfo)


# ---------------------------------------------------------------- request bodies
class TicketCreate(Body):
    channel: Literal["phone", "web", "wechat", "app", "mailbox", "walk_in", "sms", "email"] = "phone"
    caller_name: str = Field(default="", max_length=100)
    caller_phone: str = Field(default="", max_length=32)
    anonymous: bool = False
    survey_opt_out: bool = False
    request_type: Literal["inquiry", "help", "complaint", "report", "suggestion", "praise"] = "inquiry"
    urgency: Literal["urgent", "normal"] = "normal"
    title: str = Field(default="", max_length=10_000)
    content: str = Field(default="", max_length=10_000)
    address: str = Field(default="", max_length=10_000)
    district: str = Field(default="", max_length=100)
    category: str = Field(default="", max_length=100)
    accept: bool = False  # create and accept in one step (the agent's common path)
    call_id: str | None = Field(default=None, max_length=64)



# ---------------------------------------------------------------- handlers
async def create_ticket(request: web.Request) -> web.Response:
    who = principal(request)
    body = parse(TicketCreate, await read_json(request))
    data = body.model_dump(exclude={"accept", "call_id"})
    if who.district:  # a district sub-center registers its own district's cases (and could not see others)
        if not data.get("district"):
            data["district"] = who.district
        elif data["district"] != who.district:
            raise InvalidField("district", f"区分中心只能登记本区（{who.district}）的工单")
    ticket = await request.app[STORE].create(data, who, accept=body.accept, call_id=body.call_id)
    # Only now, after the commit, does the client learn the number.
    return ok(shown_to(ticket, who), status=201)


async def list_tickets(request: web.Request) -> web.Response:
    who = principal(request)
    q = request.query
    tz = request.app[TZ]
    status = [s for s in q.get("status", "").split(",") if s]
    bad = [s for s in status if s not in workflow.STATUSES]
    if bad:
        raise InvalidField("status", f"未知状态：{bad}")
    if q.get("request_type") and q["request_type"] not in REQUEST_TYPES:
        raise InvalidField("request_type", f"request_type 须为 {', '.join(REQUEST_TYPES)} 之一")
    limit = query_int(q, "limit", 50, 1, 500)  # limit=-1 is a 400, never "every ticket"
    offset = query_int(q, "offset", 0, 0, 10_000_000)
    department_id = query_id(q, "department_id")
    day_from, day_to = parse_day(q.get("from"), "from"), parse_day(q.get("to"), "to")
    query = TicketQuery(
        status=status, department_id=department_id, request_type=q.get("request_type") or None,
        district=q.get("district") or None, phone=q.get("phone") or None, text=q.get("q") or None,
        overdue=q.get("overdue") in ("1", "true", "yes"),
        created_from=datetime.combine(day_from, time(0), tz) if day_from else None,
        created_to=datetime.combine(day_to + timedelta(days=1), time(0), tz) if day_to else None,
        limit=limit, offset=offset,
    )
    return ok(await request.app[STORE].list(query, who))


async def due_tickets(request: web.Request) -> web.Response:
    who = principal(request)
    kind = request.query.get("kind", "overdue")
    if kind not in ("overdue", "near_due", "caller_overdue"):
        raise InvalidField("kind", "kind 须为 overdue、near_due 或 caller_overdue")
    within = query_number(request.query, "within_hours", 0.1, MAX_WITHIN_HOURS)
    return ok(await request.app[STORE].due_list(who, kind, within))


async def record_phone_read(request: web.Request, ticket: dict[str, Any], who: Principal,
                            action: str = "view_phone") -> None:
    """The access log's entry for a ticket shown with a caller's whole number (an agent's or supervisor's view,
    a department's 显示号码); nothing when every number shown was masked or there was none."""
    numbers = [n for n in [ticket.get("caller_phone"), *(c.get("caller_phone") for c in ticket.get("callers", []))]
               if n and "*" not in n]
    if numbers and USERS in request.app:
        await request.app[USERS].audit.access(who, action, f"ticket:{ticket['number']}",
                                              {"numbers": len(numbers), "path": request.path}, request.remote)


async def get_ticket(request: web.Request) -> web.Response:
    who = principal(request)
    ticket = await request.app[STORE].get(request.match_info["number"], who)
    await record_phone_read(request, ticket, who)
    return ok(ticket)


async def reveal_phone(request: web.Request) -> web.Response:
    """显示号码: the caller's whole number (and merged callers'), for anyone who may see the ticket; recorded in
    the access log."""
    who = principal(request)
    ticket = await request.app[STORE].get(request.match_info["number"], who, reveal=True)
    await record_phone_read(request, ticket, who, "reveal_phone")
    return ok({"number": ticket["number"], "caller_phone": ticket["caller_phone"],
               "callers": [{"ticket": c["ticket"], "caller_name": c["caller_name"], "caller_phone": c["caller_phone"]}
                           for c in ticket.get("callers", [])]})


async def ticket_history(request: web.Request) -> web.Response:
    return ok(await request.app[STORE].history(request.match_info["number"], principal(request)))


async def related_tickets(request: web.Request) -> web.Response:
    return ok(await request.app[STORE].related(request.match_info["number"], principal(request)))


async def ticket_action(request: web.Request) -> web.Response:
    who = principal(request)
    action = request.match_info["action"]
    params = await read_json(request)
    if action == "supervise" and "due" in params:
        params["due"] = parse_datetime(params["due"], "due", request.app[TZ])
    if action not in workflow.RULES:
        raise InvalidField("action", f"未知操作：{action}；可用操作：{', '.join(workflow.ACTIONS)}")
    if who.district and action == "edit" and "district" in params and params["district"] != who.district:
        # the case would leave the sub-center's sight: moving it to another district is the city center's call
        raise InvalidField("district", f"区分中心不能把工单改到其他区（本区：{who.district}）")
    return ok(shown_to(await request.app[STORE].act(request.match_info["number"], action, params, who), who))


async def ledger(request: web.Request) -> web.Response:
    who = principal(request)
    since = parse_day(request.query.get("from"), "from")
    tz = request.app[TZ]
    return ok(await request.app[STORE].ledger(who, datetime.combine(since, time(0), tz) if since else None))


async def ledger_summary(request: web.Request) -> web.Response:
    """不满意台账 decisions counted (重办, 解释说明后办结, 依法分流, pending) and the 回访 after re-handling."""
    who = principal(request)
    since = parse_day(request.query.get("from"), "from")
    tz = request.app[TZ]
    store = request.app[STORE]
    items = await store.ledger(who, datetime.combine(since, time(0), tz) if since else None)
    return ok(store.ledger_counts(items))


async def fallback(request: web.Request) -> web.Response:
    """兜底件 of one week (Monday to Sunday around ``week``, default this week), by department: the weekly 专报."""
    who = principal(request)
    tz = request.app[TZ]
    store = request.app[STORE]
    day = parse_day(request.query.get("week"), "week") or store.clock().astimezone(tz).date()
    monday = day - timedelta(days=day.weekday())
    start = datetime.combine(monday, time(0), tz)
    return ok(await store.fallback_cases(who, start, start + timedelta(days=7)))


async def supervision(request: web.Request) -> web.Response:
    """督办件 by department (on time / late / overdue), the overdue alert and the 提级件, for ``from``..``to``
    (days, ``to`` inclusive; default this calendar month)."""
    who = principal(request)
    tz = request.app[TZ]
    store = request.app[STORE]
    today = store.clock().astimezone(tz).date()
    day_from = parse_day(request.query.get("from"), "from") or today.replace(day=1)
    day_to = parse_day(request.query.get("to"), "to") or today
    if day_to < day_from or (day_to - day_from).days > 366:
        raise InvalidField("to", "to 须不早于 from，且区间不超过366天")
    start = datetime.combine(day_from, time(0), tz)
    end = datetime.combine(day_to + timedelta(days=1), time(0), tz)
    report = await store.supervision(who, start, end)
    report["alert"] = await store.supervision_overdue(who)
    return ok(report)


async def meta(request: web.Request) -> web.Response:
    settings = request.app[STORE].settings
    return ok({
        "statuses": workflow.STATUS_LABELS,
        "actions": {name: rule.label for name, rule in workflow.RULES.items()},
        "request_types": {"inquiry": "咨询", "help": "求助", "complaint": "投诉", "report": "举报",
                          "suggestion": "建议", "praise": "表扬"},
        "urgencies": {"urgent": "紧急", "normal": "一般"},
        "channels": dict(zip(CHANNELS, ("电话", "网站", "微信", "APP", "信箱", "来访", "短信", "电子邮件"))),
        "return_reasons": settings.deadlines.return_reasons,
        "satisfaction": {"satisfied": "满意", "basically_satisfied": "基本满意", "dissatisfied": "不满意"},
        "roles": list(ROLES),
    })


# ---------------------------------------------------------------- OpenAPI
def openapi_document() -> dict[str, Any]:
    body, std = body_schema, STANDARD_ERRORS
    number = {"name": "number", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "12345 热线工单 API", "version": "1"},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                           "cookie": {"type": "apiKey", "in": "cookie", "name": COOKIE}}},
        "security": [{"bearer": []}, {"cookie": []}],
        "paths": {
            "/api/v1/tickets": {
                "get": {"summary": "工单查询（电话号码脱敏）", "parameters": [
                    *({"name": n, "in": "query", "schema": {"type": "string"}}
                      for n in ("status", "request_type", "district", "overdue")),
                    {"name": "phone", "in": "query", "schema": {"type": "string"},
                     "description": "来电号码：完整号码（任意写法），或4位数字＝号码后四位"},
                    {"name": "q", "in": "query", "schema": {"type": "string"},
                     "description": "关键词：标题、内容、地址，或工单编号（完整或其中一段）"},
                    {"name": "department_id", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                    *({"name": n, "in": "query", "schema": {"type": "string", "format": "date"}} for n in ("from", "to")),
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}}],
                    "responses": {"200": {"description": "page"}, **std}},
                "post": {"summary": "登记工单（提交后才返回编号）", "requestBody": body(TicketCreate),
                         "responses": {"201": {"description": "ticket"}, **std}}},
            "/api/v1/tickets/due": {"get": {"summary": "超期/临期工单", "parameters": [
                {"name": "kind", "in": "query", "schema": {"enum": ["overdue", "near_due", "caller_overdue"]}},
                {"name": "within_hours", "in": "query", "schema": {"type": "number", "exclusiveMinimum": 0,
                                                                   "maximum": MAX_WITHIN_HOURS}}],
                "responses": {"200": {"description": "list"}, **std}}},
            "/api/v1/tickets/{number}": {"get": {"summary": "工单详情（含可执行操作）", "parameters": [number],
                                                 "responses": {"200": {"description": "ticket"}, **std}}},
            "/api/v1/tickets/{number}/reveal-phone": {"post": {
                "summary": "显示号码：来电人完整电话（承办单位默认只见脱敏号码；记入访问日志）", "parameters": [number],
                "responses": {"200": {"description": "caller_phone and merged callers' numbers"}, **std}}},
            "/api/v1/tickets/{number}/history": {"get": {"summary": "办理记录（只读）", "parameters": [number],
                                                         "responses": {"200": {"description": "list"}, **std}}},
            "/api/v1/tickets/{number}/related": {"get": {"summary": "重复来电与相似工单", "parameters": [number],
                                                         "responses": {"200": {"description": "related"}, **std}}},
            "/api/v1/tickets/{number}/actions/{action}": {"post": {
                "summary": "工单操作：" + "、".join(f"{a}（{r.label}）" for a, r in workflow.RULES.items()),
                "parameters": [number, {"name": "action", "in": "path", "required": True,
                                        "schema": {"enum": list(workflow.ACTIONS)}}],
                "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {"200": {"description": "ticket"}, **std}}},
            "/api/v1/ledger": {"get": {"summary": "不满意台账", "parameters": [
                {"name": "from", "in": "query", "schema": {"type": "string", "format": "date"}}],
                "responses": {"200": {"description": "list"}, **std}}},
            "/api/v1/ledger/summary": {"get": {"summary": "不满意台账：各项决定计数及重办后回访", "parameters": [
                {"name": "from", "in": "query", "schema": {"type": "string", "format": "date"}}],
                "responses": {"200": {"description": "counts"}, **std}}},
            "/api/v1/supervision": {"get": {"summary": "督办件（按时/逾期/超期未反馈）、督办超期提醒与提级件", "parameters": [
                {"name": n, "in": "query", "schema": {"type": "string", "format": "date"}} for n in ("from", "to")],
                "responses": {"200": {"description": "report"}, **std}}},
            "/api/v1/fallback": {"get": {"summary": "兜底件周专报（按单位）", "parameters": [
                {"name": "week", "in": "query", "schema": {"type": "string", "format": "date"}}],
                "responses": {"200": {"description": "week"}, **std}}},
            "/api/v1/openapi.json": {"get": {"summary": "本文档", "security": [],
                                             "responses": {"200": {"description": "OpenAPI 3.1"}}}},
            "/api/v1/meta": {"get": {"summary": "状态、操作、类型等字典", "responses": {"200": {"description": "meta"}}}},
            "/health": {"get": {"summary": "健康检查", "security": [], "responses": {"200": {"description": "ok"}}}},
        },
    }


async def openapi(request: web.Request) -> web.Response:
    doc = openapi_document()
    doc["paths"].update(request.app.get(OPENAPI_PATHS, {}))
    return ok(doc)


def setup_routes(app: web.Application, tz: ZoneInfo) -> None:
    app[TZ] = tz
    r = app.router
    r.add_get("/api/v1/tickets", list_tickets)
    r.add_post("/api/v1/tickets", create_ticket)
    r.add_get("/api/v1/tickets/due", due_tickets)
    r.add_get("/api/v1/tickets/{number}", get_ticket)
    r.add_get("/api/v1/tickets/{number}/history", ticket_history)
    r.add_post("/api/v1/tickets/{number}/reveal-phone", reveal_phone)
    r.add_get("/api/v1/tickets/{number}/related", related_tickets)
    r.add_post("/api/v1/tickets/{number}/actions/{action}", ticket_action)
    r.add_get("/api/v1/ledger", ledger)
    r.add_get("/api/v1/ledger/summary", ledger_summary)
    r.add_get("/api/v1/fallback", fallback)
    r.add_get("/api/v1/supervision", supervision)
    r.add_get("/api/v1/meta", meta)
    r.add_get("/api/v1/openapi.json", openapi)
