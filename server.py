"""The ``hotline`` command and the aiohttp application factory.

This is the only module that knows every package: it builds each package's parts from the settings,
connects them (events, jobs) and starts and stops background tasks through ``cleanup_ctx``.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import secrets
import sys
import time
import traceback
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence
from zoneinfo import ZoneInfo

from aiohttp import web
from redis.asyncio import Redis
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

import migrations
import telephony.service as telephony_service
import web as console
from asr import demo as asr_demo
from asr import drafts as asr_drafts
from asr import http as asr_http
from asr import live_feed as asr_live_feed
from asr import service as asr_service
from config.settings import Settings, SettingsError, load_settings
from embedded_redis import EmbeddedRedis
from telephony import callbacks_http as telephony_callbacks_http
from telephony import http as telephony_http
from telephony import state as telephony_state
from telephony.survey_dialer import SurveyDialer
from tickets import deadlines as dl
from tickets import http as tickets_http
from tickets.accounts import http as accounts_http
from tickets.accounts.service import LoginThrottle, Principal, UserStore
from tickets.json_http import add_openapi_paths, input_middleware
from tickets.knowledge import service as knowledge_service
from tickets.channels import cli as channels_cli
from tickets.channels import http as channels_http
from tickets.routing import http as routing_http
from tickets.routing.cli import register_cli as register_routing_cli
from tickets.service import TicketQuery, TicketStore
from tickets.sms import http as sms_http
from tickets.surveys import http as survey_http
from web import citizen as console_citizen
from web import screenshots as console_screenshots

log = logging.getLogger("hotline")

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
REDIS = web.AppKey("redis", Redis)
EMBEDDED_REDIS = web.AppKey("embedded_redis", EmbeddedRedis)  # only when no redis.url is configured
CLOCK = web.AppKey("clock", object)
READ_ENGINE = web.AppKey("read_engine", AsyncEngine)
SESSIONS = web.AppKey("sessions", async_sessionmaker)
READ_SESSIONS = web.AppKey("read_sessions", async_sessionmaker)

Clock = Callable[[], datetime]
# Recognition acting on tickets (filling drafts): shown as such in the history.
ASR_SYSTEM = Principal(id=0, username="asr", name="语音转写", role="system", department_id=None,
                       department_code=None, interface=None)


def system_clock() -> datetime:
    return datetime.now(timezone.utc)


# ---------------------------------------------------------------- database
def make_engine(settings: Settings, *, for_reads: bool = False) -> AsyncEngine:
    """The database engine. On SQLite, write transactions start with BEGIN IMMEDIATE.

    With plain (deferred) BEGIN, a transaction that reads and then writes while another connection has
    written meanwhile fails at once with SQLITE_BUSY; BEGIN IMMEDIATE takes the write lock first, so
    concurrent writers (50 agents, recognition workers in other processes) wait their turn (busy_timeout)
    instead of failing. Reads get their own engine with deferred BEGIN so that a long report never holds
    the write lock.
    """
    url = settings.database_url
    if url.startswith("sqlite"):
        Path(settings.data_path).mkdir(parents=True, exist_ok=True)
        # SQLite has one writer at a time. One write connection per process makes writers queue in the
        # pool (FIFO, no polling); between processes, BEGIN IMMEDIATE + busy_timeout does the queueing.
        pool = {"pool_size": 10, "max_overflow": 10} if for_reads else {"pool_size": 1, "max_overflow": 0}
        engine = create_async_engine(url, connect_args={"timeout": 30}, pool_timeout=120, **pool)
        _sqlite_setup(engine.sync_engine, for_reads)
        return engine
    return create_async_engine(url, pool_size=settings.database.pool_size, max_overflow=settings.database.pool_size,
                               pool_pre_ping=True)


def make_ticket_write_engine(settings: Settings) -> Engine | None:
    """SQLite: a synchronous engine for the ticket store's group-commit writer, which runs each batch in a
    thread of its own in one hop (tickets/writer.py); same pragmas as ``make_engine``. None elsewhere."""
    return _sqlite_sync_engine(settings, pool_size=1, for_reads=False)


READ_THREADS = 4  # SQLite: ticket reads (list, detail, history, related) at once per process (tickets/reads.py)


def make_ticket_read_engine(settings: Settings, threads: int) -> Engine | None:
    """SQLite: a synchronous engine for the ticket store's reads (list, detail, history, related), each one hop
    to a thread (tickets/reads.py); deferred BEGIN like the async read engine. None elsewhere."""
    return _sqlite_sync_engine(settings, pool_size=threads, for_reads=True)


def _sqlite_sync_engine(settings: Settings, pool_size: int, for_reads: bool) -> Engine | None:
    url = settings.database_url
    if not url.startswith("sqlite"):
        return None
    Path(settings.data_path).mkdir(parents=True, exist_ok=True)
    engine = create_engine(url.replace("+aiosqlite", ""), connect_args={"timeout": 30, "check_same_thread": False},
                           pool_size=pool_size, max_overflow=0, pool_timeout=120)
    _sqlite_setup(engine, for_reads)
    return engine


def _sqlite_setup(engine: Engine, for_reads: bool) -> None:
    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
        # WAL lets readers run beside the one writer; foreign keys are off by default in SQLite.
        # synchronous=FULL: a commit is on disk (the WAL fsynced) before anyone is told of the ticket; NORMAL
        # can lose the last commits on power loss. Group commit (tickets/writer.py) pays one fsync per batch.
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN" if for_reads else "BEGIN IMMEDIATE")


async def migrate(settings: Settings) -> None:
    if settings.database_url.startswith("sqlite"):
        Path(settings.data_path).mkdir(parents=True, exist_ok=True)
    await asyncio.get_running_loop().run_in_executor(None, migrations.upgrade, settings.database_url)


# ---------------------------------------------------------------- errors
@web.middleware
async def error_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                           ) -> web.StreamResponse:
    """Render every package's domain errors the same way: a stable ``error`` slug and a human message.

    A package error is any exception with ``http_status``, ``slug`` and ``message`` attributes.
    """
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[SETTINGS].server.max_body_bytes
        return _error_response(413, "body_too_large", f"请求体过大（上限 {limit} 字节）")
    except web.HTTPException as exc:
        if exc.status >= 400 and request.path.startswith("/api/") and exc.content_type != "application/json":
            return _error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.text or exc.reason)
        raise
    except Exception as exc:
        status = getattr(exc, "http_status", None)
        if status is not None:
            body: dict[str, Any] = {"error": getattr(exc, "slug", "error"), "message": getattr(exc, "message", str(exc))}
            for extra in ("field", "status", "allowed"):
                if getattr(exc, extra, None) is not None:
                    body[extra] = getattr(exc, extra)
            response = web.json_response(body, status=status, dumps=_dumps)
            if getattr(exc, "retry_after", None) is not None:
                response.headers["Retry-After"] = str(exc.retry_after)
            return response
        log.error("unhandled error on %s %s\n%s", request.method, request.path, traceback.format_exc())
        return _error_response(500, "internal_error", "服务器内部错误，已记录日志")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str)


def _error_response(status: int, slug: str, message: str) -> web.Response:
    return web.json_response({"error": slug, "message": message}, status=status, dumps=_dumps)


# ---------------------------------------------------------------- application
async def health(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    checks: dict[str, Any] = {}
    try:
        # A read on the read engine: on SQLite the write engine's one connection is the process's write slot,
        # so a check there (BEGIN IMMEDIATE) waited behind whole write batches; the writer's own state below
        # says more about write health.
        async with request.app[READ_ENGINE].connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # health must report, not raise
        checks["database"] = f"error: {exc}"
    if tickets_http.STORE in request.app:
        writer = request.app[tickets_http.STORE].writer.status()
        # Degraded, not down: a batch stuck longer than SQLite's busy timeout (30 s) needs a person's attention.
        writer["degraded"] = (writer["batch_running_s"] or 0) > 30
        checks["ticket_writer"] = writer
    try:
        await request.app[REDIS].ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {exc}"
    for name, probe in request.app.get(HEALTH_PROBES, {}).items():
        checks[name] = probe()
    healthy = all(v == "ok" or isinstance(v, dict) and v.get("ok", True) for v in checks.values())
    # Degraded: serving (200, so a load balancer keeps the process), but something needs a person's attention.
    degraded = [name for name, v in checks.items() if isinstance(v, dict) and v.get("degraded")]
    status = "error" if not healthy else "degraded" if degraded else "ok"
    return web.json_response({"ok": healthy, "status": status, "degraded": degraded, "checks": checks,
                              "ami_enabled": settings.ami.enabled}, status=200 if healthy else 503, dumps=_dumps)


HEALTH_PROBES = web.AppKey("health_probes", dict)
METRICS = web.AppKey("metrics", object)


class HttpMetrics:
    """Request counts and latencies per route, in a registry of this app (tests build many apps)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("hotline_http_requests", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("hotline_http_request_seconds", "HTTP request latency", ["method", "route"],
                                 registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))

    @web.middleware
    async def middleware(self, request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            info = request.match_info.route.resource
            route = info.canonical if info is not None else "unmatched"
            if not route.startswith("/ws/"):
                self.requests.labels(request.method, route, str(status)).inc()
                self.latency.labels(request.method, route).observe(time.perf_counter() - started)


async def metrics_handler(request: web.Request) -> web.Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    # Route names, volumes and latencies are not for everyone on the intranet: an admin's session or token, or
    # the scrapers' own bearer (HOTLINE_SERVER_METRICS_TOKEN).
    expected = request.app[SETTINGS].server.metrics_token
    given = accounts_http.bearer_of(request) or ""
    who = request.get("principal")
    if not (expected and secrets.compare_digest(given.encode(), expected.encode())) \
            and (who is None or who.role != "admin"):
        return _error_response(401 if who is None else 403, "metrics_forbidden",
                               "/metrics 仅限管理员或配置的监控令牌（server.metrics_token）")
    metrics = request.app[METRICS]
    assert isinstance(metrics, HttpMetrics)
    return web.Response(body=generate_latest(metrics.registry),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})


