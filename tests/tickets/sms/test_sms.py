"""SMS to the citizen, against a real SMPP 3.4 server on loopback (smppy) through smpplib: who is texted what,
once; opt-out; quiet hours on the injected clock; a gateway that is down and comes back."""
from __future__ import annotations

from collections import Counter

import pytest
from smpp.pdu.pdu_types import CommandStatus

import server
from config.settings import SettingsError
from tests.services import hold_port
from tests.tickets.sms.conftest import LINK_BASE, until

PHONE = "13800138000"


async def handled(world, **fields):
    """A ticket accepted, dispatched to 生态环境局, signed and replied."""
    c = world.center
    answer = fields.pop("answer", "经核查，施工单位已承诺22点后停止施工，并已处罚。")
    t = await c.new_ticket(caller_phone=fields.pop("caller_phone", PHONE), **fields)
    n = t["number"]
    await c.agent.act(n, "accept")
    await c.agent.act(n, "dispatch", lead_department_id=c.departments["sthj"])
    await c.env.act(n, "sign")
    await c.env.act(n, "reply", answer=answer)
    return n


async def test_citizen_is_texted_on_acceptance_reply_failed_survey_and_reopening_each_once(sms_world):
    world = await sms_world()
    c, smsc = world.center, world.smsc
    n = await handled(world)
    await c.agent.act(n, "survey_unreachable", note="三次未接通")
    await c.super.act(n, "reopen", note="来电人反映仍有夜间施工")
    await until(lambda: len(smsc.messages()) >= 4, what="four texts")
    await world.passes()

    texts = smsc.messages()
    assert [m.destination for m in texts] == [PHONE] * 4
    accepted, replied, invite, reopened = (m.text for m in texts)
    assert accepted.startswith("【12345热线】") and f"工单编号{n}" in accepted and accepted.endswith("回复TD退订")
    link = f"{LINK_BASE}/citizen/status?n={n}"
    assert "经核查，施工单位已承诺22点后停止施工" in replied and link in replied
    assert "回访未能联系到您" in invite and link in invite
    assert "已重新交办" in reopened
    # Chinese as UCS-2 (data_coding 8), byte for byte what the template made
    assert {p.data_coding for m in texts for p in m.parts} == {8}
    outbox = await world.outbox(n)
    assert [(m["kind"], m["state"]) for m in outbox] == [
        ("accepted", "sent"), ("replied", "sent"), ("survey_invite", "sent"), ("reopened", "sent")]
    assert [m["text"] for m in outbox] == [m.text for m in texts]
    assert [m["message_ids"] for m in outbox] == [[p.message_id for p in m.parts] for m in texts]
    # nothing for a draft that is never accepted, nor for a landline
    draft = await c.new_ticket(caller_phone="13900139000")
    landline = await c.new_ticket(caller_phone="010-62345678")
    await c.agent.act(landline["number"], "accept")
    await world.passes()
    assert len(smsc.parts) == sum(len(m.parts) for m in texts)
    assert await world.outbox(draft["number"]) == [] and await world.outbox(landline["number"]) == []
    assert Counter(p.message_id for p in smsc.parts).most_common(1)[0][1] == 1


async def test_long_reply_goes_in_parts_with_udh_that_the_phone_joins(sms_world, tmp_path):
    templates = tmp_path / "sms.toml"
    templates.write_text('answer_chars = 400\n[templates]\nreplied = "工单{number}答复：{answer} 详情：{link}"\n',
                         encoding="utf-8")
    world = await sms_world(templates_file=str(templates))
    answer = "经现场核查，" + "施工单位已调整作业时间并加装隔音屏障，" * 8 + "请您监督。"
    n = await handled(world, answer=answer)
    await until(lambda: len(world.smsc.messages()) >= 1, what="the reply text")
    await world.passes()
    [msg] = world.smsc.messages()  # acceptance has no template here: only the reply is sent
    assert msg.text == f"【12345热线】工单{n}答复：{answer} 详情：{LINK_BASE}/citizen/status?n={n}回复TD退订"
    assert len(msg.parts) >= 3
    assert all(p.udhi and p.data_coding == 8 and len(p.short_message) <= 140 for p in msg.parts)
    assert [p.udh[5] for p in msg.parts] == list(range(1, len(msg.parts) + 1))
    [row] = await world.outbox(n)
    assert row["state"] == "sent" and row["message_ids"] == [p.message_id for p in msg.parts]


