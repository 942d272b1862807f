"""Refunds and disputes: freeze at once, reverse or release, debt, redeemed points coming back."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.domain.reversal import cumulative_share
from loyalty.errors import (
    AlreadyExists,
    CurrencyMismatch,
    IdempotencyConflict,
    InvalidAmount,
    InvalidIdempotencyKey,
    LoyaltyError,
    OrderNotFound,
    ProgramNotFound,
    ReversalNotFound,
    ReversalSettled,
)
from loyalty.services.results import Balance
from tests.integration.helpers import (
    PROGRAM,
    earn,
    enrol,
    hold,
    lots_of,
    make_program,
    row_counts,
    scalar,
)


def bal(db: Database, member: str = "alice") -> Balance:
    return s.balance(db, program=PROGRAM, member=member)


def refund(db: Database, refund_id: str, amount: int, order: str = "o1", **kw: Any) -> Any:
    return s.refund_order(
        db,
        program=PROGRAM,
        order_id=order,
        refund_id=refund_id,
        amount_minor=amount,
        currency=kw.pop("currency", "CNY"),
        **kw,
    )


def kinds(db: Database, member: str = "alice") -> list[str]:
    return [i.kind for i in s.history(db, program=PROGRAM, member=member, limit=500).items]


def verified(db: Database) -> None:
    report = s.verify_ledger(db)
    assert report.ok, [c for c in report.checks if not c.ok]


@pytest.fixture
def shop(db: Database) -> Database:
    make_program(db)
    enrol(db, "alice", "bob")
    return db


def test_a_refund_freezes_its_share_then_reverses_it(shop: Database) -> None:
    earn(shop, "alice", "o1", 10_000)  # 100 points
    opened = refund(shop, "re_1", 3_000)
    assert (opened.status, opened.points, opened.frozen, opened.missing) == ("pending", 30, 30, 0)
    b = bal(shop)
    assert (b.available, b.frozen, b.debt) == (70, 30, 0)
    done = s.complete_refund(shop, program=PROGRAM, refund_id="re_1")
    assert (done.status, done.points, done.frozen) == ("succeeded", 30, 30)
    b = bal(shop)
    assert (b.available, b.frozen, b.debt) == (70, 0, 0)
    assert {"refund_freeze", "refund_reverse"} <= set(kinds(shop))
    verified(shop)


def test_a_failed_refund_releases_the_frozen_points(shop: Database) -> None:
    earn(shop, "alice", "o1", 10_000)
    refund(shop, "re_1", 10_000)
    assert bal(shop).frozen == 100
    failed = s.fail_refund(shop, program=PROGRAM, refund_id="re_1")
    assert failed.status == "failed"
    b = bal(shop)
    assert (b.available, b.frozen) == (100, 0)
    assert "refund_release" in kinds(shop)
    # A later refund of the whole order takes all the points: the failed one no longer counts.
    assert refund(shop, "re_2", 10_000, succeeded=True).points == 100
    assert bal(shop).available == 0
    verified(shop)


def test_partial_refunds_adding_up_to_the_whole_reverse_exactly_what_was_granted(
    shop: Database,
) -> None:
    earn(shop, "alice", "o1", 999)  # 9 points (floor of 9.99)
    taken = [refund(shop, f"re_{i}", 333, succeeded=True).points for i in range(3)]
    assert sum(taken) == 9  # 3 + 3 + 3 (floor of 3.33, 6.66, 9.99 → 3, 6, 9)
    assert bal(shop).available == 0
    with pytest.raises(InvalidAmount, match="more than the 999 paid"):
        refund(shop, "re_4", 1)
    verified(shop)


def test_refunds_are_measured_against_the_money_paid_not_the_points(shop: Database) -> None:
    earn(shop, "alice", "o0", 100_000)  # 1000 points to pay with
    hold(shop, "alice", "o1", 500, total=10_000)
    s.capture_hold(shop, program=PROGRAM, order_id="o1")
    earn(shop, "alice", "o1", 10_000, paid_with_points_minor=5_000)  # 50 points on 50 CNY
    assert bal(shop).available == 550
    # Refunding the 50 CNY paid is a full refund: the 50 points go, the 500 redeemed come back.
    done = refund(shop, "re_1", 5_000, succeeded=True)
    assert (done.points, done.returned) == (50, 500)
    assert bal(shop).available == 1_000
    assert "refund_return" in kinds(shop)
    verified(shop)


def test_redeemed_points_come_back_into_their_lots_with_their_expiry(
    db: Database, clock: FixedClock
) -> None:
    make_program(db, rules={"expiry": {"days": 30}})
    enrol(db, "alice")
    earn(db, "alice", "early", 20_000)  # 200 points, expiring first
    clock.advance(dt.timedelta(days=10))
    earn(db, "alice", "late", 20_000)  # 200 points, expiring 10 days later
    hold(db, "alice", "o1", 300, total=10_000)  # takes 200 (early) + 100 (late)
    s.capture_hold(db, program=PROGRAM, order_id="o1")
    earn(db, "alice", "o1", 10_000, paid_with_points_minor=3_000)  # 70 points, their own lot
    early, late, own = lots_of(db, "alice")
    # Half the money back: 35 points reversed, 150 redeemed points back, the latest lot first.
    half = refund(db, "re_1", 3_500, succeeded=True)
    assert (half.points, half.returned) == (35, 150)
    early, late, own = lots_of(db, "alice")
    assert (early.available, late.available, own.available) == (50, 200, 35)
    # The early lot expires; the rest of the refund gives its points back and expires them.
    clock.advance(dt.timedelta(days=21))
    s.expire_due(db)
    rest = refund(db, "re_2", 3_500, succeeded=True)
    assert (rest.points, rest.returned) == (35, 150)
    early, late, own = lots_of(db, "alice")
    assert (early.available, late.available, own.available) == (0, 200, 0)
    assert "expire_returned" in kinds(db)
    verified(db)


def test_points_already_spent_come_from_other_points_then_become_debt(shop: Database) -> None:
    earn(shop, "alice", "o1", 10_000)  # 100
    earn(shop, "alice", "o2", 4_000)  # 40
    hold(shop, "alice", "spend", 120)
    s.capture_hold(shop, program=PROGRAM, order_id="spend")
    assert bal(shop).available == 20
    opened = refund(shop, "re_1", 10_000)
    assert (opened.frozen, opened.missing) == (20, 80)
    done = s.complete_refund(shop, program=PROGRAM, refund_id="re_1")
    assert (done.deducted, done.debt, done.waived) == (0, 80, 0)
    b = bal(shop)
    assert (b.available, b.frozen, b.debt) == (0, 0, 80)
    # Later earnings repay the debt first.
    repaid = earn(shop, "alice", "o3", 5_000)
    assert (repaid.points_granted, repaid.debt_repaid) == (50, 50)
    assert (bal(shop).available, bal(shop).debt) == (0, 30)
    earn(shop, "alice", "o4", 5_000)
    assert (bal(shop).available, bal(shop).debt) == (20, 0)
    assert "debt_repay" in kinds(shop)
    verified(shop)


def test_missing_points_are_taken_from_points_earned_before_the_refund_succeeds(
    shop: Database,
) -> None:
    earn(shop, "alice", "o1", 10_000)
    hold(shop, "alice", "spend", 100)
    s.capture_hold(shop, program=PROGRAM, order_id="spend")
    assert refund(shop, "re_1", 10_000).missing == 100
    earn(shop, "alice", "o2", 6_000)  # 60, no debt yet
    done = s.complete_refund(shop, program=PROGRAM, refund_id="re_1")
    assert (done.deducted, done.debt) == (60, 40)
    assert "refund_deduct" in kinds(shop)
    verified(shop)


def test_within_balance_policy_waives_what_is_missing(db: Database) -> None:
    make_program(db, refund_policy="within_balance")
    enrol(db, "alice")
    earn(db, "alice", "o1", 10_000)
    hold(db, "alice", "spend", 90)
    s.capture_hold(db, program=PROGRAM, order_id="spend")
    done = refund(db, "re_1", 10_000, succeeded=True)
    assert (done.frozen, done.deducted, done.debt, done.waived) == (10, 0, 0, 90)
    b = bal(db)
    assert (b.available, b.debt) == (0, 0)
    verified(db)


def test_points_that_expired_with_the_order_are_not_taken_twice(
    db: Database, clock: FixedClock
) -> None:
    make_program(db, rules={"expiry": {"days": 30}})
    enrol(db, "alice")
    earn(db, "alice", "o1", 10_000)
    clock.advance(dt.timedelta(days=31))
    s.expire_due(db)
    earn(db, "alice", "o2", 10_000)
    done = refund(db, "re_1", 10_000, succeeded=True)
    assert (done.points, done.lapsed, done.frozen, done.debt) == (100, 100, 0, 0)
    assert bal(db).available == 100
    verified(db)


def test_pending_points_freeze_and_go_back_to_pending(db: Database, clock: FixedClock) -> None:
    make_program(db, rules={"pending_days": 7})
    enrol(db, "alice")
    earn(db, "alice", "o1", 10_000)
    refund(db, "re_1", 4_000)
    assert (bal(db).pending, bal(db).frozen) == (60, 40)
    s.fail_refund(db, program=PROGRAM, refund_id="re_1")
    assert (bal(db).pending, bal(db).frozen) == (100, 0)
    refund(db, "re_2", 4_000)
    clock.advance(dt.timedelta(days=8))
    s.mature_pending(db)
    s.fail_refund(db, program=PROGRAM, refund_id="re_2")  # matured meanwhile: available
    b = bal(db)
    assert (b.available, b.pending, b.frozen) == (100, 0, 0)
    verified(db)


def test_disputes_freeze_then_reverse_when_lost_or_release_when_won(shop: Database) -> None:
    earn(shop, "alice", "o1", 10_000)
    earn(shop, "alice", "o2", 10_000)
    opened = s.open_dispute(
        shop,
        program=PROGRAM,
        order_id="o1",
        dispute_id="dp_1",
        amount_minor=10_000,
        currency="CNY",
    )
    assert (opened.status, opened.frozen) == ("open", 100)
    s.open_dispute(
        shop,
        program=PROGRAM,
        order_id="o2",
        dispute_id="dp_2",
        amount_minor=10_000,
        currency="CNY",
    )
    assert bal(shop).frozen == 200
    lost = s.close_dispute(shop, program=PROGRAM, dispute_id="dp_1", won=False)
    won = s.close_dispute(shop, program=PROGRAM, dispute_id="dp_2", won=True)
    assert (lost.status, won.status) == ("lost", "won")
    b = bal(shop)
    assert (b.available, b.frozen) == (100, 0)
    assert {"dispute_freeze", "dispute_reverse", "dispute_release"} <= set(kinds(shop))
    verified(shop)


def test_settling_twice_answers_the_same_and_the_other_way_is_refused(shop: Database) -> None:
    earn(shop, "alice", "o1", 10_000)
    refund(shop, "re_1", 5_000)
    first = s.complete_refund(shop, program=PROGRAM, refund_id="re_1")
    counts = row_counts(shop)
    again = s.complete_refund(shop, program=PROGRAM, refund_id="re_1")
    assert again.replayed and again.status == first.status == "succeeded"
    assert again.points == first.points
    with pytest.raises(ReversalSettled, match="already succeeded"):
        s.fail_refund(shop, program=PROGRAM, refund_id="re_1")
    assert row_counts(shop) == counts
    # A retry of the refund itself replays; the same refund id under another key is refused.
    assert refund(shop, "re_1", 5_000).replayed
    with pytest.raises(AlreadyExists):
        refund(shop, "re_1", 5_000, idempotency_key="other-key")
    with pytest.raises(IdempotencyConflict):
        refund(shop, "re_1", 4_000)
    assert row_counts(shop) == counts
    verified(shop)


BAD_REFUNDS: list[tuple[str, type[LoyaltyError], Callable[[Database], Any]]] = [
    ("unknown order", OrderNotFound, lambda db: refund(db, "re_x", 100, order="nope")),
    (
        "unknown program",
        ProgramNotFound,
        lambda db: s.refund_order(
            db, program="nope", order_id="o1", refund_id="r", amount_minor=1, currency="CNY"
        ),
    ),
    ("zero amount", InvalidAmount, lambda db: refund(db, "re_x", 0)),
    ("negative amount", InvalidAmount, lambda db: refund(db, "re_x", -5)),
    ("float amount", InvalidAmount, lambda db: refund(db, "re_x", 10.0)),
    ("too much", InvalidAmount, lambda db: refund(db, "re_x", 10_001)),
    ("other currency", CurrencyMismatch, lambda db: refund(db, "re_x", 100, currency="USD")),
    ("bad refund id", InvalidIdempotencyKey, lambda db: refund(db, "re x", 100)),
    (
        "unknown refund",
        ReversalNotFound,
        lambda db: s.complete_refund(db, program=PROGRAM, refund_id="re_nope"),
    ),
    (
        "unknown dispute",
        ReversalNotFound,
        lambda db: s.close_dispute(db, program=PROGRAM, dispute_id="dp_nope", won=True),
    ),
    (
        "won not a bool",
        InvalidAmount,
        lambda db: s.close_dispute(db, program=PROGRAM, dispute_id="dp_nope", won="yes"),
    ),
]


@pytest.mark.parametrize(
    ("case", "error", "call"), BAD_REFUNDS, ids=[case for case, _e, _c in BAD_REFUNDS]
)
def test_bad_refunds_raise_a_clear_error_and_write_nothing(
    shop: Database, case: str, error: type[LoyaltyError], call: Callable[[Database], Any]
) -> None:
    earn(shop, "alice", "o1", 10_000)
    before = row_counts(shop)
    with pytest.raises(error) as raised:
        call(shop)
    assert type(raised.value) is error, case
    assert raised.value.message
    assert row_counts(shop) == before


def test_a_thousand_buy_and_refund_cycles_leave_nothing(shop: Database) -> None:
    for i in range(1_000):
        amount = 1 + (i * 7919) % 25_000
        earn(shop, "alice", f"o{i}", amount)
        refund(shop, f"re_{i}", amount, order=f"o{i}", succeeded=True)
    b = bal(shop)
    assert (b.available, b.pending, b.frozen, b.debt) == (0, 0, 0, 0)
    verified(shop)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    amount=st.integers(min_value=1, max_value=50_000),
    steps=st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=20_000),
            st.sampled_from(["succeeded", "failed", "pending"]),
        ),
        max_size=8,
    ),
)
def test_random_partial_refunds_never_reverse_more_than_was_granted(
    db: Database, amount: int, steps: list[tuple[int, str]]
) -> None:
    program = f"p{uuid.uuid4().hex[:12]}"
    make_program(db, program)
    enrol(db, "alice", program=program)
    granted = earn(db, "alice", "o1", amount, program=program).points_granted
    refunded = 0
    still_pending: list[str] = []
    for i, (part, outcome) in enumerate(steps):
        part = min(part, amount - refunded)
        if part <= 0:
            break
        s.refund_order(
            db,
            program=program,
            order_id="o1",
            refund_id=f"r{i}",
            amount_minor=part,
            currency="CNY",
        )
        if outcome == "succeeded":
            s.complete_refund(db, program=program, refund_id=f"r{i}")
        elif outcome == "failed":
            s.fail_refund(db, program=program, refund_id=f"r{i}")
        else:
            still_pending.append(f"r{i}")
        if outcome != "failed":
            refunded += part
        b = s.balance(db, program=program, member="alice")
        taken = granted - b.available - b.frozen  # reversed so far
        assert 0 <= taken <= granted and b.debt == 0
    if refunded < amount:
        s.refund_order(
            db,
            program=program,
            order_id="o1",
            refund_id="last",
            amount_minor=amount - refunded,
            currency="CNY",
            succeeded=True,
        )
    for refund_id in still_pending:
        s.complete_refund(db, program=program, refund_id=refund_id)
    b = s.balance(db, program=program, member="alice")
    assert (b.available, b.frozen, b.debt) == (0, 0, 0)
    verified(db)


@pytest.mark.parametrize("parts", [[5_000], [2_500, 2_500]], ids=["in-one-go", "in-halves"])
def test_redeemed_points_of_an_expired_own_lot_leave_no_debt_however_split(
    db: Database, clock: FixedClock, parts: list[int]
) -> None:
    make_program(db, rules={"expiry": {"days": 30}})
    enrol(db, "alice")
    earn(db, "alice", "o1", 10_000, paid_with_points_minor=5_000)  # 50 points
    hold(db, "alice", "o1", 50, total=10_000)  # paid with the order's own lot
    s.capture_hold(db, program=PROGRAM, order_id="o1")
    clock.advance(dt.timedelta(days=31))
    s.expire_due(db)
    results = [refund(db, f"re_{i}", amount, succeeded=True) for i, amount in enumerate(parts)]
    assert sum(r.points for r in results) == 50
    assert sum(r.returned for r in results) == 50
    assert [(r.debt, r.deducted, r.waived) for r in results] == [(0, 0, 0)] * len(parts)
    assert sum(r.lapsed for r in results) == 50
    b = bal(db)
    assert (b.available, b.frozen, b.debt) == (0, 0, 0)
    verified(db)


# --- settling a share again when it goes through: the order of events does not matter -------


def open_reversal(db: Database, program: str, rid: str, amount: int, kind: str = "refund") -> Any:
    """Open a refund (or a dispute) of order ``o1`` in ``program``."""
    if kind == "dispute":
        return s.open_dispute(
            db,
            program=program,
            order_id="o1",
            dispute_id=rid,
            amount_minor=amount,
            currency="CNY",
        )
    return s.refund_order(
        db, program=program, order_id="o1", refund_id=rid, amount_minor=amount, currency="CNY"
    )


def settle(db: Database, program: str, rid: str, through: bool, kind: str = "refund") -> Any:
    """Settle a refund (succeeded or failed) or a dispute (lost or won)."""
    if kind == "dispute":
        return s.close_dispute(db, program=program, dispute_id=rid, won=not through)
    if through:
        return s.complete_refund(db, program=program, refund_id=rid)
    return s.fail_refund(db, program=program, refund_id=rid)


def reversed_points(db: Database, program: str) -> int:
    """Points the program's refunds and disputes that went through took back."""
    return int(
        scalar(
            db,
            "SELECT COALESCE(SUM(r.points), 0) FROM reversals r "
            "JOIN programs p ON p.id = r.program_id "
            "WHERE p.code = :code AND r.status IN ('succeeded', 'lost')",
            code=program,
        )
    )


