"""Byte framing: whole messages however the stream is cut, UTF-8 decoded per message, never a crash."""
from __future__ import annotations

import random

import pytest
from fake_ami import CAPTURES, requires_captures

from telephony.framing import Framer, parse_message

ALL = ["answered_call", "abandoned_call", "agent_pause_and_membership", "blind_transfer", "burst", "login_failure",
       "ring_no_answer", "shutdown", "sip_answered_call", "status_queries", "survey_callback", "transfer"]


def frame_all(data: bytes, cuts: list[int]) -> tuple[Framer, list[str]]:
    f = Framer()
    out: list[str] = []
    prev = 0
    for c in cuts + [len(data)]:
        out.extend(f.feed(data[prev:c]))
        prev = c
    return f, out


@requires_captures
@pytest.mark.parametrize("name", ALL)
def test_random_chunks_give_the_same_messages(name: str) -> None:
    data = (CAPTURES / f"{name}.ami").read_bytes()
    _, whole = frame_all(data, [])
    rng = random.Random(name)
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, max(1, len(data) // 40))))
    f, chunked = frame_all(data, cuts)
    assert chunked == whole
    assert f.banner == "11.0.0"
    assert all("\ufffd" not in m for m in whole)


@requires_captures
def test_every_split_inside_chinese_reason() -> None:
    data = (CAPTURES / "agent_pause_and_membership.ami").read_bytes()
    at = data.index("培训".encode())
    for cut in range(at - 1, at + 7):  # every position inside both 3-byte characters
        _, msgs = frame_all(data, [cut])
        reasons = [parse_message(m).get("PausedReason") for m in msgs]
        assert "培训" in reasons


def test_panoramisk_alone_loses_the_split_character() -> None:
    # What this layer exists for: panoramisk decodes each chunk with errors="ignore" before framing.
    from panoramisk.ami_protocol import AMIProtocol

    msg = "Event: QueueMemberPause\r\nPausedReason: 培训\r\n\r\n".encode()
    cut = msg.index("培".encode()) + 1
    got = []

    class Factory:
        save_stream = None

        def dispatch(self, m):
            got.append(m["PausedReason"])

    p = AMIProtocol()
    p.connection_made(None)
    p.factory = Factory()
    p.version = "x"
    p.encoding = "utf8"
    p.data_received(msg[:cut])
    p.data_received(msg[cut:])
    assert got and got[0] != "培训"
    f = Framer()
    mine = f.feed(msg[:cut]) + f.feed(msg[cut:])
    assert parse_message(mine[0])["PausedReason"] == "培训"


def test_invalid_utf8_becomes_replacement_not_error() -> None:
    f = Framer()
    msgs = f.feed(b"Asterisk Call Manager/11.0.0\r\nEvent: X\r\nCallerIDName: \xe5\x9f\r\n\r\nEvent: Y\r\n\r\n")
    assert parse_message(msgs[0])["CallerIDName"] == "\ufffd"
    assert parse_message(msgs[1]) == {"Event": "Y"}


def test_parse_repeated_keys_empty_values_and_colons() -> None:
    m = parse_message("Response: Success\r\nOutput: a: b\r\nOutput: c\r\nDigit: \r\nVariable: X=1\r\nEmpty:")
    assert m == {"Response": "Success", "Output": ["a: b", "c"], "Digit": "", "Variable": "X=1", "Empty": ""}


def test_unterminated_garbage_is_bounded() -> None:
    from telephony import framing

    f = Framer()
    f.feed(b"Asterisk Call Manager/11.0.0\r\n")
    for _ in range(5):
        f.feed(b"x" * (framing.MAX_MESSAGE_BYTES // 4 + 1))
    assert f.pending <= framing.MAX_MESSAGE_BYTES and f.dropped > 0
