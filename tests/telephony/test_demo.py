"""The demonstration hour (``hotline screenshots``' wallboard) folds like Asterisk's own events: the wallboard
shows what the reducer and the call records say, and every promise of the scene holds on any day."""
from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from test_http import login, make_app

from telephony.demo import BREAK, busy_hour
from telephony.reducer import fold
from telephony.state import CallEnded, CallMissed
from tickets.accounts import http as accounts_http

NOW = datetime(2026, 11, 23, 6, 30, tzinfo=UTC)  # 14:30 in the centre's day


def test_the_busy_hour_as_the_reducer_folds_it() -> None:
    state, effects = fold(busy_hour(NOW.timestamp()))
    q = state.queues["12345"]
    waiting = sorted(q.waiting.values(), key=lambda w: w.joined)
    assert [w.position for w in waiting] == [1, 2, 3, 4]  # in the order they came
    assert q.stats.answer_rate is not None and q.stats.answer_rate < 0.95  # the banner has something to say
    states = Counter(a.state for a in state.agents.values())
    assert states["in_call"] == 3 and states["paused"] == 1
    assert state.agents[BREAK[0]].pause_reason == BREAK[1]
    ended = [e for e in effects if isinstance(e, CallEnded)]
    assert all(e.wait is not None and e.wait >= 0 for e in ended)
    assert sum(isinstance(e, CallMissed) for e in effects) == q.stats.abandoned == 4


async def test_the_wallboard_figures_of_the_busy_hour(aiohttp_client, settings_factory, redis_url) -> None:
    app, svc = make_app(settings_factory(redis_url=redis_url), lambda: NOW)
    client = await aiohttp_client(app)
    sup = await login(client, app[accounts_http.USERS], "banzhang", "supervisor")
    events = busy_hour(NOW.timestamp())
    for e in events:
        svc.submit(e)
    await svc.drain()
    _, effects = fold(events)
    answered = Counter(e.interface for e in effects if isinstance(e, CallEnded) and e.outcome == "answered")
    agents = (await (await client.get("/api/v1/telephony/wallboard", headers=sup)).json())["agents"]
    assert {i: a["answered"] for i, a in agents.items()} == answered
