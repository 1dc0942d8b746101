"""Group commit (tickets/writer.py): the actions of many requests share one transaction, and still each request
hears only its own outcome and only after the commit that holds it.

To hold a batch open at a chosen point, the tests queue a blocking job on the store's writer between the
requests: on SQLite it waits in the writer's thread (the event loop runs on), on PostgreSQL it waits for an
advisory lock that the test holds from another connection. Nothing is mocked: the servers, SQLite, PostgreSQL,
the lock file and Redis (a real redis-server, the ``redis_url`` fixture) are real; two tests only shorten the
writers' lock wait (``HANDOFF_TIMEOUT_S``), which is 30 s in production.
"""
from __future__ import annotations

import asyncio
import fcntl
import functools
import os
import threading
from datetime import datetime, timezone
from typing import Any

import pytest
from sqlalchemy import bindparam, func, insert, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

import server
from tickets import http as tickets_http
from tickets import writer as writer_module
from tickets.errors import Conflict, NotFound, Refused
from tickets.models import TicketHistory
from tickets.prepared import Prepared, insert_row
from tickets.writer import Unavailable

LOCK_KEY = 715_015


BLOCKERS: list[Blocker] = []


@pytest.fixture(autouse=True)
async def _let_every_blocker_go():
    """A failed test must not leave the writer waiting (the server's shutdown would wait with it)."""
    yield
    while BLOCKERS:
        await BLOCKERS.pop().let_go()


class Blocker:
    """A job that stops the writer inside its batch until ``let_go``."""

    def __init__(self, app: Any, urgent: bool = False) -> None:
        BLOCKERS.append(self)
        self.urgent = urgent
        # one batch at a time (PostgreSQL runs several at once), so that the test decides where batches end
        app[tickets_http.STORE].writer.parallel = 1
        self.key = LOCK_KEY + len(BLOCKERS)  # each its own lock: the second must not wait for the first
        self.app = app
        self.writer = app[tickets_http.STORE].writer
        self.entered = threading.Event()
        self.release = threading.Event()
        self.sqlite = self.writer.sync_engine is not None
        self.holder: Any = None
        self.task: asyncio.Task[Any] | None = None
        self.dbapi: Any = None

    async def start(self) -> Blocker:
        if not self.sqlite:
            self.holder = await self.app[server.ENGINE].connect()
            await self.holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": self.key})
        self.task = asyncio.ensure_future(self.writer.submit(self.job, urgent=self.urgent))
        return self

    def job(self, conn: Any) -> None:
        self.dbapi = conn.connection.dbapi_connection
        self.entered.set()
        if self.sqlite:
            assert self.release.wait(120), "the test never let the writer go"
        else:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": self.key})

    async def let_go(self) -> None:
        self.release.set()
        if self.holder is not None and not self.holder.closed:
            await self.holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            await self.holder.close()
            self.holder = None


