"""Demonstration data for screenshots and manual trials: accounts of each role, a few weeks of tickets
in every state, knowledge entries (one expired). Goes through the stores' public methods, with the
clock moved back for the past events, so every figure on the pages is produced the real way."""
from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from typing import Any

from aiohttp import web

from tickets.accounts.http import USERS
from tickets.accounts.service import Principal
from tickets.http import STORE
from tickets.knowledge.http import KNOWLEDGE
from tickets.service import TicketQuery, TicketStore

PASSWORD = "demo-密码-2026"
RECORDED_CALL = "1732283000.7"  # the demo call whose recording and transcript the screenshots show
DISTRICTS = ["东城区", "西城区", "南湖区", "北山区", "高新区", "经开区"]
CASES = [
    ("complaint", "夜间施工噪音扰民", "反映{addr}工地夜间十一点后仍在施工，噪音很大，影响休息，希望尽快处理。", "城乡建设", "zjj"),
    ("help", "小区供暖温度不达标", "{addr}家中暖气温度只有十五度左右，老人孩子受冻，请求协调供热单位检修。", "城乡建设", "zjj"),
    ("inquiry", "灵活就业人员社保缴费咨询", "咨询灵活就业人员如何办理养老保险缴费，缴费基数怎么选择。", "劳动和社会保障", "rsj"),
    ("complaint", "拖欠工资", "反映在{addr}某装修公司工作三个月，被拖欠工资一万二千元，要求协调支付。", "劳动和社会保障", "rsj"),
    ("suggestion", "学校门口增设护学岗", "建议在{addr}小学门口上下学时段增设护学岗，车辆太多存在安全隐患。", "教育文体", "jyj"),
    ("report", "商户出售过期食品", "举报{addr}一家超市货架上有过期牛奶仍在销售。", "商贸旅游", "swj"),
    ("help", "社区卫生服务中心预约难", "{addr}附近社区卫生服务中心疫苗预约一直约不上，请求帮助。", "卫生计生", "wjw"),
    ("praise", "表扬供热抢修人员", "表扬{addr}供热抢修班组冒雪连夜抢修，服务态度好。", "城乡建设", "zjj"),
]
STREETS = ["幸福路18号", "建设大街66号", "人民路三段", "光明小区5栋", "学府路9号", "滨河花园", "新华街2号院"]


def _principal(p: Principal) -> Principal:
    return p


