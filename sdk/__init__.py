"""Jifen's embeddable SDK: what checkout code imports, and all it may rely on.

* :class:`Jifen`, the client: one per program, safe to share across threads; embedded when
  built from a database URL, from ``$JIFEN_DATABASE_URL`` or from your SQLAlchemy engine, or
  remote when built from a Jifen server's URL (``https://…``, with a server key): the same
  methods, results and errors over the HTTP API;
* the frozen result types its methods return (``EarnResult``, ``HoldResult``, ``Balance``…,
  and for the reward catalog ``RewardOffer``, ``RewardRedemptionResult`` with its
  ``VoucherInfo``, ``DrawOutcome`` and ``RewardEventInfo``, ``RedemptionPage``,
  ``VoucherCheck``, and for member tiers ``TierProgress``, ``TierChangeInfo``,
  ``TierVersionInfo``, ``TierForecast`` and ``TierCount``, and for outbound events ``Event``
  and ``EventPage`` (the events feed), ``EndpointInfo`` and ``EndpointCreated`` (webhook
  endpoints) and ``DeliveryInfo`` (their deliveries), and for risk control (风控)
  ``RiskRulesInfo``, ``RiskCaseInfo``, ``RiskCasePage`` and ``RiskScanResult``);
* :class:`StripeWebhook` (from ``Jifen.stripe_webhook``), the Stripe webhook handler to host
  in your web app, and the :class:`WebhookResult` it answers with;
* the error tree, rooted at :class:`LoyaltyError`; every error has a stable ``code``::

    LoyaltyError
    ├── InvalidInput          InvalidAmount, NaiveDatetime, InvalidIdempotencyKey,
    │                         CurrencyMismatch, InvalidRule, InvalidStripeEvent, InvalidText,
    │                         UnknownCurrency
    ├── NotFound              ProgramNotFound, MemberNotFound, HoldNotFound, OrderNotFound,
    │                         ReversalNotFound, StripeEventNotFound, AdjustmentRequestNotFound,
    │                         RewardNotFound, RewardRedemptionNotFound, VoucherNotFound,
    │                         WebhookEndpointNotFound, WebhookDeliveryNotFound, EventNotFound,
    │                         RiskCaseNotFound
    ├── Conflict              IdempotencyConflict, AlreadyExists, HoldNotActive, ReversalSettled,
    │                         AdjustmentRequestSettled, FulfilmentConflict, RiskCaseClosed
    ├── RuleViolation         InsufficientPoints, RedemptionLimit, MemberInactive (its
    │                         MemberFrozen: the account is frozen), TransferNotAllowed,
    │                         TransferLimit, ClearingNotDue, SelfApproval, ApprovalRequired,
    │                         OutOfStock, RewardUnavailable, RewardLimit, VoucherNotUsable,
    │                         RiskBlocked (a risk rule refused the write)
    ├── NotAuthenticated      (remote) the server refused the API key
    ├── PermissionDenied      (remote) the key lacks a scope or is another program's
    ├── RateLimited           (remote) too many requests, still after the retries
    ├── ConfigurationError    SchemaMissing
    ├── DatabaseUnavailable
    └── ServerUnreachable     (remote) the server could not be reached after the retries

Everything here is re-exported from :mod:`loyalty`; the SDK adds no rules of its own.
"""

