"""A busy hour of a hotline as AMI events, for demonstrations (``hotline screenshots``' wallboard): two queues,
agents answering one call after another, a few callers who gave up, callers waiting now, an agent on a break.

The events have the fields and order of the real captures (``../shared/asterisk-captures``: answered_call,
abandoned_call), so the reducer folds them as it folds Asterisk's own. Pure: the times come from the caller.
"""
from __future__ import annotations

from typing import Any

Event = dict[str, str]

# (queue, interface, MemberName); the demonstration account 王丽 is PJSIP/8001 (web/demo.py)
AGENTS = [("12345", "PJSIP/8001", "agent-8001"), ("12345", "PJSIP/8002", "刘洋"), ("12345", "PJSIP/8003", "陈晨"),
          ("12345", "PJSIP/8004", "张伟"), ("12345", "PJSIP/8005", "李娜"), ("12346", "PJSIP/8006", "周婷")]
BREAK = ("PJSIP/8005", "就餐")  # on a break for the last 6 minutes


class _Scene:
    def __init__(self) -> None:
        self.items: list[tuple[float, int, Event]] = []
        self.n = 0
        self.waits: dict[str, tuple[str, float, float]] = {}  # uid -> (queue, joined, left the queue)

    def at(self, t: float, ev: Event) -> None:
        self.items.append((t, len(self.items), ev))

    def caller(self, t: float, queue: str, left: float = float("inf")) -> tuple[str, str, str]:
        self.n += 1
        uid = f"{t:.0f}.{self.n}"
        num = f"1{'358'[self.n % 3]}{(self.n * 7919 + 1234567) % 10**9:09d}"
        chan = f"PJSIP/trunk-{self.n:08x}"
        self.at(t, {"Event": "Newchannel", "Channel": chan, "ChannelState": "4", "ChannelStateDesc": "Ring",
                    "CallerIDNum": num, "CallerIDName": num, "Context": "incoming", "Exten": queue,
                    "Uniqueid": uid, "Linkedid": uid})
        self.at(t, {"Event": "QueueCallerJoin", "Queue": queue, "Channel": chan, "CallerIDNum": num,
                    "CallerIDName": num, "Uniqueid": uid, "Linkedid": uid})
        self.waits[uid] = (queue, t, left)
        return uid, num, chan

    def answered(self, t: float, queue: str, iface: str, name: str, wait: float, talk: float | None) -> None:
        ans = t + wait
        uid, _, chan = self.caller(t, queue, ans)
        leg = f"{uid}-agent"
        self.at(ans - 1, {"Event": "AgentCalled", "Queue": queue, "Interface": iface, "MemberName": name,
                          "Uniqueid": uid, "Linkedid": uid, "DestChannel": f"{iface}-{self.n:08x}"})
        self.at(ans, {"Event": "Newchannel", "Channel": f"{iface}-{self.n:08x}", "ChannelState": "0",
                      "Uniqueid": leg, "Linkedid": uid, "CallerIDNum": "", "CallerIDName": ""})
        self.at(ans, {"Event": "QueueCallerLeave", "Queue": queue, "Channel": chan, "Uniqueid": uid,
                      "Linkedid": uid, "Position": "1", "Count": "0"})
        self.at(ans, {"Event": "AgentConnect", "Queue": queue, "Interface": iface, "MemberName": name,
                      "Uniqueid": uid, "Linkedid": uid, "DestUniqueid": leg, "HoldTime": f"{wait:.0f}",
                      "RingTime": "1"})
        if talk is None:
            return  # still talking
        end = ans + talk
        self.at(end, {"Event": "Hangup", "Channel": f"{iface}-{self.n:08x}", "Uniqueid": leg, "Linkedid": uid,
                      "Cause": "16"})
        self.at(end, {"Event": "Hangup", "Channel": chan, "Uniqueid": uid, "Linkedid": uid, "Cause": "16"})
        self.at(end, {"Event": "AgentComplete", "Queue": queue, "Interface": iface, "MemberName": name,
                      "Uniqueid": uid, "Linkedid": uid, "HoldTime": f"{wait:.0f}", "TalkTime": f"{talk:.0f}",
                      "Reason": "caller"})

    def abandoned(self, t: float, queue: str, wait: float) -> None:
        end = t + wait
        uid, _, chan = self.caller(t, queue, end)
        self.at(end, {"Event": "QueueCallerAbandon", "Queue": queue, "Uniqueid": uid, "Linkedid": uid,
                      "Position": "1", "OriginalPosition": "1", "HoldTime": f"{wait:.0f}"})
        self.at(end, {"Event": "QueueCallerLeave", "Queue": queue, "Channel": chan, "Uniqueid": uid,
                      "Linkedid": uid, "Position": "1", "Count": "0"})
        self.at(end, {"Event": "Hangup", "Channel": chan, "Uniqueid": uid, "Linkedid": uid, "Cause": "16"})


def _member(queue: str, iface: str, name: str, paused: bool = False, reason: str = "") -> Event:
    return {"Event": "QueueMember", "Queue": queue, "Name": name, "Location": iface, "StateInterface": iface,
            "Membership": "static", "Penalty": "0", "CallsTaken": "0", "LastCall": "0", "LastPause": "0",
            "InCall": "0", "Status": "1", "Paused": "1" if paused else "0", "PausedReason": reason}


def busy_hour(now: float, span: float = 3000.0) -> list[dict[str, Any]]:
    """Events from ``now - span`` to ``now`` (epoch seconds), in time order, each with its ``Timestamp``."""
    s = _Scene()
    start = now - span
    for queue, iface, name in AGENTS:
        s.at(start, _member(queue, iface, name))
    # each agent of 12345 answers one call after another (waits 4-38 s, talks 2-5 min); 李娜 stops for a break
    waits = [4, 9, 12, 6, 21, 14, 38, 8, 11, 17, 5, 26]
    for k, (queue, iface, name) in enumerate(AGENTS):
        t = start + 20 + 45 * k
        stop = now - (420 if iface == BREAK[0] else 130)
        j = 0
        while True:
            wait, talk = waits[(j + 3 * k) % len(waits)], 120 + 37 * ((j * 5 + k) % 6)
            if t + wait + talk > stop:
                break
            s.answered(t, queue, iface, name, wait, talk)
            t += wait + talk + 25
            j += 1
        if iface == BREAK[0]:
            s.at(now - 360, _member(queue, iface, name, True, BREAK[1]))
        elif k < 3:  # three agents are talking now
            s.answered(now - 100 + 20 * k, queue, iface, name, 6 + 4 * k, None)
    # callers who gave up, spread over the hour
    for i, wait in enumerate((52, 75, 41, 96)):
        s.abandoned(start + 400 + 650 * i, "12345", wait)
    # waiting now: 9 s, 24 s, 47 s and 83 s
    for wait in (83, 47, 24, 9):
        s.caller(now - wait, "12345")
    events = []
    for t, _, ev in sorted(s.items):
        if ev["Event"] == "QueueCallerJoin":  # behind everyone already waiting, as Asterisk places a caller
            queue, joined, _ = s.waits[ev["Uniqueid"]]
            ahead = sum(1 for u, (q, j, left) in s.waits.items()
                        if q == queue and u != ev["Uniqueid"] and j < joined < left)
            ev = {**ev, "Position": str(ahead + 1), "Count": str(ahead + 1)}
        events.append({**ev, "Timestamp": f"{t:.6f}"})
    return events
