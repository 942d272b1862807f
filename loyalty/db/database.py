"""The database handle: engine set-up per backend and the one-transaction-per-call helpers.

Writes are serialised per member: on PostgreSQL by ``SELECT … FOR UPDATE`` on the member row,
on SQLite by starting every transaction with ``BEGIN IMMEDIATE`` (one writer at a time).

A service call given a :class:`Database` takes one pooled connection at a time. Calls that must
commit together join one unit of work instead (:mod:`loyalty.services.uow`): one connection,
one transaction, however many calls it makes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from loyalty.config import DATABASE_URL_ENV, load_settings
from loyalty.domain.clock import Clock, SystemClock
from loyalty.errors import ConfigurationError

READONLY_OPTION = "jifen_readonly"
C = TypeVar("C")


def database_url_from_env(url: str | None = None) -> str:
    """``url`` if given, else ``$JIFEN_DATABASE_URL``; a clear error when neither is set."""
    found = url or load_settings().database_url
    if not found:
        raise ConfigurationError(
            f"no database URL: pass one (for example 'sqlite:///jifen.db' or "
            f"'postgresql://user@host/db') or set {DATABASE_URL_ENV}"
        )
    return found


def normalise_url(url: str) -> str:
    """``url`` with a ``postgres://`` scheme spelled ``postgresql+psycopg://``."""
    for scheme in ("postgres://", "postgresql://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine configured for Jifen: WAL and ``BEGIN IMMEDIATE`` on SQLite.

    ``postgres://`` and ``postgresql://`` URLs use psycopg 3, Jifen's driver.
    """
    try:
        parsed = make_url(normalise_url(url))
    except ArgumentError as exc:
        raise ConfigurationError(f"not a database URL: {url!r} ({exc})") from exc
    if parsed.get_backend_name() == "sqlite":
        kwargs.setdefault("connect_args", {"timeout": 30, "check_same_thread": False})
        engine = create_engine(parsed, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_recycle", 1800)
    # A connection the server dropped (restart, failover, idle timeout) is replaced at
    # checkout instead of failing the next call; it costs one round trip per checkout.
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(parsed, **kwargs)


def url_to_reopen(engine: Engine) -> str | None:
    """``None`` when Jifen can use a caller's ``engine`` as it is (PostgreSQL); for a SQLite
    file, its URL, to open with Jifen's own settings (WAL, ``BEGIN IMMEDIATE``). An in-memory
    SQLite engine cannot be shared: :class:`ConfigurationError`."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:":
        raise ConfigurationError(
            "an in-memory SQLite engine cannot be shared with Jifen; "
            "use a SQLite file or PostgreSQL"
        )
    return engine.url.render_as_string(hide_password=False)


def missing_sqlite_file(engine: Engine) -> str | None:
    """The path of the SQLite file ``engine`` names, when that file does not exist."""
    database = engine.url.database
    if (
        engine.dialect.name == "sqlite"
        and database
        and database != ":memory:"
        and not database.startswith("file:")
        and not Path(database).exists()
    ):
        return database
    return None


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_conn.cursor()
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        readonly = conn.get_execution_options().get(READONLY_OPTION, False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


class Database:
    """An engine plus a clock and the caches that live as long as the engine.

    ``write()`` and ``read()`` each give one transaction (a service given a ``Database`` runs
    in a unit of work of its own); :func:`loyalty.services.uow.unit_of_work` gives one
    transaction that several service calls join.
    """

    def __init__(self, engine: Engine, *, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock: Clock = clock or SystemClock()
        self.is_postgres = engine.dialect.name == "postgresql"
        self._caches: dict[type, Any] = {}

    @classmethod
    def from_url(
        cls, url: str | None = None, *, clock: Clock | None = None, **engine_kwargs: Any
    ) -> Database:
        """Open the database at ``url`` (or ``$JIFEN_DATABASE_URL``)."""
        return cls(make_engine(database_url_from_env(url), **engine_kwargs), clock=clock)

    def cache(self, kind: type[C]) -> C:
        """The one ``kind()`` instance of this database (created at first use): caches of
        immutable rows, such as parsed rule versions, that every call may share."""
        found = self._caches.get(kind)
        if found is None:
            found = self._caches.setdefault(kind, kind())
        return cast(C, found)

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction: committed when the block ends, rolled back on error."""
        with self.engine.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def read(self, *, streaming: bool = False) -> Iterator[Connection]:
        """A connection for reads.

        On SQLite, a deferred transaction, so readers never block. On PostgreSQL, autocommit:
        under READ COMMITTED each statement sees its own snapshot in a transaction too, so a
        ``BEGIN`` and a ``ROLLBACK`` would only add two round trips to every read. Pass
        ``streaming=True`` for a transaction, which server-side cursors (``stream_results``)
        need.
        """
        with self.engine.connect() as conn:
            if self.is_postgres and not streaming:
                conn.execution_options(isolation_level="AUTOCOMMIT")
            else:
                conn.execution_options(**{READONLY_OPTION: True})
            yield conn
            conn.rollback()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A read-only transaction in which every statement sees the same moment.

        On PostgreSQL, ``REPEATABLE READ READ ONLY``; on SQLite, a deferred read transaction
        (in WAL mode its snapshot is taken at the first read).
        """
        with self.engine.connect() as conn:
            if self.is_postgres:
                conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            else:
                conn.execution_options(**{READONLY_OPTION: True})
            with conn.begin() as trans:
                yield conn
                trans.rollback()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
