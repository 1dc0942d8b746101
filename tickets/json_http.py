"""JSON in and out for every feature's ``http.py``: responses that keep Chinese as is, request bodies
checked field by field (a 400 names the field), and the registry of each feature's OpenAPI paths."""
from __future__ import annotations

import json
import math
from datetime import date, datetime
from typing import Any, Awaitable, Callable
from zoneinfo import ZoneInfo

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from tickets.errors import InvalidField, NotFound

# Each feature adds its own paths when its routes are set up; /api/v1/openapi.json serves them all.
OPENAPI_PATHS = web.AppKey("openapi_paths", dict)


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def encode(obj: Any) -> bytes:
    """UTF-8 JSON, Chinese as is: orjson, which writes datetimes and dates as ``isoformat`` does, the same text
    as ``dumps`` but for the spaces after separators.

    ``dumps`` called ``_default`` back once per datetime, and a ticket view holds about twenty-five: the ticket
    list's page of 20 took 419 us to encode and 32 us with orjson, a ticket view 24 and 2 us (BENCHMARKS.md,
    #15). A value orjson refuses (an integer beyond 64 bits, a string with a lone surrogate, a type it does not
    know) goes through ``dumps``, whose rules, and errors, it then keeps."""
    try:
        return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return dumps(obj).encode("utf-8")


def ok(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=encode(data), status=status, content_type="application/json", charset="utf-8")


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
    _refuse_control_characters(data, "")
    return data


# NUL and the other C0 controls but tab, newline and carriage return: no person types them, PostgreSQL text
# cannot hold NUL, and Excel refuses them in cells (the exports would break on them later).
_CONTROL = frozenset(chr(c) for c in range(32) if chr(c) not in "\t\n\r") | {"\x7f"}


@web.middleware
async def input_middleware(request: web.Request,
                           handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Path parameters and query strings with control characters are a 400 naming the parameter before any
    handler runs (PostgreSQL's text cannot hold NUL: such a value would fail in the database as a 500)."""
    for name, value in request.match_info.items():
        if not _CONTROL.isdisjoint(value):
            raise InvalidField(name, f"{name} 含有控制字符")
    for name, value in request.query.items():
        if not (_CONTROL.isdisjoint(value) and _CONTROL.isdisjoint(name)):
            raise InvalidField(name, f"{name} 含有控制字符")
    return await handler(request)


def _refuse_control_characters(value: Any, path: str) -> None:
    if isinstance(value, str):
        if not _CONTROL.isdisjoint(value):
            raise InvalidField(path or "body", f"字段 {path or 'body'} 含有控制字符")
        if not value.isascii():
            try:  # json.loads accepts a lone surrogate ("\ud800"), which no database driver can encode
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidField(path or "body", f"字段 {path or 'body'} 含有无效的 Unicode 字符") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_control_characters(key, path or "body")
            _refuse_control_characters(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _refuse_control_characters(item, f"{path}.{i}" if path else str(i))
    elif isinstance(value, float) and not math.isfinite(value):  # json.loads accepts NaN and Infinity
        raise InvalidField(path or "body", f"字段 {path or 'body'} 不是有限数")


def parse(model: type[BaseModel], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "body"
        raise InvalidField(field, f"字段 {field}：{err['msg']}") from None


# Every value from a request is checked here, at the edge, so nothing deeper meets a number the database
# cannot hold (SQL BIGINT), a date whose next day does not exist (9999-12-31) or a control character.
ID_MAX = 2**63 - 1
MIN_YEAR, MAX_YEAR = 2000, 2100


def parse_datetime(value: Any, field: str, tz: ZoneInfo) -> datetime:
    if not isinstance(value, str):
        raise InvalidField(field, f"{field} 须为 ISO 8601 时间")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidField(field, f"{field} 不是合法的 ISO 8601 时间：{value}") from None
    check_year(parsed, field)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def check_year(value: date, field: str) -> None:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise InvalidField(field, f"{field} 须在 {MIN_YEAR} 年至 {MAX_YEAR} 年之间")


def parse_day(value: str | None, field: str) -> date | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise InvalidField(field, f"{field} 须为日期，如 2026-11-22") from None
    check_year(day, field)
    return day


def query_int(query: Any, name: str, default: int, lo: int, hi: int) -> int:
    """An integer query parameter within [lo, hi]; a 400 names it otherwise (``limit=-1`` is not "all")."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidField(name, f"{name} 须为整数") from None
    if not lo <= value <= hi:
        raise InvalidField(name, f"{name} 须在 {lo} 到 {hi} 之间")
    return value


def query_id(query: Any, name: str) -> int | None:
    """An optional database id in the query string (1 .. 2^63-1)."""
    raw = query.get(name)
    return None if raw is None or raw == "" else query_int(query, name, 0, 1, ID_MAX)


def query_number(query: Any, name: str, lo: float, hi: float) -> float | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise InvalidField(name, f"{name} 须为数字") from None
    if not lo <= value <= hi:  # also refuses nan and inf
        raise InvalidField(name, f"{name} 须在 {lo:g} 到 {hi:g} 之间")
    return value


def path_id(request: web.Request, name: str = "id") -> int:
    """A database id from the path: not a number -> 400 naming it; out of any id's range -> 404 (no such row)."""
    raw = request.match_info[name]
    if not (raw.isascii() and raw.isdigit()):
        raise InvalidField(name, f"{name} 须为整数")
    value = int(raw)
    if not 1 <= value <= ID_MAX:
        raise NotFound("not_found", f"编号 {raw[:30]} 不存在")
    return value
