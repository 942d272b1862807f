"""The outbox's events for rows written by bulk SQL rather than by the services.

A bulk import or a load test that inserts members and operations directly leaves them
without their ``member.enrolled`` and operation events; ``backfill_events`` writes those,
already dispatched, the way migration 0010 wrote them for the history before the outbox.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, exists, insert, literal_column, null, select

from loyalty.db.tables import events, members, operations
from loyalty.events.checks import expected_operation_events


def backfill_events(conn: Connection) -> None:
    """Write the events missing for members and operations made without the services.

    Each is written dispatched, as migration 0010 wrote them for the past, so nothing is
    sent for them and the outbox's checks in ``jifen verify`` hold. Safe to run twice.
    """
    new_id: Any = literal_column(
        "'evt_' || replace(gen_random_uuid()::text, '-', '')"
        if conn.dialect.name == "postgresql"
        else "'evt_' || lower(hex(randomblob(16)))"
    )
    seeded: Any = literal_column("""'{"seeded": true}'""")
    columns = ["event_id", "program_id", "member_id", "operation_id", "type", "occurred_at"]
    columns += ["data", "dispatched_at"]
    enrolled = select(
        new_id,
        members.c.program_id,
        members.c.id,
        null(),
        literal_column("'member.enrolled'"),
        members.c.created_at,
        seeded,
        members.c.created_at,
    ).where(~exists().where(events.c.member_id == members.c.id, events.c.type == "member.enrolled"))
    conn.execute(insert(events).from_select(columns, enrolled.order_by(members.c.id)))
    expected = expected_operation_events()
    reported = (
        select(
            new_id,
            operations.c.program_id,
            expected.c.member_id,
            expected.c.operation_id,
            expected.c.type,
            operations.c.created_at,
            seeded,
            operations.c.created_at,
        )
        .select_from(expected.join(operations, operations.c.id == expected.c.operation_id))
        .where(
            ~exists().where(
                events.c.operation_id == expected.c.operation_id,
                events.c.member_id == expected.c.member_id,
                events.c.type == expected.c.type,
            )
        )
    )
    conn.execute(insert(events).from_select(columns, reported.order_by(expected.c.operation_id)))
