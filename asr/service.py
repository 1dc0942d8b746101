"""The async shell of recognition inside the server process: queueing jobs, handing finished
transcripts to the draft-ticket hook, re-queueing jobs Redis lost, the ``hotline worker`` command.

What server.py passes in (asr imports no other package):
- ``on_draft_ready(call_id, transcript_id, draft_fields)``: coroutine that creates or updates the draft
  ticket of that call. Called at least once per transcript (a server dying mid-call repeats it), so it
  must be idempotent by ``call_id``.
- ``suggest_department(text) -> list[dict]``: the tickets package's routing rules, for the draft.
- ``clock``: the time source (this module never reads the wall clock).
The routes are ``asr.http.setup_routes`` (with the ``visibility`` rule); this module never imports them.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from datetime import datetime, timedelta
from typing import Any, AsyncIterator, Awaitable, Callable, Mapping, Sequence

from aiohttp import web
from arq import ArqRedis, create_pool
from arq.connections import RedisSettings
from arq.constants import job_key_prefix, result_key_prefix
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from asr import drafts, jobs
from asr.store import AsrStore

log = logging.getLogger("hotline.asr")

OnDraftReady = Callable[[str, int, dict[str, Any]], Awaitable[Any]]
Clock = Callable[[], datetime]


class AsrService:
    def __init__(self, store: AsrStore, pool: ArqRedis, *, max_tries: int = 3,
                 on_draft_ready: OnDraftReady | None = None,
                 suggest_department: drafts.SuggestDepartment | None = None, city: str | None = None,
                 queue_name: str = jobs.QUEUE_NAME, draft_lease: timedelta = timedelta(minutes=2)) -> None:
        self.store = store
        self.pool = pool
        self.max_tries = max_tries
        self.on_draft_ready = on_draft_ready
        self.suggest_department = suggest_department
        self.city = city
        self.queue_name = queue_name
        self.draft_lease = draft_lease

    async def enqueue_transcription(self, call_id: str, recording_path: str, *,
                                    speaker_paths: Mapping[str, str] | None = None, force: bool = False
                                    ) -> dict[str, Any]:
        """Queue the recording of a finished call. Safe to call again for the same call: a call already
        queued, running or done is left alone (``force`` re-runs a failed or done one)."""
        call_id = str(call_id)
        tag = f"r{int(self.store.clock().timestamp() * 1000)}" if force else ""
        job_id = jobs.job_id_for(call_id, tag)
        paths = dict(speaker_paths) if speaker_paths else None
        job, should = await self.store.queue(call_id, str(recording_path), paths, job_id, force=force)
        if should:
            await self._enqueue(call_id, str(recording_path), paths, job_id)
        return job

    async def _enqueue(self, call_id: str, recording_path: str, paths: dict[str, str] | None, job_id: str) -> None:
        await self.pool.enqueue_job(jobs.FUNCTION, call_id, recording_path, paths, _job_id=job_id,
                                    _queue_name=self.queue_name, _expires=timedelta(days=7))

    async def requeue_lost(self, older_than: timedelta = timedelta(minutes=2)) -> int:
        """Jobs SQL calls queued/running but Redis no longer knows (Redis restarted empty, job expired):
        queue them again under a new job id. Harmless beside another server doing the same: a
        duplicate run only rewrites the same transcript."""
        count = 0
        for job in await self.store.stale_jobs(older_than):
            known = await self.pool.exists(job_key_prefix + job["job_id"], result_key_prefix + job["job_id"])
            if known:
                continue
            job_id = jobs.job_id_for(job["call_id"], f"q{int(self.store.clock().timestamp() * 1000)}")
            await self.store.set_job_id(job["call_id"], job_id)
            await self._enqueue(job["call_id"], job["recording_path"], job["speaker_paths"], job_id)
            count += 1
        if count:
            log.warning("re-queued %d recognition jobs that Redis had lost", count)
        return count

    def draft_fields(self, text: str, words: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return drafts.extract(text, words, suggest_department=self.suggest_department, city=self.city)

    async def deliver_drafts(self, limit: int = 20) -> int:
        """Compute draft fields of finished transcripts and hand them to ``on_draft_ready`` (outbox)."""
        delivered = 0
        loop = asyncio.get_running_loop()
        for item in await self.store.claim_drafts(self.draft_lease, limit):
            try:
                # cpca's tables load on first use and jieba-free rules are cheap, but keep the loop free.
                fields = await loop.run_in_executor(None, self.draft_fields, item["text"], item["words"])
                if self.on_draft_ready is not None:
                    await self.on_draft_ready(item["call_id"], item["transcript_id"], fields)
            except Exception as exc:
                log.exception("draft for call %s failed", item["call_id"])
                await self.store.draft_done(item["call_id"], None, f"{type(exc).__name__}: {exc}")
                continue
            await self.store.draft_done(item["call_id"], fields)
            delivered += 1
        return delivered

    async def run_background(self, interval: float = 1.0, requeue_every: float = 60.0) -> None:
        last_requeue = 0.0
        while True:
            try:
                await self.deliver_drafts()
                if time.monotonic() - last_requeue >= requeue_every:
                    last_requeue = time.monotonic()
                    await self.requeue_lost()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database or Redis hiccup must not end the loop for good
                log.exception("asr background step failed")
            await asyncio.sleep(interval)


SERVICE = web.AppKey("asr_service", AsrService)


def _resolve(value: Any) -> Any:
    return value() if callable(value) and not isinstance(value, (str, async_sessionmaker)) else value


def setup(app: web.Application, settings: Any, sessions: async_sessionmaker[AsyncSession] | Callable[[], Any],
          redis_url: str | Callable[[], str], *, clock: Clock, on_draft_ready: OnDraftReady | None = None,
          suggest_department: drafts.SuggestDepartment | None = None, city: str | None = None,
          interval: float = 1.0) -> None:
    """Add recognition to the server: a cleanup_ctx that opens the arq pool, starts the draft delivery
    loop and stops both (the routes: ``asr.http.setup_routes``). ``sessions`` and ``redis_url`` may be
    zero-argument callables read at start-up (they exist only once the database and Redis contexts have run)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        pool = await create_pool(RedisSettings.from_dsn(_resolve(redis_url)), default_queue_name=jobs.QUEUE_NAME,
                                 expires_extra_ms=jobs.WEEK_MS)
        service = AsrService(AsrStore(_resolve(sessions), clock), pool, max_tries=settings.asr.max_tries,
                             on_draft_ready=on_draft_ready, suggest_department=suggest_department, city=city)
        app[SERVICE] = service
        task = asyncio.create_task(service.run_background(interval), name="asr-drafts")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await pool.aclose()

    app.cleanup_ctx.append(ctx)


