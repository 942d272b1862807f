"""Bounds, text and currencies: bad input gets its specific error before any SQL, and writes
nothing, the same way on SQLite and PostgreSQL.

Before these checks, huge numbers escaped as ``OverflowError`` (SQLite) or ``DataError``
(PostgreSQL), NUL was stored by SQLite and refused raw by PostgreSQL, zero-width characters
were stored silently, any three letters were a currency, and a member id outside ASCII broke
the default idempotency key.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from admin.webhooks import init_stripe_webhook
from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.checks import MAX_DAYS, MAX_ID, MAX_MINOR_UNITS, MAX_POINTS, derive_key
from loyalty.domain.clock import FixedClock
from loyalty.errors import (
    InvalidAmount,
    InvalidInput,
    InvalidRule,
    InvalidText,
    LoyaltyError,
    UnknownCurrency,
)
from loyalty.stripe.webhook import StripeWebhook
from sdk import Jifen
from tests.integration import stripe_support as st
from tests.integration.helpers import (
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
    scalar,
)

HUGE = 10**20
RULES = {"actions": {"sign_in": {"points": 5}}}


_earn = earn_call


_hold = hold_call


_enrol = deferred(s.enrol_member, program=PROGRAM, external_id="dan")


_adjust = deferred(
    s.adjust_points,
    program=PROGRAM,
    member="alice",
    points=5,
    reason="goodwill",
    adjustment_id="adj-new",
)


_refund = deferred(
    s.refund_order,
    program=PROGRAM,
    order_id="o1",
    refund_id="re_new",
    amount_minor=100,
    currency="CNY",
)


_program = deferred(s.create_program, code="p2", name="P2", currency="CNY")


GROUPS: dict[str, list[tuple[str, Call, type[LoyaltyError]]]] = {
    "points-and-money": [
        ("earn-amount-1e20", _earn(amount_minor=HUGE), InvalidAmount),
        ("earn-amount-over-max", _earn(amount_minor=MAX_MINOR_UNITS + 1), InvalidAmount),
        ("earn-line-1e20", _earn(lines=[{"amount_minor": HUGE}]), InvalidAmount),
        (
            "earn-lines-sum-over-max",
            _earn(lines=[{"amount_minor": MAX_MINOR_UNITS}, {"amount_minor": 1}]),
            InvalidAmount,
        ),
        ("earn-paid-1e20", _earn(paid_with_points_minor=HUGE), InvalidAmount),
        (
            "earn-computes-over-max-points",
            _earn(program="rich", amount_minor=MAX_MINOR_UNITS),
            InvalidAmount,
        ),
        ("hold-points-1e20", _hold(points=HUGE), InvalidAmount),
        ("hold-points-over-max", _hold(points=MAX_POINTS + 1), InvalidAmount),
        ("hold-total-1e20", _hold(order_total_minor=HUGE), InvalidAmount),
        (
            "quote-redemption-1e20",
            lambda db: s.quote_redemption(
                db, program=PROGRAM, member="alice", order_total_minor=HUGE, currency="CNY"
            ),
            InvalidAmount,
        ),
        (
            "quote-purchase-1e20",
            lambda db: s.quote_purchase(db, program=PROGRAM, currency="CNY", amount_minor=HUGE),
            InvalidAmount,
        ),
        (
            "quote-purchase-over-max-points",
            lambda db: s.quote_purchase(
                db, program="rich", currency="CNY", amount_minor=MAX_MINOR_UNITS
            ),
            InvalidAmount,
        ),
        ("adjust-over-max", _adjust(points=MAX_POINTS + 1), InvalidAmount),
        ("adjust-under-minus-max", _adjust(points=-MAX_POINTS - 1), InvalidAmount),
        (
            "transfer-1e20",
            lambda db: s.transfer_points(
                db,
                program=PROGRAM,
                sender="alice",
                recipient="bob",
                points=HUGE,
                transfer_id="t-new",
            ),
            InvalidAmount,
        ),
        ("refund-1e20", _refund(amount_minor=HUGE), InvalidAmount),
        (
            "dispute-1e20",
            lambda db: s.open_dispute(
                db,
                program=PROGRAM,
                order_id="o1",
                dispute_id="dp_new",
                amount_minor=HUGE,
                currency="CNY",
            ),
            InvalidAmount,
        ),
        (
            "request-adjustment-1e20",
            lambda db: s.request_adjustment(
                db,
                program=PROGRAM,
                member="alice",
                points=HUGE,
                reason="typo",
                requested_by="ops",
            ),
            InvalidAmount,
        ),
        (
            "action-rule-points-over-max",
            lambda db: s.publish_rules(
                db, program=PROGRAM, rules={"actions": {"big": {"points": MAX_POINTS + 1}}}
            ),
            InvalidRule,
        ),
        ("program-points-per-unit-int32", _program(points_per_unit=2**31), InvalidRule),
        ("program-hold-timeout-days", _program(hold_timeout_seconds=10**9), InvalidRule),
        ("program-transfer-max-1e20", _program(transfer_max_points=HUGE), InvalidAmount),
    ],
    "days-ids-cursors": [
        (
            "balance-window-1e9",
            lambda db: s.balance(db, program=PROGRAM, member="alice", expiring_within_days=10**9),
            InvalidAmount,
        ),
        (
            "balance-window-over-max",
            lambda db: s.balance(
                db, program=PROGRAM, member="alice", expiring_within_days=MAX_DAYS + 1
            ),
            InvalidAmount,
        ),
        (
            "history-cursor-2e70",
            lambda db: s.history(db, program=PROGRAM, member="alice", cursor=2**70),
            InvalidAmount,
        ),
        (
            "history-cursor-over-bigint",
            lambda db: s.history(db, program=PROGRAM, member="alice", cursor=MAX_ID + 1),
            InvalidAmount,
        ),
        (
            "history-limit-1e20",
            lambda db: s.history(db, program=PROGRAM, member="alice", limit=HUGE),
            InvalidAmount,
        ),
        (
            "approval-id-1e20",
            lambda db: s.approve_adjustment(db, program=PROGRAM, request_id=HUGE, approver="x"),
            InvalidAmount,
        ),
        ("expire-batch-1e20", lambda db: s.expire_due(db, batch_size=HUGE), InvalidAmount),
        ("mature-batch-1e20", lambda db: s.mature_pending(db, batch_size=HUGE), InvalidAmount),
        ("holds-batch-1e20", lambda db: s.expire_holds(db, batch_size=HUGE), InvalidAmount),
    ],
    "text": [
        ("member-zero-width", _enrol(external_id="ali\u200bce"), InvalidText),
        ("member-nul", _enrol(external_id="dan\x00"), InvalidText),
        ("member-lone-surrogate", _enrol(external_id="dan\ud800"), InvalidText),
        ("member-bidi-override", _enrol(external_id="dan\u202egpj.exe"), InvalidText),
        ("member-bidi-isolate", _enrol(external_id="\u2066dan"), InvalidText),
        ("member-arabic-letter-mark", _enrol(external_id="dan\u061c"), InvalidText),
        ("member-bom", _enrol(external_id="\ufeffdan"), InvalidText),
        ("member-word-joiner", _enrol(external_id="d\u2060an"), InvalidText),
        ("member-control", _enrol(external_id="dan\x07"), InvalidText),
        ("member-newline-inside", _enrol(external_id="d\nan"), InvalidText),
        ("member-line-separator", _enrol(external_id="d\u2028an"), InvalidText),
        ("member-private-use", _enrol(external_id="dan\ue000"), InvalidText),
        ("member-unassigned", _enrol(external_id="dan\U000e0fff"), InvalidText),
        ("member-blank", _enrol(external_id=" \t "), InvalidInput),
        ("member-too-long", _enrol(external_id="d" * 129), InvalidInput),
        ("email-two-ats", _enrol(email="a@b@c"), InvalidInput),
        ("email-space", _enrol(email="a b@c.d"), InvalidInput),
        ("email-no-domain", _enrol(email="dan@"), InvalidInput),
        ("email-zero-width", _enrol(email="dan@ex\u200bample.com"), InvalidText),
        ("stripe-customer-nul", _enrol(stripe_customer_id="cus_\x00"), InvalidText),
        ("earn-program-nul", _earn(program="shop\x00"), InvalidText),
        ("earn-member-zero-width", _earn(member="ali\u200bce"), InvalidText),
        ("earn-sku-bidi", _earn(lines=[{"amount_minor": 100, "sku": "a\u202eb"}]), InvalidText),
        ("adjust-reason-nul", _adjust(reason="typo\x00"), InvalidText),
        ("adjust-reason-bidi", _adjust(reason="goodwill \u202e"), InvalidText),
        ("adjust-actor-control", _adjust(actor="ops\x1b[31m"), InvalidText),
        (
            "action-name-zero-width",
            lambda db: s.earn_action(
                db, program=PROGRAM, member="alice", action="sign\u200b_in", reference="d9"
            ),
            InvalidText,
        ),
        ("program-code-nul", _program(code="p\x00"), InvalidText),
        ("program-name-bidi", _program(name="Shop\u202e"), InvalidText),
        ("program-timezone-none", _program(timezone=None), InvalidInput),
        ("program-timezone-long", _program(timezone="Asia/" + "x" * 300), InvalidInput),
        (
            "audit-filter-nul",
            lambda db: s.list_audit(db, target="\x00"),
            InvalidText,
        ),
        (
            "audit-actor-nul",
            lambda db: s.audit(db, actor="ops\x00", action="x", target="y"),
            InvalidText,
        ),
    ],
    "currencies": [
        ("program-xyz", _program(currency="XYZ"), UnknownCurrency),
        ("program-gold", _program(currency="XAU"), UnknownCurrency),
        ("earn-xyz", _earn(currency="XYZ"), UnknownCurrency),
        ("hold-xyz", _hold(currency="xyz"), UnknownCurrency),
        ("refund-xyz", _refund(currency="XYZ"), UnknownCurrency),
    ],
}


@pytest.fixture
def scene(db: Database, clock: FixedClock) -> Database:
    """Alice has 100 points from order ``o1``; bob is enrolled; ``rich`` earns 100 points a
    yuan (so a maximal order would earn more than MAX_POINTS)."""
    make_program(db, rules=RULES, transfers_enabled=True)
    make_program(db, "rich", rules={"base_ratio": "100"})
    enrol(db, "alice", "bob")
    enrol(db, "alice", program="rich")
    earn(db, "alice", "o1", 10_000)
    return db


@pytest.mark.parametrize("group", list(GROUPS))
def test_bad_input_raises_its_error_and_writes_nothing(
    scene: Database, group: str, subtests: pytest.Subtests
) -> None:
    balance_before = s.balance(scene, program=PROGRAM, member="alice")
    _each_raises_and_writes_nothing(scene, scene, GROUPS[group], subtests)
    assert s.balance(scene, program=PROGRAM, member="alice") == balance_before
    assert s.verify_ledger(scene).ok


def _each_raises_and_writes_nothing(
    db: Database,
    subject: Any,
    cases: list[tuple[str, Callable[[Any], Any], type[LoyaltyError]]],
    subtests: pytest.Subtests,
) -> None:
    """Each call on ``subject`` raises exactly its error class and leaves every table of
    ``db`` as it was."""
    for name, call, error in cases:
        with subtests.test(msg=name):
            before = row_counts(db)
            with pytest.raises(LoyaltyError) as raised:
                call(subject)
            assert type(raised.value) is error, raised.value
            assert raised.value.message
            assert row_counts(db) == before


# --- the bounds themselves are allowed -------------------------------------------------------


def test_the_bounds_themselves_are_accepted(scene: Database) -> None:
    assert (
        s.balance(scene, program=PROGRAM, member="alice", expiring_within_days=MAX_DAYS).available
        == 100
    )
    assert s.history(scene, program=PROGRAM, member="alice", cursor=MAX_ID).items
    # 10**14 fen is 10**12 yuan: exactly MAX_POINTS at one point a yuan
    result = earn(scene, "bob", "big", MAX_MINOR_UNITS)
    assert result.points_granted == MAX_POINTS
    s.adjust_points(
        scene, program=PROGRAM, member="bob", points=-MAX_POINTS, reason="undo", adjustment_id="u"
    )
    assert s.balance(scene, program=PROGRAM, member="bob").available == 0
    assert s.verify_ledger(scene).ok


# --- text is stored cleaned ------------------------------------------------------------------


def test_ids_and_text_are_stored_nfc_and_stripped(scene: Database) -> None:
    decomposed = "Rene\u0301e"  # e + combining acute: the same name as "Renée"
    info = s.enrol_member(scene, program=PROGRAM, external_id=f"  {decomposed} ", email=" r@x.io ")
    composed = unicodedata.normalize("NFC", decomposed)
    assert (info.external_id, info.email) == (composed, "r@x.io")
    stored = scalar(scene, "SELECT external_id FROM members WHERE email = 'r@x.io'")
    assert stored == composed
    # either spelling finds the same member; enrolling again with it returns the member
    assert s.get_member(scene, program=PROGRAM, external_id=decomposed).external_id == composed
    again = s.enrol_member(scene, program=PROGRAM, external_id=composed, email="r@x.io")
    assert again.external_id == composed
    earn(scene, f" {decomposed}", "o-renee", 1_000)
    assert s.balance(scene, program=PROGRAM, member=composed).available == 10


def test_reasons_keep_their_lines_and_lose_surrounding_space(scene: Database) -> None:
    s.adjust_points(
        scene,
        program=PROGRAM,
        member="alice",
        points=5,
        reason="  goodwill\r\nticket 42\t(late)  ",
        adjustment_id="adj-1",
        actor=" ops ",
    )
    request = s.request_adjustment(
        scene, program=PROGRAM, member=" alice ", points=1, reason=" x\n y ", requested_by=" ann "
    )
    assert (request.reason, request.requested_by) == ("x\n y", "ann")


# --- default keys for any member id -----------------------------------------------------------


def test_an_action_of_a_member_with_a_chinese_id_earns_once(scene: Database) -> None:
    member = "会员-张三"
    enrol(scene, member)
    first = s.earn_action(scene, program=PROGRAM, member=member, action="sign_in", reference="d1")
    again = s.earn_action(scene, program=PROGRAM, member=member, action="sign_in", reference="d1")
    assert (first.points_granted, first.replayed, again.replayed) == (5, False, True)
    key = derive_key(f"action:sign_in:{member}:d1")
    assert key.startswith("utf8:action:sign_in:%E4%BC%9A")
    assert scalar(scene, "SELECT count(*) FROM operations WHERE key = :k", k=key) == 1
    assert s.balance(scene, program=PROGRAM, member=member).available == 5


def test_a_valid_default_key_is_kept_byte_for_byte(scene: Database) -> None:
    s.earn_action(scene, program=PROGRAM, member="alice", action="sign_in", reference="d1")
    hold(scene, "alice", "o-9", 10)
    keys = {
        k
        for (k,) in _rows(scene, "SELECT key FROM operations WHERE key NOT LIKE 'earn:%'")
        if not k.startswith("sweep")
    }
    assert keys == {"action:sign_in:alice:d1", "hold:o-9"}


def test_a_default_key_longer_than_the_limit_is_a_digest(scene: Database) -> None:
    member = "会" * 128
    enrol(scene, member)
    s.earn_action(scene, program=PROGRAM, member=member, action="sign_in", reference="r" * 200)
    key = scalar(scene, "SELECT key FROM operations ORDER BY id DESC LIMIT 1")
    assert key.startswith("sha256:") and len(key) == 71
    again = s.earn_action(
        scene, program=PROGRAM, member=member, action="sign_in", reference="r" * 200
    )
    assert again.replayed


def test_an_order_id_at_its_limit_times_its_hold_out(scene: Database, clock: FixedClock) -> None:
    order = "o" * 200  # "hold-timeout:" + 200 characters was longer than a key may be
    hold(scene, "alice", order, 10)
    clock.advance(dt.timedelta(hours=1))
    assert s.expire_holds(scene).items == 1
    assert s.verify_ledger(scene).ok


def _rows(db: Database, sql: str) -> list[Any]:
    with db.read() as conn:
        return list(conn.execute(text(sql)).all())


# --- the SDK ---------------------------------------------------------------------------------


@pytest.fixture
def client(scene: Database, database_url: str, clock: FixedClock) -> Iterator[Jifen]:
    with Jifen(database_url, program=PROGRAM, clock=clock) as jifen:
        yield jifen


SDK_CASES: list[tuple[str, Callable[[Jifen], Any], type[LoyaltyError]]] = [
    ("earn-1e20", lambda j: j.earn(member="alice", order_id="n", amount_minor=HUGE), InvalidAmount),
    (
        "hold-points-1e20",
        lambda j: j.hold(member="alice", order_id="n", points=HUGE, order_total_minor=100),
        InvalidAmount,
    ),
    (
        "hold-total-1e20",
        lambda j: j.hold(member="alice", order_id="n", points=1, order_total_minor=HUGE),
        InvalidAmount,
    ),
    (
        "balance-1e9-days",
        lambda j: j.balance(member="alice", expiring_within_days=10**9),
        InvalidAmount,
    ),
    ("history-cursor-2e70", lambda j: j.history(member="alice", cursor=2**70), InvalidAmount),
    ("enrol-zero-width", lambda j: j.enrol(member="ali\u200bce"), InvalidText),
    ("earn-currency-xyz", lambda j: j.quote(amount_minor=100, currency="XYZ"), UnknownCurrency),
]


def test_the_sdk_raises_the_same_errors_and_writes_nothing(
    client: Jifen, scene: Database, subtests: pytest.Subtests
) -> None:
    _each_raises_and_writes_nothing(scene, client, SDK_CASES, subtests)


def test_the_sdk_earns_an_action_for_a_chinese_member_id(client: Jifen) -> None:
    client.enrol(member="会员-张三")
    first = client.earn_action(member="会员-张三", action="sign_in", reference="d1")
    again = client.earn_action(member="会员-张三", action="sign_in", reference="d1")
    assert (first.points_granted, again.replayed) == (5, True)


# --- Stripe events ---------------------------------------------------------------------------


@pytest.fixture
def hook(scene: Database) -> Iterator[FlaskClient]:
    s.link_stripe_customer(scene, program=PROGRAM, external_id="alice", stripe_customer_id="cus_A")
    app = Flask("test-bounds")
    init_stripe_webhook(app, StripeWebhook(scene, program=PROGRAM, secret=st.SECRET))
    with app.test_client() as c:
        yield c


def _post(hook: FlaskClient, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    raw = st.body(event)
    response = hook.post(
        "/webhooks/stripe",
        data=raw,
        headers={"Stripe-Signature": st.sign(raw), "Content-Type": "application/json"},
    )
    return response.status_code, response.get_json()


def test_a_signed_event_created_beyond_any_date_is_rejected(
    hook: FlaskClient, scene: Database
) -> None:
    before = row_counts(scene)
    event = st.payment_intent_succeeded(st.new_id("pi"), 5_000, customer="cus_A", created=HUGE)
    code, answer = _post(hook, event)
    assert (code, answer["status"]) == (400, "rejected")
    assert "created" in answer["message"]
    assert row_counts(scene) == before


@pytest.mark.parametrize("what", ["amount_received", "refund", "dispute", "charge"])
def test_a_signed_event_with_a_huge_amount_is_failed_and_moves_no_points(
    hook: FlaskClient, scene: Database, what: str
) -> None:
    pi = st.new_id("pi")
    if what == "amount_received":
        event = st.payment_intent_succeeded(pi, HUGE, customer="cus_A")
    elif what == "refund":
        event = st.refund_event(
            "refund.created", pi, st.new_id("re"), HUGE, "succeeded", refund_created=st.T0
        )
    elif what == "dispute":
        event = st.dispute_event("charge.dispute.created", pi, st.new_id("dp"), HUGE, "open")
    else:
        event = st.charge_refunded(pi, 5_000, HUGE)
    before = row_counts(scene)
    code, answer = _post(hook, event)
    # a broken object of a signed event is recorded as failed with its reason (Stripe need
    # not retry it); nothing else is written
    assert (code, answer["status"]) == (200, "failed"), answer
    assert "100000000000000" in answer["message"]
    after = row_counts(scene)
    assert after.pop("stripe_events") == before.pop("stripe_events") + 1
    assert after == before
    assert s.verify_ledger(scene).ok


def test_a_member_id_in_metadata_with_invisible_characters_is_refused(
    hook: FlaskClient, scene: Database
) -> None:
    event = st.payment_intent_succeeded(st.new_id("pi"), 5_000, metadata={"jifen_member": "a\x00"})
    code, answer = _post(hook, event)
    assert code < 500 and answer["status"] in ("failed", "rejected"), answer
    assert scalar(scene, "SELECT count(*) FROM earnings") == 1  # o1 only


def test_stripe_ids_must_be_printable_ascii(hook: FlaskClient, scene: Database) -> None:
    event = st.payment_intent_succeeded("pi_\x00", 5_000, customer="cus_A")
    code, answer = _post(hook, event)
    assert code < 500 and answer["status"] in ("failed", "rejected"), answer
    assert scalar(scene, "SELECT count(*) FROM earnings") == 1
