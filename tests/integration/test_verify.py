"""``verify_ledger``: clean after real scenarios, and it names what a corrupted database breaks."""

from __future__ import annotations

import datetime as dt

import pytest
from helpers import PROGRAM, earn, enrol, execute, hold, make_program, row_counts, scalar
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from loyalty import services as s
from loyalty.db import Database
from loyalty.db.models import Entry
from loyalty.domain.clock import FixedClock
from loyalty.services.api_keys import add_origin, create_key
from loyalty.services.verify import (
    API_KEYS_CHECK,
    CHECKS,
    CLEAN_TEXT_CHECK,
    RISK_RULES_CHECK,
    VerifyReport,
)

ALL_CHECKS = {name for name, _, _ in CHECKS} | {CLEAN_TEXT_CHECK, API_KEYS_CHECK, RISK_RULES_CHECK}


def _failing(report: VerifyReport) -> set[str]:
    return {c.name for c in report.checks if not c.ok}


def test_an_empty_database_is_clean(db: Database) -> None:
    report = s.verify_ledger(db)
    assert report.ok
    assert {c.name for c in report.checks} == ALL_CHECKS
    assert report.counts == {"members": 0, "lots": 0, "entries": 0, "operations": 0}


def test_clean_after_a_mixed_scenario(db: Database, clock: FixedClock) -> None:
    rules = {
        "caps": {"member_daily": 500, "program_daily": 800},
        "actions": {"sign_in": {"points": 5, "limit": 1}},
    }
    make_program(db, hold_timeout_seconds=120, rules=rules)
    make_program(db, "other", currency="USD", timezone="America/New_York")
    enrol(db, "alice", "bob", "carol")
    enrol(db, "alice", program="other")
    for day in range(3):
        for i, member in enumerate(("alice", "bob", "carol")):
            earn(db, member, f"d{day}-{member}", 20_000 + 1_234 * i)
            s.earn_action(db, program=PROGRAM, member=member, action="sign_in", reference=f"{day}")
            s.earn_action(db, program=PROGRAM, member=member, action="sign_in", reference=f"{day}b")
        earn(db, "alice", f"d{day}-usd", 999, program="other", currency="USD")
        if day == 1:
            later = {**rules, "pending_days": 1, "expiry": {"days": 40}}
            s.publish_rules(db, program=PROGRAM, rules=later)
        hold(db, "alice", f"h{day}-capture", 50)
        s.capture_hold(db, program=PROGRAM, order_id=f"h{day}-capture")
        hold(db, "bob", f"h{day}-release", 70)
        s.release_hold(db, program=PROGRAM, order_id=f"h{day}-release")
        hold(db, "carol", f"h{day}-timeout", 30)
        earn(db, "alice", f"d{day}-x", 100_000)  # over the member's daily cap
        clock.advance(dt.timedelta(days=1))
        s.expire_holds(db)
        s.mature_pending(db)
        report = s.verify_ledger(db)
        assert report.ok, [c for c in report.checks if not c.ok]

    hold(db, "alice", "still-active", 10)
    report = s.verify_ledger(db)
    assert report.ok
    counts = row_counts(db)
    assert report.counts == {k: counts[k] for k in ("members", "lots", "entries", "operations")}
    assert all(c.violations == 0 and c.examples == () for c in report.checks)


@pytest.fixture
def scene(db: Database) -> Database:
    """Alice: lots of 100 and 50 points, 30 captured, 20 held for ``h2``; Bob: 100 points."""
    make_program(db)
    enrol(db, "alice", "bob")
    earn(db, "alice", "o1", 10_000)
    earn(db, "alice", "o2", 5_000)
    earn(db, "bob", "o3", 10_000)
    hold(db, "alice", "h1", 30)
    s.capture_hold(db, program=PROGRAM, order_id="h1")
    hold(db, "alice", "h2", 20)
    assert s.verify_ledger(db).ok
    return db


def _id(db: Database, sql: str, **params: object) -> int:
    value = scalar(db, sql, **params)
    assert value is not None, sql
    return int(value)


def _member(db: Database, name: str) -> int:
    return _id(db, "SELECT id FROM members WHERE external_id = :n", n=name)


def _earning(db: Database, order_id: str, column: str) -> int:
    return _id(db, f"SELECT {column} FROM earnings WHERE order_id = :o", o=order_id)


