"""HTTP API of the tickets package under ``/api/v1`` (JSON), plus the auth middleware every page uses."""
from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from typing import Any, Awaitable, Callable, Literal
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from config.settings import REQUEST_TYPES
from tickets import workflow
from tickets.errors import InvalidField, Unauthorized
from tickets.service import CHANNELS, TicketQuery, TicketStore
from tickets.users import ROLES, Principal, UserStore

STORE = web.AppKey("ticket_store", TicketStore)
USERS = web.AppKey("user_store", UserStore)
TZ = web.AppKey("tickets_tz", ZoneInfo)
COOKIE = "hotline_session"
PUBLIC_PATHS = {"/health", "/metrics", "/api/v1/auth/login", "/api/v1/openapi.json", "/login"}
PUBLIC_PREFIXES = ("/static/",)


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=dumps)


# ---------------------------------------------------------------- auth
def _token_of(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.cookies.get(COOKIE)


@web.middleware
async def auth_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                          ) -> web.StreamResponse:
    """Puts the caller in ``request["principal"]`` and, as a plain dict for other packages, ``request["user"]``.

    ``/api/`` and ``/ws/`` routes answer 401 without a valid session cookie or bearer token; pages decide
    themselves (they redirect to the login page).
    """
    request["principal"] = None
    request["user"] = None
    token = _token_of(request)
    if token and USERS in request.app:
        principal = await request.app[USERS].authenticate(token)
        if principal is not None:
            request["principal"] = principal
            request["user"] = principal.as_dict()
    public = request.path in PUBLIC_PATHS or request.path.startswith(PUBLIC_PREFIXES)
    if request["principal"] is None and not public and request.path.startswith(("/api/", "/ws/")):
        raise Unauthorized("login_required", "请先登录")
    return await handler(request)


def principal(request: web.Request) -> Principal:
    who = request.get("principal")
    if who is None:
        raise Unauthorized("login_required", "请先登录")
    return who


def require_role(request: web.Request, *roles: str) -> Principal:
    who = principal(request)
    if who.role not in roles:
        from tickets.errors import Forbidden

        raise Forbidden("forbidden", "您的角色无权执行此操作")
    return who


# ---------------------------------------------------------------- request bodies
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


Text = Field(default="", max_length=10_000)


class LoginBody(_Body):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)
    kind: Literal["session", "api"] = "session"
    label: str = Field(default="", max_length=100)


class TicketCreate(_Body):
    channel: Literal["phone", "web", "wechat", "app", "mailbox", "walk_in"] = "phone"
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


class DepartmentCreate(_Body):
    code: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    name: str = Field(min_length=1, max_length=200)
    domains: list[str] = []


class UserCreate(_Body):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=8, max_length=200)
    role: Literal["agent", "department", "supervisor", "admin"]
    display_name: str = Field(default="", max_length=100)
    department: str | None = Field(default=None, max_length=64)
    interface: str | None = Field(default=None, max_length=100)
    member_name: str | None = Field(default=None, max_length=100)


async def read_json(request: web.Request) -> dict[str, Any]:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise
    if not raw:
        return {}
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidField("body", "请求体必须是 UTF-8 编码的 JSON") from None
    except json.JSONDecodeError as exc:
        raise InvalidField("body", f"请求体不是合法的 JSON：{exc.msg}（第 {exc.pos} 个字符）") from None
    if not isinstance(data, dict):
        raise InvalidField("body", "请求体必须是 JSON 对象")
    return data


