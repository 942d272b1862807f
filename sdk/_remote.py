"""The remote :class:`~sdk.Jifen`: the same client, speaking Jifen's HTTP API.

``Jifen("https://loyalty.example.com", api_key="jfn_sk_…", program="web")`` builds a
:class:`RemoteJifen` (a subclass, so ``isinstance(client, Jifen)`` holds). Its methods take the
same keywords as the embedded client's (the call is bound against the embedded method's
signature, so a wrong keyword is the same ``TypeError``), return the same frozen dataclasses
of :mod:`loyalty.services.results` (a replay has ``replayed=True``) and raise the same error
classes of :mod:`loyalty.errors`, found by the problem's ``code``. This module owns only the
translation: every rule runs on the server, in the same services an embedded client calls.

One pooled :class:`httpx.Client` per client, safe to share across threads. A request that
cannot be delivered (connection refused or reset, the server hanging up before it answered)
or that is answered 429, 502, 503 or 504 is sent again, with full-jitter backoff (``Retry-After``
honoured up to a cap), at most :attr:`RetryPolicy.attempts` times in all; then the call raises
:class:`~loyalty.errors.ServerUnreachable` (or the server's own error, such as
:class:`~loyalty.errors.RateLimited` or :class:`~loyalty.errors.DatabaseUnavailable`). A read
timeout is not retried: the server may still be working on the request, and the timeout is the
caller's patience; it raises :class:`~loyalty.errors.ServerUnreachable` at once.

Retrying writes is safe because every write is idempotent by its key. The caller's
``idempotency_key`` is sent as the ``Idempotency-Key`` header. When the caller gives none, no
header is sent: the server derives the key from the ids in the body (``earn:<order_id>``,
``hold:<order_id>``, ``transfer:<transfer_id>``…) exactly as an embedded call does, and every
attempt sends the same body, so it derives the same key and a retried earn is replayed, not
earned twice. Deriving it here as well would put the derivation (with its escaping of long and
non-ASCII ids) in a second place that could drift from the server's, and the key would then
differ from the one a Stripe webhook or an embedded call derives for the same order.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import functools
import inspect
import json
import random
import string
import time
import types
import typing
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import httpx

from loyalty import __version__
from loyalty.config import API_KEY_ENV, load_settings
from loyalty.db.database import Database
from loyalty.domain.checks import (
    require_int,
    require_key,
    require_member_id,
    require_order_id,
    require_program_code,
)
from loyalty.domain.clock import Clock
from loyalty.domain.money import require_currency
from loyalty.domain.rewards import require_code
from loyalty.domain.tiers import TierRules
from loyalty.errors import (
    ConfigurationError,
    Conflict,
    InvalidInput,
    LoyaltyError,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    RateLimited,
    RuleViolation,
    ServerUnreachable,
)
from loyalty.events import delivery, endpoints, feed
from loyalty.services import results, reward_results, tier_results
from loyalty.services.reminders import ReminderCallback
from loyalty.services.results import ProgramInfo, Record, ReminderResult
from loyalty.services.risk_cases import RiskCaseInfo, RiskCasePage
from loyalty.services.risk_rules import RiskRulesInfo
from loyalty.services.risk_scan import RiskScanResult
from loyalty.stripe.webhook import DEFAULT_TOLERANCE, StripeWebhook
from sdk._client import Jifen

__all__ = ["RemoteJifen", "RetryPolicy", "is_server_url"]

DEFAULT_TIMEOUT = 10.0
CONNECT_TIMEOUT = 2.0
USER_AGENT = f"jifen-sdk/{__version__}"
PROGRAM_HEADER = "Jifen-Program"
IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Failures where the request may not have reached the server, or its answer was lost; a read
# timeout is left out on purpose (see the module docstring).
RETRY_ERRORS = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)


def is_server_url(url: object) -> bool:
    """Whether ``url`` names a Jifen server (``http://`` or ``https://``), not a database."""
    return isinstance(url, str) and url.strip().lower().startswith(("http://", "https://"))


# --- retries --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a request is sent again.

    ``attempts`` counts every try, the first included. Before try ``n + 1`` the client waits a
    random time between 0 and ``min(max_delay, base_delay * 2 ** (n - 1))`` seconds (full
    jitter), or what the server's ``Retry-After`` asks, up to ``max_delay``.
    """

    attempts: int = 4
    base_delay: float = 0.25
    max_delay: float = 5.0

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        asked = _seconds(retry_after)
        if asked is not None:
            return min(max(asked, 0.0), self.max_delay)
        return random.uniform(0.0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


def _seconds(retry_after: str | None) -> float | None:
    """``Retry-After`` in seconds: delay-seconds or an HTTP date; None if absent or unreadable."""
    if not retry_after:
        return None
    try:
        return float(retry_after)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(retry_after)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()


# --- routes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """Where a client method goes: the HTTP method, the path and the result type.

    ``paths`` are tried in order; the first whose ``{placeholders}`` all have a value is used
    (``forecast`` reads one member's or the whole program's). The arguments that are not in
    the path and not ``idempotency_key`` are the query (GET) or the JSON body (POST).
    ``checked_as`` names a path argument as its service names it in errors (the members
    service says ``external_id``). ``many``: the answer is a list of ``result``.
    ``client_key``: a call without an idempotency key gets one here, the same for all its
    attempts, because its body holds no id the server could derive one from (a reward
    redemption), so a retried delivery is replayed instead of redeemed twice.
    ``none_as``: query arguments whose ``None`` travels as this text (risk cases of every
    status are ``status=all``: without it the server lists the open ones).
    """

    method: str
    paths: tuple[str, ...]
    result: type
    checked_as: Mapping[str, str] = dataclasses.field(default_factory=dict)
    many: bool = False
    client_key: str | None = None
    none_as: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def placeholders(self) -> frozenset[str]:
        """The arguments that travel in the path."""
        return frozenset(name for path in self.paths for name in _placeholders(path))


@dataclass(frozen=True)
class Replayed:
    """A bulk replay's answer: how many failed deliveries will be sent again (the client
    method returns the number)."""

    replayed: int


@dataclass(frozen=True)
class Released:
    """A lifted risk hold's answer: how many held points were made available (the client
    method returns the number)."""

    released: int


def _route(method: str, path: str, result: type, *more_paths: str, **checked_as: str) -> Route:
    return Route(method, (path, *more_paths), result, checked_as)


ROUTES: dict[str, Route] = {
    "enrol": _route("POST", "/v1/members", results.MemberInfo),
    "get_member": _route("GET", "/v1/members/{member}", results.MemberInfo, member="external_id"),
    "link_stripe_customer": _route(
        "POST", "/v1/members/{member}/stripe-customer", results.MemberInfo, member="external_id"
    ),
    "close_member": _route(
        "POST", "/v1/members/{member}/close", results.MemberInfo, member="external_id"
    ),
    "quote": _route("POST", "/v1/quotes/earn", results.EarnQuote),
    "earn": _route("POST", "/v1/earnings/purchase", results.EarnResult),
    "earn_action": _route("POST", "/v1/earnings/action", results.EarnResult),
    "quote_redemption": _route("POST", "/v1/quotes/redemption", results.RedemptionQuote),
    "hold": _route("POST", "/v1/holds", results.HoldResult),
    "capture": _route("POST", "/v1/holds/{order_id}/capture", results.HoldResult),
    "release": _route("POST", "/v1/holds/{order_id}/release", results.HoldResult),
    "refund": _route("POST", "/v1/refunds", results.ReversalResult),
    "complete_refund": _route("POST", "/v1/refunds/{refund_id}/complete", results.ReversalResult),
    "fail_refund": _route("POST", "/v1/refunds/{refund_id}/fail", results.ReversalResult),
    "open_dispute": _route("POST", "/v1/disputes", results.ReversalResult),
    "close_dispute": _route("POST", "/v1/disputes/{dispute_id}/close", results.ReversalResult),
    "transfer": _route("POST", "/v1/transfers", results.TransferResult),
    "adjust": _route("POST", "/v1/adjustments", results.AdjustmentResult),
    "balance": _route("GET", "/v1/members/{member}/balance", results.Balance),
    "history": _route("GET", "/v1/members/{member}/history", results.HistoryPage),
    "forecast": _route("GET", "/v1/members/{member}/forecast", results.Forecast, "/v1/forecast"),
    "rewards": Route(
        "GET",
        ("/v1/members/{member}/rewards", "/v1/rewards"),
        reward_results.RewardOffer,
        many=True,
    ),
    "redeem_reward": Route(
        "POST",
        ("/v1/members/{member}/reward-redemptions",),
        reward_results.RewardRedemptionResult,
        client_key="reward",
    ),
    "get_redemption": _route(
        "GET", "/v1/reward-redemptions/{redemption}", reward_results.RewardRedemptionResult
    ),
    "redemptions": _route(
        "GET",
        "/v1/members/{member}/reward-redemptions",
        reward_results.RedemptionPage,
        "/v1/reward-redemptions",
    ),
    "cancel_redemption": _route(
        "POST", "/v1/reward-redemptions/{redemption}/cancel", reward_results.RewardRedemptionResult
    ),
    "advance_fulfilment": _route(
        "POST",
        "/v1/reward-redemptions/{redemption}/fulfilment",
        reward_results.RewardRedemptionResult,
    ),
    "validate_voucher": _route("POST", "/v1/vouchers/{code}/validate", reward_results.VoucherCheck),
    "consume_voucher": _route("POST", "/v1/vouchers/{code}/consume", reward_results.VoucherCheck),
    "release_voucher": _route("POST", "/v1/vouchers/{code}/release", reward_results.VoucherCheck),
    "tier_progress": _route("GET", "/v1/members/{member}/tier", tier_results.TierProgress),
    "tier_history": Route(
        "GET", ("/v1/members/{member}/tier/history",), tier_results.TierChangeInfo, many=True
    ),
    "set_member_tier": _route("POST", "/v1/members/{member}/tier", tier_results.TierChangeInfo),
    "publish_tiers": _route("POST", "/v1/program/tiers", tier_results.TierVersionInfo),
    "tier_versions": Route("GET", ("/v1/program/tiers",), tier_results.TierVersionInfo, many=True),
    "cancel_tiers": _route(
        "POST", "/v1/program/tiers/{version}/cancel", tier_results.TierVersionInfo
    ),
    "tier_forecast": _route("GET", "/v1/program/tiers/forecast", tier_results.TierForecast),
    "tier_distribution": Route(
        "GET", ("/v1/program/tiers/distribution",), tier_results.TierCount, many=True
    ),
    "preview_tiers": Route(
        "POST", ("/v1/program/tiers/preview",), tier_results.TierCount, many=True
    ),
    "events": _route("GET", "/v1/events", feed.EventPage),
    "event": _route("GET", "/v1/events/{event_id}", feed.Event),
    "webhook_endpoints": Route(
        "GET", ("/v1/webhook-endpoints",), endpoints.EndpointInfo, many=True
    ),
    "webhook_endpoint": _route("GET", "/v1/webhook-endpoints/{endpoint}", endpoints.EndpointInfo),
    "add_webhook_endpoint": _route("POST", "/v1/webhook-endpoints", endpoints.EndpointCreated),
    "update_webhook_endpoint": _route(
        "POST", "/v1/webhook-endpoints/{endpoint}", endpoints.EndpointInfo
    ),
    "rotate_webhook_secret": _route(
        "POST", "/v1/webhook-endpoints/{endpoint}/rotate", endpoints.EndpointCreated
    ),
    "disable_webhook_endpoint": _route(
        "POST", "/v1/webhook-endpoints/{endpoint}/disable", endpoints.EndpointInfo
    ),
    "enable_webhook_endpoint": _route(
        "POST", "/v1/webhook-endpoints/{endpoint}/enable", endpoints.EndpointInfo
    ),
    "webhook_deliveries": Route(
        "GET", ("/v1/webhook-deliveries",), delivery.DeliveryInfo, many=True
    ),
    "replay_webhook_delivery": _route(
        "POST", "/v1/webhook-deliveries/{delivery}/replay", delivery.DeliveryInfo
    ),
    "replay_webhook_deliveries": _route(
        "POST",
        "/v1/webhook-endpoints/{endpoint}/replay",
        Replayed,
        "/v1/webhook-deliveries/replay",
    ),
    "publish_risk_rules": Route("PUT", ("/v1/risk/rules",), RiskRulesInfo),
    "risk_rules": _route("GET", "/v1/risk/rules", RiskRulesInfo),
    "risk_rule_versions": Route("GET", ("/v1/risk/rules/versions",), RiskRulesInfo, many=True),
    "risk_cases": Route("GET", ("/v1/risk/cases",), RiskCasePage, none_as={"status": "all"}),
    "risk_case": _route("GET", "/v1/risk/cases/{case_id}", RiskCaseInfo),
    "assign_risk_case": _route("POST", "/v1/risk/cases/{case_id}/assign", RiskCaseInfo),
    "resolve_risk_case": _route("POST", "/v1/risk/cases/{case_id}/resolve", RiskCaseInfo),
    "freeze_member": _route(
        "POST", "/v1/members/{member}/freeze", results.MemberInfo, member="external_id"
    ),
    "unfreeze_member": _route(
        "POST", "/v1/members/{member}/unfreeze", results.MemberInfo, member="external_id"
    ),
    "release_member_hold": _route("POST", "/v1/members/{member}/release-hold", Released),
    "scan_risk": _route("POST", "/v1/risk/scan", RiskScanResult),
}
# Query arguments that are text, not whole numbers.
TEXT_QUERY = frozenset({"reward", "status", "after", "type", "member", "rule"})

# The checks the services run on ids that travel in the path: an id that cannot be in a URL
# raises here the error the service would raise.
_SEGMENT_CHECKS: dict[str, Callable[..., str]] = {
    "member": require_member_id,
    "order_id": require_order_id,
    "refund_id": require_order_id,
    "dispute_id": require_order_id,
    "redemption": lambda value, name: str(require_int(name, value)),
    "code": require_code,
    "version": lambda value, name: str(_tier_version(value)),
    "event_id": lambda value, name: feed.require_event_id(value, name),
    "endpoint": lambda value, name: str(require_int(name, value)),
    "delivery": lambda value, name: str(require_int(name, value)),
    "case_id": lambda value, name: str(_case_id(value)),
}


def _tier_version(value: Any) -> int:
    """A tier version number, refused as the tiers service refuses it (a path cannot carry
    what is not a whole number of at least 1)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f"version must be a whole number of at least 1, got {value!r}")
    return value


