"""Core statements compiled once per dialect and run on the driver's own cursor, for the write batch's hot path.

A write batch (tickets/writer.py) holds the database's write lock (SQLite) or a connection (PostgreSQL) while
Python runs, so its Python time is everybody's wait. ``Connection.execute`` of an already compiled statement
still spends 8-14 us of CPU on the execution context, parameter processing, cursor wrapping and the Result, more
than the driver's own call (SQLite, medians: 21.0 against 7.0 us the history INSERT, 14.3 against 5.6 us the
version-guarded UPDATE, 29.5 against 19.5 us the ticket load, 9.3 against 1.6 us a SAVEPOINT/RELEASE pair;
benchmarks/prepared_statements.py). So the statements of the
action path are compiled by SQLAlchemy, for the dialect and the set of columns given, and run through the DBAPI
cursor of the same connection, inside the same transaction:
- the same SQL as ``Connection.execute`` would send, and the columns' own bind and result processors (aware
  datetimes as UTC, JSON, booleans), so a row written here reads back through the ORM as before;
- Python-side column defaults of an INSERT are filled as SQLAlchemy's execution context would fill them;
- a driver error comes back as SQLAlchemy's ``DBAPIError`` subclass (``IntegrityError``, ``OperationalError``
  ...), with ``connection_invalidated`` set for a lost connection, so the writer's handling does not change.
Statements needing SQLAlchemy at run time (expanding IN lists) are refused when prepared.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.dml import Insert


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # bind names in the order of the SQL's placeholders (positional) or all of them
    positional: bool
    processors: Mapping[str, Callable[[Any], Any]]
    defaults: tuple[tuple[str, Callable[[], Any]], ...]  # binds not given: Python column defaults, literals
    keys: tuple[str, ...]  # result columns
    results: tuple[Callable[[Any], Any] | None, ...]


class Prepared:
    """One statement; ``execute``/``first``/``all``/``scalar`` take a SQLAlchemy sync ``Connection``."""

    def __init__(self, stmt: ClauseElement) -> None:
        self.stmt = stmt
        self._compiled: dict[tuple[str, frozenset[str]], _Compiled] = {}

    def _compile(self, conn: Connection, params: Mapping[str, Any]) -> _Compiled:
        dialect = conn.dialect
        # INSERT and UPDATE statements without ``values()`` write the columns named by the parameters, so the
        # SQL depends on which were given (as in SQLAlchemy's own compiled cache)
        key = (dialect.name, frozenset(params))
        found = self._compiled.get(key)
        if found is not None:
            return found
        compiled = self.stmt.compile(dialect=dialect, column_keys=list(params))
        if any(b.expanding for b in compiled.binds.values()):
            raise ValueError("expanding IN parameters need Connection.execute")
        defaults: list[tuple[str, Callable[[], Any]]] = []
        if isinstance(self.stmt, Insert):
            for col in compiled.insert_prefetch:
                if col.key in params:
                    continue
                default = col.default
                if default is None or not (default.is_scalar or default.is_callable):
                    raise ValueError(f"column {col.key} has a default only SQLAlchemy's execution can compute")
                if default.is_scalar:
                    defaults.append((col.key, lambda arg=default.arg: arg))
                else:
                    defaults.append((col.key, lambda fn=default.arg: fn(None)))  # wrapped to take a context
        for name, bind in compiled.binds.items():  # values the statement carries itself (a literal 1, "merged")
            if name not in params and not bind.required and not any(n == name for n, _ in defaults):
                defaults.append((name, lambda value=bind.effective_value: value))
        positional = bool(compiled.positional)
        names = tuple(compiled.positiontup or ()) if positional else tuple(compiled.binds)
        result_columns = compiled._result_columns
        found = self._compiled[key] = _Compiled(
            sql=compiled.string, names=names, positional=positional,
            processors=dict(compiled._bind_processors), defaults=tuple(defaults),
            keys=tuple(rc.keyname for rc in result_columns),
            results=tuple(rc.type._cached_result_processor(dialect, None) for rc in result_columns))
        return found

    def _bound(self, c: _Compiled, params: Mapping[str, Any]) -> Any:
        if c.defaults:
            params = {**{name: make() for name, make in c.defaults}, **params}
        procs = c.processors
        values = [procs[n](params[n]) if n in procs else params[n] for n in c.names]
        return values if c.positional else dict(zip(c.names, values))

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """Run the statement; returns the DBAPI cursor (``rowcount``, rows still raw)."""
        c = self._compile(conn, params)
        return _run(conn, c.sql, self._bound(c, params))

    def executemany(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """The statement once per row, in one driver call; every row must name the same columns."""
        if not rows:
            return
        c = self._compile(conn, rows[0])
        _run(conn, c.sql, [self._bound(c, r) for r in rows], many=True)

    def all(self, conn: Connection, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        c = self._compile(conn, params)
        cur = _run(conn, c.sql, self._bound(c, params))
        return [_row(c, r) for r in cur.fetchall()]

    def first(self, conn: Connection, params: Mapping[str, Any]) -> dict[str, Any] | None:
        c = self._compile(conn, params)
        cur = _run(conn, c.sql, self._bound(c, params))
        row = cur.fetchone()
        return None if row is None else _row(c, row)

    def scalar(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """The first column of the first row, or None when there is no row."""
        c = self._compile(conn, params)
        row = _run(conn, c.sql, self._bound(c, params)).fetchone()
        if row is None:
            return None
        process = c.results[0]
        return process(row[0]) if process else row[0]


def _row(c: _Compiled, row: Sequence[Any]) -> dict[str, Any]:
    return {k: (p(v) if p else v) for k, p, v in zip(c.keys, c.results, row)}


def run_sql(conn: Connection, sql: str) -> None:
    """A statement without parameters (SAVEPOINT, RELEASE) on the driver's cursor."""
    _run(conn, sql, ())


def _run(conn: Connection, sql: str, params: Any, many: bool = False) -> Any:
    raw = conn.connection.dbapi_connection
    cur = raw.cursor()  # type: ignore[union-attr]
    try:
        if many:
            cur.executemany(sql, params)
        else:
            cur.execute(sql, params)
    except conn.dialect.loaded_dbapi.Error as exc:
        dialect = conn.dialect
        raise DBAPIError.instance(sql, params, exc, dialect.loaded_dbapi.Error,
                                  connection_invalidated=dialect.is_disconnect(exc, raw, cur),
                                  dialect=dialect) from exc
    return cur


_INSERTS: dict[Any, Prepared] = {}


def insert_row(conn: Connection, table: Table, values: Mapping[str, Any]) -> None:
    """One row of plain values into ``table`` (rows other features ask the ticket store to write with a change,
    such as an SMS outbox row), through a ``Prepared`` INSERT kept per table."""
    prepared = _INSERTS.get(table)
    if prepared is None:
        prepared = _INSERTS[table] = Prepared(insert(table))
    prepared.execute(conn, values)
