"""Every figure of the 日通报, 周研判 and 月分析, the Excel export and ``/api/v1/rates`` against hand counts.

A small month (November 2026, Asia/Shanghai; no public holiday in it, 11-02 is a Monday) is driven through
the real HTTP API with the fake clock, then the reports are read as JSON, as xlsx and as the printed bulletin.
The expected numbers below are worked out by hand from this table, not from the code.

Tickets (``tk`` names; 东/西 = district 东区/西区; S = 满意, B = 基本满意, X = 不满意; res = "resolved" answer;
deadlines are "end of the Nth working day after dispatch": sign 1, reply 3 (咨询) / 7 (求助) / 15 (投诉);
urgent: sign 1 h, reply 24 h):

| ticket | created      | type / place     | what happens                                                      | status 12-02 |
| P1     | 10-12 10:00  | 投诉             | accepted (October: 环比 base)                                      | accepted     |
| P2     | 10-20 10:00  | 咨询             | answered on the spot (October)                                    | on spot      |
| P3     | 10-28 10:00  | 投诉             | draft, never accepted (not a case)                                 | draft        |
| A1     | 11-02 09:00  | 求助 东          | →水务, signed 10:00, replied 11-05, survey 11-06 S res=yes         | surveyed     |
| D1     | 11-02 10:00  | 咨询 A1区        | on the spot; survey 11-03 S res=yes                                | surveyed     |
| A2     | 11-03 09:00  | 求助 东          | →水务, signed, replied 11-06, survey 11-09 B res=no answer          | surveyed     |
| A3     | 11-04 09:00  | 求助 东          | →水务, signed 11-06 (due end 11-05: late), replied 11-10 (due end   | dispatched   |
|        |              |                  | 11-13), survey 11-11 X res=no → ledger, 重办 to 水务 11-11 10:00    |              |
|        |              |                  | (sign due end 11-12, reply due end 11-20): never signed            |              |
| B1     | 11-05 09:00  | 求助 西          | →环保, signed, replied 11-09 (due end 11-16), survey 11-10 S yes    | surveyed     |
| B2     | 11-09 09:00  | 咨询 西          | →环保, signed, replied 11-16 (due end 11-12: late), survey 11-17 S  | surveyed     |
| D2     | 11-09 10:00  | 咨询 A1区        | on the spot; survey 11-10 X res=no → ledger (no department)        | surveyed     |
| E1     | 11-10 11:00  | 投诉             | draft (not a case)                                                 | draft        |
| E2     | 11-11 11:00  | 投诉             | accepted, then marked invalid (not a case)                        | invalid      |
| E3     | 11-12 11:00  | 投诉             | draft merged into A3 (a repeat call; not a case)                  | merged       |
| A4     | 11-16 09:00  | 求助 东          | →水务, signed; never replied (reply due end 11-25: overdue)        | signed       |
| D3     | 11-16 10:00  | 咨询 A1区        | on the spot, archived without survey                              | archived     |
| A5     | 11-17 09:00  | 投诉 东          | →水务, returned (属地不符), return approved, →环保 14:00 (B3),       | signed       |
|        |              |                  | signed 11-18 09:30 (due end 11-18), not replied (due 12-08)        |              |
| B4     | 11-18 09:00  | 求助 西          | →环保 + 城管 co-handler, signed, replied 11-19, survey 11-20 B yes   | surveyed     |
| D4     | 11-18 10:00  | 咨询 A1区        | on the spot, not surveyed                                          | on spot      |
| B5     | 11-19 09:00  | 求助 西          | →环保, never signed (sign due end 11-20: overdue)                   | dispatched   |
| E4     | 11-19 11:00  | 建议 =HYPERLINK  | accepted, not dispatched (district is a formula: export test)      | accepted     |
| C1     | 11-20 09:00  | 投诉 东 urgent   | →城管, signed 09:30, never replied (due 11-21 09:00: overdue);      | signed       |
|        |              |                  | stored title holds a control character (export test)              |              |

Cases (来件总数) in November = every row created in November but E1, E2, E3 = 15; October = P1, P2 = 2.
"""
from __future__ import annotations

import io
from datetime import datetime
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import update

import server
from telephony.state import CallEnded
from tests.tickets.conftest import TZ, Center
from tickets.models import Ticket

