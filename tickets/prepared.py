"""Core statements compiled once per dialect and run on the driver's own cursor, for the write batch's hot path.

A write batch (tickets/writer.py) holds the database's write lock (SQLite) or a connection (PostgreSQL) while
Python runs, so its Python time is everybody's wait. ``Connection.execute`` of an already compiled statement
still spends 8-14 us of CPU on the execution context, parameter processing, cursor wrapping and the Result, more
than the driver's own call (SQLite, medians: 21.0 against 7.0 us the history INSERT, 14.3 against 5.6 us the
version-guarded UPDATE, 29.5 against 19.5 us the ticket load, 9.3 against 1.6 us a SAVEPOINT/RELEASE pair;
benchmarks/prepared_statements.py). So the statements of the action path are compiled by SQLAlchemy, for the
dialect and the set of columns given, and run through the DBAPI cursor of the same connection, inside the same
transaction:
- the same SQL as ``Connection.execute`` would send, and the columns' own bind and result processors (aware
  datetimes as UTC, JSON, booleans), so a row written here reads back through the ORM as before;
- Python-side column defaults of an INSERT are filled as SQLAlchemy's execution context would fill them;
- a driver error comes back as SQLAlchemy's ``DBAPIError`` subclass (``IntegrityError``, ``OperationalError``
  ...), with ``connection_invalidated`` set for a lost connection, so the writer's handling does not change.
Statements needing SQLAlchemy at run time (expanding IN lists) are refused when prepared. Drivers with named
parameters (psycopg's pyformat) take SQLAlchemy's own path: the speed-up is for pysqlite and asyncpg, the
drivers this server ships with.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, Table, event, insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement, visitors
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.expression import Executable, TableClause


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # bind names in the order of the SQL's placeholders
    processors: Mapping[str, Callable[[Any], Any]]
    defaults: tuple[tuple[str, Callable[[], Any]], ...]  # binds not given: Python column defaults, literals
    keys: tuple[str, ...]  # result columns
    results: tuple[Callable[[Any], Any] | None, ...]


def _constant(value: Any) -> Callable[[], Any]:
    return lambda: value


def _called(fn: Callable[[Any], Any]) -> Callable[[], Any]:
    return lambda: fn(None)  # SQLAlchemy's wrapped default takes an execution context; ours need none


class Prepared:
    """One statement; ``execute``/``first``/``all``/``scalar`` take a SQLAlchemy sync ``Connection``."""

    def __init__(self, stmt: Executable) -> None:
        self.stmt = stmt
        # every table the statement names (subqueries included): deferred writes to any of them are sent first
        self.tables = frozenset(e.name for e in visitors.iterate(cast(ClauseElement, stmt))
                                if isinstance(e, TableClause))
        # per dialect object: type processors, paramstyle and SQL belong to the engine's dialect, not its name
        self._compiled: WeakKeyDictionary[Any, dict[frozenset[str], _Compiled | None]] = WeakKeyDictionary()

    def _compile(self, conn: Connection, params: Mapping[str, Any]) -> _Compiled | None:
        """The statement compiled for this connection's dialect and these parameters; None where the driver
        takes named parameters (SQLAlchemy's own execution is used there)."""
        dialect = conn.dialect
        per_dialect = self._compiled.get(dialect)
        if per_dialect is None:
            per_dialect = self._compiled[dialect] = {}
        # INSERT and UPDATE statements without ``values()`` write the columns named by the parameters, so the
        # SQL depends on which were given (as in SQLAlchemy's own compiled cache)
        key = frozenset(params)
        if key in per_dialect:
            return per_dialect[key]
        compiled = cast(SQLCompiler, cast(ClauseElement, self.stmt).compile(dialect=dialect, column_keys=list(params)))
        if not compiled.positional:
            per_dialect[key] = None
            return None
        if any(b.expanding for b in compiled.binds.values()):
            raise ValueError("expanding IN parameters need Connection.execute")
        defaults: list[tuple[str, Callable[[], Any]]] = []
        if isinstance(self.stmt, Insert):
            for col in compiled.insert_prefetch:
                if col.key in params:
                    continue
                default = cast(Any, col.default)  # a ColumnDefault: scalar or callable (checked below)
                if default is None or not (default.is_scalar or default.is_callable):
                    raise ValueError(f"column {col.key} has a default only SQLAlchemy's execution can compute")
                if default.is_scalar:
                    defaults.append((col.key, _constant(default.arg)))
                else:
                    defaults.append((col.key, _called(default.arg)))
        for name, bind in compiled.binds.items():  # values the statement carries itself (a literal 1, "merged")
            if name not in params and not bind.required and not any(n == name for n, _ in defaults):
                defaults.append((name, _constant(bind.effective_value)))
        result_columns = compiled._result_columns or []
        found = per_dialect[key] = _Compiled(
            sql=compiled.string, names=tuple(compiled.positiontup or ()),
            processors=cast(dict[str, Callable[[Any], Any]], dict(compiled._bind_processors)), defaults=tuple(defaults),
            keys=tuple(rc.keyname for rc in result_columns),
            results=tuple(rc.type._cached_result_processor(dialect, None) for rc in result_columns))
        return found

    def _bound(self, c: _Compiled, params: Mapping[str, Any]) -> Any:
        if c.defaults:
            params = {**{name: make() for name, make in c.defaults}, **params}
        procs = c.processors
        return [procs[n](params[n]) if n in procs else params[n] for n in c.names]

    def execute(self, conn: Connection, params: Mapping[str, Any], key: tuple[str, Any] | None = None) -> Any:
        """Run the statement; returns an object with the ``rowcount``. ``key`` as for ``first``: the statement
        touches only the rows of this key."""
        _flush_for(conn, self.tables, key)
        c = self._compile(conn, params)
        if c is None:
            return conn.execute(self.stmt, params)
        return _run(conn, c.sql, self._bound(c, params))

    def executemany(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """The statement once per row, in one driver call; every row must name the same columns."""
        if not rows:
            return
        _flush_for(conn, self.tables)
        c = self._compile(conn, rows[0])
        if c is None:
            conn.execute(self.stmt, list(rows))
            return
        _run(conn, c.sql, [self._bound(c, r) for r in rows], many=True)

    def all(self, conn: Connection, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        _flush_for(conn, self.tables)
        c = self._compile(conn, params)
        if c is None:
            return [dict(r) for r in conn.execute(self.stmt, params).mappings()]
        return [_row(c, r) for r in _run(conn, c.sql, self._bound(c, params), fetch="all")]

    def first(self, conn: Connection, params: Mapping[str, Any], key: tuple[str, Any] | None = None
              ) -> dict[str, Any] | None:
        """The first row, or None. ``key``: the statement reads only the rows of this key (as ``defer``'s), so
        deferred writes of other keys need not be sent before it."""
        _flush_for(conn, self.tables, key)
        c = self._compile(conn, params)
        if c is None:
            found = conn.execute(self.stmt, params).mappings().first()
            return None if found is None else dict(found)
        row = _run(conn, c.sql, self._bound(c, params), fetch="one")
        return None if row is None else _row(c, row)

    def scalar(self, conn: Connection, params: Mapping[str, Any], key: tuple[str, Any] | None = None) -> Any:
        """The first column of the first row, or None when there is no row. ``key`` as for ``first``."""
        _flush_for(conn, self.tables, key)
        c = self._compile(conn, params)
        if c is None:
            return conn.execute(self.stmt, params).scalar()
        row = _run(conn, c.sql, self._bound(c, params), fetch="one")
        if row is None:
            return None
        process = c.results[0]
        return process(row[0]) if process else row[0]

    def defer(self, conn: Connection, params: Mapping[str, Any], key: tuple[str, Any]) -> Any:
        """Run the statement later in this transaction, with the other deferred writes of the batch, when
        ``conn`` defers writes (``defer_writes``); None then. Otherwise at once, returning what ``execute``
        returns. For writes whose result the batch does not need. ``key`` names the rows it touches, as
        ``(kind, value)``, e.g. ``("ticket", 12)``: the writes of one key keep their order, those of different
        keys are taken to commute."""
        if len(self.tables) != 1:  # a partial flush sends one table's writes: keys are ordered within a table
            raise ValueError("only a statement naming one table can be deferred")
        pending: PendingWrites | None = conn.info.get(_PENDING)
        c = self._compile(conn, params) if pending is not None else None
        if c is None or pending is None:
            return self.execute(conn, params)
        (table,) = self.tables
        pending.add(table, c.sql, self._bound(c, params), key)
        return None


class PreparedInsert:
    """A one-row INSERT that gives back the new row's integer ``id``: ``RETURNING id`` on PostgreSQL, the cursor's
    ``lastrowid`` on SQLite. SQLite's RETURNING cost ~70 us more per row than the plain INSERT (a ticket's row,
    medians of 7 x 1,000), and a create's INSERT runs while its batch holds the database's write lock."""

    def __init__(self, table: Table) -> None:
        self._returning = Prepared(insert(table).returning(table.c.id))
        self._plain = Prepared(insert(table))

    def id(self, conn: Connection, params: Mapping[str, Any], key: tuple[str, Any] | None = None) -> int:
        """Insert; the new row's id. ``key`` as for ``Prepared.first``: a new row's key has no pending writes, so
        the table's other pending writes need not be sent first."""
        if conn.dialect.name == "sqlite":  # the table's INTEGER PRIMARY KEY is the rowid
            return cast(int, self._plain.execute(conn, params, key).lastrowid)
        return cast(int, self._returning.scalar(conn, params, key))


def _row(c: _Compiled, row: Sequence[Any]) -> dict[str, Any]:
    return {k: (p(v) if p else v) for k, p, v in zip(c.keys, c.results, row)}


_PENDING = "tickets.pending_writes"  # key in Connection.info while a write batch defers writes


class PendingWrites:
    """The deferred writes of one transaction, sent together: one ``executemany`` per statement instead of one
    round trip per row.

    On PostgreSQL every statement is a round trip costing ~0.1 ms of the server's CPU plus PostgreSQL's own
    (BENCHMARKS.md, #15): the history row of every action, the assignment rows of dispatch, sign and reply and
    the ticket's own UPDATE were 12 of the 22 statements of a create-accept-dispatch-sign-reply cycle. They are
    sent:
    - before a statement that names one of their tables (a ``Prepared`` statement checks its ``tables``), unless
      that statement reads only the rows of one key (``key=`` of ``first``) and no write of that key is pending;
      and before any statement through ``Connection.execute`` (the ``track_writes`` event flushes them all), so a
      read inside the batch sees every write before it;
    - at the end of the batch, before the commit (``tickets/writer.py``).
    Order: the writes of one key (one ticket) in the order made; writes of different keys, which touch different
    rows, grouped by statement. A write of the same statement as the key's previous one joins it. Keys are
    ``(kind, value)`` pairs; a read by key is spared the flush only by pending writes of the same kind."""

    def __init__(self, info: dict[Any, Any]) -> None:
        self.rows: list[tuple[str, str, Any, tuple[str, Any]]] = []  # (table, sql, bound parameters, key)
        self.keys: dict[str, set[Any]] = {}  # table -> keys of its pending writes
        self.info = info  # the connection's, kept: once the connection is invalidated it cannot be reached

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, table: str, sql: str, bound: Any, key: tuple[str, Any]) -> None:
        self.rows.append((table, sql, bound, key))
        self.keys.setdefault(table, set()).add(key)

    def _reindex(self) -> None:
        self.keys = {}
        for table, _, _, key in self.rows:
            self.keys.setdefault(table, set()).add(key)

    def discard_from(self, start: int) -> None:
        """Forget the writes deferred since ``len(self)`` was ``start`` (a job failed before they were sent)."""
        del self.rows[start:]
        self._reindex()

    def needs_flush(self, tables: frozenset[str], key: tuple[str, Any] | None) -> bool:
        """Must writes be sent before a statement naming ``tables`` (reading only the rows of ``key``)?"""
        for table in tables:
            pending = self.keys.get(table)
            if not pending:
                continue
            if key is None or key in pending or any(k[0] != key[0] for k in pending):
                return True
        return False

    def flush(self, conn: Connection, tables: frozenset[str] | None = None) -> None:
        """Send the pending writes (those to one of ``tables``, or all); the others stay pending. Writes to
        different tables are independent (each deferred statement names its one table), so their order does not
        matter."""
        if not self.rows:
            return
        if tables is None:
            rows, self.rows = self.rows, []
        else:
            rows = [r for r in self.rows if r[0] in tables]
            self.rows = [r for r in self.rows if r[0] not in tables]
        self._reindex()
        waves: list[dict[str, list[Any]]] = []  # wave n: the n-th write of every key, grouped by statement
        last: dict[tuple[str, Any], tuple[int, str]] = {}  # (table, key) -> its last write's wave and statement
        for table, sql, bound, key in rows:
            wave, previous = last.get((table, key), (-1, ""))
            if previous != sql:
                wave += 1
            last[table, key] = (wave, sql)
            if wave == len(waves):
                waves.append({})
            waves[wave].setdefault(sql, []).append(bound)
        for wave_rows in waves:
            for sql, params in wave_rows.items():
                if len(params) == 1:
                    _run(conn, sql, params[0])
                else:
                    _run(conn, sql, params, many=True)


def defer_writes(conn: Connection) -> PendingWrites:
    """From now on ``Prepared.defer`` on ``conn`` defers; the caller flushes before committing and calls
    ``stop_deferring`` in any case."""
    info = conn.info
    pending = info[_PENDING] = PendingWrites(info)
    return pending


def stop_deferring(pending: PendingWrites) -> None:
    """Writes still pending are dropped: called after the flush, or when the transaction is rolled back.
    Through the dict kept at the start: on a connection invalidated meanwhile (a cancelled statement, a lost
    server) ``conn.info`` raises, and that error would replace the cancellation the writer must see."""
    pending.info.pop(_PENDING, None)


def _flush_for(conn: Connection, tables: frozenset[str], key: tuple[str, Any] | None = None) -> None:
    pending: PendingWrites | None = conn.info.get(_PENDING)
    if pending is not None and pending.rows and pending.needs_flush(tables, key):
        pending.flush(conn, tables)


def run_sql(conn: Connection, sql: str) -> None:
    """A statement without parameters (SAVEPOINT, RELEASE) on the driver's cursor."""
    _run(conn, sql, ())


_WRITES = "tickets.statements_written"  # key in Connection.info (the pooled connection's own dict)


def statements_written(conn: Connection) -> int:
    """How many statements other than SELECTs ``conn`` has run, through ``Prepared`` and ``run_sql`` or through
    ``Connection.execute`` on an engine given to ``track_writes``: a job that failed with this count unchanged left
    nothing in the transaction to undo (tickets/writer.py)."""
    return conn.info.get(_WRITES, 0)  # type: ignore[no-any-return]


def track_writes(engine: Engine) -> None:
    """On ``engine``'s connections: count the writes that ``Connection.execute`` sends (``Prepared`` counts its
    own), and send a batch's deferred writes before any statement through ``Connection.execute``, which
    could read them (statements built ad hoc name tables nobody checks). Not before ``exec_driver_sql``, for
    which SQLAlchemy has no ``before_execute``: a job must not read through it what the batch deferred."""
    if not event.contains(engine, "before_cursor_execute", _on_cursor_execute):
        event.listen(engine, "before_cursor_execute", _on_cursor_execute)
    if not event.contains(engine, "before_execute", _on_execute):
        event.listen(engine, "before_execute", _on_execute)


def _on_execute(conn: Connection, clauseelement: Any, multiparams: Any, params: Any, execution_options: Any
                ) -> None:
    pending: PendingWrites | None = conn.info.get(_PENDING)
    if pending is not None and pending.rows:
        pending.flush(conn)


def _on_cursor_execute(conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any,
                       executemany: bool) -> None:
    _count_write(conn, statement)


def _count_write(conn: Connection, sql: str) -> None:
    # Conservative: a CTE (WITH ... INSERT) or anything else that is not a plain SELECT counts as a write.
    if not (sql[:6] == "SELECT" or sql.lstrip()[:6].upper() == "SELECT"):
        info = conn.info
        info[_WRITES] = info.get(_WRITES, 0) + 1


def _run(conn: Connection, sql: str, params: Any, many: bool = False, fetch: str | None = None) -> Any:
    """Execute (and fetch: SQLite steps the statement while rows are fetched, so fetching can fail too);
    the cursor, or the fetched row(s) when ``fetch`` is "one" or "all"."""
    _count_write(conn, sql)  # before executing: a statement that fails may have written part
    dialect = conn.dialect
    raw = conn.connection.dbapi_connection
    cur = cast(Any, raw).cursor()
    if hasattr(cur, "_invalidate_schema_cache_asof"):
        # SQLAlchemy's asyncpg adapter caches prepared statements per connection; its execution context tells
        # the cursor when the schema changed (after DDL, or a stale-statement error), so that the cache drops
        # statements planned for the old schema. Without this a migration would fail these statements until
        # every pooled connection was replaced.
        cur._invalidate_schema_cache_asof = getattr(dialect, "_invalidate_schema_cache_asof", 0)
    try:
        if many:
            cur.executemany(sql, params)
        else:
            cur.execute(sql, params)
        if fetch == "one":
            return cur.fetchone()
        if fetch == "all":
            return cur.fetchall()
    except dialect.loaded_dbapi.Error as exc:
        stale = tuple(t for t in (getattr(dialect.loaded_dbapi, "InvalidCachedStatementError", None),
                                  getattr(dialect.loaded_dbapi, "InternalServerError", None)) if t is not None)
        if stale and isinstance(exc, stale) and hasattr(dialect, "_invalidate_schema_cache"):
            dialect._invalidate_schema_cache()  # as the asyncpg execution context does
        raise DBAPIError.instance(sql, params, exc, dialect.loaded_dbapi.Error,
                                  connection_invalidated=dialect.is_disconnect(exc, raw, cur),
                                  dialect=dialect) from exc
    except BaseException as exc:
        if not isinstance(exc, Exception):  # cancelled mid-statement: the driver's protocol state is unknown
            conn.invalidate(exc)  # as SQLAlchemy's own execution does
        raise
    return cur


_INSERTS: dict[Any, Prepared] = {}


def insert_row(conn: Connection, table: Table, values: Mapping[str, Any]) -> None:
    """One row of plain values into ``table`` (rows other features ask the ticket store to write with a change,
    such as an SMS outbox row), through a ``Prepared`` INSERT kept per table."""
    unknown = set(values) - set(table.c.keys())
    if unknown:  # compiled with column_keys, an unknown name would be dropped silently: refuse, as .values() does
        raise ValueError(f"no column {sorted(unknown)} in table {table.name}")
    prepared = _INSERTS.get(table)
    if prepared is None:
        prepared = _INSERTS[table] = Prepared(insert(table))
    prepared.execute(conn, values)
