"""Draft ticket fields from what the citizen said: request type, urgency and hand-off, address and
district, phone numbers said aloud, a short title, a suggested department.

Pure: text (and optionally the transcript's timed words) in, plain data out. Every filled field lists
its ``sources``: the character span of the words it came from (and, with timed words, the seconds in
the recording), plus the rule that fired, so the agent can check it against the audio and correct it.
Nothing here dispatches anything: these are suggestions for a draft a person confirms.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from asr import spoken_digits

REQUEST_TYPE_LABELS = {"inquiry": "咨询", "help": "求助", "complaint": "投诉", "report": "举报",
                       "suggestion": "建议", "praise": "表扬"}
# When two types score the same, the one a supervisor would least like to see missed wins.
TYPE_PRIORITY = ("report", "complaint", "help", "suggestion", "praise", "inquiry")
# (keyword, weight). The type's own name said by the caller ("我要投诉") weighs most.
TYPE_KEYWORDS: dict[str, tuple[tuple[str, int], ...]] = {
    "report": (("举报", 4), ("检举", 4), ("揭发", 3), ("无证经营", 2), ("无照经营", 2), ("黑诊所", 2),
               ("非法", 1), ("违法", 1), ("偷排", 2), ("传销", 2), ("赌博", 2), ("违建", 1), ("违章建筑", 1),
               ("私搭乱建", 1), ("造假", 1), ("售假", 1)),
    "complaint": (("投诉", 4), ("态度很差", 2), ("态度差", 2), ("态度恶劣", 2), ("扰民", 2), ("不作为", 2),
                  ("推诿", 2), ("乱收费", 2), ("违规收费", 2), ("拖欠", 2), ("欠薪", 2), ("不管", 1), ("不合理", 1),
                  ("噪音", 1), ("乱扔", 1), ("没人清理", 1), ("没人管", 1), ("不满", 1), ("强制", 1),
                  ("刁难", 2), ("敷衍", 1), ("霸王条款", 2), ("侵害", 1), ("扣押", 1), ("克扣", 1)),
    "help": (("求助", 4), ("帮帮", 2), ("帮我", 1), ("请帮", 1), ("派人", 2), ("维修", 1), ("修理", 1),
             ("坏了", 1), ("不热", 1), ("停水", 1), ("停电", 1), ("漏水", 1), ("救助", 2), ("困难", 1),
             ("救命", 3), ("被困", 2)),
    "suggestion": (("建议", 4), ("提议", 3), ("希望能", 1), ("希望政府", 2), ("最好能", 1), ("能否增加", 2),
                   ("呼吁", 1), ("应该增加", 1), ("是否可以", 1)),
    "praise": (("表扬", 4), ("感谢", 2), ("锦旗", 3), ("点赞", 2), ("谢谢你们", 2), ("好人好事", 3), ("致谢", 2)),
    "inquiry": (("咨询", 4), ("请问", 2), ("想问", 2), ("想了解", 2), ("怎么办理", 2), ("如何办理", 2),
                ("需要带", 1), ("哪些材料", 1), ("去哪里", 1), ("在哪里", 1), ("进度", 1), ("什么时候", 1),
                ("怎么办", 1), ("是否需要", 1), ("能不能", 1), ("查一下", 1)),
}
# Said right before a keyword, these cancel it: 没有人受伤, 不是投诉, 未发现.
NEGATIONS = ("没有", "没", "未", "无", "不是", "不用", "别")

# Emergencies the hotline does not handle itself: mark urgent and suggest the hand-off line.
HANDOFF_LINES = {"119": "消防救援（火警、燃气泄漏、被困）", "120": "医疗急救", "110": "公安报警"}
URGENT_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("着火", ("119",)), ("起火", ("119",)), ("失火", ("119",)), ("火灾", ("119",)), ("冒烟", ("119",)),
    ("烧起来", ("119",)), ("爆炸", ("119", "120")), ("煤气泄漏", ("119",)), ("燃气泄漏", ("119",)),
    ("天然气泄漏", ("119",)), ("煤气味", ("119",)), ("燃气味", ("119",)), ("被困", ("119",)),
    ("有人受伤", ("120",)), ("人受伤", ("120",)), ("受伤了", ("120",)), ("被打伤", ("120", "110")),
    ("撞伤", ("120",)), ("流血", ("120",)), ("昏迷", ("120",)), ("晕倒", ("120",)), ("不省人事", ("120",)),
    ("呼吸困难", ("120",)), ("心脏病发作", ("120",)), ("心脏病犯了", ("120",)), ("食物中毒", ("120",)),
    ("煤气中毒", ("119", "120")), ("中毒了", ("120",)), ("抽搐", ("120",)),
    ("打架", ("110",)), ("斗殴", ("110",)), ("打人", ("110",)), ("持刀", ("110",)), ("抢劫", ("110",)),
    ("杀人", ("110", "120")), ("家暴", ("110",)), ("跳楼", ("110", "120")),
    ("轻生", ("110", "120")), ("自杀", ("110", "120")),
)
# "火灾隐患", "中毒风险": a risk to report, not an emergency happening now.
NOT_NOW_AFTER = ("隐患", "风险", "危险性", "防范", "预防", "演练", "保险", "事故率")
# "一旦发生火灾", "容易引起火灾", "经常被困电梯": a fear or a habit, said in the same clause before it.
NOT_NOW_BEFORE = ("一旦", "如果", "万一", "假如", "若", "防止", "避免", "以免", "容易", "可能", "引发", "导致",
                  "造成", "经常", "常常", "曾经", "多次", "担心", "害怕", "险些", "差点")
_CLAUSE_START = re.compile(r"[，。！？；,.!?;\n]")

_CLAUSE_END = re.compile(r"[，。！？；,.!?;\n：:…、 ]+")
_GREETING = re.compile(r"^(喂+|你好+|您好+|嗯+|啊+|呃+|那个|就是|是这样的?|我想|我要|我是|请问)+")
_AGENT_LINES = ("热线", "请讲", "有什么可以帮您", "工号", "为您服务", "请问您有什么")
_ADDR_CN_NUM = "零〇一二两三四五六七八九十百0-9"
_NOT_IN_NAME = "的我你他她要在是了们把被给及或说诉投举报想问请这那个住于到去来从"
_ADDRESS_PATTERNS = (
    re.compile(rf"[^\s{_NOT_IN_NAME}]{{1,12}}?(?:大道|路|街|巷|胡同|弄)[{_ADDR_CN_NUM}]+号(?:院|楼)?"
               rf"(?:[{_ADDR_CN_NUM}]+(?:号楼|栋|幢|单元|层|楼|室|号))*"),
    # An estate name needs a building number after it to count without an anchor ("幸福小区三号楼");
    # the name itself stops at words that cannot be part of one (我要投诉小区门口 is no address).
    re.compile(rf"[^\s{_NOT_IN_NAME}]{{2,10}}?(?:小区|花园|家园|新村|公寓|大厦|社区|村)"
               rf"(?:[{_ADDR_CN_NUM}]+(?:号楼|栋|幢|单元|层|楼|室|号|期|组))+"),
)
_ADDRESS_END = re.compile(rf"(?:号楼|栋|幢|单元|层|楼|室|号|院|小区|花园|家园|新村|公寓|大厦|社区|村|组|路|街|大道|巷|胡同|弄|镇|乡|街道)"
                          rf"(?:[{_ADDR_CN_NUM}]+(?:号楼|栋|幢|单元|层|楼|室|号))*")
_ADDRESS_ANCHORS = ("地址是", "地址在", "住在", "位于", "家在", "地点是", "地点在")
_ADMIN_SUFFIX = re.compile(r"[\u4e00-\u9fa5]{1,6}?(?:省|市|区|县|旗|镇|乡|街道)")

SuggestDepartment = Callable[[str], Sequence[Mapping[str, Any]]]


@dataclass(frozen=True)
class Clause:
    start: int
    end: int
    text: str


def clauses(text: str) -> list[Clause]:
    out = []
    pos = 0
    for m in _CLAUSE_END.finditer(text + "\n"):
        if m.start() > pos:
            out.append(Clause(pos, m.start(), text[pos:m.start()]))
        pos = m.end()
    return out


class _Sources:
    """Turns a character span into a source entry; with timed words, adds the seconds it covers."""

    def __init__(self, text: str, words: Sequence[Mapping[str, Any]] | None) -> None:
        self.text = text
        self.words = [w for w in (words or ()) if w.get("char_start") is not None]

    def span(self, start: int, end: int, rule: str) -> dict[str, Any]:
        src: dict[str, Any] = {"start": start, "end": end, "text": self.text[start:end], "rule": rule}
        hit = [w for w in self.words if w["char_start"] < end and w["char_end"] > start]
        if hit:
            src["start_s"] = min(float(w["start"]) for w in hit)
            src["end_s"] = max(float(w["end"]) for w in hit)
            if any(w.get("speaker") for w in hit):
                src["speaker"] = hit[0].get("speaker")
        return src


_NEGATED_BEFORE = re.compile("(?:" + "|".join(NEGATIONS) + r")(?:人|有人|发生|出现|看到|听到|发现)?$")


def _negated(text: str, start: int) -> bool:
    return _NEGATED_BEFORE.search(text[max(0, start - 5):start]) is not None


def _find_all(text: str, keyword: str) -> list[int]:
    return [m.start() for m in re.finditer(re.escape(keyword), text)]


def _covered(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    """Overlapping matches count once ("请帮我" is 请帮 and 帮我, one plea for help)."""
    return any(start < e and s < end for s, e in spans)


def request_type(text: str, src: _Sources, urgent: bool = False) -> dict[str, Any]:
    scores = {t: 0 for t in TYPE_PRIORITY}
    hits: dict[str, list[dict[str, Any]]] = {t: [] for t in TYPE_PRIORITY}
    for rtype, keywords in TYPE_KEYWORDS.items():
        taken: list[tuple[int, int]] = []
        for keyword, weight in sorted(keywords, key=lambda kw: -len(kw[0])):
            for start in _find_all(text, keyword):
                end = start + len(keyword)
                if _covered(taken, start, end) or (weight >= 3 and _negated(text, start)):
                    continue
                taken.append((start, end))
                scores[rtype] += weight
                hits[rtype].append(src.span(start, end, f"关键词“{keyword}”→{REQUEST_TYPE_LABELS[rtype]}"))
    best = max(TYPE_PRIORITY, key=lambda t: (scores[t], -TYPE_PRIORITY.index(t)))
    if scores[best] == 0:
        default = "help" if urgent else "inquiry"
        rule = "未找到类型关键词；紧急情形默认为求助" if urgent else "未找到类型关键词，默认为咨询"
        return {"value": default, "label": REQUEST_TYPE_LABELS[default], "confidence": "low",
                "sources": [{"rule": rule}], "scores": scores}
    ranked = sorted(scores.values(), reverse=True)
    confidence = "high" if scores[best] >= 4 or ranked[0] - ranked[1] >= 2 else "low"
    return {"value": best, "label": REQUEST_TYPE_LABELS[best], "confidence": confidence,
            "sources": sorted(hits[best], key=lambda s: s["start"]), "scores": scores}


def urgency(text: str, src: _Sources) -> dict[str, Any]:
    sources: list[dict[str, Any]] = []
    lines: list[str] = []
    found: list[tuple[int, tuple[str, ...]]] = []
    taken: list[tuple[int, int]] = []
    for keyword, handoff in sorted(URGENT_KEYWORDS, key=lambda kw: -len(kw[0])):
        for start in _find_all(text, keyword):
            end = start + len(keyword)
            if _covered(taken, start, end) or _negated(text, start):
                continue
            if text[end:end + 4].startswith(NOT_NOW_AFTER):
                continue
            clause_start = max((m.end() for m in _CLAUSE_START.finditer(text, max(0, start - 20), start)), default=max(0, start - 20))
            if any(w in text[clause_start:start] for w in NOT_NOW_BEFORE):
                continue
            taken.append((start, end))
            sources.append(src.span(start, end, f"紧急情形“{keyword}”→建议转{'/'.join(handoff)}"))
            found.append((start, handoff))
    for _start, handoff in sorted(found):  # the line for what was said first comes first
        lines.extend(n for n in handoff if n not in lines)
    if not sources:
        return {"value": "normal", "handoff": [], "sources": []}
    return {"value": "urgent", "handoff": [{"number": n, "name": HANDOFF_LINES[n]} for n in lines],
            "sources": sorted(sources, key=lambda s: s["start"]),
            "note": "疑似紧急警情：请立即核实，必要时转接 " + "、".join(lines)}


def phones(text: str, src: _Sources) -> dict[str, Any] | None:
    numbers = spoken_digits.phone_numbers(text)
    if not numbers:
        return None
    # A caller usually says a mobile number for call-backs; prefer it over a landline mentioned in passing.
    ordered = sorted(numbers, key=lambda n: (n.kind != "mobile", n.start))
    first = ordered[0]
    return {"value": first.digits, "kind": first.kind,
            "candidates": [{"value": n.digits, "kind": n.kind} for n in ordered],
            "sources": [src.span(n.start, n.end, f"口述号码“{n.text}”→{n.digits}") for n in ordered]}


def _trim_address_end(clause: str, start: int) -> int:
    """End of the address inside a clause: after the last address word (号, 楼, 室, 小区, 路 ...)."""
    end = start
    for m in _ADDRESS_END.finditer(clause, start):
        end = m.end()
    return end


_missing_cpca_told = False


def _admin_hits(texts: Sequence[str]) -> list[dict[str, Any]]:
    global _missing_cpca_told
    try:
        import cpca

        # cpca loads its division table on first use, through pkg_resources (gone from setuptools 82).
        frame = cpca.transform(list(texts), pos_sensitive=True)
    except ImportError as exc:  # the address library is optional; fall back to patterns, but say so once
        if not _missing_cpca_told:
            _missing_cpca_told = True
            logging.getLogger("hotline.asr").warning(
                "districts come from street patterns only: the division table (cpca) cannot load: %s", exc)
        return [{} for _ in texts]
    out = []
    for row in frame.to_dict("records"):
        hit: dict[str, Any] = {}
        for key, name in (("省", "province"), ("市", "city"), ("区", "district")):
            value = row.get(key)
            pos = row.get(f"{key}_pos", -1)
            if isinstance(value, str) and value and pos is not None and int(pos) >= 0:
                hit[name] = (value, int(pos))
            elif isinstance(value, str) and value and value != "市辖区":
                hit.setdefault("inferred", {})[name] = value
        hit["adcode"] = row.get("adcode") if isinstance(row.get("adcode"), str) else None
        out.append(hit)
    return out


def address(text: str, src: _Sources, city: str | None = None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The address and district the caller gave, each with its span.

    Named places come from the national division list (cpca); street/estate patterns catch the rest
    (城中村, 小区 names, or text whose district was left out). Ambiguous district names (朝阳区 is in
    Beijing and in Changchun) keep only the district unless ``city`` confirms the rest.
    """
    parts = [c for c in clauses(text) if not any(a in c.text for a in _AGENT_LINES)]
    if not parts:
        return None, None
    hits = _admin_hits([c.text for c in parts])
    best: tuple[int, dict[str, Any], dict[str, Any] | None] | None = None
    for clause, hit in zip(parts, hits):
        positions = [hit[k][1] for k in ("province", "city", "district") if k in hit]
        score = 0
        start = end = None
        rule = ""
        if positions:
            start = min(positions)
            # cpca reports where the name matched; walk back to cover "北京市" written before "朝阳区".
            end = _trim_address_end(clause.text, max(positions))
            end = max(end, max(hit[k][1] + len(hit[k][0]) for k in ("province", "city", "district") if k in hit))
            score = 2 + (end - start > 4)
            rule = "行政区划名称匹配（cpca）"
        else:
            for pattern in _ADDRESS_PATTERNS:
                m = pattern.search(clause.text)
                if m:
                    start, end = m.start(), m.end()
                    score = 1
                    rule = "地址格式（路/街+门牌号，小区/楼栋）"
                    break
        if start is None or end is None:
            continue
        for anchor in _ADDRESS_ANCHORS:
            if anchor in clause.text[:start + 1] or anchor in text[max(0, clause.start - 4):clause.start]:
                score += 2
                rule += f"；锚点“{anchor}”"
                break
        if best is None or score > best[0]:
            a, b = clause.start + start, clause.start + end
            addr = {"value": text[a:b], "confidence": "high" if score >= 3 else "low",
                    "sources": [src.span(a, b, rule)]}
            district = None
            if "district" in hit:
                name, pos = hit["district"]
                district = {"value": name, "sources": [src.span(clause.start + pos, clause.start + pos + len(name),
                                                                "区县名称匹配（cpca）")]}
                inferred = hit.get("inferred", {})
                province = hit.get("province", (inferred.get("province"), 0))[0]
                city_name = hit.get("city", (inferred.get("city"), 0))[0]
                if city is None or city in (province, city_name):
                    if "city" in hit or "province" in hit or city is not None:
                        district.update(province=province, city=city_name, adcode=hit.get("adcode"))
                    else:
                        district["possible_city"] = city_name
                        district["possible_province"] = province
            best = (score, addr, district)
    if best is None:
        return None, None
    return best[1], best[2]


