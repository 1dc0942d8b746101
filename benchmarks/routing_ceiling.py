"""How high first-level routing accuracy can go on this data: twins with different labels, the ceiling an
oracle reaches on the held-out split, and where the best model's errors fall.

    /work/main/.venv/bin/python benchmarks/routing_ceiling.py [--show-errors 30] [--seed 1]

Same split as ``benchmarks/routing_bench.py --part routing``: 30% of messages_labeled.csv held out
(stratified, seed 7), development = the rows of messages_tokenized.csv that are not held-out messages.

1. Twins over all 8,464 rows of messages_tokenized.csv (it holds every labelled message too, under the same
   row_no and label): the organiser's tokens joined without spaces, so every message is compared in one
   form. Identical = same joined text; near-identical = character-3-gram Jaccard >= 0.8 (as the duplicate
   benchmark). Counted: pairs, pairs whose two first-level labels differ, messages with such a twin.
2. The ceiling on the held-out messages. Twins are joined into groups (transitively); an oracle that must
   give every member of a group one label gets at most the group's commonest label right:
   (a) groups among the held-out messages only: the hard upper bound for any text -> label function;
   (b) a learner that reproduces its training labels for near copies: a held-out message with twins among
       the development rows gets their commonest label (right if its own label is among the commonest),
       one without keeps its own: what such a learner can reach at most.
3. The model of the product (``RouterModel``, trained on the development rows as the benchmark does) on
   the held-out messages: errors by (true label -> predicted label), and how many errors have a
   development twin (Jaccard >= 0.8, or >= 0.5) labelled as the model predicted.
4. ``--show-errors N``: N errors sampled with ``--seed``, printed with their text to be read by a person
   (label noise, or a model mistake?). The data is never committed: the reading goes to BENCHMARKS.md as
   counts.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from scipy import sparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.tickets.routing.fixtures import LABELED, TOKENIZED, read_rows, stratified_split
from tickets.routing import textproc
from tickets.routing.model import RouterModel

NEAR = 0.8

# One person's reading (2026-12-03) of the 30 errors ``--show-errors 30 --seed 1`` samples from the model of
# that day, by row_no, against the text and category_taxonomy.csv. model = the label fits the text (and the
# taxonomy), the model is wrong; ambiguous = the text fits both labels' parts of the taxonomy; noise = the
# label contradicts the text or the taxonomy (住房公积金 is 城乡建设, 城镇居民医疗保险 劳动和社会保障);
# outside = the matter belongs to none of the 7 classes (殡葬 is 民政, coal-mine closure 国土资源).
JUDGED = {
    **dict.fromkeys(("3194", "3514", "8445", "8085", "7875", "403", "532", "1733", "363", "3582", "2050"), "model"),
    **dict.fromkeys(("2958", "454", "3214", "2949", "5326", "8405", "7771", "7264", "23", "769", "698", "4878",
                     "4626", "4222"), "ambiguous"),
    **dict.fromkeys(("5815", "8396", "5082"), "noise"),
    **dict.fromkeys(("4344", "2923"), "outside"),
}


def shingle_matrix(texts: list[str], k: int = 3) -> sparse.csr_matrix:
    """Binary (texts x character k-grams) matrix over the compact form of each text."""
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for i, text in enumerate(texts):
        for sh in textproc.char_shingles(text, k):
            rows.append(i)
            cols.append(vocab.setdefault(sh, len(vocab)))
    data = np.ones(len(rows), dtype=np.float32)
    return sparse.csr_matrix((data, (rows, cols)), shape=(len(texts), max(1, len(vocab))))


def similar_pairs(X: sparse.csr_matrix, threshold: float, chunk: int = 500) -> dict[tuple[int, int], float]:
    """Every pair (i < j) with exact Jaccard >= threshold, from sparse intersections, a chunk at a time."""
    sizes = np.asarray(X.sum(axis=1)).ravel()
    XT = X.T.tocsc()
    out: dict[tuple[int, int], float] = {}
    for start in range(0, X.shape[0], chunk):
        inter = (X[start:start + chunk] @ XT).tocoo()
        i = inter.row + start
        keep = inter.col > i
        i, j, n = i[keep], inter.col[keep], inter.data[keep]
        union = sizes[i] + sizes[j] - n
        jac = np.divide(n, union, out=np.zeros_like(n), where=union > 0)
        for a, b, s in zip(i[jac >= threshold], j[jac >= threshold], jac[jac >= threshold]):
            out[(int(a), int(b))] = float(s)
    return out


def groups(n: int, pairs: list[tuple[int, int]]) -> list[list[int]]:
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        parent[find(a)] = find(b)
    out: dict[int, list[int]] = defaultdict(list)
    for x in range(n):
        out[find(x)].append(x)
    return list(out.values())


def twin_counts(name: str, labels: list[str], pairs: dict[tuple[int, int], float]) -> None:
    conflicting = [(a, b) for a, b in pairs if labels[a] != labels[b]]
    members = {x for p in conflicting for x in p}
    by_pair = Counter(tuple(sorted((labels[a], labels[b]))) for a, b in conflicting)
    print(f"  {name}: {len(pairs)} twin pairs, {len(conflicting)} with different first-level labels; "
          f"{len(members)} of {len(labels)} messages ({len(members) / len(labels):.1%}) have a twin labelled otherwise")
    if by_pair:
        print("    label pairs: " + ", ".join(f"{a}/{b} {c}" for (a, b), c in by_pair.most_common(8)))


def oracle_within(held: list[int], labels: list[str], pairs: list[tuple[int, int]], n: int) -> int:
    """(a): held-out messages right when every twin group among them gets its commonest label."""
    held_set = set(held)
    right = 0
    for group in groups(n, [(a, b) for a, b in pairs if a in held_set and b in held_set]):
        if group[0] in held_set:
            right += max(Counter(labels[x] for x in group).values())
    return right


def oracle_learner(held: list[int], labels: list[str], twins: dict[int, list[int]]) -> int:
    """(b): held-out messages right when each takes the commonest label of its development twins."""
    right = 0
    for x in held:
        votes = Counter(labels[d] for d in twins.get(x, []))
        right += not votes or votes[labels[x]] == max(votes.values())
    return right


def dev_twins(pairs: Iterable[tuple[int, int]], held_set: set[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = defaultdict(list)
    for a, b in pairs:
        if a in held_set and b not in held_set:
            out[a].append(b)
        elif b in held_set and a not in held_set:
            out[b].append(a)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--show-errors", type=int, default=0, help="print N sampled errors with their text")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    t_start = time.perf_counter()

    labelled = read_rows(LABELED)
    _, test_rows = stratified_split(labelled, 0.3)
    test_nos = [r["row_no"] for r in test_rows]
    every = read_rows(TOKENIZED)
    index = {r["row_no"]: i for i, r in enumerate(every)}
    joined = ["".join(textproc.pretokenized(r["tokens"])) for r in every]
    labels = [r["label"] for r in every]

    print("== twins over all rows of messages_tokenized.csv (organiser's tokens joined)")
    X = shingle_matrix(joined)
    by_text: dict[str, list[int]] = defaultdict(list)
    for i, text in enumerate(joined):
        by_text[text].append(i)
    exact = {(a, b): 1.0 for members in by_text.values() for n_, a in enumerate(members) for b in members[n_ + 1:]}
    near = similar_pairs(X, NEAR)
    loose = similar_pairs(X, 0.5)
    twin_counts("identical text", labels, exact)
    twin_counts(f"near-identical (3-gram Jaccard >= {NEAR})", labels, near)
    twin_counts("similar (3-gram Jaccard >= 0.5)", labels, loose)

    print("== ceiling on the held-out split (924 raw messages, seed 7)")
    held = [index[no] for no in test_nos]
    held_set = set(held)
    n = len(every)
    for name, pairs in (("identical", list(exact)), (f"Jaccard >= {NEAR}", list(near))):
        a_right = oracle_within(held, labels, pairs, n)
        b_right = oracle_learner(held, labels, dev_twins(pairs, held_set))
        print(f"  {name}: (a) groups within the held-out set: at most {a_right} of {len(held)} "
              f"= {a_right / len(held):.4f}; (b) taking the development twins' commonest label: "
              f"{b_right} = {b_right / len(held):.4f}")

    print("== errors of the product's model (trained on the development rows) on the held-out messages")
    dev = [i for i in range(n) if i not in held_set]
    model = RouterModel.train([textproc.join_tokens(textproc.pretokenized(every[i]["tokens"])) for i in dev],
                              [labels[i] for i in dev], calibrate=False)
    test_text = [textproc.join_tokens(textproc.tokens(textproc.ticket_text(r["title"], r["body"])))
                 for r in test_rows]
    truth = [r["label"] for r in test_rows]
    pred = model.predict(test_text)
    probs = model.probabilities(test_text)
    wrong = [k for k in range(len(truth)) if pred[k] != truth[k]]
    print(f"  accuracy {1 - len(wrong) / len(truth):.4f}: {len(wrong)} errors of {len(truth)}")
    pair_counts = Counter((truth[k], pred[k]) for k in wrong)
    print("  true -> predicted: " + ", ".join(f"{a}->{b} {c}" for (a, b), c in pair_counts.most_common()))
    unordered = Counter(tuple(sorted(p)) for p in pair_counts.elements())
    print("  class pairs, both directions: " + ", ".join(f"{a}/{b} {c}" for (a, b), c in unordered.most_common()))
    for name, scored in ((f"Jaccard >= {NEAR}", near), ("Jaccard >= 0.5", loose)):
        twins = dev_twins(scored, held_set)
        explained = sum(1 for k in wrong if any(labels[d] == pred[k] for d in twins[held[k]]))
        print(f"  errors with a development twin ({name}) labelled as the model predicted: {explained} of {len(wrong)}")
    margin = np.sort(probs, axis=1)
    conf = margin[:, -1]
    print(f"  confidence of the errors: median {np.median(conf[wrong]):.2f}; "
          f"{sum(conf[k] >= 0.8 for k in wrong)} of them >= 0.8")

    if args.show_errors:
        print(f"== {args.show_errors} errors (seed {args.seed}), to read")
        verdicts: Counter[str] = Counter()
        for k in sorted(random.Random(args.seed).sample(wrong, min(args.show_errors, len(wrong)))):
            r = test_rows[k]
            top = sorted(zip(model.labels, probs[k]), key=lambda x: -x[1])[:3]
            verdict = JUDGED.get(r["row_no"], "not read")
            verdicts[verdict] += 1
            print(f"--- #{k} row_no {r['row_no']} label {truth[k]} predicted {pred[k]} "
                  f"({', '.join(f'{lab} {p:.2f}' for lab, p in top)}) [{verdict}]")
            print(f"    {r['title']} | {textproc.normalize(r['body'])[:300]}")
        print("  reading (JUDGED): " + ", ".join(f"{v} {c}" for v, c in verdicts.most_common()))
    print(f"({time.perf_counter() - t_start:.0f}s)")


if __name__ == "__main__":
    main()
