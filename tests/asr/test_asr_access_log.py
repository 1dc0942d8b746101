"""Every transcript read through the recognition API is in the tickets' access log (server.py wires asr to
it with a plain callable; asr never imports tickets): who, when, which call."""
from __future__ import annotations

from typing import Any

import server
from asr import service as asr_service
from tickets.accounts import http as accounts_http

PASSWORD = "secret-密码-123"


async def bearer(client: Any, app: Any, username: str, role: str) -> dict[str, str]:
    await app[accounts_http.USERS].create_user(username, PASSWORD, role)
    resp = await client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD, "kind": "api"})
    assert resp.status == 200, await resp.text()
    return {"Authorization": f"Bearer {(await resp.json())['token']}"}


async def test_transcript_reads_and_searches_are_logged(aiohttp_client: Any, settings_factory: Any,
                                                        redis_url: str) -> None:
    app = server.create_app(settings_factory(redis_url=redis_url), background_interval=60)
    client = await aiohttp_client(app)
    agent = await bearer(client, app, "zuoxi", "agent")
    admin = await bearer(client, app, "guanli", "admin")
    store = app[asr_service.SERVICE].store
    await store.queue("1795383048.0", "/rec/1795383048.0.wav", None, "job-1")
    await store.finish("1795383048.0", "/rec/1795383048.0.wav", {
        "text": "幸福路十八号的路灯坏了", "segments": [], "words": [], "duration": 3.0, "engine": "test"})

    assert (await client.get("/api/v1/asr/calls/1795383048.0", headers=agent)).status == 200
    found = await (await client.get("/api/v1/asr/transcripts", params={"q": "路灯"}, headers=agent)).json()
    assert [i["call_id"] for i in found["items"]] == ["1795383048.0"]
    await client.get("/api/v1/asr/transcripts", params={"q": "没有这个词"}, headers=agent)  # nothing shown

    log = await (await client.get("/api/v1/audit", params={"category": "access"}, headers=admin)).json()
    assert [(e["action"], e["actor_username"], e["subject"]) for e in log["items"]] == [
        ("search_transcripts", "zuoxi", "transcripts"), ("read_transcript", "zuoxi", "call:1795383048.0")]
    assert log["items"][0]["detail"] == {"q": "路灯", "calls": ["1795383048.0"]}
