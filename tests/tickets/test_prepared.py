"""tickets/prepared.py runs the write batch's statements on the driver's cursor: what it writes must read back exactly as
what SQLAlchemy's own execution writes (aware datetimes, JSON, booleans, Chinese text, column defaults), and a
driver error must reach the writer as SQLAlchemy's error, so that a refused job stays one job's failure.

Each database through the connection the writer uses: SQLite's synchronous engine, PostgreSQL's asyncpg engine
through ``run_sync``.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Connection, bindparam, create_engine, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from tickets import writer
from tickets.models import Ticket, TicketHistory
from tickets.prepared import (Prepared, PreparedInsert, defer_writes, insert_row, run_sql, statements_written,
                              stop_deferring, track_writes)

T = Ticket.__table__
H = TicketHistory.__table__
SHANGHAI = ZoneInfo("Asia/Shanghai")


async def run_in(database_url: str, fn: Callable[[Connection], Any]) -> Any:
    """``fn`` inside one transaction on the kind of connection the ticket writer uses."""
    if database_url.startswith("sqlite"):
        engine = create_engine(database_url.replace("+aiosqlite", ""))
        try:
            with engine.begin() as conn:
                return fn(conn)
        finally:
            engine.dispose()
    async_engine = create_async_engine(database_url)
    try:
        async with async_engine.begin() as conn:
            return await conn.run_sync(fn)
    finally:
        await async_engine.dispose()


def ticket_row(number: str) -> dict[str, Any]:
    """A ticket's columns as the store gives them: no id, several columns left to their defaults."""
    at = datetime(2026, 12, 3, 9, 30, 15, 123456, tzinfo=SHANGHAI)
    return {"number": number, "channel": "phone", "request_type": "complaint", "urgency": "urgent",
            "caller_name": "王女士", "caller_phone": "13800138000", "anonymous": True,
            "title": "小区门口积水", "content": "朝阳区建国路88号门口下雨积水，老人出行困难😟", "address": "建国路88号",
            "co_handler_ids": [3, 7], "draft_fields": {"地址": "建国路88号", "urgency": "urgent"},
            "created_at": at, "updated_at": at, "status": "dispatched", "version": 1,
            "sign_due": at + timedelta(hours=2), "reply_due": (at + timedelta(days=3)).astimezone(UTC)}


async def test_a_ticket_written_on_the_driver_reads_back_as_sqlalchemys_own(database_url: str) -> None:
    ours = Prepared(insert(T).returning(T.c.id))
    save = Prepared(update(T).where(T.c.id == bindparam("b_id"), T.c.version == bindparam("b_version")))
    load = Prepared(select(T).where(T.c.number == bindparam("b_number")))
    later = datetime(2026, 12, 4, 8, 0, tzinfo=SHANGHAI)

    def write(conn: Connection) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None, int]:
        conn.execute(insert(T), ticket_row("20261203-000001"))  # SQLAlchemy's way
        ticket_id = ours.scalar(conn, ticket_row("20261203-000002"))
        # an UPDATE of a few columns, guarded by the version, as the store's save
        changed = save.execute(conn, {"b_id": ticket_id, "b_version": 1, "version": 2, "status": "signed",
                                      "signed_at": later, "co_handler_ids": [7]}).rowcount
        conn.execute(update(T).where(T.c.number == "20261203-000001").values(
            version=2, status="signed", signed_at=later, co_handler_ids=[7]))
        theirs = dict(conn.execute(select(T).where(T.c.number == "20261203-000001")).mappings().one())
        mine = dict(conn.execute(select(T).where(T.c.id == ticket_id)).mappings().one())
        return theirs, mine, load.first(conn, {"b_number": "20261203-000002"}), changed

    theirs, mine, loaded, changed = await run_in(database_url, write)
    assert changed == 1
    for row in (theirs, mine, loaded):
        assert row is not None
        row.pop("id"), row.pop("number")
    assert mine == theirs  # every column, defaults included, as SQLAlchemy wrote and reads them
    assert loaded == theirs  # and Prepared's own reading gives the same values
    assert mine["signed_at"] == later and mine["signed_at"].tzinfo is not None
    assert mine["content"].endswith("老人出行困难😟") and mine["anonymous"] is True
    assert mine["co_handler_ids"] == [7] and mine["draft_fields"] == {"地址": "建国路88号", "urgency": "urgent"}
    assert mine["extension_days_granted"] == 0 and mine["survey_unreachable"] is False  # defaults filled


