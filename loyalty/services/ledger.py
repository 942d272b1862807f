"""Posting to the ledger: recording an operation and its moves.

A ledger write (framed by :class:`~loyalty.services.writes.LedgerWrite`: the member lock and
idempotency) records the operation with its result (``record_operation``) and posts its moves
(``post_moves``): one entry per lot touched, the lots' buckets and the member's balances
updated by the same deltas, in a few set-based statements.

On PostgreSQL that is one statement (``record_and_post``; a credit and a sweep batch are
too, in their modules), built from SQLAlchemy Core at import: CTEs that insert rows of the
registry's tables from bind parameters (:func:`row_of`, :func:`insert_selecting`) or from
parallel arrays (``unnest``), and update lots and members by the same deltas. On SQLite the
same writes are steps; both forms stand side by side behind one name
(:class:`~loyalty.db.dialect.PerDialect`). A key stored meanwhile by a concurrent write
raises :class:`LostRace`, which the write's frame answers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Boolean,
    ClauseElement,
    Connection,
    Select,
    Table,
    bindparam,
    insert,
    literal,
    null,
    select,
    true,
    update,
)

from loyalty.db.dialect import PerDialect, insert_ignoring, unnest_rows
from loyalty.db.tables import entries, events, lots, members, operations, programs
from loyalty.db.types import UTCDateTime
from loyalty.domain.moves import BUCKETS, Move, sums_by

if TYPE_CHECKING:
    pass


class LostRace(Exception):
    """Another transaction stored the same key first; roll back and read its result."""

    def __init__(self, program_id: int) -> None:
        super().__init__("lost race")
        self.program_id = program_id


# The bind parameters every ledger write shares. They are named after what they identify,
# never like a column: SQLAlchemy adds a parameter named like a column of a table an UPDATE
# writes (even one in a CTE) to the columns it sets.
AT = bindparam("at", type_=UTCDateTime())
PROGRAM = bindparam("program", type_=programs.c.id.type)
MEMBER = bindparam("member", type_=members.c.id.type)
OPERATION = bindparam("operation", type_=operations.c.id.type)


def row_of(
    table: Table,
    values: Mapping[str, Any],
    *,
    prefix: str = "",
    defaults: Sequence[str] = (),
) -> tuple[list[str], Select[Any]]:
    """A row of ``table`` as a SELECT, for ``INSERT … SELECT``: the columns (all but the key
    and the ``defaults``, left to their server defaults), and the SELECT of their values.

    Each column's value is ``values[column]`` (an expression, or a constant), else the bind
    parameter ``<prefix><column>`` typed as the column. The SELECT reads what ``values``
    refer to: from a CTE, one row per row of it, none when it is empty.
    """
    names = [c.name for c in table.c if not c.primary_key and c.name not in defaults]
    row = []
    for name in names:
        if name in values:
            row.append(_as_value(values[name], table.c[name].type))
        elif prefix:
            row.append(bindparam(prefix + name, type_=table.c[name].type))
        else:
            raise KeyError(f"no value for {table.name}.{name}")
    return names, select(*row)


def insert_selecting(
    table: Table,
    values: Mapping[str, Any],
    *,
    prefix: str = "",
    defaults: Sequence[str] = (),
    order_by: Sequence[Any] = (),
    into: Any = None,
) -> Any:
    """``INSERT INTO table (…) SELECT …`` of :func:`row_of` (rows in ``order_by``), built on
    ``into`` (default: a plain INSERT)."""
    names, row = row_of(table, values, prefix=prefix, defaults=defaults)
    into = insert(table) if into is None else into
    return into.from_select(names, row.order_by(*order_by), include_defaults=False)


def _as_value(value: Any, type_: Any) -> Any:
    if isinstance(value, ClauseElement):
        return value
    return null() if value is None else literal(value, type_)


def prefixed(prefix: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """``row``'s values as the bind parameters of :func:`insert_selecting` with ``prefix``."""
    return {prefix + name: value for name, value in row.items()}


