"""What Jifen reads from a Stripe event: marshmallow schemas and the facts they produce.

Stripe sends far more than Jifen needs. Each event type Jifen acts on is validated here
(amounts are integers in minor units, currencies three letters) and turned into a small
frozen *fact*:

* :class:`Purchase` from ``payment_intent.succeeded``, ``checkout.session.completed`` (when
  paid) and ``checkout.session.async_payment_succeeded``;
* :class:`RefundState` from ``refund.created``, ``refund.updated``, ``refund.failed`` and
  ``charge.refund.updated`` (one refund's amount and status);
* :class:`ChargeRefunds` from ``charge.refunded`` (the charge's cumulative
  ``amount_refunded`` at that moment);
* :class:`DisputeState` from every ``charge.dispute.*`` event.

Anything else is :class:`Ignored` with the reason. A payload of a handled type that lacks
what Jifen needs raises :class:`loyalty.errors.InvalidStripeEvent`.

Every purchase, refund and dispute is tied to its order by the **PaymentIntent id**, which is
the ``order_id`` of the earning. Members are found by the Stripe customer id or by the
metadata key ``jifen_member`` (the member's own id in the shop), and for Checkout also by
``client_reference_id``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from loyalty.domain.checks import MAX_MEMBER_ID, MAX_MINOR_UNITS, clean_text
from loyalty.errors import InvalidInput, InvalidStripeEvent

MEMBER_METADATA_KEY = "jifen_member"
# Where a purchase happened, as the shop puts it in the metadata (a store or till, a card
# reader or device): what risk control's velocity rules count per location or device.
PLACE_METADATA_KEYS = {"location": "jifen_location", "device": "jifen_device"}

PURCHASE_TYPES = frozenset(
    {
        "payment_intent.succeeded",
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
    }
)
REFUND_TYPES = frozenset(
    {"refund.created", "refund.updated", "refund.failed", "charge.refund.updated"}
)
CHARGE_REFUNDED = "charge.refunded"
DISPUTE_PREFIX = "charge.dispute."

# Stripe's refund and dispute statuses, as what they mean for the points.
REFUND_OPEN = frozenset({"pending", "requires_action"})
REFUND_SUCCEEDED = "succeeded"
REFUND_FAILED = frozenset({"failed", "canceled"})
DISPUTE_WON = frozenset({"won", "warning_closed", "prevented"})
DISPUTE_LOST = "lost"


class _Base(Schema):
    class Meta:
        unknown = EXCLUDE


# Stripe's ids are ASCII letters, digits and underscores; anything unprintable is refused.
_ID_PATTERN = re.compile(r"^[\x21-\x7e]*\Z")
_ID_SHAPE = validate.Regexp(_ID_PATTERN, error="must be printable ASCII without spaces")
# Unix seconds up to 2200-01-01: far beyond any real event, far inside what dates can hold.
MAX_STRIPE_TIMESTAMP = 7_258_118_400
_amount_range = validate.Range(min=0, max=MAX_MINOR_UNITS)
_created_range = validate.Range(min=0, max=MAX_STRIPE_TIMESTAMP)

_id = fields.String(required=True, validate=[validate.Length(min=1, max=255), _ID_SHAPE])
_amount = fields.Integer(required=True, strict=True, validate=_amount_range)
_currency = fields.String(required=True, validate=validate.Length(equal=3))
_optional_id = fields.String(
    load_default=None, allow_none=True, validate=[validate.Length(max=255), _ID_SHAPE]
)
_metadata = fields.Dict(keys=fields.String(), load_default=dict, allow_none=True)


class EnvelopeSchema(_Base):
    """The event around the object."""

    id = _id
    type = fields.String(required=True, validate=[validate.Length(min=1, max=64), _ID_SHAPE])
    created = fields.Integer(required=True, strict=True, validate=_created_range)
    livemode = fields.Boolean(load_default=False)
    data = fields.Dict(required=True)


class PaymentIntentSchema(_Base):
    id = _id
    amount_received = _amount
    currency = _currency
    customer = _optional_id
    metadata = _metadata
    latest_charge = _optional_id


class CheckoutSessionSchema(_Base):
    id = _id
    amount_total = fields.Integer(
        strict=True,
        allow_none=True,
        load_default=None,
        validate=validate.Range(max=MAX_MINOR_UNITS),
    )
    currency = fields.String(allow_none=True, load_default=None)
    customer = _optional_id
    client_reference_id = fields.String(  # the shop's own member id: cleaned by member_ref
        load_default=None, allow_none=True, validate=validate.Length(max=255)
    )
    metadata = _metadata
    payment_intent = _optional_id
    payment_status = fields.String(load_default=None, allow_none=True)


class ChargeSchema(_Base):
    id = _id
    amount_refunded = _amount
    currency = _currency
    payment_intent = _optional_id
    customer = _optional_id


class RefundSchema(_Base):
    id = _id
    amount = _amount
    currency = _currency
    status = fields.String(required=True)
    created = fields.Integer(required=True, strict=True, validate=_created_range)
    charge = _optional_id
    payment_intent = _optional_id


class DisputeSchema(_Base):
    id = _id
    amount = _amount
    currency = _currency
    status = fields.String(required=True)
    charge = _optional_id
    payment_intent = _optional_id


@dataclass(frozen=True)
class Envelope:
    """The parts of an event every event has."""

    event_id: str
    type: str
    created: dt.datetime
    livemode: bool
    object: Mapping[str, Any]


@dataclass(frozen=True)
class Purchase:
    """A paid order: earn once per PaymentIntent."""

    payment_intent: str
    amount_minor: int
    currency: str
    customer: str | None
    member_ref: str | None
    location: str | None = None
    device: str | None = None


@dataclass(frozen=True)
class RefundState:
    """One refund as one event saw it."""

    refund_id: str
    payment_intent: str | None
    amount_minor: int
    currency: str
    status: str
    created: dt.datetime  # when Stripe created the refund


@dataclass(frozen=True)
class ChargeRefunds:
    """A charge's cumulative refunded money at the moment of the event."""

    charge_id: str
    payment_intent: str | None
    amount_refunded: int
    currency: str
    customer: str | None


