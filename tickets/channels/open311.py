"""Open311 GeoReport v2 (http://wiki.open311.org/GeoReport_v2), pure: our request categories as services,
a service definition, checking a posted request, a ticket as a service request, and the spec's two
formats (JSON and XML) and its error list. No I/O; the HTTP layer feeds requests in and writes answers out.

Field names are the spec's; values are ours (Chinese text stays as is, UTF-8). A category's code is its name
(城乡建设): FixMyStreet's own Open311 endpoint does the same, and a city renaming a category should see it as a
new service, which is what it is.
"""
from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

REQUEST_TYPES = {"inquiry": "咨询", "help": "求助", "complaint": "投诉", "report": "举报", "suggestion": "建议",
                 "praise": "表扬"}
MAX_DESCRIPTION = 4000  # the spec's limit for description
MAX_SPAN = timedelta(days=90)  # start_date..end_date may not span more than 90 days (spec); also the default
MAX_IDS = 100
CLOSED_STATES = frozenset({"replied", "answered_on_spot", "surveyed", "archived", "invalid"})
OPEN_NOTES = {"draft": "已收到，等待话务员受理", "accepted": "已受理，正在派单", "dispatched": "已派单，处理中",
              "returned": "处理中", "signed": "承办单位已签收，处理中", "merged": "已与相同诉求合并办理"}
INVALID_NOTE = "经核实不属于受理范围（无效件）"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_W3C = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True)
class Service:
    code: str
    name: str
    description: str
    group: str
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True)
class Error:
    """One entry of the spec's error list; ``code`` is also the HTTP status of the answer."""

    code: int
    description: str


class Open311Errors(Exception):
    def __init__(self, errors: Sequence[Error]) -> None:
        super().__init__("; ".join(e.description for e in errors))
        self.errors = list(errors)

    @property
    def status(self) -> int:
        return self.errors[0].code


@dataclass(frozen=True)
class Intake:
    """A posted request, checked: what becomes the draft ticket and its Open311 record."""

    service_code: str
    description: str
    address: str
    address_id: str
    lat: float | None
    long: float | None
    caller_name: str
    phone: str
    email: str
    device_id: str
    account_id: str
    media_url: str
    request_type: str


@dataclass(frozen=True)
class RequestQuery:
    ids: tuple[str, ...]
    service_codes: tuple[str, ...]
    start: datetime
    end: datetime
    statuses: tuple[str, ...]


def services_from(departments: Iterable[Mapping[str, Any]]) -> list[Service]:
    """The centre's first-level categories (``domains`` in departments.toml), each once, in file order; its group
    is the department that leads it (the first that lists it), as routing reads the same file."""
    seen: dict[str, Service] = {}
    for dept in departments:
        for domain in dept.get("domains", []) or []:
            name = str(domain).strip()
            if name and name not in seen:
                dept_name = str(dept.get("name", ""))
                seen[name] = Service(code=name, name=name, description=f"{name}类诉求（{dept_name}）",
                                     group=dept_name, keywords=(name,))
    return list(seen.values())


def service_entry(s: Service) -> dict[str, Any]:
    # metadata true: the definition offers our 诉求类型 as an attribute
    return {"service_code": s.code, "service_name": s.name, "description": s.description, "metadata": True,
            "type": "realtime", "keywords": ",".join(s.keywords), "group": s.group}


def definition(s: Service) -> dict[str, Any]:
    return {"service_code": s.code, "attributes": [{
        "variable": True, "code": "request_type", "datatype": "singlevaluelist", "required": False,
        "datatype_description": "诉求类型，不填为咨询", "order": 1, "description": "诉求类型",
        "values": [{"key": k, "name": v} for k, v in REQUEST_TYPES.items()]}]}


# ---------------------------------------------------------------- POST requests
def _text(form: Mapping[str, str], name: str, limit: int, errors: list[Error]) -> str:
    value = (form.get(name) or "").strip()
    if len(value) > limit:
        errors.append(Error(400, f"{name} 超过 {limit} 个字符"))
        return ""
    return value


