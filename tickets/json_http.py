"""JSON in and out for every feature's ``http.py``: responses that keep Chinese as is, request bodies
checked field by field (a 400 names the field), and the registry of each feature's OpenAPI paths."""
from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from tickets.errors import InvalidField

# Each feature adds its own paths when its routes are set up; /api/v1/openapi.json serves them all.
OPENAPI_PATHS = web.AppKey("openapi_paths", dict)


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=dumps)


def add_openapi_paths(app: web.Application, paths: dict[str, Any]) -> None:
    if OPENAPI_PATHS not in app:
        app[OPENAPI_PATHS] = {}
    app[OPENAPI_PATHS].update(paths)


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}


ERROR_RESPONSE = {"description": "error", "content": {"application/json": {"schema": {
    "type": "object", "properties": {"error": {"type": "string"}, "message": {"type": "string"},
                                     "field": {"type": "string"}, "status": {"type": "string"},
                                     "allowed": {"type": "array", "items": {"type": "string"}}}}}}}
STANDARD_ERRORS = {"400": ERROR_RESPONSE, "401": ERROR_RESPONSE, "404": ERROR_RESPONSE, "409": ERROR_RESPONSE,
                   "413": ERROR_RESPONSE}


class Body(BaseModel):
    """A request body: unknown fields are refused, so a typo is a 400 instead of a silently ignored value."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


async def read_json(request: web.Request) -> dict[str, Any]:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise
    if not raw:
        return {}
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidField("body", "请求体必须是 UTF-8 编码的 JSON") from None
    except json.JSONDecodeError as exc:
        raise InvalidField("body", f"请求体不是合法的 JSON：{exc.msg}（第 {exc.pos} 个字符）") from None
    if not isinstance(data, dict):
        raise InvalidField("body", "请求体必须是 JSON 对象")
    return data


def parse(model: type[BaseModel], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "body"
        raise InvalidField(field, f"字段 {field}：{err['msg']}") from None


def parse_datetime(value: Any, field: str, tz: ZoneInfo) -> datetime:
    if not isinstance(value, str):
        raise InvalidField(field, f"{field} 须为 ISO 8601 时间")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidField(field, f"{field} 不是合法的 ISO 8601 时间：{value}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def parse_day(value: str | None, field: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidField(field, f"{field} 须为日期，如 2026-11-22") from None