def use_cache_dir(settings: Settings) -> None:
    """Caches live under the data dir: jieba's parsed dictionary (the knowledge search's) would otherwise go to
    /tmp/jieba.cache, owned by the first user who wrote it, and every other user of the machine would fail to
    start."""
    cache = settings.data_path / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    knowledge_service.use_cache_dir(str(cache))


def create_app(settings: Settings, clock: Clock = system_clock, *, migrate_db: bool = True,
               bootstrap_admin: bool = True, background_interval: float = 1.0,
               asr_visibility: Any = None, survey_originate: Any = None, survey_worker: bool = True,
               survey_tick: float = 5.0) -> web.Application:
    """Build the whole server from settings. Resources open and close in ``cleanup_ctx`` order.

    ``survey_originate`` replaces the AMI survey dialer (tests that cannot have an Asterisk use it).
    """
    use_cache_dir(settings)
    metrics = HttpMetrics()
    app = web.Application(
        client_max_size=settings.server.max_body_bytes,
        middlewares=[metrics.middleware, error_middleware, accounts_http.auth_middleware, input_middleware],
    )
    app[METRICS] = metrics
    app[SETTINGS] = settings
    app[CLOCK] = clock
    app[HEALTH_PROBES] = {}
    tz = ZoneInfo(settings.server.timezone)

    async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
        embedded: EmbeddedRedis | None = None
        url = settings.redis.url
        if not url:
            embedded = EmbeddedRedis(settings.data_path / "redis", settings.redis.binary)
            url = await embedded.astart()
            log.info("started a private redis-server at %s", url)
        client = Redis.from_url(url)
        app[REDIS] = client
        app[accounts_http.THROTTLE] = LoginThrottle(client, settings.server)
        app[REDIS_URL] = url
        supervisor: asyncio.Task[None] | None = None
        if embedded:
            app[EMBEDDED_REDIS] = embedded

            async def reconnect() -> None:
                # Pooled connections still point at the dead server: drop them rather than fail a request each.
                await client.connection_pool.disconnect()

            # A dead private redis-server is restarted (empty); the live view's subscriber publishes the view
            # again, the leader lock and survey leases are taken again by their loops.
            supervisor = asyncio.get_running_loop().create_task(embedded.supervise(reconnect),
                                                                name="embedded-redis-supervisor")
        try:
            yield
        finally:
            if supervisor is not None:
                supervisor.cancel()
                await asyncio.gather(supervisor, return_exceptions=True)
            await client.aclose()
            if embedded:
                await embedded.astop()

    async def database_ctx(app: web.Application) -> AsyncIterator[None]:
        if migrate_db:
            await migrate(settings)
        engine = make_engine(settings)
        is_sqlite = settings.database_url.startswith("sqlite")
        read_engine = make_engine(settings, for_reads=True) if is_sqlite else engine
        app[ENGINE] = engine
        app[READ_ENGINE] = read_engine
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        read_sessions = async_sessionmaker(read_engine, expire_on_commit=False)
        app[SESSIONS] = sessions
        app[READ_SESSIONS] = read_sessions
        users = UserStore(sessions, clock, settings, read_sessions)
        write_engine = make_ticket_write_engine(settings)
        store = TicketStore(sessions, settings, clock, read_sessions, write_engine,
                            make_ticket_read_engine(settings, READ_THREADS))
        users.audit.writer = store.writer.submit  # access-log rows ride the ticket writer's batches
        users.marker = app[REDIS]  # the cross-process revocation mark: disabling an account holds at once
        app[accounts_http.USERS] = users
        app[tickets_http.STORE] = store
        await users.sync_departments(settings.config_file(settings.tickets.departments_file))
        if bootstrap_admin:
            created = await users.ensure_admin(settings.server.admin_username, settings.server.admin_password)
            if created:
                print(f"\n  首次启动已创建管理员账号 / first start created the admin account:\n"
                      f"    用户名 username: {settings.server.admin_username}\n"
                      f"    密码 password:   "
                      f"{'（环境变量 HOTLINE_SERVER_ADMIN_PASSWORD 所设）' if settings.server.admin_password else created}\n"
                      f"  登录 log in at http://{settings.server.host}:{settings.server.port}/login\n", flush=True)
        try:
            yield
        finally:
            store.writer.close()
            store.reads.close()
            users.close()
            await engine.dispose()
            if read_engine is not engine:
                await read_engine.dispose()

    app.cleanup_ctx.append(redis_ctx)
    app.cleanup_ctx.append(database_ctx)
    _wire_holidays(app, settings, clock, tz)
    _wire_asr(app, settings, clock, background_interval, asr_visibility)
    tel = _wire_telephony(app, settings, clock)
    _wire_live_transcripts(app, tel)
    _wire_surveys(app, settings, clock, tel, survey_originate, survey_worker, survey_tick)
    sms_http.setup(app, settings, clock, app[HEALTH_PROBES])  # texts to citizens; off without sms.host
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics_handler)
    accounts_http.setup_routes(app)
    tickets_http.setup_routes(app, tz)
    routing_http.setup(app, settings, clock)
    channels_http.setup(app, settings, redis=lambda: app[REDIS])  # Open311 and the citizen page (#21)
    console.setup(app, telephony_ws="/ws/telephony", wallboard_url="/wallboard",
                  answer_rates=report_answer_rates(settings, tel, tz))
    console_citizen.setup(app)  # the public pages: 我要反映, 进度查询
    return app


