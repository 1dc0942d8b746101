"""Accounts, roles, departments and login tokens (argon2 password hashes; tokens stored only as sha256)."""
from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import secrets
import time
import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from config.settings import ServerSettings, Settings
from tickets.accounts.hashing import HashPool
from tickets.errors import Conflict, InvalidField, NotFound, TooManyRequests, Unauthorized
from tickets.models import AuditEntry, AuthToken, Department, User
from tickets.workflow import Actor

log = logging.getLogger("hotline.accounts")
TOKEN_CACHE_SECONDS = 30.0
ROLES = ("agent", "department", "supervisor", "admin")
SUB_CENTER_ROLES = ("agent", "supervisor")  # may belong to a district unit: that district's sub-center
ROLE_LABELS = {"agent": "话务员", "department": "承办单位", "supervisor": "班长", "admin": "管理员"}
# Bumped in Redis whenever an account is disabled, changed or loses tokens: every server process compares it
# on each request and drops its token cache when it moved, so the change holds at once everywhere.
REVOKED_KEY = "hotline:accounts:revoked"
REVOKED_KEY_SECONDS = 7 * 24 * 3600
_MARK_UNKNOWN = b"?unknown"  # Redis did not answer: the cache is not trusted
AUDIT_CATEGORIES = ("account", "access")


@dataclass(frozen=True)
class Principal:
    """Who is asking: the shape every package may read from ``request["user"]`` (as a dict)."""

    id: int
    username: str
    name: str
    role: str
    department_id: int | None
    department_code: str | None
    interface: str | None
    # A district sub-center (区分中心) account: an agent or supervisor attached to a district unit sees that
    # district's tickets only (tickets/visibility.py); None for the city center and for departments.
    district: str | None = None

    def as_actor(self) -> Actor:
        return Actor(self.id, self.role, self.name, self.department_id)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "username": self.username, "name": self.name, "role": self.role,
                "role_label": ROLE_LABELS.get(self.role, self.role), "department_id": self.department_id,
                "department_code": self.department_code, "interface": self.interface, "district": self.district}


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _actor(who: Principal | Mapping[str, Any] | None) -> tuple[int | None, str, str]:
    if who is None:
        return None, "", ""
    if isinstance(who, Principal):
        return who.id, who.username, who.role
    return who.get("id"), str(who.get("username") or ""), str(who.get("role") or "")