async def seed(app: web.Application, now: datetime | None = None, seed_value: int = 12345) -> dict[str, Any]:
    """Fill an empty database. Returns the accounts (password ``PASSWORD``) and notable ticket numbers."""
    rnd = random.Random(seed_value)
    store, users = app[STORE], app[USERS]
    now = now or store.clock()
    depts = {d.code: d for d in (await users.load_departments()).values()}
    accounts = {
        "agent": await users.create_user("wangli", PASSWORD, "agent", display_name="王丽", interface="PJSIP/8001"),
        "supervisor": await users.create_user("zhaomin", PASSWORD, "supervisor", display_name="赵敏（班长）"),
        "zjj": await users.create_user("zjj01", PASSWORD, "department", display_name="住建局 李强",
                                       department_code="zjj"),
        "rsj": await users.create_user("rsj01", PASSWORD, "department", display_name="人社局 陈静",
                                       department_code="rsj"),
    }
    system = Principal(0, "system", "系统", "system", None, None, None)

    def at(moment: datetime) -> TicketStore:
        return TicketStore(store.sessions, store.settings, lambda: moment, getattr(store, "read_sessions", None))

    numbers: dict[str, str] = {}
    for i in range(36):
        rtype, title, content, category, code = rnd.choice(CASES)
        addr = rnd.choice(DISTRICTS) + rnd.choice(STREETS)
        created = now - timedelta(days=rnd.uniform(0.2, 20), hours=rnd.uniform(0, 3))
        local = created.astimezone(store.tz)
        created = local.replace(hour=rnd.choice([8, 9, 9, 10, 10, 11, 14, 15, 15, 16, 19, 21]))
        if created > now - timedelta(minutes=5):
            created = now - timedelta(hours=2)
        data = {"request_type": rtype, "title": title, "content": content.format(addr=addr), "address": addr,
                "district": addr[:3], "category": category, "caller_name": rnd.choice(["张先生", "刘女士", "周女士", "孙先生"]),
                "caller_phone": f"1391234{rnd.randint(1000, 9999)}", "urgency": "urgent" if rnd.random() < 0.1 else "normal"}
        t = await at(created).create(data, accounts["agent"], accept=True)
        n = t["number"]
        fate = rnd.random()
        if rtype == "inquiry" and fate < 0.7:
            await at(created + timedelta(minutes=4)).act(n, "answer_on_spot", {"answer": "已按政策口径当场解答。"}, accounts["agent"])
            continue
        dispatched = created + timedelta(minutes=rnd.randint(5, 40))
        await at(dispatched).act(n, "dispatch", {"lead_department_id": depts[code].id}, accounts["agent"])
        handler = accounts.get(code) or await _dept_user(users, code, depts)
        if fate < 0.08:
            continue  # still waiting to be signed (may be overdue)
        signed = dispatched + timedelta(hours=rnd.choice([1, 2, 5, 20, 30]))
        if signed >= now:
            continue
        await at(signed).act(n, "sign", {}, handler)
        if fate < 0.22:
            if code == "zjj":
                numbers.setdefault("handling", n)
            continue
        if fate < 0.27 and signed + timedelta(hours=1) < now:
            await at(signed + timedelta(hours=1)).act(n, "request_extension", {"days": 5, "reason": "需协调多个部门现场核查"}, handler)
            if code == "zjj":
                numbers.setdefault("extension", n)
            continue
        replied = signed + timedelta(days=rnd.uniform(0.5, 9))
        if replied >= now:
            continue
        await at(replied).act(n, "reply", {"answer": "经现场核查，已责成相关单位整改完毕，并向来电人反馈。"}, handler)
        if replied + timedelta(days=1) < now and rnd.random() < 0.85:
            sat = rnd.choices(["satisfied", "basically_satisfied", "dissatisfied"], [70, 18, 12])[0]
            await at(replied + timedelta(days=1)).act(n, "record_survey", {
                "satisfaction": sat, "resolved": sat != "dissatisfied", "via": "ivr"}, system)
    # A fresh draft from speech recognition, as the agent console shows it.
    transcript = "喂你好，我姓刘，住在南湖区幸福路18号，我们楼下这个工地啊每天晚上十一点多还在打桩，吵得孩子睡不着。"
    draft = await store.create(
        {"title": "夜间施工噪音", "content": "南湖区幸福路18号楼下工地夜间十一点后仍在打桩施工，噪音扰民。",
         "address": "南湖区幸福路18号", "district": "南湖区", "caller_name": "刘女士", "caller_phone": "13912348888",
         "request_type": "complaint"}, system, call_id="1732280000.42", draft_fields={
            "caller_name": {"value": "刘女士", "source_text": transcript, "start": 5, "end": 7},
            "address": {"value": "南湖区幸福路18号", "source_text": transcript, "start": 10, "end": 19},
            "content": {"value": "夜间施工噪音", "source_text": transcript, "start": 20, "end": 39},
            "request_type": {"value": "complaint", "source_text": "", "start": None, "end": None}})
    numbers["draft"] = draft["number"]
    # A recorded call, accepted by the agent and dispatched: its ticket page shows her and the supervisor the
    # player (the audio and transcript are the asr side's; ``hotline screenshots`` has server.py store them).
    taken = now - timedelta(hours=3)
    recorded = await at(taken).create(
        {"title": "工地夜间打桩噪音", "content": "南湖区幸福路18号楼下工地每天晚上十一点多还在打桩，围挡上写的是城建三公司。",
         "address": "南湖区幸福路18号", "district": "南湖区", "caller_name": "刘女士", "caller_phone": "13912348888",
         "request_type": "complaint", "category": "城乡建设"}, accounts["agent"], accept=True, call_id=RECORDED_CALL)
    await at(taken + timedelta(minutes=6)).act(recorded["number"], "dispatch", {"lead_department_id": depts["zjj"].id},
                                               accounts["agent"])
    numbers["recorded"] = recorded["number"]
    kb = app[KNOWLEDGE]
    today = now.date()
    for q, a, kw, code, vt in [
        ("夜间施工噪音如何投诉？", "夜间22时至次日6时禁止产生噪声的建筑施工作业，抢修抢险除外。可拨打12345登记，转住建部门核查处理。", "施工 噪音 扰民 夜间", "zjj", None),
        ("灵活就业人员如何缴纳养老保险？", "持身份证到户籍或居住地社保经办机构办理登记，或通过人社APP办理，缴费基数可在上年度社平工资60%至300%之间选择。", "社保 灵活就业 养老保险", "rsj", None),
        ("供暖温度标准是多少？", "供暖期内居民室内温度应不低于18摄氏度。温度不达标可申请供热单位入户测温。", "供暖 暖气 温度", "zjj", None),
        ("2025年冬季供暖开始时间", "2025年11月15日起正式供暖。", "供暖 开始 时间", "zjj", today - timedelta(days=30)),
        ("新生儿疫苗预约方式", "可通过社区卫生服务中心公众号预约，或携带接种证到现场登记。", "疫苗 预约 新生儿", "wjw", date(today.year + 1, 12, 31)),
    ]:
        await kb.create({"question": q, "answer": a, "keywords": kw, "department_id": depts[code].id,
                         "valid_to": vt.isoformat() if vt else None}, accounts["supervisor"])
    # The department's own tickets for its screenshots (handling first, then awaiting signature).
    for status in ("signed", "dispatched"):
        mine = await store.list(TicketQuery(status=(status,), limit=5), accounts["zjj"])
        if mine["items"]:
            numbers.setdefault("dept_ticket", mine["items"][0]["number"])
    return {"accounts": {k: v.username for k, v in accounts.items()}, "password": PASSWORD, "numbers": numbers,
            "recorded_call": RECORDED_CALL}


async def _dept_user(users: Any, code: str, depts: dict[str, Any]) -> Principal:
    username = f"{code}01"
    for p in await users.list_users():
        if p.username == username:
            return p
    return await users.create_user(username, PASSWORD, "department", display_name=f"{depts[code].name}承办人",
                                   department_code=code)
