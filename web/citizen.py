"""The citizen's pages, without login (mobile first, plain HTML forms, no script needed): 我要反映 at
``/citizen`` (problem, category, address, optional photo, phone -> a draft ticket of the ``web`` channel and
its number), 进度查询 at ``/citizen/status`` (ticket number + the phone's last four digits), and 没有解决
after a reply (``/citizen/status/unresolved``: to the dissatisfaction ledger).

An assembly layer like the rest of ``web``: the channels feature makes the ticket, the attachments feature
checks and keeps the photo (type by content, size while reading), so neither feature imports the other.
These are the only pages the auth middleware lets through without a session (``PUBLIC_PAGES``).
"""
from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from tickets.accounts.service import Principal
from tickets.attachments.http import ATTACHMENTS
from tickets.attachments.service import sniff
from tickets.channels.http import CHANNEL_SERVICE
from tickets.channels.open311 import REQUEST_TYPES
from tickets.channels.service import CITIZEN_WEB
from tickets.errors import InvalidField, TicketError
from web.pages import render

log = logging.getLogger("hotline.citizen")
FIELDS = ("content", "category", "address", "phone", "name", "request_type")


def _client(request: web.Request) -> str:
    return request.remote or "unknown"


def _form_ctx(request: web.Request, values: dict[str, str], error: TicketError | None = None) -> dict[str, Any]:
    services = request.app[CHANNEL_SERVICE].services
    return {"categories": list(services.values()), "values": values, "request_types": REQUEST_TYPES,
            "error": error.message if error else "", "error_field": getattr(error, "field", None) or "",
            "max_mb": request.app[ATTACHMENTS].max_bytes // (1024 * 1024)}


async def form_page(request: web.Request) -> web.StreamResponse:
    return render(request, "citizen.html", _form_ctx(request, {}))


async def _read_form(request: web.Request, values: dict[str, str]) -> tuple[str, bytes] | None:
    """The fields (into ``values``, kept for the form even when the photo is refused) and the photo (name,
    bytes); its size is checked while reading, so an oversize file is refused without being held whole."""
    max_bytes = request.app[ATTACHMENTS].max_bytes
    photo: tuple[str, bytes] | None = None
    if not request.content_type.startswith("multipart/"):
        form = await request.post()
        values.update({k: str(v) for k, v in form.items() if k in FIELDS and isinstance(v, str)})
        return None
    reader = await request.multipart()
    while True:
        part = await reader.next()
        if part is None:
            break
        name = getattr(part, "name", None)
        if name == "photo":
            chunks, size = [], 0
            while chunk := await part.read_chunk(65536):  # type: ignore[union-attr]
                size += len(chunk)
                if size > max_bytes:
                    raise PhotoTooLarge("photo", f"照片不能超过 {max_bytes // (1024 * 1024)} MB，请压缩后重新选择")
                chunks.append(chunk)
            data = b"".join(chunks)
            if data:
                photo = (getattr(part, "filename", None) or "照片", data)
        elif name in FIELDS:
            values[name] = (await part.text())[:10_000]  # type: ignore[union-attr]
    return photo


class PhotoTooLarge(InvalidField):
    http_status = 413


async def submit(request: web.Request) -> web.StreamResponse:
    svc = request.app[CHANNEL_SERVICE]
    values: dict[str, str] = {}
    photo: tuple[str, bytes] | None = None
    try:
        try:
            photo = await _read_form(request, values)
        except (ValueError, AssertionError, HttpProcessingError):
            raise InvalidField("photo", "表单格式有误，请重新提交") from None
        form = svc.check_form(values)
        if photo is not None:
            kind = sniff(photo[1][:16])
            if kind is None or not kind[0].startswith("image/"):
                raise InvalidField("photo", "照片只接受 JPG、PNG、WEBP、GIF 图片")
        await svc.check_submit_allowed(_client(request), form["phone"])
        ticket = await svc.submit_citizen(form, _client(request))
    except TicketError as exc:
        return _with_wait(render(request, "citizen.html", _form_ctx(request, values, exc), status=exc.http_status),
                          exc)
    photo_saved = True
    if photo is not None:
        try:
            await request.app[ATTACHMENTS].save(ticket["number"], _uploader(), photo[0], photo[1], "市民提交的照片")
        except Exception:  # the ticket is committed: the citizen keeps the number, the agent sees no photo
            log.exception("photo of citizen ticket %s not saved", ticket["number"])
            photo_saved = False
    return render(request, "citizen_done.html", {"number": ticket["number"], "photo_saved": photo_saved,
                                                 "had_photo": photo is not None}, status=201)


def _with_wait(response: web.Response, exc: TicketError) -> web.Response:
    """A 429 says when to come back, for browsers and scripts alike (the page says it in words)."""
    if getattr(exc, "retry_after", None) is not None:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _uploader() -> Principal:
    return CITIZEN_WEB


async def status_page(request: web.Request) -> web.StreamResponse:
    number = request.query.get("number", "")[:20]
    return render(request, "citizen_status.html", {"number": number, "case": None, "error": ""})


async def status_lookup(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    number, tail = str(form.get("number", ""))[:40], str(form.get("tail", ""))[:10]
    try:
        case = await request.app[CHANNEL_SERVICE].lookup(number, tail, _client(request))
    except TicketError as exc:
        return _with_wait(render(request, "citizen_status.html", {"number": number, "case": None,
                                                                  "error": exc.message}, status=exc.http_status), exc)
    return render(request, "citizen_status.html", {"number": number, "tail": tail, "case": case, "error": ""})


async def status_unresolved(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    number, tail = str(form.get("number", ""))[:40], str(form.get("tail", ""))[:10]
    note = str(form.get("note", ""))[:500]
    svc = request.app[CHANNEL_SERVICE]
    try:
        case = await svc.not_resolved(number, tail, _client(request), note)
    except TicketError as exc:
        case = None
        try:
            case = await svc.lookup(number, tail, _client(request))
        except TicketError:
            pass
        return render(request, "citizen_status.html", {"number": number, "tail": tail, "case": case,
                                                       "error": exc.message}, status=exc.http_status)
    return render(request, "citizen_status.html", {"number": number, "tail": tail, "case": case, "error": "",
                                                   "recorded": True})


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/citizen", form_page)
    r.add_post("/citizen", submit)
    r.add_get("/citizen/status", status_page)
    r.add_post("/citizen/status", status_lookup)
    r.add_post("/citizen/status/unresolved", status_unresolved)
