"""Departments see callers' numbers masked (138****8000) on every ticket view; 显示号码 (reveal-phone) gives
the whole number and the access log records it, as it records every view of a whole number by the centre."""
from __future__ import annotations

from tickets.accounts.service import Principal
from tickets.http import STORE

from .conftest import Center

SYSTEM = Principal(0, "asr", "语音转写", "system", None, None, None)


async def dispatched(center: Center, dept: str = "swuj") -> str:
    t = await center.new_ticket(accept=True)
    await center.agent.act(t["number"], "dispatch", lead_department_id=center.departments[dept])
    return str(t["number"])


async def access_log(center: Center, number: str) -> list[dict]:
    return (await center.admin.get(f"/api/v1/audit?category=access&subject=ticket:{number}"))["items"]


async def test_departments_see_the_number_masked_and_reveal_it_on_the_record(center: Center) -> None:
    number = await dispatched(center)
    before = len(await access_log(center, number))
    t = await center.water.get(f"/api/v1/tickets/{number}")
    assert (t["caller_phone"], t["phone_masked"]) == ("138****8000", True)
    signed = await center.water.act(number, "sign")  # an action's answer is a ticket view too
    assert signed["caller_phone"] == "138****8000"
    listed = await center.water.get("/api/v1/tickets")
    assert [i["caller_phone"] for i in listed["items"]] == ["138****8000"]
    assert len(await access_log(center, number)) == before  # masked views are not reads of the number

    revealed = await center.water.post(f"/api/v1/tickets/{number}/reveal-phone")
    assert (revealed["number"], revealed["caller_phone"]) == (number, "13800138000")
    entry = (await access_log(center, number))[0]
    assert (entry["action"], entry["actor_username"], entry["actor_role"]) == ("reveal_phone", "water", "department")
    assert entry["category"] == "access" and entry["at"] and entry["detail"]["numbers"] == 1
    # still masked on the next view: revealing is one look, on the record each time
    assert (await center.water.get(f"/api/v1/tickets/{number}"))["caller_phone"] == "138****8000"


async def test_departments_get_no_words_of_the_recording(center: Center) -> None:
    """Draft fields carry the words of the call (a number said aloud among them): not for departments."""
    store = center.client.app[STORE]
    spoken = "我的电话是幺三八零零幺三八零零零"
    draft = await store.create({"caller_phone": "13800138000", "title": "路灯不亮", "request_type": "help"}, SYSTEM,
                               call_id="1732280000.42", draft_fields={
                                   "caller_phone": {"value": "13800138000", "source_text": spoken}})
    number = draft["number"]
    await center.agent.act(number, "accept")
    await center.agent.act(number, "dispatch", lead_department_id=center.departments["swuj"])
    agent_view = await center.agent.get(f"/api/v1/tickets/{number}")
    assert agent_view["draft_fields"]["caller_phone"]["source_text"] == spoken
    seen = await center.water.get(f"/api/v1/tickets/{number}")
    assert seen["draft_fields"] is None and "13800138000" not in str(seen) and spoken not in str(seen)


async def test_another_department_can_neither_see_nor_reveal(center: Center) -> None:
    number = await dispatched(center)
    await center.env.post(f"/api/v1/tickets/{number}/reveal-phone", expect=404)
    await center.env.get(f"/api/v1/tickets/{number}", expect=404)
    assert [e for e in await access_log(center, number) if e["actor_username"] == "env"] == []


async def test_the_centre_keeps_the_whole_number_and_every_view_is_logged(center: Center) -> None:
    number = await dispatched(center)
    for who in ("agent", "super"):
        t = await center.users[who].get(f"/api/v1/tickets/{number}")
        assert t["caller_phone"] == "13800138000" and not t.get("phone_masked")
    entries = await access_log(center, number)
    assert [(e["action"], e["actor_username"]) for e in entries[:2]] == [("view_phone", "super"),
                                                                           ("view_phone", "agent")]
    assert entries[0]["detail"]["path"] == f"/api/v1/tickets/{number}"


async def test_merged_callers_are_masked_for_departments_too(center: Center) -> None:
    number = await dispatched(center)
    dup = await center.new_ticket(caller_phone="13912345678", caller_name="李四")
    await center.agent.act(dup["number"], "merge", master=number)
    t = await center.water.get(f"/api/v1/tickets/{number}")
    assert [c["caller_phone"] for c in t["callers"]] == ["139****5678"]
    revealed = await center.water.post(f"/api/v1/tickets/{number}/reveal-phone")
    assert [c["caller_phone"] for c in revealed["callers"]] == ["13912345678"]
    assert (await access_log(center, number))[0]["detail"]["numbers"] == 2