async def test_an_insert_gives_back_the_id_of_its_own_row(database_url: str) -> None:
    """``PreparedInsert``: RETURNING on PostgreSQL, the cursor's lastrowid on SQLite; each id is its own row's,
    with another table's rows written in between."""
    ins = PreparedInsert(T)
    history = Prepared(insert(H))

    def write(conn: Connection) -> tuple[list[int], dict[int, str]]:
        ids = []
        for i in range(3):
            ids.append(ins.id(conn, ticket_row(f"20261203-00010{i}")))
            history.execute(conn, {"ticket_id": ids[-1], "action": "create", "at": datetime.now(UTC),
                                   "actor_id": None, "actor_role": "agent", "actor_name": "王", "from_status": "",
                                   "to_status": "draft", "note": "", "data": {}})
        return ids, {r.id: r.number for r in conn.execute(select(T.c.id, T.c.number))}

    ids, numbers = await run_in(database_url, write)
    assert len(set(ids)) == 3
    assert [numbers[i] for i in ids] == ["20261203-000100", "20261203-000101", "20261203-000102"]


async def test_a_stale_version_updates_nothing(database_url: str) -> None:
    save = Prepared(update(T).where(T.c.id == bindparam("b_id"), T.c.version == bindparam("b_version")))

    def write(conn: Connection) -> tuple[int, str]:
        ticket_id = Prepared(insert(T).returning(T.c.id)).scalar(conn, ticket_row("20261203-000009"))
        stale = save.execute(conn, {"b_id": ticket_id, "b_version": 5, "version": 6, "status": "signed"}).rowcount
        return stale, conn.execute(select(T.c.status).where(T.c.id == ticket_id)).scalar_one()

    assert await run_in(database_url, write) == (0, "dispatched")


async def test_a_driver_error_is_sqlalchemys_error_and_fails_only_its_savepoint(database_url: str) -> None:
    add = Prepared(insert(T).returning(T.c.id))
    history = Prepared(insert(H))

    def write(conn: Connection) -> tuple[bool, list[str]]:
        add.scalar(conn, ticket_row("20261203-000003"))
        run_sql(conn, "SAVEPOINT job")
        with pytest.raises(IntegrityError) as refused:  # SQLAlchemy's class, as Connection.execute raises
            add.scalar(conn, ticket_row("20261203-000003"))  # the same number again: unique constraint
        run_sql(conn, "ROLLBACK TO SAVEPOINT job")
        run_sql(conn, "RELEASE SAVEPOINT job")
        ticket_id = conn.execute(select(T.c.id).where(T.c.number == "20261203-000003")).scalar_one()
        history.execute(conn, {"ticket_id": ticket_id, "action": "create", "at": datetime.now(UTC),
                               "actor_role": "agent", "actor_name": "话务员", "from_status": "",
                               "to_status": "draft"})  # note and data left to their defaults
        notes = [r.note + str(r.data) for r in conn.execute(select(H).where(H.c.ticket_id == ticket_id))]
        return writer._lost(refused.value), notes

    lost, notes = await run_in(database_url, write)
    assert lost is False  # the writer answers that job 409/500 and commits the rest of the batch
    assert notes == ["{}"]  # the transaction went on after the failed statement


def test_an_expanding_in_list_is_refused_when_prepared() -> None:
    engine = create_engine("sqlite://")
    try:
        in_list = Prepared(select(T.c.id).where(T.c.id.in_(bindparam("ids", expanding=True))))
        with engine.connect() as conn, pytest.raises(ValueError, match="expanding"):
            in_list.scalar(conn, {"ids": [1]})
    finally:
        engine.dispose()


def test_a_row_with_a_column_the_table_lacks_is_refused_not_dropped() -> None:
    engine = create_engine("sqlite://")
    try:
        with engine.begin() as conn, pytest.raises(ValueError, match="notee"):
            insert_row(conn, H, {"ticket_id": 1, "action": "create", "at": datetime.now(UTC), "actor_role": "agent",
                                 "actor_name": "话务员", "from_status": "", "to_status": "draft", "notee": "错字"})
    finally:
        engine.dispose()


