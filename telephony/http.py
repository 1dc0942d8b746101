"""Telephony HTTP: live view (REST + WebSocket), wallboard page, agent and supervisor actions, callbacks, reports."""
from __future__ import annotations

import asyncio
import json
import logging
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import WSMsgType, web

from . import actions
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
async def live(request: web.Request) -> web.Response:
    _user(request, *AGENTS)
    return ok(_svc(request).hub.view)


async def status(request: web.Request) -> web.Response:
    _user(request, *SUPERVISORS)
    return ok(_svc(request).health())


async def ws_live(request: web.Request) -> web.WebSocketResponse:
    user = _user(request, *AGENTS)
    svc = _svc(request)
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    q = svc.hub.subscribe(interface=user.get("interface") or None)

    async def reader() -> None:
        async for msg in ws:
            if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                break

    read_task = asyncio.get_running_loop().create_task(reader())
    try:
        while not ws.closed:
            get = asyncio.ensure_future(q.get())
            done, _ = await asyncio.wait({get, read_task}, return_when=asyncio.FIRST_COMPLETED)
            if get not in done:
                get.cancel()
                break
            item = get.result()
            # patches from Redis arrive as JSON text already: forward them without decoding twice
            await ws.send_str(item if isinstance(item, str) else _dumps(item))
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        svc.hub.unsubscribe(q)
        read_task.cancel()
        await ws.close()
    return ws


async def wallboard(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "wallboard.html")


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


# ---------------------------------------------------------------- callbacks (漏接回拨) and reports
def _store(request: web.Request) -> Any:
    store = _svc(request).store
    if store is None:
        raise HttpError(503, "no_database", "通话记录库不可用")
    return store


def _callback_id(request: web.Request) -> int:
    cb_id = int(request.match_info["id"])  # the route allows digits only
    if not 1 <= cb_id <= 2**63 - 1:  # beyond any SQL integer: no such record
        raise HttpError(404, "not_found", "回拨记录不存在")
    return cb_id


async def list_callbacks(request: web.Request) -> web.Response:
    _user(request, *AGENTS)
    status_ = request.query.get("status", "pending")
    return ok({"items": await _store(request).callbacks(None if status_ == "all" else status_)})


async def call_back(request: web.Request) -> web.Response:
    user = _user(request, *AGENTS)
    svc = _svc(request)
    store = _store(request)
    cb_id = _callback_id(request)
    cb = await store.get_callback(cb_id)
    if cb is None:
        raise HttpError(404, "not_found", "回拨记录不存在")
    if cb["status"] == "done":
        raise HttpError(409, "already_done", "该来电已回拨完成")
    iface = _interface(user)
    # The agent's phone rings first; once answered the dialplan dials the citizen (agent first, then citizen).
    await svc.originate(actions.originate(iface, context=svc.callback_context, exten=cb["caller_num"],
                                          caller_id=f'"12345回拨" <{cb["caller_num"]}>',
                                          variables={"CALLBACK_ID": str(cb_id), "CITIZEN_NUM": cb["caller_num"]}))
    entry = await store.update_callback(cb_id, status="calling", agent_interface=iface, attempt=True)
    await _push_callback(svc, entry)
    return ok(entry)


async def _push_callback(svc: Any, entry: dict[str, Any] | None) -> None:
    """Every agent console shows the entry's new status from the socket (no list reload)."""
    if entry is None:
        return
    try:
        await svc.hub.broadcast({"type": "callback", "callback": entry})
    except Exception as exc:  # the change is committed; consoles catch up at their next (re)connect
        log.warning("callback %s change not pushed: %s", entry.get("id"), exc)


async def callback_result(request: web.Request) -> web.Response:
    _user(request, *AGENTS)
    body = await _body(request)
    st = body.get("status")
    if st not in ("done", "failed", "pending"):
        raise HttpError(400, "invalid_field", "status 只能是 done、failed 或 pending")
    res = await _store(request).update_callback(_callback_id(request), status=st,
                                                 note=_text(body, "note", required=False, max_len=500))
    if res is None:
        raise HttpError(404, "not_found", "回拨记录不存在")
    await _push_callback(_svc(request), res)
    return ok(res)


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
    cb_id = [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}]
    day = {"type": "string", "format": "date"}
    return {
        "/api/v1/telephony/live": {"get": {"summary": "实时话务（队列、排队来电、座席）",
                                           "responses": {"200": {"description": "view"}, **_ERRORS}}},
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
        "/api/v1/telephony/callbacks": {"get": {"summary": "漏接来电回拨清单", "parameters": [
            {"name": "status", "in": "query", "schema": {"enum": ["pending", "calling", "open", "done", "failed", "all"]}}],
            "responses": {"200": {"description": "callbacks"}, **_ERRORS}}},
        "/api/v1/telephony/callbacks/{id}/call": _post("回拨（先振铃座席，再呼市民）", {}, params=cb_id),
        "/api/v1/telephony/callbacks/{id}/result": _post("回拨结果", {
            "status": {"enum": ["done", "failed", "pending"]}, "note": {"type": "string", "maxLength": 500}},
            ("status",), params=cb_id),
        "/api/v1/telephony/report": {"get": {"summary": "话务报表（呼入、接通、放弃、接通率、15秒接通率）", "parameters": [
            {"name": "from", "in": "query", "schema": day}, {"name": "to", "in": "query", "schema": day},
            {"name": "by", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": {"description": "rows"}, **_ERRORS}}},
        "/api/v1/telephony/replay": _post("回放 AMI 录制文件（管理员，仅录制目录）", {
            "file": text, "speed": {"type": "number", "minimum": 0}}, ("file",), status="202"),
    }


def setup_routes(app: web.Application, service: TelephonyService) -> None:
    """The routes; ``service`` is the one ``service.setup`` added (or a standalone one: the benchmark)."""
    app[SERVICE] = service
    r = app.router
    r.add_get("/api/v1/telephony/live", live)
    r.add_get("/api/v1/telephony/status", status)
    r.add_get("/ws/telephony", ws_live)
    r.add_get("/wallboard", wallboard)
    r.add_static("/telephony/static/", STATIC)
    r.add_post("/api/v1/telephony/agent/login", agent_login)
    r.add_post("/api/v1/telephony/agent/logout", agent_logout)
    r.add_post("/api/v1/telephony/agent/pause", agent_pause)
    r.add_post("/api/v1/telephony/agent/dial", agent_dial)
    r.add_post("/api/v1/telephony/agent/transfer", agent_transfer)
    r.add_get("/api/v1/telephony/transfer-destinations", transfer_destinations)
    r.add_post("/api/v1/telephony/spy", supervisor_spy)
    r.add_get("/api/v1/telephony/callbacks", list_callbacks)
    r.add_post("/api/v1/telephony/callbacks/{id:\\d+}/call", call_back)
    r.add_post("/api/v1/telephony/callbacks/{id:\\d+}/result", callback_result)
    r.add_get("/api/v1/telephony/report", report)
    r.add_post("/api/v1/telephony/replay", replay_endpoint)