_INSERT_OPERATION = insert_ignoring(
    operations, conflict=["program_id", "key"], returning=[operations.c.id]
)
# PostgreSQL: the operation stored under its key as the CTE ``op`` of a one-statement write:
# its id, or no row when the key was taken meanwhile (and then nothing that hangs off it).
RECORDED_OPERATION = insert_selecting(
    operations,
    {"program_id": PROGRAM, "member_id": MEMBER, "created_at": AT},
    prefix="operations_",
    into=_INSERT_OPERATION.postgresql,
).cte("op")
INSERT_ENTRY = insert(entries)


def _add_to_lots(lot_id: Any, delta: Callable[[str], Any]) -> Any:
    """UPDATE of the lot(s) ``lot_id`` adding ``delta(bucket)`` to each bucket."""
    return (
        update(lots).where(lots.c.id == lot_id).values({b: lots.c[b] + delta(b) for b in BUCKETS})
    )


UPDATE_LOT_BUCKETS = _add_to_lots(bindparam("lot"), lambda b: bindparam(f"d_{b}"))
DELTAS = (*BUCKETS, "debt")  # what a move changes: a lot's buckets, and the member's debt
MEMBER_DELTAS = {b: members.c[b] + bindparam(f"d_{b}") for b in DELTAS}
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
    op_id = conn.execute(_INSERT_OPERATION.on(conn), values).scalar()
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
        **{f"{b}_delta": getattr(move, b) for b in DELTAS},
        "created_at": at,
    }


def lot_deltas(move: Move) -> dict[str, Any]:
    """Parameters of :data:`UPDATE_LOT_BUCKETS` for one move."""
    return {"lot": move.lot_id, **{f"d_{b}": getattr(move, b) for b in BUCKETS}}


