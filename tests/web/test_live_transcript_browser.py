"""Done when: a replayed call (the answered_call AMI capture served by a fake Asterisk to the running server)
and the caller's audio streamed over AudioSocket to a live transcriber (Whisper base, publishing on the
server's Redis as a recognition worker does) show the caller's words on the agent's page in Chromium, and fill
the draft's district as heard, before the call's Hangup; what the agent typed stays; a page reloaded mid-call
shows the lines again; another agent cannot follow the call.

The caller's audio is a recording of ../shared/speech framed as AudioSocket frames (the recorded Asterisk
streams carry espeak voices Whisper base cannot read)."""
from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from asr import audiosocket, live
from tests.asr.audiosocket_streams import send, speech_stream
from tests.telephony.fake_ami import requires_captures
from tests.web.test_live_capture_browser import CALL_ID, live_server  # noqa: F401  (fixture)
from tickets.accounts.http import USERS

from .conftest import PASSWORD, login

pytestmark = [pytest.mark.browser, requires_captures]

LEAK = "hotline_01_leak.wav"  # 我家楼上漏水已经一个星期了物业不管地址是朝阳区幸福小区三号楼


@pytest.fixture(scope="module")
def whisper() -> Any:
    from asr.whisper import WhisperBackend

    return WhisperBackend()


async def test_caller_words_and_district_reach_the_agent_page_before_hangup(
        live_server: Any, browser: Any, whisper: Any, redis_url: str) -> None:  # noqa: F811
    console, fake, cap = await live_server("answered_call")
    redis = Redis.from_url(redis_url)
    transcriber = live.LiveTranscriber(whisper, live.RedisPublisher(redis))
    port = await transcriber.start()
    try:
        page = await login(browser, console, "zuoxi8001")
        await page.wait_for_function("() => document.getElementById('status-text').textContent.length > 0")
        # the capture up to the moment the agent answers; the Hangup is held back
        fake.hold_at(cap.index(lambda m: m.get("Event") == "AgentConnect"))
        fake.go()
        await page.wait_for_selector("#screen-pop:not(.hidden)", timeout=90000)
        await page.click("#pop-open")
        await page.wait_for_url("**/agent?ticket=*")
        await page.wait_for_selector("#screen-pop:not(.hidden)")
        # the agent writes the address before the caller says one
        await page.fill("[name=address]", "南湖区幸福路18号")

        await send(port, speech_stream(LEAK, audiosocket.stream_uuid(CALL_ID, "caller")), real_speed=True)
        await page.wait_for_selector("#live-transcript-card:not(.hidden) .live-line.final[data-speaker=caller]",
                                     timeout=120000)
        line = await page.inner_text("#live-transcript")
        assert "市民" in line and "朝阳" in line
        await page.wait_for_function("() => document.querySelector('[name=district]').value.startsWith('朝阳')",
                                     timeout=90000)
        assert "听到" in await page.inner_text(".from-live")
        assert await page.input_value("[name=address]") == "南湖区幸福路18号"  # never over the agent's words
        # all of it before the call's first Hangup reached the server
        assert fake.pos <= cap.index(lambda m: m.get("Event") == "Hangup")

        # reloaded mid-call: the call's lines come back from the backlog
        await page.reload()
        await page.wait_for_selector("#live-transcript .live-line.final", timeout=90000)
        assert "朝阳" in await page.inner_text("#live-transcript")

        # another agent, on no call, is refused this call's words
        other = await console.app[USERS].create_user("zuoxi8002", PASSWORD, "agent", display_name="李",
                                                          interface="Local/8002@agents/n")
        assert other
        page2 = await login(browser, console, "zuoxi8002")
        got = await page2.evaluate("""(call) => new Promise(resolve => {
            const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws/asr/live');
            ws.onopen = () => ws.send(JSON.stringify({follow: call}));
            ws.onmessage = ev => { resolve(JSON.parse(ev.data)); ws.close(); };
        })""", CALL_ID)
        assert got["event"] == "refused"

        # the rest of the call, to its Hangup: the agent page says the call ended
        fake.go()
        await page.wait_for_function("() => !document.getElementById('status-text').textContent.includes('通话中')",
                                     timeout=90000)
    finally:
        await transcriber.close()
        await redis.aclose()


async def test_an_emergency_heard_raises_the_banner_and_one_click_transfers_to_119(
        live_server: Any, browser: Any, redis_url: str) -> None:  # noqa: F811
    """No recording here says 着火, so the worker's line is published as the worker publishes it
    (RedisPublisher), with the draft fields asr/drafts.py extracts from that sentence."""
    console, fake, cap = await live_server("answered_call")
    redis = Redis.from_url(redis_url)
    try:
        page = await login(browser, console, "zuoxi8001")
        await page.wait_for_function("() => document.getElementById('status-text').textContent.length > 0")
        fake.hold_at(cap.index(lambda m: m.get("Event") == "AgentConnect"))
        fake.go()
        await page.wait_for_selector("#screen-pop:not(.hidden)", timeout=90000)
        await page.click("#pop-open")  # the call's draft is the one form under the pop
        await page.wait_for_url("**/agent?ticket=*")
        await page.wait_for_selector("#screen-pop:not(.hidden)")
        said = "救命啊，我家厨房着火了，在朝阳区幸福小区三号楼"
        await live.RedisPublisher(redis)({
            "type": "asr_live", "call_id": CALL_ID, "speaker": "caller", "label": "市民", "event": "final",
            "stretch": 1, "text": said, "start": 0.5, "end": 4.0, "words": [], "fields": live.live_fields(said)})
        await page.wait_for_selector("#live-urgent:not(.hidden)", timeout=90000)
        assert "119" in await page.inner_text("#live-urgent-note")
        await page.click("#live-urgent button[data-exten='119']")
        await page.wait_for_function("() => document.getElementById('toast').textContent.includes('119')",
                                     timeout=90000)
        transfer = [a for a in fake.actions if a.get("Action") in ("BlindTransfer", "Redirect")]
        assert transfer and transfer[0]["Exten"] == "119"
        # the call's draft took the district and the urgency heard
        assert (await page.input_value("[name=district]")).startswith("朝阳")
        assert await page.input_value("[name=urgency]") == "urgent"
        assert await page.input_value("[name=request_type]") == "help"  # 救命 was heard
        # the knowledge search follows what the caller said
        assert await page.input_value("#kb-q") == "我家厨房着火了"
        # the agent's leg found every worker full: the page says there is no live text for it, and why
        await live.RedisPublisher(redis)({
            "type": "asr_live", "call_id": CALL_ID, "speaker": "agent", "label": "座席", "event": "fallback",
            "reason": "capacity", "message": audiosocket.END_REASONS["capacity"]})
        await page.wait_for_function(
            "() => document.getElementById('live-status').textContent.includes('座席：本通电话不做实时转写')")
        assert "挂机后转写" in await page.inner_text("#live-status")
    finally:
        await redis.aclose()
