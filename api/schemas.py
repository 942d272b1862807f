"""The API's marshmallow schemas: request bodies and query arguments, and response bodies.

Response schemas are derived from the services' frozen result types (:func:`result_schema`),
so the API answers with exactly what the SDK returns, field for field, and the OpenAPI
document follows the code. ``replayed`` is not in a body: a replay answers the first
response's status and body with ``Idempotent-Replayed: true``.

Request fields are documented with their types but handed to the services as sent
(:func:`given`): the services check every value and raise the same error, with the same
``code``, as for an embedded caller (a float amount is ``invalid_amount`` either way). A
missing required field or an unknown one is refused here with ``invalid_input``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
import typing
from typing import Any

import marshmallow as ma

from loyalty.domain.checks import MAX_DAYS, MAX_ID
from loyalty.events.delivery import MAX_PAGE as MAX_DELIVERY_PAGE
from loyalty.events.delivery import DeliveryInfo
from loyalty.events.endpoints import EndpointCreated, EndpointInfo
from loyalty.events.feed import MAX_PAGE as MAX_EVENT_PAGE
from loyalty.services import results, reward_results, tier_results
from loyalty.services.api_keys import ApiKeyInfo
from loyalty.services.approvals import AdjustmentRequestInfo
from loyalty.services.member_tokens import MemberToken
from loyalty.services.queries import MAX_PAGE
from loyalty.services.reward_redemptions import MAX_PAGE as MAX_REDEMPTION_PAGE
from loyalty.services.risk_cases import MAX_PAGE as MAX_RISK_CASE_PAGE
from loyalty.services.risk_cases import RiskCaseInfo, RiskCasePage
from loyalty.services.risk_rules import RiskRulesInfo
from loyalty.services.risk_scan import RiskScanResult

_SCHEMAS: dict[type, type[ma.Schema]] = {}
_BUILDING: set[type] = set()
_JSON_TYPES: dict[Any, str] = {int: "integer", str: "string", bool: "boolean"}


def given(
    json_type: str,
    description: str,
    *,
    required: bool = False,
    nullable: bool = False,
    example: Any = None,
) -> ma.fields.Raw:
    """A request field documented as ``json_type`` whose value reaches the service as sent."""
    # apispec adds "null" to the type of a field that allows None
    meta: dict[str, Any] = {"type": json_type, "description": description}
    if json_type == "integer":
        meta["format"] = "int64"
    if example is not None:
        meta["example"] = example
    return ma.fields.Raw(required=required, allow_none=nullable, metadata=meta)


def _field(hint: Any) -> ma.fields.Field[Any]:
    """A dump-only marshmallow field for a result type's annotation."""
    nullable = False
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        nullable, hint, origin = True, args[0], typing.get_origin(args[0])
    kw: dict[str, Any] = {"allow_none": nullable}
    if hint is dt.datetime:
        return ma.fields.AwareDateTime(format="iso", **kw)
    if hint is dt.date:
        return ma.fields.Date(**kw)
    if origin is list:  # a tier's benefits, a forecast's counts
        (item,) = typing.get_args(hint)
        inner = _field(item) if item in _JSON_TYPES else _nested(item)
        return ma.fields.List(inner, **kw)
    if origin is tuple:
        (item, _ellipsis) = typing.get_args(hint)
        if item in _JSON_TYPES:
            return ma.fields.List(_field(item), **kw)
        if typing.get_origin(item) is tuple:  # pairs, such as (version, from when)
            return ma.fields.List(
                ma.fields.Tuple(tuple(_field(part) for part in typing.get_args(item))), **kw
            )
        return ma.fields.List(_nested(item), **kw)
    if origin is dict or hint is dict:
        return ma.fields.Dict(**kw)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _nested(hint, **kw)
    if hint is int:
        return ma.fields.Integer(**kw)
    if hint is bool:
        return ma.fields.Boolean(**kw)
    if hint is str:
        return ma.fields.String(**kw)
    raise TypeError(f"no schema field for {hint!r}")


