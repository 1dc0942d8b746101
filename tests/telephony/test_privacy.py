"""Callers' numbers in the live feed: masked the way tickets mask them, in every message shape, the view kept."""
from __future__ import annotations

import copy

from telephony.privacy import mask_number, masked, sees_whole_numbers
from tickets import phones


def test_the_live_feed_masks_numbers_like_the_tickets_do() -> None:
    for n in ("13812345678", "01062345678", "+8613812345678", "1062345678", "110", "8001", "12", ""):
        assert mask_number(n) == phones.mask(n), n
    assert mask_number("13812345678") == "138****5678"


def test_every_number_of_a_live_message_is_masked_and_the_original_kept() -> None:
    view = {"calls": {"1.1": {"id": "1.1", "caller_num": "13812345678", "caller_name": "13812345678",
                              "recording": "/var/spool/asterisk/monitor/1795383048.0.wav"}},
            "queues": {"12345": {"waiting": [{"call_id": "1.1", "caller_num": "13812345678",
                                              "caller_name": "张三 13912345678"}]}}}
    msg = {"type": "batch", "messages": [{"type": "snapshot", "seq": 3, "data": view},
                                         {"type": "missed", "callback": {"id": 7, "caller_num": "13700001111",
                                                                         "call_ids": ["1.2"]}}]}
    before = copy.deepcopy(msg)
    out = masked(msg)
    assert msg == before  # the hub's own view keeps the whole numbers
    snap, missed = out["messages"]
    call = snap["data"]["calls"]["1.1"]
    assert (call["caller_num"], call["caller_name"], call["recording"]) == (
        "138****5678", "138****5678", view["calls"]["1.1"]["recording"])
    assert snap["data"]["queues"]["12345"]["waiting"][0]["caller_name"] == "张三 139****5678"
    assert (missed["callback"]["caller_num"], missed["callback"]["call_ids"]) == ("137****1111", ["1.2"])
    assert "13812345678" not in str(out) and "13700001111" not in str(out)


def test_who_gets_whole_numbers() -> None:
    assert sees_whole_numbers("agent")
    assert not sees_whole_numbers("supervisor") and not sees_whole_numbers("admin")
    assert not sees_whole_numbers("agent", wall_screen=True)  # a wall screen, whoever logged it in
    assert sees_whole_numbers("supervisor", wall_screen=True, mask_numbers=False)  # the centre's own choice