def title(text: str, src: _Sources, max_chars: int = 24) -> dict[str, Any] | None:
    """A short title: the first clause that says what is wrong (a type or urgency keyword), without
    greetings and the agent's opening line; else the first substantial clause."""
    keywords = [k for kws in TYPE_KEYWORDS.values() for k, _ in kws] + [k for k, _ in URGENT_KEYWORDS]
    candidates = []
    for c in clauses(text):
        if any(a in c.text for a in _AGENT_LINES):
            continue
        m = _GREETING.match(c.text)
        cut = m.end() if m else 0
        body = c.text[cut:]
        if len(body) < 4:
            continue
        candidates.append((c.start + cut, body))
    if not candidates:
        return None
    start, body = next(((s, b) for s, b in candidates if any(k in b for k in keywords)), candidates[0])
    for marker in ("地址", "电话", "联系方式", "手机号"):
        at = body.find(marker)
        if at >= 6:
            body = body[:at]
    value = body[:max_chars]
    return {"value": value, "sources": [src.span(start, start + len(value), "诉求要点所在的第一句")]}


def _line_speakers(text: str, words: Sequence[Mapping[str, Any]] | None) -> list[tuple[int, int, str]]:
    """(start, end, speaker) of each line of a transcript's text (one segment, one speaker per line)."""
    lines, at = [], 0
    timed = [w for w in (words or ()) if w.get("char_start") is not None]
    for line in text.split("\n"):
        end = at + len(line)
        who = next((str(w.get("speaker") or "") for w in timed if at <= w["char_start"] < end), "")
        lines.append((at, end, who))
        at = end + 1
    return lines