REDIS_URL = web.AppKey("redis_url", str)
TELEPHONY = web.AppKey("telephony", object)


def holiday_coverage(calendar: dl.Calendar, today: date, holiday_file: str) -> dict[str, Any]:
    """The /health entry for the working-day calendar: degraded when the next 60 days reach a year whose
    holidays neither the holiday file nor chinesecalendar knows (deadlines there are counted Monday-Friday)."""
    missing = dl.missing_ahead(calendar, today)
    report: dict[str, Any] = {
        "ok": True, "degraded": bool(missing), "missing_years": list(missing),
        "checked_through": (today + timedelta(days=dl.COVERAGE_DAYS)).isoformat(),
        "file": holiday_file, "file_years": sorted(calendar.file_years),
        "library_years": list(calendar.library) if calendar.library else None,
    }
    if missing:
        years = ", ".join(map(str, missing))
        report["message"] = (
            f"the holidays of {years} are not known (not in {holiday_file or 'a holiday file'}, not in "
            f"chinesecalendar): deadlines reaching {years} are counted Monday-Friday and may count a holiday as a "
            f"working day. Enter the State Council notice (国务院办公厅关于部分节假日安排的通知) for {years} in "
            f"{holiday_file or 'config/holidays.toml (tickets.holidays_file)'} and restart.")
    return report


