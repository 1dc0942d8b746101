"""HTTP API of recognition under ``/api/v1/asr`` (JSON).

- ``GET  /api/v1/asr/jobs?state=failed``            job list with counts per state (supervisor, admin)
- ``GET  /api/v1/asr/calls/{call_id}``              one call's job state, transcript and draft fields
- ``POST /api/v1/asr/calls/{call_id}/retry``        queue a failed (or done) call again (supervisor, admin)
- ``GET  /api/v1/asr/transcripts?q=路灯 坏了``       search by words, every word must occur
- ``GET  /api/v1/asr/calls/{call_id}/playback``     the recording's state (playable or why not) and the
                                                   transcript's timed segments, for the ticket page's player
- ``GET  /api/v1/asr/calls/{call_id}/recording``    the audio itself, with HTTP Range (seeking)

Who reads transcripts: they hold what citizens said (names, addresses, numbers). Without an injected
``visibility`` rule only agents, supervisors and admins may read them; with it, department users too,
limited to the calls the rule returns (e.g. calls whose tickets were dispatched to their department),
and the rule also filters what agents and supervisors see. Every transcript read (one call's, or the
snippets of a search) goes to an injected ``access_log`` callable (server.py wires the tickets' record of
access): ``access_log(user, action, subject, detail, address)``.

Who hears recordings: the caller's voice is more than the transcript, so an injected ``recording_access``
rule decides (server.py: supervisors, and the agent who accepted a ticket of that call); without one only
supervisors. Department users never, whatever the rule says. A refused call is 404 like a missing one, so
another agent learns nothing. The audio comes from the path the recognition job holds (telephony's
MixMonitor file), inside ``asr.recordings_dir``; the client only names the call. Listening is logged as
``play_recording``: once per user and call per ``PLAY_LOG_WINDOW`` in each process, because a browser asks
for a new byte range at every seek and one listening would otherwise fill the audit log.
"""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from aiohttp import web

from asr import recording_file
from asr.models import JOB_STATES
from asr.service import SERVICE, AsrService

Visibility = Callable[[Mapping[str, Any], Sequence[str]], Awaitable[set[str]]]
AccessLog = Callable[[Mapping[str, Any], str, str, Mapping[str, Any], str | None], Awaitable[None]]
RecordingAccess = Callable[[Mapping[str, Any], str], Awaitable[bool]]

READ_ROLES = ("agent", "supervisor", "admin")
SUPERVISE_ROLES = ("supervisor", "admin")
VISIBILITY = web.AppKey("asr_visibility", object)
ACCESS_LOG = web.AppKey("asr_access_log", object)
RECORDING_ACCESS = web.AppKey("asr_recording_access", object)
RECORDINGS_DIR = web.AppKey("asr_recordings_dir", str)
PLAYS_LOGGED = web.AppKey("asr_plays_logged", dict)
LISTEN_ROLES = ("agent", "supervisor")
PLAY_LOG_WINDOW = timedelta(minutes=10)
NO_RECORDING = "没有这通电话的录音，或您无权收听（仅班长和受理该工单的话务员可以收听）"


class AsrError(Exception):
    http_status = 400

    def __init__(self, slug: str, message: str, http_status: int | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.slug = slug
        self.message = message
        self.field = field
        if http_status is not None:
            self.http_status = http_status


def _default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False, default=_default))


def _user(request: web.Request) -> Mapping[str, Any]:
    user: Mapping[str, Any] | None = request.get("user")
    if not user:
        raise AsrError("login_required", "请先登录", 401)
    return user


def _require(request: web.Request, roles: Sequence[str]) -> Mapping[str, Any]:
    user = _user(request)
    if user.get("role") not in roles:
        raise AsrError("forbidden", "您的角色无权查看通话转写", 403)
    return user


async def _visible(request: web.Request, user: Mapping[str, Any], call_ids: Sequence[str]) -> set[str]:
    rule = request.app.get(VISIBILITY)
    if rule is None:
        if user.get("role") not in READ_ROLES:
            raise AsrError("forbidden", "您的角色无权查看通话转写", 403)
        return set(call_ids)
    return set(await rule(user, list(call_ids)))  # type: ignore[operator]


async def _record(request: web.Request, user: Mapping[str, Any], action: str, subject: str,
                  detail: Mapping[str, Any]) -> None:
    log = request.app.get(ACCESS_LOG)
    if log is not None:
        await log(user, action, subject, detail, request.remote)  # type: ignore[operator]


def _service(request: web.Request) -> AsrService:
    return request.app[SERVICE]


def _int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise AsrError("invalid_field", f"{name} 须为整数", field=name) from None
    if not lo <= value <= hi:
        raise AsrError("invalid_field", f"{name} 须在 {lo} 到 {hi} 之间", field=name)
    return value


