"""Redeeming rewards on both databases: points from the soonest-expiring lots, stock, codes,
idempotency, cancellation into the original lots, fulfilment, availability, versions, and
refusals that change nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from helpers import PROGRAM, earn, enrol, hold, local, lots_of, make_program, row_counts, scalar
from sqlalchemy import text

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.errors import (
    AlreadyExists,
    FulfilmentConflict,
    IdempotencyConflict,
    InsufficientPoints,
    InvalidAmount,
    InvalidInput,
    LoyaltyError,
    MemberInactive,
    MemberNotFound,
    OutOfStock,
    RewardLimit,
    RewardNotFound,
    RewardRedemptionNotFound,
    RewardUnavailable,
)
from loyalty.services.reward_results import RewardRedemptionResult

ADDRESS = {"name": "Li Lei", "phone": "13800000000", "address": "1 Nanjing Rd", "city": "上海"}
COUPON_CODES = [f"COF-{n:04d}" for n in range(1, 6)]


def _catalog(db: Database) -> None:
    """A coupon (5 codes, 100 points), a voucher (10 CNY, 200 points, stock 10), a mug
    (300 points, stock 3), a hidden sticker (prize only) and a draw (50 points) that always
    wins the sticker."""
    s.create_reward(
        db, program=PROGRAM, code="coffee", kind="coupon", actor="mkt",
        terms={"name": "Coffee", "points": 100},
    )  # fmt: skip
    s.add_codes(db, program=PROGRAM, reward="coffee", codes=COUPON_CODES, actor="mkt")
    s.create_reward(
        db, program=PROGRAM, code="ten-off", kind="voucher", actor="mkt", stock=10,
        terms={"name": "10 CNY off", "points": 200, "voucher_amount_minor": 1_000,
               "voucher_valid_days": 30},
    )  # fmt: skip
    s.create_reward(
        db, program=PROGRAM, code="mug", kind="item", actor="mkt", stock=3,
        terms={"name": "Mug", "points": 300},
    )  # fmt: skip
    s.create_reward(
        db, program=PROGRAM, code="sticker", kind="item", actor="mkt", stock=5,
        terms={"name": "Sticker", "points": 1, "visible": False},
    )  # fmt: skip
    s.create_reward(
        db, program=PROGRAM, code="lucky", kind="draw", actor="mkt",
        terms={"name": "Lucky draw", "points": 50,
               "prizes": [{"reward": "sticker", "chance_ppm": 1_000_000}]},
    )  # fmt: skip


@pytest.fixture
def shop(db: Database) -> Database:
    """The catalog; alice has 2,000 points, bob 100, carol none."""
    make_program(db)
    enrol(db, "alice", "bob", "carol")
    earn(db, "alice", "o-a", 200_000)
    earn(db, "bob", "o-b", 10_000)
    _catalog(db)
    return db


def redeem(db: Database, reward: str, member: str = "alice", **kw: Any) -> RewardRedemptionResult:
    if reward in ("mug", "sticker") and "shipping" not in kw:
        kw["shipping"] = ADDRESS
    return s.redeem_reward(db, program=PROGRAM, member=member, reward=reward, **kw)


def available(db: Database, member: str = "alice") -> int:
    return s.balance(db, program=PROGRAM, member=member).available


def stock(db: Database, reward: str) -> int | None:
    return s.get_reward(db, program=PROGRAM, reward=reward).stock_left


def cancel(db: Database, redemption: int, reason: str = "changed my mind") -> Any:
    return s.cancel_redemption(
        db, program=PROGRAM, redemption=redemption, reason=reason, actor="ops"
    )


def spends(db: Database, kind: str = "reward_spend") -> list[tuple[int, int]]:
    """``(lot id, points)`` of every entry of ``kind``, in order."""
    with db.read() as conn:
        rows = conn.execute(
            text("SELECT lot_id, available_delta FROM entries WHERE kind = :k ORDER BY id"),
            {"k": kind},
        ).all()
    return [(int(r[0]), int(r[1])) for r in rows]


# --- each kind ----------------------------------------------------------------------------


def test_a_coupon_issues_codes_from_its_pool_once(shop: Database) -> None:
    first = redeem(shop, "coffee", quantity=2)
    assert (first.kind, first.status, first.points, first.quantity) == ("coupon", "issued", 200, 2)
    assert first.codes == ("COF-0001", "COF-0002")
    second = redeem(shop, "coffee", member="bob")
    assert second.codes == ("COF-0003",)
    assert available(shop) == 1_800 and available(shop, "bob") == 0
    info = s.get_reward(shop, program=PROGRAM, reward="coffee")
    assert (info.stock_added, info.stock_left, info.codes_free, info.issued) == (5, 2, 2, 3)
    assert s.get_redemption(shop, program=PROGRAM, redemption=first.id).codes == first.codes

    # A cancelled coupon gives the points back but not its codes: they are void.
    cancelled = cancel(shop, first.id)
    assert cancelled.status == "cancelled" and cancelled.codes == first.codes
    assert available(shop) == 2_000
    info = s.get_reward(shop, program=PROGRAM, reward="coffee")
    assert (info.stock_left, info.codes_free, info.cancelled) == (2, 2, 2)
    assert redeem(shop, "coffee", quantity=2).codes == ("COF-0004", "COF-0005")
    with pytest.raises(OutOfStock, match="fewer than 1 left"):
        redeem(shop, "coffee")
    assert scalar(shop, "SELECT count(DISTINCT redemption_id) FROM reward_codes") == 3
    assert s.verify_ledger(shop).ok


def test_a_voucher_is_issued_in_the_program_currency_until_the_end_of_a_local_day(
    shop: Database, clock: FixedClock
) -> None:
    done = redeem(shop, "ten-off", quantity=3)
    assert (done.points, len(done.vouchers), stock(shop, "ten-off")) == (600, 3, 7)
    codes = {v.code for v in done.vouchers}
    assert len(codes) == 3 and all(c.startswith("V-") and len(c) == 14 for c in codes)
    for voucher in done.vouchers:
        assert (voucher.amount_minor, voucher.currency, voucher.status) == (1_000, "CNY", "active")
        assert voucher.valid_from_at == clock.now()
        # 30 days counting today: the end of 20 December, Shanghai time.
        assert voucher.valid_until_at == local(2026, 12, 21)
        assert (voucher.member, voucher.reward) == ("alice", "ten-off")
    cancel(shop, done.id)
    assert stock(shop, "ten-off") == 10 and available(shop) == 2_000
    again = s.get_redemption(shop, program=PROGRAM, redemption=done.id)
    assert {v.status for v in again.vouchers} == {"cancelled"}
    assert s.verify_ledger(shop).ok


def test_an_item_takes_stock_and_keeps_its_address(shop: Database) -> None:
    done = redeem(shop, "mug", quantity=2)
    assert (done.points, done.status, stock(shop, "mug")) == (600, "issued", 1)
    assert done.shipping == ADDRESS
    assert (done.codes, done.vouchers, done.draw) == ((), (), None)
    with pytest.raises(OutOfStock):
        redeem(shop, "mug", quantity=2)
    cancel(shop, done.id)
    assert stock(shop, "mug") == 3 and available(shop) == 2_000
    assert s.verify_ledger(shop).ok


def test_a_draw_takes_its_points_and_issues_its_prize(shop: Database) -> None:
    done = redeem(shop, "lucky")
    assert (done.kind, done.points, available(shop)) == ("draw", 50, 1_950)
    assert done.draw is not None and done.prize is not None
    assert (done.draw.drawn, done.draw.awarded, done.draw.reason) == ("sticker", "sticker", "won")
    assert (done.prize.reward, done.prize.points, done.prize.parent) == ("sticker", 0, done.id)
    assert stock(shop, "sticker") == 4
    with pytest.raises(InvalidInput, match="one at a time"):
        redeem(shop, "lucky", quantity=2)
    assert s.verify_ledger(shop).ok


# --- points from the soonest-expiring lots --------------------------------------------------


def _three_lots(db: Database, clock: FixedClock, *names: str) -> None:
    """Each member gets 100 points in three lots: expiring in 3 months, 1 month, never."""
    make_program(db)
    enrol(db, *names)
    for name in names:
        earn(db, name, f"{name}-three-months", 10_000)
    clock.advance(dt.timedelta(minutes=1))
    s.publish_rules(db, program=PROGRAM, rules={"expiry": {"months": 1}})
    for name in names:
        earn(db, name, f"{name}-one-month", 10_000)
    clock.advance(dt.timedelta(minutes=1))
    s.publish_rules(db, program=PROGRAM, rules={"expiry": None})
    for name in names:
        earn(db, name, f"{name}-never", 10_000)


def _positions(db: Database, member: str) -> list[int]:
    """Points left available in the member's lots, in the order they were earned."""
    return [lot.available for lot in lots_of(db, member)]


