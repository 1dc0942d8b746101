"""Knowledge base: validity hides outdated answers from agents, editors are limited to their department."""
from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

import pytest

import server
from tests.tickets.conftest import TZ, Center, Clock, staff
from tickets.errors import InvalidField
from tickets.knowledge.service import EntryInput, is_valid_on, query_terms, score


def test_validity_window_is_inclusive() -> None:
    assert is_valid_on(date(2026, 1, 1), date(2026, 1, 31), date(2026, 1, 31))
    assert not is_valid_on(date(2026, 1, 1), date(2026, 1, 31), date(2026, 2, 1))
    assert not is_valid_on(date(2026, 1, 2), None, date(2026, 1, 1))
    assert is_valid_on(None, None, date(1999, 1, 1))


def test_query_terms_and_score() -> None:
    cut = lambda text: ["冬季", "供暖", "时间"] if text == "冬季供暖时间" else []
    assert query_terms("冬季供暖时间， 噪音", cut) == ["冬季供暖时间", "冬季", "供暖", "时间", "噪音"]
    entry = {"question": "供暖温度标准", "keywords": "供暖 暖气", "answer": "不低于18℃"}
    other = {"question": "何时开始供暖", "keywords": "", "answer": "11月15日"}
    assert score(entry, ["供暖"]) > score(other, ["供暖"]) > score(other, ["噪音"]) == 0


def test_entry_input_checks() -> None:
    with pytest.raises(InvalidField) as err:
        EntryInput.parse({"question": "q", "answer": "a", "valid_from": "2026-02-01", "valid_to": "2026-01-01"})
    assert err.value.field == "valid_to"
    with pytest.raises(InvalidField):
        EntryInput.parse({"question": " ", "answer": "a"})
    assert EntryInput.parse({"question": "q", "answer": "a", "keywords": "供暖，暖气  温度"}).keywords == "供暖 暖气 温度"


@pytest.fixture
async def kb(aiohttp_client, sqlite_url, redis_url, settings_factory, sqlite_template) -> Center:
    import shutil

    shutil.copyfile(sqlite_template, sqlite_url.split("///", 1)[1])
    clock = Clock(datetime(2026, 11, 23, 9, 0, tzinfo=TZ).astimezone(timezone.utc))
    settings = settings_factory(database_url=sqlite_url, redis_url=redis_url)
    app = server.create_app(settings, clock)  # the console's setup registers the knowledge API
    client = await aiohttp_client(app)
    return await staff(Center(client, clock, {}), settings.server.admin_password, [
        ("agent", "agent", None), ("super", "supervisor", None), ("water", "department", "swuj"),
        ("env", "department", "sthj")])


async def test_agents_find_only_valid_entries(kb: Center) -> None:
    base = {"keywords": "供暖 暖气"}
    await kb.super.post("/api/v1/knowledge", {**base, "question": "供暖温度标准是多少？", "answer": "不低于18℃"}, expect=201)
    old = await kb.super.post("/api/v1/knowledge", {**base, "question": "2025年供暖开始时间", "answer": "11月15日",
                                                    "valid_to": "2026-11-22"}, expect=201)
    await kb.super.post("/api/v1/knowledge", {**base, "question": "明年供暖政策", "answer": "待定",
                                              "valid_from": "2026-12-01"}, expect=201)
    await kb.super.post("/api/v1/knowledge", {"question": "夜间施工噪音", "answer": "22时至6时禁止施工"}, expect=201)
    found = await kb.agent.get("/api/v1/knowledge?q=供暖温度")
    assert [e["question"] for e in found] == ["供暖温度标准是多少？"]  # expired and not-yet-valid are hidden
    assert [e["question"] for e in await kb.agent.get("/api/v1/knowledge?q=施工")] == ["夜间施工噪音"]
    review = await kb.super.get("/api/v1/knowledge/review")
    assert [e["id"] for e in review] == [old["id"]] and review[0]["expired"]
    # Renewing the entry brings it back to agents and off the review list.
    await kb.super.call("PUT", f"/api/v1/knowledge/{old['id']}", {**base, "question": "2026年供暖开始时间",
                                                                  "answer": "11月15日", "valid_to": "2027-03-31"})
    assert "2026年供暖开始时间" in [e["question"] for e in await kb.agent.get("/api/v1/knowledge?q=供暖")]
    assert await kb.super.get("/api/v1/knowledge/review") == []


