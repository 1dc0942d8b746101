"""The survey service on a real database (SQLite and PostgreSQL) and a real Redis, with a clock the test moves:
scheduling on reply, calling hours, retries and spacing, the concurrency limit, results on the ticket,
recovery after Redis loses its keys or a process dies."""
from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from arq.jobs import Job

from tests.tickets.surveys.conftest import World, build_world, local
from tickets.errors import Refused
from tickets.surveys.service import SURVEY_QUEUE, SurveyService


async def test_reply_schedules_a_survey_a_day_later_inside_calling_hours(world: World) -> None:
    world.clock.set_local(2026, 11, 23, 19, 30)  # replied Monday evening
    t = await world.replied()
    s = await world.survey_of(t["number"])
    assert (s.state, s.mode, s.attempts) == ("scheduled", "auto", 0)
    assert s.due_at == local(2026, 11, 24, 19, 30)  # Tuesday 19:30 is inside 14:00-20:00
    # The timer is an arq job deferred to the due time, one id per (survey, attempt).
    job = Job(f"survey:{s.id}:1", world.redis, _queue_name=SURVEY_QUEUE)
    info = await job.info()
    assert info is not None and info.function == "survey_attempt" and info.args == (s.id, 1)
    assert await world.redis.zscore(SURVEY_QUEUE, f"survey:{s.id}:1") == s.due_at.timestamp() * 1000
    # Enqueueing the same attempt again (second process, sweep) does not add a second job.
    await world.service.enqueue(s.id, 1, s.due_at + timedelta(hours=1))
    assert await world.redis.zcard(SURVEY_QUEUE) == 1
    assert await world.redis.zscore(SURVEY_QUEUE, f"survey:{s.id}:1") == s.due_at.timestamp() * 1000


async def _script_calls(redis: Any) -> int:
    stats = await redis.info("commandstats")
    return sum(stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("eval", "evalsha"))


async def test_timers_asked_together_go_in_one_redis_call_and_a_timer_already_set_stays(world: World) -> None:
    """The replies of one commit batch ask for their timers in the same turn of the event loop: one call to Redis
    sets them all, each an arq job of its own. A timer asked for again (a second process, a sweep) keeps its
    time, as arq's enqueue_job keeps an existing job."""
    timers = world.service.timers
    first = local(2026, 11, 24, 15, 0)
    assert await timers.set(1, 1, first) is True  # also loads the script into Redis
    before = await _script_calls(world.redis)
    due = [local(2026, 11, 24, 15, m) for m in range(1, 21)]
    added = await asyncio.gather(*(timers.set(100 + i, 1, d) for i, d in enumerate(due)),
                                 timers.set(1, 1, local(2026, 11, 25, 9, 0)))
    assert added == [True] * 20 + [False]
    assert await _script_calls(world.redis) - before == 1
    for i, d in enumerate(due):
        info = await Job(f"survey:{100 + i}:1", world.redis, _queue_name=SURVEY_QUEUE).info()
        assert info is not None and info.function == "survey_attempt" and info.args == (100 + i, 1)
        assert await world.redis.zscore(SURVEY_QUEUE, f"survey:{100 + i}:1") == d.timestamp() * 1000
    assert await world.redis.zscore(SURVEY_QUEUE, "survey:1:1") == first.timestamp() * 1000
    # arq's expiry: a week after the attempt falls due, counted from now
    expected_ms = (timedelta(days=7) + max(due[0] - world.clock(), timedelta(0))).total_seconds() * 1000
    assert abs(await world.redis.pttl("arq:job:survey:100:1") - expected_ms) < 60_000


async def test_a_reply_acknowledged_has_its_survey_even_if_the_process_dies_before_its_after_commit_work(
        world: World) -> None:
    """The survey row commits in the reply's own transaction. Without the work the hook leaves for after the
    commit (lost when the process dies at that moment) the reply still has its survey, and the sweep dials it
    when due."""
    hooks = world.store.write_hooks
    hooks[hooks.index(world.service.write_hook)] = lambda *a: (world.service.write_hook(*a), None)[1]
    t = await world.signed()
    await world.store.act(t["number"], "reply", {"answer": "已更换路灯。"}, world.dept)
    s = await world.survey_of(t["number"])
    assert (s.state, s.round, s.phone) == ("scheduled", 0, "13800138000")
    assert await world.redis.zcard(SURVEY_QUEUE) == 0  # its timer was the after-commit work
    world.clock.set_local(2026, 11, 24, 14, 0)
    await world.service.sweep()
    assert [(p["ticket"], p["attempt"]) for p in world.phone.placed] == [(t["number"], 1)]


