"""The one error tree of Jifen.

Every error a caller can meet is a subclass of :class:`LoyaltyError`. Each class carries a
stable machine-readable ``code``, a human ``message`` that says what to do next, optional
``details`` and the HTTP status an HTTP door should answer with::

    LoyaltyError
    ├── InvalidInput                      400  bad input; nothing was written
    │   ├── InvalidAmount                      zero, negative, float or non-integer amounts
    │   ├── NaiveDatetime                      a datetime without a time zone
    │   ├── InvalidIdempotencyKey              empty, too long or non-printable key
    │   ├── CurrencyMismatch                   order currency differs from the program's
    │   ├── InvalidRule                        a rule set or program setting that cannot work
    │   ├── InvalidStripeEvent                 a Stripe event without what Jifen needs
    │   ├── InvalidText                        text that cannot be stored or shown unambiguously
    │   └── UnknownCurrency                    not an ISO 4217 currency code
    ├── NotFound                          404
    │   ├── ProgramNotFound
    │   ├── MemberNotFound
    │   ├── HoldNotFound
    │   ├── OrderNotFound
    │   ├── ReversalNotFound                   no refund or dispute with this id
    │   ├── StripeEventNotFound                no webhook event with this id was received
    │   ├── AdjustmentRequestNotFound          no adjustment request with this id
    │   ├── RewardNotFound                     no reward with this code in the catalog
    │   ├── RewardRedemptionNotFound           no reward redemption with this id
    │   ├── VoucherNotFound                    no voucher with this code
    │   ├── WebhookEndpointNotFound            no webhook endpoint with this id in the program
    │   ├── WebhookDeliveryNotFound            no webhook delivery with this id in the program
    │   ├── EventNotFound                      no outbound event with this id in the program
    │   └── RiskCaseNotFound                   no risk case with this id in the program
    ├── Conflict                          409
    │   ├── IdempotencyConflict                same key, different parameters
    │   ├── AlreadyExists                      program or member already exists
    │   ├── HoldNotActive                      hold already captured, released or expired
    │   ├── ReversalSettled                    refund or dispute already settled the other way
    │   ├── AdjustmentRequestSettled           adjustment request already approved or rejected
    │   ├── FulfilmentConflict                 a reward redemption cannot move to that state
    │   └── RiskCaseClosed                     the risk case is already resolved or dismissed
    ├── RuleViolation                     422  the request is well formed but the rules say no
    │   ├── InsufficientPoints
    │   ├── RedemptionLimit                    below the minimum or above the maximum share
    │   ├── MemberInactive
    │   │   └── MemberFrozen                   the account is frozen by operations (账户冻结)
    │   ├── TransferNotAllowed                 transfers off, self-transfer
    │   ├── TransferLimit                      below the minimum, above the maximum or daily limit
    │   ├── ClearingNotDue                     a year-end clearing asked for before its moment
    │   ├── SelfApproval                       the requester of an adjustment tried to approve it
    │   ├── ApprovalRequired                   (HTTP API) an adjustment above the approval
    │   │                                      threshold: request it in the console
    │   ├── OutOfStock                         the reward (or its code pool) has too few left
    │   ├── RewardUnavailable                  not on offer now, hidden, or the member is not
    │   │                                      eligible (minimum balance, tier)
    │   ├── RewardLimit                        the member's limit per day, month or lifetime
    │   ├── VoucherNotUsable                   expired, not yet valid, used, cancelled, or for
    │   │                                      another currency or member
    │   └── RiskBlocked                        a risk rule with the action "block" refused it
    ├── NotAuthenticated                  401  no API key or member token, or a revoked,
    │                                          expired or unknown one
    ├── PermissionDenied                  403  the key lacks the scope, or the token is
    │                                          another member's
    ├── RateLimited                       429  too many requests with this key; retry later
    ├── ConfigurationError                500  the deployment is not set up (no database URL…)
    │   └── SchemaMissing                      no Jifen schema there (run jifen db upgrade)
    ├── DatabaseUnavailable               503  the database cannot be reached
    └── ServerUnreachable                 503  (remote SDK) the Jifen server cannot be reached
"""

from __future__ import annotations

from typing import Any


