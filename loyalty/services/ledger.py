"""The write primitives every service shares: locking a member, idempotency, posting moves.

A service call is one transaction (``db.write()``) that

1. locks the member row (``lock_member``), which also reads the program, the rule version in
   force and any operation already stored under the idempotency key, in one round trip;
2. returns the stored result when the key was used before with the same parameters
   (``replay``), or raises :class:`IdempotencyConflict` when the parameters differ;
3. records the operation with its result (``record_operation``) and posts its moves
   (``post_moves``): one entry per lot touched, the lots' buckets and the member's balances
   updated by the same deltas, in a few set-based statements.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from sqlalchemy import (
    ARRAY,
    Connection,
    Integer,
    Row,
    Table,
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
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from loyalty.db.database import Database
from loyalty.db.models import Entry, Lot, Member, Operation, Program, RuleVersion
from loyalty.db.types import UTCDateTime
from loyalty.domain.checks import require_key, require_text
from loyalty.domain.rules import RuleSet

if TYPE_CHECKING:
    from loyalty.services.results import Record

from loyalty.errors import (
    ConfigurationError,
    IdempotencyConflict,
    MemberInactive,
    MemberNotFound,
    ProgramNotFound,
)
from loyalty.services.results import SweepResult

programs = cast(Table, Program.__table__)
members = cast(Table, Member.__table__)
lots = cast(Table, Lot.__table__)
entries = cast(Table, Entry.__table__)
operations = cast(Table, Operation.__table__)
rule_versions = cast(Table, RuleVersion.__table__)

BUCKETS = ("available", "pending", "held", "frozen")

# Entry kinds that create a lot (one per lot, of the lot's full size).
LOT_CREDIT_KINDS = ("earn", "earn_pending", "transfer_in", "adjust_grant")
# Every entry kind, by what writes it.
ENTRY_KINDS = (
    *LOT_CREDIT_KINDS,
    "debt_repay",  # a new lot pays off the member's debt first
    "mature",
    "hold",
    "capture",
    "release",
    "expire",
    "clear",
    "expire_returned",  # points put back into a lot that had expired meanwhile
    "transfer_out",
    "transfer_fee",
    "adjust_deduct",
    *(
        f"{kind}_{step}"
        for kind in ("refund", "dispute")
        for step in ("freeze", "reverse", "release", "deduct", "debt")
    ),
    "refund_return",  # points redeemed on a refunded order, back into their lots
)


@dataclass(frozen=True)
class Move:
    """A change to one lot's buckets (or, with ``lot_id`` None, to the member only)."""

    kind: str
    lot_id: int | None
    available: int = 0
    pending: int = 0
    held: int = 0
    frozen: int = 0
    debt: int = 0
    new_lot: bool = False  # the lot was inserted with these buckets already


def debt_repayment(
    debt: int, lot_id: int, credited: int, *, bucket: str = "available"
) -> list[Move]:
    """The move that lets a new lot of ``credited`` points pay off the member's ``debt``.

    Debt (points a refund could not take back) is repaid by the next credits, from the new
    lot's ``bucket`` (``available``, or ``pending`` for pending points).
    """
    repaid = min(debt, credited)
    if repaid <= 0:
        return []
    if bucket == "pending":
        return [Move("debt_repay", lot_id, debt=-repaid, pending=-repaid)]
    return [Move("debt_repay", lot_id, debt=-repaid, available=-repaid)]


class Replay(Exception):
    """The operation was done before; carries its stored result."""

    def __init__(self, result: Mapping[str, Any]) -> None:
        super().__init__("replay")
        self.result = result