def _wire_holidays(app: web.Application, settings: Settings, clock: Clock, tz: ZoneInfo) -> None:
    """The holiday file's coverage: a /health probe and a warning in the start-up log (the supervisor page
    shows the same from the ticket store's calendar)."""
    calendar = dl.Calendar.from_settings(settings.holidays)
    name = settings.tickets.holidays_file
    holiday_file = str(settings.config_file(name)) if name else ""

    def probe() -> dict[str, Any]:
        return holiday_coverage(calendar, clock().astimezone(tz).date(), holiday_file)

    async def warn_at_start(app: web.Application) -> None:
        report = probe()
        if report["degraded"]:
            log.warning("holidays: %s", report["message"])
        else:
            log.info("holidays: known through %s (holiday file years %s, chinesecalendar %s)",
                     report["checked_through"], report["file_years"] or "none", report["library_years"])

    app[HEALTH_PROBES]["holidays"] = probe
    app.on_startup.append(warn_at_start)


def _wire_telephony(app: web.Application, settings: Settings, clock: Clock) -> Any:
    """AMI bridge <-> tickets and recognition: screen pops with the caller's history, a draft per answered
    call, and every recorded answered call queued for transcription when it ends."""

    async def on_call_connected(call: telephony_state.CallConnected) -> dict[str, Any]:
        users, store = app[accounts_http.USERS], app[tickets_http.STORE]
        user = await users.user_by_interface(call.interface)
        if user is None:  # a queue member with no account: nobody to pop a screen for
            return {"agent": None}
        since = clock() - timedelta(days=settings.tickets.repeat_caller_days)
        earlier = await store.list(TicketQuery(phone=call.caller_num, created_from=since, limit=20), user) \
            if call.caller_num else {"items": [], "total": 0}
        # The draft is committed before the pop reaches the agent, so its number always exists.
        draft = await store.create({"channel": "phone", "caller_phone": _dialable(call.caller_num),
                                    "caller_name": call.caller_name if call.caller_name != call.caller_num else "",
                                    "title": f"来电 {call.caller_num}"}, user, call_id=call.call_id)
        return {"agent": user.as_dict(), "earlier_tickets": earlier["items"],
                "repeat_caller": earlier["total"] > 0, "draft": draft}

    async def on_call_ended(call: telephony_state.CallEnded) -> None:
        if call.recording and call.outcome in ("answered", "transferred"):
            await app[asr_service.SERVICE].enqueue_transcription(call.call_id, call.recording)

    async def on_callback_dial(callback: dict[str, Any], agent: dict[str, Any]) -> dict[str, Any]:
        """Calling a missed caller back pops the same screen as an inbound call; one draft per callback entry."""
        users, store = app[accounts_http.USERS], app[tickets_http.STORE]
        user = await users.user_by_interface(agent.get("interface") or "")
        if user is None:
            return {}
        num = callback["caller_num"]
        since = clock() - timedelta(days=settings.tickets.repeat_caller_days)
        earlier = await store.list(TicketQuery(phone=num, created_from=since, limit=20), user) \
            if num else {"items": [], "total": 0}
        draft = {"number": callback["draft"], "title": f"回拨 {num}"} if callback.get("draft") else \
            await store.create({"channel": "phone", "caller_phone": _dialable(num), "title": f"回拨 {num}",
                                "caller_name": callback["caller_name"] if callback["caller_name"] != num else ""},
                               user, call_id=callback["call_id"])
        items = [t for t in earlier["items"] if t.get("number") != draft["number"]]
        return {"agent": user.as_dict(), "earlier_tickets": items, "repeat_caller": bool(items), "draft": draft}

    async def agent_names() -> dict[str, str]:
        return {u.interface: u.name or u.username for u in await app[accounts_http.USERS].list_users() if u.interface}

    tel = telephony_service.setup(app, settings, clock, redis=lambda: app[REDIS], sessions=lambda: app[SESSIONS],
                                  on_call_connected=on_call_connected, on_call_ended=on_call_ended)
    telephony_http.setup_routes(app, tel, agent_names=agent_names)
    telephony_callbacks_http.setup_routes(app, on_dial=on_callback_dial)
    add_openapi_paths(app, telephony_http.openapi_paths())
    add_openapi_paths(app, telephony_callbacks_http.openapi_paths())
    app[TELEPHONY] = tel
    app[HEALTH_PROBES]["ami"] = tel.health
    return tel


