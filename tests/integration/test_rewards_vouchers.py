"""Vouchers at checkout on both databases: validate, consume once per order, release after a
refund, and every reason a voucher cannot be used."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from helpers import PROGRAM, earn, enrol, local, make_program, row_counts

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.errors import (
    CurrencyMismatch,
    FulfilmentConflict,
    InvalidAmount,
    InvalidInput,
    VoucherNotFound,
    VoucherNotUsable,
)
from loyalty.services.reward_results import RewardRedemptionResult, VoucherCheck


@pytest.fixture
def shop(db: Database) -> Database:
    """``ten-off``: 10.00 CNY off for 200 points, valid 30 days; alice has 2,000 points."""
    make_program(db)
    make_program(db, "other", currency="USD", timezone="America/New_York")
    enrol(db, "alice", "bob")
    earn(db, "alice", "o-a", 200_000)
    s.create_reward(
        db, program=PROGRAM, code="ten-off", kind="voucher", actor="mkt",
        terms={"name": "10 CNY off", "points": 200, "voucher_amount_minor": 1_000,
               "voucher_valid_days": 30},
    )  # fmt: skip
    return db


def buy(db: Database, quantity: int = 1) -> RewardRedemptionResult:
    return s.redeem_reward(db, program=PROGRAM, member="alice", reward="ten-off", quantity=quantity)


def validate(db: Database, code: str, total: int = 5_000, **kw: Any) -> VoucherCheck:
    args = {"currency": "CNY"} | kw
    return s.validate_voucher(db, program=PROGRAM, code=code, order_total_minor=total, **args)


def consume(db: Database, code: str, order: str, total: int = 5_000, **kw: Any) -> VoucherCheck:
    args = {"currency": "CNY"} | kw
    return s.consume_voucher(
        db, program=PROGRAM, code=code, order_id=order, order_total_minor=total, **args
    )


def release(db: Database, code: str, order: str) -> VoucherCheck:
    return s.release_voucher(db, program=PROGRAM, code=code, order_id=order)


def refused(call: Any, reason: str) -> VoucherNotUsable:
    with pytest.raises(VoucherNotUsable) as raised:
        call()
    assert raised.value.details["reason"] == reason
    return raised.value


def test_validate_takes_at_most_the_order_total_and_writes_nothing(shop: Database) -> None:
    code = buy(shop).vouchers[0].code
    counts = row_counts(shop)
    check = validate(shop, code)
    assert (check.discount_minor, check.amount_minor, check.currency) == (1_000, 1_000, "CNY")
    assert (check.status, check.order_id, check.replayed) == ("active", None, False)
    assert check.valid_until_at == local(2026, 12, 21)
    assert validate(shop, code, total=600).discount_minor == 600
    assert validate(shop, code, total=1).discount_minor == 1
    assert validate(shop, code, currency="cny", member="alice").discount_minor == 1_000
    assert row_counts(shop) == counts


def test_consume_once_per_order(shop: Database) -> None:
    done = buy(shop)
    code = done.vouchers[0].code
    used = consume(shop, code, "order-1", total=800)
    assert (used.status, used.order_id, used.discount_minor, used.replayed) == (
        "used",
        "order-1",
        800,
        False,
    )
    counts = row_counts(shop)
    again = consume(shop, code, "order-1", total=800)
    assert again.replayed and (again.status, again.order_id) == ("used", "order-1")
    assert row_counts(shop) == counts
    error = refused(lambda: consume(shop, code, "order-2"), "used")
    assert "was used on order order-1" in error.message
    refused(lambda: validate(shop, code), "used")
    assert row_counts(shop) == counts

    got = s.get_redemption(shop, program=PROGRAM, redemption=done.id)
    assert got.vouchers[0].status == "used" and got.vouchers[0].order_id == "order-1"
    assert [(e.event, e.order_id, e.actor) for e in got.events] == [
        ("voucher_used", "order-1", "checkout")
    ]
    trail = s.list_audit(shop, program=PROGRAM, action="voucher.").items
    assert [(a.action, a.target, a.after) for a in trail] == [
        ("voucher.use", f"voucher:{code}", {"order_id": "order-1", "discount_minor": 800})
    ]


def test_release_after_a_refund_then_use_again(shop: Database) -> None:
    done = buy(shop)
    code = done.vouchers[0].code
    consume(shop, code, "order-1")
    refused(lambda: release(shop, code, "order-9"), "other_order")
    released = release(shop, code, "order-1")
    assert (released.status, released.order_id, released.replayed) == ("active", None, False)
    counts = row_counts(shop)
    assert release(shop, code, "order-1").replayed  # releasing twice changes nothing
    assert row_counts(shop) == counts
    assert validate(shop, code).discount_minor == 1_000
    assert consume(shop, code, "order-2").order_id == "order-2"
    events = s.get_redemption(shop, program=PROGRAM, redemption=done.id).events
    assert [(e.event, e.order_id) for e in events] == [
        ("voucher_used", "order-1"),
        ("voucher_released", "order-1"),
        ("voucher_used", "order-2"),
    ]


def test_expired_and_not_yet_valid(shop: Database, clock: FixedClock) -> None:
    first, second = buy(shop, quantity=2).vouchers
    until = first.valid_until_at
    clock.set(first.valid_from_at - dt.timedelta(seconds=1))
    error = refused(lambda: validate(shop, first.code), "not_yet_valid")
    assert "valid from 2026-11-21" in error.message
    clock.set(until - dt.timedelta(seconds=1))
    consume(shop, first.code, "order-1")
    clock.set(until)
    error = refused(lambda: validate(shop, second.code), "expired")
    assert "expired on" in error.message
    refused(lambda: consume(shop, second.code, "order-2"), "expired")
    # a use made in time still answers its order after the end
    assert consume(shop, first.code, "order-1").replayed
    # given back after it expired, it cannot be used again
    release(shop, first.code, "order-1")
    refused(lambda: consume(shop, first.code, "order-3"), "expired")


def test_another_member_currency_program_or_code(shop: Database) -> None:
    code = buy(shop).vouchers[0].code
    counts = row_counts(shop)
    error = refused(lambda: consume(shop, code, "order-1", member="bob"), "other_member")
    assert "belongs to another member" in error.message
    with pytest.raises(CurrencyMismatch, match="the order is in USD"):
        consume(shop, code, "order-1", currency="USD")
    with pytest.raises(CurrencyMismatch):
        validate(shop, code, currency="EUR")
    with pytest.raises(VoucherNotFound):
        s.validate_voucher(shop, program="other", code=code, order_total_minor=100, currency="USD")
    with pytest.raises(VoucherNotFound, match="no voucher 'V-NOPE0000000'"):
        consume(shop, "V-NOPE0000000", "order-1")
    with pytest.raises(InvalidAmount):
        consume(shop, code, "order-1", total=0)
    with pytest.raises(InvalidAmount):
        validate(shop, code, total=10.5)
    with pytest.raises(InvalidInput):
        consume(shop, "a b", "order-1")
    with pytest.raises(InvalidInput):
        consume(shop, code, "")
    assert row_counts(shop) == counts
    assert validate(shop, code).status == "active"


def test_a_cancelled_voucher_cannot_be_used(shop: Database) -> None:
    done = buy(shop)
    code = done.vouchers[0].code
    s.cancel_redemption(shop, program=PROGRAM, redemption=done.id, reason="r", actor="ops")
    refused(lambda: validate(shop, code), "cancelled")
    refused(lambda: consume(shop, code, "order-1"), "cancelled")


def test_a_used_voucher_blocks_the_cancel_until_it_is_released(shop: Database) -> None:
    done = buy(shop, quantity=2)
    used, unused = done.vouchers
    consume(shop, used.code, "order-1")
    counts = row_counts(shop)

    def cancel() -> RewardRedemptionResult:
        return s.cancel_redemption(
            shop, program=PROGRAM, redemption=done.id, reason="return", actor="ops"
        )

    with pytest.raises(FulfilmentConflict, match=f"voucher {used.code} was used on order") as e:
        cancel()
    assert e.value.details == {"redemption": done.id, "voucher": used.code}
    assert row_counts(shop) == counts
    assert s.balance(shop, program=PROGRAM, member="alice").available == 1_600
    release(shop, used.code, "order-1")
    assert cancel().status == "cancelled"
    assert s.balance(shop, program=PROGRAM, member="alice").available == 2_000
    refused(lambda: validate(shop, unused.code), "cancelled")
    assert s.verify_ledger(shop).ok
