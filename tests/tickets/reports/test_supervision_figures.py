"""督办, 提级, 兜底 and the ledger's decisions in the reports: driven through the HTTP API with the fixture's
clock (week of Monday 2026-11-23, Asia/Shanghai), then read back from /api/v1/reports (daily and weekly), the
printed bulletin, the reports page and the xlsx. Expected numbers are counted by hand from the steps below.

| ticket | what happens                                                                            |
| S1     | →水务 11-23 09:00, 督办 due 11-24 18:00, never answered: overdue (the alert)             |
| S2     | →水务, 督办 due 11-24 18:00, signed and progress report 11-23 10:00: on time              |
| S3     | →水务, 督办 due 11-24 18:00, signed, progress report 11-25 08:00: late                    |
| E1     | →水务, signed, 提级 to 城管 11-24 10:00 (dispatched to the higher level that day)          |
| F1     | →环保, signed, reply 11-24 11:00 with outcome 兜底 (its answer looks like a formula)        |
| L1     | →环保, signed, replied, dissatisfied survey 11-24 14:00 (ledger), 解释说明后办结 11-24 15:00 |
"""
from __future__ import annotations

import io
from dataclasses import replace
from typing import Any

from openpyxl import load_workbook

from tests.tickets.conftest import Center
from tickets.http import STORE

FORMULA_ANSWER = "=1+1 不属于政府职能，无法办理"


async def _week(c: Center) -> dict[str, str]:
    store = c.client.app[STORE]
    store.policy = replace(store.policy, dissatisfied_rule="supervisor")
    d, at, n = c.departments, c.clock.set_local, {}

    async def dispatched(name: str, dept: str, who: Any) -> str:
        n[name] = (await c.new_ticket(accept=True))["number"]
        await c.agent.act(n[name], "dispatch", lead_department_id=d[dept])
        if who is not None:
            await who.act(n[name], "sign")
        return n[name]

    at(2026, 11, 23, 9, 0)
    await dispatched("S1", "swuj", None)
    await dispatched("S2", "swuj", c.water)
    await dispatched("S3", "swuj", c.water)
    for name in ("S1", "S2", "S3"):
        await c.super.act(n[name], "supervise", note="群众反映强烈，请尽快反馈", due="2026-11-24T18:00:00+08:00")
    await dispatched("E1", "swuj", c.water)
    await dispatched("F1", "sthj", c.env)
    await dispatched("L1", "sthj", c.env)
    at(2026, 11, 23, 10, 0)
    await c.water.act(n["S2"], "progress_report", note="已到现场核查")
    await c.env.act(n["L1"], "reply", answer="已处理")
    at(2026, 11, 24, 10, 0)
    t = await c.super.act(n["E1"], "escalate", note="群众反复反映，提级办理", to_department_id=d["cgj"])
    assert t["escalation_level"] == 1
    at(2026, 11, 24, 11, 0)
    await c.env.act(n["F1"], "reply", answer=FORMULA_ANSWER, outcome="fallback")
    at(2026, 11, 24, 14, 0)
    await c.agent.act(n["L1"], "record_survey", satisfaction="dissatisfied", resolved=False)
    at(2026, 11, 24, 15, 0)
    await c.super.act(n["L1"], "explain_close", note="已向来电人解释政策，来电人表示理解")
    at(2026, 11, 25, 8, 0)
    await c.water.act(n["S3"], "progress_report", note="迟到的反馈")
    at(2026, 11, 25, 9, 0)
    return n


def _check(r: dict[str, Any], c: Center, n: dict[str, str], names: dict[str, str]) -> None:
    """The figures of 11-24 (every 督办 deadline, the escalation, the 兜底 reply and the ledger are that day)."""
    sv = r["supervision"]
    assert (sv["count"], sv["on_time"], sv["late"], sv["overdue"], sv["pending"]) == (3, 1, 1, 1, 0)
    assert [(x["department"], x["count"], x["on_time"], x["late"], x["overdue"]) for x in sv["by_department"]] \
        == [(names["swuj"], 3, 1, 1, 1)]
    assert [x["number"] for x in sv["overdue_items"]] == [n["S1"]]
    assert [(x["number"], x["department"], x["supervision_state"]) for x in sv["alert"]] == [
        (n["S1"], names["swuj"], "overdue")]
    assert "caller_phone" not in sv["alert"][0]  # a report lists cases, never callers
    esc = r["escalated"]
    assert (esc["count"], [(x["number"], x["department"], x["escalation_level"]) for x in esc["items"]]) == (
        1, [(n["E1"], names["cgj"], 1)])
    fb = r["fallback"]
    assert (fb["count"], [(x["department"], x["count"]) for x in fb["by_department"]]) == (1, [(names["sthj"], 1)])
    assert [(x["number"], x["answer"]) for x in fb["items"]] == [(n["F1"], FORMULA_ANSWER)]
    ld = r["ledger_decisions"]
    assert (ld["total"], r["totals"]["ledger"]) == (1, 1)
    assert {x["key"]: x["count"] for x in ld["by_decision"] if x["count"]} == {"explained": 1}
    assert {x["key"]: x["count"] for x in ld["decided"] if x["count"]} == {"explained": 1}


