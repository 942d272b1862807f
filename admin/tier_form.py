"""The tier editor's form: a tier version to form fields and back.

The ladder posts repeated rows (``tier_code``, ``tier_name``, ``tier_threshold``,
``tier_multiplier``, ``tier_benefits``); blank rows are ignored. Thresholds may carry
thousands separators (``5,000``); with a money measure they are typed in the currency's
major units (``5,000.00`` CNY) and stored in minor units. Benefits are one per line. The
result is a plain rules dict that :meth:`TierRules.from_dict` validates, so the domain stays
the one judge of a valid tier version.

The member page's manual change takes a lock's end as a local date (:func:`lock_until`): the
lock ends as that day begins in the program's time zone.

The form's own refusals, and the names of the starter ladder a program without tiers is
offered, are in the request's language.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from flask_babel import gettext
from werkzeug.datastructures import MultiDict

from loyalty.domain.calendar import local_midnight
from loyalty.domain.money import minor_unit_exponent
from loyalty.domain.tiers import TierRules
from loyalty.errors import InvalidInput, InvalidRule

# flask-babel is untyped: its gettext, typed.
_: Callable[..., str] = gettext

EXTRA_ROWS = 2
MAX_ROWS = 20
SETTINGS = (
    "measure",
    "window",
    "window_months",
    "anchor",
    "period_months",
    "grace_days",
    "downgrade",
    "on_reversal",
)
FLAGS = ("count_adjustments", "count_transfers")
NUMBER_SETTINGS = ("window_months", "period_months", "grace_days")
ROW_FIELDS = ("tier_code", "tier_name", "tier_threshold", "tier_multiplier", "tier_benefits")


def starter_rules() -> dict[str, Any]:
    """The ladder the editor offers a program without tiers, named in the request's language."""
    return {
        "tiers": [
            {"code": "member", "name": _("Member"), "threshold": 0},
            {"code": "silver", "name": _("Silver"), "threshold": 1000, "multiplier": "1.5"},
            {"code": "gold", "name": _("Gold"), "threshold": 5000, "multiplier": "2"},
        ],
    }


def _setting_label(name: str) -> str:
    labels = {
        "window_months": _("window months"),
        "period_months": _("period months"),
        "grace_days": _("grace days"),
    }
    return labels.get(name, name.replace("_", " "))


def threshold_text(threshold: int, measure: str, currency: str) -> str:
    """A threshold as staff type it: points with separators, money in major units."""
    if measure != "money":
        return f"{threshold:,}"
    exponent = minor_unit_exponent(currency)
    return f"{Decimal(threshold) / 10**exponent:,.{exponent}f}"


def form_values(rules: Mapping[str, Any] | None, currency: str) -> dict[str, Any]:
    """A version's rules (or a starter ladder) as the editor's field values."""
    parsed = TierRules.from_dict(rules or starter_rules())
    data = parsed.to_dict()
    rows = [
        {
            "tier_code": t["code"],
            "tier_name": t["name"],
            "tier_threshold": threshold_text(t["threshold"], parsed.measure, currency),
            "tier_multiplier": t["multiplier"],
            "tier_benefits": "\n".join(t["benefits"]),
        }
        for t in data["tiers"]
    ]
    values: dict[str, Any] = {name: str(data[name]) for name in SETTINGS}
    values.update({name: bool(data[name]) for name in FLAGS})
    values["rows"] = _padded(rows)
    return values


def raw_values(form: MultiDict[str, str]) -> dict[str, Any]:
    """The submitted fields as typed, to show the form again (with its problems)."""
    values: dict[str, Any] = {name: form.get(name, "").strip() for name in SETTINGS}
    values.update({name: form.get(name) == "1" for name in FLAGS})
    columns = {name: form.getlist(name)[:MAX_ROWS] for name in ROW_FIELDS}
    count = max((len(c) for c in columns.values()), default=0)
    rows = [
        {name: (column[i] if i < len(column) else "") for name, column in columns.items()}
        for i in range(count)
    ]
    values["rows"] = _padded([r for r in rows if any(v.strip() for v in r.values())])
    return values


def _padded(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    blank = dict.fromkeys(ROW_FIELDS, "")
    return rows + [dict(blank) for _ in range(EXTRA_ROWS)]


def rules_from_form(form: MultiDict[str, str], currency: str) -> dict[str, Any]:
    """The draft rules dict from the form; :class:`InvalidRule` names the first field that
    does not read (the domain checks the rest)."""
    values = raw_values(form)
    measure = values["measure"] or "points"
    rules: dict[str, Any] = {
        name: values[name] for name in SETTINGS if name not in NUMBER_SETTINGS and values[name]
    }
    for name in NUMBER_SETTINGS:
        if values[name]:
            rules[name] = _whole(values[name], _setting_label(name), field=name)
    rules.update({name: values[name] for name in FLAGS})
    rules["tiers"] = [
        _tier(n, row, measure, currency)
        for n, row in enumerate(r for r in values["rows"] if any(v.strip() for v in r.values()))
    ]
    TierRules.from_dict(rules)
    return rules


def _tier(index: int, row: Mapping[str, str], measure: str, currency: str) -> dict[str, Any]:
    label = _("tier %(n)s", n=index + 1)
    code = row["tier_code"].strip()
    tier: dict[str, Any] = {
        "code": code,
        "name": row["tier_name"].strip() or code,
        "threshold": _threshold(row["tier_threshold"], measure, currency, label),
        "benefits": [line.strip() for line in row["tier_benefits"].splitlines() if line.strip()],
    }
    if row["tier_multiplier"].strip():
        tier["multiplier"] = row["tier_multiplier"].strip()
    return tier


def _threshold(text: str, measure: str, currency: str, label: str) -> int:
    raw = text.strip().replace(",", "").replace(" ", "")
    what = _("%(tier)s: the threshold", tier=label)
    if measure != "money":
        return _whole(raw or "", what, field="tier_threshold")
    exponent = minor_unit_exponent(currency)
    try:
        amount = Decimal(raw)
    except InvalidOperation:
        amount = Decimal(-1)
    minor = amount * 10**exponent
    if not amount.is_finite() or amount < 0 or minor != minor.to_integral_value():
        raise InvalidRule(
            _(
                "%(what)s must be an amount of %(currency)s of 0 or more with at most "
                "%(decimals)s decimals, got %(value)s",
                what=what,
                currency=currency,
                decimals=exponent,
                value=_shown(text),
            ),
            field="tier_threshold",
        )
    return int(minor)


def _whole(text: str, what: str, *, field: str) -> int:
    raw = text.strip().replace(",", "")
    if not raw.isdigit() or len(raw) > 18:
        raise InvalidRule(
            _(
                "%(what)s must be a whole number of 0 or more, got %(value)s",
                what=what,
                value=_shown(text),
            ),
            field=field,
        )
    return int(raw)


def _shown(text: str) -> str:
    """What was typed, quoted and cut to 40 characters for a refusal."""
    return f"{text.strip()!r:.40}"


def lock_until(text: str, tz: str) -> dt.datetime | None:
    """A ``date`` input as the instant the lock ends (that local day's midnight, in ``tz``);
    None if blank; :class:`InvalidInput` if it is not a date."""
    raw = text.strip()
    if not raw:
        return None
    try:
        day = dt.date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(
            _("lock until must be a date such as 2027-06-01, got %(value)s", value=_shown(raw)),
            field="locked_until",
        ) from None
    return local_midnight(day, tz)