def _nested(cls: type, **kw: Any) -> ma.fields.Nested:
    """A nested result; a type that nests itself (a draw's prize is a redemption) refers to
    its schema by name, since that schema is still being built."""
    if cls in _BUILDING:
        return ma.fields.Nested(lambda: _SCHEMAS[cls](), **kw)
    return ma.fields.Nested(result_schema(cls), **kw)


def result_schema(cls: type, **fields: ma.fields.Field[Any]) -> type[ma.Schema]:
    """The response schema of a result dataclass (named after it), built once; ``fields``
    replace what the annotations give (a list of mappings whose values need a form)."""
    if cls not in _SCHEMAS:
        _BUILDING.add(cls)
        hints = typing.get_type_hints(cls)
        attrs: dict[str, Any] = {
            f.name: fields[f.name] if f.name in fields else _field(hints[f.name])
            for f in dataclasses.fields(cls)
            if f.name not in ("replayed", "key_hash")
        }
        schema = ma.Schema.from_dict(attrs, name=cls.__name__)
        schema.__doc__ = (cls.__doc__ or "").strip()
        _SCHEMAS[cls] = schema
        _BUILDING.discard(cls)
    return _SCHEMAS[cls]


Member = result_schema(results.MemberInfo)
EarnResult = result_schema(results.EarnResult)
EarnQuote = result_schema(results.EarnQuote)
RedemptionQuote = result_schema(results.RedemptionQuote)
HoldResult = result_schema(results.HoldResult)
ReversalResult = result_schema(results.ReversalResult)
TransferResult = result_schema(results.TransferResult)
AdjustmentResult = result_schema(results.AdjustmentResult)
AdjustmentRequest = result_schema(AdjustmentRequestInfo)
Balance = result_schema(results.Balance)
HistoryPage = result_schema(results.HistoryPage)
Forecast = result_schema(results.Forecast)
Program = result_schema(results.ProgramInfo)
RuleVersion = result_schema(results.RuleVersionInfo)
SweepResult = result_schema(results.SweepResult)
Token = result_schema(MemberToken)
ApiKey = result_schema(ApiKeyInfo)
RewardOffer = result_schema(reward_results.RewardOffer)
RewardRedemption = result_schema(reward_results.RewardRedemptionResult)
RedemptionPage = result_schema(reward_results.RedemptionPage)
VoucherCheck = result_schema(reward_results.VoucherCheck)
RewardInfo = result_schema(reward_results.RewardInfo)
TierVersion = result_schema(tier_results.TierVersionInfo)
TierChange = result_schema(tier_results.TierChangeInfo)
TierProgress = result_schema(tier_results.TierProgress)
TierCount = result_schema(tier_results.TierCount)
TierForecast = result_schema(tier_results.TierForecast)


# --- request bodies -----------------------------------------------------------------------


class _Body(ma.Schema):
    class Meta:
        unknown = ma.RAISE


class OrderLineIn(_Body):
    """One line of an order."""

    amount_minor = given("integer", "the line's amount in minor units", required=True)
    sku = given("string", "the product's SKU (SKU ratios apply)", nullable=True)
    category = given("string", "the product's category (category ratios apply)", nullable=True)


def _lines() -> ma.fields.List[Any]:
    return ma.fields.List(
        ma.fields.Nested(OrderLineIn),
        load_default=None,
        allow_none=True,
        metadata={"description": "order lines instead of amount_minor"},
    )


_CURRENCY = "ISO 4217 code; default: the program's"
_WHERE = "what risk control's velocity rules count per {}; up to 128 characters"


def _location() -> ma.fields.Raw:
    return given("string", _WHERE.format("store or till (a location)"), nullable=True,
                 example="store-12/till-3")  # fmt: skip


def _device() -> ma.fields.Raw:
    return given("string", _WHERE.format("device"), nullable=True, example="pos-7f3a")


class EnrolIn(_Body):
    """A customer to enrol, by the shop's own id."""

    member = given("string", "the shop's id for the customer", required=True, example="cust-1")
    email = given("string", "the customer's email", nullable=True)
    phone = given(
        "string",
        "the customer's phone: digits with an optional leading +, 5 to 20 of them; "
        "spaces and dashes are taken out",
        nullable=True,
        example="+86 138 0013 8000",
    )
    stripe_customer_id = given("string", "the Stripe customer (cus_…)", nullable=True)


