"""Which tickets an account may see: department isolation, extended to the levels of the center.

- A department account (承办单位) sees the tickets its department handles (lead or co-handler).
- A district sub-center account (区分中心: an agent or supervisor attached to a district unit of
  departments.toml) sees the tickets of its district only; the city center (no district) sees all.

Everything that lists or loads tickets for a person filters through ``restrict``; a ticket outside it is a
404, exactly like one that does not exist.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import Select, bindparam, exists

from tickets.accounts.service import Principal
from tickets.models import Ticket, TicketHandler


def restrict(stmt: Select[Any], who: Principal) -> Select[Any]:
    """``stmt`` (a select over ``Ticket``) narrowed to what ``who`` may see."""
    if who.role == "department":
        stmt = stmt.where(exists().where(TicketHandler.ticket_id == Ticket.id,
                                         TicketHandler.department_id == who.department_id))
    return in_district(stmt, who)


def in_district(stmt: Select[Any], who: Principal) -> Select[Any]:
    """Only the level part: for queries over ``Ticket`` that treat departments their own way (the ledger
    counts a department's own items, not every ticket it handles)."""
    if who.district:
        stmt = stmt.where(Ticket.district == who.district)
    return stmt


# The same rule as ``restrict``, as a statement built once per shape with the account's values as parameters
# (``bound_values``): the action path loads a ticket per action, and building the statement and its cache key
# every time cost more CPU than SQLite's running it (benchmarks/ticket_cpu.py).
def restrict_bound(stmt: Select[Any], department: bool, district: bool) -> Select[Any]:
    """``restrict`` for accounts of one shape (a department account? a district sub-center?), with the
    department and district left as the parameters ``visible_department_id`` and ``visible_district``."""
    if department:
        stmt = stmt.where(exists().where(TicketHandler.ticket_id == Ticket.id,
                                         TicketHandler.department_id == bindparam("visible_department_id")))
    if district:
        stmt = stmt.where(Ticket.district == bindparam("visible_district"))
    return stmt


def shape(who: Principal) -> tuple[bool, bool]:
    """Which ``restrict_bound`` statement fits ``who``."""
    return who.role == "department", bool(who.district)


def bound_values(who: Principal) -> dict[str, Any]:
    """The parameters of ``restrict_bound``'s statement for ``who``."""
    department, district = shape(who)
    out: dict[str, Any] = {}
    if department:
        out["visible_department_id"] = who.department_id
    if district:
        out["visible_district"] = who.district
    return out
