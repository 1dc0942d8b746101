"""Ideas for routing accuracy (issue 20) on routing_bench's own split and folds, against the product model.

    nice -n 19 /work/main/.venv/bin/python benchmarks/routing_experiments.py --group cheap [--group ...]
    (groups: cheap nbsvm nbsvm2 ensemble vectorizer features semi combos crammer; 2-10 min each, crammer 15)

Same data as ``routing_bench.py --part routing``: 30% of messages_labeled.csv held out (stratified, seed 7,
raw text through the server's tokenizer); development = the rows of messages_tokenized.csv that are not
held-out messages; 5 stratified folds of the development part (random_state 0). Every run scores the
product model (``RouterModel``'s vectorizer and one-vs-rest linear SVM, C=1) on the same six splits, so
each idea is compared with the product of the same run: cv accuracy median (folds), held-out accuracy and
macro-F1. Each split's features are computed once and shared by the ideas that use the product's features.

Every idea here keeps the decision linear in features of the message's own words, character n-grams or
matched phrases, so the reasons could stay whole words (``RouterModel._unit_weights``) if one landed.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import sparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.tickets.routing.fixtures import DATASETS, LABELED, SUPPORT, TOKENIZED, read_rows, stratified_split
from tickets.routing import cli, textproc
from tickets.routing.model import _fit_ovr, _vectorizer

TAXONOMY = DATASETS / "category_taxonomy.csv"
HUB = "城乡建设"  # two thirds of the product's errors are between this class and another


def load() -> dict[str, object]:
    _, test_rows = stratified_split(read_rows(LABELED), 0.3)
    test_nos = {r["row_no"] for r in test_rows}
    titles = {r["row_no"]: r["title"] for r in read_rows(LABELED)
              if r["title_body_concat"] != "1" and r["title"].strip()}
    pool = [r for r in read_rows(TOKENIZED) if r["row_no"] not in test_nos]
    dev = [textproc.join_tokens(textproc.pretokenized(r["tokens"])) for r in pool]
    dev_y = np.asarray([r["label"] for r in pool])
    dev_title = [textproc.join_tokens(textproc.tokens(titles.get(r["row_no"], ""))) for r in pool]
    held = [textproc.join_tokens(textproc.tokens(textproc.ticket_text(r["title"], r["body"]))) for r in test_rows]
    held_y = np.asarray([r["label"] for r in test_rows])
    held_title = [textproc.join_tokens(textproc.tokens(r["title"] if r["title_body_concat"] != "1" else ""))
                  for r in test_rows]
    # Unlabelled messages of the same board (support and replies files), without any that repeats a
    # labelled message (same title or the same start of body), so no held-out message is among them.
    seen_body = {r["body"].strip()[:60] for r in read_rows(LABELED)}
    seen_title = {r["title"].strip() for r in read_rows(LABELED) if r["title"].strip()}
    unlabelled: dict[str, str] = {}
    for r in read_rows(SUPPORT) + read_rows(DATASETS / "messages_with_replies.csv"):
        if r["body"].strip()[:60] in seen_body or r["title"].strip() in seen_title:
            continue
        unlabelled.setdefault(r["body"].strip()[:60], textproc.join_tokens(
            textproc.tokens(textproc.ticket_text(r["title"], r["body"]))))
    return {"dev": dev, "dev_y": dev_y, "dev_title": dev_title, "held": held, "held_y": held_y,
            "held_title": held_title, "unlabelled": list(unlabelled.values())}


def splits(data: dict[str, object]):  # type: ignore[no-untyped-def]
    """routing_bench's 5 folds of the development part, then (all development rows, held-out messages)."""
    from sklearn.model_selection import StratifiedKFold

    dev, y = data["dev"], data["dev_y"]
    assert isinstance(dev, list) and isinstance(y, np.ndarray)
    for k, (tr, va) in enumerate(StratifiedKFold(5, shuffle=True, random_state=0).split(dev, y)):
        yield f"fold{k}", tr, va, False
    yield "held", np.arange(len(dev)), None, True


