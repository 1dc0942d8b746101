"""Report APIs: ``/api/v1/rates`` (the core rates and ranking per department) and ``/api/v1/reports``
(日通报、周研判、月分析 and custom periods as JSON). The console's report pages read the same ``Reports``."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from aiohttp import web

from tickets.accounts.http import USERS, principal, require_role
from tickets.errors import InvalidField
from tickets.http import STORE, TZ
from tickets.json_http import STANDARD_ERRORS, add_openapi_paths, ok, parse_day
from tickets.reports.service import (
    KIND_LABELS,
    MAX_REPORT_DAYS,
    AnswerRates,
    Period,
    Reports,
    custom_period,
    period_for,
)

REPORTS = web.AppKey("reports", Reports)
ANSWER_RATES = web.AppKey("reports_answer_rates", object)
SUPERVISORS = ("supervisor", "admin")


def today(request: web.Request) -> date:
    return request.app[STORE].clock().astimezone(request.app[TZ]).date()


def check_span(day_from: date, day_to: date) -> None:
    """A custom period runs forwards and spans at most ``MAX_REPORT_DAYS`` days (a 1,000-year report once took
    9.5 s and 64 MB); the error names the field ``to`` and the cap."""
    if day_to < day_from:
        raise InvalidField("to", "结束日期不能早于开始日期")
    days = (day_to - day_from).days + 1
    if days > MAX_REPORT_DAYS:
        raise InvalidField("to", f"统计区间最长{MAX_REPORT_DAYS}天，所选 {day_from} 至 {day_to} 共{days}天，请缩短")


def report_period(request: web.Request) -> Period:
    """The period a report request asks for: ``kind`` daily|weekly|monthly with ``date``, or custom ``from``/``to``."""
    q = request.query
    tz = request.app[TZ]
    kind = q.get("kind", "monthly")
    # parse_day names the field and bounds the year, so no period arithmetic overflows near year 1 or 9999.
    if kind == "custom":
        d_from = parse_day(q.get("from"), "from") or today(request).replace(day=1)
        d_to = parse_day(q.get("to"), "to") or today(request)
        check_span(d_from, d_to)
        return custom_period(d_from, d_to, tz)
    day = parse_day(q.get("date"), "date") or today(request)
    if kind not in KIND_LABELS:
        raise InvalidField("kind", "报表类型须为 daily、weekly、monthly 或 custom")
    return period_for(kind, day, tz)


async def build_report(request: web.Request) -> dict[str, Any]:
    return await request.app[REPORTS].build(report_period(request), request.app[STORE].clock())


async def department_rates(request: web.Request) -> web.Response:
    principal(request)
    tz = request.app[TZ]
    now = today(request)
    day_from = parse_day(request.query.get("from"), "from") or now.replace(day=1)
    day_to = parse_day(request.query.get("to"), "to") or now
    check_span(day_from, day_to)
    start = datetime.combine(day_from, time(0), tz)
    end = datetime.combine(day_to + timedelta(days=1), time(0), tz)
    departments = await request.app[USERS].load_departments()
    rows = await request.app[REPORTS].rates(start, end, departments)
    return ok({"from": day_from, "to": day_to, "departments": rows})


async def report_api(request: web.Request) -> web.Response:
    require_role(request, *SUPERVISORS)
    return ok(await build_report(request))


def openapi_paths() -> dict[str, Any]:
    std = STANDARD_ERRORS
    return {
        "/api/v1/rates": {"get": {"summary": "各单位响应率、办结率、按时办结率、解决率、满意率与综合排名",
                                  "parameters": [{"name": "from", "in": "query", "schema": {"type": "string"}},
                                                 {"name": "to", "in": "query", "schema": {"type": "string"}}],
                                  "responses": {"200": {"description": "ranking"}, **std}}},
        "/api/v1/reports": {"get": {"summary": "统计报表：日通报、周研判、月分析或自定义区间", "parameters": [
            {"name": "kind", "in": "query", "schema": {"enum": ["daily", "weekly", "monthly", "custom"]}},
            *({"name": n, "in": "query", "schema": {"type": "string", "format": "date"}} for n in ("date", "from", "to"))],
            "responses": {"200": {"description": "report"}, **std}}},
    }


def setup(app: web.Application, answer_rates: AnswerRates | None = None) -> None:
    """Routes, and the ``Reports`` built at start-up over the ticket store's read sessions.

    ``answer_rates`` (接通率 from the telephony side) may be set or replaced until start-up by setting
    ``app[ANSWER_RATES]``; the reports package never imports telephony."""
    app[ANSWER_RATES] = answer_rates

    async def build(app: web.Application) -> None:
        store = app[STORE]
        app[REPORTS] = Reports(getattr(store, "read_sessions", store.sessions), store, app[TZ],
                               app[ANSWER_RATES])  # type: ignore[arg-type]

    app.on_startup.append(build)
    app.router.add_get("/api/v1/rates", department_rates)
    app.router.add_get("/api/v1/reports", report_api)
    add_openapi_paths(app, openapi_paths())
