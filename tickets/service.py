"""The ticket store: the async shell around the pure workflow. Owns database sessions, nothing else.

Every public method runs in its own transaction and returns only after the commit, so a ticket the
client hears about always exists.
"""
from __future__ import annotations

import logging
import re
import tomllib
import unicodedata
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, Select, Table, and_, bindparam, exists, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from config.settings import REQUEST_TYPES, Settings
from tickets import deadlines, phones, visibility, workflow
from tickets.accounts.service import Principal
from tickets.errors import Conflict, InvalidField, NotFound, Refused
from tickets.prepared import Prepared, PreparedInsert, insert_row
from tickets.reads import Reads
from tickets.writer import GroupWriter, writer_for
from tickets.models import (
    Assignment,
    Department,
    LedgerItem,
    Ticket,
    TicketCounter,
    TicketHandler,
    TicketHistory,
)

T = Ticket.__table__
H = TicketHistory.__table__
A = Assignment.__table__
TH = TicketHandler.__table__
CHANNELS = ("phone", "web", "wechat", "app", "mailbox", "walk_in", "sms", "email")
URGENCIES = ("urgent", "normal")
EDITABLE_FIELDS = ("channel", "caller_name", "caller_phone", "anonymous", "survey_opt_out", "request_type",
                   "urgency", "title", "content", "address", "district", "category")
STATE_FIELDS = tuple(f.name for f in fields(workflow.TicketState))
_PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)
# Who relays the master's answer to merged callers (history shows it as the system's doing).
SYSTEM_ACTOR = Principal(id=0, username="system", name="系统", role="system", department_id=None,
                         department_code=None, interface=None)


# The statements of the action path, built once with their values as parameters. SQLAlchemy caches a statement's
# compiled SQL, but building the statement and its cache key on every call cost more CPU than SQLite's running
# it: py-spy put ~2/3 of the writer thread in statement construction and cache keys (benchmarks/ticket_cpu.py,
# BENCHMARKS.md). An UPDATE without ``values()`` sets the columns named by the parameters it is given.
# They run through ``Prepared`` (tickets/prepared.py): on the driver's cursor, without SQLAlchemy's per-execution
# machinery, which took as much CPU as SQLite's work while the batch held the write lock.
_INSERT_TICKET = PreparedInsert(T)
_INSERT_HISTORY = Prepared(insert(H))
_SAVE = Prepared(update(T).where(T.c.id == bindparam("b_id"), T.c.version == bindparam("b_version")))
_INSERT_ASSIGNMENT = Prepared(insert(A))
_UPDATE_OPEN_ASSIGNMENT = Prepared(update(A).where(
    A.c.ticket_id == bindparam("b_ticket_id"), A.c.department_id == bindparam("b_department_id"),
    A.c.closed_at.is_(None)))
# one look-up per department named (a lead and a few co-handlers): an expanding IN list needs SQLAlchemy's execution
_ACTIVE_DEPARTMENT = Prepared(select(Department.__table__.c.id).where(
    Department.__table__.c.id == bindparam("b_id"), Department.__table__.c.active.is_(True)))
_DELETE_HANDLERS = Prepared(TH.delete().where(TH.c.ticket_id == bindparam("b_ticket_id")))
_INSERT_HANDLERS = Prepared(insert(TH))
_MERGED_CALLERS = Prepared(select(T).where(T.c.duplicate_of == bindparam("b_number"), T.c.status == "merged")
                           .order_by(T.c.id).with_for_update())
_LOAD: dict[tuple[bool, bool, bool], Prepared] = {}
_NEXT_NUMBER: dict[str, Prepared] = {}


def _load_stmt(who: Principal, for_update: bool) -> Prepared:
    """The ticket by number as ``who`` may see it (``visibility.restrict_bound``), built once per shape."""
    key = (*visibility.shape(who), for_update)
    prepared = _LOAD.get(key)
    if prepared is None:
        stmt = visibility.restrict_bound(select(T).where(T.c.number == bindparam("b_number")), key[0], key[1])
        prepared = _LOAD[key] = Prepared(stmt.with_for_update() if for_update else stmt)
    return prepared


def _next_number_stmt(dialect: str) -> Prepared:
    """Today's next ticket number, taken in the creating transaction (one row per day)."""
    prepared = _NEXT_NUMBER.get(dialect)
    if prepared is None:
        ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(TicketCounter)
        prepared = _NEXT_NUMBER[dialect] = Prepared(ins.values(day=bindparam("b_day"), last=1).on_conflict_do_update(
            index_elements=[TicketCounter.day], set_={"last": TicketCounter.last + 1}).returning(TicketCounter.last))
    return prepared


def address_key(address: str) -> str:
    """Same place, written differently: full-width/half-width, spaces and punctuation do not matter."""
    return _PUNCT.sub("", unicodedata.normalize("NFKC", address or "")).lower()[:200]


def load_escalation(path: Path) -> dict[str, str]:
    """提级链 from departments.toml: ``escalate_to`` on a department names its next level; the top-level
    ``escalate_default`` is the next level of every department without one (e.g. the city leadership office).
    Keys are department codes, ``"*"`` the default."""
    if not path.exists():
        return {}
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    chain = {str(d["code"]): str(d["escalate_to"]) for d in data.get("department", [])
             if d.get("code") and d.get("escalate_to")}
    if data.get("escalate_default"):
        chain["*"] = str(data["escalate_default"])
    return chain


# A new ticket's columns before the caller's values: the model's constant defaults, empty texts.
_ROW_DEFAULTS: dict[str, Any] = {
    **{c.name: c.default.arg if c.default is not None and not callable(c.default.arg) else None
       for c in T.columns if c.name != "id"},
    "title": "", "content": "", "address": "", "address_key": "", "district": "", "category": "", "caller_name": "",
    "caller_phone": ""}


log = logging.getLogger("hotline.tickets")

# Work a write hook asks for once its job's batch has committed (on the event loop, after the listeners).
AfterCommit = Callable[[], None]


def to_state(ticket: Any) -> workflow.TicketState:
    values = {name: getattr(ticket, name) for name in STATE_FIELDS}
    values["co_handler_ids"] = tuple(ticket.co_handler_ids or ())
    return workflow.TicketState(**values)


def _bigrams(text: str) -> set[str]:
    t = _PUNCT.sub("", text or "")
    return {t[i:i + 2] for i in range(len(t) - 1)}


def text_similarity(a: str, b: str) -> float:
    """Jaccard similarity of character bigrams: robust for Chinese without a tokenizer."""
    x, y = _bigrams(a), _bigrams(b)
    if not x or not y:
        return 0.0
    return len(x & y) / len(x | y)