class LinkStripeIn(_Body):
    """The Stripe customer to link."""

    stripe_customer_id = given("string", "the Stripe customer (cus_…)", required=True)


class QuoteEarnIn(_Body):
    """An order to price."""

    amount_minor = given("integer", "the order total in minor units", nullable=True)
    lines = _lines()
    paid_with_points_minor = given("integer", "the part paid with points")
    member = given("string", "apply this member's caps too", nullable=True)
    currency = given("string", _CURRENCY, nullable=True)


class EarnPurchaseIn(QuoteEarnIn):
    """A paid order that earns points (key: ``earn:<order_id>``)."""

    member = given("string", "the member", required=True)
    order_id = given("string", "the shop's order id", required=True, example="o-1001")
    location = _location()
    device = _device()


class EarnActionIn(_Body):
    """A named action that earns fixed points."""

    member = given("string", "the member", required=True)
    action = given("string", "the action (sign_in, review…)", required=True)
    reference = given("string", "this occurrence (a date, a review id)", required=True)
    location = _location()
    device = _device()


class QuoteRedemptionIn(_Body):
    """An order a member would pay partly with points."""

    member = given("string", "the member", required=True)
    order_total_minor = given("integer", "the order total in minor units", required=True)
    currency = given("string", _CURRENCY, nullable=True)


class HoldIn(_Body):
    """Points to reserve for an order (key: ``hold:<order_id>``)."""

    member = given("string", "the member", required=True)
    order_id = given("string", "the order", required=True)
    points = given("integer", "the points to hold", required=True)
    order_total_minor = given("integer", "the order total in minor units", required=True)
    currency = given("string", _CURRENCY, nullable=True)


class RefundIn(_Body):
    """A refund of part or all of an order (key: ``refund:<refund_id>``)."""

    order_id = given("string", "the refunded order", required=True)
    refund_id = given("string", "the shop's (or Stripe's) refund id", required=True)
    amount_minor = given("integer", "the refunded amount in minor units", required=True)
    currency = given("string", _CURRENCY, nullable=True)
    succeeded = given("boolean", "the refund already went through")


class DisputeIn(_Body):
    """A chargeback of part or all of an order."""

    order_id = given("string", "the disputed order", required=True)
    dispute_id = given("string", "the dispute id", required=True)
    amount_minor = given("integer", "the disputed amount in minor units", required=True)
    currency = given("string", _CURRENCY, nullable=True)


class CloseDisputeIn(_Body):
    """How a dispute ended."""

    won = given("boolean", "true: the shop won (points come back)", required=True)


class TransferIn(_Body):
    """Points given by one member to another (key: ``transfer:<transfer_id>``)."""

    sender = given("string", "the member who gives", required=True)
    recipient = given("string", "the member who receives", required=True)
    points = given("integer", "the points given (the fee is extra)", required=True)
    transfer_id = given("string", "the shop's id for this transfer", required=True)


class AdjustIn(_Body):
    """A grant (points > 0) or deduction (< 0) by hand (key: ``adjust:<adjustment_id>``)."""

    member = given("string", "the member", required=True)
    points = given("integer", "points to grant (> 0) or deduct (< 0)", required=True)
    reason = given("string", "why, as the member may read it", required=True)
    adjustment_id = given("string", "the shop's id for this adjustment", required=True)
    actor = given("string", "who did it", nullable=True)


class TokenIn(_Body):
    """How long the member token lives."""

    ttl_seconds = given("integer", "seconds, 60 to 86400 (default 900)")


class PublishRulesIn(_Body):
    """A new rule version."""

    rules = ma.fields.Dict(required=True, metadata={"description": "the earning rules"})
    effective_from = ma.fields.AwareDateTime(
        load_default=None, allow_none=True, metadata={"description": "default: now"}
    )


class RedeemRewardIn(_Body):
    """A reward to redeem (send an ``Idempotency-Key``: without one every call is a new
    redemption)."""

    reward = given("string", "the reward's code", required=True, example="coffee")
    quantity = given("integer", "how many (1 for a draw); default 1")
    shipping = ma.fields.Dict(
        load_default=None,
        allow_none=True,
        metadata={
            "description": "for an item: name, phone and address (city, postcode, country optional)"
        },
    )