def test_points_come_from_the_soonest_expiring_lots_like_a_hold(
    db: Database, clock: FixedClock
) -> None:
    _three_lots(db, clock, "alice", "bob")
    s.create_reward(
        db, program=PROGRAM, code="mug", kind="item", actor="mkt", stock=10,
        terms={"name": "Mug", "points": 75},
    )  # fmt: skip
    done = redeem(db, "mug", quantity=2)
    assert done.points == 150
    hold(db, "bob", "h-1", 150)
    # one-month lot first (100), then the three-month lot (50); the lot without expiry kept.
    assert _positions(db, "alice") == [50, 0, 100]
    assert _positions(db, "bob") == [50, 0, 100]
    alice_lots = [lot.id for lot in lots_of(db, "alice")]
    assert spends(db) == [(alice_lots[1], -100), (alice_lots[0], -50)]


def test_cancel_returns_points_into_their_lots_with_their_expiry(
    db: Database, clock: FixedClock
) -> None:
    _three_lots(db, clock, "alice")
    s.create_reward(
        db, program=PROGRAM, code="mug", kind="item", actor="mkt", stock=10,
        terms={"name": "Mug", "points": 250},
    )  # fmt: skip
    before = [(lot.id, lot.expires_at, lot.available) for lot in lots_of(db, "alice")]
    done = redeem(db, "mug")
    assert _positions(db, "alice") == [0, 0, 50]
    clock.advance(dt.timedelta(days=2))
    cancel(db, done.id, "out of colour")
    after = [(lot.id, lot.expires_at, lot.available) for lot in lots_of(db, "alice")]
    assert after == before
    ids = [lot[0] for lot in before]
    assert spends(db, "reward_return") == [(ids[1], 100), (ids[0], 100), (ids[2], 50)]
    assert available(db) == 300
    assert stock(db, "mug") == 10
    assert s.verify_ledger(db).ok