HYPERLINK = '=HYPERLINK("http://evil.example/x","点我")'
BELL_TITLE = "路灯不亮\x07请尽快修"


async def _scenario(c: Center) -> dict[str, str]:
    d = c.departments
    at = c.clock.set_local
    n: dict[str, str] = {}

    async def new(name: str, rtype: str, district: str = "A1区", accept: bool = True, **fields: Any) -> str:
        n[name] = (await c.new_ticket(request_type=rtype, district=district, accept=accept, **fields))["number"]
        return n[name]

    async def dispatch(name: str, rtype: str, dept: str, **fields: Any) -> str:
        number = await new(name, rtype, **fields)
        await c.agent.act(number, "dispatch", lead_department_id=d[dept])
        return number

    async def on_spot(name: str) -> str:
        number = await new(name, "inquiry", accept=False)
        await c.agent.act(number, "answer_on_spot", answer="已当场解答")
        return number

    async def survey(name: str, satisfaction: str, resolved: bool | None) -> None:
        await c.agent.act(n[name], "record_survey", satisfaction=satisfaction, resolved=resolved)

    at(2026, 10, 12, 10, 0)
    await new("P1", "complaint")
    at(2026, 10, 20, 10, 0)
    await on_spot("P2")
    at(2026, 10, 28, 10, 0)
    await new("P3", "complaint", accept=False)

    at(2026, 11, 2, 9, 0)
    await dispatch("A1", "help", "swuj", district="东区")
    at(2026, 11, 2, 10, 0)
    await c.water.act(n["A1"], "sign")
    await on_spot("D1")
    at(2026, 11, 3, 9, 0)
    await dispatch("A2", "help", "swuj", district="东区")
    at(2026, 11, 3, 10, 0)
    await c.water.act(n["A2"], "sign")
    at(2026, 11, 3, 11, 0)
    await survey("D1", "satisfied", True)
    at(2026, 11, 4, 9, 0)
    await dispatch("A3", "help", "swuj", district="东区")
    at(2026, 11, 5, 9, 0)
    await dispatch("B1", "help", "sthj", district="西区")
    at(2026, 11, 5, 10, 0)
    await c.env.act(n["B1"], "sign")
    at(2026, 11, 5, 15, 0)
    await c.water.act(n["A1"], "reply", answer="已处理")
    at(2026, 11, 6, 10, 0)
    await c.water.act(n["A3"], "sign")  # late
    at(2026, 11, 6, 15, 0)
    await survey("A1", "satisfied", True)
    await c.water.act(n["A2"], "reply", answer="已处理")
    at(2026, 11, 9, 9, 0)
    await dispatch("B2", "inquiry", "sthj", district="西区")
    at(2026, 11, 9, 10, 0)
    await c.env.act(n["B2"], "sign")
    await on_spot("D2")
    at(2026, 11, 9, 15, 0)
    await survey("A2", "basically_satisfied", None)  # hung up before the "resolved?" question
    await c.env.act(n["B1"], "reply", answer="已处理")
    at(2026, 11, 10, 10, 0)
    await survey("B1", "satisfied", True)
    await survey("D2", "dissatisfied", False)
    at(2026, 11, 10, 11, 0)
    await new("E1", "complaint", accept=False)
    at(2026, 11, 10, 15, 0)
    await c.water.act(n["A3"], "reply", answer="已处理")
    at(2026, 11, 11, 10, 0)
    await survey("A3", "dissatisfied", False)  # reopened to 水务 at 11-11 10:00
    at(2026, 11, 11, 11, 0)
    await new("E2", "complaint")
    await c.agent.act(n["E2"], "mark_invalid", reason="骚扰电话")
    at(2026, 11, 12, 11, 0)
    await new("E3", "complaint", accept=False)
    await c.agent.act(n["E3"], "merge", master=n["A3"])
    at(2026, 11, 16, 9, 0)
    await dispatch("A4", "help", "swuj", district="东区")
    at(2026, 11, 16, 10, 0)
    await c.water.act(n["A4"], "sign")
    await on_spot("D3")
    at(2026, 11, 16, 10, 30)
    await c.agent.act(n["D3"], "archive")
    at(2026, 11, 16, 15, 0)
    await c.env.act(n["B2"], "reply", answer="已处理")  # late
    at(2026, 11, 17, 9, 0)
    await dispatch("A5", "complaint", "swuj", district="东区")
    at(2026, 11, 17, 11, 0)
    await c.water.act(n["A5"], "return", reason="属地不符")
    at(2026, 11, 17, 11, 30)
    await c.agent.act(n["A5"], "approve_return")
    at(2026, 11, 17, 14, 0)
    await c.agent.act(n["A5"], "dispatch", lead_department_id=d["sthj"])  # B3
    at(2026, 11, 17, 15, 0)
    await survey("B2", "satisfied", True)
    # A look at the month while it runs (11-18 12:00) comes from the test below, at this point.
    at(2026, 11, 18, 9, 0)
    number = await new("B4", "help", district="西区")
    await c.agent.act(number, "dispatch", lead_department_id=d["sthj"], co_handler_ids=[d["cgj"]])
    at(2026, 11, 18, 9, 30)
    await c.env.act(n["A5"], "sign")
    at(2026, 11, 18, 10, 0)
    await c.env.act(n["B4"], "sign")
    await on_spot("D4")
    return n