def request_hash(kind: str, params: Mapping[str, Any]) -> str:
    """A stable fingerprint of what was asked, to tell a retry from a different request."""
    canonical = json.dumps({"kind": kind, **params}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def program_row(conn: Connection, code: str) -> Row[Any]:
    """The program with this code, or :class:`ProgramNotFound`."""
    require_text("program", code, max_length=64)
    row = conn.execute(select(programs).where(programs.c.code == code)).first()
    if row is None:
        raise ProgramNotFound(f"no program has the code {code!r}", program=code)
    return row


def rule_version_at(program_id: Any) -> Any:
    """Scalar subquery: id of the rule version in force at ``:at`` for a program."""
    return (
        select(rule_versions.c.id)
        .where(
            rule_versions.c.program_id == program_id,
            rule_versions.c.effective_from <= bindparam("at"),
        )
        .order_by(rule_versions.c.effective_from.desc(), rule_versions.c.version.desc())
        .limit(1)
        .scalar_subquery()
    )


_LOCK_STATEMENTS: dict[tuple[str, ...], Any] = {}


def _lock_statement(extra: Mapping[str, Any]) -> Any:
    """The locking SELECT for a set of extra subqueries, built once and reused."""
    names = tuple(sorted(extra))
    stmt = _LOCK_STATEMENTS.get(names)
    if stmt is None:
        program_cols = [c.label(f"program_{c.name}") for c in programs.c if c.name != "id"]
        existing = (
            select(operations.c.id)
            .where(operations.c.program_id == programs.c.id, operations.c.key == bindparam("key"))
            .scalar_subquery()
        )
        stmt = (
            select(
                members,
                *program_cols,
                rule_version_at(programs.c.id).label("rule_version_id"),
                existing.label("existing_operation_id"),
                *[extra[name].label(name) for name in names],
            )
            .join(programs, programs.c.id == members.c.program_id)
            .where(
                programs.c.code == bindparam("program"),
                members.c.external_id == bindparam("member"),
            )
            .with_for_update(of=members)
        )
        _LOCK_STATEMENTS[names] = stmt
    return stmt


def lock_member(
    conn: Connection,
    program: str,
    member: str,
    *,
    key: str | None,
    at: dt.datetime,
    extra: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
) -> Row[Any]:
    """Lock a member for writing and read everything a write needs in one statement.

    The row has the member's columns, the program's (prefixed ``program_``), the id of the
    rule version in force (``rule_version_id``), the id of an operation already stored under
    ``key`` (``existing_operation_id``) and any ``extra`` labelled scalar subqueries. The
    extras must be module-level constants using bind parameters, given in ``params``.
    """
    require_text("program", program, max_length=64)
    require_text("member", member, max_length=128)
    values = {"key": key, "at": at, "program": program, "member": member, **(params or {})}
    row = conn.execute(_lock_statement(extra or {}), values).first()
    if row is None:
        program_row(conn, program)
        raise MemberNotFound(
            f"no member {member!r} in program {program!r}; enrol the member first",
            program=program,
            member=member,
        )
    return row


def require_active(row: Row[Any]) -> None:
    """Raise :class:`MemberInactive` unless the locked member is active."""
    if row.status != "active":
        raise MemberInactive(f"member {row.external_id!r} is {row.status}", member=row.external_id)


def replay(conn: Connection, operation_id: int | None, kind: str, req_hash: str) -> None:
    """Raise :class:`Replay` with the stored result if the key was used for this request."""
    if operation_id is None:
        return
    op = conn.execute(select(operations).where(operations.c.id == operation_id)).one()
    if op.kind != kind or op.request_hash != req_hash:
        raise IdempotencyConflict(
            f"the idempotency key {op.key!r} was already used for a different {op.kind} request",
            key=op.key,
        )
    raise Replay(op.result)


def stored_result(
    db: Database, program_id: int, key: str, kind: str, req_hash: str
) -> Mapping[str, Any]:
    """After losing a race on a key: the winner's stored result, or a conflict error."""
    with db.read() as conn:
        op = conn.execute(
            select(operations.c.id).where(
                operations.c.program_id == program_id, operations.c.key == key
            )
        ).scalar_one()
        try:
            replay(conn, op, kind, req_hash)
        except Replay as done:
            return done.result
    raise AssertionError("unreachable")


class LostRace(Exception):
    """Another transaction stored the same key first; roll back and read its result."""

    def __init__(self, program_id: int) -> None:
        super().__init__("lost race")
        self.program_id = program_id


_INSERT_OPERATION = {
    name: dialect.insert(operations)
    .on_conflict_do_nothing(index_elements=["program_id", "key"])
    .returning(operations.c.id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
INSERT_ENTRY = insert(entries)
UPDATE_LOT_BUCKETS = (
    update(lots)
    .where(lots.c.id == bindparam("lot"))
    .values({b: lots.c[b] + bindparam(f"d_{b}") for b in BUCKETS})
)
MEMBER_DELTAS = {b: members.c[b] + bindparam(f"d_{b}") for b in (*BUCKETS, "debt")}
UPDATE_MEMBER_BALANCES = (
    update(members).where(members.c.id == bindparam("member")).values(MEMBER_DELTAS)
)


def record_operation(
    conn: Connection,
    *,
    program_id: int,
    key: str,
    kind: str,
    member_id: int | None,
    req_hash: str,
    result: Mapping[str, Any],
    at: dt.datetime,
) -> int:
    """Store the operation under its key; raise :class:`LostRace` if the key appeared meanwhile."""
    values = {
        "program_id": program_id,
        "key": key,
        "kind": kind,
        "member_id": member_id,
        "request_hash": req_hash,
        "result": dict(result),
        "created_at": at,
    }
    op_id = conn.execute(_INSERT_OPERATION[conn.dialect.name], values).scalar()
    if op_id is None:
        raise LostRace(program_id)
    return int(op_id)


def entry_row(
    program_id: int, member_id: int, operation_id: int, move: Move, at: dt.datetime
) -> dict[str, Any]:
    """The entries row for one move."""
    return {
        "program_id": program_id,
        "member_id": member_id,
        "operation_id": operation_id,
        "lot_id": move.lot_id,
        "kind": move.kind,
        "available_delta": move.available,
        "pending_delta": move.pending,
        "held_delta": move.held,
        "frozen_delta": move.frozen,
        "debt_delta": move.debt,
        "created_at": at,
    }


def lot_deltas(move: Move) -> dict[str, Any]:
    """Parameters of :data:`UPDATE_LOT_BUCKETS` for one move."""
    return {"lot": move.lot_id, **{f"d_{b}": getattr(move, b) for b in BUCKETS}}


def post_moves(
    conn: Connection,
    *,
    program_id: int,
    member_id: int,
    operation_id: int,
    moves: Sequence[Move],
    at: dt.datetime,
    member_update: Any = UPDATE_MEMBER_BALANCES,
    member_params: Mapping[str, Any] | None = None,
) -> None:
    """Write one entry per move, apply the moves to their lots and the sum to the member.

    ``member_update`` is a prebuilt UPDATE of the member taking ``member`` and ``d_<bucket>``
    parameters (plus ``member_params``); the default changes the balances only.
    """
    lot_moves = [m for m in moves if m.lot_id is not None and not m.new_lot]
    if lot_moves and conn.dialect.name == "postgresql":
        _post_entries_and_lots_pg(conn, program_id, member_id, operation_id, moves, lot_moves, at)
    else:
        rows = [entry_row(program_id, member_id, operation_id, m, at) for m in moves]
        if rows:
            conn.execute(INSERT_ENTRY, rows if len(rows) > 1 else rows[0])
        lot_params = [lot_deltas(m) for m in lot_moves]
        if lot_params:
            conn.execute(UPDATE_LOT_BUCKETS, lot_params if len(lot_params) > 1 else lot_params[0])
    totals = {f"d_{b}": sum(getattr(m, b) for m in moves) for b in (*BUCKETS, "debt")}
    if any(totals.values()) or member_params:
        conn.execute(member_update, {"member": member_id, **totals, **(member_params or {})})


# post_moves on PostgreSQL in one round trip: the entries (in the moves' order, so their ids
# follow it) and the lots' buckets, from parallel arrays. A lot touched by several moves
# comes once, with their sum.
_POST_ENTRIES_AND_LOTS_PG = text(
    """
    WITH posted AS (
        INSERT INTO entries (program_id, member_id, operation_id, lot_id, kind,
                             available_delta, pending_delta, held_delta, frozen_delta,
                             debt_delta, created_at)
        SELECT :program_id, :member_id, :operation_id, e.lot_id, e.kind,
               e.available, e.pending, e.held, e.frozen, e.debt, :at
        FROM unnest(CAST(:e_lot AS bigint[]), CAST(:e_kind AS text[]),
                    CAST(:e_available AS bigint[]), CAST(:e_pending AS bigint[]),
                    CAST(:e_held AS bigint[]), CAST(:e_frozen AS bigint[]),
                    CAST(:e_debt AS bigint[]))
             WITH ORDINALITY AS e (lot_id, kind, available, pending, held, frozen, debt, n)
        ORDER BY e.n
    )
    UPDATE lots SET available = lots.available + d.available,
                    pending = lots.pending + d.pending,
                    held = lots.held + d.held,
                    frozen = lots.frozen + d.frozen
    FROM unnest(CAST(:l_id AS bigint[]), CAST(:l_available AS bigint[]),
                CAST(:l_pending AS bigint[]), CAST(:l_held AS bigint[]),
                CAST(:l_frozen AS bigint[])) AS d (id, available, pending, held, frozen)
    WHERE lots.id = d.id
    """
).bindparams(bindparam("at", type_=UTCDateTime()))


def _post_entries_and_lots_pg(
    conn: Connection,
    program_id: int,
    member_id: int,
    operation_id: int,
    moves: Sequence[Move],
    lot_moves: Sequence[Move],
    at: dt.datetime,
) -> None:
    per_lot = sums_by(((cast(int, m.lot_id), m) for m in lot_moves), BUCKETS)
    params: dict[str, Any] = {
        "program_id": program_id,
        "member_id": member_id,
        "operation_id": operation_id,
        "at": at,
        "e_lot": [m.lot_id for m in moves],
        "e_kind": [m.kind for m in moves],
        **{f"e_{b}": [getattr(m, b) for m in moves] for b in (*BUCKETS, "debt")},
        "l_id": list(per_lot),
        **{f"l_{b}": [sums[b] for sums in per_lot.values()] for b in BUCKETS},
    }
    conn.execute(_POST_ENTRIES_AND_LOTS_PG, params)


def sums_by(keyed: Iterable[tuple[int, Move]], fields: Sequence[str]) -> dict[int, dict[str, int]]:
    """The moves' ``fields`` summed per key (a lot or member id), keys in first-seen order."""
    sums: dict[int, dict[str, int]] = {}
    for key, move in keyed:
        total = sums.setdefault(key, dict.fromkeys(fields, 0))
        for name in fields:
            total[name] += getattr(move, name)
    return sums


R = TypeVar("R", bound="Record")


def run_write(
    db: Database,
    work: Callable[[Connection], R],
    *,
    result_type: type[R],
    key: str,
    kind: str,
    req_hash: str,
) -> R:
    """Run ``work(conn)`` as one write transaction; a replayed key answers its stored result."""
    for attempt in (1, 2):
        try:
            with db.write() as conn:
                return work(conn)
        except Replay as done:
            return result_type.from_record(done.result, replayed=True)
        except LostRace as race:
            stored = stored_result(db, race.program_id, key, kind, req_hash)
            return result_type.from_record(stored, replayed=True)
        except IntegrityError as exc:
            # On PostgreSQL the locking read's subqueries use the snapshot taken before the
            # member lock was granted, so they miss what the previous lock holder committed
            # (an earning or a hold of the same order under another key). Once more, with a
            # fresh snapshot: that answers AlreadyExists (or a replay) instead.
            if attempt == 2 or getattr(exc.orig, "sqlstate", None) != "23505":
                raise
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class PreparedWrite(Generic[R]):
    """A validated service call not yet run: its transaction's work and its idempotency key.

    ``run(db)`` is the service call itself. A caller that owns a transaction may call
    ``work(conn)`` inside it instead; then :class:`Replay`, :class:`LostRace` and integrity
    errors are the caller's to handle (rolling back and calling ``run`` answers them all).
    """

    work: Callable[[Connection], R]
    result_type: type[R]
    key: str
    kind: str
    req_hash: str

    def run(self, db: Database) -> R:
        """Run the work as its own write transaction (see :func:`run_write`)."""
        return run_write(
            db,
            self.work,
            result_type=self.result_type,
            key=self.key,
            kind=self.kind,
            req_hash=self.req_hash,
        )


def begin_member_write(
    conn: Connection,
    program: str,
    member: str,
    *,
    key: str,
    kind: str,
    req_hash: str,
    at: dt.datetime,
    extra: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
) -> Row[Any]:
    """Lock an active member for a write, answering a replayed key with its stored result."""
    row = lock_member(conn, program, member, key=key, at=at, extra=extra, params=params)
    replay(conn, row.existing_operation_id, kind, req_hash)
    require_active(row)
    return row


class RuleCache:
    """Rule versions are immutable, so their parsed rule sets are cached by id."""

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[int, RuleSet]] = {}

    def get(self, conn: Connection, rule_version_id: int | None) -> tuple[int, RuleSet]:
        """``(version number, rule set)`` of a rule version.

        ``None`` (no version in force: the clock stands before the program was created) is
        a :class:`ConfigurationError`.
        """
        if rule_version_id is None:
            raise ConfigurationError(
                "the program has no rules in force at this time (before it was created); "
                "check the clock, or publish rules that take effect earlier"
            )
        cached = self._by_id.get(rule_version_id)
        if cached is None:
            row = conn.execute(
                select(rule_versions.c.version, rule_versions.c.rules).where(
                    rule_versions.c.id == rule_version_id
                )
            ).one()
            cached = (row.version, RuleSet.from_dict(row.rules))
            self._by_id[rule_version_id] = cached
        return cached


def rule_cache(db: Database) -> RuleCache:
    """The rule cache that lives with a database handle."""
    cache = getattr(db, "_jifen_rule_cache", None)
    if cache is None:
        cache = RuleCache()
        db._jifen_rule_cache = cache  # type: ignore[attr-defined]
    return cache


def resolve_key(explicit: str | None, derived: str) -> str:
    """The explicit idempotency key if given (validated), else the derived one."""
    return require_key(explicit) if explicit is not None else require_key(derived)


@dataclass(frozen=True)
class SweepItem:
    """One lot's move in a set-based sweep."""

    program_id: int
    member_id: int
    move: Move


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


def post_sweep(
    conn: Connection, *, kind: str, key_prefix: str, items: Sequence[SweepItem], at: dt.datetime
) -> None:
    """Post a sweep batch set-based: one operation per program, entries, lots and members.

    The caller holds the members' locks and has checked each lot's state.
    """
    if not items:
        return
    op_ids = {
        program_id: record_operation(
            conn,
            program_id=program_id,
            key=f"{key_prefix}:{uuid.uuid4().hex}",
            kind=kind,
            member_id=None,
            req_hash="",
            result={"lots": sum(1 for i in items if i.program_id == program_id)},
            at=at,
        )
        for program_id in sorted({i.program_id for i in items})
    }
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


def end_lots(
    conn: Connection, rows: Sequence[Row[Any]], *, kind: str, key_prefix: str, at: dt.datetime
) -> int:
    """End locked, due lots for good (rolling expiry or year-end clearing); their points.

    Each lot is claimed by setting its ``expired_at`` only while it is still ``NULL`` and
    gets one ``kind`` entry taking out its available and pending points (even when zero), so
    a lot ends once, whichever comes first. Held and frozen points stay for the hold or
    refund in flight.

    The batch is posted set-based whatever its size: one operation per program, then on
    PostgreSQL one statement (claim and empty the lots, insert the entries from their
    buckets, take the sums off the members); elsewhere four statements doing the same.
    """
    ids = [r.id for r in rows]
    op_ids = _sweep_operations(conn, rows, kind=kind, key_prefix=key_prefix, at=at)
    if conn.dialect.name == "postgresql":
        claimed = _end_lots_pg(conn, ids, op_ids, kind=kind, at=at)
    else:
        claimed = _end_lots_portable(conn, ids, op_ids, kind=kind, at=at)
    if claimed != len(rows):  # impossible under the members' locks
        raise RuntimeError(f"{kind} claimed {claimed} of {len(rows)} lots")
    return int(sum(r.available + r.pending for r in rows))


# One statement per batch on PostgreSQL: the lots' buckets before the update feed the entries
# and the members' sums. :ops maps program ids to operation ids (parallel arrays).
_END_LOTS_PG = text(
    """
    WITH claimed AS (
        UPDATE lots AS l SET expired_at = :at, available = 0, pending = 0
        FROM (SELECT id, available, pending FROM lots
              WHERE id = ANY(CAST(:ids AS bigint[])) AND expired_at IS NULL) AS b
        WHERE l.id = b.id
        RETURNING l.id, l.program_id, l.member_id, b.available, b.pending
    ), posted AS (
        INSERT INTO entries (program_id, member_id, operation_id, lot_id, kind,
                             available_delta, pending_delta, held_delta, frozen_delta,
                             debt_delta, created_at)
        SELECT c.program_id, c.member_id, o.op, c.id, :kind, -c.available, -c.pending,
               0, 0, 0, :at
        FROM claimed AS c
        JOIN unnest(CAST(:programs AS bigint[]), CAST(:ops AS bigint[])) AS o (program, op)
          ON o.program = c.program_id
    ), taken AS (
        UPDATE members AS m
        SET available = m.available - s.available, pending = m.pending - s.pending
        FROM (SELECT member_id, sum(available) AS available, sum(pending) AS pending
              FROM claimed GROUP BY member_id) AS s
        WHERE m.id = s.member_id
    )
    SELECT count(*) FROM claimed
    """
)


def _end_lots_pg(
    conn: Connection, ids: list[int], op_ids: Mapping[int, int], *, kind: str, at: dt.datetime
) -> int:
    params = {
        "ids": ids,
        "at": at,
        "kind": kind,
        "programs": list(op_ids),
        "ops": list(op_ids.values()),
    }
    return int(conn.execute(_END_LOTS_PG, params).scalar_one())


def _end_lots_portable(
    conn: Connection, ids: list[int], op_ids: Mapping[int, int], *, kind: str, at: dt.datetime
) -> int:
    in_batch = lots.c.id.in_(ids)
    claimed = conn.execute(
        update(lots).where(in_batch, lots.c.expired_at.is_(None)).values(expired_at=at)
    ).rowcount
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
    return int(claimed)


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
    conn: Connection, rows: Sequence[Row[Any]], *, kind: str, key_prefix: str, at: dt.datetime
) -> dict[int, int]:
    """One operation per program of the batch, holding how many lots it touched."""
    counts: dict[int, int] = {}
    for r in rows:
        counts[r.program_id] = counts.get(r.program_id, 0) + 1
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
    returns the points they carried. A crash loses at most the batch in flight; running
    again (or concurrently) finds only lots that are still due. ``on_batch`` gets the running
    totals after each batch has committed (outside its transaction), for progress reports.
    """
    items = points = batches = 0
    while True:
        with db.write() as conn:
            locked = lock_due_members(conn, due, order_by, batch_size)
            if not locked:
                break  # nothing is due, or everything due is locked by a concurrent sweep
            rows: Sequence[Any] = conn.execute(
                select(*SWEEP_COLUMNS)
                .where(member_in(conn, locked), due)
                .order_by(lots.c.id)
                .limit(batch_size)  # members may hold many due lots: the rest come next batch
            ).all()
            points += apply(conn, rows) if rows else 0
        batches += 1
        items += len(rows)
        if on_batch is not None:
            on_batch(SweepResult(items=items, points=points, batches=batches))
    return SweepResult(items=items, points=points, batches=batches)
