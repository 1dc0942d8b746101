"""并单 and 拆分 over the HTTP API: a merge never loses a live case, and a split gives it back as it was."""
from __future__ import annotations

from datetime import datetime

import aiohttp

from tests.tickets.conftest import Center
from tickets.http import STORE
from tickets.routing.service import duplicate_groups
from tickets.surveys.http import SURVEYS

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def signed_case(center: Center) -> str:
    """The live case of the incident: dispatched, signed, an approved extension, a progress report, a photo."""
    t = await center.new_ticket(accept=True, caller_phone="13900001111", caller_name="李四")
    number = t["number"]
    await center.agent.act(number, "dispatch", lead_department_id=center.departments["swuj"])
    await center.water.act(number, "sign")
    await center.water.act(number, "request_extension", days=5, reason="需协调施工单位")
    await center.super.act(number, "approve_extension")
    await center.water.act(number, "progress_report", note="已约谈施工单位")
    form = aiohttp.FormData()
    form.add_field("file", PNG, filename="现场.png", content_type="image/png")
    resp = await center.client.post(f"/api/v1/tickets/{number}/attachments", data=form,
                                    headers={"Authorization": f"Bearer {center.water.token}"})
    assert resp.status == 201, await resp.text()
    return number


async def test_the_damaging_merge_is_refused_and_the_right_one_loses_nothing(center: Center) -> None:
    draft = (await center.new_ticket())["number"]  # the oldest ticket: a draft nobody accepted
    center.clock.advance(hours=1)
    live = await signed_case(center)
    before = await center.super.get(f"/api/v1/tickets/{live}")
    assert before["status"] == "signed" and before["extension_days_granted"] == 5

    # The supervisor page's suggestion: the same matter (text + phone/address), the live case as master.
    store = center.client.app[STORE]
    [group] = await duplicate_groups(store.read_sessions, center.clock())
    assert group["master"] == live
    assert {t["number"]: t["masters"] for t in group["tickets"]} == {live: [], draft: [live]}
    assert not [g for g in await duplicate_groups(store.read_sessions, center.clock())
                if any(t["number"] not in (live, draft) for t in g["tickets"])]

    # The click of the incident: the signed case into the draft. Refused, and nothing changed.
    refused = await center.super.act(live, "merge", master=draft, expect=409)
    assert refused["error"] == "master_not_eligible" and refused["status"] == "signed"
    assert (await center.water.get(f"/api/v1/tickets/{live}"))["status"] == "signed"
    inbox = await center.water.get("/api/v1/tickets?status=signed")
    assert live in [t["number"] for t in inbox["items"]]

    # The right way round: the draft joins the live case.
    merged = await center.super.act(draft, "merge", master=live, note="同一工地噪音")
    assert merged["status"] == "merged" and merged["duplicate_of"] == live
    after = await center.water.get(f"/api/v1/tickets/{live}")
    for key in ("status", "reply_due", "sign_due", "signed_at", "extension_days_granted", "lead_department_id",
                "first_dispatched_at", "progress_due"):
        assert after[key] == before[key], key  # the master's deadlines are not reset
    assert [c["ticket"] for c in after["callers"]] == [draft]
    callers = (await center.super.get(f"/api/v1/tickets/{live}"))["callers"]
    assert [(c["ticket"], c["caller_phone"]) for c in callers] == [(draft, "13800138000")]
    # the duplicate's history and the case's photo are on the master, for the department too
    history = await center.water.get(f"/api/v1/tickets/{live}/history")
    assert ("create", draft) in [(h["action"], h["ticket"]) for h in history]
    assert [h["action"] for h in history if h["ticket"] == live][-1] == "merged_in"
    assert all("restore" not in h["data"] for h in history)
    photos = await center.water.get(f"/api/v1/tickets/{live}/attachments")
    assert [p["filename"] for p in photos] == ["现场.png"]

    # The master's reply reaches every caller; each caller is surveyed once, on their own ticket.
    center.clock.advance(days=1)
    await center.water.act(live, "reply", answer="已责令施工单位夜间停工。")
    await center.client.app[SURVEYS].drain()
    dup = await center.agent.get(f"/api/v1/tickets/{draft}")
    assert dup["answer"] == "已责令施工单位夜间停工。" and dup["status"] == "merged"
    assert "record_survey" in dup["allowed_actions"]
    surveys = await center.agent.get(f"/api/v1/surveys?ticket={draft}")
    assert len(surveys if isinstance(surveys, list) else surveys["items"]) == 1
    dup = await center.agent.act(draft, "record_survey", satisfaction="dissatisfied", resolved=False)
    assert dup["status"] == "merged" and dup["satisfaction"] == "dissatisfied"
    assert "record_survey" not in (await center.agent.get(f"/api/v1/tickets/{draft}"))["allowed_actions"]
    ledger = await center.super.get("/api/v1/ledger")
    assert [(item["ticket"], item["decision"]) for item in ledger] == [(draft, "merged_caller")]


