"""Channel in every figure: volume by channel and each channel's own first-response deadline (GB/T 33358
defaults: SMS and other new media 3 minutes, e-mail 24 hours) in the centre's report."""
from __future__ import annotations

import io

import openpyxl

from tests.tickets.conftest import Center


async def test_first_response_is_counted_per_channel_against_its_own_deadline(center: Center) -> None:
    center.clock.set_local(2026, 11, 24, 10, 0)
    sms_fast = await center.new_ticket(channel="sms")
    sms_slow = await center.new_ticket(channel="sms")
    mail = await center.new_ticket(channel="email")
    await center.new_ticket(channel="app")  # never handled
    web = await center.new_ticket(channel="web")  # no deadline configured for the web
    await center.new_ticket()  # the phone: its figure is the answer rate, not this
    center.clock.advance(minutes=2)
    await center.agent.act(sms_fast["number"], "accept")
    center.clock.advance(minutes=3)  # 5 minutes after arrival
    await center.agent.act(sms_slow["number"], "mark_invalid", reason="重复发送")
    await center.agent.act(web["number"], "accept")
    center.clock.advance(hours=3)
    await center.agent.act(mail["number"], "accept")  # well inside e-mail's 24 hours

    report = await center.super.get("/api/v1/reports?kind=daily&date=2026-11-24")
    rows = {r["channel"]: r for r in report["first_response"]}
    assert set(rows) == {"sms", "wechat", "app", "email"}
    assert (rows["sms"]["minutes"], rows["sms"]["arrived"], rows["sms"]["on_time"], rows["sms"]["late"]) == (
        3, 2, 1, 1)
    assert rows["sms"]["on_time_rate"] == 0.5 and rows["sms"]["label"] == "短信"
    assert (rows["email"]["arrived"], rows["email"]["on_time"], rows["email"]["on_time_rate"]) == (1, 1, 1.0)
    assert (rows["app"]["arrived"], rows["app"]["waiting_overdue"], rows["app"]["on_time_rate"]) == (1, 1, 0.0)
    assert (rows["wechat"]["arrived"], rows["wechat"]["on_time_rate"]) == (0, None)
    volume = {r["label"]: r["count"] for r in report["by_channel"]}
    # cases only: the invalid SMS and the app draft never accepted are not 来件
    assert volume == {"短信": 1, "电子邮件": 1, "网站": 1}
    resp = await center.client.get("/reports/export.xlsx?kind=daily&date=2026-11-24",
                                   headers={"Authorization": f"Bearer {center.super.token}"})
    assert resp.status == 200
    sheet = openpyxl.load_workbook(io.BytesIO(await resp.read()))["首次响应"]
    assert [c.value for c in sheet[2]][:6] == ["短信", 3, 2, 1, 1, 0]
