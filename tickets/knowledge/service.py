"""知识库: answers agents give on the spot (直接办结), kept by supervisors and departments.

An entry past its ``valid_to`` date is hidden from agents' search and listed for review instead, so an
outdated policy answer is never read to a caller. Search is a LIKE over question, keywords and answer
for each query word (jieba splits a Chinese sentence into words), scored in Python over at most a few
hundred candidate rows.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Callable, Mapping, Sequence
from zoneinfo import ZoneInfo

from sqlalchemy import Boolean, Date, ForeignKey, Integer, String, Text, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from tickets.accounts.service import Principal
from tickets.errors import Forbidden, InvalidField, NotFound
from tickets.models import Base, Department

EDITOR_ROLES = ("supervisor", "admin", "department")
_SPLIT = re.compile(r"[\s,，。；;、？?！!：:（）()《》\"'“”]+")


class KnowledgeEntry(Base):
    __tablename__ = "knowledge_entries"
    id: Mapped[int] = mapped_column(primary_key=True)
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    keywords: Mapped[str] = mapped_column(Text, default="")  # space separated; searched like the question
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date, index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    created_by: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime]
    updated_by: Mapped[int | None] = mapped_column(Integer)
    updated_by_name: Mapped[str] = mapped_column(String(100), default="")


# ---------------------------------------------------------------- pure helpers
def is_valid_on(valid_from: date | None, valid_to: date | None, day: date) -> bool:
    return (valid_from is None or valid_from <= day) and (valid_to is None or day <= valid_to)


def query_terms(text: str, cut: Callable[[str], Sequence[str]] | None = None) -> list[str]:
    """Words to look for: the chunks the user typed, plus jieba's words for long Chinese chunks."""
    terms: list[str] = []
    for chunk in _SPLIT.split(text or ""):
        chunk = chunk.strip()
        if not chunk:
            continue
        terms.append(chunk)
        if cut is not None and len(chunk) > 3:
            terms += [w for w in cut(chunk) if len(w) >= 2 and w != chunk]
    return list(dict.fromkeys(terms))[:12]


def score(entry: Mapping[str, str], terms: Sequence[str]) -> int:
    total = 0
    for t in terms:
        weight = max(1, len(t) - 1)  # longer words say more than one common character pair
        total += weight * (3 * (t in entry["keywords"]) + 2 * (t in entry["question"]) + (t in entry["answer"]))
    return total


_cache_dir: str | None = None


def use_cache_dir(path: str) -> None:
    """Where jieba caches its parsed dictionary: under the server's data dir, never the shared /tmp."""
    global _cache_dir
    _cache_dir = path


def _jieba_cut(text: str) -> list[str]:
    import jieba  # loaded on first search only: its dictionary takes a second to read

    if not jieba.dt.initialized:
        jieba.dt.tmp_dir = _cache_dir
    jieba.setLogLevel(60)
    return list(jieba.cut_for_search(text))


def _date(value: Any, field: str) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, date):
        day = value
    else:
        try:
            day = date.fromisoformat(str(value))
        except ValueError:
            raise InvalidField(field, f"{field} 须为日期，如 2026-12-31") from None
    if not 2000 <= day.year <= 2100:
        raise InvalidField(field, f"{field} 须在 2000 年至 2100 年之间")
    return day


