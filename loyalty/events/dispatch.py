"""The dispatcher: outbox events become deliveries to the webhook endpoints that want them.

:func:`dispatch_events` takes the events not dispatched yet, oldest first, a batch per
transaction: for each it adds a pending delivery (due at once) to every enabled endpoint of
its program subscribed to its type, and marks it dispatched. On PostgreSQL a batch claims
its events with ``FOR UPDATE SKIP LOCKED``, so dispatchers running at once share the work;
the unique ``(endpoint_id, event_id)`` makes a delivery exist once, whatever runs twice.

Deliveries keep the member's order: the sender (:mod:`loyalty.events.delivery`) only sends
a member's delivery when no earlier one of that member to that endpoint is pending and no
earlier event of the member waits for dispatch. A member's events are numbered in the order
their writes committed, since every write that emits them holds the member's lock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, select, update

from loyalty.db.database import Database
from loyalty.db.dialect import insert_ignoring, is_postgres
from loyalty.db.tables import events, webhook_deliveries, webhook_endpoints
from loyalty.domain.checks import require_int
from loyalty.errors import InvalidInput
from loyalty.events.outbox import ALL_TYPES

MAX_BATCH = 10_000

_INSERT_DELIVERIES = insert_ignoring(
    webhook_deliveries,
    conflict=["endpoint_id", "event_id"],
    returning=[webhook_deliveries.c.id],
)


@dataclass(frozen=True)
class DispatchResult:
    """What a dispatch did: events dispatched, deliveries made, batches committed."""

    events: int
    deliveries: int
    batches: int


def dispatch_events(
    db: Database,
    *,
    batch_size: int = 500,
    on_batch: Callable[[DispatchResult], None] | None = None,
) -> DispatchResult:
    """Dispatch every event not dispatched yet, ``batch_size`` per transaction; safe to run
    twice or at once. ``on_batch`` gets the running totals after each committed batch."""
    require_int("batch_size", batch_size, minimum=1)
    if batch_size > MAX_BATCH:
        raise InvalidInput(f"batch_size may be at most {MAX_BATCH}", field="batch_size")
    total = DispatchResult(0, 0, 0)
    while True:
        with db.write() as conn:
            done = _dispatch_batch(conn, batch_size, db.clock.now())
        if done is None:
            return total
        total = DispatchResult(
            total.events + done[0], total.deliveries + done[1], total.batches + 1
        )
        if on_batch is not None:
            on_batch(total)
        if done[0] < batch_size:
            return total


def _dispatch_batch(conn: Connection, limit: int, now: dt.datetime) -> tuple[int, int] | None:
    """One batch: ``(events, deliveries)``, or ``None`` when nothing was left to claim."""
    claimed = _claim(conn, limit)
    if not claimed:
        return None
    endpoints = _endpoints_by_program(conn, {e.program_id for e in claimed})
    rows = [
        _delivery(endpoint.id, event, now)
        for event in claimed
        for endpoint in endpoints.get(event.program_id, ())
        if _subscribed(endpoint.event_types, event.type)
    ]
    made = 0
    if rows:
        made = len(conn.execute(_INSERT_DELIVERIES.on(conn), rows).all())
    conn.execute(
        update(events).where(events.c.id.in_([e.id for e in claimed])).values(dispatched_at=now)
    )
    return len(claimed), made


def _claim(conn: Connection, limit: int) -> Sequence[Any]:
    """The oldest undispatched events, locked (skipping those another dispatcher holds)."""
    stmt = (
        select(events.c.id, events.c.program_id, events.c.member_id, events.c.type)
        .where(events.c.dispatched_at.is_(None))
        .order_by(events.c.id)
        .limit(limit)
    )
    if is_postgres(conn):
        stmt = stmt.with_for_update(skip_locked=True)
    return conn.execute(stmt).all()


def _endpoints_by_program(
    conn: Connection, program_ids: set[int]
) -> Mapping[int, Sequence[Row[Any]]]:
    """The enabled endpoints of these programs, by program."""
    rows = conn.execute(
        select(
            webhook_endpoints.c.id, webhook_endpoints.c.program_id, webhook_endpoints.c.event_types
        )
        .where(
            webhook_endpoints.c.program_id.in_(sorted(program_ids)),
            webhook_endpoints.c.enabled.is_(True),
        )
        .order_by(webhook_endpoints.c.id)
    ).all()
    by_program: dict[int, list[Any]] = {}
    for row in rows:
        by_program.setdefault(row.program_id, []).append(row)
    return by_program


def _subscribed(event_types: Sequence[str] | None, event_type: str) -> bool:
    """Whether an endpoint subscribed to ``event_types`` wants an event of ``event_type``."""
    wanted = event_types or ()
    return ALL_TYPES in wanted or event_type in wanted


def _delivery(endpoint_id: int, event: Row[Any], now: dt.datetime) -> dict[str, Any]:
    """A pending delivery of ``event`` to an endpoint, due at once."""
    return {
        "endpoint_id": endpoint_id,
        "event_id": event.id,
        "member_id": event.member_id,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "last_attempt_at": None,
        "last_status_code": None,
        "last_error": None,
        "delivered_at": None,
        "created_at": now,
    }
