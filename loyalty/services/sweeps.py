"""Set-based sweeps over lots, one transaction per batch: maturation, expiry and clearing.

Every batch first locks the members it will touch, in id order and skipping members that a
checkout or a concurrent sweep holds (``FOR UPDATE SKIP LOCKED``), so a sweep never waits
for a member and never deadlocks with a writer. Running again, or concurrently, finds only
what is still due; a crash loses at most the batch in flight.

Two kinds of sweep share the loop (:func:`run_batches`):

- :func:`sweep_lots` locks the members, re-reads their due lots and hands them to an
  ``apply`` callback (maturation, and every sweep on SQLite);
- :func:`end_due_lots` ends lots for good (rolling expiry, year-end clearing). On PostgreSQL a
  batch is one statement: lock the members, lock their due lots, record one operation per
  program, claim and empty the lots, write one entry per lot and take the sums off the
  members. The lots are read with ``FOR UPDATE``, which returns each row as last committed
  (not as of the statement's snapshot), so a checkout that committed while the statement
  started is seen.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    String,
    any_,
    bindparam,
    case,
    cast,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from loyalty.db.database import Database
from loyalty.db.dialect import PerDialect, ids_of, one_of
from loyalty.db.tables import entries, lots, members, operations
from loyalty.db.types import UTCDateTime
from loyalty.domain.checks import require_int
from loyalty.domain.moves import Move, sums_by
from loyalty.events.outbox import emit_for_operations
from loyalty.services.ledger import (
    AT,
    DELTAS,
    INSERT_ENTRY,
    UPDATE_LOT_BUCKETS,
    UPDATE_MEMBER_BALANCES,
    entry_row,
    lot_deltas,
    record_operation,
    row_of,
)
from loyalty.services.results import SweepResult

# The event each sweep's operations report, one per member.
SWEEP_EVENTS = {
    "mature": "points.pending_matured",
    "expire": "points.expired",
    "clear": "points.cleared",
}


def emit_sweep_events(
    conn: Connection, kind: str, operation_ids: Sequence[int], at: dt.datetime
) -> None:
    """The events of a sweep batch's operations (none for a kind no event reports)."""
    event_type = SWEEP_EVENTS.get(kind)
    if event_type is not None:
        emit_for_operations(conn, event_type, operation_ids, at=at)


@dataclass(frozen=True)
class SweepItem:
    """One lot's move in a set-based sweep."""

    program_id: int
    member_id: int
    move: Move


@dataclass(frozen=True)
class Batch:
    """What one committed batch did; ``members`` 0 means nothing was left to lock."""

    members: int
    items: int
    points: int


def run_batches(
    db: Database,
    batch: Callable[[Connection], Batch],
    on_batch: Callable[[SweepResult], None] | None = None,
) -> SweepResult:
    """Run ``batch`` in one transaction after another until it locks no member.

    ``on_batch`` gets the running totals after each batch has committed (outside its
    transaction), for progress reports.
    """
    items = points = batches = 0
    while True:
        with db.write() as conn:
            done = batch(conn)
        if not done.members:
            break  # nothing is due, or everything due is locked by a concurrent sweep
        batches += 1
        items += done.items
        points += done.points
        if on_batch is not None:
            on_batch(SweepResult(items=items, points=points, batches=batches))
    return SweepResult(items=items, points=points, batches=batches)


def due_members(due: ColumnElement[bool], order_by: Sequence[Any], limit: Any) -> Any:
    """SELECT locking the members of the next ``limit`` due lots, in id order (the order every
    writer uses), skipping those a concurrent sweep holds."""
    next_due = select(lots.c.member_id).where(due).order_by(*order_by).limit(limit)
    return (
        select(members.c.id)
        .where(members.c.id.in_(next_due))
        .order_by(members.c.id)
        .with_for_update(skip_locked=True)
    )


def lock_due_members(
    conn: Connection,
    due: ColumnElement[bool],
    order_by: Sequence[Any],
    limit: int,
    params: Mapping[str, Any] | None = None,
) -> list[int]:
    """Lock the members of the next ``limit`` due lots, in one statement; their ids.

    An empty list means nothing is due, or all of it is locked.
    """
    stmt = due_members(due, order_by, limit)
    return [int(i) for i in conn.execute(stmt, dict(params or {})).scalars()]


# What a sweep's ``apply`` gets of each due lot.
SWEEP_COLUMNS = (lots.c.id, lots.c.program_id, lots.c.member_id, lots.c.available, lots.c.pending)