_TERMS = (
    "name, points, description, image_url, visible, active_from, active_until, limits "
    "{day, month, lifetime}, min_balance, tier_points, tiers, voucher_amount_minor, "
    "voucher_valid_days, prizes [{reward, chance_ppm, label}]"
)


class CreateRewardIn(_Body):
    """A reward for the catalog, with its first terms (in force at once)."""

    code = given("string", "the reward's code", required=True, example="coffee")
    kind = given("string", "coupon, voucher, item or draw", required=True, example="coupon")
    terms = ma.fields.Dict(required=True, metadata={"description": _TERMS})
    stock = given("integer", "how many can be issued; none: no limit (a coupon: its codes)",
                  nullable=True)  # fmt: skip


class RewardTermsIn(_Body):
    """A new version of a reward's terms."""

    terms = ma.fields.Dict(required=True, metadata={"description": _TERMS})
    effective_from = ma.fields.AwareDateTime(
        load_default=None, allow_none=True, metadata={"description": "default: now"}
    )


class RestockIn(_Body):
    """Stock added to a reward."""

    quantity = given("integer", "how many more can be issued", required=True)


class RewardCodesIn(_Body):
    """Codes for a coupon's pool: a list to import, or a count to generate."""

    codes = ma.fields.List(
        ma.fields.Raw(metadata={"type": "string"}),
        load_default=None,
        allow_none=True,
        metadata={"description": "codes to import (4 to 64 printable ASCII characters)"},
    )
    count = given("integer", "how many codes to generate", nullable=True)
    length = given("integer", "a generated code's length (default 10)", nullable=True)
    alphabet = given("string", "a generated code's characters", nullable=True)
    prefix = given("string", "put before each generated code", nullable=True)


class CancelRedemptionIn(_Body):
    """Why a redemption is cancelled (key: ``reward-cancel:<id>``)."""

    reason = given("string", "why, as the member may read it", required=True)
    actor = given("string", "who did it; default: api:<the key's label>", nullable=True)


class FulfilmentIn(_Body):
    """The state an item's redemption moves to."""

    status = given("string", "packing, shipped or delivered", required=True, example="packing")
    reason = given("string", "a note (a parcel number…)", nullable=True)
    actor = given("string", "who did it; default: api:<the key's label>", nullable=True)


class VoucherOrderIn(_Body):
    """An order a voucher would pay part of."""

    order_total_minor = given("integer", "the order total in minor units", required=True)
    currency = given("string", _CURRENCY, nullable=True)
    member = given("string", "refuse a voucher of another member", nullable=True)


class ConsumeVoucherIn(VoucherOrderIn):
    """The order a voucher is used on (idempotent per order)."""

    order_id = given("string", "the shop's order id", required=True, example="o-1001")


class ReleaseVoucherIn(_Body):
    """The refunded or cancelled order that used the voucher."""

    order_id = given("string", "the order that used it", required=True)


_TIERS = (
    "tiers [{code, name, threshold, multiplier, benefits}], measure (points or money), window "
    "(rolling or calendar), window_months, anchor, period_months, grace_days, downgrade, "
    "on_reversal, count_adjustments, count_transfers"
)
_MOMENT = "an ISO 8601 date and time with its offset"
TIERS_EXAMPLE: dict[str, Any] = {
    "tiers": [
        {"code": "member", "name": "普通", "threshold": 0},
        {"code": "silver", "name": "银卡", "threshold": 1000, "multiplier": "1.5",
         "benefits": ["Free shipping"]},
        {"code": "gold", "name": "金卡", "threshold": 5000, "multiplier": "2"},
    ],
    "measure": "points",
    "window": "rolling",
    "window_months": 12,
    "anchor": "upgrade",
    "period_months": 12,
    "grace_days": 0,
    "downgrade": "one",
    "on_reversal": "next_evaluation",
}  # fmt: skip
SET_TIER_EXAMPLE = {"tier": "gold", "reason": "VIP customer", "change_id": "c-1"}


