"""What staff read of the outbox: a program's latest outbound events (filtered by type and
member, newest first, a page at a time), one event with the exact body receivers get and the
state of its deliveries, and a member's latest events for the member page.

Reads only; the console's webhook pages and member panel call these, never SQL of their own.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, Select, case, func, select

from loyalty.db.tables import events, members, webhook_deliveries, webhook_endpoints
from loyalty.domain.checks import MAX_ID, require_int
from loyalty.errors import InvalidInput
from loyalty.events.delivery import body_of
from loyalty.events.outbox import EVENT_TYPES
from loyalty.services.uow import Target
from loyalty.services.writes import program_row

MAX_PAGE = 200
DELIVERY_STATES = ("pending", "delivered", "failed")


@dataclass(frozen=True)
class OutboundEvent:
    """An outbox event as a list shows it: its public id, type, member, time, the points it
    reports (none for events that move no points), when it was dispatched (None: not yet)
    and how many of its deliveries are pending, delivered and failed."""

    id: int
    event_id: str
    type: str
    member: str | None
    occurred_at: dt.datetime
    points: int | None
    dispatched_at: dt.datetime | None
    pending: int
    delivered: int
    failed: int

    @property
    def description(self) -> str:
        """The type in words (from :data:`~loyalty.events.outbox.EVENT_TYPES`)."""
        return EVENT_TYPES.get(self.type, self.type)


@dataclass(frozen=True)
class EventDelivery:
    """One delivery of an event: the endpoint it goes to and where it stands."""

    id: int
    endpoint_id: int
    url: str
    status: str
    attempts: int
    last_status_code: int | None
    next_attempt_at: dt.datetime | None


@dataclass(frozen=True)
class OutboundEventDetail:
    """One event with its ``data``, the exact JSON body receivers get, and its deliveries."""

    event: OutboundEvent
    data: dict[str, Any]
    body: str
    deliveries: tuple[EventDelivery, ...]


@dataclass(frozen=True)
class OutboundEventPage:
    """Events newest first; ``next_before`` continues with older ones (None: no more)."""

    events: tuple[OutboundEvent, ...]
    next_before: int | None


def _delivery_counts() -> Any:
    """Per event, its deliveries pending, delivered and failed (a subquery to join)."""
    status = webhook_deliveries.c.status
    return (
        select(
            webhook_deliveries.c.event_id,
            *(func.sum(case((status == s, 1), else_=0)).label(s) for s in DELIVERY_STATES),
        )
        .group_by(webhook_deliveries.c.event_id)
        .subquery("delivery_counts")
    )


def _event_query() -> Select[Any]:
    counts = _delivery_counts()
    return (
        select(
            events.c.id,
            events.c.event_id,
            events.c.type,
            members.c.external_id.label("member"),
            events.c.occurred_at,
            events.c.data,
            events.c.dispatched_at,
            *(func.coalesce(counts.c[s], 0).label(s) for s in DELIVERY_STATES),
        )
        .outerjoin(members, members.c.id == events.c.member_id)
        .outerjoin(counts, counts.c.event_id == events.c.id)
    )


def _summary(row: Row[Any]) -> OutboundEvent:
    points = (row.data or {}).get("points")
    return OutboundEvent(
        id=int(row.id),
        event_id=row.event_id,
        type=row.type,
        member=row.member,
        occurred_at=row.occurred_at,
        points=int(points) if isinstance(points, int) else None,
        dispatched_at=row.dispatched_at,
        pending=int(row.pending),
        delivered=int(row.delivered),
        failed=int(row.failed),
    )


def _check_type(type_: str | None) -> None:
    if type_ is not None and type_ not in EVENT_TYPES:
        raise InvalidInput(
            f"unknown event type {type_!r}: choose one of {', '.join(EVENT_TYPES)}", field="type"
        )


def list_outbound_events(
    db: Target,
    *,
    program: str,
    type: str | None = None,
    member: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> OutboundEventPage:
    """The program's outbox events newest first, of ``type`` and of ``member`` (external id)
    when given, older than the event ``before`` (a row id from ``next_before``), at most
    ``limit`` (1 to 200). An unknown member matches nothing; an unknown type is refused."""
    _check_type(type)
    require_int("limit", limit, minimum=1, maximum=MAX_PAGE)
    if before is not None:
        require_int("before", before, minimum=1, maximum=MAX_ID)
    with db.read() as conn:
        query = _event_query().where(events.c.program_id == program_row(conn, program).id)
        if type is not None:
            query = query.where(events.c.type == type)
        if member is not None:
            query = query.where(members.c.external_id == member)
        if before is not None:
            query = query.where(events.c.id < before)
        rows = conn.execute(query.order_by(events.c.id.desc()).limit(limit + 1)).all()
    found = tuple(_summary(r) for r in rows[:limit])
    return OutboundEventPage(found, found[-1].id if len(rows) > limit else None)


def get_outbound_event(db: Target, *, program: str, event_id: str) -> OutboundEventDetail | None:
    """The program's event with this public id (``evt_…``), with its body and deliveries;
    None if the program has no such event."""
    with db.read() as conn:
        row = conn.execute(
            _event_query().where(
                events.c.program_id == program_row(conn, program).id,
                events.c.event_id == event_id,
            )
        ).first()
        if row is None:
            return None
        deliveries = _deliveries_of(conn, int(row.id))
    data = dict(row.data or {})
    return OutboundEventDetail(
        event=_summary(row),
        data=data,
        body=body_of(row.event_id, row.type, row.occurred_at, data),
        deliveries=deliveries,
    )


def _deliveries_of(conn: Connection, event_row_id: int) -> tuple[EventDelivery, ...]:
    rows = conn.execute(
        select(
            webhook_deliveries.c.id,
            webhook_deliveries.c.endpoint_id,
            webhook_endpoints.c.url,
            webhook_deliveries.c.status,
            webhook_deliveries.c.attempts,
            webhook_deliveries.c.last_status_code,
            webhook_deliveries.c.next_attempt_at,
        )
        .join(webhook_endpoints, webhook_endpoints.c.id == webhook_deliveries.c.endpoint_id)
        .where(webhook_deliveries.c.event_id == event_row_id)
        .order_by(webhook_deliveries.c.endpoint_id)
    ).all()
    return tuple(EventDelivery(*r) for r in rows)


def member_events(
    db: Target, *, program: str, member: str, limit: int = 20
) -> tuple[OutboundEvent, ...]:
    """A member's latest outbox events (newest first, at most ``limit``)."""
    return list_outbound_events(db, program=program, member=member, limit=limit).events
