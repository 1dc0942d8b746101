"""Routing, duplicate and lookup figures on the real messages of ../shared/datasets (never committed).

    /work/main/.venv/bin/python benchmarks/routing_bench.py [--quick]

1. Routing: 30% of messages_labeled.csv held out (stratified, seed 7; raw text through the server's own
   tokenizer); training = every row of messages_tokenized.csv that is not a held-out message (same row_no).
   C chosen by 3-fold cross-validation on the training part only. Baseline in the same run: keyword lists
   (the 30 most class-specific words of each label, learned from the same training part), one hit each.
2. Duplicates: messages_with_support.csv; reference = exact character-3-gram Jaccard >= 0.8 over all pairs;
   the detector = LSH candidates + exact re-scoring. Baseline: the pairwise bigram scan the ticket store
   uses today in ``related`` (over its 2,000 most recent open tickets).
3. Latency: routing per ticket (tokenize + model + rules), duplicate lookup against 1,000,000 stored tickets.
"""
from __future__ import annotations

import argparse
import random
import re
import resource
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.tickets.routing.fixtures import LABELED, SUPPORT, TOKENIZED, read_rows, stratified_split
from tickets.routing import cli, duplicates, textproc
from tickets.routing import rules as routing
from tickets.routing.model import RouterModel
from tickets.service import text_similarity as store_similarity


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def keyword_baseline(train: list[tuple[str, str]], k: int = 30):  # type: ignore[no-untyped-def]
    df: dict[str, Counter[str]] = defaultdict(Counter)
    total: Counter[str] = Counter()
    labels = Counter(label for _, label in train)
    for text, label in train:
        for w in set(text.split()):
            if len(w) >= 2:
                df[label][w] += 1
                total[w] += 1
    lists = {}
    for label in labels:
        scored = [(df[label][w] / total[w], w) for w in df[label] if total[w] >= 10]
        lists[label] = {w for _, w in sorted(scored, reverse=True)[:k]}
    default = labels.most_common(1)[0][0]

    def predict(text: str) -> str:
        words = set(text.split())
        hits = {label: len(words & kw) for label, kw in lists.items()}
        best = max(hits.values())
        return max(hits, key=hits.get) if best else default  # type: ignore[arg-type]

    return predict


def bench_routing(quick: bool) -> dict[str, float]:
    print("== routing (first-level labels)")
    _, test_rows = stratified_split(read_rows(LABELED), 0.3)
    test_nos = {r["row_no"] for r in test_rows}
    pool = [r for r in read_rows(TOKENIZED) if r["row_no"] not in test_nos]
    if quick:
        pool = random.Random(3).sample(pool, 3000)
    train = [(textproc.join_tokens(textproc.pretokenized(r["tokens"])), r["label"]) for r in pool]
    t0 = time.perf_counter()
    test = [(textproc.join_tokens(textproc.tokens(textproc.ticket_text(r["title"], r["body"]))), r["label"])
            for r in test_rows]
    print(f"train {len(train)} tokenized rows, test {len(test)} raw messages (tokenized in {time.perf_counter() - t0:.1f}s)")
    texts, labels = [t for t, _ in train], [label for _, label in train]

    # C by cross-validation on the training part only (the vectoriser refitted inside each fold).
    from sklearn.model_selection import StratifiedKFold

    best_c, best_acc = 0.5, -1.0
    for C in ([0.5] if quick else [0.25, 0.5, 1.0]):
        accs = []
        for tr, va in StratifiedKFold(3, shuffle=True, random_state=0).split(texts, labels):
            m = RouterModel.train([texts[i] for i in tr], [labels[i] for i in tr], C=C, calibrate=False)
            p = m.predict([texts[i] for i in va])
            accs.append(np.mean([a == labels[i] for a, i in zip(p, va)]))
        print(f"  cv C={C}: accuracy {np.mean(accs):.4f}")
        if np.mean(accs) > best_acc:
            best_c, best_acc = C, float(np.mean(accs))
    t0 = time.perf_counter()
    model = RouterModel.train(texts, labels, C=best_c, calibrate=True)
    train_s = time.perf_counter() - t0
    truth = [label for _, label in test]
    pred = model.predict([t for t, _ in test])
    acc = float(np.mean([a == b for a, b in zip(pred, truth)]))
    f1 = cli.macro_f1(truth, pred)
    base = keyword_baseline(train)
    bpred = [base(t) for t, _ in test]
    bacc = float(np.mean([a == b for a, b in zip(bpred, truth)]))
    bf1 = cli.macro_f1(truth, bpred)
    print(f"model (C={best_c}, trained in {train_s:.1f}s): accuracy={acc:.4f} macro_f1={f1:.4f} n={len(test)}")
    print(f"baseline keyword lists:             accuracy={bacc:.4f} macro_f1={bf1:.4f}  (model/baseline accuracy x{acc / bacc:.2f})")
    for label in sorted(set(truth)):
        tp = sum(1 for a, b in zip(pred, truth) if a == b == label)
        prec = tp / max(1, sum(1 for a in pred if a == label))
        rec = tp / max(1, sum(1 for b in truth if b == label))
        print(f"  {label}: precision {prec:.3f} recall {rec:.3f}")
    probs = model.probabilities([t for t, _ in test])
    conf = probs.max(axis=1)
    right = np.asarray(pred) == np.asarray(truth)
    for th in (0.5, 0.6, 0.7, 0.8):
        auto = conf >= th
        print(f"  threshold {th}: {auto.mean():.1%} routed automatically at accuracy {right[auto].mean():.4f}; "
              f"{1 - auto.mean():.1%} to a dispatcher")

    # Per-ticket latency as the server does it: tokenize raw text, rank every label, apply rules.
    config = routing.load_config(ROOT / "config" / "routing.toml", ROOT / "config" / "departments.toml")
    lat = []
    for r in test_rows:
        t0 = time.perf_counter()
        toks = textproc.join_tokens(textproc.tokens(textproc.ticket_text(r["title"], r["body"])))
        ranking = model.rank(toks, top=len(model.labels))
        routing.suggest(routing.TicketInput(r["title"], r["body"]), config, ranking)
        lat.append(time.perf_counter() - t0)
    print(f"routing latency per ticket: p50 {pct(lat, 50) * 1000:.1f} ms, p99 {pct(lat, 99) * 1000:.1f} ms")
    return {"accuracy": acc, "macro_f1": f1, "baseline_accuracy": bacc, "baseline_macro_f1": bf1}


