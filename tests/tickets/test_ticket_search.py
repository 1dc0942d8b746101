"""GET /api/v1/tickets finds a case the way callers describe it: the ticket number (whole or part), the
caller's number (any spelling, or only its last 4 digits), words and a date range."""
from __future__ import annotations

from datetime import datetime, timedelta

from .conftest import Center


async def test_search_by_number_phone_tail_words_and_dates(center: Center) -> None:
    mine = await center.new_ticket(caller_phone="139-1234-5678", title="路灯不亮", content="幸福路路灯坏了三天")
    other = await center.new_ticket(caller_phone="13800005679", title="噪音", content="工地夜间施工")
    number = mine["number"]

    def numbers(page: dict) -> list[str]:
        return [t["number"] for t in page["items"]]

    assert numbers(await center.agent.get(f"/api/v1/tickets?q={number}")) == [number]
    assert numbers(await center.agent.get(f"/api/v1/tickets?q={number[-6:]}")) == [number]  # part of a number
    assert numbers(await center.agent.get("/api/v1/tickets?phone=5678")) == [number]  # last 4 digits
    assert numbers(await center.agent.get("/api/v1/tickets?phone=13912345678")) == [number]
    assert numbers(await center.agent.get("/api/v1/tickets?phone=%2B86%20139%201234%205678")) == [number]
    assert numbers(await center.agent.get("/api/v1/tickets?phone=5670")) == []
    assert numbers(await center.agent.get("/api/v1/tickets?phone=678")) == []  # 3 digits: no tail search
    assert numbers(await center.agent.get("/api/v1/tickets?q=路灯")) == [number]
    created = datetime.fromisoformat(mine["created_at"]).date()  # the local day is this one or next to it
    span = f"from={created - timedelta(days=1)}&to={created + timedelta(days=1)}"
    assert set(numbers(await center.agent.get(f"/api/v1/tickets?{span}"))) >= {number, other["number"]}
    assert numbers(await center.agent.get(f"/api/v1/tickets?phone=5678&{span}")) == [number]
    assert numbers(await center.agent.get("/api/v1/tickets?phone=5678&to=2001-01-01")) == []
    spec = await center.agent.get("/api/v1/openapi.json")
    params = {p["name"]: p for p in spec["paths"]["/api/v1/tickets"]["get"]["parameters"]}
    assert "后四位" in params["phone"]["description"]