class Split:
    """One split's texts, labels and the product's features (word and character parts kept apart)."""

    def __init__(self, data: dict[str, object], tr: np.ndarray, va: np.ndarray | None, held: bool) -> None:
        dev, dev_y, dev_title = data["dev"], data["dev_y"], data["dev_title"]
        assert isinstance(dev, list) and isinstance(dev_y, np.ndarray) and isinstance(dev_title, list)
        self.tr_text = [dev[i] for i in tr]
        self.tr_title = [dev_title[i] for i in tr]
        self.y = dev_y[tr]
        if held:
            self.te_text, self.te_y, self.te_title = data["held"], data["held_y"], data["held_title"]
        else:
            assert va is not None
            self.te_text, self.te_y = [dev[i] for i in va], dev_y[va]
            self.te_title = [dev_title[i] for i in va]
        self.classes = sorted(set(self.y))
        self.unlabelled = data["unlabelled"]
        self.vec = _vectorizer(2)
        self.X = self.vec.fit_transform(self.tr_text).tocsr()
        self.Xt = self.vec.transform(self.te_text).tocsr()
        self.n_words = len(self.vec.transformer_list[0][1].vocabulary_)

    def parts(self) -> tuple[sparse.csr_matrix, sparse.csr_matrix, sparse.csr_matrix, sparse.csr_matrix]:
        w = self.n_words
        return self.X[:, :w], self.X[:, w:], self.Xt[:, :w], self.Xt[:, w:]


def ovr_scores(X: sparse.csr_matrix, y: np.ndarray, Xt: sparse.csr_matrix, classes: list[str], C: float = 1.0,
               sample_weight: np.ndarray | None = None, class_weight: str | None = None,
               scale: Callable[[int], np.ndarray] | None = None) -> np.ndarray:
    """One binary LinearSVC per class; ``scale(i)`` multiplies the features of class i's problem (NB-SVM)."""
    from sklearn.svm import LinearSVC

    out = np.zeros((Xt.shape[0], len(classes)))
    for i, label in enumerate(classes):
        r = scale(i) if scale else None
        Xi = X @ sparse.diags(r) if r is not None else X
        svm = LinearSVC(C=C, max_iter=5000, class_weight=class_weight)
        svm.fit(Xi, (y == label).astype(int), sample_weight=sample_weight)
        coef = svm.coef_.ravel() * (r if r is not None else 1.0)  # linear in the unscaled features
        out[:, i] = Xt @ coef + svm.intercept_[0]
    return out


def product_scores(s: Split) -> np.ndarray:
    none = s.X[:0]
    coef, icpt = _fit_ovr(s.X, s.y, none, np.asarray([]), s.classes, 1.0, 1.0)
    return np.asarray(s.Xt @ coef.T.astype(np.float64)) + icpt


# ----------------------------------------------------------------- ideas on the product's features
def balanced_samples(s: Split) -> np.ndarray:
    counts = {c: int((s.y == c).sum()) for c in s.classes}
    w = np.asarray([len(s.y) / (len(s.classes) * counts[c]) for c in s.y])
    return ovr_scores(s.X, s.y, s.Xt, s.classes, sample_weight=w)


def balanced_binary(s: Split) -> np.ndarray:
    return ovr_scores(s.X, s.y, s.Xt, s.classes, class_weight="balanced")


def nbsvm(C: float, beta: float | None = None, alpha: float = 1.0, binary: bool = True
          ) -> Callable[[Split], np.ndarray]:
    """NB-SVM (Wang & Manning 2012): each class's SVM sees the features times their log-count ratio
    r = log((alpha + count in class)/(...) / (alpha + count elsewhere)/(...)); counts of documents holding
    the feature (binary) or of its TF-IDF mass. ``beta``: the NB-SVM's scores mixed with the product's,
    each scaled by its mean absolute score."""
    def run(s: Split) -> np.ndarray:
        B = (s.X > 0).astype(np.float64) if binary else s.X
        ratios = []
        for label in s.classes:
            p = alpha + np.asarray(B[s.y == label].sum(axis=0)).ravel()
            q = alpha + np.asarray(B[s.y != label].sum(axis=0)).ravel()
            ratios.append(np.log((p / p.sum()) / (q / q.sum())))
        key = (id(s), C, alpha, binary)
        if key not in _nb:
            _nb[key] = ovr_scores(s.X, s.y, s.Xt, s.classes, C=C, scale=lambda i: ratios[i])
        scores = _nb[key]
        if beta is None:
            return scores
        return beta * scores / np.abs(scores).mean() + (1 - beta) * product_cache(s) / np.abs(product_cache(s)).mean()
    return run