def balances(db: Database, program: str) -> tuple[int, ...]:
    b = s.balance(db, program=program, member="alice")
    return (b.available, b.pending, b.held, b.frozen, b.debt)


def lot_points(db: Database, program: str) -> list[tuple[int, ...]]:
    """Alice's lots, oldest first: what each holds."""
    return [
        (lot.available, lot.pending, lot.held, lot.frozen) for lot in lots_of(db, "alice", program)
    ]


def start(db: Database, program: str, ratio: str, amount: int, extra: int = 0) -> int:
    """A program where alice earns on order ``o1`` (and on ``o0`` first, with ``extra``);
    returns the points ``o1`` was granted."""
    make_program(db, program, rules={"base_ratio": ratio})
    enrol(db, "alice", program=program)
    if extra:
        earn(db, "alice", "o0", extra, program=program)
    return earn(db, "alice", "o1", amount, program=program).points_granted


@pytest.mark.parametrize("fails_first", [False, True], ids=["b-opens-first", "a-fails-first"])
def test_a_pending_refund_that_fails_does_not_change_what_the_others_take(
    db: Database, fails_first: bool
) -> None:
    # 3 points for 10 CNY. Refund A (2 CNY) is pending: floor(3 * 2 / 10) = 0 points.
    assert start(db, "a", "0.3", 1_000) == 3
    assert open_reversal(db, "a", "re_a", 200).points == 0
    if fails_first:
        settle(db, "a", "re_a", through=False)
    # Refund B (3 CNY) freezes floor(3 * 5 / 10) - 0 = 1 while A counts, else floor(0.9) = 0.
    assert open_reversal(db, "a", "re_b", 300).points == (0 if fails_first else 1)
    if not fails_first:
        settle(db, "a", "re_a", through=False)
    done = settle(db, "a", "re_b", through=True)
    # Either way B went through for 3 CNY and A failed: B takes floor(0.9) = 0 points.
    assert (done.points, done.frozen, done.lapsed, done.missing) == (0, 0, 0, 0)
    assert reversed_points(db, "a") == 0
    assert balances(db, "a") == (3, 0, 0, 0, 0)
    kinds_seen = {i.kind for i in s.history(db, program="a", member="alice", limit=50).items}
    # Opened while A counted, B froze a point, and gave it back when it went through.
    assert ("refund_release" in kinds_seen) is not fails_first
    verified(db)