def due_lots_of(locked: ColumnElement[bool], due: ColumnElement[bool], limit: Any) -> Any:
    """SELECT of up to ``limit`` due lots of the ``locked`` members (the
    :data:`SWEEP_COLUMNS`): members may hold many due lots, the rest come next batch."""
    return select(*SWEEP_COLUMNS).where(locked, due).order_by(lots.c.id).limit(limit)


def sweep_lots(
    db: Database,
    *,
    due: Any,
    order_by: Sequence[Any],
    batch_size: int,
    apply: Callable[[Connection, Sequence[Row[Any]]], int],
    params: Mapping[str, Any] | None = None,
    on_batch: Callable[[SweepResult], None] | None = None,
) -> SweepResult:
    """Run a set-based sweep over the lots matching ``due`` (with its bind ``params``), one
    transaction per batch.

    Each batch locks the members of up to ``batch_size`` due lots (id order, skipping members
    a concurrent sweep holds), re-reads up to ``batch_size`` due lots of the locked members
    (the :data:`SWEEP_COLUMNS`) and hands them to ``apply``, which posts their moves and
    returns the points they carried.
    """
    require_int("batch_size", batch_size)
    values = dict(params or {})

    def batch(conn: Connection) -> Batch:
        locked = lock_due_members(conn, due, order_by, batch_size, values)
        if not locked:
            return Batch(0, 0, 0)
        of_locked = one_of(conn, lots.c.member_id, locked, "member_ids")
        rows = conn.execute(due_lots_of(of_locked, due, batch_size), values).all()
        return Batch(len(locked), len(rows), apply(conn, rows) if rows else 0)

    return run_batches(db, batch, on_batch)


def post_sweep(
    conn: Connection, *, kind: str, key_prefix: str, items: Sequence[SweepItem], at: dt.datetime
) -> None:
    """Post a sweep batch set-based: one operation per program, entries, lots and members.

    The caller holds the members' locks and has checked each lot's state.
    """
    if not items:
        return
    op_ids = _sweep_operations(
        conn, [i.program_id for i in items], kind=kind, key_prefix=key_prefix, at=at
    )
    conn.execute(
        INSERT_ENTRY,
        [entry_row(i.program_id, i.member_id, op_ids[i.program_id], i.move, at) for i in items],
    )
    lot_params = [lot_deltas(i.move) for i in items if i.move.lot_id is not None]
    if lot_params:
        conn.execute(UPDATE_LOT_BUCKETS, lot_params)
    per_member = sums_by(((i.member_id, i.move) for i in items), DELTAS)
    conn.execute(
        UPDATE_MEMBER_BALANCES,
        [
            {"member": m, **{f"d_{b}": d for b, d in sums.items()}}
            for m, sums in sorted(per_member.items())
        ],
    )
    emit_sweep_events(conn, kind, list(op_ids.values()), at)


# The order in which an ending sweep takes due lots: oldest expiry first.
_ENDING_ORDER = (lots.c.expires_at, lots.c.id)


class Ending:
    """An ending sweep: the ``kind`` of its operations and entries (``expire``, ``clear``) and
    which lots it ends for good: ``due``, a condition on ``lots`` with bind parameters (named
    unlike any column of ``lots`` or ``members``) beyond ``expired_at IS NULL``, which every
    ending adds. Build one per sweep at import: it builds its PostgreSQL statement then.
    """

    def __init__(self, kind: str, due: ColumnElement[bool]) -> None:
        self.kind = kind
        self.due = lots.c.expired_at.is_(None) & due
        self.pg_batch = _end_due_lots_pg(kind, self.due)


@dataclass(frozen=True)
class _EndingRun:
    """One run of an :class:`Ending`: its ``due`` parameters and how it records what it ends."""

    params: Mapping[str, Any]
    key_prefix: str
    at: dt.datetime
    batch_size: int
    tally: Callable[[Connection, int, int], None] | None
    on_batch: Callable[[SweepResult], None] | None

    def count(self, conn: Connection, items: int, points: int) -> None:
        """Run the tally, if any, for a batch that ended ``items`` lots."""
        if self.tally is not None and items:
            self.tally(conn, items, points)


