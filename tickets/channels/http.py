"""Open311 GeoReport v2 under ``/open311/v2/`` (JSON or XML by the path's extension, errors as the spec's list
of {code, description} with that code as the HTTP status), and the admins' API for channel partners and
their keys (``/api/v1/channel-partners``)."""
from __future__ import annotations

import tomllib
from typing import Any, Awaitable, Callable, Literal

from aiohttp import web
from pydantic import Field

from config.settings import Settings
from tickets import phones
from tickets.accounts.http import require_role
from tickets.channels import open311
from tickets.channels.service import ChannelService, Limits
from tickets.errors import TicketError
from tickets.http import STORE
from tickets.json_http import (
    STANDARD_ERRORS,
    Body,
    add_openapi_paths,
    body_schema,
    ok,
    parse,
    path_id,
    read_json,
)
from tickets.service import CHANNELS

CHANNEL_SERVICE = web.AppKey("channel_service", ChannelService)
PREFIX = "/open311/v2"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def load_services(settings: Settings) -> list[open311.Service]:
    """Our request categories: the first-level categories (``domains``) of departments.toml."""
    path = settings.config_file(settings.tickets.departments_file)
    if not path.exists():
        return []
    with path.open("rb") as fh:
        return open311.services_from(tomllib.load(fh).get("department", []))


# ---------------------------------------------------------------- answers in the spec's two formats
def _fmt(request: web.Request) -> str:
    return request.match_info.get("fmt", "json")


def answer(request: web.Request, root: str, item: str, items: list[dict[str, Any]], status: int = 200
           ) -> web.Response:
    if _fmt(request) == "xml":
        return web.Response(body=open311.to_xml(root, item, items), status=status,
                            content_type="text/xml", charset="utf-8")
    return ok(items, status=status)


def errors_answer(request: web.Request, errors: list[open311.Error]) -> web.Response:
    return answer(request, "errors", "error", open311.errors_entries(errors), status=errors[0].code)


