"""The Stripe webhook door: signatures, recording once, purchases, parked events and replays.

Events are Stripe's published example objects with changed ids, amounts, customers and
metadata (see ``stripe_support``); they are signed with Stripe's scheme and posted through
the Flask blueprint's test client. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from admin.webhooks import init_stripe_webhook
from loyalty import services as s
from loyalty.db import Database
from loyalty.errors import (
    ConfigurationError,
    InvalidStripeEvent,
    ProgramNotFound,
    StripeEventNotFound,
)
from loyalty.stripe.sync import apply_parked, replay_event
from loyalty.stripe.webhook import StripeWebhook, body_text
from sdk import Jifen
from tests.integration import stripe_support as st
from tests.integration.helpers import PROGRAM, enrol, make_program, row_counts, scalar


@pytest.fixture
def shop(db: Database) -> Database:
    make_program(db)
    enrol(db, "alice", "bob")
    s.link_stripe_customer(db, program=PROGRAM, external_id="alice", stripe_customer_id="cus_A")
    return db


@pytest.fixture
def client(shop: Database) -> Iterator[FlaskClient]:
    app = Flask("test-webhooks")
    init_stripe_webhook(app, StripeWebhook(shop, program=PROGRAM, secret=st.SECRET))
    with app.test_client() as c:
        yield c


def post(
    client: FlaskClient,
    event: dict[str, Any],
    *,
    secret: str = st.SECRET,
    timestamp: int | None = None,
    payload: bytes | None = None,
) -> tuple[int, dict[str, Any]]:
    raw = st.body(event) if payload is None else payload
    response = client.post(
        "/webhooks/stripe",
        data=raw,
        headers={
            "Stripe-Signature": st.sign(raw, secret, timestamp),
            "Content-Type": "application/json",
        },
    )
    return response.status_code, response.get_json()


def available(db: Database, member: str) -> int:
    return s.balance(db, program=PROGRAM, member=member).available


def event_status(db: Database, event_id: str) -> str:
    return str(scalar(db, "SELECT status FROM stripe_events WHERE event_id = :e", e=event_id))


# --- signatures -------------------------------------------------------------------------------


def test_a_signed_purchase_is_applied(client: FlaskClient, shop: Database) -> None:
    pi = st.new_id("pi")
    code, answer = post(client, st.payment_intent_succeeded(pi, 12_345, customer="cus_A"))
    assert code == 200 and answer["status"] == "applied", answer
    assert available(shop, "alice") == 123
    assert scalar(shop, "SELECT order_id FROM earnings") == pi


@pytest.mark.parametrize(
    "tamper",
    ["body", "secret", "stale", "no_header", "not_json", "not_an_event", "thin_event"],
)
def test_bad_deliveries_get_400_and_write_nothing(
    client: FlaskClient, shop: Database, tamper: str
) -> None:
    event = st.payment_intent_succeeded(st.new_id("pi"), 5_000, customer="cus_A")
    raw = st.body(event)
    before = row_counts(shop)
    headers = {"Stripe-Signature": st.sign(raw)}
    if tamper == "body":
        raw = raw.replace(b"5000", b"9000")
    elif tamper == "secret":
        headers = {"Stripe-Signature": st.sign(raw, "whsec_someone_else")}
    elif tamper == "stale":
        headers = {"Stripe-Signature": st.sign(raw, timestamp=int(time.time()) - 301)}
    elif tamper == "no_header":
        headers = {}
    elif tamper == "not_json":
        raw = b"{not json"
        headers = {"Stripe-Signature": st.sign(raw)}
    elif tamper == "not_an_event":
        raw = b'{"id": "evt_1", "object": "event"}'
        headers = {"Stripe-Signature": st.sign(raw)}
    elif tamper == "thin_event":
        raw = b'{"id": "evt_1", "object": "v2.core.event", "type": "v1.billing.meter"}'
        headers = {"Stripe-Signature": st.sign(raw)}
    response = client.post("/webhooks/stripe", data=raw, headers=headers)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["status"] == "rejected"
    assert row_counts(shop) == before


@pytest.mark.parametrize("raw", [b"\xff\xfe", b'{"id": "evt_\xff"}', '{"id": "\ud800"}'])
def test_a_body_that_is_not_utf8_is_refused_and_writes_nothing(
    shop: Database, raw: bytes | str
) -> None:
    """stripe's check decodes the body as UTF-8; the handler must answer 400, not raise."""
    hook = StripeWebhook(shop, program=PROGRAM, secret=st.SECRET)
    before = row_counts(shop)
    result = hook.handle(raw, st.sign(b"{}"))
    assert (result.http_status, result.status) == (400, "rejected")
    assert "UTF-8" in result.message
    with pytest.raises(InvalidStripeEvent, match="UTF-8"):
        body_text(raw)
    assert row_counts(shop) == before