def parse(model: type[BaseModel], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "body"
        raise InvalidField(field, f"字段 {field}：{err['msg']}") from None


def _parse_datetime(value: Any, field: str, tz: ZoneInfo) -> datetime:
    if not isinstance(value, str):
        raise InvalidField(field, f"{field} 须为 ISO 8601 时间")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidField(field, f"{field} 不是合法的 ISO 8601 时间：{value}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def _parse_day(value: str | None, field: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidField(field, f"{field} 须为日期，如 2026-11-22") from None


# ---------------------------------------------------------------- handlers
async def login(request: web.Request) -> web.Response:
    body = parse(LoginBody, await read_json(request))
    token, who = await request.app[USERS].login(body.username, body.password, body.kind, body.label)
    response = ok({"token": token, "user": who.as_dict()})
    if body.kind == "session":
        settings_secure = request.app[STORE].settings.server.secure_cookies
        response.set_cookie(COOKIE, token, httponly=True, samesite="Lax", secure=settings_secure,
                            max_age=request.app[STORE].settings.server.session_hours * 3600, path="/")
    return response


async def logout(request: web.Request) -> web.Response:
    token = _token_of(request)
    if token:
        await request.app[USERS].logout(token)
    response = ok({"ok": True})
    response.del_cookie(COOKIE, path="/")
    return response


async def me(request: web.Request) -> web.Response:
    return ok(principal(request).as_dict())


async def list_departments(request: web.Request) -> web.Response:
    principal(request)
    departments = await request.app[USERS].load_departments()
    return ok([{"id": d.id, "code": d.code, "name": d.name, "domains": d.domains, "active": d.active}
               for d in departments.values()])


async def create_department(request: web.Request) -> web.Response:
    require_role(request, "admin")
    body = parse(DepartmentCreate, await read_json(request))
    dept = await request.app[USERS].create_department(body.code, body.name, body.domains)
    return ok({"id": dept.id, "code": dept.code, "name": dept.name, "domains": dept.domains, "active": True},
              status=201)


async def create_user(request: web.Request) -> web.Response:
    require_role(request, "admin")
    body = parse(UserCreate, await read_json(request))
    user = await request.app[USERS].create_user(body.username, body.password, body.role,
                                                 display_name=body.display_name, department_code=body.department,
                                                 interface=body.interface, member_name=body.member_name)
    return ok(user.as_dict(), status=201)


async def list_users(request: web.Request) -> web.Response:
    require_role(request, "admin", "supervisor")
    return ok([u.as_dict() for u in await request.app[USERS].list_users()])


async def create_ticket(request: web.Request) -> web.Response:
    who = principal(request)
    body = parse(TicketCreate, await read_json(request))
    data = body.model_dump(exclude={"accept", "call_id"})
    ticket = await request.app[STORE].create(data, who, accept=body.accept, call_id=body.call_id)
    # Only now, after the commit, does the client learn the number.
    return ok(ticket, status=201)


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
    try:
        limit = min(int(q.get("limit", 50)), 500)
        offset = max(int(q.get("offset", 0)), 0)
        department_id = int(q["department_id"]) if q.get("department_id") else None
    except ValueError as exc:
        raise InvalidField("limit", f"分页或单位参数须为整数：{exc}") from None
    day_from, day_to = _parse_day(q.get("from"), "from"), _parse_day(q.get("to"), "to")
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
    hours = request.query.get("within_hours")
    try:
        within = float(hours) if hours else None
    except ValueError:
        raise InvalidField("within_hours", "within_hours 须为数字") from None
    return ok(await request.app[STORE].due_list(who, kind, within))


async def get_ticket(request: web.Request) -> web.Response:
    return ok(await request.app[STORE].get(request.match_info["number"], principal(request)))


async def ticket_history(request: web.Request) -> web.Response:
    return ok(await request.app[STORE].history(request.match_info["number"], principal(request)))


async def related_tickets(request: web.Request) -> web.Response:
    return ok(await request.app[STORE].related(request.match_info["number"], principal(request)))


async def ticket_action(request: web.Request) -> web.Response:
    who = principal(request)
    action = request.match_info["action"]
    params = await read_json(request)
    if action == "supervise" and "due" in params:
        params["due"] = _parse_datetime(params["due"], "due", request.app[TZ])
    if action not in workflow.RULES:
        raise InvalidField("action", f"未知操作：{action}；可用操作：{', '.join(workflow.ACTIONS)}")
    return ok(await request.app[STORE].act(request.match_info["number"], action, params, who))


async def ledger(request: web.Request) -> web.Response:
    who = principal(request)
    since = _parse_day(request.query.get("from"), "from")
    tz = request.app[TZ]
    return ok(await request.app[STORE].ledger(who, datetime.combine(since, time(0), tz) if since else None))


async def department_rates(request: web.Request) -> web.Response:
    principal(request)
    tz = request.app[TZ]
    today = datetime.now(tz).date()
    day_from = _parse_day(request.query.get("from"), "from") or today.replace(day=1)
    day_to = _parse_day(request.query.get("to"), "to") or today
    if day_to < day_from:
        raise InvalidField("to", "结束日期不能早于开始日期")
    start = datetime.combine(day_from, time(0), tz)
    end = datetime.combine(day_to + timedelta(days=1), time(0), tz)
    departments = await request.app[USERS].load_departments()
    rows = await request.app[STORE].rates(start, end, departments)
    return ok({"from": day_from, "to": day_to, "departments": rows})


async def meta(request: web.Request) -> web.Response:
    settings = request.app[STORE].settings
    return ok({
        "statuses": workflow.STATUS_LABELS,
        "actions": {name: rule.label for name, rule in workflow.RULES.items()},
        "request_types": {"inquiry": "咨询", "help": "求助", "complaint": "投诉", "report": "举报",
                          "suggestion": "建议", "praise": "表扬"},
        "urgencies": {"urgent": "紧急", "normal": "一般"},
        "channels": dict(zip(CHANNELS, ("电话", "网站", "微信", "APP", "信箱", "来访"))),
        "return_reasons": settings.deadlines.return_reasons,
        "satisfaction": {"satisfied": "满意", "basically_satisfied": "基本满意", "dissatisfied": "不满意"},
        "roles": list(ROLES),
    })


# ---------------------------------------------------------------- OpenAPI
def openapi_document() -> dict[str, Any]:
    def body(model: type[BaseModel]) -> dict[str, Any]:
        return {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}

    error = {"description": "error", "content": {"application/json": {"schema": {
        "type": "object", "properties": {"error": {"type": "string"}, "message": {"type": "string"},
                                         "field": {"type": "string"}, "status": {"type": "string"},
                                         "allowed": {"type": "array", "items": {"type": "string"}}}}}}}
    std = {"400": error, "401": error, "404": error, "409": error, "413": error}
    number = {"name": "number", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "12345 热线工单 API", "version": "1"},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                           "cookie": {"type": "apiKey", "in": "cookie", "name": COOKIE}}},
        "security": [{"bearer": []}, {"cookie": []}],
        "paths": {
            "/api/v1/auth/login": {"post": {"summary": "登录", "requestBody": body(LoginBody), "security": [],
                                            "responses": {"200": {"description": "token"}, **std}}},
            "/api/v1/auth/logout": {"post": {"summary": "退出", "responses": {"200": {"description": "ok"}}}},
            "/api/v1/me": {"get": {"summary": "当前用户", "responses": {"200": {"description": "user"}, **std}}},
            "/api/v1/departments": {"get": {"summary": "单位列表", "responses": {"200": {"description": "list"}}},
                                    "post": {"summary": "新建单位（管理员）", "requestBody": body(DepartmentCreate),
                                             "responses": {"201": {"description": "department"}, **std}}},
            "/api/v1/users": {"get": {"summary": "用户列表", "responses": {"200": {"description": "list"}}},
                              "post": {"summary": "新建用户", "requestBody": body(UserCreate),
                                       "responses": {"201": {"description": "user"}, **std}}},
            "/api/v1/tickets": {
                "get": {"summary": "工单查询（电话号码脱敏）", "parameters": [
                    {"name": n, "in": "query", "schema": {"type": "string"}}
                    for n in ("status", "department_id", "request_type", "district", "phone", "q", "overdue",
                              "from", "to", "limit", "offset")], "responses": {"200": {"description": "page"}, **std}},
                "post": {"summary": "登记工单（提交后才返回编号）", "requestBody": body(TicketCreate),
                         "responses": {"201": {"description": "ticket"}, **std}}},
            "/api/v1/tickets/due": {"get": {"summary": "超期/临期工单", "parameters": [
                {"name": "kind", "in": "query", "schema": {"enum": ["overdue", "near_due"]}},
                {"name": "within_hours", "in": "query", "schema": {"type": "number"}}],
                "responses": {"200": {"description": "list"}, **std}}},
            "/api/v1/tickets/{number}": {"get": {"summary": "工单详情（含可执行操作）", "parameters": [number],
                                                 "responses": {"200": {"description": "ticket"}, **std}}},
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
            "/api/v1/ledger": {"get": {"summary": "不满意台账", "responses": {"200": {"description": "list"}}}},
            "/api/v1/rates": {"get": {"summary": "各单位响应率、办结率、按时办结率、解决率、满意率与综合排名",
                                      "parameters": [{"name": "from", "in": "query", "schema": {"type": "string"}},
                                                     {"name": "to", "in": "query", "schema": {"type": "string"}}],
                                      "responses": {"200": {"description": "ranking"}, **std}}},
            "/api/v1/meta": {"get": {"summary": "状态、操作、类型等字典", "responses": {"200": {"description": "meta"}}}},
            "/health": {"get": {"summary": "健康检查", "security": [], "responses": {"200": {"description": "ok"}}}},
        },
    }