def test_the_example_in_both_orders_ends_the_same(db: Database) -> None:
    for program, fails_first in (("first", False), ("second", True)):
        start(db, program, "0.3", 1_000)
        open_reversal(db, program, "re_a", 200)
        if fails_first:
            settle(db, program, "re_a", through=False)
        open_reversal(db, program, "re_b", 300)
        if not fails_first:
            settle(db, program, "re_a", through=False)
        settle(db, program, "re_b", through=True)
    assert balances(db, "first") == balances(db, "second") == (3, 0, 0, 0, 0)
    assert reversed_points(db, "first") == reversed_points(db, "second") == 0
    verified(db)


def test_a_larger_share_takes_the_points_another_open_refund_froze_not_a_debt(
    db: Database,
) -> None:
    # 7 points for 4 CNY; three refunds of 1, 2 and 1 CNY, all going through, out of order.
    assert start(db, "shop", "1.75", 400) == 7
    assert refund(db, "re_1", 100).points == 1  # floor(7 * 1 / 4)
    assert refund(db, "re_2", 200).points == 4  # floor(7 * 3 / 4) - 1
    two = s.complete_refund(db, program=PROGRAM, refund_id="re_2")
    assert (two.points, two.frozen) == (3, 3)  # floor(7 * 2 / 4): one frozen point back
    assert refund(db, "re_3", 100).points == 3  # floor(7 * 4 / 4) - 1 - 3
    assert bal(db).available == 0
    one = s.complete_refund(db, program=PROGRAM, refund_id="re_1")
    # floor(7 * 3 / 4) - 3 = 2: the extra point comes from re_3's freeze, not from a debt.
    assert (one.points, one.frozen, one.missing, one.debt) == (2, 2, 0, 0)
    assert (bal(db).frozen, bal(db).debt) == (2, 0)
    three = s.complete_refund(db, program=PROGRAM, refund_id="re_3")
    assert (three.points, three.frozen, three.missing) == (2, 2, 0)  # 7 - 2 - 3
    assert balances(db, PROGRAM) == (0, 0, 0, 0, 0)
    assert reversed_points(db, PROGRAM) == 7
    verified(db)


