"""Report figures against a known set of tickets, on SQLite and PostgreSQL (SQL aggregation on both)."""
from __future__ import annotations

import io
from datetime import date, datetime

import pytest
from openpyxl import load_workbook

from tests.tickets.conftest import TZ, Center
from tickets.http import STORE
from tickets.reports import export
from tickets.reports.service import Reports, generate_scheduled, period_for


async def _known_month(c: Center) -> dict[str, str]:
    """Six tickets whose every figure is worked out by hand in the test below."""
    d = c.departments
    n: dict[str, str] = {}
    c.clock.set_local(2026, 10, 31, 10, 0)
    n["t5"] = (await c.new_ticket(request_type="suggestion", district="A1区", accept=True))["number"]  # October
    c.clock.set_local(2026, 11, 2, 9, 0)
    t1 = n["t1"] = (await c.new_ticket(request_type="complaint", district="A1区", accept=True))["number"]
    await c.agent.act(t1, "dispatch", lead_department_id=d["swuj"])
    c.clock.set_local(2026, 11, 2, 10, 0)
    await c.water.act(t1, "sign")
    c.clock.set_local(2026, 11, 2, 23, 30)
    t2 = n["t2"] = (await c.new_ticket(request_type="inquiry", district="A1区"))["number"]
    await c.agent.act(t2, "answer_on_spot", answer="已当场解答")
    c.clock.set_local(2026, 11, 3, 14, 0)
    t3 = n["t3"] = (await c.new_ticket(request_type="help", district="B2区", accept=True))["number"]
    await c.agent.act(t3, "dispatch", lead_department_id=d["sthj"])
    c.clock.set_local(2026, 11, 4, 16, 0)
    await c.water.act(t1, "reply", answer="已处理")
    c.clock.set_local(2026, 11, 5, 10, 0)
    await c.env.act(t3, "sign")  # sign_due was the end of 11-04: late
    c.clock.set_local(2026, 11, 5, 11, 0)
    t4 = n["t4"] = (await c.new_ticket(request_type="complaint", district="B2区", accept=True))["number"]
    await c.agent.act(t4, "dispatch", lead_department_id=d["swuj"])  # never signed
    c.clock.set_local(2026, 11, 6, 9, 0)
    await c.agent.act(t1, "record_survey", satisfaction="satisfied", resolved=True)
    c.clock.set_local(2026, 11, 10, 8, 0)
    t6 = n["t6"] = (await c.new_ticket(request_type="complaint", district="C3区", urgency="urgent", accept=True))["number"]
    await c.agent.act(t6, "dispatch", lead_department_id=d["cgj"])
    c.clock.set_local(2026, 11, 10, 8, 30)
    await c.city.act(t6, "sign")
    c.clock.set_local(2026, 11, 10, 20, 0)
    await c.city.act(t6, "reply", answer="已修复")
    c.clock.set_local(2026, 11, 11, 10, 0)
    await c.agent.act(t6, "record_survey", satisfaction="basically_satisfied", resolved=True)
    c.clock.set_local(2026, 11, 20, 15, 0)
    await c.env.act(t3, "reply", answer="已协调")  # reply_due was the end of 11-12: late
    c.clock.set_local(2026, 11, 21, 10, 0)
    await c.agent.act(t3, "record_survey", satisfaction="dissatisfied", resolved=False)  # reopened to env
    c.clock.set_local(2026, 11, 25, 12, 0)
    return n


@pytest.fixture
async def month(center: Center) -> tuple[Center, Reports, dict]:
    await _known_month(center)
    store = center.client.server.app[STORE]
    reports = Reports(store.read_sessions, store, TZ)
    report = await reports.build(period_for("monthly", date(2026, 11, 7), TZ), center.clock())
    return center, reports, report


async def api_rates(c: Center) -> list[dict]:
    """``GET /api/v1/rates`` over the same month, as an integration reads it."""
    return (await c.super.get("/api/v1/rates?from=2026-11-01&to=2026-11-30"))["departments"]


