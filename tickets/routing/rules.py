"""Routing suggestions (派单建议): the city's rules first, the learned model second, a person below a threshold.

Pure: parsed configuration and model scores come in, suggestions go out. Reading TOML files is the only
I/O here (``load_config``), done once at start by the shell.

- A rule of ``routing.toml`` that matches (any keyword in title or content, and the request type and the
  district when the rule names them) always wins: its lead department is the first suggestion with
  confidence 1.0 and its co-handlers come with it.
- The model's labels are department codes (trained from the center's own archive) or first-level
  domains (trained from a labelled file); domains map to departments through ``departments.toml``.
- Then the 派单目录 (``catalogue.toml``, see ``catalogue.py``): the ticket's category (its category field or
  a category's keywords in its text) at its place (district and street from the address) names the lead
  department and co-handlers, confidence 1.0, with the reason "派单目录：<category> @ <place> -> <dept>".
  The model's first-level labels are looked up there too, so a domain goes to the department the catalogue
  names for the ticket's place (a street office, a district department) instead of the city department.
- Departments that already returned this ticket (退单) are never suggested for it again.
- Without a matching rule and with the best model confidence below the threshold, the ticket goes to a
  human dispatcher with the top candidates (``needs_dispatcher``).
"""
from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tickets.routing import catalogue as cat
from tickets.routing import textproc

DEFAULT_THRESHOLD = 0.6


@dataclass(frozen=True)
class Rule:
    name: str
    lead: str  # "" when the rule names a category: the catalogue gives the lead for the ticket's place
    keywords: tuple[str, ...] = ()
    request_types: tuple[str, ...] = ()
    districts: tuple[str, ...] = ()
    co_handlers: tuple[str, ...] = ()
    category: tuple[str, ...] = ()  # a 派单目录 category path


@dataclass(frozen=True)
class Department:
    code: str
    name: str
    domains: tuple[str, ...] = ()


@dataclass(frozen=True)
class RoutingConfig:
    rules: tuple[Rule, ...]
    departments: Mapping[str, Department]
    threshold: float = DEFAULT_THRESHOLD
    top: int = 3
    catalogue: cat.Catalogue | None = None

    @property
    def domain_to_department(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for dept in self.departments.values():
            for domain in dept.domains:
                out.setdefault(domain, dept.code)  # the first department listed for a domain leads it
        return out

    def department_of(self, label: str) -> str | None:
        """A model label as a department code: codes stay, domains map, unknown labels are dropped."""
        if label in self.departments:
            return label
        return self.domain_to_department.get(label)


@dataclass(frozen=True)
class TicketInput:
    title: str = ""
    content: str = ""
    address: str = ""
    request_type: str = ""
    district: str = ""
    returned_by: tuple[str, ...] = ()  # department codes that returned this ticket
    category: str = ""  # the agent's 诉求分类, a path or a node name of the catalogue's tree


@dataclass(frozen=True)
class Suggestion:
    department: str
    name: str
    confidence: float
    source: str  # "rule", "catalogue" or "model"
    reasons: tuple[str, ...]
    co_handlers: tuple[str, ...] = ()
    rule: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"department": self.department, "name": self.name, "confidence": round(self.confidence, 4),
                "source": self.source, "reasons": list(self.reasons), "co_handlers": list(self.co_handlers),
                "rule": self.rule}


@dataclass(frozen=True)
class Decision:
    suggestions: tuple[Suggestion, ...]
    needs_dispatcher: bool
    note: str
    excluded: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {"suggestions": [s.as_dict() for s in self.suggestions], "needs_dispatcher": self.needs_dispatcher,
                "note": self.note, "excluded": list(self.excluded)}


class ConfigError(ValueError):
    pass


# ---------------------------------------------------------------- configuration
def parse_departments(data: Mapping[str, Any]) -> dict[str, Department]:
    out: dict[str, Department] = {}
    for i, item in enumerate(data.get("department", [])):
        code = item.get("code")
        if not code:
            raise ConfigError(f"department #{i + 1}: code is missing")
        out[code] = Department(code, item.get("name", code), tuple(item.get("domains", ())))
    return out


