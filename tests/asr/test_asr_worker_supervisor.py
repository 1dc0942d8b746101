"""``hotline worker --processes 2`` (here ``python -m asr worker``): two worker processes, one restarted
when it dies, all stopped by one SIGTERM."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOADED = re.compile(r"hotline\.asr\[(\d+)\]: model .* loaded in")


def _loaded_pids(log: Path) -> list[int]:
    return [int(m.group(1)) for m in LOADED.finditer(log.read_text(errors="replace"))]


def _wait_for(check, timeout: float, what: str, log: Path):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text(errors='replace')[-3000:]}")


def test_worker_command_runs_n_processes_restarts_a_dead_one_and_stops_all(
        tmp_path: Path, redis_url: str, ko_model: Path) -> None:
    log = tmp_path / "worker.log"
    env = {**os.environ, "HOTLINE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'hotline.db'}",
           "HOTLINE_REDIS_URL": redis_url, "HOTLINE_ASR_MODEL_PATH": str(ko_model),
           "HOTLINE_SERVER_DATA_DIR": str(tmp_path), "HOTLINE_LOG_LEVEL": "INFO"}
    parent = subprocess.Popen([sys.executable, "-m", "asr", "worker", "--processes", "2"], cwd=ROOT, env=env,
                              stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        first: list[int] = _wait_for(lambda: len(_loaded_pids(log)) >= 2 and _loaded_pids(log), 120, "two workers", log)
        victim = first[0]
        os.kill(victim, signal.SIGKILL)
        pids = _wait_for(lambda: len(_loaded_pids(log)) >= 3 and _loaded_pids(log), 120, "a restarted worker", log)
        assert pids[2] not in first
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(60) == 0
        for pid in pids[1:]:
            assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    finally:
        if parent.poll() is None:
            parent.kill()  # the children get SIGTERM from the kernel (PR_SET_PDEATHSIG)
            parent.wait(10)