async def list_jobs(request: web.Request) -> web.Response:
    _require(request, SUPERVISE_ROLES)
    state = request.query.get("state") or None
    if state is not None and state not in JOB_STATES:
        raise AsrError("invalid_field", f"state 须为 {', '.join(JOB_STATES)} 之一", field="state")
    return ok(await _service(request).store.jobs(state, _int(request, "limit", 50, 1, 500),
                                                 _int(request, "offset", 0, 0, 10_000_000)))


async def get_call(request: web.Request) -> web.Response:
    user = _user(request)
    call_id = request.match_info["call_id"]
    if call_id not in await _visible(request, user, [call_id]):
        raise AsrError("not_found", "没有这通电话的转写，或您无权查看", 404)
    store = _service(request).store
    job = await store.job(call_id)
    if job is None:
        raise AsrError("not_found", "没有这通电话的转写，或您无权查看", 404)
    transcript = await store.transcript(call_id)
    if transcript is not None:
        await _record(request, user, "read_transcript", f"call:{call_id}", {"path": request.path})
    return ok({"job": job, "transcript": transcript})


async def retry_call(request: web.Request) -> web.Response:
    _require(request, SUPERVISE_ROLES)
    call_id = request.match_info["call_id"]
    service = _service(request)
    job = await service.store.job(call_id)
    if job is None:
        raise AsrError("not_found", "没有这通电话的转写任务", 404)
    if job["state"] in ("queued", "running"):
        raise AsrError("conflict", "该任务正在排队或处理中，无需重试", 409)
    job = await service.enqueue_transcription(call_id, job["recording_path"], speaker_paths=job["speaker_paths"],
                                              force=True)
    return ok({"job": job}, status=202)


def _snippet(item: Mapping[str, Any], terms: Sequence[str], width: int = 24) -> dict[str, Any]:
    text = item["text"]
    at = min((text.find(t) for t in terms if t in text), default=0)
    out: dict[str, Any] = {"text": text[max(0, at - width):at + width + (len(terms[0]) if terms else 0)]}
    for w in item.get("words") or ():
        if w.get("char_start") is not None and w["char_start"] <= at < w["char_end"] + 1:
            out["start_s"], out["speaker"] = w["start"], w.get("speaker")
            break
    return out


async def search(request: web.Request) -> web.Response:
    user = _user(request)
    q = (request.query.get("q") or "").strip()
    terms = [t for t in q.split() if t][:10]
    if not terms:
        raise AsrError("invalid_field", "请输入要搜索的词（q）", field="q")
    if any(len(t) > 100 for t in terms):
        raise AsrError("invalid_field", "搜索词过长", field="q")
    limit = _int(request, "limit", 20, 1, 100)
    offset = _int(request, "offset", 0, 0, 1_000_000)
    store = _service(request).store
    if request.app.get(VISIBILITY) is None and user.get("role") not in READ_ROLES:
        raise AsrError("forbidden", "您的角色无权查看通话转写", 403)
    rows = await store.search(terms, limit=limit, offset=offset)
    allowed = await _visible(request, user, [r["call_id"] for r in rows])
    items = [{"call_id": r["call_id"], "transcript_id": r["id"], "duration": r["duration"],
              "created_at": r["created_at"], "match": _snippet(r, terms)} for r in rows if r["call_id"] in allowed]
    if items:
        await _record(request, user, "search_transcripts", "transcripts", {
            "q": " ".join(terms), "calls": [i["call_id"] for i in items]})
    return ok({"items": items, "terms": terms})


async def _listener(request: web.Request) -> tuple[Mapping[str, Any], str]:
    """The user, if they may hear this call's recording; else 403 (role) or 404 (not theirs, or no call)."""
    user = _user(request)
    if user.get("role") not in LISTEN_ROLES:
        raise AsrError("forbidden", "您的角色无权收听通话录音", 403)
    call_id = request.match_info["call_id"]
    rule = request.app.get(RECORDING_ACCESS)
    allowed = await rule(user, call_id) if rule is not None else user.get("role") == "supervisor"  # type: ignore[operator]
    if not allowed:
        raise AsrError("not_found", NO_RECORDING, 404)
    return user, call_id


async def _recording(request: web.Request, call_id: str) -> recording_file.RecordingFile:
    job = await _service(request).store.job(call_id)
    if job is None:  # a call not recorded (never reached an agent), or whose recording telephony has not handed over
        return recording_file.RecordingFile(None, "not_recorded", "这通电话没有录音（未录音，或通话结束后录音尚未登记）。")
    return recording_file.locate(job["recording_path"], request.app.get(RECORDINGS_DIR, ""))