async def test_opted_out_number_gets_nothing_until_it_opts_in_again_and_td_reply_opts_out(sms_world):
    world = await sms_world()
    c, smsc = world.center, world.smsc
    bad = await c.agent.call("PUT", "/api/v1/sms/opt-out/abc", json={}, expect=400)
    assert bad["field"] == "phone"
    await c.agent.call("PUT", f"/api/v1/sms/opt-out/{PHONE}", json={"note": "来电人要求不再接收短信"}, expect=201)
    assert (await c.agent.get(f"/api/v1/sms/opt-out/{PHONE}"))["opted_out"] is True
    t = await c.new_ticket()
    await c.agent.act(t["number"], "accept")

    async def settled() -> bool:
        return [r["state"] for r in await world.outbox(t["number"])] == ["opted_out"]
    await until(settled, what="the text to be dropped for the opted-out number")
    assert smsc.parts == []

    await c.agent.call("DELETE", f"/api/v1/sms/opt-out/{PHONE}")
    t2 = await c.new_ticket()
    await c.agent.act(t2["number"], "accept")
    await until(lambda: len(smsc.messages()) == 1, what="the text after opting in")
    assert t2["number"] in smsc.messages()[0].text

    # The citizen replies TD to the last text: the number is on the list, the next text is not sent.
    await smsc.reply_from(PHONE, "TD")

    async def opted_out() -> bool:
        world.service.poke()
        return (await c.agent.get(f"/api/v1/sms/opt-out/{PHONE}"))["opted_out"]
    await until(opted_out, what="the TD reply to be taken")
    assert (await c.agent.get(f"/api/v1/sms/opt-out/{PHONE}"))["source"] == "reply"
    t3 = await c.new_ticket()
    await c.agent.act(t3["number"], "accept")
    await world.passes()
    assert [r["state"] for r in await world.outbox(t3["number"])] == ["opted_out"]
    assert len(smsc.messages()) == 1


async def test_quiet_hours_hold_texts_until_morning_on_the_injected_clock(sms_world):
    world = await sms_world(quiet_hours="21:00-08:00")
    c, smsc = world.center, world.smsc
    c.clock.set_local(2026, 11, 23, 22, 30)
    t = await c.new_ticket()
    await c.agent.act(t["number"], "accept")
    await world.passes()
    assert smsc.parts == []
    [row] = await world.outbox(t["number"])
    assert row["state"] == "pending"
    health = await (await c.client.get("/health")).json()
    assert health["checks"]["sms"]["backlog"] == 1 and health["checks"]["sms"]["quiet_until"] is not None
    c.clock.set_local(2026, 11, 24, 7, 59)
    await world.passes()
    assert smsc.parts == []
    c.clock.set_local(2026, 11, 24, 8, 0)
    world.service.poke()
    await until(lambda: len(smsc.messages()) == 1, what="the morning text")
    assert t["number"] in smsc.messages()[0].text


async def test_gateway_down_texts_wait_health_says_so_then_each_goes_once(sms_world):
    world = await sms_world()
    c, smsc = world.center, world.smsc
    # The gateway goes down but its port stays bound (connections are refused): no other process on the
    # machine can take it before the gateway comes back there.
    held = hold_port(smsc.port)
    await smsc.stop()
    numbers = []
    for i in range(3):
        t = await c.new_ticket(caller_phone=f"1390013900{i}")
        await c.agent.act(t["number"], "accept")
        numbers.append(t["number"])

    async def sms_health() -> dict:
        return (await (await c.client.get("/health")).json())["checks"]["sms"]

    async def down_with_backlog() -> bool:
        h = await sms_health()
        return h["gateway"] == "down" and h["backlog"] == 3
    await until(down_with_backlog, what="/health to show the gateway down with 3 waiting")
    h = await sms_health()
    assert h["degraded"] is True and h["last_error"]
    body = await (await c.client.get("/health")).json()
    assert "sms" in body["degraded"]
    for n in numbers:
        assert [r["state"] for r in await world.outbox(n)] == ["pending"]

    await smsc.start(sock=held)  # same port
    await world.passes()
    assert smsc.parts == []  # the backoff follows the injected clock: not yet
    c.clock.advance(minutes=15)
    world.service.poke()
    await until(lambda: len(smsc.messages()) == 3, what="the three waiting texts")
    await world.passes()
    assert sorted(m.destination for m in smsc.messages()) == [f"1390013900{i}" for i in range(3)]
    assert len(smsc.parts) == 3  # an acceptance text fits in one SMS
    h = await sms_health()
    assert h["gateway"] == "up" and h["backlog"] == 0 and h["degraded"] is False


async def test_unanswered_submit_is_never_resent_by_itself_only_by_a_supervisor(sms_world):
    # The gateway's answer is awaited this long, on the real clock: the held submit below takes it to become
    # uncertain, and the resent one must be answered within it (1 s was short for a loaded machine).
    world = await sms_world(timeout_seconds=5)
    c, smsc = world.center, world.smsc
    smsc.hold_after = 0  # the gateway takes the submit and never answers
    t = await c.new_ticket()
    await c.agent.act(t["number"], "accept")

    async def uncertain() -> bool:
        return [r["state"] for r in await world.outbox(t["number"])] == ["uncertain"]
    await until(uncertain, what="the unanswered text to be marked uncertain")
    smsc.hold_after = None
    c.clock.advance(hours=1)  # past any backoff: still nothing goes again by itself
    await world.passes(3)
    assert len(smsc.parts) == 1
    [row] = await c.agent.get("/api/v1/sms/attention")
    assert row["state"] == "uncertain" and row["last_error"]

    await c.agent.post(f"/api/v1/sms/{row['id']}/resend", expect=403)
    again = await c.super.post(f"/api/v1/sms/{row['id']}/resend")
    assert again["state"] == "pending"
    await until(lambda: len(smsc.parts) == 2, what="the resent text")
    await world.passes()
    [row] = await world.outbox(t["number"])
    assert row["state"] == "sent" and row["message_ids"] == [smsc.parts[1].message_id]
    refused = await c.super.post(f"/api/v1/sms/{row['id']}/resend", expect=409)
    assert refused["error"] == "sms_not_resendable"
    assert await c.agent.get("/api/v1/sms/attention") == []


