"""The call recording on a ticket page, in headless Chromium: it loads and plays, a line of the transcript
seeks to where it was said, the listening is in the audit log, and only a supervisor and the agent who
accepted the ticket get the player; a broken file is a message, not a dead player.

The call is a stereo MixMonitor-style file (caller left, agent right) put together from two real phone-line
recordings of ../shared/speech, transcribed once by the real recognition worker with Whisper base."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asr import http as asr_http
from asr import jobs
from asr import service as asr_service
from tests.asr.conftest import SPEECH
from tickets.accounts.http import USERS

from .conftest import Console, login
from .test_console_errors import watch

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")]
CALL = "1795390000.7"
CALLER_CLIP, AGENT_CLIP = "real_8k/aishell1_BAC009S0724W0121.wav", "real_8k/funasr_rag_medical.wav"
AGENT_AT = 6.0  # seconds into the call where the agent's clip starts


def stereo_call(target: Path) -> float:
    """Caller's clip at 0.5 s on the left channel, the agent's at 6 s on the right; returns the duration."""
    import soundfile as sf

    if not (SPEECH / CALLER_CLIP).exists():
        pytest.skip(f"shared speech data not found at {SPEECH}")
    caller, rate = sf.read(str(SPEECH / CALLER_CLIP), dtype="int16")
    agent, rate2 = sf.read(str(SPEECH / AGENT_CLIP), dtype="int16")
    assert rate == rate2 == 8000
    total = int((AGENT_AT + len(agent) / rate + 0.5) * rate)
    left, right = np.zeros(total, np.int16), np.zeros(total, np.int16)
    left[int(0.5 * rate):int(0.5 * rate) + len(caller)] = caller
    right[int(AGENT_AT * rate):int(AGENT_AT * rate) + len(agent)] = agent
    sf.write(str(target), np.stack([left, right], axis=1), rate, subtype="PCM_16")
    return total / rate


@pytest.fixture(scope="module")
def whisper() -> Any:
    from asr.whisper import WhisperBackend

    return WhisperBackend()


async def recording_console(console_factory: Any, recordings: Path) -> Console:
    recordings.mkdir(exist_ok=True)
    # The console fixture's settings keep Asterisk's spool as asr.recordings_dir; this test's spool is a temp dir.
    return await console_factory(routes=lambda app: app.__setitem__(asr_http.RECORDINGS_DIR, str(recordings)))


async def accepted_call_ticket(console: Console) -> dict[str, Any]:
    """The agent's ticket of the call, dispatched to the water department (who must not hear it)."""
    agent = console.users["agent"]
    draft = await console.store.create({"title": "夜间施工噪音", "content": "幸福路18号工地夜间打桩", "request_type":
                                        "complaint", "caller_phone": "13912348888"}, agent, call_id=CALL)
    await console.store.act(draft["number"], "accept", {}, agent)
    await console.store.act(draft["number"], "dispatch", {"lead_department_id": console.departments["swuj"]}, agent)
    return draft


async def test_the_recording_plays_and_a_transcript_line_seeks_to_it(
        console_factory: Any, browser: Any, tmp_path: Path, whisper: Any) -> None:
    console = await recording_console(console_factory, tmp_path / "monitor")
    wav = tmp_path / "monitor" / f"{CALL}.wav"
    duration = stereo_call(wav)
    ticket = await accepted_call_ticket(console)
    # What telephony does when the call ends, then one real recognition worker run.
    service = console.app[asr_service.SERVICE]
    await service.enqueue_transcription(CALL, str(wav))
    settings = console.store.settings
    worker = jobs.build_worker(jobs.config_from_settings(settings), backend=whisper, burst=True, poll_delay=0.05)
    await worker.async_run()
    await worker.close()
    transcript = await service.store.transcript(CALL)
    assert transcript is not None, (await service.store.job(CALL))
    agent_lines = [s for s in transcript["segments"] if s["speaker"] == "agent"]
    assert agent_lines and agent_lines[0]["start"] >= AGENT_AT - 0.5, transcript["segments"]
    line = agent_lines[0]

    page = await login(browser, console, "agent1")
    problems = watch(page)
    await page.goto(f"{console.base}/tickets/{ticket['number']}")
    await page.wait_for_function("() => document.getElementById('rec-audio').duration > 0", timeout=60_000)
    assert await page.eval_on_selector("#rec-audio", "a => a.duration") == pytest.approx(duration, abs=0.05)
    texts = await page.locator("#rec-lines .rec-line").all_inner_texts()
    assert len(texts) == len(transcript["segments"]) and any(line["text"] in t for t in texts)

    await page.evaluate("""() => { window.seeks = [];
        document.getElementById('rec-audio').addEventListener('seeking', e => window.seeks.push(e.target.currentTime)); }""")
    await page.locator("#rec-lines .rec-line", has_text=line["text"]).click()
    await page.wait_for_function("() => window.seeks.length > 0", timeout=90_000)
    assert (await page.evaluate("() => window.seeks"))[0] == pytest.approx(line["start"], abs=0.05)
    # and it plays on from there, the line being heard marked
    await page.wait_for_function(f"""() => {{ const a = document.getElementById('rec-audio');
        if (a.currentTime <= {line['start'] + 0.3}) return false;
        a.pause(); return true; }}""", timeout=60_000)  # paused, so a slow machine cannot run past the line
    marked = page.locator("#rec-lines .rec-line.on")
    await marked.first.wait_for(timeout=90_000)
    assert line["text"] in await marked.first.inner_text()
    assert problems == []

    log = await console.app[USERS].audit.list(action="play_recording")
    assert [(e["actor_username"], e["subject"]) for e in log["items"]] == [("agent1", f"call:{CALL}")]

    # The supervisor gets the player too; the department handling the ticket and another agent do not.
    boss = await login(browser, console, "super1")
    await boss.goto(f"{console.base}/tickets/{ticket['number']}")
    await boss.wait_for_function("() => document.getElementById('rec-audio').duration > 0", timeout=60_000)
    await console.app[USERS].create_user("agent2", "console-密码-1", "agent", display_name="李娜")
    for username in ("water1", "agent2"):
        other = await login(browser, console, username)
        await other.goto(f"{console.base}/tickets/{ticket['number']}")
        assert await other.locator("#ticket-content").count() == 1  # the ticket itself is shown
        assert await other.locator("#recording").count() == 0
        direct = await other.request.get(f"{console.base}/api/v1/asr/calls/{CALL}/recording")
        assert direct.status == (403 if username == "water1" else 404)
    log = await console.app[USERS].audit.list(action="play_recording")
    assert sorted(e["actor_username"] for e in log["items"]) == ["agent1", "super1"]


