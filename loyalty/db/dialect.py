"""Every difference between PostgreSQL and SQLite, and only here.

Services build statements from the table registry and ask this module for the parts that
differ: an ``INSERT … ON CONFLICT`` (each backend has its own ``insert`` construct), a list
parameter (one array on PostgreSQL, an ``IN`` list on SQLite), a transaction-scoped lock, an
hour label. Where PostgreSQL does in one statement what SQLite does in several, both forms
live side by side behind one name (see :class:`PerDialect`), chosen by the connection.

Locks are transaction-scoped (``pg_advisory_xact_lock``), so Jifen works behind PgBouncer in
transaction mode; SQLite serialises writers with ``BEGIN IMMEDIATE`` and, within a process, a
lock per database file for work that must hold a key for its whole transaction.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    ARRAY,
    CTE,
    BigInteger,
    ColumnElement,
    Connection,
    Engine,
    Table,
    TableValuedAlias,
    any_,
    bindparam,
    cast,
    column,
    func,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.types import TypeEngine

T = TypeVar("T")

POSTGRESQL = "postgresql"
SQLITE = "sqlite"


def is_postgres(bind: Connection | Engine) -> bool:
    """Whether ``bind`` talks to PostgreSQL."""
    return bind.dialect.name == POSTGRESQL


def is_sqlite(bind: Connection | Engine) -> bool:
    """Whether ``bind`` talks to SQLite."""
    return bind.dialect.name == SQLITE


@dataclass(frozen=True)
class PerDialect(Generic[T]):
    """One thing (a statement, a step function) in its PostgreSQL and SQLite forms."""

    postgresql: T
    sqlite: T

    def on(self, bind: Connection | Engine) -> T:
        """The form for ``bind``'s database."""
        return self.postgresql if is_postgres(bind) else self.sqlite


def insert_ignoring(
    table: Table,
    *,
    conflict: Sequence[str] | None = None,
    returning: Sequence[Any] = (),
) -> PerDialect[Any]:
    """``INSERT … ON CONFLICT DO NOTHING`` (on ``conflict``'s columns, or any unique index),
    ``RETURNING`` the given columns: a row comes back only when one was inserted."""

    def build(dialect: Any) -> Any:
        stmt = dialect.insert(table).on_conflict_do_nothing(index_elements=conflict)
        return stmt.returning(*returning) if returning else stmt

    return PerDialect(build(postgresql), build(sqlite))


def upsert_adding(
    table: Table, *, conflict: Sequence[str], column: str, returning: Sequence[Any] = ()
) -> PerDialect[Any]:
    """``INSERT … ON CONFLICT DO UPDATE SET column = column + excluded.column``: a counter row
    created on first use and locked (with its value returned) on every use."""

    def build(dialect: Any) -> Any:
        stmt = dialect.insert(table)
        stmt = stmt.on_conflict_do_update(
            index_elements=list(conflict),
            set_={column: table.c[column] + stmt.excluded[column]},
        )
        return stmt.returning(*returning) if returning else stmt

    return PerDialect(build(postgresql), build(sqlite))


def one_of(
    bind: Connection | Engine, column: ColumnElement[Any], values: Sequence[int], name: str
) -> ColumnElement[bool]:
    """``column`` is one of ``values``: one array parameter on PostgreSQL (one cached plan
    whatever the count), an expanding ``IN`` list on SQLite."""
    if is_postgres(bind):
        return column == any_(bindparam(name, list(values), ARRAY(BigInteger)))
    return column.in_(values)


def utc_hour_label(column: ColumnElement[Any]) -> PerDialect[ColumnElement[Any]]:
    """``YYYY-MM-DD HH`` of a UTC timestamp column, as text."""
    return PerDialect(
        func.to_char(func.timezone("UTC", column), "YYYY-MM-DD HH24"),
        func.strftime("%Y-%m-%d %H", column),
    )


_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
_PROCESS_LOCKS: dict[str, threading.RLock] = {}
_PROCESS_LOCKS_GUARD = threading.Lock()


def lock_key_for_transaction(conn: Connection, key: int) -> None:
    """Hold ``key`` (a signed 64-bit integer) until ``conn``'s transaction ends.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: nothing here; its writers are
    serialised by ``BEGIN IMMEDIATE`` (and, in one process, by :func:`writer_lock`).
    """
    if is_postgres(conn):
        conn.execute(_ADVISORY_LOCK, {"key": key})


@contextlib.contextmanager
def writer_lock(engine: Engine) -> Iterator[None]:
    """On SQLite, a lock per database file held around a whole transaction, so threads of one
    process queue in order instead of spinning on ``SQLITE_BUSY`` (re-entrant: a thread that
    holds it may take it again); nothing on PostgreSQL,
    where row and advisory locks do this inside the transaction."""
    if is_postgres(engine):
        yield
        return
    name = str(engine.url.database)
    with _PROCESS_LOCKS_GUARD:
        lock = _PROCESS_LOCKS.setdefault(name, threading.RLock())
    with lock:
        yield


def choose(bind: Connection | Engine, postgres: Callable[[], T], other: Callable[[], T]) -> T:
    """Run ``postgres()`` on PostgreSQL, ``other()`` elsewhere (for steps that differ)."""
    return postgres() if is_postgres(bind) else other()


# --- ledger writes


def unnest_rows(
    name: str,
    columns: Sequence[tuple[str, TypeEngine[Any]]],
    *,
    prefix: str,
    ordinality: str | None = None,
) -> TableValuedAlias:
    """PostgreSQL's ``unnest(CAST(:<prefix><column> AS type[]), …) AS name(column, …)``:
    parallel array parameters read as rows, so one statement writes a whole list of moves
    (with ``ordinality``, one more column numbering the rows in the arrays' order). The
    parameters are cast, not typed: psycopg sends a list as an array as it is, and a typed
    ARRAY parameter would be walked item by item on every call."""
    arrays = [cast(bindparam(f"{prefix}{col}"), ARRAY(type_)) for col, type_ in columns]
    rows = func.unnest(*arrays).table_valued(
        *(column(col, type_) for col, type_ in columns), with_ordinality=ordinality
    )
    return rows.render_derived(name=name)


def ids_of(cte: CTE) -> ColumnElement[Any]:
    """PostgreSQL's ``ARRAY(SELECT id FROM cte)``, for ``= ANY(…)``: a CTE's ids looked up
    by index, one after another, whatever the planner thinks of the CTE's size."""
    return func.array(select(cte.c.id).scalar_subquery())
