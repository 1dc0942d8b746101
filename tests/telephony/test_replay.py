"""Raw AMI recording to rotating files, and replaying a recording or a capture (CLI and API)."""
from __future__ import annotations

import argparse
import asyncio

from fake_ami import CAPTURES, requires_captures

from telephony.reducer import fold
from telephony.replay import read_events, register_cli
from telephony.state import snapshot

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

    svc = TelephonyService(settings_factory())
    await svc.start()
    try:
        t0 = asyncio.get_running_loop().time()
        n = await svc.replay_file(CAPTURES / "abandoned_call.ami", speed=20.0)  # 10 s of capture at 20x
        elapsed = asyncio.get_running_loop().time() - t0
        await svc.drain()
        assert n == 108 and 0.35 < elapsed < 2.0
        assert svc.state.queues["12345"].stats.abandoned == 1
    finally:
        await svc.stop()


def test_cli_replay_prints_queues_and_agents(settings_factory, capsys):
    parser = argparse.ArgumentParser(prog="hotline")
    sub = parser.add_subparsers(dest="command", required=True)
    register_cli(sub)
    args = parser.parse_args(["replay", str(CAPTURES / "agent_pause_and_membership.jsonl"), "--speed", "0"])
    assert args.func(settings_factory(), args) == 0
    out = capsys.readouterr().out
    assert "replayed 36 events" in out
    assert "queue 12345:" in out and "agent agent-8004: available" in out
