"""The earning-rules form: a rule set to form rows and back, and the side-by-side preview.

The form posts repeated rows (``cat_name``/``cat_ratio``, ``camp_*``, ``act_*``…); blank rows
are ignored. The result is a plain rules dict that :meth:`RuleSet.from_dict` validates, so the
domain stays the one judge of what a valid rule set is. Times are entered as local wall times
of the program's zone (``datetime-local`` inputs).

Campaign weekdays are shown by their names in the request's language (``Sat Sun``,
``周六 周日``) and read in either (``Sat``, ``saturday``, ``6``, ``周六``, ``星期六``). The
form's own refusals are in the request's language and name the field they are about; a
refusal of the rules themselves (the domain's) is shown as it comes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from flask_babel import gettext
from werkzeug.datastructures import MultiDict

from admin.error_words import error_text
from admin.rules_words import CAP_NAMES, period_word, weekday_name
from loyalty.domain.calendar import lot_expiry, zone
from loyalty.domain.money import minor_unit_exponent
from loyalty.domain.rules import ACTION_PERIODS, OrderLine, RuleSet
from loyalty.errors import InvalidInput, InvalidRule, LoyaltyError
from loyalty.services.earning import price_purchase
from loyalty.services.results import ProgramInfo

# flask-babel is untyped: its gettext, typed.
_: Callable[..., str] = gettext

EXTRA_ROWS = 2
LOCAL_FORMAT = "%Y-%m-%dT%H:%M"
CAPS = ("member_daily", "member_monthly", "member_yearly", "program_daily")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# Chinese weekday names: 周六, 星期六, 礼拜六 (Sunday also 日 or 天).
CHINESE_WEEKDAYS = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6}
CHINESE_WEEK_PREFIXES = ("周", "星期", "礼拜")


def to_local(value: str | dt.datetime | None, tz: str) -> str:
    """An instant as a ``datetime-local`` value in zone ``tz``."""
    if value is None or value == "":
        return ""
    instant = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
    return instant.astimezone(zone(tz)).strftime(LOCAL_FORMAT)


def from_local(value: str, tz: str, what: str, *, label: str | None = None) -> dt.datetime | None:
    """A ``datetime-local`` value in zone ``tz`` as an aware instant; None if blank. A bad
    value is refused naming the field ``what``, called ``label`` (default: ``what``)."""
    value = value.strip()
    if not value:
        return None
    try:
        naive = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        problem = _(
            "%(what)s is not a date and time: %(value)s", what=label or what, value=repr(value)
        )
        raise InvalidRule(problem, field=what) from exc
    if naive.tzinfo is not None:
        return naive
    return naive.replace(tzinfo=zone(tz)).astimezone(dt.UTC)


def _int(value: str, what: str, label: str, *, optional: bool = False) -> int | None:
    """``value`` as a whole number; refused naming the field ``what``, called ``label``."""
    value = value.strip().replace(",", "")
    if value == "" and optional:
        return None
    try:
        return int(value)
    except ValueError as exc:
        problem = _("%(what)s must be a whole number, got %(value)s", what=label, value=repr(value))
        raise InvalidRule(problem, field=what) from exc


def _rows(form: MultiDict[str, str], *names: str) -> list[list[str]]:
    columns = [form.getlist(n) for n in names]
    count = max((len(c) for c in columns), default=0)
    rows = []
    for i in range(count):
        row = [c[i].strip() if i < len(c) else "" for c in columns]
        if any(row):
            rows.append(row)
    return rows


def rules_from_form(form: MultiDict[str, str], tz: str) -> dict[str, Any]:
    """The rules dict the form describes (not yet validated by the domain)."""
    campaigns = []
    for name, multiplier, starts, ends, categories, weekdays in _rows(
        form,
        "camp_name",
        "camp_multiplier",
        "camp_starts",
        "camp_ends",
        "camp_categories",
        "camp_weekdays",
    ):
        start = from_local(
            starts, tz, f"campaign {name} start", label=_("campaign %(name)s start", name=name)
        )
        end = from_local(
            ends, tz, f"campaign {name} end", label=_("campaign %(name)s end", name=name)
        )
        if start is None or end is None:
            raise InvalidRule(
                _("campaign %(name)s needs a start and an end", name=name or _("(no name)"))
            )
        days = None
        if weekdays:
            days = sorted(_weekday(d, name) for d in weekdays.replace(",", " ").split())
        campaigns.append(
            {
                "name": name,
                "multiplier": multiplier or "1",
                "starts_at": start.isoformat(),
                "ends_at": end.isoformat(),
                "categories": [c.strip() for c in categories.split(",") if c.strip()] or None,
                "weekdays": days,
            }
        )
    actions = {}
    for name, points, limit, period in _rows(
        form, "act_name", "act_points", "act_limit", "act_period"
    ):
        if not (name or points or limit):  # a blank row (its period select still posts)
            continue
        if period and period not in ACTION_PERIODS:
            raise InvalidRule(
                _(
                    "action %(name)s period must be one of %(periods)s",
                    name=name,
                    periods=_(", ").join(period_word(p) for p in ACTION_PERIODS),
                )
            )
        actions[name] = {
            "points": _int(points, f"action {name} points", _("action %(name)s points", name=name)),
            "limit": _int(
                limit,
                f"action {name} limit",
                _("action %(name)s limit", name=name),
                optional=True,
            ),
            "period": period or "day",
        }
    return {
        "base_ratio": form.get("base_ratio", "").strip() or "1",
        "category_ratios": {n: r for n, r in _rows(form, "cat_name", "cat_ratio")},
        "sku_ratios": {n: r for n, r in _rows(form, "sku_name", "sku_ratio")},
        "campaigns": campaigns,
        "actions": actions,
        "caps": {c: _cap(form, c) for c in CAPS},
        "pending_days": _int(
            form.get("pending_days", "0") or "0", "pending days", _("pending days")
        ),
        "expiry": {
            "months": _int(
                form.get("expiry_months", "0") or "0", "expiry months", _("expiry months")
            ),
            "days": _int(form.get("expiry_days", "0") or "0", "expiry days", _("expiry days")),
            "month_end": form.get("expiry_month_end") == "on",
        },
    }


def _cap(form: MultiDict[str, str], cap: str) -> int | None:
    label = str(CAP_NAMES.get(cap, cap))
    return _int(form.get(f"cap_{cap}", ""), f"cap {cap}", label, optional=True)


def _weekday(value: str, campaign: str) -> int:
    """A weekday typed in English or Chinese, or its number (0 = Monday)."""
    names = {d.lower(): i for i, d in enumerate(WEEKDAYS)}
    if value.lower()[:3] in names:
        return names[value.lower()[:3]]
    if value.isdigit() and 0 <= int(value) <= 6:
        return int(value)
    for prefix in CHINESE_WEEK_PREFIXES:
        rest = value.removeprefix(prefix)
        if rest != value and rest in CHINESE_WEEKDAYS:
            return CHINESE_WEEKDAYS[rest]
    raise InvalidRule(
        _(
            "campaign %(name)s weekdays: %(value)s is not %(first)s…%(last)s or 0…6",
            name=campaign,
            value=repr(value),
            first=weekday_name(0),
            last=weekday_name(6),
        )
    )


def form_values(rules: Mapping[str, Any], tz: str) -> dict[str, Any]:
    """What the form shows for a rules dict (with blank rows to add more)."""
    blank2 = [("", "")] * EXTRA_ROWS
    return {
        "base_ratio": rules.get("base_ratio", "1"),
        "categories": [*rules.get("category_ratios", {}).items(), *blank2],
        "skus": [*rules.get("sku_ratios", {}).items(), *blank2],
        "campaigns": [
            *(
                {
                    "name": c["name"],
                    "multiplier": c["multiplier"],
                    "starts": to_local(c["starts_at"], tz),
                    "ends": to_local(c["ends_at"], tz),
                    "categories": ", ".join(c.get("categories") or []),
                    "weekdays": " ".join(weekday_name(d) for d in c.get("weekdays") or []),
                }
                for c in rules.get("campaigns", [])
            ),
            *[dict.fromkeys(("name", "multiplier", "starts", "ends", "categories", "weekdays"), "")]
            * EXTRA_ROWS,
        ],
        "actions": [
            *(
                {
                    "name": n,
                    "points": a["points"],
                    "limit": a.get("limit") or "",
                    "period": a["period"],
                }
                for n, a in rules.get("actions", {}).items()
            ),
            *[{"name": "", "points": "", "limit": "", "period": "day"}] * EXTRA_ROWS,
        ],
        "caps": {c: ("" if v is None else v) for c, v in rules.get("caps", {}).items()},
        "pending_days": rules.get("pending_days", 0),
        "expiry": rules.get("expiry", {"months": 0, "days": 0, "month_end": False}),
    }


def digest(rules: Mapping[str, Any], effective_from: dt.datetime | None) -> str:
    """A fingerprint of a draft: publishing needs the one that was previewed."""
    text = json.dumps(
        {"rules": rules, "from": None if effective_from is None else effective_from.isoformat()},
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class SampleOrder:
    """The order the preview prices: lines, the part paid with points, and when."""

    lines: tuple[OrderLine, ...]
    paid_with_points_minor: int
    at: dt.datetime


@dataclass(frozen=True)
class PreviewSide:
    """What the sample order earns under one rule set (before member caps)."""

    label: str
    points: int | None
    pending_days: int
    expires_at: dt.datetime | None
    per_line: tuple[int | None, ...]
    error: str | None = None


def _minor(value: str, what: str, label: str, exponent: int) -> int:
    """An amount in major units as minor units; refused naming ``what``, called ``label``."""
    try:
        amount = Decimal(value.strip() or "0")
    except InvalidOperation as exc:
        problem = _("%(what)s is not an amount: %(value)s", what=label, value=repr(value))
        raise InvalidInput(problem, field=what) from exc
    minor = amount * 10**exponent
    if not amount.is_finite() or minor != minor.to_integral_value() or minor < 0:
        raise InvalidInput(
            _(
                "%(what)s must be a positive amount with at most %(decimals)s decimals",
                what=label,
                decimals=exponent,
            ),
            field=what,
        )
    return int(minor)


def sample_from_form(
    form: MultiDict[str, str], program: ProgramInfo, now: dt.datetime
) -> SampleOrder:
    """The sample order from the preview rows (amounts in major units, e.g. ``120.50``)."""
    exponent = minor_unit_exponent(program.currency)
    lines = tuple(
        OrderLine(
            amount_minor=_minor(amount, "line amount", _("line amount"), exponent),
            category=category or None,
            sku=sku or None,
        )
        for amount, category, sku in _rows(form, "line_amount", "line_category", "line_sku")
        if amount
    )
    if not lines:
        lines = (OrderLine(amount_minor=100 * 10**exponent),)
    at = from_local(
        form.get("sample_at", ""), program.timezone, "sample time", label=_("sample time")
    )
    paid = _minor(form.get("sample_paid", "0"), "paid with points", _("paid with points"), exponent)
    return SampleOrder(lines=lines, paid_with_points_minor=paid, at=at or now)


def preview(label: str, rules: RuleSet, order: SampleOrder, program: ProgramInfo) -> PreviewSide:
    """Price the sample order under ``rules`` the way earning prices orders."""

    def points(lines: tuple[OrderLine, ...], paid: int) -> int:
        return price_purchase(
            rules,
            lines,
            paid_with_points_minor=paid,
            at=order.at,
            timezone=program.timezone,
            currency=program.currency,
            rounding=program.rounding,
        )

    try:
        total = points(order.lines, order.paid_with_points_minor)
        per_line = tuple(
            points((line,), 0) if order.paid_with_points_minor == 0 else None
            for line in order.lines
        )
    except LoyaltyError as exc:
        return PreviewSide(label, None, rules.pending_days, None, (), error_text(exc))
    return PreviewSide(
        label=label,
        points=total,
        pending_days=rules.pending_days,
        expires_at=lot_expiry(order.at, program.timezone, rules.expiry),
        per_line=per_line,
    )


def raw_values(form: MultiDict[str, str]) -> dict[str, Any]:
    """What the form shows after a POST: exactly what was typed, plus blank rows."""
    blank2 = [("", "")] * EXTRA_ROWS
    camp_keys = ("name", "multiplier", "starts", "ends", "categories", "weekdays")
    return {
        "base_ratio": form.get("base_ratio", ""),
        "categories": [*map(tuple, _rows(form, "cat_name", "cat_ratio")), *blank2],
        "skus": [*map(tuple, _rows(form, "sku_name", "sku_ratio")), *blank2],
        "campaigns": [
            *(
                dict(zip(camp_keys, row, strict=True))
                for row in _rows(form, *(f"camp_{k}" for k in camp_keys))
            ),
            *[dict.fromkeys(camp_keys, "")] * EXTRA_ROWS,
        ],
        "actions": [
            *(
                dict(zip(("name", "points", "limit", "period"), row, strict=True))
                for row in _rows(form, "act_name", "act_points", "act_limit", "act_period")
                if row[0] or row[1]
            ),
            *[{"name": "", "points": "", "limit": "", "period": "day"}] * EXTRA_ROWS,
        ],
        "caps": {c: form.get(f"cap_{c}", "") for c in CAPS},
        "pending_days": form.get("pending_days", ""),
        "expiry": {
            "months": form.get("expiry_months", ""),
            "days": form.get("expiry_days", ""),
            "month_end": form.get("expiry_month_end") == "on",
        },
    }


def sample_values(form: MultiDict[str, str] | None) -> dict[str, Any]:
    """The sample order rows as typed (three rows), for the preview form."""
    rows = _rows(form, "line_amount", "line_category", "line_sku") if form is not None else []
    if not rows:
        rows = [["100", "", ""]]
    rows = [*rows, *[["", "", ""]] * max(0, 3 - len(rows))]
    return {
        "lines": rows,
        "paid": (form.get("sample_paid", "") if form is not None else "") or "0",
        "at": form.get("sample_at", "") if form is not None else "",
    }
