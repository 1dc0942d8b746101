"""Hot issues (一类事): recent tickets grouped by topic and place into named clusters.

Pure: tickets come in as plain records, clusters go out; the period boundaries are given by the caller.

Method: TF-IDF over jieba words (title counted twice: it carries the gist) and average-linkage
agglomerative clustering on cosine distance with a distance threshold, so the number of clusters is not
fixed in advance and one long outlier cannot chain two topics together (it can with single linkage).
A cluster is named by its heaviest words, most of which are the place (小区, 路, 学校) and the matter.
Growth compares the cluster with the previous period: earlier tickets are assigned to the nearest
cluster centroid when close enough.
"""
from __future__ import annotations

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


@dataclass(frozen=True)
class Params:
    distance: float = 0.9  # average cosine distance inside a cluster; 0.9 kept each known hot issue of the data whole
    min_size: int = 3  # smaller groups are not a "class of cases"
    previous_similarity: float = 0.35  # an earlier ticket counts toward a cluster above this cosine
    alert_size: int = 10  # alert when a cluster reaches this size ...
    alert_growth: float = 1.0  # ... and grew by at least this fraction (1.0 = doubled) over the previous period
    examples: int = 3
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

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "keywords": self.keywords, "size": self.size, "previous": self.previous,
                "growth": None if self.growth is None else round(self.growth, 3),
                "districts": [{"district": d, "count": n} for d, n in self.districts],
                "departments": [{"department": d, "count": n} for d, n in self.departments],
                "examples": self.examples, "members": self.members, "alert": self.alert}


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

    docs = list(current)[-params.max_docs:]
    if len(docs) < max(params.min_size, 2):
        return []
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
    names = vec.get_feature_names_out()

    prev_X = vec.transform([_text(d) for d in previous]) if previous else None
    out: list[Cluster] = []
    for label in np.unique(labels):
        idx = np.flatnonzero((labels == label) & ~empty)
        if len(idx) < params.min_size:
            continue
        centroid = np.asarray(X[idx].mean(axis=0)).ravel()
        top = np.argsort(-centroid)[:20]
        keywords: list[str] = []
        for j in top:
            word = str(names[j]).replace(" ", "")
            # Single characters (号, 市) name nothing; they still count as features.
            if centroid[j] <= 0 or len(word) < 2 or any(word in k or k in word for k in keywords):
                continue
            keywords.append(word)
            if len(keywords) >= 5:
                break
        prev = 0
        if prev_X is not None and prev_X.shape[0]:
            norm = np.linalg.norm(centroid) or 1.0
            sims = np.asarray(prev_X @ (centroid / norm)).ravel()
            prev = int((sims >= params.previous_similarity).sum())
        size = len(idx)
        growth = (size - prev) / prev if prev else None
        members = [docs[i] for i in idx]
        # Examples: the tickets closest to the centroid read as the clearest statement of the matter.
        closeness = np.asarray(X[idx] @ centroid).ravel()
        examples = [{"id": docs[i].id, "number": docs[i].number, "title": docs[i].title}
                    for i in idx[np.argsort(-closeness)[:params.examples]]]
        districts = Counter(d.district for d in members if d.district).most_common(5)
        departments = Counter(d.department for d in members if d.department).most_common(5)
        alert = size >= params.alert_size and (growth is None or growth >= params.alert_growth)
        name = "、".join(keywords[:3]) + f"（{size}件）"
        out.append(Cluster(name, keywords, size, prev, growth, districts, departments, examples,
                           [d.id for d in members], alert))
    out.sort(key=lambda c: (-c.size, c.name))
    return out
