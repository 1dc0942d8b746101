"""Telephony HTTP: live view (REST + WebSocket), wallboard page and figures, agent and supervisor actions, reports
(missed-call callbacks: ``callbacks_http.py``)."""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from aiohttp import WSMsgType, web

from . import actions
from .privacy import sees_whole_numbers
from .service import SERVICE, TelephonyService

STATIC = Path(__file__).resolve().parent / "static"
log = logging.getLogger("hotline.telephony.http")

SUPERVISORS = ("supervisor", "admin")
AGENTS = ("agent", "supervisor", "admin")


class HttpError(Exception):
    def __init__(self, status: int, slug: str, message: str) -> None:
        super().__init__(message)
        self.http_status = status
        self.slug = slug
        self.message = message


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str)


def ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


def _svc(request: web.Request) -> TelephonyService:
    return request.app[SERVICE]


def _user(request: web.Request, *roles: str) -> dict[str, Any]:
    user = request.get("user")
    if not user:
        raise HttpError(401, "login_required", "请先登录")
    if roles and user.get("role") not in roles:
        raise HttpError(403, "forbidden", "您的角色无权执行此操作")
    return user


def _interface(user: dict[str, Any]) -> str:
    iface = user.get("interface")
    if not iface:
        raise HttpError(409, "no_interface", "您的账号没有绑定分机（interface），请联系管理员")
    return str(iface)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise HttpError(400, "invalid_json", "请求体不是合法的 JSON") from None
    if not isinstance(data, dict):
        raise HttpError(400, "invalid_json", "请求体必须是 JSON 对象")
    return data


def _text(body: dict[str, Any], key: str, required: bool = True, max_len: int = 100) -> str:
    v = body.get(key, "")
    if not isinstance(v, str) or (required and not v.strip()) or len(v) > max_len:
        raise HttpError(400, "invalid_field", f"字段 {key} 缺失或不合法")
    return v.strip()


# ---------------------------------------------------------------- live view
def _whole_numbers(request: web.Request, user: dict[str, Any], wall_screen: bool = False) -> bool:
    """Whether this user's live view carries callers' numbers whole (``telephony.privacy``)."""
    return sees_whole_numbers(str(user.get("role") or ""), wall_screen=wall_screen,
                              mask_numbers=_svc(request).settings.wallboard.mask_numbers)


async def live(request: web.Request) -> web.Response:
    user = _user(request, *AGENTS)
    return ok(_svc(request).hub.view_for(_whole_numbers(request, user)))


async def status(request: web.Request) -> web.Response:
    _user(request, *SUPERVISORS)
    return ok(_svc(request).health())


