"""queue_log beside AMI: the link-gap capture (three AMI sessions of one Asterisk run) and its queue_log.

Session 1 is served over TCP until the recorder's cut, then the socket is reset; the reconnect is served session 2
(its own QueueStatus/CoreShowChannels answers). queue_log grows the way Asterisk wrote it: the lines up to the
reconnect are in the file when we read it, the last ABANDON is appended afterwards. The observer session, which
was never cut, is the truth the result is compared with.
"""
from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest
from fake_ami import CAPTURES, Capture, requires_captures
from fake_ami import until as _until
from sqlalchemy import select
from test_bridge_captures import ev, waiting

from telephony import queue_log
from telephony.models import Callback, CallRecord
from telephony.queue_log_reader import QueueLogFile
from telephony.reducer import ReducerConfig, apply, fold
from telephony.replay import read_events
from telephony.state import CallEnded

pytestmark = requires_captures

LOG_LINES = (CAPTURES / "link_gap.queue_log").read_text(encoding="utf-8").splitlines(keepends=True)
RECONNECT = 1796255577  # observer t=17.04: SuccessfulAuth of session 2


def test_parse_every_event_of_the_captures():
    calls = queue_log.calls(queue_log.parse((CAPTURES / "link_gap.queue_log").read_text(encoding="utf-8")))
    assert {c.call_id: (c.outcome, c.agent, c.wait, c.talk) for c in calls.values()} == {
        "1796255560.0": ("answered", "agent-8001", 6.0, 9.0),
        "1796255561.2": ("abandoned", "", 10.0, None),
        "1796255561.4": ("abandoned", "", 32.0, None)}
    timeout = queue_log.calls(queue_log.parse((CAPTURES / "queue_timeout.queue_log").read_text()))
    assert [c.outcome for c in timeout.values()] == ["timed_out"]
    transfers = queue_log.calls(queue_log.parse((CAPTURES / "redirect_transfer.queue_log").read_text()))
    # a Redirect leaves COMPLETECALLER (no transfer line); the attended transfer is ATTENDEDTRANSFER|BRIDGE|...
    assert [(c.outcome, c.talk) for c in transfers.values()] == [("answered", 11.0), ("transferred", 8.0)]
    blind = queue_log.calls(queue_log.parse((CAPTURES / "transfer_unknown_exten.queue_log").read_text()))
    assert [(c.outcome, c.wait, c.talk) for c in blind.values()] == [("transferred", 1.0, 4.0)]
    assert queue_log.parse("garbage\n1796255560|x\nnan|1|q|a|ABANDON|1|1|3\n") == []
    row = {"time": 1796255571, "callid": "1796255561.2", "queuename": "12345", "agent": "NONE",
           "event": "ABANDON", "data1": "1", "data2": "2", "data3": "10", "data4": "", "data5": ""}
    assert queue_log.from_row(row) == queue_log.parse_line(LOG_LINES[10])


def test_file_reader_returns_whole_new_lines_and_restarts_after_rotation(tmp_path):
    path = tmp_path / "queue_log"
    path.write_text("".join(LOG_LINES[:5]) + LOG_LINES[5][:9], encoding="utf-8")
    reader = QueueLogFile(path)
    assert [e.event for e in reader.read_new()] == ["QUEUESTART", "PAUSE", "PAUSE", "PAUSE", "ENTERQUEUE"]
    with path.open("a", encoding="utf-8") as f:
        f.write(LOG_LINES[5][9:] + LOG_LINES[6])
    assert [e.call_id for e in reader.read_new()] == ["1796255561.2", "1796255561.4"]  # the torn line, whole
    assert reader.read_new() == []
    path.unlink()
    path.write_text(LOG_LINES[-1], encoding="utf-8")  # rotated: a new, shorter file
    assert [e.event for e in reader.read_new()] == ["ABANDON"]




