"""Real servers for tests and benchmarks: a throw-away PostgreSQL cluster and redis-server.

PostgreSQL refuses to run as root, so the cluster runs as the ``postgres`` user in a temp dir it owns.
"""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

PG_BIN = Path(os.environ.get("HOTLINE_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    """A port free now: another process may take it before it is bound (prefer ``serve``, or retry)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hold_port(port: int = 0) -> socket.socket:
    """A socket bound to ``port`` (0: one the kernel picks) with SO_REUSEPORT, not listening.

    While it is open no other process can bind the port and connections to it are refused, yet a server of
    ours that binds it with ``reuse_port`` can (sockets of one user with SO_REUSEPORT share a port). It keeps
    a port across a server's restart, or gives a subprocess a port nobody can take before it binds; an asyncio
    server can also listen on it (``sock=``)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", port))
    return s


async def serve(runner: Any) -> str:
    """Start an aiohttp ``AppRunner`` on a port the kernel picks while binding, and return its base URL.

    Picking a free port first and binding it later raced with the other test processes on the machine."""
    from aiohttp import web

    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return f"http://127.0.0.1:{runner.addresses[-1][1]}"


def stop(proc: subprocess.Popen, grace: float = 20) -> None:  # type: ignore[type-arg]
    """SIGTERM, then SIGKILL if the process has not finished within ``grace`` seconds."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _wait_port(port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@contextmanager
def redis_server() -> Iterator[str]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed (apt-get install -y redis-server)")
    tmp = Path(tempfile.mkdtemp(prefix="hotline-redis-"))
    for attempt in range(5):
        port = free_port()
        proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                                 "no", "--dir", str(tmp)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Another process may have taken the port since free_port(): then ours exits and whatever listens
        # there is not it (tests would flush someone else's Redis). Ask the listener for its pid.
        if _redis_is(proc, port):
            break
        stop(proc, grace=5)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError("redis-server could not get a free port in 5 tries")
    try:
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(5)
        shutil.rmtree(tmp, ignore_errors=True)


def _redis_is(proc: subprocess.Popen, port: int, timeout: float = 60) -> bool:  # type: ignore[type-arg]
    """True once the redis-server listening on ``port`` is ``proc``; False when ``proc`` exits or another
    process holds the port. ``timeout`` only bounds a failure (a loaded machine starts it slowly)."""
    import redis

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with redis.Redis(port=port, socket_timeout=5) as client:
                pid = client.info("server")["process_id"]
        except (redis.RedisError, OSError):
            time.sleep(0.05)
            continue
        return bool(pid == proc.pid)
    if proc.poll() is None:
        raise RuntimeError(f"redis-server does not answer on 127.0.0.1:{port} after {timeout} s")
    return False


def postgres_available() -> bool:
    return (PG_BIN / "initdb").exists()


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yields a base URL ``postgresql+asyncpg://postgres@127.0.0.1:PORT`` (no database name)."""
    if not postgres_available():
        raise RuntimeError(f"PostgreSQL binaries not found in {PG_BIN} (apt-get install -y postgresql)")
    tmp = Path(tempfile.mkdtemp(prefix="hotline-pg-"))
    data = tmp / "data"
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        os.chown(tmp, pg.pw_uid, pg.pw_gid)

    def run(*args: str) -> None:
        cmd = (["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []) + list(args)
        subprocess.run(cmd, check=True, capture_output=True, text=True)

    run(str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8")
    for attempt in range(5):
        port = free_port()
        try:  # -t: pg_ctl's default 60 s wait is short on a loaded machine
            run(str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(tmp / "log"), "-w", "-t", "300", "-o",
                f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
                " -c full_page_writes=off -c max_connections=200", "start")
            break
        except subprocess.CalledProcessError:
            # Another process took the port since free_port() (PostgreSQL could not bind it): another port.
            if attempt == 4 or "could not bind" not in (tmp / "log").read_text(errors="replace"):
                shutil.rmtree(tmp, ignore_errors=True)
                raise
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}"
    finally:
        try:
            run(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def create_database(base_url: str, name: str, template: str = "template0") -> str:
    import asyncio

    import asyncpg

    async def create() -> None:
        conn = await asyncpg.connect(base_url.replace("postgresql+asyncpg", "postgresql") + "/postgres")
        try:
            await conn.execute(f'CREATE DATABASE "{name}" ENCODING \'UTF8\' TEMPLATE "{template}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return f"{base_url}/{name}"