class LoyaltyError(Exception):
    """Root of every error Jifen raises on purpose."""

    code = "loyalty_error"
    http_status = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def to_dict(self) -> dict[str, Any]:
        """The JSON body an HTTP door sends: ``{"error": {code, message, details}}``."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class InvalidInput(LoyaltyError):
    """The input is malformed; nothing was written."""

    code = "invalid_input"
    http_status = 400


class InvalidAmount(InvalidInput):
    """An amount of points or money is zero, negative, a float or otherwise not an integer."""

    code = "invalid_amount"


class NaiveDatetime(InvalidInput):
    """A datetime without a time zone was given; Jifen only accepts aware datetimes."""

    code = "naive_datetime"


class InvalidIdempotencyKey(InvalidInput):
    """An idempotency key is empty, too long or contains whitespace or control characters."""

    code = "invalid_idempotency_key"


class CurrencyMismatch(InvalidInput):
    """The currency of an order differs from the program's currency."""

    code = "currency_mismatch"


class InvalidRule(InvalidInput):
    """A rule set or a program setting is inconsistent or out of range."""

    code = "invalid_rule"


class InvalidStripeEvent(InvalidInput):
    """A Stripe event lacks a field Jifen needs, or a field has the wrong type."""

    code = "invalid_stripe_event"


class InvalidText(InvalidInput):
    """Text holds characters that cannot be stored or shown unambiguously.

    NUL bytes, lone surrogates, control characters, bidirectional overrides and zero-width
    characters are refused; text is otherwise normalised to NFC and stripped.
    """

    code = "invalid_text"


class UnknownCurrency(InvalidInput):
    """A currency code is not an ISO 4217 code that Jifen knows."""

    code = "unknown_currency"


class NotFound(LoyaltyError):
    """Something the request names does not exist."""

    code = "not_found"
    http_status = 404


class ProgramNotFound(NotFound):
    """No program has this code."""

    code = "program_not_found"


class MemberNotFound(NotFound):
    """No member of the program has this external id."""

    code = "member_not_found"


class HoldNotFound(NotFound):
    """No redemption hold exists for this order."""

    code = "hold_not_found"


class OrderNotFound(NotFound):
    """No earning is recorded for this order."""

    code = "order_not_found"


class ReversalNotFound(NotFound):
    """No refund or dispute with this id was recorded."""

    code = "reversal_not_found"


class StripeEventNotFound(NotFound):
    """No Stripe webhook event with this id was received for the program."""

    code = "stripe_event_not_found"


class AdjustmentRequestNotFound(NotFound):
    """No adjustment request with this id exists in the program."""

    code = "adjustment_request_not_found"


class Conflict(LoyaltyError):
    """The request conflicts with the current state."""

    code = "conflict"
    http_status = 409


class IdempotencyConflict(Conflict):
    """The idempotency key was used before with different parameters."""

    code = "idempotency_conflict"


class AlreadyExists(Conflict):
    """A program or member with this identifier already exists."""

    code = "already_exists"


class HoldNotActive(Conflict):
    """The hold was already captured, released or timed out."""

    code = "hold_not_active"


class ReversalSettled(Conflict):
    """The refund or dispute was already settled the other way (reversed or released)."""

    code = "reversal_settled"


class AdjustmentRequestSettled(Conflict):
    """The adjustment request was already approved, rejected or applied."""

    code = "adjustment_request_settled"


class RewardNotFound(NotFound):
    """No reward with this code in the program's catalog."""

    code = "reward_not_found"


class RewardRedemptionNotFound(NotFound):
    """No reward redemption with this id in the program."""

    code = "reward_redemption_not_found"


class VoucherNotFound(NotFound):
    """No voucher with this code in the program."""

    code = "voucher_not_found"


class WebhookEndpointNotFound(NotFound):
    """No webhook endpoint with this id in the program."""

    code = "webhook_endpoint_not_found"


class WebhookDeliveryNotFound(NotFound):
    """No webhook delivery with this id in the program."""

    code = "webhook_delivery_not_found"


class EventNotFound(NotFound):
    """No outbound event with this id in the program."""

    code = "event_not_found"