async def until(predicate: Any, what: str, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def status_in_db(app: Any, number: str) -> str:
    """The ticket's committed status, read beside the server (a fresh connection of the read engine)."""
    async with app[server.READ_ENGINE].connect() as conn:
        return (await conn.execute(text("SELECT status FROM tickets WHERE number = :n"), {"n": number})).scalar_one()


def act(center: Any, who: str, number: str, action: str, expect: int | None = None, **params: Any
        ) -> asyncio.Task[Any]:
    return asyncio.ensure_future(center.users[who].call("POST", f"/api/v1/tickets/{number}/actions/{action}",
                                                         json=params, expect=expect))


async def test_nobody_is_answered_before_the_commit_that_holds_their_action(center):
    app = center.client.server.app
    writer = app[tickets_http.STORE].writer
    a, b = await center.new_ticket(), await center.new_ticket()
    first = await Blocker(app).start()
    await until(first.entered.is_set, "the first batch to start")
    # queued behind the first batch, so they share the next one: a, b, then a blocker before the commit
    acts = [act(center, "agent", a["number"], "accept"), act(center, "agent", b["number"], "accept")]
    await until(lambda: writer.queued == 2, "both actions to queue")
    second = await Blocker(app).start()
    await until(lambda: writer.queued == 3, "the blocker to queue behind them")
    await first.let_go()
    await until(second.entered.is_set, "the second batch to reach its blocker")

    # a and b are written but not committed: nobody may have heard of them yet
    # a round trip through the server: it is free to answer, and shows the committed state only
    listed = await center.agent.get("/api/v1/tickets?limit=5")
    assert {t["number"]: t["status"] for t in listed["items"]}[a["number"]] == "draft"
    assert not any(t.done() for t in acts)
    assert await status_in_db(app, a["number"]) == "draft"
    await second.let_go()
    answers = await asyncio.gather(*acts)
    assert [x["status"] for x in answers] == ["accepted", "accepted"]
    assert await status_in_db(app, a["number"]) == "accepted"
    assert await status_in_db(app, b["number"]) == "accepted"


async def test_a_refused_action_in_a_batch_gets_its_409_and_the_others_commit(center):
    app = center.client.server.app
    writer = app[tickets_http.STORE].writer
    tickets = [await center.new_ticket() for _ in range(4)]
    blocker = await Blocker(app).start()
    await until(blocker.entered.is_set, "the first batch to start")
    batches = writer.batches
    acts = [act(center, "agent", tickets[0]["number"], "accept"),
            act(center, "water", tickets[1]["number"], "sign"),  # a draft: not the department's to sign
            act(center, "agent", tickets[2]["number"], "accept"),
            act(center, "agent", "20990101-999999", "accept"),  # no such ticket
            act(center, "agent", tickets[3]["number"], "dispatch", lead_department_id=center.departments["swuj"])]
    await until(lambda: writer.queued == len(acts), "all actions to queue")
    await blocker.let_go()
    resp = await asyncio.gather(*acts)
    assert writer.batches == batches + 1, "the five actions were written in one batch"
    assert resp[0]["status"] == "accepted" and resp[2]["status"] == "accepted"
    assert resp[1]["error"] and resp[3]["error"] == "ticket_not_found" and resp[4]["error"]
    assert [await status_in_db(app, t["number"]) for t in tickets] == ["accepted", "draft", "accepted", "draft"]
    history = await center.agent.get(f"/api/v1/tickets/{tickets[1]['number']}/history")
    assert [h["action"] for h in history] == ["create"]


async def test_a_write_hooks_after_commit_work_runs_once_for_each_action_that_committed(center):
    """A write hook (the callback survey's) leaves work for after the commit: it runs once for each action of the
    batch that committed, although a refusal after a write sent the batch through its savepoint pass (every job
    run again), and never for the refused action, whose work was asked for before a later hook refused it."""
    app = center.client.server.app
    store = app[tickets_http.STORE]
    writer = store.writer
    tickets = [await center.new_ticket() for _ in range(3)]
    refused = tickets[1]["number"]
    hooked: list[str] = []
    ran: list[str] = []

    def work_for_each_accept(conn: Any, view: Any, entry: Any) -> Any:
        if entry.action != "accept":
            return None
        number = view["number"]
        hooked.append(number)
        conn.execute(text("UPDATE tickets SET title = title WHERE number = :n"), {"n": number})
        return lambda: ran.append(number)

    def refuse_one(conn: Any, view: Any, entry: Any) -> None:
        if entry.action == "accept" and view["number"] == refused:  # after a write: only the savepoint pass
            raise Refused("not_permitted", "测试：拒绝受理", "draft", [])  # can tell whose it was

    store.write_hooks += [work_for_each_accept, refuse_one]
    try:
        blocker = await Blocker(app).start()
        await until(blocker.entered.is_set, "the first batch to start")
        batches = writer.batches
        acts = [act(center, "agent", t["number"], "accept") for t in tickets]
        await until(lambda: writer.queued == len(acts), "all actions to queue")
        await blocker.let_go()
        resp = await asyncio.gather(*acts)
        assert writer.batches == batches + 1, "the three actions were written in one batch"
    finally:
        store.write_hooks.remove(work_for_each_accept)
        store.write_hooks.remove(refuse_one)
    assert resp[0]["status"] == resp[2]["status"] == "accepted" and resp[1]["error"] == "not_permitted"
    assert hooked.count(tickets[0]["number"]) == 2, "the batch went through its savepoint pass"
    assert sorted(ran) == sorted([tickets[0]["number"], tickets[2]["number"]])
    assert [await status_in_db(app, t["number"]) for t in tickets] == ["accepted", "draft", "accepted"]


async def test_each_refusal_keeps_its_http_status(center):
    """Same batch, same checks as alone: the 409 names the state, the 404 the ticket."""
    app = center.client.server.app
    writer = app[tickets_http.STORE].writer
    t = await center.new_ticket()
    blocker = await Blocker(app).start()
    await until(blocker.entered.is_set, "the first batch to start")
    # queued one at a time: three requests sent together may reach the server in any order, and accept, dispatch,
    # sign in that order would all succeed
    sign = asyncio.ensure_future(center.client.post(f"/api/v1/tickets/{t['number']}/actions/sign", json={},
                                                    headers={"Authorization": f"Bearer {center.water.token}"}))
    await until(lambda: writer.queued == 1, "the sign to queue")
    dispatch = asyncio.ensure_future(center.client.post(
        f"/api/v1/tickets/{t['number']}/actions/dispatch", json={"lead_department_id": center.departments["swuj"]},
        headers={"Authorization": f"Bearer {center.agent.token}"}))
    await until(lambda: writer.queued == 2, "the dispatch to queue")
    accept = asyncio.ensure_future(center.client.post(f"/api/v1/tickets/{t['number']}/actions/accept", json={},
                                                      headers={"Authorization": f"Bearer {center.agent.token}"}))
    await until(lambda: writer.queued == 3, "the accept to queue")
    await blocker.let_go()
    sign_r, dispatch_r, accept_r = await asyncio.gather(sign, dispatch, accept)
    assert sign_r.status == 404  # the department does not see a ticket not dispatched to it
    assert dispatch_r.status == 409 and (await dispatch_r.json())["status"] == "draft"
    assert accept_r.status == 200


async def jobs_in_one_batch(app: Any, *jobs: Any) -> list[Any]:
    """Run ``jobs`` in one batch, in this order; their results or errors."""
    writer = app[tickets_http.STORE].writer
    blocker = await Blocker(app).start()
    await until(blocker.entered.is_set, "the batch before to start")
    batches, waits = writer.batches, []
    for n, job in enumerate(jobs, 1):  # one at a time, so that the batch runs them in this order
        waits.append(asyncio.ensure_future(writer.submit(job)))
        await until(lambda n=n: writer.queued == n, f"job {n} to queue")
    await blocker.let_go()
    results = await asyncio.gather(*waits, return_exceptions=True)
    assert writer.batches == batches + 1, "the jobs were written in one batch"
    return results


async def test_a_job_that_fails_after_writing_leaves_nothing_behind_and_the_others_commit(center):
    """Jobs that fail after writing, through ``Connection.execute`` or a prepared statement, or on the database's
    own refusal (which on PostgreSQL refuses the rest of the transaction), leave none of their writes; the jobs
    around them commit in the same batch, and a refusal before writing keeps its own error."""
    app = center.client.server.app
    writer = app[tickets_http.STORE].writer
    a, b, c, d, e = [await center.new_ticket() for _ in range(5)]
    one_batch = functools.partial(jobs_in_one_batch, app)

    def retitle(number: str, title: str, then_fail: bool = False) -> Any:
        def job(conn: Any) -> int:
            done = conn.execute(text("UPDATE tickets SET title = :t WHERE number = :n"), {"t": title, "n": number})
            if then_fail:
                raise Conflict("concurrent_update", "工单刚被他人修改，请刷新后重试")
            return int(done.rowcount)
        return job

    def history_then_fail(number: str) -> Any:
        def job(conn: Any) -> None:
            ticket_id = conn.execute(text("SELECT id FROM tickets WHERE number = :n"), {"n": number}).scalar_one()
            insert_row(conn, TicketHistory.__table__, {
                "ticket_id": ticket_id, "action": "note", "at": datetime.now(timezone.utc), "actor_role": "agent",
                "actor_name": "测试", "from_status": "draft", "to_status": "draft", "note": "不应留下", "data": {}})
            raise Refused("not_permitted", "无权操作", "draft", [])
        return job

    def take_number(number: str, taken: str) -> Any:  # the number is unique: the database refuses
        return lambda conn: conn.execute(text("UPDATE tickets SET number = :t WHERE number = :n"),
                                         {"t": taken, "n": number})

    def refuse(conn: Any) -> None:
        raise NotFound("ticket_not_found", "工单不存在")

    async def committed() -> tuple[dict[str, str], int]:
        async with app[server.READ_ENGINE].connect() as conn:
            titles = dict((await conn.execute(text("SELECT number, title FROM tickets"))).all())
            notes = (await conn.execute(text("SELECT count(*) FROM ticket_history WHERE note = '不应留下'"))).scalar()
        return titles, notes

    # each kind of failure in a batch of its own: one failure that undoes the batch would hide another's
    results = await one_batch(retitle(a["number"], "甲：已改"), retitle(b["number"], "乙：不应留下", then_fail=True),
                              refuse, retitle(e["number"], "戊：已改"))
    assert results[0] == 1 and results[3] == 1
    assert isinstance(results[1], Conflict) and isinstance(results[2], NotFound)
    titles, _ = await committed()
    assert titles[a["number"]] == "甲：已改" and titles[e["number"]] == "戊：已改"
    assert titles[b["number"]] == b["title"]

    results = await one_batch(history_then_fail(c["number"]), retitle(a["number"], "甲：再改"))
    assert isinstance(results[0], Refused) and results[1] == 1
    titles, notes = await committed()
    assert notes == 0 and titles[a["number"]] == "甲：再改"

    results = await one_batch(retitle(e["number"], "戊：再改"), take_number(d["number"], a["number"]),
                              retitle(c["number"], "丙：已改"))
    assert results[0] == 1 and isinstance(results[1], IntegrityError) and results[2] == 1
    titles, _ = await committed()
    assert titles[e["number"]] == "戊：再改" and titles[c["number"]] == "丙：已改"
    assert titles[d["number"]] == d["title"] and titles[a["number"]] == "甲：再改"

    if writer.sync_engine is None:  # PostgreSQL: after a refused statement it refuses the whole transaction,
        # and a COMMIT then rolls back without an error: a read that fails must not be taken for harmless
        def bad_read(conn: Any) -> Any:
            return conn.execute(text("SELECT CAST(CAST(:v AS TEXT) AS INTEGER)"), {"v": "不是数字"}).scalar()

        # last in its batch: a write after it would fail too, and undo the batch for its own reason
        results = await one_batch(retitle(a["number"], "甲：三改"), retitle(e["number"], "戊：三改"), bad_read)
        assert results[0] == 1 and results[1] == 1 and isinstance(results[2], DBAPIError)
        titles, _ = await committed()
        assert titles[a["number"]] == "甲：三改" and titles[e["number"]] == "戊：三改"
    # the writer goes on as before
    assert (await center.agent.act(b["number"], "accept"))["status"] == "accepted"


async def test_actions_decided_on_the_same_version_in_one_batch_all_take_effect_in_order(center):
    """Several actions queued for one ticket share a batch: each must be decided on what the earlier ones left
    (the ticket's new version and state), so two progress reports and then the reply, queued in that order, all
    take effect as if sent one by one, not a 409 for a change nobody else made. Any change that decides actions
    ahead of the batch (on the committed version) must keep this."""
    app = center.client.server.app
    writer = app[tickets_http.STORE].writer
    number = (await center.new_ticket(accept=True))["number"]
    await center.agent.act(number, "dispatch", lead_department_id=center.departments["swuj"])
    await center.water.act(number, "sign")
    blocker = await Blocker(app).start()
    await until(blocker.entered.is_set, "the first batch to start")
    steps = [("progress_report", {"note": "已派人现场查看"}), ("progress_report", {"note": "已约施工方"}),
             ("reply", {"answer": "经核查，施工单位已于当日整改完毕。"})]
    acts = []
    for i, (action, params) in enumerate(steps):  # one at a time, so that they queue in this order
        acts.append(act(center, "water", number, action, **params))
        await until(lambda n=i + 1: writer.queued == n, f"{action} to queue")
    await blocker.let_go()  # all three queued behind the blocker's batch: the next batch takes them together
    answers = await asyncio.gather(*acts)
    assert [a.get("error") for a in answers] == [None] * 3, answers
    assert [a["status"] for a in answers] == ["signed", "signed", "replied"]
    history = await center.agent.get(f"/api/v1/tickets/{number}/history")
    assert [h["action"] for h in history][-3:] == ["progress_report", "progress_report", "reply"]
    assert [h["note"] for h in history][-3:-1] == ["已派人现场查看", "已约施工方"]
    assert await status_in_db(app, number) == "replied"


async def test_a_batchs_deferred_rows_commit_in_each_tickets_order(center):
    """Dispatch, sign and reply of one ticket in one batch, between other tickets' actions: the history and
    assignment rows, sent together before the commit, end as if each action had been written alone."""
    app = center.client.server.app
    writer = app[tickets_http.STORE].writer
    x, y, z = [(await center.new_ticket(accept=True))["number"] for _ in range(3)]
    await center.agent.act(z, "dispatch", lead_department_id=center.departments["swuj"])
    blocker = await Blocker(app).start()
    await until(blocker.entered.is_set, "the first batch to start")
    steps = [("agent", x, "dispatch", {"lead_department_id": center.departments["swuj"]}),
             ("agent", y, "dispatch", {"lead_department_id": center.departments["sthj"],
                                       "co_handler_ids": [center.departments["cgj"]]}),
             ("water", x, "sign", {}), ("water", z, "sign", {}),
             ("water", x, "reply", {"answer": "经核查，已于当日修复。"})]
    acts = []
    for i, (who, number, action, params) in enumerate(steps):  # one at a time, so that they queue in this order
        acts.append(act(center, who, number, action, **params))
        await until(lambda n=i + 1: writer.queued == n, f"{action} to queue")
    await blocker.let_go()
    answers = await asyncio.gather(*acts)
    assert [a.get("error") for a in answers] == [None] * 5, answers
    assert [a["status"] for a in answers] == ["dispatched", "dispatched", "signed", "signed", "replied"]
    history = await center.agent.get(f"/api/v1/tickets/{x}/history")
    assert [h["action"] for h in history] == ["create", "accept", "dispatch", "sign", "reply"]
    async with app[server.READ_ENGINE].connect() as conn:
        rows = (await conn.execute(text(
            "SELECT t.number, a.role, a.signed_at IS NOT NULL, a.closed_at IS NOT NULL, a.outcome FROM assignments a "
            "JOIN tickets t ON t.id = a.ticket_id WHERE t.number IN (:x, :y, :z) ORDER BY t.number, a.role"),
            {"x": x, "y": y, "z": z})).all()
    assert [tuple(r) for r in rows] == [(x, "lead", True, True, "replied"), (y, "co", False, False, None),
                                        (y, "lead", False, False, None), (z, "lead", True, False, None)]


async def test_a_deferred_row_is_its_own_jobs_the_database_refusing_it_fails_only_that_job(center):
    """History rows are sent at the end of the batch. A job that fails drops its rows unsent; a row the database
    refuses when the batch sends them fails its own job only (the batch is written again with savepoints),
    and the reads between them see the rows deferred before."""
    app = center.client.server.app
    numbers = [(await center.new_ticket())["number"] for _ in range(3)]
    async with app[server.READ_ENGINE].connect() as conn:
        ids = dict((await conn.execute(text("SELECT number, id FROM tickets"))).all())
    a, b, c = (ids[n] for n in numbers)
    history = Prepared(insert(TicketHistory.__table__))
    count = Prepared(select(func.count()).select_from(TicketHistory.__table__)
                     .where(TicketHistory.__table__.c.note == bindparam("b_note")))

    def note(ticket_id: int, text_: str, then_fail: bool = False) -> Any:
        def job(conn: Any) -> int:
            history.defer(conn, {"ticket_id": ticket_id, "action": "note", "at": datetime.now(timezone.utc),
                                 "actor_role": "agent", "actor_name": "测试", "from_status": "draft",
                                 "to_status": "draft", "note": text_, "data": {}}, ("ticket", ticket_id))
            if then_fail:
                raise Refused("not_permitted", "无权操作", "draft", [])
            return ticket_id
        return job

    def counted(text_: str) -> Any:  # the prepared read names ticket_history: the rows deferred before are sent
        return lambda conn: count.scalar(conn, {"b_note": text_})

    results = await jobs_in_one_batch(app, note(a, "甲记"), counted("甲记"), note(b, "乙记", then_fail=True),
                                      counted("乙记"), note(c, "丙记"))
    assert results[0] == a and results[1] == 1 and isinstance(results[2], Refused)
    assert results[3] == 0 and results[4] == c

    results = await jobs_in_one_batch(app, note(a, "丁记"), note(10**9, "没有这张工单"), note(c, "戊记"))
    assert results[0] == a and isinstance(results[1], IntegrityError) and results[2] == c

    async with app[server.READ_ENGINE].connect() as conn:
        kept = dict((await conn.execute(text(
            "SELECT note, count(*) FROM ticket_history WHERE action = 'note' GROUP BY note"))).all())
    assert kept == {"甲记": 1, "丙记": 1, "丁记": 1, "戊记": 1}


async def test_a_database_lost_mid_batch_answers_every_waiting_request_503(center):
    app = center.client.server.app
    writer = app[tickets_http.STORE].writer
    tickets = [await center.new_ticket() for _ in range(3)]
    first = await Blocker(app).start()
    await until(first.entered.is_set, "the first batch to start")
    before = [act(center, "agent", tickets[0]["number"], "accept"), act(center, "agent", tickets[1]["number"], "accept")]
    await until(lambda: writer.queued == 2, "two actions to queue")
    second = await Blocker(app).start()
    after = act(center, "agent", tickets[2]["number"], "accept")
    await until(lambda: writer.queued == 4, "the blocker and one more action to queue")
    await first.let_go()
    await until(second.entered.is_set, "the batch to stop half-way")

    if second.sqlite:  # the writer's connection closes under it, as when the database's disk goes away
        second.dbapi.close()
        await second.let_go()
    else:  # PostgreSQL: the server ends the writer's session (an admin, a failover, a crash)
        async with app[server.ENGINE].connect() as conn:
            killed = (await conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                "AND state = 'active' AND query LIKE '%pg_advisory_xact_lock%'"))).scalars().all()
        assert killed == [True]
        await second.let_go()
    resp = await asyncio.gather(*before, after)
    assert [r["error"] for r in resp] == ["database_unavailable"] * 3
    assert [await status_in_db(app, t["number"]) for t in tickets] == ["draft"] * 3
    with pytest.raises(Unavailable):
        await second.task
    # the next request finds a working connection again
    assert (await center.agent.act(tickets[0]["number"], "accept"))["status"] == "accepted"


