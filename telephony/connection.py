"""The AMI connection: panoramisk as the transport, with what it lacks added here.

- framing on bytes (``BridgeProtocol.data_received``), each whole message decoded as UTF-8 with replacements;
- a timeout on every action (QueueAdd and async Originate can leave panoramisk's future pending forever);
- a ping loop that checks the reply and forces a reconnect when pings go unanswered;
- reconnect with exponential backoff and jitter after any loss (PBX restart, network cut, ``Shutdown``);
- after every (re)connect a resync from complete ``QueueStatus`` and ``CoreShowChannels`` lists.

The event callback only hands the decoded dict on (the service enqueues it); nothing here touches live state.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from config.settings import AmiSettings

from .framing import MAX_MESSAGE_BYTES, Framer, parse_message

log = logging.getLogger("hotline.telephony.ami")

EventSink = Callable[[dict[str, Any]], None]
Clock = Callable[[], datetime]

# Actions whose answer is a list (Response + EventList: start ... <X>Complete). Everything else is sent with
# as_list=False so panoramisk never waits for a list that will not come (its guess from the message text
# makes QueueAdd "Added interface to queue" and async Originate "successfully queued" hang).
LIST_ACTIONS = {"queuestatus", "queuesummary", "coreshowchannels", "status", "bridgelist", "hangup",
                "sippeers", "pjsipshowendpoints", "agents", "parkedcalls"}
YIELD_AFTER_S = 0.01  # a chunk folded for longer than this gives the event loop a turn before the next read


class AmiError(Exception):
    """Asterisk refused an action; ``message`` is Asterisk's own ``Message``."""

    http_status = 409
    slug = "ami_refused"

    def __init__(self, action: str, message: str) -> None:
        super().__init__(f"{action}: {message}")
        self.action = action
        self.message = f"电话系统拒绝了操作 {action}：{message}"
        self.asterisk_message = message


class AmiTimeout(AmiError):
    http_status = 504
    slug = "ami_timeout"

    def __init__(self, action: str, seconds: float) -> None:
        super().__init__(action, f"{seconds:g} 秒内没有应答")
        self.message = f"电话系统在 {seconds:g} 秒内没有应答 {action}"


class AmiNotConnected(AmiError):
    http_status = 503
    slug = "ami_not_connected"

    def __init__(self, action: str) -> None:
        super().__init__(action, "未连接")
        self.message = "电话系统未连接，请稍后再试"


class LoginFailed(Exception):
    pass


