"""The async shell of telephony: AMI connection, one consumer folding events in order, effects, live hub.

``setup(app, settings, clock, ...)`` adds the service's lifetime to server.py's app (the routes are
``http.setup_routes``; this module never imports its HTTP layer). ``TelephonyService`` can also be used alone
(tests, benchmark, ``hotline replay``). The clock is always passed in: the service never reads the wall clock.
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from config.settings import Settings

from . import actions
from .connection import AmiConnection, AmiNotConnected
from .live import LiveHub
from .queue_log_reader import QueueLogFile, QueueLogTable
from .reducer import ReducerConfig, apply
from .replay import AmiRecorder, replay
from .state import (
    CallConnected,
    CallEnded,
    CallMissed,
    LiveState,
    OriginateResult,
    QueueAlert,
    diff,
    effect_dict,
    snapshot,
)
from .store import CallStore

log = logging.getLogger("hotline.telephony")

Clock = Callable[[], datetime]
OnCallConnected = Callable[[CallConnected], Awaitable[dict[str, Any]]]
OnCallEnded = Callable[[CallEnded], Awaitable[None]]
OnEffect = Callable[[Any], Awaitable[None]]

class TelephonyService:
    def __init__(self, settings: Settings, clock: Clock, *, redis: Any = None,
                 sessions: Any = None, on_call_connected: OnCallConnected | None = None,
                 on_call_ended: OnCallEnded | None = None, on_effect: OnEffect | None = None,
                 callback_context: str = "callback-out", transfer_context: str = "transfer",
                 replay_dirs: list[str] | None = None, trace_latency: bool = False,
                 leader_ttl: float | None = None) -> None:
        self.settings = settings
        self.clock = clock
        # The first read of queue_log looks one day back (a server down overnight still records the evening).
        since = clock().timestamp() - 86400
        a = settings.ami
        self.queue_log: QueueLogFile | QueueLogTable | None = None
        if a.queue_log_url:
            self.queue_log = QueueLogTable(a.queue_log_url, UTC if a.queue_log_utc else ZoneInfo(settings.server.timezone),
                                           since=since, table=a.queue_log_table)
        elif a.queue_log_path:
            self.queue_log = QueueLogFile(a.queue_log_path, since=since)
        self.config = ReducerConfig(tz=ZoneInfo(settings.server.timezone),
                                    answer_rate_target=settings.ami.answer_rate_target,
                                    alert_min_calls=settings.wallboard.alert_min_calls,
                                    reconcile=self.queue_log is not None)
        # Which source covered which interval (for /health): AMI sessions, queue_log reads over the gaps.
        self.coverage: list[dict[str, Any]] = []
        self.reconciled = 0  # queue_log reads handed to the consumer
        self.state = LiveState()
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.effects: asyncio.Queue[Any] = asyncio.Queue()
        self.hub = LiveHub(redis)
        self.hub.snapshot_source = self.full_view
        self.store = CallStore(sessions, clock, self.config.tz) if sessions is not None else None
        self.on_call_connected = on_call_connected
        self.on_call_ended = on_call_ended
        self.on_effect = on_effect
        self.callback_context = callback_context
        self.transfer_context = transfer_context
        self.replay_dirs = [Path(d).resolve() for d in (replay_dirs or [])]
        if settings.ami.record_dir:
            self.replay_dirs.append(Path(settings.ami.record_dir).resolve())
        self.trace_latency = trace_latency
        self.recorder = AmiRecorder(settings.ami.record_dir, clock) if settings.ami.record_dir else None
        self.connection: AmiConnection | None = None
        self.leading = not settings.ami.enabled
        self.pending_originates: dict[str, asyncio.Future[Any]] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self._conn_task: asyncio.Task[Any] | None = None
        self._ids = itertools.count(1)
        self._prefix = uuid.uuid4().hex[:8]
        self.folded = 0
        self.leader_ttl = leader_ttl or max(10.0, settings.ami.ping_interval * 2)
        self.backlog_high_water = 20_000  # queued events before the socket stops being read
        # Called with every raw event before it is queued (the survey dialer follows its own calls here).
        self.raw_listeners: list[Callable[[dict[str, Any]], None]] = []

    # ------------------------------------------------------------ input
    def submit(self, event: dict[str, Any]) -> None:
        """The AMI callback: stamp and enqueue only (the consumer folds in order)."""
        if self.trace_latency:
            event["_rx"] = time.perf_counter()
        if "Timestamp" not in event and "_received" not in event:
            event["_received"] = self.clock().timestamp()
        for listener in self.raw_listeners:
            try:
                listener(event)
            except Exception:  # a listener must never stop the bridge
                log.exception("raw AMI listener failed on %s", event.get("Event") or event.get("Response"))
        self.events.put_nowait(event)

    async def replay_file(self, path: str | Path, speed: float | None = 1.0, until: float | None = None) -> int:
        return await replay(path, self.submit, speed=speed, until=until)

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until every submitted event is folded and its effects carried out (tests, replay)."""
        deadline = time.monotonic() + timeout
        while self.events.qsize() or self.events._unfinished_tasks or self.effects._unfinished_tasks:  # type: ignore[attr-defined]
            if time.monotonic() > deadline:
                raise TimeoutError("telephony queues did not drain")
            await asyncio.sleep(0.005)

    # ------------------------------------------------------------ consumer
    def full_view(self) -> dict[str, Any]:
        view = snapshot(self.state)
        view["ami"] = self.ami_status()
        return view

    async def consume(self) -> None:
        while True:
            first = await self.events.get()
            batch = [first]
            while len(batch) < 2000:
                try:
                    batch.append(self.events.get_nowait())
                except asyncio.QueueEmpty:
                    break
            old = self.state
            effects: list[Any] = []
            try:
                state = old
                for ev in batch:
                    state, eff = apply(state, ev, self.config)
                    if eff:
                        effects.extend(eff)
                self.state = state
                self.folded += len(batch)
            except Exception:
                # Never keep folding on a state we cannot trust: start clean and ask the PBX for the truth.
                log.exception("telephony reducer failed; resetting live state and resyncing")
                self.state = LiveState()
                # The day's counters come back from the call store, the rest from the PBX's lists.
                asyncio.get_running_loop().create_task(self._safe_resync())
            try:
                patches = diff(old, self.state)
                if patches or (self.trace_latency and batch):
                    extra = {"rx": [ev.get("_rx") for ev in batch]} if self.trace_latency else None
                    try:
                        await self.hub.publish(patches, extra)
                    except Exception:
                        log.exception("publishing live changes failed")
                # After the patches (a screen pop never arrives before the agent's call does), and before the
                # events count as done, so drain() never returns while their effects are not yet queued.
                for e in effects:
                    self.effects.put_nowait(e)
            finally:
                for _ in batch:
                    self.events.task_done()

    async def _safe_resync(self) -> None:
        await self.seed_day()
        if self.connection is None or not self.connection.connected:
            return
        try:
            await self.connection.resync()
        except Exception as exc:
            log.warning("resync after reducer failure failed: %s", exc)

    async def run_effects(self) -> None:
        while True:
            e = await self.effects.get()
            try:
                await self._effect(e)
            except Exception:
                log.exception("telephony effect %s failed", type(e).__name__)
            finally:
                self.effects.task_done()

    async def _effect(self, e: Any) -> None:
        if isinstance(e, CallConnected):
            payload: dict[str, Any] = {}
            if self.on_call_connected is not None:
                try:
                    payload = await self.on_call_connected(e) or {}
                except Exception:
                    log.exception("screen pop lookup failed for call %s", e.call_id)
            await self.hub.send_agent(e.interface, {"type": "screen_pop", "call": effect_dict(e), **payload})
        elif isinstance(e, CallEnded):
            if e.source == "queue_log":
                for c in reversed(self.coverage):
                    if c["source"] == "queue_log":
                        c["calls"] += 1
                        break
            if self.store is not None and e.queue:
                await self.store.save_call(e)
            if self.on_call_ended is not None:
                await self.on_call_ended(e)
        elif isinstance(e, CallMissed):
            entry = None
            if self.store is not None:
                await self.store.add_callback(e)
                entry = await self.store.open_entry(e.call_id)
            # The console updates its list from the message alone (one entry per number per day, as the HTTP
            # list has it): 200 abandoned calls must not become 200 list requests from every agent console.
            await self.hub.broadcast({"type": "missed", "data": effect_dict(e), "callback": entry})
        elif isinstance(e, QueueAlert):
            await self.hub.broadcast({"type": "alert", "data": effect_dict(e)})
        elif isinstance(e, OriginateResult):
            fut = self.pending_originates.pop(e.action_id, None)
            if fut is not None and not fut.done():
                fut.set_result(e)
        if self.on_effect is not None:
            await self.on_effect(e)

    # ------------------------------------------------------------ AMI connection and leadership
    def ami_status(self) -> dict[str, Any]:
        if not self.settings.ami.enabled:
            return {"enabled": False, "connected": False, "since": None, "last_error": "", "reconnects": 0}
        if self.connection is None:
            return {"enabled": True, "connected": False, "since": None, "last_error": "", "reconnects": 0,
                    "leader": False}
        return {**self.connection.status(), "leader": self.leading}

    def health(self) -> dict[str, Any]:
        """Health probe for /health: ok when AMI is off, or connected (here or in the leader process)."""
        status = self.ami_status() if self.leading else dict(self.hub.view.get("ami") or {})
        ok = (not self.settings.ami.enabled) or bool(status.get("connected"))
        out = {"ok": ok, **status}
        if self.leading and self.settings.ami.enabled:
            out["queue_log"] = self.queue_log.where if self.queue_log is not None else None
            out["coverage"] = [dict(c) for c in self.coverage]
        return out

    def _status_changed(self, status: dict[str, Any]) -> None:
        now = self.clock().isoformat()
        last_ami = next((c for c in reversed(self.coverage) if c["source"] == "ami"), None)
        if status.get("connected") and (last_ami is None or last_ami["to"] is not None):
            gap_from = last_ami["to"] if last_ami else None
            self.coverage.append({"source": "ami", "from": status.get("since") or now, "to": None})
            if self.queue_log is not None:
                # After the resync (already queued): what queue_log recorded while AMI was not listening.
                entry = {"source": "queue_log", "path": self.queue_log.where, "from": gap_from,
                         "to": status.get("since") or now, "calls": 0, "error": ""}
                self.coverage.append(entry)
                asyncio.get_running_loop().create_task(self.reconcile(entry))
        elif not status.get("connected") and last_ami is not None and last_ami["to"] is None:
            last_ami["to"] = now
        del self.coverage[:-20]
        asyncio.get_running_loop().create_task(
            self.hub.publish([{"op": "ami", "value": {**status, "leader": self.leading}}]))

    async def seed_day(self) -> None:
        """Today's counters from telephony_calls (a restart must not reset the wallboard to 0); before the
        first resync, so calls recorded already are never counted again by queue_log or AMI."""
        if self.store is None:
            return
        now = self.clock()
        local = now.astimezone(self.config.tz)
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        try:
            calls = await self.store.day_calls(start, start + timedelta(days=1))
        except Exception as exc:  # the wallboard then counts from now on; the report still has every call
            log.warning("today's calls not read from the call store: %s", exc)
            return
        self.submit({"Event": "_DayCalls", "calls": calls, "_received": now.timestamp()})

    async def reconcile(self, entry: dict[str, Any] | None = None) -> None:
        """Fold what queue_log recorded since the last read (a ``_QueueLog`` event after the resync).

        Always queues the event, with no entries if the file cannot be read, so calls held at the resync
        (``unresolved``) are closed in any case.
        """
        entries: list[Any] = []
        if self.queue_log is not None:
            try:
                entries = await self.queue_log.read()
            except Exception as exc:  # file gone, database down: the gap's calls get the guessed outcome
                log.warning("queue_log %s not read: %s", self.queue_log.where, exc)
                if entry is not None:
                    entry["error"] = f"{type(exc).__name__}: {exc}"
        self.submit({"Event": "_QueueLog", "entries": entries})
        self.reconciled += 1

    def _raw(self, data: bytes) -> None:
        if self.recorder is not None:
            self.recorder.write(data)

    def _make_connection(self) -> AmiConnection:
        return AmiConnection(self.settings.ami, self.submit, self.clock, raw_sink=self._raw if self.recorder else None,
                             raw_start=self.recorder.new_file if self.recorder else None,
                             on_status=self._status_changed, backlog=self.events.qsize,
                             high_water=self.backlog_high_water)

    async def lead(self) -> None:
        """Hold the AMI connection while this process holds the Redis leader lock."""
        ttl = self.leader_ttl
        while True:
            try:
                mine = await self.hub.try_lead(ttl)
            except Exception as exc:
                log.warning("leader lock check failed: %s", exc)
                mine = self.leading
            if mine and not self.leading:
                self.leading = True
                self.hub.leader = True
                await self.hub.resume_seq()
                self.state = LiveState()  # whatever we had is stale: the resync at connect rebuilds it
                await self.seed_day()
                await self.hub.publish_full(self.full_view())
                self.connection = self._make_connection()
                self._conn_task = asyncio.get_running_loop().create_task(self.connection.run())
            elif not mine and self.leading:
                self.leading = False
                self.hub.leader = False
                await self._stop_connection()
            await asyncio.sleep(ttl / 3)

    async def _stop_connection(self) -> None:
        if self._conn_task is not None:
            self._conn_task.cancel()
            await asyncio.gather(self._conn_task, return_exceptions=True)
            self._conn_task = None
        if self.connection is not None:
            self.connection._set_disconnected()

    async def send(self, action: dict[str, Any], **kw: Any) -> Any:
        if self.connection is None:
            raise AmiNotConnected(str(action.get("Action", "")))
        return await self.connection.send(action, **kw)

    async def originate(self, action: dict[str, Any], wait: float | None = None) -> OriginateResult | None:
        """Send an async Originate; with ``wait`` also wait that long for its OriginateResponse."""
        aid = action.get("ActionID") or f"hotline-{self._prefix}-{next(self._ids)}"
        action = {**action, "ActionID": aid}
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending_originates[aid] = fut
        try:
            await self.send(action)
            if wait is None:
                return None
            try:
                return await asyncio.wait_for(fut, wait)
            except TimeoutError:
                return None
        finally:
            if wait is not None:
                self.pending_originates.pop(aid, None)

    # ------------------------------------------------------------ lifetime
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self.consume(), name="telephony-consumer"),
                       loop.create_task(self.run_effects(), name="telephony-effects"),
                       loop.create_task(self.hub.run_subscriber(), name="telephony-live")]
        await self.hub.wait_ready()
        if self.settings.ami.enabled:
            self._tasks.append(loop.create_task(self.lead(), name="telephony-leader"))
            self._tasks.append(loop.create_task(self.hub.run_snapshot_writer(), name="telephony-snapshot"))
        else:
            self.hub.leader = True
            self._tasks.append(loop.create_task(self.hub.run_snapshot_writer(), name="telephony-snapshot"))
            await self.hub.resume_seq()
            if not self.hub.seq:  # another process already shares a view: follow it, do not clobber it
                await self.hub.publish_full(self.full_view())

    async def stop(self) -> None:
        await self._stop_connection()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        try:
            if self.leading and self.settings.ami.enabled:
                await self.hub.release_lead()
        except Exception as exc:  # Redis already gone at shutdown: the lock then expires by itself
            log.info("leader lock not released: %s", exc)
        if self.recorder is not None:
            self.recorder.close()
        if self.queue_log is not None:
            await self.queue_log.close()

    # ------------------------------------------------------------ agent and supervisor operations
    def agent_channel(self, interface: str) -> tuple[str, str]:
        """(agent leg channel name, caller channel name) of the agent's current call; AmiError if none."""
        a = self.state.agents.get(interface)
        call = self.state.calls.get(a.call_id) if a and a.call_id else None
        if call is None:
            raise NoCall()
        return call.channels.get(call.agent_channel, ""), call.channels.get(call.caller_channel, "")

    async def login(self, interface: str, queue: str, member_name: str = "", paused: bool = False,
                    reason: str = "") -> None:
        await self.send(actions.queue_add(queue, interface, member_name, paused=paused, reason=reason))

    async def logout(self, interface: str, queue: str) -> None:
        await self.send(actions.queue_remove(queue, interface))

    async def pause(self, interface: str, paused: bool, reason: str = "", queue: str = "") -> None:
        await self.send(actions.queue_pause(interface, paused, reason, queue))


