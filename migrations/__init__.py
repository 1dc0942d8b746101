"""Alembic migrations for every package's tables (one linear history).

Each package keeps its own ``models.py`` with its own declarative ``Base``; this package is where their
schemas meet, so that ``telephony``, ``asr`` and ``tickets`` never import one another.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config

HERE = Path(__file__).resolve().parent
MODEL_MODULES = ("tickets.models", "tickets.knowledge.service", "tickets.attachments.service", "tickets.reports.service",
                 "tickets.surveys.store", "tickets.channels.store",
                 "tickets.sms.store",
                 "telephony.models",
                 "asr.models")


def metadatas() -> list[Any]:
    found = []
    for name in MODEL_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        # Modules that only add tables or indexes to another package's Base (tickets.knowledge.service) count once.
        if hasattr(module, "Base") and module.Base.metadata not in found:
            found.append(module.Base.metadata)
    return found


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database to ``revision``. Blocking; call from a thread inside an event loop."""
    command.upgrade(alembic_config(database_url), revision)
