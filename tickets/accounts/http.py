"""Log in and out, who am I, departments and accounts, and the auth middleware every route and page sits behind."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, time, timedelta
from typing import Any, Awaitable, Callable, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import Field

from tickets.accounts.service import AUDIT_CATEGORIES, LoginThrottle, Principal, UserStore
from tickets.errors import Forbidden, InvalidField, TooManyRequests, Unauthorized, UnsupportedMediaType
from tickets.json_http import (
    STANDARD_ERRORS,
    Body,
    add_openapi_paths,
    body_schema,
    ok,
    parse,
    parse_day,
    path_id,
    query_id,
    query_int,
    read_json,
)

USERS = web.AppKey("user_store", UserStore)
THROTTLE = web.AppKey("login_throttle", LoginThrottle)  # set by the server once Redis is up
COOKIE = "hotline_session"
PUBLIC_PATHS = {"/health", "/metrics", "/api/v1/auth/login", "/api/v1/openapi.json", "/login", "/favicon.ico"}
PUBLIC_PREFIXES = ("/static/",)
# Pages and forms for citizens, without login (web/citizen.py); their POSTs still come only from our own origin.
PUBLIC_PAGES = frozenset({"/citizen", "/citizen/status", "/citizen/status/unresolved"})
# Open311 GeoReport v2: partners authenticate with the api_key in the request itself, which a browser never
# adds on its own, so a foreign Origin is no forgery there; no session cookie is ever read on these paths.
KEY_AUTH_PREFIX = "/open311/v2/"
log = logging.getLogger("hotline.accounts")


UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Bodies a page of another site can send without a CORS preflight; JSON endpoints refuse them.
SIMPLE_FORM_TYPES = ("text/plain", "application/x-www-form-urlencoded")


def bearer_of(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None


def token_of(request: web.Request) -> str | None:
    return bearer_of(request) or request.cookies.get(COOKIE)


def _origin_of_url(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def request_origin(request: web.Request) -> str | None:
    """Where a browser says the request comes from: Origin (``null`` from sandboxes and some redirects), else
    the origin of the Referer, else None."""
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin.strip().rstrip("/").lower()
    referer = request.headers.get("Referer")
    return _origin_of_url(referer) if referer else None


def own_origins(request: web.Request) -> set[str]:
    """The server's own origin as the browser sees it (the Host header it sent), plus ``server.allowed_origins``;
    with ``server.secure_cookies`` (behind a TLS proxy) also the https form of the host."""
    host = request.host.lower()
    origins = {f"{request.scheme}://{host}"}
    server = request.app[USERS].settings.server if USERS in request.app else None
    if server is not None:
        if server.secure_cookies:
            origins.add(f"https://{host}")
        origins.update(o.strip().rstrip("/").lower() for o in server.allowed_origins)
    return origins


def check_origin(request: web.Request) -> None:
    """Cross-site request forgery and WebSocket hijacking: a page on another port or subdomain of the same
    host is "same site", so SameSite cookies alone do not stop it.

    A request that changes something (and every WebSocket upgrade) and carries the session cookie must come
    from our own origin. Requests with a bearer token are not at risk (a browser never adds that header on
    its own) and need no Origin; a request without credentials (the login) is refused only when a browser
    names a foreign origin (login CSRF).
    """
    if request.method not in UNSAFE_METHODS and not request.path.startswith("/ws/"):
        return
    if bearer_of(request) or request.path.startswith(KEY_AUTH_PREFIX):
        return
    origin = request_origin(request)
    with_cookie = COOKIE in request.cookies
    if origin is None and not with_cookie:
        return
    if origin not in own_origins(request):
        log.warning("refused cross-site %s %s from origin %s (remote %s)", request.method, request.path,
                    origin, request.remote)
        raise Forbidden("cross_site_request", "跨站请求已拒绝：请求来源（Origin）不是本系统")
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if request.method in UNSAFE_METHODS and content_type in SIMPLE_FORM_TYPES and request.path.startswith("/api/"):
        raise UnsupportedMediaType("unsupported_media_type", "请求体须为 application/json")


@web.middleware
async def auth_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                          ) -> web.StreamResponse:
    """Puts the caller in ``request["principal"]`` and, as a plain dict for other packages, ``request["user"]``.

    ``/api/`` and ``/ws/`` routes answer 401 without a valid session cookie or bearer token; pages decide
    themselves (they redirect to the login page).
    """
    request["principal"] = None
    request["user"] = None
    check_origin(request)
    if request.path.startswith(KEY_AUTH_PREFIX):  # the partner's api_key decides, never a session
        return await handler(request)
    token = token_of(request)
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
        raise Forbidden("forbidden", "您的角色无权执行此操作")
    return who


class LoginBody(Body):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)
    kind: Literal["session", "api"] = "session"
    label: str = Field(default="", max_length=100)


class DepartmentCreate(Body):
    code: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    name: str = Field(min_length=1, max_length=200)
    domains: list[str] = []


class UserCreate(Body):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=8, max_length=200)
    role: Literal["agent", "department", "supervisor", "admin"]
    display_name: str = Field(default="", max_length=100)
    department: str | None = Field(default=None, max_length=64)
    interface: str | None = Field(default=None, max_length=100)
    member_name: str | None = Field(default=None, max_length=100)


class UserUpdate(Body):
    active: bool | None = None
    role: Literal["agent", "department", "supervisor", "admin"] | None = None
    department: str | None = Field(default=None, min_length=1, max_length=64)
    display_name: str | None = Field(default=None, min_length=1, max_length=100)


class PasswordReset(Body):
    password: str | None = Field(default=None, min_length=8, max_length=200)  # none: a generated one, shown once


class UnlockBody(Body):
    username: str | None = Field(default=None, min_length=1, max_length=64)
    address: str | None = Field(default=None, min_length=1, max_length=100)


async def login(request: web.Request) -> web.Response:
    try:
        return await _login(request)
    except TooManyRequests:
        # A refusal is answered after a pause (as PAM's faildelay and sshd do), which costs the server no CPU:
        # a flood's client that waits for each answer, as scripted guessing does, then gets one refusal per
        # connection and pause instead of as many as the server can write, and the ticket path keeps the
        # event loop (BENCHMARKS.md, login flood).
        await asyncio.sleep(request.app[USERS].settings.server.login_refusal_pause_seconds)
        raise


async def _login(request: web.Request) -> web.Response:
    users = request.app[USERS]
    body = parse(LoginBody, await read_json(request))
    throttle = request.app.get(THROTTLE)
    address = request.remote or "unknown"
    gate = None
    if throttle is not None:
        await throttle.check(body.username, address)  # 429 before any hashing

        async def gate() -> None:  # again once this attempt's turn at the hasher comes
            await throttle.check(body.username, address)
    try:
        token, who = await users.login(body.username, body.password, body.kind, body.label, gate=gate)
    except Unauthorized:
        if throttle is not None:
            await throttle.failed(body.username, address)
        raise
    if throttle is not None:
        await throttle.succeeded(body.username)
    response = ok({"token": token, "user": who.as_dict()})
    if body.kind == "session":
        server = users.settings.server
        # Secure when the request came over HTTPS, and always with server.secure_cookies (a TLS proxy in front
        # talks plain HTTP to us, so the request alone cannot tell).
        response.set_cookie(COOKIE, token, httponly=True, samesite="Strict",
                            secure=server.secure_cookies or request.secure,
                            max_age=server.session_hours * 3600, path="/")
    return response


async def unlock(request: web.Request) -> web.Response:
    """Lift a login lock-out (admins): ``{"username"}``, ``{"address"}`` or both."""
    who = require_role(request, "admin")
    body = parse(UnlockBody, await read_json(request))
    if not body.username and not body.address:
        raise InvalidField("username", "须指定 username 或 address")
    removed = await request.app[THROTTLE].unlock(body.username, body.address) if THROTTLE in request.app else 0
    log.warning("login lock-out lifted by %s: username=%r address=%r", who.username, body.username, body.address)
    await request.app[USERS].audit.record(who, "account", "unlock", f"user:{body.username}" if body.username
                                          else f"address:{body.address}", {"username": body.username,
                                          "address": body.address, "cleared": removed}, request.remote)
    return ok({"username": body.username, "address": body.address, "cleared": removed})


async def revoke_tokens(request: web.Request) -> web.Response:
    """Revoke a user's tokens (admins): ``?kind=api`` only integration tokens, ``?kind=session`` only sessions."""
    who = require_role(request, "admin")
    kind = request.query.get("kind") or None
    if kind not in (None, "session", "api"):
        raise InvalidField("kind", "kind 须为 session 或 api")
    user_id = path_id(request, "id")
    revoked = await request.app[USERS].revoke_tokens(user_id, kind, by=who, address=request.remote)
    log.warning("tokens revoked by %s: user %d, kind %s, %d tokens", who.username, user_id, kind or "all", revoked)
    return ok({"user_id": user_id, "kind": kind, "revoked": revoked})