def test_an_error_met_while_fetching_rows_is_sqlalchemys_error() -> None:
    """SQLite computes rows as they are fetched: the second row's overflow fails in the fetch, not the execute,
    and must still reach the writer as a database error (OperationalError: the batch cannot go on)."""
    rows = Prepared(text("SELECT abs(x) FROM (SELECT 1 AS x UNION ALL SELECT -9223372036854775807 - 1)"))
    engine = create_engine("sqlite://")
    try:
        with engine.connect() as conn, pytest.raises(OperationalError, match="overflow") as failed:
            rows.all(conn, {})
        assert writer._lost(failed.value)
    finally:
        engine.dispose()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_prepared_statements_survive_a_schema_change_on_a_pooled_connection(database_url: str) -> None:
    """asyncpg keeps each connection's prepared statements; a migration that changes a column's type makes them
    stale. The first use after it may fail, as through SQLAlchemy's own path, but the next must work."""
    load = Prepared(select(T).where(T.c.number == bindparam("b_number")))
    engine = create_async_engine(database_url, pool_size=1, max_overflow=0)
    other = create_async_engine(database_url, poolclass=NullPool)

    def read(conn: Connection) -> str | None:
        row = load.first(conn, {"b_number": "20261203-000001"})
        return None if row is None else row["title"]

    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: Prepared(insert(T)).execute(c, ticket_row("20261203-000001")))
        async with engine.connect() as conn:
            assert await conn.run_sync(read) == "小区门口积水"
            await conn.rollback()
        async with other.begin() as conn:  # another connection migrates: the cached plan's result type changes
            await conn.execute(text("ALTER TABLE tickets ALTER COLUMN title TYPE varchar(500)"))
        outcomes = []
        for _ in range(2):
            async with engine.connect() as conn:
                try:
                    outcomes.append(await conn.run_sync(read))
                except DBAPIError as exc:
                    outcomes.append(type(exc.orig).__name__)
                await conn.rollback()
        assert outcomes[-1] == "小区门口积水", outcomes
    finally:
        await engine.dispose()
        await other.dispose()


def test_a_driver_with_named_parameters_takes_sqlalchemys_own_path() -> None:
    """psycopg and the like take named parameters, for which Prepared has no fast path: same results through
    SQLAlchemy's execution."""
    engine = create_engine("sqlite://", paramstyle="named")
    T.metadata.create_all(engine, tables=[T, H])
    try:
        with engine.begin() as conn:
            ticket_id = Prepared(insert(T).returning(T.c.id)).scalar(conn, ticket_row("20261203-000004"))
            Prepared(insert(H)).executemany(conn, [
                {"ticket_id": ticket_id, "action": a, "at": datetime.now(UTC), "actor_role": "agent",
                 "actor_name": "话务员", "from_status": "", "to_status": "draft"} for a in ("create", "accept")])
            changed = Prepared(update(T).where(T.c.id == bindparam("b_id"))).execute(
                conn, {"b_id": ticket_id, "status": "signed"}).rowcount
            row = Prepared(select(T).where(T.c.id == bindparam("b_id"))).first(conn, {"b_id": ticket_id})
            actions = Prepared(select(H.c.action).where(H.c.ticket_id == bindparam("b_id")).order_by(H.c.id)).all(
                conn, {"b_id": ticket_id})
        assert changed == 1 and row is not None and row["status"] == "signed" and row["anonymous"] is True
        assert row["created_at"].tzinfo is not None and [a["action"] for a in actions] == ["create", "accept"]
    finally:
        engine.dispose()


