"""Which tickets an account may see: department isolation, extended to the levels of the center.

- A department account (承办单位) sees the tickets its department handles (lead or co-handler).
- A district sub-center account (区分中心: an agent or supervisor attached to a district unit of
  departments.toml) sees the tickets of its district only; the city center (no district) sees all.

Everything that lists or loads tickets for a person filters through ``restrict``; a ticket outside it is a
404, exactly like one that does not exist.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import Select, exists

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
