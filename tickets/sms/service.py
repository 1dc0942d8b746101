"""SMS to the citizen: the outbox rows written with each workflow change, and the sender that drains them.

- ``row_hook`` (a ``TicketStore.row_hooks`` entry) turns a ticket change into an outbox row inside the change's own
  transaction: a message exists if and only if the change committed.
- ``listener`` (a ``TicketStore.listeners`` entry, after the commit) only wakes the sender.
- The sender (``run``) claims one row at a time with a committed UPDATE (state ``sending``, a lease) before a
  byte goes to the gateway, records each part's message_id, and never hands a claimed row over again: a sender
  that dies mid-message leaves its row to become ``uncertain`` when the lease ends (see ``store.py``).
  Several processes may run it at once; the claim decides who sends.
- Quiet hours, the gateway's backoff and every retry follow the injected clock.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Table

from config.settings import Settings
from tickets import phones
from tickets.sms import messages
from tickets.sms.gateway import Encoded, GatewayDown, GatewayRefused, LostInFlight, SmppGateway, encode
from tickets.sms.store import OUTBOX, Sent, SmsStore
from tickets.sms.timing import QuietHours, backoff_seconds
from tickets.workflow import HistoryEntry

log = logging.getLogger("hotline.sms")


def read_templates(path: Path) -> messages.Templates:
    """``config/sms.toml``; a mistake stops the server with the file and key."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ValueError(f"SMS templates not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    try:
        return messages.load_templates(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def link_base(settings: Settings) -> str:
    """Where the citizen's lookup page is reached from a phone: sms.link_base, else the first public origin."""
    s = settings.sms
    if s.link_base:
        return s.link_base
    if settings.server.allowed_origins:
        return settings.server.allowed_origins[0]
    return f"http://{settings.server.host}:{settings.server.port}"


@dataclass
class GatewayState:
    state: str = "not_connected"  # not_connected / up / down
    since: datetime | None = None
    last_error: str = ""
    failures: int = 0
    retry_at: datetime | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    quiet_until: datetime | None = None


class SmsService:
    def __init__(self, store: SmsStore, settings: Settings, clock: Callable[[], datetime],
                 templates: messages.Templates, *, gateway: SmppGateway | None = None, owner: str | None = None,
                 tick: float = 5.0) -> None:
        s = settings.sms
        self.store = store
        self.settings = settings
        self.clock = clock
        self.templates = templates
        self.link_base = link_base(settings)
        self.tz = ZoneInfo(settings.server.timezone)
        self.quiet = QuietHours.parse(s.quiet_hours)
        self.gateway = gateway or SmppGateway(s.host, s.port, s.system_id, s.password, system_type=s.system_type,
                                              source_addr=s.source_addr, timeout=s.timeout_seconds)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.tick = tick
        self.health_state = GatewayState()
        self.steps = 0  # sender passes done (tests wait on it instead of sleeping)
        self.stopping = False
        self._wake = asyncio.Event()

    # ------------------------------------------------------------ ticket changes
    def row_hook(self, ticket: Mapping[str, Any], entry: HistoryEntry) -> Iterable[tuple[Table, dict[str, Any]]]:
        """TicketStore row hook: the outbox row of a change, inserted in the change's transaction. Must not raise
        (a raising hook refuses the action): templates were checked at start-up."""
        kind = messages.kind_of(entry.action, entry.data)
        phone = messages.mobile_of(phones.normalize(str(ticket.get("caller_phone") or ""))) if kind else None
        if kind is None or phone is None:
            return []
        text = messages.compose(kind, ticket, self.templates, self.link_base)
        if text is None:
            return []
        return [(OUTBOX, {"ticket_number": ticket["number"], "kind": kind, "phone": phone, "text": text,
                          "created_at": entry.at, "not_before": entry.at, "state": "pending", "attempts": 0,
                          "claimed_by": "", "parts_sent": 0, "message_ids": [], "last_error": ""})]

    def listener(self, ticket: Mapping[str, Any], entry: HistoryEntry) -> None:
        """TicketStore listener (after the commit): a new message may be waiting, wake the sender."""
        if messages.kind_of(entry.action, entry.data):
            self.poke()

    def poke(self) -> None:
        self._wake.set()

    # ------------------------------------------------------------ opt-out
    async def opt_out(self, phone: str, source: str, note: str = "") -> bool:
        return await self.store.opt_out(phone, self.clock(), source, note)

    async def _take_replies(self) -> None:
        """回复TD退订: a citizen's unsubscribe reply puts the number on the opt-out list."""
        while self.gateway.received:
            source, text = self.gateway.received.pop(0)
            phone = phones.normalize(source)
            if messages.is_unsubscribe(text) and phone and \
                    await self.opt_out(phone, "reply", f"短信回复：{text.strip()[:20]}"):
                log.info("SMS opt-out by reply from %s", phones.mask(phone))

    # ------------------------------------------------------------ sender
    async def run(self) -> None:
        """The sender task: one pass, then wait for a wake-up or the tick; a failing pass is logged and retried."""
        while not self.stopping:
            self._wake.clear()  # before the pass: a commit during it wakes the next one at once
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("SMS sender pass failed")
            self.steps += 1
            try:
                await asyncio.wait_for(self._wake.wait(), self.tick)
            except TimeoutError:
                pass

    async def stop(self, task: asyncio.Task[Any], grace: float) -> None:
        """End the sender after the text in hand: cancelling in the middle of a submit would leave a text the
        gateway took recorded as ``uncertain``. Cancelled only if the pass outlasts ``grace`` seconds."""
        self.stopping = True
        self.poke()
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        except Exception:
            log.exception("SMS sender ended with an error")
        await self.close()

    async def close(self) -> None:
        """Unbind from the gateway (a sender driven by ``step()`` alone, or after ``stop``)."""
        await asyncio.to_thread(self.gateway.close)

    async def step(self) -> int:
        """Send what is due now. Returns how many messages were handed to the gateway."""
        now = self.clock()
        h = self.health_state
        await self.store.expire(now)
        try:
            h.quiet_until = self.quiet.ends_after(now, self.tz)
            if h.quiet_until is not None:
                return 0  # messages wait in the outbox; the pass after quiet hours end sends them
            if not await self.store.has_due(now):
                if self.gateway.connected:  # keep the bind alive and hear replies (TD) while idle
                    await self._check()
                return 0
            if h.retry_at is not None and now < h.retry_at:
                return 0
            handed = 0
            done: Sent | None = None  # the last text sent, recorded with the next claim (or below)
            try:
                while not self.stopping and await self._check():
                    row = await self.store.claim(self.clock(), self.owner,
                                                 self.clock() + timedelta(seconds=self.settings.sms.lease_seconds),
                                                 sent=done)
                    done = None
                    if row is None:
                        break
                    outcome, done = await self._send(row)
                    handed += outcome in ("sent", "down")
                    if outcome == "down" or self.quiet.contains(self.clock(), self.tz):
                        break
            finally:
                if done is not None:
                    await self.store.record_sent(done, self.owner)
            return handed
        finally:
            await self._take_replies()
            h.counts = await self.store.counts()

    async def _check(self) -> bool:
        h = self.health_state
        try:
            await asyncio.to_thread(self.gateway.check)
        except GatewayDown as exc:
            self._down(str(exc))
            return False
        if h.state != "up":
            log.info("SMS gateway up (%s:%s)", self.settings.sms.host, self.settings.sms.port)
            h.state, h.since, h.last_error = "up", self.clock(), ""
        h.failures, h.retry_at = 0, None
        return True

    def _down(self, error: str) -> None:
        h = self.health_state
        now = self.clock()
        if h.state != "down":
            log.warning("SMS gateway down: %s; messages wait in the outbox", error)
            h.state, h.since = "down", now
        h.failures += 1
        h.last_error = error
        s = self.settings.sms
        h.retry_at = now + timedelta(seconds=backoff_seconds(h.failures, s.retry_min_seconds, s.retry_max_seconds))

    async def _send(self, row: Any) -> tuple[str, Sent | None]:
        """Hand a claimed text to the gateway part by part. Every outcome but "sent" is recorded here; a sent
        text's record is returned, for the next claim's transaction."""
        s = self.settings.sms
        if await self.store.is_opted_out(row.phone):
            await self.store.finish(row.id, self.owner, "opted_out", "号码已退订短信")
            return "skipped", None
        encoded: Encoded = encode(row.text, row.id)
        ids = [str(i) for i in row.message_ids or []]
        for index in range(row.parts_sent, len(encoded.parts)):
            try:
                ids.append(await asyncio.to_thread(self.gateway.submit, row.phone, encoded, index))
            except GatewayRefused as exc:
                now = self.clock()
                if not exc.temporary or row.attempts >= s.max_attempts:
                    await self.store.finish(row.id, self.owner, "failed", str(exc), ids)
                    log.warning("SMS %s to %s failed: %s", row.id, phones.mask(row.phone), exc)
                else:
                    wait = backoff_seconds(row.attempts, s.retry_min_seconds, s.retry_max_seconds)
                    await self.store.release(row.id, self.owner, now + timedelta(seconds=wait), str(exc), index, ids)
                return "refused", None
            except (LostInFlight, GatewayDown) as exc:
                # The part may be at the gateway: the row is never handed over again.
                await self.store.finish(row.id, self.owner, "uncertain",
                                        f"连接在等待网关应答时中断，无法确认是否已送达，未重发：{exc}", ids)
                self._down(str(exc))
                return "down", None
        return "sent", Sent(row.id, self.clock(), tuple(ids))

    # ------------------------------------------------------------ health
    def health(self) -> dict[str, Any]:
        h = self.health_state
        counts = h.counts
        backlog = int(counts.get("pending", 0)) + int(counts.get("sending", 0))
        return {"ok": True, "enabled": True, "gateway": h.state, "since": h.since, "last_error": h.last_error,
                "retry_at": h.retry_at, "quiet_until": h.quiet_until, "backlog": backlog,
                "oldest_pending_at": counts.get("oldest_pending_at"), "uncertain": int(counts.get("uncertain", 0)),
                "failed": int(counts.get("failed", 0)),
                # a person should look: texts pile up behind a dead gateway
                "degraded": h.state == "down" and backlog > 0}