async def test_a_corrupt_recording_is_a_message_on_the_page(console_factory: Any, browser: Any, tmp_path: Path) -> None:
    console = await recording_console(console_factory, tmp_path / "monitor")
    (tmp_path / "monitor" / f"{CALL}.wav").write_bytes(b"RIFF\x00\x10\x00\x00WAVE" + b"\x00\xff" * 2000)
    ticket = await accepted_call_ticket(console)
    await console.app[asr_service.SERVICE].store.queue(CALL, str(tmp_path / "monitor" / f"{CALL}.wav"), None, "j")

    page = await login(browser, console, "agent1")
    problems = watch(page)
    await page.goto(f"{console.base}/tickets/{ticket['number']}")
    await page.wait_for_function("() => document.getElementById('recording').dataset.state === 'error'",
                                 timeout=90_000)
    assert "录音文件已损坏" in await page.locator("#rec-state").inner_text()
    assert await page.locator("#rec-audio").is_hidden()
    assert "没有转写文本" in await page.locator("#rec-lines").inner_text()
    assert problems == []  # the page asked first, so no failed audio request and no console error


async def test_a_recognised_field_plays_the_moment_it_was_heard(
        console_factory: Any, browser: Any, tmp_path: Path) -> None:
    """自动识别字段 beside the player: the address recognition found is shown with its words, and its ▶ seeks the
    recording to the second those words were said (timed words as recognition stores them; the draft fields
    come from the server's own delivery loop, asr.drafts over the stored transcript)."""
    console = await recording_console(console_factory, tmp_path / "monitor")
    wav = tmp_path / "monitor" / f"{CALL}.wav"
    stereo_call(wav)
    ticket = await accepted_call_ticket(console)
    text = "我住在北京市朝阳区幸福路18号，楼下工地每天晚上十一点还在打桩"
    words = [{"word": c, "start": round(AGENT_AT + 0.25 * i, 2), "end": round(AGENT_AT + 0.25 * i + 0.2, 2),
              "conf": 0.9, "speaker": "caller", "char_start": i, "char_end": i + 1} for i, c in enumerate(text)]
    store = console.app[asr_service.SERVICE].store
    await store.queue(CALL, str(wav), None, "j")
    await store.finish(CALL, str(wav), {"text": text, "words": words, "duration": 12.0, "engine": "test", "segments": [
        {"speaker": "caller", "start": words[0]["start"], "end": words[-1]["end"], "text": text}]})
    deadline = asyncio.get_running_loop().time() + 60
    while not (await store.job(CALL))["draft_delivered_at"]:
        assert asyncio.get_running_loop().time() < deadline, "the server never delivered the draft fields"
        await asyncio.sleep(0.1)
    heard_at = words[text.index("北京市")]["start"]

    page = await login(browser, console, "super1")
    problems = watch(page)
    await page.goto(f"{console.base}/tickets/{ticket['number']}")
    await page.wait_for_function("() => document.getElementById('rec-audio').duration > 0", timeout=60_000)
    address = page.locator("#draft-fields tr[data-field=address]")
    assert "北京市朝阳区幸福路18号" in await address.locator("mark").inner_text()
    assert await page.locator("#draft-fields tr[data-field=needs_confirmation]").count() == 0  # a flag, not a field
    await page.evaluate("""() => { window.seeks = [];
        document.getElementById('rec-audio').addEventListener('seeking', e => window.seeks.push(e.target.currentTime)); }""")
    await address.locator("[data-seek]").click()
    await page.wait_for_function("() => window.seeks.length > 0", timeout=90_000)
    assert (await page.evaluate("() => window.seeks"))[0] == pytest.approx(heard_at, abs=0.05)
    assert problems == []