def _coordinate(form: Mapping[str, str], name: str, bound: float, errors: list[Error]) -> float | None:
    raw = (form.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and -bound <= value <= bound):
        errors.append(Error(400, f"{name} 须为 -{bound:g} 到 {bound:g} 之间的数字"))
        return None
    return value


def check_post(form: Mapping[str, str], codes: Iterable[str], phone_ok: Any) -> Intake:
    """The posted fields as an ``Intake``, or ``Open311Errors`` naming every field that is wrong (400).
    ``phone_ok`` is the core's phone check; the API key is checked before this, by the caller."""
    errors: list[Error] = []
    code = (form.get("service_code") or "").strip()
    if not code:
        errors.append(Error(400, "service_code 必填"))
    elif code not in set(codes):
        errors.append(Error(400, f"service_code 不存在：{code[:100]}"))
    description = _text(form, "description", MAX_DESCRIPTION, errors)
    if not description and not any(e.description.startswith("description") for e in errors):
        errors.append(Error(400, "description 必填：请描述诉求内容"))
    address = _text(form, "address_string", 500, errors)
    address_id = _text(form, "address_id", 100, errors)
    lat = _coordinate(form, "lat", 90, errors)
    long = _coordinate(form, "long", 180, errors)
    if (lat is None) != (long is None) and not any(e.description.startswith(("lat", "long")) for e in errors):
        errors.append(Error(400, "lat 和 long 须同时提供"))
    if not (address or address_id or (lat is not None and long is not None)) and not errors:
        errors.append(Error(400, "须提供位置：lat 和 long、address_string 或 address_id 之一"))
    first, last = _text(form, "first_name", 50, errors), _text(form, "last_name", 50, errors)
    phone = _text(form, "phone", 32, errors)
    if phone and not phone_ok(phone):
        errors.append(Error(400, f"phone 不是有效的电话号码：{phone}"))
    email = _text(form, "email", 200, errors)
    if email and not _EMAIL.match(email):
        errors.append(Error(400, f"email 格式不正确：{email}"))
    media_url = _text(form, "media_url", 1000, errors)
    if media_url and not media_url.lower().startswith(("http://", "https://")):
        errors.append(Error(400, "media_url 须为 http(s) 地址"))
    request_type = "inquiry"
    for key, value in form.items():
        if key.startswith("attribute["):
            name = key[len("attribute["):].rstrip("]")
            if name != "request_type":
                errors.append(Error(400, f"未知属性 {key[:60]}：本服务只有 attribute[request_type]"))
            elif value not in REQUEST_TYPES:
                errors.append(Error(400, f"attribute[request_type] 须为 {', '.join(REQUEST_TYPES)} 之一"))
            else:
                request_type = value
    if errors:
        raise Open311Errors(errors)
    # Chinese names are family name first; the spec's two fields are kept in that order.
    name = f"{last}{first}" if _is_cjk(last + first) else " ".join(p for p in (first, last) if p)
    return Intake(service_code=code, description=description, address=address, address_id=address_id, lat=lat,
                  long=long, caller_name=name[:100], phone=phone, email=email,
                  device_id=_text(form, "device_id", 100, []), account_id=_text(form, "account_id", 100, []),
                  media_url=media_url, request_type=request_type)


def _is_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


# ---------------------------------------------------------------- GET requests
def parse_w3c(value: str, name: str) -> datetime:
    if not _W3C.match(value):
        raise Open311Errors([Error(400, f"{name} 须为 W3C 时间，如 2010-01-01T00:00:00Z")])
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Open311Errors([Error(400, f"{name} 不是合法时间：{value}")]) from None