def _insert_entry(db: Database, **values: object) -> None:
    row = {
        "program_id": _id(db, "SELECT id FROM programs"),
        "lot_id": None,
        "available_delta": 0,
        "pending_delta": 0,
        "held_delta": 0,
        "frozen_delta": 0,
        "debt_delta": 0,
        "created_at": dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.UTC),
    } | values
    with db.engine.begin() as conn:
        conn.execute(insert(Entry.__table__).values(**row))


def test_a_member_balance_out_of_step(scene: Database) -> None:
    execute(scene, "UPDATE members SET available = available + 1 WHERE external_id = 'alice'")
    report = s.verify_ledger(scene)
    assert not report.ok
    assert _failing(report) == {"members_equal_lots", "members_equal_entries"}
    broken = {c.name: c for c in report.checks}["members_equal_lots"]
    assert broken.violations == 1
    assert f"id={_member(scene, 'alice')}" in broken.examples[0]


def test_text_stored_before_it_was_cleaned_is_named(scene: Database) -> None:
    """Rows written before text was cleaned (or by hand) are not found by a clean lookup."""
    stored = {
        "bob": " bob",  # surrounding space
        "carol": "ali\u200bce",  # a zero-width space
        "dan": "Jose\u0301",  # decomposed, not NFC
    }
    enrol(scene, "carol", "dan")
    for member, raw in stored.items():
        execute(
            scene, "UPDATE members SET external_id = :raw WHERE external_id = :m", raw=raw, m=member
        )
    execute(scene, "UPDATE members SET email = 'not an email' WHERE external_id = 'alice'")
    execute(scene, "UPDATE programs SET currency = 'XYZ'")  # accepted before the ISO table
    report = s.verify_ledger(scene)
    assert _failing(report) == {CLEAN_TEXT_CHECK}
    found = {c.name: c for c in report.checks}[CLEAN_TEXT_CHECK]
    assert found.violations == 5
    text = "\n".join(found.examples)
    assert "clean it to 'bob'" in text and "U+200B" in text and "clean it to 'José'" in text
    assert "'not an email' is not an email address" in text
    assert "currency: XYZ is not an active ISO 4217 currency" in text


def test_a_negative_lot_is_blocked_by_the_schema(scene: Database) -> None:
    with pytest.raises(IntegrityError):
        execute(scene, "UPDATE lots SET available = -1")
    with pytest.raises(IntegrityError):
        execute(scene, "UPDATE members SET debt = -1")
    assert s.verify_ledger(scene).ok


def test_a_negative_lot_is_found(scene: Database, backend: str) -> None:
    # The schema forbids negative buckets, so switch the check off to show verify finds one.
    corrupt = "UPDATE lots SET available = -1 WHERE id = (SELECT MAX(id) FROM lots)"
    if backend == "sqlite":
        with scene.engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA ignore_check_constraints = ON")
            conn.exec_driver_sql(corrupt)
            conn.exec_driver_sql("PRAGMA ignore_check_constraints = OFF")
        failing = _failing(s.verify_ledger(scene))
    else:  # the session's PostgreSQL database is shared: put the constraint back afterwards
        execute(scene, "ALTER TABLE lots DROP CONSTRAINT ck_lots_buckets_not_negative")
        try:
            execute(scene, corrupt)
            failing = _failing(s.verify_ledger(scene))
        finally:
            execute(scene, "UPDATE lots SET available = 0 WHERE available < 0")
            execute(
                scene,
                "ALTER TABLE lots ADD CONSTRAINT ck_lots_buckets_not_negative CHECK "
                "(available >= 0 AND pending >= 0 AND held >= 0 AND frozen >= 0)",
            )
    assert failing == {"no_negative", "members_equal_lots", "lots_equal_entries"}


def test_a_stray_credit_entry(scene: Database) -> None:
    _insert_entry(
        scene,
        member_id=_member(scene, "alice"),
        operation_id=_earning(scene, "o1", "operation_id"),
        lot_id=_earning(scene, "o1", "lot_id"),
        kind="earn",
        available_delta=5,
    )
    assert _failing(s.verify_ledger(scene)) == {
        "members_equal_entries",
        "lots_equal_entries",
        "lot_origin",
        "lifetime_earned",
    }


def test_a_stray_entry_of_an_unknown_kind(scene: Database) -> None:
    _insert_entry(
        scene,
        member_id=_member(scene, "alice"),
        operation_id=_earning(scene, "o1", "operation_id"),
        kind="gift",
        available_delta=5,
    )
    assert _failing(s.verify_ledger(scene)) == {"members_equal_entries", "entries_explained"}


