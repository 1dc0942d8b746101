"""Attachments of a ticket (photos of the fixed problem, scanned replies), stored on disk under
``<data_dir>/attachments``; the database keeps name, type, size and checksum.

The type is decided by the file's first bytes, not by the name or the browser's claim, so a renamed
executable is refused. Access follows the ticket: whoever may open the ticket may see its attachments.
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote

from sqlalchemy import ForeignKey, Integer, String, Text, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from tickets.accounts.service import Principal
from tickets.errors import Forbidden, InvalidField, NotFound, TicketError
from tickets.models import Base, Ticket
from tickets.service import TicketStore

MAX_BYTES = 10 * 1024 * 1024
# (magic prefix test, content type, extension)
_KINDS: list[tuple[Callable[[bytes], bool], str, str]] = [
    (lambda b: b.startswith(b"\xff\xd8\xff"), "image/jpeg", "jpg"),
    (lambda b: b.startswith(b"\x89PNG\r\n\x1a\n"), "image/png", "png"),
    (lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP", "image/webp", "webp"),
    (lambda b: b.startswith((b"GIF87a", b"GIF89a")), "image/gif", "gif"),
    (lambda b: b.startswith(b"%PDF-"), "application/pdf", "pdf"),
]
_SAFE_NAME = re.compile(r"[^\w.\-\u4e00-\u9fff （）()]+")


class TooLarge(TicketError):
    http_status = 413


class TicketAttachment(Base):
    __tablename__ = "ticket_attachments"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    stored_name: Mapped[str] = mapped_column(String(200), unique=True)
    note: Mapped[str] = mapped_column(Text, default="")
    uploaded_by: Mapped[int | None] = mapped_column(Integer)
    uploaded_by_name: Mapped[str] = mapped_column(String(100), default="")
    department_id: Mapped[int | None] = mapped_column(Integer)
    uploaded_at: Mapped[datetime]


def sniff(head: bytes) -> tuple[str, str] | None:
    """(content type, extension) from the first bytes, or None for a type we do not keep."""
    for test, ctype, ext in _KINDS:
        if test(head):
            return ctype, ext
    return None


def clean_filename(name: str) -> str:
    # Some clients (aiohttp, curl --form-string) send RFC 5987 percent-encoded UTF-8 names; browsers send raw UTF-8.
    name = unquote(name or "") if re.search(r"%[0-9A-Fa-f]{2}", name or "") else (name or "")
    base = os.path.basename(name.replace("\\", "/"))
    return (_SAFE_NAME.sub("_", base).strip(" .") or "附件")[:200]


@dataclass
class AttachmentStore:
    sessions: async_sessionmaker[AsyncSession]
    tickets: TicketStore
    root: Path
    clock: Callable[[], datetime]
    max_bytes: int = MAX_BYTES

    def _view(self, a: TicketAttachment) -> dict[str, Any]:
        return {"id": a.id, "filename": a.filename, "content_type": a.content_type, "size": a.size,
                "sha256": a.sha256, "note": a.note, "uploaded_by_name": a.uploaded_by_name,
                "department_id": a.department_id, "uploaded_at": a.uploaded_at,
                "url": f"/api/v1/attachments/{a.id}"}

    async def _ticket_id(self, number: str, who: Principal) -> int:
        await self.tickets.get(number, who)  # 404 for a ticket this person may not see
        async with self.sessions() as session:
            tid = await session.scalar(select(Ticket.id).where(Ticket.number == number))
        if tid is None:
            raise NotFound("ticket_not_found", f"工单 {number} 不存在")
        return tid

    async def list(self, number: str, who: Principal) -> list[dict[str, Any]]:
        tid = await self._ticket_id(number, who)
        async with self.sessions() as session:
            # Photos of duplicates merged into this ticket belong to the case (并单 moves them here).
            numbers = dict((await session.execute(select(Ticket.id, Ticket.number).where(
                Ticket.duplicate_of == number, Ticket.status == "merged"))).all())
            numbers[tid] = number
            rows = (await session.scalars(select(TicketAttachment).where(TicketAttachment.ticket_id.in_(list(numbers)))
                                          .order_by(TicketAttachment.id))).all()
            return [{**self._view(a), "ticket": numbers[a.ticket_id]} for a in rows]

    async def save(self, number: str, who: Principal, filename: str, data: bytes, note: str = "") -> dict[str, Any]:
        # "system": a citizen's photo from the public form (web/citizen.py), after its own type and size checks
        if who.role not in ("department", "agent", "supervisor", "admin", "system"):
            raise Forbidden("forbidden", "无权上传附件")
        tid = await self._ticket_id(number, who)
        if not data:
            raise InvalidField("file", "文件为空")
        if len(data) > self.max_bytes:
            raise TooLarge("attachment_too_large", f"附件不能超过 {self.max_bytes // (1024 * 1024)} MB")
        kind = sniff(data[:16])
        if kind is None:
            raise InvalidField("file", "只接受 JPG、PNG、WEBP、GIF 图片和 PDF 文件")
        ctype, ext = kind
        now = self.clock()
        folder = self.root / now.strftime("%Y%m")
        folder.mkdir(parents=True, exist_ok=True)
        stored = f"{now.strftime('%Y%m')}/{secrets.token_hex(16)}.{ext}"
        path = self.root / stored
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # readers never see half a file
        try:
            async with self.sessions.begin() as session:
                row = TicketAttachment(ticket_id=tid, filename=clean_filename(filename), content_type=ctype,
                                       size=len(data), sha256=hashlib.sha256(data).hexdigest(), stored_name=stored,
                                       note=note[:2000], uploaded_by=who.id, uploaded_by_name=who.name,
                                       department_id=who.department_id, uploaded_at=now)
                session.add(row)
                await session.flush()
                return self._view(row)
        except BaseException:
            path.unlink(missing_ok=True)
            raise

    async def open(self, attachment_id: int, who: Principal) -> tuple[dict[str, Any], Path]:
        async with self.sessions() as session:
            row = (await session.execute(select(TicketAttachment, Ticket.number, Ticket.duplicate_of, Ticket.status)
                                         .join(Ticket, Ticket.id == TicketAttachment.ticket_id)
                                         .where(TicketAttachment.id == attachment_id))).first()
        if row is None:
            raise NotFound("attachment_not_found", "附件不存在")
        att, number, master, status = row
        # A merged duplicate's photo is seen by whoever sees its master.
        for candidate in [number] + ([master] if master and status == "merged" else []):
            try:
                await self.tickets.get(candidate, who)
                break
            except NotFound:
                continue
        else:
            raise NotFound("attachment_not_found", "附件不存在")
        return self._view(att), self.root / att.stored_name