class NoCall(Exception):
    http_status = 409
    slug = "no_active_call"
    message = "当前没有进行中的通话"


# The service in the app, for the HTTP handlers (telephony.http) and server.py.
SERVICE = web.AppKey("telephony_service", TelephonyService)


# ---------------------------------------------------------------- aiohttp wiring
def _resolve(x: Any) -> Any:
    return x() if callable(x) else x


def setup(app: web.Application, settings: Settings, clock: Clock, *, redis: Any = None,
          sessions: Any = None, on_call_connected: OnCallConnected | None = None,
          on_call_ended: OnCallEnded | None = None, on_effect: OnEffect | None = None,
          replay_dirs: list[str] | None = None) -> TelephonyService:
    """Add the telephony service and its cleanup_ctx to ``app`` (its routes: ``http.setup_routes``).

    ``redis`` and ``sessions`` may be zero-argument callables, resolved at startup (server.py creates them in
    earlier cleanup_ctx steps). Returns the service; ``service.health`` is the probe for /health.
    """
    service = TelephonyService(settings, clock, on_call_connected=on_call_connected, on_call_ended=on_call_ended,
                               on_effect=on_effect, replay_dirs=replay_dirs)
    app[SERVICE] = service

    async def telephony_ctx(app: web.Application) -> AsyncIterator[None]:
        r = _resolve(redis)
        s = _resolve(sessions)
        service.hub.redis = r
        if s is not None:
            service.store = CallStore(s, clock, service.config.tz)
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app.cleanup_ctx.append(telephony_ctx)
    return service


