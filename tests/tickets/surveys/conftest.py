"""A survey world: a real migrated database, a real Redis, the ticket store and the survey service, a clock
the test moves, users who can take tickets to "replied", and a recording originate."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pytest
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import async_sessionmaker

import server
from tests.tickets.conftest import TZ, Clock  # noqa: F401  (shared by the survey tests)
from tickets.accounts.service import Principal, UserStore
from tickets.service import TicketStore
from tickets.surveys.service import SurveyService
from tickets.surveys.store import SurveyStore


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=TZ).astimezone(timezone.utc)


class Phone:
    """Stands in for the AMI dialer: records each originate; the test reports each call's end."""

    def __init__(self) -> None:
        self.placed: list[dict[str, Any]] = []
        self.open: dict[tuple[int, int], dict[str, Any]] = {}
        self.max_open = 0
        self.down = False

    async def originate(self, request: dict[str, Any]) -> str:
        if self.down:
            raise ConnectionError("AMI not connected")
        key = (request["survey_id"], request["attempt"])
        assert key not in self.open, f"survey {key} dialed twice"
        self.placed.append(request)
        self.open[key] = request
        self.max_open = max(self.max_open, len(self.open))
        return f"survey-test-{key[0]}-{key[1]}"

    def end(self, key: tuple[int, int]) -> dict[str, Any]:
        return self.open.pop(key)


@dataclass
class World:
    settings: Any
    clock: Clock
    store: TicketStore
    users: UserStore
    surveys: SurveyStore
    service: SurveyService
    phone: Phone
    redis: ArqRedis
    agent: Principal
    dept: Principal
    supervisor: Principal
    engines: list[Any] = field(default_factory=list)

    async def signed(self, **fields: Any) -> dict[str, Any]:
        """A ticket taken through accept, dispatch and sign: the department may reply."""
        body = {"caller_name": "李四", "caller_phone": "13800138000", "request_type": "complaint",
                "title": "小区路灯不亮", "content": "幸福小区门口路灯坏了一个月。", **fields}
        t = await self.store.create(body, self.agent, accept=True)
        await self.store.act(t["number"], "dispatch", {"lead_department_id": self.dept.department_id}, self.agent)
        return await self.store.act(t["number"], "sign", {}, self.dept)

    async def replied(self, **fields: Any) -> dict[str, Any]:
        """A ticket taken through accept, dispatch, sign and reply (the reply schedules its survey)."""
        t = await self.signed(**fields)
        view = await self.store.act(t["number"], "reply", {"answer": "已更换路灯。"}, self.dept)
        await self.service.drain()
        return view

    async def survey_of(self, number: str) -> Any:
        rows = await self.surveys.for_ticket(number)
        return rows[-1][0]

    async def result(self, key: tuple[int, int], outcome: str, answers: dict[str, str] | None = None,
                     reason: str | None = None) -> str:
        self.phone.end(key)
        return await self.service.on_call_result({"survey_id": key[0], "attempt": key[1], "outcome": outcome,
                                                  "answers": answers or {}, "reason": reason})


async def build_world(database_url: str, redis_url: str, settings_factory: Any, clock: Clock,
                      **survey: Any) -> World:
    settings = settings_factory(database_url=database_url, redis_url=redis_url, survey=survey)
    engine = server.make_engine(settings)
    read_engine = server.make_engine(settings, for_reads=True) if database_url.startswith("sqlite") else engine
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    read_sessions = async_sessionmaker(read_engine, expire_on_commit=False)
    users = UserStore(sessions, clock, settings, read_sessions)
    await users.sync_departments(settings.config_file(settings.tickets.departments_file))
    agent = await users.create_user("agent1", "password-123", "agent", display_name="王话务")
    dept = await users.create_user("water1", "password-123", "department", display_name="水务局",
                                   department_code="swuj")
    supervisor = await users.create_user("super1", "password-123", "supervisor", display_name="赵班长")
    store = TicketStore(sessions, settings, clock, read_sessions)
    redis = ArqRedis.from_url(redis_url)
    phone = Phone()
    surveys = SurveyStore(sessions, read_sessions)
    service = SurveyService(store, surveys, redis, settings, clock, originate=phone.originate, jobs=redis)
    store.write_hooks.append(service.write_hook)
    store.listeners.append(service.listener)
    return World(settings, clock, store, users, surveys, service, phone, redis, agent, dept, supervisor,
                 [engine, read_engine])


@pytest.fixture
async def world(database_url: str, redis_url: str, settings_factory: Any) -> Any:
    clock = Clock(local(2026, 11, 23, 9, 0))  # a Monday
    w = await build_world(database_url, redis_url, settings_factory, clock)
    yield w
    await w.service.drain()
    await w.redis.aclose()
    for e in set(w.engines):
        await e.dispose()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)