async def openapi(request: web.Request) -> web.Response:
    from tickets import survey_http

    doc = openapi_document()
    doc["paths"].update(survey_http.openapi_paths())
    return ok(doc)


def setup_routes(app: web.Application, tz: ZoneInfo) -> None:
    app[TZ] = tz
    r = app.router
    r.add_post("/api/v1/auth/login", login)
    r.add_post("/api/v1/auth/logout", logout)
    r.add_get("/api/v1/me", me)
    r.add_get("/api/v1/departments", list_departments)
    r.add_post("/api/v1/departments", create_department)
    r.add_get("/api/v1/users", list_users)
    r.add_post("/api/v1/users", create_user)
    r.add_get("/api/v1/tickets", list_tickets)
    r.add_post("/api/v1/tickets", create_ticket)
    r.add_get("/api/v1/tickets/due", due_tickets)
    r.add_get("/api/v1/tickets/{number}", get_ticket)
    r.add_get("/api/v1/tickets/{number}/history", ticket_history)
    r.add_get("/api/v1/tickets/{number}/related", related_tickets)
    r.add_post("/api/v1/tickets/{number}/actions/{action}", ticket_action)
    r.add_get("/api/v1/ledger", ledger)
    r.add_get("/api/v1/rates", department_rates)
    r.add_get("/api/v1/meta", meta)
    r.add_get("/api/v1/openapi.json", openapi)