def _wire_live_transcripts(app: web.Application, tel: Any) -> None:
    """Live transcript lines (asr workers, over Redis) reach the agent the call is connected to; who that is
    comes from the telephony live view, so asr needs no telephony import. Supervisors may follow any call."""

    def may_follow(user: Any, call_id: str) -> bool:
        if user.get("role") in ("supervisor", "admin"):
            return True
        interface = user.get("interface") or ""
        view = tel.hub.view
        agent = (view.get("agents") or {}).get(interface) or {}
        call = (view.get("calls") or {}).get(call_id) or {}
        return bool(interface) and (agent.get("call_id") == call_id or call.get("agent") == interface)

    asr_live_feed.setup(app, redis=lambda: app[REDIS], may_follow=may_follow)


def report_answer_rates(settings: Settings, tel: Any, tz: ZoneInfo
                        ) -> Callable[[datetime, datetime], Awaitable[list[dict[str, Any]]]]:
    """接通率 for the reports and printed bulletins, from the telephony call records (``telephony_calls``, the
    same counts as ``GET /api/v1/telephony/report``): one row per queue, then the centre's "合计". The
    service level is the first of ``ami.service_level_seconds`` (15 s: GB/T 33358)."""
    sl = settings.ami.service_level_seconds[0] if settings.ami.service_level_seconds else 15

    def row(queue: str, offered: int, answered: int, abandoned: int, within: int) -> dict[str, Any]:
        return {"queue": queue, "offered": offered, "answered": answered, "abandoned": abandoned,
                "answer_rate": round(answered / offered, 4) if offered else None, "service_level_seconds": sl,
                "answered_within": within, "answer_rate_within": round(within / offered, 4) if offered else None}

    async def answer_rates(start: datetime, end: datetime) -> list[dict[str, Any]]:
        if tel.store is None:
            return []
        last = (end - timedelta(microseconds=1)).astimezone(tz).date()  # report periods end at a midnight
        found = await tel.store.report(start.astimezone(tz).date(), last, tz, by=("queue",),
                                       service_level_seconds=sl)
        rows = [row(r["queue"], r["offered"], r["answered"], r["abandoned"], r[f"answered_{sl}s"]) for r in found]
        if rows:
            rows.append(row("合计", *(sum(r[k] for r in rows) for k in ("offered", "answered", "abandoned",
                                                                          "answered_within"))))
        return rows

    return answer_rates