# ---------------------------------------------------------------- hotline replay
def register_cli(subparsers: Any, clock: Clock) -> None:
    """Add ``hotline replay FILE [--speed X] [--until S]``; server.py passes its clock."""
    p = subparsers.add_parser("replay", help="replay an AMI recording or capture into the live telephony state")
    p.add_argument("file", help="a .ami recording (ami.record_dir) or a capture .ami/.jsonl")
    p.add_argument("--speed", type=float, default=1.0, help="1 = real time, 10 = ten times faster, 0 = no pauses")
    p.add_argument("--until", type=float, default=None, help="stop after this many seconds of capture time")
    p.set_defaults(func=lambda settings, args: replay_command(settings, args, clock))


def replay_command(settings: Settings, args: argparse.Namespace, clock: Clock) -> int:
    """``hotline replay FILE``: fold the file; with a configured Redis, publish so running wallboards show it."""
    async def run() -> int:
        r = None
        if settings.redis.url:
            from redis.asyncio import Redis
            r = Redis.from_url(settings.redis.url)
        svc = TelephonyService(settings.with_overrides(ami={"enabled": False, "record_dir": ""}), clock, redis=r)
        await svc.start()
        try:
            n = await svc.replay_file(args.file, speed=args.speed, until=getattr(args, "until", None))
            await svc.drain()
            view = svc.full_view()
            print(f"replayed {n} events from {args.file}")
            for q in view["queues"].values():
                s = q["stats"]
                print(f"  queue {q['name']}: offered {s['offered']} answered {s['answered']} "
                      f"abandoned {s['abandoned']} waiting {len(q['waiting'])} 15s-rate {s['service_level_15']}")
            for a in view["agents"].values():
                print(f"  agent {a['name'] or a['interface']}: {a['state']} {a['pause_reason']}")
            return 0
        finally:
            await svc.stop()
            if r is not None:
                await r.aclose()

    return asyncio.run(run())