def spec_errors(handler: Handler) -> Handler:
    """Every refusal in the spec's format: our own errors (a 400 naming a field, a 429) become one entry."""

    async def run(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except open311.Open311Errors as exc:
            return errors_answer(request, exc.errors)
        except TicketError as exc:
            field = f"{exc.field}: " if exc.field else ""
            return errors_answer(request, [open311.Error(exc.http_status, f"{field}{exc.message}")])

    return run


async def _viewer(request: web.Request, params: Any) -> Any:
    """The partner whose key came with the request (query or form), None without one; a wrong key is a 403."""
    key = (params.get("api_key") or "").strip()
    if not key:
        return None
    partner = await request.app[CHANNEL_SERVICE].partner_for_key(key)
    if partner is None:
        raise open311.Open311Errors([open311.Error(403, "api_key 无效或已停用")])
    return partner


# ---------------------------------------------------------------- handlers
@spec_errors
async def services(request: web.Request) -> web.StreamResponse:
    svc = request.app[CHANNEL_SERVICE]
    return answer(request, "services", "service", [open311.service_entry(s) for s in svc.services.values()])


@spec_errors
async def service_definition(request: web.Request) -> web.StreamResponse:
    code = request.match_info["code"]
    service = request.app[CHANNEL_SERVICE].services.get(code)
    if service is None:
        raise open311.Open311Errors([open311.Error(404, f"service_code 不存在：{code[:100]}")])
    entry = open311.definition(service)
    if _fmt(request) == "xml":
        return web.Response(body=open311.object_xml("service_definition", entry), content_type="text/xml",
                            charset="utf-8")
    return ok(entry)


@spec_errors
async def post_request(request: web.Request) -> web.StreamResponse:
    svc = request.app[CHANNEL_SERVICE]
    try:
        form = await request.post()
    except ValueError:
        raise open311.Open311Errors([open311.Error(400, "请求体须为 application/x-www-form-urlencoded")]) from None
    # Some clients put api_key and jurisdiction_id in the query string (the spec's examples differ): both count.
    params = {**{k: v for k, v in request.query.items()},
              **{k: v for k, v in form.items() if isinstance(v, str)}}
    if not params.get("api_key"):
        raise open311.Open311Errors([open311.Error(403, "api_key 必填：请向热线中心申请渠道密钥")])
    partner = await _viewer(request, params)
    intake = open311.check_post(params, svc.services, phones.is_valid)
    number = await svc.submit_open311(partner, intake)
    # Committed: only now does the partner hear the number.
    return answer(request, "service_requests", "request", [open311.created_entry(number)], status=201)


@spec_errors
async def get_requests(request: web.Request) -> web.StreamResponse:
    svc = request.app[CHANNEL_SERVICE]
    viewer = await _viewer(request, request.query)
    query = open311.check_query(request.query, svc.tickets.clock())
    return answer(request, "service_requests", "request", await svc.open311_requests(query, viewer))


@spec_errors
async def get_request(request: web.Request) -> web.StreamResponse:
    svc = request.app[CHANNEL_SERVICE]
    viewer = await _viewer(request, request.query)
    entry = await svc.open311_request(request.match_info["id"], viewer)
    return answer(request, "service_requests", "request", [entry])


# ---------------------------------------------------------------- channel partners (admins)
class PartnerCreate(Body):
    name: str = Field(min_length=1, max_length=100)
    channel: Literal["phone", "web", "wechat", "app", "mailbox", "walk_in", "sms", "email"] = "app"


class PartnerUpdate(Body):
    active: bool


async def create_partner(request: web.Request) -> web.Response:
    who = require_role(request, "admin")
    body = parse(PartnerCreate, await read_json(request))
    key, partner = await request.app[CHANNEL_SERVICE].create_partner(body.name, body.channel, who)
    return ok({**partner.as_dict(), "api_key": key}, status=201)


async def list_partners(request: web.Request) -> web.Response:
    require_role(request, "admin", "supervisor")
    return ok(await request.app[CHANNEL_SERVICE].partners())


async def update_partner(request: web.Request) -> web.Response:
    require_role(request, "admin")
    body = parse(PartnerUpdate, await read_json(request))
    return ok(await request.app[CHANNEL_SERVICE].set_active(path_id(request, "id"), body.active))


def openapi_paths() -> dict[str, Any]:
    std = STANDARD_ERRORS
    return {
        "/api/v1/channel-partners": {
            "get": {"summary": "Open311 渠道合作方列表", "responses": {"200": {"description": "list"}, **std}},
            "post": {"summary": "新建 Open311 渠道合作方（管理员）；api_key 仅此一次返回，库中只存其 sha256",
                     "requestBody": body_schema(PartnerCreate),
                     "responses": {"201": {"description": "partner with api_key"}, **std}}},
        "/api/v1/channel-partners/{id}": {"patch": {
            "summary": "停用/启用渠道合作方（停用即其密钥失效）", "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}],
            "requestBody": body_schema(PartnerUpdate), "responses": {"200": {"description": "partner"}, **std}}},
    }


def setup(app: web.Application, settings: Settings, redis: Callable[[], Any], limits: Limits | None = None) -> None:
    services_list = load_services(settings)

    async def build(app: web.Application) -> None:
        app[CHANNEL_SERVICE] = ChannelService(app[STORE], services_list, redis, limits or Limits())

    app.on_startup.append(build)
    r = app.router
    fmt = "{fmt:json|xml}"
    r.add_get(f"{PREFIX}/services.{fmt}", services)
    r.add_get(PREFIX + "/services/{code:[^/]+?}." + fmt, service_definition)
    r.add_post(f"{PREFIX}/requests.{fmt}", post_request)
    r.add_get(f"{PREFIX}/requests.{fmt}", get_requests)
    r.add_get(PREFIX + "/requests/{id:[^/]+?}." + fmt, get_request)
    r.add_post("/api/v1/channel-partners", create_partner)
    r.add_get("/api/v1/channel-partners", list_partners)
    r.add_patch("/api/v1/channel-partners/{id}", update_partner)
    add_openapi_paths(app, openapi_paths())


__all__ = ["CHANNEL_SERVICE", "CHANNELS", "setup"]