async def _rest_of_month(c: Center, n: dict[str, str]) -> None:
    d = c.departments
    c.clock.set_local(2026, 11, 19, 9, 0)
    n["B5"] = (await c.new_ticket(request_type="help", district="西区", accept=True))["number"]
    await c.agent.act(n["B5"], "dispatch", lead_department_id=d["sthj"])
    c.clock.set_local(2026, 11, 19, 11, 0)
    n["E4"] = (await c.new_ticket(request_type="suggestion", district=HYPERLINK, accept=True))["number"]
    c.clock.set_local(2026, 11, 19, 15, 0)
    await c.env.act(n["B4"], "reply", answer="已处理")
    c.clock.set_local(2026, 11, 20, 9, 0)
    n["C1"] = (await c.new_ticket(request_type="complaint", district="东区", urgency="urgent", title="路灯不亮",
                                  accept=True))["number"]
    # The API refuses control characters now; records from before (or from another channel's import) may hold
    # them, and the export must still work: put one in the stored title.
    async with c.client.server.app[server.SESSIONS]() as session:
        await session.execute(update(Ticket).where(Ticket.number == n["C1"]).values(title=BELL_TITLE))
        await session.commit()
    await c.agent.act(n["C1"], "dispatch", lead_department_id=d["cgj"])
    c.clock.set_local(2026, 11, 20, 9, 30)
    await c.city.act(n["C1"], "sign")
    c.clock.set_local(2026, 11, 20, 10, 0)
    await c.agent.act(n["B4"], "record_survey", satisfaction="basically_satisfied", resolved=True)


def _ts(*args: int) -> float:
    return datetime(*args, tzinfo=TZ).timestamp()


async def _calls(c: Center) -> None:
    """Queue calls stored by the telephony call store itself (what the AMI bridge writes when a call ends)."""
    store = c.client.server.app[server.TELEPHONY].store

    async def call(cid: str, queue: str, joined: float, wait: float, outcome: str) -> None:
        answered = joined + wait if outcome in ("answered", "transferred") else None
        await store.save_call(CallEnded(call_id=cid, caller_num="13800138000", queue=queue, joined=joined,
                                        answered=answered, ended=joined + wait + 60, wait=wait,
                                        talk=60 if answered else None, interface="PJSIP/8001" if answered else "",
                                        member_name="", outcome=outcome, recording=""))

    # 11-09: hotline 4 offered, 3 answered (5 s, 20 s, transferred after 10 s), 1 abandoned; english 1 in 3 s.
    await call("c1", "hotline", _ts(2026, 11, 9, 9, 0), 5, "answered")
    await call("c2", "hotline", _ts(2026, 11, 9, 9, 5), 20, "answered")
    await call("c3", "hotline", _ts(2026, 11, 9, 9, 10), 40, "abandoned")
    await call("c4", "hotline", _ts(2026, 11, 9, 9, 15), 10, "transferred")
    await call("c5", "english", _ts(2026, 11, 9, 9, 20), 3, "answered")
    # Joined 11-08 23:59:50, ended on 11-09: counts on the day the caller joined the queue (11-08).
    await call("c6", "hotline", _ts(2026, 11, 8, 23, 59, 50), 2, "answered")
    await call("c7", "hotline", _ts(2026, 11, 10, 9, 0), 30, "timed_out")
    await call("c8", "hotline", _ts(2026, 10, 31, 9, 0), 1, "answered")  # October: never in November


