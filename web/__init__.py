"""The web console: server-rendered pages (aiohttp-jinja2) for agents, departments and supervisors,
the centre's reports, and the knowledge base. An assembly layer like ``server.py``: it may import
``tickets`` and ``config`` but never ``telephony`` or ``asr``; live telephony reaches the browser
through WebSocket and HTTP endpoints that package serves, and server-side extras (answer rates per
queue, call transcripts) arrive here as plain callables.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp_jinja2
import jinja2
from aiohttp import web

from tickets import deadlines
from tickets.attachments import http as attachments_http
from tickets.attachments.service import MAX_BYTES as ATTACHMENT_MAX_BYTES
from tickets.http import STORE, TZ
from tickets.knowledge import http as knowledge_http
from tickets.reports import http as reports_http
from tickets.reports.service import AnswerRates, generate_scheduled
from web import pages, security
from web.catalogue_page import catalogue_page

log = logging.getLogger("hotline.web")
HERE = Path(__file__).resolve().parent
SCHEDULER = web.AppKey("console_scheduler", asyncio.Task)
TranscriptProvider = Callable[[dict[str, Any]], Awaitable[str | None]]


def _filters(env: jinja2.Environment, app: web.Application) -> None:
    def local(value: Any) -> datetime | None:
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                return None
        if isinstance(value, datetime):
            return value.astimezone(app[TZ]) if value.tzinfo else value
        return None

    def dt(value: Any, fmt: str = "%m-%d %H:%M") -> str:
        d = local(value)
        if d is None:
            return value.isoformat() if isinstance(value, date) else ""
        return d.strftime(fmt)

    def pct(value: Any, digits: int = 1) -> str:
        return "—" if value is None else f"{value * 100:.{digits}f}%"

    def num(value: Any) -> str:
        return "—" if value is None else f"{value:,}"

    def dt_input(value: Any) -> str:  # value for <input type=datetime-local>
        d = local(value)
        return d.strftime("%Y-%m-%dT%H:%M") if d else ""

    def due(value: Any, with_year: bool = False) -> str:  # a deadline: "12月5日 24:00", not "12月6日 00:00"
        d = local(value)
        return deadlines.format_due(d, app[TZ], with_year) if d is not None and d.tzinfo else ""

    env.filters.update(dt=dt, pct=pct, num=num, dt_input=dt_input, due=due)


def setup(app: web.Application, *, telephony_ws: str = "/ws/telephony", wallboard_url: str = "/wallboard",
          answer_rates: AnswerRates | None = None, transcript_provider: TranscriptProvider | None = None,
          schedule_reports: bool = True, attachment_max_bytes: int = ATTACHMENT_MAX_BYTES) -> None:
    """Add the console to an application built by ``server.create_app``.

    Registers the jinja2 environment, ``/static``, the pages, and the APIs the pages use that live in
    ``tickets`` (knowledge base, attachments, reports). With ``schedule_reports`` a background task
    writes the 日通报 (daily), 周研判 (Mondays) and 月分析 (1st of the month) under ``<data_dir>/reports``.
    """
    options = {"telephony_ws": telephony_ws, "wallboard_url": wallboard_url,
               "transcript_provider": transcript_provider, "answer_rates": answer_rates,
               "answer_rates_wired": answer_rates is not None, "schedule_reports": schedule_reports,
               "attachment_max_bytes": attachment_max_bytes}
    if pages.OPTIONS in app:
        # Already set up (e.g. by server.create_app): a second call only changes the options, which the
        # startup hooks read, so tests and embedding code can adjust them without duplicate routes.
        app[pages.OPTIONS].update(options)
        app[reports_http.ANSWER_RATES] = answer_rates
        return
    env = aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                               autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
    _filters(env, app)
    app[pages.OPTIONS] = options
    security.setup(app)
    knowledge_http.setup_routes(app)
    attachments_http.setup_routes(app, attachment_max_bytes)
    reports_http.setup(app, answer_rates)

    async def build(app: web.Application) -> None:
        app[attachments_http.ATTACHMENTS].max_bytes = app[pages.OPTIONS]["attachment_max_bytes"]

    app.on_startup.append(build)
    r = app.router
    r.add_static("/static/", HERE / "static", name="static", append_version=True)
    r.add_get("/favicon.ico", pages.favicon)  # browsers ask for it on pages that name none (the wallboard)
    r.add_get("/login", pages.login_page)
    r.add_get("/", pages.home)
    r.add_get("/agent", pages.agent_page)
    r.add_get("/dept", pages.dept_page)
    r.add_get("/supervisor", pages.supervisor_page)
    r.add_get("/tickets/{number}", pages.ticket_page)
    r.add_get("/reports", pages.reports_page)
    r.add_get("/reports/print", pages.report_print)
    r.add_get("/reports/export.{fmt:xlsx|csv}", pages.report_export)
    r.add_get("/knowledge", pages.knowledge_page)
    r.add_get("/catalogue", catalogue_page)
    r.add_get("/admin/audit", pages.audit_page)
    app.on_startup.append(_start_scheduler)
    app.on_cleanup.append(_stop_scheduler)


async def run_daily_reports(app: web.Application) -> list[Path]:
    """What the scheduler runs after midnight; also callable from a cron-like job or a test."""
    store = app[STORE]
    return await generate_scheduled(app[reports_http.REPORTS], store.settings.data_path / "reports", store.clock())


async def _scheduler(app: web.Application) -> None:
    while True:
        now = app[STORE].clock().astimezone(app[TZ])
        # 00:30 local: late tickets of the previous day have been saved; nobody reads a bulletin at midnight.
        nxt = now.replace(hour=0, minute=30, second=0, microsecond=0)
        if nxt <= now:
            nxt += timedelta(days=1)
        await asyncio.sleep((nxt - now).total_seconds())
        try:
            written = await run_daily_reports(app)
            log.info("scheduled reports written: %s", [p.name for p in written])
        except Exception:  # a failed bulletin must not stop tomorrow's
            log.exception("scheduled reports failed")


async def _start_scheduler(app: web.Application) -> None:
    if app[pages.OPTIONS]["schedule_reports"]:
        app[SCHEDULER] = asyncio.create_task(_scheduler(app), name="console-reports")


async def _stop_scheduler(app: web.Application) -> None:
    task = app.get(SCHEDULER)
    if task is not None:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass


__all__ = ["run_daily_reports", "setup"]
