"""Character error rate, computed the way ../shared/speech/README.md describes: drop whitespace,
punctuation and ``[unk]`` from the hypothesis, Levenshtein over characters, micro-average over files."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Iterable

_UNK = re.compile(r"\[unk\]|<unk>", re.IGNORECASE)


def normalize(text: str) -> str:
    text = _UNK.sub("", unicodedata.normalize("NFKC", text or ""))
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
