"""Hot issues (一类事): recent tickets grouped by topic and place into named clusters.

Pure: tickets come in as plain records, clusters go out; the period boundaries are given by the caller.

Method: TF-IDF over jieba words and word pairs (title counted twice: it carries the gist) and
average-linkage agglomerative clustering on cosine distance with a distance threshold, so the number of
clusters is not fixed in advance and one long outlier cannot chain two topics together (it can with
single linkage). Then every cluster must have a *core*: words or word pairs that most of its tickets
share and that are used mostly inside the cluster (丽发新城, 搅拌站; not 小区, 噪音). Tickets without any core word
leave the cluster, and a cluster without a core is no class of cases at all: average linkage alone
grouped unrelated tickets on generic words (about 11 of 20 sampled clusters in 7-day windows).

A cluster is named by its core: the most distinctive place word (a word ending in 小区, 苑, 路, 学校 ...)
and the most distinctive matter words, e.g. 丽发新城搅拌站噪音, not its commonest words.

Template text from one caller: sentences a caller repeats across several of their own tickets (a
signature, a standard opening) are dropped before clustering, so they cannot make a cluster of their
own; a cluster that still has one caller behind most of its tickets is marked ``template`` and never
alerts (one person writing many times is not many people with one problem).

Growth compares the cluster with the previous period: earlier tickets are assigned to the nearest
cluster centroid when close enough.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import numpy as np

from tickets.routing import textproc


@dataclass(frozen=True)
class Doc:
    id: int | str
    title: str
    content: str
    created_at: datetime | None = None
    district: str = ""
    address: str = ""
    department: str = ""
    number: str = ""
    caller: str = ""  # the caller's phone (or the web user): template text and one-person clusters


@dataclass(frozen=True)
class Params:
    distance: float = 0.9  # average cosine distance inside a cluster; 0.9 kept each known hot issue of the data whole
    min_size: int = 3  # smaller groups are not a "class of cases"
    previous_similarity: float = 0.35  # an earlier ticket counts toward a cluster above this cosine
    alert_size: int = 10  # alert when a cluster reaches this size ...
    alert_growth: float = 1.0  # ... and grew by at least this fraction (1.0 = doubled) over the previous period
    examples: int = 3
    core_share: float = 0.5  # a core word is in at least this share of the cluster's tickets ...
    core_concentration: float = 0.5  # ... and this share of the period's tickets using it are in the cluster
    matter_share: float = 0.6  # one matter: a phrase of 4 characters or more in this share of the tickets
    template_share: float = 0.5  # one caller behind this share of a cluster: template, no alert
    alert_place_share: float = 0.6  # an alert needs a place that this share of the cluster's tickets name
    max_docs: int = 6000  # pairwise distances are O(n^2) memory; newest tickets first beyond this


@dataclass
class Cluster:
    name: str
    keywords: list[str]
    size: int
    previous: int
    growth: float | None
    districts: list[tuple[str, int]]
    departments: list[tuple[str, int]]
    examples: list[dict[str, Any]]
    members: list[int | str] = field(repr=False)
    alert: bool = False
    template: bool = False
    callers: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "keywords": self.keywords, "size": self.size, "previous": self.previous,
                "growth": None if self.growth is None else round(self.growth, 3),
                "districts": [{"district": d, "count": n} for d, n in self.districts],
                "departments": [{"department": d, "count": n} for d, n in self.departments],
                "examples": self.examples, "members": self.members, "alert": self.alert,
                "template": self.template, "callers": self.callers}


_CLAUSE = re.compile(r"[，。！？；、,.!?;:：\s\n]+")
# Ends of words that name a place in these tickets (estates, roads, schools, markets).
_PLACE_ENDS = ("小区", "花园", "家园", "新城", "新村", "公寓", "广场", "大厦", "市场", "学校", "中学", "小学",
               "幼儿园", "医院", "公园", "大道", "街道", "社区", "苑", "园", "城", "路", "街", "村", "镇")
# Masked place codes of the anonymised data and generic administrative words are no name.
# The province or the city as a whole (西地省, a市) is no place of one matter either.
_NO_PLACE = re.compile(r"^([a-z]\d*)?[省市区县镇乡村]?$|^[a-z]\d*[省市区县]|省$")


def template_clauses(docs: Sequence[Doc], min_repeats: int = 3, min_length: int = 6) -> dict[str, set[str]]:
    """Per caller, the clauses (text between punctuation) they repeat in ``min_repeats`` or more of their
    own tickets: a template, not the matter of any one ticket."""
    by_caller: dict[str, list[Doc]] = {}
    for d in docs:
        if d.caller:
            by_caller.setdefault(d.caller, []).append(d)
    out: dict[str, set[str]] = {}
    for caller, mine in by_caller.items():
        if len(mine) < min_repeats:
            continue
        seen: Counter[str] = Counter()
        for d in mine:
            seen.update({c for c in _CLAUSE.split(textproc.normalize(f"{d.title} {d.content}")) if len(c) >= min_length})
        repeated = {c for c, n in seen.items() if n >= min_repeats}
        if repeated:
            out[caller] = repeated
    return out


def _strip(doc: Doc, clauses: set[str]) -> Doc:
    if not clauses:
        return doc

    def keep(text: str) -> str:
        return "，".join(c for c in _CLAUSE.split(textproc.normalize(text)) if c not in clauses)

    return Doc(doc.id, keep(doc.title), keep(doc.content), doc.created_at, doc.district, doc.address,
               doc.department, doc.number, doc.caller)


def is_place(word: str) -> bool:
    """A named place: a name before the kind of place (丽发新城, 伊景园滨河苑, 劳动东路), not the kind alone
    (幼儿园, 小区) nor the province or city as a whole."""
    end = next((e for e in _PLACE_ENDS if word.endswith(e)), "")
    return bool(end) and len(word) >= len(end) + 2 and not _NO_PLACE.search(word)


_CODE = re.compile(r"[a-z]+\d*[省市区县]|[a-z0-9]+|[^a-z0-9\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


def plain(text: str) -> str:
    """Han characters only, the masked place codes (a市, a3区) and everything else cut out as ``|``."""
    return _CODE.sub("|", textproc.normalize(text))


def phrase(word: str, texts: Sequence[str], keep: float = 0.8, longest: int = 10) -> str:
    """``word`` grown into the phrase the tickets write around it: a character is added on either side as
    long as the phrase has that same character there at ``keep`` of the places it is written (发新城 ->
    丽发新城; 渣土车 stays, written after 建设路 in the texts but first in the titles)."""
    holders = [t for t in texts if word in t]
    if not holders:
        return ""
    out = word
    while len(out) < longest:
        grown = False
        for side in (-1, 1):
            seen: Counter[str] = Counter()
            places = 0
            for t in holders:
                start = t.find(out)
                while start >= 0:
                    places += 1
                    j = start - 1 if side < 0 else start + len(out)
                    if 0 <= j < len(t) and t[j] != "|":
                        seen[t[j]] += 1
                    start = t.find(out, start + 1)
            if seen:
                c, n = seen.most_common(1)[0]
                if n >= keep * places:  # the same character at nearly every place the phrase is written
                    out = c + out if side < 0 else out + c
                    holders = [t for t in holders if out in t]
                    grown = True
        if not grown:
            break
    return out


def name_of(core: Sequence[str], texts: Sequence[str]) -> str:
    """Place + matter: the core words (most distinctive first) grown into the tickets' own phrases, the
    place first when one is among them: 丽发新城搅拌站, 伊景园滨河苑捆绑销售车位."""
    phrases: list[str] = []
    for w in core:
        p = phrase(w, texts)
        if len(p) >= 2 and not any(p in q or q in p for q in phrases):
            phrases.append(p)
    place = next((p for p in phrases if is_place(p)), "")
    parts = [place] if place else []
    for p in phrases:
        if len(parts) >= 3 or len("".join(parts)) + len(p) > 12:
            break
        if p != place:
            parts.append(p)
    return "".join(parts)


def _text(doc: Doc) -> str:
    return _words(doc.title, doc.content, doc.address)


@lru_cache(maxsize=50_000)
def _words(title: str, content: str, address: str) -> str:
    # Cached: the supervisors' page and the daily job cluster mostly the same tickets again.
    return textproc.join_tokens(textproc.tokens(f"{title} {title} {content} {address}"))


def cluster(current: Sequence[Doc], previous: Sequence[Doc] = (), params: Params = Params()) -> list[Cluster]:
    """Clusters of ``current`` with at least ``min_size`` tickets, biggest first."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform
    from sklearn.feature_extraction.text import TfidfVectorizer

    raw = list(current)[-params.max_docs:]
    if len(raw) < max(params.min_size, 2):
        return []
    templates = template_clauses(raw)
    docs = [_strip(d, templates.get(d.caller, set())) for d in raw]
    texts = [_text(d) for d in docs]
    vec = TfidfVectorizer(tokenizer=str.split, token_pattern=None, lowercase=False, sublinear_tf=True,
                          min_df=2, max_df=0.3 if len(docs) >= 50 else 1.0, ngram_range=(1, 2))
    try:
        X = vec.fit_transform(texts)
    except ValueError:  # no word appears twice: nothing can be a class of cases
        return []
    X = X.tocsr().astype(np.float32)  # rows are L2-normalised by TfidfVectorizer
    empty = np.diff(X.indptr) == 0
    # Cosine distances from one sparse product (pdist on dense rows is 1000x slower at 20k features).
    dist = 1.0 - (X @ X.T).toarray()
    np.clip(dist, 0.0, 1.0, out=dist)
    dist[empty, :] = 1.0
    dist[:, empty] = 1.0
    np.fill_diagonal(dist, 0.0)
    Z = linkage(squareform(dist, checks=False), method="average")
    del dist
    labels = fcluster(Z, t=params.distance, criterion="distance")
    names = np.asarray([str(n).replace(" ", "") for n in vec.get_feature_names_out()], dtype=object)
    present = (X > 0).astype(np.float32).tocsr()
    df_all = np.asarray(present.sum(axis=0)).ravel()
    idf = np.log((1 + len(docs)) / (1 + df_all)) + 1.0
    readable = np.asarray([len(n) >= 2 and not _NO_PLACE.search(n) for n in names])

    prev_X = vec.transform([_text(d) for d in previous]) if previous else None
    all_plain = [plain(f"{d.title}|{d.content}") for d in docs]
    out: list[Cluster] = []
    for label in np.unique(labels):
        idx = np.flatnonzero((labels == label) & ~empty)
        if len(idx) < params.min_size:
            continue
        share = np.asarray(present[idx].sum(axis=0)).ravel() / len(idx)
        inside = share * len(idx)
        core_idx = np.flatnonzero((share >= params.core_share) & (inside >= params.core_concentration * df_all)
                                  & readable)
        if core_idx.size == 0:
            continue  # grouped on generic words only: not one matter
        has_core = np.asarray(present[idx][:, core_idx].sum(axis=1)).ravel() > 0
        idx = idx[has_core]
        if len(idx) < params.min_size:
            continue
        share = np.asarray(present[idx].sum(axis=0)).ravel() / len(idx)
        weight = share[core_idx] * idf[core_idx]
        centroid = np.asarray(X[idx].mean(axis=0)).ravel()
        # Ties (a few near-identical tickets) go to the heavier word: the title's words count twice.
        core_order = core_idx[np.lexsort((-centroid[core_idx], -np.round(weight, 6)))]
        core: list[str] = []
        for j in core_order:
            w = str(names[j])
            if not any(w in k or k in w for k in core):
                core.append(w)
        texts_of = [all_plain[i] for i in idx]
        phrases = [phrase(w, texts_of) for w in core[:6]]
        # One matter, not a kind of words: a phrase of four characters or more that most tickets (and at
        # least ``min_size``: in a cluster of three, all three) write
        # (南塘城轨公交站, 丽发新城, 人才购房补贴) and few others of the period do (not 附近居民). Small
        # clusters of the 7-day windows that shared generic words (咨询, 西地省, 满意 + 牵强) were most of
        # the noise.
        size = len(idx)

        def distinctive(p: str) -> bool:
            inside_n = sum(p in t for t in texts_of)
            return len(p) >= 4 and inside_n >= max(params.min_size, params.matter_share * size) \
                and inside_n >= params.core_concentration * sum(p in t for t in all_plain)

        if not any(distinctive(p) for p in phrases):
            continue
        keywords = core[:5]
        prev = 0
        if prev_X is not None and prev_X.shape[0]:
            norm = np.linalg.norm(centroid) or 1.0
            sims = np.asarray(prev_X @ (centroid / norm)).ravel()
            prev = int((sims >= params.previous_similarity).sum())
        growth = (size - prev) / prev if prev else None
        members = [docs[i] for i in idx]
        # Examples: the tickets closest to the centroid read as the clearest statement of the matter.
        closeness = np.asarray(X[idx] @ centroid).ravel()
        examples = [{"id": raw[i].id, "number": raw[i].number, "title": raw[i].title}
                    for i in idx[np.argsort(-closeness)[:params.examples]]]
        districts = Counter(d.district for d in members if d.district).most_common(5)
        departments = Counter(d.department for d in members if d.department).most_common(5)
        by_caller = Counter(d.caller for d in members if d.caller)
        callers = len(by_caller) + sum(1 for d in members if not d.caller)
        template = bool(by_caller) and by_caller.most_common(1)[0][1] >= max(2.0, params.template_share * size)
        named = name_of(core[:6], texts_of)
        # Alerts only for one matter (a core word besides the place) at one place that most of the tickets
        # name (丽发新城 + 搅拌站, 伊景园滨河苑 + 捆绑):
        # growing clusters of a kind of complaint across the city (交房 at various estates) were the
        # false alarms of the 7-day windows.
        place = next((p for p in phrases if is_place(p)), "")
        at_place = bool(place) and sum(place in t for t in texts_of) >= params.alert_place_share * size
        matter = any(len(p) >= 2 and not is_place(p) and p not in place and place not in p for p in phrases)
        alert = not template and at_place and matter and size >= params.alert_size \
            and (growth is None or growth >= params.alert_growth)
        name = ("同一来电人多次反映：" if template else "") + (named or "、".join(core[:3])) \
            + f"（{size}件）"
        out.append(Cluster(name, keywords, size, prev, growth, districts, departments, examples,
                           [d.id for d in members], alert, template, callers))
    out.sort(key=lambda c: (-c.size, c.name))
    return out