@dataclass(frozen=True)
class _Posting:
    """What :func:`post_moves` writes."""

    program_id: int
    member_id: int
    operation_id: int
    moves: Sequence[Move]
    at: dt.datetime
    member_update: Any
    member_params: Mapping[str, Any] | None

    @property
    def balances_only(self) -> bool:
        """The member update changes the balances only (and may join the entries' statement)."""
        return self.member_update is UPDATE_MEMBER_BALANCES and not self.member_params


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
    parameters (plus ``member_params``); the default changes the balances only, and on
    PostgreSQL goes in the same statement as the entries and the lots.
    """
    posting = _Posting(program_id, member_id, operation_id, moves, at, member_update, member_params)
    if posting.balances_only and not moves:
        return
    _POST.on(conn)(conn, posting)


def _post_in_one_statement(conn: Connection, posting: _Posting) -> None:
    """PostgreSQL: entries, lots (and the balances) in one statement, when lots change."""
    if not (posting.balances_only or _lot_moves(posting.moves)):
        _post_in_steps(conn, posting)
        return
    params = _ledger_write_params(posting.program_id, posting.member_id, posting.moves, posting.at)
    statement = _POST_AND_BALANCE_PG if posting.balances_only else _POST_PG
    conn.execute(statement, {**params, "operation": posting.operation_id})
    if not posting.balances_only:
        _update_member(conn, posting)


def _post_in_steps(conn: Connection, posting: _Posting) -> None:
    """Any database: the entries, the lots one by one, then the member."""
    p = posting
    rows = [entry_row(p.program_id, p.member_id, p.operation_id, m, p.at) for m in p.moves]
    if rows:
        conn.execute(INSERT_ENTRY, rows if len(rows) > 1 else rows[0])
    lot_params = [lot_deltas(m) for m in _lot_moves(p.moves)]
    if lot_params:
        conn.execute(UPDATE_LOT_BUCKETS, lot_params if len(lot_params) > 1 else lot_params[0])
    _update_member(conn, posting)


def _update_member(conn: Connection, posting: _Posting) -> None:
    totals = member_totals(posting.moves)
    if any(totals.values()) or posting.member_params:
        params = {"member": posting.member_id, **totals, **(posting.member_params or {})}
        conn.execute(posting.member_update, params)


_POST = PerDialect(postgresql=_post_in_one_statement, sqlite=_post_in_steps)


@dataclass(frozen=True)
class _Recording:
    """What :func:`record_and_post` writes."""

    program_id: int
    member_id: int
    key: str
    kind: str
    req_hash: str
    result: Mapping[str, Any]
    moves: Sequence[Move]
    at: dt.datetime
    also: AlsoWrite | None
    also_params: Mapping[str, Any]
    event: Mapping[str, Any] | None


def record_and_post(
    conn: Connection,
    *,
    program_id: int,
    member_id: int,
    key: str,
    kind: str,
    req_hash: str,
    result: Mapping[str, Any],
    moves: Sequence[Move],
    at: dt.datetime,
    also: AlsoWrite | None = None,
    also_params: Mapping[str, Any] | None = None,
    event: Mapping[str, Any] | None = None,
) -> int:
    """:func:`record_operation` then :func:`post_moves` with the default member update, then
    ``also`` with ``also_params`` (and :data:`PROGRAM`, :data:`MEMBER`, :data:`AT` and
    :data:`OPERATION`), and the outbox ``event`` (an ``events`` row, its operation id left
    to this write); the operation's id. On PostgreSQL all of it is one statement.

    Raises :class:`LostRace` if the key appeared meanwhile (the caller rolls back).
    """
    recording = _Recording(
        program_id,
        member_id,
        key,
        kind,
        req_hash,
        result,
        moves,
        at,
        also,
        also_params or {},
        event,
    )
    return _RECORD_AND_POST.on(conn)(conn, recording)


def _record_and_post_in_steps(conn: Connection, r: _Recording) -> int:
    op_id = record_operation(
        conn,
        program_id=r.program_id,
        key=r.key,
        kind=r.kind,
        member_id=r.member_id,
        req_hash=r.req_hash,
        result=r.result,
        at=r.at,
    )
    post_moves(
        conn,
        program_id=r.program_id,
        member_id=r.member_id,
        operation_id=op_id,
        moves=r.moves,
        at=r.at,
    )
    if r.also is not None:
        ids = {"program": r.program_id, "member": r.member_id, "at": r.at, "operation": op_id}
        conn.execute(r.also.statement, {**r.also_params, **ids})
    if r.event is not None:
        conn.execute(insert(events), {**r.event, "operation_id": op_id})
    return op_id


def _record_and_post_in_one_statement(conn: Connection, r: _Recording) -> int:
    params = {
        **_ledger_write_params(r.program_id, r.member_id, r.moves, r.at),
        **operation_params(r.key, r.kind, r.req_hash, r.result),
        **r.also_params,
        **(event_params(r.event) if r.event is not None else {}),
    }
    with_event = r.event is not None
    statement = (
        _RECORD_AND_POST_PG[with_event] if r.also is None else r.also.pg_statements[with_event]
    )
    recorded = conn.execute(statement, params).scalar()
    if recorded is None:
        raise LostRace(r.program_id)
    return int(recorded)


_RECORD_AND_POST = PerDialect(
    postgresql=_record_and_post_in_one_statement, sqlite=_record_and_post_in_steps
)


def operation_params(
    key: str, kind: str, req_hash: str, result: Mapping[str, Any]
) -> dict[str, Any]:
    """The parameters of :data:`RECORDED_OPERATION` besides program, member and time."""
    return prefixed(
        "operations_",
        {"key": key, "kind": kind, "request_hash": req_hash, "result": dict(result)},
    )


def _lot_moves(moves: Sequence[Move]) -> list[Move]:
    """The moves that change a lot already in the table (not one inserted with its buckets)."""
    return [m for m in moves if m.lot_id is not None and not m.new_lot]


def member_totals(moves: Sequence[Move]) -> dict[str, int]:
    """The ``d_<bucket>`` parameters of a member update (:data:`UPDATE_MEMBER_BALANCES`):
    the moves' sums."""
    return {f"d_{b}": sum(getattr(m, b) for m in moves) for b in DELTAS}


# A ledger write on PostgreSQL in one round trip, from parallel arrays: the operation (when
# recorded here: ``op``), the entries (in the moves' order, so their ids follow it), the lots'
# buckets (a lot touched by several moves comes once, with their sum) and the member's
# balances. A conflicting key inserts no operation and so no entries; the caller sees no id
# and rolls the rest back.
_MOVE_COLUMNS = ("lot_id", "kind", *(f"{b}_delta" for b in DELTAS))
_MOVES = unnest_rows(
    "e", [(name, entries.c[name].type) for name in _MOVE_COLUMNS], prefix="e_", ordinality="n"
)
_LOT_SUMS = unnest_rows("d", [(name, lots.c[name].type) for name in ("id", *BUCKETS)], prefix="l_")
_LOTS_ADDED = _add_to_lots(_LOT_SUMS.c.id, lambda b: _LOT_SUMS.c[b]).cte("lotted")
_BALANCED = UPDATE_MEMBER_BALANCES.where(bindparam("touch_member", type_=Boolean())).cte("balanced")