def _case_id(value: Any) -> int:
    """A risk case id, refused as the risk cases service refuses it (a path cannot carry
    what is not a positive whole number)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise InvalidInput("case_id must be a positive whole number", field="case_id")
    return value


def _placeholders(path: str) -> list[str]:
    return [name for _text, name, _spec, _conv in string.Formatter().parse(path) if name]


def _fill(path: str, args: Mapping[str, Any], checked_as: Mapping[str, str]) -> str | None:
    """``path`` with its placeholders filled from ``args``; None if one of them is None."""
    names = _placeholders(path)
    if any(args.get(name) is None for name in names):
        return None
    for name in names:
        _SEGMENT_CHECKS[name](args[name], name=checked_as.get(name, name))
    return path.format(**{name: _segment(str(args[name])) for name in names})


def _segment(value: str) -> str:
    """One path segment, percent-encoded; ``.`` and ``..`` escaped so no one folds them."""
    quoted = urllib.parse.quote(value, safe="")
    return quoted.replace(".", "%2E") if set(value) == {"."} else quoted


# --- encoding requests ----------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """A value as JSON carries it: order lines (dataclasses or mappings) as objects,
    sequences as arrays; anything JSON has no form for as its text (the server refuses it
    as the embedded client would, with the same error class)."""
    if isinstance(value, TierRules):
        return value.to_dict()
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _body(args: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body: every argument as given, ``currency`` left out when not given (the
    server then uses the program's, as the embedded client does)."""
    return {
        name: _jsonable(value)
        for name, value in args.items()
        if not (name == "currency" and not value)
    }


