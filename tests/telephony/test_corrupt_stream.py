"""A corrupt AMI stream is skipped without flooding the log: every malformed message is either logged with its
bytes (the first few of each minute) or counted in a summary line, and the bridge keeps working."""
from __future__ import annotations

import asyncio
import logging
import random

from telephony.connection import MalformedLog
from telephony.framing import Framer, parse_message

LOGGER = "hotline.telephony.ami"


def hostile(size: int, seed: int = 7) -> bytes:
    """Random bytes (invalid UTF-8, NULs, half lines) cut into messages of 20-160 bytes; ends on a terminator
    so the next real message is framed on its own."""
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < size:
        body = rng.randbytes(rng.randint(20, 160)).replace(b"\r\n\r\n", b"\r\n")
        if rng.random() < 0.3:
            body = b"Foo: " + body  # looks like a header line, still no Event or Response
        out += body + b"\r\n\r\n"
    return bytes(out)


def malformed_count(data: bytes) -> int:
    msgs = Framer().feed(data)
    return sum(1 for m in msgs if not m.startswith("Response:") and not isinstance(parse_message(m).get("Event"), str))


def records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and "malformed AMI" in r.getMessage()]


def accounted(recs: list[logging.LogRecord]) -> int:
    """Messages the log accounts for: one per full line, plus the count of each summary."""
    return sum(getattr(r, "ami_malformed_suppressed", 0) or 1 for r in recs)


async def test_a_megabyte_of_garbage_is_summarised_and_the_bridge_keeps_going(bridge_factory, caplog) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    b = await bridge_factory("answered_call")
    await b.ready()
    garbage = hostile(1 << 20)
    expected = malformed_count(garbage)
    assert expected > 10_000
    await b.fake.send_raw(garbage)
    await b.sync()  # the Ping's answer comes after the garbage: everything was read
    assert b.svc.connection.connected
    b.fake.kill_socket()  # the connection's end summarises what is still only counted
    deadline = asyncio.get_running_loop().time() + 60
    while accounted(records(caplog)) < expected:
        assert asyncio.get_running_loop().time() < deadline, [r.getMessage()[:120] for r in records(caplog)]
        await asyncio.sleep(0.02)
    await b.ready()
    recs = records(caplog)
    # the log accounts for every malformed message, in a few lines (10 in full per minute plus a summary each)
    assert accounted(recs) == expected, [r.getMessage()[:120] for r in recs]
    assert len(recs) < 100
    full = [r for r in recs if not hasattr(r, "ami_malformed_suppressed")]
    assert full and all("\\x" in r.getMessage() for r in full)  # with their bytes
    # the real stream after the garbage is still folded
    await b.at(len(b.fake.cap.msgs) - 1)
    assert b.svc.state.queues
    # the limiter belongs to the bridge, not the connection: a reconnect does not start a new full burst
    assert b.fake.connections == 2 and b.svc.connection.malformed.total == expected


def test_windows_log_the_first_few_and_summarise_the_rest(caplog) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    now = [0.0]
    m = MalformedLog(burst=3, window=60.0, clock=lambda: now[0])
    for _ in range(50):
        m.skip("no Event or Response", b"\xff\xfe junk")
    assert len(records(caplog)) == 3  # the rest waits for its summary
    now[0] = 61.0
    m.tick()  # a read after the window: the summary, even if no garbage follows
    recs = records(caplog)
    assert len(recs) == 4 and recs[-1].ami_malformed_suppressed == 47 and accounted(recs) == 50
    for _ in range(5):
        m.skip("no Event or Response", b"x")
    m.flush()
    recs = records(caplog)
    assert accounted(recs) == 55 and m.total == 55
    m.flush()  # nothing counted since: no empty summary
    assert len(records(caplog)) == len(recs)
