"""The async shell of routing, duplicates and hot issues: suggestions, the duplicate index, the daily
hot-issue report, and the training set that ``hotline train-router`` reads (routes are in ``http.py``).

Tickets are always loaded through ``TicketStore.get(number, principal)`` first (routing reads the few columns
it needs through the same rule, ``tickets/visibility.py``), so a department user or another district's
sub-center gets 404 for a ticket that is not theirs, exactly as on the ticket endpoints.

Duplicate index: in memory in every server process, rebuilt from SQL at start, and before every lookup
brought up to date with ``WHERE id > max_id`` (an index range on the primary key). A ticket created by
another process is therefore seen by the next lookup here; nothing needs a message bus, and SQL stays the
only source of truth (Redis would add a second copy to keep consistent and 160 MB of network reads per
start). Candidates are re-read from SQL before scoring, so status changes and merges are never stale.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Select, and_, bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from tickets import visibility, workflow
from tickets.errors import NotFound
from tickets.models import Assignment, Department, Ticket
from tickets.routing import duplicates, hot_issues, textproc
from tickets.routing import rules as routing
from tickets.routing.model import RouterModel

log = logging.getLogger("hotline.routing")

TRAINED_STATUSES = ("replied", "surveyed", "archived")
MERGE_THRESHOLD = 0.6
HOT_ROLES = ("supervisor", "admin")


def _text(t: Ticket) -> str:
    return textproc.ticket_text(t.title, t.content)


_VIEW: dict[tuple[bool, bool], Select[Any]] = {}
_DEPARTMENT_IDS = select(Department.__table__.c.code, Department.__table__.c.id)


def _view_stmt(who: Any) -> Select[Any]:
    """What routing reads of a ticket, one row per department that returned it (one row, returned_by NULL,
    when none did), as ``who`` may see it (``visibility.restrict_bound``); built once per shape."""
    key = visibility.shape(who)
    stmt = _VIEW.get(key)
    if stmt is None:
        t, a, d = Ticket.__table__.c, Assignment.__table__, Department.__table__
        returns = a.join(d, d.c.id == a.c.department_id)
        stmt = visibility.restrict_bound(
            select(t.id, t.title, t.content, t.address, t.request_type, t.district, t.category,
                   d.c.code.label("returned_by"))
            .select_from(Ticket.__table__.outerjoin(returns, and_(a.c.ticket_id == t.id, a.c.outcome == "returned")))
            .where(t.number == bindparam("b_number")), *key)
        _VIEW[key] = stmt
    return stmt


def _rank(model: RouterModel, ticket: routing.TicketInput) -> list[tuple[str, float, list[str]]]:
    """Tokenize and rank every label (in an executor thread: CPU work)."""
    text = textproc.join_tokens(textproc.tokens(textproc.ticket_text(ticket.title, ticket.content)))
    return model.rank(text, top=len(model.labels))


class RoutingService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], config: routing.RoutingConfig,
                 model_file: Path, data_dir: Path, clock: Callable[[], datetime], *,
                 hot_params: hot_issues.Params = hot_issues.Params(),
                 alert: Callable[[dict[str, Any]], Any] | None = None) -> None:
        self.sessions = sessions
        self.config = config
        self.model_file = model_file
        self.data_dir = data_dir
        self.clock = clock
        self.hot_params = hot_params
        self.alert = alert
        self.model: RouterModel | None = None
        self._model_mtime: float | None = None
        self.index = duplicates.MinHashIndex()
        self._index_lock = asyncio.Lock()
        self._hot_cache: dict[tuple[str, int], tuple[float, list[dict[str, Any]]]] = {}
        self._department_id: dict[str, int] = {}

    # ------------------------------------------------------------ start
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, textproc.warm_up)
        await self._reload_model()
        if self.model is not None:  # the first dispatcher after a start must not pay for first-call set-up
            model = self.model
            await loop.run_in_executor(None, _rank, model, routing.TicketInput("小区停水", "幸福小区停水三天了"))
        log.info("routing ready: model %s", "loaded" if self.model else "absent (rules and dispatchers only)")

    async def build_index(self) -> None:
        """Initial build from SQL; run as a background task so a big archive does not delay the start.
        Duplicate lookups made meanwhile wait for it (they take the same lock)."""
        t0 = time.monotonic()
        try:
            added = await self.catch_up()
        except Exception:  # lookups will retry the catch-up; the server must not die of it
            log.exception("building the duplicate index failed; it is retried on the next lookup")
            return
        log.info("duplicate index built: %d tickets in %.1fs", added, time.monotonic() - t0)

    async def _reload_model(self) -> None:
        """Load the model when the file is new or changed: ``train-router`` replaces it atomically."""
        try:
            mtime = self.model_file.stat().st_mtime
        except FileNotFoundError:
            return
        if mtime == self._model_mtime:
            return
        try:
            model = await asyncio.get_running_loop().run_in_executor(None, RouterModel.load, self.model_file)
        except Exception as exc:  # a broken file must not take routing down: rules still work
            log.error("cannot load routing model %s: %s", self.model_file, exc)
            self._model_mtime = mtime
            return
        self.model, self._model_mtime = model, mtime

    async def catch_up(self, batch: int = 5000) -> int:
        """Add tickets created since the last look (by this or any other process) to the index."""
        added = 0
        async with self._index_lock:
            while True:
                async with self.sessions() as session:
                    rows = (await session.execute(
                        select(Ticket.id, Ticket.title, Ticket.content).where(Ticket.id > self.index.max_id)
                        .order_by(Ticket.id).limit(batch))).all()
                if not rows:
                    return added
                chunk = [(r.id, textproc.ticket_text(r.title, r.content)) for r in rows]
                # Hashing is CPU work: off the event loop; the lock keeps readers out meanwhile.
                added += await asyncio.get_running_loop().run_in_executor(None, self.index.add_many, chunk)
                self.index.max_id = max(self.index.max_id, rows[-1].id)
                if len(rows) < batch:
                    return added

    # ------------------------------------------------------------ routing
    async def suggestions(self, store: Any, number: str, who: Any,
                          draft: Mapping[str, str] | None = None) -> dict[str, Any]:
        """``draft``: the agent's unsaved text (title, content, address, district, request_type, category) in
        place of the stored one, for suggestions that follow a call's draft as it grows; nothing is saved."""
        # One statement (built once per visibility shape, Core, not the ORM): the columns routing reads and
        # the departments that returned the ticket; the same visibility rule as the store (404 for a
        # ticket not theirs). Three ORM queries were a third of the request's CPU.
        async with self.sessions.kw["bind"].connect() as conn:
            rows = (await conn.execute(_view_stmt(who), {"b_number": number, **visibility.bound_values(who)})).all()
        if not rows:
            raise NotFound("ticket_not_found", f"工单 {number} 不存在")
        view = rows[0]
        returned = [r.returned_by for r in rows if r.returned_by is not None]
        now = {**view._asdict(), **(draft or {})}
        ticket = routing.TicketInput(now["title"], now["content"], now["address"], now["request_type"],
                                     now["district"], tuple(sorted(set(returned))), now["category"] or "")
        await self._reload_model()
        ranking = None
        if self.model is not None:
            model = self.model
            # jieba and the model together off the event loop: tokenizing alone was ~5 ms of loop time per
            # request, which every other request waited behind.
            ranking = await asyncio.get_running_loop().run_in_executor(None, _rank, model, ticket)
        decision = routing.suggest(ticket, self.config, ranking).as_dict()
        wanted = {c for s in decision["suggestions"] for c in [s["department"], *s.get("co_handlers", [])]}
        ids = await self._department_ids(wanted)
        for suggestion in decision["suggestions"]:  # the dispatch form needs ids, the rules speak codes
            suggestion["department_id"] = ids.get(suggestion["department"])
            suggestion["co_handler_ids"] = [ids[c] for c in suggestion.get("co_handlers", []) if c in ids]
        return {"number": number, **decision, "threshold": self.config.threshold,
                "model": (self.model.meta if self.model else None)}

    async def _department_ids(self, codes: set[str]) -> dict[str, int]:
        """Department ids by code, read again only when a code is not known yet (a department added since):
        a code never changes its id, and departments are not deleted."""
        if not codes <= self._department_id.keys():
            async with self.sessions.kw["bind"].connect() as conn:
                self._department_id = dict((await conn.execute(_DEPARTMENT_IDS)).all())
        return self._department_id

    def suggest_for_text(self, text: str) -> list[dict[str, Any]]:
        """Departments for what a caller said before any ticket exists (a recognised call's draft): the
        rules, the catalogue and the model as loaded, without reading the database (nothing can have been
        returned yet). CPU work (jieba, the model): call it from a thread, as asr's draft delivery does."""
        ticket = routing.TicketInput(content=text)
        ranking = _rank(self.model, ticket) if self.model is not None else None
        return [s.as_dict() for s in routing.suggest(ticket, self.config, ranking).suggestions]

    def catalogue(self) -> dict[str, Any]:
        """The 派单目录 as loaded at start: units of the city by level, the category tree and the items."""
        book = self.config.catalogue
        if book is None:
            return {"units": [], "categories": [], "items": [], "districts": []}
        return {**book.as_dict(), "districts": list(book.districts)}

    # ------------------------------------------------------------ duplicates
    async def duplicates(self, store: Any, number: str, who: Any, limit: int = 10) -> dict[str, Any]:
        await store.get(number, who)
        await self.catch_up()
        async with self.sessions() as session:
            me = await session.scalar(select(Ticket).where(Ticket.number == number))
            assert me is not None
            text = _text(me)
            async with self._index_lock:
                ids = {i for i, _ in self.index.candidates(text, limit=50, exclude=me.id)}
            open_statuses = tuple(workflow.OPEN_STATUSES) + ("draft",)
            same = []
            if me.caller_phone:
                same.append(Ticket.caller_phone == me.caller_phone)
            if me.address_key:
                same.append(Ticket.address_key == me.address_key)
            if same:
                ids |= set((await session.scalars(select(Ticket.id).where(
                    or_(*same), Ticket.id != me.id, Ticket.status.in_(open_statuses))
                    .order_by(Ticket.id.desc()).limit(50))).all())
            stmt = visibility.restrict(select(Ticket).where(Ticket.id.in_(ids)), who) if ids else None
            others = list((await session.scalars(stmt)).all()) if stmt is not None else []
        new = duplicates.TicketFacts(me.id, text, me.caller_phone, me.address_key, me.category, me.created_at)
        facts = [duplicates.TicketFacts(o.id, _text(o), o.caller_phone, o.address_key, o.category, o.created_at)
                 for o in others]
        by_id = {o.id: o for o in others}
        items = []
        for m in duplicates.rank(new, facts, min_score=0.3, top=limit):
            o = by_id[m.id]
            items.append({"number": o.number, "title": o.title, "status": o.status,
                          "status_label": workflow.STATUS_LABELS.get(o.status, o.status), "created_at": o.created_at,
                          "score": m.score, "text_similarity": m.text_similarity, "same_phone": m.same_phone,
                          "same_address": m.same_address, "reasons": list(m.reasons),
                          "mergeable": o.status in workflow.OPEN_STATUSES and m.score >= MERGE_THRESHOLD
                          and o.duplicate_of is None,
                          # this ticket may be merged into that one (never into a case less far along)
                          "merge_into_allowed": workflow.merge_refusal(_state(me), _state(o)) is None})
        return {"number": number, "duplicates": items, "merge_threshold": MERGE_THRESHOLD}

    # ------------------------------------------------------------ hot issues
    async def hot_issues(self, end: datetime, days: int) -> dict[str, Any]:
        start, prev_start = end - timedelta(days=days), end - timedelta(days=2 * days)
        key = (end.isoformat(timespec="minutes"), days)
        cached = self._hot_cache.get(key)
        if cached and time.monotonic() - cached[0] < 600:
            clusters = cached[1]
        else:
            async with self.sessions() as session:
                rows = (await session.execute(
                    select(Ticket, Department.code).outerjoin(Department, Department.id == Ticket.lead_department_id)
                    .where(Ticket.created_at >= prev_start, Ticket.created_at <= end,
                           Ticket.status.notin_(("draft", "invalid", "merged")))
                    .order_by(Ticket.id))).all()
            cur: list[hot_issues.Doc] = []
            prev: list[hot_issues.Doc] = []
            for t, code in rows:
                doc = hot_issues.Doc(t.id, t.title, t.content, t.created_at, t.district, t.address, code or "",
                                     t.number, t.caller_phone or "")
                (cur if t.created_at >= start else prev).append(doc)
            params = self.hot_params
            found = await asyncio.get_running_loop().run_in_executor(
                None, lambda: hot_issues.cluster(cur, prev, params))
            clusters = [c.as_dict() for c in found]
            self._hot_cache = {key: (time.monotonic(), clusters)}
        return {"start": start, "end": end, "days": days, "clusters": clusters,
                "alerts": [c["name"] for c in clusters if c["alert"]]}

    async def daily_hot_issues(self) -> dict[str, Any] | None:
        """The daily run: one report file per day; the first process to claim the day writes it."""
        end = self.clock()
        out_dir = self.data_dir / "hot_issues"
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{end:%Y%m%d}.json"
        try:  # O_EXCL: two server processes on one machine never both run the daily job
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return None
        report = await self.hot_issues(end, 1)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(report, fh, ensure_ascii=False, default=str)
        for cluster in report["clusters"]:
            if cluster["alert"]:
                log.warning("hot issue alert: %s (size %s, previous %s)", cluster["name"], cluster["size"],
                            cluster["previous"])
                if self.alert:
                    result = self.alert(cluster)
                    if asyncio.iscoroutine(result):
                        await result
        return report


