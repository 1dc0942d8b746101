"""The accounts the HTTP benchmarks work with, created through the API of a freshly started server."""
from __future__ import annotations

import aiohttp

PASSWORD = "bench-password"


async def api_login(http: aiohttp.ClientSession, user: str, password: str) -> dict[str, str]:
    """Bearer headers for ``user`` (an API token, as an integration logs in)."""
    async with http.post("/api/v1/auth/login", json={"username": user, "password": password, "kind": "api"}) as r:
        body = await r.json()
        assert r.status == 200, body
        return {"Authorization": f"Bearer {body['token']}"}


async def agent_and_handler(http: aiohttp.ClientSession, admin_password: str
                            ) -> tuple[int, dict[str, str], dict[str, str]]:
    """(id of department cgj, agent headers, cgj handler headers): accounts bench-agent and bench-dept."""
    admin = await api_login(http, "admin", admin_password)
    async with http.get("/api/v1/departments", headers=admin) as r:
        dept = next(d for d in await r.json() if d["code"] == "cgj")["id"]
    for user, role, code in (("bench-agent", "agent", None), ("bench-dept", "department", "cgj")):
        body = {"username": user, "password": PASSWORD, "role": role}
        if code:
            body["department"] = code
        async with http.post("/api/v1/users", json=body, headers=admin) as r:
            assert r.status == 201, await r.text()
    return dept, await api_login(http, "bench-agent", PASSWORD), await api_login(http, "bench-dept", PASSWORD)