def _query(args: Mapping[str, Any], none_as: Mapping[str, str]) -> dict[str, str]:
    """The query string: whole numbers (a bool, float or text raises the service's error),
    and the filters that are text; ``None`` left out, or sent as ``none_as`` says."""
    query: dict[str, str] = {}
    for name, value in args.items():
        if value is None:
            if name in none_as:
                query[name] = none_as[name]
            continue
        if name in TEXT_QUERY:
            if not isinstance(value, str):
                raise InvalidInput(f"{name} must be a string", field=name)
            query[name] = value
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            require_int(name, value)
        query[name] = str(value)
    return query


# --- decoding answers -----------------------------------------------------------------------


def decode(cls: type[Any], data: Any, *, replayed: bool = False) -> Any:
    """The result dataclass ``cls`` from its JSON form (``replayed`` from the header).

    Record types are rebuilt as a replay rebuilds them (:meth:`Record.from_record`), with
    the fields a stored record does not carry (a redemption's events) read as the others
    are: field by field from their annotations: datetimes are aware, dates are dates,
    tuples of dataclasses are decoded item by item. Fields a newer server adds are ignored.
    """
    hints = typing.get_type_hints(cls)
    if issubclass(cls, Record):
        rebuilt: Any = cls.from_record(data, replayed=replayed)
        carried = set(rebuilt.to_record()) | {"replayed"}
        extra = {
            name: _value(hints[name], data[name])
            for name in hints
            if name in data
            and (name not in carried or _holds_results(hints[name]) or _typed(hints[name]))
        }
        return dataclasses.replace(rebuilt, **extra) if extra else rebuilt
    values = {
        f.name: _value(hints[f.name], data[f.name])
        for f in dataclasses.fields(cls)
        if f.name in data
    }
    return cls(**values)


