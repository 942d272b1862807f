"""Earning rules: base ratio, category and SKU ratios, campaigns, action rules, caps, pending
period and expiry policy, and the pure computation of what an order or an action earns.

A :class:`RuleSet` is one immutable version of a program's rules. It round-trips through a
plain JSON-able dict (``to_dict``/``from_dict``), which is how rule versions are stored.

Ratios are points per *major* currency unit (``1`` = one point per yuan) and are exact
fractions, never floats. An order's exact points are summed over its lines and rounded once,
by the program's rounding policy, so that splitting an order into lines never mints points.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from loyalty.domain.calendar import ExpiryPolicy, zone
from loyalty.domain.checks import MAX_POINTS, require_aware, require_int
from loyalty.domain.rounding import Rounding, round_points
from loyalty.errors import InvalidInput, InvalidRule

ACTION_PERIODS = ("day", "week", "month", "year", "lifetime")
# Ratios and multipliers beyond 10**±30 are refused before they become huge fractions.
MAX_RATIO_DIGITS = 30


def parse_ratio(value: Any, *, what: str) -> Fraction:
    """A non-negative exact ratio from an int or a decimal string such as ``"1.5"``."""
    if isinstance(value, (bool, float)):
        raise InvalidRule(
            f"{what} must be an integer or a decimal string like '1.5', not {value!r}"
        )
    try:
        number = Decimal(str(value))
        if number.is_finite() and abs(number.adjusted()) > MAX_RATIO_DIGITS:
            raise InvalidRule(f"{what} is out of range: {value!r:.40}")
        ratio = Fraction(number)
    except (InvalidOperation, ValueError, OverflowError) as exc:  # "Infinity" overflows
        raise InvalidRule(f"{what} is not a number: {value!r:.40}") from exc
    if ratio < 0:
        raise InvalidRule(f"{what} must not be negative, got {value}")
    return ratio


@functools.lru_cache(maxsize=1024)
def format_ratio(ratio: Fraction) -> str:
    """The decimal string of a ratio that came from a decimal string."""
    text = str(Decimal(ratio.numerator) / Decimal(ratio.denominator))
    return text


@dataclass(frozen=True)
class Campaign:
    """A time-limited multiplier, optionally restricted to categories and local weekdays."""

    name: str
    multiplier: Fraction
    starts_at: dt.datetime
    ends_at: dt.datetime
    categories: frozenset[str] | None = None
    weekdays: frozenset[int] | None = None  # 0 = Monday, in the program's time zone

    def applies(self, at: dt.datetime, tz: str, category: str | None) -> bool:
        if not (self.starts_at <= at < self.ends_at):
            return False
        if self.categories is not None and category not in self.categories:
            return False
        return self.weekdays is None or at.astimezone(zone(tz)).weekday() in self.weekdays


@dataclass(frozen=True)
class ActionRule:
    """Fixed points for a named action, at most ``limit`` times per ``period``."""

    points: int
    limit: int | None = None
    period: str = "day"


@dataclass(frozen=True)
class Caps:
    """Earning caps per member per local day, month and year, and the program's daily budget."""

    member_daily: int | None = None
    member_monthly: int | None = None
    member_yearly: int | None = None
    program_daily: int | None = None