@dataclass(frozen=True)
class DisputeState:
    """One dispute as one event saw it."""

    dispute_id: str
    payment_intent: str | None
    amount_minor: int
    currency: str
    status: str


@dataclass(frozen=True)
class Ignored:
    """An event that moves no points, and why."""

    reason: str


Fact = Purchase | RefundState | ChargeRefunds | DisputeState | Ignored


def timestamp(seconds: int) -> dt.datetime:
    """A Stripe Unix timestamp as an aware UTC datetime."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


# Schema instances hold no per-load state (marshmallow 4 has no schema context): built once.
ENVELOPE_SCHEMA = EnvelopeSchema()
CHARGE_SCHEMA = ChargeSchema()
DISPUTE_SCHEMA = DisputeSchema()
PAYMENT_INTENT_SCHEMA = PaymentIntentSchema()
CHECKOUT_SESSION_SCHEMA = CheckoutSessionSchema()
REFUND_SCHEMA = RefundSchema()


def _load(schema: Schema, data: Any, what: str) -> dict[str, Any]:
    try:
        loaded: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        raise InvalidStripeEvent(f"{what} is not what Stripe sends: {exc.messages}") from exc
    return loaded


def parse_envelope(event: Any) -> Envelope:
    """The event's id, type, time and object; :class:`InvalidStripeEvent` if it has none."""
    data = _load(ENVELOPE_SCHEMA, event, "the event")
    obj = data["data"].get("object")
    if not isinstance(obj, Mapping):
        raise InvalidStripeEvent("the event has no data.object")
    _check_recorded_fields(obj)
    return Envelope(
        event_id=data["id"],
        type=data["type"],
        created=timestamp(data["created"]),
        livemode=data["livemode"],
        object=obj,
    )


def _check_recorded_fields(obj: Mapping[str, Any]) -> None:
    """Refuse an object whose id, customer or member id cannot be recorded as they are: the
    event's row keeps them (for the console) before the object is read in full."""
    for name in ("id", "customer"):
        value = obj.get(name)
        if isinstance(value, str) and (len(value) > 255 or not _ID_PATTERN.fullmatch(value)):
            raise InvalidStripeEvent(f"the object's {name} must be printable ASCII without spaces")
    metadata = obj.get("metadata")
    reference = obj.get("client_reference_id")
    member_ref(
        metadata if isinstance(metadata, Mapping) else None,
        reference if isinstance(reference, str) else None,
    )


