"""The outbox's invariants, for ``jifen verify``: each a query returning the rows that break it.

* every ledger operation of a kind that reports an event has exactly its events: one per
  member it moved (transfers and sweeps: each member of its entries; the others: its member),
  of the type its kind reports, and no event names an operation it does not explain;
* every member has exactly one ``member.enrolled`` event; every tier change that moved a
  member has its ``tier.changed`` event; every reminder its ``points.expiring`` event (counted
  per member);
* every delivery goes to an endpoint of its event's program, and one marked delivered has a
  delivery time and a successful (2xx) attempt.

Migration 0010 wrote these events for what happened before it, marked dispatched so they are
never sent, so the checks hold on an upgraded database too.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, and_, case, func, literal, or_, select, union_all

from loyalty.db.tables import (
    entries,
    events,
    members,
    notifications,
    operations,
    tier_changes,
    webhook_attempts,
    webhook_deliveries,
    webhook_endpoints,
)

# The event each operation kind reports, for the member of the operation.
MEMBER_OPERATION_EVENTS = {
    "earn_purchase": "points.earned",
    "earn_action": "points.earned",
    "capture": "points.redeemed",
    "release": "points.hold_released",
    "hold_timeout": "points.hold_released",
    "adjust": "points.adjusted",
    "refund": "points.frozen",
    "dispute": "points.frozen",
    "refund_succeeded": "points.reversed",
    "dispute_lost": "points.reversed",
    "refund_failed": "points.released",
    "dispute_won": "points.released",
    "reward_redeem": "reward.redeemed",
    "reward_cancel": "reward.fulfilment_changed",
}
# The event of operations that report one per member of their entries.
ENTRY_OPERATION_EVENTS = {
    "transfer": "points.transferred",
    "mature": "points.pending_matured",
    "expire": "points.expired",
    "clear": "points.cleared",
}
# Events that name an operation without being its report (a tier change made by an earn).
_NOT_OPERATION_REPORTS = ("tier.changed", "tier.will_downgrade")


def _kind_to_type(mapping: dict[str, str]) -> Any:
    return case(mapping, value=operations.c.kind)


def expected_operation_events() -> Any:
    """``(operation_id, member_id, type)`` of every event the ledger's operations report."""
    by_member = select(
        operations.c.id.label("operation_id"),
        operations.c.member_id.label("member_id"),
        _kind_to_type(MEMBER_OPERATION_EVENTS).label("type"),
    ).where(operations.c.kind.in_(list(MEMBER_OPERATION_EVENTS)))
    by_entries = (
        select(
            operations.c.id.label("operation_id"),
            entries.c.member_id.label("member_id"),
            _kind_to_type(ENTRY_OPERATION_EVENTS).label("type"),
        )
        .join(entries, entries.c.operation_id == operations.c.id)
        .where(operations.c.kind.in_(list(ENTRY_OPERATION_EVENTS)))
        .group_by(operations.c.id, entries.c.member_id, operations.c.kind)
    )
    return union_all(by_member, by_entries).subquery("expected")


def operation_events_complete() -> Select[Any]:
    """Operations whose events are missing, doubled, or of another type; events naming an
    operation that does not report them."""
    expected = expected_operation_events()
    reported = (
        select(
            events.c.operation_id,
            events.c.member_id,
            events.c.type,
            func.count().label("n"),
        )
        .where(
            events.c.operation_id.is_not(None),
            events.c.type.not_in(_NOT_OPERATION_REPORTS),
        )
        .group_by(events.c.operation_id, events.c.member_id, events.c.type)
        .subquery("reported")
    )
    same = and_(
        reported.c.operation_id == expected.c.operation_id,
        reported.c.member_id == expected.c.member_id,
        reported.c.type == expected.c.type,
    )
    missing_or_doubled = (
        select(
            expected.c.operation_id,
            expected.c.member_id,
            expected.c.type,
            func.coalesce(reported.c.n, 0).label("events"),
        )
        .select_from(expected.outerjoin(reported, same))
        .where(func.coalesce(reported.c.n, 0) != 1)
    )
    unexplained = (
        select(
            reported.c.operation_id,
            reported.c.member_id,
            reported.c.type,
            reported.c.n.label("events"),
        )
        .select_from(reported.outerjoin(expected, same))
        .where(expected.c.operation_id.is_(None))
    )
    both = union_all(missing_or_doubled, unexplained).subquery()
    return select(both)