def _value(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and args:
        hint = args[0]
    if hint is dt.datetime:
        return dt.datetime.fromisoformat(value)
    if hint is dt.date:
        return dt.date.fromisoformat(value)
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        if isinstance(item, type) and dataclasses.is_dataclass(item):
            return tuple(decode(item, v) for v in value)
        return tuple(value)
    if typing.get_origin(hint) is list:
        item = typing.get_args(hint)[0]
        if isinstance(item, type) and dataclasses.is_dataclass(item):
            return [decode(item, v) for v in value]
        return list(value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):  # a new secret's endpoint
        return decode(hint, value)
    return value


def _typed(hint: Any) -> bool:
    """Whether a field of ``hint`` is a datetime, a date or a tuple of plain values, which a
    stored record rebuilds only when its name ends in ``_at`` (an endpoint's
    ``rotating_until``, its ``event_types``), so decoding reads it again from its
    annotation."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and args:
        hint = args[0]
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        return not (isinstance(item, type) and dataclasses.is_dataclass(item))
    return hint in (dt.datetime, dt.date)


def _holds_results(hint: Any) -> bool:
    """Whether a field of ``hint`` is a list or tuple of results (a tier forecast's counts,
    a page of risk cases), which a stored record carries as plain mappings and decoding
    rebuilds."""
    if typing.get_origin(hint) not in (list, tuple):
        return False
    item = typing.get_args(hint)[0]
    return isinstance(item, type) and dataclasses.is_dataclass(item)


# --- errors ---------------------------------------------------------------------------------


@functools.cache
def error_classes() -> dict[str, type[LoyaltyError]]:
    """Every error class of the tree by its ``code`` (the first class found for a code)."""
    found: dict[str, type[LoyaltyError]] = {}
    todo: list[type[LoyaltyError]] = [LoyaltyError]
    while todo:
        cls = todo.pop(0)
        found.setdefault(cls.code, cls)
        todo.extend(cls.__subclasses__())
    return found


_BY_STATUS: dict[int, type[LoyaltyError]] = {
    400: InvalidInput,
    401: NotAuthenticated,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: InvalidInput,
    415: InvalidInput,
    422: RuleViolation,
    429: RateLimited,
    502: ServerUnreachable,
    503: ServerUnreachable,
    504: ServerUnreachable,
}


def error_from(response: httpx.Response) -> LoyaltyError:
    """The error a non-2xx answer stands for: the class with the problem's ``code``, else
    the class of its status; ``detail`` is the message, ``details`` the details."""
    problem = _problem(response)
    code = problem.get("code")
    known = error_classes().get(code) if isinstance(code, str) else None
    cls = known or _BY_STATUS.get(
        response.status_code, InvalidInput if response.status_code < 500 else LoyaltyError
    )
    detail = problem.get("detail")
    if not isinstance(detail, str) or not detail:
        detail = f"the server answered {response.status_code} {response.reason_phrase}"
    if cls is ServerUnreachable:
        detail += "; a write may be retried with the same idempotency key"
    error = cls(detail)  # details set after: a detail named "message" must not clash
    details = problem.get("details")
    error.details = dict(details) if isinstance(details, Mapping) else {}
    if problem.get("errors") and "errors" not in error.details:
        error.details["errors"] = problem["errors"]
    if problem.get("request_id"):
        error.add_note(f"Jifen server request id: {problem['request_id']}")
    return error


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# --- the client -----------------------------------------------------------------------------


def _remote_method(
    name: str,
    answer: Callable[[Any], Any] | None = None,
    *,
    none_when: Callable[[RemoteJifen, LoyaltyError], bool] | None = None,
) -> Callable[..., Any]:
    """The remote form of ``Jifen.<name>``: same signature and docstring, over HTTP;
    ``answer`` turns the decoded answer into what the embedded method returns, and an error
    for which ``none_when`` holds is the ``None`` the embedded method returns."""
    embedded = getattr(Jifen, name)
    signature = inspect.signature(embedded)
    route = ROUTES[name]

    @functools.wraps(embedded)
    def call(self: RemoteJifen, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        del arguments["self"]
        try:
            result = self._call(route, arguments)
        except LoyaltyError as exc:
            if none_when is not None and none_when(self, exc):
                return None
            raise
        return result if answer is None else answer(result)

    return call


def _no_risk_rules(client: RemoteJifen, error: LoyaltyError) -> bool:
    """The server's answer for a program that never published risk rules (404
    ``not_found`` naming the program), which the embedded client returns as ``None``."""
    return type(error) is NotFound and error.details.get("program") == client.program


def _evidence_times(case: RiskCaseInfo) -> RiskCaseInfo:
    """A risk case with the moments of its evidence as aware datetimes, as the embedded
    client returns them (JSON carries them as text)."""
    evidence = tuple(
        {**item, "at": dt.datetime.fromisoformat(item["at"])}
        if isinstance(item.get("at"), str)
        else item
        for item in case.evidence
    )
    return dataclasses.replace(case, evidence=evidence)


class RemoteJifen(Jifen):
    """A :class:`~sdk.Jifen` for a program on a Jifen server; built by ``Jifen(url, …)``.

    ``api_key`` is a server key of the program (``jfn_sk_…``; default ``$JIFEN_API_KEY``)
    with the ``read`` scope (the client reads the program when it is built) and the scopes of
    the calls it makes. ``timeout`` is how many seconds a call waits for an answer (default
    10); connecting gives up after 2. ``engine`` and ``clock`` belong to an embedded client
    (the server's database and clock are used).

    Not available remotely (they raise :class:`~loyalty.errors.ConfigurationError`):
    :attr:`database`, :meth:`on_reminder`, :meth:`send_reminders`, :meth:`stripe_webhook`;
    reminders and the Stripe webhook run on the server.
    """

    retry_policy = RetryPolicy()

    def __init__(
        self,
        url: str | None = None,
        *,
        program: str,
        engine: Any = None,
        currency: str | None = None,
        clock: Clock | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
    ) -> None:
        program = require_program_code(program)
        if engine is not None or clock is not None:
            raise ConfigurationError(
                "engine= and clock= are for an embedded Jifen (a database URL); a Jifen server "
                "uses its own database and clock"
            )
        self._url = _base_url(str(url))
        self._program = program
        self._http = httpx.Client(
            base_url=self._url,
            headers=_headers(_api_key(api_key, program), program),
            timeout=_timeout(timeout),
            follow_redirects=False,
        )
        try:
            self._info = self._read_program()
            self._currency = (
                self._info.currency
                if currency is None
                else require_currency(currency, self._info.currency)
            )
        except BaseException:
            self._http.close()
            raise

    # --- the client itself ------------------------------------------------------------------

    @property
    def database(self) -> Database:
        """Not available remotely: the database belongs to the server."""
        raise ConfigurationError(
            f"a remote Jifen has no database: it works through the Jifen server at "
            f"{_shown(self._url)}; call its methods, or run code that needs loyalty.services "
            "on the server (an embedded Jifen built from the database URL)"
        )

    def close(self) -> None:
        """Close the client's pooled HTTP connections."""
        self._http.close()

    def __repr__(self) -> str:
        """The program and the server (never the key)."""
        return f"Jifen(program={self._program!r}, url={_shown(self._url)!r})"

    # --- calls ------------------------------------------------------------------------------

    enrol = _remote_method("enrol")
    get_member = _remote_method("get_member")
    link_stripe_customer = _remote_method("link_stripe_customer")
    close_member = _remote_method("close_member")
    quote = _remote_method("quote")
    earn = _remote_method("earn")
    earn_action = _remote_method("earn_action")
    quote_redemption = _remote_method("quote_redemption")
    hold = _remote_method("hold")
    capture = _remote_method("capture")
    release = _remote_method("release")
    refund = _remote_method("refund")
    complete_refund = _remote_method("complete_refund")
    fail_refund = _remote_method("fail_refund")
    open_dispute = _remote_method("open_dispute")
    close_dispute = _remote_method("close_dispute")
    transfer = _remote_method("transfer")
    adjust = _remote_method("adjust")
    balance = _remote_method("balance")
    history = _remote_method("history")
    forecast = _remote_method("forecast")
    rewards = _remote_method("rewards")
    redeem_reward = _remote_method("redeem_reward")
    get_redemption = _remote_method("get_redemption")
    redemptions = _remote_method("redemptions")
    cancel_redemption = _remote_method("cancel_redemption")
    advance_fulfilment = _remote_method("advance_fulfilment")
    validate_voucher = _remote_method("validate_voucher")
    consume_voucher = _remote_method("consume_voucher")
    release_voucher = _remote_method("release_voucher")
    tier_progress = _remote_method("tier_progress")
    tier_history = _remote_method("tier_history")
    set_member_tier = _remote_method("set_member_tier")
    publish_tiers = _remote_method("publish_tiers")
    tier_versions = _remote_method("tier_versions")
    cancel_tiers = _remote_method("cancel_tiers")
    tier_forecast = _remote_method("tier_forecast")
    tier_distribution = _remote_method("tier_distribution")
    preview_tiers = _remote_method("preview_tiers")
    events = _remote_method("events")
    event = _remote_method("event")
    webhook_endpoints = _remote_method("webhook_endpoints")
    webhook_endpoint = _remote_method("webhook_endpoint")
    add_webhook_endpoint = _remote_method("add_webhook_endpoint")
    update_webhook_endpoint = _remote_method("update_webhook_endpoint")
    rotate_webhook_secret = _remote_method("rotate_webhook_secret")
    disable_webhook_endpoint = _remote_method("disable_webhook_endpoint")
    enable_webhook_endpoint = _remote_method("enable_webhook_endpoint")
    webhook_deliveries = _remote_method("webhook_deliveries")
    replay_webhook_delivery = _remote_method("replay_webhook_delivery")
    replay_webhook_deliveries = _remote_method(
        "replay_webhook_deliveries", lambda answer: answer.replayed
    )
    publish_risk_rules = _remote_method("publish_risk_rules")
    risk_rules = _remote_method("risk_rules", none_when=_no_risk_rules)
    risk_rule_versions = _remote_method("risk_rule_versions")
    risk_cases = _remote_method("risk_cases")
    risk_case = _remote_method("risk_case", _evidence_times)
    assign_risk_case = _remote_method("assign_risk_case", _evidence_times)
    resolve_risk_case = _remote_method("resolve_risk_case", _evidence_times)
    freeze_member = _remote_method("freeze_member")
    unfreeze_member = _remote_method("unfreeze_member")
    release_member_hold = _remote_method("release_member_hold", lambda answer: answer.released)
    scan_risk = _remote_method("scan_risk")

    def on_reminder(self, callback: ReminderCallback) -> ReminderCallback:
        """Not available remotely: reminder callbacks run where reminders are sent."""
        _not_here(
            "reminder callbacks run in the process that sends the reminders: register them "
            "with on_reminder on an embedded Jifen (built from the database URL) in the "
            "process that runs send_reminders, or read the reminders the server's remind job "
            "(jifen remind, or POST /v1/jobs/remind) creates"
        )

    def send_reminders(self, *, days: int | None = None) -> ReminderResult:
        """Not available remotely: the server sends reminders."""
        _not_here(
            "reminders are sent on the Jifen server: schedule its remind job (jifen remind, "
            "jifen cron) or start it with POST /v1/jobs/remind and an admin key"
        )

    def stripe_webhook(self, *, secret: str, tolerance: int = DEFAULT_TOLERANCE) -> StripeWebhook:
        """Not available remotely: the Stripe webhook is served by the Jifen server."""
        _not_here(
            "the Stripe webhook runs on the Jifen server: set JIFEN_STRIPE_WEBHOOK_SECRET "
            "there and point Stripe at https://<your Jifen server>/webhooks/stripe"
        )

    # --- the wire ---------------------------------------------------------------------------

    def _read_program(self) -> ProgramInfo:
        """The program's settings; a refused key or another program's key says what to do."""
        server = _shown(self._url)
        try:
            info: ProgramInfo = self._request(READ_PROGRAM, {}, key=None)
        except NotAuthenticated as exc:
            raise _reworded(
                exc,
                f"the Jifen server at {server} refused the API key ({exc.message}); pass "
                f"api_key= a valid server key (jfn_sk_…) of program {self._program!r} or set "
                f"{API_KEY_ENV}",
            ) from exc
        except PermissionDenied as exc:
            raise _reworded(
                exc,
                f"{exc.message} (the client reads program {self._program!r} when it is built: "
                "its key must belong to that program and have the read scope)",
            ) from exc
        except NotFound as exc:
            raise ConfigurationError(
                f"no Jifen API at {server} (GET /v1/program answered 404); check the URL"
            ) from exc
        if info.code != self._program:
            raise PermissionDenied(
                f"this API key belongs to program {info.code!r}, not {self._program!r}",
                program=self._program,
            )
        return info

    def _call(self, route: Route, arguments: dict[str, Any]) -> Any:
        key = arguments.pop("idempotency_key", None)
        if key is not None:
            require_key(key)
        elif route.client_key is not None:
            key = f"{route.client_key}:{uuid.uuid4().hex}"
        return self._request(route, arguments, key=key)

    def _request(self, route: Route, arguments: dict[str, Any], *, key: str | None) -> Any:
        filled = (_fill(p, arguments, route.checked_as) for p in route.paths)
        path = next(p for p in filled if p is not None)
        rest = {k: v for k, v in arguments.items() if k not in route.placeholders}
        headers = {IDEMPOTENCY_HEADER: key} if key is not None else {}
        if route.method == "GET":
            request = self._http.build_request(
                "GET", path, params=_query(rest, route.none_as), headers=headers
            )
        else:
            body = _body(rest)
            request = self._http.build_request(
                route.method,
                path,
                content=json.dumps(body).encode() if body else None,  # \u-escaped: any str travels
                headers={**headers, "Content-Type": "application/json"} if body else headers,
            )
        response = self._send(request)
        if not response.is_success:
            raise error_from(response)
        replayed = response.headers.get(REPLAYED_HEADER, "").lower() == "true"
        try:
            if route.many:
                return tuple(decode(route.result, item) for item in response.json())
            return decode(route.result, response.json(), replayed=replayed)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigurationError(
                f"the server at {_shown(self._url)} answered {request.method} {path} with "
                f"something that is not Jifen's API ({type(exc).__name__}: {exc}); check the URL"
            ) from exc

    def _send(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``, again after a failure worth retrying (see :class:`RetryPolicy`)."""
        policy = self.retry_policy
        for attempt in range(1, policy.attempts + 1):
            retry_after = None
            try:
                response = self._http.send(request)
            except RETRY_ERRORS as exc:
                if attempt == policy.attempts:
                    raise self._unreachable(exc, attempt) from exc
            except httpx.TransportError as exc:  # a read timeout, a bad URL: not retried
                raise self._unreachable(exc, attempt) from exc
            else:
                if response.status_code not in RETRY_STATUSES or attempt == policy.attempts:
                    return response
                retry_after = response.headers.get("Retry-After")
                response.close()
            time.sleep(policy.delay(attempt, retry_after))
        raise AssertionError("unreachable")  # pragma: no cover

    def _unreachable(self, exc: httpx.TransportError, attempts: int) -> ServerUnreachable:
        timed_out = isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout)
        what = (
            f"did not answer within {self._http.timeout.read} s"
            if timed_out
            else f"could not be reached ({type(exc).__name__}: {exc})"
        )
        return ServerUnreachable(
            f"the Jifen server at {_shown(self._url)} {what} after {attempts} "
            f"attempt{'s' if attempts > 1 else ''}; if this was a write, it may or may not "
            "have been applied: retry it with the same idempotency key (a call without one "
            "derives the same key from its ids again) and it is applied at most once",
            url=_shown(self._url),
            attempts=attempts,
            reason=type(exc).__name__,
        )


READ_PROGRAM = Route("GET", ("/v1/program",), ProgramInfo)


def _reworded(error: LoyaltyError, message: str) -> LoyaltyError:
    """``error`` again (same class and details) with a message that says what to do."""
    again = type(error)(message)
    again.details = dict(error.details)
    return again


def _not_here(what: str) -> NoReturn:
    raise ConfigurationError(f"not available on a remote Jifen: {what}")


def _base_url(url: str) -> str:
    """The server's base URL without a trailing ``/`` (nor a trailing ``/v1``)."""
    base = url.strip().rstrip("/")
    if base.endswith("/v1"):
        base = base[: -len("/v1")]
    parsed = httpx.URL(base)
    if not parsed.host:
        raise ConfigurationError(f"{_shown(url)!r} is not a server URL (https://host[:port])")
    return base


def _shown(url: str) -> str:
    """``url`` without a password in it."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "<invalid URL>"
    if parsed.password:
        return str(parsed.copy_with(password="***"))
    return url


def _api_key(given: str | None, program: str) -> str:
    key = given if given is not None else load_settings().api_key
    if not key:
        raise ConfigurationError(
            f"no API key: pass api_key='jfn_sk_…' (a server key of program {program!r}) or "
            f"set {API_KEY_ENV}; create one with `jifen keys` or in the console"
        )
    if not isinstance(key, str) or not key.isascii() or not key.strip() or " " in key.strip():
        raise ConfigurationError("api_key must be a server key such as 'jfn_sk_…'")
    return key.strip()


def _headers(key: str, program: str) -> dict[str, str]:
    """Every request's headers. ``Jifen-Program`` makes the server refuse another program's
    key; a code that a header cannot carry (not ASCII) is left out, and the program the key
    reads is compared when the client is built instead."""
    headers = {
        "Authorization": f"Bearer {key}",
        "User-Agent": USER_AGENT,
        "Accept": "application/json, application/problem+json",
    }
    if program.isascii() and program.isprintable():
        headers[PROGRAM_HEADER] = program
    return headers


def _timeout(seconds: float | None) -> httpx.Timeout:
    read = DEFAULT_TIMEOUT if seconds is None else seconds
    if isinstance(read, bool) or not isinstance(read, int | float) or not read > 0:
        raise ConfigurationError(f"timeout must be a positive number of seconds, got {read!r}")
    return httpx.Timeout(float(read), connect=min(CONNECT_TIMEOUT, float(read)))
