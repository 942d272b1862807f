"""The outbox: every points or status change writes its outbound event in its own transaction.

A service that changes points or a member's status adds its event rows (:func:`emit`) in the
write that makes the change, so a committed change always has its event and a rolled-back
one never does. The dispatcher (:mod:`loyalty.events.dispatch`) turns them into deliveries
after commit.

An event row holds its type, the program, the member, the ledger operation that caused it
and the payload's ``data``: the program and member codes, the operation (kind and
idempotency key), the headline ``points`` and the member's ``balance`` after the change,
plus what the type adds (order, reason, tier, reward). What a receiver gets is
:func:`envelope`: ``{"id", "type", "timestamp", "data"}``, the id being the ``webhook-id``.

Sweeps (maturation, expiry, clearing) record one operation per program and batch; their
events are one per member of the operation (:func:`emit_for_operations`), read from the
entries the batch wrote.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import Connection, func, insert, select

from loyalty.db.tables import entries, events, members, operations, programs
from loyalty.domain.moves import Move

EVENT_TYPES: dict[str, str] = {
    "points.earned": "points earned by a purchase or an action (pending or available)",
    "points.pending_matured": "pending points became available after the return window",
    "points.redeemed": "held points were captured as payment for an order",
    "points.hold_released": "held points went back to the member (released or timed out)",
    "points.reversed": "points taken back after a refund or a lost dispute",
    "points.frozen": "points frozen while a refund or dispute is open",
    "points.released": "frozen points given back (a dispute won or a refund withdrawn)",
    "points.expiring": "a reminder: points will expire or be cleared soon",
    "points.expired": "points reached the end of their validity",
    "points.cleared": "points removed by the year-end clearing",
    "points.adjusted": "points granted or deducted by hand",
    "points.transferred": "points sent to or received from another member",
    "member.enrolled": "a member joined the program",
    "member.closed": "a member's account was closed",
    "member.status_changed": "a member was suspended or made active again",
    "tier.changed": "a member moved to another tier",
    "tier.will_downgrade": "a member will move down at the coming evaluation unless they earn more",
    "reward.redeemed": "a member redeemed a reward from the catalog",
    "reward.fulfilment_changed": "a reward redemption's fulfilment state changed",
}
"""Every event type, with what it says (the subscription list, the docs and the console)."""

ALL_TYPES = "*"
BALANCE_FIELDS = ("available", "pending", "held", "frozen", "debt")


class HasBalances(Protocol):
    """A member row (locked or read) with its balances."""

    available: int
    pending: int
    held: int
    frozen: int
    debt: int


class LockedRow(HasBalances, Protocol):
    """A member locked for a write (every column), as points events read it."""

    id: int
    program_id: int
    external_id: str


def new_event_id() -> str:
    """A new public event id: ``evt_`` and 32 hex digits."""
    return "evt_" + uuid.uuid4().hex


def balance(row: HasBalances, deltas: Mapping[str, int] | None = None) -> dict[str, int]:
    """The member's balances in ``row``, plus ``deltas`` (``d_<bucket>``, as
    :func:`~loyalty.services.ledger.member_totals` gives them) when the row was read before
    the change."""
    deltas = deltas or {}
    return {f: int(getattr(row, f)) + int(deltas.get(f"d_{f}", 0)) for f in BALANCE_FIELDS}


def moved(moves: Iterable[Move]) -> dict[str, int]:
    """The balance deltas (``d_<field>``) of ``moves``."""
    moves = list(moves)
    return {f"d_{f}": sum(getattr(m, f) for m in moves) for f in BALANCE_FIELDS}


def operation_ref(kind: str, key: str) -> dict[str, str]:
    """How a payload names the operation behind it."""
    return {"kind": kind, "key": key}


def event_row(
    type_: str,
    *,
    program_id: int,
    member_id: int | None,
    operation_id: int | None,
    at: dt.datetime,
    data: Mapping[str, Any],
) -> dict[str, Any]:
    """An ``events`` row (not dispatched yet)."""
    if type_ not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type_!r}")
    return {
        "event_id": new_event_id(),
        "program_id": program_id,
        "member_id": member_id,
        "operation_id": operation_id,
        "type": type_,
        "occurred_at": at,
        "data": dict(data),
        "dispatched_at": None,
    }


def member_data(
    program: str,
    member: str,
    *,
    operation: Mapping[str, str] | None,
    points: int | None,
    balance: Mapping[str, int],
    **fields: Any,
) -> dict[str, Any]:
    """An event's ``data``: program, member, operation, points (none for an event that moves
    no points, such as a tier change), balance and ``fields``."""
    return {
        "program": program,
        "member": member,
        "operation": dict(operation) if operation is not None else None,
        **({"points": points} if points is not None else {}),
        "balance": dict(balance),
        **{k: _jsonable(v) for k, v in fields.items()},
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


_INSERT_EVENT = insert(events)


def emit(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write event rows (see :func:`event_row`) in the caller's transaction."""
    if rows:
        conn.execute(_INSERT_EVENT, list(rows) if len(rows) > 1 else dict(rows[0]))


