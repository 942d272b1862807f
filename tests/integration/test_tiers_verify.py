"""``jifen verify`` on tiers, on both databases: a ledger with tiers passes, and each of the
three tier checks catches a database changed by hand (members' tier columns, the tier
history, the qualifying rows). Also the backfill of migration 0009: a database holding
earnings, settled refunds and disputes, adjustments and transfers, taken back to revision
0008 and up again, gets the qualifying rows the services write live."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from alembic import command
from helpers import PROGRAM, earn, enrol, execute, local, make_program
from sqlalchemy import select, update

from loyalty import migrate
from loyalty import services as s
from loyalty.db import Database
from loyalty.db.tables import members, tier_qualifying
from loyalty.domain.clock import FixedClock

TIER_CHECKS = ("tiers_equal_history", "tier_history_chained", "qualifying_explained")
LADDER: dict[str, Any] = {
    "tiers": [
        {"code": "member", "threshold": 0},
        {"code": "silver", "threshold": 1_000},
        {"code": "gold", "threshold": 5_000},
    ],
    "period_months": 3,
    "window_months": 3,
}
ALICE = "(SELECT id FROM members WHERE external_id = 'alice')"


def failing(db: Database) -> set[str]:
    return {c.name for c in s.verify_ledger(db).checks if not c.ok}


@pytest.fixture
def ledger(db: Database, clock: FixedClock) -> Database:
    """Alice earned to gold, had part refunded, kept gold at an evaluation and lost it at
    the next; bob was put at silver by hand with a lock; carol got an adjustment and a
    transfer (counted); dave never earned."""
    clock.set(local(2026, 3, 1, 10))
    make_program(db, rules={"base_ratio": "1"}, transfers_enabled=True)
    enrol(db, "alice", "bob", "carol", "dave")
    s.publish_tiers(
        db, program=PROGRAM, rules={**LADDER, "count_adjustments": True, "count_transfers": True}
    )
    earn(db, "alice", "o-1", 300_000)
    earn(db, "alice", "o-2", 300_000)  # 6,000: gold
    s.refund_order(db, program=PROGRAM, order_id="o-2", refund_id="r-1", amount_minor=50_000,
                   currency="CNY", succeeded=True)  # fmt: skip
    s.set_member_tier(db, program=PROGRAM, member="bob", tier="silver", reason="vip",
                      change_id="c-1", locked_until=local(2026, 9, 1))  # fmt: skip
    s.adjust_points(db, program=PROGRAM, member="carol", points=700, reason="goodwill",
                    adjustment_id="a-1")  # fmt: skip
    s.transfer_points(db, program=PROGRAM, sender="alice", recipient="carol", points=400,
                      transfer_id="t-1")  # fmt: skip
    clock.set(local(2026, 6, 2, 10))
    s.evaluate_tiers(db)  # alice keeps gold, bob (locked) keeps silver
    clock.set(local(2026, 9, 2, 10))
    s.evaluate_tiers(db)  # alice down to silver
    assert failing(db) == set()
    return db


def test_a_ledger_with_tiers_passes_every_check(ledger: Database) -> None:
    report = s.verify_ledger(ledger)
    names = {c.name for c in report.checks}
    assert set(TIER_CHECKS) <= names
    assert report.ok
    reasons = [h.reason for h in s.tier_history(ledger, program=PROGRAM, member="alice")]
    assert reasons == ["evaluation", "evaluation", "earn", "earn"]
    carol = s.tier_history(ledger, program=PROGRAM, member="carol")
    assert [(h.from_tier, h.to_tier, h.reason) for h in carol][-1] == (
        "member",
        "silver",
        "transfer",
    )


@pytest.mark.parametrize(
    ("sql", "check"),
    [
        (f"UPDATE members SET tier = 'gold' WHERE id = {ALICE}", "tiers_equal_history"),
        (f"UPDATE members SET tier = NULL WHERE id = {ALICE}", "tiers_equal_history"),
        (
            f"UPDATE members SET tier_evaluate_at = NULL WHERE id = {ALICE}",
            "tiers_equal_history",
        ),
        (
            "UPDATE members SET tier = 'silver', tier_period_end = NULL, tier_evaluate_at = NULL"
            " WHERE external_id = 'dave'",
            "tiers_equal_history",
        ),
        (
            f"DELETE FROM tier_changes WHERE id = (SELECT MAX(id) FROM tier_changes "
            f"WHERE member_id = {ALICE})",
            "tiers_equal_history",
        ),
        (
            f"UPDATE tier_changes SET from_tier = 'member' WHERE id = (SELECT MAX(id) "
            f"FROM tier_changes WHERE member_id = {ALICE})",
            "tier_history_chained",
        ),
        (
            f"DELETE FROM tier_changes WHERE id = (SELECT MIN(id) FROM tier_changes "
            f"WHERE member_id = {ALICE} AND reason = 'evaluation')",
            "tier_history_chained",
        ),
        (
            f"UPDATE tier_changes SET due_at = created_at WHERE id = (SELECT MAX(id) "
            f"FROM tier_changes WHERE member_id = {ALICE})",
            "tier_history_chained",
        ),
        (
            "UPDATE tier_qualifying SET points = points + 1 WHERE id = (SELECT MIN(id) "
            "FROM tier_qualifying)",
            "qualifying_explained",
        ),
        (
            "UPDATE tier_qualifying SET money_minor = 0 WHERE source = 'refund'",
            "qualifying_explained",
        ),
        ("DELETE FROM tier_qualifying WHERE source = 'transfer'", "qualifying_explained"),
        ("DELETE FROM tier_qualifying WHERE source = 'adjustment'", "qualifying_explained"),
        (
            "UPDATE tier_qualifying SET source = 'action' WHERE source = 'purchase'",
            "qualifying_explained",
        ),
        (
            "INSERT INTO tier_qualifying (program_id, member_id, operation_id, source, points, "
            "money_minor, counted_at, created_at) SELECT program_id, member_id, operation_id, "
            "source, points, money_minor, counted_at, created_at FROM tier_qualifying "
            "WHERE source = 'purchase' AND id = (SELECT MIN(id) FROM tier_qualifying)",
            "qualifying_explained",
        ),
    ],
    ids=lambda v: v if v in TIER_CHECKS else None,
)
def test_each_tier_check_catches_a_change_by_hand(ledger: Database, sql: str, check: str) -> None:
    execute(ledger, sql)
    assert check in failing(ledger)
    report = {c.name: c for c in s.verify_ledger(ledger).checks}
    assert report[check].violations >= 1
    assert report[check].examples


def test_a_period_end_moved_by_a_day_is_caught(ledger: Database) -> None:
    with ledger.engine.begin() as conn:
        end = conn.execute(
            select(members.c.tier_period_end).where(members.c.external_id == "alice")
        ).scalar_one()
        conn.execute(
            update(members)
            .where(members.c.external_id == "alice")
            .values(tier_period_end=end - dt.timedelta(days=1))
        )
    assert failing(ledger) == {"tiers_equal_history"}


def test_an_evaluation_missing_from_the_history_is_caught(
    ledger: Database, clock: FixedClock
) -> None:
    """A late change catches up the evaluation that fell due first; without its row the
    history skips a due evaluation."""
    due = s.tier_progress(ledger, program=PROGRAM, member="alice").evaluate_at
    assert due is not None
    clock.set(due + dt.timedelta(days=1))
    s.set_member_tier(ledger, program=PROGRAM, member="alice", tier="gold", reason="x",
                      change_id="c-9")  # fmt: skip
    history = s.tier_history(ledger, program=PROGRAM, member="alice")
    assert [(h.reason, h.due_at) for h in history[:2]] == [("manual", None), ("evaluation", due)]
    assert failing(ledger) == set()
    execute(ledger, "DELETE FROM tier_changes WHERE id = (SELECT MAX(id) FROM tier_changes "
            f"WHERE member_id = {ALICE} AND reason = 'evaluation')")  # fmt: skip
    assert failing(ledger) == {"tier_history_chained", "member_events"}  # its event remains


# --- the backfill of migration 0009 ---------------------------------------------------------


def qualifying(db: Database) -> list[tuple[Any, ...]]:
    """The qualifying rows without their ids, in a stable order."""
    q = tier_qualifying
    with db.read() as conn:
        rows = conn.execute(
            select(
                q.c.member_id,
                q.c.operation_id,
                q.c.source,
                q.c.points,
                q.c.money_minor,
                q.c.counted_at,
            )
        ).all()
    return sorted(tuple(r) for r in rows)


def test_the_backfill_gives_the_rows_the_services_write(
    db: Database, clock: FixedClock, database_url: str
) -> None:
    """Everything written without tiers, the schema taken back to 0008 and up to head."""
    clock.set(local(2026, 3, 1, 10))
    make_program(db, rules={"base_ratio": "1"}, transfers_enabled=True)
    enrol(db, "alice", "bob")
    earn(db, "alice", "o-1", 300_000)
    earn(db, "alice", "o-2", 100_000)
    earn(db, "bob", "o-3", 50_000)
    clock.set(local(2026, 3, 5, 10))
    s.refund_order(db, program=PROGRAM, order_id="o-1", refund_id="r-1", amount_minor=100_000,
                   currency="CNY", succeeded=True)  # fmt: skip
    s.refund_order(db, program=PROGRAM, order_id="o-2", refund_id="r-2", amount_minor=100_000,
                   currency="CNY")  # fmt: skip
    s.fail_refund(db, program=PROGRAM, refund_id="r-2")  # failed: no row
    s.open_dispute(db, program=PROGRAM, order_id="o-3", dispute_id="d-1", amount_minor=50_000,
                   currency="CNY")  # fmt: skip
    s.close_dispute(db, program=PROGRAM, dispute_id="d-1", won=False)
    s.adjust_points(db, program=PROGRAM, member="bob", points=300, reason="goodwill",
                    adjustment_id="a-1")  # fmt: skip
    s.adjust_points(db, program=PROGRAM, member="alice", points=-50, reason="correction",
                    adjustment_id="a-2")  # fmt: skip
    s.transfer_points(db, program=PROGRAM, sender="alice", recipient="bob", points=120,
                      transfer_id="t-1")  # fmt: skip
    live = qualifying(db)
    assert {row[2] for row in live} == {"purchase", "refund", "dispute", "adjustment", "transfer"}
    db.dispose()
    config = migrate.alembic_config(database_url)
    try:
        command.downgrade(config, "0008")
        assert "tier_qualifying" not in _tables(database_url)
    finally:
        migrate.upgrade(database_url)
    backfilled = Database.from_url(database_url, clock=clock)
    try:
        backfilled_rows = qualifying(backfilled)
        assert sorted(r[:1] + r[2:] for r in backfilled_rows) == sorted(r[:1] + r[2:] for r in live)
        # Only the operation of a settled reversal differs: the backfill links it to the
        # reversal's opening operation (the one reversals keep), the services to the
        # settling one.
        moved = {(r[2], r[1]) for r in backfilled_rows} ^ {(r[2], r[1]) for r in live}
        assert {source for source, _ in moved} <= {"refund", "dispute"}
        assert s.verify_ledger(backfilled).ok
        s.publish_tiers(backfilled, program=PROGRAM, rules={
            **LADDER, "count_adjustments": True, "count_transfers": True,
        })  # fmt: skip
        progress = s.tier_progress(backfilled, program=PROGRAM, member="alice")
        assert progress.measure == 4_000 - 1_000 - 50
    finally:
        backfilled.dispose()


def _tables(url: str) -> set[str]:
    from sqlalchemy import create_engine, inspect

    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
