"""Sharing the live view between server processes: a Redis snapshot plus pub/sub of patches.

The process that owns the AMI connection (the leader, chosen by a Redis lock) publishes every change as a
numbered patch message and writes the whole snapshot now and then. Every process (the leader too) keeps a
local copy of the view, fed by the subscription, and fans it out to its own WebSocket clients; so any process
can serve any supervisor. Without Redis (``redis=None``) the hub is local to one process.
"""
from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

log = logging.getLogger("hotline.telephony.live")

PREFIX = "hotline:telephony:"


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)


def apply_patches(view: dict[str, Any], patches: list[dict[str, Any]]) -> None:
    """Apply ``state.diff`` patches to a snapshot dict in place."""
    for p in patches:
        op = p.get("op")
        if op == "put":
            view.setdefault(p["kind"] + "s", {})[p["key"]] = p["value"]
        elif op == "del":
            view.setdefault(p["kind"] + "s", {}).pop(p["key"], None)
        elif op == "now":
            view["now"] = p["now"]
            view["day"] = p["day"]
        elif op == "ami":
            view["ami"] = p["value"]


def empty_view() -> dict[str, Any]:
    return {"now": 0.0, "day": "", "queues": {}, "agents": {}, "calls": {},
            "ami": {"enabled": False, "connected": False, "since": None, "last_error": "", "reconnects": 0}}


