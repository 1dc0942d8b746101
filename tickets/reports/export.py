"""Reports to Excel (openpyxl) and CSV. Rates are written as numbers with a percent format, so a
spreadsheet can compute with them; CSV starts with a BOM so Excel opens the Chinese text correctly.

Every text cell comes from citizens or staff (districts, titles, department names), so none may become a
formula: control characters are dropped (they also make an xlsx unreadable), xlsx text cells are always
strings (never formulas, shown as typed), and CSV text starting with = + - @ gets a leading ' (the usual
neutralisation: a spreadsheet opening the CSV shows the text instead of evaluating it)."""
from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from typing import Any, Iterable, Sequence

# C0 controls but tab and newline, DEL and the C1 controls: openpyxl refuses most of them (IllegalCharacterError).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")  # and full-width


def clean_text(value: str) -> str:
    """Text without control characters (a tab or newline inside stays)."""
    return _CONTROL.sub("", value)


def csv_text(value: str) -> str:
    """Text safe for a CSV opened in Excel or WPS: no control characters, no formula."""
    value = clean_text(value)
    return "'" + value if value.startswith(_FORMULA_START) else value

RATE_HEADERS = ["排名", "单位", "派单数", "按时签收数", "响应率", "办结数", "办结率", "按时办结数", "按时办结率",
                "回访数", "已解决数", "解决率", "满意", "基本满意", "不满意", "满意率", "综合评分"]