async def test_a_reply_refused_after_its_survey_was_written_leaves_no_survey(world: World) -> None:
    """The survey is part of the reply: when something later in the same transaction refuses the reply, the
    survey goes with it, and the reply made again gets one survey."""
    def refuse(conn: Any, view: Any, entry: Any) -> None:
        if entry.action == "reply":
            raise Refused("sms_outbox_full", "短信队列已满", view["status"], [])

    t = await world.signed()
    world.store.write_hooks.append(refuse)  # after the survey's hook
    with pytest.raises(Refused):
        await world.store.act(t["number"], "reply", {"answer": "已更换路灯。"}, world.dept)
    world.store.write_hooks.remove(refuse)
    await world.service.drain()
    assert await world.surveys.for_ticket(t["number"]) == []
    assert await world.redis.zcard(SURVEY_QUEUE) == 0  # no timer for the survey that was never committed
    assert (await world.store.get(t["number"], world.dept))["status"] == "signed"
    await world.store.act(t["number"], "reply", {"answer": "已更换路灯。"}, world.dept)
    await world.service.drain()
    rows = await world.surveys.for_ticket(t["number"])
    assert [(r.round, r.state) for r, _ in rows] == [(0, "scheduled")]
    s = rows[0][0]
    assert await world.redis.zscore(SURVEY_QUEUE, f"survey:{s.id}:1") == s.due_at.timestamp() * 1000


async def test_who_is_not_called(world: World) -> None:
    anon = await world.replied(anonymous=True)
    web = await world.replied(channel="web", caller_phone="")
    opted = await world.replied(survey_opt_out=True)
    assert (await world.survey_of(anon["number"])).state == "manual"
    assert (await world.survey_of(web["number"])).state == "manual"
    assert (await world.survey_of(opted["number"])).state == "opted_out"
    manual = await world.surveys.manual_list()
    assert {m["ticket"] for m in manual} == {anon["number"], web["number"]}
    assert await world.redis.zcard(SURVEY_QUEUE) == 0  # nothing to dial
    world.clock.advance(days=2)
    await world.service.sweep()
    assert world.phone.placed == []


async def test_busy_then_no_answer_then_congestion_is_unreachable(world: World) -> None:
    t = await world.replied()
    s = await world.survey_of(t["number"])
    # Not due yet: the job does nothing.
    assert await world.service.job(s.id, 1) == "not_due"
    assert world.phone.placed == []
    world.clock.set_local(2026, 11, 24, 9, 0)
    assert await world.service.job(s.id, 1) == "queued"
    assert [p["ticket"] for p in world.phone.placed] == [t["number"]]
    req = world.phone.placed[0]
    assert req["number"] == "13800138000" and req["topic"] == "小区路灯不亮" and req["attempt"] == 1
    assert (await world.survey_of(t["number"])).state == "dialing"
    world.clock.advance(seconds=30)
    assert await world.result((s.id, 1), "busy", reason="5") == "retry"
    s = await world.survey_of(t["number"])
    assert (s.state, s.attempts, s.due_at) == ("scheduled", 1, local(2026, 11, 24, 11, 0))  # 2 h spacing
    # A duplicate of attempt 1's job is stale now.
    assert await world.service.job(s.id, 1) == "stale"
    world.clock.set_local(2026, 11, 24, 11, 0)
    assert await world.service.job(s.id, 2) == "queued"
    world.clock.advance(seconds=30)
    assert await world.result((s.id, 2), "no_answer", reason="3") == "retry"
    s = await world.survey_of(t["number"])
    assert s.due_at == local(2026, 11, 24, 14, 0)  # 13:00 falls in the lunch break
    world.clock.set_local(2026, 11, 24, 14, 0)
    await world.service.sweep()  # the sweep alone also finds a due survey (as if its job had vanished)
    assert len(world.phone.placed) == 3
    assert await world.result((s.id, 3), "congestion", reason="8") == "unreachable"
    s = await world.survey_of(t["number"])
    assert s.state == "unreachable"
    ticket = await world.store.get(t["number"], world.agent)
    assert ticket["survey_unreachable"] is True and ticket["satisfaction"] is None and ticket["status"] == "replied"
    history = await world.store.history(t["number"], world.agent)
    assert history[-1]["action"] == "survey_unreachable" and history[-1]["actor_role"] == "system"
    assert "占线" in history[-1]["note"]
    day = await world.surveys.campaign(local(2026, 11, 24, 0, 0), local(2026, 11, 25, 0, 0), world.clock())
    assert day["counts"]["unreachable"] == 1 and day["results"]["answered"] == 0
    assert day["calls"] == {"busy": 1, "no_answer": 1, "congestion": 1}


