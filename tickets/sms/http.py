"""HTTP API of SMS to the citizen under ``/api/v1/sms`` and ``setup()``, which server.py calls.

Routes (agents, supervisors, admins):
  GET    /api/v1/sms?ticket=NUMBER            the texts of one ticket (state, message ids, errors)
  GET    /api/v1/sms/attention                texts a person should look at: failed, uncertain
  POST   /api/v1/sms/{id}/resend              send a failed/uncertain text again (supervisors: checked it never came)
  GET    /api/v1/sms/opt-out/{phone}          whether a number is on the opt-out list
  PUT    /api/v1/sms/opt-out/{phone}          put it on the list {note}: no text goes to it any more
  DELETE /api/v1/sms/opt-out/{phone}          take it off (the citizen asked for texts again)
Citizens opt out themselves by replying TD (every text ends with 回复TD退订).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, MutableMapping
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from config.settings import Settings, SettingsError
from tickets import phones
from tickets.accounts.http import require_role
from tickets.errors import Conflict, InvalidField
from tickets.http import STORE
from tickets.json_http import add_openapi_paths, ok, parse, path_id, read_json
from tickets.sms.service import SmsService, read_templates
from tickets.sms.store import SmsStore, view

log = logging.getLogger("hotline.sms")

SMS = web.AppKey("sms_service", SmsService)
SMS_STORE = web.AppKey("sms_store", SmsStore)
SMS_CLOCK = web.AppKey("sms_clock", object)
CENTER = ("agent", "supervisor", "admin")


class OptOutBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", max_length=500)


def _phone(request: web.Request) -> str:
    raw = request.match_info["phone"]
    if not phones.is_valid(raw):
        raise InvalidField("phone", f"电话号码无效：{raw}")
    return phones.normalize(raw)


async def for_ticket(request: web.Request) -> web.Response:
    require_role(request, *CENTER)
    number = request.query.get("ticket", "")
    if not number:
        raise InvalidField("ticket", "请提供工单编号 ticket")
    return ok([view(r, mask=False) for r in await request.app[SMS_STORE].for_ticket(number)])


async def attention(request: web.Request) -> web.Response:
    require_role(request, *CENTER)
    return ok([view(r, mask=False) for r in await request.app[SMS_STORE].listed(("failed", "uncertain"))])


async def resend(request: web.Request) -> web.Response:
    """A supervisor sends a failed or uncertain text again, having checked it did not reach the citizen."""
    require_role(request, "supervisor", "admin")
    clock: Callable[[], datetime] = request.app[SMS_CLOCK]  # type: ignore[assignment]
    row = await request.app[SMS_STORE].requeue(path_id(request, "id"), clock())
    if row is None:
        raise Conflict("sms_not_resendable", "只有发送失败或结果不明的短信可以重发")
    if SMS in request.app:
        request.app[SMS].poke()
    return ok(view(row, mask=False))


async def get_opt_out(request: web.Request) -> web.Response:
    require_role(request, *CENTER)
    phone = _phone(request)
    entry = await request.app[SMS_STORE].opt_out_entry(phone)
    return ok({"phone": phone, "opted_out": entry is not None, "at": entry.at if entry else None,
               "source": entry.source if entry else None, "note": entry.note if entry else ""})


async def put_opt_out(request: web.Request) -> web.Response:
    require_role(request, *CENTER)
    phone = _phone(request)
    body = parse(OptOutBody, await read_json(request)) if request.can_read_body else OptOutBody()
    clock: Callable[[], datetime] = request.app[SMS_CLOCK]  # type: ignore[assignment]
    added = await request.app[SMS_STORE].opt_out(phone, clock(), "api", body.note)
    return ok({"phone": phone, "opted_out": True, "added": added}, status=201 if added else 200)


async def delete_opt_out(request: web.Request) -> web.Response:
    require_role(request, *CENTER)
    phone = _phone(request)
    removed = await request.app[SMS_STORE].opt_in(phone)
    return ok({"phone": phone, "opted_out": False, "removed": removed})


def openapi_paths() -> dict[str, Any]:
    phone = {"name": "phone", "in": "path", "required": True, "schema": {"type": "string"}}
    ok_ = {"200": {"description": "ok"}, "400": {"description": "error"}, "401": {"description": "error"},
           "403": {"description": "error"}}
    return {
        "/api/v1/sms": {"get": {"summary": "工单的短信（状态、网关消息编号）", "parameters": [
            {"name": "ticket", "in": "query", "required": True, "schema": {"type": "string"}}], "responses": ok_}},
        "/api/v1/sms/attention": {"get": {"summary": "需人工处理的短信：发送失败、结果不明", "responses": ok_}},
        "/api/v1/sms/{id}/resend": {"post": {"summary": "重发（班长确认未送达后）", "parameters": [
            {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "responses": {**ok_, "409": {"description": "error"}}}},
        "/api/v1/sms/opt-out/{phone}": {
            "get": {"summary": "号码是否已退订短信", "parameters": [phone], "responses": ok_},
            "put": {"summary": "退订：此号码不再接收短信", "parameters": [phone], "requestBody": {"content": {
                "application/json": {"schema": OptOutBody.model_json_schema()}}}, "responses": ok_},
            "delete": {"summary": "取消退订", "parameters": [phone], "responses": ok_}},
    }


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/sms", for_ticket)
    r.add_get("/api/v1/sms/attention", attention)
    r.add_post("/api/v1/sms/{id}/resend", resend)
    r.add_get("/api/v1/sms/opt-out/{phone}", get_opt_out)
    r.add_put("/api/v1/sms/opt-out/{phone}", put_opt_out)
    r.add_delete("/api/v1/sms/opt-out/{phone}", delete_opt_out)
    add_openapi_paths(app, openapi_paths())


def setup(app: web.Application, settings: Settings, clock: Callable[[], datetime],
          health_probes: MutableMapping[str, Callable[[], Any]]) -> None:
    """Build SMS after the database exists (append after its cleanup context). Without ``sms.host`` the opt-out
    list and the API still work, but no text is written or sent."""
    app[SMS_CLOCK] = clock
    setup_routes(app)
    # Fail at start-up, not at the first accepted ticket, on a template the centre mistyped.
    try:
        templates = read_templates(settings.config_file(settings.sms.templates_file)) if settings.sms.host else None
    except ValueError as exc:
        raise SettingsError(f"sms.templates_file: {exc}") from None
    health_probes["sms"] = lambda: app[SMS].health() if SMS in app and settings.sms.sender else \
        {"ok": True, "enabled": bool(settings.sms.host), "sender": False}

    async def sms_ctx(app: web.Application) -> AsyncIterator[None]:
        store = app[STORE]
        app[SMS_STORE] = sms_store = SmsStore(store.sessions, store.read_sessions)
        if templates is None:
            yield
            return
        service = SmsService(sms_store, settings, clock, templates, tick=settings.sms.tick_seconds)
        app[SMS] = service
        store.row_hooks.append(service.row_hook)
        if not settings.sms.sender:  # texts are written here and sent by the processes that bind
            try:
                yield
            finally:
                store.row_hooks.remove(service.row_hook)
            return
        store.listeners.append(service.listener)
        task = asyncio.create_task(service.run(), name="sms-sender")
        try:
            yield
        finally:
            store.row_hooks.remove(service.row_hook)
            store.listeners.remove(service.listener)
            await service.stop(task, grace=2 * settings.sms.timeout_seconds)

    app.cleanup_ctx.append(sms_ctx)