def _tier_rules() -> ma.fields.Dict:
    return ma.fields.Dict(required=True, metadata={"description": _TIERS, "example": TIERS_EXAMPLE})


def moment(description: str) -> ma.fields.Raw:
    """A date and time sent as ISO 8601 text; the view reads it and the service checks it
    (a moment without an offset is ``naive_datetime``, as for an embedded caller)."""
    meta = {"type": "string", "format": "date-time", "description": f"{description} ({_MOMENT})"}
    return ma.fields.Raw(allow_none=True, metadata=meta)


class PublishTiersIn(_Body):
    """A new tier version."""

    rules = _tier_rules()
    effective_from = moment("when the version takes effect; default: now, never in the past")


class PreviewTiersIn(_Body):
    """Draft tier rules to weigh against the members' measures now."""

    rules = _tier_rules()


class SetTierIn(_Body):
    """A manual tier change or lock (key: ``tier:<change_id>``)."""

    tier = given("string", "the tier's code", required=True, example="gold")
    reason = given("string", "why (kept in the member's tier history)", required=True)
    change_id = given("string", "the shop's id for this change", required=True, example="c-1")
    locked_until = moment("hold the member at this tier or above until then")
    actor = given("string", "who did it; default: api:<the key's label>", nullable=True)


# --- query arguments ----------------------------------------------------------------------


def _query_int(default: int | None, minimum: int, maximum: int, description: str) -> Any:
    """An integer query argument whose range is documented here and checked by the service,
    so an out-of-range value raises the same error as for an embedded caller."""
    meta = {"minimum": minimum, "maximum": maximum, "description": description}
    return ma.fields.Integer(load_default=default, allow_none=default is None, metadata=meta)


class BalanceArgs(ma.Schema):
    """Balance query."""

    expiring_within_days = _query_int(30, 0, MAX_DAYS, "the window of expiring points")


class HistoryArgs(ma.Schema):
    """History page query."""

    limit = _query_int(50, 1, MAX_PAGE, "items per page")
    cursor = _query_int(None, 1, MAX_ID, "the previous page's next_cursor")


class RedemptionArgs(ma.Schema):
    """Redemptions page query."""

    limit = _query_int(50, 1, MAX_REDEMPTION_PAGE, "items per page")
    cursor = _query_int(None, 1, MAX_ID, "the previous page's next_cursor")
    reward = ma.fields.String(
        load_default=None, allow_none=True, metadata={"description": "only this reward"}
    )
    status = ma.fields.String(
        load_default=None,
        allow_none=True,
        metadata={"description": "only this state (issued, packing, shipped, delivered…)"},
    )


class ForecastArgs(ma.Schema):
    """Forecast window."""

    days = _query_int(90, 0, MAX_DAYS, "days ahead; 0 is what is overdue now")


class TierHistoryArgs(ma.Schema):
    """Tier history query."""

    limit = _query_int(100, 1, 1000, "how many changes, newest first")


class TierForecastArgs(ma.Schema):
    """Tier forecast window."""

    days = _query_int(90, 1, MAX_DAYS, "days ahead")


class Problem(ma.Schema):
    """An RFC 9457 problem: ``code`` is the error's stable code (see the error tree)."""

    type = ma.fields.String()
    title = ma.fields.String()
    status = ma.fields.Integer()
    detail = ma.fields.String()
    instance = ma.fields.String()
    code = ma.fields.String()
    details = ma.fields.Dict()
    errors = ma.fields.Dict()
    request_id = ma.fields.String()


class JobStarted(ma.Schema):
    """A job started now: ``queued`` (Redis) or run already (``succeeded``/``failed``)."""

    job = ma.fields.String()
    status = ma.fields.String()
    job_id = ma.fields.String(allow_none=True)


# --- outbound events and webhook endpoints --------------------------------------------------


class Event(ma.Schema):
    """An outbound event, exactly the body a webhook receiver gets for it: ``id`` (the
    ``webhook-id``), ``type``, ``timestamp`` (UTC, ISO 8601) and ``data``."""

    id = ma.fields.String(metadata={"example": "evt_0123456789abcdef0123456789abcdef"})
    type = ma.fields.String(metadata={"example": "points.earned"})
    timestamp = ma.fields.String(metadata={"format": "date-time"})
    data = ma.fields.Dict()


