"""The unit of work: one connection in one transaction, the clock, the caches and the hooks
that run after it commits.

Every service takes a unit of work as its first argument. A door that calls one service may
pass the :class:`~loyalty.db.database.Database` instead: the service then runs in a unit of
work of its own, committed when it returns. A door that composes several services (publish
rules and audit it; enrol a member and apply the Stripe events parked for it; spend points,
take stock and issue a code) opens one with :func:`unit_of_work` and passes it to each, so
either all of it commits or none of it does::

    with unit_of_work(db) as uow:
        info = enrol_member(uow, program="shop", external_id="alice")
        apply_parked_for(uow, info)

Inside a unit of work each service's write is a savepoint: an idempotent replay, a refused
call or a lost race on an idempotency key rolls back that call alone and leaves the rest of
the unit intact (the caller decides whether an error ends the unit). A unit opened with
``isolate_calls=False`` skips the savepoints (two round trips a call on PostgreSQL) for a door
that treats any error as the end of the unit, such as the Stripe webhook's one-transaction
path; a lost race there raises :class:`RetryUnit`.

Work that must not happen before the data is visible to others (enqueue a job, hand new
reminders to their callbacks, and later deliver outbound events) is registered with
:meth:`UnitOfWork.after_commit` and runs once the unit has committed; a rolled-back unit
runs none of it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import TypeVar

from sqlalchemy import Connection, Engine

from loyalty.db.database import Database
from loyalty.domain.clock import Clock

C = TypeVar("C")
R = TypeVar("R")
log = logging.getLogger(__name__)


class RetryUnit(Exception):
    """The unit of work must be rolled back and run again: a concurrent transaction committed
    what this one was about to write (raised only where no savepoint can answer it in place).
    """


class UnitOfWork:
    """One connection in one transaction, with the clock, caches and after-commit hooks.

    It offers the same ``read()``, ``write()`` and ``snapshot()`` as a :class:`Database`, all on
    its connection, so a service is written once for both: ``write()`` is a savepoint (or,
    with ``isolate_calls=False``, nothing), ``read()`` and ``snapshot()`` read inside the
    transaction.
    """

    def __init__(self, db: Database, connection: Connection, *, isolate_calls: bool = True):
        self.db = db
        self.connection = connection
        self.clock: Clock = db.clock
        self.engine: Engine = db.engine
        self.isolate_calls = isolate_calls
        self._after_commit: list[Callable[[], object]] = []

    def cache(self, kind: type[C]) -> C:
        """The ``kind`` cache shared by every unit of work of this database (created once)."""
        return self.db.cache(kind)

    def after_commit(self, hook: Callable[[], object]) -> None:
        """Run ``hook()`` once this unit has committed (never if it rolls back)."""
        self._after_commit.append(hook)

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """One call's writes: a savepoint of the unit (rolled back alone on error)."""
        if not self.isolate_calls:
            yield self.connection
            return
        with self.connection.begin_nested():
            yield self.connection

    @contextlib.contextmanager
    def read(self, *, streaming: bool = False) -> Iterator[Connection]:
        """The unit's connection, reading inside its transaction."""
        del streaming  # the unit is a transaction already
        yield self.connection

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """The unit's connection (one transaction: what it reads is consistent with what it
        writes)."""
        yield self.connection

    def run_after_commit(self) -> None:
        """Run the hooks registered so far (called by :func:`unit_of_work` after commit).

        A failing hook is logged and the others still run: the data is committed, and a hook
        is delivery of something already safe in the database (a job can be run again, a
        reminder stays pending).
        """
        hooks, self._after_commit = self._after_commit, []
        for hook in hooks:
            try:
                hook()
            except Exception:
                log.exception("an after-commit hook failed")


Target = UnitOfWork | Database
"""What a service takes: a unit of work to join, or a database to run in a unit of its own."""


@contextlib.contextmanager
def unit_of_work(db: Database, *, isolate_calls: bool = True) -> Iterator[UnitOfWork]:
    """One unit of work on ``db``: committed when the block ends (then its after-commit hooks
    run), rolled back if it raises (and no hook runs)."""
    with db.engine.begin() as conn:
        uow = UnitOfWork(db, conn, isolate_calls=isolate_calls)
        yield uow
    uow.run_after_commit()


@contextlib.contextmanager
def rolled_back(db: Database) -> Iterator[UnitOfWork]:
    """A unit of work that is always rolled back: for tests and previews (what a composed
    action would do, seen from inside, with nothing kept)."""
    with db.engine.connect() as conn:
        trans = conn.begin()
        try:
            yield UnitOfWork(db, conn)
        finally:
            trans.rollback()


@contextlib.contextmanager
def writing(target: Target) -> Iterator[UnitOfWork]:
    """One service call's write: a savepoint of ``target`` when it is a unit of work, else a
    unit of work of its own (committed, then its hooks run)."""
    if isinstance(target, UnitOfWork):
        with target.write():
            yield target
        return
    with unit_of_work(target) as uow:
        yield uow


def after_commit(target: Target, hook: Callable[[], object]) -> None:
    """Run ``hook`` after ``target`` commits: at once for a database (every call on it has
    committed when it returns), after the unit's commit for a unit of work."""
    if isinstance(target, UnitOfWork):
        target.after_commit(hook)
    else:
        hook()


def database_of(target: Target) -> Database:
    """The database behind ``target``."""
    return target.db if isinstance(target, UnitOfWork) else target


def in_transaction(target: Target) -> bool:
    """Whether ``target`` is a unit of work (calls join its transaction)."""
    return isinstance(target, UnitOfWork)


def run_in(target: Target, work: Callable[[UnitOfWork], R]) -> R:
    """``work(uow)`` in ``target``'s unit of work, or in one of its own committed at the end."""
    if isinstance(target, UnitOfWork):
        return work(target)
    with unit_of_work(target) as uow:
        return work(uow)