# ---------------------------------------------------------------- hotline worker
def register_cli(subparsers: Any) -> None:
    """``hotline worker``: N recognition worker processes (default: asr.workers, 0 = one per core)."""
    cmd = subparsers.add_parser("worker", help="run speech-recognition worker processes")
    cmd.add_argument("--processes", type=int, default=None,
                     help="worker processes (default: settings asr.workers; 0 = one per core)")
    cmd.add_argument("--redis-url", default=None, help="default: redis.url, or the server's private redis socket")
    cmd.add_argument("--lease", type=float, default=30.0,
                     help="seconds after which a dead worker's job is taken by another (default 30)")
    cmd.set_defaults(func=_cmd_worker)
    check = subparsers.add_parser(
        "check-model", help="check the recognition model of asr.backend (Vosk: layout, checksums, language; "
                            "Whisper: files, sha256 of model.bin, Chinese), load it and decode 1 s of silence")
    check.add_argument("path", nargs="?", help="a Vosk or Whisper model directory (default: from settings)")
    check.add_argument("--backend", choices=("vosk", "whisper"), default=None,
                       help="default: settings asr.backend (auto: vosk when asr.model_path is set, else whisper)")
    check.add_argument("--sha256", default=None, help="Whisper: the published sha256 of model.bin")
    check.set_defaults(func=_cmd_check_model)