async def test_kill_9_during_a_burst_loses_no_acknowledged_ticket(tmp_path, redis_url):
    """A real ``hotline serve`` on SQLite is killed with SIGKILL while 20 clients create and accept tickets:
    every ticket (and every acceptance) a client was told of is in the database file afterwards."""
    import os
    import signal
    import sqlite3
    import subprocess
    import sys

    import aiohttp

    from tests.conftest import ROOT, free_port
    from tests.tickets.conftest import PASSWORD

    db = tmp_path / "hotline.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update({"HOTLINE_SERVER_DATA_DIR": str(tmp_path / "var"), "HOTLINE_SERVER_PASSWORD_TIME_COST": "1",
                "HOTLINE_SERVER_PASSWORD_MEMORY_KIB": "1024", "HOTLINE_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
                "HOTLINE_REDIS_URL": redis_url, "HOTLINE_SERVER_ADMIN_PASSWORD": "admin-密码-123",
                "HOTLINE_LOG_LEVEL": "WARNING"})
    log_path = tmp_path / "server.log"
    log = log_path.open("w")
    loop = asyncio.get_running_loop()
    # The port is picked before the server binds it, so another process on the machine may take it between:
    # the server then exits (address already in use) and is started again on another port. Only its own
    # "Running on" line says the port is ours (a /health answer could come from another process's server).
    for _ in range(5):
        port = free_port()
        start = len(log_path.read_text(errors="replace"))
        proc = subprocess.Popen([sys.executable, "server.py", "serve", "--host", "127.0.0.1", "--port", str(port)],  # noqa: ASYNC220
                                cwd=ROOT, env=env, stdout=log, stderr=log)
        deadline = loop.time() + 120
        while f"Running on http://127.0.0.1:{port}" not in log_path.read_text(errors="replace")[start:]:
            if proc.poll() is not None:
                break
            if loop.time() > deadline:
                proc.kill()
                proc.wait(30)
                raise AssertionError("the server did not start")
            await asyncio.sleep(0.1)
        else:
            break
        if "address already in use" not in log_path.read_text(errors="replace")[start:]:
            raise AssertionError(log_path.read_text(errors="replace")[-2000:])
    else:
        raise AssertionError("the server found no free port in 5 tries")
    created: list[str] = []
    accepted: list[str] = []
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:

            async def login(user: str, password: str) -> dict[str, str]:
                async with http.post("/api/v1/auth/login",
                                     json={"username": user, "password": password, "kind": "api"}) as r:
                    assert r.status == 200, await r.text()
                    return {"Authorization": f"Bearer {(await r.json())['token']}"}

            admin = await login("admin", "admin-密码-123")
            async with http.post("/api/v1/users", headers=admin,
                                 json={"username": "burst", "password": PASSWORD, "role": "agent"}) as r:
                assert r.status == 201, await r.text()
            agent = await login("burst", PASSWORD)

            async def client(c: int) -> None:
                k = 0
                while True:
                    k += 1
                    try:
                        async with http.post("/api/v1/tickets", headers=agent, json={
                                "title": f"突发第{c}-{k}件", "content": "停电了，整栋楼没有电。"}) as r:
                            if r.status != 201:
                                continue
                            number = (await r.json())["number"]
                        created.append(number)
                        async with http.post(f"/api/v1/tickets/{number}/actions/accept", headers=agent,
                                             json={}) as r:
                            if r.status == 200:
                                accepted.append(number)
                    except (TimeoutError, aiohttp.ClientError):
                        return

            clients = [asyncio.ensure_future(client(c)) for c in range(20)]
            deadline = asyncio.get_running_loop().time() + 120
            while len(accepted) < 200:
                assert asyncio.get_running_loop().time() < deadline, f"only {len(accepted)} acceptances"
                await asyncio.sleep(0.01)
            os.kill(proc.pid, signal.SIGKILL)
            await asyncio.gather(*clients)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
        log.close()
    told_created, told_accepted = list(created), list(accepted)
    conn = sqlite3.connect(db)
    try:
        status = dict(conn.execute("SELECT number, status FROM tickets").fetchall())
    finally:
        conn.close()
    assert [n for n in told_created if n not in status] == []
    assert [n for n in told_accepted if status[n] != "accepted"] == []
    assert len(told_accepted) >= 200


