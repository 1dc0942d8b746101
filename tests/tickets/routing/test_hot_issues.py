"""Hot issues from real messages: known groups of the data land whole in their own clusters, clusters are one
matter each (precision on a labelled sample), one caller's template text is recognised, names are the
cluster's own place and matter."""
from __future__ import annotations

import random
from collections.abc import Callable
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

# The labelled sample (built by reading messages_with_support.csv; the data stays in ../shared): topic
# groups a supervisor names the same way, each a place + a matter, defined by words of the messages so
# that membership does not depend on the clustering. Every message of the file that the rule takes was
# read and is the same matter (places that carried several matters, 海伦春天 or 明昇壹城, were left out).
# 魅力之城 carries two matters (restaurant fumes and noise below flats; cracked floors): a cluster that
# mixes them is imprecise.
LABELLED: dict[str, Callable[[str], bool]] = {
    "丽发新城搅拌站": lambda t: "丽发新城" in t and "搅拌" in t,  # 55 messages, 52 callers
    "伊景园滨河苑捆绑车位": lambda t: "伊景园" in t,  # 57, 53
    "魅力之城底商油烟噪音": lambda t: "魅力之城" in t and any(k in t for k in ("油烟", "扰民", "烧烤", "噪音")),  # 22
    "魅力之城楼板开裂": lambda t: "魅力之城" in t and "开裂" in t,  # 4, one caller
    "老地方美食广场消防": lambda t: "老地方" in t and any(k in t for k in ("消防", "招商")),  # 9
    "805路改道木莲中路": lambda t: "805" in t and "木莲" in t,  # 8
    "青青家园住改商烟道": lambda t: "青青家园" in t and any(k in t for k in ("住改商", "烟道", "油烟", "通道", "小吃")),  # 12
    "诺亚山林门口医院": lambda t: "诺亚山林" in t and "医院" in t,  # 7
}
# One web user wrote 89 messages on many matters, all in the same template ("在国家倡导以人民为中心的大
# 背景下 ... 希望市委市政府加快 ..."): the biggest "hot issue" before (76 tickets named 加快、何具体、行动).
TEMPLATE_USER = "A00031618"


@lru_cache(maxsize=1)
def all_docs() -> list[hot_issues.Doc]:
    return [hot_issues.Doc(int(r["id"]), r["title"], r["body"], datetime.fromisoformat(r["time"]), caller=r["user"])
            for r in read_rows(SUPPORT)]


@lru_cache(maxsize=1)
def fixed_set() -> tuple[list[hot_issues.Doc], dict[str, set[int]]]:
    docs = all_docs()
    members = {g: {d.id for d in docs if f(d.title + d.content)} for g, f in GROUPS.items()}
    chosen = set().union(*members.values())
    rest = [d for d in docs if d.id not in chosen]
    random.Random(0).shuffle(rest)
    return [d for d in docs if d.id in chosen] + rest[:500], members


@lru_cache(maxsize=1)
def labelled_run() -> tuple[list[hot_issues.Cluster], dict[str, set[int]], set[int]]:
    """Every labelled message, the template user's messages and 1,000 others, clustered together."""
    docs = all_docs()
    groups = {g: {d.id for d in docs if f(d.title + d.content)} for g, f in LABELLED.items()}
    template = {d.id for d in docs if d.caller == TEMPLATE_USER}
    chosen = set().union(*groups.values()) | template
    rest = [d for d in docs if d.id not in chosen]
    random.Random(1).shuffle(rest)
    sample = [d for d in docs if d.id in chosen] + rest[:1000]
    return hot_issues.cluster(sample, params=hot_issues.Params(alert_size=5)), groups, template


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


