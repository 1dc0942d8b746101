"""派单目录 (dispatch catalogue): category x place -> lead department and usual co-handlers.

Pure: parsed TOML comes in, a validated ``Catalogue`` and lookups come out (the shell reads the files).

The city's units are the departments of ``departments.toml`` with their level: city departments (``level``
absent or ``"city"``), district units (``level = "district"``, ``district = "南湖区"``; the one without a
``parent`` is the district government) and street offices (``level = "street"``, ``district``, ``street``,
``parent`` = their district government, optional ``areas``: communities and roads inside the street, which is
how callers name where they live).

``catalogue.toml`` holds the category tree (``[[category]]`` paths ``一级/二级/三级`` with optional keywords,
and/or ``categories_file``: a CSV ``level1,level2,level3``) and the items: ``category`` x ``place`` (``全市``,
a district ``南湖区`` or a street ``南湖区/幸福街道``) -> ``lead`` and ``co_handlers``. ``lead`` is a department
code or ``属地街道`` / ``属地区政府``: the street office / district government of the ticket's own place.

A lookup takes the most specific category first (三级 before 二级 before 一级), and for one category the most
specific place (street, then district, then 全市): the matter decides who is responsible, the place refines.
"""
from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

CITY = "全市"
LOCAL_STREET = "属地街道"
LOCAL_DISTRICT = "属地区政府"
LEVELS = ("city", "district", "street")
LEVEL_LABELS = {"city": "市级部门", "district": "区级单位", "street": "街道（乡镇）"}
_STREET_SUFFIXES = ("街道办事处", "街道", "镇", "乡")


class CatalogueError(ValueError):
    """A wrong entry in departments.toml or catalogue.toml; the message names the entry and the key."""


@dataclass(frozen=True)
class Unit:
    code: str
    name: str
    level: str = "city"
    district: str = ""
    street: str = ""
    parent: str | None = None
    areas: tuple[str, ...] = ()


@dataclass(frozen=True)
class Place:
    district: str = ""
    street: str = ""

    @property
    def label(self) -> str:
        if self.street:
            return f"{self.district}{self.street}"
        return self.district or CITY

    def broader(self) -> tuple[Place, ...]:
        """This place and the ones containing it, most specific first."""
        out = [self]
        if self.street:
            out.append(Place(self.district))
        if self.district:
            out.append(Place())
        return tuple(out)


@dataclass(frozen=True)
class Item:
    category: tuple[str, ...]
    place: Place
    lead: str
    co_handlers: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class Match:
    category: tuple[str, ...]
    place: Place  # the ticket's place
    item: Item
    lead: str  # a department code, 属地 already resolved
    co_handlers: tuple[str, ...]

    def reason(self, names: Mapping[str, str]) -> str:
        return f"派单目录：{'/'.join(self.category)} @ {self.place.label} -> {names.get(self.lead, self.lead)}"


@dataclass(frozen=True)
class Catalogue:
    units: Mapping[str, Unit]
    categories: frozenset[tuple[str, ...]] = frozenset()
    keywords: Mapping[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict)
    items: tuple[Item, ...] = ()

    @property
    def districts(self) -> tuple[str, ...]:
        return tuple(sorted({u.district for u in self.units.values() if u.district}))

    def streets(self, district: str) -> tuple[Unit, ...]:
        return tuple(u for u in self.units.values() if u.level == "street" and u.district == district)

    def district_government(self, district: str) -> Unit | None:
        return next((u for u in self.units.values()
                     if u.level == "district" and u.district == district and u.parent is None), None)

    def street_office(self, place: Place) -> Unit | None:
        return next((u for u in self.streets(place.district) if u.street == place.street), None)

    def as_dict(self) -> dict[str, Any]:
        def place_dict(p: Place) -> dict[str, str]:
            return {"district": p.district, "street": p.street, "label": p.label}

        names = {c: u.name for c, u in self.units.items()}
        return {
            "units": [{"code": u.code, "name": u.name, "level": u.level, "level_label": LEVEL_LABELS[u.level],
                       "district": u.district, "street": u.street, "parent": u.parent, "areas": list(u.areas)}
                      for u in self.units.values()],
            "categories": [{"path": "/".join(p), "level": len(p), "keywords": list(self.keywords.get(p, ()))}
                           for p in sorted(self.categories)],
            "items": [{"category": "/".join(i.category), "place": place_dict(i.place), "lead": i.lead,
                       "lead_name": names.get(i.lead, i.lead), "co_handlers": list(i.co_handlers),
                       "co_handler_names": [names.get(c, c) for c in i.co_handlers], "note": i.note}
                      for i in self.items],
        }