async def test_monthly_report_figures(month: tuple[Center, Reports, dict]) -> None:
    c, _, r = month
    t = r["totals"]
    # The month is still running (now = 11-25 12:00): 环比 compares 11-01..11-25 12:00 with 10-01..10-25 12:00,
    # which holds no ticket (t5 came on 10-31), so there is no ratio; the finished month is checked below.
    assert (r["label"], t["created"], t["compared_created"], t["previous_created"], t["change"]) \
        == ("2026年11月", 5, 5, 0, None)
    assert t["comparison"]["partial"] and t["comparison"]["previous_end"] == datetime(2026, 10, 25, 12, 0, tzinfo=TZ)
    assert (t["answered_on_spot"], t["on_spot_rate"], t["urgent"], t["ledger"]) == (1, 0.2, 1, 1)
    assert {x["label"]: x["count"] for x in r["by_type"]} == {"投诉": 3, "咨询": 1, "求助": 1}
    assert {x["label"]: x["count"] for x in r["by_district"]} == {"A1区": 2, "B2区": 2, "C3区": 1}
    # Local hours (Asia/Shanghai), including 23:30, which is 15:30 UTC.
    assert {h: n for h, n in enumerate(r["by_hour"]) if n} == {8: 1, 9: 1, 11: 1, 14: 1, 23: 1}
    assert len(r["by_day"]) == 30 and sum(x["count"] for x in r["by_day"]) == 5
    assert [x["count"] for x in r["by_day"] if x["day"] == "2026-11-02"] == [2]

    s = r["satisfaction"]
    assert (s["surveyed"], s["satisfied"], s["basically_satisfied"], s["dissatisfied"], s["resolved"]) == (3, 1, 1, 1, 2)
    assert s["satisfaction_rate"] == pytest.approx(0.6667) and s["resolution_rate"] == pytest.approx(0.6667)
    assert [x["surveyed"] for x in s["by_day"] if x["surveyed"]] == [1, 1, 1]

    rates = {row["code"]: row for row in r["rates"]}
    water, env, city = rates["swuj"], rates["sthj"], rates["cgj"]
    # Every department has fewer than tickets.min_cases_to_rank (5) dispatches: scored, listed, not ranked.
    assert [(x["code"], x["rank"], x["unranked"]) for x in r["rates"]][:3] == [
        ("cgj", None, "样本不足"), ("swuj", None, "样本不足"), ("sthj", None, "样本不足")]
    assert (water["counts"]["dispatched"], water["response_rate"], water["completion_rate"],
            water["on_time_rate"], water["satisfaction_rate"], water["composite"]) == (2, 0.5, 0.5, 1.0, 1.0, 85.0)
    # env: the late first assignment and the one opened by the reopen after the dissatisfied survey
    assert (env["counts"]["dispatched"], env["response_rate"], env["completion_rate"], env["on_time_rate"],
            env["resolution_rate"], env["satisfaction_rate"], env["composite"]) == (2, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0)
    assert (city["response_rate"], city["on_time_rate"], city["satisfaction_rate"], city["composite"]) \
        == (1.0, 1.0, 1.0, 100.0)

    # The monthly report and /api/v1/rates give exactly the same rates and ranking (one definition).
    assert await api_rates(c) == r["rates"]

    o = r["overdue"]
    assert [(x["department_id"], x["count"]) for x in o["late_by_department"]] == [(c.departments["sthj"], 1)]
    assert o["open_total"] == 2 and {x["missed"] for x in o["open"]} == {"签收"}
    assert r["answer_rates"] is None


async def test_excel_and_csv_hold_the_report_numbers(month: tuple[Center, Reports, dict]) -> None:
    c, _, r = month
    wb = load_workbook(io.BytesIO(export.to_xlsx(r)))
    rows = list(wb["三率排名"].iter_rows(values_only=True))
    assert rows[0][:5] == ("排名", "单位", "派单数", "按时签收数", "响应率")
    by_name = {row[1]: row for row in rows[1:]}
    water = by_name[next(x["department"] for x in r["rates"] if x["code"] == "swuj")]
    assert (water[0], water[2], water[3], water[4], water[6], water[15], water[16]) \
        == ("样本不足", 2, 1, 0.5, 0.5, 1.0, 85.0)
    assert wb["三率排名"]["E2"].number_format == "0.00%"
    overview = {row[0]: row[1] for row in wb["概览"].iter_rows(min_row=2, values_only=True)}
    assert overview["来件总数"] == 5 and overview["直接办结"] == 1
    hours = {row[0]: row[1] for row in wb["时段"].iter_rows(min_row=2, values_only=True)}
    assert hours["23:00"] == 1 and hours["00:00"] == 0
    overdue = list(wb["超期工单"].iter_rows(min_row=2, values_only=True))
    assert len(overdue) == 2 and all(isinstance(row[5], datetime) and row[5].tzinfo is None for row in overdue)
    text = export.section_csv(r, "诉求类型").decode("utf-8")
    assert text.startswith("\ufeff类型,件数") and "投诉,3" in text


