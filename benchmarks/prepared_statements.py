"""CPU per statement of the write batch's hot path: SQLAlchemy's ``Connection.execute`` against ``Prepared``
(tickets/prepared.py), the same statements on the same SQLite connection, in one transaction each, interleaved.

The statements are the store's own: the ticket load by number, the history INSERT, the version-guarded UPDATE,
and the SAVEPOINT/RELEASE pair every job of a batch pays. Figures are microseconds per statement, medians of
``--reps``; the ratio is SQLAlchemy's time over ours.

    .venv/bin/python benchmarks/prepared_statements.py [--n 5000] [--reps 5]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Connection, bindparam, create_engine, insert, select, update

from tickets import service
from tickets.models import Base, Ticket, TicketHistory
from tickets.prepared import Prepared, run_sql

T = Ticket.__table__
H = TicketHistory.__table__


def timed(conn: Connection, n: int, fn: Callable[[int], Any]) -> float:
    with conn.begin():
        start = time.perf_counter()
        for i in range(n):
            fn(i)
        return 1e6 * (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    now = datetime.now(UTC)
    entry = {"ticket_id": 1, "action": "sign", "at": now, "actor_id": 1, "actor_role": "handler",
             "actor_name": "张三", "from_status": "dispatched", "to_status": "signed", "note": "已签收",
             "data": {"department": "市住建委"}}
    load_stmt = select(T).where(T.c.number == bindparam("b_number"))
    save_stmt = update(T).where(T.c.id == bindparam("b_id"))
    ours = {"load": Prepared(load_stmt), "history": Prepared(insert(H)), "save": Prepared(save_stmt)}
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{tmp}/bench.db")
        Base.metadata.create_all(engine)
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            conn.exec_driver_sql("PRAGMA synchronous=FULL")
            conn.commit()
            with conn.begin():
                conn.execute(insert(T), {**service._ROW_DEFAULTS, "co_handler_ids": [], "number": "20261203-000001",
                                         "created_at": now, "updated_at": now, "version": 1, "status": "draft",
                                         "channel": "phone", "request_type": "inquiry", "urgency": "normal"})
            cases: dict[str, tuple[Callable[[int], Any], Callable[[int], Any]]] = {
                "load": (lambda i: conn.execute(load_stmt, {"b_number": "20261203-000001"}).mappings().first(),
                         lambda i: ours["load"].first(conn, {"b_number": "20261203-000001"})),
                "history insert": (lambda i: conn.execute(insert(H), entry),
                                   lambda i: ours["history"].execute(conn, entry)),
                "save (UPDATE)": (lambda i: conn.execute(save_stmt, {"b_id": 1, "version": i, "updated_at": now}),
                                  lambda i: ours["save"].execute(conn, {"b_id": 1, "version": i, "updated_at": now})),
                "savepoint pair": (lambda i: (conn.exec_driver_sql("SAVEPOINT job"),
                                              conn.exec_driver_sql("RELEASE SAVEPOINT job")),
                                   lambda i: (run_sql(conn, "SAVEPOINT job"), run_sql(conn, "RELEASE SAVEPOINT job"))),
            }
            figures: dict[str, dict[str, list[float]]] = {k: {"sqlalchemy": [], "prepared": []} for k in cases}
            for _ in range(args.reps):
                for name, (theirs, mine) in cases.items():
                    figures[name]["sqlalchemy"].append(timed(conn, args.n, theirs))
                    figures[name]["prepared"].append(timed(conn, args.n, mine))
        engine.dispose()
    for name, f in figures.items():
        sa, pr = statistics.median(f["sqlalchemy"]), statistics.median(f["prepared"])
        print(json.dumps({"statement": name, "sqlalchemy_us": round(sa, 1), "prepared_us": round(pr, 1),
                          "ratio": round(sa / pr, 2)}, ensure_ascii=False))


if __name__ == "__main__":
    main()