class AuditLog:
    """The record of access (``audit_log``): account changes by admins and every read of a caller's personal
    data or export, who, when, what. Only appends and reads; nothing here (nor any route) edits a row."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Callable[[], datetime],
                 read_sessions: async_sessionmaker[AsyncSession] | None = None) -> None:
        self.sessions = sessions
        self.read_sessions = read_sessions or sessions
        self.clock = clock
        # The server sets this to the ticket store's group-commit writer (tickets/writer.py, ``submit``): a
        # standalone entry then commits in the writer's next batch. In a transaction of its own it waited for
        # the process's one SQLite write slot behind whole batches and paid an fsync of its own, on every
        # agent's ticket detail. The caller still waits for that commit: a caller's number is not shown before
        # its record is on disk, and if the batch fails the read fails (503) instead of going unrecorded.
        # Called with ``urgent=True``: the row gets a short batch of its own before the next batch of actions.
        self.writer: Callable[..., Awaitable[Any]] | None = None

    def entry(self, who: Principal | Mapping[str, Any] | None, category: str, action: str, subject: str,
              detail: Mapping[str, Any] | None = None, address: str | None = "") -> AuditEntry:
        """A new row, for a caller that adds it in its own transaction (the change and its record commit together)."""
        actor_id, username, role = _actor(who)
        return AuditEntry(at=self.clock(), category=category, action=action, actor_id=actor_id,
                          actor_username=username[:64], actor_role=role[:20], subject=subject[:200],
                          detail=dict(detail or {}), address=(address or "")[:100])

    async def record(self, who: Principal | Mapping[str, Any] | None, category: str, action: str, subject: str,
                     detail: Mapping[str, Any] | None = None, address: str | None = "") -> None:
        row = self.entry(who, category, action, subject, detail, address)
        if self.writer is not None:
            values = {c.key: getattr(row, c.key) for c in AuditEntry.__table__.columns if c.key != "id"}
            await self.writer(lambda conn: conn.execute(insert(AuditEntry).values(**values)), urgent=True)
            return
        async with self.sessions.begin() as session:
            session.add(row)

    async def access(self, who: Principal | Mapping[str, Any] | None, action: str, subject: str,
                     detail: Mapping[str, Any] | None = None, address: str | None = "") -> None:
        """A read of personal data or an export (``category`` access)."""
        await self.record(who, "access", action, subject, detail, address)

    async def list(self, *, category: str | None = None, actor_id: int | None = None, subject: str | None = None,
                   action: str | None = None, since: datetime | None = None, until: datetime | None = None,
                   limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """Newest first; ``subject`` matches exactly (``ticket:20261123-000001``, ``user:5``)."""
        conditions = []
        if category:
            conditions.append(AuditEntry.category == category)
        if actor_id is not None:
            conditions.append(AuditEntry.actor_id == actor_id)
        if subject:
            conditions.append(AuditEntry.subject == subject)
        if action:
            conditions.append(AuditEntry.action == action)
        if since is not None:
            conditions.append(AuditEntry.at >= since)
        if until is not None:
            conditions.append(AuditEntry.at < until)
        async with self.read_sessions() as session:
            total = await session.scalar(select(func.count()).select_from(AuditEntry).where(*conditions))
            rows = (await session.scalars(select(AuditEntry).where(*conditions)
                                          .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
                                          .limit(limit).offset(offset))).all()
        return {"total": int(total or 0), "items": [
            {"id": r.id, "at": r.at, "category": r.category, "action": r.action, "actor_id": r.actor_id,
             "actor_username": r.actor_username, "actor_role": r.actor_role, "subject": r.subject,
             "detail": r.detail, "address": r.address} for r in rows]}


class UserStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Callable[[], datetime],
                 settings: Settings, read_sessions: async_sessionmaker[AsyncSession] | None = None) -> None:
        self.sessions = sessions
        self.read_sessions = read_sessions or sessions
        self.clock = clock
        self.settings = settings
        self._departments: dict[int, Department] = {}
        # Department code -> district, for the district units of departments.toml (level = "district"): the
        # units a center account may belong to, making it that district's sub-center.
        self._unit_districts: dict[str, str] = {}
        self._token_cache: dict[str, tuple[Principal, datetime | None, float, bytes | None]] = {}
        # The revocation-mark read the requests of this turn of the event loop wait for (``_revocation_mark``).
        self._mark_pending: asyncio.Future[bytes | None] | None = None
        self._mark_tasks: set[asyncio.Task[None]] = set()
        self.audit = AuditLog(sessions, clock, self.read_sessions)
        # A Redis client, set by server.py once Redis is up: the cross-process revocation mark (REVOKED_KEY).
        self.marker: Any = None
        self._hasher = PasswordHasher(time_cost=settings.server.password_time_cost,
                                      memory_cost=settings.server.password_memory_kib)
        # Verifying against this keeps a login for an unknown user as slow as one with a wrong password.
        self._dummy_hash = self._hasher.hash("not-a-password")
        # At most this many argon2 verifications at once per process: a flood of 50 parallel guesses would
        # otherwise run 50 hashes before the first failure is even counted, starving every other request.
        slots = max(1, (os.cpu_count() or 2) // 2)
        self._hashing = asyncio.Semaphore(slots)
        self._hash_pool = HashPool(slots, settings.server.password_hash_nice)

    def close(self) -> None:
        """Stop the password-hashing threads (queued hashes are dropped: the server is stopping)."""
        self._hash_pool.close()

    # ------------------------------------------------------------ departments
    async def sync_departments(self, path: Path) -> None:
        """Add new departments from the city's file and update names; never delete (history points at them)."""
        if not path.exists():
            return
        with path.open("rb") as fh:
            entries = tomllib.load(fh).get("department", [])
        self._unit_districts = {str(e["code"]): str(e["district"]) for e in entries
                                if e.get("code") and e.get("level") == "district" and e.get("district")}
        async with self.sessions.begin() as session:
            existing = {d.code: d for d in (await session.scalars(select(Department))).all()}
            for entry in entries:
                code, name = entry.get("code"), entry.get("name")
                if not code or not name:
                    raise InvalidField("department", f"{path}: every department needs code and name: {entry}")
                dept = existing.get(code)
                if dept is None:
                    session.add(Department(code=code, name=name, domains=list(entry.get("domains", [])), active=True))
                else:
                    dept.name, dept.domains, dept.active = name, list(entry.get("domains", [])), True
        await self.load_departments()

    async def create_department(self, code: str, name: str, domains: list[str] | None = None) -> Department:
        async with self.sessions.begin() as session:
            if await session.scalar(select(Department.id).where(Department.code == code)):
                raise Conflict("department_exists", f"单位编码 {code} 已存在")
            dept = Department(code=code, name=name, domains=list(domains or []), active=True)
            session.add(dept)
        await self.load_departments()
        return dept

    async def load_departments(self) -> dict[int, Department]:
        async with self.read_sessions() as session:
            self._departments = {d.id: d for d in (await session.scalars(select(Department))).all()}
        return self._departments

    @property
    def departments(self) -> dict[int, Department]:
        return self._departments

    def department_by_code(self, code: str) -> Department | None:
        return next((d for d in self._departments.values() if d.code == code), None)

    # ------------------------------------------------------------ users
    async def create_user(self, username: str, password: str, role: str, *, display_name: str = "",
                          department_code: str | None = None, interface: str | None = None,
                          member_name: str | None = None, by: Principal | None = None,
                          address: str | None = "") -> Principal:
        if role not in ROLES:
            raise InvalidField("role", f"角色须为 {', '.join(ROLES)} 之一")
        if not username or len(username) > 64:
            raise InvalidField("username", "用户名不能为空且不超过64个字符")
        if len(password) < 8:
            raise InvalidField("password", "密码至少8个字符")
        department_id = None
        if role == "department" and not department_code:
            raise InvalidField("department", "承办单位账号须指定所属单位")
        if department_code:
            if not self._departments:
                await self.load_departments()
            department_id = self._unit_for(role, department_code).id
        async with self.sessions.begin() as session:
            if await session.scalar(select(User.id).where(User.username == username)):
                raise Conflict("username_taken", f"用户名 {username} 已存在")
            password_hash = await self._hash_pool.run(self._hasher.hash, password)
            user = User(username=username, display_name=display_name or username,
                        password_hash=password_hash, role=role, department_id=department_id,
                        interface=interface, member_name=member_name, active=True, created_at=self.clock())
            session.add(user)
            await session.flush()
            if by is not None:
                session.add(self.audit.entry(by, "account", "create_user", f"user:{user.id}", {
                    "username": username, "role": role, "department": department_code}, address))
            return self._principal(user)

    async def ensure_admin(self, username: str, password: str) -> str | None:
        """Create the first admin account when there is none. Returns the password when one was created."""
        async with self.read_sessions() as session:
            if await session.scalar(select(User.id).where(User.role == "admin").limit(1)):
                return None
        password = password or secrets.token_urlsafe(12)
        await self.create_user(username, password, "admin", display_name="系统管理员")
        return password

    async def list_users(self) -> list[Principal]:
        async with self.read_sessions() as session:
            return [self._principal(u) for u in (await session.scalars(select(User).order_by(User.id))).all()]

    async def list_accounts(self) -> list[dict[str, Any]]:
        """Every account as the admins see it: the principal's fields and whether it is active."""
        async with self.read_sessions() as session:
            return [{**self._principal(u).as_dict(), "active": u.active}
                    for u in (await session.scalars(select(User).order_by(User.id))).all()]

    async def user_by_interface(self, interface: str) -> Principal | None:
        async with self.read_sessions() as session:
            user = await session.scalar(select(User).where(User.interface == interface, User.active.is_(True)))
            return self._principal(user) if user else None

    def _unit_for(self, role: str, department_code: str) -> Department:
        """The unit an account of this role may belong to: any department for a department account, a
        district unit (区分中心) for an agent or supervisor; admins belong to none."""
        dept = self.department_by_code(department_code)
        if dept is None:
            raise InvalidField("department", f"没有编码为 {department_code} 的单位")
        if role in SUB_CENTER_ROLES and department_code not in self._unit_districts:
            raise InvalidField("department", f"话务员、班长只能属于区级单位（区分中心），{department_code} 不是 "
                                             f"departments.toml 中 level = \"district\" 的单位")
        if role not in SUB_CENTER_ROLES and role != "department":
            raise InvalidField("department", "管理员账号不属于任何单位")
        return dept

    def _principal(self, user: User) -> Principal:
        dept = self._departments.get(user.department_id) if user.department_id else None
        district = self._unit_districts.get(dept.code) if dept and user.role in SUB_CENTER_ROLES else None
        return Principal(user.id, user.username, user.display_name, user.role, user.department_id,
                         dept.code if dept else None, user.interface, district)

    # ------------------------------------------------------------ login
    async def login(self, username: str, password: str, kind: str = "session", label: str = "", *,
                    gate: Callable[[], Awaitable[None]] | None = None) -> tuple[str, Principal]:
        """``gate`` runs just before the password is hashed (the login throttle): an attempt that queued
        behind others for the hasher is refused there if the failures counted meanwhile say so."""
        async with self.read_sessions() as session:
            user = await session.scalar(select(User).where(User.username == username))
        # argon2 takes tens of milliseconds of CPU by design: on the event loop, a few logins a second would
        # stall every other request of this process. (argon2-cffi releases the GIL while hashing.) The pool's
        # threads run at a lower CPU priority (hashing.py): a flood's hashes wait for the ticket path.
        async with self._hashing:
            if gate is not None:
                await gate()
            verified = await self._hash_pool.run(
                self._verify, user.password_hash if user else self._dummy_hash, password)
        if not verified:
            user = None
        if user is None or not user.active:
            raise Unauthorized("bad_credentials", "用户名或密码错误")
        token = secrets.token_urlsafe(32)
        now = self.clock()
        server = self.settings.server
        expires = now + (timedelta(hours=server.session_hours) if kind == "session"
                         else timedelta(days=server.api_token_days))
        async with self.sessions.begin() as session:
            session.add(AuthToken(token_hash=token_hash(token), user_id=user.id, kind=kind, label=label,
                                  created_at=now, expires_at=expires))
        if not self._departments:
            await self.load_departments()
        return token, self._principal(user)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return bool(self._hasher.verify(password_hash, password))
        except (VerificationError, InvalidHashError):
            return False

    async def authenticate(self, token: str) -> Principal | None:
        """The user behind a token. Answers from a 30-second in-process cache: every API call needs this,
        and a logout or deactivation reaches other server processes within those 30 seconds."""
        key = token_hash(token)
        mark = await self._revocation_mark()
        cached = self._token_cache.get(key)
        now_mono = time.monotonic()
        if cached is not None and now_mono - cached[2] < TOKEN_CACHE_SECONDS and cached[3] == mark \
                and mark != _MARK_UNKNOWN:
            principal, expires = cached[0], cached[1]
            if expires is None or expires > self.clock():
                return principal
        principal, expires = await self._authenticate(key)
        if principal is None:
            self._token_cache.pop(key, None)
            return None
        if len(self._token_cache) > 10_000:
            self._token_cache.clear()
        self._token_cache[key] = (principal, expires, now_mono, mark)
        return principal

    async def _revocation_mark(self) -> bytes | None:
        """The cross-process revocation mark, read before the database so that a change committed meanwhile
        moves it after our read (and the next request looks again). None without Redis (one process).

        Requests arriving in the same turn of the event loop share one GET, sent in a later turn, so each
        request's mark is still read after it arrived: a revocation before a request is never missed. One GET
        per request was 8 % of the server's CPU under 50 clients (py-spy, benchmarks/ticket_cpu.py)."""
        if self.marker is None:
            return None
        pending = self._mark_pending
        if pending is None:
            pending = self._mark_pending = asyncio.get_running_loop().create_future()
            task = asyncio.get_running_loop().create_task(self._read_mark(pending))
            self._mark_tasks.add(task)
            task.add_done_callback(self._mark_tasks.discard)
        # shield: a request that goes away must not cancel the read the others wait for
        return await asyncio.shield(pending)

    async def _read_mark(self, pending: asyncio.Future[bytes | None]) -> None:
        self._mark_pending = None  # from here on, a new request waits for the next read
        mark: bytes | None = _MARK_UNKNOWN
        try:
            value = await self.marker.get(REVOKED_KEY)
            mark = value if isinstance(value, bytes) else (str(value).encode() if value is not None else None)
        except Exception as exc:  # Redis away: no cache, every request asks the database
            log.warning("revocation mark unreadable (%s): token cache bypassed", exc)
        finally:  # also when cancelled (shutdown): nobody is left waiting, and an unknown mark trusts no cache
            if not pending.done():
                pending.set_result(mark)

    async def _revoked(self) -> None:
        """Tokens or accounts changed: this process forgets its cache now, the others at their next request."""
        self._token_cache.clear()
        if self.marker is None:
            return
        try:
            await self.marker.incr(REVOKED_KEY)
            await self.marker.expire(REVOKED_KEY, REVOKED_KEY_SECONDS)
        except Exception:
            log.exception("could not move the revocation mark in Redis: other processes may accept the old tokens "
                          "for up to %d s", TOKEN_CACHE_SECONDS)

    async def _authenticate(self, key: str) -> tuple[Principal | None, datetime | None]:
        async with self.read_sessions() as session:
            row = (await session.execute(
                select(AuthToken, User).join(User, User.id == AuthToken.user_id)
                .where(AuthToken.token_hash == key)
            )).first()
        if row is None:
            return None, None
        tok, user = row
        if not user.active or (tok.expires_at is not None and tok.expires_at <= self.clock()):
            return None, None
        return self._principal(user), tok.expires_at

    async def logout(self, token: str) -> None:
        self._token_cache.pop(token_hash(token), None)
        async with self.sessions.begin() as session:
            tok = await session.scalar(select(AuthToken).where(AuthToken.token_hash == token_hash(token)))
            if tok is not None:
                await session.delete(tok)
        await self._revoked()

    async def revoke_tokens(self, user_id: int, kind: str | None = None, *, by: Principal | None = None,
                            address: str | None = "") -> int:
        """Delete a user's login tokens (all, or only ``session`` or ``api`` ones); returns how many. Every
        server process stops accepting them at its next request (the revocation mark)."""
        stmt = delete(AuthToken).where(AuthToken.user_id == user_id)
        if kind is not None:
            stmt = stmt.where(AuthToken.kind == kind)
        async with self.sessions.begin() as session:
            if await session.get(User, user_id) is None:
                raise NotFound("user_not_found", "用户不存在")
            result = await session.execute(stmt)
            revoked = int(result.rowcount or 0)  # type: ignore[attr-defined]
            if by is not None:
                session.add(self.audit.entry(by, "account", "revoke_tokens", f"user:{user_id}",
                                             {"kind": kind or "all", "revoked": revoked}, address))
        await self._revoked()
        return revoked

    # ------------------------------------------------------------ administration (admins; every change audited)
    async def update_user(self, user_id: int, by: Principal, *, active: bool | None = None, role: str | None = None,
                          department_code: str | None = None, display_name: str | None = None,
                          address: str | None = "") -> dict[str, Any]:
        """Disable or enable an account (disabling deletes its tokens: it stops at once in every process),
        change its role or department or name. Each change is one ``account`` entry of the audit log,
        committed with it. The last active admin can be neither disabled nor demoted. Returns the account as
        ``list_accounts`` shows it."""
        if role is not None and role not in ROLES:
            raise InvalidField("role", f"角色须为 {', '.join(ROLES)} 之一")
        if not self._departments:
            await self.load_departments()
        async with self.sessions.begin() as session:
            user = await session.get(User, user_id)
            if user is None:
                raise NotFound("user_not_found", "用户不存在")
            subject = f"user:{user.id}"
            new_role = role or user.role
            current = self._departments.get(user.department_id) if user.department_id else None
            keeps = new_role == "department" or (new_role in SUB_CENTER_ROLES and current is not None
                                                 and current.code in self._unit_districts)
            department_id = user.department_id if keeps else None
            if department_code is not None:
                department_id = self._unit_for(new_role, department_code).id if department_code else None
            if new_role == "department" and department_id is None:
                raise InvalidField("department", "承办单位账号须指定所属单位")
            stays_admin = new_role == "admin" and (user.active if active is None else active)
            if user.role == "admin" and user.active and not stays_admin:
                others = await session.scalar(select(func.count()).select_from(User).where(
                    User.role == "admin", User.active.is_(True), User.id != user.id))
                if not others:
                    raise Conflict("last_admin", "这是唯一可用的管理员账号，不能停用或改为其他角色")
            entries: list[tuple[str, dict[str, Any]]] = []
            if active is not None and active != user.active:
                entries.append(("enable" if active else "disable", {"username": user.username}))
                user.active = active
            if new_role != user.role:
                entries.append(("change_role", {"username": user.username, "from": user.role, "to": new_role}))
                user.role = new_role
            if department_id != user.department_id:
                old = self._departments.get(user.department_id) if user.department_id else None
                new = self._departments.get(department_id) if department_id else None
                entries.append(("change_department", {"username": user.username, "from": old.code if old else None,
                                                      "to": new.code if new else None}))
                user.department_id = department_id
            if display_name is not None and display_name != user.display_name:
                entries.append(("rename", {"username": user.username, "from": user.display_name,
                                           "to": display_name}))
                user.display_name = display_name
            if active is False and entries and entries[0][0] == "disable":
                result = await session.execute(delete(AuthToken).where(AuthToken.user_id == user.id))
                entries[0][1]["tokens_revoked"] = int(result.rowcount or 0)  # type: ignore[attr-defined]
            for action, detail in entries:
                session.add(self.audit.entry(by, "account", action, subject, detail, address))
            account = {**self._principal(user).as_dict(), "active": user.active}
        if entries:
            await self._revoked()  # cached principals carry the old role, department and state
        return account

    async def reset_password(self, user_id: int, by: Principal, password: str | None = None,
                             address: str | None = "") -> tuple[str, Principal]:
        """Set a new password (the given one, or a generated one returned once) and end every session and token
        of the account: whoever knew the old password is out at once."""
        generated = password is None
        password = password if password is not None else secrets.token_urlsafe(12)
        if len(password) < 8:
            raise InvalidField("password", "密码至少8个字符")
        password_hash = await self._hash_pool.run(self._hasher.hash, password)
        async with self.sessions.begin() as session:
            user = await session.get(User, user_id)
            if user is None:
                raise NotFound("user_not_found", "用户不存在")
            user.password_hash = password_hash
            result = await session.execute(delete(AuthToken).where(AuthToken.user_id == user.id))
            session.add(self.audit.entry(by, "account", "reset_password", f"user:{user.id}", {
                "username": user.username, "generated": generated,
                "tokens_revoked": int(result.rowcount or 0)}, address))  # type: ignore[attr-defined]
            principal = self._principal(user)
        await self._revoked()
        return password, principal

    async def get_department(self, department_id: int) -> Department:
        if department_id not in self._departments:
            await self.load_departments()
        if department_id not in self._departments:
            raise NotFound("department_not_found", "单位不存在")
        return self._departments[department_id]


