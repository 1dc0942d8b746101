"""Channels in (the async shell): Open311 channel partners and their keys, Open311 requests and the citizen
page's submissions made into draft tickets exactly as the phone path makes them (``TicketStore.create``, state
``draft``, waiting for an agent to accept), the public status of a case, and the citizen's "没有解决".

Every ticket is committed before its number is given out; an Open311 ticket's record is written by a row hook
in the ticket's own creating transaction, so a ticket never exists without it (or the other way round).
"""
from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Mapping
from zoneinfo import ZoneInfo

from sqlalchemy import Table, and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tickets import phones
from tickets.accounts.service import Principal
from tickets.channels import citizen, open311
from tickets.channels.store import ChannelPartner, Open311Request
from tickets.errors import Conflict, InvalidField, NotFound, TooManyRequests
from tickets.models import Department, Ticket
from tickets.service import CHANNELS, TicketStore

# The citizen page acts as this (history: 市民网页); Open311 partners act as themselves (see ``_partner_actor``).
CITIZEN_WEB = Principal(id=0, username="citizen-web", name="市民网页", role="system", department_id=None,
                        department_code=None, interface=None)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Partner:
    id: int
    name: str
    channel: str
    active: bool

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "channel": self.channel, "active": self.active}


@dataclass(frozen=True)
class Limits:
    """Citizen page: submissions per client address per hour and per phone number per day; status look-ups per
    address per hour, and wrong last-four-digit guesses per ticket per hour (4 digits are only 10 000)."""

    submit_per_address_hour: int = 10
    submit_per_phone_day: int = 5
    lookup_per_address_hour: int = 60
    wrong_tail_per_ticket_hour: int = 10


class RateLimiter:
    """Fixed windows counted in Redis (shared by every server process, each key with its expiry): no CAPTCHA,
    a clear 429 in Chinese with Retry-After."""

    def __init__(self, redis: Callable[[], Any], prefix: str = "hotline:channels") -> None:
        self.redis = redis
        self.prefix = prefix

    async def hit(self, kind: str, who: str, limit: int, window: int, message: str) -> None:
        key = f"{self.prefix}:{kind}:{who}"
        client = self.redis()
        count = int(await client.incr(key))
        if count == 1:
            await client.expire(key, window)
        if count > limit:
            ttl = await client.ttl(key)
            if ttl < 0:  # a key left without expiry (a crash between incr and expire) must not block for ever
                await client.expire(key, window)
                ttl = window
            raise TooManyRequests("too_many_requests", message.format(wait=_wait_text(ttl)), ttl)

    async def peek(self, kind: str, who: str, limit: int, message: str) -> None:
        client = self.redis()
        key = f"{self.prefix}:{kind}:{who}"
        raw = await client.get(key)
        if raw is not None and int(raw) >= limit:
            ttl = max(1, await client.ttl(key))
            raise TooManyRequests("too_many_requests", message.format(wait=_wait_text(ttl)), ttl)


def _wait_text(seconds: int) -> str:
    return f"{math.ceil(seconds / 60)} 分钟" if seconds >= 60 else f"{max(1, seconds)} 秒"


