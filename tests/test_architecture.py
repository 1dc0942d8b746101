"""The borders of DESIGN.md and the README's map, checked by parsing imports (also those inside functions):
packages meet only in server.py, ticket features meet only through the ticket core, services never import
their HTTP layer, no module imports itself back through others, and pure modules do no I/O."""
from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("telephony", "asr", "tickets")
IO_MODULES = {"asyncio", "aiohttp", "redis", "sqlalchemy", "panoramisk", "arq", "socket", "subprocess", "vosk"}
# Modules that must stay pure: plain data and functions, testable by replaying captures or tables.
PURE = [
    "tickets/workflow.py", "tickets/deadlines.py", "tickets/phones.py", "tickets/reports/rates.py",
    "tickets/surveys/schedule.py", "tickets/routing/rules.py", "tickets/routing/duplicates.py",
    "tickets/routing/hot_issues.py", "tickets/routing/textproc.py", "tickets/channels/open311.py",
    "tickets/channels/citizen.py", "tickets/sms/timing.py",
    "tickets/sms/messages.py", "tickets/routing/catalogue.py",
    "telephony/framing.py", "telephony/state.py", "telephony/reducer.py", "telephony/queue_log.py",
    "telephony/privacy.py",
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


# ---------------------------------------------------------------- the ticket side, one folder per feature
# The core (tickets/*.py) holds a ticket's life; each feature folder holds http.py (routes), service.py
# (the async shell) and its pure modules. Accounts sit under the core (every store needs "who is asking"),
# every other feature sits on top of core and accounts and never reaches into a sibling.
FEATURES = ("accounts", "surveys", "routing", "knowledge", "attachments", "reports", "channels", "sms")
ACCOUNTS_MAY_IMPORT = {"tickets.models", "tickets.errors", "tickets.workflow", "tickets.json_http"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    found = {"server": ROOT / "server.py", "embedded_redis": ROOT / "embedded_redis.py"}
    for top in ("tickets", "telephony", "asr", "config", "web", "migrations"):
        for path in (ROOT / top).rglob("*.py"):
            if "versions" not in path.parts:
                found[module_name(path)] = path
    return found


def feature_of(module: str) -> str | None:
    """'core' for tickets/*.py, the feature's name for tickets/<feature>/..., None outside tickets."""
    parts = module.split(".")
    if parts[0] != "tickets":
        return None
    return parts[1] if len(parts) > 2 and parts[1] in FEATURES else "core"


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an import names (``from tickets.routing import rules`` names tickets.routing.rules)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges: set[str] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{alias.name}" for alias in node.names]
            for target in targets:
                found = resolve(target, modules)
                if found and found != name and not (name.startswith(found + ".") and found == name.rpartition(".")[0]):
                    edges.add(found)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each a circle of imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles() -> None:
    assert cycles(import_graph()) == []


def test_ticket_features_meet_only_through_the_core() -> None:
    problems = []
    for module, edges in import_graph().items():
        mine = feature_of(module)
        if mine is None:
            continue
        for target in edges:
            theirs = feature_of(target)
            if theirs is None or theirs == mine:
                continue
            if mine == "accounts" and target not in ACCOUNTS_MAY_IMPORT:
                problems.append(f"{module} -> {target}: accounts sit under the core")
            elif mine == "core" and theirs != "accounts":
                problems.append(f"{module} -> {target}: the core never depends on a feature")
            elif mine not in ("core", "accounts") and theirs not in ("core", "accounts"):
                problems.append(f"{module} -> {target}: features do not import one another")
    assert problems == []


def test_services_and_pure_modules_never_import_http() -> None:
    problems = [f"{module} -> {target}" for module, edges in import_graph().items()
                if module.startswith("tickets.") and not module.endswith(".http") and module != "tickets.json_http"
                for target in edges if target.endswith(".http")]
    assert problems == []


def test_every_feature_folder_has_the_same_file_names() -> None:
    for feature in FEATURES:
        folder = ROOT / "tickets" / feature
        assert (folder / "service.py").exists(), feature
        assert (folder / "http.py").exists(), feature
    # No feature prefix left in a file name: the folder says which feature a file serves.
    flat = [p.name for p in (ROOT / "tickets").glob("*.py")]
    assert [n for n in flat if n.split("_")[0] in FEATURES + ("survey", "router", "knowledge")] == []