class MalformedLog:
    """Malformed AMI input is logged with its bytes and skipped, but a corrupt stream must not flood the log
    (1 MB of garbage is ~10,000 messages): the first ``burst`` of each ``window`` seconds are logged in full,
    the rest are counted and summarised in one line (when the window has passed, or the connection ends)."""

    def __init__(self, burst: int = 10, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = burst
        self.window = window
        self.clock = clock
        self.total = 0  # since the bridge started, logged or not
        self._started: float | None = None
        self._logged = 0
        self._suppressed = 0
        self._suppressed_bytes = 0

    def skip(self, what: str, raw: bytes, size: int | None = None) -> None:
        """One malformed message: ``raw`` is what is logged, ``size`` what is counted (default ``len(raw)``)."""
        self.total += 1
        self.tick()
        if self._started is None:
            self._started = self.clock()
        if self._logged < self.burst:
            self._logged += 1
            more = (f" (further ones are counted and summarised every {self.window:g} s)"
                    if self._logged == self.burst else "")
            log.warning("skipping malformed AMI message, %s: %r%s", what, raw[:200], more)
        else:
            self._suppressed += 1
            self._suppressed_bytes += len(raw) if size is None else size

    def tick(self) -> None:
        """Summarise a window that has passed (called on every read, so a quiet stream still gets its line)."""
        if self._started is not None and self.clock() - self._started >= self.window:
            self.flush()

    def flush(self) -> None:
        if self._suppressed:
            log.warning("skipped %d more malformed AMI messages (%d characters) without logging each, %d in all "
                        "since the bridge started", self._suppressed, self._suppressed_bytes, self.total,
                        extra={"ami_malformed_suppressed": self._suppressed})
        self._started = None
        self._logged = self._suppressed = self._suppressed_bytes = 0


class BridgeProtocol(AMIProtocol):
    """panoramisk's protocol with framing on bytes; events bypass panoramisk's fnmatch dispatch."""

    def __init__(self, owner: Any = None) -> None:
        super().__init__()
        self.owner = owner
        self.pauses: set[str] = set()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.framer = Framer()
        # panoramisk sets ``factory`` only in a later callback: bytes read before it (the banner) were neither
        # recorded nor seen. Know the manager from the start.
        if self.owner is not None:
            self.factory = self.owner
        self.malformed = getattr(self.factory, "malformed", None) or MalformedLog()
        start = getattr(self.factory, "raw_start", None)
        if start is not None:
            start()  # a new recording file before the first byte (the banner) of this connection

    def pause(self, reason: str) -> None:
        """Stop reading the socket for ``reason`` (backlog, or a yield to the loop) until every reason is gone."""
        transport = getattr(self, "transport", None)
        if not self.pauses and transport is not None and not transport.is_closing():
            transport.pause_reading()
        self.pauses.add(reason)

    def resume(self, reason: str) -> None:
        if reason not in self.pauses:
            return
        self.pauses.discard(reason)
        transport = getattr(self, "transport", None)
        if not self.pauses and transport is not None and not transport.is_closing():
            transport.resume_reading()

    def data_received(self, data: bytes) -> None:  # type: ignore[override]
        self.last_read = time.monotonic()  # the pinger's proof of life while a Pong waits behind unread events
        try:
            self._take(data)
        finally:
            # A chunk that took long to fold: let the loop run its timers (the pinger, other tasks) before the
            # next read. uvloop (libuv) reads a busy socket up to 32 times before timers run, and during a 3.3 s
            # AMI burst the pinger ran twice instead of every 0.2 s (tests/telephony/test_overload.py).
            if time.monotonic() - self.last_read > YIELD_AFTER_S and "yield" not in self.pauses:
                self.pause("yield")
                asyncio.get_running_loop().call_soon(self.resume, "yield")

    def _take(self, data: bytes) -> None:
        factory = self.factory
        sink = getattr(factory, "raw_sink", None)
        if sink is not None:
            sink(data)
        malformed = self.malformed
        malformed.tick()
        dropped = self.framer.dropped
        for text in self.framer.feed(data):
            if self.version is None and self.framer.banner:
                self.version = self.framer.banner
            if text.startswith("Response:"):
                msg = Message.from_line(text)
                if msg is not None:
                    self.handle_message(msg)
                else:
                    malformed.skip("unreadable Response", text.encode(), len(text))
                continue
            headers = parse_message(text)
            name = headers.get("Event")
            if not isinstance(name, str):
                malformed.skip("no Event or Response", text.encode(), len(text))
                continue
            aid = headers.get("ActionID")
            if isinstance(aid, str) and aid in self.responses:
                action = self.responses[aid]
                self.handle_message(Message(headers))  # items of a list we asked for
                done_hook = getattr(factory, "on_action_done", None)
                if done_hook is not None and action.future.done() and not action.future.cancelled():
                    # Synchronously, in stream order: the resync lands exactly where its list ended.
                    done_hook(action)
                continue
            on_event = getattr(factory, "on_event", None)
            if on_event is not None:
                on_event(headers)
            if name == "Shutdown":
                factory.shutdown_seen = True
                # Asterisk closes right after; treat it as the loss now so no action waits on a dying socket.
                self.connection_lost(None)
        if self.version is None and self.framer.banner:
            self.version = self.framer.banner
        if self.framer.dropped > dropped:
            malformed.skip(f"no message end within {MAX_MESSAGE_BYTES} bytes, dropped", b"",
                           self.framer.dropped - dropped)

    def connection_lost(self, exc: Exception | None) -> None:
        malformed = getattr(self, "malformed", None)
        if malformed is not None:
            malformed.flush()
        super().connection_lost(exc)


class BridgeManager(Manager):
    """panoramisk Manager without its fixed 2 s reconnect loop and unchecked ping (AmiConnection does both)."""

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.on_event: EventSink | None = config.get("on_event")
        self.raw_sink: Callable[[bytes], None] | None = config.get("raw_sink")
        self.raw_start: Callable[[], None] | None = config.get("raw_start")
        # One limiter for the whole bridge: a PBX that keeps sending garbage and reconnecting is not logged
        # in full again at every connection.
        self.malformed: MalformedLog = config.get("malformed") or MalformedLog()
        self.config["protocol_factory"] = lambda: BridgeProtocol(self)
        self.lost: asyncio.Future[Any] | None = None
        self.connect_error: BaseException | None = None
        self.on_action_done: Callable[[Any], None] | None = None
        self.shutdown_seen = False
        self.login_done: asyncio.Future[Any] | None = None

    def connection_made(self, f: Any) -> None:  # type: ignore[override]
        if f.cancelled():
            return
        exc = f.exception()
        if exc is not None:
            self.connect_error = exc
            return
        super().connection_made(f)

    def ping(self) -> None:  # our own pinger checks replies
        return None

    def login(self, future: Any) -> bool:  # type: ignore[override]
        # panoramisk clears authenticated_future when the answer comes: keep the answer for _session.
        done = self.login_done
        if done is not None and not done.done():
            if future.cancelled():
                done.set_exception(OSError("login cancelled"))
            elif future.exception() is not None:
                done.set_exception(future.exception())
            else:
                done.set_result(future.result())
        if future.cancelled() or future.exception() is not None:
            return False
        return bool(super().login(future))

    def connection_lost(self, exc: Any) -> None:  # type: ignore[override]
        self._connected = False
        if self.pinger:
            self.pinger.cancel()
            self.pinger = None
        if self.lost is not None and not self.lost.done():
            self.lost.set_result(exc)


class AmiConnection:
    """Keeps one authenticated AMI session alive; ``send`` is an action with a timeout."""

    def __init__(self, settings: AmiSettings, on_event: EventSink, clock: Clock, *,
                 on_resync: Callable[[dict[str, Any]], None] | None = None,
                 raw_sink: Callable[[bytes], None] | None = None,
                 raw_start: Callable[[], None] | None = None,
                 on_status: Callable[[dict[str, Any]], None] | None = None,
                 backlog: Callable[[], int] | None = None, high_water: int = 20_000) -> None:
        self.settings = settings
        self.on_event = on_event
        self.on_resync = on_resync
        self.raw_sink = raw_sink
        self.raw_start = raw_start
        self.malformed = MalformedLog()
        self.on_status = on_status
        self.clock = clock
        self.manager: BridgeManager | None = None
        self.connected = False
        self.since: datetime | None = None
        self.last_error = ""
        self.reconnects = 0
        self.sessions = 0
        self.version = ""
        self._ready = asyncio.Event()
        self.backlog = backlog
        self.high_water = high_water
        self.paused_reading = False
        self.waits: list[float] = []
        self.healthy = 0  # sessions that logged in and resynced  # the last reconnect waits chosen (diagnostics, tests)
        self.late_pongs = 0  # pings answered late while the PBX kept sending: a busy loop, not a dead link

    # ------------------------------------------------------------ status
    def status(self) -> dict[str, Any]:
        return {"enabled": True, "connected": self.connected,
                "since": self.since.isoformat() if self.since else None,
                "last_error": self.last_error, "reconnects": self.reconnects, "version": self.version,
                "host": f"{self.settings.host}:{self.settings.port}"}

    def _changed(self) -> None:
        if self.on_status is not None:
            self.on_status(self.status())

    def _on_event(self, ev: dict[str, Any]) -> None:
        self.on_event(ev)
        # Backpressure: if the consumer falls far behind, stop reading the socket (TCP then slows Asterisk's
        # writer down) instead of queueing without bound; resume when half of the backlog is folded.
        if self.backlog is not None and not self.paused_reading and self.backlog() > self.high_water:
            m = self.manager
            if m is not None and m.protocol is not None and not m.protocol.closed:
                m.protocol.pause("backlog")
                self.paused_reading = True
                asyncio.get_running_loop().create_task(self._resume_when_drained(m))

    async def _resume_when_drained(self, m: BridgeManager) -> None:
        try:
            while self.backlog is not None and self.backlog() > self.high_water // 2:
                await asyncio.sleep(0.01)
        finally:
            self.paused_reading = False
            if m.protocol is not None and not m.protocol.closed:
                m.protocol.resume("backlog")

    async def wait_connected(self, timeout: float) -> None:
        await asyncio.wait_for(self._ready.wait(), timeout)

    # ------------------------------------------------------------ actions
    async def send(self, action: dict[str, Any], *, timeout: float | None = None,
                   check: bool = True) -> Any:
        """Send one action; returns panoramisk's Message (or list of Messages for list actions).

        Raises ``AmiNotConnected``, ``AmiTimeout`` or ``AmiError`` (with Asterisk's Message) on refusal.
        """
        name = str(action.get("Action", ""))
        m = self.manager
        if m is None or not self.connected or m.protocol is None or m.protocol.closed:
            raise AmiNotConnected(name)
        as_list = name.lower() in LIST_ACTIONS
        fut = m.send_action(dict(action), as_list=None if as_list else False)
        limit = timeout or self.settings.action_timeout
        waiters: set[asyncio.Future[Any]] = {fut}
        if m.lost is not None:
            waiters.add(m.lost)  # a lost connection fails the action now, not after its timeout
        done, _ = await asyncio.wait(waiters, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        if fut not in done:
            if not fut.done():
                fut.cancel()
            if m.lost is not None and m.lost in done:
                raise AmiNotConnected(name)
            raise AmiTimeout(name, limit)
        resp = fut.result()
        if check:
            first = resp[0] if isinstance(resp, list) else resp
            if first.get("Response") not in ("Success", "Follows", "Goodbye"):
                raise AmiError(name, str(first.get("Message", "") or first.get("Response", "")))
        return resp

    # ------------------------------------------------------------ lifetime
    async def run(self) -> None:
        """Connect, resync, watch, reconnect with backoff; until cancelled."""
        delay = self.settings.reconnect_min
        while True:
            healthy = self.healthy
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except LoginFailed as exc:
                self.last_error = f"login failed: {exc}"
            except (TimeoutError, OSError, AmiError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # a bug must not end the bridge forever; log it and reconnect
                log.exception("AMI session crashed")
                self.last_error = f"{type(exc).__name__}: {exc}"
            self._set_disconnected()
            # A cancel that arrives just as the session ends can be lost on its way out (Python 3.11's
            # asyncio.wait_for returns the inner result when both happen at once); without this check the loop
            # would reconnect forever and whoever cancelled it (stop()) would wait forever.
            me = asyncio.current_task()
            if me is not None and me.cancelling():
                raise asyncio.CancelledError
            if self.healthy != healthy:
                # The link worked (logged in, resynced): a drop now is news, not a PBX that stays down, so start
                # the backoff over. Growing it across a flapping link left half a minute of stale view.
                delay = self.settings.reconnect_min
            wait = delay * (0.8 + 0.4 * random.random())
            self.waits = [*self.waits[-19:], wait]
            log.warning("AMI disconnected (%s); reconnecting in %.1f s", self.last_error, wait)
            await asyncio.sleep(wait)
            delay = min(delay * 2, self.settings.reconnect_max)
            self.reconnects += 1

    def _set_disconnected(self) -> None:
        self.connected = False
        self._ready.clear()
        m, self.manager = self.manager, None
        if m is not None:
            m.close()
        self._changed()  # also when it never came up: the status shows the new last_error

    async def _session(self) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        m = BridgeManager(host=s.host, port=s.port, username=s.username, secret=s.secret, loop=loop,
                          protocol_factory=BridgeProtocol, ping_delay=10 ** 6, ping_interval=10 ** 6,
                          events="on", on_event=self._on_event, raw_sink=self.raw_sink,
                          raw_start=self.raw_start, malformed=self.malformed)
        m.lost = loop.create_future()
        m.login_done = loop.create_future()
        self.manager = m
        task = m.connect()
        try:
            await asyncio.wait_for(asyncio.shield(task), s.action_timeout)
        except TimeoutError:
            task.cancel()  # a late connect must not leave an orphan session behind
            raise
        await asyncio.sleep(0)  # let panoramisk's connection_made callback run
        if m.connect_error is not None:
            raise m.connect_error
        login_wait = m.login_done
        done, _ = await asyncio.wait({login_wait, m.lost}, timeout=s.action_timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if login_wait not in done:
            raise LoginFailed("connection closed before login answer" if m.lost in done else "login timed out")
        resp = login_wait.result()
        if not resp.success:
            raise LoginFailed(str(resp.get("Message", "")) or "refused")
        self.version = m.protocol.version or ""
        self.connected = True
        self.sessions += 1
        self.since = self.clock()
        self.last_error = ""
        await self.resync()
        self.healthy += 1
        self._ready.set()
        self._changed()
        pinger = asyncio.create_task(self._pinger(m))
        try:
            exc = await m.lost
            if m.shutdown_seen:
                self.last_error = "Asterisk shut down (Event: Shutdown)"
            elif exc is None:
                self.last_error = "connection closed by Asterisk"
            else:
                self.last_error = f"connection lost: {exc}"
        finally:
            pinger.cancel()
            await asyncio.gather(pinger, return_exceptions=True)

    async def resync(self) -> None:
        """Ask for complete ``QueueStatus`` and ``CoreShowChannels`` lists; fold them as one ``_Resync`` event.

        Both actions are sent back to back, and the ``_Resync`` event is handed on synchronously when the
        second list completes, in stream order: events read before it are older than the lists (the resync
        overrides them), events after it are newer (they apply on top).
        """
        m = self.manager
        if m is None:
            raise AmiNotConnected("QueueStatus")
        n = next(_resync_ids)
        ids = {"queue_status": f"hotline-resync-{n}-q", "channels": f"hotline-resync-{n}-c"}
        got: dict[str, Any] = {}
        clock = self.clock

        def done(action: Any) -> None:
            for key, aid in ids.items():
                if action.action_id == aid:
                    got[key] = action.future.result()
            if len(got) == 2 and "sent" not in got:
                got["sent"] = True
                ev = {"Event": "_Resync", "_received": clock().timestamp(),
                      "queue_status": [_plain(x) for x in _items(got["queue_status"])],
                      "channels": [_plain(x) for x in _items(got["channels"])]}
                (self.on_resync or self.on_event)(ev)

        m.on_action_done = done
        limit = max(self.settings.action_timeout, 5)
        try:
            await asyncio.gather(self.send({"Action": "QueueStatus", "ActionID": ids["queue_status"]}, timeout=limit),
                                 self.send({"Action": "CoreShowChannels", "ActionID": ids["channels"]},
                                           timeout=limit))
        finally:
            m.on_action_done = None
        if "sent" not in got:
            raise AmiError("QueueStatus", "resync lists incomplete")

    async def _pinger(self, m: BridgeManager) -> None:
        s = self.settings
        misses = 0
        while True:
            await asyncio.sleep(s.ping_interval)
            sent = time.monotonic()
            try:
                resp = await self.send({"Action": "Ping"}, timeout=s.ping_timeout)
                misses = 0 if resp.get("Ping") == "Pong" or resp.get("Response") == "Success" else misses + 1
            except AmiTimeout:
                if _link_alive(m.protocol, self.paused_reading, sent, s.ping_timeout):
                    self.late_pongs += 1
                    continue
                misses += 1
            except AmiError:
                misses += 1
            if misses >= 1:
                log.warning("AMI ping unanswered for %.1f s: forcing a reconnect", s.ping_timeout)
                if m.protocol is not None and not m.protocol.closed:
                    m.protocol.transport.abort()
                if m.lost is not None and not m.lost.done():
                    m.lost.set_result(OSError("ping unanswered"))
                return


def _link_alive(protocol: Any, paused_reading: bool, sent: float, timeout: float) -> bool:
    """Whether a Ping still unanswered after ``timeout`` leaves the link proven alive.

    Asterisk answers in stream order, so past saturation the Pong waits behind every event not yet read: the
    bridge reads slower than the PBX writes and the answer is late, not missing. Bytes read after the Ping was
    sent prove the PBX is there; so does reading paused on purpose (backpressure). A loop so busy that our own
    timer fired far too late gave the Ping no fair chance either. A dead link sends nothing at all.
    """
    if paused_reading:
        return True
    if getattr(protocol, "last_read", 0.0) > sent:
        return True
    return time.monotonic() - sent > 2 * timeout


def _items(resp: Any) -> list[Any]:
    if not isinstance(resp, list):
        return []
    return [r for r in resp[1:] if "Event" in r and not str(r.get("Event", "")).endswith("Complete")]


def _plain(msg: Any) -> dict[str, Any]:
    return {k: msg[k] for k in msg if k != "content"}


_resync_ids = itertools.count(1)
