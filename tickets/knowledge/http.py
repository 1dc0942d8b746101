"""HTTP API of the knowledge base under ``/api/v1/knowledge`` (agents search; supervisors and departments edit)."""
from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from tickets.accounts.http import principal
from tickets.http import STORE, TZ
from tickets.json_http import STANDARD_ERRORS, add_openapi_paths, ok, path_id, query_id, query_int, read_json
from tickets.knowledge.service import KnowledgeStore

KNOWLEDGE = web.AppKey("knowledge_store", KnowledgeStore)
WARM_UP = web.AppKey("knowledge_warm_up", asyncio.Task)


async def search(request: web.Request) -> web.Response:
    principal(request)
    q = request.query
    limit = query_int(q, "limit", 20, 1, 100)
    return ok(await request.app[KNOWLEDGE].search(q.get("q", "")[:200], limit, query_id(q, "department_id")))


async def create(request: web.Request) -> web.Response:
    return ok(await request.app[KNOWLEDGE].create(await read_json(request), principal(request)), status=201)


async def update(request: web.Request) -> web.Response:
    return ok(await request.app[KNOWLEDGE].update(path_id(request, "id"), await read_json(request), principal(request)))


async def get(request: web.Request) -> web.Response:
    return ok(await request.app[KNOWLEDGE].get(path_id(request, "id"), principal(request)))


async def review(request: web.Request) -> web.Response:
    return ok(await request.app[KNOWLEDGE].for_review(principal(request)))


def openapi_paths() -> dict[str, Any]:
    std = STANDARD_ERRORS
    eid = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
    entry = {"type": "object", "required": ["question", "answer"], "properties": {
        "question": {"type": "string", "maxLength": 2000}, "answer": {"type": "string", "maxLength": 10000},
        "keywords": {"type": "string", "maxLength": 500}, "department_id": {"type": ["integer", "null"]},
        "valid_from": {"type": ["string", "null"], "format": "date"},
        "valid_to": {"type": ["string", "null"], "format": "date"}, "active": {"type": "boolean"}}}
    body = {"required": True, "content": {"application/json": {"schema": entry}}}
    return {
        "/api/v1/knowledge": {
            "get": {"summary": "知识库检索（话务员只看到今日有效的条目）", "parameters": [
                {"name": "q", "in": "query", "schema": {"type": "string"}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                {"name": "department_id", "in": "query", "schema": {"type": "integer", "minimum": 1}}],
                "responses": {"200": {"description": "entries"}, **std}},
            "post": {"summary": "新建知识条目（班长、承办单位）", "requestBody": body,
                     "responses": {"201": {"description": "entry"}, **std}}},
        "/api/v1/knowledge/review": {"get": {"summary": "待复核（已过期）的条目",
                                             "responses": {"200": {"description": "entries"}, **std}}},
        "/api/v1/knowledge/{id}": {
            "get": {"summary": "知识条目（话务员只能读今日有效且启用的条目；承办单位另可读本单位全部条目）", "parameters": [eid], "responses": {"200": {"description": "entry"}, **std}},
            "put": {"summary": "修改知识条目", "parameters": [eid], "requestBody": body,
                    "responses": {"200": {"description": "entry"}, **std}}},
    }


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
    add_openapi_paths(app, openapi_paths())
