"""Attachment routes: upload (multipart, type checked by content, size capped while reading), list, download."""
from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from tickets.accounts.http import principal
from tickets.attachments.service import MAX_BYTES, AttachmentStore, TooLarge
from tickets.errors import InvalidField, NotFound, TicketError
from tickets.http import STORE
from tickets.json_http import STANDARD_ERRORS, add_openapi_paths, ok, path_id

ATTACHMENTS = web.AppKey("attachment_store", AttachmentStore)


async def upload(request: web.Request) -> web.Response:
    who = principal(request)
    store = request.app[ATTACHMENTS]
    if not request.content_type.startswith("multipart/"):
        raise InvalidField("file", "请以 multipart/form-data 上传文件（字段 file）")
    try:
        data, filename, note = await _read_parts(request, store)
    except TicketError:
        raise
    except (ValueError, AssertionError, HttpProcessingError) as exc:  # a malformed multipart body
        raise InvalidField("file", f"multipart 请求体格式有误：{type(exc).__name__}") from None
    if not filename:
        raise InvalidField("file", "缺少文件字段 file")
    return ok(await store.save(request.match_info["number"], who, filename, data, note), status=201)


async def _read_parts(request: web.Request, store: AttachmentStore) -> tuple[bytes, str, str]:
    reader = await request.multipart()
    data, filename, note = b"", "", ""
    while True:
        part = await reader.next()
        if part is None:
            break
        if part.name == "file":  # type: ignore[union-attr]
            filename = part.filename or "附件"  # type: ignore[union-attr]
            chunks, size = [], 0
            while chunk := await part.read_chunk(65536):  # type: ignore[union-attr]
                size += len(chunk)
                if size > store.max_bytes:  # stop reading: the limit holds for the socket too
                    raise TooLarge("attachment_too_large", f"附件不能超过 {store.max_bytes // (1024 * 1024)} MB")
                chunks.append(chunk)
            data = b"".join(chunks)
        elif part.name == "note":  # type: ignore[union-attr]
            note = (await part.text())[:2000]  # type: ignore[union-attr]
    return data, filename, note


async def list_attachments(request: web.Request) -> web.Response:
    return ok(await request.app[ATTACHMENTS].list(request.match_info["number"], principal(request)))


async def download(request: web.Request) -> web.StreamResponse:
    attachment_id = path_id(request, "id")
    view, path = await request.app[ATTACHMENTS].open(attachment_id, principal(request))
    if not path.exists():
        raise NotFound("attachment_missing", "附件文件已不在存储目录中")
    disposition = "inline" if view["content_type"].startswith("image/") else "attachment"
    return web.FileResponse(path, headers={
        "Content-Type": view["content_type"], "X-Content-Type-Options": "nosniff",
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(view['filename'])}"})


def openapi_paths() -> dict[str, Any]:
    std = STANDARD_ERRORS
    number = {"name": "number", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "/api/v1/tickets/{number}/attachments": {
            "get": {"summary": "工单附件列表", "parameters": [number],
                    "responses": {"200": {"description": "attachments"}, **std}},
            "post": {"summary": "上传附件（照片、PDF；按内容判断类型，上限 10 MB）", "parameters": [number],
                     "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                         "type": "object", "required": ["file"], "properties": {
                             "file": {"type": "string", "format": "binary"}, "note": {"type": "string"}}}}}},
                     "responses": {"201": {"description": "attachment"}, **std}}},
        "/api/v1/attachments/{id}": {"get": {"summary": "下载附件", "parameters": [
            {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}],
            "responses": {"200": {"description": "the file"}, **std}}},
    }


def setup_routes(app: web.Application, max_bytes: int = MAX_BYTES) -> None:
    async def build(app: web.Application) -> None:
        tickets = app[STORE]
        root = tickets.settings.data_path / "attachments"
        root.mkdir(parents=True, exist_ok=True)
        app[ATTACHMENTS] = AttachmentStore(tickets.sessions, tickets, root, tickets.clock, max_bytes)

    app.on_startup.append(build)
    app.router.add_post("/api/v1/tickets/{number}/attachments", upload)
    app.router.add_get("/api/v1/tickets/{number}/attachments", list_attachments)
    app.router.add_get("/api/v1/attachments/{id}", download)
    add_openapi_paths(app, openapi_paths())
