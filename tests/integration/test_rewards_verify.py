"""``jifen verify`` over the reward catalog: clean after a mix of everything, and each of its
three reward checks names what a hand-corrupted database breaks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from click.testing import CliRunner
from helpers import PROGRAM, earn, enrol, execute, make_program, scalar

from loyalty import services as s
from loyalty.cli.ledger import verify
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.services.verify import VerifyReport

REWARD_CHECKS = {"reward_stock", "reward_codes_once", "redemptions_equal_entries"}
ADDRESS = {"name": "Wang Fang", "phone": "13900000000", "address": "8 Huaihai Rd"}


def _failing(report: VerifyReport) -> dict[str, tuple[str, ...]]:
    return {c.name: c.examples for c in report.checks if not c.ok}


def _everything(db: Database, clock: FixedClock) -> dict[str, int]:
    """Every kind redeemed, cancelled, fulfilled, used, restocked, refilled and expired;
    returns the ids the corruptions need."""
    make_program(db)
    enrol(db, "alice", "bob")
    s.publish_rules(db, program=PROGRAM, rules={"expiry": {"days": 10}})
    earn(db, "alice", "o-1", 100_000)  # 1,000 points expiring in 10 days
    s.publish_rules(db, program=PROGRAM, rules={"expiry": None})
    earn(db, "alice", "o-2", 100_000)
    earn(db, "bob", "o-3", 50_000)
    for code, kind, stock, terms in (
        ("coffee", "coupon", None, {"points": 100}),
        ("ten-off", "voucher", 20, {"points": 150, "voucher_amount_minor": 1_000,
                                    "voucher_valid_days": 7}),
        ("mug", "item", 5, {"points": 300}),
        ("pen", "item", 2, {"points": 1, "visible": False}),
        ("free", "item", None, {"points": 10}),
    ):  # fmt: skip
        s.create_reward(
            db, program=PROGRAM, code=code, kind=kind, stock=stock, actor="mkt",
            terms={"name": code.title(), **terms},
        )  # fmt: skip
    s.create_reward(
        db, program=PROGRAM, code="lucky", kind="draw", actor="mkt",
        terms={"name": "Lucky", "points": 20, "prizes": [{"reward": "pen", "chance_ppm": 10**6}]},
    )  # fmt: skip
    s.generate_reward_codes(db, program=PROGRAM, reward="coffee", count=4, actor="mkt")

    def redeem(reward: str, member: str = "alice", quantity: int = 1) -> int:
        shipping = ADDRESS if reward in ("mug", "free") else None
        return s.redeem_reward(
            db, program=PROGRAM, member=member, reward=reward, quantity=quantity,
            shipping=shipping,
        ).id  # fmt: skip

    def cancel(redemption: int) -> None:
        s.cancel_redemption(db, program=PROGRAM, redemption=redemption, reason="r", actor="ops")

    kept_coupon = redeem("coffee", quantity=2)
    cancel(redeem("coffee", "bob"))
    s.add_codes(db, program=PROGRAM, reward="coffee", codes=["EXTRA-001"], actor="mkt")
    vouchers = s.get_redemption(db, program=PROGRAM, redemption=redeem("ten-off", quantity=2))
    s.consume_voucher(
        db, program=PROGRAM, code=vouchers.vouchers[0].code, order_id="buy-1",
        order_total_minor=5_000, currency="CNY",
    )  # fmt: skip
    s.release_voucher(db, program=PROGRAM, code=vouchers.vouchers[0].code, order_id="buy-1")
    cancel(vouchers.id)
    kept_mug = redeem("mug", quantity=2)
    shipped = redeem("mug")
    s.advance_fulfilment(db, program=PROGRAM, redemption=shipped, status="shipped", actor="ops")
    cancel(shipped)
    s.restock_reward(db, program=PROGRAM, reward="mug", quantity=3, actor="mkt")
    redeem("free", "bob", quantity=3)
    won = s.get_redemption(db, program=PROGRAM, redemption=redeem("lucky"))
    assert won.prize is not None
    cancel(won.prize.id)
    redeem("lucky", "bob")
    spent_early = redeem("mug")  # from the lot expiring in 10 days
    clock.advance(dt.timedelta(days=11))
    s.expire_due(db)
    cancel(spent_early)  # its points come back and expire again at once
    return {
        "coupon_redemption": kept_coupon,
        "mug_redemption": kept_mug,
        "mug": scalar(db, "SELECT id FROM rewards WHERE code = 'mug'"),
        "coffee": scalar(db, "SELECT id FROM rewards WHERE code = 'coffee'"),
    }


def test_clean_after_a_mix_of_everything(db: Database, clock: FixedClock) -> None:
    _everything(db, clock)
    report = s.verify_ledger(db)
    assert report.ok, _failing(report)
    assert {c.name for c in report.checks} >= REWARD_CHECKS
    assert scalar(db, "SELECT count(*) FROM reward_redemptions") == 11
    assert scalar(db, "SELECT count(*) FROM entries WHERE kind = 'expire_returned'") == 1
    mug = s.get_reward(db, program=PROGRAM, reward="mug")
    assert (mug.stock_added, mug.stock_left) == (8, 6)  # 5 + 3; 2 kept out of 4 taken
    coffee = s.get_reward(db, program=PROGRAM, reward="coffee")
    assert (coffee.stock_added, coffee.stock_left, coffee.codes_free) == (5, 2, 2)


def _small(db: Database) -> dict[str, int]:
    """Alice keeps two coupons and two mugs (stock 5) and cancelled a third mug."""
    make_program(db)
    enrol(db, "alice")
    earn(db, "alice", "o-1", 200_000)
    s.create_reward(
        db, program=PROGRAM, code="coffee", kind="coupon", actor="mkt",
        terms={"name": "Coffee", "points": 100},
    )  # fmt: skip
    s.add_codes(db, program=PROGRAM, reward="coffee", codes=["C-0001", "C-0002", "C-0003"],
                actor="mkt")  # fmt: skip
    s.create_reward(
        db, program=PROGRAM, code="mug", kind="item", stock=5, actor="mkt",
        terms={"name": "Mug", "points": 300},
    )  # fmt: skip

    def redeem(reward: str, quantity: int) -> int:
        shipping = ADDRESS if reward == "mug" else None
        return s.redeem_reward(
            db, program=PROGRAM, member="alice", reward=reward, quantity=quantity,
            shipping=shipping,
        ).id  # fmt: skip

    coupon, mug = redeem("coffee", 2), redeem("mug", 2)
    s.cancel_redemption(db, program=PROGRAM, redemption=redeem("mug", 1), reason="r", actor="o")
    ids = {
        "coupon_redemption": coupon,
        "mug_redemption": mug,
        "mug": scalar(db, "SELECT id FROM rewards WHERE code = 'mug'"),
        "coffee": scalar(db, "SELECT id FROM rewards WHERE code = 'coffee'"),
        "code": scalar(db, "SELECT min(id) FROM reward_codes WHERE redemption_id = :r", r=coupon),
        "mug_operation": scalar(
            db, "SELECT operation_id FROM reward_redemptions WHERE id = :r", r=mug
        ),
    }
    assert s.verify_ledger(db).ok
    return ids


Corruption = Callable[[Database, dict[str, int]], None]

CORRUPTIONS: dict[str, tuple[str, str, Corruption]] = {
    "item stock off by one": (
        "reward_stock",
        "id={mug}, stock_added=5, stock_left=2",
        lambda db, ids: execute(db, "UPDATE rewards SET stock_left = stock_left - 1 WHERE id = :i",
                                i=ids["mug"]),
    ),
    "coupon stock beside its free codes": (
        "reward_stock",
        "id={coffee}",
        lambda db, ids: execute(
            db, "UPDATE rewards SET stock_left = stock_left + 1, stock_added = stock_added + 1 "
            "WHERE id = :i", i=ids["coffee"],
        ),
    ),
    "a redemption's stock taken changed": (
        "reward_stock",
        "id={mug}",
        lambda db, ids: execute(
            db, "UPDATE reward_redemptions SET stock_taken = 1 WHERE id = :r",
            r=ids["mug_redemption"],
        ),
    ),
    "a code moved to a redemption of another reward": (
        "reward_codes_once",
        "what=code, id={code}",
        lambda db, ids: execute(
            db, "UPDATE reward_codes SET redemption_id = :m WHERE id = :c",
            m=ids["mug_redemption"], c=ids["code"],
        ),
    ),
    "a coupon redemption without one of its codes": (
        "reward_codes_once",
        "what=redemption, id={coupon_redemption}",
        lambda db, ids: execute(
            db, "UPDATE reward_codes SET redemption_id = NULL, issued_at = NULL WHERE id = :c",
            c=ids["code"],
        ),
    ),
    "a redemption's points changed": (
        "redemptions_equal_entries",
        "what=redeem, id={mug_operation}",
        lambda db, ids: execute(
            db, "UPDATE reward_redemptions SET points = points + 1 WHERE id = :r",
            r=ids["mug_redemption"],
        ),
    ),
    "cancelled without return entries": (
        "redemptions_equal_entries",
        "what=cancel, id={mug_redemption}",
        lambda db, ids: execute(
            db, "UPDATE reward_redemptions SET status = 'cancelled' WHERE id = :r",
            r=ids["mug_redemption"],
        ),
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_each_corruption_is_named(db: Database, name: str) -> None:
    check, example, corrupt = CORRUPTIONS[name]
    ids = _small(db)
    corrupt(db, ids)
    failing = _failing(s.verify_ledger(db))
    assert check in failing, failing
    assert set(failing) <= REWARD_CHECKS, failing  # the ledger's own checks still hold
    expected = example.format(**ids)
    assert any(e.startswith(expected) for e in failing[check]), failing[check]


def test_jifen_verify_prints_the_failed_reward_check(db: Database, database_url: str) -> None:
    ids = _small(db)
    ok = CliRunner().invoke(verify, ["--database-url", database_url])
    assert ok.exit_code == 0, ok.output
    execute(db, "UPDATE rewards SET stock_left = stock_left + 2 WHERE id = :i", i=ids["mug"])
    broken = CliRunner().invoke(verify, ["--database-url", database_url])
    assert broken.exit_code == 1
    assert "reward_stock" in broken.output and "NOT consistent" in broken.output
    assert f"id={ids['mug']}" in broken.output