async def test_editing_rights(kb: Center) -> None:
    await kb.agent.post("/api/v1/knowledge", {"question": "q", "answer": "a"}, expect=403)
    mine = await kb.water.post("/api/v1/knowledge", {"question": "停水通知在哪里看", "answer": "水务局网站",
                                                     "department_id": kb.departments["sthj"]}, expect=201)
    assert mine["department_id"] == kb.departments["swuj"]  # a department always writes for itself
    await kb.env.call("PUT", f"/api/v1/knowledge/{mine['id']}", {"question": "x", "answer": "y"}, expect=403)
    await kb.super.call("PUT", f"/api/v1/knowledge/{mine['id']}", {"question": "停水通知", "answer": "见官网",
                                                                   "department_id": kb.departments["swuj"]})
    body = await kb.super.post("/api/v1/knowledge", {"question": "q", "answer": "a", "valid_to": "明天"}, expect=400)
    assert body["field"] == "valid_to"
    await kb.agent.get("/api/v1/knowledge/999", expect=404)


async def test_reading_by_id_shows_no_more_than_search(kb: Center) -> None:
    """GET /knowledge/{id}: agents only what they may read out today; a department its own entries in any state
    and others' valid ones; supervisors everything. Hidden is 404, like a missing id."""
    water, env = kb.departments["swuj"], kb.departments["sthj"]

    async def entry(who: Any, question: str, **fields: Any) -> int:
        return (await who.post("/api/v1/knowledge", {"question": question, "answer": "口径", **fields},
                               expect=201))["id"]

    today = "2026-11-23"  # the fixture's clock: 09:00 in the centre's day
    valid = await entry(kb.water, "停水通知在哪里看")
    ends_today = await entry(kb.water, "今日到期的口径", valid_to=today)
    expired = await entry(kb.water, "去年的阶梯水价", valid_to="2026-11-22")
    future = await entry(kb.water, "明年的阶梯水价", valid_from="2026-11-24")
    off = await entry(kb.water, "已撤回的口径", active=False)
    shared_expired = await entry(kb.super, "全市通用的旧口径", valid_to="2026-01-01")
    env_expired = await entry(kb.super, "生态环境局的旧口径", valid_to="2026-01-01", department_id=env)
    readable_by_all = {valid, ends_today}
    hidden = {expired, future, off, shared_expired, env_expired}

    for i in readable_by_all:
        assert (await kb.agent.get(f"/api/v1/knowledge/{i}"))["valid"]
    for i in hidden:
        body = await kb.agent.get(f"/api/v1/knowledge/{i}", expect=404)
        assert body["error"] == "knowledge_not_found" and "口径" not in str(body)
    # another department reads water's entries only while they are valid, and no one's withdrawn ones
    for i in readable_by_all:
        await kb.env.get(f"/api/v1/knowledge/{i}")
    for i in (expired, future, off, shared_expired):
        await kb.env.get(f"/api/v1/knowledge/{i}", expect=404)
    assert (await kb.env.get(f"/api/v1/knowledge/{env_expired}"))["expired"]  # its own, for review
    # water reads all of its own (to renew them), but not others' expired ones
    for i in (valid, ends_today, expired, future, off):
        assert (await kb.water.get(f"/api/v1/knowledge/{i}"))["department_id"] == water
    for i in (shared_expired, env_expired):
        await kb.water.get(f"/api/v1/knowledge/{i}", expect=404)
    # supervisors see everything (they review and renew the whole base)
    for i in readable_by_all | hidden:
        await kb.super.get(f"/api/v1/knowledge/{i}")
    # the knowledge page's edit form asks the same question
    await kb.env.get(f"/knowledge?edit={expired}", expect=404)
    page = await kb.water.get(f"/knowledge?edit={expired}")
    assert "去年的阶梯水价" in page
    # what a search shows can always be opened by id
    for who in (kb.agent, kb.env, kb.water):
        for e in await who.get("/api/v1/knowledge?limit=100"):
            await who.get(f"/api/v1/knowledge/{e['id']}")