class ChannelService:
    def __init__(self, tickets: TicketStore, services: list[open311.Service], redis: Callable[[], Any],
                 limits: Limits = Limits()) -> None:
        self.tickets = tickets
        self.sessions: async_sessionmaker[AsyncSession] = tickets.sessions
        self.read_sessions: async_sessionmaker[AsyncSession] = tickets.read_sessions
        self.services = {s.code: s for s in services}
        self.tz: ZoneInfo = tickets.tz
        self.limits = limits
        self.limiter = RateLimiter(redis)

    # ------------------------------------------------------------ partners (admins)
    async def create_partner(self, name: str, channel: str, by: Principal | None) -> tuple[str, Partner]:
        return await add_partner(self.sessions, name, channel, self.tickets.clock(), by.id if by else None)

    async def partners(self) -> list[dict[str, Any]]:
        async with self.read_sessions() as session:
            rows = (await session.scalars(select(ChannelPartner).order_by(ChannelPartner.id))).all()
        return [{**Partner(r.id, r.name, r.channel, r.active).as_dict(), "created_at": r.created_at} for r in rows]

    async def set_active(self, partner_id: int, active: bool) -> dict[str, Any]:
        async with self.sessions.begin() as session:
            done = await session.execute(update(ChannelPartner).where(ChannelPartner.id == partner_id)
                                         .values(active=active))
            if done.rowcount != 1:
                raise NotFound("partner_not_found", f"渠道合作方 {partner_id} 不存在")
        return {"id": partner_id, "active": active}

    async def partner_for_key(self, key: str) -> Partner | None:
        if not key or len(key) > 200:
            return None
        async with self.read_sessions() as session:
            row = await session.scalar(select(ChannelPartner).where(ChannelPartner.key_hash == key_hash(key)))
        if row is None or not row.active:
            return None
        return Partner(row.id, row.name, row.channel, row.active)

    # ------------------------------------------------------------ Open311
    async def submit_open311(self, partner: Partner, intake: open311.Intake) -> str:
        address = intake.address or (f"（坐标 {intake.lat:.6f}, {intake.long:.6f}）"
                                     if intake.lat is not None and intake.long is not None else "")
        content = intake.description + (_photo_line(intake.media_url) if intake.media_url else "")
        data = {"channel": partner.channel, "caller_name": intake.caller_name, "caller_phone": intake.phone,
                "request_type": intake.request_type, "title": _title(intake.description), "content": content,
                "address": address, "category": intake.service_code}
        record = {"partner_id": partner.id, "service_code": intake.service_code, "lat": intake.lat,
                  "long": intake.long, "address_id": intake.address_id, "email": intake.email,
                  "device_id": intake.device_id, "account_id": intake.account_id, "media_url": intake.media_url}
        # the request's record commits with its ticket, in the creating transaction, or not at all
        table: Table = Open311Request.__table__  # type: ignore[assignment]
        view = await self.tickets.create(data, _partner_actor(partner), with_rows=lambda created: [
            (table, {**record, "ticket_number": created["number"]})])
        return str(view["number"])

    def _open311_select(self) -> Any:
        return (select(Ticket, Open311Request, Department.name)
                .join(Open311Request, Open311Request.ticket_number == Ticket.number)
                .outerjoin(Department, Department.id == Ticket.lead_department_id))

    def _entry(self, ticket: Ticket, record: Open311Request, agency: str | None, viewer: Partner | None
               ) -> dict[str, Any]:
        service = self.services.get(record.service_code)
        content = ticket.content  # the photo link shown to agents in the text is media_url here, not description
        content = content.removesuffix(_photo_line(record.media_url)) if record.media_url else content
        t = {"number": ticket.number, "status": ticket.status, "answer": ticket.answer, "content": content,
             "address": ticket.address, "created_at": ticket.created_at, "updated_at": ticket.updated_at,
             "reply_due": ticket.reply_due}
        rec = {"service_code": record.service_code, "address_id": record.address_id, "lat": record.lat,
               "long": record.long, "media_url": record.media_url}
        return open311.request_entry(t, rec, service.name if service else record.service_code, agency or "",
                                     self.tz, private=viewer is not None and viewer.id == record.partner_id)

    async def open311_request(self, number: str, viewer: Partner | None) -> dict[str, Any]:
        async with self.read_sessions() as session:
            row = (await session.execute(self._open311_select().where(Ticket.number == number))).first()
        if row is None:
            raise open311.Open311Errors([open311.Error(404, f"service_request_id 不存在：{number[:40]}")])
        return self._entry(row[0], row[1], row[2], viewer)

    async def open311_requests(self, q: open311.RequestQuery, viewer: Partner | None) -> list[dict[str, Any]]:
        stmt = self._open311_select()
        if q.ids:  # the spec: ids override every other parameter
            stmt = stmt.where(Ticket.number.in_(list(q.ids)))
        else:
            stmt = stmt.where(Ticket.created_at >= q.start, Ticket.created_at <= q.end)
            if q.service_codes:
                stmt = stmt.where(Open311Request.service_code.in_(list(q.service_codes)))
            closed = or_(Ticket.status.in_(list(open311.CLOSED_STATES)),
                         and_(Ticket.status == "merged", Ticket.answer.is_not(None)))
            if q.statuses and set(q.statuses) != {"open", "closed"}:
                stmt = stmt.where(closed if q.statuses[0] == "closed" else ~closed)
        async with self.read_sessions() as session:
            rows = (await session.execute(stmt.order_by(Ticket.id.desc()).limit(1000))).all()
        return [self._entry(t, r, agency, viewer) for t, r, agency in rows]

    # ------------------------------------------------------------ the citizen page
    async def check_submit_allowed(self, address: str, phone: str) -> None:
        """429 before anything is stored when this address or phone already reached its limit."""
        lim = self.limits
        await self.limiter.peek("submit-addr", address, lim.submit_per_address_hour,
                                "您提交得太频繁了（同一网络每小时最多 %d 件），请 {wait}后再试；紧急情况请拨打 12345。"
                                % lim.submit_per_address_hour)
        await self.limiter.peek("submit-phone", phones.normalize(phone), lim.submit_per_phone_day,
                                "该手机号今天已提交 %d 件诉求，请 {wait}后再试，或拨打 12345。" % lim.submit_per_phone_day)

    async def submit_citizen(self, form: Mapping[str, str], address: str) -> dict[str, Any]:
        """The page's form (already checked for shape by ``check_form``) as a draft ticket of the ``web`` channel."""
        lim = self.limits
        phone = form["phone"]
        await self.limiter.hit("submit-addr", address, lim.submit_per_address_hour, 3600,
                               "您提交得太频繁了（同一网络每小时最多 %d 件），请 {wait}后再试；紧急情况请拨打 12345。"
                               % lim.submit_per_address_hour)
        await self.limiter.hit("submit-phone", phones.normalize(phone), lim.submit_per_phone_day, 86400,
                               "该手机号今天已提交 %d 件诉求，请 {wait}后再试，或拨打 12345。" % lim.submit_per_phone_day)
        data = {"channel": "web", "caller_name": form.get("name", ""), "caller_phone": phone,
                "request_type": form.get("request_type") or "inquiry", "title": _title(form["content"]),
                "content": form["content"], "address": form["address"], "category": form["category"]}
        return await self.tickets.create(data, CITIZEN_WEB)

    def check_form(self, form: Mapping[str, str]) -> dict[str, str]:
        """The page's fields, each refused with its name and a Chinese message."""
        out: dict[str, str] = {}
        content = (form.get("content") or "").strip()
        if not content:
            raise InvalidField("content", "请描述您要反映的问题")
        if len(content) > open311.MAX_DESCRIPTION:
            raise InvalidField("content", f"问题描述不能超过 {open311.MAX_DESCRIPTION} 字")
        category = (form.get("category") or "").strip()
        if category not in self.services:
            raise InvalidField("category", "请选择问题分类" if not category else f"没有这个分类：{category[:40]}")
        address = (form.get("address") or "").strip()
        if not address:
            raise InvalidField("address", "请填写问题发生的地址")
        if len(address) > 500:
            raise InvalidField("address", "地址不能超过 500 字")
        phone = (form.get("phone") or "").strip()
        if not phone:
            raise InvalidField("phone", "请填写手机号码，用于查询进度和回访")
        if not phones.is_valid(phone):
            raise InvalidField("phone", f"手机号码无效：{phone[:32]}")
        name = (form.get("name") or "").strip()
        if len(name) > 50:
            raise InvalidField("name", "称呼不能超过 50 字")
        request_type = form.get("request_type") or "inquiry"
        if request_type not in open311.REQUEST_TYPES:
            raise InvalidField("request_type", "请选择诉求类型")
        out.update(content=content, category=category, address=address, phone=phone, name=name,
                   request_type=request_type)
        return out

    async def lookup(self, number: str, tail: str, address: str) -> dict[str, Any]:
        """A case's public status for whoever knows its number and the last four digits of its phone. A wrong
        pair answers the same as a missing ticket (no way to learn which numbers exist), and wrong guesses per
        ticket are limited so four digits cannot be tried through."""
        number, tail = number.strip(), tail.strip()
        lim = self.limits
        await self.limiter.hit("lookup-addr", address, lim.lookup_per_address_hour, 3600,
                               "查询过于频繁，请 {wait}后再试。")
        if not citizen.number_and_tail_ok(number, tail):
            raise InvalidField("number" if not citizen.NUMBER.match(number) else "tail",
                               "请输入工单编号（如 20261203-000123）和手机号后四位")
        await self.limiter.peek("lookup-wrong", number, lim.wrong_tail_per_ticket_hour,
                                "该工单查询错误次数过多，请 {wait}后再试，或拨打 12345 查询。")
        async with self.read_sessions() as session:
            row = (await session.execute(select(Ticket, Department.name).outerjoin(
                Department, Department.id == Ticket.lead_department_id).where(Ticket.number == number))).first()
        if row is None or row[0].anonymous or not citizen.tail_matches(row[0].caller_phone or "", tail):
            await self.limiter.hit("lookup-wrong", number, lim.wrong_tail_per_ticket_hour, 3600,
                                   "该工单查询错误次数过多，请 {wait}后再试，或拨打 12345 查询。")
            raise NotFound("lookup_failed", "没有找到：请核对工单编号和手机号后四位")
        t = row[0]
        answer = t.answer
        if t.status == "merged" and not answer and t.duplicate_of:
            answer = None  # the merged caller sees the master's reply once it is relayed (relay_reply sets it)
        return citizen.lookup_view({"number": t.number, "status": t.status, "created_at": t.created_at,
                                    "title": t.title, "category": t.category, "answer": answer,
                                    "replied_at": t.replied_at, "satisfaction": t.satisfaction,
                                    "resolved": t.resolved}, row[1])

    async def not_resolved(self, number: str, tail: str, address: str, note: str = "") -> dict[str, Any]:
        """The citizen says the reply did not solve it: a survey answer (unresolved, dissatisfied) through the
        workflow, so it goes to the 不满意台账 and is reopened or waits for a supervisor like a phone survey's."""
        view = await self.lookup(number, tail, address)
        if not view["can_say_unresolved"]:
            raise Conflict("not_replied" if not view["reply"] else "already_answered",
                           "该工单尚未答复，暂不能评价" if not view["reply"]
                           else "该工单已回访，如问题仍未解决，请拨打 12345 反映")
        await self.tickets.act(view["number"], "record_survey", {
            "satisfaction": "dissatisfied", "resolved": False, "via": "citizen_web",
            "note": ("市民在查询页面反映：没有解决。" + note.strip()[:500]).strip()}, CITIZEN_WEB)
        return await self.lookup(number, tail, address)


