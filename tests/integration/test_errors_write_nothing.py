"""Bad input gets the specific error and changes nothing, in any table."""

from __future__ import annotations

import datetime as dt

import pytest
from helpers import (
    PROGRAM,
    Call,
    deferred,
    earn,
    earn_call,
    enrol,
    hold,
    hold_call,
    make_program,
    row_counts,
)

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.errors import (
    AlreadyExists,
    CurrencyMismatch,
    HoldNotActive,
    HoldNotFound,
    IdempotencyConflict,
    InsufficientPoints,
    InvalidAmount,
    InvalidIdempotencyKey,
    InvalidInput,
    InvalidRule,
    LoyaltyError,
    MemberInactive,
    MemberNotFound,
    NaiveDatetime,
    ProgramNotFound,
    RedemptionLimit,
)

_earn = earn_call


_action = deferred(s.earn_action, program=PROGRAM, member="alice", action="sign_in", reference="d2")


_hold = hold_call


_capture = deferred(s.capture_hold, program=PROGRAM, order_id="active")


_release = deferred(s.release_hold, program=PROGRAM, order_id="active")


_publish = deferred(s.publish_rules, program=PROGRAM, rules={"base_ratio": "2"})


FUTURE = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
BAD_KEYS = {
    "empty": "",
    "space": "has space",
    "too-long": "k" * 300,
    "tab": "a\tb",
    "newline-at-end": "abc\n",
    "non-ascii": "clé",
    "not-a-string": 42,
}

GROUPS: dict[str, list[tuple[str, Call, type[LoyaltyError]]]] = {
    "amounts": [
        ("earn-zero", _earn(amount_minor=0), InvalidAmount),
        ("earn-negative", _earn(amount_minor=-100), InvalidAmount),
        ("earn-float", _earn(amount_minor=100.0), InvalidAmount),
        ("earn-bool", _earn(amount_minor=True), InvalidAmount),
        ("earn-string", _earn(amount_minor="100"), InvalidAmount),
        (
            "earn-line-zero",
            _earn(lines=[{"amount_minor": 100}, {"amount_minor": 0}]),
            InvalidAmount,
        ),
        ("earn-line-float", _earn(lines=[{"amount_minor": 1.5}]), InvalidAmount),
        ("earn-paid-negative", _earn(paid_with_points_minor=-1), InvalidAmount),
        ("earn-paid-float", _earn(paid_with_points_minor=0.5), InvalidAmount),
        ("earn-paid-bool", _earn(paid_with_points_minor=True), InvalidAmount),
        ("earn-paid-over-total", _earn(paid_with_points_minor=1_001), InvalidInput),
        ("earn-no-amount", _earn(amount_minor=None), InvalidInput),
        ("hold-zero", _hold(points=0), InvalidAmount),
        ("hold-negative", _hold(points=-10), InvalidAmount),
        ("hold-float", _hold(points=10.0), InvalidAmount),
        ("hold-bool", _hold(points=True), InvalidAmount),
        ("hold-total-zero", _hold(order_total_minor=0), InvalidAmount),
        ("hold-total-float", _hold(order_total_minor=10_000.0), InvalidAmount),
    ],
    "not-found": [
        ("earn-unknown-program", _earn(program="nope"), ProgramNotFound),
        ("earn-unknown-member", _earn(member="zed"), MemberNotFound),
        ("earn-closed-member", _earn(member="carl"), MemberInactive),
        ("action-unknown-program", _action(program="nope"), ProgramNotFound),
        ("action-unknown-member", _action(member="zed"), MemberNotFound),
        ("action-unknown-action", _action(action="dance"), InvalidInput),
        ("hold-unknown-program", _hold(program="nope"), ProgramNotFound),
        ("hold-unknown-member", _hold(member="zed"), MemberNotFound),
        ("hold-closed-member", _hold(member="carl"), MemberInactive),
        ("capture-unknown-program", _capture(program="nope"), ProgramNotFound),
        ("capture-unknown-order", _capture(order_id="nope"), HoldNotFound),
        ("release-unknown-order", _release(order_id="nope"), HoldNotFound),
        ("publish-unknown-program", _publish(program="nope"), ProgramNotFound),
    ],
    "currencies": [
        ("earn-wrong-currency", _earn(currency="USD"), CurrencyMismatch),
        ("earn-not-a-currency", _earn(currency="yuan"), InvalidInput),
        ("hold-wrong-currency", _hold(currency="EUR"), CurrencyMismatch),
    ],
    "datetimes-and-rules": [
        ("publish-naive", _publish(effective_from=dt.datetime(2027, 1, 1)), NaiveDatetime),
        ("publish-past", _publish(effective_from=FUTURE.replace(year=2020)), InvalidRule),
        ("publish-not-a-datetime", _publish(effective_from="2027-01-01T00:00:00Z"), InvalidInput),
        (
            "publish-naive-campaign",
            _publish(
                rules={
                    "campaigns": [
                        {
                            "name": "x",
                            "starts_at": "2027-01-01T00:00",
                            "ends_at": FUTURE.isoformat(),
                        }
                    ]
                }
            ),
            InvalidRule,
        ),
        ("publish-float-ratio", _publish(rules={"base_ratio": 2.0}), InvalidRule),
        ("publish-negative-cap", _publish(rules={"caps": {"member_daily": -1}}), InvalidRule),
    ],
    "state": [
        ("hold-over-balance", _hold(points=91), InsufficientPoints),
        ("hold-over-share", _hold(points=60, order_total_minor=50), RedemptionLimit),
        (
            "hold-same-order-other-key",
            _hold(order_id="active", idempotency_key="k2"),
            AlreadyExists,
        ),
        ("hold-same-key-other-points", _hold(order_id="active", points=11), IdempotencyConflict),
        ("earn-same-order-other-key", _earn(order_id="o1", idempotency_key="k3"), AlreadyExists),
        (
            "earn-same-key-other-amount",
            _earn(order_id="o1", amount_minor=10_001),
            IdempotencyConflict,
        ),
        ("capture-released", _capture(order_id="released"), HoldNotActive),
        ("release-captured", _release(order_id="captured"), HoldNotActive),
    ],
    "keys": [
        ("earn-order-id-empty", _earn(order_id=""), InvalidIdempotencyKey),
        ("earn-order-id-space", _earn(order_id="order 1"), InvalidIdempotencyKey),
        ("action-reference-empty", _action(reference=""), InvalidIdempotencyKey),
        ("hold-order-id-long", _hold(order_id="o" * 201), InvalidIdempotencyKey),
        ("earn-program-empty", _earn(program=""), InvalidInput),
        ("earn-member-empty", _earn(member=""), InvalidInput),
        *[
            (f"earn-key-{n}", _earn(idempotency_key=k), InvalidIdempotencyKey)
            for n, k in BAD_KEYS.items()
        ],
        *[
            (f"action-key-{n}", _action(idempotency_key=k), InvalidIdempotencyKey)
            for n, k in BAD_KEYS.items()
        ],
        *[
            (f"hold-key-{n}", _hold(idempotency_key=k), InvalidIdempotencyKey)
            for n, k in BAD_KEYS.items()
        ],
        ("capture-key-empty", _capture(idempotency_key=""), InvalidIdempotencyKey),
        ("capture-key-space", _capture(idempotency_key="has space"), InvalidIdempotencyKey),
        ("release-key-long", _release(idempotency_key="k" * 300), InvalidIdempotencyKey),
    ],
    "members-and-programs": [
        (
            "enrol-bad-email",
            lambda db: s.enrol_member(db, program=PROGRAM, external_id="dan", email="nope"),
            InvalidInput,
        ),
        (
            "enrol-taken-stripe-id",
            lambda db: s.enrol_member(
                db, program=PROGRAM, external_id="dan", stripe_customer_id="cus_a"
            ),
            AlreadyExists,
        ),
        (
            "link-taken-stripe-id",
            lambda db: s.link_stripe_customer(
                db, program=PROGRAM, external_id="carl", stripe_customer_id="cus_a"
            ),
            AlreadyExists,
        ),
        (
            "status-unknown",
            lambda db: s.set_member_status(db, program=PROGRAM, external_id="alice", status="gone"),
            InvalidInput,
        ),
        (
            "program-duplicate",
            lambda db: s.create_program(db, code=PROGRAM, name="Again", currency="CNY"),
            AlreadyExists,
        ),
        (
            "program-bad-timezone",
            lambda db: s.create_program(
                db, code="p2", name="P2", currency="CNY", timezone="Nowhere"
            ),
            InvalidInput,
        ),
    ],
    "reads": [
        (
            "rules-in-force-naive",
            lambda db: s.rules_in_force(db, program=PROGRAM, at=dt.datetime(2026, 1, 1)),
            NaiveDatetime,
        ),
        (
            "quote-redemption-zero",
            lambda db: s.quote_redemption(
                db, program=PROGRAM, member="alice", order_total_minor=0, currency="CNY"
            ),
            InvalidAmount,
        ),
        (
            "quote-purchase-float",
            lambda db: s.quote_purchase(db, program=PROGRAM, currency="CNY", amount_minor=9.99),
            InvalidAmount,
        ),
        (
            "quote-purchase-unknown-member",
            lambda db: s.quote_purchase(
                db, program=PROGRAM, currency="CNY", amount_minor=100, member="zed"
            ),
            MemberNotFound,
        ),
        (
            "balance-bool-window",
            lambda db: s.balance(db, program=PROGRAM, member="alice", expiring_within_days=True),
            InvalidAmount,
        ),
    ],
}


