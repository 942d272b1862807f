"""More tier behaviour on both databases: the money measure, calendar windows, join and
calendar anchors, grace, downgrade to the measure, counted adjustments and transfers,
actions and quotes with the multiplier, caps after the multiplier, manual changes that
replay or conflict, locks that end, publishing that would drop a held tier, cancelling
scheduled versions, and errors that change nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from helpers import PROGRAM, earn, enrol, local, make_program, row_counts

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.errors import (
    Conflict,
    IdempotencyConflict,
    InvalidInput,
    InvalidRule,
    LoyaltyError,
    MemberNotFound,
    NotFound,
)

TIERS: list[dict[str, Any]] = [
    {"code": "member", "name": "普通", "threshold": 0},
    {"code": "silver", "name": "银卡", "threshold": 1_000, "multiplier": "1.5"},
    {"code": "gold", "name": "金卡", "threshold": 5_000, "multiplier": "2"},
]
MONEY_TIERS: list[dict[str, Any]] = [
    {"code": "member", "threshold": 0},
    {"code": "silver", "threshold": 50_000},
    {"code": "gold", "threshold": 200_000},
]


def publish(db: Database, **settings: Any) -> None:
    s.publish_tiers(db, program=PROGRAM, rules={"tiers": TIERS, **settings}, created_by="mkt")


def tier_of(db: Database, member: str = "alice") -> str | None:
    return s.tier_progress(db, program=PROGRAM, member=member).tier


def reasons(db: Database, member: str = "alice") -> list[tuple[str | None, str | None, str]]:
    rows = reversed(s.tier_history(db, program=PROGRAM, member=member))
    return [(h.from_tier, h.to_tier, h.reason) for h in rows]


def set_tier(db: Database, tier: str, change_id: str, **kw: Any) -> Any:
    return s.set_member_tier(
        db, program=PROGRAM, member="alice", tier=tier, reason="care", change_id=change_id, **kw
    )


def verified(db: Database) -> None:
    report = s.verify_ledger(db)
    assert report.ok, [c for c in report.checks if not c.ok]


@pytest.fixture
def shop(db: Database, clock: FixedClock) -> Database:
    """A one-point-a-yuan shop in Shanghai with alice and bob, no tiers yet."""
    clock.set(local(2026, 3, 1, 10))
    make_program(db, rules={"base_ratio": "1"}, transfers_enabled=True)
    enrol(db, "alice", "bob")
    return db


# --- measures and windows -------------------------------------------------------------------


def test_the_money_measure_counts_money_paid_other_than_with_points(shop: Database) -> None:
    s.publish_tiers(shop, program=PROGRAM, rules={"tiers": MONEY_TIERS, "measure": "money",
                                                  "on_reversal": "at_once"})  # fmt: skip
    first = earn(shop, "alice", "o-1", 60_000, paid_with_points_minor=20_000)
    assert first.tier == "member"  # 400 yuan paid in money, 600 points earned
    progress = s.tier_progress(shop, program=PROGRAM, member="alice")
    assert (progress.measure_kind, progress.measure, progress.to_next_tier) == (
        "money", 40_000, 10_000,
    )  # fmt: skip
    assert earn(shop, "alice", "o-2", 10_000).tier == "silver"
    s.refund_order(shop, program=PROGRAM, order_id="o-2", refund_id="r-1", amount_minor=5_000,
                   currency="CNY", succeeded=True)  # fmt: skip
    assert tier_of(shop) == "member"  # 45,000 left: below silver at once
    assert reasons(shop)[-1] == ("silver", "member", "refund")
    verified(shop)


def test_a_quarter_window_and_quarter_periods(shop: Database, clock: FixedClock) -> None:
    publish(shop, window="calendar", window_months=3, anchor="calendar", period_months=3)
    clock.set(local(2026, 3, 20, 12))
    assert earn(shop, "alice", "o-1", 100_000).tier == "silver"
    progress = s.tier_progress(shop, program=PROGRAM, member="alice")
    assert progress.period_end_at == local(2026, 4, 1)  # the quarter ends the period
    clock.set(local(2026, 3, 31, 23, 59))
    assert s.tier_progress(shop, program=PROGRAM, member="alice").measure == 1_000
    clock.set(local(2026, 4, 1, 0, 1))
    assert s.tier_progress(shop, program=PROGRAM, member="alice").measure == 0  # Q2 begins
    assert s.evaluate_tiers(shop).kept == 1  # Q1 closes at the period end: 1,000 kept silver
    assert s.tier_progress(shop, program=PROGRAM, member="alice").evaluate_at == local(2026, 7, 1)
    clock.set(local(2026, 7, 1, 0, 1))
    assert s.evaluate_tiers(shop).down == 1  # nothing in Q2
    assert tier_of(shop) == "member"
    verified(shop)


def test_a_join_anchored_period_ends_at_the_join_anniversary(
    db: Database, clock: FixedClock
) -> None:
    clock.set(local(2025, 7, 20, 9))
    make_program(db, rules={"base_ratio": "1"})
    enrol(db, "alice")
    clock.set(local(2026, 3, 1, 10))
    publish(db, anchor="join", period_months=12)
    earn(db, "alice", "o-1", 100_000)
    progress = s.tier_progress(db, program=PROGRAM, member="alice")
    assert (progress.tier, progress.period_end_at) == ("silver", local(2026, 7, 20))
    clock.set(local(2026, 7, 20))
    assert s.evaluate_tiers(db).kept == 1
    assert s.tier_progress(db, program=PROGRAM, member="alice").evaluate_at == local(2027, 7, 20)


def test_a_calendar_year_period_ends_on_1_january(shop: Database, clock: FixedClock) -> None:
    publish(shop, anchor="calendar", period_months=12)
    earn(shop, "alice", "o-1", 100_000)
    assert s.tier_progress(shop, program=PROGRAM, member="alice").evaluate_at == local(2027, 1, 1)


# --- grace and downgrades -------------------------------------------------------------------


@pytest.mark.parametrize(("requalify", "expected"), [(True, "silver"), (False, "member")])
def test_requalifying_during_the_grace_keeps_the_tier(
    shop: Database, clock: FixedClock, requalify: bool, expected: str
) -> None:
    publish(shop, window_months=1, period_months=2, grace_days=30)
    earn(shop, "alice", "o-1", 100_000)  # silver until 1 May, due 31 May
    progress = s.tier_progress(shop, program=PROGRAM, member="alice")
    assert (progress.period_end_at, progress.evaluate_at) == (local(2026, 5, 1), local(2026, 5, 31))
    clock.set(local(2026, 5, 1, 12))  # nothing in April: the period ends short
    assert s.evaluate_tiers(shop).evaluated == 0  # but the grace runs
    if requalify:
        clock.set(local(2026, 5, 20, 12))
        earn(shop, "alice", "o-2", 100_000)  # in the window that closes at the due moment
    clock.set(local(2026, 5, 31))
    assert s.evaluate_tiers(shop).evaluated == 1
    assert tier_of(shop) == expected
    last = s.tier_history(shop, program=PROGRAM, member="alice")[0]
    assert (last.reason, last.due_at) == ("evaluation", local(2026, 5, 31))
    verified(shop)


@pytest.mark.parametrize(("policy", "expected"), [("to_measure", "member"), ("one", "silver")])
def test_downgrade_to_the_measure_or_by_one(
    shop: Database, clock: FixedClock, policy: str, expected: str
) -> None:
    publish(shop, downgrade=policy, window_months=3, period_months=3)
    earn(shop, "alice", "o-1", 600_000)
    assert tier_of(shop) == "gold"
    clock.set(local(2026, 9, 1, 12))  # two periods: kept at 1 June, judged on nothing at 1 Sept
    s.evaluate_tiers(shop)
    assert reasons(shop)[-1] == ("gold", expected, "evaluation")
    verified(shop)


# --- what counts ----------------------------------------------------------------------------


@pytest.mark.parametrize("counted", [True, False])
def test_adjustments_and_transfers_count_only_when_the_version_says_so(
    shop: Database, counted: bool
) -> None:
    publish(shop, count_adjustments=counted, count_transfers=counted)
    s.adjust_points(shop, program=PROGRAM, member="alice", points=1_200, reason="goodwill",
                    adjustment_id="a-1")  # fmt: skip
    earn(shop, "bob", "o-1", 600_000)  # bob is gold
    s.transfer_points(shop, program=PROGRAM, sender="bob", recipient="alice", points=4_000,
                      transfer_id="t-1")  # fmt: skip
    progress = s.tier_progress(shop, program=PROGRAM, member="alice")
    if counted:
        assert (progress.tier, progress.measure) == ("gold", 5_200)
        assert reasons(shop) == [("member", "silver", "adjustment"), ("silver", "gold", "transfer")]
    else:
        assert (progress.tier, progress.measure, reasons(shop)) == ("member", 0, [])
    assert tier_of(shop, "bob") == "gold"  # what bob sent still counted as earned
    verified(shop)


def test_a_counted_deduction_moves_down_at_once_under_at_once(shop: Database) -> None:
    publish(shop, count_adjustments=True, on_reversal="at_once")
    earn(shop, "alice", "o-1", 110_000)
    s.adjust_points(shop, program=PROGRAM, member="alice", points=-200, reason="correction",
                    adjustment_id="a-1")  # fmt: skip
    assert reasons(shop) == [("member", "silver", "earn"), ("silver", "member", "adjustment")]
    verified(shop)


# --- the multiplier -------------------------------------------------------------------------


def test_actions_earn_with_the_tier_multiplier(shop: Database) -> None:
    s.publish_rules(shop, program=PROGRAM, rules={"base_ratio": "1", "actions": {
        "review": {"points": 5},
    }})  # fmt: skip
    publish(shop)
    assert s.earn_action(shop, program=PROGRAM, member="alice", action="review",
                         reference="r-1").points_granted == 5  # fmt: skip
    set_tier(shop, "silver", "c-1")
    silver = s.earn_action(shop, program=PROGRAM, member="alice", action="review", reference="r-2")
    assert (silver.points_granted, silver.tier_multiplier) == (7, "1.5")  # 7.5, floored
    set_tier(shop, "gold", "c-2")
    gold = s.earn_action(shop, program=PROGRAM, member="alice", action="review", reference="r-3")
    assert (gold.points_granted, gold.tier) == (10, "gold")
    verified(shop)


def test_a_quote_for_a_member_applies_their_tier(shop: Database) -> None:
    publish(shop)
    set_tier(shop, "gold", "c-1")
    quote = s.quote_purchase(shop, program=PROGRAM, currency="CNY", amount_minor=10_050,
                             member="alice")  # fmt: skip
    assert (quote.points, quote.tier, quote.tier_multiplier) == (201, "gold", "2")
    plain = s.quote_purchase(shop, program=PROGRAM, currency="CNY", amount_minor=10_050)
    assert (plain.points, plain.tier, plain.tier_multiplier) == (100, None, None)
    assert earn(shop, "alice", "o-1", 10_050).points_granted == quote.points


def test_caps_apply_after_the_multiplier(shop: Database) -> None:
    s.publish_rules(shop, program=PROGRAM, rules={"base_ratio": "1",
                                                  "caps": {"member_daily": 250}})  # fmt: skip
    publish(shop)
    set_tier(shop, "gold", "c-1")
    first = earn(shop, "alice", "o-1", 10_000)  # 100 x 2
    assert (first.points_requested, first.points_granted) == (200, 200)
    second = earn(shop, "alice", "o-2", 10_000)
    assert (second.points_requested, second.points_granted, second.capped_by) == (
        200, 50, "member_daily",
    )  # fmt: skip
    verified(shop)


# --- manual changes and locks ---------------------------------------------------------------


def test_a_manual_change_replays_under_its_id_and_conflicts_with_other_terms(
    shop: Database,
) -> None:
    publish(shop)
    first = set_tier(shop, "gold", "c-1", actor="ops")
    assert (first.to_tier, first.reason, first.replayed) == ("gold", "manual", False)
    before = row_counts(shop)
    again = set_tier(shop, "gold", "c-1", actor="ops")
    assert (again.to_tier, again.replayed, again.created_at) == ("gold", True, first.created_at)
    assert row_counts(shop) == before
    with pytest.raises(IdempotencyConflict):
        set_tier(shop, "silver", "c-1", actor="ops")
    with pytest.raises(IdempotencyConflict):
        set_tier(shop, "gold", "c-1", actor="someone else")
    assert row_counts(shop) == before
    assert reasons(shop) == [("member", "gold", "manual")]


def test_a_lock_ends_at_its_time(shop: Database, clock: FixedClock) -> None:
    publish(shop, on_reversal="at_once")
    earn(shop, "alice", "o-1", 120_000)  # silver by earning
    set_tier(shop, "silver", "c-1", locked_until=local(2026, 4, 1))
    s.refund_order(shop, program=PROGRAM, order_id="o-1", refund_id="r-1", amount_minor=50_000,
                   currency="CNY", succeeded=True)  # fmt: skip
    progress = s.tier_progress(shop, program=PROGRAM, member="alice")
    assert (progress.tier, progress.lock, progress.locked_until_at) == (
        "silver", "silver", local(2026, 4, 1),
    )  # fmt: skip
    clock.set(local(2026, 4, 1))
    progress = s.tier_progress(shop, program=PROGRAM, member="alice")
    assert (progress.tier, progress.lock, progress.locked_until_at) == ("silver", None, None)
    s.refund_order(shop, program=PROGRAM, order_id="o-1", refund_id="r-2", amount_minor=10_000,
                   currency="CNY", succeeded=True)  # fmt: skip
    assert tier_of(shop) == "member"  # the lock no longer holds: down at once
    assert [r for _, _, r in reasons(shop)] == ["earn", "lock", "refund"]
    verified(shop)


def test_a_manual_change_without_a_lock_ends_the_lock(shop: Database, clock: FixedClock) -> None:
    publish(shop, period_months=1)
    set_tier(shop, "gold", "c-1", locked_until=local(2027, 1, 1))
    set_tier(shop, "silver", "c-2")
    assert s.tier_progress(shop, program=PROGRAM, member="alice").lock is None
    clock.set(local(2026, 4, 2))
    s.evaluate_tiers(shop)
    assert tier_of(shop) == "member"


# --- versions -------------------------------------------------------------------------------


def test_publishing_cannot_drop_a_tier_members_hold_or_are_locked_at(shop: Database) -> None:
    publish(shop)
    set_tier(shop, "gold", "c-1", locked_until=local(2026, 6, 1))
    set_tier(shop, "silver", "c-2", locked_until=local(2026, 6, 1))  # holds silver, lock silver
    s.set_member_tier(shop, program=PROGRAM, member="bob", tier="gold", reason="x",
                      change_id="c-3")  # fmt: skip
    before = row_counts(shop)
    with pytest.raises(Conflict, match="gold") as info:
        s.publish_tiers(shop, program=PROGRAM, rules={"tiers": TIERS[:2]})
    assert info.value.details["tiers"] == ["gold"]
    with pytest.raises(Conflict, match="silver"):
        s.publish_tiers(shop, program=PROGRAM, rules={"tiers": [TIERS[0], TIERS[2]]})
    assert row_counts(shop) == before
    renamed = [TIERS[0], {**TIERS[1], "name": "白银", "threshold": 800}, TIERS[2]]
    assert s.publish_tiers(shop, program=PROGRAM, rules={"tiers": renamed}).version == 2


def test_a_scheduled_version_can_be_cancelled_before_its_time(
    shop: Database, clock: FixedClock
) -> None:
    publish(shop)
    later = clock.now() + dt.timedelta(days=10)
    cheaper = [TIERS[0], {**TIERS[1], "threshold": 500}, TIERS[2]]
    s.publish_tiers(shop, program=PROGRAM, rules={"tiers": cheaper}, effective_from=later)
    s.publish_tiers(shop, program=PROGRAM, rules={"tiers": TIERS}, effective_from=later)
    with pytest.raises(Conflict, match="version 3"):
        s.cancel_tiers(shop, program=PROGRAM, version=2)  # version 3 follows it
    s.cancel_tiers(shop, program=PROGRAM, version=3, cancelled_by="mkt")
    s.cancel_tiers(shop, program=PROGRAM, version=2, cancelled_by="mkt")
    with pytest.raises(NotFound, match="was cancelled"):
        s.cancel_tiers(shop, program=PROGRAM, version=2)
    with pytest.raises(NotFound, match="does not exist"):
        s.cancel_tiers(shop, program=PROGRAM, version=9)
    with pytest.raises(Conflict, match="in force"):
        s.cancel_tiers(shop, program=PROGRAM, version=1)
    assert [v.version for v in s.list_tier_versions(shop, program=PROGRAM)] == [1]
    clock.set(later + dt.timedelta(days=1))
    found = s.tiers_in_force(shop, program=PROGRAM)
    assert found is not None and found[0] == 1
    earn(shop, "alice", "o-1", 60_000)  # 600: silver had it been version 2
    assert tier_of(shop) == "member"
    assert s.publish_tiers(shop, program=PROGRAM, rules={"tiers": cheaper}).version == 4


# --- errors change nothing ------------------------------------------------------------------


def errors(shop: Database, clock: FixedClock) -> list[tuple[type[LoyaltyError], Callable[[], Any]]]:
    past = clock.now() - dt.timedelta(minutes=1)
    bad = [{"code": "member", "threshold": 0}, {"code": "silver", "threshold": 0}]
    return [
        (InvalidRule, lambda: s.publish_tiers(shop, program=PROGRAM, rules={"tiers": bad})),
        (
            InvalidRule,
            lambda: s.publish_tiers(
                shop, program=PROGRAM, rules={"tiers": TIERS}, effective_from=past
            ),
        ),
        (InvalidRule, lambda: s.preview_tiers(shop, program=PROGRAM, rules={"tiers": bad})),
        (InvalidInput, lambda: set_tier(shop, "platinum", "e-1")),
        (InvalidInput, lambda: set_tier(shop, "gold", "e-2", locked_until=past)),
        (InvalidInput, lambda: s.cancel_tiers(shop, program=PROGRAM, version=0)),
        (Conflict, lambda: s.cancel_tiers(shop, program=PROGRAM, version=1)),
        (NotFound, lambda: s.cancel_tiers(shop, program=PROGRAM, version=5)),
        (
            MemberNotFound,
            lambda: s.set_member_tier(
                shop, program=PROGRAM, member="nobody", tier="gold", reason="x", change_id="e-3"
            ),
        ),
        (InvalidInput, lambda: s.tier_history(shop, program=PROGRAM, member="alice", limit=0)),
    ]


def test_every_error_changes_nothing(shop: Database, clock: FixedClock) -> None:
    publish(shop)
    earn(shop, "alice", "o-1", 110_000)
    before = row_counts(shop)
    for error, call in errors(shop, clock):
        with pytest.raises(LoyaltyError) as info:
            call()
        assert isinstance(info.value, error), f"{type(info.value).__name__}: {info.value}"
        assert row_counts(shop) == before, error.__name__
    verified(shop)


def test_a_manual_change_without_tiers_is_a_conflict(shop: Database) -> None:
    before = row_counts(shop)
    with pytest.raises(Conflict, match="no tiers"):
        set_tier(shop, "gold", "c-1")
    assert row_counts(shop) == before
    progress = s.tier_progress(shop, program=PROGRAM, member="alice")
    assert (progress.tiers_enabled, progress.tier) == (False, None)


def test_an_evaluation_moves_up_to_what_the_measure_supports(
    shop: Database, clock: FixedClock
) -> None:
    publish(shop, period_months=3)
    earn(shop, "alice", "o-1", 600_000)  # gold by earning
    set_tier(shop, "silver", "c-1")  # put lower by hand: the measure still says gold
    clock.set(local(2026, 6, 1, 12))
    result = s.evaluate_tiers(shop)
    assert (result.evaluated, result.up) == (1, 1)
    assert reasons(shop)[-1] == ("silver", "gold", "evaluation")
    verified(shop)


@pytest.mark.parametrize(("sweep_first", "expected"), [(True, "silver"), (False, "member")])
def test_a_late_evaluation_weighs_a_refund_settled_after_it_fell_due(
    shop: Database, clock: FixedClock, sweep_first: bool, expected: str
) -> None:
    """A reversed order counts as never earned: an evaluation done after the refund went
    through (here the refund catches it up, as a late sweep would) does not count the
    order; one the sweep did before the refund did, and stands."""
    publish(shop, period_months=3, window_months=3)
    earn(shop, "alice", "o-1", 110_000)  # silver, due 1 June
    clock.set(local(2026, 6, 1, 8))
    if sweep_first:
        s.evaluate_tiers(shop)
    s.refund_order(shop, program=PROGRAM, order_id="o-1", refund_id="r-1", amount_minor=110_000,
                   currency="CNY", succeeded=True)  # fmt: skip
    s.evaluate_tiers(shop)
    evaluation = next(h for h in s.tier_history(shop, program=PROGRAM, member="alice")
                      if h.reason == "evaluation")  # fmt: skip
    assert (evaluation.due_at, evaluation.to_tier) == (local(2026, 6, 1), expected)
    verified(shop)


def test_the_forecast_weighs_a_version_scheduled_before_the_evaluation(
    shop: Database, clock: FixedClock
) -> None:
    publish(shop, period_months=3, window_months=3)
    earn(shop, "alice", "o-1", 110_000)  # silver, due 1 June
    dearer = [TIERS[0], {**TIERS[1], "threshold": 2_000}, TIERS[2]]
    s.publish_tiers(shop, program=PROGRAM, effective_from=local(2026, 5, 1),
                    rules={"tiers": dearer, "period_months": 3, "window_months": 3})  # fmt: skip
    forecast = s.tier_forecast(shop, program=PROGRAM, days=120)
    clock.set(local(2026, 6, 1, 12))
    swept = s.evaluate_tiers(shop)
    assert (swept.kept, swept.down) == (0, 1)
    assert (forecast.keep, forecast.down) == (swept.kept, swept.down)