_product: dict[int, np.ndarray] = {}
_nb: dict[tuple[int, float, float, bool], np.ndarray] = {}


def product_cache(s: Split) -> np.ndarray:
    if id(s) not in _product:
        _product[id(s)] = product_scores(s)
    return _product[id(s)]


def word_char_sum(a: float) -> Callable[[Split], np.ndarray]:
    """Separate word and character SVMs, each turned into log-probabilities by a softmax whose temperature
    is fitted on 3-fold cross-validated scores of the training part (as the product calibrates), summed
    with weight a for words: argmax of summed log-softmax = argmax of a*s_w/T_w + (1-a)*s_c/T_c."""
    def run(s: Split) -> np.ndarray:
        W, Cc, Wt, Ct = s.parts()
        out = np.zeros((s.Xt.shape[0], len(s.classes)))
        for weight, (A, At) in ((a, (W, Wt)), (1 - a, (Cc, Ct))):
            key = (id(s), A.shape[1])
            if key not in _parts:
                _parts[key] = (ovr_scores(A, s.y, At, s.classes), temperature(A, s.y, s.classes))
            sc, t = _parts[key]
            out += weight * sc / t
        return out
    return run


_parts: dict[tuple[int, int], tuple[np.ndarray, float]] = {}


def temperature(X: sparse.csr_matrix, y: np.ndarray, classes: list[str]) -> float:
    from sklearn.model_selection import StratifiedKFold

    scores = np.zeros((X.shape[0], len(classes)))
    for tr, va in StratifiedKFold(3, shuffle=True, random_state=0).split(X, y):
        scores[va] = ovr_scores(X[tr], y[tr], X[va], classes)
    truth = np.searchsorted(classes, y)
    best, best_loss = 1.0, np.inf
    for t in np.geomspace(0.02, 5.0, 60):
        z = scores / t
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        loss = -logp[np.arange(len(y)), truth].mean()
        if loss < best_loss:
            best, best_loss = float(t), loss
    return best


def sgd_huber(alpha: float) -> Callable[[Split], np.ndarray]:
    def run(s: Split) -> np.ndarray:
        from sklearn.linear_model import SGDClassifier

        m = SGDClassifier(loss="modified_huber", alpha=alpha, max_iter=50, tol=1e-4, random_state=0)
        m.fit(s.X, s.y)
        return np.asarray(m.decision_function(s.Xt))
    return run


def ridge(alpha: float) -> Callable[[Split], np.ndarray]:
    def run(s: Split) -> np.ndarray:
        from sklearn.linear_model import RidgeClassifier

        m = RidgeClassifier(alpha=alpha, solver="sparse_cg")
        m.fit(s.X, s.y)
        return np.asarray(m.decision_function(s.Xt))
    return run


def crammer_singer(s: Split) -> np.ndarray:
    from sklearn.svm import LinearSVC

    m = LinearSVC(C=0.5, multi_class="crammer_singer", max_iter=2000).fit(s.X, s.y)
    return np.asarray(m.decision_function(s.Xt))


def pairwise_second_stage(only_hub: bool) -> Callable[[Split], np.ndarray]:
    """Product first; when its two best classes are (城乡建设, X) -- or any pair -- a linear SVM trained on
    those two classes' rows alone decides their order."""
    def run(s: Split) -> np.ndarray:
        from sklearn.svm import LinearSVC

        scores = product_cache(s).copy()
        top2 = np.argsort(-scores, axis=1)[:, :2]
        models: dict[tuple[int, int], tuple[np.ndarray, float]] = {}
        for n, (a, b) in enumerate(top2):
            i, j = min(a, b), max(a, b)
            if only_hub and HUB not in (s.classes[i], s.classes[j]):
                continue
            if (i, j) not in models:
                rows = np.flatnonzero((s.y == s.classes[i]) | (s.y == s.classes[j]))
                svm = LinearSVC(C=1.0, max_iter=5000).fit(s.X[rows], (s.y[rows] == s.classes[j]).astype(int))
                models[(i, j)] = (svm.coef_.ravel(), float(svm.intercept_[0]))
            coef, icpt = models[(i, j)]
            says_j = float((s.Xt[n] @ coef)[0]) + icpt > 0
            first, second = (j, i) if says_j else (i, j)
            hi = scores[n].max()
            scores[n, first], scores[n, second] = hi + 1.0, hi + 0.5
        return scores
    return run