def parse_rules(data: Mapping[str, Any], departments: Mapping[str, Department],
                catalogue: cat.Catalogue | None = None) -> tuple[Rule, ...]:
    """Each rule names its ``lead``, or a ``category`` of the 派单目录 whose lead at the ticket's place it takes."""
    rules = []
    for i, item in enumerate(data.get("rule", [])):
        name = item.get("name") or f"rule #{i + 1}"
        category = tuple(p for p in str(item.get("category", "")).split("/") if p)
        if category and (catalogue is None or category not in catalogue.categories):
            raise ConfigError(f"routing rule {name!r}: category {'/'.join(category)!r} is not in the 派单目录's tree")
        lead = item.get("lead", "" if category else None)
        if lead not in departments and not (category and lead == ""):
            raise ConfigError(f"routing rule {name!r}: lead {lead!r} is not a department code in departments.toml")
        co = tuple(item.get("co_handlers", ()))
        for code in co:
            if code not in departments:
                raise ConfigError(f"routing rule {name!r}: co-handler {code!r} is not a department code")
        rule = Rule(name=name, lead=lead, keywords=tuple(textproc.normalize(k) for k in item.get("keywords", ())),
                    request_types=tuple(item.get("request_types", ())), districts=tuple(item.get("districts", ())),
                    co_handlers=co, category=category)
        if not (rule.keywords or rule.request_types or rule.districts):
            raise ConfigError(f"routing rule {name!r}: needs keywords, request_types or districts")
        rules.append(rule)
    return tuple(rules)


def parse_config(routing: Mapping[str, Any], departments: Mapping[str, Any],
                 catalogue: Mapping[str, Any] | None = None,
                 taxonomy: Sequence[tuple[str, ...]] = ()) -> RoutingConfig:
    depts = parse_departments(departments)
    dispatch = routing.get("dispatch", {})
    threshold = float(dispatch.get("confidence_threshold", DEFAULT_THRESHOLD))
    if not 0 <= threshold <= 1:
        raise ConfigError(f"dispatch.confidence_threshold must be within 0..1, got {threshold}")
    try:
        units = cat.parse_units(departments)
        parsed = cat.parse_catalogue(catalogue or {}, units, taxonomy)
    except cat.CatalogueError as exc:
        raise ConfigError(str(exc)) from None
    return RoutingConfig(parse_rules(routing, depts, parsed), depts, threshold, int(dispatch.get("top", 3)), parsed)


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    with path.open("rb") as fh:
        try:
            return tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None


_BESIDE = Path("catalogue.toml")


def load_config(routing_path: Path, departments_path: Path, catalogue_path: Path | None = _BESIDE) -> RoutingConfig:
    """Rules, departments and the 派单目录, checked together: a wrong entry names its file and item.
    The catalogue is ``catalogue.toml`` beside the rules unless named; ``None``: no catalogue."""
    if catalogue_path is _BESIDE:
        catalogue_path = routing_path.with_name("catalogue.toml")
    routing, departments = _read_toml(routing_path), _read_toml(departments_path)
    try:  # checked here first so that the error names the file at fault
        units = cat.parse_units(departments)
    except cat.CatalogueError as exc:
        raise ConfigError(f"{departments_path}: {exc}") from None
    catalogue: dict[str, Any] = {}
    taxonomy: list[tuple[str, ...]] = []
    if catalogue_path is not None and catalogue_path.exists():
        catalogue = _read_toml(catalogue_path)
        name = catalogue.get("categories_file")
        if name:
            csv_path = Path(name) if Path(name).is_absolute() else catalogue_path.parent / name
            if not csv_path.exists():
                raise ConfigError(f"{catalogue_path}: categories_file {str(csv_path)!r} does not exist")
            with csv_path.open(encoding="utf-8-sig") as fh:
                taxonomy = cat.taxonomy_from_csv(fh)
        try:
            cat.parse_catalogue(catalogue, units, taxonomy)
        except cat.CatalogueError as exc:
            raise ConfigError(f"{catalogue_path}: {exc}") from None
    try:
        return parse_config(routing, departments, catalogue, taxonomy)
    except ConfigError as exc:
        raise ConfigError(f"{routing_path}: {exc}") from None


# ---------------------------------------------------------------- matching
def match_rules(rules: Sequence[Rule], ticket: TicketInput) -> list[tuple[Rule, tuple[str, ...]]]:
    """Matching rules in file order (the city orders them by priority) with the keywords that matched."""
    text = textproc.normalize(f"{ticket.title} {ticket.content}")
    out = []
    for rule in rules:
        if rule.request_types and ticket.request_type not in rule.request_types:
            continue
        if rule.districts and ticket.district not in rule.districts:
            continue
        hits = tuple(k for k in rule.keywords if k in text)
        if rule.keywords and not hits:
            continue
        out.append((rule, hits))
    return out