async def test_deferred_writes_keep_each_tickets_order_and_are_read_by_the_statements_after_them(
        database_url: str) -> None:
    """A write batch defers history and assignment rows and sends them together: the writes of one ticket in the
    order made, those of different tickets one statement per kind; a statement naming their table, or any
    statement through ``Connection.execute``, sends them first, so the batch reads what it wrote."""
    new_ticket = Prepared(insert(T).returning(T.c.id))
    history = Prepared(insert(H))
    renote = Prepared(update(H).where(H.c.ticket_id == bindparam("b_ticket_id"), H.c.note == "初稿"))
    notes = Prepared(select(H.c.ticket_id, H.c.note).order_by(H.c.id))
    at = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)

    def row(ticket_id: int, note: str) -> dict[str, Any]:
        return {"ticket_id": ticket_id, "action": "note", "at": at, "actor_role": "agent", "actor_name": "测试",
                "from_status": "draft", "to_status": "draft", "note": note, "data": {"备注": note}}

    def batch(conn: Connection) -> Any:
        track_writes(conn.engine)
        one, two, three = (new_ticket.scalar(conn, ticket_row(f"20261203-DEF{i}")) for i in range(3))
        pending = defer_writes(conn)
        try:
            written = statements_written(conn)
            history.defer(conn, row(one, "初稿"), ("ticket", one))
            history.defer(conn, row(two, "初稿"), ("ticket", two))
            renote.defer(conn, {"b_ticket_id": one, "note": "改过"}, ("ticket", one))  # after its insert, whatever the grouping
            history.defer(conn, row(two, "第二条"), ("ticket", two))
            history.defer(conn, row(one, "初稿"), ("ticket", one))  # a new draft, after the update: it must stay a draft
            history.defer(conn, row(three, "初稿"), ("ticket", three))
            assert statements_written(conn) == written and len(pending) == 6  # nothing sent yet
            seen_prepared = notes.all(conn, {})  # names ticket_history: the six are sent first
            sent = statements_written(conn) - written
            history.defer(conn, row(three, "第二条"), ("ticket", three))
            seen_execute = conn.execute(select(func.count()).select_from(H)).scalar()  # ad hoc: sent first too
            pending.flush(conn)  # nothing left
            return [one, two, three], seen_prepared, sent, seen_execute, len(pending)
        finally:
            stop_deferring(pending)

    (one, two, three), seen, sent, seen_execute, left = await run_in(database_url, batch)
    assert [(r["ticket_id"], r["note"]) for r in seen if r["ticket_id"] in (one, two, three)] == [
        (one, "改过"), (two, "初稿"), (two, "第二条"), (three, "初稿"), (one, "初稿")]
    # the first inserts of each ticket in one statement, the update, then ticket one's insert that followed it
    assert sent == 3
    assert seen_execute == 6 and left == 0


async def test_a_connection_not_in_a_batch_writes_at_once(database_url: str) -> None:
    """``defer`` outside a write batch is an ordinary write: nothing is left waiting for a flush nobody makes."""
    new_ticket = Prepared(insert(T).returning(T.c.id))
    history = Prepared(insert(H))

    def write(conn: Connection) -> int:
        ticket_id = new_ticket.scalar(conn, ticket_row("20261203-NOW1"))
        history.defer(conn, {"ticket_id": ticket_id, "action": "note", "at": datetime.now(UTC), "actor_role": "agent",
                             "actor_name": "测试", "from_status": "draft", "to_status": "draft", "note": "即写"},
                      ("ticket", ticket_id))
        return int(ticket_id)

    ticket_id = await run_in(database_url, write)
    count = await run_in(database_url, lambda conn: conn.execute(
        select(func.count()).select_from(H).where(H.c.ticket_id == ticket_id)).scalar())
    assert count == 1


async def test_a_read_by_key_sends_the_pending_writes_of_its_key_only(database_url: str) -> None:
    """A ticket's deferred UPDATE is sent before the load of that ticket, and not before the load of another:
    the load by number reads one key's rows (``first(..., key=...)``)."""
    new_ticket = Prepared(insert(T).returning(T.c.id))
    retitle = Prepared(update(T).where(T.c.id == bindparam("b_id")))
    load = Prepared(select(T.c.title).where(T.c.number == bindparam("b_number")).with_for_update())

    def batch(conn: Connection) -> Any:
        for i in range(2):
            new_ticket.scalar(conn, ticket_row(f"20261203-KEY{i}"))
        ids = dict(conn.execute(select(T.c.number, T.c.id).where(T.c.number.like("20261203-KEY%"))).all())
        pending = defer_writes(conn)
        try:
            retitle.defer(conn, {"b_id": ids["20261203-KEY0"], "title": "已改标题"}, ("number", "20261203-KEY0"))
            written = statements_written(conn)
            other = load.first(conn, {"b_number": "20261203-KEY1"}, key=("number", "20261203-KEY1"))
            spared = statements_written(conn) - written, len(pending)
            # a new ticket keyed by its own number (as a create in the batch): the INSERT alone goes
            PreparedInsert(T).id(conn, ticket_row("20261203-KEY2"), key=("number", "20261203-KEY2"))
            inserted = statements_written(conn) - written, len(pending)
            own = load.first(conn, {"b_number": "20261203-KEY0"}, key=("number", "20261203-KEY0"))
            return other, spared, inserted, own, statements_written(conn) - written, len(pending)
        finally:
            stop_deferring(pending)

    other, spared, inserted, own, sent, left = await run_in(database_url, batch)
    assert other == {"title": "小区门口积水"} and spared == (0, 1)  # another ticket's load: still pending
    assert inserted == (1, 1)  # the keyed INSERT did not send the other ticket's pending UPDATE
    assert own == {"title": "已改标题"} and sent == 2 and left == 0  # its own load: sent first