# ----------------------------------------------------------------- ideas with more or other features
def refit(**changes: object) -> Callable[[Split], np.ndarray]:
    """The product's classifier on a vectorizer with some settings changed (both parts unless prefixed
    w__ / c__)."""
    def run(s: Split) -> np.ndarray:
        vec = _vectorizer(2)
        for key, value in changes.items():
            part, _, name = key.rpartition("__")
            for step_name, step in vec.transformer_list:
                if not part or part == step_name:
                    step.set_params(**{name: value})
        X = vec.fit_transform(s.tr_text).tocsr()
        Xt = vec.transform(s.te_text).tocsr()
        return ovr_scores(X, s.y, Xt, s.classes)
    return run


def with_extra(build: Callable[[Split], tuple[sparse.csr_matrix, sparse.csr_matrix]], weight: float
               ) -> Callable[[Split], np.ndarray]:
    def run(s: Split) -> np.ndarray:
        E, Et = build(s)
        X = sparse.hstack([s.X, weight * E], format="csr")
        Xt = sparse.hstack([s.Xt, weight * Et], format="csr")
        return ovr_scores(X, s.y, Xt, s.classes)
    return run


def title_words(s: Split) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
    """Word TF-IDF of the title where the message has one (held-out and labelled development rows)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    v = TfidfVectorizer(tokenizer=str.split, token_pattern=None, lowercase=False, sublinear_tf=True, min_df=2)
    v.fit([t for t in s.tr_title if t] or ["空"])
    return v.transform(s.tr_title).tocsr(), v.transform(s.te_title).tocsr()


def prefix_words(n: int) -> Callable[[Split], tuple[sparse.csr_matrix, sparse.csr_matrix]]:
    """Word TF-IDF of the first n words: where a title is, in every message (the development rows carry
    no title of their own, but it is their first words)."""
    def build(s: Split) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
        from sklearn.feature_extraction.text import TfidfVectorizer

        v = TfidfVectorizer(tokenizer=str.split, token_pattern=None, lowercase=False, sublinear_tf=True, min_df=2)

        def cut(texts: list[str]) -> list[str]:
            return [" ".join(t.split()[:n]) for t in texts]

        return v.fit_transform(cut(s.tr_text)).tocsr(), v.transform(cut(s.te_text)).tocsr()
    return build


def taxonomy_phrases() -> list[tuple[str, str]]:
    """(phrase, level-1 label) from the level-2/3 names: the names and their words of 2+ characters."""
    import csv

    out: set[tuple[str, str]] = set()
    with TAXONOMY.open(encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            for name in (row["level2"], row["level3"]):
                if not name or name == "其他":
                    continue
                out.add((name, row["level1"]))
                for w in textproc.tokens(name):
                    if len(w) >= 2:
                        out.add((w, row["level1"]))
    return sorted(out)


def taxonomy_matches(per_class: bool) -> Callable[[Split], tuple[sparse.csr_matrix, sparse.csr_matrix]]:
    """Matched taxonomy phrases (substring of the message without spaces): one column per phrase
    (binary), or per level-1 class the log of 1 + the number of its phrases matched."""
    phrases = taxonomy_phrases()
    names = sorted({p for p, _ in phrases})
    col = {p: i for i, p in enumerate(names)}

    def match(texts: list[str], classes: list[str]) -> sparse.csr_matrix:
        rows, cols = [], []
        for r, text in enumerate(texts):
            glued = text.replace(" ", "")
            for p in names:
                if p in glued:
                    rows.append(r)
                    cols.append(col[p])
        M = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(texts), len(names)))
        if not per_class:
            return M
        owner = np.zeros((len(names), len(classes)))
        for p, label in phrases:
            if label in classes:
                owner[col[p], classes.index(label)] = 1.0
        return sparse.csr_matrix(np.log1p(np.asarray(M @ owner)))

    def build(s: Split) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
        return match(s.tr_text, s.classes), match(s.te_text, s.classes)
    return build


def self_training(margin: float, weight: float, idf_all: bool = False) -> Callable[[Split], np.ndarray]:
    """The product trained, then trained again with the unlabelled messages it labels with a score margin
    (best minus second best decision) of at least ``margin``, each counted ``weight`` times. ``idf_all``:
    the vectorizer fitted on the training part and all unlabelled messages."""
    def run(s: Split) -> np.ndarray:
        U: list[str] = s.unlabelled  # type: ignore[assignment]
        if idf_all:
            vec = _vectorizer(2)
            vec.fit(s.tr_text + U)
            X, Xt, Xu = (vec.transform(t).tocsr() for t in (s.tr_text, s.te_text, U))
        else:
            X, Xt, Xu = s.X, s.Xt, s.vec.transform(U).tocsr()
        if margin is None:
            return ovr_scores(X, s.y, Xt, s.classes)
        su = ovr_scores(X, s.y, Xu, s.classes)
        top = np.sort(su, axis=1)
        keep = np.flatnonzero(top[:, -1] - top[:, -2] >= margin)
        yu = np.asarray(s.classes)[su[keep].argmax(axis=1)]
        X2 = sparse.vstack([X, Xu[keep]], format="csr")
        y2 = np.concatenate([s.y, yu])
        w = np.concatenate([np.ones(len(s.y)), np.full(len(keep), weight)])
        print(f"    self-training: {len(keep)} of {len(U)} unlabelled messages added", flush=True)
        return ovr_scores(X2, y2, Xt, s.classes, sample_weight=w)
    return run


def mix(a: Callable[[Split], np.ndarray], b: Callable[[Split], np.ndarray], share_b: float
        ) -> Callable[[Split], np.ndarray]:
    """Two ideas' scores, each scaled by its mean absolute score, b with weight ``share_b``."""
    def run(s: Split) -> np.ndarray:
        sa, sb = a(s), b(s)
        return (1 - share_b) * sa / np.abs(sa).mean() + share_b * sb / np.abs(sb).mean()
    return run


