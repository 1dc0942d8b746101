"""派单目录: the city's catalogue is checked at start with errors that name the entry, and routing follows it
down to the street office of the ticket's address."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.tickets.conftest import Center
from tickets.routing import catalogue as cat
from tickets.routing import rules as routing

CONFIG = Path(__file__).resolve().parents[3] / "config"
TAXONOMY = Path(__file__).resolve().parents[4] / "shared" / "datasets" / "category_taxonomy.csv"

DEPARTMENTS = """
[[department]]
code = "zjj"
name = "市住房和城乡建设局"
domains = ["城乡建设"]

[[department]]
code = "nhq"
name = "南湖区人民政府"
level = "district"
district = "南湖区"

[[department]]
code = "nh_xf"
name = "幸福街道办事处"
level = "street"
district = "南湖区"
street = "幸福街道"
parent = "nhq"
areas = ["幸福路"]
"""


def write(tmp_path: Path, departments: str = DEPARTMENTS, catalogue: str = "") -> tuple[Path, Path, Path]:
    (tmp_path / "routing.toml").write_text("", encoding="utf-8")
    (tmp_path / "departments.toml").write_text(departments, encoding="utf-8")
    (tmp_path / "catalogue.toml").write_text(catalogue, encoding="utf-8")
    return tmp_path / "routing.toml", tmp_path / "departments.toml", tmp_path / "catalogue.toml"


def load_error(tmp_path: Path, departments: str = DEPARTMENTS, catalogue: str = "") -> str:
    with pytest.raises(routing.ConfigError) as err:
        routing.load_config(*write(tmp_path, departments, catalogue))
    return str(err.value)


@pytest.fixture(scope="module")
def sample() -> routing.RoutingConfig:
    return routing.load_config(CONFIG / "routing.toml", CONFIG / "departments.toml", CONFIG / "catalogue.toml")


def test_the_shipped_sample_loads_with_three_levels(sample: routing.RoutingConfig) -> None:
    book = sample.catalogue
    assert book is not None and book.items
    levels = {u.level for u in book.units.values()}
    assert levels == {"city", "district", "street"}
    assert set(book.districts) >= {"南湖区", "东城区"}
    # every item's departments exist (the loader checked it; the dump shows their names)
    dumped = book.as_dict()
    assert all(i["lead_name"] != i["lead"] or i["lead"] in (cat.LOCAL_STREET, cat.LOCAL_DISTRICT)
               for i in dumped["items"])


def test_unknown_department_is_named(tmp_path: Path) -> None:
    msg = load_error(tmp_path, catalogue="""
[[category]]
path = "城乡建设/城乡规划/违章建筑"
[[item]]
category = "城乡建设/城乡规划/违章建筑"
lead = "no_such_dept"
""")
    assert "catalogue.toml" in msg and "item #1" in msg and "'no_such_dept'" in msg and "department code" in msg


def test_unknown_co_handler_is_named(tmp_path: Path) -> None:
    msg = load_error(tmp_path, catalogue="""
[[category]]
path = "城乡建设"
[[item]]
category = "城乡建设"
lead = "zjj"
co_handlers = ["ghost"]
""")
    assert "item #1" in msg and "co-handler 'ghost'" in msg


def test_unknown_category_is_named(tmp_path: Path) -> None:
    msg = load_error(tmp_path, catalogue="""
[[category]]
path = "城乡建设/城乡规划"
[[item]]
category = "城乡建设/城乡规划/违章建筑"
lead = "zjj"
""")
    assert "catalogue.toml" in msg and "unknown category '城乡建设/城乡规划/违章建筑'" in msg


def test_unknown_place_is_named(tmp_path: Path) -> None:
    msg = load_error(tmp_path, catalogue="""