async def logout(request: web.Request) -> web.Response:
    token = token_of(request)
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
    who = require_role(request, "admin")
    body = parse(UserCreate, await read_json(request))
    user = await request.app[USERS].create_user(body.username, body.password, body.role,
                                                 display_name=body.display_name, department_code=body.department,
                                                 interface=body.interface, member_name=body.member_name,
                                                 by=who, address=request.remote)
    return ok(user.as_dict(), status=201)


async def update_user(request: web.Request) -> web.Response:
    """Disable/enable an account, change its role, department or name (admins; audited)."""
    who = require_role(request, "admin")
    body = parse(UserUpdate, await read_json(request))
    user = await request.app[USERS].update_user(path_id(request, "id"), who, active=body.active, role=body.role,
                                                 department_code=body.department, display_name=body.display_name,
                                                 address=request.remote)
    log.warning("account %d changed by %s: %s", user["id"], who.username, body.model_dump(exclude_none=True))
    return ok(user)


async def reset_password(request: web.Request) -> web.Response:
    """A new password for an account (admins; audited); ends its sessions and tokens. A generated password is
    in the answer, once."""
    who = require_role(request, "admin")
    body = parse(PasswordReset, await read_json(request))
    password, user = await request.app[USERS].reset_password(path_id(request, "id"), who, body.password,
                                                              address=request.remote)
    log.warning("password of account %d reset by %s", user.id, who.username)
    return ok({"user": user.as_dict(), **({"password": password} if body.password is None else {})})