@pytest.fixture
async def month(center: Center) -> tuple[Center, dict[str, str], dict[str, Any]]:
    n = await _scenario(center)
    center.clock.set_local(2026, 11, 18, 12, 0)
    running = await center.super.get("/api/v1/reports?kind=monthly&date=2026-11-18")
    await _rest_of_month(center, n)
    await _calls(center)
    center.clock.set_local(2026, 12, 2, 10, 0)
    return center, n, running


def _by(rows: list[dict[str, Any]], key: str = "label") -> dict[str, int]:
    return {r[key]: r["count"] for r in rows}


def _rates(rows: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    return {r["code"]: (r["rank"], r["unranked"], r["counts"]["dispatched"], r["counts"]["signed_on_time"],
                        r["counts"]["replied"], r["counts"]["replied_on_time"], r["counts"]["surveyed"],
                        r["counts"]["resolved"], r["counts"]["resolved_answered"], r["counts"]["satisfied"],
                        r["counts"]["basically_satisfied"], r["counts"]["dissatisfied"], r["response_rate"],
                        r["completion_rate"], r["on_time_rate"], r["resolution_rate"], r["satisfaction_rate"],
                        r["composite"]) for r in rows if r["counts"]["dispatched"]}


# Monthly rates (lead assignments dispatched in November; the approved return of A5 to 水务 is not counted):
#   水务 swuj: A1 A2 A3 A3-重办 A4 = 5 dispatched; signed on time A1 A2 A4 = 3 (0.6); replied A1 A2 A3 = 3 (0.6),
#     all on time (1.0); surveyed A1 S/yes, A2 B/-, A3 X/no = 3: 满意率 (1+1)/3 = 0.6667, 解决率 1/2 = 0.5;
#     score 100 × (0.30×0.6 + 0.35×0.5 + 0.35×0.6667) = 58.83
#   环保 sthj: B1 B2 B3(A5) B4 B5 = 5; signed on time B1 B2 B3 B4 = 4 (0.8); replied B1 B2 B4 = 3 (0.6), on
#     time B1 B4 = 2 (0.6667); surveyed B1 S/yes B2 S/yes B4 B/yes: 满意率 1.0, 解决率 1.0; score 94.0
#   城管 cgj: C1 = 1, signed on time (1.0), never replied (办结率 0): score 100 × 0.30 × 1.0 = 30.0, but one case
#     is below tickets.min_cases_to_rank (5): listed, not ranked (the old rule ranked it first with 100).
MONTH_RATES = {
    "sthj": (1, None, 5, 4, 3, 2, 3, 3, 3, 2, 1, 0, 0.8, 0.6, 0.6667, 1.0, 1.0, 94.0),
    "swuj": (2, None, 5, 3, 3, 3, 3, 1, 2, 1, 1, 1, 0.6, 0.6, 1.0, 0.5, 0.6667, 58.83),
    "cgj": (None, "样本不足", 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1.0, 0.0, None, None, None, 30.0),
}


async def test_monthly_report_every_figure(month: tuple[Center, dict[str, str], dict[str, Any]]) -> None:
    c, n, _ = month
    r = await c.super.get("/api/v1/reports?kind=monthly&date=2026-11-07")
    t = r["totals"]
    assert (r["kind"], r["label"], r["start"], r["end"]) == (
        "monthly", "2026年11月", "2026-11-01T00:00:00+08:00", "2026-12-01T00:00:00+08:00")
    # 15 cases; the finished month against the whole of October (P1, P2): (15 - 2) / 2 = +650 %.
    assert (t["created"], t["compared_created"], t["previous_created"], t["change"]) == (15, 15, 2, 6.5)
    assert t["excluded"] == {"draft": 1, "invalid": 1, "merged": 1}
    assert t["comparison"]["partial"] is False
    assert t["comparison"]["note"] == "环比口径：本期11月1日至11月30日对比上期整期10月1日至10月31日"
    # 直接办结: D1 (surveyed), D2 (surveyed), D3 (archived), D4 = 4 of 15. Urgent: C1. Ledger: D2, A3.
    assert (t["answered_on_spot"], t["on_spot_rate"], t["urgent"], t["ledger"]) == (4, 0.2667, 1, 2)
    assert _by(t["by_status"], "key") == {"accepted": 1, "answered_on_spot": 1, "dispatched": 2, "signed": 3,
                                          "surveyed": 7, "archived": 1, "draft": 1, "invalid": 1, "merged": 1}
    assert _by(r["by_type"]) == {"求助": 7, "咨询": 5, "投诉": 2, "建议": 1}
    assert _by(r["by_district"]) == {"东区": 6, "西区": 4, "A1区": 4, HYPERLINK: 1}
    assert _by(r["by_channel"], "key") == {"phone": 15}
    assert {h: x for h, x in enumerate(r["by_hour"]) if x} == {9: 10, 10: 4, 11: 1}
    assert {x["day"][5:]: x["count"] for x in r["by_day"] if x["count"]} == {
        "11-02": 2, "11-03": 1, "11-04": 1, "11-05": 1, "11-09": 2, "11-16": 2, "11-17": 1, "11-18": 2,
        "11-19": 2, "11-20": 1}
    assert len(r["by_day"]) == 30

    # Survey answers given in November, on-spot tickets included: D1 S/yes, A1 S/yes, A2 B/-, B1 S/yes,
    # D2 X/no, A3 X/no, B2 S/yes, B4 B/yes = 8: 满意率 (4 + 2) / 8 = 0.75; 解决率 5 yes / 7 answered = 0.7143.
    s = r["satisfaction"]
    assert (s["surveyed"], s["satisfied"], s["basically_satisfied"], s["dissatisfied"], s["resolved"],
            s["resolved_answered"], s["satisfaction_rate"], s["resolution_rate"]) == (8, 4, 2, 2, 5, 7, 0.75, 0.7143)
    assert {x["day"][5:]: x["surveyed"] for x in s["by_day"] if x["surveyed"]} == {
        "11-03": 1, "11-06": 1, "11-09": 1, "11-10": 2, "11-11": 1, "11-17": 1, "11-20": 1}

    assert _rates(r["rates"]) == MONTH_RATES
    assert [x["code"] for x in r["rates"]][:3] == ["sthj", "swuj", "cgj"]
    assert "派单不少于5件" in r["ranking_rule"]
    # /api/v1/rates over the same days is the same table.
    api = await c.super.get("/api/v1/rates?from=2026-11-01&to=2026-11-30")
    assert api["departments"] == r["rates"]

    # Late in November (reply due in the month, passed, not replied in time): 水务 A3-重办 (due 11-21 00:00) and
    # A4 (11-26 00:00), 环保 B2 (replied 11-16, due 11-13 00:00), 城管 C1 (11-21 09:00). B5 is due 12-01 00:00.
    o = r["overdue"]
    assert {x["department_id"]: x["count"] for x in o["late_by_department"]} == {
        c.departments["swuj"]: 2, c.departments["sthj"]: 1, c.departments["cgj"]: 1}
    assert o["late_total"] == 4
    # Overdue now (12-02 10:00): A3 and B5 unsigned (签收), A4 and C1 unreplied (办结).
    assert {x["number"]: x["missed"] for x in o["open"]} == {n["A3"]: "签收", n["B5"]: "签收", n["A4"]: "办结",
                                                             n["C1"]: "办结"}
    assert o["open_total"] == 4

    # 接通率 from telephony_calls, November (calls counted on the day the caller joined): hotline c1 c2 c3 c4 c6
    # c7 = 6 offered, 4 answered (c1 c2 c4 c6), 1 abandoned, 3 within 15 s (c1 5 s, c4 10 s, c6 2 s);
    # english c5. Total 7 / 5 / 1 / 4.
    assert [(q["queue"], q["offered"], q["answered"], q["abandoned"], q["answer_rate"], q["answered_within"],
             q["answer_rate_within"]) for q in r["answer_rates"]] == [
        ("english", 1, 1, 0, 1.0, 1, 1.0), ("hotline", 6, 4, 1, 0.6667, 3, 0.5), ("合计", 7, 5, 1, 0.7143, 4, 0.5714)]
    assert {q["service_level_seconds"] for q in r["answer_rates"]} == {15}

    page = await c.super.get("/reports?kind=monthly&date=2026-11-01")
    for text in ("来件总数（受理件）", "本期另有草稿 1、无效件 1、合并的重复件 1 未计入",
                 "环比口径：本期11月1日至11月30日对比上期整期10月1日至10月31日", "样本不足",
                 "排名规则：派单不少于5件的单位参加排名", "15秒接通率", "data-queue=\"合计\""):
        assert text in page, text
    assert "尚未接入" not in page


async def test_running_month_compares_equal_spans(month: tuple[Center, dict[str, str], dict[str, Any]]) -> None:
    _, _, running = month
    # Seen at 11-18 12:00: 11-01..11-18 12:00 holds A1 D1 A2 A3 B1 B2 D2 A4 D3 A5 B4 D4 = 12 cases; the same
    # span of October (10-01..10-18 12:00) holds P1 only (P2 came on 10-20): (12 - 1) / 1 = +1100 %, not the
    # month-to-date against all of October (12 vs 2).
    t = running["totals"]
    assert (t["created"], t["compared_created"], t["previous_created"], t["change"]) == (12, 12, 1, 11.0)
    assert t["comparison"]["partial"] is True
    assert t["comparison"]["previous_end"] == "2026-10-18T12:00:00+08:00"
    assert t["comparison"]["note"] == "环比口径：本期11月1日至11月18日12:00对比上期同期（等长区间）10月1日至10月18日12:00"


async def test_weekly_report_every_figure(month: tuple[Center, dict[str, str], dict[str, Any]]) -> None:
    c, _, _ = month
    r = await c.super.get("/api/v1/reports?kind=weekly&date=2026-11-19")
    t = r["totals"]
    assert r["label"] == "2026年11月16日至11月22日"
    # 11-16..11-22: A4 D3 A5 B4 D4 B5 E4 C1 = 8; the week before: B2 D2 (E1 E2 E3 are not cases) = 2.
    assert (t["created"], t["previous_created"], t["change"], t["excluded"]) == (
        8, 2, 3.0, {"draft": 0, "invalid": 0, "merged": 0})
    assert (t["answered_on_spot"], t["on_spot_rate"], t["urgent"], t["ledger"]) == (2, 0.25, 1, 0)
    assert _by(t["by_status"], "key") == {"accepted": 1, "answered_on_spot": 1, "dispatched": 1, "signed": 3,
                                          "surveyed": 1, "archived": 1}
    assert _by(r["by_type"]) == {"求助": 3, "咨询": 2, "投诉": 2, "建议": 1}
    assert _by(r["by_district"]) == {"东区": 3, "西区": 2, "A1区": 2, HYPERLINK: 1}
    assert {x["day"][5:]: x["count"] for x in r["by_day"]} == {
        "11-16": 2, "11-17": 1, "11-18": 2, "11-19": 2, "11-20": 1, "11-21": 0, "11-22": 0}
    s = r["satisfaction"]  # B2 S/yes (11-17), B4 B/yes (11-20)
    assert (s["surveyed"], s["satisfied"], s["basically_satisfied"], s["dissatisfied"], s["satisfaction_rate"],
            s["resolution_rate"]) == (2, 1, 1, 0, 1.0, 1.0)
    # Dispatched in the week: 水务 A4 (A5's returned assignment does not count); 环保 B3 B4 B5, 2 signed on time,
    # B4 replied on time and surveyed B/yes: 100 × (0.30 × 0.6667 + 0.35 + 0.35) = 90.0; 城管 C1: 30.0.
    # Nobody reaches 5 cases: nobody is ranked.
    assert _rates(r["rates"]) == {
        "swuj": (None, "样本不足", 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1.0, 0.0, None, None, None, 30.0),
        "sthj": (None, "样本不足", 3, 2, 1, 1, 1, 1, 1, 0, 1, 0, 0.6667, 0.3333, 1.0, 1.0, 1.0, 90.0),
        "cgj": (None, "样本不足", 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1.0, 0.0, None, None, None, 30.0),
    }
    assert r["rates"][0]["code"] == "sthj"
    # Reply due in the week and missed: A3-重办 (11-21 00:00, 水务) and C1 (11-21 09:00, 城管); B1's due
    # (11-17 00:00) was met.
    assert {x["department_id"]: x["count"] for x in r["overdue"]["late_by_department"]} == {
        c.departments["swuj"]: 1, c.departments["cgj"]: 1}
    assert r["answer_rates"] == []  # no queue call that week


async def test_daily_report_every_figure(month: tuple[Center, dict[str, str], dict[str, Any]]) -> None:
    c, _, _ = month
    r = await c.super.get("/api/v1/reports?kind=daily&date=2026-11-09")
    t = r["totals"]
    # 11-09: B2 and D2 (on the spot, surveyed the next day); 11-08 was a Sunday without a case.
    assert (r["label"], t["created"], t["previous_created"], t["change"]) == ("2026年11月9日", 2, 0, None)
    assert (t["answered_on_spot"], t["on_spot_rate"], t["urgent"], t["ledger"]) == (1, 0.5, 0, 0)
    assert t["comparison"]["note"] == "环比口径：本期11月9日对比上期整期11月8日"
    assert (_by(r["by_type"]), r["by_day"]) == ({"咨询": 2}, [])
    assert {h: x for h, x in enumerate(r["by_hour"]) if x} == {9: 1, 10: 1}
    s = r["satisfaction"]  # A2: 基本满意, did not answer "resolved?": no 解决率 that day
    assert (s["surveyed"], s["basically_satisfied"], s["satisfaction_rate"], s["resolved_answered"],
            s["resolution_rate"]) == (1, 1, 1.0, 0, None)
    # B2, dispatched that day, scores 100 on one case: listed, not ranked.
    assert _rates(r["rates"]) == {
        "sthj": (None, "样本不足", 1, 1, 1, 0, 1, 1, 1, 1, 0, 0, 1.0, 1.0, 0.0, 1.0, 1.0, 100.0)}
    assert r["overdue"]["late_total"] == 0
    # 11-09 queue calls: hotline 4 offered, 3 answered, 1 abandoned, 2 within 15 s; english 1/1/1 (c6 joined on
    # 11-08, c7 on 11-10).
    assert [(q["queue"], q["offered"], q["answered"], q["abandoned"], q["answer_rate"], q["answered_within"],
             q["answer_rate_within"]) for q in r["answer_rates"]] == [
        ("english", 1, 1, 0, 1.0, 1, 1.0), ("hotline", 4, 3, 1, 0.75, 2, 0.5), ("合计", 5, 4, 1, 0.8, 3, 0.6)]
    day_before = await c.super.get("/api/v1/reports?kind=daily&date=2026-11-03")
    assert (day_before["totals"]["created"], day_before["totals"]["previous_created"],
            day_before["totals"]["change"]) == (1, 2, -0.5)  # A2 against A1 + D1

    page = await c.super.get("/reports/print?kind=daily&date=2026-11-09")
    assert "尚未接入" not in page
    assert "呼入 5 个，接通 4 个，接通率 80.0%，15秒接通率 60.0%" in page
    assert "热线共受理群众诉求 <b>2</b> 件（不含草稿、无效件和合并的重复件）" in page


async def _xlsx(c: Center, query: str) -> Any:
    resp = await c.client.get(f"/reports/export.xlsx?{query}", headers={"Authorization": f"Bearer {c.super.token}"})
    assert resp.status == 200, await resp.text()
    return load_workbook(io.BytesIO(await resp.read()))


async def test_excel_export_holds_the_hand_counts(month: tuple[Center, dict[str, str], dict[str, Any]]) -> None:
    c, n, _ = month
    wb = await _xlsx(c, "kind=monthly&date=2026-11-01")
    overview = {row[0]: row[1] for row in wb["概览"].iter_rows(min_row=2, values_only=True)}
    assert {k: overview[k] for k in ("来件总数", "未计入：草稿", "未计入：无效件", "未计入：合并的重复件",
                                     "本期同口径来件", "上期同口径来件", "环比", "紧急件", "直接办结", "直接办结率",
                                     "回访数", "满意率", "回答是否解决", "已解决", "解决率", "不满意台账新增",
                                     "期内超期（件）", "当前超期未办结（件）", "呼入（话务）", "接通", "接通率",
                                     "15秒接通率")} == {
        "来件总数": 15, "未计入：草稿": 1, "未计入：无效件": 1, "未计入：合并的重复件": 1, "本期同口径来件": 15,
        "上期同口径来件": 2, "环比": 6.5, "紧急件": 1, "直接办结": 4, "直接办结率": 0.2667, "回访数": 8,
        "满意率": 0.75, "回答是否解决": 7, "已解决": 5, "解决率": 0.7143, "不满意台账新增": 2, "期内超期（件）": 4,
        "当前超期未办结（件）": 4, "呼入（话务）": 7, "接通": 5, "接通率": 0.7143, "15秒接通率": 0.5714}
    assert overview["来件口径"] == "受理件（不含草稿、无效件和合并的重复件）"

    names = {x["code"]: x["department"] for x in (await c.super.get("/api/v1/rates?from=2026-11-01&to=2026-11-30"))
             ["departments"]}
    rows = {row[1]: row for row in wb["三率排名"].iter_rows(min_row=2, values_only=True)}
    for code, expected in MONTH_RATES.items():
        row = rows[names[code]]
        rank, unranked, disp, signed, replied, on_time, surveyed, res, _answered, sat, basic, dissat, \
            response, completion, on_time_rate, resolution, satisfaction, composite = expected
        assert row == (rank or unranked, names[code], disp, signed, response, replied, completion, on_time,
                       on_time_rate, surveyed, res, resolution, sat, basic, dissat, satisfaction, composite)
    assert _rows(wb, "诉求类型") == {"求助": 7, "咨询": 5, "投诉": 2, "建议": 1}
    assert _rows(wb, "区域") == {"东区": 6, "西区": 4, "A1区": 4, HYPERLINK: 1}
    assert {k: v for k, v in _rows(wb, "时段").items() if v} == {"09:00": 10, "10:00": 4, "11:00": 1}
    assert sum(_rows(wb, "每日来件").values()) == 15
    assert {k: v for k, v in _rows(wb, "超期单位").items()} == {names["swuj"]: 2, names["sthj"]: 1, names["cgj"]: 1}
    late = {row[0]: row for row in wb["超期工单"].iter_rows(min_row=2, values_only=True)}
    assert set(late) == {n["A3"], n["A4"], n["B5"], n["C1"]}
    assert late[n["C1"]][1] == "路灯不亮请尽快修"  # the control character is dropped, the export does not fail
    assert list(wb["接通率"].iter_rows(min_row=2, values_only=True)) == [
        ("english", 1, 1, 0, 1.0, 1, 1.0), ("hotline", 6, 4, 1, 0.6667, 3, 0.5), ("合计", 7, 5, 1, 0.7143, 4, 0.5714)]

    # The district that looks like a formula stays text: a string cell, never a live formula.
    cell = next(row[0] for row in wb["区域"].iter_rows(min_row=2) if row[0].value == HYPERLINK)
    assert cell.data_type == "s"
    csv = await c.client.get("/reports/export.csv?kind=monthly&date=2026-11-01&section=区域",
                             headers={"Authorization": f"Bearer {c.super.token}"})
    text = (await csv.read()).decode("utf-8-sig")
    assert "'=HYPERLINK" in text and "\n=" not in text and ",=" not in text


def _rows(wb: Any, sheet: str) -> dict[Any, Any]:
    return {row[0]: row[1] for row in wb[sheet].iter_rows(min_row=2, values_only=True)}


async def test_custom_range_is_capped(month: tuple[Center, dict[str, str], dict[str, Any]]) -> None:
    c, _, _ = month
    too_long = await c.super.get("/api/v1/reports?kind=custom&from=2025-11-29&to=2026-11-30", expect=400)
    assert too_long["field"] == "to" and "366" in too_long["message"]
    year = await c.super.get("/api/v1/reports?kind=custom&from=2025-11-30&to=2026-11-30")  # 366 days: allowed
    assert year["totals"]["created"] == 17 and len(year["by_day"]) == 366  # October and November
    assert year["totals"]["comparison"]["note"] == \
        "环比口径：本期2025年11月30日至2026年11月30日对比上期整期2024年11月29日至2025年11月29日"
    bad = await c.super.get("/api/v1/rates?from=2000-01-01&to=2026-11-30", expect=400)
    assert bad["field"] == "to" and "366" in bad["message"]