def rate_rows(report: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for r in report["rates"]:
        c = r["counts"]
        rows.append([r.get("rank") or r.get("unranked"), r["department"], c["dispatched"], c["signed_on_time"], r["response_rate"],
                     c["replied"], r["completion_rate"], c["replied_on_time"], r["on_time_rate"], c["surveyed"],
                     c["resolved"], r["resolution_rate"], c["satisfied"], c["basically_satisfied"],
                     c["dissatisfied"], r["satisfaction_rate"], r["composite"]])
    return rows


def _to_local(value: Any, tz: Any = None) -> Any:
    # Excel has no time zones: write the centre's wall-clock time without offset.
    if isinstance(value, datetime) and value.tzinfo is not None:
        return (value.astimezone(tz) if tz is not None else value).replace(tzinfo=None)
    return value


def sections(report: dict[str, Any]) -> list[tuple[str, list[str], list[list[Any]], set[int]]]:
    """(sheet title, headers, rows, indexes of percent columns) for every table of a report."""
    t = report["totals"]
    tz = report["start"].tzinfo

    def _local(value: Any) -> Any:
        return _to_local(value, tz)

    overview = [["报表", f"{report['kind_label']}（{report['label']}）"],
                ["统计区间", f"{_local(report['start'])} 至 {_local(report['end'])}"],
                ["来件总数", t["created"]], ["来件口径", t["counts"]],
                ["未计入：草稿", t["excluded"]["draft"]], ["未计入：无效件", t["excluded"]["invalid"]],
                ["未计入：合并的重复件", t["excluded"]["merged"]],
                ["本期同口径来件", t["compared_created"]], ["上期同口径来件", t["previous_created"]],
                ["环比", t["change"]], ["环比口径", (t["comparison"] or {}).get("note", "本期尚未开始")],
                ["紧急件", t["urgent"]], ["直接办结", t["answered_on_spot"]], ["直接办结率", t["on_spot_rate"]],
                ["回访数", report["satisfaction"]["surveyed"]], ["满意率", report["satisfaction"]["satisfaction_rate"]],
                ["回答是否解决", report["satisfaction"]["resolved_answered"]],
                ["已解决", report["satisfaction"]["resolved"]], ["解决率", report["satisfaction"]["resolution_rate"]],
                ["不满意台账新增", t["ledger"]], ["期内超期（件）", report["overdue"]["late_total"]],
                ["当前超期未办结（件）", report["overdue"]["open_total"]], ["排名规则", report["ranking_rule"]]]
    sv, fb, ld = report["supervision"], report["fallback"], report["ledger_decisions"]
    overview += [["督办件", sv["count"]], ["督办按时反馈", sv["on_time"]], ["督办逾期反馈", sv["late"]],
                 ["督办超期未反馈", sv["overdue"]], ["督办超期提醒（截至生成时）", len(sv["alert"])],
                 ["提级件", report["escalated"]["count"]], ["兜底件", fb["count"]], ["台账决定：期内新增台账", ld["total"]]]
    overview += [[f"台账决定：{d['label']}", d["count"]] for d in ld["by_decision"]]
    answer = {r.get("queue"): r for r in report.get("answer_rates") or []}.get("合计")
    if answer is not None:
        sl = answer.get("service_level_seconds", 15)
        overview += [["呼入（话务）", answer.get("offered")], ["接通", answer.get("answered")],
                     ["接通率", answer.get("answer_rate")], [f"{sl}秒接通率", answer.get("answer_rate_within")]]
    overview += [[f"状态：{s['label']}", s["count"]] for s in t["by_status"]]
    out = [("概览", ["项目", "数值"], overview, set()),
           ("三率排名", RATE_HEADERS, rate_rows(report), {4, 6, 8, 11, 15}),
           ("诉求类型", ["类型", "件数"], [[r["label"], r["count"]] for r in report["by_type"]], set()),
           ("区域", ["区域", "件数"], [[r["label"], r["count"]] for r in report["by_district"]], set()),
           ("来源渠道", ["渠道", "件数"], [[r["label"], r["count"]] for r in report["by_channel"]], set()),
           ("时段", ["小时", "件数"], [[f"{h:02d}:00", n] for h, n in enumerate(report["by_hour"])], set())]
    if report.get("first_response"):
        out.append(("首次响应", ["渠道", "时限（分钟）", "来件", "按时", "超时", "超时未响应", "按时率"],
                    [[r["label"], r["minutes"], r["arrived"], r["on_time"], r["late"], r["waiting_overdue"],
                      r["on_time_rate"]] for r in report["first_response"]], {6}))
    if report.get("by_day"):
        out.append(("每日来件", ["日期", "件数"], [[r["day"], r["count"]] for r in report["by_day"]], set()))
    out.append(("满意度趋势", ["日期", "回访数", "满意", "基本满意", "不满意", "已解决", "满意率"],
                [[r["day"], r["surveyed"], r["satisfied"], r["basically_satisfied"], r["dissatisfied"], r["resolved"],
                  r["satisfaction_rate"]] for r in report["satisfaction"]["by_day"]], {6}))
    out.append(("超期单位", ["单位", "超期件数"],
                [[r["department"], r["count"]] for r in report["overdue"]["late_by_department"]], set()))
    out.append(("超期工单", ["工单编号", "标题", "主办单位", "状态", "超期环节", "时限", "超期小时", "督办"],
                [[r["number"], r["title"], r["department"], r["status_label"], r["missed"], _local(r["due"]),
                  r["overdue_hours"], "是" if r["supervised"] else ""] for r in report["overdue"]["open"]], set()))
    out.append(("督办件", ["单位", "督办件", "按时反馈", "逾期反馈", "超期未反馈", "未到期"],
                [[r["department"], r["count"], r["on_time"], r["late"], r["overdue"], r["pending"]]
                 for r in sv["by_department"]], set()))
    out.append(("督办超期提醒", ["工单编号", "标题", "主办单位", "督办时限", "督办意见", "状态"],
                [[x["number"], x["title"], x["department"], _local(x["supervision_due"]), x["supervision_note"] or "",
                  x["status_label"]] for x in sv["alert"]], set()))
    out.append(("提级件", ["工单编号", "标题", "现主办单位", "提级次数", "状态", "派单时间"],
                [[x["number"], x["title"], x["department"], x["escalation_level"], x["status_label"],
                  _local(x["dispatched_at"])] for x in report["escalated"]["items"]], set()))
    out.append(("兜底件", ["单位", "兜底件数"], [[r["department"], r["count"]] for r in fb["by_department"]], set()))
    out.append(("兜底件清单", ["工单编号", "标题", "主办单位", "答复时间", "答复内容"],
                [[x["number"], x["title"], x["department"], _local(x["replied_at"]), x["answer"] or ""]
                 for x in fb["items"]], set()))
    decided = {d["key"]: d["count"] for d in ld["decided"]}
    out.append(("台账决定", ["决定", "期内新增台账（按现决定）", "期内作出的决定"],
                [[d["label"], d["count"], decided.get(d["key"])] for d in ld["by_decision"]], set()))
    if report.get("answer_rates") is not None:
        sl = next((r.get("service_level_seconds") for r in report["answer_rates"]), None) or 15
        out.append(("接通率", ["队列", "呼入", "接通", "放弃", "接通率", f"{sl}秒内接通", f"{sl}秒接通率"],
                    [[r.get("queue"), r.get("offered"), r.get("answered"), r.get("abandoned"), r.get("answer_rate"),
                      r.get("answered_within"), r.get("answer_rate_within")] for r in report["answer_rates"]],
                    {4, 6}))
    return out


def to_xlsx(report: dict[str, Any]) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill

    wb = Workbook()
    wb.remove(wb.active)
    head_font, head_fill = Font(bold=True, color="FFFFFF"), PatternFill("solid", fgColor="1F4E79")
    for title, headers, rows, percent in sections(report):
        ws = wb.create_sheet(title)
        ws.append(headers)
        for cell in ws[1]:
            cell.font, cell.fill = head_font, head_fill
            cell.alignment = Alignment(horizontal="center")
        for row in rows:
            ws.append([clean_text(v) if isinstance(v, str) else _to_local(v) for v in row])
            for cell in ws[ws.max_row]:
                if isinstance(cell.value, str):
                    cell.data_type = "s"  # openpyxl makes "=..." a formula; a report cell is always text
        for col in percent:
            for (cell,) in ws.iter_rows(min_row=2, min_col=col + 1, max_col=col + 1):
                cell.number_format = "0.00%"
        if title == "概览":
            for (cell,) in ws.iter_rows(min_row=2, min_col=2, max_col=2):
                if isinstance(cell.value, float):
                    cell.number_format = "0.00%"
        for i, header in enumerate(headers, start=1):
            width = max([len(str(header)) * 2 + 2] + [min(len(str(r[i - 1])) * 2, 60) for r in rows[:200]])
            ws.column_dimensions[ws.cell(1, i).column_letter].width = max(8, width)
        ws.freeze_panes = "A2"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def to_csv(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([csv_text(h) for h in headers])
    for row in rows:
        writer.writerow(["" if v is None else csv_text(v) if isinstance(v, str) else _to_local(v) for v in row])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def section_csv(report: dict[str, Any], title: str) -> bytes:
    for name, headers, rows, _ in sections(report):
        if name == title:
            return to_csv(headers, rows)
    raise KeyError(title)
