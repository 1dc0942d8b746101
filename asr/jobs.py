"""The recognition job on the arq queue, and the worker process that runs it.

How a job survives a worker that dies (SIGKILL, OOM, power): arq leaves a job in its queue until it
finishes and guards a running job with an ``arq:in-progress:<id>`` key whose expiry is the worker's
``in_progress_timeout_s`` (by default the job timeout + 10 s, so a dead worker's job would wait up to
``job_timeout`` = 30 min before another worker takes it). We instead give that key a short lease
(``lease_seconds``) and renew it from the event loop while the decoder runs in a thread: a live worker
keeps its job, a dead worker's job is taken by another one within a lease. arq counts the new run as
another try. ``expires_extra_ms`` (how long a queued job may wait before arq drops it as expired) is
set to a week so that a weekend with no worker loses nothing; the server also re-queues jobs whose
Redis entry vanished (``AsrService.requeue_lost``).
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from arq import Retry
from arq.connections import RedisSettings
from arq.constants import in_progress_key_prefix
from arq.worker import Worker, func

from asr import audio, backends, engine
from asr.vad import VadParams

log = logging.getLogger("hotline.asr")

FUNCTION = "transcribe_call"
QUEUE_NAME = "hotline:asr:queue"
WEEK_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class WorkerConfig:
    redis_url: str
    database_url: str
    model_path: str
    max_tries: int = 3
    job_timeout: float = 1800.0
    vad: bool = True
    lease_seconds: float = 30.0
    # arq starts the next job only at its next poll, and a worker runs one job at a time: at 0.5 s the gap
    # between recordings cost 27% of a worker's wall time on 8-second calls; a poll is one ZRANGEBYSCORE.
    poll_delay: float = 0.05
    retry_delay: float = 5.0  # seconds before a failed try runs again (doubles each try)
    queue_name: str = QUEUE_NAME
    backend: str = "auto"  # "vosk" | "whisper" | "auto": see asr.backends
    whisper_model_path: str = ""
    whisper_sha256: str = ""
    live_port: int = 0  # AudioSocket port for live transcription (asr/live.py); 0 = off
    live_host: str = "127.0.0.1"
    live_max_calls: int = 1
    city: str | None = None

    @property
    def backend_config(self) -> backends.BackendConfig:
        return backends.BackendConfig(self.backend, self.model_path, self.whisper_model_path, self.whisper_sha256)


# Exit status of a worker whose model cannot be loaded (sysexits EX_CONFIG): the supervisor stops
# instead of restarting it every two seconds.
EXIT_MODEL = 78


def job_id_for(call_id: str, attempt_tag: str = "") -> str:
    return f"asr:{call_id}" + (f":{attempt_tag}" if attempt_tag else "")


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def recording_tracks(recording_path: str, speaker_paths: dict[str, str] | None) -> tuple[list[engine.Track], float]:
    """Tracks to decode: separate caller/agent files when given, else the channels of the one file."""
    if speaker_paths:
        tracks = []
        for speaker, path in speaker_paths.items():
            rec = audio.read(path)
            tracks.append(engine.Track(speaker, audio.mono(rec), rec.sample_rate))
        return tracks, max(t.duration for t in tracks)
    rec = audio.read(recording_path)
    return engine.tracks_of(rec.channels, rec.sample_rate), rec.duration


def transcribe_files(backend: engine.SpeechBackend, recording_path: str, speaker_paths: dict[str, str] | None,
                     vad: bool) -> dict[str, Any]:
    tracks, duration = recording_tracks(recording_path, speaker_paths)
    transcript = engine.transcribe(backend, tracks, vad=VadParams() if vad else None)
    if vad and transcript.decoded_seconds == 0:
        # Nothing voiced in any track: a dead line or a recording of silence. A reason on the ticket
        # says more than an empty transcript (and Whisper must not be given silence to invent text in).
        raise audio.AudioError(f"录音中没有检测到语音（{duration:.1f} 秒静音或噪声）")
    return transcript.as_dict()


async def _keep_lease(redis: Any, job_id: str, lease_seconds: float) -> None:
    key = in_progress_key_prefix + job_id
    while True:
        await asyncio.sleep(lease_seconds / 3)
        await redis.pexpire(key, int(lease_seconds * 1000))


async def transcribe_call(ctx: dict[str, Any], call_id: str, recording_path: str,
                          speaker_paths: dict[str, str] | None = None) -> dict[str, Any]:
    cfg: WorkerConfig = ctx["asr_config"]
    store = ctx["asr_store"]
    attempt = int(ctx.get("job_try") or 1)
    if attempt > cfg.max_tries:
        # Only reached when earlier tries died with their worker (a failure we saw ourselves stops
        # before): arq runs us once more than max_tries so that this is written down.
        reason = f"已尝试 {cfg.max_tries} 次，处理进程均在完成前中断（可能内存不足或被强制结束）"
        await store.set_state(call_id, "failed", reason, attempt - 1)
        return {"state": "failed", "reason": reason}
    job = await store.start(call_id, attempt, ctx["asr_worker"])
    if job is not None and job["state"] == "done":
        return {"state": "done", "transcript_id": job["transcript_id"], "note": "already transcribed"}
    lease = asyncio.create_task(_keep_lease(ctx["redis"], ctx["job_id"], cfg.lease_seconds))
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    try:
        result = await asyncio.wait_for(
            loop.run_in_executor(ctx["asr_executor"], transcribe_files, ctx["asr_backend"], recording_path,
                                 speaker_paths, cfg.vad),
            cfg.job_timeout)
    except asyncio.CancelledError:
        # The worker is shutting down (SIGTERM): arq puts the job back; say so instead of "running".
        await asyncio.shield(store.set_state(call_id, "queued", "处理进程已停止，等待重新处理", attempt))
        raise
    except Exception as exc:
        permanent = isinstance(exc, audio.AudioError) and exc.permanent
        if isinstance(exc, asyncio.TimeoutError):
            reason = f"转写超时（超过 {cfg.job_timeout:.0f} 秒）"
        elif isinstance(exc, audio.AudioError):
            reason = str(exc)
        else:
            log.exception("transcription of call %s failed", call_id)
            reason = f"转写出错：{type(exc).__name__}: {exc}"
        if permanent or attempt >= cfg.max_tries:
            await store.set_state(call_id, "failed", reason, attempt)
            return {"state": "failed", "reason": reason}
        await store.set_state(call_id, "queued", f"第 {attempt} 次失败，稍后重试：{reason}", attempt)
        raise Retry(defer=cfg.retry_delay * 2 ** (attempt - 1)) from exc
    finally:
        lease.cancel()
    transcript_id = await store.finish(call_id, recording_path, result)
    log.info("call %s transcribed: %.1f s of audio in %.1f s (try %d)", call_id, result["duration"],
             time.perf_counter() - started, attempt)
    return {"state": "done", "transcript_id": transcript_id}


# ---------------------------------------------------------------- the worker process
def make_engine(database_url: str) -> Any:
    """The worker's own database engine (SQLite needs WAL and a busy timeout beside the server)."""
    from sqlalchemy import event
    from sqlalchemy.ext.asyncio import create_async_engine

    if database_url.startswith("sqlite"):
        eng = create_async_engine(database_url, connect_args={"timeout": 30})

        @event.listens_for(eng.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # busy_timeout first: switching to WAL takes a lock, and a worker starting while the server
            # writes got "database is locked" at once on its first job (which then sat "queued").
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return eng
    return create_async_engine(database_url, pool_size=2, max_overflow=2, pool_pre_ping=True)


def build_worker(cfg: WorkerConfig, *, backend: engine.SpeechBackend | None = None, burst: bool = False,
                 clock: Any = None, **arq_options: Any) -> Worker:
    """An arq worker for recognition jobs: one job at a time (decoding is CPU-bound; run one process
    per core), the model loaded once at start-up unless a loaded ``backend`` is given."""
    from datetime import datetime, timezone

    from sqlalchemy.ext.asyncio import async_sessionmaker

    from asr.store import AsrStore

    now = clock or (lambda: datetime.now(timezone.utc))

    async def startup(ctx: dict[str, Any]) -> None:
        eng = make_engine(cfg.database_url)
        ctx["asr_db"] = eng
        ctx["asr_store"] = AsrStore(async_sessionmaker(eng, expire_on_commit=False), now)
        ctx["asr_config"] = cfg
        ctx["asr_worker"] = worker_name()
        ctx["asr_executor"] = ThreadPoolExecutor(1, thread_name_prefix="vosk")
        if backend is None:
            loaded = await asyncio.get_running_loop().run_in_executor(ctx["asr_executor"], backends.load,
                                                                      cfg.backend_config)
            log.info("model %s loaded in %.1f s by %s", cfg.backend_config.describe(),
                     getattr(loaded, "load_seconds", 0.0), ctx["asr_worker"])
            ctx["asr_backend"] = loaded
        else:
            ctx["asr_backend"] = backend

        if cfg.live_port:
            await start_live(ctx, cfg)

    async def shutdown(ctx: dict[str, Any]) -> None:
        if ctx.get("asr_live") is not None:
            await ctx["asr_live"].close()
        ctx["asr_executor"].shutdown(wait=False, cancel_futures=True)
        await ctx["asr_db"].dispose()

    options: dict[str, Any] = dict(
        functions=[func(transcribe_call, name=FUNCTION, max_tries=cfg.max_tries + 1,
                        timeout=cfg.job_timeout + 120)],
        redis_settings=RedisSettings.from_dsn(cfg.redis_url),
        queue_name=cfg.queue_name, max_jobs=1, poll_delay=cfg.poll_delay, keep_result=60,
        expires_extra_ms=WEEK_MS, on_startup=startup, on_shutdown=shutdown, burst=burst,
        handle_signals=not burst, job_timeout=cfg.job_timeout + 120,
    )
    options.update(arq_options)
    worker = Worker(**options)
    # The short lease explained at the top of this module (arq sets it from the job timeout).
    worker.in_progress_timeout_s = cfg.lease_seconds
    return worker


async def start_live(ctx: dict[str, Any], cfg: WorkerConfig) -> None:
    """Live transcription beside the job queue (asr/live.py), with a model of its own: Whisper decodes one
    request at a time per model, and a live partial must not wait behind a whole recording. Vosk shares
    its model between recognizers, so the loaded one serves both."""
    from asr import live

    backend = ctx["asr_backend"]
    if cfg.backend_config.kind == "whisper":
        backend = await asyncio.get_running_loop().run_in_executor(None, backends.load, cfg.backend_config)
    transcriber = live.LiveTranscriber(backend, live.RedisPublisher(ctx["redis"]), max_calls=cfg.live_max_calls,
                                       city=cfg.city, host=cfg.live_host, port=cfg.live_port, reuse_port=True)
    port = await transcriber.start()
    ctx["asr_live"] = transcriber
    log.info("live transcription: AudioSocket on %s:%d, at most %d calls in %s", cfg.live_host, port,
             cfg.live_max_calls, ctx["asr_worker"])


def run_worker(cfg: WorkerConfig) -> None:
    """One worker process until SIGTERM/SIGINT (arq handles the signals and finishes cleanly)."""
    logging.basicConfig(level=os.environ.get("HOTLINE_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")
    started = time.perf_counter()
    try:
        backends.preflight(cfg.backend_config)
        backend = backends.load(cfg.backend_config)
    except engine.ModelError as exc:
        log.error("recognition model unusable, worker stops: %s", exc)
        raise SystemExit(EXIT_MODEL) from None
    if cfg.backend_config.kind == "vosk" and (problem := backends.vosk_language_problem(cfg.model_path)):
        log.warning("Vosk model %s: %s; transcripts will not be Chinese", cfg.model_path, problem)
    log.info("model %s loaded in %.1f s by %s", cfg.backend_config.describe(), time.perf_counter() - started,
             worker_name())
    worker = build_worker(cfg, backend=backend)
    worker.run()


def config_from_settings(settings: Any, *, redis_url: str | None = None, **overrides: Any) -> WorkerConfig:
    """Worker settings from the server's ``Settings`` (the asr section, database and Redis URLs).

    With no Redis URL configured the server runs a private redis-server on a unix socket under the
    data directory; a worker on the same machine connects to that socket.
    """
    url = redis_url or settings.redis.url or f"unix://{Path(settings.data_path) / 'redis' / 'redis.sock'}"
    cfg = WorkerConfig(redis_url=url, database_url=settings.database_url, model_path=settings.asr.model_path,
                       max_tries=settings.asr.max_tries, job_timeout=settings.asr.job_timeout, vad=settings.asr.vad,
                       backend=settings.asr.backend, whisper_model_path=settings.asr.whisper_model_path,
                       whisper_sha256=settings.asr.whisper_sha256, live_port=settings.asr.live_port,
                       live_host=settings.asr.live_host, live_max_calls=settings.asr.live_max_calls)
    return replace(cfg, **overrides)