def test_a_timestamp_inside_the_tolerance_is_accepted(client: FlaskClient, shop: Database) -> None:
    event = st.payment_intent_succeeded(st.new_id("pi"), 5_000, customer="cus_A")
    code, _ = post(client, event, timestamp=int(time.time()) - 290)
    assert code == 200
    assert available(shop, "alice") == 50


def test_the_hook_fails_at_once_when_misconfigured(shop: Database) -> None:
    with pytest.raises(ConfigurationError, match="whsec_"):
        StripeWebhook(shop, program=PROGRAM, secret="")
    with pytest.raises(ProgramNotFound):
        StripeWebhook(shop, program="nope", secret=st.SECRET)


# --- recording once ---------------------------------------------------------------------------


def test_a_duplicate_delivery_changes_nothing(client: FlaskClient, shop: Database) -> None:
    event = st.payment_intent_succeeded(st.new_id("pi"), 20_000, customer="cus_A")
    assert post(client, event)[1]["status"] == "applied"
    before = row_counts(shop)
    code, answer = post(client, event)
    assert (code, answer["status"]) == (200, "duplicate")
    assert row_counts(shop) == before
    assert available(shop, "alice") == 200


@pytest.mark.parametrize("first", ["payment_intent", "checkout"])
def test_checkout_and_payment_intent_earn_once(
    client: FlaskClient, shop: Database, first: str
) -> None:
    pi = st.new_id("pi")
    events = [
        st.payment_intent_succeeded(pi, 30_000, customer="cus_A"),
        st.checkout_session_completed(pi, 30_000, customer="cus_A"),
    ]
    if first == "checkout":
        events.reverse()
    answers = [post(client, e)[1] for e in events]
    assert [a["status"] for a in answers] == ["applied", "applied"]
    assert "already earned 300" in answers[1]["message"]
    assert available(shop, "alice") == 300
    assert scalar(shop, "SELECT count(*) FROM earnings") == 1


def test_members_are_found_by_metadata_and_client_reference(
    client: FlaskClient, shop: Database
) -> None:
    post(
        client,
        st.payment_intent_succeeded(st.new_id("pi"), 1_000, metadata={"jifen_member": "bob"}),
    )
    post(
        client,
        st.checkout_session_completed(st.new_id("pi"), 2_000, client_reference_id="bob"),
    )
    assert available(shop, "bob") == 30


def test_the_location_and_device_in_the_metadata_are_recorded_for_risk_rules(
    client: FlaskClient, shop: Database
) -> None:
    metadata = {"jifen_member": "bob", "jifen_location": "上海-静安店", "jifen_device": "tmr_FDOt"}
    post(client, st.payment_intent_succeeded(st.new_id("pi"), 1_000, metadata=metadata))
    bad = {"jifen_member": "bob", "jifen_location": "x" * 500, "jifen_device": "a\x00b"}
    post(client, st.payment_intent_succeeded(st.new_id("pi"), 1_000, metadata=bad))
    rows = scalar(
        shop, "SELECT COUNT(*) FROM earnings WHERE location = '上海-静安店' AND device = 'tmr_FDOt'"
    )
    assert rows == 1
    assert scalar(shop, "SELECT COUNT(*) FROM earnings WHERE location IS NULL") == 1
    assert available(shop, "bob") == 20  # an unusable place never costs the purchase


def test_unpaid_checkout_waits_for_the_async_payment(client: FlaskClient, shop: Database) -> None:
    pi = st.new_id("pi")
    unpaid = st.checkout_session_completed(pi, 4_000, customer="cus_A", payment_status="unpaid")
    code, answer = post(client, unpaid)
    assert (code, answer["status"]) == (200, "ignored")
    assert available(shop, "alice") == 0
    paid = st.checkout_session_completed(
        pi, 4_000, customer="cus_A", event_type="checkout.session.async_payment_succeeded"
    )
    assert post(client, paid)[1]["status"] == "applied"
    assert available(shop, "alice") == 40


def test_other_event_types_are_recorded_and_ignored(client: FlaskClient, shop: Database) -> None:
    event = st.envelope("customer.created", {"id": "cus_Z", "object": "customer"}, st.T0)
    code, answer = post(client, event)
    assert (code, answer["status"]) == (200, "ignored")
    assert event_status(shop, event["id"]) == "ignored"