def _cmd_check_model(settings: Any, args: Any) -> int:
    from dataclasses import replace

    from asr import backends, engine

    cfg = backends.from_settings(settings.asr)
    if args.backend:
        cfg = replace(cfg, backend=args.backend)
    elif args.path and cfg.backend == "auto":
        # A directory named on the command line says which engine by its layout.
        is_vosk = os.path.exists(os.path.join(args.path, "am", "final.mdl"))
        cfg = replace(cfg, backend="vosk" if is_vosk else "whisper")
    if args.path:
        cfg = replace(cfg, **({"model_path": args.path} if cfg.kind == "vosk" else {"whisper_model_path": args.path}))
    if args.sha256:
        cfg = replace(cfg, whisper_sha256=args.sha256)
    print(f"check-model: {cfg.describe()}")
    if cfg.kind == "vosk":
        path = cfg.model_path
        if not path:
            print("  ✗ no path given and asr.model_path is empty")
            return 2
        problems = engine.verify_model(path)
        if not problems and (language := backends.vosk_language_problem(path)):
            problems.append(language)
        for problem in problems:
            print(f"  ✗ {problem}")
        if problems:
            return 1
    try:
        backends.preflight(cfg)
        backend = backends.load(cfg)
        words = backend.decode(b"\0\0" * 8000, 8000)
    except engine.ModelError as exc:
        print(f"  ✗ {exc}")
        return 1
    if cfg.kind == "vosk":
        known = "known release, checksums match" if os.path.basename(os.path.normpath(cfg.model_path)) \
            in engine.KNOWN_MODELS else "unknown release: layout only"
    else:
        known = "sha256 of model.bin matches, multilingual (Chinese)"
    load_seconds = getattr(backend, "load_seconds", 0.0)
    print(f"  ✓ {backend.name}: {known}; loaded in {load_seconds:.1f} s; 1 s of silence -> {len(words)} words")
    return 0


def _cmd_worker(settings: Any, args: Any) -> int:
    cfg = jobs.config_from_settings(settings, redis_url=args.redis_url, lease_seconds=args.lease)
    n = args.processes if args.processes is not None else settings.asr.workers
    n = n or os.cpu_count() or 1
    try:
        from asr.backends import preflight

        preflight(cfg.backend_config)
    except Exception as exc:
        print(f"hotline worker: {exc}", flush=True)
        return 2
    if n == 1:
        jobs.run_worker(cfg)
        return 0
    return supervise(cfg, n)


def _child(cfg: jobs.WorkerConfig) -> None:
    """A supervised worker: asks Linux to send it SIGTERM if the supervisor dies (even by SIGKILL), so
    no orphan keeps a model in memory; SIGTERM lets arq put its running job back."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    jobs.run_worker(cfg)


def supervise(cfg: jobs.WorkerConfig, n: int) -> int:
    """Run ``n`` worker processes, restart any that dies (with a pause, so a broken model does not
    spin), stop them all on SIGTERM/SIGINT."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # a fresh interpreter per worker: no forked Vosk or event-loop state
    procs: dict[int, Any] = {}
    stopping = False

    def start(slot: int) -> None:
        p = ctx.Process(target=_child, args=(cfg,), name=f"asr-worker-{slot}", daemon=False)
        p.start()
        procs[slot] = p

    def stop(_sig: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for slot in range(n):
        start(slot)
    print(f"hotline worker: {n} recognition processes, queue {cfg.queue_name}, "
          f"model {cfg.backend_config.describe()}", flush=True)
    status = 0
    while not stopping:
        time.sleep(0.5)
        for slot, p in list(procs.items()):
            if not p.is_alive() and p.exitcode == jobs.EXIT_MODEL:
                # The model cannot be loaded (checksum, truncated file): restarting cannot help.
                print(f"hotline worker: {p.name} could not load the model (see its log); stopping", flush=True)
                stopping, status = True, 2
                break
            if not p.is_alive() and not stopping:
                log.warning("worker %s (pid %s) exited with %s; restarting", p.name, p.pid, p.exitcode)
                time.sleep(2)
                start(slot)
    for p in procs.values():
        if p.is_alive():
            p.terminate()  # SIGTERM: arq cancels the running job, which goes back to the queue
    for p in procs.values():
        p.join(30)
        if p.is_alive():
            p.kill()
    return status
