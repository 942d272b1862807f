"""Arbitrary text and integers into every public service, every ``sdk.Jifen`` method and the
fields of a signed Stripe event.

Whatever goes in, a call either succeeds or raises a :class:`~loyalty.errors.LoyaltyError`,
never anything else (no ``OverflowError``, ``DataError``, ``UnicodeEncodeError``...), and the
ledger verifies clean afterwards, on SQLite and PostgreSQL. One argument of one call is
replaced per example; the rest stay valid, so the value reaches as deep as it can.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from admin.webhooks import init_stripe_webhook
from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.errors import LoyaltyError
from loyalty.stripe.webhook import StripeWebhook
from sdk import Jifen
from tests.integration import stripe_support as stripe
from tests.integration.helpers import PROGRAM, earn, enrol, hold, make_program

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Text: every Unicode category including lone surrogates, plus the values that broke things.
TEXT = st.one_of(
    st.text(st.characters(codec=None, exclude_categories=()), max_size=40),
    st.text(max_size=300),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "ali\u200bce",
            " alice ",
            "alice\n",
            "\ud800",
            "会员-张三",
            "订单-1",
            "Rene\u0301e",
            "\u202egpj.exe",
            "a" * 129,
            "o" * 201,
            "k" * 10_000,
            "%E4%BC%9A",
            "utf8:x",
            "sha256:" + "0" * 64,
            "CNY",
            "xyz",
            "closed",
            "a@b",
            "a@b@c",
        ]
    ),
    st.none(),
    st.integers(),
    st.binary(max_size=8),
)
# Integers: anything, with the bounds and the sizes of the columns near the front.
EDGES = [0, 1, -1, 3660, 3661, 10**12, 10**12 + 1, 10**14, 10**14 + 1, 2**31, 2**63 - 1, 2**63]
INTEGERS = st.one_of(
    st.sampled_from(EDGES + [-e for e in EDGES] + [10**20, 2**70, 10**400]),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
)


@dataclass(frozen=True)
class Target:
    """A call, its valid keyword arguments and which of them take text or integers."""

    name: str
    call: Callable[..., Any]
    base: dict[str, Any]
    text: tuple[str, ...] = ()
    ints: tuple[str, ...] = ()
    lines: bool = field(default=False)


def _lines(amount: Any = 1_000, sku: Any = "sku-1", category: Any = "food") -> list[Any]:
    return [{"amount_minor": amount, "sku": sku, "category": category}]


P = {"program": PROGRAM}
SERVICES: list[Target] = [
    Target(
        "enrol_member",
        s.enrol_member,
        P | {"external_id": "dan", "email": "d@x.io", "stripe_customer_id": "cus_D"},
        text=("program", "external_id", "email", "stripe_customer_id"),
    ),
    Target("get_member", s.get_member, P | {"external_id": "alice"}, text=("external_id",)),
    Target(
        "link_stripe_customer",
        s.link_stripe_customer,
        P | {"external_id": "bob", "stripe_customer_id": "cus_B"},
        text=("external_id", "stripe_customer_id"),
    ),
    Target(
        "set_member_status",
        s.set_member_status,
        P | {"external_id": "bob", "status": "active"},
        text=("external_id", "status"),
    ),
    Target(
        "earn_purchase",
        s.earn_purchase,
        P | {"member": "alice", "order_id": "f-1", "currency": "CNY", "amount_minor": 1_000},
        text=("program", "member", "order_id", "currency", "idempotency_key"),
        ints=("amount_minor", "paid_with_points_minor"),
    ),
    Target(
        "earn_purchase_lines",
        s.earn_purchase,
        P | {"member": "alice", "order_id": "f-2", "currency": "CNY", "lines": _lines()},
        text=("sku", "category"),
        ints=("line_amount",),
        lines=True,
    ),
    Target(
        "earn_action",
        s.earn_action,
        P | {"member": "alice", "action": "sign_in", "reference": "r-1"},
        text=("member", "action", "reference", "idempotency_key"),
    ),
    Target(
        "quote_purchase",
        s.quote_purchase,
        P | {"currency": "CNY", "amount_minor": 1_000, "member": "alice"},
        text=("currency", "member"),
        ints=("amount_minor", "paid_with_points_minor"),
    ),
    Target(
        "hold_points",
        s.hold_points,
        P
        | {
            "member": "alice",
            "order_id": "h-1",
            "points": 5,
            "order_total_minor": 100_000,
            "currency": "CNY",
        },
        text=("member", "order_id", "currency", "idempotency_key"),
        ints=("points", "order_total_minor"),
    ),
    Target(
        "quote_redemption",
        s.quote_redemption,
        P | {"member": "alice", "order_total_minor": 10_000, "currency": "CNY"},
        text=("member", "currency"),
        ints=("order_total_minor",),
    ),
    Target("capture_hold", s.capture_hold, P | {"order_id": "held"}, text=("order_id",)),
    Target("release_hold", s.release_hold, P | {"order_id": "held"}, text=("order_id",)),
    Target(
        "refund_order",
        s.refund_order,
        P | {"order_id": "o1", "refund_id": "re_1", "amount_minor": 100, "currency": "CNY"},
        text=("order_id", "refund_id", "currency"),
        ints=("amount_minor",),
    ),
    Target("complete_refund", s.complete_refund, P | {"refund_id": "re_1"}, text=("refund_id",)),
    Target("fail_refund", s.fail_refund, P | {"refund_id": "re_1"}, text=("refund_id",)),
    Target(
        "open_dispute",
        s.open_dispute,
        P | {"order_id": "o1", "dispute_id": "dp_1", "amount_minor": 100, "currency": "CNY"},
        text=("order_id", "dispute_id", "currency"),
        ints=("amount_minor",),
    ),
    Target(
        "close_dispute",
        s.close_dispute,
        P | {"dispute_id": "dp_1", "won": True},
        text=("dispute_id",),
    ),
    Target(
        "transfer_points",
        s.transfer_points,
        P | {"sender": "alice", "recipient": "bob", "points": 1, "transfer_id": "t-1"},
        text=("sender", "recipient", "transfer_id"),
        ints=("points",),
    ),
    Target(
        "adjust_points",
        s.adjust_points,
        P | {"member": "alice", "points": 1, "reason": "fuzz", "adjustment_id": "a-1"},
        text=("member", "reason", "adjustment_id", "actor"),
        ints=("points",),
    ),
    Target(
        "request_adjustment",
        s.request_adjustment,
        P | {"member": "alice", "points": 1, "reason": "fuzz", "requested_by": "ann"},
        text=("member", "reason", "requested_by"),
        ints=("points", "threshold"),
    ),
    Target(
        "approve_adjustment",
        s.approve_adjustment,
        P | {"request_id": 1, "approver": "ben"},
        text=("approver",),
        ints=("request_id",),
    ),
    Target(
        "reject_adjustment",
        s.reject_adjustment,
        P | {"request_id": 1, "rejecter": "ben", "note": "no"},
        text=("rejecter", "note"),
        ints=("request_id",),
    ),
    Target(
        "get_adjustment_request",
        s.get_adjustment_request,
        P | {"request_id": 1},
        ints=("request_id",),
    ),
    Target(
        "list_adjustment_requests",
        s.list_adjustment_requests,
        P | {"member": "alice"},
        text=("member", "status"),
        ints=("limit",),
    ),
    Target(
        "balance",
        s.balance,
        P | {"member": "alice"},
        text=("program", "member"),
        ints=("expiring_within_days",),
    ),
    Target(
        "history", s.history, P | {"member": "alice"}, text=("member",), ints=("limit", "cursor")
    ),
    Target("forecast", s.forecast, dict(P), text=("member",), ints=("days",)),
    Target(
        "audit",
        s.audit,
        {"actor": "ann", "action": "fuzz", "target": "t"},
        text=("actor", "action", "target", "program"),
    ),
    Target(
        "list_audit",
        s.list_audit,
        {},
        text=("action", "actor", "target"),
        ints=("limit", "offset"),
    ),
    Target(
        "create_program",
        s.create_program,
        {"code": "p-fuzz", "name": "Fuzz", "currency": "CNY"},
        text=("code", "name", "currency", "timezone", "rounding"),
        ints=("points_per_unit", "hold_timeout_seconds", "reminder_days", "transfer_max_points"),
    ),
    Target(
        "update_program",
        s.update_program,
        dict(P),
        text=("rounding", "refund_policy"),
        ints=("redeem_min_points", "redeem_min_order_minor", "transfer_daily_limit"),
    ),
    Target(
        "publish_rules",
        s.publish_rules,
        P | {"rules": {"base_ratio": "1"}},
        text=("created_by",),
    ),
    Target("list_rule_versions", s.list_rule_versions, dict(P), text=("program",)),
    Target("expire_due", s.expire_due, {}, ints=("batch_size",)),
    Target("mature_pending", s.mature_pending, {}, ints=("batch_size",)),
    Target("expire_holds", s.expire_holds, {}, ints=("batch_size",)),
    Target("clear_year_end", s.clear_year_end, {"program": "yearly"}, ints=("year", "batch_size")),
    Target("send_reminders", s.send_reminders, dict(P), ints=("days",)),
    Target("pending_notifications", s.pending_notifications, {}, ints=("limit",)),
]


def _call(target: Target, subject: Any, param: str, value: Any) -> Any:
    kwargs = dict(target.base)
    if target.lines:
        kwargs["lines"] = _lines(**{param.removeprefix("line_"): value})
    else:
        kwargs[param] = value
    return target.call(subject, **kwargs)


def _check(call: Callable[[], Any], db: Database) -> None:
    try:
        call()
    except LoyaltyError as exc:
        assert exc.message and exc.code
    report = s.verify_ledger(db)
    assert report.ok, report


@pytest.fixture
def shop(db: Database, clock: FixedClock) -> Database:
    """Alice has points from ``o1`` and a hold for ``held``; bob is enrolled; ``yearly``
    clears at year-end."""
    make_program(db, rules={"actions": {"sign_in": {"points": 5}}}, transfers_enabled=True)
    make_program(db, "yearly", clearing_policy="before_cutoff", clearing_keep_months=1200)
    enrol(db, "alice", "bob")
    earn(db, "alice", "o1", 100_000)
    hold(db, "alice", "held", 10)
    return db


TEXT_CASES = [(t, p) for t in SERVICES for p in t.text]
INT_CASES = [(t, p) for t in SERVICES for p in t.ints]


@FUZZ
@given(case=st.sampled_from(TEXT_CASES), value=TEXT)
def test_any_text_into_any_service(shop: Database, case: tuple[Target, str], value: Any) -> None:
    target, param = case
    _check(lambda: _call(target, shop, param, value), shop)


@FUZZ
@given(case=st.sampled_from(INT_CASES), value=INTEGERS)
def test_any_integer_into_any_service(shop: Database, case: tuple[Target, str], value: Any) -> None:
    target, param = case
    _check(lambda: _call(target, shop, param, value), shop)


@FUZZ
@given(ids=st.lists(INTEGERS, min_size=1, max_size=3), error=TEXT)
def test_any_notification_ids_and_errors(shop: Database, ids: list[Any], error: Any) -> None:
    _check(lambda: s.mark_delivered(shop, ids), shop)
    _check(lambda: s.mark_failed(shop, ids[0], error), shop)
    _check(lambda: s.mark_failed(shop, 1, error), shop)


LINES = st.one_of(
    TEXT,
    INTEGERS,
    st.lists(
        st.one_of(
            TEXT,
            INTEGERS,
            st.dictionaries(st.one_of(st.sampled_from(["amount_minor", "sku"]), TEXT), INTEGERS),
        ),
        max_size=3,
    ),
)


@FUZZ
@given(lines=LINES)
def test_any_shape_of_order_lines(shop: Database, lines: Any) -> None:
    order = {"program": PROGRAM, "member": "alice", "order_id": "f-3", "currency": "CNY"}
    _check(lambda: s.earn_purchase(shop, **order, lines=lines), shop)
    _check(lambda: s.quote_purchase(shop, program=PROGRAM, currency="CNY", lines=lines), shop)


# --- the SDK ---------------------------------------------------------------------------------

SDK: list[Target] = [
    Target(
        "enrol",
        Jifen.enrol,
        {"member": "dan"},
        text=("member", "email", "stripe_customer_id"),
    ),
    Target("get_member", Jifen.get_member, {"member": "alice"}, text=("member",)),
    Target(
        "link_stripe_customer",
        Jifen.link_stripe_customer,
        {"member": "bob", "stripe_customer_id": "cus_B"},
        text=("member", "stripe_customer_id"),
    ),
    Target(
        "quote",
        Jifen.quote,
        {"amount_minor": 1_000},
        text=("member", "currency"),
        ints=("amount_minor", "paid_with_points_minor"),
    ),
    Target(
        "earn",
        Jifen.earn,
        {"member": "alice", "order_id": "s-1", "amount_minor": 1_000},
        text=("member", "order_id", "currency", "idempotency_key"),
        ints=("amount_minor", "paid_with_points_minor"),
    ),
    Target(
        "earn_action",
        Jifen.earn_action,
        {"member": "alice", "action": "sign_in", "reference": "r-2"},
        text=("member", "action", "reference"),
    ),
    Target(
        "quote_redemption",
        Jifen.quote_redemption,
        {"member": "alice", "order_total_minor": 10_000},
        text=("member",),
        ints=("order_total_minor",),
    ),
    Target(
        "hold",
        Jifen.hold,
        {"member": "alice", "order_id": "s-h", "points": 5, "order_total_minor": 100_000},
        text=("member", "order_id", "idempotency_key"),
        ints=("points", "order_total_minor"),
    ),
    Target("capture", Jifen.capture, {"order_id": "held"}, text=("order_id", "idempotency_key")),
    Target("release", Jifen.release, {"order_id": "held"}, text=("order_id",)),
    Target(
        "refund",
        Jifen.refund,
        {"order_id": "o1", "refund_id": "re_2", "amount_minor": 100},
        text=("order_id", "refund_id"),
        ints=("amount_minor",),
    ),
    Target("complete_refund", Jifen.complete_refund, {"refund_id": "re_2"}, text=("refund_id",)),
    Target("fail_refund", Jifen.fail_refund, {"refund_id": "re_2"}, text=("refund_id",)),
    Target(
        "open_dispute",
        Jifen.open_dispute,
        {"order_id": "o1", "dispute_id": "dp_2", "amount_minor": 100},
        text=("order_id", "dispute_id"),
        ints=("amount_minor",),
    ),
    Target(
        "close_dispute",
        Jifen.close_dispute,
        {"dispute_id": "dp_2", "won": False},
        text=("dispute_id",),
    ),
    Target(
        "transfer",
        Jifen.transfer,
        {"sender": "alice", "recipient": "bob", "points": 1, "transfer_id": "t-2"},
        text=("sender", "recipient", "transfer_id"),
        ints=("points",),
    ),
    Target(
        "adjust",
        Jifen.adjust,
        {"member": "alice", "points": 1, "reason": "fuzz", "adjustment_id": "a-2"},
        text=("member", "reason", "adjustment_id"),
        ints=("points",),
    ),
    Target(
        "balance",
        Jifen.balance,
        {"member": "alice"},
        text=("member",),
        ints=("expiring_within_days",),
    ),
    Target(
        "history", Jifen.history, {"member": "alice"}, text=("member",), ints=("limit", "cursor")
    ),
    Target("forecast", Jifen.forecast, {}, text=("member",), ints=("days",)),
    Target("send_reminders", Jifen.send_reminders, {}, ints=("days",)),
]


@pytest.fixture
def client(shop: Database, database_url: str, clock: FixedClock) -> Iterator[Jifen]:
    with Jifen(database_url, program=PROGRAM, clock=clock) as jifen:
        yield jifen


SDK_CASES = [(t, p, "text") for t in SDK for p in t.text] + [
    (t, p, "int") for t in SDK for p in t.ints
]


@FUZZ
@given(case=st.sampled_from(SDK_CASES), data=st.data())
def test_any_text_or_integer_into_any_sdk_method(
    client: Jifen, shop: Database, case: tuple[Target, str, str], data: st.DataObject
) -> None:
    target, param, kind = case
    value = data.draw(TEXT if kind == "text" else INTEGERS)
    _check(lambda: _call(target, client, param, value), shop)


@FUZZ
@given(program=TEXT)
def test_any_program_code_opens_a_client_or_says_why(database_url: str, program: Any) -> None:
    try:
        Jifen(database_url, program=program).close()
    except LoyaltyError as exc:
        assert exc.message


def test_the_fuzz_shop_is_reachable(shop: Database, clock: FixedClock) -> None:
    clock.advance(dt.timedelta(days=1))
    assert s.balance(shop, program=PROGRAM, member="alice").available == 990


# --- signed Stripe events --------------------------------------------------------------------

STRIPE_FIELDS = [
    ("object", "amount_received"),
    ("object", "currency"),
    ("object", "customer"),
    ("object", "id"),
    ("object", "latest_charge"),
    ("metadata", "jifen_member"),
    ("event", "created"),
    ("event", "id"),
    ("event", "type"),
]


@pytest.fixture
def hook(shop: Database) -> Iterator[FlaskClient]:
    s.link_stripe_customer(shop, program=PROGRAM, external_id="alice", stripe_customer_id="cus_A")
    app = Flask("test-fuzz")
    init_stripe_webhook(app, StripeWebhook(shop, program=PROGRAM, secret=stripe.SECRET))
    with app.test_client() as c:
        yield c


@FUZZ
@given(where=st.sampled_from(STRIPE_FIELDS), value=st.one_of(TEXT, INTEGERS))
def test_any_value_in_a_signed_stripe_event_is_answered_without_a_server_error(
    hook: FlaskClient, shop: Database, where: tuple[str, str], value: Any
) -> None:
    event = stripe.payment_intent_succeeded(stripe.new_id("pi"), 5_000, customer="cus_A")
    part, name = where
    if part == "event":
        event[name] = value
    elif part == "metadata":
        event["data"]["object"]["metadata"] = {name: value}
    else:
        event["data"]["object"][name] = value
    try:
        raw = stripe.body(event)
    except (TypeError, ValueError):  # not JSON at all (bytes, NaN...): Stripe cannot send it
        return
    response = hook.post(
        "/webhooks/stripe",
        data=raw,
        headers={"Stripe-Signature": stripe.sign(raw), "Content-Type": "application/json"},
    )
    assert response.status_code in (200, 400), response.get_data(as_text=True)
    assert s.verify_ledger(shop).ok