def end_due_lots(
    db: Database,
    ending: Ending,
    *,
    params: Mapping[str, Any],
    key_prefix: str,
    at: dt.datetime,
    batch_size: int,
    tally: Callable[[Connection, int, int], None] | None = None,
    on_batch: Callable[[SweepResult], None] | None = None,
) -> SweepResult:
    """End every lot ``ending`` finds due (with its ``params``), oldest expiry first,
    ``batch_size`` lots a batch; ``tally``, if given, runs in each batch's transaction with
    the lots and points the batch ended.

    Each lot is claimed by setting its ``expired_at`` while it is still ``NULL`` and gets one
    ``ending.kind`` entry (under an operation keyed ``key_prefix:…``) taking out its available
    and pending points (even when zero), so a lot ends once, whichever ending comes first;
    held and frozen points stay for the hold or refund in flight. The unique index
    ``uq_entries_one_expiry_per_lot`` is the last guard.
    """
    require_int("batch_size", batch_size)
    run = _EndingRun(params, key_prefix, at, batch_size, tally, on_batch)
    return _END_DUE_LOTS.on(db.engine)(db, ending, run)


def _end_in_one_statement_per_batch(db: Database, ending: Ending, run: _EndingRun) -> SweepResult:
    """PostgreSQL: each batch is :attr:`Ending.pg_batch`."""
    params = {**run.params, "at": run.at, "limit": run.batch_size, "key_prefix": run.key_prefix}

    def batch(conn: Connection) -> Batch:
        row = conn.execute(ending.pg_batch, params).one()
        if row.claimed != row.lots:  # impossible: the lots are locked and still unended
            raise RuntimeError(f"{ending.kind} claimed {row.claimed} of {row.lots} lots")
        run.count(conn, row.lots, int(row.points))
        emit_sweep_events(conn, ending.kind, list(row.operation_ids or ()), run.at)
        return Batch(row.members, row.lots, int(row.points))

    return run_batches(db, batch, run.on_batch)


def _end_in_steps(db: Database, ending: Ending, run: _EndingRun) -> SweepResult:
    """Any database: :func:`sweep_lots`, each batch's lots ended by :func:`end_lots`."""

    def apply(conn: Connection, rows: Sequence[Row[Any]]) -> int:
        points = end_lots(conn, rows, kind=ending.kind, key_prefix=run.key_prefix, at=run.at)
        run.count(conn, len(rows), points)
        return points

    return sweep_lots(
        db,
        due=ending.due,
        params=run.params,
        order_by=_ENDING_ORDER,
        batch_size=run.batch_size,
        apply=apply,
        on_batch=run.on_batch,
    )


_END_DUE_LOTS = PerDialect(postgresql=_end_in_one_statement_per_batch, sqlite=_end_in_steps)


def _ending_entry(kind: str, ended: Any, operation_id: Any, at: Any) -> dict[str, Any]:
    """The entry that ends a lot of ``ended`` (``lots``, or rows of its columns): it takes
    out the lot's available and pending points."""
    return {
        "program_id": ended.c.program_id,
        "member_id": ended.c.member_id,
        "operation_id": operation_id,
        "lot_id": ended.c.id,
        "kind": kind,
        "available_delta": -ended.c.available,
        "pending_delta": -ended.c.pending,
        "held_delta": 0,
        "frozen_delta": 0,
        "debt_delta": 0,
        "created_at": at,
    }


def _take_off_members(ended: Any) -> Any:
    """UPDATE taking the available and pending points of the ``ended`` lots (rows of
    ``lots``' columns) off their members."""
    per_member = (
        select(
            ended.c.member_id,
            func.sum(ended.c.available).label("available"),
            func.sum(ended.c.pending).label("pending"),
        )
        .group_by(ended.c.member_id)
        .subquery("per_member")
    )
    return (
        update(members)
        .where(members.c.id == per_member.c.member_id)
        .values(
            available=members.c.available - per_member.c.available,
            pending=members.c.pending - per_member.c.pending,
        )
    )


