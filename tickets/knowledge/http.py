"""HTTP API of the knowledge base under ``/api/v1/knowledge`` (agents search; supervisors and departments edit)."""
from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from tickets.accounts.http import principal
from tickets.errors import InvalidField
from tickets.http import STORE, TZ
from tickets.json_http import ok, read_json
from tickets.knowledge.service import KnowledgeStore

KNOWLEDGE = web.AppKey("knowledge_store", KnowledgeStore)
WARM_UP = web.AppKey("knowledge_warm_up", asyncio.Task)


def _entry_id(request: web.Request) -> int:
    try:
        return int(request.match_info["id"])
    except ValueError:
        raise InvalidField("id", "知识条目编号须为整数") from None


async def search(request: web.Request) -> web.Response:
    principal(request)
    q = request.query
    try:
        limit = min(int(q.get("limit", 20)), 100)
        dept = int(q["department_id"]) if q.get("department_id") else None
    except ValueError:
        raise InvalidField("limit", "limit 与 department_id 须为整数") from None
    return ok(await request.app[KNOWLEDGE].search(q.get("q", ""), limit, dept))


async def create(request: web.Request) -> web.Response:
    return ok(await request.app[KNOWLEDGE].create(await read_json(request), principal(request)), status=201)


async def update(request: web.Request) -> web.Response:
    return ok(await request.app[KNOWLEDGE].update(_entry_id(request), await read_json(request), principal(request)))


async def get(request: web.Request) -> web.Response:
    principal(request)
    return ok(await request.app[KNOWLEDGE].get(_entry_id(request)))


async def review(request: web.Request) -> web.Response:
    return ok(await request.app[KNOWLEDGE].for_review(principal(request)))


def setup_routes(app: web.Application, **store_options: Any) -> None:
    """Routes plus a startup hook that builds the store on the ticket store's sessions (opened in cleanup_ctx)."""

    async def build(app: web.Application) -> None:
        tickets = app[STORE]
        app[KNOWLEDGE] = KnowledgeStore(tickets.sessions, tickets.clock, app[TZ],
                                        read_sessions=getattr(tickets, "read_sessions", None), **store_options)
        app[WARM_UP] = asyncio.create_task(app[KNOWLEDGE].warm_up(), name="knowledge-warm-up")

    async def finish(app: web.Application) -> None:
        task = app.get(WARM_UP)
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):  # a warm-up that did not finish changes nothing
                pass

    app.on_startup.append(build)
    app.on_cleanup.append(finish)
    r = app.router
    r.add_get("/api/v1/knowledge", search)
    r.add_post("/api/v1/knowledge", create)
    r.add_get("/api/v1/knowledge/review", review)
    r.add_get("/api/v1/knowledge/{id:\\d+}", get)
    r.add_put("/api/v1/knowledge/{id:\\d+}", update)
