"""Earning for purchases and actions: ratios, rounding, campaigns, caps, pending, idempotency."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from helpers import PROGRAM, earn, enrol, hold, local, lots_of, make_program, row_counts, scalar

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.errors import (
    AlreadyExists,
    IdempotencyConflict,
    InsufficientPoints,
    InvalidInput,
)

# --- ratios and rounding ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rounding", "expected"),
    [
        # amounts in fen at 1 point per yuan: 2.49, 2.5, 3.5, 2.51, 123.45
        ("floor", [2, 2, 3, 2, 123]),
        ("half_up", [2, 3, 4, 3, 123]),
        ("half_even", [2, 2, 4, 3, 123]),
    ],
)
def test_base_ratio_and_rounding(db: Database, rounding: str, expected: list[int]) -> None:
    make_program(db, rounding=rounding)
    enrol(db, "alice")
    amounts = [249, 250, 350, 251, 12_345]
    granted = [earn(db, "alice", f"o{i}", a).points_granted for i, a in enumerate(amounts)]
    assert granted == expected
    b = s.balance(db, program=PROGRAM, member="alice")
    assert b.available == b.lifetime_earned == sum(expected)
    assert s.verify_ledger(db).ok


def test_base_ratio_as_a_decimal(db: Database) -> None:
    make_program(db, rules={"base_ratio": "1.5"})
    enrol(db, "alice")
    assert earn(db, "alice", "o1", 1_000).points_granted == 15
    assert earn(db, "alice", "o2", 1_099).points_granted == 16  # 16.485, floored
    assert earn(db, "alice", "o3", 66).points_granted == 0  # 0.99: fractions never mint points


def test_zero_and_three_decimal_currencies(db: Database) -> None:
    make_program(db, "jp", currency="JPY", rules={"base_ratio": "0.01"})
    make_program(db, "kw", currency="KWD", rules={"base_ratio": "10"})
    enrol(db, "alice", program="jp")
    enrol(db, "alice", program="kw")
    assert earn(db, "alice", "o1", 1_999, program="jp", currency="jpy").points_granted == 19
    assert earn(db, "alice", "o1", 1_250, program="kw", currency="KWD").points_granted == 12


def test_category_and_sku_ratios_are_summed_then_rounded_once(db: Database) -> None:
    make_program(
        db,
        rules={
            "base_ratio": "1",
            "category_ratios": {"food": "2", "gift_cards": "0"},
            "sku_ratios": {"SKU-TEA": "5"},
        },
    )
    enrol(db, "alice")
    lines = [
        {"amount_minor": 1_000, "sku": "SKU-TEA", "category": "food"},  # SKU wins: 50
        {"amount_minor": 1_000, "category": "food"},  # 20
        {"amount_minor": 5_000, "category": "gift_cards"},  # 0
        {"amount_minor": 150, "sku": "SKU-OTHER"},  # base: 1.5
        {"amount_minor": 150},  # base: 1.5
    ]
    quote = s.quote_purchase(db, program=PROGRAM, currency="CNY", lines=lines)
    result = s.earn_purchase(
        db, program=PROGRAM, member="alice", order_id="o1", currency="CNY", lines=lines
    )
    # 50 + 20 + 0 + 1.5 + 1.5 = 73 exactly; rounding each line would give 72.
    assert quote.points == result.points_granted == 73
    assert scalar(db, "SELECT amount_minor FROM earnings WHERE order_id = 'o1'") == 7_300


def test_lines_validation(db: Database) -> None:
    make_program(db)
    enrol(db, "alice")
    counts = row_counts(db)
    bad: list[dict[str, Any]] = [
        {"lines": []},
        {"lines": [{"amount_minor": 100, "colour": "red"}]},
        {"lines": [{"amount_minor": 100, "sku": ""}]},
        {"lines": [{"amount_minor": 100}], "amount_minor": 100},
        {},
    ]
    for kw in bad:
        with pytest.raises(InvalidInput):
            s.earn_purchase(
                db, program=PROGRAM, member="alice", order_id="o1", currency="CNY", **kw
            )
    assert row_counts(db) == counts


# --- campaigns -----------------------------------------------------------------------------


def test_a_campaign_multiplies_only_within_its_window(db: Database, clock: FixedClock) -> None:
    now = clock.now()
    make_program(
        db,
        rules={
            "campaigns": [
                {
                    "name": "double",
                    "multiplier": "2",
                    "starts_at": (now + dt.timedelta(days=1)).isoformat(),
                    "ends_at": (now + dt.timedelta(days=2)).isoformat(),
                }
            ]
        },
    )
    enrol(db, "alice")
    assert earn(db, "alice", "before", 1_000).points_granted == 10
    clock.advance(dt.timedelta(days=1) - dt.timedelta(seconds=1))
    assert earn(db, "alice", "just-before", 1_000).points_granted == 10
    clock.advance(dt.timedelta(seconds=1))
    assert earn(db, "alice", "start", 1_000).points_granted == 20
    clock.advance(dt.timedelta(hours=23, minutes=59, seconds=59))
    assert earn(db, "alice", "last-second", 1_000).points_granted == 20
    clock.advance(dt.timedelta(seconds=1))
    assert earn(db, "alice", "end", 1_000).points_granted == 10


def test_campaigns_by_category_and_local_weekday_do_not_stack(
    db: Database, clock: FixedClock
) -> None:
    # The test clock stands on Saturday 2026-11-21, 18:00 in Shanghai.
    now = clock.now()
    window = {
        "starts_at": (now - dt.timedelta(days=1)).isoformat(),
        "ends_at": (now + dt.timedelta(days=30)).isoformat(),
    }
    make_program(
        db,
        rules={
            "campaigns": [
                {"name": "weekend", "multiplier": "2", "weekdays": [5, 6], **window},
                {"name": "food", "multiplier": "3", "categories": ["food"], **window},
            ]
        },
    )
    enrol(db, "alice")
    lines = [{"amount_minor": 1_000, "category": "food"}, {"amount_minor": 1_000}]
    sat = s.earn_purchase(
        db, program=PROGRAM, member="alice", order_id="sat", currency="CNY", lines=lines
    )
    assert sat.points_granted == 30 + 20  # food: max(2, 3) = 3; other: weekend 2
    # Monday 00:00 in Shanghai is still Sunday in UTC: the weekday is the program's.
    clock.set(local(2026, 11, 23, 0, 0))
    mon = s.earn_purchase(
        db, program=PROGRAM, member="alice", order_id="mon", currency="CNY", lines=lines
    )
    assert mon.points_granted == 30 + 10
    clock.set(local(2026, 11, 22, 23, 59))
    sun = s.earn_purchase(
        db, program=PROGRAM, member="alice", order_id="sun", currency="CNY", lines=lines
    )
    assert sun.points_granted == 30 + 20


# --- actions -------------------------------------------------------------------------------

ACTION_RULES = {
    "actions": {
        "sign_in": {"points": 5, "limit": 1, "period": "day"},
        "review": {"points": 20, "limit": 2, "period": "month"},
        "share": {"points": 1},
    }
}


def test_action_frequency_limit_per_local_day(db: Database, clock: FixedClock) -> None:
    make_program(db, rules=ACTION_RULES)
    enrol(db, "alice")

    def sign_in(reference: str) -> Any:
        return s.earn_action(
            db, program=PROGRAM, member="alice", action="sign_in", reference=reference
        )

    first = sign_in("2026-11-21")
    assert (first.points_granted, first.capped_by, first.source) == (5, None, "action")
    assert first.reference == "2026-11-21"

    clock.set(local(2026, 11, 21, 23, 59))
    lots_before = row_counts(db)["lots"]
    second = sign_in("2026-11-21b")
    assert (second.points_requested, second.points_granted) == (5, 0)
    assert second.capped_by == "action_limit"
    assert row_counts(db)["lots"] == lots_before
    # A third try the same day is still capped.
    assert sign_in("2026-11-21c").capped_by == "action_limit"

    # Midnight in Shanghai is 16:00 UTC, still 2026-11-21 in UTC: the limit resets anyway.
    clock.set(local(2026, 11, 22, 0, 0))
    assert clock.now().day == 21
    third = sign_in("2026-11-22")
    assert (third.points_granted, third.capped_by) == (5, None)
    assert s.balance(db, program=PROGRAM, member="alice").available == 10
    assert s.verify_ledger(db).ok


def test_action_limits_per_month_and_unlimited_actions(db: Database, clock: FixedClock) -> None:
    make_program(db, rules=ACTION_RULES)
    enrol(db, "alice")

    def act(action: str, reference: str) -> int:
        return s.earn_action(
            db, program=PROGRAM, member="alice", action=action, reference=reference
        ).points_granted

    assert [act("review", f"r{i}") for i in range(3)] == [20, 20, 0]
    assert [act("share", f"s{i}") for i in range(5)] == [1] * 5
    clock.set(local(2026, 12, 1))
    assert act("review", "r-dec") == 20
    with pytest.raises(InvalidInput):
        act("dance", "d1")


def test_action_retry_is_a_replay_not_a_second_use(db: Database) -> None:
    make_program(db, rules=ACTION_RULES)
    enrol(db, "alice")
    first = s.earn_action(db, program=PROGRAM, member="alice", action="sign_in", reference="d1")
    counts = row_counts(db)
    again = s.earn_action(db, program=PROGRAM, member="alice", action="sign_in", reference="d1")
    assert again.replayed
    assert dataclasses.replace(first, replayed=True) == again
    assert row_counts(db) == counts


# --- caps ----------------------------------------------------------------------------------


def test_member_daily_cap_grants_the_exact_remainder(db: Database, clock: FixedClock) -> None:
    make_program(db, rules={"caps": {"member_daily": 150}})
    enrol(db, "alice")
    assert earn(db, "alice", "o1", 10_000).points_granted == 100
    capped = earn(db, "alice", "o2", 10_000)
    assert (capped.points_requested, capped.points_granted, capped.capped_by) == (
        100,
        50,
        "member_daily",
    )
    counts = row_counts(db)
    zero = earn(db, "alice", "o3", 10_000)
    assert (zero.points_granted, zero.capped_by) == (0, "member_daily")
    after = row_counts(db)
    # A capped-to-zero earn records the operation and the earning, but no lot and no entry.
    assert after["lots"] == counts["lots"]
    assert after["entries"] == counts["entries"]
    assert after["earnings"] == counts["earnings"] + 1
    assert scalar(db, "SELECT lot_id FROM earnings WHERE order_id = 'o3'") is None

    clock.set(local(2026, 11, 21, 23, 59))
    assert earn(db, "alice", "o4", 10_000).points_granted == 0
    clock.set(local(2026, 11, 22))  # next local day (still 21 Nov in UTC)
    assert earn(db, "alice", "o5", 10_000).points_granted == 100
    b = s.balance(db, program=PROGRAM, member="alice")
    assert (b.available, b.lifetime_earned) == (250, 250)
    assert s.verify_ledger(db).ok


def test_member_monthly_and_yearly_caps(db: Database, clock: FixedClock) -> None:
    make_program(db, rules={"caps": {"member_monthly": 500, "member_yearly": 900}})
    enrol(db, "alice")
    assert earn(db, "alice", "n1", 30_000).points_granted == 300
    m = earn(db, "alice", "n2", 30_000)
    assert (m.points_granted, m.capped_by) == (200, "member_monthly")

    clock.set(local(2026, 12, 1))
    y = earn(db, "alice", "d1", 50_000)
    assert (y.points_granted, y.capped_by) == (400, "member_yearly")
    assert earn(db, "alice", "d2", 100).capped_by == "member_yearly"

    clock.set(local(2026, 12, 31, 23, 59))
    assert earn(db, "alice", "d3", 100).points_granted == 0
    clock.set(local(2027, 1, 1))
    assert earn(db, "alice", "j1", 30_000).points_granted == 300
    assert s.verify_ledger(db).ok


def test_the_tightest_cap_is_named(db: Database, clock: FixedClock) -> None:
    make_program(db, rules={"caps": {"member_daily": 100, "member_monthly": 150}})
    enrol(db, "alice")
    assert earn(db, "alice", "o1", 8_000).points_granted == 80
    first = earn(db, "alice", "o2", 8_000)
    assert (first.points_granted, first.capped_by) == (20, "member_daily")
    clock.advance(dt.timedelta(days=1))
    second = earn(db, "alice", "o3", 8_000)
    assert (second.points_granted, second.capped_by) == (50, "member_monthly")


def test_program_daily_budget(db: Database, clock: FixedClock) -> None:
    make_program(db, rules={"caps": {"program_daily": 150, "member_daily": 80}})
    enrol(db, "alice", "bob", "carol")
    a = earn(db, "alice", "o1", 10_000)
    assert (a.points_granted, a.capped_by) == (80, "member_daily")  # member caps come first
    b = earn(db, "bob", "o2", 10_000)
    assert (b.points_granted, b.capped_by) == (70, "program_daily")
    lots_before = row_counts(db)["lots"]
    c = earn(db, "carol", "o3", 10_000)
    assert (c.points_granted, c.capped_by) == (0, "program_daily")
    assert row_counts(db)["lots"] == lots_before
    assert scalar(db, "SELECT issued FROM program_issuance WHERE day = '2026-11-21'") == 150

    clock.set(local(2026, 11, 22))
    assert earn(db, "carol", "o4", 10_000).points_granted == 80
    assert scalar(db, "SELECT issued FROM program_issuance WHERE day = '2026-11-22'") == 80
    assert s.verify_ledger(db).ok


def test_a_budget_of_another_program_is_separate(db: Database) -> None:
    make_program(db, "a", rules={"caps": {"program_daily": 10}})
    make_program(db, "b", rules={"caps": {"program_daily": 10}})
    enrol(db, "alice", program="a")
    enrol(db, "alice", program="b")
    assert earn(db, "alice", "o1", 5_000, program="a").points_granted == 10
    assert earn(db, "alice", "o1", 5_000, program="b").points_granted == 10


# --- pending points ------------------------------------------------------------------------


def test_pending_points_mature_after_the_return_window(db: Database, clock: FixedClock) -> None:
    make_program(db, rules={"pending_days": 7})
    enrol(db, "alice")
    start = clock.now()
    result = earn(db, "alice", "o1", 10_000)
    assert result.status == "pending"
    assert result.matures_at == start + dt.timedelta(days=7)
    b = s.balance(db, program=PROGRAM, member="alice")
    assert (b.available, b.pending, b.lifetime_earned) == (0, 100, 100)
    with pytest.raises(InsufficientPoints):
        hold(db, "alice", "h1", 10)
    assert (
        s.quote_redemption(
            db, program=PROGRAM, member="alice", order_total_minor=10_000, currency="CNY"
        ).available
        == 0
    )

    clock.advance(dt.timedelta(days=7) - dt.timedelta(seconds=1))
    counts = row_counts(db)
    early = s.mature_pending(db)
    assert (early.items, early.points) == (0, 0)
    assert row_counts(db) == counts
    assert s.balance(db, program=PROGRAM, member="alice").pending == 100

    clock.advance(dt.timedelta(seconds=1))
    done = s.mature_pending(db)
    assert (done.items, done.points) == (1, 100)
    b = s.balance(db, program=PROGRAM, member="alice")
    assert (b.available, b.pending) == (100, 0)
    (lot,) = lots_of(db, "alice")
    assert (lot.available, lot.pending) == (100, 0)

    counts = row_counts(db)
    assert s.mature_pending(db).items == 0
    assert row_counts(db) == counts
    assert hold(db, "alice", "h1", 10).status == "active"
    assert s.verify_ledger(db).ok


def test_maturing_many_lots_in_small_batches(db: Database, clock: FixedClock) -> None:
    make_program(db, rules={"pending_days": 1})
    enrol(db, "alice", "bob")
    for i in range(5):
        earn(db, "alice", f"a{i}", 1_000)
        earn(db, "bob", f"b{i}", 2_000)
    clock.advance(dt.timedelta(days=2))
    result = s.mature_pending(db, batch_size=3)
    assert (result.items, result.points) == (10, 150)
    assert s.balance(db, program=PROGRAM, member="alice").available == 50
    assert s.balance(db, program=PROGRAM, member="bob").available == 100
    assert s.verify_ledger(db).ok


def test_actions_are_not_pending(db: Database) -> None:
    make_program(db, rules={"pending_days": 7, **ACTION_RULES})
    enrol(db, "alice")
    result = s.earn_action(db, program=PROGRAM, member="alice", action="share", reference="x")
    assert (result.status, result.matures_at) == ("available", None)


# --- paid with points ----------------------------------------------------------------------


def test_the_part_paid_with_points_earns_nothing(db: Database) -> None:
    make_program(db)
    enrol(db, "alice")
    assert earn(db, "alice", "o1", 10_000, paid_with_points_minor=4_000).points_granted == 60
    counts = row_counts(db)
    nothing = earn(db, "alice", "o2", 10_000, paid_with_points_minor=10_000)
    assert (nothing.points_requested, nothing.points_granted, nothing.capped_by) == (0, 0, None)
    assert row_counts(db)["lots"] == counts["lots"]
    with pytest.raises(InvalidInput):
        earn(db, "alice", "o3", 10_000, paid_with_points_minor=10_001)
    assert s.balance(db, program=PROGRAM, member="alice").available == 60


# --- idempotency ---------------------------------------------------------------------------


def test_a_retry_replays_the_first_result_and_writes_nothing(
    db: Database, clock: FixedClock
) -> None:
    make_program(db)
    enrol(db, "alice")
    first = earn(db, "alice", "o1", 12_345)
    assert not first.replayed
    assert first.expires_at == local(2027, 2, 21, 18, 0)  # three months, local wall time
    counts = row_counts(db)

    clock.advance(dt.timedelta(hours=1))
    again = earn(db, "alice", "o1", 12_345, currency="cny")
    assert again.replayed
    assert dataclasses.replace(first, replayed=True) == again
    assert row_counts(db) == counts

    explicit = earn(db, "alice", "o2", 100, idempotency_key="checkout-42")
    counts = row_counts(db)
    assert earn(db, "alice", "o2", 100, idempotency_key="checkout-42") == dataclasses.replace(
        explicit, replayed=True
    )
    assert row_counts(db) == counts


def test_same_key_different_parameters_is_a_conflict(db: Database) -> None:
    make_program(db, rules={"actions": {"share": {"points": 1}}})
    enrol(db, "alice", "bob")
    earn(db, "alice", "o1", 10_000)
    counts = row_counts(db)
    with pytest.raises(IdempotencyConflict):
        earn(db, "alice", "o1", 10_001)
    with pytest.raises(IdempotencyConflict):
        earn(db, "alice", "o1", 10_000, paid_with_points_minor=1)
    with pytest.raises(IdempotencyConflict):
        earn(db, "alice", "o2", 10_000, idempotency_key="earn:o1")
    with pytest.raises(IdempotencyConflict):  # the same key for another kind of write
        s.earn_action(
            db,
            program=PROGRAM,
            member="alice",
            action="share",
            reference="x",
            idempotency_key="earn:o1",
        )
    assert row_counts(db) == counts


def test_the_same_order_with_another_key_already_exists(db: Database) -> None:
    make_program(db)
    enrol(db, "alice", "bob")
    earn(db, "alice", "o1", 10_000)
    counts = row_counts(db)
    with pytest.raises(AlreadyExists):
        earn(db, "alice", "o1", 10_000, idempotency_key="another-key")
    with pytest.raises(AlreadyExists):
        earn(db, "bob", "o1", 10_000, idempotency_key="bobs-key")
    assert row_counts(db) == counts


# --- quotes --------------------------------------------------------------------------------


def test_quote_writes_nothing_and_matches_the_earn(db: Database) -> None:
    make_program(db, rounding="half_up", rules={"category_ratios": {"food": "2.5"}})
    enrol(db, "alice")
    lines = [{"amount_minor": 1_033, "category": "food"}, {"amount_minor": 999}]
    counts = row_counts(db)
    quote = s.quote_purchase(
        db, program=PROGRAM, currency="CNY", lines=lines, paid_with_points_minor=500
    )
    assert row_counts(db) == counts
    assert quote.rule_version == 1
    assert quote.points == quote.points_after_caps
    assert quote.capped_by is None
    earned = s.earn_purchase(
        db,
        program=PROGRAM,
        member="alice",
        order_id="o1",
        currency="CNY",
        lines=lines,
        paid_with_points_minor=500,
    )
    assert earned.points_granted == quote.points > 0


def test_quote_with_a_member_applies_caps_and_budget(db: Database) -> None:
    make_program(db, rules={"caps": {"member_daily": 150, "program_daily": 250}})
    enrol(db, "alice", "bob", "carol")
    earn(db, "alice", "o1", 10_000)

    def quote(member: str | None) -> Any:
        return s.quote_purchase(
            db, program=PROGRAM, currency="CNY", amount_minor=10_000, member=member
        )

    counts = row_counts(db)
    anonymous = quote(None)
    assert (anonymous.points, anonymous.points_after_caps, anonymous.capped_by) == (100, 100, None)
    capped = quote("alice")
    assert (capped.points, capped.points_after_caps, capped.capped_by) == (100, 50, "member_daily")
    assert row_counts(db) == counts
    assert earn(db, "alice", "o2", 10_000).points_granted == capped.points_after_caps

    earn(db, "bob", "o3", 10_000)
    budget = quote("carol")
    assert (budget.points_after_caps, budget.capped_by) == (0, "program_daily")
    assert earn(db, "carol", "o4", 10_000).points_granted == 0