def _end_due_lots_pg(kind: str, due: ColumnElement[bool]) -> Any:
    """One batch of an ending sweep on PostgreSQL, in one statement.

    ``locked``: the members of the next ``:limit`` due lots, in id order, skipping busy ones.
    ``due``: up to ``:limit`` of their due lots, locked, as last committed (``FOR UPDATE``
    reads each row as last committed, not as of the statement's snapshot, so a checkout that
    committed while the statement started is seen). The rest claims and empties them, records
    one operation per program, writes one entry per lot and takes the sums off the members;
    the row answered says how many members were locked (0 ends the sweep) and what was ended.
    """
    limit = bindparam("limit", type_=lots.c.id.type)
    locked = due_members(due, _ENDING_ORDER, limit).cte("locked").prefix_with("MATERIALIZED")
    ended = (
        due_lots_of(lots.c.member_id == any_(ids_of(locked)), due, limit)
        .with_for_update()
        .cte("due")
        .prefix_with("MATERIALIZED")
    )
    claimed = (
        update(lots)
        .where(lots.c.id == any_(ids_of(ended)), lots.c.expired_at.is_(None))
        .values(expired_at=AT, available=0, pending=0)
        .returning(lots.c.id)
        .cte("claimed")
    )
    uuid_hex = func.replace(cast(func.gen_random_uuid(), String), "-", "")
    names, operation = row_of(
        operations,
        {
            "program_id": ended.c.program_id,
            "key": bindparam("key_prefix", type_=String()) + ":" + uuid_hex,
            "kind": kind,
            "member_id": None,
            "request_hash": "",
            "result": func.json_build_object("lots", func.count()),
            "created_at": AT,
        },
    )
    ops = (
        insert(operations)
        .from_select(names, operation.group_by(ended.c.program_id), include_defaults=False)
        .returning(operations.c.id, operations.c.program_id)
        .cte("ops")
    )
    names, entry = row_of(entries, _ending_entry(kind, ended, ops.c.id, AT))
    posted = (
        insert(entries)
        .from_select(
            names,
            entry.select_from(ended.join(ops, ops.c.program_id == ended.c.program_id)),
            include_defaults=False,
        )
        .cte("posted")
    )
    taken = _take_off_members(ended).cte("taken")

    def count(cte: Any) -> Any:
        return select(func.count()).select_from(cte).scalar_subquery()

    return (
        select(
            count(locked).label("members"),
            count(claimed).label("claimed"),
            func.count().label("lots"),
            func.coalesce(func.sum(ended.c.available + ended.c.pending), 0).label("points"),
            select(func.array_agg(ops.c.id)).scalar_subquery().label("operation_ids"),
        )
        .select_from(ended)
        .add_cte(posted, taken)
    )


def end_lots(
    conn: Connection, rows: Sequence[Row[Any]], *, kind: str, key_prefix: str, at: dt.datetime
) -> int:
    """End locked, due lots for good (the portable path of :func:`end_due_lots`); their points.

    One operation per program, then four set-based statements: claim the lots, insert the
    entries from their buckets, take the sums off the members, empty the lots.
    """
    ids = [r.id for r in rows]
    op_ids = _sweep_operations(
        conn, [r.program_id for r in rows], kind=kind, key_prefix=key_prefix, at=at
    )
    in_batch = lots.c.id.in_(ids)
    claimed = conn.execute(
        update(lots).where(in_batch, lots.c.expired_at.is_(None)).values(expired_at=at)
    ).rowcount
    if claimed != len(rows):  # impossible under the members' locks
        raise RuntimeError(f"{kind} claimed {claimed} of {len(rows)} lots")
    operation_id: Any = (
        literal(next(iter(op_ids.values())))
        if len(op_ids) == 1
        else case(op_ids, value=lots.c.program_id)
    )
    names, entry = row_of(
        entries, _ending_entry(kind, lots, operation_id, literal(at, UTCDateTime()))
    )
    conn.execute(insert(entries).from_select(names, entry.where(in_batch), include_defaults=False))
    conn.execute(_take_off_members(select(*SWEEP_COLUMNS).where(in_batch).subquery()))
    conn.execute(update(lots).where(in_batch).values(available=0, pending=0))
    emit_sweep_events(conn, kind, list(op_ids.values()), at)
    return int(sum(r.available + r.pending for r in rows))


def _sweep_operations(
    conn: Connection, program_ids: Sequence[int], *, kind: str, key_prefix: str, at: dt.datetime
) -> dict[int, int]:
    """One operation per program of the batch, holding how many lots it touched."""
    counts: dict[int, int] = {}
    for program_id in program_ids:
        counts[program_id] = counts.get(program_id, 0) + 1
    return {
        program_id: record_operation(
            conn,
            program_id=program_id,
            key=f"{key_prefix}:{uuid.uuid4().hex}",
            kind=kind,
            member_id=None,
            req_hash="",
            result={"lots": n},
            at=at,
        )
        for program_id, n in sorted(counts.items())
    }
