"""The live feed over real WebSockets: snapshot + patches rebuild the server's view; a slow client never holds
up the others.

The real app (server.create_app) with a real redis-server; the burst capture (32 overlapping calls) is replayed
into the bridge and the logged-in clients read ``/ws/telephony`` like the wallboard and agent console do.
"""
from __future__ import annotations

import asyncio
import base64
import copy
import json
import os
import socket
from typing import Any

from fake_ami import CAPTURES, Capture, requires_captures
from test_http import login, make_app, until

from telephony.live import apply_patches
from tickets.accounts import http as accounts_http

pytestmark = requires_captures

VIEW_KEYS = ("queues", "agents", "calls", "now", "day")


class Follower:
    """A client that rebuilds the view from the feed and notes every patch number it applied."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.view: dict[str, Any] | None = None
        self.seq = 0
        self.snapshots = 0
        self.seqs: list[int] = []
        self.resent = 0  # patches that sent a whole queue, call or agent the client already had
        self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for frame in self.ws:
            data = json.loads(frame.data)
            for m in data["messages"] if data["type"] == "batch" else [data]:
                if m["type"] == "snapshot":
                    self.view, self.seq = copy.deepcopy(m["data"]), m["seq"]
                    self.snapshots += 1
                elif m["type"] == "patch" and self.view is not None:
                    self.seqs.append(m["seq"])
                    if m["seq"] > self.seq:
                        self.resent += sum(1 for p in m["patches"] if p["op"] == "put"
                                           and p["key"] in self.view.get(p["kind"] + "s", {}))
                        apply_patches(self.view, m["patches"])
                        self.seq = m["seq"]

    def shows(self, want: dict[str, Any]) -> bool:
        return self.view is not None and {k: self.view.get(k) for k in VIEW_KEYS} == want


def server_view(svc: Any) -> dict[str, Any]:
    # what the server's state says, through JSON like the wire (tuples become lists)
    return json.loads(json.dumps({k: svc.full_view()[k] for k in VIEW_KEYS}, ensure_ascii=False))


async def _replay(svc: Any, name: str, speed: float = 0) -> int:
    n = await svc.replay_file(CAPTURES / f"{name}.ami", speed=speed)
    await svc.drain(timeout=120)
    return n


async def test_patches_in_order_rebuild_the_servers_view(aiohttp_client, settings_factory, redis_url):
    settings = settings_factory(redis_url=redis_url)
    start = Capture.load("burst").time_at(0)
    app, svc = make_app(settings, lambda: start)
    client = await aiohttp_client(app)
    sup = await login(client, app[accounts_http.USERS], "banzhang", "supervisor", "PJSIP/9001")
    agent = await login(client, app[accounts_http.USERS], "zuoxi1", "agent", "Local/8001@agents/n")
    followers = [Follower(await client.ws_connect("/ws/telephony", headers=h)) for h in (sup, agent)]
    await until(lambda: all(f.view is not None for f in followers), "every client got its snapshot")
    assert await _replay(svc, "burst", speed=20) > 4000  # 3 s: many small folds, each its own patch
    want = server_view(svc)
    assert want["queues"]["12345"]["stats"]["offered"] == 32
    await until(lambda: all(f.shows(want) for f in followers), "the clients' views equal the server's", 60)
    for f in followers:
        assert f.snapshots == 1  # only the first: every later change came as a patch, none missed
        assert f.seqs == list(range(f.seqs[0], f.seqs[0] + len(f.seqs)))  # in order, no gap, no repeat
        # patches carry only what changed: a queue (its members, its waiting callers), call or agent the client
        # has already is never sent whole again
        assert f.resent == 0
    for f in followers:
        await f.ws.close()


async def _stalled_socket(host: str, port: int, token: str) -> socket.socket:
    """A WebSocket that opens and then never reads, behind a small receive buffer (a client on a dead link)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(s, (host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    await loop.sock_sendall(s, (f"GET /ws/telephony HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                                f"Authorization: {token}\r\n\r\n").encode())
    return s


async def test_a_client_that_reads_nothing_is_dropped_and_the_others_get_every_patch(
        aiohttp_client, settings_factory, redis_url):
    settings = settings_factory(redis_url=redis_url)
    start = Capture.load("burst").time_at(0)
    app, svc = make_app(settings, lambda: start)
    client = await aiohttp_client(app)
    users = app[accounts_http.USERS]
    sup = await login(client, users, "banzhang", "supervisor", "PJSIP/9001")
    slow_auth = await login(client, users, "stuck", "supervisor", "PJSIP/9002")
    svc.hub.max_buffer = 4096
    svc.hub.drop_after = 0.5
    normal = Follower(await client.ws_connect("/ws/telephony", headers=sup))
    stalled = await _stalled_socket(client.server.host, client.server.port, slow_auth["Authorization"])
    try:
        await until(lambda: any(c.interface == "PJSIP/9002" for c in svc.hub.clients), "the stalled socket joined")
        slow = next(c for c in svc.hub.clients if c.interface == "PJSIP/9002")
        # the kernel keeps little for it: the server's side of the socket fills after a few frames
        slow.sink.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        await _replay(svc, "burst")
        want = server_view(svc)
        await until(lambda: normal.shows(want), "the reading client's view equals the server's", 60)
        await until(lambda: slow.dropped, "the stalled client was dropped", 60)
        assert slow.resnapshots >= 1 and slow not in svc.hub.clients
        # the reading client was never skipped: one snapshot, then every patch in order
        me = next(c for c in svc.hub.clients if c.interface == "PJSIP/9001")
        assert me.resnapshots == 0 and normal.snapshots == 1
        assert normal.seqs == list(range(normal.seqs[0], normal.seqs[0] + len(normal.seqs)))
    finally:
        stalled.close()
        await normal.ws.close()
