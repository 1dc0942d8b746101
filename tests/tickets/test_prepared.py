"""tickets/prepared.py runs the write batch's statements on the driver's cursor: what it writes must read back exactly as
what SQLAlchemy's own execution writes (aware datetimes, JSON, booleans, Chinese text, column defaults), and a
driver error must reach the writer as SQLAlchemy's error, so that a refused job stays one job's failure.

Each database through the connection the writer uses: SQLite's synchronous engine, PostgreSQL's asyncpg engine
through ``run_sync``.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Connection, bindparam, create_engine, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from tickets import writer
from tickets.models import Ticket, TicketHistory
from tickets.prepared import Prepared, insert_row, run_sql

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