class _WsSink:
    """A WebSocket as the live hub sees it: frames written straight to the socket, never awaited.

    The hub encodes each message once and hands the same bytes to every client; aiohttp has no way to send one
    encoded frame to many sockets, and ``send_str`` per client re-frames (and, with permessage-deflate,
    compresses) the same text 50 times, which was a third of the event loop (issue #19). An unmasked text frame
    (RFC 6455 5.2) is written whole, in one call, so it never interleaves with aiohttp's own ping/close frames.
    """

    _last: tuple[bytes, bytes] | None = None  # (payload, frame): the frame for the payload every client gets

    def __init__(self, ws: web.WebSocketResponse, transport: Any) -> None:
        self.ws = ws
        self.transport = transport

    def send(self, payload: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        last = _WsSink._last
        if last is None or last[0] is not payload:
            last = _WsSink._last = (payload, _text_frame(payload))
        self.transport.write(last[1])

    def buffered(self) -> int:
        if self.transport is None or self.transport.is_closing():
            return 0
        return int(self.transport.get_write_buffer_size())

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()  # it reads nothing: a close handshake would only wait for it


def _text_frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 1 << 16:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


async def ws_live(request: web.Request) -> web.WebSocketResponse:
    """The live feed (format: ``telephony.live``): a snapshot, then patches, fanned out by the hub.

    ``?view=wallboard`` (the wall screen's page): callers' numbers masked whoever is logged in, and no screen
    pops (they carry the caller's whole number to the agent who took the call)."""
    user = _user(request, *AGENTS)
    svc = _svc(request)
    wall_screen = request.query.get("view") == "wallboard"
    # No permessage-deflate: the hub's frames are shared bytes, and small JSON patches gain little from it.
    ws = web.WebSocketResponse(heartbeat=30, compress=False)
    await ws.prepare(request)
    client = svc.hub.attach(_WsSink(ws, request.transport),
                            interface=None if wall_screen else user.get("interface") or None,
                            whole_numbers=_whole_numbers(request, user, wall_screen))
    try:
        async for msg in ws:  # nothing to read from the client; aiohttp answers its pings here
            if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                break
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        svc.hub.detach(client)
        if not ws.closed:
            await ws.close()
    return ws


async def wallboard(request: web.Request) -> web.StreamResponse:
    """The wall screen's page; like the console's pages it sends whoever is not logged in to the login page
    (its figures need the login anyway) and refuses a role that may not read the live view."""
    user = request.get("user")
    if not user:
        raise web.HTTPFound("/login?next=" + quote(request.path_qs))
    if user.get("role") not in AGENTS:
        return web.Response(status=403, text="无权访问：您的角色不能打开此页面。", content_type="text/plain")
    return web.FileResponse(STATIC / "wallboard.html")


# interface -> the agent's name as the centre knows it (server.py: from the accounts); telephony only knows
# Asterisk's MemberName ("agent-8001").
AgentNames = Callable[[], Awaitable[dict[str, str]]]
AGENT_NAMES = web.AppKey("telephony_agent_names", object)


def wallboard_thresholds(settings: Any) -> dict[str, Any]:
    """The colours' limits as the centre configured them ([wallboard], targets from [ami])."""
    a, w = settings.ami, settings.wallboard
    sl = a.service_level_seconds[0] if a.service_level_seconds else 15
    return {"answer_rate_target": a.answer_rate_target, "answer_rate_red": min(w.answer_rate_red, a.answer_rate_target),
            "service_level_seconds": sl, "service_level_target": a.service_level_target,
            "service_level_red": min(w.service_level_red, a.service_level_target),
            "wait_amber_seconds": w.wait_amber_seconds, "wait_red_seconds": w.wait_red_seconds,
            "alert_min_calls": w.alert_min_calls, "mask_numbers": w.mask_numbers}


async def wallboard_data(request: web.Request) -> web.Response:
    """What the live view does not carry: thresholds, agents' names, and each agent's answered calls and
    average talk time today (finished calls in the call records, the same as the report's)."""
    _user(request, *AGENTS)
    svc = _svc(request)
    tz = ZoneInfo(svc.settings.server.timezone)
    names_of = request.app.get(AGENT_NAMES)
    names: dict[str, str] = await names_of() if names_of is not None else {}  # type: ignore[operator]
    figures: dict[str, dict[str, Any]] = {}
    if svc.store is not None:
        start = datetime.combine(svc.clock().astimezone(tz).date(), datetime.min.time(), tz)
        figures = await svc.store.agent_day(start, start + timedelta(days=1))
    agents = {i: {"name": names.get(i, ""), "answered": 0, "avg_talk": None, **figures.get(i, {})}
              for i in set(names) | set(figures)}
    return ok({"thresholds": wallboard_thresholds(svc.settings), "agents": agents})


# ---------------------------------------------------------------- agent actions
async def _ami(coro: Any) -> web.Response:
    # An AmiError propagates: the error middleware renders it with Asterisk's own Message (409/503/504).
    await coro
    return ok({"ok": True})


async def agent_login(request: web.Request) -> web.Response:
    user = _user(request, *AGENTS)
    body = await _body(request)
    return await _ami(_svc(request).login(_interface(user), _text(body, "queue"),
                                          user.get("name") or user.get("username", ""),
                                          bool(body.get("paused", False)),
                                          _text(body, "reason", required=False)))


async def agent_logout(request: web.Request) -> web.Response:
    user = _user(request, *AGENTS)
    body = await _body(request)
    return await _ami(_svc(request).logout(_interface(user), _text(body, "queue")))


async def agent_pause(request: web.Request) -> web.Response:
    user = _user(request, *AGENTS)
    body = await _body(request)
    paused = body.get("paused", True)
    if not isinstance(paused, bool):
        raise HttpError(400, "invalid_field", "字段 paused 必须是 true 或 false")
    return await _ami(_svc(request).pause(_interface(user), paused, _text(body, "reason", required=False),
                                          _text(body, "queue", required=False)))


async def agent_dial(request: web.Request) -> web.Response:
    user = _user(request, *AGENTS)
    body = await _body(request)
    number = _text(body, "number", max_len=32)
    if not number.replace("+", "").isdigit():
        raise HttpError(400, "invalid_field", "号码只能包含数字")
    svc = _svc(request)
    await svc.originate(actions.originate(_interface(user), context=svc.callback_context, exten=number,
                                          caller_id=f'"12345" <{number}>'))
    return ok({"ok": True})


async def agent_transfer(request: web.Request) -> web.Response:
    user = _user(request, *AGENTS)
    body = await _body(request)
    svc = _svc(request)
    exten = _text(body, "exten", max_len=40)
    # Only where the centre said: Asterisk answers "Transfer succeeded" for an extension that does not exist and
    # then hangs up on the caller (transfer_unknown_exten capture), so a typo must never reach it.
    dests = {d.exten: d for d in svc.settings.ami.transfer_destinations}
    dest = dests.get(exten)
    if dest is None:
        names = "、".join(f"{d.exten}（{d.name}）" for d in dests.values())
        raise HttpError(400, "invalid_field", f"字段 exten 不是中心配置的转接目的地：{exten}；可转接：{names}")
    context = dest.context or svc.transfer_context
    asked = _text(body, "context", required=False)
    if asked and asked != context:
        raise HttpError(400, "invalid_field", f"字段 context 与转接目的地 {exten} 不符（应为 {context}）")
    mode = body.get("mode", "blind")
    if not isinstance(mode, str):
        raise HttpError(400, "invalid_field", "mode 只能是 blind 或 redirect")
    agent_leg, caller_leg = svc.agent_channel(_interface(user))
    if mode == "blind":
        action = actions.blind_transfer(agent_leg, context, exten)
    elif mode == "redirect":
        action = actions.redirect(caller_leg, context, exten)
    else:
        raise HttpError(400, "invalid_field", "mode 只能是 blind 或 redirect")
    return await _ami(svc.send(action))


async def transfer_destinations(request: web.Request) -> web.Response:
    _user(request, *AGENTS)
    svc = _svc(request)
    return ok({"destinations": [{"exten": d.exten, "name": d.name, "context": d.context or svc.transfer_context}
                                for d in svc.settings.ami.transfer_destinations]})


async def supervisor_spy(request: web.Request) -> web.Response:
    user = _user(request, *SUPERVISORS)
    body = await _body(request)
    svc = _svc(request)
    mode = body.get("mode", "listen")
    if not isinstance(mode, str) or mode not in actions.SPY_OPTIONS:  # {} or [] would not even hash
        raise HttpError(400, "invalid_field", "mode 只能是 listen、whisper 或 barge")
    agent_leg, _ = svc.agent_channel(_text(body, "agent_interface"))
    await svc.originate(actions.chanspy(_interface(user), agent_leg, mode))
    return ok({"ok": True})


# ---------------------------------------------------------------- reports (callbacks: callbacks_http.py)
def _store(request: web.Request) -> Any:
    store = _svc(request).store
    if store is None:
        raise HttpError(503, "no_database", "通话记录库不可用")
    return store


async def report(request: web.Request) -> web.Response:
    _user(request, *SUPERVISORS)
    svc = _svc(request)
    tz = ZoneInfo(svc.settings.server.timezone)
    try:
        end = date.fromisoformat(request.query["to"]) if "to" in request.query else svc.clock().astimezone(tz).date()
        start = date.fromisoformat(request.query["from"]) if "from" in request.query else end - timedelta(days=6)
    except ValueError:
        raise HttpError(400, "invalid_field", "日期格式应为 YYYY-MM-DD") from None
    if not (2000 <= start.year <= 2100 and 2000 <= end.year <= 2100):
        raise HttpError(400, "invalid_field", "from 与 to 须在 2000 年至 2100 年之间")
    if (end - start).days > 366:
        raise HttpError(400, "invalid_field", "from 与 to 相隔不能超过 366 天")
    by = tuple(x for x in request.query.get("by", "day,queue").split(",") if x)
    if not by or any(x not in ("day", "queue", "agent") for x in by):
        raise HttpError(400, "invalid_field", "by 只能由 day、queue、agent 组成")
    sl = svc.settings.ami.service_level_seconds[0] if svc.settings.ami.service_level_seconds else 15
    rows = await _store(request).report(start, end, tz, by=by, service_level_seconds=sl)
    return ok({"from": start.isoformat(), "to": end.isoformat(), "by": list(by), "rows": rows})


async def replay_endpoint(request: web.Request) -> web.Response:
    _user(request, "admin")
    svc = _svc(request)
    body = await _body(request)
    name = _text(body, "file", max_len=1000)
    if "\x00" in name:  # the operating system refuses such a path outright
        raise HttpError(400, "invalid_field", "字段 file 含有空字符")
    path = Path(name).resolve()
    if not any(path.is_relative_to(d) for d in svc.replay_dirs) or not path.is_file():
        raise HttpError(400, "invalid_field", "只能回放录制目录中的文件")
    speed = body.get("speed", 1.0)
    if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not 0 <= speed <= 1000:
        raise HttpError(400, "invalid_field", "speed 必须是非负数")
    asyncio.get_running_loop().create_task(svc.replay_file(path, speed=float(speed)))
    return ok({"ok": True, "file": str(path)}, status=202)


_ERRORS = {code: {"description": "error"} for code in ("400", "401", "403", "404", "409", "503", "504")}


def _post(summary: str, props: dict[str, Any], required: tuple[str, ...] = (), status: str = "200",
          params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {status: {"description": "ok"}, **_ERRORS},
                          "requestBody": {"content": {"application/json": {"schema": {
                              "type": "object", "properties": props, "required": list(required)}}}}}
    if params:
        op["parameters"] = params
    return {"post": op}


def openapi_paths() -> dict[str, Any]:
    """The telephony routes for the OpenAPI document (server.py adds them; telephony never imports tickets)."""
    text = {"type": "string"}
    day = {"type": "string", "format": "date"}
    return {
        "/api/v1/telephony/live": {"get": {"summary": "实时话务（队列、排队来电、座席）",
                                           "responses": {"200": {"description": "view"}, **_ERRORS}}},
        "/api/v1/telephony/wallboard": {"get": {"summary": "大屏：颜色阈值、座席姓名、各座席今日接听与平均通话",
                                                "responses": {"200": {"description": "wallboard"}, **_ERRORS}}},
        "/api/v1/telephony/status": {"get": {"summary": "AMI 连接状态（班长）",
                                             "responses": {"200": {"description": "status"}, **_ERRORS}}},
        "/api/v1/telephony/agent/login": _post("座席签入队列", {"queue": text, "paused": {"type": "boolean"},
                                                               "reason": text}, ("queue",)),
        "/api/v1/telephony/agent/logout": _post("座席签出队列", {"queue": text}, ("queue",)),
        "/api/v1/telephony/agent/pause": _post("示忙/示闲", {"paused": {"type": "boolean"}, "reason": text,
                                                            "queue": text}),
        "/api/v1/telephony/agent/dial": _post("外呼", {"number": {"type": "string", "maxLength": 32}}, ("number",)),
        "/api/v1/telephony/agent/transfer": _post("转接（只转到 ami.transfer_destinations 中配置的目的地）",
                                                 {"exten": text, "context": text,
                                                  "mode": {"enum": ["blind", "redirect"]}}, ("exten",)),
        "/api/v1/telephony/transfer-destinations": {"get": {"summary": "可转接的目的地（名称、号码）",
                                                            "responses": {"200": {"description": "list"},
                                                                          **_ERRORS}}},
        "/api/v1/telephony/spy": _post("监听/耳语/强插（班长）", {"agent_interface": text,
                                                             "mode": {"enum": ["listen", "whisper", "barge"]}},
                                       ("agent_interface",)),
        "/api/v1/telephony/report": {"get": {"summary": "话务报表（呼入、接通、放弃、接通率、15秒接通率）", "parameters": [
            {"name": "from", "in": "query", "schema": day}, {"name": "to", "in": "query", "schema": day},
            {"name": "by", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": {"description": "rows"}, **_ERRORS}}},
        "/api/v1/telephony/replay": _post("回放 AMI 录制文件（管理员，仅录制目录）", {
            "file": text, "speed": {"type": "number", "minimum": 0}}, ("file",), status="202"),
    }


def setup_routes(app: web.Application, service: TelephonyService, agent_names: AgentNames | None = None) -> None:
    """The routes; ``service`` is the one ``service.setup`` added (or a standalone one: the benchmark)."""
    app[SERVICE] = service
    if agent_names is not None:
        app[AGENT_NAMES] = agent_names
    r = app.router
    r.add_get("/api/v1/telephony/live", live)
    r.add_get("/api/v1/telephony/status", status)
    r.add_get("/ws/telephony", ws_live)
    r.add_get("/wallboard", wallboard)
    r.add_get("/api/v1/telephony/wallboard", wallboard_data)
    r.add_static("/telephony/static/", STATIC)
    r.add_post("/api/v1/telephony/agent/login", agent_login)
    r.add_post("/api/v1/telephony/agent/logout", agent_logout)
    r.add_post("/api/v1/telephony/agent/pause", agent_pause)
    r.add_post("/api/v1/telephony/agent/dial", agent_dial)
    r.add_post("/api/v1/telephony/agent/transfer", agent_transfer)
    r.add_get("/api/v1/telephony/transfer-destinations", transfer_destinations)
    r.add_post("/api/v1/telephony/spy", supervisor_spy)
    r.add_get("/api/v1/telephony/report", report)
    r.add_post("/api/v1/telephony/replay", replay_endpoint)
