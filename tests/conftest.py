"""Shared fixtures: a real redis-server and a real PostgreSQL per test session, settings, databases, apps.

PostgreSQL refuses to run as root, so the cluster is created and started as the ``postgres`` user in a
temporary directory that user owns, on a free port. When the binaries are missing the PostgreSQL
variants of the tests are skipped with the reason; CI installs them (``.ci/run``) so they always run there.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from tests import services

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CAPTURES = SHARED / "asterisk-captures"
SPEECH = SHARED / "speech"
DATASETS = SHARED / "datasets"


free_port = services.free_port


@pytest.fixture(scope="session", autouse=True)
def jieba_cache_in_the_session_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests that tokenize without a server write jieba's cache into their own temp dir, not /tmp."""
    from tickets.knowledge import service as knowledge_service

    cache = str(tmp_path_factory.mktemp("jieba-cache"))
    knowledge_service.use_cache_dir(cache)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A private redis-server for the whole session; tests use ``redis_url`` for an emptied database."""
    with services.redis_server() as url:
        yield url


_redis_db_counter = iter(range(1, 10_000))


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """A Redis URL on a freshly flushed logical database, so no test sees another's keys."""
    import redis

    db = next(_redis_db_counter) % 16
    url = f"{redis_server}/{db}"
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL cluster for the session; yields a base URL without database name."""
    if not services.postgres_available():
        pytest.skip(f"PostgreSQL binaries not found in {services.PG_BIN} (apt-get install -y postgresql)")
    with services.postgres_server() as url:
        yield url


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, object]:
    """Tests run on the event loop ``hotline serve`` runs on (uvloop's where installed, server.new_event_loop), so
    that what they check is what the server does."""
    import server

    return {"serverloop": server.new_event_loop}


_pg_db_counter = iter(range(1, 100_000))


def _create_pg_database(base_url: str, template: str = "template0") -> str:
    return services.create_database(base_url, f"t{os.getpid()}_{next(_pg_db_counter)}", template)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once per session; each test gets a copy (migrating costs ~1 s)."""
    import migrations

    path = tmp_path_factory.mktemp("template") / "template.db"
    migrations.upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres_server: str) -> str:
    """A migrated PostgreSQL database used as TEMPLATE for each test's fresh database."""
    import migrations

    url = _create_pg_database(postgres_server)
    migrations.upgrade(url)
    return url.rsplit("/", 1)[1]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database of each kind, already at the newest schema: a real SQLite file, a new PostgreSQL database."""
    if request.param == "sqlite":
        target = tmp_path / "hotline.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), target)
        return f"sqlite+aiosqlite:///{target}"
    base = request.getfixturevalue("postgres_server")
    return _create_pg_database(base, template=request.getfixturevalue("postgres_template"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'hotline.db'}"


@pytest.fixture
def settings_factory(tmp_path: Path):
    """Build test settings: defaults from config/, data under tmp_path, AMI off unless asked."""
    from config.settings import load_settings

    def make(database_url: str | None = None, redis_url: str = "", **sections: dict) -> "object":
        base = load_settings(env={})
        server = {"data_dir": str(tmp_path / "var"), "admin_password": "admin-test-密码",
                  # cheap argon2 parameters: the tests check behaviour, not hashing cost
                  "password_time_cost": 1, "password_memory_kib": 1024, **sections.pop("server", {})}
        db = {"url": database_url or f"sqlite+aiosqlite:///{tmp_path / 'hotline.db'}", **sections.pop("database", {})}
        return base.with_overrides(server=server, database=db, redis={"url": redis_url}, **sections)

    return make
