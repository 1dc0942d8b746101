"""Who may hear a call's recording, and what a listener is told when the file cannot be played.

The server as it runs (server.create_app wires asr's recording routes to the tickets' record of who accepted
the call and to the audit log), a real Asterisk MixMonitor recording copied into ``asr.recordings_dir``, real
HTTP Range requests."""
from __future__ import annotations

import shutil
import struct
from pathlib import Path
from typing import Any

import pytest

import server
from asr import service as asr_service
from tickets.accounts import http as accounts_http
from tickets.http import STORE

pytestmark = [pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")]
PASSWORD = "secret-密码-123"
CALL = "1795383048.0"
SEGMENTS = [{"speaker": "caller", "start": 0.4, "end": 2.1, "text": "喂你好"},
            {"speaker": "agent", "start": 2.5, "end": 4.0, "text": "您好，请讲"}]


async def account(client: Any, app: Any, username: str, role: str, department: str | None = None
                  ) -> tuple[Any, dict[str, str]]:
    who = await app[accounts_http.USERS].create_user(username, PASSWORD, role, department_code=department)
    resp = await client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD, "kind": "api"})
    assert resp.status == 200, await resp.text()
    return who, {"Authorization": f"Bearer {(await resp.json())['token']}"}


async def recorded_call(app: Any, call_id: str, path: Path | str) -> None:
    """What recognition leaves for a finished call: its job with the recording path, and the transcript."""
    store = app[asr_service.SERVICE].store
    await store.queue(call_id, str(path), None, f"job-{call_id}")
    await store.finish(call_id, str(path), {"text": "喂你好\n您好，请讲", "segments": SEGMENTS, "words": [],
                                            "duration": 5.9, "engine": "test"})


async def plays(client: Any, admin: dict[str, str]) -> list[tuple[str, str]]:
    log = await (await client.get("/api/v1/audit", params={"action": "play_recording"}, headers=admin)).json()
    return [(e["actor_username"], e["subject"]) for e in log["items"]]


@pytest.fixture
def recordings(tmp_path: Path) -> Path:
    path = tmp_path / "monitor"
    path.mkdir()
    return path


async def test_the_accepting_agent_and_a_supervisor_hear_the_call_and_seek_in_it(
        aiohttp_client: Any, settings_factory: Any, redis_url: str, recordings: Path, asterisk_recording: Path) -> None:
    app = server.create_app(settings_factory(redis_url=redis_url, asr={"recordings_dir": str(recordings)}),
                            background_interval=60)
    client = await aiohttp_client(app)
    wav = recordings / asterisk_recording.name
    shutil.copyfile(asterisk_recording, wav)
    agent, agent_h = await account(client, app, "zuoxi", "agent")
    _, super_h = await account(client, app, "banzhang", "supervisor")
    _, admin_h = await account(client, app, "guanli", "admin")
    await app[STORE].create({"title": "路灯坏了", "content": "幸福路十八号路灯坏了", "request_type": "help"}, agent,
                            call_id=CALL, accept=True)
    await recorded_call(app, CALL, wav)
    audio = wav.read_bytes()

    info = await (await client.get(f"/api/v1/asr/calls/{CALL}/playback", headers=agent_h)).json()
    assert info["recording"]["playable"] is True and info["recording"]["size"] == len(audio)
    assert [(s["start"], s["text"]) for s in info["transcript"]["segments"]] == [(0.4, "喂你好"), (2.5, "您好，请讲")]

    whole = await client.get(info["recording"]["url"], headers=agent_h)
    assert whole.status == 200 and await whole.read() == audio
    assert whole.headers["Content-Type"].startswith("audio/") and whole.headers["Accept-Ranges"] == "bytes"
    # A seek: the browser asks for the bytes from there on.
    part = await client.get(info["recording"]["url"], headers={**agent_h, "Range": "bytes=48000-"})
    assert part.status == 206 and await part.read() == audio[48000:]
    assert part.headers["Content-Range"] == f"bytes 48000-{len(audio) - 1}/{len(audio)}"
    assert (await client.get(info["recording"]["url"], headers=super_h)).status == 200

    # One listening (with its seeks) is one entry per person, not one per byte range.
    assert await plays(client, admin_h) == [("banzhang", f"call:{CALL}"), ("zuoxi", f"call:{CALL}")]
    log = await (await client.get("/api/v1/audit", params={"subject": f"call:{CALL}", "user_id": agent.id},
                                  headers=admin_h)).json()
    assert sorted(e["action"] for e in log["items"]) == ["play_recording", "read_transcript"]