[[category]]
path = "城乡建设"
[[item]]
category = "城乡建设"
place = "南湖区/和平街道"
lead = "属地街道"
""")
    assert "unknown place '南湖区/和平街道'" in msg and "幸福街道" in msg  # says which streets exist


def test_street_office_needs_its_district_government(tmp_path: Path) -> None:
    broken = DEPARTMENTS.replace('parent = "nhq"', 'parent = "zjj"')
    msg = load_error(tmp_path, departments=broken)
    assert "departments.toml" in msg and "'nh_xf'" in msg and "district government" in msg


def test_bad_level_and_missing_district_are_named(tmp_path: Path) -> None:
    assert "level must be one of" in load_error(tmp_path, departments=DEPARTMENTS.replace(
        'level = "district"', 'level = "province"'))
    assert "needs district" in load_error(tmp_path, departments=DEPARTMENTS.replace('district = "南湖区"\n\n', "\n"))


def test_categories_file_gives_the_tree(tmp_path: Path) -> None:
    (tmp_path / "tree.csv").write_text("level1,level2,level3\n城乡建设,城乡规划,违章建筑\n", encoding="utf-8")
    paths = write(tmp_path, catalogue="""
categories_file = "tree.csv"
[[item]]
category = "城乡建设/城乡规划/违章建筑"
place = "南湖区"
lead = "属地街道"
""")
    config = routing.load_config(*paths)
    assert config.catalogue is not None and ("城乡建设", "城乡规划") in config.catalogue.categories
    (tmp_path / "tree.csv").unlink()
    with pytest.raises(routing.ConfigError, match="categories_file"):
        routing.load_config(*paths)


@pytest.mark.skipif(not TAXONOMY.exists(), reason="../shared/datasets/category_taxonomy.csv is not on this machine")
def test_the_three_level_taxonomy_loads_as_a_tree() -> None:
    with TAXONOMY.open(encoding="utf-8") as fh:
        tree = cat.taxonomy_from_csv(fh)
    units = cat.parse_units({"department": [{"code": "zjj", "name": "住建"}]})
    book = cat.parse_catalogue({"item": [{"category": "/".join(tree[0]), "lead": "zjj"}]}, units, tree)
    assert {len(p) for p in book.categories} == {1, 2, 3}
    assert cat.lookup(book, tree[0], cat.Place()) is not None


def test_street_ticket_goes_to_its_street_office(sample: routing.RoutingConfig) -> None:
    ticket = routing.TicketInput(title="垃圾没人清理", content="楼下垃圾堆放一个星期了，臭气熏天。",
                                 address="南湖区幸福路18号", district="南湖区")
    decision = routing.suggest(ticket, sample, None)
    first = decision.suggestions[0]
    assert (first.department, first.source) == ("nh_xf", "catalogue")
    assert first.co_handlers == ("nh_cgj",)
    assert "派单目录：城乡建设/城市建设和市政管理/环境卫生 @ 南湖区幸福街道 -> 南湖区幸福街道办事处" in first.reasons
    assert not decision.needs_dispatcher


def test_same_matter_elsewhere_follows_that_place(sample: routing.RoutingConfig) -> None:
    text = {"title": "垃圾没人清理", "content": "门口垃圾堆放一个星期了。"}
    other_street = routing.suggest(routing.TicketInput(**text, address="南湖区滨河花园2栋"), sample, None)
    assert other_street.suggestions[0].department == "nh_bh"
    no_street = routing.suggest(routing.TicketInput(**text, district="南湖区"), sample, None)
    assert no_street.suggestions[0].department == "nhq"  # the district government passes it to its street
    other_city_part = routing.suggest(routing.TicketInput(**text, address="北山区某路"), sample, None)
    assert other_city_part.suggestions[0].department == "cgj"  # the city-wide item


def test_the_model_domain_goes_through_the_catalogue(sample: routing.RoutingConfig) -> None:
    ticket = routing.TicketInput(title="小区门口道路坑洼", content="路面坑洼积水，出行不便", address="南湖区滨河花园")
    first = routing.suggest(ticket, sample, [("城乡建设", 0.9, ["路面"]), ("交通运输", 0.1, [])]).suggestions[0]
    assert (first.department, first.source) == ("nh_zjj", "model")
    assert any(r.startswith("派单目录：城乡建设 @ 南湖区滨河街道 -> 南湖区住房和城乡建设局") for r in first.reasons)


def test_a_returning_street_office_is_passed_over(sample: routing.RoutingConfig) -> None:
    ticket = routing.TicketInput(title="垃圾没人清理", content="门口垃圾堆放", address="南湖区幸福路1号",
                                 returned_by=("nh_xf",))
    assert routing.suggest(ticket, sample, None).suggestions[0].department != "nh_xf"


async def test_street_ticket_routed_over_the_api_and_catalogue_listed(center: Center) -> None:
    number = (await center.new_ticket(title="垃圾没人清理", content="幸福路18号门口垃圾堆放一周了，没人清运。",
                                      address="南湖区幸福路18号", district="南湖区"))["number"]
    r = await center.agent.get(f"/api/v1/tickets/{number}/routing")
    first = r["suggestions"][0]
    assert first["department"] == "nh_xf" and first["department_id"] == center.departments["nh_xf"]
    assert first["co_handler_ids"] == [center.departments["nh_cgj"]]
    assert "派单目录：城乡建设/城市建设和市政管理/环境卫生 @ 南湖区幸福街道 -> 南湖区幸福街道办事处" in first["reasons"]
    book = await center.water.get("/api/v1/dispatch-catalogue")
    assert {"南湖区", "东城区"} <= set(book["districts"])
    item = next(i for i in book["items"] if i["category"] == "城乡建设/城市建设和市政管理/环境卫生"
                and i["place"]["label"] == "南湖区")
    assert item["lead"] == "属地街道" and item["co_handler_names"] == ["南湖区城市管理综合行政执法局"]
    resp = await center.client.get("/api/v1/dispatch-catalogue")
    assert resp.status == 401


def test_a_rule_naming_a_category_takes_the_catalogue_lead_for_the_place(sample: routing.RoutingConfig) -> None:
    text = {"title": "门口乱摆摊", "content": "每天晚上有人占道经营，堵住了人行道。"}
    street = routing.suggest(routing.TicketInput(**text, address="南湖区幸福路18号"), sample, None).suggestions[0]
    assert (street.department, street.source, street.rule) == ("nh_xf", "rule", "占道经营")
    assert "派单目录：城乡建设/城市建设和市政管理/城管执法 @ 南湖区幸福街道 -> 南湖区幸福街道办事处" in street.reasons
    district = routing.suggest(routing.TicketInput(**text, address="东城区建设大街1号"), sample, None).suggestions[0]
    assert (district.department, district.co_handlers) == ("dc_cgj", ("dc_js",))
    city = routing.suggest(routing.TicketInput(**text, address="北山区某路"), sample, None).suggestions[0]
    assert city.department == "cgj"


def test_a_rule_with_an_unknown_category_is_named(tmp_path: Path) -> None:
    paths = write(tmp_path, catalogue='[[category]]\npath = "城乡建设"\n')
    paths[0].write_text('[[rule]]\nname = "垃圾"\nkeywords = ["垃圾"]\ncategory = "城乡建设/环境卫生"\n', encoding="utf-8")
    with pytest.raises(routing.ConfigError, match="routing rule '垃圾': category '城乡建设/环境卫生'"):
        routing.load_config(*paths)


def test_place_from_district_and_address(sample: routing.RoutingConfig) -> None:
    book = sample.catalogue
    assert book is not None
    assert cat.resolve_place(book, "南湖区", "滨河花园2栋") == cat.Place("南湖区", "滨河街道")  # an area of the street
    assert cat.resolve_place(book, "", "南湖区幸福路18号") == cat.Place("南湖区", "幸福街道")
    assert cat.resolve_place(book, "南湖区", "幸福小区3栋") == cat.Place("南湖区", "幸福街道")
    # a street's bare name (幸福) is any word outside a known district: no street, no district
    assert cat.resolve_place(book, "", "幸福小区3栋") == cat.Place()
    assert cat.resolve_place(book, "北山区", "某路1号") == cat.Place()