def test_a_lot_that_expired_meanwhile_expires_again_at_once(
    db: Database, clock: FixedClock
) -> None:
    _three_lots(db, clock, "alice")
    s.create_reward(
        db, program=PROGRAM, code="mug", kind="item", actor="mkt", stock=10,
        terms={"name": "Mug", "points": 150},
    )  # fmt: skip
    done = redeem(db, "mug")
    clock.advance(dt.timedelta(days=40))  # the one-month lot expires (nothing left in it)
    s.expire_due(db)
    one_month = lots_of(db, "alice")[1]
    assert one_month.expired_at is not None
    assert available(db) == 150
    cancel(db, done.id)
    assert spends(db, "reward_return") == [(one_month.id, 100), (lots_of(db, "alice")[0].id, 50)]
    assert spends(db, "expire_returned") == [(one_month.id, -100)]
    assert available(db) == 200  # only the 50 from the lot still alive came back
    assert _positions(db, "alice") == [100, 0, 100]
    assert s.verify_ledger(db).ok


# --- idempotency ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reward", "quantity"), [("coffee", 2), ("ten-off", 2), ("mug", 1), ("lucky", 1)]
)
def test_a_replay_answers_the_same_redemption(shop: Database, reward: str, quantity: int) -> None:
    first = redeem(shop, reward, quantity=quantity, idempotency_key="k-1")
    counts, points, left = row_counts(shop), available(shop), stock(shop, reward)
    again = redeem(shop, reward, quantity=quantity, idempotency_key="k-1")
    assert again.replayed and not first.replayed
    assert (again.id, again.codes, again.vouchers, again.draw, again.points) == (
        first.id,
        first.codes,
        first.vouchers,
        first.draw,
        first.points,
    )
    if first.prize is not None:
        assert again.prize is not None and again.prize.id == first.prize.id
    assert (row_counts(shop), available(shop), stock(shop, reward)) == (counts, points, left)

    other = {"reward": "coffee"} if reward == "lucky" else {"quantity": quantity + 1}
    with pytest.raises(IdempotencyConflict):
        redeem(shop, **({"reward": reward, "quantity": quantity} | other), idempotency_key="k-1")
    if reward == "mug":  # another address is another request
        with pytest.raises(IdempotencyConflict):
            redeem(shop, "mug", shipping={**ADDRESS, "phone": "139"}, idempotency_key="k-1")
    assert row_counts(shop) == counts