async def test_other_agents_departments_and_admins_cannot_listen(
        aiohttp_client: Any, settings_factory: Any, redis_url: str, recordings: Path, asterisk_recording: Path) -> None:
    app = server.create_app(settings_factory(redis_url=redis_url, asr={"recordings_dir": str(recordings)}),
                            background_interval=60)
    client = await aiohttp_client(app)
    shutil.copyfile(asterisk_recording, recordings / "a.wav")
    accepting, _ = await account(client, app, "zuoxi", "agent")
    _, other_h = await account(client, app, "zuoxi2", "agent")
    _, dept_h = await account(client, app, "zhujian", "department", "zjj")
    _, admin_h = await account(client, app, "guanli", "admin")
    _, super_h = await account(client, app, "banzhang", "supervisor")
    ticket = await app[STORE].create({"title": "路灯坏了", "content": "幸福路十八号路灯坏了", "request_type": "help"},
                                     accepting, call_id=CALL, accept=True)
    dept = next(d for d in (await app[accounts_http.USERS].load_departments()).values() if d.code == "zjj")
    await app[STORE].act(ticket["number"], "dispatch", {"lead_department_id": dept.id}, accepting)
    await recorded_call(app, CALL, recordings / "a.wav")

    for route in ("playback", "recording"):
        url = f"/api/v1/asr/calls/{CALL}/{route}"
        refused = await client.get(url, headers=other_h)
        assert refused.status == 404 and "受理该工单的话务员" in (await refused.json())["message"]
        # the department handles the ticket, yet never hears the caller's voice
        assert (await client.get(url, headers=dept_h)).status == 403
        assert (await client.get(url, headers=admin_h)).status == 403
        assert (await client.get(url)).status == 401
        assert (await client.get(url, headers=super_h)).status == 200  # the file itself is fine
    assert await plays(client, admin_h) == [("banzhang", f"call:{CALL}")]


async def test_a_missing_empty_corrupt_or_misplaced_file_says_why(
        aiohttp_client: Any, settings_factory: Any, redis_url: str, recordings: Path, asterisk_recording: Path) -> None:
    app = server.create_app(settings_factory(redis_url=redis_url, asr={"recordings_dir": str(recordings)}),
                            background_interval=60)
    client = await aiohttp_client(app)
    _, super_h = await account(client, app, "banzhang", "supervisor")
    (recordings / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVE" + b"\xff" * 3000)
    # what MixMonitor leaves for a call nobody answered: a header and an empty data chunk
    (recordings / "empty.wav").write_bytes(b"RIFF" + struct.pack("<I", 36) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16) + b"data" + struct.pack("<I", 0))
    outside = recordings.parent / "elsewhere.wav"
    shutil.copyfile(asterisk_recording, outside)
    (recordings / "link.wav").symlink_to(outside)
    cases = {"missing": (recordings / "gone.wav", 404, "不存在"), "empty": (recordings / "empty.wav", 404, "没有声音"),
             "corrupt": (recordings / "corrupt.wav", 422, "已损坏"),
             "outside_dir": (recordings / ".." / "elsewhere.wav", 404, "不在录音目录"),
             "link": (recordings / "link.wav", 404, "不在录音目录")}
    # A call the recogniser never got a recording for: the page says so without an error answer.
    none = await (await client.get("/api/v1/asr/calls/no-recording/playback", headers=super_h)).json()
    assert none["recording"]["problem"] == "not_recorded" and "没有录音" in none["recording"]["message"]
    assert none["transcript"] is None
    refused = await client.get("/api/v1/asr/calls/no-recording/recording", headers=super_h)
    assert refused.status == 404 and "没有录音" in (await refused.json())["message"]
    for call_id, (path, status, words) in cases.items():
        await recorded_call(app, call_id, path)
        info = await (await client.get(f"/api/v1/asr/calls/{call_id}/playback", headers=super_h)).json()
        assert info["recording"]["playable"] is False and info["recording"]["url"] is None, call_id
        assert words in info["recording"]["message"], (call_id, info["recording"]["message"])
        assert info["transcript"]["segments"], "the transcript is still there to read"
        refused = await client.get(f"/api/v1/asr/calls/{call_id}/recording", headers=super_h)
        assert refused.status == status and words in (await refused.json())["message"], call_id
