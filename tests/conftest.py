"""Test databases: SQLite and PostgreSQL, both with the schema made by the migrations.

Every test that takes ``db`` runs twice, once per backend. PostgreSQL is required when
``CI=true``; elsewhere its tests are skipped with a clear reason if the server is not there.
The PostgreSQL URL comes from ``$JIFEN_TEST_PG_URL`` (default: the local ``test`` database);
the suite creates its own database next to it and drops it at the end.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from loyalty import migrate
from loyalty.db import Database
from loyalty.db.models import Base
from loyalty.domain.clock import FixedClock

PG_URL = os.environ.get("JIFEN_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_SERVICES = os.environ.get("CI", "").lower() == "true"
START = dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.UTC)


def _pg_problem() -> str | None:
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        return f"PostgreSQL at {PG_URL} is not reachable ({type(exc).__name__})"
    return None


def require_postgres() -> None:
    """Skip the calling test when PostgreSQL is not there; with ``CI=true``, fail instead."""
    problem = _pg_problem()
    if problem:
        if REQUIRE_SERVICES:
            pytest.fail(
                f"{problem}; CI=true requires it. Start it with: "
                "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
            )
        pytest.skip(f"{problem}: PostgreSQL tests skipped")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once; each test gets a copy."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated to head."""
    require_postgres()
    name = f"jifen_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate_all(url: str) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


DatabaseFactory = Callable[..., Database]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """The backend a test runs on; tests taking ``db`` run on both."""
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty, migrated database on the test's backend."""
    if backend == "sqlite":
        path = tmp_path / "jifen.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_url")
    _truncate_all(url)
    return url


@pytest.fixture
def clock() -> FixedClock:
    """The test's clock, standing at 2026-11-21 10:00 UTC until moved."""
    return FixedClock(START)


@pytest.fixture
def db(database_url: str, clock: FixedClock) -> Iterator[Database]:
    """A :class:`Database` on the test's backend with the test's clock."""
    database = Database.from_url(database_url, clock=clock)
    yield database
    database.dispose()


@pytest.fixture
def pg_db(request: pytest.FixtureRequest, clock: FixedClock) -> Iterator[Database]:
    """A PostgreSQL-only database, for tests of real concurrency."""
    url: str = request.getfixturevalue("pg_url")
    _truncate_all(url)
    database = Database.from_url(url, clock=clock, pool_size=60, max_overflow=10)
    yield database
    database.dispose()


def _worker_redis_url(url: str) -> str:
    """``url`` for this pytest-xdist worker: worker ``gwN`` takes the database N below the one
    named (15, 14, ...), so workers never flush each other's queues."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return url
    parts = urllib.parse.urlsplit(url)
    database = int(parts.path.strip("/") or 0) - int(worker[2:])
    if database < 0:
        raise pytest.UsageError(f"not enough Redis databases below {url} for worker {worker}")
    return urllib.parse.urlunsplit(parts._replace(path=f"/{database}"))


REDIS_URL = _worker_redis_url(os.environ.get("JIFEN_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))


def _redis_problem() -> str | None:
    from redis import Redis

    try:
        connection = Redis.from_url(REDIS_URL, socket_connect_timeout=3)
        connection.ping()
        connection.close()
    except Exception as exc:
        return f"Redis at {REDIS_URL} is not reachable ({type(exc).__name__})"
    return None


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A real Redis database ($JIFEN_TEST_REDIS_URL, default db 15), flushed before and after.

    Required when ``CI=true``; elsewhere the test is skipped with the reason if Redis is not
    there.
    """
    from redis import Redis

    problem = _redis_problem()
    if problem:
        if REQUIRE_SERVICES:
            pytest.fail(
                f"{problem}; CI=true requires it. Start it with: "
                'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" '
                "--appendonly no"
            )
        pytest.skip(f"{problem}: Redis tests skipped")
    connection = Redis.from_url(REDIS_URL)
    connection.flushdb()
    yield REDIS_URL
    connection.flushdb()
    connection.close()