def test_a_refund_whose_freeze_shrank_releases_only_what_is_left(db: Database) -> None:
    assert start(db, "shop", "1.75", 400) == 7
    refund(db, "re_1", 100)
    refund(db, "re_2", 200)
    s.complete_refund(db, program=PROGRAM, refund_id="re_2")
    refund(db, "re_3", 100)
    s.complete_refund(db, program=PROGRAM, refund_id="re_1")  # takes one of re_3's points
    failed = s.fail_refund(db, program=PROGRAM, refund_id="re_3")
    assert (failed.points, failed.frozen) == (2, 2)
    assert balances(db, PROGRAM) == (2, 0, 0, 0, 0)  # 7 - floor(7 * 3 / 4)
    assert reversed_points(db, PROGRAM) == 5
    verified(db)


def interleave(schedule: list[int]) -> list[tuple[int, str]]:
    """Events from a schedule naming each reversal twice: first it opens, then it settles."""
    seen: set[int] = set()
    events = []
    for index in schedule:
        events.append((index, "settle" if index in seen else "open"))
        seen.add(index)
    return events


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    ratio=st.sampled_from(["0.3", "1.75", "0.07", "1"]),
    amount=st.integers(min_value=100, max_value=3_000),
    extra=st.sampled_from([0, 0, 5_000]),
    reversals=st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=1_500),
            st.booleans(),  # goes through (succeeded, lost) or not (failed, won)
            st.sampled_from(["refund", "refund", "dispute"]),
        ),
        min_size=1,
        max_size=5,
    ),
    data=st.data(),
)
def test_the_final_state_depends_only_on_the_final_facts(
    db: Database,
    ratio: str,
    amount: int,
    extra: int,
    reversals: list[tuple[int, bool, str]],
    data: st.DataObject,
) -> None:
    # Trim the amounts so that they never add up to more than the order's money.
    facts, left = [], amount
    for part, through, kind in reversals:
        if min(part, left) > 0:
            facts.append((min(part, left), through, kind))
            left -= min(part, left)
    twice = [i for i in range(len(facts)) for _ in range(2)]
    ends = []
    for run in range(2):
        schedule = data.draw(st.permutations(twice), label=f"interleaving {run}")
        program = f"p{uuid.uuid4().hex[:12]}"
        granted = start(db, program, ratio, amount, extra)
        for index, step in interleave(schedule):
            part, through, kind = facts[index]
            if step == "open":
                open_reversal(db, program, f"r{index}", part, kind)
            else:
                settle(db, program, f"r{index}", through, kind)
        ends.append((balances(db, program), reversed_points(db, program), lot_points(db, program)))
    through_money = sum(part for part, through, _k in facts if through)
    share = cumulative_share(granted, through_money, amount)
    assert ends[0] == ends[1]  # balances, points reversed and every lot
    assert ends[0][1] == share
    assert ends[0][0][3:] == (0, 0)  # nothing frozen, no debt
    verified(db)