class FulfilmentConflict(Conflict):
    """A reward redemption cannot move to the asked state from the state it is in (for
    example cancelling a delivered item or shipping a coupon)."""

    code = "fulfilment_conflict"


class RuleViolation(LoyaltyError):
    """The request is well formed, but the program's rules do not allow it."""

    code = "rule_violation"
    http_status = 422


class InsufficientPoints(RuleViolation):
    """The member does not have enough available points."""

    code = "insufficient_points"


class RedemptionLimit(RuleViolation):
    """A redemption is below the minimum or above the maximum share of the order."""

    code = "redemption_limit"


class MemberInactive(RuleViolation):
    """The member is closed and cannot earn, spend or receive points."""

    code = "member_inactive"


class MemberFrozen(MemberInactive):
    """Operations froze the member's account (账户冻结): no earning, spending or transfers
    until it is unfrozen; the balances are kept."""

    code = "member_frozen"


class TransferNotAllowed(RuleViolation):
    """The program does not allow transfers, or a member tried to transfer to themself."""

    code = "transfer_not_allowed"


class TransferLimit(RuleViolation):
    """A transfer is below the minimum, above the maximum, or over the sender's daily limit."""

    code = "transfer_limit"


class ClearingNotDue(RuleViolation):
    """A year-end clearing was asked for before its moment."""

    code = "clearing_not_due"


class SelfApproval(RuleViolation):
    """The person who asked for an adjustment tried to approve it; a second person must."""

    code = "self_approval"


class NotAuthenticated(LoyaltyError):
    """The HTTP request carries no valid credential: no ``Authorization`` header, or an API
    key or member token that is unknown, revoked or expired."""

    code = "not_authenticated"
    http_status = 401


class PermissionDenied(LoyaltyError):
    """The credential is valid but may not do this: an API key without the scope the endpoint
    needs, or a member token used for another member or another program."""

    code = "permission_denied"
    http_status = 403


class RateLimited(LoyaltyError):
    """Too many requests with this key; ``details["retry_after"]`` says how many seconds to
    wait."""

    code = "rate_limited"
    http_status = 429


class ApprovalRequired(RuleViolation):
    """An adjustment through the HTTP API above the approval threshold: it needs a second
    person, so it must be requested in the console; nothing was written."""

    code = "approval_required"


class ConfigurationError(LoyaltyError):
    """The deployment is not configured (for example, no database URL)."""

    code = "configuration_error"
    http_status = 500


class SchemaMissing(ConfigurationError):
    """The database exists but has no Jifen schema (or an older one): run ``jifen db upgrade``."""

    code = "schema_missing"


class DatabaseUnavailable(LoyaltyError):
    """The database cannot be reached: the server is down, the host, port or role is wrong."""

    code = "database_unavailable"
    http_status = 503


class ServerUnreachable(LoyaltyError):
    """The remote SDK could not reach the Jifen server (connection refused, timed out, or it
    kept answering 5xx after the retries); a write may be retried with the same idempotency
    key."""

    code = "server_unreachable"
    http_status = 503


class OutOfStock(RuleViolation):
    """The reward, or its pool of codes, has fewer left than the quantity asked for; no
    points were taken."""

    code = "out_of_stock"


class RewardUnavailable(RuleViolation):
    """The reward is not on offer now (outside its window, hidden, retired) or the member is
    not eligible (below the minimum balance); ``details["reasons"]`` names why."""

    code = "reward_unavailable"


class RewardLimit(RuleViolation):
    """The member reached the reward's limit per day, month or lifetime."""

    code = "reward_limit"


class VoucherNotUsable(RuleViolation):
    """The voucher cannot pay for this order: not yet valid, expired, already used on another
    order, cancelled, or for another currency or member."""

    code = "voucher_not_usable"


class RiskBlocked(RuleViolation):
    """A risk rule whose action is ``block`` refused the operation; nothing was written.
    ``details["rule"]`` names the rule."""

    code = "risk_blocked"


class RiskCaseNotFound(NotFound):
    """No risk case with this id in the program."""

    code = "risk_case_not_found"


class RiskCaseClosed(Conflict):
    """The risk case is already resolved or dismissed; it reopens by itself when its rule
    trips again on new activity."""

    code = "risk_case_closed"
