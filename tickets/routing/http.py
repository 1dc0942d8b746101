"""Routes of routing, duplicates and hot issues; the work is done by ``service.RoutingService``.

- GET /api/v1/tickets/{number}/routing     suggestions (rules, then model; dispatcher below the threshold)
- POST /api/v1/tickets/{number}/routing    the same for the draft's unsaved text (the agent's screen during a call)
- GET /api/v1/tickets/{number}/duplicates  open tickets that look like the same matter, with a score
- GET /api/v1/hot-issues?days=7&end=...    clusters of recent tickets (supervisors)
- GET /api/v1/dispatch-catalogue           the 派单目录 (category x place -> department) loaded at start
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from tickets.accounts.http import principal
from tickets.errors import Forbidden, InvalidField
from tickets.http import STORE
from tickets.json_http import STANDARD_ERRORS, add_openapi_paths, check_year, ok
from tickets.routing import rules as routing
from tickets.routing.service import HOT_ROLES, RoutingService, hot_params, model_path

log = logging.getLogger("hotline.routing")

ROUTING = web.AppKey("routing_service", RoutingService)


async def get_routing(request: web.Request) -> web.Response:
    who = principal(request)
    return ok(await request.app[ROUTING].suggestions(request.app[STORE], request.match_info["number"], who))


DRAFT_FIELDS = ("title", "content", "address", "district", "request_type", "category")


async def post_routing(request: web.Request) -> web.Response:
    """Suggestions for the draft as the agent has it on screen (during a call the text grows before it is
    saved): the same visibility as the GET, the posted fields in place of the stored ones, nothing saved."""
    who = principal(request)
    try:
        body = await request.json()
    except ValueError:
        raise InvalidField("body", "请求体须为 JSON 对象") from None
    if not isinstance(body, dict):
        raise InvalidField("body", "请求体须为 JSON 对象")
    draft: dict[str, str] = {}
    for key in DRAFT_FIELDS:
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidField(key, f"{key} 须为文字")
        if len(value) > 20000:
            raise InvalidField(key, f"{key} 超过 20000 字")
        draft[key] = value
    return ok(await request.app[ROUTING].suggestions(request.app[STORE], request.match_info["number"], who, draft))


async def get_catalogue(request: web.Request) -> web.Response:
    principal(request)  # every account may read who handles what; 401 without login
    return ok(request.app[ROUTING].catalogue())


async def get_duplicates(request: web.Request) -> web.Response:
    who = principal(request)
    return ok(await request.app[ROUTING].duplicates(request.app[STORE], request.match_info["number"], who))


async def get_hot_issues(request: web.Request) -> web.Response:
    who = principal(request)
    if who.role not in HOT_ROLES:
        raise Forbidden("forbidden", "热点分析仅限班长和管理员查看")
    service = request.app[ROUTING]
    try:
        days = int(request.query.get("days", "7"))
    except ValueError:
        raise InvalidField("days", "days 须为 1 到 90 之间的整数") from None
    if not 1 <= days <= 90:
        raise InvalidField("days", "days 须为 1 到 90 之间的整数")
    end = service.clock()
    if "end" in request.query:
        try:
            end = datetime.fromisoformat(request.query["end"])
        except ValueError:
            raise InvalidField("end", "end 须为 ISO 8601 时间") from None
        if end.tzinfo is None:
            raise InvalidField("end", "end 须带时区，如 2026-11-22T00:00:00+08:00")
        check_year(end, "end")
    return ok(await service.hot_issues(end, days))


def openapi_paths() -> dict[str, Any]:
    std = STANDARD_ERRORS
    number = {"name": "number", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "/api/v1/tickets/{number}/routing": {"get": {
            "summary": "派单建议（规则优先，其次模型；低于阈值时由派单员决定）", "parameters": [number],
            "responses": {"200": {"description": "suggestions"}, **std}}, "post": {
            "summary": "按座席屏幕上尚未保存的草稿内容给出派单建议（不保存）", "parameters": [number],
            "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {
                k: {"type": "string", "maxLength": 20000} for k in DRAFT_FIELDS}}}}},
            "responses": {"200": {"description": "suggestions"}, **std}}},
        "/api/v1/tickets/{number}/duplicates": {"get": {"summary": "疑似重复工单", "parameters": [number],
                                                        "responses": {"200": {"description": "candidates"}, **std}}},
        "/api/v1/dispatch-catalogue": {"get": {
            "summary": "派单目录：分类 x 地点 -> 主办、协办单位（市、区、街道三级单位）",
            "responses": {"200": {"description": "units, categories, items"}, **std}}},
        "/api/v1/hot-issues": {"get": {"summary": "热点问题（一类事）聚类（班长、管理员）", "parameters": [
            {"name": "days", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 90}},
            {"name": "end", "in": "query", "schema": {"type": "string", "format": "date-time"}}],
            "responses": {"200": {"description": "clusters"}, **std}}},
    }


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/tickets/{number}/routing", get_routing)
    app.router.add_post("/api/v1/tickets/{number}/routing", post_routing)
    app.router.add_get("/api/v1/tickets/{number}/duplicates", get_duplicates)
    app.router.add_get("/api/v1/hot-issues", get_hot_issues)
    app.router.add_get("/api/v1/dispatch-catalogue", get_catalogue)
    add_openapi_paths(app, openapi_paths())


def setup(app: web.Application, settings: Any, clock: Callable[[], datetime], *,
          alert: Callable[[dict[str, Any]], Any] | None = None, daily_hour: int = 6) -> None:
    """Everything routing needs in the server: config, model, duplicate index, daily hot-issue job, routes.

    Call after the tickets store is set up (its ``database_ctx`` must run before this cleanup_ctx).
    """
    catalogue_file = settings.tickets.catalogue_file
    config = routing.load_config(settings.config_file(settings.tickets.routing_file),
                                 settings.config_file(settings.tickets.departments_file),
                                 settings.config_file(catalogue_file) if catalogue_file else None)
    hot = hot_params(settings.config_file(settings.tickets.routing_file))
    tz = ZoneInfo(settings.server.timezone)

    async def routing_ctx(app: web.Application) -> AsyncIterator[None]:
        # Reads only (suggestions, the duplicate index, hot issues): the store's read pool. On SQLite the
        # write pool is one connection whose BEGIN IMMEDIATE takes the write lock, so every routing request
        # queued behind the others and behind the ticket writer's batches.
        service = RoutingService(app[STORE].read_sessions, config, model_path(settings),
                                 settings.data_path / "routing", clock, hot_params=hot, alert=alert)
        app[ROUTING] = service
        await service.start()
        builder = asyncio.create_task(service.build_index())

        async def daily() -> None:
            while True:
                now = clock().astimezone(tz)
                run = now.replace(hour=daily_hour, minute=0, second=0, microsecond=0)
                if run <= now:
                    run += timedelta(days=1)
                await asyncio.sleep((run - now).total_seconds())
                try:
                    await service.daily_hot_issues()
                except Exception:
                    log.exception("daily hot-issue run failed; next run tomorrow")

        task = asyncio.create_task(daily())
        try:
            yield
        finally:
            for t in (task, builder):
                t.cancel()
                try:
                    await t
                except asyncio.CancelledError:
                    pass

    app.cleanup_ctx.append(routing_ctx)
    setup_routes(app)
