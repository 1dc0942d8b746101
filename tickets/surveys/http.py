"""HTTP API of 回访 under ``/api/v1/surveys`` and ``setup()``, which server.py calls to build the survey service.

Routes:
  GET  /api/v1/surveys/campaign?date=YYYY-MM-DD   the day's campaign (supervisors, agents): counts, results, list
  GET  /api/v1/surveys/manual                     surveys waiting for an agent (anonymous, no phone, taken over)
  GET  /api/v1/surveys?ticket=NUMBER              the surveys of one ticket with their calls
  GET  /api/v1/surveys/{id}                       one survey with its calls
  POST /api/v1/surveys/{id}/manual                an agent takes over: {} | {satisfaction, resolved, note}
                                                  | {unreachable: true, note}
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, time, timedelta
from typing import Any, AsyncIterator, Callable, Literal
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from config.settings import Settings
from tickets.accounts.http import principal
from tickets.errors import Forbidden, InvalidField, NotFound
from tickets.http import STORE
from tickets.json_http import add_openapi_paths, ok, parse, parse_day, path_id, read_json
from tickets.surveys.service import SurveyService, keep_running, worker
from tickets.surveys.store import SurveyStore, view

log = logging.getLogger("hotline.surveys")

SURVEYS = web.AppKey("survey_service", SurveyService)
SURVEY_TZ = web.AppKey("survey_tz", ZoneInfo)
SURVEY_CLOCK = web.AppKey("survey_clock", object)
CENTER = ("agent", "supervisor", "admin")


class ManualBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    satisfaction: Literal["satisfied", "basically_satisfied", "dissatisfied"] | None = None
    resolved: bool | None = None
    unreachable: bool = False
    note: str = Field(default="", max_length=2000)


def _service(request: web.Request) -> SurveyService:
    if SURVEYS not in request.app:
        raise NotFound("surveys_disabled", "回访服务未启用")
    return request.app[SURVEYS]


def _who(request: web.Request) -> Any:
    who = principal(request)
    if who.role not in CENTER:
        raise Forbidden("forbidden", "只有话务员、班长可以查看和办理回访")
    return who


async def campaign(request: web.Request) -> web.Response:
    _who(request)
    svc = _service(request)
    tz = request.app[SURVEY_TZ]
    day = parse_day(request.query.get("date"), "date") or svc.clock().astimezone(tz).date()
    start = datetime.combine(day, time(0), tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tz)
    data = await svc.surveys.campaign(start, end, svc.clock())
    counts = data["counts"]
    results = data["results"]
    answered = results["answered"]
    weight = svc.settings.tickets.basically_satisfied_weight
    body = {
        "date": day.isoformat(),
        "scheduled": counts["scheduled"], "in_progress": counts["dialing"], "done": counts["done"],
        "unreachable": counts["unreachable"], "manual": counts["manual"], "opted_out": counts["opted_out"],
        "cancelled": counts["cancelled"],
        "results": results,
        # 满意率 of the day's answers; unreachable surveys are counted apart, never as satisfied.
        "satisfaction_rate": None if not answered else round(
            (results["satisfied"] + weight * results["basically_satisfied"]) / answered, 4),
        "calls": data["calls"],
        "slots": {"in_use": await svc.slots_in_use(), "limit": svc.max_concurrent},
        "items": data["items"],
    }
    return ok(body)


async def manual_list(request: web.Request) -> web.Response:
    _who(request)
    return ok(await _service(request).surveys.manual_list())


async def list_for_ticket(request: web.Request) -> web.Response:
    _who(request)
    number = request.query.get("ticket", "")
    if not number:
        raise InvalidField("ticket", "请提供工单编号 ticket")
    rows = await _service(request).surveys.for_ticket(number)
    return ok([view(r, mask=False, attempts=a) for r, a in rows])


async def get_survey(request: web.Request) -> web.Response:
    _who(request)
    got = await _service(request).surveys.get_with_attempts(path_id(request, "id"))
    if got is None:
        raise NotFound("survey_not_found", "回访不存在")
    return ok(view(got[0], mask=False, attempts=got[1]))


async def manual(request: web.Request) -> web.Response:
    who = _who(request)
    body = parse(ManualBody, await read_json(request))
    params: dict[str, Any] = {"note": body.note}
    if body.unreachable:
        if body.satisfaction is not None:
            raise InvalidField("unreachable", "未接通时不能同时填写满意度")
        params["unreachable"] = True
    elif body.satisfaction is not None:
        params.update(satisfaction=body.satisfaction, resolved=body.resolved)
    elif body.resolved is not None:
        raise InvalidField("satisfaction", "请填写满意度（满意、基本满意、不满意）")
    return ok(await _service(request).manual(path_id(request, "id"), who, params))


def openapi_paths() -> dict[str, Any]:
    """The survey routes for the OpenAPI document (server.py merges them into tickets' document)."""
    sid = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
    ok_ = {"200": {"description": "ok"}, "400": {"description": "error"}, "401": {"description": "error"},
           "403": {"description": "error"}, "404": {"description": "error"}, "409": {"description": "error"}}
    return {
        "/api/v1/surveys/campaign": {"get": {"summary": "当日回访任务：待回访、回访中、已回访、未接通、结果", "parameters": [
            {"name": "date", "in": "query", "schema": {"type": "string", "format": "date"}}], "responses": ok_}},
        "/api/v1/surveys/manual": {"get": {"summary": "人工回访清单（匿名、无电话、已接管）", "responses": ok_}},
        "/api/v1/surveys": {"get": {"summary": "工单的回访记录", "parameters": [
            {"name": "ticket", "in": "query", "required": True, "schema": {"type": "string"}}], "responses": ok_}},
        "/api/v1/surveys/{id}": {"get": {"summary": "回访详情（含每次呼叫）", "parameters": [sid], "responses": ok_}},
        "/api/v1/surveys/{id}/manual": {"post": {
            "summary": "人工接管回访：{} 接管；{satisfaction, resolved, note} 记录结果；{unreachable: true} 未联系上",
            "parameters": [sid], "requestBody": {"content": {"application/json": {
                "schema": ManualBody.model_json_schema()}}}, "responses": ok_}},
    }


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/surveys/campaign", campaign)
    r.add_get("/api/v1/surveys/manual", manual_list)
    r.add_get("/api/v1/surveys", list_for_ticket)
    r.add_get("/api/v1/surveys/{id}", get_survey)
    r.add_post("/api/v1/surveys/{id}/manual", manual)
    add_openapi_paths(app, openapi_paths())


def setup(app: web.Application, settings: Settings, clock: Callable[[], datetime], *, redis_key: Any,
          originate: Callable[[dict[str, Any]], Any] | None = None, can_dial: Callable[[], bool] | None = None,
          run_worker: bool = True, tick: float = 5.0) -> None:
    """Build the survey service after the database and Redis exist (append after their cleanup contexts).

    ``originate``: the dialer's coroutine (``telephony.survey_dialer.SurveyDialer.originate``); without it this
    process schedules surveys and serves the API but places no calls. ``can_dial``: whether this process may
    dial now (e.g. it holds the AMI connection). The dialer's results go to ``app[SURVEYS].on_call_result``.
    """
    tz = ZoneInfo(settings.server.timezone)
    app[SURVEY_TZ] = tz
    app[SURVEY_CLOCK] = clock
    setup_routes(app)

    async def survey_ctx(app: web.Application) -> AsyncIterator[None]:
        from arq.connections import ArqRedis

        store = app[STORE]
        redis = app[redis_key]
        jobs = ArqRedis(connection_pool=redis.connection_pool)
        service = SurveyService(store, SurveyStore(store.sessions, store.read_sessions), jobs, settings, clock,
                                originate=originate, can_dial=can_dial, jobs=jobs)
        app[SURVEYS] = service
        store.write_hooks.append(service.write_hook)
        store.listeners.append(service.listener)
        tasks: list[asyncio.Task[Any]] = []
        arq_worker = None
        if settings.survey.enabled and originate is not None:
            tasks.append(asyncio.create_task(service.run(tick=tick), name="survey-loop"))
            if run_worker:
                # The worker gets its own pool: arq closes its pool on shutdown.
                pool = redis.connection_pool
                arq_worker = worker(service, ArqRedis(connection_pool=type(pool)(
                    connection_class=pool.connection_class, **pool.connection_kwargs)))
                tasks.append(asyncio.create_task(keep_running(arq_worker), name="survey-worker"))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
            if arq_worker is not None:
                await arq_worker.pool.aclose(close_connection_pool=True)
            await service.drain()
            store.listeners.remove(service.listener)
            store.write_hooks.remove(service.write_hook)

    app.cleanup_ctx.append(survey_ctx)
