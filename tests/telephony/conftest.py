from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from fake_ami import Capture, FakeAmi


class Bridge:
    """A TelephonyService connected over TCP to a FakeAmi, with every effect recorded.

    The service's clock is the fake's PBX time, never the day the test runs.
    """

    def __init__(self, fake: FakeAmi, service: Any, effects: list[Any]) -> None:
        self.fake = fake
        self.svc = service
        self.effects = effects

    async def sync(self, timeout: float = 60.0) -> None:
        """Everything the server wrote so far is read and folded: a Ping's answer comes after it.

        The timeouts here only bound a failure: a loaded machine may take seconds to fold a capture."""
        await self.ready(timeout)
        await self.svc.connection.send({"Action": "Ping"}, timeout=timeout)
        await self.svc.drain()

    async def ready(self, timeout: float = 60.0) -> None:
        """Connected and resynchronised (the fake's canned lists are then behind us)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.svc.connection is None:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("bridge not started")
            await asyncio.sleep(0.01)
        await self.svc.connection.wait_connected(timeout)

    async def at(self, index: int, timeout: float = 60.0) -> None:
        """Let the fake stream up to message ``index`` (inclusive), then fold everything received."""
        await self.ready()
        self.fake.hold_at(index)
        self.fake.go()
        await asyncio.wait_for(self.fake.paused.wait(), timeout)
        await self.sync()

    def of(self, kind: str) -> list[Any]:
        return [e for e in self.effects if type(e).__name__ == kind]

    def agent(self, name: str) -> Any:
        return next(a for a in self.svc.state.agents.values() if a.name == name)


@pytest.fixture
async def bridge_factory(settings_factory: Callable[..., Any]) -> AsyncIterator[Callable[..., Any]]:
    from telephony.service import TelephonyService

    made: list[Bridge] = []

    async def make(capture: str, *, start_paused: bool = True, ami: dict[str, Any] | None = None,
                   redis: Any = None, sessions: Any = None, **fake_kw: Any) -> Bridge:
        cap = Capture.load(capture)
        fake = FakeAmi(cap, **fake_kw)
        port = await fake.start()
        if start_paused:
            fake.hold_start()  # stream nothing until the test says how far
        settings = settings_factory(ami={"enabled": True, "host": "127.0.0.1", "port": port, "secret": "s",
                                         "ping_interval": 30, "ping_timeout": 5, "action_timeout": 30,
                                         "reconnect_min": 0.05, "reconnect_max": 0.4, **(ami or {})})
        effects: list[Any] = []

        async def on_effect(e: Any) -> None:
            effects.append(e)

        svc = TelephonyService(settings, fake.clock, redis=redis, sessions=sessions, on_effect=on_effect)
        await svc.start()
        b = Bridge(fake, svc, effects)
        made.append(b)
        return b

    yield make
    for b in made:
        await b.svc.stop()
        await b.fake.close()


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Any]:
    """A migrated database (SQLite or PostgreSQL, as ``database_url`` is parametrised) for the call store."""
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    import migrations

    await asyncio.get_running_loop().run_in_executor(None, migrations.upgrade, database_url)
    engine = create_async_engine(database_url)
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()
