"""Redemption at checkout: quote, hold (soonest-expiring lots first), capture, release, time-out."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest
from helpers import PROGRAM, earn, enrol, hold, lots_of, make_program, row_counts, scalar
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select, text

from loyalty import services as s
from loyalty.db import Database
from loyalty.db.tables import lots as lot_table
from loyalty.db.tables import members, programs
from loyalty.domain.allocation import allocate
from loyalty.domain.clock import FixedClock
from loyalty.errors import (
    AlreadyExists,
    CurrencyMismatch,
    HoldNotActive,
    HoldNotFound,
    IdempotencyConflict,
    InsufficientPoints,
    MemberNotFound,
    RedemptionLimit,
)
from loyalty.services.lots import spendable_lots, take_spendable


def _status(db: Database, order_id: str) -> str:
    return str(scalar(db, "SELECT status FROM holds WHERE order_id = :o", o=order_id))


def _three_lots(db: Database, clock: FixedClock) -> dict[str, int]:
    """Alice gets 100 points in each of three lots: expiring in 3 months, 1 month, never.

    Returns the lot ids by name; lots are earned one minute apart.
    """
    make_program(db)
    enrol(db, "alice")
    earn(db, "alice", "three-months", 10_000)  # default expiry: 3 months
    clock.advance(dt.timedelta(minutes=1))
    s.publish_rules(db, program=PROGRAM, rules={"expiry": {"months": 1}})
    earn(db, "alice", "one-month", 10_000)
    clock.advance(dt.timedelta(minutes=1))
    s.publish_rules(db, program=PROGRAM, rules={"expiry": None})
    earn(db, "alice", "never", 10_000)
    ids = [lot.id for lot in lots_of(db, "alice")]
    return dict(zip(["three-months", "one-month", "never"], ids, strict=True))


def _buckets(db: Database) -> dict[int, tuple[int, int]]:
    return {lot.id: (lot.available, lot.held) for lot in lots_of(db, "alice")}


# --- quotes --------------------------------------------------------------------------------


def test_quote_respects_the_max_share_and_what_is_available(db: Database) -> None:
    make_program(db, redeem_max_share_bp=3_000, redeem_min_order_minor=500)
    enrol(db, "alice", "bob")
    earn(db, "alice", "o1", 50_000)  # 500 points = 5.00 CNY

    def quote(member: str, total: int) -> tuple[int, int, int]:
        q = s.quote_redemption(
            db, program=PROGRAM, member=member, order_total_minor=total, currency="cny"
        )
        assert q.currency == "CNY"
        return q.available, q.max_points, q.max_discount_minor

    counts = row_counts(db)
    assert quote("alice", 1_000) == (500, 300, 300)  # 30% of 10.00 CNY
    assert quote("alice", 10_000) == (500, 500, 500)  # all she has
    assert quote("alice", 499) == (500, 0, 0)  # below the minimum order
    assert quote("bob", 10_000) == (0, 0, 0)
    assert row_counts(db) == counts

    # What the quote allows can be held; one point more cannot.
    with pytest.raises(RedemptionLimit):
        hold(db, "alice", "h0", 301, total=1_000)
    held = hold(db, "alice", "h1", 300, total=1_000)
    assert (held.points, held.discount_minor) == (300, 300)
    assert quote("alice", 10_000) == (200, 200, 200)


def test_quote_with_an_awkward_ratio(db: Database) -> None:
    # 1000 points = 1 CNY: one fen is worth 10 points, so valid amounts are multiples of 10.
    make_program(db, points_per_unit=1_000)
    enrol(db, "alice")
    earn(db, "alice", "o1", 1_500)  # 15 points
    q = s.quote_redemption(
        db, program=PROGRAM, member="alice", order_total_minor=10_000, currency="CNY"
    )
    assert (q.available, q.max_points, q.max_discount_minor) == (15, 10, 1)
    assert hold(db, "alice", "h1", q.max_points).discount_minor == 1


def test_quote_errors(db: Database) -> None:
    make_program(db)
    enrol(db, "alice")
    with pytest.raises(MemberNotFound):
        s.quote_redemption(db, program=PROGRAM, member="zed", order_total_minor=1, currency="CNY")
    with pytest.raises(CurrencyMismatch):
        s.quote_redemption(db, program=PROGRAM, member="alice", order_total_minor=1, currency="USD")


# --- hold, capture, release ----------------------------------------------------------------


def test_hold_takes_the_soonest_expiring_lots_first(db: Database, clock: FixedClock) -> None:
    lot = _three_lots(db, clock)
    result = hold(db, "alice", "h1", 150)
    assert (result.status, result.points, result.discount_minor) == ("active", 150, 150)
    assert result.expires_at == clock.now() + dt.timedelta(seconds=900)
    assert _buckets(db) == {
        lot["three-months"]: (50, 50),
        lot["one-month"]: (0, 100),
        lot["never"]: (100, 0),
    }
    b = s.balance(db, program=PROGRAM, member="alice")
    assert (b.available, b.held) == (150, 150)

    captured = s.capture_hold(db, program=PROGRAM, order_id="h1")
    assert captured.status == "captured"
    assert not captured.replayed
    assert _buckets(db) == {
        lot["three-months"]: (50, 0),
        lot["one-month"]: (0, 0),
        lot["never"]: (100, 0),
    }
    b = s.balance(db, program=PROGRAM, member="alice")
    assert (b.available, b.held, b.lifetime_earned) == (150, 0, 300)
    assert _status(db, "h1") == "captured"
    assert s.verify_ledger(db).ok


def test_release_gives_the_points_back_to_the_same_lots(db: Database, clock: FixedClock) -> None:
    lot = _three_lots(db, clock)
    hold(db, "alice", "h1", 230)
    assert _buckets(db) == {
        lot["three-months"]: (0, 100),
        lot["one-month"]: (0, 100),
        lot["never"]: (70, 30),
    }
    released = s.release_hold(db, program=PROGRAM, order_id="h1")
    assert released.status == "released"
    assert _buckets(db) == {
        lot["three-months"]: (100, 0),
        lot["one-month"]: (100, 0),
        lot["never"]: (100, 0),
    }
    b = s.balance(db, program=PROGRAM, member="alice")
    assert (b.available, b.held) == (300, 0)
    assert _status(db, "h1") == "released"
    assert s.verify_ledger(db).ok


def test_equal_expiry_spends_the_oldest_lot_first(db: Database, clock: FixedClock) -> None:
    make_program(db, rules={"expiry": None})
    enrol(db, "alice")
    earn(db, "alice", "old", 1_000)
    clock.advance(dt.timedelta(days=1))
    earn(db, "alice", "new", 1_000)
    old, new = (lot.id for lot in lots_of(db, "alice"))
    hold(db, "alice", "h1", 15)
    assert _buckets(db) == {old: (0, 10), new: (5, 5)}


def test_hold_over_available(db: Database, clock: FixedClock) -> None:
    _three_lots(db, clock)
    hold(db, "alice", "h1", 250)
    counts = row_counts(db)
    with pytest.raises(InsufficientPoints) as err:
        hold(db, "alice", "h2", 51)
    assert err.value.details == {"available": 50, "requested": 51}
    assert row_counts(db) == counts
    assert hold(db, "alice", "h2", 50).status == "active"
    assert s.verify_ledger(db).ok


@pytest.mark.parametrize(
    ("points", "total"),
    [
        (40, 100_000),  # below the minimum of 50 points
        (2_001, 4_000),  # more than 50% of the order
        (50, 999),  # an order below the minimum order amount
    ],
)
def test_hold_redemption_limits(db: Database, points: int, total: int) -> None:
    make_program(db, redeem_min_points=50, redeem_max_share_bp=5_000, redeem_min_order_minor=1_000)
    enrol(db, "alice")
    earn(db, "alice", "o1", 500_000)
    counts = row_counts(db)
    with pytest.raises(RedemptionLimit):
        hold(db, "alice", "h1", points, total=total)
    assert row_counts(db) == counts
    assert hold(db, "alice", "h1", 2_000, total=4_000).discount_minor == 2_000


def test_hold_of_points_that_are_not_a_whole_amount_of_money(db: Database) -> None:
    make_program(db, points_per_unit=1_000)  # 10 points = 1 fen
    enrol(db, "alice")
    earn(db, "alice", "o1", 100_000)
    counts = row_counts(db)
    with pytest.raises(RedemptionLimit) as err:
        hold(db, "alice", "h1", 15)
    assert "whole amount" in err.value.message
    assert row_counts(db) == counts
    assert hold(db, "alice", "h1", 20).discount_minor == 2


def test_hold_in_a_zero_decimal_currency(db: Database) -> None:
    make_program(db, "jp", currency="JPY", rules={"base_ratio": "1"})  # 100 points = 1 yen
    enrol(db, "alice", program="jp")
    earn(db, "alice", "o1", 1_000, program="jp", currency="JPY")
    with pytest.raises(RedemptionLimit):
        hold(db, "alice", "h1", 150, program="jp", currency="JPY", total=1_000)
    result = hold(db, "alice", "h1", 200, program="jp", currency="JPY", total=1_000)
    assert result.discount_minor == 2


def test_one_hold_per_order(db: Database) -> None:
    make_program(db)
    enrol(db, "alice", "bob")
    earn(db, "alice", "o1", 10_000)
    earn(db, "bob", "o2", 10_000)
    first = hold(db, "alice", "h1", 10)
    counts = row_counts(db)
    # Same order, same parameters, default key: a retry.
    assert hold(db, "alice", "h1", 10) == dataclasses.replace(first, replayed=True)
    # Same default key, other parameters: a conflict.
    with pytest.raises(IdempotencyConflict):
        hold(db, "alice", "h1", 20)
    # Same order under another key, even for another member: already held.
    with pytest.raises(AlreadyExists):
        hold(db, "alice", "h1", 10, idempotency_key="other-key")
    with pytest.raises(AlreadyExists):
        hold(db, "bob", "h1", 10, idempotency_key="bobs-key")
    assert row_counts(db) == counts


def test_capture_after_release_and_release_after_capture(db: Database) -> None:
    make_program(db)
    enrol(db, "alice")
    earn(db, "alice", "o1", 10_000)
    hold(db, "alice", "released", 10)
    hold(db, "alice", "captured", 20)
    s.release_hold(db, program=PROGRAM, order_id="released")
    s.capture_hold(db, program=PROGRAM, order_id="captured")
    counts = row_counts(db)
    with pytest.raises(HoldNotActive) as err:
        s.capture_hold(db, program=PROGRAM, order_id="released")
    assert err.value.details["status"] == "released"
    with pytest.raises(HoldNotActive) as err:
        s.release_hold(db, program=PROGRAM, order_id="captured")
    assert err.value.details["status"] == "captured"
    with pytest.raises(HoldNotFound):
        s.capture_hold(db, program=PROGRAM, order_id="nope")
    with pytest.raises(HoldNotFound):
        s.release_hold(db, program=PROGRAM, order_id="nope")
    assert row_counts(db) == counts
    assert s.balance(db, program=PROGRAM, member="alice").available == 80
    assert s.verify_ledger(db).ok


def test_capture_and_release_retries_are_idempotent(db: Database) -> None:
    make_program(db)
    enrol(db, "alice")
    earn(db, "alice", "o1", 10_000)
    hold(db, "alice", "c", 10)
    hold(db, "alice", "r", 20)
    captured = s.capture_hold(db, program=PROGRAM, order_id="c")
    released = s.release_hold(db, program=PROGRAM, order_id="r")
    counts = row_counts(db)

    again = s.capture_hold(db, program=PROGRAM, order_id="c")
    assert again == dataclasses.replace(captured, replayed=True)
    assert s.release_hold(db, program=PROGRAM, order_id="r") == dataclasses.replace(
        released, replayed=True
    )
    # A retry under a new key finds the hold settled the same way and changes nothing.
    other = s.capture_hold(db, program=PROGRAM, order_id="c", idempotency_key="cap-2")
    assert (other.status, other.points, other.replayed) == ("captured", 10, True)
    other = s.release_hold(db, program=PROGRAM, order_id="r", idempotency_key="rel-2")
    assert (other.status, other.points, other.replayed) == ("released", 20, True)
    assert row_counts(db) == counts

    b = s.balance(db, program=PROGRAM, member="alice")
    assert (b.available, b.held) == (90, 0)
    assert s.verify_ledger(db).ok


def test_capture_after_the_hold_timed_out(db: Database, clock: FixedClock) -> None:
    make_program(db, hold_timeout_seconds=60)
    enrol(db, "alice")
    earn(db, "alice", "o1", 10_000)
    result = hold(db, "alice", "h1", 30)
    assert result.expires_at == clock.now() + dt.timedelta(seconds=60)
    clock.advance(dt.timedelta(seconds=59))
    hold(db, "alice", "h2", 30)
    assert s.capture_hold(db, program=PROGRAM, order_id="h2").status == "captured"
    clock.advance(dt.timedelta(seconds=1))  # h1 times out exactly now
    counts = row_counts(db)
    with pytest.raises(HoldNotActive) as err:
        s.capture_hold(db, program=PROGRAM, order_id="h1")
    assert err.value.details["status"] == "expired"
    assert row_counts(db) == counts
    # Not swept yet: the points are still held.
    assert s.balance(db, program=PROGRAM, member="alice").held == 30

    swept = s.expire_holds(db)
    assert (swept.items, swept.points) == (1, 30)
    with pytest.raises(HoldNotActive):
        s.capture_hold(db, program=PROGRAM, order_id="h1")
    assert s.verify_ledger(db).ok


def test_expire_holds_releases_timed_out_holds_once(db: Database, clock: FixedClock) -> None:
    make_program(db, hold_timeout_seconds=600)
    make_program(db, "other", hold_timeout_seconds=60)
    enrol(db, "alice", "bob")
    enrol(db, "alice", program="other")
    earn(db, "alice", "o1", 10_000)
    earn(db, "bob", "o2", 10_000)
    earn(db, "alice", "o3", 10_000, program="other")
    lots_before = _buckets(db)
    hold(db, "alice", "a1", 10)
    hold(db, "alice", "a2", 20)
    hold(db, "bob", "b1", 30)
    hold(db, "alice", "x1", 40, program="other")
    hold(db, "alice", "c1", 5)
    s.capture_hold(db, program=PROGRAM, order_id="c1")

    clock.advance(dt.timedelta(seconds=60))  # only the other program's hold is due
    assert (s.expire_holds(db).items, _status(db, "x1")) == (1, "expired")
    assert _status(db, "a1") == "active"

    clock.advance(dt.timedelta(seconds=540))
    hold(db, "alice", "a3", 1)  # made later: not due yet
    swept = s.expire_holds(db, batch_size=2)
    assert (swept.items, swept.points, swept.batches) == (3, 60, 2)
    assert [_status(db, o) for o in ("a1", "a2", "b1", "a3", "c1")] == [
        "expired",
        "expired",
        "expired",
        "active",
        "captured",
    ]
    alice = s.balance(db, program=PROGRAM, member="alice")
    assert (alice.available, alice.held) == (94, 1)
    bob = s.balance(db, program=PROGRAM, member="bob")
    assert (bob.available, bob.held) == (100, 0)
    assert s.balance(db, program="other", member="alice").available == 100
    # Points went back to the lot they came from.
    (lot,) = lots_before
    assert _buckets(db) == {lot: (94, 1)}

    counts = row_counts(db)
    again = s.expire_holds(db)
    assert (again.items, again.points) == (0, 0)
    assert row_counts(db) == counts

    # Settling an expired hold: release answers with its state, capture refuses.
    released = s.release_hold(db, program=PROGRAM, order_id="a1")
    assert (released.status, released.replayed) == ("expired", True)
    with pytest.raises(HoldNotActive):
        s.capture_hold(db, program=PROGRAM, order_id="a1")
    assert row_counts(db) == counts
    assert s.verify_ledger(db).ok


def test_expired_lots_cannot_be_held_and_are_not_available(db: Database, clock: FixedClock) -> None:
    make_program(db, rules={"expiry": {"days": 10}})
    enrol(db, "alice")
    earn(db, "alice", "o1", 10_000)
    clock.advance(dt.timedelta(days=5))
    earn(db, "alice", "o2", 5_000)
    clock.advance(dt.timedelta(days=5) - dt.timedelta(seconds=1))
    assert s.balance(db, program=PROGRAM, member="alice").available == 150

    clock.advance(dt.timedelta(seconds=1))  # the first lot expires now; no sweep has run
    b = s.balance(db, program=PROGRAM, member="alice")
    assert b.available == 50
    q = s.quote_redemption(
        db, program=PROGRAM, member="alice", order_total_minor=100_000, currency="CNY"
    )
    assert (q.available, q.max_points) == (50, 50)
    counts = row_counts(db)
    with pytest.raises(InsufficientPoints):
        hold(db, "alice", "h1", 51)
    assert row_counts(db) == counts
    hold(db, "alice", "h1", 50)
    first, second = lots_of(db, "alice")
    assert (first.available, first.held) == (100, 0)
    assert (second.available, second.held) == (0, 50)
    assert s.balance(db, program=PROGRAM, member="alice").available == 0
    assert s.verify_ledger(db).ok


def test_hold_on_another_programs_order_id_is_independent(db: Database) -> None:
    make_program(db, "a")
    make_program(db, "b")
    for p in ("a", "b"):
        enrol(db, "alice", program=p)
        earn(db, "alice", "o1", 10_000, program=p)
        hold(db, "alice", "h1", 10, program=p)
    s.capture_hold(db, program="a", order_id="h1")
    s.release_hold(db, program="b", order_id="h1")
    assert s.balance(db, program="a", member="alice").available == 90
    assert s.balance(db, program="b", member="alice").available == 100


# --- the spending order in SQL -----------------------------------------------------------

_DAY = dt.timedelta(days=1)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    lots=st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=400),  # available
            st.one_of(st.none(), st.integers(min_value=-2, max_value=3)),  # expiry, days
            st.integers(min_value=0, max_value=2),  # earned, days ago
        ),
        min_size=1,
        max_size=12,
    ),
    points=st.integers(min_value=1, max_value=2_000),
)
def test_the_lots_a_hold_takes_are_the_domains_spending_order(
    db: Database, lots: list[tuple[int, int | None, int]], points: int
) -> None:
    """take_spendable (ordered and cut in SQL) takes what allocate() takes in Python: soonest
    expiry first, never-expiring last, then oldest, then lowest id; lapsed lots not at all."""
    now = db.clock.now()
    program = f"p{uuid.uuid4().hex[:12]}"
    make_program(db, program)
    enrol(db, "alice", program=program)
    with db.write() as conn:
        member = conn.execute(
            select(members.c.id, members.c.program_id)
            .join(programs, programs.c.id == members.c.program_id)
            .where(programs.c.code == program, members.c.external_id == "alice")
        ).one()
        op_id = conn.execute(
            text(
                "INSERT INTO operations (program_id, key, kind, request_hash, result, created_at)"
                " VALUES (:p, :k, 'adjust', '', '{}', :at) RETURNING id"
            ),
            {"p": member.program_id, "k": f"seed-{program}", "at": now},
        ).scalar_one()
        for available, expiry, age in lots:
            conn.execute(
                insert(lot_table).values(
                    program_id=member.program_id,
                    member_id=member.id,
                    operation_id=op_id,
                    points=available,
                    available=available,
                    pending=0,
                    held=0,
                    frozen=0,
                    earned_at=now - age * _DAY,
                    expires_at=None if expiry is None else now + expiry * _DAY,
                )
            )
        try:
            expected: list[tuple[int, int]] | str = allocate(
                spendable_lots(conn, member.id, now), points
            )
        except InsufficientPoints as exc:
            expected = exc.message
        try:
            taken: list[tuple[int, int]] | str = take_spendable(conn, member.id, now, points)
        except InsufficientPoints as exc:
            taken = exc.message
    assert taken == expected
