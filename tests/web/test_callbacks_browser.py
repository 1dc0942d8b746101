"""Done when: a caller who gave up in the queue (the real abandoned_call capture, served by the fake Asterisk over
TCP to the whole server) is listed on two agents' consoles with a count; one agent claims it, the other sees it
taken, has no button for it and is refused (409) if it tries anyway; calling back dials the agent's phone first
and pops the caller's screen with a draft like an inbound call; the result is 已回拨 (never 已回访)."""
from __future__ import annotations

import pytest

import server
from telephony.framing import parse_message
from tests.telephony.fake_ami import requires_captures
from tickets.accounts.http import USERS
from tickets.http import STORE

from .conftest import PASSWORD, SYSTEM, login
from .test_console_errors import watch
from .test_live_capture_browser import IFACE, live_server  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.browser, requires_captures]

CALLER = "13900139000"  # abandoned_call: 13900139000 gives up after 8 s, Linkedid of its call below
OTHER_IFACE = "Local/8002@agents/n"


async def test_one_agent_claims_a_missed_call_the_other_sees_it_taken(live_server, browser) -> None:  # noqa: F811
    console, fake, cap = await live_server("abandoned_call")
    await console.app[USERS].create_user("zuoxi8002", PASSWORD, "agent", display_name="吴敏", interface=OTHER_IFACE)
    a = await login(browser, console, "zuoxi8001")  # 周晓
    b = await login(browser, console, "zuoxi8002")
    problems = watch(a) + watch(b)
    for page in (a, b):
        await page.wait_for_function("() => document.getElementById('status-text').textContent.includes('未签入')",
                                     timeout=90_000)
    ended = cap.index(lambda m: m.get("Event") == "Hangup" and m.get("Uniqueid") == m.get("Linkedid")
                      and m.get("Channel", "").endswith(";1"))
    abandon = cap.msgs[cap.index(lambda m: m.get("Event") == "QueueCallerAbandon")][1]
    call_id = parse_message(abandon.decode("utf-8").rstrip("\r\n"))["Linkedid"]
    fake.hold_at(ended)
    fake.go()
    for page in (a, b):  # listed on both consoles from the socket, with the count
        await page.wait_for_selector("#callbacks li.callback", timeout=90_000)
        assert CALLER in await page.inner_text("#callbacks")
        await page.wait_for_function("() => document.getElementById('callbacks-count').textContent === '1'")

    await a.click("#callbacks button.cb-claim")
    await a.wait_for_selector("#callbacks li.callback[data-owner=zuoxi8001]")
    assert "我已认领" in await a.inner_text("#callbacks")
    # the other console: taken, by whom, and nothing to press
    await b.wait_for_selector("#callbacks li.callback[data-owner=zuoxi8001]", timeout=90_000)
    assert "已由 周晓 认领" in await b.inner_text("#callbacks")
    assert await b.locator("#callbacks li.callback button").count() == 0
    entry_id = await b.get_attribute("#callbacks li.callback", "data-id")
    # and the server refuses it even so, naming the owner
    for action in ("claim", "call"):
        refused = await b.evaluate("""async ([id, action]) => {
            try { await Hotline.api("POST", `/api/v1/telephony/callbacks/${id}/${action}`, {}); return null; }
            catch (e) { return [e.status, e.message]; } }""", [entry_id, action])
        assert refused and refused[0] == 409 and "周晓" in refused[1], refused
    assert not [x for x in fake.actions if x.get("Action") == "Originate"]

    # calling back: the agent's own phone first, and the caller's screen pops with a draft, as for an inbound call
    await a.click("#callbacks button.cb-call")
    await a.wait_for_selector("#callbacks li.callback[data-status=calling]")
    orig = [x for x in fake.actions if x.get("Action") == "Originate"]
    assert orig and (orig[-1]["Channel"], orig[-1]["Exten"]) == (IFACE, CALLER)
    await a.wait_for_selector("#screen-pop:not(.hidden)", timeout=90_000)
    assert CALLER in await a.inner_text("#pop-caller")
    assert "回拨漏接来电" in await a.inner_text("#pop-meta")
    number = (await a.get_attribute("#pop-open", "href")).split("ticket=", 1)[1]
    draft = await console.app[STORE].get(number, SYSTEM)
    assert draft["status"] == "draft" and draft["caller_phone"] == CALLER and draft["call_id"] == call_id
    assert await b.locator("#screen-pop.hidden").count() == 1  # only the agent who calls

    # the results say what happened to the call, not 已回访 (the survey's word)
    labels = await a.eval_on_selector_all("#callbacks button.cb-result", "bs => bs.map(b => b.textContent)")
    assert labels == ["已回拨", "未接通"]
    assert "已回访" not in await a.inner_text("body")
    await a.click("#callbacks button.cb-result[data-result=done]")
    for page in (a, b):
        await page.wait_for_function("() => document.getElementById('callbacks').textContent.includes('暂无未接来电')")
        assert await page.inner_text("#callbacks-count") == "0"
    [done] = await console.app[server.TELEPHONY].store.callbacks("done")
    assert (done["caller_num"], done["owner"], done["draft"]) == (CALLER, "zuoxi8001", number)
    assert problems == [], problems