def test_a_key_belongs_to_one_request_of_the_program(shop: Database) -> None:
    redeem(shop, "coffee", idempotency_key="same")
    counts = row_counts(shop)
    with pytest.raises(IdempotencyConflict):
        redeem(shop, "coffee", member="bob", idempotency_key="same")
    assert row_counts(shop) == counts
    assert redeem(shop, "coffee", member="bob", idempotency_key="bob-1").codes == ("COF-0002",)


def test_a_cancel_replays(shop: Database) -> None:
    done = redeem(shop, "mug")
    first = cancel(shop, done.id)
    counts = row_counts(shop)
    again = cancel(shop, done.id)
    assert again.replayed and again.id == first.id and again.status == "cancelled"
    assert row_counts(shop) == counts
    with pytest.raises(IdempotencyConflict):
        cancel(shop, done.id, reason="another reason")
    assert available(shop) == 2_000


# --- fulfilment -----------------------------------------------------------------------------


def test_an_item_moves_to_delivered_with_events_and_audit(
    shop: Database, clock: FixedClock
) -> None:
    done = redeem(shop, "mug")

    def advance(status: str, reason: str | None = None) -> RewardRedemptionResult:
        clock.advance(dt.timedelta(hours=1))
        return s.advance_fulfilment(
            shop, program=PROGRAM, redemption=done.id, status=status, actor="ops-li", reason=reason
        )

    assert advance("packing").status == "packing"
    assert advance("shipped", "SF Express 123").status == "shipped"
    counts = row_counts(shop)
    again = advance("shipped")
    assert again.replayed and again.status == "shipped"
    assert row_counts(shop) == counts
    delivered = advance("delivered")
    assert (delivered.status, delivered.updated_at) == ("delivered", clock.now())

    got = s.get_redemption(shop, program=PROGRAM, redemption=done.id)
    assert [(e.from_status, e.to_status, e.actor, e.reason) for e in got.events] == [
        ("issued", "packing", "ops-li", None),
        ("packing", "shipped", "ops-li", "SF Express 123"),
        ("shipped", "delivered", "ops-li", None),
    ]
    with pytest.raises(FulfilmentConflict, match="delivered; it cannot become cancelled"):
        cancel(shop, done.id)
    with pytest.raises(FulfilmentConflict, match="it is final"):
        advance("packing")
    assert available(shop) == 1_700
    trail = s.list_audit(shop, program=PROGRAM, action="reward.fulfilment").items
    assert [(a.actor, a.before, a.after) for a in reversed(trail)] == [
        ("ops-li", {"status": "issued"}, {"status": "packing"}),
        ("ops-li", {"status": "packing"}, {"status": "shipped", "reason": "SF Express 123"}),
        ("ops-li", {"status": "shipped"}, {"status": "delivered"}),
    ]
    assert all(a.target == f"redemption:{done.id}" for a in trail)


def test_fulfilment_refusals(shop: Database) -> None:
    item = redeem(shop, "mug")
    coupon = redeem(shop, "coffee")

    def advance(redemption: int, status: str) -> Any:
        return s.advance_fulfilment(
            shop, program=PROGRAM, redemption=redemption, status=status, actor="ops"
        )

    counts = row_counts(shop)
    with pytest.raises(FulfilmentConflict, match=r"possible: cancelled\)"):
        advance(coupon.id, "packing")
    with pytest.raises(FulfilmentConflict, match=r"possible: packing, shipped, cancelled\)"):
        advance(item.id, "delivered")
    with pytest.raises(InvalidInput, match="cancel_redemption"):
        advance(item.id, "cancelled")
    with pytest.raises(InvalidInput, match="unknown fulfilment state"):
        advance(item.id, "lost")
    with pytest.raises(RewardRedemptionNotFound):
        advance(999_999, "packing")
    assert row_counts(shop) == counts
    # the shipped item can still be cancelled, with its points back
    advance(item.id, "shipped")
    assert cancel(shop, item.id).status == "cancelled"
    with pytest.raises(FulfilmentConflict, match="cancelled; it cannot become shipped"):
        advance(item.id, "shipped")


