"""Server-rendered pages of the console. Every page reads through the same stores and the same
``Principal`` as the JSON API, so department isolation holds on pages exactly as it does on the API."""
from __future__ import annotations

import asyncio
import functools
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import quote, urlsplit

import aiohttp_jinja2
from aiohttp import web

from tickets import deadlines, workflow
from tickets.accounts.http import USERS
from tickets.accounts.service import AUDIT_CATEGORIES, ROLE_LABELS, Principal
from tickets.attachments.http import ATTACHMENTS
from tickets.errors import InvalidField, NotFound
from tickets.http import STORE, TZ, record_phone_read
from tickets.json_http import ID_MAX, parse_day
from tickets.knowledge.http import KNOWLEDGE
from tickets.reports import export
from tickets.reports.http import REPORTS, build_report, today
from tickets.reports.service import KIND_LABELS, TYPE_LABELS, pending_extensions, period_for
from tickets.routing.service import duplicate_groups
from tickets.service import TicketQuery
from web.forms import INVALID_CALL_REASONS, action_forms
from web.security import csp_nonce

OPTIONS = web.AppKey("console_options", dict)

HOME_BY_ROLE = {"agent": "/agent", "department": "/dept", "supervisor": "/supervisor", "admin": "/supervisor"}
NAV = {
    "agent": [("/agent", "座席工作台"), ("/knowledge", "知识库")],
    "department": [("/dept", "承办单位工作台"), ("/knowledge", "知识库")],
    "supervisor": [("/supervisor", "班长工作台"), ("/agent", "座席工作台"), ("/reports", "统计报表"),
                   ("/knowledge", "知识库"), ("/catalogue", "派单目录")],
}
NAV["admin"] = [*NAV["supervisor"], ("/admin/audit", "账号与审计")]
CENTER = ("agent", "supervisor", "admin")
SUPERVISORS = ("supervisor", "admin")
Handler = Callable[[web.Request, Principal], Awaitable[web.StreamResponse]]


def render(request: web.Request, template: str, ctx: dict[str, Any], status: int = 200) -> web.Response:
    who = request.get("principal")
    base = {"user": who, "nav": NAV.get(who.role, []) if who else [], "path": request.path,
            "options": request.app[OPTIONS], "csp_nonce": csp_nonce(request)}
    return aiohttp_jinja2.render_template(template, request, {**base, **ctx}, status=status)


def error_page(request: web.Request, status: int, title: str, message: str) -> web.Response:
    return render(request, "error.html", {"status": status, "title": title, "message": message}, status=status)


