"""Stripe events for tests, built from Stripe's own published example objects.

``tests/data/stripe_fixtures.json`` holds the example objects Stripe publishes for its API
(stripe/openapi ``fixtures3.json``). Every event here is one of those objects with only its
ids, amounts, currency, customer, metadata, status and times changed, wrapped in Stripe's
example event envelope; so the handler meets the shapes Stripe really sends. Payloads are
signed with the scheme Stripe uses (HMAC-SHA256 over ``"<t>.<body>"``), checked by stripe's
own verification.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import time
from pathlib import Path
from typing import Any

FIXTURES = json.loads(
    (Path(__file__).resolve().parents[1] / "data" / "stripe_fixtures.json").read_text()
)["resources"]
SECRET = "whsec_test_jifen_0123456789abcdef"
T0 = 1_795_000_000  # event times start here (2026-11-18) and move forward per order
_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    """A fresh Stripe-looking id."""
    return f"{prefix}_test{next(_ids):08d}"


def _object(kind: str, **changes: Any) -> dict[str, Any]:
    obj = copy.deepcopy(FIXTURES[kind])
    for key, value in changes.items():
        if key not in obj:
            raise KeyError(f"Stripe's {kind} has no field {key!r}")
        obj[key] = value
    return obj


def envelope(event_type: str, obj: dict[str, Any], created: int, **changes: Any) -> dict[str, Any]:
    """Stripe's example event around ``obj``."""
    event = copy.deepcopy(FIXTURES["event"])
    event.update(
        id=changes.pop("id", new_id("evt")),
        type=event_type,
        created=created,
        api_version="2026-10-29.clover",
        data={"object": obj},
        **changes,
    )
    return event


def payment_intent_succeeded(
    pi: str,
    amount: int,
    *,
    currency: str = "cny",
    customer: str | None = None,
    metadata: dict[str, str] | None = None,
    created: int = T0,
) -> dict[str, Any]:
    obj = _object(
        "payment_intent",
        id=pi,
        amount=amount,
        amount_received=amount,
        currency=currency,
        customer=customer,
        metadata=metadata or {},
        status="succeeded",
        latest_charge=charge_id(pi),
        created=created,
    )
    return envelope("payment_intent.succeeded", obj, created)


def checkout_session_completed(
    pi: str,
    amount: int,
    *,
    currency: str = "cny",
    customer: str | None = None,
    metadata: dict[str, str] | None = None,
    client_reference_id: str | None = None,
    payment_status: str = "paid",
    event_type: str = "checkout.session.completed",
    created: int = T0,
) -> dict[str, Any]:
    obj = _object(
        "checkout.session",
        id=new_id("cs_test"),
        amount_total=amount,
        amount_subtotal=amount,
        currency=currency,
        customer=customer,
        client_reference_id=client_reference_id,
        metadata=metadata or {},
        payment_intent=pi,
        payment_status=payment_status,
        status="complete",
        created=created,
    )
    return envelope(event_type, obj, created)


def charge_id(pi: str) -> str:
    """The charge of a PaymentIntent (one per payment in these tests)."""
    return "ch_" + pi.removeprefix("pi_")


def charge_refunded(
    pi: str,
    amount: int,
    amount_refunded: int,
    *,
    currency: str = "cny",
    customer: str | None = None,
    created: int = T0,
) -> dict[str, Any]:
    obj = _object(
        "charge",
        id=charge_id(pi),
        amount=amount,
        amount_captured=amount,
        amount_refunded=amount_refunded,
        refunded=amount_refunded >= amount,
        currency=currency,
        customer=customer,
        payment_intent=pi,
        created=created,
    )
    return envelope("charge.refunded", obj, created)


def refund_event(
    event_type: str,
    pi: str,
    refund_id: str,
    amount: int,
    status: str,
    *,
    refund_created: int,
    currency: str = "cny",
    created: int | None = None,
) -> dict[str, Any]:
    obj = _object(
        "refund",
        id=refund_id,
        amount=amount,
        currency=currency,
        status=status,
        charge=charge_id(pi),
        payment_intent=pi,
        created=refund_created,
    )
    return envelope(event_type, obj, refund_created if created is None else created)


def dispute_event(
    event_type: str,
    pi: str,
    dispute_id: str,
    amount: int,
    status: str,
    *,
    currency: str = "cny",
    created: int = T0,
) -> dict[str, Any]:
    obj = _object(
        "dispute",
        id=dispute_id,
        amount=amount,
        currency=currency,
        status=status,
        charge=charge_id(pi),
        payment_intent=pi,
        created=created,
    )
    return envelope(event_type, obj, created)


def body(event: dict[str, Any]) -> bytes:
    """The exact bytes Stripe would post."""
    return json.dumps(event, separators=(",", ":")).encode()


def sign(payload: bytes, secret: str = SECRET, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header for ``payload``, made the way Stripe makes it."""
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"