def test_advance_many_moves_what_it_can(shop: Database) -> None:
    a, b = redeem(shop, "mug"), redeem(shop, "mug")
    coupon = redeem(shop, "coffee")
    s.advance_fulfilment(shop, program=PROGRAM, redemption=b.id, status="shipped", actor="ops")
    outcomes = s.advance_many(
        shop, program=PROGRAM, redemptions=[a.id, b.id, coupon.id, 424242], status="packing",
        actor="ops",
    )  # fmt: skip
    assert [(o.id, o.status) for o in outcomes] == [
        (a.id, "packing"),
        (b.id, None),
        (coupon.id, None),
        (424242, None),
    ]
    assert "shipped; it cannot become packing" in (outcomes[1].error or "")
    assert "no reward redemption 424242" in (outcomes[3].error or "")
    page = s.list_redemptions(shop, program=PROGRAM, status="packing")
    assert [r.id for r in page.items] == [a.id]


def test_list_redemptions_pages_newest_first(shop: Database) -> None:
    made = [redeem(shop, "coffee").id for _ in range(3)] + [redeem(shop, "mug").id]
    page = s.list_redemptions(shop, program=PROGRAM, member="alice", limit=3)
    assert [r.id for r in page.items] == made[::-1][:3]
    rest = s.list_redemptions(
        shop, program=PROGRAM, member="alice", limit=3, cursor=page.next_cursor
    )
    assert [r.id for r in rest.items] == [made[0]] and rest.next_cursor is None
    assert len(s.list_redemptions(shop, program=PROGRAM, reward="mug").items) == 1
    assert s.list_redemptions(shop, program=PROGRAM, member="bob").items == ()


def test_history_says_redeemed_and_cancelled_in_words(shop: Database) -> None:
    done = redeem(shop, "mug")
    two = redeem(shop, "coffee", quantity=2)
    cancel(shop, done.id, "wrong colour")
    items = s.history(shop, program=PROGRAM, member="alice").items
    words = [(i.description, i.points) for i in items[:3]]
    assert words == [
        (f"reward Mug, redemption {done.id} cancelled: wrong colour", 300),
        (f"reward Coffee ×2, redemption {two.id}", -200),
        (f"reward Mug, redemption {done.id}", -300),
    ]
    assert [i.kind for i in items[:3]] == ["reward_return", "reward_spend", "reward_spend"]
    audit = s.list_audit(shop, program=PROGRAM, action="reward.cancel").items
    assert [(a.actor, a.after) for a in audit] == [
        ("ops", {"status": "cancelled", "reason": "wrong colour", "points_returned": 300})
    ]


# --- availability ---------------------------------------------------------------------------


def _offer(db: Database, reward: str, member: str = "alice") -> tuple[str, ...]:
    offers = s.list_rewards(db, program=PROGRAM, member=member, include_hidden=True)
    return next(o for o in offers if o.code == reward).reasons


def test_a_window_opens_and_closes_with_the_clock(shop: Database, clock: FixedClock) -> None:
    start, end = clock.now() + dt.timedelta(days=1), clock.now() + dt.timedelta(days=2)
    s.create_reward(
        shop, program=PROGRAM, code="xmas", kind="voucher", actor="mkt",
        terms={"name": "Xmas", "points": 10, "voucher_amount_minor": 500,
               "voucher_valid_days": 1, "active_from": start, "active_until": end},
    )  # fmt: skip
    with pytest.raises(RewardUnavailable) as raised:
        redeem(shop, "xmas")
    assert raised.value.details["reasons"] == ["not_started"]
    assert _offer(shop, "xmas") == ("not_started",)
    clock.set(start)
    assert redeem(shop, "xmas").points == 10
    clock.set(end - dt.timedelta(microseconds=1))
    assert _offer(shop, "xmas") == ()
    clock.set(end)
    with pytest.raises(RewardUnavailable) as raised:
        redeem(shop, "xmas")
    assert raised.value.details["reasons"] == ["ended"]


