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
    ARRAY,
    Connection,
    Integer,
    Row,
    any_,
    bindparam,
    case,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from loyalty.db.database import Database
from loyalty.db.tables import entries, lots, members
from loyalty.db.types import UTCDateTime
from loyalty.domain.checks import require_int
from loyalty.domain.moves import BUCKETS, Move, sums_by
from loyalty.services.ledger import (
    INSERT_ENTRY,
    UPDATE_LOT_BUCKETS,
    UPDATE_MEMBER_BALANCES,
    entry_row,
    lot_deltas,
    record_operation,
)
from loyalty.services.results import SweepResult


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


def lock_due_members(
    conn: Connection, due: ColumnElement[bool], order_by: Sequence[Any], limit: int
) -> list[int]:
    """Lock the members of the next ``limit`` due lots, in one statement; their ids.

    Members are locked in id order (the order every writer uses), skipping those a
    concurrent sweep holds. An empty list means nothing is due, or all of it is locked.
    """
    next_due = select(lots.c.member_id).where(due).order_by(*order_by).limit(limit)
    stmt = (
        select(members.c.id)
        .where(members.c.id.in_(next_due))
        .order_by(members.c.id)
        .with_for_update(skip_locked=True)
    )
    return [int(i) for i in conn.execute(stmt).scalars()]


def member_in(conn: Connection, member_ids: Sequence[int]) -> ColumnElement[bool]:
    """``lots.member_id`` is one of ``member_ids``: one array parameter on PostgreSQL."""
    if conn.dialect.name == "postgresql":
        return lots.c.member_id == any_(bindparam("member_ids", list(member_ids), ARRAY(Integer)))
    return lots.c.member_id.in_(member_ids)


# What a sweep's ``apply`` gets of each due lot.
SWEEP_COLUMNS = (lots.c.id, lots.c.program_id, lots.c.member_id, lots.c.available, lots.c.pending)


def sweep_lots(
    db: Database,
    *,
    due: Any,
    order_by: Sequence[Any],
    batch_size: int,
    apply: Callable[[Connection, Sequence[Row[Any]]], int],
    on_batch: Callable[[SweepResult], None] | None = None,
) -> SweepResult:
    """Run a set-based sweep over the lots matching ``due``, one transaction per batch.

    Each batch locks the members of up to ``batch_size`` due lots (id order, skipping members
    a concurrent sweep holds), re-reads up to ``batch_size`` due lots of the locked members
    (the :data:`SWEEP_COLUMNS`) and hands them to ``apply``, which posts their moves and
    returns the points they carried.
    """
    require_int("batch_size", batch_size)

    def batch(conn: Connection) -> Batch:
        locked = lock_due_members(conn, due, order_by, batch_size)
        if not locked:
            return Batch(0, 0, 0)
        rows: Sequence[Any] = conn.execute(
            select(*SWEEP_COLUMNS)
            .where(member_in(conn, locked), due)
            .order_by(lots.c.id)
            .limit(batch_size)  # members may hold many due lots: the rest come next batch
        ).all()
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
    per_member = sums_by(((i.member_id, i.move) for i in items), (*BUCKETS, "debt"))
    conn.execute(
        UPDATE_MEMBER_BALANCES,
        [
            {"member": m, **{f"d_{b}": d for b, d in sums.items()}}
            for m, sums in sorted(per_member.items())
        ],
    )


@dataclass(frozen=True)
class Ending:
    """An ending sweep: which lots it ends for good, and how it records them.

    ``due`` and ``due_sql`` state the same condition on ``lots`` beyond ``expired_at IS NULL``
    (which every ending adds): ``due`` in SQLAlchemy for the portable path, ``due_sql`` as SQL
    with the bind values ``params`` for PostgreSQL's one statement per batch. ``tally``, if
    given, runs in each batch's transaction with the lots and points the batch ended.
    """

    kind: str  # of the operations and entries: "expire" or "clear"
    key_prefix: str
    due: ColumnElement[bool]
    due_sql: str
    params: Mapping[str, Any]
    tally: Callable[[Connection, int, int], None] | None = None


def end_due_lots(
    db: Database,
    ending: Ending,
    *,
    at: dt.datetime,
    batch_size: int,
    on_batch: Callable[[SweepResult], None] | None = None,
) -> SweepResult:
    """End every lot ``ending`` finds due, oldest expiry first, ``batch_size`` lots a batch.

    Each lot is claimed by setting its ``expired_at`` while it is still ``NULL`` and gets one
    ``ending.kind`` entry taking out its available and pending points (even when zero), so a
    lot ends once, whichever ending comes first; held and frozen points stay for the hold or
    refund in flight. The unique index ``uq_entries_one_expiry_per_lot`` is the last guard.
    """
    require_int("batch_size", batch_size)
    if db.engine.dialect.name == "postgresql":
        params = {
            **ending.params,
            "at": at,
            "limit": batch_size,
            "kind": ending.kind,
            "key_prefix": ending.key_prefix,
        }
        statement = _end_due_lots_pg(ending.due_sql, params)

        def batch(conn: Connection) -> Batch:
            row = conn.execute(statement, params).one()
            if row.claimed != row.lots:  # impossible: the lots are locked and still unended
                raise RuntimeError(f"{ending.kind} claimed {row.claimed} of {row.lots} lots")
            _tally(conn, ending, row.lots, int(row.points))
            return Batch(row.members, row.lots, int(row.points))

        return run_batches(db, batch, on_batch)

    def apply(conn: Connection, rows: Sequence[Row[Any]]) -> int:
        points = end_lots(conn, rows, kind=ending.kind, key_prefix=ending.key_prefix, at=at)
        _tally(conn, ending, len(rows), points)
        return points

    due = lots.c.expired_at.is_(None) & ending.due
    return sweep_lots(
        db,
        due=due,
        order_by=(lots.c.expires_at, lots.c.id),
        batch_size=batch_size,
        apply=apply,
        on_batch=on_batch,
    )


