"""Tiers on both databases: upgrade at once on the earn that crosses a threshold, the
multiplier in pricing, refunds that undo an upgrade, evaluations, locks and the checks of
``jifen verify``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from helpers import PROGRAM, earn, enrol, local, make_program

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock

LADDER: dict[str, Any] = {
    "tiers": [
        {"code": "member", "name": "普通", "threshold": 0},
        {"code": "silver", "name": "银卡", "threshold": 1_000, "multiplier": "1.5"},
        {"code": "gold", "name": "金卡", "threshold": 5_000, "multiplier": "2"},
    ],
    "window": "rolling",
    "window_months": 12,
    "anchor": "upgrade",
    "period_months": 12,
}


def _tiers(db: Database, **changes: Any) -> None:
    s.publish_tiers(db, program=PROGRAM, rules={**LADDER, **changes}, created_by="mkt")


def _verify_clean(db: Database) -> None:
    report = s.verify_ledger(db)
    assert report.ok, [c for c in report.checks if not c.ok]


@pytest.fixture
def shop(db: Database, clock: FixedClock) -> Database:
    clock.set(local(2026, 3, 1, 10))
    make_program(db, rules={"base_ratio": "1"})
    enrol(db, "alice", "bob")
    _tiers(db)
    return db


def test_the_earn_that_crosses_a_threshold_moves_the_member_up_and_says_so(
    shop: Database,
) -> None:
    first = earn(shop, "alice", "o-1", 90_000)  # 900 points: still member
    assert (first.tier, first.tier_upgraded_from, first.tier_multiplier) == ("member", None, "1")
    second = earn(shop, "alice", "o-2", 20_000)  # 200 more: 1,100 crosses silver
    assert (second.tier, second.tier_upgraded_from) == ("silver", "member")
    third = earn(shop, "alice", "o-3", 10_000)  # silver earns 1.5 x
    assert (third.points_granted, third.tier_multiplier) == (150, "1.5")
    progress = s.tier_progress(shop, program=PROGRAM, member="alice")
    assert (progress.tier, progress.measure, progress.next_tier) == ("silver", 1_250, "gold")
    assert progress.to_next_tier == 3_750
    assert progress.to_keep_tier == 0
    history = s.tier_history(shop, program=PROGRAM, member="alice")
    assert [(h.from_tier, h.to_tier, h.reason) for h in history] == [("member", "silver", "earn")]
    _verify_clean(shop)


def test_a_refund_undoes_the_upgrade_at_once_when_the_program_says_so(
    shop: Database, clock: FixedClock
) -> None:
    _tiers(shop, on_reversal="at_once")
    earn(shop, "alice", "o-1", 90_000)
    assert earn(shop, "alice", "o-2", 20_000).tier == "silver"
    s.refund_order(
        shop, program=PROGRAM, order_id="o-2", refund_id="r-1", amount_minor=20_000, currency="CNY"
    )
    s.complete_refund(shop, program=PROGRAM, refund_id="r-1")
    progress = s.tier_progress(shop, program=PROGRAM, member="alice")
    assert (progress.tier, progress.measure) == ("member", 900)
    reasons = [h.reason for h in s.tier_history(shop, program=PROGRAM, member="alice")]
    assert reasons == ["refund", "earn"]
    _verify_clean(shop)


def test_the_evaluation_moves_down_one_tier_and_catches_up_missed_periods(
    shop: Database, clock: FixedClock
) -> None:
    earn(shop, "alice", "o-1", 600_000)  # 6,000: gold
    assert s.tier_progress(shop, program=PROGRAM, member="alice").tier == "gold"
    clock.set(local(2028, 3, 5, 10))  # two evaluations due; nothing earned since 2026
    result = s.evaluate_tiers(shop)
    # 2027-03-01: the earn lies in the 12 months before, gold kept; 2028-03-01: down one.
    assert (result.evaluated, result.kept, result.down) == (2, 1, 1)
    history = s.tier_history(shop, program=PROGRAM, member="alice")
    assert [(h.from_tier, h.to_tier, h.reason) for h in history] == [
        ("gold", "silver", "evaluation"),
        ("gold", "gold", "evaluation"),
        ("member", "gold", "earn"),
    ]
    assert history[0].due_at == local(2028, 3, 1)
    assert history[0].evaluate_at == local(2029, 3, 1)
    assert s.evaluate_tiers(shop).evaluated == 0
    _verify_clean(shop)


def test_a_lock_holds_the_tier_through_an_evaluation(shop: Database, clock: FixedClock) -> None:
    s.set_member_tier(
        shop, program=PROGRAM, member="bob", tier="gold", reason="VIP guest", change_id="c-1",
        actor="ops", locked_until=local(2027, 6, 1),
    )  # fmt: skip
    clock.set(local(2027, 3, 2, 10))
    assert s.evaluate_tiers(shop).kept == 1
    assert s.tier_progress(shop, program=PROGRAM, member="bob").tier == "gold"
    clock.set(local(2028, 3, 2, 10))
    assert s.evaluate_tiers(shop).down == 1
    _verify_clean(shop)


def test_forecast_and_preview(shop: Database, clock: FixedClock) -> None:
    earn(shop, "alice", "o-1", 600_000)
    earn(shop, "bob", "o-2", 150_000)
    preview = s.preview_tiers(shop, program=PROGRAM, rules={**LADDER, "tiers": [
        {"code": "member", "threshold": 0},
        {"code": "silver", "threshold": 2_000},
        {"code": "gold", "threshold": 7_000},
    ]})  # fmt: skip
    assert [(c.tier, c.members) for c in preview] == [("member", 1), ("silver", 1), ("gold", 0)]
    forecast = s.tier_forecast(shop, program=PROGRAM, days=400)
    assert (forecast.down, forecast.keep) == (0, 2)  # both earns count at the evaluation
    assert dt.timedelta(0) < forecast.until_at - clock.now()


def test_switching_tiers_on_places_members_by_what_they_earned_before(
    db: Database, clock: FixedClock
) -> None:
    clock.set(local(2026, 3, 1, 10))
    make_program(db, rules={"base_ratio": "1"})
    enrol(db, "alice", "bob", "carol")
    earn(db, "alice", "o-1", 600_000)  # 6,000 points before tiers exist
    earn(db, "bob", "o-2", 150_000)
    clock.set(local(2026, 4, 1, 10))
    _tiers(db)
    assert s.tier_progress(db, program=PROGRAM, member="alice").tier == "member"
    placed = s.place_members(db, program=PROGRAM, batch_size=2)
    assert (placed.up, placed.batches) == (2, 2)
    tiers = {m: s.tier_progress(db, program=PROGRAM, member=m).tier for m in ("alice", "bob")}
    assert tiers == {"alice": "gold", "bob": "silver"}
    [change] = s.tier_history(db, program=PROGRAM, member="alice")
    assert (change.reason, change.measure) == ("placement", 6_000)
    assert s.place_members(db, program=PROGRAM).up == 0  # idempotent
    _verify_clean(db)