def test_hidden_retired_min_balance_and_points(shop: Database) -> None:
    with pytest.raises(RewardUnavailable) as raised:
        redeem(shop, "sticker")
    assert raised.value.details["reasons"] == ["hidden"]
    visible = [o.code for o in s.list_rewards(shop, program=PROGRAM, member="alice")]
    assert visible == ["coffee", "ten-off", "mug", "lucky"]

    s.set_reward_retired(shop, program=PROGRAM, reward="mug", retired=True, actor="mkt")
    with pytest.raises(RewardUnavailable) as raised:
        redeem(shop, "mug")
    assert raised.value.details["reasons"] == ["retired"]
    assert "mug" not in [o.code for o in s.list_rewards(shop, program=PROGRAM)]
    s.set_reward_retired(shop, program=PROGRAM, reward="mug", retired=False, actor="mkt")
    assert redeem(shop, "mug").status == "issued"

    s.publish_reward_terms(
        shop, program=PROGRAM, reward="coffee", actor="mkt",
        terms={"name": "Coffee", "points": 100, "min_balance": 500},
    )  # fmt: skip
    with pytest.raises(RewardUnavailable) as raised:
        redeem(shop, "coffee", member="bob")  # bob has 100: enough to pay, not to qualify
    assert raised.value.details["reasons"] == ["min_balance"]
    with pytest.raises(InsufficientPoints, match="costs 300 points; the member has 100") as ins:
        redeem(shop, "mug", member="bob")
    assert ins.value.details == {"reward": "mug", "needed": 300, "available": 100}
    assert _offer(shop, "mug", "bob") == ("insufficient_points",)
    assert _offer(shop, "coffee", "carol") == ("min_balance",)
    offers = {o.code: o for o in s.list_rewards(shop, program=PROGRAM, member="alice")}
    assert offers["mug"].redeemable and offers["mug"].stock_left == 2


def test_limits_count_in_the_program_time_zone(shop: Database, clock: FixedClock) -> None:
    s.publish_reward_terms(
        shop, program=PROGRAM, reward="ten-off", actor="mkt",
        terms={"name": "10 CNY off", "points": 10, "voucher_amount_minor": 1_000,
               "voucher_valid_days": 30, "limits": {"day": 1, "month": 2, "lifetime": 3}},
    )  # fmt: skip
    s.restock_reward(shop, program=PROGRAM, reward="ten-off", quantity=100, actor="mkt")
    clock.set(local(2026, 11, 28, 23, 59))  # Shanghai 23:59 is 15:59 UTC
    redeem(shop, "ten-off")
    with pytest.raises(RewardLimit, match="per day") as raised:
        redeem(shop, "ten-off")
    assert raised.value.details == {"reward": "ten-off", "period": "day"}
    clock.set(local(2026, 11, 29, 0, 0))  # a new day in Shanghai, still the 28th in UTC
    redeem(shop, "ten-off")
    assert _offer(shop, "ten-off") == ("limit_day", "limit_month")
    clock.set(local(2026, 11, 30, 23, 59))
    assert _offer(shop, "ten-off") == ("limit_month",)
    with pytest.raises(RewardLimit) as raised:
        redeem(shop, "ten-off")
    assert raised.value.details["period"] == "month"
    clock.set(local(2026, 12, 1, 0, 0))  # 16:00 UTC on 30 November
    redeem(shop, "ten-off")
    clock.advance(dt.timedelta(days=1))
    assert _offer(shop, "ten-off") == ("limit_lifetime",)
    with pytest.raises(RewardLimit) as raised:
        redeem(shop, "ten-off")
    assert raised.value.details["period"] == "lifetime"
    # a cancelled redemption no longer counts
    last = s.list_redemptions(shop, program=PROGRAM, reward="ten-off", limit=1).items[0]
    cancel(shop, last.id)
    assert redeem(shop, "ten-off").status == "issued"


def test_quantity_counts_against_the_limit(shop: Database) -> None:
    s.publish_reward_terms(
        shop, program=PROGRAM, reward="coffee", actor="mkt",
        terms={"name": "Coffee", "points": 100, "limits": {"day": 2}},
    )  # fmt: skip
    with pytest.raises(RewardLimit):
        redeem(shop, "coffee", quantity=3)
    redeem(shop, "coffee", quantity=2)
    assert _offer(shop, "coffee") == ("limit_day",)


