"""The ledger's writes as statements: built from SQLAlchemy Core, one per service call on
PostgreSQL, and setting only the columns they name on both backends."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

from helpers import PROGRAM, earn, enrol, hold, make_program
from sqlalchemy import Select, TextClause, Update, event

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.services import clearing, earning, expiry, ledger, maturation, redemption, sweeps

WRITES = re.compile(r"\bINSERT INTO\b|\bUPDATE \w+ SET\b")


@contextlib.contextmanager
def statements(db: Database) -> Iterator[list[tuple[Any, list[str]]]]:
    """Every Core statement executed meanwhile, with the names of the parameters it got."""
    seen: list[tuple[Any, list[str]]] = []

    def record(_conn: Any, stmt: Any, multiparams: Any, params: Any, _options: Any) -> None:
        first = multiparams[0] if multiparams else params
        seen.append((stmt, sorted(first or {})))

    event.listen(db.engine, "before_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_execute", record)


def rendered(db: Database, stmt: Any, keys: list[str]) -> str:
    return str(stmt.compile(dialect=db.engine.dialect, column_keys=keys))


def checkout_and_sweeps(db: Database, clock: FixedClock) -> None:
    """Earn, hold, capture, release, then mature, expire and clear."""
    make_program(db)
    enrol(db, "alice")
    earn(db, "alice", "o1", 10_000)
    earn(db, "alice", "o2", 20_000)
    hold(db, "alice", "h1", 150)
    s.capture_hold(db, program=PROGRAM, order_id="h1")
    hold(db, "alice", "h2", 50)
    s.release_hold(db, program=PROGRAM, order_id="h2")
    s.mature_pending(db)
    clock.set(clock.now() + dt.timedelta(days=400))
    s.expire_due(db)
    s.update_program(db, program=PROGRAM, clearing_policy="all")
    clock.set(clock.now() + dt.timedelta(days=400))
    clearing.clear_due_year_ends(db)


def test_no_update_sets_a_column_only_because_a_parameter_is_named_like_it(
    db: Database, clock: FixedClock
) -> None:
    """SQLAlchemy adds a parameter named like a column of an UPDATE's table (one in a CTE
    too) to the columns it sets: every UPDATE run sets what it names, whatever it is given."""
    with statements(db) as seen:
        checkout_and_sweeps(db, clock)
    updates = [(stmt, keys) for stmt, keys in seen if isinstance(stmt, Select | Update)]
    assert any(WRITES.search(rendered(db, stmt, keys)) for stmt, keys in updates)
    for stmt, keys in updates:
        assert rendered(db, stmt, keys) == rendered(db, stmt, []), keys
    report = s.verify_ledger(db)
    assert report.ok, [c for c in report.checks if not c.ok]


def test_a_checkout_writes_in_one_statement_per_call_on_postgres(
    pg_db: Database, clock: FixedClock
) -> None:
    """Earn, hold and capture write in one statement (their outbox events included); an
    expiry sweep in one per batch (the last batch finds nothing left and ends the sweep),
    plus one writing its events for the batch that ended something."""
    make_program(pg_db)
    enrol(pg_db, "alice")
    earn(pg_db, "alice", "o0", 10_000)
    calls = {
        "earn": (1, lambda: earn(pg_db, "alice", "o1", 10_000)),
        "hold": (1, lambda: hold(pg_db, "alice", "h1", 150)),
        "capture": (1, lambda: s.capture_hold(pg_db, program=PROGRAM, order_id="h1")),
        "expire": (3, lambda: s.expire_due(pg_db)),
    }
    for name, (batches, call) in calls.items():
        if name == "expire":
            clock.set(clock.now() + dt.timedelta(days=400))
        with statements(pg_db) as seen:
            call()
        writes = [stmt for stmt, keys in seen if WRITES.search(rendered(pg_db, stmt, keys))]
        assert len(writes) == batches, name
        assert len({id(stmt) for stmt in writes}) == (2 if name == "expire" else 1), name


def test_the_ledger_writes_are_built_from_core_not_text() -> None:
    modules = (ledger, earning, redemption, sweeps, expiry, maturation, clearing)
    for module in modules:
        for name, value in vars(module).items():
            assert not isinstance(value, TextClause), f"{module.__name__}.{name}"
    for also in (redemption.INSERT_HOLD, redemption._SETTLE_HOLD):
        assert not isinstance(also.statement, TextClause)
        assert not any(isinstance(pg, TextClause) for pg in also.pg_statements.values())
    assert not isinstance(expiry.EXPIRY.pg_batch, TextClause)