@dataclass(frozen=True)
class EntryInput:
    question: str
    answer: str
    keywords: str
    department_id: int | None
    valid_from: date | None
    valid_to: date | None
    active: bool = True

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> "EntryInput":
        def text(key: str, label: str, limit: int, required: bool = True) -> str:
            value = data.get(key, "")
            if not isinstance(value, str):
                raise InvalidField(key, f"{label}必须是文字")
            if required and not value.strip():
                raise InvalidField(key, f"请填写{label}")
            if len(value) > limit:
                raise InvalidField(key, f"{label}不能超过 {limit} 个字符")
            return value.strip()

        dept = data.get("department_id")
        if dept in ("", None):
            dept = None
        elif isinstance(dept, str) and dept.isdigit():
            dept = int(dept)
        elif isinstance(dept, bool) or not isinstance(dept, int):
            raise InvalidField("department_id", "单位编号必须是整数")
        if dept is not None and not 1 <= dept <= 2**63 - 1:
            raise InvalidField("department_id", "没有这个单位")
        vf, vt = _date(data.get("valid_from"), "valid_from"), _date(data.get("valid_to"), "valid_to")
        if vf and vt and vt < vf:
            raise InvalidField("valid_to", "有效期结束日期不能早于开始日期")
        active = data.get("active", True)
        if not isinstance(active, bool):
            raise InvalidField("active", "active 必须是 true 或 false")
        return cls(text("question", "问题", 2000), text("answer", "答复口径", 10000),
                   " ".join(text("keywords", "关键词", 500, required=False).replace("，", " ").split()),
                   dept, vf, vt, active)