async def test_answers_are_recorded_and_dissatisfaction_reopens(world: World) -> None:
    happy = await world.replied()
    unhappy = await world.replied(title="自来水发黄")
    world.clock.set_local(2026, 11, 24, 9, 30)
    await world.service.sweep()
    keys = sorted(world.phone.open)
    assert len(keys) == 2
    ids = {r["ticket"]: (r["survey_id"], r["attempt"]) for r in world.phone.placed}
    assert await world.result(ids[happy["number"]], "answered", {"resolved": "1", "satisfaction": "1"}) == "recorded"
    assert await world.result(ids[unhappy["number"]], "answered", {"resolved": "2", "satisfaction": "3"}) == "recorded"
    t1 = await world.store.get(happy["number"], world.agent)
    assert (t1["status"], t1["satisfaction"], t1["resolved"]) == ("surveyed", "satisfied", True)
    t2 = await world.store.get(unhappy["number"], world.agent)
    # The workflow's rule (reopen by default): back to the department, in the ledger.
    assert t2["status"] == "dispatched" and t2["reopen_count"] == 1
    ledger = await world.store.ledger(world.supervisor)
    assert [(x["ticket"], x["satisfaction"], x["resolved"]) for x in ledger] == \
        [(unhappy["number"], "dissatisfied", False)]
    h = await world.store.history(happy["number"], world.agent)
    assert h[-1]["action"] == "record_survey" and h[-1]["data"]["via"] == "ivr"
    # Replied again after the reopen: a new survey round for the same ticket.
    await world.store.act(unhappy["number"], "sign", {}, world.dept)
    await world.store.act(unhappy["number"], "reply", {"answer": "已冲洗管道。"}, world.dept)
    await world.service.drain()
    rounds = await world.surveys.for_ticket(unhappy["number"])
    assert [(r.round, r.state) for r, _ in rounds] == [(0, "done"), (1, "scheduled")]


async def test_partial_answer_is_kept_and_retried(world: World) -> None:
    t = await world.replied()
    world.clock.set_local(2026, 11, 24, 9, 0)
    await world.service.sweep()
    s = await world.survey_of(t["number"])
    # The caller answered "resolved: no" and hung up before the satisfaction question.
    assert await world.result((s.id, 1), "answered", {"resolved": "2"}, reason="16") == "retry"
    s = await world.survey_of(t["number"])
    assert s.state == "scheduled" and s.answers == {"resolved": False}
    world.clock.set_local(2026, 11, 24, 11, 0)
    await world.service.sweep()
    # Second call: only the satisfaction question answered. Both answers end up on the ticket.
    assert await world.result((s.id, 2), "answered", {"satisfaction": "2"}) == "recorded"
    ticket = await world.store.get(t["number"], world.agent)
    assert (ticket["satisfaction"], ticket["resolved"]) == ("basically_satisfied", False)
    got = await world.surveys.get_with_attempts(s.id)
    assert [a.outcome for a in got[1]] == ["answered", "answered"]
    assert got[1][0].answers == {"resolved": "2"}


