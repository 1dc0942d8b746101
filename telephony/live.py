"""Sharing the live view between server processes: a Redis snapshot plus pub/sub of patches.

The process that owns the AMI connection (the leader, chosen by a Redis lock) publishes every change as a
numbered patch message and writes the whole snapshot now and then. Every process (the leader too) keeps a
local copy of the view, fed by the subscription, and fans it out to its own WebSocket clients; so any process
can serve any supervisor. Without Redis (``redis=None``) the hub is local to one process.

The feed a WebSocket client receives (``/ws/telephony``; every message is one JSON text frame):

- ``{"type": "snapshot", "seq": N, "data": view}``: the whole view (``queues``, ``agents``, ``calls``, ``now``,
  ``day``, ``ami``), first on every connection and again whenever the client must start over.
- ``{"type": "patch", "seq": N, "patches": [...]}``: the changes of one fold, numbered one after the other
  (a patch whose ``seq`` is not above the client's last one is an old one: skip it). Each patch is one of
    ``{"op": "put", "kind": "queue"|"call"|"agent", "key": K, "value": whole entity}`` (a new one),
    ``{"op": "del", "kind": "queue"|"call"|"agent", "key": K}``,
    ``{"op": "set", "kind": "queue"|"call"|"agent", "key": K, "value": {only the changed fields}}``
      (for a queue, ``value.stats`` holds only the changed counters: merge it into ``stats``),
    ``{"op": "put", "kind": "member"|"waiter", "queue": Q, "key": K, "value": ...}`` one member (key: its
      interface) or waiting caller (key: call id) of queue Q, added or replaced: keep ``members`` sorted by
      ``name || interface`` and ``waiting`` by ``position``,
    ``{"op": "del", "kind": "member"|"waiter", "queue": Q, "key": K}``,
    ``{"op": "now", "now": T, "day": D}``, ``{"op": "ami", "value": AMI status}``.
- ``{"type": "batch", "messages": [m1, m2, ...]}``: several of these messages (any type) in order, sent as one
  frame when they arrive faster than one frame each would be worth; handle each in turn.
- ``alert``, ``missed``, ``callback`` (every client) and ``screen_pop`` (only the agent whose interface took
  the call), as before.

A client that cannot keep up (its socket's send buffer over ``max_buffer``) is skipped, not waited for; once its
buffer has drained it gets a fresh snapshot and the patches after it, and if it has not drained within
``drop_after`` seconds its socket is closed (it reconnects and starts from a snapshot). Messages other than
patches sent while it was skipped are not repeated.

Callers' numbers (``telephony.privacy``): a client that may not see them whole (a supervisor, a wall screen) gets
every snapshot, patch and missed-call entry with them masked (138****5678); the hub keeps the whole view and
masks at encoding. Every client of one privacy class gets the same bytes, encoded once per class, not per client;
``screen_pop`` (to the agent who took the call) carries its caller whole.
"""
from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from .privacy import masked

log = logging.getLogger("hotline.telephony.live")

PREFIX = "hotline:telephony:"


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)


def _frame(texts: list[str]) -> bytes:
    """One frame for what one flush sends: the message alone, or a batch of them in order."""
    text = texts[0] if len(texts) == 1 else '{"type":"batch","messages":[' + ",".join(texts) + "]}"
    return text.encode()


def _put_part(parts: list[dict[str, Any]], field: str, key: str, value: dict[str, Any]) -> None:
    for i, x in enumerate(parts):
        if x.get(field) == key:
            parts[i] = value
            return
    parts.append(value)


def _member_order(m: dict[str, Any]) -> str:
    return str(m.get("name") or m.get("interface") or "")


def apply_patches(view: dict[str, Any], patches: list[dict[str, Any]]) -> None:
    """Apply ``state.diff`` patches to a snapshot dict in place (the clients do the same in JavaScript)."""
    for p in patches:
        op = p.get("op")
        kind = p.get("kind")
        if kind in ("member", "waiter"):
            q = view.get("queues", {}).get(p.get("queue"))
            if q is None:
                continue
            field, listed = ("interface", "members") if kind == "member" else ("call_id", "waiting")
            parts = q.setdefault(listed, [])
            if op == "put":
                _put_part(parts, field, p["key"], p["value"])
            elif op == "del":
                parts[:] = [x for x in parts if x.get(field) != p["key"]]
            if kind == "member":
                parts.sort(key=_member_order)
            else:
                parts.sort(key=lambda w: w.get("position", 0))
        elif op == "put":
            view.setdefault(kind + "s", {})[p["key"]] = p["value"]
        elif op == "del":
            view.setdefault(kind + "s", {}).pop(p["key"], None)
        elif op == "set":
            entity = view.setdefault(kind + "s", {}).get(p["key"])
            if entity is None:
                continue
            for k, v in p["value"].items():
                if k == "stats" and isinstance(entity.get("stats"), dict):
                    entity["stats"].update(v)
                else:
                    entity[k] = v
        elif op == "now":
            view["now"] = p["now"]
            view["day"] = p["day"]
        elif op == "ami":
            view["ami"] = p["value"]