def test_a_capture_after_the_order_was_fully_refunded_gives_the_redeemed_points_back(
    shop: Database,
) -> None:
    earn(shop, "alice", "o0", 100_000)  # 1000 points to pay with
    hold(shop, "alice", "o1", 500, total=10_000)
    earn(shop, "alice", "o1", 10_000, paid_with_points_minor=5_000)  # 50 points on 50 CNY
    # the refund goes through before the capture is recorded (events out of order)
    done = refund(shop, "re_1", 5_000, succeeded=True)
    assert (done.points, done.returned) == (50, 0)  # nothing was spent yet
    captured = s.capture_hold(shop, program=PROGRAM, order_id="o1")
    assert (captured.status, captured.returned) == ("captured", 500)
    assert bal(shop).available == 1_000  # as if the capture had come first
    assert "refund_return" in kinds(shop)
    again = s.capture_hold(shop, program=PROGRAM, order_id="o1")
    assert (again.replayed, again.returned) == (True, 500)
    assert bal(shop).available == 1_000
    verified(shop)


def test_a_late_capture_returns_the_share_of_partial_refunds_and_later_ones_continue(
    shop: Database,
) -> None:
    earn(shop, "alice", "o0", 100_000)
    hold(shop, "alice", "o1", 400, total=10_000)
    earn(shop, "alice", "o1", 10_000, paid_with_points_minor=4_000)  # 60 points on 60 CNY
    refund(shop, "re_1", 1_500, succeeded=True)  # a quarter of the money
    refund(shop, "re_2", 1_500)  # pending: does not count yet
    captured = s.capture_hold(shop, program=PROGRAM, order_id="o1")
    assert captured.returned == 100  # a quarter of the 400 redeemed
    rest = s.complete_refund(shop, program=PROGRAM, refund_id="re_2")
    assert rest.returned == 100  # half now, less the quarter given back at the capture
    last = refund(shop, "re_3", 3_000, succeeded=True)
    assert last.returned == 200
    assert bal(shop).available == 1_000  # every point redeemed and earned on o1 undone
    verified(shop)


