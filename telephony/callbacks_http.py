"""Missed-call callbacks (漏接回拨) over HTTP: the list with its count, oldest first; an agent takes an entry
(others see it taken and are refused with 409), calls the caller back, records 已回拨 / 未接通.

Calling back pops the caller's screen on the agent's console like an inbound call: ``server.py`` injects
``on_dial`` (the caller's earlier tickets and a draft; telephony never imports tickets).
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from . import actions
from .http import AGENTS, SUPERVISORS, HttpError, _body, _interface, _svc, _text, _user, ok
from .store import CallbackTaken, CallStore

log = logging.getLogger("hotline.telephony.callbacks")

# (callback entry, the agent's user dict) -> what the screen pop shows beside the call: ``earlier_tickets``,
# ``repeat_caller`` and ``draft`` ({"number": ..., "title": ...}), as for an inbound call.
OnCallbackDial = Callable[[dict[str, Any], dict[str, Any]], Awaitable[dict[str, Any]]]
ON_DIAL = web.AppKey("telephony_callback_on_dial", object)

RESULTS = {"done": "已回拨", "failed": "未接通", "pending": "放回待回拨"}


def _store(request: web.Request) -> CallStore:
    store = _svc(request).store
    if store is None:
        raise HttpError(503, "no_database", "通话记录库不可用")
    return store


def _callback_id(request: web.Request) -> int:
    cb_id = int(request.match_info["id"])  # the route allows digits only
    if not 1 <= cb_id <= 2**63 - 1:  # beyond any SQL integer: no such record
        raise HttpError(404, "not_found", "回拨记录不存在")
    return cb_id


def _taken(exc: CallbackTaken) -> HttpError:
    return HttpError(409, "callback_taken", f"该来电已由 {exc.owner_name or exc.owner} 认领回拨")


def _refuse_if_taken(entry: dict[str, Any], user: dict[str, Any]) -> None:
    if entry["owner"] and entry["owner"] != user["username"] and user["role"] not in SUPERVISORS:
        raise HttpError(409, "callback_taken", f"该来电已由 {entry['owner_name'] or entry['owner']} 认领回拨")


async def _entry(request: web.Request) -> tuple[int, dict[str, Any]]:
    cb_id = _callback_id(request)
    entry = await _store(request).get_callback(cb_id)
    if entry is None:
        raise HttpError(404, "not_found", "回拨记录不存在")
    return cb_id, entry


async def _push(svc: Any, entry: dict[str, Any] | None) -> None:
    """Every agent console shows the entry's new status and owner from the socket (no list reload)."""
    if entry is None:
        return
    try:
        await svc.hub.broadcast({"type": "callback", "callback": entry})
    except Exception as exc:  # the change is committed; consoles catch up at their next (re)connect
        log.warning("callback %s change not pushed: %s", entry.get("id"), exc)


async def list_callbacks(request: web.Request) -> web.Response:
    _user(request, *AGENTS)
    status = request.query.get("status", "pending")
    if status not in ("pending", "calling", "open", "done", "failed", "all"):
        raise HttpError(400, "invalid_field", "字段 status 只能是 pending、calling、open、done、failed 或 all")
    items, count = await _store(request).callback_page(None if status == "all" else status)
    return ok({"items": items, "count": count})


async def claim(request: web.Request) -> web.Response:
    user = _user(request, *AGENTS)
    cb_id, entry = await _entry(request)
    if entry["status"] not in ("pending", "calling"):
        raise HttpError(409, "already_done", "该来电已处理完毕")
    try:
        entry = await _store(request).claim(cb_id, user["username"], user.get("name") or user["username"]) or entry
    except CallbackTaken as exc:
        raise _taken(exc) from None
    await _push(_svc(request), entry)
    return ok(entry)


async def release(request: web.Request) -> web.Response:
    user = _user(request, *AGENTS)
    cb_id, entry = await _entry(request)
    _refuse_if_taken(entry, user)
    entry = await _store(request).release(cb_id) or entry
    await _push(_svc(request), entry)
    return ok(entry)