def test_a_new_price_later_applies_from_its_moment_and_is_recorded(
    shop: Database, clock: FixedClock
) -> None:
    at = clock.now() + dt.timedelta(days=3)
    info = s.publish_reward_terms(
        shop, program=PROGRAM, reward="mug", actor="mkt", effective_from=at,
        terms={"name": "Mug (new)", "points": 450},
    )  # fmt: skip
    assert info.version == 1 and info.scheduled == ((2, at),)
    before = redeem(shop, "mug")
    assert (before.version, before.points, before.name) == (1, 300, "Mug")
    clock.set(at - dt.timedelta(microseconds=1))
    assert redeem(shop, "mug").version == 1
    clock.set(at)
    after = redeem(shop, "mug")
    assert (after.version, after.points, after.name) == (2, 450, "Mug (new)")
    assert available(shop) == 2_000 - 300 - 300 - 450
    # an old redemption still reads as its own version
    got = s.get_redemption(shop, program=PROGRAM, redemption=before.id)
    assert (got.version, got.points, got.name) == (1, 300, "Mug")
    with pytest.raises(InvalidInput, match="in the past"):
        s.publish_reward_terms(
            shop, program=PROGRAM, reward="mug", actor="mkt",
            effective_from=clock.now() - dt.timedelta(seconds=1),
            terms={"name": "Mug", "points": 1},
        )  # fmt: skip
    assert s.get_reward(shop, program=PROGRAM, reward="mug").version == 2


def test_a_version_scheduled_before_a_later_one_still_starts_at_its_moment(
    shop: Database, clock: FixedClock
) -> None:
    # As for earning rules: the version in force is the one that started last.
    at = clock.now() + dt.timedelta(days=3)
    terms = {"name": "Mug", "points": 450}
    s.publish_reward_terms(
        shop, program=PROGRAM, reward="mug", actor="mkt", effective_from=at, terms=terms
    )
    now = s.publish_reward_terms(
        shop, program=PROGRAM, reward="mug", actor="mkt", terms={**terms, "points": 350}
    )
    assert (now.version, now.scheduled) == (3, ((2, at),))
    assert redeem(shop, "mug").points == 350
    clock.set(at)
    assert (
        redeem(shop, "mug").version,
        s.get_reward(shop, program=PROGRAM, reward="mug").version,
    ) == (2, 2)


# --- refusals change nothing ----------------------------------------------------------------

Redeem = Callable[[Database], Any]


def _call(**kw: Any) -> Redeem:
    args = {"program": PROGRAM, "member": "alice", "reward": "coffee"} | kw
    return lambda db: s.redeem_reward(db, **args)


REFUSALS: dict[str, tuple[Redeem, type[LoyaltyError]]] = {
    "quantity-0": (_call(quantity=0), InvalidAmount),
    "quantity-negative": (_call(quantity=-1), InvalidAmount),
    "quantity-101": (_call(quantity=101), InvalidAmount),
    "quantity-float": (_call(quantity=1.5), InvalidAmount),
    "quantity-bool": (_call(quantity=True), InvalidAmount),
    "unknown-reward": (_call(reward="nope"), RewardNotFound),
    "unknown-member": (_call(member="zed"), MemberNotFound),
    "closed-member": (_call(member="dora"), MemberInactive),
    "out-of-codes": (_call(quantity=6), OutOfStock),
    "out-of-stock": (_call(reward="mug", quantity=4, shipping=ADDRESS), OutOfStock),
    "limit": (_call(reward="limited"), RewardLimit),
    "hidden": (_call(reward="sticker", shipping=ADDRESS), RewardUnavailable),
    "insufficient": (_call(member="bob", reward="mug", shipping=ADDRESS), InsufficientPoints),
    "no-points-for-a-draw": (_call(member="carol", reward="lucky"), InsufficientPoints),
    "item-without-address": (_call(reward="mug"), InvalidInput),
    "item-address-no-phone": (
        _call(reward="mug", shipping={"name": "Li", "address": "x"}),
        InvalidInput,
    ),
    "item-address-unknown-field": (
        _call(reward="mug", shipping={**ADDRESS, "floor": "3"}),
        InvalidInput,
    ),
    "item-address-control-char": (
        _call(reward="mug", shipping={**ADDRESS, "name": "Li\x00"}),
        InvalidInput,
    ),
    "address-for-a-coupon": (_call(shipping=ADDRESS), InvalidInput),
    "draw-quantity-2": (_call(reward="lucky", quantity=2), InvalidInput),
    "bad-key": (_call(idempotency_key="has space"), InvalidInput),
}