def emit_one(
    conn: Connection,
    type_: str,
    *,
    program_id: int,
    member_id: int | None,
    operation_id: int | None,
    at: dt.datetime,
    data: Mapping[str, Any],
) -> None:
    """Write one event row in the caller's transaction."""
    emit(
        conn,
        [
            event_row(
                type_,
                program_id=program_id,
                member_id=member_id,
                operation_id=operation_id,
                at=at,
                data=data,
            )
        ],
    )


def change_event(
    type_: str,
    row: LockedRow,
    *,
    program: str,
    operation: tuple[str, str],
    moves: Iterable[Move],
    points: int,
    at: dt.datetime,
    **fields: Any,
) -> dict[str, Any]:
    """The event row of one member's ledger write, its ``operation_id`` left for the write:
    ``row`` is the member as locked before it, ``moves`` what the write posts (the balance
    after is the row's plus their sums)."""
    return event_row(
        type_,
        program_id=row.program_id,
        member_id=row.id,
        operation_id=None,
        at=at,
        data=member_data(
            program,
            row.external_id,
            operation=operation_ref(*operation),
            points=points,
            balance=balance(row, moved(moves)),
            **fields,
        ),
    )


def emit_change(
    conn: Connection,
    type_: str,
    row: LockedRow,
    *,
    program: str,
    operation: tuple[str, str],
    operation_id: int,
    moves: Iterable[Move],
    points: int,
    at: dt.datetime,
    **fields: Any,
) -> None:
    """Write the event of one member's ledger write (see :func:`change_event`)."""
    event = change_event(
        type_,
        row,
        program=program,
        operation=operation,
        moves=moves,
        points=points,
        at=at,
        **fields,
    )
    emit(conn, [{**event, "operation_id": operation_id}])


def emit_current(
    conn: Connection,
    type_: str,
    *,
    member_id: int,
    operation: tuple[str, str] | None,
    operation_id: int | None,
    points: int | None,
    at: dt.datetime,
    **fields: Any,
) -> None:
    """The event of a change already written to the member's row: its balance is read now
    (for writes that post in several steps). The read locks the member (most callers hold
    the lock already), so the member's events are numbered in the order they commit."""
    row = conn.execute(
        select(
            members.c.id,
            members.c.program_id,
            programs.c.code.label("program"),
            members.c.external_id,
            *(members.c[f] for f in BALANCE_FIELDS),
        )
        .join(programs, programs.c.id == members.c.program_id)
        .where(members.c.id == member_id)
        .with_for_update(of=members)
    ).one()
    emit_one(
        conn,
        type_,
        program_id=row.program_id,
        member_id=row.id,
        operation_id=operation_id,
        at=at,
        data=member_data(
            row.program,
            row.external_id,
            operation=operation_ref(*operation) if operation is not None else None,
            points=points,
            balance=balance(row),
            **fields,
        ),
    )


def emit_for_operations(
    conn: Connection,
    type_: str,
    operation_ids: Iterable[int],
    *,
    at: dt.datetime,
    fields: Mapping[str, Any] | None = None,
) -> int:
    """One ``type_`` event per member of each operation (a sweep's batch), with the points
    its entries moved out of or into the member's balances and the balance after them.

    ``points`` is the size of the change: the sum of the entries' available and pending
    changes, as a positive number (for maturing: what became available). Call it after the
    operations' entries and the members' balances are written. Returns how many events were
    written.
    """
    ids = list(operation_ids)
    if not ids:
        return 0
    # Maturing moves points from pending to available: its size is what became available.
    moved = (
        func.sum(entries.c.available_delta)
        if type_ == "points.pending_matured"
        else func.sum(entries.c.available_delta + entries.c.pending_delta)
    )
    stmt = (
        select(
            entries.c.operation_id,
            entries.c.member_id,
            moved.label("moved"),
            func.count().label("lots"),
            operations.c.kind,
            operations.c.key,
            operations.c.program_id,
            programs.c.code.label("program"),
            members.c.external_id,
            *(members.c[f] for f in BALANCE_FIELDS),
        )
        .join(operations, operations.c.id == entries.c.operation_id)
        .join(programs, programs.c.id == operations.c.program_id)
        .join(members, members.c.id == entries.c.member_id)
        .where(entries.c.operation_id.in_(ids))
        .group_by(
            entries.c.operation_id,
            entries.c.member_id,
            operations.c.kind,
            operations.c.key,
            operations.c.program_id,
            programs.c.code,
            members.c.external_id,
            *(members.c[f] for f in BALANCE_FIELDS),
        )
        .order_by(entries.c.member_id, entries.c.operation_id)
    )
    rows = [
        event_row(
            type_,
            program_id=r.program_id,
            member_id=r.member_id,
            operation_id=r.operation_id,
            at=at,
            data=member_data(
                r.program,
                r.external_id,
                operation=operation_ref(r.kind, r.key),
                points=abs(int(r.moved or 0)),
                balance=balance(r),
                lots=int(r.lots),
                **(fields or {}),
            ),
        )
        for r in conn.execute(stmt)
    ]
    emit(conn, rows)
    return len(rows)


def envelope(event_id: str, type_: str, occurred_at: dt.datetime, data: Any) -> dict[str, Any]:
    """What a receiver gets for an event: its id, type, time (UTC, ISO 8601) and data."""
    return {"id": event_id, "type": type_, "timestamp": _jsonable(occurred_at), "data": data}
