"""Shared data for the routing, duplicate and hot-issue tests: the dataset split and a trained model.

The dataset lives in ../shared/datasets and is never copied into the repository; without it the tests
that need it skip with the reason.
"""
from __future__ import annotations

import csv
import random
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DATASETS = ROOT.parent / "shared" / "datasets"
LABELED = DATASETS / "messages_labeled.csv"
TOKENIZED = DATASETS / "messages_tokenized.csv"
SUPPORT = DATASETS / "messages_with_support.csv"

TRAIN_ROWS = 3000

csv.field_size_limit(10_000_000)


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"dataset {path.name} not found in {DATASETS} (../shared is absent on this machine)")
    return path


def read_rows(path: Path) -> list[dict[str, str]]:
    with need(path).open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def stratified_split(rows: list[dict[str, str]], test_share: float, seed: int = 7
                     ) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    by_label: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_label[row["label"]].append(row)
    train, test = [], []
    rnd = random.Random(seed)
    for label in sorted(by_label):
        group = by_label[label][:]
        rnd.shuffle(group)
        cut = int(round(len(group) * test_share))
        test += group[:cut]
        train += group[cut:]
    return train, test


@lru_cache(maxsize=1)
def routing_split() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(train, test) as (tokens, label): test = 30% of the labelled raw messages (tokenized here, by the
    server's own code); train = 3,000 pre-tokenized messages that are not test messages (the tokenized
    file repeats the labelled one under the same row_no). A subset, to keep the suite fast: the full
    figures are in benchmarks/routing_bench.py."""
    from tickets.routing import textproc

    _, test_rows = stratified_split(read_rows(LABELED), 0.3)
    test_row_nos = {r["row_no"] for r in test_rows}
    pool = [r for r in read_rows(TOKENIZED) if r["row_no"] not in test_row_nos]
    random.Random(3).shuffle(pool)
    train = [(textproc.join_tokens(textproc.pretokenized(r["tokens"])), r["label"]) for r in pool[:TRAIN_ROWS]]
    test = [(textproc.join_tokens(textproc.tokens(textproc.ticket_text(r["title"], r["body"]))), r["label"])
            for r in test_rows]
    return train, test


@lru_cache(maxsize=1)
def trained_model():  # type: ignore[no-untyped-def]
    from tickets.routing.model import RouterModel

    train, _ = routing_split()
    return RouterModel.train([t for t, _ in train], [label for _, label in train], calibrate=True, folds=2)


@lru_cache(maxsize=1)
def held_out_probabilities():  # type: ignore[no-untyped-def]
    """Probabilities of the held-out messages, computed once for every test that reads them."""
    _, test = routing_split()
    return trained_model().probabilities([t for t, _ in test])