def test_every_refusal_changes_nothing(shop: Database) -> None:
    enrol(shop, "dora")
    s.set_member_status(shop, program=PROGRAM, external_id="dora", status="closed")
    s.create_reward(
        shop, program=PROGRAM, code="limited", kind="coupon", actor="mkt",
        terms={"name": "Once", "points": 1, "limits": {"lifetime": 1}},
    )  # fmt: skip
    s.add_codes(shop, program=PROGRAM, reward="limited", codes=["LIM-1", "LIM-2"], actor="mkt")
    redeem(shop, "limited")
    rewards = ("coffee", "ten-off", "mug", "sticker", "limited")

    def state() -> tuple[Any, ...]:
        balances = [available(shop, m) for m in ("alice", "bob", "carol")]
        return row_counts(shop), balances, [stock(shop, r) for r in rewards]

    before = state()
    for name, (call, error) in REFUSALS.items():
        with pytest.raises(error):
            call(shop)
        assert state() == before, name
    assert s.verify_ledger(shop).ok


def test_restock_and_code_refusals_change_nothing(shop: Database) -> None:
    s.create_reward(
        shop, program=PROGRAM, code="free", kind="item", actor="mkt",
        terms={"name": "Free", "points": 1},
    )  # fmt: skip
    counts = row_counts(shop)
    with pytest.raises(InvalidInput, match="no stock limit, so it cannot be restocked"):
        s.restock_reward(shop, program=PROGRAM, reward="free", quantity=1, actor="mkt")
    with pytest.raises(InvalidInput, match="add codes instead"):
        s.restock_reward(shop, program=PROGRAM, reward="coffee", quantity=1, actor="mkt")
    with pytest.raises(InvalidAmount):
        s.restock_reward(shop, program=PROGRAM, reward="mug", quantity=0, actor="mkt")
    with pytest.raises(InvalidInput, match="only coupons have codes"):
        s.add_codes(shop, program=PROGRAM, reward="mug", codes=["MUG-0001"], actor="mkt")
    with pytest.raises(AlreadyExists, match="already holds COF-0002"):
        s.add_codes(shop, program=PROGRAM, reward="coffee", codes=["NEW-0001", "COF-0002"],
                    actor="mkt")  # fmt: skip
    with pytest.raises(InvalidInput, match="repeat"):
        s.add_codes(shop, program=PROGRAM, reward="coffee", codes=["NEW-1", "NEW-1"], actor="m")
    with pytest.raises(InvalidInput, match="a coupon's stock is its pool"):
        s.create_reward(
            shop, program=PROGRAM, code="c2", kind="coupon", stock=5, actor="mkt",
            terms={"name": "C2", "points": 1},
        )  # fmt: skip
    with pytest.raises(AlreadyExists):
        s.create_reward(
            shop, program=PROGRAM, code="mug", kind="item", actor="mkt",
            terms={"name": "Mug", "points": 1},
        )  # fmt: skip
    assert row_counts(shop) == counts
    assert (
        s.restock_reward(shop, program=PROGRAM, reward="mug", quantity=2, actor="m").stock_left == 5
    )


def test_another_program_sees_nothing_of_this_catalog(shop: Database) -> None:
    make_program(shop, "other")
    enrol(shop, "alice", program="other")
    done = redeem(shop, "mug")
    counts = row_counts(shop)
    with pytest.raises(RewardRedemptionNotFound):
        s.get_redemption(shop, program="other", redemption=done.id)
    with pytest.raises(RewardRedemptionNotFound):
        s.cancel_redemption(shop, program="other", redemption=done.id, reason="x", actor="o")
    with pytest.raises(RewardRedemptionNotFound):
        s.advance_fulfilment(shop, program="other", redemption=done.id, status="packing", actor="o")
    with pytest.raises(RewardNotFound):
        s.redeem_reward(shop, program="other", member="alice", reward="coffee")
    assert s.list_redemptions(shop, program="other").items == ()
    assert s.list_rewards(shop, program="other", member="alice") == ()
    assert row_counts(shop) == counts
    assert s.get_redemption(shop, program=PROGRAM, redemption=done.id).status == "issued"