# ---------------------------------------------------------------- parsing and validation
def parse_units(departments: Mapping[str, Any]) -> dict[str, Unit]:
    """Every department of departments.toml as a unit of the city, its level and place checked."""
    raw: dict[str, Mapping[str, Any]] = {}
    for i, entry in enumerate(departments.get("department", [])):
        code = entry.get("code")
        if not code:
            raise CatalogueError(f"departments.toml: department #{i + 1}: code is missing")
        raw[str(code)] = entry
    units: dict[str, Unit] = {}
    for code, entry in raw.items():
        where = f"departments.toml: department {code!r}"
        level = str(entry.get("level", "city"))
        if level not in LEVELS:
            raise CatalogueError(f"{where}: level must be one of {', '.join(LEVELS)}, got {level!r}")
        district, street = str(entry.get("district", "")), str(entry.get("street", ""))
        parent = entry.get("parent")
        if level != "city" and not district:
            raise CatalogueError(f"{where}: a {level} unit needs district (e.g. district = \"南湖区\")")
        if level == "street" and not street:
            raise CatalogueError(f"{where}: a street unit needs street (e.g. street = \"幸福街道\")")
        if parent is not None:
            if parent not in raw:
                raise CatalogueError(f"{where}: parent {parent!r} is not a department code")
            if parent == code:
                raise CatalogueError(f"{where}: parent is the department itself")
        areas = entry.get("areas", [])
        if not isinstance(areas, list) or not all(isinstance(a, str) and a for a in areas):
            raise CatalogueError(f"{where}: areas must be a list of place names")
        units[code] = Unit(code, str(entry.get("name", code)), level, district, street,
                           str(parent) if parent is not None else None, tuple(areas))
    for unit in units.values():
        if unit.level == "street":
            up = units.get(unit.parent or "")
            if up is None or up.level != "district" or up.district != unit.district:
                raise CatalogueError(f"departments.toml: department {unit.code!r}: a street office's parent must be "
                                     f"the district government of {unit.district} (a district unit there)")
    seen: dict[tuple[str, str], str] = {}
    for unit in units.values():
        if unit.level == "street":
            key = (unit.district, unit.street)
            if key in seen:
                raise CatalogueError(f"departments.toml: departments {seen[key]!r} and {unit.code!r} are both the "
                                     f"office of {unit.district}{unit.street}")
            seen[key] = unit.code
    return units


def taxonomy_from_csv(lines: Iterable[str]) -> list[tuple[str, ...]]:
    """Paths of a ``level1,level2,level3`` CSV (a header row is skipped, empty levels end a path)."""
    out = []
    for n, row in enumerate(csv.reader(lines)):
        parts = tuple(c.strip() for c in row if c.strip())
        if n == 0 and parts and parts[0].lower().startswith("level"):
            continue
        if parts:
            out.append(parts)
    return out


def _path(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.replace("／", "/").split("/") if p.strip())


def parse_place(text: str, units: Mapping[str, Unit]) -> Place:
    """``全市``, ``南湖区`` or ``南湖区/幸福街道``, checked against the units of departments.toml."""
    parts = _path(text)
    if not parts or parts == (CITY,):
        return Place()
    districts = {u.district for u in units.values() if u.district}
    if parts[0] not in districts:
        raise CatalogueError(f"unknown place {text!r}: {parts[0]!r} is no district of departments.toml "
                             f"(known: {', '.join(sorted(districts)) or 'none'})")
    if len(parts) == 1:
        return Place(parts[0])
    streets = {u.street for u in units.values() if u.level == "street" and u.district == parts[0]}
    if len(parts) > 2 or parts[1] not in streets:
        raise CatalogueError(f"unknown place {text!r}: {parts[0]} has no street office named {parts[-1]!r} "
                             f"(known: {', '.join(sorted(streets)) or 'none'})")
    return Place(parts[0], parts[1])


def parse_catalogue(data: Mapping[str, Any], units: Mapping[str, Unit],
                    taxonomy: Sequence[tuple[str, ...]] = ()) -> Catalogue:
    """The catalogue, every category, place and department checked; errors name the item and the key."""
    categories: set[tuple[str, ...]] = set()
    keywords: dict[tuple[str, ...], tuple[str, ...]] = {}

    def add_path(path: tuple[str, ...]) -> None:
        for n in range(1, len(path) + 1):
            categories.add(path[:n])

    for path in taxonomy:
        add_path(path)
    for i, entry in enumerate(data.get("category", [])):
        path = _path(str(entry.get("path", "")))
        if not path:
            raise CatalogueError(f"category #{i + 1}: path is missing (e.g. path = \"城乡建设/城乡规划/违章建筑\")")
        add_path(path)
        words = entry.get("keywords", [])
        if not isinstance(words, list) or not all(isinstance(w, str) and w.strip() for w in words):
            raise CatalogueError(f"category {'/'.join(path)!r}: keywords must be a list of words")
        keywords[path] = tuple(w.strip() for w in words)
    items = []
    seen: dict[tuple[tuple[str, ...], Place], int] = {}
    for i, entry in enumerate(data.get("item", [])):
        where = f"item #{i + 1}"
        path = _path(str(entry.get("category", "")))
        if not path:
            raise CatalogueError(f"{where}: category is missing")
        where = f"item #{i + 1} ({'/'.join(path)})"
        if path not in categories:
            raise CatalogueError(f"{where}: unknown category {'/'.join(path)!r}: not in the category tree "
                                 f"(add it as a [[category]] or to categories_file)")
        try:
            place = parse_place(str(entry.get("place", CITY)), units)
        except CatalogueError as exc:
            raise CatalogueError(f"{where}: place: {exc}") from None
        lead = entry.get("lead")
        if not lead:
            raise CatalogueError(f"{where}: lead is missing (a department code, {LOCAL_STREET} or {LOCAL_DISTRICT})")
        if lead not in units and lead not in (LOCAL_STREET, LOCAL_DISTRICT):
            raise CatalogueError(f"{where}: lead {lead!r} is not a department code in departments.toml "
                                 f"(nor {LOCAL_STREET} / {LOCAL_DISTRICT})")
        co = entry.get("co_handlers", [])
        if not isinstance(co, list):
            raise CatalogueError(f"{where}: co_handlers must be a list of department codes")
        for code in co:
            if code not in units and code not in (LOCAL_STREET, LOCAL_DISTRICT):
                raise CatalogueError(f"{where}: co-handler {code!r} is not a department code in departments.toml "
                                     f"(nor {LOCAL_STREET} / {LOCAL_DISTRICT})")
        key = (path, place)
        if key in seen:
            raise CatalogueError(f"{where}: same category and place as item #{seen[key] + 1}")
        seen[key] = i
        items.append(Item(path, place, str(lead), tuple(str(c) for c in co), str(entry.get("note", ""))))
    return Catalogue(dict(units), frozenset(categories), keywords, tuple(items))