async def test_a_second_callers_same_phone_is_surveyed_once(center: Center) -> None:
    live = await signed_case(center)
    again = (await center.new_ticket(accept=True, caller_phone="13900001111"))["number"]
    await center.agent.act(again, "merge", master=live)
    await center.water.act(live, "reply", answer="已处理。")
    history = await center.super.get(f"/api/v1/tickets/{again}/history")
    relay = [h for h in history if h["action"] == "relay_reply"]
    assert len(relay) == 1 and relay[0]["data"]["survey"] is False  # the master's survey asks this caller


async def test_merging_a_held_case_moves_its_department_and_split_restores_it(center: Center) -> None:
    live = await signed_case(center)
    other = (await center.new_ticket(accept=True, caller_phone="13600002222"))["number"]
    env = center.departments["sthj"]
    dispatched = await center.agent.act(other, "dispatch", lead_department_id=env)
    await center.env.act(other, "sign")
    await center.env.act(other, "progress_report", note="环保已检测噪音")
    held = await center.env.get(f"/api/v1/tickets/{other}")

    await center.super.act(other, "merge", master=live)
    master = await center.env.get(f"/api/v1/tickets/{live}")  # env keeps the case: co-handler of the master
    assert env in master["co_handler_ids"]
    assert "progress_report" in master["allowed_actions"]
    assert master["reply_due"] == (await center.water.get(f"/api/v1/tickets/{live}"))["reply_due"]

    # Only a supervisor splits; the duplicate comes back exactly as it was, the master gives env back.
    refused = await center.agent.act(other, "split", note="x", expect=409)
    assert refused["error"] == "not_permitted"
    restored = await center.super.act(other, "split", note="并非同一工地")
    for key in ("status", "lead_department_id", "reply_due", "sign_due", "signed_at", "duplicate_of"):
        assert restored[key] == held[key], key
    assert datetime.fromisoformat(restored["reply_due"]) == datetime.fromisoformat(dispatched["reply_due"])
    assert "reply" in (await center.env.get(f"/api/v1/tickets/{other}"))["allowed_actions"]
    master = await center.water.get(f"/api/v1/tickets/{live}")
    assert env not in master["co_handler_ids"] and master["callers"] == []
    assert (await center.env.get(f"/api/v1/tickets/{live}", expect=404))["error"] == "ticket_not_found"
    # the env department's assignment counts again, on its original deadlines
    await center.env.act(other, "reply", answer="已处理")
    assert (await center.env.get(f"/api/v1/tickets/{other}"))["status"] == "replied"


async def test_split_only_within_the_case_life(center: Center) -> None:
    live = await signed_case(center)
    dup = (await center.new_ticket())["number"]
    await center.agent.act(dup, "merge", master=live)
    await center.water.act(live, "reply", answer="已处理")
    await center.agent.act(live, "record_survey", satisfaction="satisfied", resolved=True)
    await center.agent.act(live, "archive")
    refused = await center.super.act(dup, "split", note="晚了", expect=409)
    assert refused["error"] == "master_closed"
    # internal actions are not reachable from the API
    refused = await center.super.act(live, "merged_in", expect=400)
    assert refused["field"] == "action"


async def test_duplicates_say_which_way_a_merge_may_go(center: Center) -> None:
    live = await signed_case(center)
    draft = (await center.new_ticket(caller_phone="13900001111"))["number"]
    into_live = (await center.agent.get(f"/api/v1/tickets/{draft}/duplicates"))["duplicates"]
    assert [(d["number"], d["merge_into_allowed"]) for d in into_live] == [(live, True)]
    into_draft = (await center.agent.get(f"/api/v1/tickets/{live}/duplicates"))["duplicates"]
    assert [(d["number"], d["merge_into_allowed"]) for d in into_draft] == [(draft, False)]
