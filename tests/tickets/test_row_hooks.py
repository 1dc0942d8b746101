"""TicketStore.row_hooks: rows another feature (the SMS outbox) writes with a workflow change commit with it or
not at all. A test-only table stands in for the outbox so this contract does not depend on that feature."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import pytest
import sqlalchemy as sa

import server
from tickets import http as tickets_http
from tickets import workflow

META = sa.MetaData()
HOOKED = sa.Table("test_hooked_rows", META, sa.Column("id", sa.Integer, primary_key=True),
                  sa.Column("ticket", sa.String(40), nullable=False), sa.Column("action", sa.String(40)),
                  sa.Column("status", sa.String(40)), sa.Column("text", sa.Text))


def outbox_hook(view: Mapping[str, Any], entry: workflow.HistoryEntry) -> Iterable[tuple[sa.Table, dict[str, Any]]]:
    yield HOOKED, {"ticket": view["number"], "action": entry.action, "status": view["status"],
                   "text": f"工单状态：{view['status_label']}"}


@pytest.fixture
async def hooked(center):
    app = center.client.server.app
    async with app[server.ENGINE].begin() as conn:
        await conn.run_sync(META.create_all)
    store = app[tickets_http.STORE]
    store.row_hooks.append(outbox_hook)
    return center, store, app[server.ENGINE]


async def rows(engine) -> list[tuple[str, str, str]]:
    async with engine.connect() as conn:
        result = await conn.execute(sa.select(HOOKED.c.ticket, HOOKED.c.action, HOOKED.c.status).order_by(HOOKED.c.id))
        return [tuple(r) for r in result]


async def test_hook_rows_commit_with_creation_and_each_action(hooked):
    center, _store, engine = hooked
    t = await center.new_ticket()
    await center.agent.act(t["number"], "accept")
    await center.agent.act(t["number"], "dispatch", lead_department_id=center.departments["swuj"])
    assert await rows(engine) == [(t["number"], "create", "draft"), (t["number"], "accept", "accepted"),
                                  (t["number"], "dispatch", "dispatched")]
    async with engine.connect() as conn:
        text = await conn.scalar(sa.select(HOOKED.c.text).where(HOOKED.c.action == "dispatch"))
    assert text == f"工单状态：{workflow.STATUS_LABELS['dispatched']}"  # Chinese arrives unmangled


async def test_refused_action_leaves_no_hook_row(hooked):
    center, _store, engine = hooked
    t = await center.new_ticket()
    body = await center.water.act(t["number"], "sign", expect=None)  # a draft is not the department's to sign
    assert body.get("error")
    await center.agent.act(t["number"], "dispatch", expect=409, lead_department_id=center.departments["swuj"])
    assert await rows(engine) == [(t["number"], "create", "draft")]


async def test_a_failing_hook_rolls_back_the_action_and_the_other_hooks_rows(hooked):
    center, store, engine = hooked

    def broken(view: Mapping[str, Any], entry: workflow.HistoryEntry) -> Iterable[tuple[sa.Table, dict[str, Any]]]:
        if entry.action == "accept":
            raise RuntimeError("outbox full")
        return []

    t = await center.new_ticket()
    store.row_hooks.append(broken)
    with pytest.raises(RuntimeError):
        await store.act(t["number"], "accept", {}, _principal(center.agent.user))
    store.row_hooks.remove(broken)
    assert await rows(engine) == [(t["number"], "create", "draft")]
    assert (await center.agent.get(f"/api/v1/tickets/{t['number']}"))["status"] == "draft"
    history = await center.agent.get(f"/api/v1/tickets/{t['number']}/history")
    assert [h["action"] for h in history] == ["create"]


async def test_merge_gives_rows_for_both_tickets(hooked):
    center, _store, engine = hooked
    master = await center.new_ticket()
    dup = await center.new_ticket(caller_phone="13900139000")
    await center.agent.act(master["number"], "accept")
    await center.agent.act(dup["number"], "accept")
    await center.agent.act(dup["number"], "merge", master=master["number"], note="同一工地")
    got = await rows(engine)
    assert (dup["number"], "merge", "merged") in got
    assert (master["number"], "merged_in", "accepted") in got


def _principal(user: Mapping[str, Any]):
    from tickets.accounts.service import Principal

    return Principal(id=user["id"], username=user["username"], name=user["name"], role=user["role"],
                     department_id=user["department_id"], department_code=user["department_code"],
                     interface=user["interface"])