async def access_log(center: Any, number: str) -> list[dict[str, Any]]:
    return (await center.admin.get(f"/api/v1/audit?category=access&subject=ticket:{number}"))["items"]


async def test_an_agents_detail_read_is_answered_once_its_access_log_row_is_committed(center):
    """The access-log row of a whole number shown rides the writer's next batch (no write transaction of its
    own), and the agent sees the number only after that batch committed it: exactly one row per read."""
    app = center.client.server.app
    writer = app[tickets_http.STORE].writer
    t = await center.new_ticket()
    before = len(await access_log(center, t["number"]))
    blocker = await Blocker(app).start()
    await until(blocker.entered.is_set, "the first batch to start")
    read = asyncio.ensure_future(center.agent.get(f"/api/v1/tickets/{t['number']}"))
    await until(lambda: writer.queued == 1, "the access-log row to queue for the next batch")
    assert not read.done()
    await blocker.let_go()
    shown = await read
    assert shown["caller_phone"] == "13800138000"
    entries = await access_log(center, t["number"])
    assert len(entries) == before + 1
    assert (entries[0]["action"], entries[0]["actor_username"]) == ("view_phone", "agent")


async def test_a_detail_read_whose_access_log_row_is_lost_shows_no_number(center):
    """If the batch holding the row fails, the read fails (503) instead of showing a number nobody recorded."""
    app = center.client.server.app
    writer = app[tickets_http.STORE].writer
    t = await center.new_ticket()
    before = len(await access_log(center, t["number"]))
    first = await Blocker(app).start()
    await until(first.entered.is_set, "the first batch to start")
    read = asyncio.ensure_future(center.agent.get(f"/api/v1/tickets/{t['number']}", expect=None))
    await until(lambda: writer.queued == 1, "the access-log row to queue")
    second = await Blocker(app, urgent=True).start()  # in the access-log row's batch
    await until(lambda: writer.queued == 2, "a blocker to queue behind it")
    await first.let_go()
    await until(second.entered.is_set, "the batch to stop half-way")
    if second.sqlite:
        second.dbapi.close()
    else:
        async with app[server.ENGINE].connect() as conn:
            await conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                "AND state = 'active' AND query LIKE '%pg_advisory_xact_lock%'"))
    await second.let_go()
    answer = await read
    assert answer["error"] == "database_unavailable" and "13800138000" not in str(answer)
    with pytest.raises(Unavailable):
        await second.task
    assert len(await access_log(center, t["number"])) == before