def test_a_refund_that_fails_after_it_succeeded_keeps_its_points_reversed(
    shop: Database,
) -> None:
    earn(shop, "alice", "o0", 100_000)
    hold(shop, "alice", "o1", 200, total=10_000)
    s.capture_hold(shop, program=PROGRAM, order_id="o1")
    earn(shop, "alice", "o1", 10_000, paid_with_points_minor=2_000)  # 80 points
    done = refund(shop, "re_1", 8_000, succeeded=True)
    assert (done.points, done.returned) == (80, 200)
    counts, before = row_counts(shop), bal(shop)
    with pytest.raises(ReversalSettled, match="already succeeded") as refused:
        s.fail_refund(shop, program=PROGRAM, refund_id="re_1")
    assert "its points stay reversed" in refused.value.message
    assert "refund them another way" in refused.value.message
    assert "adjust_points" in refused.value.message
    assert (row_counts(shop), bal(shop)) == (counts, before)
    verified(shop)


def test_stripe_refund_failed_after_succeeded_is_recorded_for_an_operator(
    shop: Database,
) -> None:
    from loyalty.stripe.sync import receive_event
    from tests.integration import stripe_support as st

    s.link_stripe_customer(shop, program=PROGRAM, external_id="alice", stripe_customer_id="cus_A")
    pi = st.new_id("pi")
    receive_event(shop, PROGRAM, st.payment_intent_succeeded(pi, 10_000, customer="cus_A"))
    assert bal(shop).available == 100
    t = st.T0 + 60
    succeeded = st.refund_event("refund.updated", pi, "re_b", 10_000, "succeeded", refund_created=t)
    assert receive_event(shop, PROGRAM, succeeded).status == "applied"
    assert bal(shop).available == 0
    counts = row_counts(shop)
    bounced = st.refund_event(
        "refund.failed", pi, "re_b", 10_000, "failed", refund_created=t, created=t + 86_400
    )
    result = receive_event(shop, PROGRAM, bounced)
    assert result.status == "applied"
    assert bal(shop).available == 0  # the order stays refunded
    reason = scalar(shop, "SELECT reason FROM stripe_events WHERE event_id = :e", e=bounced["id"])
    assert "failed after it succeeded" in reason and "refund the customer another way" in reason
    assert {k: v for k, v in row_counts(shop).items() if k != "stripe_events"} == {
        k: v for k, v in counts.items() if k != "stripe_events"
    }
    verified(shop)