async def add_partner(sessions: async_sessionmaker[AsyncSession], name: str, channel: str, now: datetime,
                      by_id: int | None) -> tuple[str, Partner]:
    """A new partner and its API key, shown this once; only its sha256 is stored (the API and the CLI)."""
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidField("name", "name 须为 1 到 100 个字符")
    if channel not in CHANNELS:
        raise InvalidField("channel", f"channel 须为 {', '.join(CHANNELS)} 之一")
    key = "o311_" + secrets.token_urlsafe(32)
    try:
        async with sessions.begin() as session:
            row = ChannelPartner(name=name, channel=channel, key_hash=key_hash(key), active=True, created_at=now,
                                 created_by=by_id)
            session.add(row)
            await session.flush()
            partner = Partner(row.id, row.name, row.channel, True)
    except IntegrityError:
        raise Conflict("partner_exists", f"渠道合作方 {name} 已存在") from None
    return key, partner


def _photo_line(url: str) -> str:
    return f"\n照片：{url}"


def _partner_actor(partner: Partner) -> Principal:
    return Principal(id=0, username=f"open311:{partner.id}", name=f"{partner.name}（Open311）", role="system",
                     department_id=None, department_code=None, interface=None)


def _title(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first[:40] + ("…" if len(first) > 40 else "")

