"""The README's server command: embedded SQLite and a private redis-server that starts and stops with it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from tests.conftest import ROOT, free_port


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update({"HOTLINE_SERVER_DATA_DIR": str(tmp_path / "var"), "HOTLINE_SERVER_PASSWORD_TIME_COST": "1",
                "HOTLINE_SERVER_PASSWORD_MEMORY_KIB": "1024", **extra})
    return env


def _serve(tmp_path: Path, output: list[str]) -> tuple[subprocess.Popen, int]:  # type: ignore[type-arg]
    """``server.py serve`` on a free port, read up to its "Running on" line (each line into ``output``).

    Another process on the machine may take the port between picking and binding it; the server then exits
    with "address already in use" and is started again on another port (same data directory)."""
    for _ in range(5):
        port = free_port()
        proc = subprocess.Popen([sys.executable, "server.py", "serve", "--port", str(port)], cwd=ROOT,
                                env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        started = len(output)
        for line in proc.stdout:  # ends when the server exits
            output.append(line)
            if "Running on" in line:
                # keep reading, so a full pipe never blocks the server's logging
                threading.Thread(target=output.extend, args=(proc.stdout,), daemon=True).start()
                return proc, port
        proc.wait(60)
        if "address already in use" not in "".join(output[started:]):
            break
    raise AssertionError("the server did not start:\n" + "".join(output))


def test_serve_on_embedded_defaults_prints_admin_login_and_cleans_up(tmp_path: Path) -> None:
    output: list[str] = []
    proc, port = _serve(tmp_path, output)
    try:
        # printed once, when the admin is created (by the first start if the port had to change)
        password = next((line.split(":", 1)[1].strip() for line in output if "password:" in line), None)
        assert password, "".join(output)
        health = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=60))
        assert health["ok"] and health["checks"]["database"] == "ok" and health["checks"]["redis"] == "ok"
        assert health["checks"]["ami"]["ok"] and not health["ami_enabled"]  # no PBX configured: not an error
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/auth/login", method="POST",
                                     data=json.dumps({"username": "admin", "password": password}).encode(),
                                     headers={"Content-Type": "application/json"})
        assert json.load(urllib.request.urlopen(req, timeout=60))["user"]["role"] == "admin"
        assert (tmp_path / "var" / "hotline.db").exists()
        redis_pids = _redis_children(proc.pid)
        assert redis_pids, "the private redis-server is running"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    # The server waits for its redis-server before exiting, so none of its children may be left.
    assert [pid for pid in redis_pids if Path(f"/proc/{pid}").exists()
            and b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes()] == [], \
        "redis-server must stop with the server"


def _redis_children(pid: int) -> list[int]:
    """redis-server processes started by ``pid`` (from /proc, so other tests' servers never count)."""
    # A child started from a worker thread is listed under that thread's task.
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:  # a thread may end while we read
            children = (task / "children").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        for c in children:
            try:  # a child may end while we read (a killed redis-server is reaped): the others still count
                if b"redis-server" in Path(f"/proc/{c}/cmdline").read_bytes():
                    found.append(int(c))
            except (FileNotFoundError, ProcessLookupError):
                continue
    return found


def test_second_start_keeps_the_admin_and_create_user_works(tmp_path: Path) -> None:
    env = _env(tmp_path, HOTLINE_NEW_USER_PASSWORD="agent-密码-123")
    out = subprocess.run([sys.executable, "server.py", "create-user", "li", "--role", "department",
                          "--department", "swuj", "--name", "李工"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "created department li" in out.stdout
    bad = subprocess.run([sys.executable, "server.py", "create-user", "wang", "--role", "department",
                          "--department", "nope"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "nope" in bad.stderr and "Traceback" not in bad.stderr


def test_wrong_setting_stops_with_the_key_name(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "server.py", "serve"], cwd=ROOT, capture_output=True, text=True,
                         env=_env(tmp_path, HOTLINE_SERVER_PORT="http"), timeout=60)
    assert out.returncode == 2 and "HOTLINE_SERVER_PORT" in out.stderr


def test_killed_private_redis_comes_back_and_still_stops_with_the_server(tmp_path: Path) -> None:
    output: list[str] = []
    proc, port = _serve(tmp_path, output)

    def health() -> dict | None:
        try:
            return json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5))
        except (OSError, ValueError):  # 503 while Redis is down, or not listening yet
            return None

    def wait(pred, what: str, timeout: float = 120) -> None:  # a failure bound: a loaded machine is slow
        deadline = time.monotonic() + timeout
        while not pred():
            assert time.monotonic() < deadline and proc.poll() is None, what + "\n" + "".join(output)
            time.sleep(0.1)

    restarted: list[int] = []
    try:
        wait(lambda: (h := health()) is not None and h["ok"], "the server answers /health")
        first = _redis_children(proc.pid)
        assert len(first) == 1
        os.kill(first[0], signal.SIGKILL)

        def new_redis() -> bool:
            restarted.extend(p for p in _redis_children(proc.pid) if p not in first + restarted)
            return bool(restarted)

        wait(new_redis, "a new redis-server is started")
        wait(lambda: (h := health()) is not None and h["ok"] and h["checks"]["redis"] == "ok",
             "/health is ok again")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    assert [pid for pid in restarted if Path(f"/proc/{pid}").exists()
            and b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes()] == [], \
        "the restarted redis-server must stop with the server"