async def test_weekly_and_daily_periods(month: tuple[Center, Reports, dict]) -> None:
    c, reports, _ = month
    week = await reports.build(period_for("weekly", date(2026, 11, 4), TZ), c.clock())
    assert week["label"] == "2026年11月2日至11月8日" and week["totals"]["created"] == 4
    day = await reports.build(period_for("daily", date(2026, 11, 2), TZ), c.clock())
    assert day["totals"]["created"] == 2 and day["totals"]["previous_created"] == 0 and day["by_day"] == []


async def test_scheduled_reports_are_written_once(month: tuple[Center, Reports, dict], tmp_path) -> None:
    c, reports, _ = month
    c.clock.set_local(2026, 12, 1, 0, 30)  # a Tuesday, first of the month: daily + monthly, no weekly
    written = await generate_scheduled(reports, tmp_path, c.clock())
    assert sorted(p.name for p in written) == ["daily-2026-11-30.json", "daily-2026-11-30.xlsx",
                                              "monthly-2026-11-01.json", "monthly-2026-11-01.xlsx"]
    wb = load_workbook(tmp_path / "monthly-2026-11-01.xlsx")
    overview = {row[0]: row[1] for row in wb["概览"].iter_rows(min_row=2, values_only=True)}
    # Written on 12-01: November is finished, so 环比 compares it with the whole of October (1 case: t5).
    assert (overview["来件总数"], overview["上期同口径来件"], overview["环比"]) == (5, 1, 4.0)
    assert await generate_scheduled(reports, tmp_path, c.clock()) == []  # a second process finds them done


async def test_answer_rates_section_reads_the_telephony_callable(month: tuple[Center, Reports, dict]) -> None:
    c, reports, _ = month
    seen = []

    async def answer_rates(start: datetime, end: datetime) -> list[dict]:
        seen.append((start, end))
        return [{"queue": "12345-main", "offered": 200, "answered": 190, "abandoned": 10, "answer_rate": 0.95,
                 "service_level_seconds": 15, "answered_within": 180, "answer_rate_within": 0.9}]

    with_tel = Reports(reports.sessions, reports.store, TZ, answer_rates)
    p = period_for("daily", date(2026, 11, 2), TZ)
    r = await with_tel.build(p, c.clock())
    assert seen == [(p.start, p.end)] and r["answer_rates"][0]["answered"] == 190
    wb = load_workbook(io.BytesIO(export.to_xlsx(r)))
    assert list(wb["接通率"].iter_rows(min_row=2, values_only=True)) == [("12345-main", 200, 190, 10, 0.95, 180, 0.9)]


async def test_exports_neutralise_formulas_and_control_characters(month: tuple[Center, Reports, dict]) -> None:
    _, _, r = month
    evil = ["=1+1", "+SUM(A1:A9)", "-2+3", "@cmd", "\uff1dHYPERLINK()", "普通区"]
    r = {**r, "by_district": [{"key": d, "label": d, "count": 1} for d in evil]}
    r["overdue"] = {**r["overdue"], "open": [{**r["overdue"]["open"][0], "title": "路灯\x00不亮\x1b[31m\x7f"}]}
    wb = load_workbook(io.BytesIO(export.to_xlsx(r)))  # a control character used to raise IllegalCharacterError
    cells = [row[0] for row in wb["区域"].iter_rows(min_row=2)]
    assert [c.value for c in cells] == evil and {c.data_type for c in cells} == {"s"}  # text, never a formula
    assert wb["超期工单"]["B2"].value == "路灯不亮[31m"
    text = export.section_csv(r, "区域").decode("utf-8-sig").splitlines()
    assert text[1:] == ["'=1+1,1", "'+SUM(A1:A9),1", "'-2+3,1", "'@cmd,1", "'\uff1dHYPERLINK(),1", "普通区,1"]
    assert export.to_csv(["a"], [[-3, "x\x07y"]]).decode("utf-8-sig").splitlines()[1] == "-3,xy"  # numbers stay