async def call_back(request: web.Request) -> web.Response:
    user = _user(request, *AGENTS)
    svc = _svc(request)
    store = _store(request)
    cb_id, entry = await _entry(request)
    if entry["status"] in ("done", "failed"):
        raise HttpError(409, "already_done", "该来电已处理完毕")
    iface = _interface(user)
    try:  # calling back takes the entry: nobody else dials the same caller meanwhile
        await store.claim(cb_id, user["username"], user.get("name") or user["username"])
    except CallbackTaken as exc:
        raise _taken(exc) from None
    # The agent's phone rings first; once answered the dialplan dials the citizen (agent first, then citizen).
    await svc.originate(actions.originate(iface, context=svc.callback_context, exten=entry["caller_num"],
                                          caller_id=f'"12345回拨" <{entry["caller_num"]}>',
                                          variables={"CALLBACK_ID": str(cb_id), "CITIZEN_NUM": entry["caller_num"]}))
    updated = await store.update_callback(cb_id, status="calling", agent_interface=iface, attempt=True) or entry
    await _push(svc, updated)
    await _screen_pop(request, svc, store, cb_id, updated, user, iface)
    return ok(updated)


async def _screen_pop(request: web.Request, svc: Any, store: CallStore, cb_id: int, entry: dict[str, Any],
                      user: dict[str, Any], iface: str) -> None:
    """The same pop an answered inbound call gives, on every console of this agent (the socket)."""
    on_dial = request.app.get(ON_DIAL)
    payload: dict[str, Any] = {}
    if on_dial is not None:
        try:
            payload = await on_dial(entry, user)  # type: ignore[operator]
        except Exception:  # the call is already ringing: the pop without history is still a pop
            log.exception("callback %s: screen pop lookup failed", cb_id)
    draft = payload.get("draft") or {}
    if draft.get("number") and draft["number"] != entry.get("draft"):
        await store.set_draft(cb_id, draft["number"])
    call = {"call_id": entry["call_id"], "caller_num": entry["caller_num"], "caller_name": entry["caller_name"],
            "queue": entry["queue"], "interface": iface, "member_name": user.get("name") or "",
            "at": svc.clock().timestamp(), "wait": None, "callback_id": cb_id}
    await svc.hub.send_agent(iface, {"type": "screen_pop", "call": call, "callback": True, **payload})


async def callback_result(request: web.Request) -> web.Response:
    user = _user(request, *AGENTS)
    body = await _body(request)
    st = body.get("status")
    if not isinstance(st, str) or st not in RESULTS:  # {} or [] would not even hash: a 500, not a 400
        raise HttpError(400, "invalid_field", "字段 status 只能是 done（已回拨）、failed（未接通）或 pending（放回待回拨）")
    note = _text(body, "note", required=False, max_len=500)
    cb_id, entry = await _entry(request)
    _refuse_if_taken(entry, user)
    store = _store(request)
    res = await store.update_callback(cb_id, status=st, note=note)
    if st == "pending":  # back on the list for anyone
        res = await store.release(cb_id)
    await _push(_svc(request), res)
    return ok(res)


def openapi_paths() -> dict[str, Any]:
    cb_id = [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}]
    errors = {code: {"description": "error"} for code in ("400", "401", "403", "404", "409", "503", "504")}

    def post(summary: str, props: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
        return {"post": {"summary": summary, "parameters": cb_id,
                         "responses": {"200": {"description": "the entry"}, **errors},
                         "requestBody": {"content": {"application/json": {"schema": {
                             "type": "object", "properties": props, "required": list(required)}}}}}}

    return {
        "/api/v1/telephony/callbacks": {"get": {"summary": "漏接来电回拨清单（最早的在前）与总数 count", "parameters": [
            {"name": "status", "in": "query",
             "schema": {"enum": ["pending", "calling", "open", "done", "failed", "all"]}}],
            "responses": {"200": {"description": "items, count"}, **errors}}},
        "/api/v1/telephony/callbacks/{id}/claim": post("认领回拨（他人已认领时 409 callback_taken）", {}),
        "/api/v1/telephony/callbacks/{id}/release": post("放弃认领", {}),
        "/api/v1/telephony/callbacks/{id}/call": post("回拨（先振铃座席，再呼市民；弹出来电人信息与草稿）", {}),
        "/api/v1/telephony/callbacks/{id}/result": post("回拨结果：done 已回拨、failed 未接通、pending 放回", {
            "status": {"enum": list(RESULTS)}, "note": {"type": "string", "maxLength": 500}}, ("status",)),
    }


def setup_routes(app: web.Application, on_dial: OnCallbackDial | None = None) -> None:
    if on_dial is not None:
        app[ON_DIAL] = on_dial
    r = app.router
    r.add_get("/api/v1/telephony/callbacks", list_callbacks)
    r.add_post("/api/v1/telephony/callbacks/{id:\\d+}/claim", claim)
    r.add_post("/api/v1/telephony/callbacks/{id:\\d+}/release", release)
    r.add_post("/api/v1/telephony/callbacks/{id:\\d+}/call", call_back)
    r.add_post("/api/v1/telephony/callbacks/{id:\\d+}/result", callback_result)