# ---------------------------------------------------------------- training set (train-router)
async def load_training_set(database_url: str) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """(texts, department codes, negatives) from the archive.

    Label = the lead department whose assignment ended in a reply: a department that returned the ticket
    is by construction not it. Each return is a negative example for the department that made it.
    """
    from sqlalchemy.orm import aliased

    later = aliased(Assignment)
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            replied = (await conn.execute(
                select(Ticket.title, Ticket.content, Department.code)
                .join(Assignment, Assignment.ticket_id == Ticket.id)
                .join(Department, Department.id == Assignment.department_id)
                .where(Ticket.status.in_(TRAINED_STATUSES), Assignment.role == "lead",
                       Assignment.outcome == "replied",
                       Assignment.id == select(func.max(later.id)).where(
                           later.ticket_id == Ticket.id, later.role == "lead",
                           later.outcome == "replied").correlate(Ticket).scalar_subquery()))).all()
            returns = (await conn.execute(
                select(Ticket.title, Ticket.content, Department.code)
                .join(Assignment, Assignment.ticket_id == Ticket.id)
                .join(Department, Department.id == Assignment.department_id)
                .where(and_(Assignment.outcome == "returned")))).all()
    finally:
        await engine.dispose()

    def toks(title: str, content: str) -> str:
        return textproc.join_tokens(textproc.tokens(textproc.ticket_text(title, content)))

    texts = [toks(r.title, r.content) for r in replied]
    labels = [r.code for r in replied]
    negatives = [(toks(r.title, r.content), r.code) for r in returns]
    return texts, labels, negatives