class EventPage(ma.Schema):
    """Events oldest first; pass ``next_after`` as ``after`` for the next page. An empty page
    with ``has_more`` means events are still being written: ask again in a moment."""

    items = ma.fields.List(ma.fields.Nested(Event))
    next_after = ma.fields.String(allow_none=True)
    has_more = ma.fields.Boolean()


class EventsArgs(ma.Schema):
    """Events page query."""

    after = ma.fields.String(
        load_default=None,
        allow_none=True,
        metadata={"description": "the id of the last event seen (a page's next_after)"},
    )
    limit = _query_int(50, 1, MAX_EVENT_PAGE, "items per page")
    type = ma.fields.String(
        load_default=None, allow_none=True, metadata={"description": "only this event type"}
    )
    member = ma.fields.String(
        load_default=None, allow_none=True, metadata={"description": "only this member's"}
    )


WebhookEndpoint = result_schema(EndpointInfo)
WebhookEndpointCreated = result_schema(EndpointCreated)
WebhookDelivery = result_schema(DeliveryInfo)


class DeliveriesArgs(ma.Schema):
    """Webhook deliveries query."""

    endpoint = _query_int(None, 1, MAX_ID, "only this endpoint's")
    status = ma.fields.String(
        load_default=None,
        allow_none=True,
        metadata={"description": "only those pending, delivered or failed"},
    )
    limit = _query_int(50, 1, MAX_DELIVERY_PAGE, "items per page, newest first")
    before = _query_int(None, 1, MAX_ID, "older than this delivery (the last one listed)")


class WebhookEndpointIn(_Body):
    """A new webhook endpoint."""

    url = given(
        "string",
        "where events are posted (https)",
        required=True,
        example="https://shop.example.com/jifen/webhooks",
    )
    event_types = ma.fields.Raw(
        load_default=None,
        allow_none=True,
        metadata={
            "type": "array",
            "items": {"type": "string"},
            "description": 'the event types to send ("*": all, the default)',
            "example": ["points.earned", "points.expiring"],
        },
    )
    description = given("string", "what the endpoint is for", nullable=True)


class WebhookEndpointChangeIn(_Body):
    """What to change of a webhook endpoint (what is left out or null stays)."""

    url = given("string", "where events are posted (https)", nullable=True)
    event_types = ma.fields.Raw(
        load_default=None,
        allow_none=True,
        metadata={
            "type": "array",
            "items": {"type": "string"},
            "description": 'the event types to send ("*": all)',
        },
    )
    description = given("string", "what the endpoint is for (empty: none)", nullable=True)


class DisableEndpointIn(_Body):
    """Why an endpoint is disabled."""

    reason = given("string", "why (shown in the console)", required=True, example="maintenance")


class ReplayIn(_Body):
    """Which failed deliveries to send again."""

    since = moment("only those last tried (or created) since then; default: all")


class Replayed(ma.Schema):
    """How many failed deliveries were set to be sent again."""

    replayed = ma.fields.Integer()


# --- risk control (风控) ---------------------------------------------------------------------

RISK_RULES_EXAMPLE: list[dict[str, Any]] = [
    {"id": "earn-burst", "kind": "velocity", "scope": "member", "measure": "earns",
     "limit": 20, "window": "hour", "action": "block"},
    {"id": "till-burst", "kind": "velocity", "scope": "location", "measure": "points",
     "limit": 200000, "window": "day", "action": "flag"},
    {"id": "refund-farming", "kind": "farming", "refunded_percent": 50, "days": 30,
     "min_points": 500, "action": "hold"},
    {"id": "gift-ring", "kind": "transfer_ring", "senders": 5, "hours": 24, "action": "flag"},
]  # fmt: skip
_RISK_RULES = (
    "the rules, each {id, kind, action, …}: velocity {scope (member, location, device), "
    "measure (earns, points), limit, window (hour, day)}, farming {refunded_percent, days, "
    "min_points}, transfer_ring {senders, hours}, transfer_chain {share_percent, hours, "
    "min_points}, new_member_inflow {points, days}, "
    "issuance_spike {window, threshold, trailing_days, min_points}; action flag, hold or "
    "block (block: velocity and new_member_inflow only). An empty list turns risk control "
    'off. The object {"rules": [...]} as GET answers it is taken too.'
)
MAX_RISK_VERSION = 2**31 - 1  # the largest number a risk rule version column holds
MAX_OFFSET = 2**31 - 1