async def audit_log(request: web.Request) -> web.Response:
    """The record of access (admins, read only): ``category`` account|access, ``user_id`` (who acted),
    ``subject`` (``ticket:NUMBER``, ``user:ID``, ``call:ID``), ``action``, ``from``/``to`` (days, inclusive)."""
    require_role(request, "admin")
    q = request.query
    category = q.get("category") or None
    if category is not None and category not in AUDIT_CATEGORIES:
        raise InvalidField("category", f"category 须为 {', '.join(AUDIT_CATEGORIES)} 之一")
    for name in ("subject", "action"):
        if len(q.get(name, "")) > 200:
            raise InvalidField(name, f"{name} 过长")
    users = request.app[USERS]
    tz = ZoneInfo(users.settings.server.timezone)
    day_from, day_to = parse_day(q.get("from"), "from"), parse_day(q.get("to"), "to")
    return ok(await users.audit.list(
        category=category, actor_id=query_id(q, "user_id"), subject=q.get("subject") or None,
        action=q.get("action") or None,
        since=datetime.combine(day_from, time(0), tz) if day_from else None,
        until=datetime.combine(day_to + timedelta(days=1), time(0), tz) if day_to else None,
        limit=query_int(q, "limit", 50, 1, 500), offset=query_int(q, "offset", 0, 0, 10_000_000)))


