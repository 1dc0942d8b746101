"""The core rates (考核指标) per department and a composite ranking. Pure.

Definitions (all over the department's lead assignments dispatched in the period, excluding
returns the dispatcher approved and tickets merged away; a re-handling (重办) after a dissatisfied
survey is a new dispatch to the same department and counts again):

- 响应率 / 签收率 ``response_rate`` = assignments signed by their sign deadline / assignments dispatched.
- 办结率 ``completion_rate`` = assignments replied (办结) / assignments dispatched.
- 按时办结率 ``on_time_rate`` = assignments replied by their (possibly extended) reply deadline / replied.
- 解决率 ``resolution_rate`` = answers "resolved" / answers to the resolved question (a caller who hung up
  before it is not counted). The centre-wide figure of the reports uses the same definition.
- 满意率 ``satisfaction_rate`` = (满意 + w × 基本满意) / survey answers, w = ``basically_satisfied_weight``
  (1.0 by default: most cities count 基本满意 as satisfied). Unreachable callers are not answers.
- 综合评分 ``composite`` = 100 × Σ weightᵢ × rateᵢ / Σ weightᵢ over response, resolution and satisfaction,
  default weights 30 / 35 / 35. A rate without data (no survey answer yet) counts as 0 in the score: a
  department that never replies must not be scored on its 响应率 alone.

Ranking rule: a department is ranked only with at least ``min_cases`` dispatched assignments in the period
(``tickets.min_cases_to_rank``, 5 by default); below that it is listed, scored, and marked 样本不足 without a
rank. A department with no dispatch has no score at all. Equal scores share a rank.

A rate with an empty denominator is ``None`` ("no data"), never 0 or 100 %, in the rate columns.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class Counts:
    dispatched: int = 0
    signed_on_time: int = 0
    replied: int = 0
    replied_on_time: int = 0
    surveyed: int = 0
    resolved: int = 0
    resolved_answered: int = 0
    satisfied: int = 0
    basically_satisfied: int = 0
    dissatisfied: int = 0


@dataclass(frozen=True)
class Weights:
    response: float = 0.30
    resolution: float = 0.35
    satisfaction: float = 0.35
    basically_satisfied: float = 1.0


@dataclass(frozen=True)
class DepartmentRates:
    department_id: int
    counts: Counts
    response_rate: float | None
    completion_rate: float | None
    on_time_rate: float | None
    resolution_rate: float | None
    satisfaction_rate: float | None
    composite: float | None
    rank: int | None = None
    # Why there is no rank: "样本不足" (fewer than min_cases dispatched) or "无派单"; None when ranked.
    unranked: str | None = None

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d.pop("department_id")
        return d


def _ratio(numerator: float, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def compute(department_id: int, c: Counts, w: Weights) -> DepartmentRates:
    response = _ratio(c.signed_on_time, c.dispatched)
    resolution = _ratio(c.resolved, c.resolved_answered)
    satisfaction = _ratio(c.satisfied + w.basically_satisfied * c.basically_satisfied, c.surveyed)
    parts = [(w.response, response), (w.resolution, resolution), (w.satisfaction, satisfaction)]
    total_weight = sum(weight for weight, _ in parts if weight > 0)
    composite = None
    if c.dispatched and total_weight:
        composite = round(100 * sum(weight * (rate or 0.0) for weight, rate in parts if weight > 0) / total_weight, 2)
    return DepartmentRates(department_id, c, response, _ratio(c.replied, c.dispatched),
                           _ratio(c.replied_on_time, c.replied), resolution, satisfaction, composite)


MIN_CASES_TO_RANK = 5
TOO_FEW = "样本不足"
NO_DISPATCH = "无派单"


def ranking(counts: dict[int, Counts], weights: Weights, min_cases: int = MIN_CASES_TO_RANK
            ) -> list[DepartmentRates]:
    """Ranked departments by composite score, best first (equal scores share a rank), then the unranked ones:
    fewer than ``min_cases`` dispatched (样本不足) by score, then those without any dispatch (无派单)."""
    rows = [compute(d, c, weights) for d, c in counts.items()]
    ranked = sorted((r for r in rows if r.composite is not None and r.counts.dispatched >= max(min_cases, 1)),
                    key=lambda r: (-(r.composite or 0.0), r.department_id))
    out: list[DepartmentRates] = []
    previous: float | None = None
    rank = 0
    for position, row in enumerate(ranked, start=1):
        if row.composite != previous:
            rank, previous = position, row.composite
        out.append(replace(row, rank=rank))
    chosen = {r.department_id for r in ranked}
    few = sorted((r for r in rows if r.department_id not in chosen and r.composite is not None),
                 key=lambda r: (-(r.composite or 0.0), r.department_id))
    out += [replace(r, unranked=TOO_FEW) for r in few]
    out += [replace(r, unranked=NO_DISPATCH) for r in sorted((r for r in rows if r.composite is None),
                                                            key=lambda r: r.department_id)]
    return out