def content(text: str, words: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    """The ticket's 诉求内容: what the caller (市民) said. When the recording keeps the two sides apart
    (stereo MixMonitor, or separate caller and agent files), the agent's lines stay in the transcript but
    not in the content; a mixed recording cannot tell them apart and gives its whole text."""
    lines = _line_speakers(text, words)
    caller = [(a, b) for a, b, who in lines if who == "caller" and b > a]
    if not caller or not any(who == "agent" for _a, _b, who in lines):
        return {"value": text, "sources": [{"rule": "通话转写全文", "start": 0, "end": len(text)}]}
    return {"value": "\n".join(text[a:b] for a, b in caller),
            "sources": [{"rule": "市民所说（话务员的话留在转写中）", "start": a, "end": b, "speaker": "caller"}
                        for a, b in caller]}


def extract(text: str, words: Sequence[Mapping[str, Any]] | None = None, *,
            suggest_department: SuggestDepartment | None = None, city: str | None = None) -> dict[str, Any]:
    """All draft fields of one transcript (or written message). Unfilled fields are left out."""
    src = _Sources(text, words)
    fields: dict[str, Any] = {
        "content": content(text, words),
        "urgency": urgency(text, src),
    }
    fields["request_type"] = request_type(text, src, urgent=fields["urgency"]["value"] == "urgent")
    phone = phones(text, src)
    if phone:
        fields["caller_phone"] = phone
    addr, district = address(text, src, city)
    if addr:
        fields["address"] = addr
    if district:
        fields["district"] = district
    heading = title(text, src)
    if heading:
        fields["title"] = heading
    if suggest_department is not None:
        # The caller's words decide the department (the agent's script names many things).
        suggestions = [dict(s) for s in suggest_department(fields["content"]["value"])]
        if suggestions:
            fields["department"] = {"value": suggestions[0], "candidates": suggestions,
                                    "sources": [{"rule": "派单规则（tickets 路由）"}]}
    fields["needs_confirmation"] = True
    return fields


def ticket_values(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Just the values, in the names the ticket form uses (what server.py needs to fill a draft)."""
    out: dict[str, Any] = {}
    for name in ("content", "request_type", "urgency", "address", "title", "caller_phone"):
        if name in fields:
            out[name] = fields[name]["value"]
    if "district" in fields:
        out["district"] = fields["district"]["value"]
    return out
