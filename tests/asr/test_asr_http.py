"""The recognition API inside the real server app (server.create_app + asr.service.setup + asr.http routes,
wired the way INTEGRATION-asr.md tells server.py to): job list for supervisors, a call's transcript and draft,
search by words, retries, who may read transcripts; and a finished transcript becoming a draft ticket."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import server
from asr import jobs
from asr import service as asr_service
from tickets.accounts import http as accounts_http

pytestmark = [pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")]


def make_app(settings: Any, visibility: Any = None) -> Any:
    return server.create_app(settings, asr_visibility=visibility, background_interval=0.1)


async def login(client: Any, app: Any, username: str, role: str, department: str | None = None) -> dict[str, str]:
    await app[accounts_http.USERS].create_user(username, "secret-密码-123", role, department_code=department)
    resp = await client.post("/api/v1/auth/login", json={"username": username, "password": "secret-密码-123",
                                                          "kind": "api"})
    assert resp.status == 200, await resp.text()
    return {"Authorization": f"Bearer {(await resp.json())['token']}"}


async def test_a_call_becomes_a_searchable_transcript_and_a_draft_ticket(
        aiohttp_client: Any, settings_factory: Any, redis_url: str, backend: Any, asterisk_recording: Path) -> None:
    settings = settings_factory(redis_url=redis_url)
    app = make_app(settings)
    client = await aiohttp_client(app)
    service = app[asr_service.SERVICE]
    supervisor = await login(client, app, "banzhang", "supervisor")
    agent = await login(client, app, "zuoxi", "agent")
    department = await login(client, app, "zhujian", "department", "zjj")

    await service.enqueue_transcription("1795383048.0", str(asterisk_recording))
    resp = await client.get("/api/v1/asr/calls/1795383048.0", headers=agent)
    assert resp.status == 200 and (await resp.json())["job"]["state"] == "queued"

    cfg = jobs.config_from_settings(settings, redis_url=redis_url, model_path="")
    worker = jobs.build_worker(cfg, backend=backend, burst=True, poll_delay=0.05)
    await worker.async_run()
    await worker.close()
    # the app's own background loop hands the draft over (claims keep it to once even if we help)
    deadline = asyncio.get_running_loop().time() + 60
    while not (await service.store.job("1795383048.0"))["draft_delivered_at"]:
        assert asyncio.get_running_loop().time() < deadline, "the background loop never delivered the draft"
        await asyncio.sleep(0.1)
    assert await service.deliver_drafts() == 0

    body = await (await client.get("/api/v1/asr/calls/1795383048.0", headers=agent)).json()
    assert body["job"]["state"] == "done" and body["job"]["draft_delivered_at"]
    transcript = body["transcript"]
    assert transcript["words"] and transcript["draft"]["needs_confirmation"] is True
    tickets = await (await client.get("/api/v1/tickets?status=draft", headers=supervisor)).json()
    assert [t["call_id"] for t in tickets["items"]] == ["1795383048.0"]

    word = transcript["words"][len(transcript["words"]) // 2]
    found = await (await client.get("/api/v1/asr/transcripts", params={"q": word["word"]}, headers=supervisor)).json()
    assert [i["call_id"] for i in found["items"]] == ["1795383048.0"]
    assert found["items"][0]["match"]["start_s"] <= word["start"]
    nothing = await (await client.get("/api/v1/asr/transcripts", params={"q": "没有这个词"}, headers=agent)).json()
    assert nothing["items"] == []

    jobs_list = await client.get("/api/v1/asr/jobs", headers=supervisor)
    assert (await jobs_list.json())["by_state"] == {"done": 1}
    assert (await client.get("/api/v1/asr/jobs", headers=agent)).status == 403
    denied = await client.get("/api/v1/asr/transcripts", params={"q": "路灯"}, headers=department)
    assert denied.status == 403 and (await denied.json())["error"] == "forbidden"
    assert (await client.get("/api/v1/asr/calls/1795383048.0", headers=department)).status == 403
    assert (await client.get("/api/v1/asr/transcripts", params={"q": " "}, headers=agent)).status == 400
    assert (await client.get("/api/v1/asr/jobs", params={"state": "bogus"}, headers=supervisor)).status == 400
    assert (await client.get("/api/v1/asr/calls/nope", headers=agent)).status == 404
    assert (await client.get("/api/v1/asr/jobs")).status == 401

    retry = await client.post("/api/v1/asr/calls/1795383048.0/retry", headers=supervisor)
    assert retry.status == 202 and (await retry.json())["job"]["state"] == "queued"
    again = await client.post("/api/v1/asr/calls/1795383048.0/retry", headers=supervisor)
    assert again.status == 409  # already queued


async def test_an_injected_visibility_rule_limits_what_each_user_reads(
        aiohttp_client: Any, settings_factory: Any, redis_url: str) -> None:
    async def visibility(user: dict, call_ids: list[str]) -> set[str]:
        # e.g. calls whose tickets went to the user's department; here: calls named after it
        if user["role"] in ("supervisor", "admin"):
            return set(call_ids)
        return {c for c in call_ids if c.startswith(str(user.get("department_code")))}

    app = make_app(settings_factory(redis_url=redis_url), visibility)
    client = await aiohttp_client(app)
    store = app[asr_service.SERVICE].store
    for call_id in ("zjj-1", "rsj-1"):
        await store.queue(call_id, f"/r/{call_id}.wav", None, jobs.job_id_for(call_id))
        await store.finish(call_id, f"/r/{call_id}.wav", {"text": "小区路灯坏了", "segments": [], "words": [],
                                                          "duration": 5.0, "engine": "test"})
    department = await login(client, app, "zhujian", "department", "zjj")
    supervisor = await login(client, app, "banzhang", "supervisor")
    mine = await (await client.get("/api/v1/asr/transcripts", params={"q": "路灯"}, headers=department)).json()
    assert [i["call_id"] for i in mine["items"]] == ["zjj-1"]
    assert (await client.get("/api/v1/asr/calls/rsj-1", headers=department)).status == 404
    assert (await client.get("/api/v1/asr/calls/zjj-1", headers=department)).status == 200
    every = await (await client.get("/api/v1/asr/transcripts", params={"q": "路灯"}, headers=supervisor)).json()
    assert sorted(i["call_id"] for i in every["items"]) == ["rsj-1", "zjj-1"]


async def test_a_two_sided_call_drafts_the_callers_words_and_a_department_from_the_routing_rules(
        aiohttp_client: Any, settings_factory: Any, redis_url: str) -> None:
    """A stereo recording keeps caller and agent apart: the draft's 诉求内容 is what the caller (市民) said,
    the agent's lines stay in the transcript, and the department comes from tickets.routing's rules
    (config/routing.toml: 停水 -> the water authority), wired by server.py."""
    from asr import engine

    app = make_app(settings_factory(redis_url=redis_url))
    client = await aiohttp_client(app)
    service = app[asr_service.SERVICE]
    supervisor = await login(client, app, "banzhang", "supervisor")
    w = engine.Word
    transcript = engine.build_transcript([
        ("agent", [[w("您好", 0.2, 0.5), w("这里是热线", 0.5, 1.4), w("请讲", 1.4, 1.8)], [w("请问您的地址", 6.0, 7.0)]]),
        ("caller", [[w("我们小区停水两天了", 2.2, 4.0), w("一直没人管", 4.1, 5.2)], [w("在朝阳区幸福小区三号楼", 8.0, 9.5)]]),
    ], 10.0, "test")
    await service.store.queue("stereo-1", "/r/stereo-1.wav", None, jobs.job_id_for("stereo-1"))
    await service.store.finish("stereo-1", "/r/stereo-1.wav", transcript.as_dict())
    deadline = asyncio.get_running_loop().time() + 60
    while not (await service.store.job("stereo-1"))["draft_delivered_at"]:
        assert asyncio.get_running_loop().time() < deadline, "the background loop never delivered the draft"
        await asyncio.sleep(0.1)

    listed = await (await client.get("/api/v1/tickets?status=draft", headers=supervisor)).json()
    [number] = [t["number"] for t in listed["items"] if t["call_id"] == "stereo-1"]
    ticket = await (await client.get(f"/api/v1/tickets/{number}", headers=supervisor)).json()
    assert ticket["content"] == "我们小区停水两天了一直没人管\n在朝阳区幸福小区三号楼"
    assert "您好" in transcript.text and "您好" not in ticket["content"]
    draft = ticket["draft_fields"]
    assert draft["department"]["value"]["name"] and draft["department"]["value"]["source"] == "rule"
    assert "停水" in " ".join(draft["department"]["value"]["reasons"]), draft["department"]
    body = await (await client.get("/api/v1/asr/calls/stereo-1", headers=supervisor)).json()
    assert "请问您的地址" in body["transcript"]["text"]
    from web.pages import provenance  # what the ticket page lists under 自动识别字段

    [shown] = [f for f in provenance(draft, body["transcript"]["text"])["fields"] if f["name"] == "department"]
    assert shown["label"] == "建议承办单位" and shown["display"] == draft["department"]["value"]["name"]
