"""Hot issues from real messages: known groups of the data land whole in their own clusters."""
from __future__ import annotations

import random
from datetime import datetime
from functools import lru_cache

from tests.tickets.routing.fixtures import SUPPORT, read_rows
from tickets.routing import hot_issues

# Groups picked by place words, independent of the clustering: the mixing-plant noise at 丽发新城 and the
# parking spaces sold with flats at 伊景园滨河苑 are the two biggest hot issues of this message board.
GROUPS = {
    "mixing_plant": lambda t: "丽发新城" in t and "搅拌站" in t,
    "parking": lambda t: "伊景园" in t,
}


@lru_cache(maxsize=1)
def fixed_set() -> tuple[list[hot_issues.Doc], dict[str, set[int]]]:
    rows = read_rows(SUPPORT)
    docs = [hot_issues.Doc(int(r["id"]), r["title"], r["body"], datetime.fromisoformat(r["time"]))
            for r in rows]
    members = {g: {d.id for d in docs if f(d.title + d.content)} for g, f in GROUPS.items()}
    chosen = set().union(*members.values())
    rest = [d for d in docs if d.id not in chosen]
    random.Random(0).shuffle(rest)
    return [d for d in docs if d.id in chosen] + rest[:500], members


def test_known_groups_form_their_own_named_clusters() -> None:
    docs, members = fixed_set()
    clusters = hot_issues.cluster(docs, params=hot_issues.Params(alert_size=10_000))
    for group, ids in members.items():
        best = max(clusters, key=lambda c: len(ids & set(c.members)))
        assert len(ids & set(best.members)) >= 0.9 * len(ids), group
        assert len(ids & set(best.members)) >= 0.85 * best.size, group  # not a catch-all cluster
    mixing = max(clusters, key=lambda c: len(members["mixing_plant"] & set(c.members)))
    parking = max(clusters, key=lambda c: len(members["parking"] & set(c.members)))
    assert mixing is not parking
    assert "搅拌站" in mixing.keywords and any("丽发" in k for k in mixing.keywords)
    assert any("景园" in k or "滨河" in k for k in parking.keywords)
    assert clusters[0].size >= clusters[-1].size
    assert len(parking.examples) == 3 and all(e["title"] for e in parking.examples)


def test_growth_against_the_previous_period_and_alert() -> None:
    docs, members = fixed_set()
    parking = sorted((d for d in docs if d.id in members["parking"]), key=lambda d: (d.created_at, d.id))
    previous, recent = parking[:15], parking[15:]
    current = [d for d in docs if d.id not in members["parking"]] + recent
    params = hot_issues.Params(alert_size=20, alert_growth=1.0)
    clusters = hot_issues.cluster(current, previous, params)
    cluster = max(clusters, key=lambda c: len(members["parking"] & set(c.members)))
    assert 12 <= cluster.previous <= 15
    assert cluster.growth is not None and cluster.growth > 1.0
    assert cluster.alert
    quiet = hot_issues.cluster(current, previous, hot_issues.Params(alert_size=20, alert_growth=5.0))
    assert not max(quiet, key=lambda c: len(members["parking"] & set(c.members))).alert


def test_too_few_tickets_make_no_cluster() -> None:
    assert hot_issues.cluster([hot_issues.Doc(1, "路灯坏了", "")]) == []
