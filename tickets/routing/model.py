"""The learned half of routing: TF-IDF over jieba words and character n-grams, one linear SVM per label.

Why this shape: on the city's own archive (measured on the TipDM messages, see INTEGRATION-routing.md)
word + character n-gram TF-IDF with a linear SVM is as accurate as logistic regression and 20-40 times
faster to train, so ``hotline train-router`` stays a matter of seconds. Character n-grams catch words
jieba splits differently in raw text and in pre-tokenized archives.

One binary SVM per label (one-vs-rest, written out instead of sklearn's built-in) so that a department's
return (退单) can be fed back as what it is: a negative example for *that* department only, without
claiming which department the ticket belongs to. Scores become probabilities through a softmax whose
temperature is fitted on cross-validated scores of the training data, so "confidence 0.8" means roughly
"right 8 times in 10" and the dispatcher threshold is meaningful.

Inputs are space-joined tokens (``textproc.tokens``), so callers choose raw text or pre-tokenized archives.
"""
from __future__ import annotations

import itertools
import os
import re
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import FeatureUnion
from sklearn.svm import LinearSVC

FORMAT = 1


def _split(text: str) -> list[str]:
    return text.split()


def _glue(text: str) -> str:
    # Character n-grams across the whole message, not inside single words: a phrase jieba split in two
    # still yields the same n-grams.
    return text.replace(" ", "")


def _vectorizer(min_df: int) -> FeatureUnion:
    # min_df=2 drops the long tail of once-seen n-grams (names, numbers): a fifth of the features,
    # a quarter of the training time, no measurable loss of accuracy.
    words = TfidfVectorizer(tokenizer=_split, token_pattern=None, lowercase=False, ngram_range=(1, 2),
                            sublinear_tf=True, min_df=min_df, dtype=np.float64)
    chars = TfidfVectorizer(analyzer="char", preprocessor=_glue, ngram_range=(1, 3), sublinear_tf=True,
                            min_df=min_df, dtype=np.float64)
    return FeatureUnion([("w", words), ("c", chars)])


def _transform(vec: FeatureUnion, texts: list[str]) -> sparse.csr_matrix:
    # FeatureUnion.transform goes through joblib even for one document (10 ms); stacking by hand is 1 ms.
    parts = [step.transform(texts) for _, step in vec.transformer_list]
    # float32 like the weights: a float64 matrix times float32 weights makes scipy convert the whole weight
    # matrix (features x labels, 16 MB at 576k features) on every product, 2.4 ms each; this copy of a
    # few hundred non-zeros costs 0.05 ms.
    return sparse.hstack(parts, format="csr", dtype=np.float32)


class _OneDocument:
    """TF-IDF of one document without sklearn's per-call input validation (half of a ticket's ranking time):
    sklearn's own analyzers give the terms, so the features are the same; counts, sublinear tf, idf and the
    l2 norm of each part are the few lines below. ``of`` answers False for vectorizers set up otherwise."""

    def __init__(self, parts: list[tuple[Any, np.ndarray, int]], width: int) -> None:
        self.parts = parts  # (text -> (columns in first-seen order, counts), idf, offset of the part)
        self.width = width

    @classmethod
    def of(cls, vec: FeatureUnion) -> _OneDocument | bool:
        parts: list[tuple[Any, np.ndarray, int]] = []
        offset = 0
        for _, step in vec.transformer_list:
            if not (step.sublinear_tf and step.use_idf and step.norm == "l2" and not step.binary):
                return False
            counter = _CharCounts.of(step) or _TermCounts(step.build_analyzer(), step.vocabulary_)
            parts.append((counter, np.asarray(step.idf_, dtype=np.float64), offset))
            offset += len(step.vocabulary_)
        return cls(parts, offset)

    def transform(self, text: str) -> sparse.csr_matrix:
        cols: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        for count, idf, offset in self.parts:
            idx, tf = count(text)
            if not len(idx):
                continue
            v = (1.0 + np.log(tf)) * idf[idx]
            v /= np.sqrt((v * v).sum())
            order = np.argsort(idx)
            cols.append(idx[order] + offset)
            vals.append(v[order])
        col = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
        val = np.concatenate(vals).astype(np.float32) if vals else np.zeros(0, dtype=np.float32)
        return sparse.csr_matrix((val, col, np.asarray([0, len(col)])), shape=(1, self.width))


