"""The database handle: engine set-up per backend and the one-transaction-per-call helpers.

Writes are serialised per member: on PostgreSQL by ``SELECT … FOR UPDATE`` on the member row,
on SQLite by starting every transaction with ``BEGIN IMMEDIATE`` (one writer at a time).

A service call takes one pooled connection at a time. Several calls that must commit together
(a Stripe event's refunds and its record) run in :meth:`Database.transaction`: a handle bound
to one connection, where each call's ``write()`` is a savepoint and ``read()`` reads inside
the transaction, so the whole unit needs one connection however many calls it makes.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from loyalty.domain.clock import Clock, SystemClock
from loyalty.errors import ConfigurationError

DATABASE_URL_ENV = "JIFEN_DATABASE_URL"
READONLY_OPTION = "jifen_readonly"


def database_url_from_env(url: str | None = None) -> str:
    """``url`` if given, else ``$JIFEN_DATABASE_URL``; a clear error when neither is set."""
    found = url or os.environ.get(DATABASE_URL_ENV)
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
    """An engine plus a clock: what every service call needs.

    ``write()`` and ``read()`` each give one transaction; services call them once per call.
    A handle from :meth:`transaction` (or :meth:`bound`) runs them all on one connection
    inside one transaction instead.
    """

    def __init__(self, engine: Engine, *, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock: Clock = clock or SystemClock()
        self.is_sqlite = engine.dialect.name == "sqlite"
        self.is_postgres = engine.dialect.name == "postgresql"
        self.caches: dict[str, Any] = {}  # shared with the handles bound from this one
        self._conn: Connection | None = None

    @classmethod
    def from_url(
        cls, url: str | None = None, *, clock: Clock | None = None, **engine_kwargs: Any
    ) -> Database:
        """Open the database at ``url`` (or ``$JIFEN_DATABASE_URL``)."""
        return cls(make_engine(database_url_from_env(url), **engine_kwargs), clock=clock)

    @property
    def connection(self) -> Connection:
        """The connection a bound handle runs on (see :meth:`bound`)."""
        if self._conn is None:
            raise RuntimeError("this Database is not bound to a connection")
        return self._conn

    @property
    def is_bound(self) -> bool:
        """Whether every call runs on one connection in its transaction."""
        return self._conn is not None

    def bound(self, conn: Connection) -> Database:
        """This database, with every call made through it on ``conn``, in its transaction.

        ``write()`` becomes a savepoint of that transaction (rolled back alone on error, so an
        idempotent replay or a refused call leaves the rest intact) and ``read()`` reads in it.
        Nothing is committed until the owner of ``conn`` commits.
        """
        handle = copy.copy(self)  # shares the engine, the clock and the caches
        handle._conn = conn
        return handle

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Database]:
        """One write transaction that service calls join: a handle bound to its connection.

        Committed when the block ends, rolled back on error. On a bound handle, a savepoint.
        """
        if self._conn is not None:
            with self._conn.begin_nested():
                yield self
            return
        with self.engine.begin() as conn:
            yield self.bound(conn)

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction: committed when the block ends, rolled back on error."""
        if self._conn is not None:
            with self._conn.begin_nested():
                yield self._conn
            return
        with self.engine.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def read(self, *, streaming: bool = False) -> Iterator[Connection]:
        """A connection for reads.

        On SQLite, a deferred transaction, so readers never block. On PostgreSQL, autocommit:
        under READ COMMITTED each statement sees its own snapshot in a transaction too, so a
        ``BEGIN`` and a ``ROLLBACK`` would only add two round trips to every read. Pass
        ``streaming=True`` for a transaction, which server-side cursors (``stream_results``)
        need. On a bound handle, its connection, inside its transaction.
        """
        if self._conn is not None:
            yield self._conn
            return
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
        (in WAL mode its snapshot is taken at the first read). On a bound handle, its own
        transaction.
        """
        if self._conn is not None:
            yield self._conn
            return
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
