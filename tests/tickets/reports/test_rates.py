"""The core rates and ranking on a known set of tickets, through the API on both databases."""
from __future__ import annotations

import pytest

from tests.tickets.conftest import Center
from tickets.reports import rates


async def _through(center: Center, dept: str, *, sign_late: bool = False, reply: bool = True,
                   survey: tuple[str, bool] | None = None, returned: bool = False) -> str:
    t = await center.new_ticket(accept=True, request_type="help")
    n = t["number"]
    await center.agent.act(n, "dispatch", lead_department_id=center.departments[dept])
    user = {"swuj": center.water, "sthj": center.env, "cgj": center.city}[dept]
    if returned:
        await user.act(n, "return", reason="属地不符")
        await center.agent.act(n, "approve_return")
        return n
    if sign_late:
        center.clock.advance(days=3)
    await user.act(n, "sign")
    if sign_late:
        center.clock.advance(days=-3)
    if reply:
        await user.act(n, "reply", answer="已办结")
        if survey:
            await center.agent.act(n, "record_survey", satisfaction=survey[0], resolved=survey[1])
    return n


async def test_rates_and_ranking_on_a_known_set(center: Center) -> None:
    # 水务: 5 counted dispatches: 4 tickets plus the re-handling (重办) that the dissatisfied answer opened;
    # the approved return does not count. 3 signed on time, 3 replied (all on time),
    # surveys: satisfied+resolved, basically_satisfied+resolved, dissatisfied+unresolved.
    await _through(center, "swuj", survey=("satisfied", True))
    await _through(center, "swuj", survey=("basically_satisfied", True))
    await _through(center, "swuj", survey=("dissatisfied", False))
    await _through(center, "swuj", sign_late=True, reply=False)
    await _through(center, "swuj", returned=True)
    # 环保: 2 dispatches, both on time, both satisfied and resolved.
    await _through(center, "sthj", survey=("satisfied", True))
    await _through(center, "sthj", survey=("satisfied", True))

    body = await center.super.get("/api/v1/rates?from=2026-11-01&to=2026-11-30")
    by_code = {row["code"]: row for row in body["departments"]}
    water, env = by_code["swuj"], by_code["sthj"]
    assert water["counts"]["dispatched"] == 5
    assert water["response_rate"] == 0.6
    assert water["completion_rate"] == 0.6
    assert water["on_time_rate"] == 1.0
    assert water["resolution_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert water["satisfaction_rate"] == pytest.approx(2 / 3, abs=1e-4)
    expected = 100 * (0.30 * 0.6 + 0.35 * (2 / 3) + 0.35 * (2 / 3))
    assert water["composite"] == pytest.approx(expected, abs=0.01)
    # 环保 scores 100 on 2 cases, below tickets.min_cases_to_rank (5): listed, scored, not ranked.
    assert (env["composite"], env["rank"], env["unranked"]) == (100.0, None, "样本不足")
    assert (water["rank"], water["unranked"]) == (1, None)
    assert (by_code["cgj"]["composite"], by_code["cgj"]["rank"], by_code["cgj"]["unranked"]) == (None, None, "无派单")
    assert [row["code"] for row in body["departments"]][:2] == ["swuj", "sthj"]  # ranked first
    # The survey that reopened the ticket sits in the ledger, and the period filter excludes other months.
    empty = await center.super.get("/api/v1/rates?from=2026-10-01&to=2026-10-31")
    assert all(row["counts"]["dispatched"] == 0 for row in empty["departments"])
    bad = await center.super.get("/api/v1/rates?from=2026-11-30&to=2026-11-01", expect=400)
    assert bad["field"] == "to"


def test_basically_satisfied_weight_and_missing_rates() -> None:
    c = rates.Counts(dispatched=10, signed_on_time=10, replied=10, replied_on_time=9, surveyed=4, resolved=3,
                     resolved_answered=3, satisfied=2, basically_satisfied=2)
    full = rates.compute(1, c, rates.Weights())
    strict = rates.compute(1, c, rates.Weights(basically_satisfied=0.5))
    assert full.satisfaction_rate == 1.0 and strict.satisfaction_rate == 0.75
    assert full.resolution_rate == 1.0  # the caller who hung up before the question is not counted
    # No survey answer yet: the rates say "no data", the score counts them as 0 (not a free pass).
    only_response = rates.compute(2, rates.Counts(dispatched=4, signed_on_time=3), rates.Weights())
    assert only_response.satisfaction_rate is None and only_response.resolution_rate is None
    assert only_response.composite == 22.5


def test_a_department_that_never_replies_does_not_rank_first() -> None:
    """The reported bug: 0 % 办结率 ranked first with 100 points because the missing rates were skipped."""
    never_replies = rates.Counts(dispatched=6, signed_on_time=6)
    works = rates.Counts(dispatched=6, signed_on_time=5, replied=6, replied_on_time=6, surveyed=6, resolved=5,
                         resolved_answered=6, satisfied=5, dissatisfied=1)
    one_case = rates.Counts(dispatched=1, signed_on_time=1, replied=1, replied_on_time=1, surveyed=1, resolved=1,
                            resolved_answered=1, satisfied=1)
    table = rates.ranking({1: never_replies, 2: works, 3: one_case, 4: rates.Counts()}, rates.Weights(), 5)
    assert [(r.department_id, r.rank, r.unranked) for r in table] == [
        (2, 1, None), (1, 2, None), (3, None, "样本不足"), (4, None, "无派单")]
    assert table[1].composite == 30.0 and table[2].composite == 100.0 and table[3].composite is None
    # Equal scores share a rank; the minimum is configurable.
    tied = rates.ranking({5: works, 6: works, 3: one_case}, rates.Weights(), 1)
    assert [(r.department_id, r.rank) for r in tied] == [(3, 1), (5, 2), (6, 2)]