def member_ref(metadata: Mapping[str, Any] | None, fallback: str | None = None) -> str | None:
    """The member id the shop put in the metadata (``jifen_member``), else ``fallback``;
    cleaned as member ids are (:class:`InvalidStripeEvent` if it cannot be one)."""
    value = (metadata or {}).get(MEMBER_METADATA_KEY)
    ref = str(value) if value else fallback
    if ref is None or not ref.strip():
        return None
    try:
        return clean_text(MEMBER_METADATA_KEY, ref, max_length=MAX_MEMBER_ID)
    except InvalidInput as exc:
        raise InvalidStripeEvent(f"the member id in the event: {exc.message}") from exc


def place_of(metadata: Mapping[str, Any] | None) -> dict[str, str | None]:
    """The location and device the shop put in the metadata (``jifen_location``,
    ``jifen_device``), cleaned as texts of at most 128 characters; a value that cannot be
    one is left out rather than failing the purchase (it only feeds risk rules)."""
    place: dict[str, str | None] = {}
    for name, key in PLACE_METADATA_KEYS.items():
        value = (metadata or {}).get(key)
        try:
            place[name] = clean_text(key, str(value), max_length=128) if value else None
        except InvalidInput:
            place[name] = None
    return place


def parse_fact(envelope: Envelope) -> Fact:
    """What an event means for the points."""
    kind = envelope.type
    obj = envelope.object
    if kind == "payment_intent.succeeded":
        return _payment_intent(obj)
    if kind.startswith("checkout.session."):
        return _checkout_session(kind, obj)
    if kind in REFUND_TYPES:
        return _refund(obj)
    if kind == CHARGE_REFUNDED:
        charge = _load(CHARGE_SCHEMA, obj, "the charge")
        return ChargeRefunds(
            charge_id=charge["id"],
            payment_intent=charge["payment_intent"],
            amount_refunded=charge["amount_refunded"],
            currency=charge["currency"].upper(),
            customer=charge["customer"],
        )
    if kind.startswith(DISPUTE_PREFIX):
        dispute = _load(DISPUTE_SCHEMA, obj, "the dispute")
        return DisputeState(
            dispute_id=dispute["id"],
            payment_intent=dispute["payment_intent"],
            amount_minor=dispute["amount"],
            currency=dispute["currency"].upper(),
            status=dispute["status"],
        )
    return Ignored(f"{kind} events move no points")


def _payment_intent(obj: Mapping[str, Any]) -> Fact:
    pi = _load(PAYMENT_INTENT_SCHEMA, obj, "the PaymentIntent")
    if pi["amount_received"] <= 0:
        return Ignored("the PaymentIntent received no money")
    return Purchase(
        payment_intent=pi["id"],
        amount_minor=pi["amount_received"],
        currency=pi["currency"].upper(),
        customer=pi["customer"],
        member_ref=member_ref(pi["metadata"]),
        **place_of(pi["metadata"]),
    )


def _checkout_session(kind: str, obj: Mapping[str, Any]) -> Fact:
    if kind not in PURCHASE_TYPES:
        return Ignored(f"{kind} events move no points")
    session = _load(CHECKOUT_SESSION_SCHEMA, obj, "the Checkout Session")
    if session["payment_status"] != "paid":
        return Ignored(
            f"the session's payment_status is {session['payment_status']!r}; points are "
            "earned by checkout.session.async_payment_succeeded or payment_intent.succeeded"
        )
    if not session["payment_intent"]:
        return Ignored("the session has no PaymentIntent (subscription or setup mode)")
    if session["amount_total"] is None or session["currency"] is None:
        raise InvalidStripeEvent("a paid Checkout Session without amount_total or currency")
    if session["amount_total"] <= 0:
        return Ignored("the session took no money")
    return Purchase(
        payment_intent=session["payment_intent"],
        amount_minor=session["amount_total"],
        currency=session["currency"].upper(),
        customer=session["customer"],
        member_ref=member_ref(session["metadata"], session["client_reference_id"]),
        **place_of(session["metadata"]),
    )


def _refund(obj: Mapping[str, Any]) -> RefundState:
    refund = _load(REFUND_SCHEMA, obj, "the refund")
    return RefundState(
        refund_id=refund["id"],
        payment_intent=refund["payment_intent"],
        amount_minor=refund["amount"],
        currency=refund["currency"].upper(),
        status=refund["status"],
        created=timestamp(refund["created"]),
    )


def order_of(fact: Fact) -> str | None:
    """The PaymentIntent (order id) a fact belongs to."""
    if isinstance(fact, Purchase | RefundState | ChargeRefunds | DisputeState):
        return fact.payment_intent
    return None