async def test_concurrency_limit_is_never_exceeded(database_url: str, redis_url: str, settings_factory: Any) -> None:
    from tests.tickets.surveys.conftest import Clock

    clock = Clock(local(2026, 11, 23, 9, 0))
    w = await build_world(database_url, redis_url, settings_factory, clock, max_concurrent=4)
    try:
        for i in range(10):
            await w.replied(caller_phone=f"1380013{i:04d}")
        clock.set_local(2026, 11, 24, 9, 0)
        await w.service.sweep()
        assert len(w.phone.open) == 4 and await w.service.slots_in_use() == 4
        # Another process (own Redis connection) sees the same limit.
        other = SurveyService(w.store, w.surveys, w.redis, w.settings, clock, originate=w.phone.originate)
        assert await other.pump() == 0
        done = 0
        while w.phone.open:
            key = sorted(w.phone.open)[0]
            await w.result(key, "answered", {"satisfaction": "1"})
            done += 1
            assert len(w.phone.open) <= 4
        assert done == 10 and w.phone.max_open == 4
        # Dialed in due order, each once.
        assert len({(p["survey_id"], p["attempt"]) for p in w.phone.placed}) == 10
        assert await w.service.slots_in_use() == 0
    finally:
        await w.redis.aclose()
        for e in set(w.engines):
            await e.dispose()


async def slots_freed(service: SurveyService, timeout: float = 60) -> None:
    """Wait until every lease has run out (Redis's own clock); ``timeout`` only bounds a failure."""
    deadline = asyncio.get_running_loop().time() + timeout
    while await service.slots_in_use():
        assert asyncio.get_running_loop().time() < deadline, "the leases never ran out"
        await asyncio.sleep(0.1)


async def test_slots_of_a_crashed_process_expire(world: World) -> None:
    world.service.max_concurrent = 2
    # Leases run on Redis's real clock: long enough that a loaded machine's pause between placing a call and
    # the next check never lets one run out early (0.5 s did), and the test waits for them to run out.
    world.service.lease_seconds = 3
    for i in range(3):
        await world.replied(caller_phone=f"1390013{i:04d}")
    world.clock.set_local(2026, 11, 24, 9, 0)
    await world.service.sweep()
    assert len(world.phone.open) == 2
    # The process "dies": its two calls never report back and it stops renewing its leases.
    world.phone.open.clear()
    assert await world.service.pump() == 0
    await slots_freed(world.service)
    placed = await world.service.pump()
    assert placed == 1 and await world.service.slots_in_use() == 1
    # Its claimed surveys stay "dialing" until the sweep gives up on them after max_call_seconds.
    world.clock.advance(seconds=world.service.max_call_seconds + 60)
    await slots_freed(world.service)  # the third call's lease runs out too (it is not renewed here)
    result = await world.service.sweep()
    assert result["lost"] == 3
    states = [(await world.surveys.get(p["survey_id"])).state for p in world.phone.placed]
    assert states == ["scheduled"] * 3


async def test_redis_lost_everything_the_sweep_rebuilds(world: World) -> None:
    tickets = [await world.replied(caller_phone=f"1370013{i:04d}") for i in range(3)]
    await world.redis.flushdb()  # a Redis restart without persistence: jobs and waiting set gone
    world.clock.set_local(2026, 11, 24, 9, 5)
    assert (await world.service.sweep())["due"] == 3
    assert sorted(p["ticket"] for p in world.phone.placed) == sorted(t["number"] for t in tickets)


async def test_ami_down_gives_the_attempt_back(world: World) -> None:
    t = await world.replied()
    world.clock.set_local(2026, 11, 24, 9, 0)
    world.phone.down = True
    await world.service.sweep()
    s = await world.survey_of(t["number"])
    assert (s.state, s.attempts) == ("scheduled", 0)
    assert await world.service.slots_in_use() == 0
    world.phone.down = False
    await world.service.pump()
    assert [p["attempt"] for p in world.phone.placed] == [1]


