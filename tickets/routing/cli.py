"""Commands of routing: ``hotline train-router`` and ``hotline route-eval`` (the integrator registers them).

The same modules run inside the server and here, so a figure printed by ``route-eval`` is the figure of
the code that routes live tickets.
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tickets.routing import textproc
from tickets.routing.service import model_path

csv.field_size_limit(10_000_000)


@dataclass(frozen=True)
class LabeledRow:
    text: str  # space-joined tokens
    label: str
    row_no: str = ""
    id: str = ""


def read_labeled_csv(path: str | Path) -> list[LabeledRow]:
    """Rows of ``messages_labeled.csv`` (title, body, label) or ``messages_tokenized.csv`` (tokens, label)."""
    records: list[tuple[str, str, str, str]] = []  # (raw text or tokens, label, row_no, id)
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        fields = set(reader.fieldnames or ())
        if "label" not in fields:
            raise SystemExit(f"{path}: needs a 'label' column (has {sorted(fields)})")
        if "tokens" not in fields and not {"title", "body"} & fields:
            raise SystemExit(f"{path}: needs 'title'/'body' or 'tokens' columns")
        pretokenized = "tokens" in fields
        for rec in reader:
            label = (rec.get("label") or "").strip()
            if not label:
                continue
            text = rec.get("tokens") or "" if pretokenized else textproc.ticket_text(rec.get("title"), rec.get("body"))
            records.append((text, label, (rec.get("row_no") or "").strip(), (rec.get("id") or "").strip()))
    texts = [r[0] for r in records]
    joined = ([textproc.join_tokens(textproc.pretokenized(t)) for t in texts] if pretokenized
              else tokenize_many(texts))
    return [LabeledRow(j, label, row_no, rid) for j, (_, label, row_no, rid) in zip(joined, records)]


def _tokenize(text: str) -> str:
    return textproc.join_tokens(textproc.tokens(text))


def tokenize_many(texts: Sequence[str]) -> list[str]:
    """Space-joined tokens of many raw texts. One core is enough since rjieba (3,078 messages in ~1.5 s;
    pure-Python jieba took 9 s and needed a pool of forked workers)."""
    return [_tokenize(t) for t in texts]


def drop_overlap(train: Sequence[LabeledRow], test: Sequence[LabeledRow]) -> tuple[list[LabeledRow], int]:
    """Training rows that are test rows under another form (the tokenized file repeats the labelled one
    with the same row_no/id) would make the figure a lie; they are left out of training."""
    row_nos = {r.row_no for r in test if r.row_no}
    ids = {r.id for r in test if r.id}
    texts = {r.text for r in test}
    kept = [r for r in train if not (r.row_no and r.row_no in row_nos) and not (r.id and r.id in ids)
            and r.text not in texts]
    return kept, len(train) - len(kept)


def macro_f1(truth: Sequence[str], predicted: Sequence[str]) -> float:
    labels = sorted(set(truth) | set(predicted))
    scores = []
    for label in labels:
        tp = sum(1 for t, p in zip(truth, predicted) if t == label and p == label)
        fp = sum(1 for t, p in zip(truth, predicted) if t != label and p == label)
        fn = sum(1 for t, p in zip(truth, predicted) if t == label and p != label)
        if label not in truth:  # sklearn's convention: labels only predicted count with F1 0
            scores.append(0.0)
            continue
        denom = 2 * tp + fp + fn
        scores.append(2 * tp / denom if denom else 0.0)
    return sum(scores) / len(scores) if scores else 0.0


def evaluate(train_files: Iterable[str], test_file: str, *, C: float = 1.0, model_file: str | None = None,
             config: Any = None, log: Any = None) -> dict[str, float]:
    """Accuracy and macro-F1 on ``test_file``: of the model in ``model_file`` as it is (nothing retrained:
    the figure of the model the servers use), or of one trained here on ``train_files``."""
    from tickets.routing.model import RouterModel

    log = log or sys.stderr
    t0 = time.monotonic()
    test = read_labeled_csv(test_file)
    print(f"route-eval: read and tokenized {len(test)} test rows in {time.monotonic() - t0:.1f}s", file=log)
    truth = [r.label for r in test]
    t0 = time.monotonic()
    if model_file:
        model = RouterModel.load(model_file)
        if config is not None and not set(truth) <= set(model.labels):
            # A train-router model speaks department codes; the file speaks first-level domains.
            truth = [config.department_of(label) or label for label in truth]
        print(f"route-eval: loaded {model_file} ({len(model.labels)} labels) in {time.monotonic() - t0:.1f}s", file=log)
    else:
        train: list[LabeledRow] = []
        for f in train_files:
            train.extend(read_labeled_csv(f))
        train, dropped = drop_overlap(train, test)
        if dropped:
            print(f"route-eval: left {dropped} training rows out that are also in {test_file}", file=log)
        model = RouterModel.train([r.text for r in train], [r.label for r in train], C=C, calibrate=False)
        print(f"route-eval: trained on {len(train)} rows in {time.monotonic() - t0:.1f}s", file=log)
    predicted = model.predict([r.text for r in test])
    accuracy = sum(t == p for t, p in zip(truth, predicted)) / len(truth) if truth else 0.0
    return {"accuracy": accuracy, "macro_f1": macro_f1(truth, predicted), "n": len(truth)}


# ---------------------------------------------------------------- commands
def _cmd_route_eval(settings: Any, args: argparse.Namespace) -> int:
    if bool(args.train) == bool(args.model):
        print("route-eval: give either --model FILE (a trained model, nothing retrained) or at least one "
              "--train FILE", file=sys.stderr)
        return 2
    config = None
    if args.model and settings is not None:
        from tickets.routing import rules as routing

        config = routing.load_config(settings.config_file(settings.tickets.routing_file),
                                     settings.config_file(settings.tickets.departments_file))
    result = evaluate(args.train, args.test, C=args.C, model_file=args.model, config=config)
    print(f"accuracy={result['accuracy']:.4f} macro_f1={result['macro_f1']:.4f} n={int(result['n'])}")
    return 0


def _cmd_train_router(settings: Any, args: argparse.Namespace) -> int:
    from tickets.routing import rules as routing
    from tickets.routing.model import Negative, RouterModel
    from tickets.routing.service import load_training_set

    config = routing.load_config(settings.config_file(settings.tickets.routing_file),
                                 settings.config_file(settings.tickets.departments_file))
    import migrations

    if settings.database_url.startswith("sqlite"):
        Path(settings.data_path).mkdir(parents=True, exist_ok=True)
    migrations.upgrade(settings.database_url)  # as create-user does: the command may run before any serve
    texts, labels, negatives = asyncio.run(load_training_set(settings.database_url))
    print(f"train-router: {len(texts)} replied/archived tickets, {len(negatives)} returns as negative feedback")
    for f in args.csv or ():
        # Bootstrapping a new center from a labelled archive: first-level domains become departments.
        extra = read_labeled_csv(f)
        mapped = [(r.text, config.department_of(r.label)) for r in extra]
        kept = [(t, code) for t, code in mapped if code]
        texts.extend(t for t, _ in kept)
        labels.extend(code for _, code in kept)
        print(f"train-router: {len(kept)} of {len(extra)} rows of {f} map to a department")
    if len(set(labels)) < 2:
        print("train-router: need tickets of at least two departments to train; nothing written", file=sys.stderr)
        return 1
    t0 = time.monotonic()
    model = RouterModel.train(texts, labels, [Negative(t, code) for t, code in negatives], C=args.C,
                              meta={"source": "train-router", "departments": sorted(set(labels))})
    out = Path(args.output) if args.output else model_path(settings)
    model.save(out)
    print(f"train-router: model of {len(set(labels))} departments written to {out} "
          f"({time.monotonic() - t0:.1f}s, temperature {model.temperature:.3f})")
    return 0


def register_cli(subparsers: Any) -> None:
    ev = subparsers.add_parser("route-eval", help="score a trained routing model (--model) on a labelled CSV file, "
                               "or train one on labelled files (--train) and score it")
    ev.add_argument("--model", metavar="MODEL.joblib",
                    help="a model written by train-router or the benchmark: scored as it is, nothing retrained")
    ev.add_argument("--train", action="append", default=[], metavar="TRAIN.csv",
                    help="labelled training file (messages_labeled.csv or messages_tokenized.csv schema); repeatable")
    ev.add_argument("test", metavar="TEST.csv")
    ev.add_argument("--C", type=float, default=1.0, help="SVM regularisation when training (default 1.0, chosen by cross-validation)")
    ev.set_defaults(func=_cmd_route_eval)
    tr = subparsers.add_parser("train-router", help="retrain the routing model from replied and archived tickets")
    tr.add_argument("--csv", action="append", metavar="LABELED.csv",
                    help="also train on a labelled file (domains mapped to departments); repeatable")
    tr.add_argument("--output", help="model file (default <data_dir>/routing/router_model.joblib)")
    tr.add_argument("--C", type=float, default=1.0)
    tr.set_defaults(func=_cmd_train_router)