@dataclass(frozen=True)
class TicketQuery:
    status: Sequence[str] = ()
    department_id: int | None = None
    request_type: str | None = None
    district: str | None = None
    phone: str | None = None
    text: str | None = None
    overdue: bool = False
    suspend_requested: bool = False  # only tickets whose department asks to stop the clock (暂停计时待审批)
    created_from: datetime | None = None
    created_to: datetime | None = None
    limit: int = 50
    offset: int = 0


class TicketStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings,
                 clock: Callable[[], datetime], read_sessions: async_sessionmaker[AsyncSession] | None = None,
                 write_engine: Engine | None = None, read_engine: Engine | None = None) -> None:
        self.sessions = sessions
        # Every write goes through the process's group-commit writer (tickets/writer.py): SQLite gets a
        # synchronous ``write_engine`` so a whole batch is one hop to the writer's thread.
        self.writer: GroupWriter = writer_for(sessions.kw["bind"], write_engine, settings.database.write_batches)
        # SQLite: writes take the write lock at BEGIN (see server.make_engine); reads use a separate pool.
        self.read_sessions = read_sessions or sessions
        # The ticket reads (list, detail, history, related): on SQLite one hop each to a thread on ``read_engine``
        # (tickets/reads.py).
        self.reads = Reads(self.read_sessions, read_engine)
        self.settings = settings
        self.clock = clock
        self.tz = ZoneInfo(settings.server.timezone)
        self.policy = workflow.Policy(settings.deadlines, self.tz, settings.tickets.dissatisfied_rule,
                                      deadlines.Calendar.from_settings(settings.holidays))
        self.escalation = load_escalation(settings.config_file(settings.tickets.departments_file))
        # Other packages subscribe here (server.py wires them): called after commit with (ticket dict, entry).
        self.listeners: list[Callable[[dict[str, Any], workflow.HistoryEntry], Any]] = []
        # Rows that must commit with the workflow change or not at all (an SMS outbox): each hook gets the
        # ticket's new view and the history entry of every successful creation/action, before the commit, and
        # returns (table, values) rows inserted in the same transaction. A hook that raises refuses the action.
        self.row_hooks: list[Callable[[Mapping[str, Any], workflow.HistoryEntry],
                                      Iterable[tuple[Table, dict[str, Any]]]]] = []
        # The same, for a feature whose rows depend on what the database holds (the callback survey: one per
        # reopen round): called with the transaction's connection after the row hooks. Runs in the writer's
        # thread; no I/O but this connection. It may return work for after the commit (the survey's timer),
        # run on the event loop once the job's batch has committed, never for a job that did not. A request
        # cancelled while its batch commits loses that work (a survey whose timer is lost is still dialed: the
        # sweep finds it due in SQL).
        self.write_hooks: list[Callable[[Connection, Mapping[str, Any], workflow.HistoryEntry],
                                        AfterCommit | None]] = []

    # ------------------------------------------------------------ visibility
    def _visible(self, stmt: Select[Any], who: Principal) -> Select[Any]:
        """Department handlers see only tickets their department handles, a district sub-center only its
        district's; the city centre sees all (``tickets/visibility.py``)."""
        return visibility.restrict(stmt, who)

    def _load_in(self, session: Session, number: str, who: Principal) -> Ticket:
        """The ticket ``who`` may see, inside a read's body (tickets/reads.py); 404 otherwise."""
        ticket = session.scalar(self._visible(select(Ticket).where(Ticket.number == number), who))
        if ticket is None:  # 404 also for another department's ticket: do not reveal that it exists
            raise NotFound("ticket_not_found", f"工单 {number} 不存在")
        return ticket

    # ------------------------------------------------------------ create
    def _next_number(self, conn: Connection, now: datetime) -> str:
        day = now.astimezone(self.tz).strftime("%Y%m%d")
        seq = _next_number_stmt(conn.dialect.name).scalar(conn, {"b_day": day})
        return f"{day}-{seq:06d}"

    def _clean(self, data: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        limit = self.settings.server.max_text_chars
        for key, value in data.items():
            if key not in EDITABLE_FIELDS:
                continue
            if key in ("anonymous", "survey_opt_out"):
                if not isinstance(value, bool):
                    raise InvalidField(key, f"{key} 必须是 true 或 false")
            elif not isinstance(value, str):
                raise InvalidField(key, f"{key} 必须是文字")
            elif len(value) > limit:
                raise InvalidField(key, f"{key} 超过 {limit} 个字符")
            out[key] = value
        if "channel" in out and out["channel"] not in CHANNELS:
            raise InvalidField("channel", f"channel 须为 {', '.join(CHANNELS)} 之一")
        if "request_type" in out and out["request_type"] not in REQUEST_TYPES:
            raise InvalidField("request_type", f"request_type 须为 {', '.join(REQUEST_TYPES)} 之一")
        if "urgency" in out and out["urgency"] not in URGENCIES:
            raise InvalidField("urgency", "urgency 须为 urgent 或 normal")
        if "caller_phone" in out:
            raw = out["caller_phone"]
            if raw and not phones.is_valid(raw):
                raise InvalidField("caller_phone", f"电话号码无效：{raw}")
            out["caller_phone"] = phones.normalize(raw)
        if "address" in out:
            out["address_key"] = address_key(out["address"])
        return out

    async def create(self, data: Mapping[str, Any], who: Principal, *, accept: bool = False,
                     call_id: str | None = None, recording_path: str | None = None,
                     draft_fields: Mapping[str, Any] | None = None, transcript_id: int | None = None,
                     with_rows: Callable[[Mapping[str, Any]], Iterable[tuple[Table, dict[str, Any]]]] | None = None
                     ) -> dict[str, Any]:
        """``with_rows`` gives rows of the caller's own (an Open311 request's record) that must commit with this
        ticket and name it: called with the new ticket's view inside the creating transaction."""
        if who.role not in workflow.CENTER_ROLES and who.role != "system":
            raise Refused("not_permitted", "只有话务员和班长可以登记工单", "draft", [])
        values = self._clean(data)
        values.setdefault("channel", "phone")
        values.setdefault("request_type", "inquiry")
        values.setdefault("urgency", "normal")
        if not (values.get("content") or values.get("title")):
            raise InvalidField("content", "请填写诉求内容")
        def job(conn: Connection) -> tuple[dict[str, Any], list[workflow.HistoryEntry], list[AfterCommit]]:
            after_commit: list[AfterCommit] = []  # made anew when the batch reruns this job alone
            view, entries = self._create_in(conn, values, who, accept, call_id, recording_path, draft_fields,
                                            transcript_id, with_rows, after_commit)
            return view, entries, after_commit

        view, entries, after_commit = await self.writer.submit(job, numbered=True)
        self._committed([(view, e) for e in entries], after_commit)
        return view

    def _create_in(self, conn: Connection, values: Mapping[str, Any], who: Principal, accept: bool,
                   call_id: str | None, recording_path: str | None, draft_fields: Mapping[str, Any] | None,
                   transcript_id: int | None,
                   with_rows: Callable[[Mapping[str, Any]], Iterable[tuple[Table, dict[str, Any]]]] | None,
                   after_commit: list[AfterCommit]) -> tuple[dict[str, Any], list[workflow.HistoryEntry]]:
        """The creation inside a write batch: returns the view and the entries to notify after the commit; the
        write hooks' after-commit work goes into ``after_commit``."""
        now = self.clock()
        row = {**_ROW_DEFAULTS, "co_handler_ids": [], **values}
        row.update(number=self._next_number(conn, now), created_at=now, updated_at=now, version=1,
                   created_by=who.id if who.role != "system" else None, status="draft", call_id=call_id,
                   recording_path=recording_path, draft_fields=dict(draft_fields) if draft_fields else None,
                   transcript_id=transcript_id)
        # keyed by its own number, which no pending write can name: the batch's deferred UPDATEs of other tickets
        # stay pending and go grouped before the commit (an INSERT reads no other row)
        ticket_id = _INSERT_TICKET.id(conn, row, key=("number", row["number"]))
        ticket = SimpleNamespace(id=ticket_id, **row)
        created = workflow.HistoryEntry(action="create", at=now, actor_id=who.id, actor_role=who.role,
                                        actor_name=who.name, from_status="", to_status="draft", note="",
                                        data={"channel": ticket.channel})
        _INSERT_HISTORY.defer(conn, {"ticket_id": ticket_id, **_entry_row(created)}, ("ticket", ticket_id))
        entries = []
        if accept:
            entry, changes = self._apply(conn, ticket, "accept", {}, who, now)
            self._save(conn, ticket, changes, now)
            entries.append(entry)
        view = self._view(ticket, mask=False)
        self._hook_rows(conn, [(view, created)] + [(view, e) for e in entries], after_commit)
        for table, extra in with_rows(view) if with_rows else ():
            insert_row(conn, table, extra)
        return view, entries

    async def attach_draft(self, call_id: str, transcript_id: int | None, draft_fields: Mapping[str, Any],
                           values: Mapping[str, Any], who: Principal) -> dict[str, Any]:
        """Recognition finished for a call: fill the call's draft ticket, or create one.

        Idempotent by ``call_id`` (recognition may deliver twice). Fields the agent already filled are never
        overwritten; the suggestions stay beside them in ``draft_fields`` for the agent to compare.
        """
        def fill(conn: Connection) -> tuple[dict[str, Any], list[workflow.HistoryEntry], list[AfterCommit]]:
            now = self.clock()
            after_commit: list[AfterCommit] = []
            row = conn.execute(select(T).where(T.c.call_id == call_id).order_by(T.c.id).limit(1)
                               .with_for_update()).mappings().first()
            if row is None:  # in the same job as the look-up: two deliveries cannot both create
                data = {k: v for k, v in values.items() if v}
                data.setdefault("content", "（语音转写未识别出内容）")
                fresh = {"channel": "phone", "request_type": "inquiry", "urgency": "normal", **self._clean(data)}
                return (*self._create_in(conn, fresh, who, False, call_id, None, draft_fields, transcript_id,
                                         None, after_commit), after_commit)
            ticket = SimpleNamespace(**row)
            changes: dict[str, Any] = {"draft_fields": dict(draft_fields), "transcript_id": transcript_id}
            if ticket.status == "draft":
                for key, value in self._clean(values).items():
                    if not getattr(ticket, key, None) or key in ("request_type", "urgency") \
                            and getattr(ticket, key) in ("inquiry", "normal") and value:
                        changes[key] = value
            vars(ticket).update(changes)
            self._save(conn, ticket, changes, now)
            conn.execute(insert(H).values(
                ticket_id=ticket.id, action="draft_filled", at=now, actor_id=None, actor_role=who.role,
                actor_name=who.name, from_status=ticket.status, to_status=ticket.status, note="",
                data={"transcript_id": transcript_id, "fields": sorted(draft_fields)}))
            return self._view(ticket, mask=False), [], after_commit

        view, entries, after_commit = await self.writer.submit(fill, numbered=True)  # may create: it may take a number
        self._committed([(view, e) for e in entries], after_commit)
        return view

    async def call_acceptors(self, call_id: str) -> set[int]:
        """Ids of the agents who accepted a ticket of this call (首接负责): besides supervisors, the only people
        who may hear its recording."""
        async with self.read_sessions() as session:
            rows = await session.execute(select(T.c.accepted_by).where(T.c.call_id == call_id,
                                                                       T.c.accepted_by.is_not(None)))
            return {int(r) for r in rows.scalars()}

    # ------------------------------------------------------------ act
    async def act(self, number: str, action: str, params: Mapping[str, Any], who: Principal) -> dict[str, Any]:
        if action in workflow.INTERNAL_RULES:
            raise Refused("unknown_action", f"未知操作：{action}", "", [])
        def job(conn: Connection) -> tuple[list[tuple[dict[str, Any], workflow.HistoryEntry]], list[AfterCommit]]:
            after_commit: list[AfterCommit] = []  # made anew when the batch reruns this job alone
            return self._act_in(conn, number, action, params, who, after_commit), after_commit

        changed, after_commit = await self.writer.submit(job)
        self._committed(changed, after_commit)
        return changed[0][0]

    def _act_in(self, conn: Connection, number: str, action: str, params: Mapping[str, Any], who: Principal,
                after_commit: list[AfterCommit]) -> list[tuple[dict[str, Any], workflow.HistoryEntry]]:
        """The action inside a write batch: (view, entry) of the ticket, then of every ticket it changed; the
        write hooks' after-commit work goes into ``after_commit``."""
        now = self.clock()
        ticket = self._load_row(conn, number, who, for_update=True)
        self._check_references(conn, ticket, action, params)
        master = None
        if action == "escalate" and params.get("to_department_id") is None:
            params = {**params, "to_department_id": self._next_level(conn, ticket)}
        if action in ("merge", "split"):
            params, master = self._merge_params(conn, ticket, action, params)
        entry, changes = self._apply(conn, ticket, action, params, who, now)
        if action == "edit":
            edits = self._clean(params)
            changes.update(edits)
            vars(ticket).update(edits)
        self._save(conn, ticket, changes, now)
        after: list[tuple[dict[str, Any], workflow.HistoryEntry]] = []
        if master is not None:  # the master takes on (or gives back) the duplicate's departments
            internal = "merged_in" if action == "merge" else "split_out"
            moved = entry.data.get("moved_departments") if action == "merge" else params["moved_departments"]
            after.append(self._internal(conn, master, internal, {
                "duplicate": ticket.number, "departments": moved or [], "note": entry.note}, who, now))
        if action == "reply":
            after += self._relay_reply(conn, ticket, now)
        if action == "follow_up" and isinstance(params.get("draft"), str) and params["draft"]:
            after += self._absorb_draft(conn, ticket, params["draft"], entry.note, who, now)
        changed = [(self._view(ticket, mask=False), entry), *after]
        self._hook_rows(conn, changed, after_commit)
        return changed

    def _absorb_draft(self, conn: Connection, case: SimpleNamespace, number: str, note: str,
                            who: Principal, now: datetime) -> list[tuple[dict[str, Any], workflow.HistoryEntry]]:
        """追加诉求 / 催办 from the agent's screen: the new call's draft joins the open case (merged: its call,
        recording and caller stay on record) instead of becoming another ticket."""
        draft = self._load_row(conn, number, who, for_update=True)
        if draft.id == case.id or draft.status not in ("draft", "accepted"):
            raise InvalidField("draft", f"工单 {number} 不是待处理的新来电")
        params = {"master": case.number, "master_state": to_state(case), "note": f"追加诉求/催办：{note}"}
        entry, changes = self._apply(conn, draft, "merge", params, who, now)
        self._save(conn, draft, changes, now)
        return [(self._view(draft, mask=False), entry),
                self._internal(conn, case, "merged_in", {"duplicate": draft.number, "departments": [],
                                                                   "note": params["note"]}, who, now)]

    def _next_level(self, conn: Connection, ticket: SimpleNamespace) -> int | None:
        """The next level of the escalation chain above the ticket's lead department (None: not configured)."""
        if ticket.lead_department_id is None:
            return None
        code = conn.scalar(select(Department.code).where(Department.id == ticket.lead_department_id))
        nxt = self.escalation.get(code or "") or self.escalation.get("*")
        if not nxt:
            return None
        return conn.scalar(select(Department.id).where(Department.code == nxt, Department.active.is_(True)))

    def _merge_params(self, conn: Connection, ticket: SimpleNamespace, action: str,
                            params: Mapping[str, Any]) -> tuple[dict[str, Any], SimpleNamespace]:
        """The master's state for the workflow's checks; for a split, the state kept by the merge."""
        out = {k: v for k, v in params.items() if k not in ("master_state", "restore", "moved_departments")}
        if action == "merge":
            master_no = params["master"]
        else:
            merged = conn.execute(select(H.c.data).where(H.c.ticket_id == ticket.id, H.c.action == "merge")
                                  .order_by(H.c.id.desc()).limit(1)).first()
            if merged is None or ticket.duplicate_of is None:
                raise Refused("no_merge_record", "找不到合并记录，无法拆分", ticket.status, [])
            master_no = ticket.duplicate_of
            data = merged.data or {}
            out.update(restore=data.get("restore"), moved_departments=list(data.get("moved_departments") or []))
        row = (conn.execute(select(T).where(T.c.number == master_no).with_for_update())).mappings().first()
        if row is None:
            raise InvalidField("master", f"主工单 {master_no} 不存在")
        master = SimpleNamespace(**row)
        out["master_state"] = to_state(master)
        return out, master

    def _internal(self, conn: Connection, ticket: SimpleNamespace, action: str,
                        params: Mapping[str, Any], who: Principal, now: datetime
                        ) -> tuple[dict[str, Any], workflow.HistoryEntry]:
        """A consequence on another ticket (master of a merge, merged callers), recorded in its history."""
        result = workflow.apply_internal(to_state(ticket), action, params, who.as_actor(), now, self.policy)
        if isinstance(result, workflow.Refusal):
            raise Refused(result.code, result.message, result.status, [], result.field)
        entry, changes = self._record(conn, ticket, to_state(ticket), result)
        self._save(conn, ticket, changes, now)
        return self._view(ticket, mask=False), entry

    def _relay_reply(self, conn: Connection, master: SimpleNamespace, now: datetime
                           ) -> list[tuple[dict[str, Any], workflow.HistoryEntry]]:
        """Every caller merged into the master gets its answer; each phone number is surveyed once."""
        rows = _MERGED_CALLERS.all(conn, {"b_number": master.number})
        surveyed = {master.caller_phone} if master.caller_phone else set()
        out = []
        for row in rows:
            dup = SimpleNamespace(**row)
            survey = not dup.caller_phone or dup.caller_phone not in surveyed
            if dup.caller_phone:
                surveyed.add(dup.caller_phone)
            out.append(self._internal(conn, dup, "relay_reply", {
                "answer": master.answer, "master": master.number, "survey": survey}, SYSTEM_ACTOR, now))
        return out

    def _load_row(self, conn: Connection, number: str, who: Principal, for_update: bool = False
                        ) -> SimpleNamespace:
        """The ticket as plain attributes (Core, not the ORM: the action path is the hot path)."""
        row = _load_stmt(who, for_update).first(conn, {"b_number": number, **visibility.bound_values(who)},
                                                 key=("number", number))
        if row is None:  # 404 also for another department's ticket: do not reveal that it exists
            raise NotFound("ticket_not_found", f"工单 {number} 不存在")
        return SimpleNamespace(**row)

    def _save(self, conn: Connection, ticket: SimpleNamespace, changes: dict[str, Any],
                    now: datetime) -> None:
        """One UPDATE of the changed columns, guarded by the version so a lost update cannot happen.

        In a write batch's first pass the UPDATE is deferred (``Prepared.defer``) and its row count is not seen.
        Nothing is lost by that: every ticket saved here was read in the same transaction with ``FOR UPDATE``
        (PostgreSQL) or under the batch's ``BEGIN IMMEDIATE`` (SQLite), or inserted by it, so no other
        transaction can have moved its version; and a later job of the batch that reads the same ticket gets the
        pending UPDATE sent first (its ``("number", ...)`` key). Run at once (the savepoint pass, or outside a
        batch), the version is checked as always."""
        changes = {**changes, "updated_at": now, "version": ticket.version + 1}
        result = _SAVE.defer(conn, {**changes, "b_id": ticket.id, "b_version": ticket.version},
                             ("number", ticket.number))
        if result is not None and result.rowcount != 1:
            raise Conflict("concurrent_update", "工单刚被他人修改，请刷新后重试")
        ticket.version += 1
        ticket.updated_at = now

    def _check_references(self, conn: Connection, ticket: SimpleNamespace, action: str,
                                params: Mapping[str, Any]) -> None:
        if action == "dispatch":
            ids = [params.get("lead_department_id"), *(params.get("co_handler_ids") or [])]
            ids = [i for i in ids if isinstance(i, int) and not isinstance(i, bool)]
            if ids:
                found = {i for i in set(ids) if _ACTIVE_DEPARTMENT.scalar(conn, {"b_id": i}) is not None}
                missing = [i for i in ids if i not in found]
                if missing:
                    field = "lead_department_id" if params.get("lead_department_id") in missing else "co_handler_ids"
                    raise InvalidField(field, f"单位不存在：{missing}")
        if action == "escalate" and params.get("to_department_id") is not None:
            to = params["to_department_id"]
            if isinstance(to, bool) or not isinstance(to, int) or not conn.scalar(
                    select(Department.id).where(Department.id == to, Department.active.is_(True))):
                raise InvalidField("to_department_id", f"单位不存在：{to}")
        if action == "merge":
            master_no = params.get("master")
            if not isinstance(master_no, str) or not master_no:
                raise InvalidField("master", "请填写主工单编号")
            if master_no == ticket.number:
                raise InvalidField("master", "不能与自身合并")
            master = conn.execute(select(T.c.status).where(T.c.number == master_no)).first()
            if master is None:
                raise InvalidField("master", f"主工单 {master_no} 不存在")
            if master.status in ("merged", "invalid"):
                raise InvalidField("master", f"主工单 {master_no} 已{workflow.STATUS_LABELS[master.status]}")
        if action == "edit":
            self._clean(params)  # validate before the transition is recorded

    def _apply(self, conn: Connection, ticket: Any, action: str, params: Mapping[str, Any],
                     who: Principal, now: datetime) -> tuple[workflow.HistoryEntry, dict[str, Any]]:
        old = to_state(ticket)
        result = workflow.apply(old, action, params, who.as_actor(), now, self.policy)
        if isinstance(result, workflow.Refusal):
            raise Refused(result.code, result.message, result.status, list(result.allowed), result.field)
        return self._record(conn, ticket, old, result)

    def _record(self, conn: Connection, ticket: Any, old: workflow.TicketState,
                      result: workflow.Transition) -> tuple[workflow.HistoryEntry, dict[str, Any]]:
        changes: dict[str, Any] = {}
        for name in STATE_FIELDS:  # only what changed, so the UPDATE carries only those columns
            value = getattr(result.state, name)
            if value != getattr(old, name):
                changes[name] = list(value) if name == "co_handler_ids" else value
        vars(ticket).update(changes)
        entry = result.entry
        _INSERT_HISTORY.defer(conn, {"ticket_id": ticket.id, **_entry_row(entry)}, ("ticket", ticket.id))
        lead_cleared = "lead_department_id" in changes and changes["lead_department_id"] is None
        # lead cleared = approved return: old handlers lose access; co-handlers changed = merge or split
        self._carry_out(conn, ticket, result.effects, lead_cleared or "co_handler_ids" in changes)
        return entry, changes

    def _carry_out(self, conn: Connection, ticket: Any, effects: Iterable[workflow.Effect],
                         lead_cleared: bool = False) -> None:
        handlers_changed = False
        for eff in effects:
            if isinstance(eff, workflow.AssignmentOpened):
                _INSERT_ASSIGNMENT.defer(conn, {
                    "ticket_id": ticket.id, "department_id": eff.department_id, "role": eff.role,
                    "dispatched_at": eff.dispatched_at, "sign_due": eff.sign_due, "reply_due": eff.reply_due,
                    "reason": ""}, ("ticket", ticket.id))
                handlers_changed = True
            elif isinstance(eff, workflow.AssignmentSigned):
                _UPDATE_OPEN_ASSIGNMENT.defer(conn, {
                    "b_ticket_id": ticket.id, "b_department_id": eff.department_id, "signed_at": eff.at},
                    ("ticket", ticket.id))
            elif isinstance(eff, workflow.AssignmentClosed):
                _UPDATE_OPEN_ASSIGNMENT.defer(conn, {
                    "b_ticket_id": ticket.id, "b_department_id": eff.department_id, "closed_at": eff.at,
                    "outcome": eff.outcome, "reason": eff.reason}, ("ticket", ticket.id))
            elif isinstance(eff, workflow.AssignmentRestored):
                latest = conn.scalar(select(func.max(Assignment.id)).where(
                    Assignment.ticket_id == ticket.id, Assignment.department_id == eff.department_id))
                conn.execute(update(Assignment).where(Assignment.id == latest)
                                      .values(closed_at=None, outcome=None, reason=""))
            elif isinstance(eff, workflow.ReplyDueChanged):
                conn.execute(update(Assignment).where(
                    Assignment.ticket_id == ticket.id, Assignment.role == "lead",
                    Assignment.id == select(func.max(Assignment.id)).where(
                        Assignment.ticket_id == ticket.id, Assignment.role == "lead").scalar_subquery(),
                ).values(reply_due=eff.reply_due))
            elif isinstance(eff, workflow.SurveyRecorded):
                self._revisit(conn, ticket, eff)
                if eff.department_id is None:
                    continue
                latest = conn.scalar(select(func.max(Assignment.id)).where(
                    Assignment.ticket_id == ticket.id, Assignment.department_id == eff.department_id,
                    Assignment.role == "lead", Assignment.outcome == "replied"))
                if latest is not None:
                    conn.execute(update(Assignment).where(Assignment.id == latest).values(
                        satisfaction=eff.satisfaction, resolved=eff.resolved, surveyed_at=eff.at))
            elif isinstance(eff, workflow.LedgerDecided):
                latest = conn.scalar(select(func.max(LedgerItem.id)).where(
                    LedgerItem.ticket_id == ticket.id, LedgerItem.decision == "pending_supervisor"))
                if latest is not None:
                    conn.execute(update(LedgerItem).where(LedgerItem.id == latest).values(
                        decision=eff.decision, decided_at=eff.at, decided_by=eff.by, decision_note=eff.note))
            elif isinstance(eff, workflow.LedgerEntry):
                conn.execute(insert(LedgerItem).values(
                    ticket_id=ticket.id, department_id=eff.department_id, satisfaction=eff.satisfaction,
                    resolved=eff.resolved, at=eff.at, decision=eff.decision))
        if handlers_changed or lead_cleared:  # lead cleared = approved return: old handlers lose access
            self._sync_handlers(conn, ticket)

    def _revisit(self, conn: Connection, ticket: Any, eff: workflow.SurveyRecorded) -> None:
        """回访 after re-handling: the answer on a reopened ticket is kept on the ledger item that reopened it."""
        latest = conn.scalar(select(func.max(LedgerItem.id)).where(
            LedgerItem.ticket_id == ticket.id, LedgerItem.decision == "reopened", LedgerItem.revisit_at.is_(None)))
        # (the answer's own ledger item, if any, is inserted after this: SurveyRecorded comes first)
        if latest is not None:
            conn.execute(update(LedgerItem).where(LedgerItem.id == latest).values(
                revisit_satisfaction=eff.satisfaction, revisit_resolved=eff.resolved, revisit_at=eff.at))

    def _sync_handlers(self, conn: Connection, ticket: Any) -> None:
        _DELETE_HANDLERS.execute(conn, {"b_ticket_id": ticket.id})
        if ticket.lead_department_id is not None:
            rows = [{"ticket_id": ticket.id, "department_id": ticket.lead_department_id, "role": "lead"}]
            rows += [{"ticket_id": ticket.id, "department_id": co, "role": "co"}
                     for co in ticket.co_handler_ids or [] if co != ticket.lead_department_id]
            _INSERT_HANDLERS.executemany(conn, rows)

    def _hook_rows(self, conn: Connection, changed: Iterable[tuple[dict[str, Any], workflow.HistoryEntry]],
                   after_commit: list[AfterCommit]) -> None:
        """Insert the rows the ``row_hooks`` ask for and run the ``write_hooks``, inside the caller's transaction
        (before its commit); the work a write hook returns for after the commit is added to ``after_commit``."""
        if not (self.row_hooks or self.write_hooks):
            return
        for view, entry in changed:
            for hook in self.row_hooks:
                for table, values in hook(view, entry):
                    insert_row(conn, table, values)
            for write in self.write_hooks:
                work = write(conn, view, entry)
                if work is not None:
                    after_commit.append(work)

    def _committed(self, changed: Iterable[tuple[dict[str, Any], workflow.HistoryEntry]],
                   after_commit: Iterable[AfterCommit]) -> None:
        """A write job has committed: its listeners, then the work its write hooks left, which a failing listener
        must not cost (the commit stands)."""
        try:
            for view, entry in changed:
                for listener in self.listeners:
                    listener(view, entry)
        finally:
            for work in after_commit:
                try:
                    work()
                except Exception:  # the client is told of the commit all the same
                    log.exception("after-commit work of a ticket write failed")

    # ------------------------------------------------------------ read
    async def get(self, number: str, who: Principal, *, reveal: bool = False) -> dict[str, Any]:
        """One ticket as ``who`` may see it (see ``shown_to``); ``reveal`` keeps the caller's number whole, for
        the 显示号码 action that the access log records."""
        def read(session: Session) -> dict[str, Any]:
            ticket = self._load_in(session, number, who)
            view = self._view(ticket, mask=False)
            merged = session.scalars(select(Ticket).where(
                Ticket.duplicate_of == number, Ticket.status == "merged").order_by(Ticket.id)).all()
            view["allowed_actions"] = list(workflow.allowed_actions(to_state(ticket), who.as_actor()))
            # 并单: every caller of the case, the master's own first; each gets the answer and a survey.
            view["callers"] = [{"ticket": t.number, "caller_name": t.caller_name, "caller_phone": t.caller_phone,
                                "anonymous": t.anonymous, "created_at": t.created_at, "title": t.title,
                                "satisfaction": t.satisfaction, "resolved": t.resolved} for t in merged]
            return view

        view = await self.reads.run(read)
        return view if reveal else shown_to(view, who)

    async def history(self, number: str, who: Principal) -> list[dict[str, Any]]:
        def read(session: Session) -> list[dict[str, Any]]:
            ticket = self._load_in(session, number, who)
            # The history of duplicates merged into this ticket belongs to the case: shown here, in time order.
            merged = dict(session.execute(select(Ticket.id, Ticket.number).where(  # type: ignore[arg-type]
                Ticket.duplicate_of == number, Ticket.status == "merged")).all())
            numbers = {ticket.id: ticket.number, **merged}
            rows = session.scalars(select(TicketHistory).where(TicketHistory.ticket_id.in_(list(numbers)))
                                   .order_by(TicketHistory.at, TicketHistory.id)).all()
            return [{"action": r.action, "at": r.at, "actor_id": r.actor_id, "actor_role": r.actor_role,
                     "actor_name": r.actor_name, "from_status": r.from_status, "to_status": r.to_status,
                     "note": r.note, "data": {k: v for k, v in r.data.items() if k != "restore"},
                     "ticket": numbers[r.ticket_id]} for r in rows]

        return await self.reads.run(read)

    async def list(self, query: TicketQuery, who: Principal) -> dict[str, Any]:
        stmt = self._visible(select(Ticket), who)
        if query.status:
            stmt = stmt.where(Ticket.status.in_(list(query.status)))
        if query.department_id is not None:
            stmt = stmt.where(exists().where(TicketHandler.ticket_id == Ticket.id,
                                             TicketHandler.department_id == query.department_id))
        if query.request_type:
            stmt = stmt.where(Ticket.request_type == query.request_type)
        if query.district:
            stmt = stmt.where(Ticket.district == query.district)
        if query.phone:
            tail = query.phone.strip()
            if len(tail) == 4 and tail.isascii() and tail.isdigit():  # the last 4 digits, as callers read them out
                stmt = stmt.where(Ticket.caller_phone.like(f"%{tail}"))
            else:
                stmt = stmt.where(Ticket.caller_phone == phones.normalize(query.phone))
        if query.text:
            like = f"%{query.text}%"
            stmt = stmt.where(or_(Ticket.title.like(like), Ticket.content.like(like), Ticket.address.like(like),
                                  Ticket.number.like(like)))  # a whole number or part of one (20261203-0000)
        if query.created_from:
            stmt = stmt.where(Ticket.created_at >= query.created_from)
        if query.created_to:
            stmt = stmt.where(Ticket.created_at < query.created_to)
        if query.overdue:
            stmt = stmt.where(self._overdue_clause(self.clock()))
        if query.suspend_requested:
            stmt = stmt.where(Ticket.suspend_requested.is_not(None))
        def read(session: Session) -> dict[str, Any]:
            total = session.scalar(select(func.count()).select_from(stmt.subquery()))
            rows = session.scalars(stmt.order_by(Ticket.id.desc()).limit(query.limit).offset(query.offset)).all()
            return {"total": total, "items": [self._view(t, mask=True) for t in rows], "limit": query.limit,
                    "offset": query.offset}

        return await self.reads.run(read)

    def _overdue_clause(self, now: datetime) -> Any:
        return or_(
            and_(Ticket.status == "dispatched", Ticket.sign_due < now),
            and_(Ticket.status.in_(("dispatched", "signed")), Ticket.suspended_at.is_(None), Ticket.reply_due < now),
        )

    async def due_list(self, who: Principal, kind: str = "overdue", within_hours: float | None = None
                       ) -> list[dict[str, Any]]:
        """超期 and 临期 tickets, from indexed range conditions on (status, due)."""
        now = self.clock()
        stmt = self._visible(select(Ticket), who)
        if kind == "overdue":
            stmt = stmt.where(self._overdue_clause(now)).order_by(Ticket.reply_due)
        elif kind == "near_due":
            horizon = now + timedelta(hours=within_hours or self.settings.deadlines.near_due_hours)
            stmt = stmt.where(Ticket.status.in_(("dispatched", "signed")), Ticket.suspended_at.is_(None),
                              Ticket.reply_due >= now, Ticket.reply_due < horizon).order_by(Ticket.reply_due)
        elif kind == "caller_overdue":  # 告知来电人 owed and late, by the same conditions as caller_missed
            stmt = stmt.where(or_(
                and_(Ticket.status.in_(("dispatched", "signed")), Ticket.suspended_at.is_(None),
                     Ticket.caller_update_due < now),
                and_(Ticket.status == "replied", Ticket.caller_reply_due < now))).order_by(Ticket.id)
        else:
            raise InvalidField("kind", "kind 须为 overdue、near_due 或 caller_overdue")
        async with self.read_sessions() as session:
            rows = (await session.scalars(stmt.limit(1000))).all()
            items = [self._view(t, mask=True) for t in rows]
        if kind == "overdue":  # longest overdue first, by the deadline actually missed (signing comes first)
            items.sort(key=lambda t: t["missed"][0]["due"])
        return items

    async def related(self, number: str, who: Principal) -> dict[str, Any]:
        """On accept: earlier tickets of the same phone (repeat caller) and open tickets that look the same."""
        now = self.clock()
        since = now - timedelta(days=self.settings.tickets.repeat_caller_days)
        def read(session: Session) -> dict[str, Any]:
            ticket = self._load_in(session, number, who)
            same_phone: list[Ticket] = []
            if ticket.caller_phone:
                same_phone = list(session.scalars(self._visible(select(Ticket), who).where(
                    Ticket.caller_phone == ticket.caller_phone, Ticket.id != ticket.id,
                    Ticket.created_at >= since).order_by(Ticket.id.desc()).limit(50)).all())
            same_address: list[Ticket] = []
            if ticket.address_key:
                same_address = list(session.scalars(self._visible(select(Ticket), who).where(
                    Ticket.address_key == ticket.address_key, Ticket.id != ticket.id,
                    Ticket.status.in_(tuple(workflow.OPEN_STATUSES) + ("draft",))).limit(50)).all())
            candidates = session.scalars(self._visible(select(Ticket), who).where(
                Ticket.id != ticket.id, Ticket.status.in_(tuple(workflow.OPEN_STATUSES)),
                Ticket.created_at >= now - timedelta(days=30)).order_by(Ticket.id.desc()).limit(2000)).all()
            text = f"{ticket.title} {ticket.content}"
            similar = sorted(((text_similarity(text, f"{c.title} {c.content}"), c) for c in candidates),
                             key=lambda pair: -pair[0])
            similar_views = [{**self._view(c, mask=True), "score": round(score, 3)}
                             for score, c in similar[:10] if score >= 0.45]
            return {
                "repeat_caller": len(same_phone) > 0,
                "same_phone": [self._view(t, mask=True) for t in same_phone],
                "same_address": [self._view(t, mask=True) for t in same_address],
                "similar": similar_views,
            }

        return await self.reads.run(read)

    async def ledger(self, who: Principal, since: datetime | None = None) -> list[dict[str, Any]]:
        stmt = select(LedgerItem, Ticket.number, Ticket.title).join(Ticket, Ticket.id == LedgerItem.ticket_id)
        if who.role == "department":
            stmt = stmt.where(LedgerItem.department_id == who.department_id)
        stmt = visibility.in_district(stmt, who)
        if since:
            stmt = stmt.where(LedgerItem.at >= since)
        async with self.read_sessions() as session:
            rows = (await session.execute(stmt.order_by(LedgerItem.id.desc()).limit(1000))).all()
        return [{"ticket": number, "title": title, "department_id": item.department_id,
                 "satisfaction": item.satisfaction, "resolved": item.resolved, "at": item.at,
                 "decision": item.decision, "decision_label": workflow.LEDGER_DECISIONS.get(item.decision, item.decision),
                 "decided_at": item.decided_at, "decided_by": item.decided_by, "decision_note": item.decision_note,
                 "revisit_satisfaction": item.revisit_satisfaction, "revisit_resolved": item.revisit_resolved,
                 "revisit_at": item.revisit_at} for item, number, title in rows]

    @staticmethod
    def ledger_counts(items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """Each decision counted, and how the 回访 after re-handling went (from ``ledger`` items)."""
        items = list(items)
        by_decision = {d: 0 for d in workflow.LEDGER_DECISIONS}
        for item in items:
            by_decision[item["decision"]] = by_decision.get(item["decision"], 0) + 1
        revisits = [i for i in items if i["revisit_at"] is not None]
        return {"total": len(items), "by_decision": by_decision, "revisited": len(revisits),
                "revisit_satisfied": sum(1 for i in revisits if i["revisit_satisfaction"] != "dissatisfied"
                                         and i["revisit_resolved"] is not False)}

    async def supervision(self, who: Principal, start: datetime, end: datetime) -> dict[str, Any]:
        """督办件 whose response deadline falls in [start, end) by lead department (answered on time, answered late,
        overdue without an answer), the open overdue ones (the alert), and the 提级件 dispatched in the period."""
        now = self.clock()
        stmt = self._visible(select(Ticket), who).where(
            Ticket.supervised.is_(True), Ticket.supervision_due >= start, Ticket.supervision_due < end)
        esc = self._visible(select(Ticket), who).where(
            Ticket.escalation_level > 0, Ticket.dispatched_at >= start, Ticket.dispatched_at < end)
        async with self.read_sessions() as session:
            rows = (await session.scalars(stmt.order_by(Ticket.supervision_due).limit(5000))).all()
            escalated = [self._view(t, mask=True) for t in
                         (await session.scalars(esc.order_by(Ticket.dispatched_at).limit(5000))).all()]
            items = [self._view(t, mask=True) for t in rows]
        by_dept: dict[int | None, dict[str, Any]] = {}
        for t in items:
            row = by_dept.setdefault(t["lead_department_id"], {
                "department_id": t["lead_department_id"], "supervised": 0, "on_time": 0, "late": 0, "overdue": 0,
                "escalated": 0})
            row["supervised"] += 1
            row[t["supervision_state"]] = row.get(t["supervision_state"], 0) + 1
        for t in escalated:
            by_dept.setdefault(t["lead_department_id"], {
                "department_id": t["lead_department_id"], "supervised": 0, "on_time": 0, "late": 0, "overdue": 0,
                "escalated": 0})["escalated"] += 1
        return {"from": start, "to": end, "now": now, "items": items,
                "overdue": [t for t in items if t["supervision_state"] == "overdue"], "escalated": escalated,
                "by_department": sorted(by_dept.values(), key=lambda r: (-r["overdue"], -r["supervised"]))}

    async def supervision_overdue(self, who: Principal) -> list[dict[str, Any]]:
        """Open 督办件 past their response deadline without a response: the supervisor's alert."""
        now = self.clock()
        stmt = self._visible(select(Ticket), who).where(
            Ticket.supervised.is_(True), Ticket.supervision_due < now, Ticket.supervision_answered_at.is_(None),
            Ticket.status.in_(tuple(workflow.OPEN_STATUSES)))
        async with self.read_sessions() as session:
            rows = (await session.scalars(stmt.order_by(Ticket.supervision_due).limit(1000))).all()
            return [self._view(t, mask=True) for t in rows]

    async def fallback_cases(self, who: Principal, start: datetime, end: datetime) -> dict[str, Any]:
        """兜底件: replies classed 无法办理 in [start, end), by lead department (the weekly 专报)."""
        stmt = self._visible(select(Ticket), who).where(
            Ticket.reply_outcome == "fallback", Ticket.replied_at >= start, Ticket.replied_at < end)
        async with self.read_sessions() as session:
            rows = (await session.scalars(stmt.order_by(Ticket.replied_at).limit(5000))).all()
            items = [self._view(t, mask=True) for t in rows]
        by_department: dict[int | None, int] = {}
        for t in items:
            by_department[t["lead_department_id"]] = by_department.get(t["lead_department_id"], 0) + 1
        return {"from": start, "to": end, "total": len(items), "items": items,
                "by_department": [{"department_id": d, "count": n} for d, n in
                                  sorted(by_department.items(), key=lambda kv: (-kv[1], kv[0] or 0))]}

    # ------------------------------------------------------------ view
    def _view(self, t: Any, mask: bool) -> dict[str, Any]:
        phone = t.caller_phone or ""
        return {
            "number": t.number, "status": t.status, "status_label": workflow.STATUS_LABELS.get(t.status, t.status),
            "channel": t.channel, "caller_name": ("*" + t.caller_name[1:] if mask and t.caller_name else t.caller_name),
            "caller_phone": phones.mask(phone) if mask and phone else phone, "anonymous": t.anonymous,
            "survey_opt_out": t.survey_opt_out, "request_type": t.request_type, "urgency": t.urgency,
            "title": t.title, "content": t.content, "address": t.address, "district": t.district,
            "category": t.category, "call_id": t.call_id, "recording_path": t.recording_path,
            "transcript_id": t.transcript_id, "draft_fields": t.draft_fields,
            "created_at": t.created_at, "updated_at": t.updated_at, "accepted_by": t.accepted_by,
            "lead_department_id": t.lead_department_id, "co_handler_ids": list(t.co_handler_ids or []),
            "first_dispatched_at": t.first_dispatched_at, "dispatched_at": t.dispatched_at,
            "signed_at": t.signed_at, "replied_at": t.replied_at, "sign_due": t.sign_due, "reply_due": t.reply_due,
            "return_until": t.return_until, "progress_due": t.progress_due, "return_reason": t.return_reason,
            "extension_pending_days": t.extension_pending_days, "extension_days_granted": t.extension_days_granted,
            "suspended_at": t.suspended_at, "supervised": t.supervised, "supervision_due": t.supervision_due,
            "escalation_level": t.escalation_level, "answer": t.answer, "satisfaction": t.satisfaction,
            "resolved": t.resolved, "survey_unreachable": t.survey_unreachable, "ledger_pending": t.ledger_pending,
            "reopen_count": t.reopen_count, "duplicate_of": t.duplicate_of, "archived_at": t.archived_at,
            "reply_outcome": t.reply_outcome,
            "supervision_note": t.supervision_note, "supervision_answered_at": t.supervision_answered_at,
            "supervision_state": _supervision_state(t, self.clock()), "suspend_requested": t.suspend_requested,
            "follow_up_count": t.follow_up_count, "caller_update_due": t.caller_update_due,
            "caller_reply_due": t.caller_reply_due, **self._caller_overdue(t),
            "reply_outcome_label": workflow.REPLY_OUTCOMES.get(t.reply_outcome or "", ""),
            **self._overdue(t),
        }

    def _caller_overdue(self, t: Any) -> dict[str, Any]:
        """``caller_missed``: citizen-facing deadlines missed (告知来电人进度 / 结果), apart from ``missed``."""
        missed = workflow.missed_caller_deadlines(t.status, t.caller_update_due, t.caller_reply_due, t.suspended_at,
                                                  self.clock())
        return {"caller_missed": [{"deadline": kind, "label": workflow.DEADLINE_LABELS[kind], "due": due}
                                  for kind, due in missed]}

    def _overdue(self, t: Any) -> dict[str, Any]:
        """``overdue`` and ``missed``: which deadlines were missed (sign, reply), first missed first."""
        missed = workflow.missed_deadlines(t.status, t.sign_due, t.reply_due, t.suspended_at, self.clock())
        return {"overdue": bool(missed), "missed": [
            {"deadline": kind, "label": workflow.DEADLINE_LABELS[kind], "due": due} for kind, due in missed]}


# Roles that see callers' numbers masked on a ticket (138****8000) and must ask for the whole number (显示号码,
# recorded in the access log). Agents and supervisors keep seeing it: they call citizens back.
PHONE_MASKED_ROLES = ("department",)


def shown_to(view: dict[str, Any], who: Principal) -> dict[str, Any]:
    """A ticket view as ``who`` sees it: for department users the caller's number and those of merged callers
    masked, with ``phone_masked`` true, and no ``draft_fields`` (words of the call recording, numbers said aloud
    among them: the transcript is not theirs to read); everyone else gets the view unchanged."""
    if who.role not in PHONE_MASKED_ROLES:
        return view
    out = {**view, "caller_phone": phones.mask(view["caller_phone"]) if view.get("caller_phone") else "",
           "phone_masked": True, "draft_fields": None}
    if "callers" in out:
        out["callers"] = [{**c, "caller_phone": phones.mask(c["caller_phone"]) if c.get("caller_phone") else ""}
                          for c in out["callers"]]
    return out


def _supervision_state(t: Any, now: datetime) -> str | None:
    """督办: ``pending`` (due later), ``on_time`` / ``late`` (answered), ``overdue`` (due passed, no answer)."""
    if not t.supervised or t.supervision_due is None:
        return None
    if t.supervision_answered_at is not None:
        return "on_time" if t.supervision_answered_at <= t.supervision_due else "late"
    if t.status not in workflow.OPEN_STATUSES:
        return "on_time" if (t.replied_at or now) <= t.supervision_due else "late"
    return "overdue" if t.supervision_due < now else "pending"


def _entry_row(entry: workflow.HistoryEntry) -> dict[str, Any]:
    """A history entry as the ``ticket_history`` columns (without ``ticket_id``)."""
    return {"action": entry.action, "at": entry.at, "actor_id": entry.actor_id, "actor_role": entry.actor_role,
            "actor_name": entry.actor_name, "from_status": entry.from_status, "to_status": entry.to_status,
            "note": entry.note, "data": _jsonable(entry.data)}


def _jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in data.items()}