from loyalty.errors import (
    AdjustmentRequestNotFound,
    AdjustmentRequestSettled,
    AlreadyExists,
    ApprovalRequired,
    ClearingNotDue,
    ConfigurationError,
    Conflict,
    CurrencyMismatch,
    DatabaseUnavailable,
    EventNotFound,
    FulfilmentConflict,
    HoldNotActive,
    HoldNotFound,
    IdempotencyConflict,
    InsufficientPoints,
    InvalidAmount,
    InvalidIdempotencyKey,
    InvalidInput,
    InvalidRule,
    InvalidStripeEvent,
    InvalidText,
    LoyaltyError,
    MemberFrozen,
    MemberInactive,
    MemberNotFound,
    NaiveDatetime,
    NotAuthenticated,
    NotFound,
    OrderNotFound,
    OutOfStock,
    PermissionDenied,
    ProgramNotFound,
    RateLimited,
    RedemptionLimit,
    ReversalNotFound,
    ReversalSettled,
    RewardLimit,
    RewardNotFound,
    RewardRedemptionNotFound,
    RewardUnavailable,
    RiskBlocked,
    RiskCaseClosed,
    RiskCaseNotFound,
    RuleViolation,
    SchemaMissing,
    SelfApproval,
    ServerUnreachable,
    StripeEventNotFound,
    TransferLimit,
    TransferNotAllowed,
    UnknownCurrency,
    VoucherNotFound,
    VoucherNotUsable,
    WebhookDeliveryNotFound,
    WebhookEndpointNotFound,
)
from loyalty.events.delivery import DeliveryInfo
from loyalty.events.endpoints import EndpointCreated, EndpointInfo
from loyalty.events.feed import Event, EventPage
from loyalty.services.results import (
    AdjustmentResult,
    Balance,
    EarnQuote,
    EarnResult,
    ExpiringPoints,
    Forecast,
    ForecastDay,
    ForecastItem,
    HistoryItem,
    HistoryPage,
    HoldResult,
    MemberInfo,
    ProgramInfo,
    RedemptionQuote,
    Reminder,
    ReminderResult,
    ReversalResult,
    TransferResult,
)
from loyalty.services.reward_results import (
    DrawOutcome,
    RedemptionPage,
    RewardEventInfo,
    RewardOffer,
    RewardRedemptionResult,
    VoucherCheck,
    VoucherInfo,
)
from loyalty.services.risk_cases import RiskCaseInfo, RiskCasePage
from loyalty.services.risk_rules import RiskRulesInfo
from loyalty.services.risk_scan import RiskScanResult
from loyalty.services.tier_results import (
    TierChangeInfo,
    TierCount,
    TierForecast,
    TierProgress,
    TierVersionInfo,
)
from loyalty.stripe.sync import WebhookResult
from loyalty.stripe.webhook import StripeWebhook
from sdk._client import Jifen

__all__ = [
    "AdjustmentRequestNotFound",
    "AdjustmentRequestSettled",
    "AdjustmentResult",
    "AlreadyExists",
    "ApprovalRequired",
    "Balance",
    "ClearingNotDue",
    "ConfigurationError",
    "Conflict",
    "CurrencyMismatch",
    "DatabaseUnavailable",
    "DeliveryInfo",
    "DrawOutcome",
    "EarnQuote",
    "EarnResult",
    "EndpointCreated",
    "EndpointInfo",
    "Event",
    "EventNotFound",
    "EventPage",
    "ExpiringPoints",
    "Forecast",
    "ForecastDay",
    "ForecastItem",
    "FulfilmentConflict",
    "HistoryItem",
    "HistoryPage",
    "HoldNotActive",
    "HoldNotFound",
    "HoldResult",
    "IdempotencyConflict",
    "InsufficientPoints",
    "InvalidAmount",
    "InvalidIdempotencyKey",
    "InvalidInput",
    "InvalidRule",
    "InvalidStripeEvent",
    "InvalidText",
    "Jifen",
    "LoyaltyError",
    "MemberFrozen",
    "MemberInactive",
    "MemberInfo",
    "MemberNotFound",
    "NaiveDatetime",
    "NotAuthenticated",
    "NotFound",
    "OrderNotFound",
    "OutOfStock",
    "PermissionDenied",
    "ProgramInfo",
    "ProgramNotFound",
    "RateLimited",
    "RedemptionLimit",
    "RedemptionPage",
    "RedemptionQuote",
    "Reminder",
    "ReminderResult",
    "ReversalNotFound",
    "ReversalResult",
    "ReversalSettled",
    "RewardEventInfo",
    "RewardLimit",
    "RewardNotFound",
    "RewardOffer",
    "RewardRedemptionNotFound",
    "RewardRedemptionResult",
    "RewardUnavailable",
    "RiskBlocked",
    "RiskCaseClosed",
    "RiskCaseInfo",
    "RiskCaseNotFound",
    "RiskCasePage",
    "RiskRulesInfo",
    "RiskScanResult",
    "RuleViolation",
    "SchemaMissing",
    "SelfApproval",
    "ServerUnreachable",
    "StripeEventNotFound",
    "StripeWebhook",
    "TierChangeInfo",
    "TierCount",
    "TierForecast",
    "TierProgress",
    "TierVersionInfo",
    "TransferLimit",
    "TransferNotAllowed",
    "TransferResult",
    "UnknownCurrency",
    "VoucherCheck",
    "VoucherInfo",
    "VoucherNotFound",
    "VoucherNotUsable",
    "WebhookDeliveryNotFound",
    "WebhookEndpointNotFound",
    "WebhookResult",
]

# What sdk itself defines says it belongs to ``sdk`` (in reprs, tracebacks and help()). The
# errors and result types it re-exports keep their home in ``loyalty``: the console and the
# jobs raise and show the same classes, and their names must not depend on whether something
# imported sdk first.
Jifen.__module__ = "sdk"