# ---------------------------------------------------------------- store
class KnowledgeStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Callable[[], datetime], tz: ZoneInfo,
                 cut: Callable[[str], Sequence[str]] | None = _jieba_cut,
                 read_sessions: async_sessionmaker[AsyncSession] | None = None) -> None:
        self.sessions = sessions
        # SQLite: the write engine takes the write lock at BEGIN; searches use the read engine when given.
        self.read_sessions = read_sessions or sessions
        self.clock = clock
        self.tz = tz
        self.cut = cut

    async def warm_up(self) -> None:
        """Load jieba's dictionary in a thread (about a second) so the first agent's search does not stall
        the event loop."""
        import asyncio

        if self.cut is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.cut, "知识库预热")

    def today(self) -> date:
        return self.clock().astimezone(self.tz).date()

    def _valid_clause(self, day: date) -> Any:
        return and_(KnowledgeEntry.active.is_(True),
                    or_(KnowledgeEntry.valid_from.is_(None), KnowledgeEntry.valid_from <= day),
                    or_(KnowledgeEntry.valid_to.is_(None), KnowledgeEntry.valid_to >= day))

    def view(self, e: KnowledgeEntry) -> dict[str, Any]:
        day = self.today()
        return {"id": e.id, "question": e.question, "answer": e.answer, "keywords": e.keywords,
                "department_id": e.department_id, "valid_from": e.valid_from, "valid_to": e.valid_to,
                "active": e.active, "valid": e.active and is_valid_on(e.valid_from, e.valid_to, day),
                "expired": e.valid_to is not None and e.valid_to < day,
                "updated_at": e.updated_at, "updated_by_name": e.updated_by_name}

    @staticmethod
    def _check_editor(who: Principal, department_id: int | None) -> None:
        if who.role not in EDITOR_ROLES:
            raise Forbidden("forbidden", "只有班长和承办单位可以编辑知识库")
        if who.role == "department" and department_id != who.department_id:
            raise Forbidden("forbidden", "承办单位只能编辑本单位的知识条目")

    @staticmethod
    async def _check_department(session: AsyncSession, department_id: int | None) -> None:
        """A 400 naming the field instead of the database's foreign-key error."""
        if department_id is not None and await session.get(Department, department_id) is None:
            raise InvalidField("department_id", f"没有编号为 {department_id} 的单位")

    async def create(self, data: Mapping[str, Any], who: Principal) -> dict[str, Any]:
        inp = EntryInput.parse(data)
        dept = who.department_id if who.role == "department" else inp.department_id
        self._check_editor(who, dept)
        now = self.clock()
        async with self.sessions.begin() as session:
            await self._check_department(session, dept)
            entry = KnowledgeEntry(question=inp.question, answer=inp.answer, keywords=inp.keywords,
                                   department_id=dept, valid_from=inp.valid_from, valid_to=inp.valid_to,
                                   active=inp.active, created_at=now, created_by=who.id, updated_at=now,
                                   updated_by=who.id, updated_by_name=who.name)
            session.add(entry)
            await session.flush()
            return self.view(entry)

    async def update(self, entry_id: int, data: Mapping[str, Any], who: Principal) -> dict[str, Any]:
        inp = EntryInput.parse(data)
        async with self.sessions.begin() as session:
            entry = await session.get(KnowledgeEntry, entry_id)
            if entry is None:
                raise NotFound("knowledge_not_found", "知识条目不存在")
            self._check_editor(who, entry.department_id)
            dept = who.department_id if who.role == "department" else inp.department_id
            await self._check_department(session, dept)
            for key, value in (("question", inp.question), ("answer", inp.answer), ("keywords", inp.keywords),
                               ("department_id", dept), ("valid_from", inp.valid_from),
                               ("valid_to", inp.valid_to), ("active", inp.active)):
                setattr(entry, key, value)
            entry.updated_at, entry.updated_by, entry.updated_by_name = self.clock(), who.id, who.name
            return self.view(entry)

    def can_read(self, who: Principal, e: KnowledgeEntry) -> bool:
        """Reading one entry by id shows no more than search and the review list do.

        Supervisors and admins keep the whole base (they review and renew it); a department its own entries in
        any state (it answers for them and renews them) and other departments' entries only while agents may
        read them out; agents (and every other role) only entries valid today and switched on, so an outdated
        or withdrawn answer is never read to a caller by following an old link or guessing an id.
        """
        if who.role in ("supervisor", "admin"):
            return True
        if who.role == "department" and e.department_id is not None and e.department_id == who.department_id:
            return True
        return e.active and is_valid_on(e.valid_from, e.valid_to, self.today())

    async def get(self, entry_id: int, who: Principal) -> dict[str, Any]:
        async with self.read_sessions() as session:
            entry = await session.get(KnowledgeEntry, entry_id)
            # Hidden and missing answer alike: 404 does not tell that a withdrawn entry exists.
            if entry is None or not self.can_read(who, entry):
                raise NotFound("knowledge_not_found", "知识条目不存在")
            return self.view(entry)

    async def search(self, text: str, limit: int = 20, department_id: int | None = None) -> list[dict[str, Any]]:
        """Valid entries only, best match first; an empty query lists the newest valid entries."""
        day = self.today()
        stmt = select(KnowledgeEntry).where(self._valid_clause(day))
        if department_id is not None:
            stmt = stmt.where(KnowledgeEntry.department_id == department_id)
        terms = query_terms(text, self.cut)
        if terms:
            stmt = stmt.where(or_(*[or_(KnowledgeEntry.question.contains(t, autoescape=True),
                                        KnowledgeEntry.keywords.contains(t, autoescape=True),
                                        KnowledgeEntry.answer.contains(t, autoescape=True)) for t in terms]))
        async with self.read_sessions() as session:
            rows = (await session.scalars(stmt.order_by(KnowledgeEntry.updated_at.desc()).limit(300))).all()
            views = [self.view(e) for e in rows]
        if terms:
            ranked = sorted(((score(v, terms), i, v) for i, v in enumerate(views)), key=lambda x: (-x[0], x[1]))
            views = [{**v, "score": s} for s, _, v in ranked if s > 0]
        return views[:limit]

    async def for_review(self, who: Principal) -> list[dict[str, Any]]:
        """Entries past their validity (or switched off): hidden from agents until someone renews them."""
        day = self.today()
        stmt = select(KnowledgeEntry).where(or_(KnowledgeEntry.valid_to < day, KnowledgeEntry.active.is_(False)))
        if who.role == "department":
            stmt = stmt.where(KnowledgeEntry.department_id == who.department_id)
        async with self.read_sessions() as session:
            rows = (await session.scalars(stmt.order_by(KnowledgeEntry.valid_to).limit(500))).all()
            return [self.view(e) for e in rows]

    async def all_entries(self, who: Principal, limit: int = 500) -> list[dict[str, Any]]:
        stmt = select(KnowledgeEntry)
        if who.role == "department":
            stmt = stmt.where(KnowledgeEntry.department_id == who.department_id)
        async with self.read_sessions() as session:
            rows = (await session.scalars(stmt.order_by(KnowledgeEntry.id.desc()).limit(limit))).all()
            return [self.view(e) for e in rows]