async def test_supervision_escalation_fallback_and_ledger_decisions_in_the_reports(center: Center) -> None:
    c = center
    n = await _week(c)
    names = {x["code"]: x["name"] for x in await c.admin.get("/api/v1/departments")}

    daily = await c.super.get("/api/v1/reports?kind=daily&date=2026-11-24")
    _check(daily, c, n, names)
    assert daily["fallback"]["special_report"] is False
    weekly = await c.super.get("/api/v1/reports?kind=weekly&date=2026-11-25")
    _check(weekly, c, n, names)
    assert weekly["fallback"]["special_report"] is True  # the 周研判 is the weekly 专报 of 兜底件

    # Another day holds none of it, but the alert is the state when the report is made: S1 is still overdue.
    monday = await c.super.get("/api/v1/reports?kind=daily&date=2026-11-23")
    assert (monday["supervision"]["count"], monday["escalated"]["count"], monday["fallback"]["count"],
            monday["ledger_decisions"]["total"]) == (0, 0, 0, 0)
    assert [x["number"] for x in monday["supervision"]["alert"]] == [n["S1"]]
    # Once S1 is answered, no alert is left.
    await c.water.act(n["S1"], "sign")
    await c.water.act(n["S1"], "progress_report", note="补充反馈")
    after = await c.super.get("/api/v1/reports?kind=daily&date=2026-11-24")
    assert after["supervision"]["alert"] == [] and after["supervision"]["late"] == 2

    page = await c.super.get("/reports/print?kind=daily&date=2026-11-24")
    assert "督办件 3 件，按时反馈 1 件，逾期反馈 2 件，超期未反馈 0 件；提级件 1 件；" \
           f"兜底件 1 件（{names['sthj']} 1 件）；不满意台账新增 1 件，其中解释说明后办结 1 件。" in page
    assert 'id="supervision-table"' in page and n["E1"] in page and n["F1"] in page
    weekly_page = await c.super.get("/reports?kind=weekly&date=2026-11-25")
    assert "兜底件专报（无法办理，供每周研判）" in weekly_page and 'data-decision="explained"' in weekly_page


async def test_overdue_supervision_alert_in_the_bulletin_and_the_xlsx(center: Center) -> None:
    c = center
    n = await _week(c)
    names = {x["code"]: x["name"] for x in await c.admin.get("/api/v1/departments")}

    page = await c.super.get("/reports/print?kind=daily&date=2026-11-24")
    assert "督办件 3 件，按时反馈 1 件，逾期反馈 1 件，超期未反馈 1 件；提级件 1 件；" in page
    assert f"督办超期提醒：截至生成时 1 件督办超期未反馈</b>（{n['S1']} {names['swuj']}）" in page
    assert 'id="report-supervision-alert"' in page
    reports_page = await c.super.get("/reports?kind=daily&date=2026-11-24")
    assert 'id="report-supervision-alert"' in reports_page and n["S1"] in reports_page

    resp = await c.client.get("/reports/export.xlsx?kind=weekly&date=2026-11-23",
                              headers={"Authorization": f"Bearer {c.super.token}"})
    assert resp.status == 200, await resp.text()
    wb = load_workbook(io.BytesIO(await resp.read()))
    overview = {row[0]: row[1] for row in wb["概览"].iter_rows(min_row=2, values_only=True)}
    assert {k: overview[k] for k in ("督办件", "督办按时反馈", "督办逾期反馈", "督办超期未反馈",
                                     "督办超期提醒（截至生成时）", "提级件", "兜底件", "台账决定：期内新增台账",
                                     "台账决定：解释说明后办结", "台账决定：重办")} == {
        "督办件": 3, "督办按时反馈": 1, "督办逾期反馈": 1, "督办超期未反馈": 1, "督办超期提醒（截至生成时）": 1,
        "提级件": 1, "兜底件": 1, "台账决定：期内新增台账": 1, "台账决定：解释说明后办结": 1, "台账决定：重办": 0}

    def rows(sheet: str) -> list[tuple[Any, ...]]:
        return list(wb[sheet].iter_rows(min_row=2, values_only=True))

    assert rows("督办件") == [(names["swuj"], 3, 1, 1, 1, 0)]
    assert [(r[0], r[2]) for r in rows("督办超期提醒")] == [(n["S1"], names["swuj"])]
    assert [(r[0], r[2], r[3]) for r in rows("提级件")] == [(n["E1"], names["cgj"], 1)]
    assert rows("兜底件") == [(names["sthj"], 1)]
    assert [(r[0], r[2], r[4]) for r in rows("兜底件清单")] == [(n["F1"], names["sthj"], FORMULA_ANSWER)]
    decisions = {r[0]: (r[1], r[2]) for r in rows("台账决定")}
    assert decisions["解释说明后办结"] == (1, 1) and decisions["重办"] == (0, 0) and decisions["待班长决定"] == (0, None)
    # The answer that looks like a formula stays text (the export's safe writer), in xlsx and CSV.
    cell = next(r[4] for r in wb["兜底件清单"].iter_rows(min_row=2))
    assert cell.data_type == "s" and cell.value == FORMULA_ANSWER
    csv = await c.client.get("/reports/export.csv?kind=weekly&date=2026-11-23&section=兜底件清单",
                             headers={"Authorization": f"Bearer {c.super.token}"})
    text = (await csv.read()).decode("utf-8-sig")
    assert "'=1+1" in text and ",=" not in text