@pytest.fixture
def scene(db: Database, clock: FixedClock) -> Database:
    """Alice has 100 points, 10 of them held for order ``active``; Carl is closed."""
    make_program(db, rules={"actions": {"sign_in": {"points": 5, "limit": 1}}})
    s.enrol_member(db, program=PROGRAM, external_id="alice", stripe_customer_id="cus_a")
    enrol(db, "carl")
    earn(db, "alice", "o1", 10_000)
    s.earn_action(db, program=PROGRAM, member="alice", action="sign_in", reference="d1")
    hold(db, "alice", "released", 5)
    s.release_hold(db, program=PROGRAM, order_id="released")
    hold(db, "alice", "captured", 5)
    s.capture_hold(db, program=PROGRAM, order_id="captured")
    hold(db, "alice", "active", 10)
    s.set_member_status(db, program=PROGRAM, external_id="carl", status="closed")
    assert s.balance(db, program=PROGRAM, member="alice").available == 90
    return db


@pytest.mark.parametrize("group", list(GROUPS))
def test_bad_input_raises_and_writes_nothing(
    scene: Database, group: str, subtests: pytest.Subtests
) -> None:
    balance_before = s.balance(scene, program=PROGRAM, member="alice")
    for name, call, error in GROUPS[group]:
        with subtests.test(msg=name):
            before = row_counts(scene)
            with pytest.raises(LoyaltyError) as raised:
                call(scene)
            assert type(raised.value) is error, raised.value
            assert raised.value.message
            assert row_counts(scene) == before
    assert s.balance(scene, program=PROGRAM, member="alice") == balance_before
    assert s.verify_ledger(scene).ok