def _posted(*, record: bool) -> Any:
    """The entries of the moves, in the moves' order, under the operation recorded in the
    same statement (``op``: none when it has no row) or the given :data:`OPERATION`."""
    operation_id = RECORDED_OPERATION.c.id if record else OPERATION
    names, entry = row_of(
        entries,
        {
            "program_id": PROGRAM,
            "member_id": MEMBER,
            "operation_id": operation_id,
            **{name: _MOVES.c[name] for name in _MOVE_COLUMNS},
            "created_at": AT,
        },
    )
    source = RECORDED_OPERATION.join(_MOVES, true()) if record else _MOVES
    rows = entry.select_from(source).order_by(_MOVES.c.n)
    return insert(entries).from_select(names, rows, include_defaults=False).cte("posted")


def _ledger_write_pg(*, record: bool, balance: bool, also: Sequence[Any] = ()) -> Any:
    """The one-statement ledger write, with or without recording the operation (then it
    answers the operation's id) and updating the member's balances, plus the CTEs ``also``."""
    answer = select(RECORDED_OPERATION.c.id) if record else select(true())
    balanced = [_BALANCED] if balance else []
    return answer.add_cte(_posted(record=record), _LOTS_ADDED, *balanced, *also)


class AlsoWrite:
    """A write that belongs to an operation's ledger write (:func:`record_and_post`).

    ``build(operation_id)`` makes it from the operation's id: :data:`OPERATION` for the
    portable form, run after the ledger write, and the new operation's id for the PostgreSQL
    form, a CTE (``name``) of the ledger write's statement. It may use :data:`PROGRAM`,
    :data:`MEMBER` and :data:`AT`; name its other parameters unlike any column of ``lots`` or
    ``members`` (see :data:`AT`). Build one per write at import time.
    """

    def __init__(self, name: str, build: Callable[[Any], Any]) -> None:
        self.statement = build(OPERATION)
        also = build(RECORDED_OPERATION.c.id).cte(name)
        self.pg_statements = {
            False: _ledger_write_pg(record=True, balance=True, also=[also]),
            True: _ledger_write_pg(record=True, balance=True, also=[also, EVENTED]),
        }


# The outbox event of a one-statement write (a CTE), from the parameters ``ev_<column>``
# (:func:`event_params`) and the operation recorded in the same statement: no operation
# (a key taken meanwhile), no event.
EVENTED = insert_selecting(
    events,
    {"program_id": PROGRAM, "member_id": MEMBER, "operation_id": RECORDED_OPERATION.c.id},
    prefix="ev_",
    defaults=("dispatched_at",),
).cte("evented")


def event_params(event: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of :data:`EVENTED` for an ``events`` row (ids come from the statement)."""
    return {f"ev_{k}": event[k] for k in ("event_id", "type", "occurred_at", "data")}


_POST_PG = _ledger_write_pg(record=False, balance=False)
_POST_AND_BALANCE_PG = _ledger_write_pg(record=False, balance=True)
_RECORD_AND_POST_PG = {
    False: _ledger_write_pg(record=True, balance=True),
    True: _ledger_write_pg(record=True, balance=True, also=[EVENTED]),
}


def _ledger_write_params(
    program_id: int, member_id: int, moves: Sequence[Move], at: dt.datetime
) -> dict[str, Any]:
    """Parameters of the one-statement ledger write (the operation's own aside)."""
    per_lot = sums_by(((int(m.lot_id or 0), m) for m in _lot_moves(moves)), BUCKETS)
    totals = member_totals(moves)
    return {
        "program": program_id,
        "member": member_id,
        "at": at,
        "e_lot_id": [m.lot_id for m in moves],
        "e_kind": [m.kind for m in moves],
        **{f"e_{b}_delta": [getattr(m, b) for m in moves] for b in DELTAS},
        "l_id": list(per_lot),
        **{f"l_{b}": [sums[b] for sums in per_lot.values()] for b in BUCKETS},
        **totals,
        "touch_member": any(totals.values()),
    }