async def test_throttled_part_is_sent_later_without_repeating_the_parts_before_it(sms_world, tmp_path):
    templates = tmp_path / "sms.toml"
    templates.write_text('answer_chars = 400\n[templates]\nreplied = "工单{number}答复：{answer}"\n', encoding="utf-8")
    world = await sms_world(templates_file=str(templates))
    c, smsc = world.center, world.smsc
    # the first part goes through, the second is refused (throttled), then the gateway takes everything
    smsc.refusals = [CommandStatus.ESME_ROK, CommandStatus.ESME_RTHROTTLED]
    answer = "经现场核查，" + "施工单位已调整作业时间并加装隔音屏障，" * 8 + "请您监督。"
    n = await handled(world, answer=answer)

    async def waiting() -> bool:
        return [(r["state"], bool(r["last_error"])) for r in await world.outbox(n)] == [("pending", True)]
    await until(waiting, what="the throttled text to wait for its retry")
    [row] = await world.outbox(n)
    assert len(row["message_ids"]) == 1 and "0x00000058" in row["last_error"]
    c.clock.advance(minutes=10)
    world.service.poke()
    await until(lambda: len(smsc.messages()) == 1 and len(smsc.messages()[0].parts) >= 3, what="the whole text")
    await world.passes()
    [msg] = smsc.messages()
    assert msg.text.endswith(f"{answer}回复TD退订")
    assert [p.udh[5] for p in msg.parts] == list(range(1, len(msg.parts) + 1))  # part 1 once, not twice
    [row] = await world.outbox(n)
    assert row["state"] == "sent" and row["message_ids"] == [p.message_id for p in msg.parts]


async def test_number_the_gateway_rejects_is_failed_and_listed_not_retried(sms_world):
    world = await sms_world()
    c, smsc = world.center, world.smsc
    smsc.refusals = [CommandStatus.ESME_RINVDSTADR]
    t = await c.new_ticket()
    await c.agent.act(t["number"], "accept")

    async def failed() -> bool:
        return [r["state"] for r in await world.outbox(t["number"])] == ["failed"]
    await until(failed, what="the refused text to fail")
    c.clock.advance(hours=1)
    await world.passes()
    assert smsc.parts == [] and len(smsc.refused) == 1
    [row] = await c.agent.get("/api/v1/sms/attention")
    assert row["ticket"] == t["number"] and "Invalid Destination" in row["last_error"]


async def test_without_a_gateway_no_text_is_written_and_health_says_sms_is_off(center):
    t = await center.new_ticket()
    await center.agent.act(t["number"], "accept")
    health = await (await center.client.get("/health")).json()
    assert health["checks"]["sms"]["enabled"] is False
    assert await center.agent.get(f"/api/v1/sms?ticket={t['number']}") == []
    # the opt-out list is kept even so, for when the gateway is configured
    await center.agent.call("PUT", "/api/v1/sms/opt-out/13800138000", json={}, expect=201)
    assert (await center.agent.get("/api/v1/sms/opt-out/138-0013-8000"))["opted_out"] is True


def test_a_mistyped_template_stops_the_server_at_start_naming_it(settings_factory, tmp_path):
    bad = tmp_path / "sms.toml"
    bad.write_text('[templates]\naccepted = "工单{numbr}已受理"\n', encoding="utf-8")
    settings = settings_factory(sms={"host": "127.0.0.1", "templates_file": str(bad)})
    with pytest.raises(SettingsError, match=r"sms.templates_file: .*templates.accepted: unknown placeholder \{numbr\}"):
        server.create_app(settings)


async def test_a_process_that_does_not_send_still_writes_the_texts_for_those_that_do(sms_world):
    world = await sms_world(sender=False)
    c, smsc = world.center, world.smsc
    t = await c.new_ticket()
    await c.agent.act(t["number"], "accept")
    assert [r["state"] for r in await world.outbox(t["number"])] == ["pending"]
    health = await (await c.client.get("/health")).json()
    assert health["checks"]["sms"] == {"ok": True, "enabled": True, "sender": False}
    assert smsc.clients == []  # this process never bound
    # another process's sender (the same service code, driven by hand here) sends it
    assert await world.service.step() == 1
    assert [m.destination for m in smsc.messages()] == [PHONE]
    await world.service.close()