def test_a_refused_event_is_failed_with_its_reason(client: FlaskClient, shop: Database) -> None:
    event = st.payment_intent_succeeded(st.new_id("pi"), 1_000, customer="cus_A", currency="usd")
    code, answer = post(client, event)
    assert (code, answer["status"]) == (200, "failed")
    assert "USD" in answer["message"] and "CNY" in answer["message"]
    assert scalar(shop, "SELECT count(*) FROM earnings") == 0
    assert "USD" in scalar(shop, "SELECT reason FROM stripe_events")


def test_a_signed_event_with_a_broken_object_is_failed(client: FlaskClient, shop: Database) -> None:
    event = st.payment_intent_succeeded(st.new_id("pi"), 1_000, customer="cus_A")
    event["data"]["object"]["amount_received"] = "1000"  # a string, not minor units
    code, answer = post(client, event)
    assert (code, answer["status"]) == (200, "failed")
    assert "amount_received" in answer["message"]
    assert scalar(shop, "SELECT count(*) FROM earnings") == 0


# --- parked events ----------------------------------------------------------------------------


def test_events_of_an_unknown_customer_are_parked_then_applied_on_linking(
    client: FlaskClient, shop: Database, database_url: str
) -> None:
    pi = st.new_id("pi")
    purchase = st.payment_intent_succeeded(pi, 10_000, customer="cus_NEW")
    refund = st.refund_event(
        "refund.created", pi, st.new_id("re"), 2_500, "succeeded", refund_created=st.T0 + 60
    )
    answers = [post(client, e)[1] for e in (purchase, refund)]
    assert [a["status"] for a in answers] == ["parked", "parked"]
    assert "cus_NEW" in answers[0]["message"]
    assert "has not been recorded yet" in answers[1]["message"]
    assert scalar(shop, "SELECT count(*) FROM earnings") == 0

    with Jifen(engine=shop.engine, program=PROGRAM, clock=shop.clock) as jifen:
        jifen.link_stripe_customer(member="bob", stripe_customer_id="cus_NEW")
    assert available(shop, "bob") == 75  # 100 earned, 25 reversed by the refund
    assert event_status(shop, purchase["id"]) == "applied"
    assert event_status(shop, refund["id"]) == "applied"
    assert s.verify_ledger(shop).ok


def test_a_refund_before_its_purchase_waits_for_it(client: FlaskClient, shop: Database) -> None:
    pi = st.new_id("pi")
    refund = st.refund_event(
        "refund.updated", pi, st.new_id("re"), 10_000, "succeeded", refund_created=st.T0 + 60
    )
    assert post(client, refund)[1]["status"] == "parked"
    post(client, st.payment_intent_succeeded(pi, 10_000, customer="cus_A"))
    assert event_status(shop, refund["id"]) == "applied"
    bal = s.balance(shop, program=PROGRAM, member="alice")
    assert (bal.available, bal.frozen, bal.lifetime_earned) == (0, 0, 100)


def test_parked_events_can_be_replayed_by_hand(client: FlaskClient, shop: Database) -> None:
    purchase = st.payment_intent_succeeded(
        st.new_id("pi"), 6_000, metadata={"jifen_member": "carol"}
    )
    assert post(client, purchase)[1]["status"] == "parked"
    assert replay_event(shop, program=PROGRAM, event_id=purchase["id"]).status == "parked"
    s.enrol_member(shop, program=PROGRAM, external_id="carol")
    results = apply_parked(shop, program=PROGRAM, member="carol")
    assert [r.status for r in results] == ["applied"]
    assert available(shop, "carol") == 60
    again = replay_event(shop, program=PROGRAM, event_id=purchase["id"])
    assert again.status == "duplicate"
    assert available(shop, "carol") == 60
    with pytest.raises(StripeEventNotFound):
        replay_event(shop, program=PROGRAM, event_id="evt_missing")
    assert scalar(shop, "SELECT attempts FROM stripe_events") == 3


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_a_body_with_a_non_json_number_is_rejected_and_writes_nothing(
    client: FlaskClient, shop: Database, token: str
) -> None:
    event = st.payment_intent_succeeded(st.new_id("pi"), 10_000, customer="cus_A")
    raw = st.body(event).replace(b'"amount_received":10000', b'"amount_received":' + token.encode())
    assert token.encode() in raw
    response = client.post(
        "/webhooks/stripe",
        data=raw,
        headers={"Stripe-Signature": st.sign(raw), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert f"{token} is not a JSON value" in response.get_json()["message"]
    assert scalar(shop, "SELECT count(*) FROM stripe_events") == 0