def _tally(conn: Connection, ending: Ending, items: int, points: int) -> None:
    if ending.tally is not None and items:
        ending.tally(conn, items, points)


# One batch of an ending sweep on PostgreSQL, in one statement. ``locked``: the members of the
# next :limit due lots, in id order, skipping busy ones. ``due``: up to :limit of their due
# lots, locked, as last committed. The rest records and posts them; the final row says how
# many members were locked (0 ends the sweep) and what was ended. {due} is the ending's SQL.
_END_DUE_LOTS_PG = """
WITH locked AS MATERIALIZED (
    SELECT id FROM members
    WHERE id IN (SELECT member_id FROM lots WHERE expired_at IS NULL AND {due}
                 ORDER BY expires_at, id LIMIT :limit)
    ORDER BY id
    FOR UPDATE SKIP LOCKED
), due AS MATERIALIZED (
    SELECT id, program_id, member_id, available, pending FROM lots
    WHERE member_id = ANY(ARRAY(SELECT id FROM locked)) AND expired_at IS NULL AND {due}
    ORDER BY id LIMIT :limit
    FOR UPDATE
), claimed AS (
    UPDATE lots SET expired_at = :at, available = 0, pending = 0
    WHERE id = ANY(ARRAY(SELECT id FROM due)) AND expired_at IS NULL
    RETURNING id
), ops AS (
    INSERT INTO operations (program_id, key, kind, request_hash, result, created_at)
    SELECT program_id, :key_prefix || ':' || replace(gen_random_uuid()::text, '-', ''), :kind,
           '', json_build_object('lots', count(*)), :at
    FROM due GROUP BY program_id
    RETURNING id, program_id
), posted AS (
    INSERT INTO entries (program_id, member_id, operation_id, lot_id, kind,
                         available_delta, pending_delta, held_delta, frozen_delta,
                         debt_delta, created_at)
    SELECT d.program_id, d.member_id, o.id, d.id, :kind, -d.available, -d.pending, 0, 0, 0, :at
    FROM due AS d JOIN ops AS o ON o.program_id = d.program_id
), taken AS (
    UPDATE members AS m
    SET available = m.available - s.available, pending = m.pending - s.pending
    FROM (SELECT member_id, sum(available) AS available, sum(pending) AS pending
          FROM due GROUP BY member_id) AS s
    WHERE m.id = s.member_id
)
SELECT (SELECT count(*) FROM locked) AS members, (SELECT count(*) FROM claimed) AS claimed,
       count(*) AS lots, coalesce(sum(available + pending), 0) AS points
FROM due
"""


def _end_due_lots_pg(due_sql: str, params: Mapping[str, Any]) -> Any:
    """The batch statement for ``due_sql``, its datetime values bound as UTC ``timestamptz``."""
    moments = [
        bindparam(k, type_=UTCDateTime()) for k, v in params.items() if isinstance(v, dt.datetime)
    ]
    return text(_END_DUE_LOTS_PG.format(due=f"({due_sql})")).bindparams(*moments)


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
    conn.execute(
        insert(entries).from_select(_ENDING_COLUMNS, _ending_entries(kind, op_ids, in_batch, at))
    )
    per_member = (
        select(
            lots.c.member_id,
            func.sum(lots.c.available).label("available"),
            func.sum(lots.c.pending).label("pending"),
        )
        .where(in_batch)
        .group_by(lots.c.member_id)
        .subquery()
    )
    conn.execute(
        update(members)
        .where(members.c.id == per_member.c.member_id)
        .values(
            available=members.c.available - per_member.c.available,
            pending=members.c.pending - per_member.c.pending,
        )
    )
    conn.execute(update(lots).where(in_batch).values(available=0, pending=0))
    return int(sum(r.available + r.pending for r in rows))


_ENDING_COLUMNS = [
    "program_id",
    "member_id",
    "operation_id",
    "lot_id",
    "kind",
    "available_delta",
    "pending_delta",
    "held_delta",
    "frozen_delta",
    "debt_delta",
    "created_at",
]


def _ending_entries(
    kind: str, op_ids: Mapping[int, int], in_batch: ColumnElement[bool], at: dt.datetime
) -> Any:
    """``SELECT`` of one ending entry per lot of the batch, from the lot's own buckets."""
    op_id: Any = (
        literal(next(iter(op_ids.values())))
        if len(op_ids) == 1
        else case(op_ids, value=lots.c.program_id)
    )
    return select(
        lots.c.program_id,
        lots.c.member_id,
        op_id,
        lots.c.id,
        literal(kind),
        -lots.c.available,
        -lots.c.pending,
        literal(0),
        literal(0),
        literal(0),
        literal(at, UTCDateTime()),
    ).where(in_batch)


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