class RiskEvidence(ma.Schema):
    """An operation that tripped a risk rule: when, what, how many points, and the order,
    location, device, refund, sender or recipient where there is one."""

    operation_id = ma.fields.Integer()
    kind = ma.fields.String()
    key = ma.fields.String()
    at = ma.fields.AwareDateTime(format="iso")
    points = ma.fields.Integer(allow_none=True)
    order_id = ma.fields.String(allow_none=True)
    action = ma.fields.String(allow_none=True)
    location = ma.fields.String(allow_none=True)
    device = ma.fields.String(allow_none=True)
    refund = ma.fields.String(allow_none=True)
    status = ma.fields.String(allow_none=True)
    sender = ma.fields.String(allow_none=True)
    recipient = ma.fields.String(allow_none=True)


RiskRules = result_schema(RiskRulesInfo)
RiskCase = result_schema(RiskCaseInfo, evidence=ma.fields.List(ma.fields.Nested(RiskEvidence)))
RiskCases = result_schema(RiskCasePage)
RiskScan = result_schema(RiskScanResult)


class PublishRiskRulesIn(_Body):
    """A new version of the program's risk rules, in force at once."""

    rules = ma.fields.Raw(
        required=True,
        metadata={
            "type": "array",
            "items": {"type": "object"},
            "description": _RISK_RULES,
            "example": RISK_RULES_EXAMPLE,
        },
    )
    note = given("string", "why this version (kept with it)", nullable=True)


class RiskRulesArgs(ma.Schema):
    """Which risk rule version to read."""

    version = ma.fields.Integer(
        load_default=None,
        allow_none=True,
        validate=ma.validate.Range(min=1, max=MAX_RISK_VERSION),
        metadata={"description": "this version; default: the one in force"},
    )


class RiskCasesArgs(ma.Schema):
    """Risk cases query."""

    status = ma.fields.String(
        load_default="open",
        metadata={"description": "open (the default), resolved, dismissed, or all"},
    )
    rule = ma.fields.String(
        load_default=None, allow_none=True, metadata={"description": "only this rule's (its id)"}
    )
    member = ma.fields.String(
        load_default=None, allow_none=True, metadata={"description": "only this member's"}
    )
    limit = _query_int(50, 1, MAX_RISK_CASE_PAGE, "items per page")
    offset = ma.fields.Integer(
        load_default=0,
        validate=ma.validate.Range(min=0, max=MAX_OFFSET),
        metadata={"description": "cases to skip: the previous page's offset plus its limit"},
    )


class AssignRiskCaseIn(_Body):
    """Who works on a case."""

    assignee = given(
        "string", "the person (null: nobody)", required=True, nullable=True, example="li.na"
    )


class ResolveRiskCaseIn(_Body):
    """How an open case ends."""

    outcome = ma.fields.Raw(
        required=True,
        metadata={
            "type": "string",
            "enum": ["release", "reverse", "dismiss"],
            "description": "release the held points, reverse them (deduct `points`), or "
            "dismiss the case as a false alarm (releasing like release)",
            "example": "release",
        },
    )
    note = given("string", "why (kept with the case)", required=True, example="genuine returns")
    points = given(
        "integer", "for reverse: the points to deduct; default: the points held", nullable=True
    )


class FreezeIn(_Body):
    """Why a member's account is frozen or unfrozen (账户冻结)."""

    reason = given("string", "why (kept as the member's status reason)", required=True,
                   example="chargeback fraud under review")  # fmt: skip


class ReleaseHoldIn(_Body):
    """Why a member's risk hold is lifted outside a case."""

    note = given("string", "why (kept in the audit log)", required=True, example="verified")


class Released(ma.Schema):
    """How many held points were made available."""

    released = ma.fields.Integer()