def model_path(settings: Any) -> Path:
    """Where ``train-router`` writes the model and every server process reads it."""
    return Path(settings.data_path) / "routing" / "router_model.joblib"


def hot_params(path: Path) -> hot_issues.Params:
    """Optional ``[hot_issues]`` table of routing.toml (alert_size, alert_growth, distance, min_size)."""
    import tomllib

    if not path.exists():
        return hot_issues.Params()
    with path.open("rb") as fh:
        data = tomllib.load(fh).get("hot_issues", {})
    fields = {k: v for k, v in data.items() if k in hot_issues.Params.__dataclass_fields__}
    return hot_issues.Params(**fields)


# ------------------------------------------------------------ duplicate groups (supervisor page)
GROUP_MIN_TEXT = 0.3  # the same matter: the text must match, a shared phone or address alone never groups


async def duplicate_groups(sessions: async_sessionmaker[AsyncSession], now: datetime, days: int = 30,
                           limit: int = 2000, district: str | None = None) -> list[dict[str, Any]]:
    """Open tickets of the last ``days`` that are the same matter, grouped, each group with its master.

    Two tickets pair up when their text is similar *and* they share the caller's phone or the address,
    scoring at least ``MERGE_THRESHOLD`` as ``/duplicates`` does. The suggested master is the case furthest
    along (signed > dispatched > accepted > draft; the oldest among equals): a draft never becomes the
    master of a case a department already holds.
    """
    open_states = tuple(workflow.OPEN_STATUSES) + ("draft",)
    stmt = select(Ticket).where(Ticket.status.in_(open_states), Ticket.created_at >= now - timedelta(days=days),
                                Ticket.duplicate_of.is_(None))
    if district:  # a district sub-center's supervisor: its own district only
        stmt = stmt.where(Ticket.district == district)
    async with sessions() as session:
        rows = list((await session.scalars(stmt.order_by(Ticket.id.desc()).limit(limit))).all())
    facts = {t.id: duplicates.TicketFacts(t.id, _text(t), t.caller_phone, t.address_key) for t in rows}
    blocks: dict[tuple[str, str], list[int]] = {}
    for t in rows:  # only tickets sharing a phone or an address are compared
        if t.caller_phone:
            blocks.setdefault(("phone", t.caller_phone), []).append(t.id)
        if t.address_key:
            blocks.setdefault(("address", t.address_key), []).append(t.id)
    parent = {t.id: t.id for t in rows}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    reasons: dict[int, set[str]] = {}
    seen: set[tuple[int, int]] = set()
    for block in blocks.values():
        ids = block[:60]  # the newest 60 of one phone or address: bounded work on a busy address
        for n, a in enumerate(ids):
            for b in ids[n + 1:]:
                if (a, b) in seen:
                    continue
                seen.add((a, b))
                m = duplicates.score(facts[a], facts[b])
                if m.text_similarity >= GROUP_MIN_TEXT and m.score >= MERGE_THRESHOLD:
                    parent[find(a)] = find(b)
                    reasons.setdefault(a, set()).update(m.reasons)
                    reasons.setdefault(b, set()).update(m.reasons)
    members: dict[int, list[Ticket]] = {}
    for t in rows:
        if t.id in reasons:
            members.setdefault(find(t.id), []).append(t)
    groups = []
    for tickets in members.values():
        tickets.sort(key=lambda t: (-workflow.MERGE_STAGE.get(t.status, 0), t.created_at, t.id))
        master = tickets[0]
        groups.append({"master": master.number, "address": master.address, "tickets": [{
            "number": t.number, "title": t.title, "status": t.status, "address": t.address,
            "status_label": workflow.STATUS_LABELS.get(t.status, t.status), "created_at": t.created_at,
            "reasons": sorted(reasons.get(t.id, ())),
            # masters this ticket may be merged into: never one less far along (a draft for a dispatched case)
            "masters": [o.number for o in tickets if o.id != t.id and workflow.merge_refusal(
                _state(t), _state(o)) is None]} for t in tickets]})
    groups.sort(key=lambda g: -len(g["tickets"]))
    return groups[:30]


def _state(t: Ticket) -> workflow.TicketState:
    return workflow.TicketState(status=t.status)