@dataclass(frozen=True)
class RuleSet:
    """One version of a program's earning rules."""

    base_ratio: Fraction = Fraction(1)
    category_ratios: Mapping[str, Fraction] = field(default_factory=dict)
    sku_ratios: Mapping[str, Fraction] = field(default_factory=dict)
    campaigns: tuple[Campaign, ...] = ()
    actions: Mapping[str, ActionRule] = field(default_factory=dict)
    caps: Caps = Caps()
    pending_days: int = 0
    expiry: ExpiryPolicy = ExpiryPolicy(months=3)

    def ratio_for(self, sku: str | None, category: str | None) -> Fraction:
        """The ratio of one line: its SKU rule, else its category rule, else the base."""
        if sku is not None and sku in self.sku_ratios:
            return self.sku_ratios[sku]
        if category is not None and category in self.category_ratios:
            return self.category_ratios[category]
        return self.base_ratio

    def multiplier_for(self, at: dt.datetime, tz: str, category: str | None) -> Fraction:
        """The highest multiplier among campaigns active for this line (campaigns don't stack)."""
        active = [c.multiplier for c in self.campaigns if c.applies(at, tz, category)]
        return max(active, default=Fraction(1))

    def campaign_for(self, at: dt.datetime, tz: str, category: str | None) -> Campaign | None:
        """The campaign whose multiplier :meth:`multiplier_for` applies to this line (the
        first listed among equal multipliers), or ``None`` when no campaign multiplies it."""
        best: Campaign | None = None
        for c in self.campaigns:
            if c.applies(at, tz, category) and (best is None or c.multiplier > best.multiplier):
                best = c
        return best if best is not None and best.multiplier != 1 else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict from which :meth:`from_dict` rebuilds the same rule set."""
        return {
            "base_ratio": format_ratio(self.base_ratio),
            "category_ratios": {
                k: format_ratio(v) for k, v in sorted(self.category_ratios.items())
            },
            "sku_ratios": {k: format_ratio(v) for k, v in sorted(self.sku_ratios.items())},
            "campaigns": [_campaign_to_dict(c) for c in self.campaigns],
            "actions": {
                name: {"points": a.points, "limit": a.limit, "period": a.period}
                for name, a in sorted(self.actions.items())
            },
            "caps": {
                "member_daily": self.caps.member_daily,
                "member_monthly": self.caps.member_monthly,
                "member_yearly": self.caps.member_yearly,
                "program_daily": self.caps.program_daily,
            },
            "pending_days": self.pending_days,
            "expiry": {
                "months": self.expiry.months,
                "days": self.expiry.days,
                "month_end": self.expiry.month_end,
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleSet:
        """Build and validate a rule set; unknown keys and bad values raise :class:`InvalidRule`."""
        if not isinstance(data, Mapping):
            raise InvalidRule("rules must be a mapping")
        unknown = set(data) - set(_RULE_KEYS)
        if unknown:
            raise InvalidRule(f"unknown rule settings: {', '.join(sorted(unknown))}")
        defaults = cls()
        return cls(
            base_ratio=parse_ratio(data.get("base_ratio", "1"), what="base_ratio"),
            category_ratios=_ratio_map(data.get("category_ratios", {}), "category_ratios"),
            sku_ratios=_ratio_map(data.get("sku_ratios", {}), "sku_ratios"),
            campaigns=tuple(_campaign_from_dict(c) for c in _list(data.get("campaigns", []))),
            actions={
                _name(k, "action"): _action_from_dict(k, v)
                for k, v in _mapping(data.get("actions", {}), "actions").items()
            },
            caps=_caps_from_dict(_mapping(data.get("caps", {}), "caps")),
            pending_days=_count(data.get("pending_days", 0), "pending_days", maximum=365),
            expiry=_expiry_from_dict(data.get("expiry", _expiry_dict(defaults.expiry))),
        )


_RULE_KEYS = (
    "base_ratio",
    "category_ratios",
    "sku_ratios",
    "campaigns",
    "actions",
    "caps",
    "pending_days",
    "expiry",
)


def _expiry_dict(policy: ExpiryPolicy) -> dict[str, Any]:
    return {"months": policy.months, "days": policy.days, "month_end": policy.month_end}


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidRule(f"{what} must be a mapping")
    return value


def _list(value: Any) -> Sequence[Any]:
    if not isinstance(value, list | tuple):
        raise InvalidRule("campaigns must be a list")
    return value


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 100:
        raise InvalidRule(f"{what} names must be non-empty strings of at most 100 characters")
    return value


def _count(value: Any, what: str, *, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidRule(f"{what} must be a whole number of at least 0, got {value!r}")
    if maximum is not None and value > maximum:
        raise InvalidRule(f"{what} must be at most {maximum}, got {value}")
    return value


def _optional_cap(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidRule(f"cap {what} must be a whole number of points or null, got {value!r}")
    return value


def _ratio_map(value: Any, what: str) -> dict[str, Fraction]:
    return {
        _name(k, what): parse_ratio(v, what=f"{what}[{k}]")
        for k, v in _mapping(value, what).items()
    }


def _caps_from_dict(data: Mapping[str, Any]) -> Caps:
    names = ("member_daily", "member_monthly", "member_yearly", "program_daily")
    unknown = set(data) - set(names)
    if unknown:
        raise InvalidRule(f"unknown caps: {', '.join(sorted(unknown))}")
    return Caps(**{n: _optional_cap(data.get(n), n) for n in names})


def _expiry_from_dict(data: Any) -> ExpiryPolicy:
    if data is None:
        return ExpiryPolicy()
    data = _mapping(data, "expiry")
    unknown = set(data) - {"months", "days", "month_end"}
    if unknown:
        raise InvalidRule(f"unknown expiry settings: {', '.join(sorted(unknown))}")
    month_end = data.get("month_end", False)
    if not isinstance(month_end, bool):
        raise InvalidRule("expiry.month_end must be true or false")
    return ExpiryPolicy(
        months=_count(data.get("months", 0), "expiry.months", maximum=240),
        days=_count(data.get("days", 0), "expiry.days", maximum=36500),
        month_end=month_end,
    )


def _action_from_dict(name: str, data: Any) -> ActionRule:
    data = _mapping(data, f"actions[{name}]")
    _no_unknown(data, ("points", "limit", "period"), f"actions[{name}]")
    period = data.get("period", "day")
    if period not in ACTION_PERIODS:
        raise InvalidRule(f"actions[{name}].period must be one of {', '.join(ACTION_PERIODS)}")
    limit = data.get("limit")
    if limit is not None:
        limit = _count(limit, f"actions[{name}].limit")
    points = data.get("points")
    if isinstance(points, bool) or not isinstance(points, int) or not 0 < points <= MAX_POINTS:
        raise InvalidRule(
            f"actions[{name}].points must be a positive whole number of at most {MAX_POINTS}"
        )
    return ActionRule(points=points, limit=limit, period=period)


_CAMPAIGN_KEYS = ("name", "multiplier", "starts_at", "ends_at", "categories", "weekdays")


def _no_unknown(data: Mapping[str, Any], known: Sequence[str], what: str) -> None:
    unknown = set(data) - set(known)
    if unknown:
        raise InvalidRule(f"unknown {what} settings: {', '.join(sorted(map(str, unknown)))}")


def _parse_instant(value: Any, what: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        try:
            parsed = dt.datetime.fromisoformat(str(value))
        except ValueError as exc:
            raise InvalidRule(f"{what} is not an ISO 8601 datetime: {value!r}") from exc
    try:
        return require_aware(what, parsed)
    except InvalidInput as exc:
        raise InvalidRule(exc.message) from exc


def _campaign_from_dict(data: Any) -> Campaign:
    data = _mapping(data, "campaign")
    name = _name(data.get("name"), "campaign")
    _no_unknown(data, _CAMPAIGN_KEYS, f"campaign {name}")
    starts_at = _parse_instant(data.get("starts_at"), f"campaign {name} starts_at")
    ends_at = _parse_instant(data.get("ends_at"), f"campaign {name} ends_at")
    if ends_at <= starts_at:
        raise InvalidRule(f"campaign {name} must end after it starts")
    categories = data.get("categories")
    weekdays = data.get("weekdays")
    if weekdays is not None and (
        not isinstance(weekdays, list | tuple)
        or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 6 for d in weekdays)
    ):
        raise InvalidRule(f"campaign {name} weekdays must be numbers 0 (Monday) to 6 (Sunday)")
    return Campaign(
        name=name,
        multiplier=parse_ratio(data.get("multiplier", "1"), what=f"campaign {name} multiplier"),
        starts_at=starts_at,
        ends_at=ends_at,
        categories=None
        if categories is None
        else frozenset(_name(c, "category") for c in _list(categories)),
        weekdays=None if weekdays is None else frozenset(weekdays),
    )


def _campaign_to_dict(c: Campaign) -> dict[str, Any]:
    return {
        "name": c.name,
        "multiplier": format_ratio(c.multiplier),
        "starts_at": c.starts_at.isoformat(),
        "ends_at": c.ends_at.isoformat(),
        "categories": None if c.categories is None else sorted(c.categories),
        "weekdays": None if c.weekdays is None else sorted(c.weekdays),
    }


@dataclass(frozen=True)
class OrderLine:
    """One line of an order: its amount in minor units and what it is."""

    amount_minor: int
    sku: str | None = None
    category: str | None = None


def purchase_points(
    rules: RuleSet,
    lines: Sequence[OrderLine],
    *,
    paid_with_points_minor: int,
    at: dt.datetime,
    tz: str,
    exponent: int,
    rounding: Rounding,
    tier_multiplier: Fraction = Fraction(1),
) -> int:
    """Whole points an order earns before caps.

    The part of the order paid with points earns nothing: it is taken from every line in
    proportion to the line's amount. The member's tier multiplier applies to the exact
    total, which is rounded once.
    """
    total = sum(line.amount_minor for line in lines)
    if total <= 0:
        raise InvalidInput("an order must have a positive total")
    require_int("paid_with_points_minor", paid_with_points_minor, minimum=0)
    if paid_with_points_minor > total:
        raise InvalidInput(
            "paid_with_points_minor is larger than the order total",
            paid_with_points_minor=paid_with_points_minor,
            total=total,
        )
    cash_share = Fraction(total - paid_with_points_minor, total)
    per_major = Fraction(10**exponent)
    exact = sum(
        (
            line.amount_minor
            * cash_share
            / per_major
            * rules.ratio_for(line.sku, line.category)
            * rules.multiplier_for(at, tz, line.category)
            for line in lines
        ),
        Fraction(0),
    )
    return round_points(exact * tier_multiplier, rounding)
