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


class Sink:
    """A hub client's socket that keeps the very bytes objects it is handed."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    def send(self, payload: bytes) -> None:
        self.payloads.append(payload)

    def buffered(self) -> int:
        return 0

    def close(self) -> None:
        pass


async def test_the_hub_encodes_each_frame_once_per_privacy_class_not_per_client() -> None:
    import asyncio

    from telephony.live import LiveHub

    hub = LiveHub(None)
    agents, others = [Sink(), Sink()], [Sink(), Sink(), Sink()]
    for s in agents:
        hub.attach(s, whole_numbers=True)
    for s in others:
        hub.attach(s)  # masked unless said otherwise
    call = {"id": "1.1", "state": "waiting", "caller_num": "13812345678", "caller_name": "citizen"}
    await hub.publish([{"op": "put", "kind": "call", "key": "1.1", "value": call}])
    await hub.broadcast({"type": "missed", "callback": {"id": 1, "caller_num": "13812345678"}})
    await asyncio.sleep(0)  # the flush runs on the next loop turn
    for group in (agents, others):
        assert all(len(s.payloads) == 3 for s in group)  # snapshot, the patch, the missed caller
        for i in (1, 2):  # each frame the same bytes object for the whole class: encoded once for it
            assert all(s.payloads[i] is group[0].payloads[i] for s in group)
    whole, hidden = b"".join(agents[0].payloads[1:]), b"".join(others[0].payloads[1:])
    assert whole.count(b"13812345678") == 2 and b"13812345678" not in hidden
    assert hidden.count(b"138****5678") == 2
    # a client joining now: the snapshot of its class, whole numbers or not
    late, late_agent = Sink(), Sink()
    hub.attach(late)
    hub.attach(late_agent, whole_numbers=True)
    assert b"138****5678" in late.payloads[0] and b"13812345678" not in late.payloads[0]
    assert b"13812345678" in late_agent.payloads[0]
    assert hub.view["calls"]["1.1"]["caller_num"] == "13812345678"  # the hub keeps the whole view