class _TermCounts:
    """Columns and counts of a document's terms in the vocabulary, in the order each term is first seen
    (the order the l2 norm is summed in, so the features are bit for bit those of sklearn's analyzer)."""

    def __init__(self, analyze: Any, vocab: dict[str, int]) -> None:
        self.analyze = analyze
        self.vocab = vocab

    def __call__(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        get = self.vocab.get
        counts = [(j, n) for term, n in Counter(self.analyze(text)).items() if (j := get(term)) is not None]
        idx = np.fromiter((j for j, _ in counts), dtype=np.int64, count=len(counts))
        tf = np.fromiter((n for _, n in counts), dtype=np.float64, count=len(counts))
        return idx, tf


class _CharCounts:
    """The same for character n-grams of up to 3 characters, without a Python dict lookup per n-gram: a
    message has ~1,500 of them and each lookup in a 400k-entry dict misses the CPU cache (1 ms a ticket).
    An n-gram is one int64 (code points + 1, 21 bits each, so lengths never collide); the vocabulary is a
    sorted array of them, searched for all n-grams at once. n-grams come in sklearn's order (all of length
    1, then 2, then 3, each by position), so first-seen order is the analyzer's."""

    def __init__(self, prepare: Any, lengths: range, keys: np.ndarray, cols: np.ndarray) -> None:
        self.prepare = prepare
        self.lengths = lengths
        self.keys = keys
        self.cols = cols

    @classmethod
    def of(cls, step: Any) -> _CharCounts | None:
        lo, hi = step.ngram_range
        if step.analyzer != "char" or not 1 <= lo <= hi <= 3:
            return None
        terms = list(step.vocabulary_)
        if not terms or any(not lo <= len(t) <= hi for t in terms):
            return None
        keys = np.fromiter((_gram_key(t) for t in terms), dtype=np.int64, count=len(terms))
        cols = np.fromiter(step.vocabulary_.values(), dtype=np.int64, count=len(terms))
        order = np.argsort(keys)
        preprocess, decode = step.build_preprocessor(), step.decode

        def prepare(text: str) -> str:  # what sklearn's char analyzer does before cutting n-grams
            return _WHITE_SPACES.sub(" ", preprocess(decode(text)))

        return cls(prepare, range(lo, hi + 1), keys[order], cols[order])

    def __call__(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        doc = self.prepare(text)
        cp = np.frombuffer(doc.encode("utf-32-le"), dtype=np.uint32).astype(np.int64) + 1
        n_chars = len(cp)
        grams = []
        for n in self.lengths:
            if n > n_chars:
                break
            key = cp[:n_chars - n + 1] << 42
            for k in range(1, n):
                key = key | (cp[k:n_chars - n + 1 + k] << (42 - 21 * k))
            grams.append(key)
        if not grams:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        distinct, first, counts = np.unique(np.concatenate(grams), return_index=True, return_counts=True)
        seen = np.argsort(first)
        distinct, counts = distinct[seen], counts[seen]
        at = np.minimum(np.searchsorted(self.keys, distinct), len(self.keys) - 1)
        known = self.keys[at] == distinct
        return self.cols[at[known]], counts[known].astype(np.float64)


_WHITE_SPACES = re.compile(r"\s\s+")  # sklearn's, applied by its char analyzer


def _gram_key(gram: str) -> int:
    key = 0
    for k, ch in enumerate(gram):
        key |= (ord(ch) + 1) << (42 - 21 * k)
    return key


@dataclass
class Negative:
    """A ticket department ``label`` returned as not its own (退单)."""

    text: str
    label: str


@dataclass
class RouterModel:
    labels: list[str]
    vectorizer: FeatureUnion
    coef: np.ndarray  # (n_labels, n_features)
    intercept: np.ndarray  # (n_labels,)
    temperature: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)
    _names: np.ndarray | None = field(default=None, repr=False)
    _weights: np.ndarray | None = field(default=None, repr=False)
    _one: Any = field(default=None, repr=False)
    _words: dict[str, tuple[str, int | None, np.ndarray]] = field(default_factory=dict, repr=False)

    @property
    def weights(self) -> np.ndarray:
        # (n_features, n_labels), C-contiguous: sparse @ dense copies a transposed view on every call;
        # float32 as the features (``_transform``): mixed dtypes convert the whole matrix per product.
        if self._weights is None:
            self._weights = np.ascontiguousarray(self.coef.T, dtype=np.float32)
        return self._weights

    # ------------------------------------------------------------ training
    @classmethod
    def train(cls, texts: Sequence[str], labels: Sequence[str], negatives: Sequence[Negative] = (), *,
              C: float = 1.0, min_df: int = 2, calibrate: bool = True, negative_weight: float = 1.0,
              folds: int = 3, seed: int = 0, meta: dict[str, Any] | None = None) -> RouterModel:
        if len(texts) != len(labels):
            raise ValueError("texts and labels differ in length")
        classes = sorted(set(labels))
        if len(classes) < 2:
            raise ValueError(f"need at least two labels to train, got {classes}")
        vec = _vectorizer(min_df if len(texts) >= 200 else 1)
        all_texts = list(texts) + [n.text for n in negatives]
        X_all = vec.fit_transform(all_texts).tocsr()
        X, X_neg = X_all[:len(texts)], X_all[len(texts):]
        y = np.asarray(labels)
        neg_labels = np.asarray([n.label for n in negatives])
        coef, intercept = _fit_ovr(X, y, X_neg, neg_labels, classes, C, negative_weight)
        temperature = 1.0
        if calibrate:
            temperature = _fit_temperature(X, y, X_neg, neg_labels, classes, C, negative_weight, folds, seed)
        info = {"n_train": len(texts), "n_negatives": len(negatives), "C": C, "format": FORMAT, **(meta or {})}
        return cls(classes, vec, coef, intercept, temperature, info)

    # ------------------------------------------------------------ use
    def decision(self, texts: Sequence[str]) -> np.ndarray:
        X = _transform(self.vectorizer, list(texts))
        return np.asarray(X @ self.weights, dtype=np.float64) + self.intercept

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        return _softmax(self.decision(texts) / self.temperature)

    def predict(self, texts: Sequence[str]) -> list[str]:
        if not texts:
            return []
        return [self.labels[i] for i in self.decision(texts).argmax(axis=1)]

    def rank(self, text: str, top: int = 3, explain: int = 5) -> list[tuple[str, float, list[str]]]:
        """Best labels for one text: (label, probability, the words of the text that weighed most for it)."""
        if self._one is None:
            self._one = _OneDocument.of(self.vectorizer)
        X = self._one.transform(text) if self._one else _transform(self.vectorizer, [text])
        scores = np.asarray(X @ self.weights, dtype=np.float64)[0] + self.intercept
        probs = _softmax(scores[None, :] / self.temperature)[0]
        order = np.argsort(-probs)[:top]
        units, weight = self._unit_weights(text, X) if explain > 0 else ([], np.zeros((0, len(self.labels))))
        return [(self.labels[i], float(probs[i]), _best_units(units, weight[:, i], explain)) for i in order]

    def _unit_weights(self, text: str, X: sparse.csr_matrix) -> tuple[list[str], np.ndarray]:
        """What each word and each two-word phrase of ``text`` adds to every label's score.

        A dispatcher reads the reasons, so they are whole words of the message (or two adjacent words),
        never a feature as the model sees it: a character n-gram's weight goes to the words that contain
        it (shared equally when several do), and n-grams across a word boundary explain nothing alone.
        """
        wvocab: dict[str, int] = self.vectorizer.transformer_list[0][1].vocabulary_
        toks = text.split()
        pieces = [self._word_features(w) for w in dict.fromkeys(toks)]
        units = [w for w, _, _ in pieces]
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        shares: list[np.ndarray] = []
        grams = [g for _, _, g in pieces]
        if grams:
            gcols = np.concatenate(grams)
            # a character n-gram's weight is shared by the distinct words holding it
            _, inverse, holders = np.unique(gcols, return_inverse=True, return_counts=True)
            rows.append(np.repeat(np.arange(len(pieces)), [len(g) for g in grams]))
            cols.append(gcols)
            shares.append(1.0 / holders[inverse])
        whole = [(r, j) for r, (_, j, _) in enumerate(pieces) if j is not None]
        for a, b in dict.fromkeys(itertools.pairwise(toks)):
            j = wvocab.get(f"{a} {b}")
            if j is not None:
                whole.append((len(units), j))
                units.append(a + b)
        if whole:
            rows.append(np.asarray([r for r, _ in whole], dtype=np.int64))
            cols.append(np.asarray([j for _, j in whole], dtype=np.int64))
            shares.append(np.ones(len(whole)))
        if not units:
            return [], np.zeros((0, len(self.labels)))
        weight = np.zeros((len(units), len(self.labels)), dtype=np.float32)
        if rows:
            row, col, share = np.concatenate(rows), np.concatenate(cols), np.concatenate(shares)
            at = np.minimum(np.searchsorted(X.indices, col), max(X.nnz - 1, 0))
            present = X.indices[at] == col if X.nnz else np.zeros(len(col), dtype=bool)
            row, col, share, at = row[present], col[present], share[present], at[present]
            # The sums of float32 products in the order scipy's sparse (units x features) product added
            # them before (per unit, features from the last column to the first; first to last for a
            # one-unit text, which scipy multiplied element-wise), so the reasons and their order are exactly
            # those of that product, which cost a dense copy of the 576k-wide ticket row per ticket.
            order = np.lexsort((col if len(units) == 1 else -col, row))
            value = share.astype(np.float32)[order] * X.data[at[order]]
            np.add.at(weight, row[order], value[:, None] * self.weights[col[order]])
        return units, np.asarray(weight, dtype=np.float64)

    def _word_features(self, word: str) -> tuple[str, int | None, np.ndarray]:
        """(word, its word column, the columns of its character n-grams in the vocabulary), kept per word:
        the same few thousand words make up most messages, and cutting and looking up their n-grams again
        for every ticket was a third of the reasons' time."""
        cached = self._words.get(word)
        if cached is not None:
            return cached
        words_step = self.vectorizer.transformer_list[0][1]
        chars_step = self.vectorizer.transformer_list[1][1]
        cvocab: dict[str, int] = chars_step.vocabulary_
        offset = len(words_step.vocabulary_)
        lo, hi = chars_step.ngram_range
        grams = {word[i:i + n] for n in range(lo, hi + 1) for i in range(len(word) - n + 1)}
        found = np.asarray(sorted(offset + cvocab[g] for g in grams if g in cvocab), dtype=np.int64)
        out = (word, words_step.vocabulary_.get(word), found)
        if len(self._words) >= 200_000:  # bounded: names and numbers would otherwise grow it forever
            self._words.clear()
        self._words[word] = out
        return out

    def feature_names(self) -> np.ndarray:
        if self._names is None:
            self._names = np.asarray(self.vectorizer.get_feature_names_out(), dtype=object)
        return self._names

    # ------------------------------------------------------------ files
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically: a server process reloading the file never sees half of it."""
        import joblib

        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=target.name, dir=target.parent)
        os.close(fd)
        try:
            state = {"format": FORMAT, "labels": self.labels, "vectorizer": self.vectorizer, "coef": self.coef,
                     "intercept": self.intercept, "temperature": self.temperature, "meta": self.meta}
            joblib.dump(state, tmp, compress=1)  # level 1: a third of the size, 5x faster than 3
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; the server may run as another user than the trainer
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RouterModel:
        """Load a model written by :meth:`save` (a pickle: only ever load files this server wrote)."""
        import joblib

        state = joblib.load(path)
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError(f"{path}: not a router model of format {FORMAT}; run hotline train-router again")
        return cls(state["labels"], state["vectorizer"], state["coef"], state["intercept"], state["temperature"],
                   state["meta"])


def _fit_ovr(X: sparse.csr_matrix, y: np.ndarray, X_neg: sparse.csr_matrix, neg_labels: np.ndarray,
             classes: list[str], C: float, negative_weight: float) -> tuple[np.ndarray, np.ndarray]:
    coef = np.zeros((len(classes), X.shape[1]), dtype=np.float32)
    intercept = np.zeros(len(classes), dtype=np.float32)
    for i, label in enumerate(classes):
        extra = X_neg[neg_labels == label] if X_neg.shape[0] else X_neg[:0]
        Xc = sparse.vstack([X, extra]).tocsr() if extra.shape[0] else X
        target = np.concatenate([(y == label).astype(int), np.zeros(extra.shape[0], dtype=int)])
        weight = np.concatenate([np.ones(X.shape[0]), np.full(extra.shape[0], negative_weight)])
        if target.min() == target.max():  # a label with no positive left in this fold
            intercept[i] = -10.0
            continue
        svm = LinearSVC(C=C, max_iter=5000)
        svm.fit(Xc, target, sample_weight=weight)
        coef[i] = svm.coef_.ravel()
        intercept[i] = svm.intercept_[0]
    return coef, intercept


def _fit_temperature(X: sparse.csr_matrix, y: np.ndarray, X_neg: sparse.csr_matrix, neg_labels: np.ndarray,
                     classes: list[str], C: float, negative_weight: float, folds: int, seed: int) -> float:
    counts = np.asarray([int((y == c).sum()) for c in classes])
    n_splits = int(min(folds, counts.min()))
    if n_splits < 2:
        return 1.0
    scores = np.zeros((X.shape[0], len(classes)))
    for train, held in StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(X, y):
        coef, intercept = _fit_ovr(X[train], y[train], X_neg, neg_labels, classes, C, negative_weight)
        scores[held] = np.asarray(X[held] @ coef.T) + intercept
    truth = np.searchsorted(classes, y)
    best, best_loss = 1.0, np.inf
    for t in np.geomspace(0.02, 5.0, 60):
        p = _softmax(scores / t)
        loss = -np.log(np.clip(p[np.arange(len(y)), truth], 1e-12, None)).mean()
        if loss < best_loss:
            best, best_loss = float(t), loss
    return best


def readable(word: str) -> bool:
    """A reason a dispatcher can read: a Chinese word of two characters or more. Single characters (改,
    脚) say nothing, nor do Latin letters and numbers (k, 15元, the masked place codes like c4市)."""
    return _HAN_WORD.fullmatch(word) is not None


_HAN_WORD = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]{2,}")


def _best_units(units: list[str], weight: np.ndarray, k: int) -> list[str]:
    out: list[str] = []
    for j in np.argsort(-weight, kind="stable"):
        if len(out) >= k or weight[j] <= 0:
            break
        word = units[j]
        if not readable(word) or any(word in w or w in word for w in out):
            continue
        out.append(word)
    return out


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
