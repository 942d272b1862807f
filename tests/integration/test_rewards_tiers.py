"""Rewards and member tiers on both databases: a reward limited to tiers is offered to those
tiers only and refused to the others with reason ``tier``, a tier's own price is what the
catalog shows and what redeeming charges, the price follows the member's tier as it changes,
and a program without tiers redeems as before."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import PROGRAM, earn, enrol, local, make_program, row_counts

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.errors import InsufficientPoints, RewardUnavailable
from loyalty.services.reward_results import RewardOffer

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
SHIP = {"name": "Ann", "phone": "13800000000", "address": "1 Road"}


def _reward(db: Database, code: str, **terms: Any) -> None:
    s.create_reward(
        db, program=PROGRAM, code=code, kind="item", actor="mkt", stock=10,
        terms={"name": code.title(), **terms},
    )  # fmt: skip


def _offer(db: Database, member: str, code: str) -> RewardOffer:
    (offer,) = [o for o in s.list_rewards(db, program=PROGRAM, member=member) if o.code == code]
    return offer


def _redeem(db: Database, member: str, code: str, quantity: int = 1) -> Any:
    return s.redeem_reward(
        db, program=PROGRAM, member=member, reward=code, quantity=quantity, shipping=SHIP
    )


def _available(db: Database, member: str) -> int:
    return s.balance(db, program=PROGRAM, member=member).available


@pytest.fixture
def shop(db: Database, clock: FixedClock) -> Database:
    """A program earning 1 point per yuan, with tiers; alice and bob are enrolled."""
    clock.set(local(2026, 3, 1, 10))
    make_program(db, rules={"base_ratio": "1"})
    enrol(db, "alice", "bob")
    s.publish_tiers(db, program=PROGRAM, rules=LADDER, created_by="mkt")
    return db


def test_a_reward_for_gold_is_refused_below_gold_and_offered_at_gold(shop: Database) -> None:
    _reward(shop, "lounge", points=500, tiers=["gold"])
    earn(shop, "alice", "o-1", 200_000)  # 2,000 points: silver
    earn(shop, "bob", "o-2", 600_000)  # 6,000 points: gold
    offer = _offer(shop, "alice", "lounge")
    assert (offer.redeemable, offer.reasons) == (False, ("tier",))
    before = row_counts(shop)
    with pytest.raises(RewardUnavailable) as refused:
        _redeem(shop, "alice", "lounge")
    assert refused.value.details["reasons"] == ["tier"]
    assert row_counts(shop) == before  # nothing changed
    assert _available(shop, "alice") == 2_000

    offer = _offer(shop, "bob", "lounge")
    assert (offer.redeemable, offer.reasons, offer.points) == (True, (), 500)
    assert _redeem(shop, "bob", "lounge").points == 500
    assert _available(shop, "bob") == 6_000 - 500
    assert s.verify_ledger(shop).ok


def test_a_member_never_placed_redeems_as_the_lowest_tier(shop: Database) -> None:
    _reward(shop, "welcome", points=100, tiers=["member"], tier_points={"member": 50})
    earn(shop, "alice", "o-1", 30_000)  # 300 points, enrolled before the tiers: never placed
    offer = _offer(shop, "alice", "welcome")
    assert (offer.redeemable, offer.points) == (True, 50)
    assert _redeem(shop, "alice", "welcome").points == 50
    assert _available(shop, "alice") == 250


def test_the_tier_price_is_shown_and_charged(shop: Database) -> None:
    _reward(shop, "mug", points=400, tier_points={"silver": 300, "gold": 200})
    earn(shop, "alice", "o-1", 100_000)  # 1,000 points: silver
    earn(shop, "bob", "o-2", 500_000)  # 5,000 points: gold
    assert _offer(shop, "alice", "mug").points == 300
    assert _offer(shop, "bob", "mug").points == 200
    result = _redeem(shop, "alice", "mug", quantity=2)
    assert result.points == 600
    assert _available(shop, "alice") == 400
    assert _redeem(shop, "bob", "mug").points == 200
    assert _available(shop, "bob") == 4_800
    assert s.verify_ledger(shop).ok


def test_points_enough_at_the_tier_price_are_enough_to_redeem(shop: Database) -> None:
    _reward(shop, "mug", points=400, tier_points={"silver": 300})
    earn(shop, "alice", "o-1", 100_000)  # 1,000 points: silver
    _redeem(shop, "alice", "mug", quantity=2)  # 600: 400 left
    offer = _offer(shop, "alice", "mug")
    assert (offer.redeemable, offer.points) == (True, 300)  # 400 < base price, >= 300
    _redeem(shop, "alice", "mug")
    assert _available(shop, "alice") == 100
    offer = _offer(shop, "alice", "mug")
    assert offer.reasons == ("insufficient_points",)
    with pytest.raises(InsufficientPoints) as refused:
        _redeem(shop, "alice", "mug")
    assert refused.value.details["needed"] == 300


def test_the_price_follows_an_upgrade(shop: Database) -> None:
    _reward(shop, "mug", points=400, tier_points={"silver": 300, "gold": 200})
    earn(shop, "alice", "o-1", 90_000)  # 900 points: member
    assert _offer(shop, "alice", "mug").points == 400
    assert _redeem(shop, "alice", "mug").points == 400
    earn(shop, "alice", "o-2", 20_000)  # 1,100 counted: silver
    assert _offer(shop, "alice", "mug").points == 300
    assert _redeem(shop, "alice", "mug").points == 300
    assert _available(shop, "alice") == 900 + 200 - 400 - 300
    assert s.verify_ledger(shop).ok


def test_the_price_follows_a_manual_change_of_tier(shop: Database) -> None:
    _reward(shop, "lounge", points=500, tiers=["gold"], tier_points={"gold": 250})
    earn(shop, "alice", "o-1", 100_000)
    assert _offer(shop, "alice", "lounge").reasons == ("tier",)
    s.set_member_tier(
        shop, program=PROGRAM, member="alice", tier="gold", reason="VIP event", change_id="c-1"
    )
    offer = _offer(shop, "alice", "lounge")
    assert (offer.redeemable, offer.points) == (True, 250)
    assert _redeem(shop, "alice", "lounge").points == 250


def test_a_program_without_tiers_redeems_as_before(db: Database) -> None:
    make_program(db, rules={"base_ratio": "1"})
    enrol(db, "alice")
    earn(db, "alice", "o-1", 200_000)  # 2,000 points
    _reward(db, "mug", points=400, tier_points={"silver": 300})
    _reward(db, "lounge", points=500, tiers=["gold"])
    mug, lounge = _offer(db, "alice", "mug"), _offer(db, "alice", "lounge")
    assert (mug.redeemable, mug.points) == (True, 400)
    assert (lounge.redeemable, lounge.reasons) == (False, ("tier",))
    assert _redeem(db, "alice", "mug").points == 400
    with pytest.raises(RewardUnavailable):
        _redeem(db, "alice", "lounge")
    assert _available(db, "alice") == 1_600
    assert s.verify_ledger(db).ok


def test_tiers_published_for_later_price_from_when_they_take_effect(
    db: Database, clock: FixedClock
) -> None:
    clock.set(local(2026, 3, 1, 10))
    make_program(db, rules={"base_ratio": "1"})
    enrol(db, "alice")
    earn(db, "alice", "o-1", 100_000)
    _reward(db, "welcome", points=100, tiers=["member"], tier_points={"member": 50})
    s.publish_tiers(
        db, program=PROGRAM, rules=LADDER, created_by="mkt", effective_from=local(2026, 4, 1)
    )
    offer = _offer(db, "alice", "welcome")
    assert (offer.reasons, offer.points) == (("tier",), 100)
    clock.set(local(2026, 4, 1, 9))
    offer = _offer(db, "alice", "welcome")
    assert (offer.redeemable, offer.points) == (True, 50)
    assert _redeem(db, "alice", "welcome").points == 50


def test_a_redemption_first_does_the_tier_evaluation_the_sweep_has_not_reached(
    shop: Database, clock: FixedClock
) -> None:
    _reward(shop, "lounge", points=500, tiers=["gold"])
    earn(shop, "bob", "o-1", 600_000)  # gold until its evaluation on 2027-03-01
    clock.set(local(2028, 3, 5, 10))  # both evaluations overdue; the sweep has not run
    with pytest.raises(RewardUnavailable) as refused:
        _redeem(shop, "bob", "lounge")
    assert refused.value.details["reasons"] == ["tier"]
    # The refusal rolls back the catch-up too: the sweep still finds both evaluations due.
    assert s.evaluate_tiers(shop).evaluated == 2
    assert s.tier_progress(shop, program=PROGRAM, member="bob").tier == "silver"
    assert s.verify_ledger(shop).ok


def test_a_redemption_after_an_overdue_evaluation_pays_the_new_tier_price(
    shop: Database, clock: FixedClock
) -> None:
    s.publish_rules(shop, program=PROGRAM, rules={"base_ratio": "1", "expiry": {"months": 0}})
    _reward(shop, "tea", points=800, tier_points={"gold": 400, "silver": 600})
    earn(shop, "bob", "o-1", 600_000)  # gold until its evaluation on 2027-03-01; never expire
    clock.set(local(2028, 3, 5, 10))  # both evaluations overdue: gold kept, then silver
    assert _redeem(shop, "bob", "tea").points == 600
    assert s.evaluate_tiers(shop).evaluated == 0  # the redemption wrote them
    reasons = [c.reason for c in s.tier_history(shop, program=PROGRAM, member="bob")]
    assert reasons == ["evaluation", "evaluation", "earn"]
    assert s.verify_ledger(shop).ok
