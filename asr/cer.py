"""Character error rate, computed the way ../shared/speech/README.md describes: drop whitespace,
punctuation and ``[unk]`` from the hypothesis, Levenshtein over characters, micro-average over files.

The references write numbers as they are spoken (九点, 八号线); Whisper writes digits (9点), so digits in
a hypothesis are read out first: a quantity of up to four digits by value (25 -> 二十五), a year before
年 and any longer run digit by digit (2023年 -> 二零二三年, 13800138000 -> 一三八…)."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Iterable

_UNK = re.compile(r"\[unk\]|<unk>", re.IGNORECASE)
_DIGITS = re.compile(r"[0-9]+")
_CN = "零一二三四五六七八九"


def _by_value(n: int) -> str:
    if n < 10:
        return _CN[n]
    out, zero = "", False
    for value, unit in ((1000, "千"), (100, "百"), (10, "十")):
        d, n = divmod(n, value)
        if d:
            if zero:
                out += "零"
            out += ("" if (unit == "十" and d == 1 and not out) else _CN[d]) + unit
            zero = False
        elif out:
            zero = True
    if n:
        out += ("零" if zero else "") + _CN[n]
    return out


def spoken_numbers(text: str) -> str:
    def say(m: re.Match[str]) -> str:
        run = m.group(0)
        year = text[m.end():m.end() + 1] == "年"
        if len(run) > 4 or run.startswith("0") and len(run) > 1 or year:
            return "".join(_CN[int(d)] for d in run)
        return _by_value(int(run))

    return _DIGITS.sub(say, text)


def normalize(text: str) -> str:
    text = spoken_numbers(_UNK.sub("", unicodedata.normalize("NFKC", text or "")))
    return "".join(ch for ch in text if not (ch.isspace() or unicodedata.category(ch).startswith(("P", "S"))))


def edit_distance(ref: str, hyp: str) -> int:
    if len(ref) < len(hyp):
        ref, hyp = hyp, ref
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


@dataclass(frozen=True)
class CerTotal:
    errors: int
    length: int

    @property
    def cer(self) -> float:
        return self.errors / self.length if self.length else 0.0


def cer(reference: str, hypothesis: str) -> float:
    return total([(reference, hypothesis)]).cer


def total(pairs: Iterable[tuple[str, str]]) -> CerTotal:
    """Micro-average: errors and reference lengths summed over all (reference, hypothesis) pairs."""
    errors = length = 0
    for ref, hyp in pairs:
        r, h = normalize(ref), normalize(hyp)
        errors += edit_distance(r, h)
        length += len(r)
    return CerTotal(errors, length)