class LiveHub:
    def __init__(self, redis: Any | None, *, prefix: str = PREFIX, snapshot_interval: float = 0.5) -> None:
        self.redis = redis
        self.prefix = prefix
        self.snapshot_interval = snapshot_interval
        self.view: dict[str, Any] = empty_view()
        self.seq = 0  # last applied sequence number
        self.pub_seq = 0  # leader: last published
        self.clients: set[asyncio.Queue[dict[str, Any]]] = set()
        self.agent_clients: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}
        self.snapshot_source: Callable[[], dict[str, Any]] | None = None  # leader: full view
        self._dirty = False
        self.leader = False  # set by the service while it owns the AMI connection
        self._pub_lock = asyncio.Lock()  # sequence numbers must reach Redis in order
        self._ready = asyncio.Event()
        self.node = uuid.uuid4().hex[:12]

    @property
    def k_snapshot(self) -> str:
        return self.prefix + "snapshot"

    @property
    def k_changes(self) -> str:
        return self.prefix + "changes"

    @property
    def k_agent(self) -> str:
        return self.prefix + "agent"

    @property
    def k_leader(self) -> str:
        return self.prefix + "leader"

    # ------------------------------------------------------------ local clients
    def subscribe(self, interface: str | None = None, maxsize: int = 10_000) -> asyncio.Queue[dict[str, Any]]:
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize)
        q.put_nowait({"type": "snapshot", "seq": self.seq, "data": self.view})
        self.clients.add(q)
        if interface:
            self.agent_clients.setdefault(interface, set()).add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[dict[str, Any]]) -> None:
        self.clients.discard(q)
        for qs in self.agent_clients.values():
            qs.discard(q)

    def _fan_out(self, msg: dict[str, Any] | str, targets: set[asyncio.Queue[Any]] | None = None) -> None:
        for q in list(self.clients if targets is None else targets):
            try:
                q.put_nowait(msg)
            except asyncio.QueueFull:
                # A client that cannot keep up gets a fresh snapshot instead of an ever-growing backlog.
                while not q.empty():
                    q.get_nowait()
                q.put_nowait({"type": "snapshot", "seq": self.seq, "data": self.view})

    def _receive(self, msg: dict[str, Any], raw: str | None = None) -> None:
        """Apply one live message; ``raw`` is its JSON text as received, passed on to sockets without re-encoding."""
        kind = msg.get("type")
        if kind == "patch":
            seq = int(msg.get("seq", 0))
            if seq <= self.seq and seq != 0:
                return
            apply_patches(self.view, msg["patches"])
            self.seq = seq
            self._fan_out(raw if raw is not None else msg)
        elif kind == "snapshot":
            self.view = msg["data"]
            self.seq = int(msg.get("seq", 0))
            self._fan_out({"type": "snapshot", "seq": self.seq, "data": self.view})
        elif kind == "hello":
            # A process joined and found no snapshot: the leader answers with the whole view.
            if self.leader and self.snapshot_source is not None:
                asyncio.get_running_loop().create_task(self.publish_full(self.snapshot_source()))
        elif kind == "agent":
            targets = self.agent_clients.get(msg.get("interface", ""))
            if targets:
                self._fan_out(msg["message"], targets)
        else:  # alerts and other broadcasts
            self._fan_out(msg)

    # ------------------------------------------------------------ leader side
    async def publish(self, patches: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> None:
        async with self._pub_lock:
            self.pub_seq += 1
            msg: dict[str, Any] = {"type": "patch", "seq": self.pub_seq, "patches": patches}
            if extra:
                msg.update(extra)
            self._dirty = True
            if self.redis is None:
                self._receive(msg)
                return
            await self.redis.publish(self.k_changes, _dumps(msg))

    async def publish_full(self, view: dict[str, Any]) -> None:
        async with self._pub_lock:
            self.pub_seq += 1
            msg = {"type": "snapshot", "seq": self.pub_seq, "data": view}
            if self.redis is None:
                self._receive(msg)
                return
            data = _dumps(msg)
            await self.redis.set(self.k_snapshot, data)
            await self.redis.publish(self.k_changes, data)

    async def broadcast(self, msg: dict[str, Any]) -> None:
        if self.redis is None:
            self._receive(msg)
            return
        await self.redis.publish(self.k_changes, _dumps(msg))

    async def send_agent(self, interface: str, message: dict[str, Any]) -> None:
        msg = {"type": "agent", "interface": interface, "message": message}
        if self.redis is None:
            self._receive(msg)
            return
        await self.redis.publish(self.k_agent, _dumps(msg))

    async def run_snapshot_writer(self) -> None:
        """Leader: keep the Redis snapshot fresh (at most every ``snapshot_interval``) for joining processes."""
        while True:
            await asyncio.sleep(self.snapshot_interval)
            if self._dirty and self.redis is not None and self.snapshot_source is not None:
                self._dirty = False
                async with self._pub_lock:  # the snapshot must match its sequence number
                    data = _dumps({"type": "snapshot", "seq": self.pub_seq, "data": self.snapshot_source()})
                try:
                    await self.redis.set(self.k_snapshot, data)
                except Exception as exc:  # Redis away: write it again once it answers
                    self._dirty = True
                    log.warning("live snapshot not written: %s", exc)

    async def try_lead(self, ttl: float) -> bool:
        """Take or keep the leader lock (one AMI connection for all processes)."""
        if self.redis is None:
            return True
        ms = int(ttl * 1000)
        if await self.redis.set(self.k_leader, self.node, nx=True, px=ms):
            return True
        owner = await self.redis.get(self.k_leader)
        if owner is not None and owner.decode() == self.node:
            await self.redis.pexpire(self.k_leader, ms)
            return True
        return False

    async def release_lead(self) -> None:
        if self.redis is None:
            return
        owner = await self.redis.get(self.k_leader)
        if owner is not None and owner.decode() == self.node:
            await self.redis.delete(self.k_leader)

    async def resume_seq(self) -> None:
        """A new leader continues the sequence where the snapshot left it, so followers accept its patches."""
        if self.redis is None:
            return
        raw = await self.redis.get(self.k_snapshot)
        if raw:
            self.pub_seq = max(self.pub_seq, int(json.loads(raw).get("seq", 0)), self.seq)

    # ------------------------------------------------------------ every process
    async def run_subscriber(self, backoff_min: float = 0.1, backoff_max: float = 5.0) -> None:
        """Follow the shared view; when Redis goes away (restart, network), subscribe again with backoff.

        A Redis that comes back may be empty (the private redis-server keeps nothing on disk): the leader then
        publishes its whole view again, a follower reads the snapshot or asks for it, and every local
        WebSocket client gets a fresh snapshot, so no client keeps patching a view that missed messages.
        """
        if self.redis is None:
            self._ready.set()
            await asyncio.Event().wait()
            return
        delay = backoff_min
        lost = False
        while True:
            try:
                await self._follow(resubscribed=lost)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # ConnectionError, TimeoutError, a server restarting (LOADING ...)
                if not lost:
                    log.warning("live view: Redis subscription lost (%s: %s); subscribing again",
                                type(exc).__name__, exc)
                lost = True
                self._ready.set()  # start-up must not wait for a Redis that is down
                await asyncio.sleep(delay)
                delay = min(delay * 2, backoff_max)
                continue
            delay = backoff_min

    async def _follow(self, resubscribed: bool) -> None:
        pubsub = self.redis.pubsub()
        try:
            await pubsub.subscribe(self.k_changes, self.k_agent)
            # Subscribe first, then read the snapshot: patches newer than it are then never missed.
            if resubscribed and self.leader and self.snapshot_source is not None:
                await self.publish_full(self.snapshot_source())
                log.warning("live view: subscribed again; published the whole view")
            else:
                raw = await self.redis.get(self.k_snapshot)
                if raw:
                    self._receive(json.loads(raw))
                else:
                    await self.redis.publish(self.k_changes, _dumps({"type": "hello", "node": self.node}))
                if resubscribed:
                    log.warning("live view: subscribed again")
            self._ready.set()
            while True:
                m = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if m is None:
                    continue
                try:
                    raw_text = m["data"].decode("utf-8") if isinstance(m["data"], bytes) else m["data"]
                    msg = json.loads(raw_text)
                except (ValueError, TypeError):
                    log.warning("bad live message: %r", m["data"][:200])
                    continue
                if msg.get("type") == "patch" and self.seq and int(msg.get("seq", 0)) > self.seq + 1:
                    # A gap (we missed messages): reload the snapshot, then continue.
                    raw = await self.redis.get(self.k_snapshot)
                    if raw:
                        self._receive(json.loads(raw))
                self._receive(msg, raw_text)
        finally:
            try:
                await pubsub.aclose()
            except Exception:  # the connection is already gone
                pass

    async def wait_ready(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(self._ready.wait(), timeout)
