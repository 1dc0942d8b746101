"""Caller phone numbers: normalised for matching (repeat callers) and masked for lists."""
from __future__ import annotations

import re
import unicodedata

import phonenumbers

_DIGITS = re.compile(r"\D+")


def normalize(raw: str, region: str = "CN") -> str:
    """A canonical form for matching: national significant digits for Chinese numbers (13800138000,
    1062345678 for a Beijing landline), E.164 for foreign ones, digits only when unparseable."""
    text = unicodedata.normalize("NFKC", raw or "").strip()
    if not text:
        return ""
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return _DIGITS.sub("", text)
    if parsed.country_code == 86:
        return str(parsed.national_number)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def is_valid(raw: str, region: str = "CN") -> bool:
    try:
        return phonenumbers.is_possible_number(phonenumbers.parse(raw, region))
    except phonenumbers.NumberParseException:
        return False


def mask(phone: str) -> str:
    """138****8000: keep the first 3 and last 4 digits, as lists and exports show callers."""
    if len(phone) <= 7:
        return phone[:1] + "*" * max(len(phone) - 2, 0) + phone[-1:] if len(phone) > 2 else "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]
