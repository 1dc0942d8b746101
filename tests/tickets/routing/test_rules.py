"""Rules of routing.toml always win; returns exclude departments; low confidence goes to a dispatcher."""
from __future__ import annotations

from pathlib import Path

import pytest

from tickets.routing import rules as routing

CONFIG = Path(__file__).resolve().parents[3] / "config"


@pytest.fixture(scope="module")
def config() -> routing.RoutingConfig:
    return routing.load_config(CONFIG / "routing.toml", CONFIG / "departments.toml")


def test_domains_map_to_departments(config: routing.RoutingConfig) -> None:
    assert config.department_of("劳动和社会保障") == "rsj"
    assert config.department_of("城乡建设") == "zjj"
    assert config.department_of("swuj") == "swuj"
    assert config.department_of("不存在的类别") is None


def test_a_matching_rule_wins_over_a_confident_model(config: routing.RoutingConfig) -> None:
    ticket = routing.TicketInput(title="幸福小区停水三天", content="自来水一直没有来，老人做饭都难", request_type="help")
    decision = routing.suggest(ticket, config, [("城乡建设", 0.97, ["小区"]), ("环境保护", 0.03, [])])
    first = decision.suggestions[0]
    assert (first.department, first.source, first.confidence) == ("swuj", "rule", 1.0)
    assert "规则：供水停水" in first.reasons and any("停水" in r and "自来水" in r for r in first.reasons)
    assert decision.suggestions[1].department == "zjj"
    assert not decision.needs_dispatcher


def test_rule_brings_its_co_handlers(config: routing.RoutingConfig) -> None:
    ticket = routing.TicketInput(title="工地半夜施工", content="旁边工地半夜施工，吵得睡不着")
    first = routing.suggest(ticket, config, None).suggestions[0]
    assert first.department == "sthj" and first.co_handlers == ("cgj",)


def test_rules_with_request_type_and_district_conditions() -> None:
    depts = {"department": [{"code": "a", "name": "甲局"}, {"code": "b", "name": "乙局"}]}
    config = routing.parse_config({"rule": [
        {"name": "A1区投诉", "districts": ["A1区"], "request_types": ["complaint"], "lead": "a"},
        {"name": "表扬", "request_types": ["praise"], "keywords": ["感谢"], "lead": "b"},
    ]}, depts)
    hit = routing.match_rules(config.rules, routing.TicketInput(title="x", request_type="complaint", district="A1区"))
    assert [r.name for r, _ in hit] == ["A1区投诉"]
    assert routing.match_rules(config.rules, routing.TicketInput(request_type="complaint", district="A2区")) == []
    assert routing.match_rules(config.rules, routing.TicketInput(content="感谢", request_type="inquiry")) == []


def test_unknown_department_in_a_rule_is_refused_with_its_name() -> None:
    with pytest.raises(routing.ConfigError, match="不存在|nope"):
        routing.parse_config({"rule": [{"name": "x", "keywords": ["k"], "lead": "nope"}]},
                             {"department": [{"code": "a", "name": "甲"}]})


def test_returning_department_is_not_suggested_again(config: routing.RoutingConfig) -> None:
    ticket = routing.TicketInput(title="学校乱收费", content="补课费", returned_by=("jyj",))
    decision = routing.suggest(ticket, config, [("教育文体", 0.7, ["学校"]), ("商贸旅游", 0.2, ["收费"]),
                                                ("城乡建设", 0.1, [])])
    codes = [s.department for s in decision.suggestions]
    assert "jyj" not in codes and codes[0] == "swj"
    assert decision.excluded == ("jyj",)
    # The returned department's share is taken out: 0.2 of the remaining 0.3.
    assert decision.suggestions[0].confidence == pytest.approx(0.2 / 0.3)


def test_below_threshold_goes_to_a_dispatcher_with_candidates(config: routing.RoutingConfig) -> None:
    ticket = routing.TicketInput(title="有个事情想问一下", content="不知道找谁")
    decision = routing.suggest(ticket, config, [("教育文体", 0.4, []), ("商贸旅游", 0.35, []), ("城乡建设", 0.25, [])])
    assert decision.needs_dispatcher and "人工派单" in decision.note
    assert [s.department for s in decision.suggestions] == ["jyj", "swj", "zjj"]
    no_model = routing.suggest(ticket, config, None)
    assert no_model.needs_dispatcher and no_model.suggestions == ()
