"""The core rates (考核指标) per department and a composite ranking. Pure.

Definitions (all over the department's lead assignments dispatched in the period, excluding
returns the dispatcher approved and tickets merged away; a re-handling (重办) after a dissatisfied
survey is a new dispatch to the same department and counts again):

- 响应率 / 签收率 ``response_rate`` = assignments signed by their sign deadline / assignments dispatched.
- 办结率 ``completion_rate`` = assignments replied (办结) / assignments dispatched.
- 按时办结率 ``on_time_rate`` = assignments replied by their (possibly extended) reply deadline / replied.
- 解决率 ``resolution_rate`` = answers "resolved" / answers to the resolved question (a caller who hung up
  before it is not counted).
- 满意率 ``satisfaction_rate`` = (满意 + w × 基本满意) / survey answers, w = ``basically_satisfied_weight``
  (1.0 by default: most cities count 基本满意 as satisfied). Unreachable callers are not answers.
- 综合评分 ``composite`` = 100 × Σ weightᵢ × rateᵢ / Σ weightᵢ over response, resolution and satisfaction,
  taking only the rates that exist (a department with no survey yet is scored on response alone),
  default weights 30 / 35 / 35.

A rate with an empty denominator is ``None`` ("no data"), never 0 or 100 %.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


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
    present = [(weight, rate) for weight, rate in parts if rate is not None and weight > 0]
    total_weight = sum(weight for weight, _ in present)
    composite = round(100 * sum(weight * rate for weight, rate in present) / total_weight, 2) if total_weight else None
    return DepartmentRates(department_id, c, response, _ratio(c.replied, c.dispatched),
                           _ratio(c.replied_on_time, c.replied), resolution, satisfaction, composite)


def ranking(counts: dict[int, Counts], weights: Weights) -> list[DepartmentRates]:
    """Departments by composite score, best first; equal scores share a rank; no data ranks last, unranked."""
    rows = [compute(d, c, weights) for d, c in counts.items()]
    scored = sorted((r for r in rows if r.composite is not None), key=lambda r: (-(r.composite or 0), r.department_id))
    out: list[DepartmentRates] = []
    previous: float | None = None
    rank = 0
    for position, row in enumerate(scored, start=1):
        if row.composite != previous:
            rank, previous = position, row.composite
        out.append(DepartmentRates(**{**row.__dict__, "rank": rank}))
    out += sorted((r for r in rows if r.composite is None), key=lambda r: r.department_id)
    return out
