"""Routing, duplicate and lookup figures on the real messages of ../shared/datasets (never committed).

    /work/main/.venv/bin/python benchmarks/routing_bench.py [--quick] [--part routing|hot|topics|duplicates]

1. Routing: 30% of messages_labeled.csv held out (stratified, seed 7; raw text through the server's own
   tokenizer); development = every row of messages_tokenized.csv that is not a held-out message (same
   row_no). 5-fold cross-validation on the development part and the held-out figure, each for the model and
   for the baseline in the same run (TF-IDF over the same words + a linear SVM), with the exact McNemar test
   on the held-out messages; ``route-eval --model`` timed in a new process.
   Hot issues: precision and recall on the labelled sample of tests/tickets/routing/test_hot_issues.py, the
   template user, and 7-day windows through messages_with_support.csv (clusters, alerts, time).
   Topic groups: how many messages of each labelled group link to another of the group as duplicates, text
   only and with the same-address same-category link, and the precision of those links.
2. Duplicates: messages_with_support.csv; reference = exact character-3-gram Jaccard >= 0.8 over all pairs;
   the detector = LSH candidates + exact re-scoring. Baseline: the pairwise bigram scan the ticket store
   uses today in ``related`` (over its 2,000 most recent open tickets).
3. Latency: routing per ticket (tokenize + model + rules); duplicate lookup against 100k, 300k and 1M
   (``--max-tickets``) real-looking stored tickets (recombined real sentences + addresses), p50/p99 per size.
4. Routing over HTTP (``--part http``): a real ``server.py serve`` process (SQLite, its own redis-server) with
   a model trained on the development rows in its data dir; the time until it listens, the first
   ``GET /api/v1/tickets/{number}/routing`` after that, then every held-out message as a ticket routed once
   by one client and once by 4 clients at a time (p50/p95/p99/max), and the server's CPU seconds per phase.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
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


def plain_baseline():  # type: ignore[no-untyped-def]
    """The baseline the issue names: TF-IDF over the same jieba words (unigrams) and one linear SVM."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    return make_pipeline(TfidfVectorizer(tokenizer=str.split, token_pattern=None, lowercase=False,
                                         sublinear_tf=True), LinearSVC(C=1.0))