def login_delay(failures: int, free: int, max_delay: int) -> int:
    """Seconds the next attempt must wait after ``failures`` failed logins: none for the first ``free``, then
    1, 2, 4 ... up to ``max_delay``."""
    if failures <= free:
        return 0
    return min(max_delay, 2 ** min(failures - free - 1, 30))


class LoginThrottle:
    """Failed logins counted per account and per address in Redis (shared by every server process, each key
    with an expiry), so guessing passwords gets slower and then stops: growing waits after
    ``login_free_failures``, a lock-out of ``login_lockout_minutes`` at ``login_lockout_failures``. Addresses
    get four times the account limits (several people may share one). Checked before argon2 runs, so a
    refused attempt costs no hashing."""

    ADDRESS_FACTOR = 4

    def __init__(self, redis: Any, server: ServerSettings, prefix: str = "hotline:login") -> None:
        self.redis = redis
        self.server = server
        self.prefix = prefix

    def _key(self, kind: str, who: str, what: str) -> str:
        return f"{self.prefix}:{kind}:{what}:{who}"

    def _subjects(self, username: str, address: str) -> list[tuple[str, str, int]]:
        return [("user", username, 1), ("addr", address, self.ADDRESS_FACTOR)]

    async def check(self, username: str, address: str) -> None:
        """Raises ``TooManyRequests`` (429 + Retry-After) while the account or the address must wait or is locked."""
        subjects = self._subjects(username, address)
        # All four timers in one round trip: during a flood this check answers hundreds of attempts a second, and
        # four awaited PTTLs each made a 429 cost about as much server CPU as a ticket action.
        pipe = self.redis.pipeline(transaction=False)
        for kind, who, _ in subjects:
            pipe.pttl(self._key(kind, who, "lock"))
            pipe.pttl(self._key(kind, who, "wait"))
        timers = iter(await pipe.execute())
        for kind, who, _ in subjects:
            locked, wait = next(timers), next(timers)
            if locked > 0:
                subject = "该账号" if kind == "user" else "该地址"
                raise TooManyRequests("login_locked", f"登录失败次数过多，{subject}已锁定，请稍后再试或联系管理员解锁",
                                      math.ceil(locked / 1000))
            if wait > 0:
                raise TooManyRequests("login_throttled", f"登录过于频繁，请 {math.ceil(wait / 1000)} 秒后再试",
                                      math.ceil(wait / 1000))

    async def failed(self, username: str, address: str) -> None:
        window = self.server.login_lockout_minutes * 60
        for kind, who, factor in self._subjects(username, address):
            fails_key = self._key(kind, who, "fails")
            failures = int(await self.redis.incr(fails_key))
            await self.redis.expire(fails_key, window)
            if failures >= self.server.login_lockout_failures * factor:
                await self.redis.set(self._key(kind, who, "lock"), failures, ex=window)
                log.warning("login locked out: %s %r after %d failed logins (from %s), for %d minutes",
                            kind, who, failures, address, self.server.login_lockout_minutes)
                continue
            delay = login_delay(failures, self.server.login_free_failures * factor,
                                self.server.login_max_delay_seconds)
            if delay:
                await self.redis.set(self._key(kind, who, "wait"), failures, px=delay * 1000)
            log.info("failed login: %s %r (from %s), %d failures, next attempt in %d s",
                     kind, who, address, failures, delay)

    async def succeeded(self, username: str) -> None:
        await self.redis.delete(*(self._key("user", username, what) for what in ("fails", "wait")))

    async def unlock(self, username: str | None = None, address: str | None = None) -> int:
        """Lift a lock-out (and the waits and counts) of an account, an address or both; returns keys removed."""
        keys = [self._key(kind, who, what) for kind, who in (("user", username), ("addr", address)) if who
                for what in ("fails", "wait", "lock")]
        return int(await self.redis.delete(*keys)) if keys else 0