async def playback(request: web.Request) -> web.Response:
    """What the player needs before it loads audio: whether the file can be played (and if not, why, in
    words for the page) and the transcript's segments to seek by."""
    user, call_id = await _listener(request)
    found = await _recording(request, call_id)
    transcript = await _service(request).store.transcript(call_id)
    segments = []
    if transcript is not None:
        segments = [{"speaker": s.get("speaker"), "start": s.get("start"), "end": s.get("end"), "text": s.get("text")}
                    for s in transcript["segments"]]
        await _record(request, user, "read_transcript", f"call:{call_id}", {"path": request.path})
    return ok({"call_id": call_id,
               "recording": {"playable": not found.problem, "problem": found.problem or None,
                             "message": found.message or None, "size": found.size,
                             "url": f"/api/v1/asr/calls/{call_id}/recording" if not found.problem else None},
               "transcript": None if transcript is None else {
                   "duration": transcript["duration"], "engine": transcript["engine"], "segments": segments}})


async def recording(request: web.Request) -> web.StreamResponse:
    """The audio, served by aiohttp's FileResponse: Range requests (206) let the browser seek."""
    user, call_id = await _listener(request)
    found = await _recording(request, call_id)
    if found.path is None:
        raise AsrError(f"recording_{found.problem}", found.message, 404 if found.problem != "corrupt" else 422)
    await _log_play(request, user, call_id)
    return web.FileResponse(found.path, headers={"Cache-Control": "private, no-store"})


async def _log_play(request: web.Request, user: Mapping[str, Any], call_id: str) -> None:
    now = _service(request).store.clock()
    seen: dict[tuple[Any, str], datetime] = request.app[PLAYS_LOGGED]
    key = (user.get("id"), call_id)
    last = seen.get(key)
    if last is not None and now - last < PLAY_LOG_WINDOW:
        return
    if len(seen) > 10_000:  # a long-running process forgets old listenings instead of growing
        for k in [k for k, t in seen.items() if now - t >= PLAY_LOG_WINDOW]:
            del seen[k]
    seen[key] = now
    await _record(request, user, "play_recording", f"call:{call_id}", {"range": request.headers.get("Range")})


_ERRORS = {code: {"description": "error"} for code in ("400", "401", "403", "404", "409")}


def openapi_paths() -> dict[str, Any]:
    """The recognition routes for the OpenAPI document (server.py adds them; asr never imports tickets)."""
    call_id = {"name": "call_id", "in": "path", "required": True, "schema": {"type": "string"}}
    page = [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
            {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}}]
    return {
        "/api/v1/asr/jobs": {"get": {"summary": "转写任务（排队、处理中、完成、失败及原因）", "parameters": [
            {"name": "state", "in": "query", "schema": {"enum": ["queued", "running", "done", "failed"]}}, *page],
            "responses": {"200": {"description": "jobs"}, **_ERRORS}}},
        "/api/v1/asr/calls/{call_id}": {"get": {"summary": "一通电话的转写（分说话人、逐词时间）",
                                                "parameters": [call_id],
                                                "responses": {"200": {"description": "job and transcript"}, **_ERRORS}}},
        "/api/v1/asr/calls/{call_id}/retry": {"post": {"summary": "重新转写失败的任务", "parameters": [call_id],
                                                       "responses": {"202": {"description": "job"}, **_ERRORS}}},
        "/api/v1/asr/calls/{call_id}/playback": {"get": {
            "summary": "通话录音能否播放（不能时说明原因）及转写分段（班长、受理该工单的话务员）", "parameters": [call_id],
            "responses": {"200": {"description": "recording state and segments"}, **_ERRORS}}},
        "/api/v1/asr/calls/{call_id}/recording": {"get": {
            "summary": "通话录音音频（支持 Range 拖动；访问记入审计日志）", "parameters": [call_id],
            "responses": {"200": {"description": "audio"}, "206": {"description": "part of the audio"},
                          "422": {"description": "corrupt recording"}, **_ERRORS}}},
        "/api/v1/asr/transcripts": {"get": {"summary": "转写全文检索（每个词都须出现）", "parameters": [
            {"name": "q", "in": "query", "required": True, "schema": {"type": "string"}}, *page[:1],
            {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}}],
            "responses": {"200": {"description": "matches"}, **_ERRORS}}},
    }


def setup_routes(app: web.Application, visibility: Visibility | None = None,
                 access_log: AccessLog | None = None, recording_access: RecordingAccess | None = None,
                 recordings_dir: str = "") -> None:
    """The routes; the service itself is ``app[SERVICE]``, added at start-up by ``asr.service.setup``."""
    if visibility is not None:
        app[VISIBILITY] = visibility
    if access_log is not None:
        app[ACCESS_LOG] = access_log
    if recording_access is not None:
        app[RECORDING_ACCESS] = recording_access
    app[RECORDINGS_DIR] = recordings_dir
    app[PLAYS_LOGGED] = {}
    app.router.add_get("/api/v1/asr/jobs", list_jobs)
    app.router.add_get("/api/v1/asr/calls/{call_id}", get_call)
    app.router.add_post("/api/v1/asr/calls/{call_id}/retry", retry_call)
    app.router.add_get("/api/v1/asr/transcripts", search)
    app.router.add_get("/api/v1/asr/calls/{call_id}/playback", playback)
    app.router.add_get("/api/v1/asr/calls/{call_id}/recording", recording)
