"""A private redis-server for a single machine, started and stopped by the server itself.

Used only when no Redis URL is configured. It listens on a unix socket under the data directory
(never on a TCP port), keeps nothing on disk, and dies with the process that started it.
"""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

log = logging.getLogger("hotline.redis")


class EmbeddedRedisError(RuntimeError):
    pass


class EmbeddedRedis:
    def __init__(self, directory: Path, binary: str = "redis-server") -> None:
        self.directory = Path(directory)
        self.binary = binary
        self.process: subprocess.Popen[bytes] | None = None
        # Unix socket paths are limited to ~107 bytes: fall back to /tmp for deep data directories.
        socket_dir = self.directory if len(str(self.directory)) < 80 else Path(tempfile.mkdtemp(prefix="hotline-redis-"))
        self.socket = socket_dir / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 10.0) -> str:
        exe = shutil.which(self.binary)
        if exe is None:
            raise EmbeddedRedisError(
                f"{self.binary} not found: install it (apt-get install -y redis-server) or set HOTLINE_REDIS_URL"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.socket.exists():
            self.socket.unlink()
        self.process = subprocess.Popen(
            [exe, "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--dir", str(self.directory), "--daemonize", "no",
             "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise EmbeddedRedisError(f"redis-server exited at start: {err.strip()}")
            if self.socket.exists():
                return self.url
            time.sleep(0.02)
        self.stop()
        raise EmbeddedRedisError(f"redis-server did not open {self.socket} within {timeout} s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    async def astart(self) -> str:
        return await asyncio.get_running_loop().run_in_executor(None, self.start)

    async def astop(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.stop)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    async def supervise(self, on_restart: Callable[[], Awaitable[None]] | None = None, *,
                        check_every: float = 0.2, backoff_min: float = 0.1, backoff_max: float = 10.0) -> None:
        """Restart redis-server whenever it dies (OOM killer, a stray kill), backing off while starts fail.

        It keeps nothing on disk, so a restarted server is empty: ``on_restart`` puts back what the hotline
        shares through it (the live view); locks and leases are taken again by their own loops. Runs until
        cancelled (``astop`` after cancelling stops the server for good).
        """
        delay = backoff_min
        while True:
            await asyncio.sleep(check_every)
            if self.process is None or self.process.poll() is None:
                continue
            code = self.process.returncode
            err = b""
            if self.process.stderr is not None:
                err = await asyncio.get_running_loop().run_in_executor(None, self.process.stderr.read)
            log.error("the private redis-server died (exit %s)%s; restarting it", code,
                      f": {err.decode(errors='replace').strip()[-500:]}" if err.strip() else "")
            while True:
                try:
                    await self.astart()
                    break
                except (EmbeddedRedisError, OSError, subprocess.SubprocessError) as exc:
                    # Not only a redis-server that exits or never opens its socket: a fork refused on a loaded
                    # machine (EAGAIN, ENOMEM) or a binary that cannot be executed raises from Popen, and a
                    # supervisor that ended there would leave the hotline without Redis for good.
                    log.error("restarting the private redis-server failed (next try in %.2f s): %s", delay, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, backoff_max)
            log.warning("the private redis-server is back at %s", self.url)
            delay = backoff_min
            if on_restart is not None:
                try:
                    await on_restart()
                except Exception:
                    log.exception("restoring shared state after the redis-server restart failed")


def _load_prctl() -> Callable[..., int] | None:
    try:
        import ctypes

        prctl: Callable[..., int] = ctypes.CDLL("libc.so.6", use_errno=True).prctl
        return prctl
    except (OSError, AttributeError):
        return None


# Resolved here, in the parent: the child runs _die_with_parent between fork and exec, where an import or a
# dlopen could wait forever on a lock another thread of the server (a restart runs beside the event loop's
# and aiosqlite's threads) held at the fork.
_PRCTL = _load_prctl()
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Ask Linux to kill redis-server if the server dies without cleaning up (SIGKILL, crash)."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)
    os.setsid()