def page(*roles: str) -> Callable[[Handler], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    """Pages redirect to the login page when nobody is logged in and answer 403 for a wrong role."""

    def wrap(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        @functools.wraps(handler)
        async def run(request: web.Request) -> web.StreamResponse:
            who = request.get("principal")
            if who is None:
                raise web.HTTPFound("/login?next=" + quote(request.path_qs))
            if roles and who.role not in roles:
                return error_page(request, 403, "无权访问", "您的角色不能打开此页面。")
            try:
                return await handler(request, who)
            except NotFound as exc:
                return error_page(request, 404, "未找到", exc.message)
            except InvalidField as exc:
                return error_page(request, 400, "参数有误", exc.message)

        return run

    return wrap


async def departments(request: web.Request) -> dict[int, Any]:
    return await request.app[USERS].load_departments()


def due_mark(ticket: dict[str, Any], now: datetime, near_hours: float) -> str:
    """'overdue', 'near' or '' for inbox colouring: the deadline that matters in the ticket's state."""
    if ticket.get("overdue"):
        return "overdue"
    due = ticket.get("sign_due") if ticket["status"] == "dispatched" else ticket.get("reply_due")
    if ticket["status"] in ("dispatched", "signed") and due and not ticket.get("suspended_at") \
            and due - now < timedelta(hours=near_hours):
        return "near"
    return ""


# ---------------------------------------------------------------- login and home
async def login_page(request: web.Request) -> web.StreamResponse:
    if request.get("principal") is not None:
        raise web.HTTPFound(HOME_BY_ROLE.get(request["principal"].role, "/agent"))
    nxt = request.query.get("next", "")
    if not is_local_path(nxt):
        nxt = ""  # never bounce a fresh login to another site
    return render(request, "login.html", {"next": nxt})


def is_local_path(target: str) -> bool:
    """A path on this server only. Browsers read ``/\\evil.example`` as ``//evil.example`` and drop tabs and
    newlines inside URLs, so backslashes and control characters are refused along with ``//``."""
    if not target.startswith("/") or target.startswith("//"):
        return False
    if "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


async def favicon(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(Path(__file__).resolve().parent / "static" / "favicon.svg",
                            headers={"Content-Type": "image/svg+xml", "Cache-Control": "max-age=86400"})


async def home(request: web.Request) -> web.StreamResponse:
    who = request.get("principal")
    raise web.HTTPFound(HOME_BY_ROLE.get(who.role, "/agent") if who else "/login")


# ---------------------------------------------------------------- agent console
@page(*CENTER)
async def agent_page(request: web.Request, who: Principal) -> web.StreamResponse:
    store = request.app[STORE]
    work = await store.list(TicketQuery(status=("draft", "accepted"), limit=100), who)
    depts = await departments(request)
    ctx: dict[str, Any] = {"work": work["items"], "work_total": work["total"], "ticket": None,
                           "departments": [d for d in depts.values() if d.active], "dept_names": {
                               i: d.name for i, d in depts.items()}, "type_labels": TYPE_LABELS,
                           "field_labels": FIELD_LABELS, "invalid_reasons": INVALID_CALL_REASONS}
    number = request.query.get("ticket")
    if number:
        ticket = await store.get(number, who)
        await record_phone_read(request, ticket, who)
        ctx["ticket"] = ticket
        ctx["related"] = await store.related(number, who)
        ctx["open_statuses"] = workflow.OPEN_STATUSES
        provider = request.app[OPTIONS].get("transcript_provider")
        transcript = await provider(ticket) if provider else None
        if transcript is not None:
            await request.app[USERS].audit.access(who, "read_transcript", f"ticket:{number}",
                                                  {"call_id": ticket.get("call_id"), "path": request.path},
                                                  request.remote)
        ctx["transcript"] = transcript
        ctx["provenance"] = provenance(ticket.get("draft_fields"), transcript)
    return render(request, "agent.html", ctx)


FIELD_LABELS = {"caller_name": "来电人", "caller_phone": "电话", "request_type": "诉求类型", "urgency": "紧急程度",
                "title": "标题", "content": "诉求内容", "address": "地址", "district": "区域", "category": "分类",
                "department": "建议承办单位"}


VALUE_LABELS = {"request_type": TYPE_LABELS, "urgency": {"urgent": "紧急", "normal": "一般"}}


def provenance(draft_fields: Any, transcript: str | None) -> dict[str, Any]:
    """Where each pre-filled field came from, as HTML-ready segments: [(text, field or None)].

    ``start``/``end`` point into the transcript when one is given; otherwise into the field's own
    ``source_text``. Recognition's drafts (asr/drafts.py) give ``sources`` instead: spans of the transcript
    (``start``/``end``, the words as ``text``, their seconds in the recording as ``start_s``), the first of
    which is shown and, as ``at``, lets the ticket page's player seek there. Flags of the draft
    (``needs_confirmation``) are not fields. Anything malformed is shown as plain text rather than breaking the page.
    """
    fields: list[dict[str, Any]] = []
    spans: list[tuple[int, int, str]] = []
    if isinstance(draft_fields, dict):
        for name, info in draft_fields.items():
            if isinstance(info, bool):
                continue
            if not isinstance(info, dict):
                info = {"value": info}
            sources = [x for x in info.get("sources") or () if isinstance(x, dict)] \
                if isinstance(info.get("sources"), list) else []
            from_recognition = bool(sources) and not info.get("source_text")
            first = sources[0] if from_recognition else info
            src = str(first.get("text" if from_recognition else "source_text") or "")
            start, end = first.get("start"), first.get("end")
            ok_span = isinstance(start, int) and isinstance(end, int) and 0 <= start < end
            segs: list[tuple[str, str | None]] = [(src, None)]
            if src and from_recognition:
                segs = [(src, name)]  # the source is exactly the words the value came from
            elif src:
                if ok_span and transcript is None and end <= len(src):
                    segs = [(src[:start], None), (src[start:end], name), (src[end:], None)]
                elif str(info.get("value") or "") and str(info["value"]) in src:
                    v = str(info["value"])
                    i = src.index(v)
                    segs = [(src[:i], None), (src[i:i + len(v)], name), (src[i + len(v):], None)]
            if transcript is not None and ok_span and end <= len(transcript):
                spans.append((start, end, name))
            value = info.get("value")
            display = VALUE_LABELS.get(name, {}).get(value, value) if isinstance(value, str) else value
            if isinstance(display, dict):  # a suggested department
                display = display.get("name") or display.get("department_name") or ""
            at = first.get("start_s")
            fields.append({"name": name, "label": FIELD_LABELS.get(name, name), "value": value,
                           "display": "" if display is None else display, "segments": segs, "has_source": bool(src),
                           "at": float(at) if isinstance(at, (int, float)) and not isinstance(at, bool) else None})
    segments: list[tuple[str, str | None]] = []
    if transcript is not None:
        pos = 0
        for start, end, name in sorted(spans):
            if start < pos:
                continue  # overlapping spans: keep the first
            segments += [(transcript[pos:start], None), (transcript[start:end], name)]
            pos = end
        segments.append((transcript[pos:], None))
    return {"fields": fields, "transcript": segments}


# ---------------------------------------------------------------- department portal
@page("department")
async def dept_page(request: web.Request, who: Principal) -> web.StreamResponse:
    store = request.app[STORE]
    tab = request.query.get("tab", "inbox")
    statuses = {"inbox": ("dispatched", "signed", "returned"), "co": ("dispatched", "signed", "returned"),
                "done": ("replied", "surveyed", "archived")}.get(tab, ("dispatched", "signed", "returned"))
    result = await store.list(TicketQuery(status=statuses, limit=500), who)
    items = result["items"]
    if tab == "inbox":
        items = [t for t in items if t["lead_department_id"] == who.department_id]
    elif tab == "co":
        items = [t for t in items if t["lead_department_id"] != who.department_id]
    now = store.clock()
    near = store.settings.deadlines.near_due_hours
    far = datetime.max.replace(tzinfo=now.tzinfo)
    for t in items:
        t["mark"] = due_mark(t, now, near)
        t["due"] = t["sign_due"] if t["status"] == "dispatched" else t["reply_due"]
    if tab != "done":  # 督办件 first (the supervisor's note on top), then by deadline
        items.sort(key=lambda t: (t["supervision_state"] not in ("pending", "overdue"), t["due"] or far))
    all_open = (await store.list(TicketQuery(status=("dispatched", "signed", "returned"), limit=500), who))["items"]
    counts = {"to_sign": sum(1 for t in all_open if t["status"] == "dispatched"
                             and t["lead_department_id"] == who.department_id),
              "handling": sum(1 for t in all_open if t["status"] == "signed"),
              "overdue": sum(1 for t in all_open if t["overdue"]),
              "near": sum(1 for t in all_open if due_mark(t, now, near) == "near"),
              "co": sum(1 for t in all_open if t["lead_department_id"] != who.department_id),
              "supervised": sum(1 for t in all_open if t["supervision_state"] in ("pending", "overdue")),
              "supervision_overdue": sum(1 for t in all_open if t["supervision_state"] == "overdue")}
    supervised = [t for t in all_open if t["supervision_state"] in ("pending", "overdue")]
    supervised.sort(key=lambda t: t["supervision_due"])
    depts = await departments(request)
    month = period_for("monthly", today(request), request.app[TZ])  # this calendar month, as the 月分析 counts it
    rates = [r for r in await request.app[REPORTS].rates(month.start, month.end, depts)
             if r["department_id"] == who.department_id]
    return render(request, "dept.html", {"items": items, "tab": tab, "counts": counts, "now": now,
                                         "supervised": supervised,
                                         "dept": depts.get(who.department_id), "rates": rates[0] if rates else None,
                                         "dept_names": {i: d.name for i, d in depts.items()},
                                         "type_labels": TYPE_LABELS})


# ---------------------------------------------------------------- one ticket
@page()
async def ticket_page(request: web.Request, who: Principal) -> web.StreamResponse:
    store = request.app[STORE]
    number = request.match_info["number"]
    ticket = await store.get(number, who)  # NotFound (also for another department's ticket) -> 404 page
    await record_phone_read(request, ticket, who)  # departments see the number masked: nothing to record
    history = await store.history(number, who)
    attachments = await request.app[ATTACHMENTS].list(number, who)
    depts = await departments(request)
    settings = store.settings
    forms = action_forms(settings.deadlines.return_reasons, settings.deadlines.max_extension_working_days)
    allowed = [a for a in ticket["allowed_actions"] if a in forms and a != "edit"]
    # The usual next step first and open (sign, reply, approve), refusals and returns last.
    allowed.sort(key=lambda a: 0 if forms[a].get("primary") else 2 if forms[a].get("danger") else 1)
    related = await store.related(number, who) if who.role in CENTER else None
    now = store.clock()
    ticket["mark"] = due_mark(ticket, now, settings.deadlines.near_due_hours)
    return render(request, "ticket.html", {
        "t": ticket, "history": history, "attachments": attachments, "forms": forms, "allowed": allowed,
        "labels": {a: r.label for a, r in workflow.RULES.items()}, "related": related,
        "dept_names": {i: d.name for i, d in depts.items()}, "departments": [d for d in depts.values() if d.active],
        "type_labels": TYPE_LABELS, "provenance": provenance(ticket.get("draft_fields"), None),
        "statuses": workflow.STATUS_LABELS,
        "can_upload": who.role in ("department", "agent", "supervisor", "admin"),
        "role_labels": {"agent": "话务员", "department": "承办单位", "supervisor": "班长", "admin": "管理员",
                        "system": "系统"},
    })


# ---------------------------------------------------------------- supervisor
PAGE = 20
MAX_PAGE = 100_000  # beyond any real search; keeps OFFSET inside a SQL integer


def _query_from(request: web.Request) -> tuple[TicketQuery, dict[str, str]]:
    q = request.query
    tz = request.app[TZ]
    f = {k: q.get(k, "") for k in ("status", "department_id", "request_type", "district", "q", "overdue", "from",
                                   "to", "page")}
    status = tuple(s for s in f["status"].split(",") if s in workflow.STATUSES)

    d_from, d_to = parse_day(f["from"], "from"), parse_day(f["to"], "to")  # years 2000-2100
    page_no = int(f["page"]) if f["page"].isdigit() and int(f["page"]) <= MAX_PAGE else 1
    dept_id = int(f["department_id"]) if f["department_id"].isdigit() else None
    query = TicketQuery(
        status=status, department_id=dept_id if dept_id is not None and dept_id <= ID_MAX else None,
        request_type=f["request_type"] if f["request_type"] in TYPE_LABELS else None,
        district=f["district"] or None, text=f["q"] or None, overdue=f["overdue"] == "1",
        created_from=datetime.combine(d_from, datetime.min.time(), tz) if d_from else None,
        created_to=datetime.combine(d_to + timedelta(days=1), datetime.min.time(), tz) if d_to else None,
        limit=PAGE, offset=(page_no - 1) * PAGE)
    return query, f


def _this_week(now: datetime, tz: Any) -> tuple[datetime, datetime]:
    day = now.astimezone(tz).date()
    start = datetime.combine(day - timedelta(days=day.weekday()), datetime.min.time(), tz)
    return start, start + timedelta(days=7)


@page(*SUPERVISORS)
async def supervisor_page(request: web.Request, who: Principal) -> web.StreamResponse:
    store = request.app[STORE]
    query, filters = _query_from(request)
    result = await store.list(query, who)
    now = store.clock()
    for t in result["items"]:
        t["mark"] = due_mark(t, now, store.settings.deadlines.near_due_hours)
    depts = await departments(request)
    returns = (await store.list(TicketQuery(status=("returned",), limit=100), who))["items"]
    overdue = await store.due_list(who, "overdue")
    ledger = await store.ledger(who, now - timedelta(days=90))
    ctx = {
        "result": result, "filters": filters, "page": query.offset // PAGE + 1,
        "pages": max(1, -(-int(result["total"] or 0) // PAGE)),
        "statuses": workflow.STATUS_LABELS, "type_labels": TYPE_LABELS,
        "departments": [d for d in depts.values()], "dept_names": {i: d.name for i, d in depts.items()},
        "extensions": await pending_extensions(store.read_sessions, who.district), "returns": returns, "overdue": overdue[:50],
        "overdue_total": len(overdue), "ledger": ledger[:100],
        "ledger_pending": sum(1 for item in ledger if item["decision"] == "pending_supervisor"),
        "ledger_counts": store.ledger_counts(ledger),
        "fallback": await store.fallback_cases(who, *_this_week(now, request.app[TZ])),
        "supervision_overdue": await store.supervision_overdue(who),
        "caller_overdue": await store.due_list(who, "caller_overdue"),
        "suspend_requests": (await store.list(TicketQuery(status=("signed",), suspend_requested=True, limit=100),
                                              who))["items"],
        "duplicates": await duplicate_groups(store.read_sessions, now, district=who.district),
        "search_qs": request.query_string,
        # Years in the next 60 days whose holidays nobody entered: deadlines there are counted Monday-Friday.
        "holidays_missing": deadlines.missing_ahead(store.policy.calendar, now.astimezone(request.app[TZ]).date()),
        "holidays_file": store.settings.tickets.holidays_file or "holidays.toml",
    }
    return render(request, "supervisor.html", ctx)


# ---------------------------------------------------------------- reports
@page(*SUPERVISORS)
async def reports_page(request: web.Request, who: Principal) -> web.StreamResponse:
    report = await build_report(request)
    return render(request, "reports.html", {"r": report, "q": dict(request.query), "kinds": KIND_LABELS,
                                            "qs": request.query_string})


@page(*SUPERVISORS)
async def report_print(request: web.Request, who: Principal) -> web.StreamResponse:
    report = await build_report(request)
    return render(request, "report_print.html", {"r": report})


@page(*SUPERVISORS)
async def report_export(request: web.Request, who: Principal) -> web.StreamResponse:
    report = await build_report(request)
    fmt = request.match_info["fmt"]
    stem = f"{report['kind_label']}-{report['start'].date().isoformat()}"
    # Writing a workbook is CPU work (a year of days and hours): off the event loop, in the default executor.
    loop = asyncio.get_running_loop()
    if fmt == "xlsx":
        body = await loop.run_in_executor(None, export.to_xlsx, report)
        ctype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    else:
        section = request.query.get("section", "三率排名")
        try:
            body = await loop.run_in_executor(None, export.section_csv, report, section)
        except KeyError:
            raise InvalidField("section", f"没有名为 {section} 的报表") from None
        stem += f"-{section}"
        ctype = "text/csv; charset=utf-8"
    await request.app[USERS].audit.access(who, "export_report", f"report:{report['kind']}", {
        "format": fmt, "file": f"{stem}.{fmt}", "start": report["start"].isoformat(),
        "end": report["end"].isoformat(), "query": request.query_string}, request.remote)
    return web.Response(body=body, headers={
        "Content-Type": ctype, "Content-Disposition": f"attachment; filename*=UTF-8''{quote(stem)}.{fmt}"})


# ---------------------------------------------------------------- admin: accounts and the record of access
AUDIT_ACTIONS = {"create_user": "新建账号", "disable": "停用账号", "enable": "启用账号", "change_role": "修改角色",
                 "change_department": "修改所属单位", "rename": "修改姓名", "reset_password": "重置密码",
                 "revoke_tokens": "吊销令牌", "unlock": "解除登录锁定", "view_phone": "查看来电号码",
                 "reveal_phone": "显示号码", "read_transcript": "查看通话转写", "search_transcripts": "检索通话转写",
                 "play_recording": "收听通话录音", "export_report": "导出报表"}
AUDIT_PAGE = 50


@page("admin")
async def audit_page(request: web.Request, who: Principal) -> web.StreamResponse:
    """Accounts (停用/启用, role, department, password) and the audit log, newest first, read only."""
    q = request.query
    tz = request.app[TZ]
    category = q.get("category", "") if q.get("category", "") in AUDIT_CATEGORIES else ""
    user_id = q.get("user_id", "")
    actor = int(user_id) if user_id.isdigit() and 0 < int(user_id) <= ID_MAX else None
    subject = q.get("subject", "")[:200]
    d_from, d_to = parse_day(q.get("from"), "from"), parse_day(q.get("to"), "to")
    page_no = int(q["page"]) if q.get("page", "").isdigit() and int(q["page"]) <= MAX_PAGE else 1
    users = request.app[USERS]
    log = await users.audit.list(
        category=category or None, actor_id=actor, subject=subject or None,
        since=datetime.combine(d_from, datetime.min.time(), tz) if d_from else None,
        until=datetime.combine(d_to + timedelta(days=1), datetime.min.time(), tz) if d_to else None,
        limit=AUDIT_PAGE, offset=(page_no - 1) * AUDIT_PAGE)
    depts = await departments(request)
    accounts = await users.list_accounts()
    return render(request, "audit.html", {
        "log": log, "accounts": accounts, "actions": AUDIT_ACTIONS, "role_labels": ROLE_LABELS,
        "departments": [d for d in depts.values() if d.active],
        "filters": {"category": category, "user_id": user_id if actor else "", "subject": subject,
                    "from": q.get("from", ""), "to": q.get("to", "")},
        "page": page_no, "pages": max(1, -(-log["total"] // AUDIT_PAGE)),
        "base_qs": "&".join(f"{k}={quote(v)}" for k, v in (("category", category), ("user_id", user_id if actor else ""),
                                                           ("subject", subject), ("from", q.get("from", "")),
                                                           ("to", q.get("to", ""))) if v)})


# ---------------------------------------------------------------- knowledge
@page()
async def knowledge_page(request: web.Request, who: Principal) -> web.StreamResponse:
    kb = request.app[KNOWLEDGE]
    q = request.query.get("q", "")
    editor = who.role in ("supervisor", "admin", "department")
    results = await kb.search(q, 50) if q else await kb.search("", 50)
    editing = None
    edit = request.query.get("edit", "")
    if editor and edit.isdigit() and int(edit) <= ID_MAX:
        editing = await kb.get(int(edit), who)
    depts = await departments(request)
    return render(request, "knowledge.html", {
        "q": q, "results": results, "editor": editor, "editing": editing,
        "review": await kb.for_review(who) if editor else [],
        "departments": [d for d in depts.values() if d.active], "dept_names": {i: d.name for i, d in depts.items()},
    })
