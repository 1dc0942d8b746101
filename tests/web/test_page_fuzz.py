"""Every page route (from the app's router) with hostile path and query values, as a supervisor: no 5xx. The
pages are not in the OpenAPI document, so schemathesis does not reach them; this hand-written pass does."""
from __future__ import annotations

import re
from urllib.parse import quote

import aiohttp

from .conftest import PASSWORD, Console

HOSTILE = ["99999999999999999999", "-1", "9999-12-31", "0001-01-01", "\x00", "{}", "../../etc/passwd", "a" * 2000]
QUERY_NAMES = ["department_id", "page", "from", "to", "date", "edit", "ticket", "q", "kind", "tab", "section",
               "status", "overdue", "request_type", "district", "next"]


async def test_no_page_answers_5xx_to_hostile_values(console: Console) -> None:
    pages = sorted({info.get("path") or info.get("formatter") or ""
                    for route in console.app.router.routes() if route.method == "GET"
                    for info in [route.resource.get_info() if route.resource else {}]})
    pages = [p for p in pages if p and not p.startswith(("/api/", "/ws/", "/static/", "/telephony/static/"))]
    assert "/supervisor" in pages and "/tickets/{number}" in pages
    failures: list[str] = []
    async with aiohttp.ClientSession(console.base, cookie_jar=aiohttp.CookieJar(unsafe=True),
                                     headers={"Origin": console.base}) as s:
        assert (await s.post("/api/v1/auth/login", json={"username": "super1", "password": PASSWORD})).status == 200
        for template in pages:
            for value in HOSTILE:
                path = re.sub(r"\{(\w+)(:[^}]*)?\}", lambda m: "xlsx" if m.group(1) == "fmt" else quote(value, safe=""),
                              template)
                # one hostile parameter at a time, so the first 400 does not hide the next parameter's 500
                for name in ("", *QUERY_NAMES) if "{" not in template else ("",):
                    url = f"{path}?{name}={quote(value, safe='')}" if name else path
                    resp = await s.get(url, allow_redirects=False)
                    if resp.status >= 500:
                        failures.append(f"{template} {name or 'path'}={value[:20]!r}: {resp.status}")
    assert failures == [], "\n".join(failures)