async def test_health_answers_during_a_batch_and_reports_the_writer(center):
    """/health checks the database with a read, so it answers while a batch holds the write slot, and says
    what the writer is doing: a batch in progress, what is queued behind it, the last commit's age."""
    app = center.client.server.app
    writer = app[tickets_http.STORE].writer
    t = await center.new_ticket()  # at least one committed batch
    blocker = await Blocker(app).start()
    await until(blocker.entered.is_set, "the batch to start")
    accept = act(center, "agent", t["number"], "accept")
    await until(lambda: writer.queued == 1, "an action to queue behind the batch")
    resp = await center.client.get("/health")
    assert resp.status == 200
    health = await resp.json()
    w = health["checks"]["ticket_writer"]
    assert health["checks"]["database"] == "ok"
    assert w["writing"] is True and w["queued"] == 1 and w["batch_running_s"] is not None
    assert w["last_commit_age_s"] is not None and w["failed_batches"] == 0
    assert not accept.done()
    await blocker.let_go()
    assert (await accept)["status"] == "accepted"
    w = (await (await center.client.get("/health")).json())["checks"]["ticket_writer"]
    assert (w["writing"], w["queued"], w["batch_running_s"]) == (False, 0, None)


async def test_the_list_and_a_history_are_read_while_a_batch_holds_the_write_lock(center):
    """The list and the history read committed state beside the writer (SQLite: one hop each to the read
    threads, never through the writer's slot): an agent's screen answers while a batch is open, and shows the
    ticket as it was before the actions the batch has not yet committed."""
    app = center.client.server.app
    writer = app[tickets_http.STORE].writer
    t = await center.new_ticket()
    blocker = await Blocker(app).start()
    await until(blocker.entered.is_set, "the batch to start")
    accept = act(center, "agent", t["number"], "accept")
    await until(lambda: writer.queued == 1, "the accept to queue behind the batch")
    listed, history = await asyncio.gather(center.agent.get("/api/v1/tickets?limit=5"),
                                           center.agent.get(f"/api/v1/tickets/{t['number']}/history"))
    assert t["number"] in [i["number"] for i in listed["items"]] and listed["total"] >= 1
    assert [i["status"] for i in listed["items"] if i["number"] == t["number"]] == ["draft"]
    assert [e["action"] for e in history] == ["create"]
    assert not accept.done()
    await blocker.let_go()
    assert (await accept)["status"] == "accepted"
    assert [e["action"] for e in await center.agent.get(f"/api/v1/tickets/{t['number']}/history")] == [
        "create", "accept"]


