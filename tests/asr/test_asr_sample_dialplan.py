"""The sample dialplan's live-audio lines name each stream so that the workers find the call: the UUID built
from the Linkedid with Asterisk's own string functions reads back as (call, leg); both legs are streamed."""
from __future__ import annotations

import re

from asr import audiosocket
from tests.conftest import ROOT

EXT = (ROOT / "config" / "asterisk" / "extensions.conf").read_text(encoding="utf-8")


def _context(name: str) -> str:
    m = re.search(rf"^\[{re.escape(name)}\][^\n]*\n(.*?)(?=^\[|\Z)", EXT, re.MULTILINE | re.DOTALL)
    assert m, name
    return m.group(1)


def _expand(expr: str, env: dict[str, str]) -> str:
    """The few dialplan expressions the context uses: ${VAR}, ${VAR:offset[:length]}, ${CUT(VAR,d,n)},
    ${CHANNEL(linkedid)} (negative offsets count from the end, as in Asterisk)."""
    def one(m: re.Match[str]) -> str:
        body = m.group(1)
        if body == "CHANNEL(linkedid)":
            return env["LINKEDID"]
        cut = re.fullmatch(r"CUT\((\w+),(.),(\d+)\)", body)
        if cut:
            parts = env[cut.group(1)].split(cut.group(2))
            n = int(cut.group(3))
            return parts[n - 1] if n <= len(parts) else ""
        sub = re.fullmatch(r"(\w+):(-?\d+)(?::(\d+))?", body)
        if sub:
            value, start = env[sub.group(1)], int(sub.group(2))
            value = value[start:]  # Python slicing counts a negative offset from the end too
            return value[:int(sub.group(3))] if sub.group(3) else value
        return env[body]

    while "${" in expr:
        expr = re.sub(r"\$\{([^${}]+)\}", one, expr)
    return expr


def _run_live_audio(linkedid: str, leg: str) -> tuple[str, str]:
    env = {"LINKEDID": linkedid, "ARG1": leg, "CHANNEL": "PJSIP/carrier-trunk-00000001",
           "LIVE_AUDIO": re.search(r"^LIVE_AUDIO = (\S+)", EXT, re.MULTILINE).group(1)}  # type: ignore[union-attr]
    originate = ""
    for app, data in re.findall(r"^(?:exten => s,1|\s*same => n),(\w+)\((.*)\)\s*$", _context("live-audio"),
                                re.MULTILINE):
        if app == "Set":
            name, _, value = data.partition("=")
            env[name] = _expand(value, env)
        elif app == "Originate":
            originate = _expand(data, env)
    return env["LIVE_UUID"], originate


def test_the_stream_uuid_built_by_the_dialplan_names_the_call_and_the_leg() -> None:
    for linkedid in ("1795383048.0", "1795383092.4", "1795383075.123456"):
        for leg, speaker in (("1", "caller"), ("2", "agent")):
            uuid, originate = _run_live_audio(linkedid, leg)
            assert uuid == audiosocket.stream_uuid(linkedid, speaker)
            assert audiosocket.call_of_uuid(uuid) == (linkedid, speaker)
            # the AudioSocket channel spies on this leg only, async: the call never waits for it
            tech, kind, app, data, *rest = re.split(r"(?<!\\),", originate)
            assert tech == f"AudioSocket/127.0.0.1:9093/{uuid}" and (kind, app) == ("app", "ChanSpy")
            target, options = data.split("\\,")
            assert target == "PJSIP/carrier-trunk-00000001" and set("qoE") <= set(options)
            assert rest[-1] == "a"


def test_both_legs_of_a_queue_call_are_streamed() -> None:
    hotline = _context("hotline-in")
    assert hotline.index("Gosub(live-audio,s,1(1))") < hotline.index("Queue(")
    gosub = re.search(r"Queue\(\$\{HOTLINE_QUEUE\},t,,,600,,([\w-]+)\)", hotline)
    assert gosub, "the queue runs a gosub on the agent's leg"
    assert "Gosub(live-audio,s,1(2))" in _context(gosub.group(1))