# ---------------------------------------------------------------- lookups
def _street_names(unit: Unit, short: bool) -> tuple[str, ...]:
    names = [unit.street]
    if short:  # 幸福 for 幸福街道: only inside a known district, where it is not just any word
        for suffix in _STREET_SUFFIXES:
            if unit.street.endswith(suffix) and len(unit.street) - len(suffix) >= 2:
                names.append(unit.street[:-len(suffix)])
    return (*names, *unit.areas)


def resolve_place(catalogue: Catalogue, district: str, address: str, *, short_names: bool = True) -> Place:
    """The ticket's district and street: the district field (or a district named in the address), then the
    street office whose street name (or one of its areas) appears in the address. The longest name wins, so
    幸福家园 is not taken for 幸福路's street when both are listed. A street's name without 街道/镇/乡 counts
    only within a known district and with ``short_names`` (an address, not free text)."""
    district = district.strip()
    known = catalogue.districts
    if district not in known:
        district = next((d for d in sorted(known, key=len, reverse=True) if d in address), district)
    best: tuple[int, Unit] | None = None
    candidates = catalogue.streets(district) if district in known else \
        tuple(u for u in catalogue.units.values() if u.level == "street")
    short = short_names and district in known
    for unit in candidates:
        for name in _street_names(unit, short):
            if name and name in address and (best is None or len(name) > best[0]):
                best = (len(name), unit)
    if best is not None:
        return Place(best[1].district, best[1].street)
    return Place(district) if district in known else Place()


def category_of(catalogue: Catalogue, name: str) -> tuple[str, ...] | None:
    """A ticket's category field as a path: a full path, or a node name that is unique in the tree."""
    path = _path(name)
    if not path:
        return None
    if path in catalogue.categories:
        return path
    if len(path) == 1:
        found = [p for p in catalogue.categories if p[-1] == path[0]]
        if len(found) == 1:
            return found[0]
    return None


def categories_in(catalogue: Catalogue, text: str) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Categories whose keywords appear in the text, with the words found; the most specific and the most
    words first."""
    out = []
    for path, words in catalogue.keywords.items():
        hits = tuple(w for w in words if w in text)
        if hits:
            out.append((path, hits))
    out.sort(key=lambda ph: (-len(ph[0]), -len(ph[1]), "/".join(ph[0])))
    return out


def _resolve_lead(catalogue: Catalogue, lead: str, place: Place) -> str | None:
    if lead == LOCAL_STREET:
        unit = catalogue.street_office(place) if place.street else None
        if unit is not None:
            return unit.code
        lead = LOCAL_DISTRICT  # no street known: the district government passes it on to its street
    if lead == LOCAL_DISTRICT:
        gov = catalogue.district_government(place.district) if place.district else None
        return gov.code if gov is not None else None
    return lead


def lookup(catalogue: Catalogue, category: Sequence[str], place: Place,
           excluded: Iterable[str] = ()) -> Match | None:
    """The item for this category at this place: most specific category first, then most specific place.
    An item whose lead is excluded (it returned the ticket) or cannot be resolved here is passed over."""
    gone = set(excluded)
    path = tuple(category)
    for n in range(len(path), 0, -1):
        for at in place.broader():
            for item in catalogue.items:
                if item.category != path[:n] or item.place != at:
                    continue
                lead = _resolve_lead(catalogue, item.lead, place)
                if lead is None or lead in gone:
                    continue
                co: list[str] = []
                for c in item.co_handlers:
                    code = _resolve_lead(catalogue, c, place)
                    if code is not None and code != lead and code not in gone and code not in co:
                        co.append(code)
                return Match(path[:n], place, item, lead, tuple(co))
    return None