class FileLog:
    """queue_log as Asterisk's file."""

    def __init__(self, tmp_path) -> None:
        self.path = tmp_path / "queue_log"
        self.path.write_text("", encoding="utf-8")
        self.settings = {"queue_log_path": str(self.path)}
        self.where = str(self.path)

    def add(self, lines: list[str]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write("".join(lines))


class TableLog:
    """queue_log as Asterisk's realtime table (contrib/realtime schema), time in UTC (use_gmt)."""

    def __init__(self, tmp_path) -> None:
        db = tmp_path / "asterisk.db"
        with sqlite3.connect(db) as c:
            c.execute("CREATE TABLE queue_log (id INTEGER PRIMARY KEY AUTOINCREMENT, time TIMESTAMP, callid VARCHAR(80),"
                      " queuename VARCHAR(256), agent VARCHAR(80), event VARCHAR(32), data1 VARCHAR(100),"
                      " data2 VARCHAR(100), data3 VARCHAR(100), data4 VARCHAR(100), data5 VARCHAR(100))")
        self.db = db
        self.settings = {"queue_log_url": f"sqlite+aiosqlite:///{db}", "queue_log_utc": True}
        self.where = f"queue_log @ sqlite+aiosqlite:///{db}"

    def add(self, lines: list[str]) -> None:
        with sqlite3.connect(self.db) as c:
            for line in lines:
                t, callid, queue, agent, event, *data = line.rstrip("\n").split("|")
                stamp = datetime.fromtimestamp(int(t), UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
                data = (data + [""] * 5)[:5]
                c.execute("INSERT INTO queue_log (time, callid, queuename, agent, event, data1, data2, data3, data4,"
                          " data5) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (stamp, callid, queue, agent, event, *data))


@pytest.mark.parametrize("source", [FileLog, TableLog], ids=["file", "table"])
async def test_link_gap_is_reconciled_from_queue_log(bridge_factory, sessions, tmp_path, source):
    log = source(tmp_path)
    written = [line for line in LOG_LINES if int(line.split("|")[0]) <= 1796255561]
    log.add(written)
    b = await bridge_factory("link_gap.1", ami=log.settings, sessions=sessions)
    cap1 = b.fake.cap
    await b.at(len(cap1.msgs) - 1)  # everything session 1 saw: three callers waiting, nobody free
    await _until(lambda: b.svc.reconciled >= 1, "no queue_log read at start")
    await b.sync()
    assert [w.caller_num for w in waiting(b)] == ["13811110001", "13822220002", "13833330003"]

    # The gap: Asterisk goes on writing queue_log; the link comes back 14 s after the cut (session 2).
    log.add([line for line in LOG_LINES if int(line.split("|")[0]) <= RECONNECT and line not in written])
    cap2 = Capture.load("link_gap.2")
    b.fake.cap = cap2
    b.fake.lists = {"queuestatus": cap2.list_reply("link_gap.2-002"),
                    "coreshowchannels": cap2.list_reply("link_gap.2-003")}
    b.fake.pos = cap2.index(ev("CoreShowChannelsComplete")) + 1
    b.fake.kill_socket()  # the recorder's RST
    await _until(lambda: b.fake.logins >= 2 and b.svc.reconciled >= 2, "no reconnect and queue_log read")
    await b.sync()
    # The gap is filled: 王小明 answered by agent-8001, 李四 abandoned; nobody else counted abandoned.
    s = b.svc.state.queues["12345"].stats
    assert (s.offered, s.answered, s.abandoned, s.timed_out) == (3, 1, 1, 0)
    assert [w.caller_num for w in waiting(b)] == ["13833330003"]
    assert b.agent("agent-8001").state == "paused" and b.agent("agent-8001").pause_reason == "午休"

    # Live again: caller 3 abandons on AMI; then Asterisk's line for it is in the file too (read again: no-op).
    await b.at(cap2.index(ev("Hangup", Channel="Local/13833330003@caller-00000002;1")))
    log.add([LOG_LINES[-1]])
    await b.svc.reconcile()
    await b.sync()
    assert b.svc.state.calls == {} and b.svc.state.unresolved == {} and waiting(b) == []
    s = b.svc.state.queues["12345"].stats
    assert (s.offered, s.answered, s.abandoned, s.timed_out) == (3, 1, 2, 0)
    assert s.finished == s.offered

    async with sessions() as db:
        rows = {r.call_id: r for r in (await db.scalars(select(CallRecord))).all()}
        callbacks = sorted((c.caller_num, c.reason) for c in (await db.scalars(select(Callback))).all())
    assert {k: (r.caller_num, r.outcome, r.agent_name, r.agent_interface, r.wait_seconds, r.talk_seconds)
            for k, r in rows.items()} == {
        "1796255560.0": ("13811110001", "answered", "agent-8001", "Local/8001@agents/n", 6.0, 9.0),
        "1796255561.2": ("13822220002", "abandoned", "", "", 10.0, None),
        "1796255561.4": ("13833330003", "abandoned", "", "", rows["1796255561.4"].wait_seconds, None)}
    assert 31.5 < rows["1796255561.4"].wait_seconds < 32.5
    assert not any(r.lost for r in rows.values())
    assert callbacks == [("13822220002", "abandoned"), ("13833330003", "abandoned")]

    # The observer session, never cut, saw the same outcomes.
    _, effects = fold(e for _, e in read_events(CAPTURES / "link_gap.observer.jsonl"))
    truth = {e.call_id: (e.outcome, e.member_name) for e in effects if isinstance(e, CallEnded) and e.queue}
    assert truth == {k: (r.outcome, r.agent_name) for k, r in rows.items()}

    h = b.svc.health()
    assert h["queue_log"] == log.where
    sources = [(c["source"], c["to"] is None) for c in h["coverage"]]
    assert sources == [("ami", False), ("queue_log", False), ("ami", True), ("queue_log", False)]
    gap = h["coverage"][3]
    assert gap["calls"] == 2 and gap["error"] == ""
    assert gap["from"] == h["coverage"][0]["to"] and gap["to"] == h["coverage"][2]["from"]


def test_without_queue_log_a_lost_call_keeps_the_guess_and_with_it_waits_for_the_verdict():
    # Pure: the resync after the gap, folded with and without reconciliation.
    events = [e for _, e in read_events(CAPTURES / "link_gap.1.jsonl")]
    cap2 = Capture.load("link_gap.2")
    items = [dict(read) for read in (_parse(raw) for raw in cap2.list_reply("link_gap.2-002")[1:-1])]
    chans = [dict(read) for read in (_parse(raw) for raw in cap2.list_reply("link_gap.2-003")[1:-1])]
    resync = {"Event": "_Resync", "_received": RECONNECT, "queue_status": items, "channels": chans}
    state, _ = fold(events)
    _, eff = apply(state, resync)
    assert sorted(e.outcome for e in eff if isinstance(e, CallEnded)) == ["abandoned", "abandoned"]  # the old guess
    cfg = ReducerConfig(reconcile=True)
    held, eff = apply(state, resync, cfg)
    assert eff == () and set(held.unresolved) == {"1796255560.0", "1796255561.2"}
    log = queue_log.parse("".join(line for line in LOG_LINES if int(line.split("|")[0]) <= RECONNECT))
    done, eff = apply(held, {"Event": "_QueueLog", "_received": RECONNECT + 0.1, "entries": log}, cfg)
    assert {e.call_id: e.outcome for e in eff if isinstance(e, CallEnded)} == {
        "1796255560.0": "answered", "1796255561.2": "abandoned"}
    assert done.unresolved == {} and set(done.done) | set(done.done_recent) == {"1796255560.0", "1796255561.2"}
    again, eff = apply(done, {"Event": "_QueueLog", "_received": RECONNECT + 0.2, "entries": log}, cfg)
    assert eff == () and again.queues["12345"].stats == done.queues["12345"].stats
    # an unreadable queue_log still closes the held calls (with the guess)
    _, eff = apply(held, {"Event": "_QueueLog", "_received": RECONNECT + 0.1, "entries": []}, cfg)
    assert sorted(e.lost for e in eff if isinstance(e, CallEnded)) == [True, True]


def _parse(raw: bytes) -> dict:
    from telephony.framing import parse_message
    return parse_message(raw.decode("utf-8").rstrip("\r\n"))


def test_a_call_answered_in_the_gap_and_still_talking_gets_its_agent():
    # The link comes back at 1796255568, while 王小明 talks to agent-8001 (observer session). The resync's lists
    # for that moment were not captured: they are built from the observer's own Newchannel events (renamed
    # CoreShowChannel, with Duration) and session 2's QueueStatus items (QueueEntry copied for 李四, who still
    # waits then: Uniqueid/Channel/CallerIDNum/Position changed). Then the observer's live events go on.
    back = 1796255568.5
    observer = [e for _, e in read_events(CAPTURES / "link_gap.observer.jsonl")]
    state, _ = fold(e for _, e in read_events(CAPTURES / "link_gap.1.jsonl"))
    alive = {"1796255560.0", "1796255560.1", "1796255561.2", "1796255561.3", "1796255561.4", "1796255561.5",
             "1796255565.6", "1796255565.7"}
    channels = [{**e, "Event": "CoreShowChannel", "Duration": "00:00:03"} for e in observer
                if e.get("Event") == "Newchannel" and e.get("Uniqueid") in alive]
    cap2 = Capture.load("link_gap.2")
    items = [_parse(raw) for raw in cap2.list_reply("link_gap.2-002")[1:-1]]
    entry = next(i for i in items if i["Event"] == "QueueEntry")
    li_si = {**entry, "Uniqueid": "1796255561.2", "Channel": "Local/13822220002@caller-00000001;1",
             "CallerIDNum": "13822220002", "Position": "1", "Wait": "7"}
    items = [i for i in items if i["Event"] != "QueueEntry"] + [li_si, {**entry, "Position": "2", "Wait": "7"}]
    cfg = ReducerConfig(reconcile=True)
    state, eff = apply(state, {"Event": "_Resync", "_received": back, "queue_status": items, "channels": channels},
                       cfg)
    assert eff == ()
    log = queue_log.parse("".join(line for line in LOG_LINES if int(line.split("|")[0]) <= back))
    state, eff = apply(state, {"Event": "_QueueLog", "_received": back, "entries": log}, cfg)
    call = state.calls["1796255560.0"]
    assert (call.state, call.agent_name, call.agent_interface, call.agent_channel) == \
        ("talking", "agent-8001", "Local/8001@agents/n", "1796255565.6")
    assert state.agents["Local/8001@agents/n"].call_id == "1796255560.0"
    s = state.queues["12345"].stats
    assert (s.offered, s.answered) == (3, 1)
    later = [e for e in observer if float(e.get("Timestamp") or 0) > back]
    state, effects = fold(later, state, cfg)
    ended = {e.call_id: (e.outcome, e.member_name) for e in effects if isinstance(e, CallEnded)}
    assert ended == {"1796255560.0": ("answered", "agent-8001"), "1796255561.2": ("abandoned", ""),
                     "1796255561.4": ("abandoned", "")}
    s = state.queues["12345"].stats
    assert (s.offered, s.answered, s.abandoned) == (3, 1, 2) and s.finished == s.offered
    assert state.calls == {}
