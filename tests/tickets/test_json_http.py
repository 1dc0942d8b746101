"""JSON responses as a client reads them: Chinese as UTF-8 text, times as ISO 8601 with their offsets, the same
values the standard library's encoder gave, and values the fast encoder refuses still answered."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from typing import Any

from aiohttp import web

from tickets.json_http import dumps, ok

SHANGHAI = timezone(timedelta(hours=8))


def _app(payload: Any) -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        return ok(payload, status=201)

    app = web.Application()
    app.router.add_get("/x", handler)
    return app


async def test_a_view_reads_as_the_standard_encoder_wrote_it_with_chinese_unescaped(aiohttp_client) -> None:
    view = {"number": "20261204-000001", "title": "小区路灯不亮", "caller_name": "*女士",
            "created_at": datetime(2026, 12, 4, 9, 30, 5, 120, tzinfo=timezone.utc),
            "sign_due": datetime(2026, 12, 7, 17, 0, tzinfo=SHANGHAI), "day": date(2026, 12, 4),
            "naive": datetime(2026, 12, 4, 9, 30), "missed": [{"deadline": "sign", "due": None}],
            "by_department": {7: 3}, "ratio": 0.25, "open": True}
    client = await aiohttp_client(_app(view))
    r = await client.get("/x")
    assert r.status == 201
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    raw = await r.read()
    assert "小区路灯不亮".encode() in raw and b"\\u" not in raw  # no \uXXXX escapes: a log or a grep reads it
    assert json.loads(raw) == json.loads(dumps(view))
    body = json.loads(raw)
    assert body["created_at"] == "2026-12-04T09:30:05.000120+00:00"
    assert body["sign_due"] == "2026-12-07T17:00:00+08:00"
    assert body["by_department"] == {"7": 3}


async def test_a_value_beyond_the_fast_encoder_is_still_answered(aiohttp_client) -> None:
    client = await aiohttp_client(_app({"total": 2**70, "title": "超大数"}))
    r = await client.get("/x")
    assert r.status == 201
    assert json.loads(await r.read()) == {"total": 2**70, "title": "超大数"}
