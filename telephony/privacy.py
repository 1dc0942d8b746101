"""Callers' numbers in the live feed: who gets them whole, and the masked copy (138****5678) everyone else gets.

The rule follows the tickets' (``tickets/service.py``: ``PHONE_MASKED_ROLES``): the centre's agents take and
return citizens' calls and see whole numbers; a whole number anyone else needs is asked for on the ticket
(显示号码, on the record). The live view is not a ticket: it is what wall screens and supervisors' dashboards
show, seen by visitors and read in a browser's developer tools, so only agents get it whole, and a socket
opened for a wall screen gets it masked whoever is logged in. An agent's own caller always reaches it whole
through its ``screen_pop``, which only that agent is sent. Pure: telephony never imports tickets, so the mask
is the same rule as ``tickets.phones.mask``, written again (a test keeps the two equal).
"""
from __future__ import annotations

import re
from typing import Any

# Roles that receive callers' numbers whole in the live feed (snapshot, patches, missed-call entries).
WHOLE_NUMBER_ROLES = ("agent",)

# Fields of live messages that hold a caller's number or a caller-ID name (often the number again).
NUMBER_FIELDS = frozenset({"caller_num", "caller_name", "caller_phone"})
_DIGIT_RUN = re.compile(r"\d{5,}")  # a number inside a caller-ID name ("13912345678 via trunk")


def sees_whole_numbers(role: str, *, wall_screen: bool = False, mask_numbers: bool = True) -> bool:
    """Whether a live-feed client of ``role`` gets callers' numbers whole; ``mask_numbers`` false is the
    centre's own choice ([wallboard] mask_numbers) to show them whole everywhere."""
    if not mask_numbers:
        return True
    return not wall_screen and role in WHOLE_NUMBER_ROLES


def mask_number(phone: str) -> str:
    """138****5678: the first 3 and last 4 digits kept (``tickets.phones.mask``)."""
    if len(phone) <= 7:
        return phone[:1] + "*" * max(len(phone) - 2, 0) + phone[-1:] if len(phone) > 2 else "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


def _mask_field(key: str, value: str) -> str:
    if key == "caller_name":
        # A name stays (the ticket rule masks names only for departments); a number inside it does not.
        return _DIGIT_RUN.sub(lambda m: mask_number(m.group()), value)
    return mask_number(value) if value else value


def masked(obj: Any) -> Any:
    """A copy of a live message (snapshot, patch, batch, missed, callback, ...) with every caller's number
    masked, whatever message it sits in; the original is left alone (it is the view every process keeps)."""
    if isinstance(obj, dict):
        return {k: _mask_field(k, v) if k in NUMBER_FIELDS and isinstance(v, str) else masked(v)
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [masked(v) for v in obj]
    return obj