async def batch_on(database_url: str, jobs: list[writer.Job], prepare: Callable[[Connection], Any]) -> None:
    """``prepare`` committed first, then ``jobs`` through the writer's ``run_batch`` on the writer's kind of
    connection (outcomes land on the jobs)."""
    if database_url.startswith("sqlite"):
        engine = create_engine(database_url.replace("+aiosqlite", ""))
        track_writes(engine)
        try:
            with engine.begin() as conn:
                prepare(conn)
            with engine.connect() as conn:
                writer.run_batch(conn, jobs)
        finally:
            engine.dispose()
        return
    async_engine = create_async_engine(database_url)
    track_writes(async_engine.sync_engine)
    try:
        async with async_engine.begin() as conn:
            await conn.run_sync(prepare)
        async with async_engine.connect() as conn:
            await conn.run_sync(writer.run_batch, jobs)
    finally:
        await async_engine.dispose()


async def test_a_deferred_value_the_driver_cannot_encode_fails_its_own_job_only(database_url: str) -> None:
    """A deferred row that fails when the batch sends it, even with an error that is not the database's (a
    lone surrogate cannot be encoded), fails its own job; the others commit. The HTTP edge refuses such text
    (tests/test_api_fuzz.py); this is the writer's own guard."""
    history = Prepared(insert(H))
    ids: list[int] = []

    def prepare(conn: Connection) -> None:
        ids.append(Prepared(insert(T).returning(T.c.id)).scalar(conn, ticket_row("20261203-ENC1")))

    def note(text_: str) -> Callable[[Connection], None]:
        def job(conn: Connection) -> None:
            history.defer(conn, {"ticket_id": ids[0], "action": "note", "at": datetime.now(UTC),
                                 "actor_role": "agent", "actor_name": "测试", "from_status": "draft",
                                 "to_status": "draft", "note": text_}, ("ticket", ids[0]))
        return job

    jobs = [writer.Job(note("先记一笔"), None), writer.Job(note("坏\ud800字"), None),  # type: ignore[arg-type]
            writer.Job(note("再记一笔"), None)]  # type: ignore[arg-type]
    await batch_on(database_url, jobs, prepare)
    outcomes = [job.outcome for job in jobs]
    assert outcomes[0] == (True, None) and outcomes[2] == (True, None), outcomes
    assert outcomes[1] is not None and outcomes[1][0] is False
    notes = await run_in(database_url, lambda conn: [r.note for r in conn.execute(
        select(H.c.note).where(H.c.ticket_id == ids[0]).order_by(H.c.id))])
    assert notes == ["先记一笔", "再记一笔"]


async def test_a_batch_cancelled_mid_statement_ends_with_the_cancellation(database_url: str) -> None:
    """A batch whose statement is cancelled (the connection is invalidated, as ``_run`` does) ends with the
    ``CancelledError`` itself, so the writer's task sees its cancellation (at shutdown) instead of an error
    about the invalidated connection."""
    history = Prepared(insert(H))
    ids: list[int] = []

    def prepare(conn: Connection) -> None:
        ids.append(Prepared(insert(T).returning(T.c.id)).scalar(conn, ticket_row("20261203-CAN1")))

    def cancelled(conn: Connection) -> None:
        history.defer(conn, {"ticket_id": ids[0], "action": "note", "at": datetime.now(UTC), "actor_role": "agent",
                             "actor_name": "测试", "from_status": "draft", "to_status": "draft", "note": "取消"},
                      ("ticket", ids[0]))
        error = asyncio.CancelledError()
        conn.invalidate(error)
        raise error

    with pytest.raises(asyncio.CancelledError):
        await batch_on(database_url, [writer.Job(cancelled, None)], prepare)  # type: ignore[arg-type]