def empty_view() -> dict[str, Any]:
    return {"now": 0.0, "day": "", "queues": {}, "agents": {}, "calls": {},
            "ami": {"enabled": False, "connected": False, "since": None, "last_error": "", "reconnects": 0}}


class Sink(Protocol):
    """Where one client's messages go (``telephony.http`` wraps a WebSocket): never blocks."""

    def send(self, payload: bytes) -> None: ...

    def buffered(self) -> int: ...

    def close(self) -> None: ...


class LiveClient:
    """One connected client: its sink, its interface (for screen pops) and whether it is being skipped."""

    def __init__(self, sink: Sink, interface: str | None, whole_numbers: bool = False) -> None:
        self.sink = sink
        self.interface = interface
        self.whole_numbers = whole_numbers  # its privacy class: callers' numbers whole or masked
        self.stale_since: float | None = None  # skipped since (loop time): its buffer was over the limit
        self.resnapshots = 0
        self.dropped = False


class LiveHub:
    def __init__(self, redis: Any | None, *, prefix: str = PREFIX, snapshot_interval: float = 0.5,
                 max_buffer: int = 1 << 20, drop_after: float = 10.0, min_interval: float = 0.004) -> None:
        self.redis = redis
        self.prefix = prefix
        self.snapshot_interval = snapshot_interval
        self.view: dict[str, Any] = empty_view()
        self.seq = 0  # last applied sequence number
        self.pub_seq = 0  # leader: last published
        self.clients: set[LiveClient] = set()
        self.max_buffer = max_buffer  # bytes a client's socket may hold unsent before it is skipped
        self.drop_after = drop_after  # seconds a skipped client gets to drain before its socket is closed
        self.min_interval = min_interval  # seconds between two publishes of patches (see ``publish``)
        self.snapshot_source: Callable[[], dict[str, Any]] | None = None  # leader: full view
        self._dirty = False
        self.leader = False  # set by the service while it owns the AMI connection
        self._pub_lock = asyncio.Lock()  # sequence numbers must reach Redis in order
        self._ready = asyncio.Event()
        self.node = uuid.uuid4().hex[:12]
        # messages for every client, sent together at the next flush: (JSON text, the same with callers' numbers
        # masked, made only while some client is of that class; ``attach`` flushes, so none joins in between)
        self._outbox: list[tuple[str, str]] = []
        self._flush_handle: asyncio.Handle | None = None
        self._stale_check: asyncio.TimerHandle | None = None
        # the current view encoded for each privacy class (whole numbers or not), while it does not change
        self._snapshot_bytes: dict[bool, bytes] = {}
        self.frames = 0  # frames written to clients (diagnostics)

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
    def attach(self, sink: Sink, interface: str | None = None, *, whole_numbers: bool = False) -> LiveClient:
        """A new client: it gets the current snapshot now, then every later message; callers' numbers masked
        unless ``whole_numbers`` (``telephony.privacy.sees_whole_numbers``)."""
        self._flush()  # what is already in the view must not reach it a second time as patches
        client = LiveClient(sink, interface, whole_numbers)
        sink.send(self._snapshot(whole_numbers))
        self.clients.add(client)
        return client

    def detach(self, client: LiveClient) -> None:
        self.clients.discard(client)

    def _snapshot(self, whole_numbers: bool) -> bytes:
        encoded = self._snapshot_bytes.get(whole_numbers)
        if encoded is None:
            data = self.view if whole_numbers else masked(self.view)
            encoded = self._snapshot_bytes[whole_numbers] = _dumps(
                {"type": "snapshot", "seq": self.seq, "data": data}).encode()
        return encoded

    def view_for(self, whole_numbers: bool) -> dict[str, Any]:
        """The current view as a client of that privacy class sees it (the REST live view)."""
        if whole_numbers:
            return self.view
        hidden: dict[str, Any] = masked(self.view)
        return hidden

    def _queue_out(self, text: str, msg: dict[str, Any]) -> None:
        hidden = "" if all(c.whole_numbers for c in self.clients) else _dumps(masked(msg))
        self._outbox.append((text, hidden))
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if self._flush_handle is None:
            # One flush per loop turn: whatever arrived meanwhile goes out as one frame, encoded once.
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        out, self._outbox = self._outbox, []
        if not out:
            return
        whole = [c for c in self.clients if c.whole_numbers]
        if whole:
            self._deliver(_frame([text for text, _ in out]), whole)
        hidden = [c for c in self.clients if not c.whole_numbers]
        if hidden:
            self._deliver(_frame([text for _, text in out]), hidden)

    def _deliver(self, payload: bytes, targets: set[LiveClient] | list[LiveClient]) -> None:
        now = asyncio.get_running_loop().time()
        for c in list(targets):
            if c.stale_since is not None:
                self._revisit(c, now)
                continue  # a fresh snapshot (already holding this change) or still skipped
            if c.sink.buffered() > self.max_buffer:
                # Too slow: stop writing to it rather than let its backlog grow or wait for it.
                c.stale_since = now
                c.resnapshots += 1
                self._arm_stale_check()
                continue
            c.sink.send(payload)
            self.frames += 1

    def _revisit(self, c: LiveClient, now: float) -> None:
        if c.sink.buffered() <= self.max_buffer // 4:
            c.stale_since = None
            c.sink.send(self._snapshot(c.whole_numbers))
        elif c.stale_since is not None and now - c.stale_since > self.drop_after:
            log.warning("live view: dropping a WebSocket client that read nothing for %.0f s", now - c.stale_since)
            c.dropped = True
            self.clients.discard(c)
            c.sink.close()

    def _arm_stale_check(self) -> None:
        if self._stale_check is None:
            self._stale_check = asyncio.get_running_loop().call_later(0.2, self._check_stale)

    def _check_stale(self) -> None:
        """Skipped clients get their snapshot (or are dropped) even when no new change comes along."""
        self._stale_check = None
        self._flush()
        now = asyncio.get_running_loop().time()
        stale = [c for c in self.clients if c.stale_since is not None]
        for c in stale:
            self._revisit(c, now)
        if any(c.stale_since is not None for c in self.clients):
            self._arm_stale_check()

    def _receive(self, msg: dict[str, Any], raw: str | None = None) -> None:
        """Apply one live message; ``raw`` is its JSON text as received, passed on to sockets without re-encoding."""
        kind = msg.get("type")
        if kind == "patch":
            seq = int(msg.get("seq", 0))
            if seq <= self.seq and seq != 0:
                return
            apply_patches(self.view, msg["patches"])
            self.seq = seq
            self._snapshot_bytes = {}
            self._queue_out(raw if raw is not None else _dumps(msg), msg)
        elif kind == "snapshot":
            self.view = msg["data"]
            self.seq = int(msg.get("seq", 0))
            self._snapshot_bytes = {}
            self._flush()  # patches queued before it still go out first, in order
            hidden = "" if all(c.whole_numbers for c in self.clients) else self._snapshot(False).decode()
            self._outbox.append((self._snapshot(True).decode(), hidden))
            self._schedule_flush()
        elif kind == "hello":
            # A process joined and found no snapshot: the leader answers with the whole view.
            if self.leader and self.snapshot_source is not None:
                asyncio.get_running_loop().create_task(self.publish_full(self.snapshot_source()))
        elif kind == "agent":
            iface = msg.get("interface", "")
            targets = [c for c in self.clients if c.interface and c.interface == iface]
            if targets:
                self._flush()  # in order with what every client was sent before it
                self._deliver(_dumps(msg["message"]).encode(), targets)
        else:  # alerts and other broadcasts (missed-call entries carry the caller's number)
            self._queue_out(raw if raw is not None else _dumps(msg), msg)

    # ------------------------------------------------------------ leader side
    async def publish(self, patches: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> None:
        """Publish one fold's patches; returns no sooner than ``min_interval`` after it started.

        The consumer awaits this before folding again, so under load it folds what queued meanwhile as one
        batch: one Redis message and one frame per client every few ms instead of one every few events (at
        3,000 events/s that was ~1,000 publishes and 50,000 socket writes a second). A quiet feed is not
        delayed: an event arriving after the interval is folded and published at once.
        """
        started = asyncio.get_running_loop().time()
        async with self._pub_lock:
            self.pub_seq += 1
            msg: dict[str, Any] = {"type": "patch", "seq": self.pub_seq, "patches": patches}
            if extra:
                msg.update(extra)
            self._dirty = True
            if self.redis is None:
                self._receive(msg)
            else:
                await self.redis.publish(self.k_changes, _dumps(msg))
        rest = started + self.min_interval - asyncio.get_running_loop().time()
        if rest > 0:
            await asyncio.sleep(rest)

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