def suggest(ticket: TicketInput, config: RoutingConfig,
            model_ranking: Sequence[tuple[str, float, Sequence[str]]] | None) -> Decision:
    """Combine rules and the model's ranking ``(label, probability, weighing words)`` into a decision."""
    excluded = set(ticket.returned_by)
    by_code: dict[str, Suggestion] = {}
    order: list[str] = []

    def add(s: Suggestion) -> None:
        if s.department in excluded or s.department in by_code:
            return
        by_code[s.department] = s
        order.append(s.department)

    book = config.catalogue
    place = cat.Place()
    names = {code: d.name for code, d in config.departments.items()}
    if book is not None and book.units:
        place = cat.resolve_place(book, ticket.district, ticket.address)
        if not place.street:  # the address field may stop at the district; callers name the road in the text
            said = cat.resolve_place(book, ticket.district, f"{ticket.title} {ticket.content}", short_names=False)
            if said.street and place.district in ("", said.district):
                place = said

    rule_hit = False
    for rule, hits in match_rules(config.rules, ticket):
        lead, co_handlers, via = rule.lead, rule.co_handlers, ""
        if not lead and book is not None:  # the rule names a category: its lead here comes from the catalogue
            found = cat.lookup(book, rule.category, place, excluded)
            if found is None or found.lead not in config.departments:
                continue
            lead, co_handlers, via = found.lead, found.co_handlers, found.reason(names)
        if not lead or lead in excluded:
            continue
        reasons = [f"规则：{rule.name}"]
        if hits:
            reasons.append("关键词：" + "、".join(hits))
        if rule.request_types:
            reasons.append("诉求类型：" + "、".join(rule.request_types))
        if rule.districts:
            reasons.append("区域：" + ticket.district)
        if via:
            reasons.append(via)
        add(Suggestion(lead, names[lead], 1.0, "rule", tuple(reasons),
                       tuple(c for c in co_handlers if c not in excluded and c in config.departments), rule.name))
        rule_hit = True

    # 派单目录: the ticket's category at its place; the agent's category field first, then keywords.
    catalogue_hit = False
    if book is not None and book.items:
        wanted: list[tuple[tuple[str, ...], str]] = []
        chosen = cat.category_of(book, ticket.category)
        if chosen is not None:
            wanted.append((chosen, "诉求分类：" + "/".join(chosen)))
        text = textproc.normalize(f"{ticket.title} {ticket.content}")
        wanted += [(path, "分类关键词：" + "、".join(hits)) for path, hits in cat.categories_in(book, text)]
        for path, found_by in wanted:
            found = cat.lookup(book, path, place, excluded)
            if found is None or found.lead not in config.departments:
                continue
            reasons = [found.reason(names), found_by] + ([found.item.note] if found.item.note else [])
            add(Suggestion(found.lead, names[found.lead], 1.0, "catalogue", tuple(reasons),
                           tuple(c for c in found.co_handlers if c in config.departments)))
            catalogue_hit = True
            break

    def department_of(label: str) -> tuple[str | None, str | None]:
        """A model label as a department: a first-level category through the catalogue at the ticket's place."""
        if book is not None and book.items and label not in config.departments and (label,) in book.categories:
            found = cat.lookup(book, (label,), place, excluded)
            if found is not None and found.lead in config.departments:
                return found.lead, found.reason(names)
        return config.department_of(label), None

    best_model = 0.0
    if model_ranking:
        # Probability mass of labels that map to the same department adds up; excluded ones drop out.
        merged: dict[str, tuple[float, list[str]]] = {}
        through: dict[str, str] = {}  # the catalogue's reason for a department reached through it
        for label, prob, words in model_ranking:
            code, catalogue_reason = department_of(label)
            if code is None or code in excluded:
                continue
            p, w = merged.get(code, (0.0, []))
            merged[code] = (p + prob, w + [x for x in words if x not in w])
            if catalogue_reason and code not in through:
                through[code] = catalogue_reason
        kept = sum(p for p, _ in merged.values())
        dropped = sum(prob for _, prob, _ in model_ranking) - kept
        for code, (prob, words) in sorted(merged.items(), key=lambda kv: -kv[1][0]):
            # After returns, what is left is renormalised: the returning department's share was wrong.
            conf = prob / kept if dropped > 1e-9 and kept > 0 else prob
            best_model = max(best_model, conf)
            why: tuple[str, ...] = ("模型判断，依据词语：" + "、".join(words[:5]),) if words else ("模型判断",)
            if code in through:
                why = (*why, through[code])
            add(Suggestion(code, config.departments[code].name, conf, "model", why))

    suggestions = tuple(by_code[c] for c in order[:max(config.top, 1)])
    if rule_hit:
        return Decision(suggestions, False, "命中派单规则", tuple(sorted(excluded)))
    if catalogue_hit:
        return Decision(suggestions, False, f"派单目录（{place.label}）", tuple(sorted(excluded)))
    if not suggestions:
        return Decision((), True, "无派单规则命中，且尚无可用的派单模型：请人工派单", tuple(sorted(excluded)))
    if best_model < config.threshold:
        return Decision(suggestions, True, f"模型置信度 {best_model:.2f} 低于阈值 {config.threshold:.2f}：请人工派单",
                        tuple(sorted(excluded)))
    return Decision(suggestions, False, "模型建议", tuple(sorted(excluded)))
