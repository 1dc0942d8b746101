"""Fixtures for SMS to the citizen: a real SMPP server on loopback and a running app that texts through it."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

import server
from tests.tickets.conftest import TZ, Center, Clock, staff
from tests.tickets.sms.smsc import TestSmsc
from tickets.sms import http as sms_http

LINK_BASE = "https://12345.example.gov.cn"


async def until(condition: Callable[[], Awaitable[bool] | bool], timeout: float = 60, what: str = "") -> None:
    """Wait for a condition (a failure guard, not a speed bound)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = condition()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await asyncio.sleep(0.05)


@dataclass
class SmsWorld:
    center: Center
    smsc: TestSmsc
    app: Any

    @property
    def service(self) -> Any:
        return self.app[sms_http.SMS]

    async def passes(self, n: int = 2) -> None:
        """Let the sender make ``n`` more full passes (after a commit, the second one has surely seen it)."""
        start = self.service.steps
        self.service.poke()
        await until(lambda: self.service.steps >= start + n, what="sender passes")

    async def outbox(self, number: str) -> list[dict[str, Any]]:
        return await self.center.agent.get(f"/api/v1/sms?ticket={number}")


@pytest.fixture
async def smsc():
    s = TestSmsc()
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
def sms_world(aiohttp_client, database_url, redis_url, settings_factory, smsc):
    """Build the world: ``await sms_world(**sms_settings)``; the clock starts on a Monday at 09:00 local."""

    async def make(**sms: Any) -> SmsWorld:
        clock = Clock(datetime(2026, 11, 23, 9, 0, tzinfo=TZ).astimezone(UTC))
        settings = settings_factory(database_url=database_url, redis_url=redis_url, sms={
            "host": "127.0.0.1", "port": smsc.port, "system_id": "hotline", "tick_seconds": 0.5,
            "link_base": LINK_BASE, **sms})
        app = server.create_app(settings, clock)
        client = await aiohttp_client(app)
        center = await staff(Center(client, clock, {}), settings.server.admin_password, [
            ("agent", "agent", None), ("super", "supervisor", None), ("env", "department", "sthj")])
        return SmsWorld(center, smsc, app)

    return make