def mcnemar(truth: list[str], a: list[str], b: list[str]) -> tuple[int, int, float]:
    """Exact McNemar test: messages only ``a`` got right, only ``b`` got right, two-sided p."""
    from scipy.stats import binomtest

    only_a = sum(1 for t, x, y in zip(truth, a, b) if x == t != y)
    only_b = sum(1 for t, x, y in zip(truth, a, b) if y == t != x)
    p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return only_a, only_b, float(p)


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

    # Cross-validation on the development part (never the held-out messages): the model and the
    # baseline on the same folds, vectorisers refitted inside each fold.
    from sklearn.model_selection import StratifiedKFold

    C = 1.0
    folds = 3 if quick else 5
    cv_model, cv_base = [], []
    for tr, va in StratifiedKFold(folds, shuffle=True, random_state=0).split(texts, labels):
        m = RouterModel.train([texts[i] for i in tr], [labels[i] for i in tr], C=C, calibrate=False)
        cv_model.append(float(np.mean([a == labels[i] for a, i in zip(m.predict([texts[i] for i in va]), va)])))
        base_cv = plain_baseline().fit([texts[i] for i in tr], [labels[i] for i in tr])
        cv_base.append(float(np.mean([a == labels[i] for a, i in zip(base_cv.predict([texts[i] for i in va]), va)])))
    print(f"  {folds}-fold cv accuracy, model:    median {np.median(cv_model):.4f} (folds {' '.join(f'{x:.4f}' for x in cv_model)})")
    print(f"  {folds}-fold cv accuracy, baseline: median {np.median(cv_base):.4f} (folds {' '.join(f'{x:.4f}' for x in cv_base)})")
    t0 = time.perf_counter()
    model = RouterModel.train(texts, labels, C=C, calibrate=True)
    train_s = time.perf_counter() - t0
    truth = [label for _, label in test]
    pred = model.predict([t for t, _ in test])
    acc = float(np.mean([a == b for a, b in zip(pred, truth)]))
    f1 = cli.macro_f1(truth, pred)
    base = plain_baseline().fit(texts, labels)
    bpred = list(base.predict([t for t, _ in test]))
    bacc = float(np.mean([a == b for a, b in zip(bpred, truth)]))
    bf1 = cli.macro_f1(truth, bpred)
    only_model, only_base, p = mcnemar(truth, pred, bpred)
    print(f"held out, model (C={C}, trained in {train_s:.1f}s): accuracy={acc:.4f} macro_f1={f1:.4f} n={len(test)}")
    print(f"held out, baseline TF-IDF words + linear SVM: accuracy={bacc:.4f} macro_f1={bf1:.4f}")
    print(f"  McNemar: {only_model} messages only the model routes right, {only_base} only the baseline; exact p = {p:.3g}")
    for label in sorted(set(truth)):
        tp = sum(1 for a, b in zip(pred, truth) if a == b == label)
        prec = tp / max(1, sum(1 for a in pred if a == label))
        rec = tp / max(1, sum(1 for b in truth if b == label))
        print(f"  {label}: precision {prec:.3f} recall {rec:.3f}")
    model_file = Path(tempfile.mkdtemp()) / "router_model.joblib"
    model.save(model_file)
    t0 = time.perf_counter()
    # The command as an operator runs it, on every labelled raw message, with this trained model.
    import subprocess

    done = subprocess.run([sys.executable, "-c", "import sys; from tickets.routing import cli; "
                           "print(cli.evaluate([], sys.argv[1], model_file=sys.argv[2]))", str(LABELED),
                           str(model_file)], cwd=ROOT, capture_output=True, text=True, check=True)
    print(f"route-eval --model (new process, {len(read_rows(LABELED))} messages): {time.perf_counter() - t0:.1f}s wall; "
          f"{done.stdout.strip()}")
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


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_http_routing(quick: bool, server_root: Path = ROOT) -> None:
    """GET /api/v1/tickets/{number}/routing of a real server, from the first request after start.
    ``server_root``: the tree whose ``server.py`` serves (a ``git worktree`` of an older commit, to measure
    before and after in one session)."""
    import aiohttp

    from benchmarks.http_accounts import PASSWORD, api_login
    from tests import services

    print(f"== routing over HTTP (a real server process from {server_root}, model in its data dir)")
    _, test_rows = stratified_split(read_rows(LABELED), 0.3)
    test_nos = {r["row_no"] for r in test_rows}
    pool = [r for r in read_rows(TOKENIZED) if r["row_no"] not in test_nos]
    if quick:
        pool = random.Random(3).sample(pool, 3000)
    t0 = time.perf_counter()
    model = RouterModel.train([textproc.join_tokens(textproc.pretokenized(r["tokens"])) for r in pool],
                              [r["label"] for r in pool], calibrate=False)
    print(f"model trained on {len(pool)} rows in {time.perf_counter() - t0:.1f}s "
          f"({model.coef.shape[1]} features x {len(model.labels)} labels, weights {model.coef.dtype})")
    admin_pw = "bench-admin-password"
    with services.redis_server() as redis_url, tempfile.TemporaryDirectory(prefix="bench-routing-http-") as tmp:
        tmpdir = Path(tmp)
        model.save(tmpdir / "var" / "routing" / "router_model.joblib")
        port = services.free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
        env.update({"HOTLINE_DATABASE_URL": f"sqlite+aiosqlite:///{tmpdir / 'hotline.db'}",
                    "HOTLINE_REDIS_URL": redis_url, "HOTLINE_SERVER_DATA_DIR": str(tmpdir / "var"),
                    "HOTLINE_SERVER_ADMIN_PASSWORD": admin_pw, "HOTLINE_LOG_LEVEL": "WARNING"})
        log = tmpdir / "server.log"
        started = time.perf_counter()
        with log.open("w") as fh:
            proc = subprocess.Popen([sys.executable, "server.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
                                    cwd=server_root, env=env, stdout=subprocess.DEVNULL, stderr=fh, text=True)
        try:
            services._wait_port(port, 120)
            listening = time.perf_counter() - started
            asyncio.run(_http_phases(f"http://127.0.0.1:{port}", proc.pid, admin_pw, PASSWORD, api_login,
                                     aiohttp, test_rows, listening))
        finally:
            services.stop(proc)


async def _http_phases(base: str, pid: int, admin_pw: str, password: str, api_login, aiohttp,  # type: ignore[no-untyped-def]
                       rows: list[dict[str, str]], listening: float) -> None:
    async with aiohttp.ClientSession(base) as http:
        admin = await api_login(http, "admin", admin_pw)
        async with http.post("/api/v1/users", json={"username": "bench-agent", "password": password,
                                                    "role": "agent"}, headers=admin) as r:
            assert r.status == 201, await r.text()
        agent = await api_login(http, "bench-agent", password)

        async def create(row: dict[str, str]) -> str:
            body = {"title": row["title"] or row["body"][:30], "content": row["body"], "request_type": "complaint",
                    "caller_phone": "13800138000", "accept": True}
            async with http.post("/api/v1/tickets", json=body, headers=agent) as r:
                out = await r.json()
                assert r.status == 201, out
                return str(out["number"])

        async def route(number: str) -> float:
            t0 = time.perf_counter()
            async with http.get(f"/api/v1/tickets/{number}/routing", headers=agent) as r:
                body = await r.json()
                assert r.status == 200 and body["model"] is not None, body
            return time.perf_counter() - t0

        first_number = await create(rows[0])
        first = await route(first_number)
        print(f"server listening {listening:.1f}s after spawn; first routing request after start: "
              f"{first * 1000:.0f} ms")
        numbers = [first_number]
        sem = asyncio.Semaphore(8)

        async def create_limited(row: dict[str, str]) -> str:
            async with sem:
                return await create(row)

        numbers += await asyncio.gather(*(create_limited(r) for r in rows[1:]))
        for clients in (1, 4):
            cpu0, wall0 = _cpu_seconds(pid), time.perf_counter()
            if clients == 1:
                lat = [await route(n) for n in numbers]
            else:
                lat = []

                async def worker(queue: list[str], out: list[float]) -> None:
                    while queue:
                        out.append(await route(queue.pop()))

                todo = list(numbers)
                await asyncio.gather(*(worker(todo, lat) for _ in range(clients)))
            wall, cpu = time.perf_counter() - wall0, _cpu_seconds(pid) - cpu0
            print(f"  {clients} client(s), {len(lat)} tickets: p50 {pct(lat, 50) * 1000:.1f} ms, "
                  f"p95 {pct(lat, 95) * 1000:.1f} ms, p99 {pct(lat, 99) * 1000:.1f} ms, max {max(lat) * 1000:.1f} ms; "
                  f"{len(lat) / wall:.0f}/s, server CPU {cpu:.1f}s ({cpu / len(lat) * 1000:.1f} ms per request)")
    print(f"  load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


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

    bench_duplicate_scaling(msgs, [n for n in (100_000, 300_000, 1_000_000) if n <= n_total])


_ROAD = re.compile(r"[\u4e00-\u9fa5]{2,4}(?:路|街|大道)")
_ESTATE = re.compile(r"[\u4e00-\u9fa5]{2,4}(?:小区|花园|家园|新城|公寓|广场|苑)")
_NOT_A_NAME = re.compile(r"[的了是在我们等这那个和与及对从到把被因所有就都也没]")


class RecombinedTexts:
    """Real-looking tickets, text ``i`` made again on demand from its id (a million strings would not fit
    beside the index on this machine): an address as callers give it (district, a road and an estate named
    in the data, a number and a building) and 3-5 sentences drawn from the real messages."""

    def __init__(self, msgs: list[tuple[int, str]]) -> None:
        texts = [t for _, t in msgs] + [t for _, t in ((0, r["body"]) for r in read_rows(LABELED))]
        self.sentences = sorted({s for t in texts for s in re.split(r"(?<=[。！？])", t) if len(s) > 8})
        self.roads = sorted({m for t in texts for m in _ROAD.findall(t) if not _NOT_A_NAME.search(m)})
        self.estates = sorted({m for t in texts for m in _ESTATE.findall(t) if not _NOT_A_NAME.search(m)})

    def __call__(self, i: int) -> str:
        rnd = random.Random(i)
        address = (f"A市A{rnd.randint(1, 7)}区{rnd.choice(self.roads)}{rnd.randint(1, 399)}号"
                   f"{rnd.choice(self.estates)}{rnd.randint(1, 30)}栋")
        return f"{address}，" + "".join(rnd.sample(self.sentences, rnd.randint(3, 5)))


def bench_duplicate_scaling(msgs: list[tuple[int, str]], sizes: list[int]) -> None:
    """Duplicate lookup at growing index sizes, every stored ticket a real-looking text (no random keys):
    the real messages plus recombined ones. Per size: lookup p50/p99 (LSH candidates + re-scoring of up
    to 50 on their text, as ``/duplicates`` does), how many tickets the bands return before the cut to 50
    (what grows with the index), and recall: a re-report of a stored real message found first, and a
    near-copy of a stored recombined text found first."""
    texts = dict(msgs)
    gen = RecombinedTexts(msgs)
    print(f"recombined texts from {len(gen.sentences):,} real sentences, {len(gen.roads):,} roads, "
          f"{len(gen.estates):,} estates; e.g. {gen(10_000_000)[:80]}")

    def text_of(i: int) -> str:
        return texts[i] if i in texts else gen(i)

    big = duplicates.MinHashIndex()
    big.add_many(msgs)
    base, have, hash_s = 10_000_000, 0, 0.0
    rnd = random.Random(9)
    real_queries = rnd.sample(msgs, 500)
    for size in sizes:
        t0 = time.perf_counter()
        chunk = 20_000
        while len(big) < size:
            n = min(chunk, size - len(big))
            big.add_many((base + have + k, gen(base + have + k)) for k in range(n))
            have += n
        built = time.perf_counter() - t0
        hash_s += built
        lat, band_lat, bucket_sizes, hits_real, hits_gen = [], [], [], 0, 0
        gen_queries = [base + rnd.randrange(have) for _ in range(500)]
        queries = [(mid, "再次反映：" + text.replace("，", ",")) for mid, text in real_queries]
        for gid in gen_queries:  # a near-copy: other opening, a word changed, punctuation changed
            queries.append((gid, "还是上次的问题，" + text_of(gid).replace("，", " ").replace("小区", "小区里", 1)))
        for want, q in queries:
            t0 = time.perf_counter()
            cands = big.candidates(q, limit=50)
            t_bands = time.perf_counter() - t0
            facts = [duplicates.TicketFacts(c, text_of(c)) for c, _ in cands]  # the server reads them from SQL
            t0 = time.perf_counter()
            ranked = duplicates.rank(duplicates.TicketFacts(-1, q), facts)
            lat.append(t_bands + time.perf_counter() - t0)
            band_lat.append(t_bands)
            bucket_sizes.append(big.last_candidates)
            ok = bool(ranked) and (ranked[0].id == want
                                   or duplicates.text_similarity(text_of(ranked[0].id), text_of(want)) >= 0.8)
            if want in texts:
                hits_real += ok
            else:
                hits_gen += ok
        print(f"  {len(big):>9,} tickets (+{built:.0f}s hashing): lookup p50 {pct(lat, 50) * 1000:.2f} ms, "
              f"p99 {pct(lat, 99) * 1000:.2f} ms, max {max(lat) * 1000:.1f} ms (bands alone p50 "
              f"{pct(band_lat, 50) * 1000:.2f} p99 {pct(band_lat, 99) * 1000:.2f} ms); tickets from the bands per lookup "
              f"p50 {pct(bucket_sizes, 50):.0f} p99 {pct(bucket_sizes, 99):.0f}; found first: re-report of a real "
              f"message {hits_real / len(real_queries):.1%}, near-copy of a recombined one "
              f"{hits_gen / len(gen_queries):.1%}; max RSS "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; load "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")


_PLACE = re.compile(r"(?:(?![的了是在我们等这那个和与及对从到把被因所有就都也没])[\u4e00-\u9fa5A-Za-z0-9]){2,5}?"
                    r"(?:小区|花园|家园|新城|公寓|广场|山林|之城|苑)")


def keyed_address(text: str) -> str:
    """The place an agent would key as the address: the estate the message names most often (first on a
    tie). The messages carry no address field; this stands in for it, and misses some (then no link)."""
    names = [m for m in _PLACE.findall(text) if not _NOT_A_NAME.search(m) and not m.startswith(("小区", "本"))]
    return max(names, key=lambda n: (names.count(n), -names.index(n))) if names else ""


def bench_topic_groups(quick: bool) -> None:
    """Same matter in other words: how many messages of a labelled topic group find another message of
    their group among their duplicates, as ``/duplicates`` finds them: LSH candidates plus the newest 50 at
    the same address, score >= 0.3. Text only (before), then with the address keyed from the message and
    a category (the model's first-level label: coarser than a center's three-level tree, so precision is a
    lower bound) within 30 days (after). Precision: of the links from group messages, the share into the
    same group (a related message outside the group's words counts as wrong: a lower bound too)."""
    print("== same matter in other words (topic groups of the labelled sample)")
    from datetime import datetime

    from tests.tickets.routing.test_hot_issues import LABELLED

    rows = read_rows(SUPPORT)
    msgs = [(int(r["id"]), textproc.ticket_text(r["title"], r["body"])) for r in rows]
    texts = dict(msgs)
    when = {int(r["id"]): datetime.fromisoformat(r["time"]) for r in rows}
    pool = read_rows(TOKENIZED)
    if quick:
        pool = random.Random(3).sample(pool, 3000)
    t0 = time.perf_counter()
    model = RouterModel.train([textproc.join_tokens(textproc.pretokenized(r["tokens"])) for r in pool],
                              [r["label"] for r in pool], calibrate=False)
    labels = model.predict([textproc.join_tokens(textproc.tokens(t)) for _, t in msgs])
    category = {i: c for (i, _), c in zip(msgs, labels)}
    address = {i: keyed_address(t) for i, t in msgs}
    print(f"  categories by the model ({len(pool)} rows) and addresses keyed from the text in "
          f"{time.perf_counter() - t0:.0f}s; {sum(bool(a) for a in address.values())} of {len(msgs)} messages name a place")
    by_address: dict[str, list[int]] = {}
    for i, _ in sorted(msgs, key=lambda m: when[m[0]]):
        if address[i]:
            by_address.setdefault(address[i], []).append(i)
    idx = duplicates.MinHashIndex()
    idx.add_many(msgs)
    groups = {name: {i for i, t in msgs if rule(t)} for name, rule in LABELLED.items()}
    for variant in ("text only", "+ same address & category, 30 days"):
        total = linked_all = links = right = 0
        for name, group in groups.items():
            linked = 0
            for i in group:
                cands = {c for c, _ in idx.candidates(texts[i], limit=50, exclude=i)}
                if variant != "text only":
                    same = [c for c in by_address.get(address[i], []) if c != i]
                    cands |= set(same[-50:])
                    me = duplicates.TicketFacts(i, texts[i], "", address[i], category[i], when[i])
                    facts = [duplicates.TicketFacts(c, texts[c], "", address[c], category[c], when[c]) for c in cands]
                else:
                    me = duplicates.TicketFacts(i, texts[i])
                    facts = [duplicates.TicketFacts(c, texts[c]) for c in cands]
                ranked = duplicates.rank(me, facts, min_score=0.3)
                linked += any(m.id in group for m in ranked)
                links += len(ranked)
                right += sum(m.id in group for m in ranked)
            total += len(group)
            linked_all += linked
            print(f"  {variant}: {name}: {linked} of {len(group)} link to another message of the group "
                  f"({linked / len(group):.0%}); keyed addresses {sorted({address[i] for i in group})[:4]}")
        print(f"  {variant}: all groups {linked_all} of {total} ({linked_all / total:.1%}); precision of their "
              f"links {right} of {links} ({right / max(1, links):.1%}, lower bound)")


def bench_hot_issues(show: bool, alert_size: int = 10) -> None:
    print("== hot issues")
    from datetime import datetime, timedelta

    from tests.tickets.routing.test_hot_issues import TEMPLATE_USER
    from tickets.routing import hot_issues

    rows = read_rows(SUPPORT)
    docs = [hot_issues.Doc(int(r["id"]), r["title"], r["body"], datetime.fromisoformat(r["time"]), caller=r["user"])
            for r in rows]
    # 1. The labelled sample as the test builds it: every labelled message, the template user, 1,000 others.
    from tests.tickets.routing.test_hot_issues import labelled_run

    t0 = time.perf_counter()
    clusters, groups, template = labelled_run()
    print(f"labelled sample ({sum(len(g) for g in groups.values())} messages in {len(groups)} groups, "
          f"{len(template)} template messages, 1,000 others) clustered in {time.perf_counter() - t0:.1f}s")
    right = total = 0
    for name, ids in groups.items():
        best = max(clusters, key=lambda c: len(ids & set(c.members)))
        k = len(ids & set(best.members))
        right, total = right + k, total + best.size
        print(f"  {name}: {k}/{len(ids)} in the cluster '{best.name}' of {best.size}"
              f"{' (template)' if best.template else ''}")
    print(f"  precision (pooled) {right / total:.3f}; recall {right / sum(len(g) for g in groups.values()):.3f}")
    theirs = [c for c in clusters if len(template & set(c.members)) > 0.5 * c.size]
    print(f"  template user {TEMPLATE_USER}: {len(theirs)} clusters, all marked template: "
          f"{all(c.template for c in theirs)}, alerting: {sum(c.alert for c in theirs)}")

    # 2. The daily job's view: 7-day windows through the data, each against the 7 days before it.
    start = min(d.created_at for d in docs if d.created_at).replace(hour=0, minute=0, second=0)
    end = max(d.created_at for d in docs if d.created_at)
    params = hot_issues.Params(alert_size=alert_size)
    print(f"7-day windows, alert at {alert_size} tickets with growth >= {params.alert_growth:.0%}:")
    windows = n_clusters = n_template = 0
    alerts: list[tuple[str, hot_issues.Cluster]] = []
    sampled: list[tuple[str, hot_issues.Cluster]] = []
    took = []
    day = start + timedelta(days=7)
    while day <= end + timedelta(days=7):
        cur = [d for d in docs if d.created_at and day - timedelta(days=7) <= d.created_at < day]
        prev = [d for d in docs if d.created_at and day - timedelta(days=14) <= d.created_at < day - timedelta(days=7)]
        t0 = time.perf_counter()
        found = hot_issues.cluster(cur, prev, params)
        took.append(time.perf_counter() - t0)
        windows += 1
        n_clusters += len(found)
        n_template += sum(c.template for c in found)
        alerts += [(day.date().isoformat(), c) for c in found if c.alert]
        sampled += [(day.date().isoformat(), c) for c in found]
        day += timedelta(days=7)
    print(f"{windows} 7-day windows ({len(docs)} messages): {n_clusters} clusters ({n_template} template), "
          f"{len(alerts)} alerts; clustering p50 {pct(took, 50) * 1000:.0f} ms, max {max(took) * 1000:.0f} ms")
    by_id = {d.id: d for d in docs}
    for when, c in alerts:
        print(f"  alert {when}: {c.name} callers={c.callers} | " + " / ".join(
            by_id[int(m)].title[:18] for m in c.members[:4]))
    if show:
        for when, c in random.Random(5).sample(sampled, min(20, len(sampled))):
            print(f"  sample {when}: {c.name} | " + " / ".join(by_id[int(m)].title[:18] for m in c.members[:5]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="3,000 training rows, 3 folds, 200,000 tickets")
    parser.add_argument("--part", action="append", choices=["routing", "hot", "topics", "duplicates", "http"],
                        help="run only these parts (repeatable; default all)")
    parser.add_argument("--show-clusters", action="store_true", help="print 20 sampled clusters of the 7-day windows")
    parser.add_argument("--max-tickets", type=int, default=None,
                        help="duplicates: index sizes 100k/300k/1M up to this many tickets")
    parser.add_argument("--alert-size", type=int, default=10, help="alert_size for the 7-day windows (default 10)")
    parser.add_argument("--server-root", type=Path, default=ROOT,
                        help="http: serve from this tree (e.g. a git worktree of the commit before a change)")
    args = parser.parse_args()
    if not LABELED.exists():
        print(f"datasets not found in {LABELED.parent}; nothing to measure")
        return
    parts = args.part or ["routing", "hot", "topics", "duplicates"]
    if "routing" in parts:
        bench_routing(args.quick)
    if "hot" in parts:
        bench_hot_issues(args.show_clusters, args.alert_size)
    if "topics" in parts:
        bench_topic_groups(args.quick)
    if "duplicates" in parts:
        bench_duplicates(args.max_tickets or (200_000 if args.quick else 1_000_000))
    if "http" in parts:
        bench_http_routing(args.quick, args.server_root.resolve())


if __name__ == "__main__":
    main()
