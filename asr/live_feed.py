"""The server side of live transcription: lines the workers publish on Redis, fanned out to the agent's page.

``GET /ws/asr/live`` (WebSocket, agents, supervisors, admins). The page sends ``{"follow": "<call_id>"}`` for
the call on its screen; the server answers with the call's backlog (a page opened or reloaded mid-call), then
every new line of that call as the workers publish it (``asr/live.py`` gives the shape, ``type: "asr_live"``).

Who sees a call's words: an injected ``may_follow(user, call_id)`` (server.py: the agent the call is connected
to, per the telephony live view; supervisors and admins). Once a socket was allowed a call it keeps getting
that call's lines, so the last final, decoded after the hang-up, still reaches the agent who took the call.
This module never decodes audio and imports no other package.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from aiohttp import WSMsgType, web

from asr import audiosocket, live

log = logging.getLogger("hotline.asr.live")

MayFollow = Callable[[Mapping[str, Any], str], bool]
ROLES = ("agent", "supervisor", "admin")
MAX_FOLLOWED = 20  # calls one socket follows (an agent's page: one, a supervisor listening in: a few)


class Client:
    def __init__(self, user: Mapping[str, Any]) -> None:
        self.user = user
        self.calls: set[str] = set()
        self.queue: asyncio.Queue[str] = asyncio.Queue(2000)


class LiveFeed:
    def __init__(self, redis: Any, may_follow: MayFollow, *, channel: str = live.CHANNEL,
                 prefix: str = live.BACKLOG_PREFIX) -> None:
        self.redis = redis
        self.may_follow = may_follow
        self.channel = channel
        self.prefix = prefix
        self.clients: set[Client] = set()
        self.legs: dict[str, dict[str, Any]] = {}  # "call:speaker" -> its "started" message, while live

    def note(self, msg: Mapping[str, Any]) -> None:
        """Which legs are live (to notice one whose worker died): started until stopped."""
        leg = f"{msg.get('call_id')}:{msg.get('speaker')}"
        if msg.get("event") == "started":
            self.legs[leg] = dict(msg)
        elif msg.get("event") in ("stopped", "fallback"):
            self.legs.pop(leg, None)

    def deliver(self, raw: str) -> None:
        try:
            msg = json.loads(raw)
            call_id = str(msg.get("call_id", ""))
        except (ValueError, AttributeError):
            log.warning("bad live transcript message: %r", raw[:200])
            return
        self.note(msg)
        for c in list(self.clients):
            if call_id in c.calls:
                try:
                    c.queue.put_nowait(raw)
                except asyncio.QueueFull:  # a socket that does not read: it misses partials, not the call
                    pass

    async def backlog(self, call_id: str) -> list[str]:
        return [x.decode("utf-8") if isinstance(x, bytes) else str(x)
                for x in await self.redis.lrange(self.prefix + call_id, 0, -1)]

    async def watch_legs(self, every: float = live.BEAT) -> None:
        """A followed leg whose worker stopped renewing its key (killed mid-call) is told "stopped" here, to
        this process's pages only (each server process does the same for its own); an unfollowed one is
        forgotten."""
        while True:
            await asyncio.sleep(every)
            followed = {call for c in self.clients for call in c.calls}
            for leg, started in list(self.legs.items()):
                try:
                    alive = await self.redis.exists(live.LEG_PREFIX + leg)
                except Exception:  # noqa: BLE001, S112  Redis away: the subscription logs it
                    continue
                if alive or self.legs.get(leg) is not started:
                    continue
                if started.get("call_id") in followed:
                    self.deliver(json.dumps({**started, "event": "stopped", "reason": "worker_lost",
                                             "message": audiosocket.END_REASONS["worker_lost"]}, ensure_ascii=False))
                else:  # nobody here is watching: just forget it
                    self.legs.pop(leg, None)

    async def run(self, backoff_min: float = 0.1, backoff_max: float = 5.0) -> None:
        """Follow the channel; subscribe again (with backoff) when Redis goes away."""
        delay = backoff_min
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                delay = backoff_min
                while True:
                    m = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if m is None:
                        continue
                    data = m["data"]
                    self.deliver(data.decode("utf-8") if isinstance(data, bytes) else str(data))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  ConnectionError, a restarting server
                log.warning("live transcripts: Redis subscription lost (%s: %s)", type(exc).__name__, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, backoff_max)
            finally:
                try:
                    await pubsub.aclose()
                except Exception:  # noqa: BLE001, S110  the connection is already gone
                    pass


FEED = web.AppKey("asr_live_feed", LiveFeed)


async def ws_live_transcript(request: web.Request) -> web.WebSocketResponse:
    user = request.get("user")
    if not user:
        raise web.HTTPUnauthorized(text="请先登录")
    if user.get("role") not in ROLES:
        raise web.HTTPForbidden(text="您的角色无权查看通话转写")
    feed = request.app[FEED]
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    client = Client(user)
    feed.clients.add(client)

    async def reader() -> None:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                break
            try:
                call_id = str(json.loads(msg.data).get("follow", ""))
            except (ValueError, AttributeError):
                continue
            if not call_id or call_id in client.calls:
                continue
            if len(client.calls) >= MAX_FOLLOWED or not feed.may_follow(user, call_id):
                await client.queue.put(json.dumps({"type": "asr_live", "call_id": call_id, "event": "refused",
                                                   "message": "您无权查看这通电话的实时转写"}, ensure_ascii=False))
                continue
            client.calls.add(call_id)
            for raw in await feed.backlog(call_id):
                try:
                    feed.note(json.loads(raw))
                except ValueError:
                    continue
                await client.queue.put(raw)

    read_task = asyncio.get_running_loop().create_task(reader())
    try:
        while not ws.closed:
            get = asyncio.ensure_future(client.queue.get())
            done, _ = await asyncio.wait({get, read_task}, return_when=asyncio.FIRST_COMPLETED)
            if get not in done:
                get.cancel()
                break
            await ws.send_str(get.result())
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        feed.clients.discard(client)
        read_task.cancel()
        await ws.close()
    return ws


def setup(app: web.Application, redis: Callable[[], Any], may_follow: MayFollow) -> None:
    """The WebSocket route and the subscription (a cleanup_ctx); ``redis`` is read at start-up."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        feed = LiveFeed(redis(), may_follow)
        app[FEED] = feed
        tasks = [asyncio.get_running_loop().create_task(feed.run(), name="asr-live-feed"),
                 asyncio.get_running_loop().create_task(feed.watch_legs(), name="asr-live-legs")]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    app.cleanup_ctx.append(ctx)
    app.router.add_get("/ws/asr/live", ws_live_transcript)