async def test_a_detail_read_does_not_wait_for_the_actions_queued_before_it(center):
    """Its access-log row gets a short batch of its own before the next batch of actions: the agent sees the
    ticket while the batch of the actions queued before the read is still open."""
    app = center.client.server.app
    writer = app[tickets_http.STORE].writer
    t = await center.new_ticket()
    first = await Blocker(app).start()
    await until(first.entered.is_set, "the first batch to start")
    second = await Blocker(app).start()  # stands for the actions queued meanwhile
    await until(lambda: writer.queued == 1, "the next batch of actions to queue")
    read = asyncio.ensure_future(center.agent.get(f"/api/v1/tickets/{t['number']}"))
    await until(lambda: writer.queued == 2, "the access-log row to queue")
    await first.let_go()
    await until(second.entered.is_set, "the batch of actions to start")
    # the actions' batch is held open: the read must have been answered without it
    await until(read.done, "the read to be answered while the actions' batch is still open")
    assert (await read)["caller_phone"] == "13800138000"
    assert [e["action"] for e in await access_log(center, t["number"])][:1] == ["view_phone"]
    await second.let_go()
    await second.task


def writers_lock(app: Any) -> int:
    """Take the SQLite writers' lock as another server process on the same file would: a real flock on the real
    lock file (its own open file description, so it conflicts with the writer's although in this process)."""
    engine = app[tickets_http.STORE].writer.sync_engine
    fd = os.open(writer_module._handoff_path(engine), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # PostgreSQL's writers never take turns
async def test_a_writer_waits_while_another_process_writes_and_then_commits(center):
    app = center.client.server.app
    writer = app[tickets_http.STORE].writer
    t = await center.new_ticket()
    fd = writers_lock(app)
    try:
        accept = act(center, "agent", t["number"], "accept")
        await until(lambda: writer.status()["writing"], "the batch to start")
        await asyncio.sleep(0.3)  # the batch waits for the other process: no answer, nothing written
        assert not accept.done()
        assert await status_in_db(app, t["number"]) == "draft"
    finally:
        os.close(fd)
    assert (await accept)["status"] == "accepted"
    assert await status_in_db(app, t["number"]) == "accepted"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_process_stuck_holding_the_writers_lock_costs_a_503_not_a_hang(center, monkeypatch):
    app = center.client.server.app
    t = await center.new_ticket()
    fd = writers_lock(app)
    # Only the bound is shortened (30 s in production; the test would wait it out): the server, SQLite, the lock
    # file and the stuck holder's flock are all real.
    monkeypatch.setattr(writer_module, "HANDOFF_TIMEOUT_S", 0.5)
    try:
        answer = await center.agent.call("POST", f"/api/v1/tickets/{t['number']}/actions/accept", json={},
                                         expect=503)
        assert answer["error"] == "database_unavailable"
        assert await status_in_db(app, t["number"]) == "draft"
    finally:
        os.close(fd)
    assert (await center.agent.act(t["number"], "accept"))["status"] == "accepted"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_writer_stops_although_another_process_never_lets_the_writers_lock_go(center, monkeypatch):
    """A batch that gave up waiting for a stuck peer (503) leaves the writer's thread in a blocking flock. Stopping
    the server must not wait for that peer: the thread has started nothing, so nothing is lost by leaving it."""
    app = center.client.server.app
    writer = app[tickets_http.STORE].writer
    t = await center.new_ticket()
    # Only the bound is shortened (30 s in production; the test would wait it out). Nothing is mocked: the server,
    # SQLite, the lock file, the stuck peer's flock and the writer's thread are real.
    monkeypatch.setattr(writer_module, "HANDOFF_TIMEOUT_S", 0.5)
    fd = writers_lock(app)
    try:
        await center.agent.call("POST", f"/api/v1/tickets/{t['number']}/actions/accept", json={}, expect=503)
        stopped = asyncio.get_running_loop().run_in_executor(None, writer.close)
        await asyncio.wait_for(stopped, 60)  # before: waited for the peer, for ever
        assert await status_in_db(app, t["number"]) == "draft"
    finally:
        os.close(fd)


class CounterHolder(Blocker):
    """A create's batch held open after it took the day's ticket number: it holds the counter row's lock."""

    async def start(self) -> Blocker:
        self.holder = await self.app[server.ENGINE].connect()
        await self.holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": self.key})
        self.task = asyncio.ensure_future(self.writer.submit(self.job, numbered=True))
        return self

    def job(self, conn: Any) -> None:
        conn.execute(text("SELECT day FROM ticket_counters FOR UPDATE"))  # what a create's upsert holds
        super().job(conn)


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_an_action_does_not_wait_for_a_create_that_waits_for_the_days_number(center):
    """PostgreSQL runs batches side by side. A create waits while another create's batch holds the day's number;
    an agent's accept sent at the same moment must not wait with it (before, it could share the waiting batch or
    find every batch slot taken by waiting creates). Numbers stay gapless and in order."""
    app = center.client.server.app
    writer = app[tickets_http.STORE].writer
    t = await center.new_ticket()
    holder = await CounterHolder(app).start()
    writer.parallel = 2  # Blocker makes it 1; two slots, as few as a busy pool leaves
    await until(holder.entered.is_set, "the create's batch to hold the day's number")
    create = asyncio.ensure_future(center.agent.post("/api/v1/tickets", {
        "title": "路灯不亮", "content": "幸福路路灯坏了。", "caller_phone": "13800138001"}, expect=201))
    await until(lambda: writer.queued >= 1, "the second create to queue for the day's number")
    accepted = await asyncio.wait_for(act(center, "agent", t["number"], "accept"), 60)
    assert accepted["status"] == "accepted"
    assert not create.done()
    await holder.let_go()
    created = await create
    day, seq = t["number"].split("-")
    assert created["number"] == f"{day}-{int(seq) + 1:06d}"