async def test_ticket_moving_on_cancels_or_closes_the_survey(world: World) -> None:
    a = await world.replied()
    b = await world.replied()
    # A supervisor reopens a before the survey; an agent records b's survey through the ticket API.
    await world.store.act(a["number"], "reopen", {"note": "答复不完整"}, world.supervisor)
    await world.store.act(b["number"], "record_survey", {"satisfaction": "satisfied", "resolved": True}, world.agent)
    await world.service.drain()
    assert (await world.survey_of(a["number"])).state == "cancelled"
    sb = await world.survey_of(b["number"])
    assert (sb.state, sb.satisfaction, sb.via) == ("done", "satisfied", "ticket")
    world.clock.set_local(2026, 11, 24, 9, 0)
    await world.service.sweep()
    assert world.phone.placed == []


async def test_backlog_never_rings_after_calling_hours(world: World) -> None:
    world.service.max_concurrent = 1
    a = await world.replied(caller_phone="13500135001")
    b = await world.replied(caller_phone="13500135002")
    world.clock.set_local(2026, 11, 24, 19, 55)
    await world.service.sweep()
    assert [p["ticket"] for p in world.phone.placed] == [a["number"]]  # one line: b waits
    world.clock.set_local(2026, 11, 24, 20, 3)  # a's call ends after closing time
    key = next(iter(world.phone.open))
    await world.result(key, "answered", {"satisfaction": "1"})
    await world.service.sweep()
    assert len(world.phone.placed) == 1  # b is not called at 20:03
    world.clock.set_local(2026, 11, 25, 9, 0)
    await world.service.sweep()
    assert [p["ticket"] for p in world.phone.placed] == [a["number"], b["number"]]


async def test_a_duplicate_wakeup_does_not_free_the_live_calls_slot(world: World) -> None:
    world.service.max_concurrent = 2
    t = await world.replied()
    world.clock.set_local(2026, 11, 24, 9, 0)
    s = await world.survey_of(t["number"])
    await world.service.job(s.id, 1)
    assert len(world.phone.placed) == 1 and await world.service.slots_in_use() == 1
    # A late duplicate of the same wake-up (another process's job, the sweep) puts the survey back in the
    # waiting set while its call is ringing: it loses the claim and must not release the live call's slot.
    await world.redis.zadd(world.service.k_waiting, {f"{s.id}:1": 0})
    assert await world.service.pump() == 0
    assert await world.service.slots_in_use() == 1
    assert len(world.phone.placed) == 1
    await world.result((s.id, 1), "answered", {"satisfaction": "1"})
    assert await world.service.slots_in_use() == 0


async def test_a_failure_after_the_result_is_stored_is_recovered_by_the_sweep(world: World) -> None:
    t = await world.replied()
    world.clock.set_local(2026, 11, 24, 9, 0)
    await world.service.sweep()
    s = await world.survey_of(t["number"])
    real_act = world.store.act

    async def broken(*args: object, **kw: object) -> object:
        raise RuntimeError("database went away")

    world.store.act = broken  # type: ignore[method-assign]
    try:
        await world.result((s.id, 1), "answered", {"satisfaction": "2", "resolved": "1"})
    except RuntimeError:
        pass
    world.store.act = real_act  # type: ignore[method-assign]
    assert (await world.survey_of(t["number"])).state == "dialing"
    world.clock.advance(seconds=world.service.max_call_seconds + 60)
    assert (await world.service.sweep())["lost"] == 1
    s = await world.survey_of(t["number"])
    assert (s.state, s.satisfaction, s.resolved) == ("done", "basically_satisfied", True)
    ticket = await world.store.get(t["number"], world.agent)
    assert ticket["satisfaction"] == "basically_satisfied"


async def test_a_long_call_keeps_its_slot_while_renewed(world: World) -> None:
    # 2 s leases renewed every 0.25 s for 3 s, longer than a lease: a loaded machine may pause the test up to
    # 1.75 s between renewals (0.2 s of 0.4 s leases left it no room).
    world.service.lease_seconds = 2
    await world.replied()
    world.clock.set_local(2026, 11, 24, 9, 0)
    await world.service.sweep()
    for _ in range(12):
        await asyncio.sleep(0.25)
        assert await world.service.renew_leases() == 1
        assert await world.service.slots_in_use() == 1