def _count_per_member(where: Any) -> Any:
    return (
        select(events.c.member_id, func.count().label("n"))
        .where(where)
        .group_by(events.c.member_id)
        .subquery()
    )


def member_events_complete() -> Select[Any]:
    """Members whose enrolment, tier changes or reminders lack their events (or have more)."""
    enrolled = _count_per_member(events.c.type == "member.enrolled")
    tiered = _count_per_member(events.c.type == "tier.changed")
    reminded = _count_per_member(events.c.type == "points.expiring")
    changes = (
        select(tier_changes.c.member_id, func.count().label("n"))
        .where(tier_changes.c.from_tier.is_distinct_from(tier_changes.c.to_tier))
        .group_by(tier_changes.c.member_id)
        .subquery()
    )
    reminders = (
        select(notifications.c.member_id, func.count().label("n"))
        .where(notifications.c.kind == "points_expiring")
        .group_by(notifications.c.member_id)
        .subquery()
    )
    m = members
    return (
        select(
            m.c.id.label("member_id"),
            func.coalesce(enrolled.c.n, 0).label("enrolled_events"),
            func.coalesce(changes.c.n, 0).label("tier_changes"),
            func.coalesce(tiered.c.n, 0).label("tier_events"),
            func.coalesce(reminders.c.n, 0).label("reminders"),
            func.coalesce(reminded.c.n, 0).label("reminder_events"),
        )
        .outerjoin(enrolled, enrolled.c.member_id == m.c.id)
        .outerjoin(tiered, tiered.c.member_id == m.c.id)
        .outerjoin(reminded, reminded.c.member_id == m.c.id)
        .outerjoin(changes, changes.c.member_id == m.c.id)
        .outerjoin(reminders, reminders.c.member_id == m.c.id)
        .where(
            or_(
                func.coalesce(enrolled.c.n, 0) != 1,
                func.coalesce(changes.c.n, 0) != func.coalesce(tiered.c.n, 0),
                func.coalesce(reminders.c.n, 0) != func.coalesce(reminded.c.n, 0),
            )
        )
    )


def deliveries_sound() -> Select[Any]:
    """Deliveries to another program's endpoint, or marked delivered without a delivery time
    and a successful attempt."""
    d = webhook_deliveries
    succeeded = (
        select(literal(1))
        .where(
            webhook_attempts.c.delivery_id == d.c.id,
            webhook_attempts.c.status_code >= 200,
            webhook_attempts.c.status_code < 300,
        )
        .exists()
    )
    return (
        select(d.c.id, d.c.status, d.c.endpoint_id, d.c.event_id)
        .join(events, events.c.id == d.c.event_id)
        .join(webhook_endpoints, webhook_endpoints.c.id == d.c.endpoint_id)
        .where(
            or_(
                webhook_endpoints.c.program_id != events.c.program_id,
                d.c.member_id.is_distinct_from(events.c.member_id),
                and_(d.c.status == "delivered", or_(d.c.delivered_at.is_(None), ~succeeded)),
            )
        )
    )


OUTBOX_CHECKS = (
    (
        "operation_events",
        "every ledger operation has exactly its outbound events, and every event its operation",
        operation_events_complete,
    ),
    (
        "member_events",
        "every member has one enrolment event, an event per tier change and per reminder",
        member_events_complete,
    ),
    (
        "deliveries_sound",
        "every delivery goes to its event's program; a delivered one has a successful attempt",
        deliveries_sound,
    ),
)
