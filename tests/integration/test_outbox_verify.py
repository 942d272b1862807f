"""``jifen verify`` on the outbox, on both databases: a ledger with every kind of event
passes; each outbox check catches a database changed by hand (an event lost, doubled, of the
wrong type or naming the wrong member; an enrolment, tier change or reminder without its
event; a delivery marked delivered without a successful attempt). And migration 0010's
backfill: a database taken back to revision 0009 and up again passes."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic import command
from helpers import PROGRAM, earn, enrol, execute, hold, make_program, scalar

from loyalty import migrate
from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.events.dispatch import dispatch_events

OUTBOX_CHECKS = {"operation_events", "member_events", "deliveries_sound"}


def failing(db: Database) -> set[str]:
    return {c.name for c in s.verify_ledger(db).checks if not c.ok}


@pytest.fixture
def ledger(db: Database, clock: FixedClock) -> Database:
    """Alice earned, paid with points, sent bob some, had a refund and a dispute; carol got
    an adjustment and was closed; reminders went out; the rest expired; an endpoint got the
    events dispatched."""
    make_program(db, transfers_enabled=True)
    enrol(db, "alice", "bob", "carol")
    earn(db, "alice", "o1", 100_000)
    earn(db, "alice", "o2", 50_000)
    hold(db, "alice", "o3", 200)
    s.capture_hold(db, program=PROGRAM, order_id="o3")
    s.transfer_points(
        db, program=PROGRAM, sender="alice", recipient="bob", points=100, transfer_id="t1"
    )
    s.refund_order(
        db, program=PROGRAM, order_id="o1", refund_id="r1", amount_minor=10_000, currency="CNY"
    )
    s.complete_refund(db, program=PROGRAM, refund_id="r1")
    s.open_dispute(
        db, program=PROGRAM, order_id="o2", dispute_id="d1", amount_minor=5_000, currency="CNY"
    )
    s.close_dispute(db, program=PROGRAM, dispute_id="d1", won=True)
    s.adjust_points(
        db, program=PROGRAM, member="carol", points=500, reason="goodwill", adjustment_id="a1"
    )
    s.set_member_status(db, program=PROGRAM, external_id="carol", status="closed")
    clock.advance(dt.timedelta(days=80))
    s.send_reminders(db)
    clock.advance(dt.timedelta(days=40))
    s.expire_due(db)
    execute(
        db,
        "INSERT INTO webhook_endpoints (program_id, url, event_types, secret, enabled, "
        "created_at, updated_at) SELECT id, 'https://example.com/hook', '[\"*\"]', 'whsec_x', "
        ":yes, created_at, created_at FROM programs",
        yes=True,
    )
    dispatch_events(db)
    return db


def test_a_ledger_with_every_event_passes(ledger: Database) -> None:
    report = s.verify_ledger(ledger)
    assert report.ok, [c for c in report.checks if not c.ok]
    kinds = scalar(ledger, "SELECT COUNT(DISTINCT type) FROM events")
    assert kinds >= 10


@pytest.mark.parametrize(
    ("corruption", "check"),
    [
        (
            "DELETE FROM webhook_deliveries WHERE event_id = (SELECT MAX(id) FROM events "
            "WHERE type = 'points.earned'); DELETE FROM events WHERE id = (SELECT MAX(id) FROM "
            "events WHERE type = 'points.earned')",
            "operation_events",
        ),
        (
            "INSERT INTO events (event_id, program_id, member_id, operation_id, type, "
            "occurred_at, data) SELECT 'evt_copy', program_id, member_id, operation_id, type, "
            "occurred_at, data FROM events WHERE type = 'points.adjusted'",
            "operation_events",
        ),
        (
            "UPDATE events SET type = 'points.adjusted' WHERE type = 'points.redeemed'",
            "operation_events",
        ),
        (
            "UPDATE events SET member_id = (SELECT MIN(id) FROM members WHERE external_id = "
            "'carol') WHERE type = 'points.frozen'",
            "operation_events",
        ),
        (
            "UPDATE events SET type = 'member.closed' WHERE type = 'member.enrolled' AND "
            "member_id = (SELECT id FROM members WHERE external_id = 'bob')",
            "member_events",
        ),
        (
            "UPDATE events SET type = 'points.earned', operation_id = NULL WHERE "
            "type = 'points.expiring'",
            "member_events",
        ),
        ("UPDATE webhook_deliveries SET status = 'delivered'", "deliveries_sound"),
    ],
)
def test_each_outbox_check_catches_a_change_by_hand(
    ledger: Database, corruption: str, check: str
) -> None:
    for statement in corruption.split("; "):
        execute(ledger, statement)
    assert check in failing(ledger) & OUTBOX_CHECKS


def test_the_migration_writes_the_events_of_what_happened_before_it(
    ledger: Database, database_url: str
) -> None:
    """Back to 0009 (the outbox's tables go) and up again: the backfill writes every event
    the checks expect, already dispatched, so nothing old is ever sent (a member's closing is
    not among them: the status is all that is left of it)."""
    counted = "SELECT COUNT(*) FROM events WHERE type <> 'member.closed'"
    before = scalar(ledger, counted)
    config = migrate.alembic_config(database_url)
    command.downgrade(config, "0009")
    command.upgrade(config, "head")
    report = s.verify_ledger(ledger)
    assert report.ok, [c for c in report.checks if not c.ok]
    assert scalar(ledger, counted) == before
    assert scalar(ledger, "SELECT COUNT(*) FROM events WHERE dispatched_at IS NULL") == 0
    assert scalar(
        ledger, "SELECT COUNT(*) FROM notifications WHERE email_status = 'skipped'"
    ) == scalar(ledger, "SELECT COUNT(*) FROM notifications")
