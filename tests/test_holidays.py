"""The holiday file end to end: deadlines over the API, /health, the start-up log, the supervisor page, and
deadlines as the pages show them. Every clock is injected, and the year the installed chinesecalendar does
not know (2027 with 1.11) is read from the library, so these tests mean the same on any date and version."""
from __future__ import annotations

import logging
import shutil
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

import pytest

import server
from tests.tickets.conftest import TZ, Center, Clock, staff
from tickets import deadlines as dl

# The first year the installed chinesecalendar does not know.
UNKNOWN = dl.LIBRARY_YEARS[1] + 1


def fictional(year: int) -> dict[int, Any]:
    """FICTIONAL holiday-file data for tests, NOT a State Council notice: New Year 1-4 January off."""
    return {year: {"holidays": [f"{year}-01-01..{year}-01-04"], "notice": "fictional, for tests only"}}


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=TZ)


Start = Callable[..., Awaitable[Center]]


@pytest.fixture
def start(aiohttp_client, settings_factory, redis_url, sqlite_url, sqlite_template) -> Start:
    """A running server whose clock starts at ``now`` and whose holiday file holds ``years``."""

    async def make(now: datetime, years: dict[int, Any] | None = None) -> Center:
        shutil.copyfile(sqlite_template, sqlite_url.split("///", 1)[1])
        clock = Clock(now.astimezone(timezone.utc))
        settings = settings_factory(database_url=sqlite_url, redis_url=redis_url,
                                    holidays={"years": years or {}})
        client = await aiohttp_client(server.create_app(settings, clock, migrate_db=False))
        return await staff(Center(client, clock, {}), settings.server.admin_password, [
            ("agent", "agent", None), ("super", "supervisor", None), ("water", "department", "swuj")])

    return make


async def dispatched(c: Center, **fields: Any) -> dict[str, Any]:
    t = await c.new_ticket(accept=True, **fields)
    return await c.agent.act(t["number"], "dispatch", lead_department_id=c.departments["swuj"])


def section(page: str, element_id: str) -> str:
    return page[page.index(f'id="{element_id}"'):].split("</section>", 1)[0]


async def test_a_deadline_across_new_year_2027_follows_the_holiday_file(start: Start) -> None:
    c = await start(at(2026, 12, 11, 10, 0), fictional(2027))
    t = await dispatched(c)  # 投诉, 15 working days; 1-4 Jan 2027 off (fictional file): end of 5 January
    assert datetime.fromisoformat(t["reply_due"]) == at(2027, 1, 6, 0, 0)  # the API keeps the ISO instant
    history = await c.super.get(f"/api/v1/tickets/{t['number']}/history")
    assert "holidays_unknown_years" not in history[-1]["data"]
    page = await c.super.get(f"/tickets/{t['number']}")
    assert "2027年1月5日 24:00" in page and "2026年12月14日 24:00" in page  # reply and sign, as last days
    assert "节假日安排当时未录入" not in page
    # The file covers the next 60 days (and chinesecalendar the rest of 2026): healthy, no banner.
    health = await (await c.client.get("/health")).json()
    assert health["status"] == "ok" and health["degraded"] == []
    assert health["checks"]["holidays"]["missing_years"] == []
    assert health["checks"]["holidays"]["file_years"] == [2027]
    assert 'id="holiday-banner"' not in await c.super.get("/supervisor")


async def test_a_year_nobody_entered_is_flagged_everywhere(start: Start, caplog: pytest.LogCaptureFixture
                                                            ) -> None:
    with caplog.at_level(logging.INFO, logger="hotline"):
        c = await start(at(UNKNOWN - 1, 12, 11, 10, 0))
    warnings = [r.getMessage() for r in caplog.records if r.name == "hotline" and r.levelno >= logging.WARN]
    assert any(f"holidays of {UNKNOWN} are not known" in w and "holidays.toml" in w
               for w in warnings), warnings
    # The dispatch works and gets deadlines, counted Monday-Friday into the unknown year, and says so.
    t = await dispatched(c)
    assert datetime.fromisoformat(t["reply_due"]).astimezone(TZ).year == UNKNOWN
    history = await c.super.get(f"/api/v1/tickets/{t['number']}/history")
    assert history[-1]["action"] == "dispatch" and history[-1]["data"]["holidays_unknown_years"] == [UNKNOWN]
    assert f"{UNKNOWN}年节假日安排当时未录入" in await c.super.get(f"/tickets/{t['number']}")
    # /health: degraded, naming the year, still serving (200, ok) so a load balancer keeps the process.
    resp = await c.client.get("/health")
    health = await resp.json()
    assert resp.status == 200 and health["ok"] is True
    assert health["status"] == "degraded" and health["degraded"] == ["holidays"]
    assert health["checks"]["holidays"]["missing_years"] == [UNKNOWN]
    assert "国务院办公厅关于部分节假日安排的通知" in health["checks"]["holidays"]["message"]
    banner = section(await c.super.get("/supervisor"), "holiday-banner").split("</div>", 1)[0]
    assert f"节假日安排未录入：{UNKNOWN}年" in banner and "holidays.toml" in banner


async def test_health_is_ok_while_the_next_60_days_are_known(start: Start) -> None:
    # 1 November of the library's last year: 60 days later is still 31 December.
    c = await start(at(UNKNOWN - 1, 11, 1, 9, 0))
    assert (await (await c.client.get("/health")).json())["status"] == "ok"
    c.clock.set_local(UNKNOWN - 1, 11, 2, 9, 0)  # 1 January is now 60 days away: from this moment on
    health = await (await c.client.get("/health")).json()
    assert health["status"] == "degraded" and health["checks"]["holidays"]["missing_years"] == [UNKNOWN]


async def test_the_overdue_list_shows_the_missed_sign_deadline(start: Start) -> None:
    c = await start(at(2026, 11, 23, 9, 0))  # Monday
    t = await dispatched(c)  # sign by the end of Tue 24 Nov; reply by the end of Mon 14 Dec
    c.clock.set_local(2026, 11, 25, 10, 0)  # not signed: the sign deadline was missed, the reply one is ahead
    [item] = await c.super.get("/api/v1/tickets/due?kind=overdue")
    assert item["number"] == t["number"]
    assert item["missed"] == [{"deadline": "sign", "label": "签收", "due": "2026-11-24T16:00:00+00:00"}]
    overdue = section(await c.super.get("/supervisor"), "overdue")
    assert t["number"] in overdue and "签收超期" in overdue and "11月24日 24:00" in overdue
    assert "12月14日" not in overdue and "11月25日 00:00" not in overdue  # not the future reply deadline
    dept = await c.water.get("/dept")
    assert "签收 11月24日 24:00" in dept
    # Signed late, the ticket is no longer overdue on signing; the reply deadline is still ahead.
    await c.water.act(t["number"], "sign")
    assert await c.super.get("/api/v1/tickets/due?kind=overdue") == []
