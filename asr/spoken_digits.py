"""Numbers said aloud, as a recognizer writes them: 幺三八零零一三八零零零 -> 13800138000.

Phone numbers are read digit by digit in China, with 幺 for 1 (so it is not heard as 七) and sometimes
两 for 2, 洞 for 0 and 拐 for 7 (radio style). Recognizers write them as characters, as Arabic digits,
or mixed, often with spaces between words. Each result keeps its character span in the given text so
that a draft field can show where it came from.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

DIGITS = {
    "零": "0", "〇": "0", "○": "0", "洞": "0", "一": "1", "幺": "1", "么": "1", "二": "2", "两": "2",
    "三": "3", "四": "4", "五": "5", "六": "6", "七": "7", "拐": "7", "八": "8", "九": "9",
}
for _d in "0123456789":
    DIGITS[_d] = _d
for _i, _d in enumerate("０１２３４５６７８９"):
    DIGITS[_d] = str(_i)

# Runs of digit words; spaces and hyphens may sit between digits ("一 三 八", "138-0013-8000").
_RUN = re.compile("[" + "".join(DIGITS) + r"](?:[\s\-—]*[" + "".join(DIGITS) + "])*")
# Service numbers are not a citizen's phone (the agent's greeting says 一二三四五).
SERVICE_NUMBERS = frozenset({"110", "119", "120", "122", "12345", "12315", "12369", "12333", "12320"})
# Characters that make a digit run a quantity, not a number read out: 三个月, 十八号, 一三年.
_UNIT_AFTER = set("个月年日号楼层栋单元室户元块度点分秒岁天周次层斤米万千百十")
_MOBILE = re.compile(r"1[3-9]\d{9}")
_LANDLINE = re.compile(r"0[1-9]\d{8,10}")  # area code 0xx/0xxx + 7-8 digit local number
_LOCAL = re.compile(r"[2-8]\d{6,7}")  # local number without area code


@dataclass(frozen=True)
class Number:
    digits: str
    start: int  # character span in the text
    end: int
    text: str
    kind: str  # "mobile", "landline", "local"


def to_digits(text: str) -> str:
    return "".join(DIGITS.get(ch, "") for ch in text)


def digit_runs(text: str) -> list[tuple[str, int, int]]:
    return [(to_digits(m.group()), m.start(), m.end()) for m in _RUN.finditer(text)]


def classify(digits: str) -> str | None:
    if digits in SERVICE_NUMBERS or len(set(digits)) <= 2:  # 0000-00000000 is a masked number
        return None
    if _MOBILE.fullmatch(digits):
        return "mobile"
    if _LANDLINE.fullmatch(digits):
        return "landline"
    if _LOCAL.fullmatch(digits):
        return "local"
    return None


def _plain_local(text: str, start: int, end: int) -> bool:
    """A number without area code is believed only when it stands alone: no hyphen inside (2018-11-5 is
    a date, 2015-2040 a period) and no letter glued to it (GB50180-93 is a standard)."""
    if re.search(r"[-—]", text[start:end]):
        return False
    before = text[start - 1:start]
    after = text[end:end + 1]
    return not (before.isascii() and before.isalpha()) and not (after.isascii() and after.isalpha())


def _pieces(text: str, start: int, end: int) -> list[tuple[str, int, int]]:
    """The digit groups of one run, split where a space or hyphen sits ("010-6234 5678 300")."""
    return [(to_digits(m.group()), start + m.start(), start + m.end())
            for m in re.finditer("[" + "".join(DIGITS) + "]+", text[start:end])]


def phone_numbers(text: str) -> list[Number]:
    """Phone numbers in the text, in order, without duplicates.

    A run of digits is tried whole, then as the longest groups of its space/hyphen-separated parts that
    form a number (a recognizer spaces every digit; a writer spaces groups and may put a price after).
    A number followed by a unit (三个月, 十八号) is a quantity, not a phone number.
    """
    found: list[Number] = []
    seen: set[str] = set()
    for _digits, run_start, run_end in digit_runs(text):
        pieces = _pieces(text, run_start, run_end)
        i = 0
        while i < len(pieces):
            for j in range(len(pieces), i, -1):
                digits = "".join(p[0] for p in pieces[i:j])
                start, end = pieces[i][1], pieces[j - 1][2]
                if end < len(text) and text[end] in _UNIT_AFTER:
                    continue
                kind = classify(digits)
                if kind == "local" and not _plain_local(text, start, end):
                    kind = None
                if kind is not None:
                    break
            else:
                i += 1
                continue
            if digits not in seen:
                seen.add(digits)
                found.append(Number(digits, start, end, text[start:end], kind))
            i = j
    return found