def _wire_surveys(app: web.Application, settings: Settings, clock: Clock, tel: Any, originate: Any,
                  run_worker: bool, tick: float) -> None:
    """Replied tickets -> callback survey calls through the AMI bridge -> results back on the tickets.

    Only the process holding the AMI session dials (telephony's leader lock); every process schedules
    surveys and serves the campaign API.
    """
    can_dial = None
    if originate is None and settings.ami.enabled:
        dialer = SurveyDialer(tel.send, settings.survey,
                              on_result=lambda result: app[survey_http.SURVEYS].on_call_result(result))
        tel.raw_listeners.append(dialer.on_ami_event)
        originate = dialer.originate
        can_dial = lambda: bool(tel.leading and tel.connection is not None and tel.connection.connected)  # noqa: E731
    survey_http.setup(app, settings, clock, redis_key=REDIS, originate=originate, can_dial=can_dial,
                      run_worker=run_worker, tick=tick)


def _dialable(number: str) -> str:
    """Caller ids that are not phone numbers (anonymous, 's', extensions) are kept out of the ticket."""
    from tickets import phones

    return number if number and phones.is_valid(number) else ""


def _wire_asr(app: web.Application, settings: Settings, clock: Clock, interval: float, visibility: Any) -> None:
    """Recognition -> draft tickets: a finished transcript fills the call's draft (never dispatches it)."""

    async def on_draft_ready(call_id: str, transcript_id: int, fields: dict[str, Any]) -> None:
        await app[tickets_http.STORE].attach_draft(call_id, transcript_id, fields,
                                                   asr_drafts.ticket_values(fields), ASR_SYSTEM)

    def suggest_department(text: str) -> list[dict[str, Any]]:
        # The routing service starts after asr's context; a draft delivered before it has no suggestion.
        routing_service = app.get(routing_http.ROUTING)
        return routing_service.suggest_for_text(text) if routing_service is not None else []

    asr_service.setup(app, settings, sessions=lambda: app[SESSIONS], redis_url=lambda: app[REDIS_URL],
                      clock=clock, on_draft_ready=on_draft_ready, suggest_department=suggest_department,
                      interval=interval)
    async def access_log(user: Any, action: str, subject: str, detail: Any, address: str | None) -> None:
        await app[accounts_http.USERS].audit.access(user, action, subject, detail, address)

    async def recording_access(user: Any, call_id: str) -> bool:
        # The caller's voice: supervisors (质检, complaints about an agent) and the agent who accepted a ticket
        # of this call (首接负责), nobody else; asr refuses department accounts before asking.
        if user.get("role") == "supervisor":
            return True
        return user.get("role") == "agent" and user.get("id") in await app[tickets_http.STORE].call_acceptors(call_id)

    asr_http.setup_routes(app, visibility, access_log, recording_access, settings.asr.recordings_dir)
    add_openapi_paths(app, asr_http.openapi_paths())


