"""The borders of DESIGN.md, checked by parsing imports: packages meet only in server.py, pure modules do no I/O."""
from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("telephony", "asr", "tickets")
IO_MODULES = {"asyncio", "aiohttp", "redis", "sqlalchemy", "panoramisk", "arq", "socket", "subprocess", "vosk"}
# Modules that must stay pure: plain data and functions, testable by replaying captures or tables.
PURE = [
    "tickets/workflow.py", "tickets/deadlines.py", "tickets/rates.py", "tickets/phones.py",
    "tickets/survey_schedule.py", "tickets/routing.py", "tickets/duplicates.py", "tickets/hot_issues.py",
    "tickets/textproc.py",
    "telephony/framing.py", "telephony/state.py", "telephony/reducer.py",
    "asr/drafts.py", "asr/spoken_digits.py", "asr/cer.py",
]


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_packages_do_not_import_each_other() -> None:
    problems = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for name in imports_of(path):
                top = name.split(".")[0]
                if top in PACKAGES and top != package or top == "server":
                    problems.append(f"{path.relative_to(ROOT)} imports {name}")
    assert problems == []


def test_config_imports_nothing_of_ours() -> None:
    for path in (ROOT / "config").rglob("*.py"):
        ours = {n for n in imports_of(path) if n.split(".")[0] in PACKAGES + ("server",)}
        assert ours == set(), path


def test_pure_modules_do_no_io_and_read_no_clock() -> None:
    for rel in PURE:
        path = ROOT / rel
        names = imports_of(path)
        assert {n.split(".")[0] for n in names} & IO_MODULES == set(), (rel, names)
        text = path.read_text(encoding="utf-8")
        for forbidden in ("datetime.now(", "datetime.utcnow(", "time.time(", "date.today("):
            assert forbidden not in text, (rel, forbidden)


def test_pure_modules_pass_strict_mypy() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-error-summary", *PURE, "config/settings.py"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
