"""Helpers shared by the recognition tests (not fixtures)."""
from __future__ import annotations

from pathlib import Path


def references(speech: Path) -> dict[str, str]:
    out = {}
    for line in (speech / "transcripts.tsv").read_text(encoding="utf-8").splitlines():
        if "\t" in line:
            path, text = line.split("\t", 1)
            out[path] = text
    return out