def bench_duplicates(n_total: int) -> None:
    print("== duplicates")
    msgs = [(int(r["id"]), textproc.ticket_text(r["title"], r["body"])) for r in read_rows(SUPPORT)]
    texts = dict(msgs)
    from tests.tickets.routing.test_duplicates import messages, reference_pairs

    assert messages() == msgs
    reference = reference_pairs()
    idx = duplicates.MinHashIndex()
    t0 = time.perf_counter()
    idx.add_many(msgs)
    build = time.perf_counter() - t0
    found, lookups = set(), []
    for mid, text in msgs:
        t0 = time.perf_counter()
        cands = idx.candidates(text, limit=50, exclude=mid)
        hits = [c for c, _ in cands if duplicates.text_similarity(text, texts[c]) >= 0.8]
        lookups.append(time.perf_counter() - t0)
        found |= {(min(mid, c), max(mid, c)) for c in hits}
    tp = len(found & reference)
    contained = len(found - reference)
    print(f"{len(msgs)} messages, {len(reference)} reference pairs (exact Jaccard >= 0.8); index built in {build:.1f}s")
    print(f"LSH + re-scoring: recall {tp / len(reference):.4f}, precision vs Jaccard reference "
          f"{tp / max(1, len(found)):.4f} ({contained} extra pairs are containments: a short report inside a longer one)")
    print(f"  lookup incl. re-scoring: p50 {pct(lookups, 50) * 1000:.2f} ms p99 {pct(lookups, 99) * 1000:.2f} ms")
    # Baseline: what the store's `related` does today, a pairwise bigram scan over 2,000 open tickets.
    sample = msgs[:2000]
    scan = []
    for mid, text in msgs[2000:2100]:
        t0 = time.perf_counter()
        sorted(((store_similarity(text, t), i) for i, t in sample), reverse=True)[:10]
        scan.append(time.perf_counter() - t0)
    print(f"baseline pairwise scan of 2,000 tickets: p50 {pct(scan, 50) * 1000:.1f} ms "
          f"(a scan of {n_total:,} would be ~{pct(scan, 50) * n_total / 2000:.0f} s)")

    # 1,000,000 stored tickets: the real messages, 50,000 recombined from their sentences (realistic
    # collisions between similar complaints), the rest random band keys (distinct texts).
    rnd = random.Random(9)
    sentences = [s for _, t in msgs for s in re.split(r"(?<=[。！？])", t) if len(s) > 8]
    big = duplicates.MinHashIndex()
    t0 = time.perf_counter()
    recombined = [(10_000_000 + i, "".join(rnd.sample(sentences, 4))) for i in range(50_000)]
    big.add_many(recombined)
    real_built = time.perf_counter() - t0
    n_random = n_total - len(recombined) - len(msgs)
    keys = np.random.default_rng(0).integers(0, 2**32, size=(n_random, duplicates.BANDS), dtype=np.uint64)
    big._pending_ids = list(range(20_000_000, 20_000_000 + n_random))
    big._pending_keys = list(keys.astype(np.uint32))
    big._members.update(big._pending_ids)
    big._merge()
    big.add_many(msgs)
    print(f"index of {len(big):,} tickets (hashing 50,000 texts took {real_built:.1f}s, "
          f"{real_built / 50_000 * 1e6:.0f} us/ticket); max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    lat, hits = [], 0
    queries = rnd.sample(msgs, 1000)
    for mid, text in queries:
        again = "再次反映：" + text.replace("，", ",")
        t0 = time.perf_counter()
        cands = big.candidates(again, limit=50)
        ranked = duplicates.rank(duplicates.TicketFacts(-1, again),
                                 [duplicates.TicketFacts(c, texts.get(c, "")) for c, _ in cands if c in texts])
        lat.append(time.perf_counter() - t0)
        hits += bool(ranked) and (ranked[0].id == mid or duplicates.text_similarity(texts[ranked[0].id], text) >= 0.8)
    print(f"duplicate lookup against {len(big):,} tickets: p50 {pct(lat, 50) * 1000:.2f} ms, "
          f"p99 {pct(lat, 99) * 1000:.2f} ms; re-report found first in {hits / len(queries):.1%}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="3,000 training rows, no C search, 200,000 tickets")
    args = parser.parse_args()
    if not LABELED.exists():
        print(f"datasets not found in {LABELED.parent}; nothing to measure")
        return
    bench_routing(args.quick)
    bench_duplicates(200_000 if args.quick else 1_000_000)


if __name__ == "__main__":
    main()
