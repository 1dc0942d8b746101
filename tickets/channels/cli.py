"""``hotline channel-partner``: an Open311 channel partner and its API key from the command line (the key is
printed once; only its sha256 is stored), for a centre that has no admin session at hand."""
from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tickets.channels.service import add_partner
from tickets.service import CHANNELS

OpenDb = Callable[[Any], AbstractAsyncContextManager[async_sessionmaker[AsyncSession]]]


def register_cli(subparsers: Any, open_db: OpenDb) -> None:
    """``open_db(settings)``: the migrated database's sessions (server.py hands it in)."""
    cmd = subparsers.add_parser("channel-partner", help="Open311 channel partners: add one (prints its key once)")
    cmd.add_argument("name", help="the partner's name, e.g. 市民通APP")
    cmd.add_argument("--channel", default="app", choices=list(CHANNELS), help="the tickets' channel (default app)")

    def run(settings: Any, args: argparse.Namespace) -> int:
        async def go() -> tuple[str, Any]:
            async with open_db(settings) as sessions:
                return await add_partner(sessions, args.name, args.channel, datetime.now(timezone.utc), None)

        key, partner = asyncio.run(go())
        print(f"created channel partner {partner.id} {partner.name} (channel {partner.channel})")
        print(f"api_key (shown once, keep it secret): {key}")
        return 0

    cmd.set_defaults(func=run)


__all__ = ["register_cli"]
