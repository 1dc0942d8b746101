"""Duplicate detection on real messages: the near-duplicate pairs of the data, re-reports, speed of the index."""
from __future__ import annotations

import random
import re
from functools import lru_cache

import numpy as np
import pytest

from tests.tickets.routing.fixtures import SUPPORT, read_rows
from tickets.routing import duplicates, textproc


@lru_cache(maxsize=1)
def messages() -> list[tuple[int, str]]:
    return [(int(r["id"]), textproc.ticket_text(r["title"], r["body"])) for r in read_rows(SUPPORT)]


@lru_cache(maxsize=1)
def reference_pairs(threshold: float = 0.8) -> set[tuple[int, int]]:
    """Exact all-pairs Jaccard of character 3-grams (a sparse product, no MinHash): the known near duplicates."""
    from sklearn.feature_extraction.text import CountVectorizer

    msgs = messages()
    X = CountVectorizer(analyzer="char", ngram_range=(3, 3), binary=True, lowercase=False).fit_transform(
        [textproc.compact(t) for _, t in msgs]).astype(np.float32).tocsr()
    size = np.asarray(X.sum(axis=1)).ravel()
    order = np.argsort(size)
    pairs = set()
    # Jaccard >= t needs sizes within a factor t of each other: compare each block of similar-sized
    # messages only with its size window (exact, and 10x faster than the full product).
    for start in range(0, len(order), 200):
        rows = order[start:start + 200]
        lo, hi = size[rows].min() * threshold, size[rows].max() / threshold
        cols = order[(size[order] >= lo) & (size[order] <= hi)]
        inter = (X[rows] @ X[cols].T).toarray()
        jac = inter / (size[rows][:, None] + size[cols][None, :] - inter + 1e-9)
        for a, b in zip(*np.nonzero(jac >= threshold)):
            x, y = msgs[rows[a]][0], msgs[cols[b]][0]
            if x != y:
                pairs.add((min(x, y), max(x, y)))
    return pairs


@lru_cache(maxsize=1)
def index() -> duplicates.MinHashIndex:
    idx = duplicates.MinHashIndex()
    idx.add_many(messages())
    return idx


def test_finds_the_known_near_duplicate_pairs_of_the_data() -> None:
    reference = reference_pairs()
    assert 250 <= len(reference) <= 400  # the README speaks of about 290 pairs
    idx, texts = index(), dict(messages())
    found: set[tuple[int, int]] = set()
    # Query every message of a known pair, and 300 others for what the detector finds beyond them.
    involved = {i for pair in reference for i in pair}
    others = [i for i, _ in messages() if i not in involved]
    queried = sorted(involved) + random.Random(2).sample(others, 300)
    for mid in queried:
        text = texts[mid]
        for other, _ in idx.candidates(text, limit=50, exclude=mid):
            if duplicates.text_similarity(text, texts[other]) >= 0.8:
                found.add((min(mid, other), max(mid, other)))
    recall = len(found & reference) / len(reference)
    assert recall >= 0.97
    # Pairs found beyond the Jaccard reference are containments (a short re-report inside a longer one).
    for a, b in found - reference:
        x, y = duplicates.shingle_codes(texts[a]), duplicates.shingle_codes(texts[b])
        assert len(np.intersect1d(x, y)) / min(len(x), len(y)) >= 0.8 / 0.85 - 1e-9


def _re_report(text: str, rnd: random.Random) -> str:
    """How a caller tells the same matter again: other opening, a sentence dropped, full-width digits."""
    sentences = [s for s in re.split(r"(?<=[。！？!?])", text) if s]
    if len(sentences) > 3:
        del sentences[rnd.randrange(1, len(sentences))]
    body = "".join(sentences).translate(str.maketrans("0123456789,", "０１２３４５６７８９，"))
    return rnd.choice(["再次反映：", "我之前打过电话，", "还是上次的问题，"]) + body + rnd.choice(["", "请尽快处理！"])


