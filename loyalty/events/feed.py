"""The events feed: a program's outbox events read by polling, as the HTTP API and the SDK
serve them, so a shop can follow every event without webhooks (or catch up after an outage).

Each item is exactly what a webhook receiver gets (:func:`~loyalty.events.outbox.envelope`:
``id``, ``type``, ``timestamp``, ``data``), oldest first. A page continues after the event
its caller saw last (``after``, the public ``evt_…`` id), so a poller keeps one cursor
(:attr:`EventPage.next_after`) and never sees an event twice nor misses one.

Never missing one needs care on PostgreSQL: event ids come from a sequence when the row is
written, but transactions commit in their own order, so an event with a smaller id can
become visible after a larger one was already read. A page therefore ends at a *settled*
horizon (:func:`_settled_horizon`): the largest id visible when the read started, served only
once every transaction that was then writing to the events table has ended, so every id up
to it is either committed or gone for good. On SQLite one writer at a time commits in id
order, so whatever is visible is settled.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, select, text

from loyalty.db.dialect import is_postgres
from loyalty.db.tables import events, members
from loyalty.domain.checks import require_int, require_member_id
from loyalty.errors import EventNotFound, InvalidInput, MemberNotFound
from loyalty.events.outbox import EVENT_TYPES
from loyalty.services.uow import Target
from loyalty.services.writes import program_row

MAX_PAGE = 100
DEFAULT_PAGE = 50
EVENT_ID_PREFIX = "evt_"
EVENT_ID_LENGTH = 36  # evt_ and 32 hex digits
SETTLE_TIMEOUT = 2.0  # seconds a read waits for writers of events still in flight
_FIRST_WAIT = 0.002
_LONGEST_WAIT = 0.05


@dataclass(frozen=True)
class Event:
    """An outbound event exactly as a webhook receiver gets it: its public id (the
    ``webhook-id``), type, when it happened (aware UTC) and its ``data``."""

    id: str
    type: str
    timestamp: dt.datetime
    data: dict[str, Any]


@dataclass(frozen=True)
class EventPage:
    """A page of events, oldest first. ``next_after`` is the cursor to pass as ``after`` for
    the next page (the last event's id, or the ``after`` given when the page is empty);
    ``has_more``: more events are there already. An empty page with ``has_more`` means
    events are still being written: ask again in a moment."""

    items: tuple[Event, ...]
    next_after: str | None
    has_more: bool


_COLUMNS = (events.c.id, events.c.event_id, events.c.type, events.c.occurred_at, events.c.data)


def list_events(
    db: Target,
    *,
    program: str,
    after: str | None = None,
    limit: int = DEFAULT_PAGE,
    type: str | None = None,
    member: str | None = None,
) -> EventPage:
    """The program's events after the event ``after`` (all from the first when None), oldest
    first, at most ``limit`` (1 to 100), only of ``type`` and of ``member`` (external id)
    when given.

    Refused with nothing read: an unknown ``type`` or a malformed ``after``
    (:class:`~loyalty.errors.InvalidInput`), an ``after`` that is not an event of the program
    (:class:`~loyalty.errors.EventNotFound`), an unknown member
    (:class:`~loyalty.errors.MemberNotFound`).
    """
    require_int("limit", limit, minimum=1, maximum=MAX_PAGE)
    _check_type(type)
    if after is not None:
        require_event_id(after, "after")
    if member is not None:
        member = require_member_id(member)
    with db.read() as conn:
        program_id = int(program_row(conn, program).id)
        start = 0 if after is None else _row_id(conn, program, program_id, after)
        query = select(*_COLUMNS).where(events.c.program_id == program_id, events.c.id > start)
        if type is not None:
            query = query.where(events.c.type == type)
        if member is not None:
            query = query.where(events.c.member_id == _member_id(conn, program, program_id, member))
        if is_postgres(conn):
            horizon = _settled_horizon(conn, program_id)
            if horizon is None:  # writers still in flight: nothing new is settled yet
                return EventPage((), after, True)
            query = query.where(events.c.id <= horizon)
        rows = conn.execute(query.order_by(events.c.id).limit(limit + 1)).all()
    items = tuple(_event(r) for r in rows[:limit])
    return EventPage(items, items[-1].id if items else after, len(rows) > limit)


def get_event(db: Target, *, program: str, event_id: str) -> Event:
    """The program's event with this public id (``evt_…``), or
    :class:`~loyalty.errors.EventNotFound`."""
    require_event_id(event_id)
    with db.read() as conn:
        program_id = int(program_row(conn, program).id)
        row = conn.execute(
            select(*_COLUMNS).where(
                events.c.program_id == program_id, events.c.event_id == event_id
            )
        ).first()
    if row is None:
        raise _not_found(program, event_id)
    return _event(row)


def _event(row: Any) -> Event:
    return Event(
        id=row.event_id,
        type=row.type,
        timestamp=row.occurred_at.astimezone(dt.UTC),
        data=dict(row.data or {}),
    )


def _check_type(type_: str | None) -> None:
    if type_ is not None and type_ not in EVENT_TYPES:
        raise InvalidInput(
            f"unknown event type {type_!r:.60}: choose one of {', '.join(EVENT_TYPES)}",
            field="type",
        )


def require_event_id(value: Any, field: str = "event_id") -> str:
    """``value`` if it is an event id as the outbox makes them (``evt_`` and 32 lowercase hex
    digits), else :class:`~loyalty.errors.InvalidInput` naming ``field``."""
    if not (
        isinstance(value, str)
        and len(value) == EVENT_ID_LENGTH
        and value.startswith(EVENT_ID_PREFIX)
        and all(c in "0123456789abcdef" for c in value[len(EVENT_ID_PREFIX) :])
    ):
        raise InvalidInput(
            f"{field} must be an event id such as evt_0123456789abcdef0123456789abcdef "
            f"(from a page's next_after or an event's id), got {value!r:.60}",
            field=field,
        )
    return value


def _not_found(program: str, event_id: str) -> EventNotFound:
    return EventNotFound(
        f"program {program!r} has no event {event_id!r}", program=program, event=event_id
    )


def _row_id(conn: Connection, program: str, program_id: int, event_id: str) -> int:
    found = conn.execute(
        select(events.c.id).where(events.c.program_id == program_id, events.c.event_id == event_id)
    ).scalar()
    if found is None:
        raise _not_found(program, event_id)
    return int(found)


def _member_id(conn: Connection, program: str, program_id: int, member: str) -> int:
    found = conn.execute(
        select(members.c.id).where(
            members.c.program_id == program_id, members.c.external_id == member
        )
    ).scalar()
    if found is None:
        raise MemberNotFound(
            f"no member {member!r} in program {program!r}", program=program, member=member
        )
    return int(found)


# --- the settled horizon (PostgreSQL) -------------------------------------------------------

# The largest event id of the program visible now, and the transactions (other than this one)
# writing to the events table now: one statement, so the list is read after the snapshot
# that gave the id was taken. A transaction that wrote an event before that snapshot and had
# not committed holds its lock on the table still.
_HORIZON = text(
    "SELECT (SELECT max(id) FROM events WHERE program_id = :program_id) AS horizon, "
    "ARRAY(SELECT DISTINCT virtualtransaction FROM pg_locks WHERE locktype = 'relation' "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND relation = to_regclass('events') AND mode = 'RowExclusiveLock' "
    "AND pid <> pg_backend_pid()) AS writers"
)
_STILL_WRITING = text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'relation' "
    "AND relation = to_regclass('events') AND mode = 'RowExclusiveLock' "
    "AND virtualtransaction IN :writers"
).bindparams(bindparam("writers", expanding=True))


def _settled_horizon(conn: Connection, program_id: int) -> int | None:
    """The largest event id up to which every event of the program is committed or will never
    be (PostgreSQL); ``None`` when writers that were in flight as the read started are still
    running after :data:`SETTLE_TIMEOUT`."""
    row = conn.execute(_HORIZON, {"program_id": program_id}).one()
    if row.horizon is None:
        return 0
    writers = list(row.writers or ())
    deadline = time.monotonic() + SETTLE_TIMEOUT
    wait = _FIRST_WAIT
    while writers:
        if int(conn.execute(_STILL_WRITING, {"writers": writers}).scalar_one()) == 0:
            break
        if time.monotonic() >= deadline:
            return None
        time.sleep(wait)
        wait = min(wait * 2, _LONGEST_WAIT)
    return int(row.horizon)