# ---------------------------------------------------------------- command line
async def _freeze_startup_heap(app: web.Application) -> None:
    """Keep what start-up loaded (the routing model, the segmenter, settings, the app) out of the cyclic garbage
    collector's full passes.

    A full pass walks every tracked object; with start-up's heap that was ~200 ms with the event loop stopped
    (gc callbacks during benchmarks/ticket_cpu.py's 8 s of 50 clients; 9 ms frozen), and every request in flight
    waited for it. Frozen objects are still freed by reference counting; only cycles among them are never collected.
    Runs after every ``cleanup_ctx`` start-up (on_startup handlers appended later run after those)."""
    gc.collect()
    gc.freeze()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The event loop the server runs on: uvloop's where it is installed, else asyncio's own.

    At 50 clients on two cores uvloop's loop spent 6-18 % less CPU per ticket action than asyncio's (four
    alternating runs; its socket I/O and polling are in C), and the event loop is about half of what a ticket
    action costs (BENCHMARKS.md). libuv reads a busy socket many times before its timers run: the AMI bridge
    yields between long reads for that (telephony/connection.py). The tests run on the same loop
    (tests/conftest.py)."""
    try:
        import uvloop
    except ImportError:  # Windows, or a platform without a wheel
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    # --host/--port go into the settings, so the first-start message gives the address really served.
    chosen = {k: v for k, v in (("host", args.host), ("port", args.port)) if v}
    if chosen:
        settings = settings.with_overrides(server=chosen)
    app = create_app(settings)
    app.on_startup.append(_freeze_startup_heap)  # here, not in create_app: tests build many apps in one process
    web.run_app(app, host=settings.server.host, port=settings.server.port, loop=new_event_loop(),
                print=lambda msg: print(msg.replace("======== ", "").replace(" ========", ""), flush=True))
    return 0


def _cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    asyncio.run(migrate(settings))
    print(f"database is at the newest schema: {settings.database_url}")
    return 0


def _cmd_create_user(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> str:
        await migrate(settings)
        engine = make_engine(settings)
        try:
            users = UserStore(async_sessionmaker(engine, expire_on_commit=False), system_clock, settings)
            await users.sync_departments(settings.config_file(settings.tickets.departments_file))
            password = args.password or os.environ.get("HOTLINE_NEW_USER_PASSWORD") or secrets.token_urlsafe(12)
            await users.create_user(args.username, password, args.role, display_name=args.name or args.username,
                                    department_code=args.department, interface=args.interface)
            return password
        finally:
            await engine.dispose()

    password = asyncio.run(run())
    print(f"created {args.role} {args.username}; password: {password}")
    return 0


@contextlib.asynccontextmanager
async def open_migrated_db(settings: Settings) -> AsyncIterator[async_sessionmaker[Any]]:
    """The database brought to the newest schema, as sessions, for a command that runs without the server."""
    await migrate(settings)
    engine = make_engine(settings)
    try:
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hotline", description="12345 政务服务便民热线 server")
    parser.add_argument("--config", help="path of hotline.toml (default: config/hotline.toml or $HOTLINE_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(func=_cmd_serve)
    mig = sub.add_parser("migrate", help="bring the database schema up to date")
    mig.set_defaults(func=_cmd_migrate)
    cu = sub.add_parser("create-user", help="create an account")
    cu.add_argument("username")
    cu.add_argument("--role", required=True, choices=["agent", "department", "supervisor", "admin"])
    cu.add_argument("--name", help="display name")
    cu.add_argument("--department", help="department code (for role department; for agent or supervisor a "
                                        "district unit: that district's sub-center)")
    cu.add_argument("--interface", help="agent's Asterisk interface, e.g. PJSIP/8001")
    cu.add_argument("--password", help="default: $HOTLINE_NEW_USER_PASSWORD or a generated one")
    cu.set_defaults(func=_cmd_create_user)
    for register in EXTRA_COMMANDS:
        register(sub)
    return parser


# Packages add their own sub-commands here (train-router, replay, worker, ...).
EXTRA_COMMANDS: list[Callable[[Any], None]] = [
    asr_service.register_cli,
    # server.py hands in what a command needs (the app factory, the clock): no package imports server
    lambda sub: console_screenshots.register_cli(sub, create_app, asr_demo.seed_recording),
    lambda sub: telephony_service.register_cli(sub, system_clock),
    register_routing_cli,
    lambda sub: channels_cli.register_cli(sub, open_migrated_db),
]


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("HOTLINE_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return 2
    use_cache_dir(settings)
    try:
        return int(args.func(settings, args) or 0)
    except SettingsError as exc:  # a file named in the settings (sms.toml, catalogue.toml...) read at start-up
        print(f"hotline: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if getattr(exc, "slug", None) is None:
            raise
        print(f"hotline: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
