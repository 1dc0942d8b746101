"""The threads that run argon2: few of them, and at a lower CPU priority than the rest of the server.

argon2 costs ~0.2 CPU s per password by design. A login flood's first guesses reach it before the throttle locks
the address out, and at the server's own priority those hashes took most of a core of two from the ticket path
(BENCHMARKS.md, login flood). With a higher nice value the kernel gives the hashes the CPU the server leaves idle
first: a flood slows the logins, not 受理 and 派单. Linux keeps the nice value per thread, so only these threads
are lowered; elsewhere (or if the kernel refuses) they run at the server's priority.
"""
from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


def _lower_priority(steps: int) -> None:
    """Runs first in each pool thread: this thread's nice value goes up by ``steps`` (capped at 19)."""
    if steps <= 0 or not hasattr(os, "setpriority") or not hasattr(threading, "get_native_id"):
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + steps))
    except OSError as exc:  # a container that forbids it: hashing still works, at the server's priority
        log.warning("password hashing stays at the server's CPU priority: %s", exc)


class HashPool:
    """A thread pool for password hashing whose threads run ``nice_steps`` below the server's priority."""

    def __init__(self, threads: int, nice_steps: int) -> None:
        self._pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="password-hash",
                                        initializer=_lower_priority, initargs=(nice_steps,))

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