def test_names_are_the_place_and_the_matter_of_the_cluster() -> None:
    docs, members = fixed_set()
    clusters = hot_issues.cluster(docs)
    mixing = max(clusters, key=lambda c: len(members["mixing_plant"] & set(c.members)))
    parking = max(clusters, key=lambda c: len(members["parking"] & set(c.members)))
    assert mixing.name.startswith("丽发新城") and "搅拌站" in mixing.name  # not 加快、何具体 or 发新城、丽发
    assert parking.name.startswith("伊景园滨河苑") and "捆绑" in parking.name
    texts = [hot_issues.plain(t) for t in ("A2区丽发新城附近建搅拌站", "投诉丽发新城小区噪音", "丽发新城灰尘大")]
    assert hot_issues.phrase("发新城", texts) == "丽发新城"


def test_clusters_of_the_labelled_sample_are_one_matter_each() -> None:
    """Precision: of the tickets in the cluster holding most of a labelled group, the share that belongs to
    that group (pooled over the groups); a message outside the group's rule counts as wrong even when it is
    related, so this is a lower bound. Measured 0.96 (171 of 178) on this sample; see BENCHMARKS.md."""
    clusters, groups, _ = labelled_run()
    right = total = 0
    used: set[int] = set()
    for ids in groups.values():
        best = max(clusters, key=lambda c: len(ids & set(c.members)))
        if len(ids & set(best.members)) < 3:
            continue
        assert id(best) not in used  # two matters never share one cluster (魅力之城 fumes vs cracks)
        used.add(id(best))
        right += len(ids & set(best.members))
        total += best.size
    assert total and right / total >= 0.9


def test_one_callers_template_is_recognised_and_never_alerts() -> None:
    clusters, _, template = labelled_run()
    theirs = [c for c in clusters if len(template & set(c.members)) > 0.5 * c.size]
    assert theirs and all(c.template and not c.alert and c.callers <= 2 for c in theirs)
    assert all(c.name.startswith("同一来电人多次反映") for c in theirs)
    # Many callers with one problem is no template: the two big issues alert (alert_size 5).
    big = [c for c in clusters if c.size >= 40 and not c.template]
    assert len(big) >= 2 and all(c.alert and c.callers >= 40 for c in big)
    # The repeated clauses are found per caller, and only when repeated in three or more tickets.
    docs = [hot_issues.Doc(i, f"问题{i}", f"在国家倡导以人民为中心的大背景下，第{i}件事情请处理", caller="x")
            for i in range(3)]
    assert hot_issues.template_clauses(docs) == {"x": {"在国家倡导以人民为中心的大背景下"}}
    assert hot_issues.template_clauses(docs[:2]) == {}


def test_alerts_need_one_matter_at_one_named_place() -> None:
    """In 7-day windows of the data every alert of before was noise (交房 at various estates, 西地省, A7县
    星沙 ...): an alert now needs a place most of the cluster's tickets name and a matter besides it."""
    background = random.Random(2).sample(all_docs(), 120)
    estates = ["锦绣华庭", "碧水蓝湾", "东方明珠苑", "金色家园", "阳光新城", "翠湖山庄", "书香名邸"]
    kinds = [hot_issues.Doc(-i, f"{e}开发商延期交房", f"{e}开发商延期交房一年多了，业主要求按合同赔偿违约金",
                            caller=f"k{i}") for i, e in enumerate(estates)]
    place = [hot_issues.Doc(-100 - i, f"丽发新城附近搅拌站噪音扰民{i}", f"丽发新城小区旁边的搅拌站日夜施工，噪音和粉尘严重{i}",
                            caller=f"p{i}") for i in range(7)]
    clusters = hot_issues.cluster(background + kinds + place, params=hot_issues.Params(alert_size=5))
    by_place = max(clusters, key=lambda c: len({d.id for d in place} & set(c.members)))
    assert by_place.alert and by_place.name.startswith("丽发新城")
    kind = [c for c in clusters if len({d.id for d in kinds} & set(c.members)) >= 3]
    assert all(not c.alert for c in kind)
    assert hot_issues.is_place("丽发新城") and hot_issues.is_place("劳动东路")
    assert not hot_issues.is_place("幼儿园") and not hot_issues.is_place("西地省") and not hot_issues.is_place("a7县")


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
