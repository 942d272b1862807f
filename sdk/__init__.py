"""Jifen's embeddable SDK: what checkout code imports, and all it may rely on.

* :class:`Jifen`, the client: one per program, built from a database URL, from
  ``$JIFEN_DATABASE_URL`` or from your SQLAlchemy engine, safe to share across threads;
* the frozen result types its methods return (``EarnResult``, ``HoldResult``, ``Balance``…);
* :class:`StripeWebhook` (from ``Jifen.stripe_webhook``), the Stripe webhook handler to host
  in your web app, and the :class:`WebhookResult` it answers with;
* the error tree, rooted at :class:`LoyaltyError`; every error has a stable ``code``::

    LoyaltyError
    ├── InvalidInput          InvalidAmount, NaiveDatetime, InvalidIdempotencyKey,
    │                         CurrencyMismatch, InvalidRule, InvalidStripeEvent, InvalidText,
    │                         UnknownCurrency
    ├── NotFound              ProgramNotFound, MemberNotFound, HoldNotFound, OrderNotFound,
    │                         ReversalNotFound, StripeEventNotFound, AdjustmentRequestNotFound
    ├── Conflict              IdempotencyConflict, AlreadyExists, HoldNotActive, ReversalSettled,
    │                         AdjustmentRequestSettled
    ├── RuleViolation         InsufficientPoints, RedemptionLimit, MemberInactive,
    │                         TransferNotAllowed, TransferLimit, ClearingNotDue, SelfApproval
    ├── ConfigurationError    SchemaMissing
    └── DatabaseUnavailable

Everything here is re-exported from :mod:`loyalty`; the SDK adds no rules of its own.
"""

from loyalty.errors import (
    AdjustmentRequestNotFound,
    AdjustmentRequestSettled,
    AlreadyExists,
    ClearingNotDue,
    ConfigurationError,
    Conflict,
    CurrencyMismatch,
    DatabaseUnavailable,
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
    MemberInactive,
    MemberNotFound,
    NaiveDatetime,
    NotFound,
    OrderNotFound,
    ProgramNotFound,
    RedemptionLimit,
    ReversalNotFound,
    ReversalSettled,
    RuleViolation,
    SchemaMissing,
    SelfApproval,
    StripeEventNotFound,
    TransferLimit,
    TransferNotAllowed,
    UnknownCurrency,
)
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
from loyalty.stripe.sync import WebhookResult
from loyalty.stripe.webhook import StripeWebhook
from sdk._client import Jifen

__all__ = [
    "AdjustmentRequestNotFound",
    "AdjustmentRequestSettled",
    "AdjustmentResult",
    "AlreadyExists",
    "Balance",
    "ClearingNotDue",
    "ConfigurationError",
    "Conflict",
    "CurrencyMismatch",
    "DatabaseUnavailable",
    "EarnQuote",
    "EarnResult",
    "ExpiringPoints",
    "Forecast",
    "ForecastDay",
    "ForecastItem",
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
    "MemberInactive",
    "MemberInfo",
    "MemberNotFound",
    "NaiveDatetime",
    "NotFound",
    "OrderNotFound",
    "ProgramInfo",
    "ProgramNotFound",
    "RedemptionLimit",
    "RedemptionQuote",
    "Reminder",
    "ReminderResult",
    "ReversalNotFound",
    "ReversalResult",
    "ReversalSettled",
    "RuleViolation",
    "SchemaMissing",
    "SelfApproval",
    "StripeEventNotFound",
    "StripeWebhook",
    "TransferLimit",
    "TransferNotAllowed",
    "TransferResult",
    "UnknownCurrency",
    "WebhookResult",
]

# What sdk itself defines says it belongs to ``sdk`` (in reprs, tracebacks and help()). The
# errors and result types it re-exports keep their home in ``loyalty``: the console and the
# jobs raise and show the same classes, and their names must not depend on whether something
# imported sdk first.
Jifen.__module__ = "sdk"