_title = with_extra(title_words, 1.0)


def title_cache(s: Split) -> np.ndarray:
    key = (id(s), -1.0, -1.0, False)
    if key not in _nb:
        _nb[key] = _title(s)
    return _nb[key]


IDEAS: dict[str, dict[str, Callable[[Split], np.ndarray]]] = {
    "cheap": {
        "balanced sample weights": balanced_samples,
        "class_weight=balanced (per binary problem)": balanced_binary,
        "second stage 城乡建设-vs-X (top 2)": pairwise_second_stage(True),
        "second stage every pair (top 2)": pairwise_second_stage(False),
        "ridge classifier alpha=1": ridge(1.0),
        "ridge classifier alpha=3": ridge(3.0),
        "SGD modified_huber alpha=1e-5": sgd_huber(1e-5),
        "SGD modified_huber alpha=3e-5": sgd_huber(3e-5),
    },
    "nbsvm": {
        "NB-SVM C=1": nbsvm(1.0),
        "NB-SVM C=0.1": nbsvm(0.1),
        "NB-SVM C=0.1, half product": nbsvm(0.1, 0.5),
    },
    "ensemble": {
        "word SVM + char SVM, calibrated, words 0.3": word_char_sum(0.3),
        "word SVM + char SVM, calibrated, words 0.5": word_char_sum(0.5),
        "word SVM + char SVM, calibrated, words 0.7": word_char_sum(0.7),
    },
    "vectorizer": {
        "min_df=1": refit(min_df=1),
        "min_df=3": refit(min_df=3),
        "max_df=0.5": refit(max_df=0.5),
        "sublinear_tf=False": refit(sublinear_tf=False),
        "word 1-3-grams": refit(w__ngram_range=(1, 3)),
    },
    "features": {
        "+ title words x1": with_extra(title_words, 1.0),
        "+ title words x0.5": with_extra(title_words, 0.5),
        "+ first 8 words x0.5": with_extra(prefix_words(8), 0.5),
        "+ first 8 words x1": with_extra(prefix_words(8), 1.0),
        "+ taxonomy phrases matched x0.5": with_extra(taxonomy_matches(False), 0.5),
        "+ taxonomy class votes x0.3": with_extra(taxonomy_matches(True), 0.3),
        "+ taxonomy class votes x1": with_extra(taxonomy_matches(True), 1.0),
    },
    "nbsvm2": {
        "NB-SVM C=1": nbsvm(1.0),
        "NB-SVM C=1, half product": nbsvm(1.0, 0.5),
        "NB-SVM C=1, 0.3 product": nbsvm(1.0, 0.7),
        "NB-SVM C=0.5": nbsvm(0.5),
        "NB-SVM C=3": nbsvm(3.0),
        "NB-SVM C=1 alpha=0.25": nbsvm(1.0, alpha=0.25),
        "NB-SVM C=1 ratios of tf-idf mass": nbsvm(1.0, alpha=0.1, binary=False),
    },
    "semi": {
        "idf on training + unlabelled": self_training(None, 0.0, idf_all=True),  # type: ignore[arg-type]
        "self-training margin 1.0 weight 0.5": self_training(1.0, 0.5),
        "self-training margin 0.5 weight 0.5": self_training(0.5, 0.5),
        "self-training margin 0.5 weight 1": self_training(0.5, 1.0),
        "self-training margin 0.5 weight 0.5, idf all": self_training(0.5, 0.5, idf_all=True),
    },
    "combos": {
        "+ title words x1": title_cache,
        "NB-SVM (tf-idf mass) + product, half each": mix(product_cache, nbsvm(1.0, alpha=0.1, binary=False), 0.5),
        "NB-SVM + (product + title words x1), half each": mix(title_cache, nbsvm(1.0), 0.5),
        "NB-SVM (tf-idf mass) + (product + title words x1)": mix(title_cache, nbsvm(1.0, alpha=0.1, binary=False), 0.5),
    },
    "crammer": {"Crammer-Singer multi-class SVM C=0.5": crammer_singer},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--group", action="append", choices=sorted(IDEAS), required=True)
    ap.add_argument("--only", action="append", default=[], help="run only ideas whose name contains this")
    args = ap.parse_args()
    ideas = {"product": product_cache}
    for g in args.group:
        ideas.update({k: v for k, v in IDEAS[g].items() if not args.only or any(o in k for o in args.only)})
    t0 = time.perf_counter()
    data = load()
    print(f"data loaded in {time.perf_counter() - t0:.0f}s: {len(data['dev'])} development rows, "  # type: ignore[arg-type]
          f"{len(data['held'])} held out", flush=True)  # type: ignore[arg-type]
    cv: dict[str, list[float]] = {k: [] for k in ideas}
    held: dict[str, tuple[float, float]] = {}
    spent: dict[str, float] = {k: 0.0 for k in ideas}
    for name, tr, va, is_held in splits(data):
        s = Split(data, tr, va, is_held)
        for idea, run in ideas.items():
            t1 = time.perf_counter()
            scores = run(s)
            spent[idea] += time.perf_counter() - t1
            pred = np.asarray(s.classes)[scores.argmax(axis=1)]
            acc = float((pred == s.te_y).mean())
            if is_held:
                held[idea] = (acc, cli.macro_f1(list(s.te_y), list(pred)))
            else:
                cv[idea].append(acc)
            print(f"  {name} {idea}: {acc:.4f}", flush=True)
        _product.clear()
        _parts.clear()
        _nb.clear()
    print(f"\n{'idea':55s} cv median (folds)                          held-out acc  macro-F1  time")
    base_cv, (base_acc, _) = float(np.median(cv["product"])), held["product"]
    for idea in ideas:
        med = float(np.median(cv[idea]))
        acc, f1 = held[idea]
        print(f"{idea:55s} {med:.4f} ({' '.join(f'{x:.4f}' for x in cv[idea])})  {acc:.4f}  {f1:.4f}  "
              f"{spent[idea]:.0f}s  [{med - base_cv:+.4f} / {acc - base_acc:+.4f}]")


if __name__ == "__main__":
    main()