async def list_users(request: web.Request) -> web.Response:
    require_role(request, "admin", "supervisor")
    return ok(await request.app[USERS].list_accounts())


def openapi_paths() -> dict[str, Any]:
    std = STANDARD_ERRORS
    user_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
    return {
        "/api/v1/auth/login": {"post": {"summary": "登录", "requestBody": body_schema(LoginBody), "security": [],
                                        "responses": {"200": {"description": "token"}, **std}}},
        "/api/v1/auth/logout": {"post": {"summary": "退出（吊销所用的会话或 API 令牌）",
                                         "responses": {"200": {"description": "ok"}}}},
        "/api/v1/auth/unlock": {"post": {"summary": "解除登录锁定（管理员）", "requestBody": body_schema(UnlockBody),
                                         "responses": {"200": {"description": "cleared"}, **std}}},
        "/api/v1/me": {"get": {"summary": "当前用户", "responses": {"200": {"description": "user"}, **std}}},
        "/api/v1/departments": {"get": {"summary": "单位列表", "responses": {"200": {"description": "list"}}},
                                "post": {"summary": "新建单位（管理员）", "requestBody": body_schema(DepartmentCreate),
                                         "responses": {"201": {"description": "department"}, **std}}},
        "/api/v1/users": {"get": {"summary": "用户列表", "responses": {"200": {"description": "list"}}},
                          "post": {"summary": "新建用户", "requestBody": body_schema(UserCreate),
                                   "responses": {"201": {"description": "user"}, **std}}},
        "/api/v1/users/{id}/tokens": {"delete": {
            "summary": "吊销用户的登录令牌（管理员；kind=api 仅接口令牌，kind=session 仅会话）", "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}},
                {"name": "kind", "in": "query", "schema": {"enum": ["session", "api"]}}],
            "responses": {"200": {"description": "revoked"}, **std}}},
        "/api/v1/users/{id}": {"patch": {
            "summary": "停用/启用账号，修改角色、所属单位、姓名（管理员；记入审计日志；停用即刻生效）",
            "parameters": [user_id], "requestBody": body_schema(UserUpdate),
            "responses": {"200": {"description": "user"}, **std}}},
        "/api/v1/users/{id}/password": {"post": {
            "summary": "重置密码（管理员；记入审计日志；该账号的会话和令牌全部失效）", "parameters": [user_id],
            "requestBody": body_schema(PasswordReset),
            "responses": {"200": {"description": "user (and the generated password, once)"}, **std}}},
        "/api/v1/audit": {"get": {"summary": "审计日志：账号变更与个人信息查看、导出记录（管理员，只读）", "parameters": [
            {"name": "category", "in": "query", "schema": {"enum": list(AUDIT_CATEGORIES)}},
            {"name": "user_id", "in": "query", "schema": {"type": "integer", "minimum": 1}},
            *({"name": n, "in": "query", "schema": {"type": "string", "maxLength": 200}} for n in ("subject", "action")),
            *({"name": n, "in": "query", "schema": {"type": "string", "format": "date"}} for n in ("from", "to")),
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
            {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}}],
            "responses": {"200": {"description": "entries, newest first"}, **std}}},
    }


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/v1/auth/login", login)
    r.add_post("/api/v1/auth/logout", logout)
    r.add_post("/api/v1/auth/unlock", unlock)
    r.add_get("/api/v1/me", me)
    r.add_get("/api/v1/departments", list_departments)
    r.add_post("/api/v1/departments", create_department)
    r.add_get("/api/v1/users", list_users)
    r.add_post("/api/v1/users", create_user)
    r.add_delete("/api/v1/users/{id}/tokens", revoke_tokens)
    r.add_patch("/api/v1/users/{id}", update_user)
    r.add_post("/api/v1/users/{id}/password", reset_password)
    r.add_get("/api/v1/audit", audit_log)
    add_openapi_paths(app, openapi_paths())