def test_an_entry_on_another_members_lot(scene: Database) -> None:
    _insert_entry(
        scene,
        member_id=_member(scene, "alice"),
        operation_id=_earning(scene, "o1", "operation_id"),
        lot_id=_earning(scene, "o3", "lot_id"),  # Bob's lot
        kind="hold",
    )
    assert _failing(s.verify_ledger(scene)) == {"entries_explained"}


def test_a_deleted_capture_entry(scene: Database) -> None:
    execute(scene, "DELETE FROM entries WHERE kind = 'capture'")
    assert _failing(s.verify_ledger(scene)) == {"members_equal_entries", "lots_equal_entries"}


def test_a_deleted_credit_entry(scene: Database) -> None:
    lot_id = _earning(scene, "o2", "lot_id")
    execute(scene, "DELETE FROM entries WHERE lot_id = :lot AND kind = 'earn'", lot=lot_id)
    report = s.verify_ledger(scene)
    assert _failing(report) == {
        "members_equal_entries",
        "lots_equal_entries",
        "lot_origin",
        "lifetime_earned",
    }
    origin = {c.name: c for c in report.checks}["lot_origin"]
    assert origin.violations == 1
    assert f"id={lot_id}" in origin.examples[0]


def test_lifetime_earned_changed(scene: Database) -> None:
    execute(scene, "UPDATE members SET lifetime_earned = lifetime_earned + 10")
    report = s.verify_ledger(scene)
    assert _failing(report) == {"lifetime_earned"}
    assert {c.name: c for c in report.checks}["lifetime_earned"].violations == 2


def test_a_hold_released_without_moving_points(scene: Database) -> None:
    execute(scene, "UPDATE holds SET status = 'released' WHERE order_id = 'h2'")
    assert _failing(s.verify_ledger(scene)) == {"held_equals_holds"}


def test_an_earning_that_differs_from_its_lot(scene: Database) -> None:
    execute(scene, "UPDATE earnings SET points_granted = points_granted + 1 WHERE order_id = 'o3'")
    # The earning no longer matches its lot, nor the qualifying row written with it.
    assert _failing(s.verify_ledger(scene)) == {"earnings_equal_lots", "qualifying_explained"}


def test_a_second_expiry_of_a_lot(scene: Database, backend: str) -> None:
    lot_id = _earning(scene, "o3", "lot_id")
    expiry = {
        "member_id": _member(scene, "bob"),
        "operation_id": _earning(scene, "o3", "operation_id"),
        "lot_id": lot_id,
        "kind": "expire",
    }
    _insert_entry(scene, **expiry)
    # An expiry entry on a lot that is not marked expired is flagged...
    assert _failing(s.verify_ledger(scene)) == {"one_expiry_per_lot"}
    execute(scene, f"UPDATE lots SET expired_at = earned_at WHERE id = {lot_id}")
    assert s.verify_ledger(scene).ok  # ...one (empty) expiry entry on an expired lot is fine
    with pytest.raises(IntegrityError):  # the schema forbids a second one
        _insert_entry(scene, **expiry)
    if backend != "sqlite":
        return
    # On SQLite the test's own database copy can lose the index, to show verify finds it.
    execute(scene, "DROP INDEX uq_entries_one_expiry_per_lot")
    _insert_entry(scene, **expiry)
    assert _failing(s.verify_ledger(scene)) == {"one_expiry_per_lot"}


def test_api_keys_and_origins_that_could_not_work_are_named(scene: Database) -> None:
    create_key(scene, program=PROGRAM, scopes=["read"], label="good")
    bad = create_key(scene, program=PROGRAM, scopes=["earn"], label="bad").key
    add_origin(scene, program=PROGRAM, origin="https://shop.example")
    assert s.verify_ledger(scene).ok
    execute(scene, "UPDATE api_keys SET scopes = 'earn spend' WHERE id = :id", id=bad.id)
    execute(scene, "UPDATE api_origins SET origin = 'HTTPS://Shop.example/'")
    report = s.verify_ledger(scene)
    assert _failing(report) == {API_KEYS_CHECK}
    found = {c.name: c for c in report.checks}[API_KEYS_CHECK]
    assert found.violations == 2
    text = "\n".join(found.examples)
    assert f"api key {bad.id}: scopes 'earn spend'" in text
    assert "clean it to 'https://shop.example'" in text
