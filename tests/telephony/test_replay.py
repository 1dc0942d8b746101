"""Raw AMI recording to rotating files, and replaying a recording or a capture (CLI and API)."""
from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

from fake_ami import CAPTURES, requires_captures

from telephony.reducer import fold
from telephony.replay import read_events
from telephony.service import register_cli
from telephony.state import snapshot

MOMENT = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # the services' clock: no event here lacks its own time


def clock() -> datetime:
    return MOMENT

pytestmark = requires_captures


async def test_recorded_stream_replays_to_the_same_state(bridge_factory, tmp_path):
    rec = tmp_path / "ami"
    b = await bridge_factory("ring_no_answer", ami={"record_dir": str(rec)})
    await b.at(len(b.fake.cap.msgs) - 2)
    live = snapshot(b.svc.state)
    files = sorted(rec.glob("ami-*.ami"))
    assert len(files) == 1 and files[0].read_bytes().startswith(b"Asterisk Call Manager/11.0.0\r\n")
    replayed, _ = fold(e for _, e in read_events(files[0]))
    # the live side also folded our own resync lists; the queues and agents must agree
    assert snapshot(replayed)["queues"]["12345"]["stats"] == live["queues"]["12345"]["stats"]
    assert {k: v["state"] for k, v in snapshot(replayed)["agents"].items()} == \
        {k: v["state"] for k, v in live["agents"].items()}


async def test_replay_paces_by_timestamps(settings_factory):
    from telephony.service import TelephonyService

    path = CAPTURES / "abandoned_call.ami"
    times = [t for t, _ in read_events(path) if t is not None]
    span = times[-1] - times[0]  # about 10 s of capture
    svc = TelephonyService(settings_factory(), clock)
    await svc.start()
    try:
        t0 = asyncio.get_running_loop().time()
        n = await svc.replay_file(path, speed=20.0)
        elapsed = asyncio.get_running_loop().time() - t0
        await svc.drain()
        # paced: never faster than the capture at 20x (a busy machine can only make it slower)
        assert n == 108 and span > 5 and elapsed >= span / 20 - 0.01
        assert svc.state.queues["12345"].stats.abandoned == 1
    finally:
        await svc.stop()


def test_cli_replay_prints_queues_and_agents(settings_factory, capsys):
    parser = argparse.ArgumentParser(prog="hotline")
    sub = parser.add_subparsers(dest="command", required=True)
    register_cli(sub, clock)
    args = parser.parse_args(["replay", str(CAPTURES / "agent_pause_and_membership.jsonl"), "--speed", "0"])
    assert args.func(settings_factory(), args) == 0
    out = capsys.readouterr().out
    assert "replayed 36 events" in out
    assert "queue 12345:" in out and "agent agent-8004: available" in out


async def test_every_session_is_recorded_from_its_banner(bridge_factory, tmp_path):
    # Three sessions (two cut by the network), the banner arriving in pieces: one file each, each from the banner.
    rec = tmp_path / "ami"
    b = await bridge_factory("answered_call", ami={"record_dir": str(rec)})
    b.fake.banner_split = 9
    await b.ready()
    for logins in (2, 3):
        b.fake.kill_socket()
        deadline = asyncio.get_running_loop().time() + 60
        while b.fake.logins < logins or not b.svc.connection._ready.is_set():
            assert asyncio.get_running_loop().time() < deadline, "no reconnect"
            await asyncio.sleep(0.01)
    await b.sync()
    files = sorted(rec.glob("ami-*.ami"))
    assert len(files) == 3
    assert all(f.read_bytes().startswith(b"Asterisk Call Manager/11.0.0\r\n") for f in files)
