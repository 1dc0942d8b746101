"""Duplicate tickets (重复件): MinHash signatures over character 3-grams, an LSH index, and a score.

Why not ``datasketch``: its ``MinHashLSH`` keeps Python lists per bucket (about 2 GB for a million tickets)
and hashes shingles one by one in Python (minutes to index a million). Here a signature is one vectorised
numpy expression per ticket, and each LSH band is a sorted ``uint32`` array searched with ``searchsorted``:
a million tickets take 20 bands x 8 bytes = 160 MB and a lookup touches 20 binary searches.

The index only proposes candidates; every candidate is scored again on its current text, phone and
address (``score``), so a stale or colliding bucket can cost time but never produce a wrong answer.
Pure: no clock, no I/O (``save``/``load`` of a snapshot file aside).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from tickets.routing import textproc

SHINGLE = 3
BANDS = 20
ROWS = 3  # per band; a pair with Jaccard 0.5 shares a band with probability 1-(1-0.5**3)**20 = 0.93
NUM_PERM = BANDS * ROWS
_MERGE_EVERY = 20_000
SINGLE_BAND_CAP = 10  # candidates sharing a single band re-scored per lookup (see ``candidates``)

_rng = np.random.default_rng(12345)  # fixed: every process must compute the same signatures
_A = (_rng.integers(1, 2**63 - 1, NUM_PERM, dtype=np.uint64) | np.uint64(1))
_B = _rng.integers(0, 2**63 - 1, NUM_PERM, dtype=np.uint64)
_BAND_MIX = (_rng.integers(1, 2**63 - 1, ROWS, dtype=np.uint64) | np.uint64(1))
_K1, _K2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F)


def shingle_codes(text: str) -> np.ndarray:
    """Distinct character 3-grams of the compacted text, each as a 64-bit integer."""
    t = textproc.compact(text)
    if not t:
        return np.zeros(0, dtype=np.uint64)
    cps = np.frombuffer(t.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    if len(cps) < SHINGLE:
        cps = np.concatenate([cps, np.zeros(SHINGLE - len(cps), dtype=np.uint64)])
    with np.errstate(over="ignore"):
        codes = cps[:-2] * _K1 + cps[1:-1] * _K2 + cps[2:]
    return np.unique(codes)


def signature(text: str) -> np.ndarray | None:
    """MinHash signature (``NUM_PERM`` uint32) or None for a text without letters, digits or Han."""
    codes = shingle_codes(text)
    if codes.size == 0:
        return None
    with np.errstate(over="ignore"):
        hashed = (codes[:, None] * _A[None, :] + _B[None, :]) >> np.uint64(32)
    sig: np.ndarray = hashed.min(axis=0).astype(np.uint32)
    return sig


def signatures_many(texts: Sequence[str]) -> list[np.ndarray | None]:
    """``signature`` for many texts at once: one hashing pass over all shingles (bulk index builds)."""
    codes = [shingle_codes(t) for t in texts]
    sizes = np.asarray([c.size for c in codes])
    out: list[np.ndarray | None] = [None] * len(texts)
    nonempty = np.flatnonzero(sizes)
    if nonempty.size == 0:
        return out
    flat = np.concatenate([codes[i] for i in nonempty])
    starts = np.concatenate([[0], np.cumsum(sizes[nonempty])[:-1]])
    with np.errstate(over="ignore"):
        hashed = ((flat[:, None] * _A[None, :] + _B[None, :]) >> np.uint64(32)).astype(np.uint32)
    mins = np.minimum.reduceat(hashed, starts, axis=0)
    for row, i in enumerate(nonempty):
        out[i] = mins[row]
    return out


def band_keys(sig: np.ndarray) -> np.ndarray:
    """One uint32 key per band: ``ROWS`` signature values mixed into one number."""
    rows = sig.reshape(BANDS, ROWS).astype(np.uint64)
    with np.errstate(over="ignore"):
        mixed = (rows * _BAND_MIX[None, :]).sum(axis=1, dtype=np.uint64)
    keys: np.ndarray = (mixed >> np.uint64(32)).astype(np.uint32)
    return keys


class MinHashIndex:
    """Ticket ids by LSH band keys. ``add`` is O(1) into a small delta merged in bulk into sorted arrays."""

    def __init__(self) -> None:
        self._keys = [np.zeros(0, dtype=np.uint32) for _ in range(BANDS)]
        self._ids = [np.zeros(0, dtype=np.int64) for _ in range(BANDS)]
        self._delta: list[dict[int, list[int]]] = [{} for _ in range(BANDS)]
        self._pending_ids: list[int] = []
        self._pending_keys: list[np.ndarray] = []
        self._members: set[int] = set()
        self.max_id = 0  # highest ticket id seen: the catch-up point for tickets other processes created
        self.last_candidates = 0  # tickets the bands returned on the last lookup, before the cut (benchmarks)

    def __len__(self) -> int:
        return len(self._members)

    def add(self, ticket_id: int, text: str) -> bool:
        sig = signature(text)
        self.max_id = max(self.max_id, ticket_id)
        if sig is None or ticket_id in self._members:
            return False
        keys = band_keys(sig)
        self._members.add(ticket_id)
        self._pending_ids.append(ticket_id)
        self._pending_keys.append(keys)
        for b in range(BANDS):
            self._delta[b].setdefault(int(keys[b]), []).append(ticket_id)
        if len(self._pending_ids) >= _MERGE_EVERY:
            self._merge()
        return True

    def add_many(self, rows: Iterable[tuple[int, str]], batch: int = 100) -> int:
        """Bulk add (start-up rebuild from SQL): hashes ``batch`` texts per numpy pass (bigger batches
        lose more to memory traffic than they save in Python overhead: 100 measured best)."""
        n = 0
        chunk: list[tuple[int, str]] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= batch:
                n += self._add_chunk(chunk)
                chunk = []
        if chunk:
            n += self._add_chunk(chunk)
        self._merge()
        return n

    def _add_chunk(self, chunk: Sequence[tuple[int, str]]) -> int:
        n = 0
        for (ticket_id, _), sig in zip(chunk, signatures_many([t for _, t in chunk])):
            self.max_id = max(self.max_id, ticket_id)
            if sig is None or ticket_id in self._members:
                continue
            self._members.add(ticket_id)
            self._pending_ids.append(ticket_id)
            self._pending_keys.append(band_keys(sig))
            n += 1
        if len(self._pending_ids) >= _MERGE_EVERY * 10:
            self._merge()
        return n

    def _merge(self) -> None:
        if not self._pending_ids:
            return
        ids = np.asarray(self._pending_ids, dtype=np.int64)
        keys = np.vstack(self._pending_keys)
        for b in range(BANDS):
            all_keys = np.concatenate([self._keys[b], keys[:, b]])
            all_ids = np.concatenate([self._ids[b], ids])
            order = np.argsort(all_keys, kind="stable")
            self._keys[b], self._ids[b] = all_keys[order], all_ids[order]
            self._delta[b].clear()
        self._pending_ids, self._pending_keys = [], []

    def candidates(self, text: str, limit: int = 50, exclude: int | None = None,
                   single_band: int = SINGLE_BAND_CAP) -> list[tuple[int, int]]:
        """Up to ``limit`` (ticket id, bands shared), most shared bands first (a rough similarity order), of
        which at most ``single_band`` share one band only."""
        sig = signature(text)
        if sig is None:
            return []
        keys = band_keys(sig)
        hits: list[np.ndarray] = []
        for b in range(BANDS):
            k = keys[b]
            lo, hi = np.searchsorted(self._keys[b], [k, k + np.uint32(1)] if k < 2**32 - 1 else [k, k], "left")
            if k == 2**32 - 1:
                hi = len(self._keys[b])
            if hi > lo:
                hits.append(self._ids[b][lo:hi])
            extra = self._delta[b].get(int(k))
            if extra:
                hits.append(np.asarray(extra, dtype=np.int64))
        if not hits:
            return []
        ids, counts = np.unique(np.concatenate(hits), return_counts=True)
        self.last_candidates = len(ids)
        if exclude is not None:
            keep = ids != exclude
            ids, counts = ids[keep], counts[keep]
        order = np.lexsort((-ids, -counts))  # ties: newest ticket first
        # Tickets sharing one band of 20 grow with the index (texts sharing a sentence: p50 30 of them at
        # a million real-looking tickets) and each costs a re-scoring; a near copy (Jaccard 0.8) shares 10
        # bands on average and one band or none with probability 1e-5, so only the newest few are kept.
        order = np.concatenate([order[counts[order] > 1], order[counts[order] == 1][:single_band]])[:limit]
        return [(int(ids[i]), int(counts[i])) for i in order]

    # ------------------------------------------------------------ snapshot
    def save(self, path: str | Path) -> None:
        """A snapshot so a restart need not re-hash a million tickets; SQL stays the source of truth."""
        self._merge()
        data: dict[str, Any] = {f"k{b}": self._keys[b] for b in range(BANDS)}
        data.update({f"i{b}": self._ids[b] for b in range(BANDS)})
        tmp = Path(str(path) + ".tmp.npz")
        np.savez(tmp, max_id=np.int64(self.max_id), bands=np.int64(BANDS), rows=np.int64(ROWS), **data)
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> MinHashIndex:
        with np.load(path) as data:
            if int(data["bands"]) != BANDS or int(data["rows"]) != ROWS:
                raise ValueError(f"{path}: snapshot made with other LSH parameters")
            index = cls()
            index._keys = [data[f"k{b}"] for b in range(BANDS)]
            index._ids = [data[f"i{b}"] for b in range(BANDS)]
            index.max_id = int(data["max_id"])
            index._members = set(np.unique(index._ids[0]).tolist()) if BANDS else set()
        return index


# ---------------------------------------------------------------- scoring
# The same matter told in other words (a parking dispute at one estate, each caller in their own words)
# shares little text; what it shares is the place and the kind of problem, within weeks. Together they add
# enough to reach /duplicates' floor (0.3) but never MERGE_THRESHOLD alone: linked for the agent to read,
# merged only when the text agrees too.
SAME_MATTER_WINDOW = timedelta(days=30)


@dataclass(frozen=True)
class TicketFacts:
    id: int
    text: str
    phone: str = ""
    address_key: str = ""
    category: str = ""
    created_at: datetime | None = None


@dataclass(frozen=True)
class Match:
    id: int
    score: float
    text_similarity: float
    same_phone: bool
    same_address: bool
    reasons: tuple[str, ...]
    same_matter: bool = False  # same address and category within SAME_MATTER_WINDOW


def text_similarity(a: str, b: str) -> float:
    """Exact similarity of character 3-gram sets: Jaccard, or containment when one report is a short
    retelling inside a longer one (weighted down a little: a short text is contained more easily)."""
    return codes_similarity(shingle_codes(a), shingle_codes(b))


def codes_similarity(x: np.ndarray, y: np.ndarray) -> float:
    """``text_similarity`` on ``shingle_codes`` already computed (both sorted and distinct)."""
    if not x.size or not y.size:
        return 0.0
    inter = int(np.intersect1d(x, y, assume_unique=True).size)
    jaccard = inter / (x.size + y.size - inter)
    small = min(x.size, y.size)
    containment = inter / small if small >= 15 else 0.0
    return max(jaccard, 0.85 * containment)


def score(new: TicketFacts, other: TicketFacts) -> Match:
    """How likely ``other`` is the same matter as ``new``: text first, the same caller or place adds to it."""
    return _score(new, shingle_codes(new.text), other)


def _score(new: TicketFacts, new_codes: np.ndarray, other: TicketFacts) -> Match:
    sim = codes_similarity(new_codes, shingle_codes(other.text))
    phone = bool(new.phone) and new.phone == other.phone
    place = bool(new.address_key) and new.address_key == other.address_key
    matter = place and same_matter(new, other)
    value = sim + (0.15 if phone else 0.0) + (0.15 if place else 0.0) + (0.15 if matter else 0.0)
    reasons = []
    if sim >= 0.2:
        reasons.append(f"内容相似度 {sim:.2f}")
    if phone:
        reasons.append("同一来电号码")
    if matter:
        reasons.append(f"同一地址同类问题（{SAME_MATTER_WINDOW.days}天内）")
    elif place:
        reasons.append("同一地址")
    return Match(other.id, round(min(value, 1.0), 4), round(sim, 4), phone, place, tuple(reasons), matter)


def same_matter(a: TicketFacts, b: TicketFacts) -> bool:
    """Same category, both known, reported within ``SAME_MATTER_WINDOW`` of each other (the address is
    checked by the caller of this)."""
    if not a.category or a.category != b.category or a.created_at is None or b.created_at is None:
        return False
    return abs(a.created_at - b.created_at) <= SAME_MATTER_WINDOW


def rank(new: TicketFacts, others: Sequence[TicketFacts], min_score: float = 0.3, top: int = 10) -> list[Match]:
    codes = shingle_codes(new.text)  # once, not once per candidate: half the cost of a lookup
    matches = [_score(new, codes, o) for o in others if o.id != new.id]
    matches = [m for m in matches if m.score >= min_score]
    matches.sort(key=lambda m: (-m.score, -m.id))
    return matches[:top]