def check_query(query: Mapping[str, str], now: datetime) -> RequestQuery:
    """GET requests' parameters; without dates, the most recent 90 days."""
    ids = tuple(i.strip() for i in (query.get("service_request_id") or "").split(",") if i.strip())
    if len(ids) > MAX_IDS:
        raise Open311Errors([Error(400, f"service_request_id 最多 {MAX_IDS} 个")])
    codes = tuple(c.strip() for c in (query.get("service_code") or "").split(",") if c.strip())
    statuses = tuple(s.strip() for s in (query.get("status") or "").split(",") if s.strip())
    bad = [s for s in statuses if s not in ("open", "closed")]
    if bad:
        raise Open311Errors([Error(400, f"status 须为 open 或 closed：{','.join(bad)[:60]}")])
    start_raw, end_raw = query.get("start_date") or "", query.get("end_date") or ""
    end = parse_w3c(end_raw, "end_date") if end_raw else None
    start = parse_w3c(start_raw, "start_date") if start_raw else None
    if start is None and end is None:
        end = now
    if end is None:
        assert start is not None
        end = min(start + MAX_SPAN, now) if start < now else start + MAX_SPAN
    if start is None:
        start = end - MAX_SPAN
    if end < start:
        raise Open311Errors([Error(400, "end_date 须晚于 start_date")])
    if end - start > MAX_SPAN:
        raise Open311Errors([Error(400, "start_date 到 end_date 不能超过 90 天")])
    return RequestQuery(ids=ids, service_codes=codes, start=start, end=end, statuses=statuses)


def public_status(status: str, answer: str | None) -> tuple[str, str]:
    """(open|closed, status_notes): closed once the department replied (or the centre answered), the notes
    being the public reply; a reopened case is open again."""
    if status == "invalid":
        return "closed", INVALID_NOTE
    if status in CLOSED_STATES or status == "merged" and answer:
        return "closed", answer or ""
    return "open", OPEN_NOTES.get(status, "处理中")


def w3c(value: datetime | None, tz: ZoneInfo) -> str:
    return value.astimezone(tz).isoformat(timespec="seconds") if value else ""


def request_entry(t: Mapping[str, Any], record: Mapping[str, Any], service_name: str, agency: str,
                  tz: ZoneInfo, private: bool) -> dict[str, Any]:
    """A ticket as the spec's service request. What the citizen wrote (description, address, location, photo
    link) only for the partner that posted it (``private``); the rest is the public status."""
    status, notes = public_status(t["status"], t.get("answer"))
    return {
        "service_request_id": t["number"], "status": status, "status_notes": notes,
        "service_name": service_name, "service_code": record["service_code"],
        "description": t["content"] if private else "", "agency_responsible": agency, "service_notice": "",
        "requested_datetime": w3c(t["created_at"], tz), "updated_datetime": w3c(t["updated_at"], tz),
        "expected_datetime": w3c(t.get("reply_due"), tz),
        "address": t["address"] if private else "", "address_id": record["address_id"] if private else "",
        "zipcode": "", "lat": record["lat"] if private and record["lat"] is not None else "",
        "long": record["long"] if private and record["long"] is not None else "",
        "media_url": record["media_url"] if private else "",
    }


def created_entry(number: str) -> dict[str, Any]:
    return {"service_request_id": number, "service_notice": "已收到，等待话务员受理；可凭编号查询办理进度",
            "account_id": ""}


# ---------------------------------------------------------------- formats
def to_xml(root: str, item: str, items: Sequence[Mapping[str, Any]]) -> bytes:
    """``<root><item>...</item>...</root>``: lists inside an item (attributes, values) nest the same way, named by
    the singular of their key (attributes -> attribute, values -> value)."""
    top = ET.Element(root)
    for entry in items:
        _fill(ET.SubElement(top, item), entry)
    return _document(top)


def object_xml(root: str, entry: Mapping[str, Any]) -> bytes:
    top = ET.Element(root)
    _fill(top, entry)
    return _document(top)


def _document(top: ET.Element) -> bytes:
    body: bytes = ET.tostring(top, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + body


def _fill(node: ET.Element, entry: Mapping[str, Any]) -> None:
    for key, value in entry.items():
        child = ET.SubElement(node, key)
        if isinstance(value, list):
            singular = key[:-1] if key.endswith("s") else key
            for sub in value:
                _fill(ET.SubElement(child, singular), sub)
        elif isinstance(value, bool):
            child.text = "true" if value else "false"
        elif value is not None and value != "":
            child.text = str(value)


def errors_entries(errors: Sequence[Error]) -> list[dict[str, Any]]:
    return [{"code": e.code, "description": e.description} for e in errors]
