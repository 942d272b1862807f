"""What checkout code may import from ``sdk``: pinned, importable and documented.

Changing this list changes Jifen's public API: do it on purpose, with a CHANGELOG entry.
"""

from __future__ import annotations

import dataclasses
import inspect

import sdk
from loyalty import errors
from sdk import Jifen, LoyaltyError

EXPORTS = [
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

METHODS = [
    "add_webhook_endpoint",
    "adjust",
    "advance_fulfilment",
    "assign_risk_case",
    "balance",
    "cancel_redemption",
    "cancel_tiers",
    "capture",
    "close",
    "close_dispute",
    "close_member",
    "complete_refund",
    "consume_voucher",
    "disable_webhook_endpoint",
    "earn",
    "earn_action",
    "enable_webhook_endpoint",
    "enrol",
    "event",
    "events",
    "fail_refund",
    "forecast",
    "freeze_member",
    "get_member",
    "get_redemption",
    "history",
    "hold",
    "link_stripe_customer",
    "on_reminder",
    "open_dispute",
    "preview_tiers",
    "publish_risk_rules",
    "publish_tiers",
    "quote",
    "quote_redemption",
    "redeem_reward",
    "redemptions",
    "refund",
    "release",
    "release_member_hold",
    "release_voucher",
    "replay_webhook_deliveries",
    "replay_webhook_delivery",
    "resolve_risk_case",
    "rewards",
    "risk_case",
    "risk_cases",
    "risk_rule_versions",
    "risk_rules",
    "rotate_webhook_secret",
    "scan_risk",
    "send_reminders",
    "set_member_tier",
    "stripe_webhook",
    "tier_distribution",
    "tier_forecast",
    "tier_history",
    "tier_progress",
    "tier_versions",
    "transfer",
    "unfreeze_member",
    "update_webhook_endpoint",
    "validate_voucher",
    "webhook_deliveries",
    "webhook_endpoint",
    "webhook_endpoints",
]

# Writes whose retries are made safe by an idempotency key (enrolment and linking a Stripe
# customer are idempotent by the member's id; reminders by member and due date; using a
# voucher by the order, moving a fulfilment by the state asked for; a manual tier change by
# its change id).
KEYED_WRITES = [
    "adjust",
    "cancel_redemption",
    "capture",
    "close_dispute",
    "complete_refund",
    "earn",
    "earn_action",
    "fail_refund",
    "hold",
    "open_dispute",
    "redeem_reward",
    "refund",
    "release",
    "set_member_tier",
    "transfer",
]


def _documented(obj: object) -> bool:
    doc = inspect.getdoc(obj) or ""
    name = getattr(obj, "__name__", "")
    # a dataclass without a docstring gets its signature as __doc__: that does not count
    return bool(doc.strip()) and not doc.startswith(f"{name}(")


def test_all_is_pinned_and_sorted() -> None:
    assert sdk.__all__ == EXPORTS
    assert sorted(EXPORTS) == EXPORTS


def test_every_export_is_importable_and_documented() -> None:
    assert _documented(sdk)
    for name in EXPORTS:
        namespace: dict[str, object] = {}
        exec(f"from sdk import {name}", namespace)
        assert namespace[name] is getattr(sdk, name)
        assert _documented(getattr(sdk, name)), f"sdk.{name} has no docstring"


def test_nothing_public_is_left_out_of_all() -> None:
    public = {n for n in vars(sdk) if not n.startswith("_")} - {"client"}
    assert public == set(EXPORTS)


def test_the_whole_error_tree_is_exported_with_unique_codes() -> None:
    tree = {
        cls.__name__
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, LoyaltyError)
    }
    assert tree <= set(EXPORTS)
    codes = [getattr(sdk, name).code for name in sorted(tree)]
    assert len(set(codes)) == len(codes)
    assert all(code and code.islower() for code in codes)
    for name in tree:
        assert getattr(sdk, name) is getattr(errors, name)


def test_results_are_frozen_dataclasses() -> None:
    for name in EXPORTS:
        obj = getattr(sdk, name)
        if dataclasses.is_dataclass(obj):
            params = obj.__dataclass_params__  # type: ignore[attr-defined]
            assert params.frozen, f"{name} is not frozen"


def test_the_client_methods_are_documented_and_keyword_only() -> None:
    public = sorted(
        n for n, v in vars(Jifen).items() if not n.startswith("_") and inspect.isfunction(v)
    )
    assert public == METHODS
    assert _documented(Jifen)
    for name in METHODS:
        method = getattr(Jifen, name)
        assert _documented(method), f"Jifen.{name} has no docstring"
        params = list(inspect.signature(method).parameters.values())[1:]
        if name == "on_reminder":  # usable as a decorator
            assert [p.name for p in params] == ["callback"]
            continue
        kinds = {p.kind for p in params}
        assert kinds <= {inspect.Parameter.KEYWORD_ONLY}, f"Jifen.{name} takes positionals"
    for name in KEYED_WRITES:
        params = inspect.signature(getattr(Jifen, name)).parameters
        assert params["idempotency_key"].default is None, name
    for name in ("program", "currency", "program_info", "database"):
        assert _documented(getattr(Jifen, name)), f"Jifen.{name} has no docstring"


def test_the_constructor_takes_only_the_url_by_position() -> None:
    params = inspect.signature(Jifen).parameters
    assert params["url"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert {n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY} == {
        "program",
        "engine",
        "currency",
        "clock",
        "api_key",
        "timeout",
    }
    assert params["program"].default is inspect.Parameter.empty