def test_a_re_reported_matter_is_offered_for_merging_and_other_matters_are_not() -> None:
    rnd = random.Random(11)
    msgs = [(i, t) for i, t in messages() if len(textproc.compact(t)) >= 80]
    sample = rnd.sample(msgs, 150)
    idx, texts = index(), dict(messages())
    hits, false_merges, checked = 0, 0, 0
    for mid, text in sample:
        again = _re_report(text, rnd)
        cands = [c for c, _ in idx.candidates(again, limit=50)]
        facts = [duplicates.TicketFacts(c, texts[c]) for c in cands]
        ranked = duplicates.rank(duplicates.TicketFacts(-1, again), facts, min_score=0.6)
        if ranked and (ranked[0].id == mid or duplicates.text_similarity(texts[ranked[0].id], text) >= 0.8):
            hits += 1
        for m in ranked:
            checked += 1
            if duplicates.text_similarity(texts[m.id], text) < 0.5:
                false_merges += 1
    assert hits / len(sample) >= 0.95
    assert false_merges <= max(1, checked // 50)


def test_same_phone_and_address_add_to_the_score() -> None:
    a = duplicates.TicketFacts(1, "幸福小区门口的路灯坏了一个月没人修", "13800138000", "幸福路12号")
    b = duplicates.TicketFacts(2, "幸福小区门口路灯坏了，一个月了还没修", "13800138000", "幸福路12号")
    c = duplicates.TicketFacts(3, "幸福小区门口路灯坏了，一个月了还没修", "13900000000", "")
    with_both, text_only = duplicates.score(a, b), duplicates.score(a, c)
    assert with_both.score == pytest.approx(min(1.0, text_only.score + 0.3))
    assert "同一来电号码" in with_both.reasons and "同一地址" in with_both.reasons


def test_full_width_and_punctuation_do_not_hide_a_duplicate() -> None:
    a = "Ａ市Ａ３区１２栋电梯故障，已经停运３天！！"
    b = "A市A3区12栋电梯故障 已经停运3天"
    assert duplicates.text_similarity(a, b) == 1.0
    assert (duplicates.signature(a) == duplicates.signature(b)).all()


def test_index_add_lookup_and_snapshot(tmp_path) -> None:  # type: ignore[no-untyped-def]
    idx = duplicates.MinHashIndex()
    assert idx.add(7, "渣土车夜间抛洒，路面全是泥") and not idx.add(7, "渣土车夜间抛洒，路面全是泥")
    assert not idx.add(8, "！！！")  # nothing to compare
    assert idx.max_id == 8
    assert idx.candidates("渣土车夜间抛洒，路面全是泥")[0][0] == 7
    idx.save(tmp_path / "dup.npz")
    again = duplicates.MinHashIndex.load(tmp_path / "dup.npz")
    assert again.max_id == 8 and len(again) == 1
    assert again.candidates("渣土车夜间抛洒路面全是泥")[0][0] == 7


def test_lookup_among_many_tickets_finds_the_message_not_the_filler() -> None:
    """100,000 filler tickets plus the real ones: each real message still finds itself first and no filler
    crowds it out. How fast a lookup is (a few binary searches, not a scan) is measured, not asserted, in
    benchmarks/routing_bench.py (1,000,000 tickets)."""
    idx = duplicates.MinHashIndex()
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 2**32, size=(100_000, duplicates.BANDS), dtype=np.uint64).astype(np.uint32)
    idx._pending_ids = list(range(1_000_001, 1_100_001))
    idx._pending_keys = list(keys)
    idx._members.update(idx._pending_ids)
    idx._merge()
    idx.add_many(messages())
    real = {i for i, _ in messages()}
    for ticket_id, text in messages()[:300]:
        found = idx.candidates(text)
        if found:  # texts with nothing to compare (punctuation only) have no signature
            assert found[0][1] == duplicates.BANDS and found[0][0] in real
            assert ticket_id in {i for i, n in found if n == duplicates.BANDS}


def test_a_same_estate_parking_dispute_in_other_words_links_and_other_problems_there_do_not() -> None:
    """Issue 20: callers of one estate tell one parking dispute each in their own words; a burst pipe at
    the same address, or the same dispute half a year later, is another matter."""
    from datetime import datetime, timedelta

    day = datetime(2019, 7, 1, 9, 30)
    place = "伊景园滨河苑"
    first = duplicates.TicketFacts(1, "伊景园滨河苑开发商捆绑销售车位，不买车位就不给交房，强烈要求查处",
                                   "13800000001", place, "城乡建设/住房/物业车位", day)
    other_words = duplicates.TicketFacts(2, "我们小区业主被逼着花十几万买停车位才能拿钥匙，这合法吗？",
                                         "13800000002", place, "城乡建设/住房/物业车位", day + timedelta(days=6))
    pipe = duplicates.TicketFacts(3, "伊景园滨河苑3栋地下室水管爆裂，水漫进电梯井，请尽快维修",
                                  "13800000003", place, "城乡建设/供水/管网维修", day + timedelta(days=2))
    months_later = duplicates.TicketFacts(4, "小区车库车位只售不租，物业说是开发商定的",
                                          "13800000004", place, "城乡建设/住房/物业车位", day + timedelta(days=180))
    ranked = duplicates.rank(other_words, [first, pipe, months_later], min_score=0.3)
    assert [m.id for m in ranked] == [1]
    assert ranked[0].same_matter and "同一地址同类问题（30天内）" in ranked[0].reasons
    assert ranked[0].score < 0.6  # linked for the agent to read, not offered for merging on place alone
    # The texts alone share nothing: without the place and the category it would not link.
    plain = duplicates.TicketFacts(2, other_words.text)
    assert duplicates.rank(plain, [duplicates.TicketFacts(1, first.text)], min_score=0.3) == []
    assert duplicates.rank(pipe, [first, other_words], min_score=0.3) == []
