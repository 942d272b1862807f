"""The reward form of the console: browser fields to reward terms and back, with each
problem kept beside the field it belongs to.

Times are ``datetime-local`` values in the program's time zone; a voucher's amount is typed
in the currency's major units (``20.50``); a draw's chances in percent (``12.5``), stored in
parts per million. The services check the terms again; :func:`field_of` puts their refusals
next to the right field too. The form's own problems and a reward's terms in words
(:func:`local_window`, :func:`limit_words`) are in the request's language.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from flask_babel import gettext
from werkzeug.datastructures import MultiDict

from admin.error_words import error_text
from admin.formatting import points
from admin.rules_form import from_local, to_local
from loyalty.domain.money import minor_unit_exponent
from loyalty.domain.rewards import KINDS, PPM
from loyalty.errors import LoyaltyError

# flask-babel is untyped: its gettext, typed.
_: Callable[..., str] = gettext

PRIZE_ROWS = 4  # blank prize rows offered on top of the version's prizes
TEXT_FIELDS = ("code", "name", "description", "image_url")
NUMBER_FIELDS = (
    "points",
    "stock",
    "limit_day",
    "limit_month",
    "limit_lifetime",
    "min_balance",
    "voucher_valid_days",
)
# A refusal naming a term (or a detail ``field``) is shown beside this form field.
_TERM_TO_FIELD = {
    "voucher_amount_minor": "voucher_amount",
    "limits[day]": "limit_day",
    "limits[month]": "limit_month",
    "limits[lifetime]": "limit_lifetime",
    "prizes": "prizes",
    "effective from": "effective_from",
    "active from": "active_from",
    "active until": "active_until",
}
FIELDS = (
    *TEXT_FIELDS,
    *NUMBER_FIELDS,
    "kind",
    "voucher_amount",
    "active_from",
    "active_until",
    "effective_from",
    "prizes",
    "codes_file",
    "count",
    "length",
    "alphabet",
    "prefix",
    "quantity",
)


@dataclass
class FormProblems:
    """Problems found in a form: by field, and those that belong to no field."""

    fields: dict[str, str] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    def add(self, exc: LoyaltyError) -> None:
        """Put a refusal beside its field, or above the form if it names none."""
        name = field_of(exc)
        if name and name not in self.fields:
            self.fields[name] = error_text(exc)
        else:
            self.general.append(error_text(exc))

    def __bool__(self) -> bool:
        return bool(self.fields or self.general)


def field_of(exc: LoyaltyError) -> str | None:
    """The form field a refusal is about: its ``field`` detail, or the term its message
    starts with."""
    named = str(exc.details.get("field") or "")
    if not named:
        first = exc.message.split(" ", 1)[0]
        named = first if first in (*FIELDS, *_TERM_TO_FIELD) else ""
    if named.startswith("prizes["):
        return "prizes"
    named = _TERM_TO_FIELD.get(named, named)
    return named if named in FIELDS else None


class _Reader:
    """Reads one form's fields, noting each problem beside its field."""

    def __init__(self, form: MultiDict[str, str], problems: FormProblems) -> None:
        self.form = form
        self.problems = problems

    def text(self, name: str) -> str:
        return self.form.get(name, "").strip()

    def number(self, name: str, *, label: str) -> int | None:
        raw = self.text(name).replace(",", "")
        if not raw:
            return None
        if not raw.isdigit() or len(raw) > 18:
            self.problems.fields[name] = _(
                "%(what)s must be a whole number of 0 or more", what=label
            )
            return None
        return int(raw)

    def moment(self, name: str, tz: str, label: str) -> str | None:
        try:
            instant = from_local(self.text(name), tz, name)
        except LoyaltyError:
            self.problems.fields[name] = not_a_moment(label, self.text(name))
            return None
        return instant.isoformat() if instant else None


def terms_from_form(
    form: MultiDict[str, str], *, kind: str, tz: str, currency: str, problems: FormProblems
) -> dict[str, Any]:
    """Reward terms from the form's fields (problems noted in ``problems``)."""
    read = _Reader(form, problems)
    limit_labels = {
        "day": _("the limit per day"),
        "month": _("the limit per month"),
        "lifetime": _("the limit per lifetime"),
    }
    limits = {
        period: count
        for period, label in limit_labels.items()
        if (count := read.number(f"limit_{period}", label=label)) is not None
    }
    terms: dict[str, Any] = {
        "name": read.text("name"),
        "description": read.text("description"),
        "image_url": read.text("image_url"),
        "points": read.number("points", label=_("the price in points")),
        "visible": form.get("visible") == "1",
        "active_from": read.moment("active_from", tz, _("active from")),
        "active_until": read.moment("active_until", tz, _("active until")),
        "limits": limits,
        "min_balance": read.number("min_balance", label=_("the minimum balance")) or 0,
    }
    if kind == "voucher":
        terms["voucher_amount_minor"] = _minor(read, currency)
        terms["voucher_valid_days"] = read.number("voucher_valid_days", label=_("the validity"))
    if kind == "draw":
        terms["prizes"] = _prizes(form, problems)
    if terms["points"] is None and "points" not in problems.fields:
        problems.fields["points"] = _("the price in points is required")
    return terms


def not_a_moment(label: str, raw: str) -> str:
    """The problem of a ``datetime-local`` field that does not read as a date and time."""
    return _("%(what)s is not a date and time: %(value)s", what=label, value=repr(raw.strip()))


def _minor(read: _Reader, currency: str) -> int | None:
    raw = read.text("voucher_amount").replace(",", "")
    if not raw:
        read.problems.fields["voucher_amount"] = _(
            "a voucher needs its value in %(currency)s", currency=currency
        )
        return None
    exponent = minor_unit_exponent(currency)
    try:
        amount = Decimal(raw)
    except InvalidOperation:
        amount = Decimal(-1)
    minor = amount * 10**exponent
    if not amount.is_finite() or amount <= 0 or minor != minor.to_integral_value():
        read.problems.fields["voucher_amount"] = _(
            "the value must be an amount of %(currency)s above 0 with at most %(decimals)s "
            "decimals, such as 20.50",
            currency=currency,
            decimals=exponent,
        )
        return None
    return int(minor)


def _prizes(form: MultiDict[str, str], problems: FormProblems) -> list[dict[str, Any]]:
    rewards = form.getlist("prize_reward")
    chances = form.getlist("prize_chance")
    labels = form.getlist("prize_label")
    prizes = []
    for n, reward in enumerate(rewards):
        chance = chances[n].strip() if n < len(chances) else ""
        label = labels[n].strip() if n < len(labels) else ""
        if not reward.strip() and not chance:
            continue
        ppm = _ppm(chance)
        if not reward.strip() or ppm is None:
            problems.fields.setdefault(
                "prizes",
                _(
                    "prize %(n)s: give the reward code and its chance in percent, above 0 and "
                    "at most 100 with at most 4 decimals (0.0001%% is one in a million)",
                    n=n + 1,
                ),
            )
            continue
        prizes.append({"reward": reward.strip(), "chance_ppm": ppm, "label": label})
    return prizes


def _ppm(percent: str) -> int | None:
    try:
        value = Decimal(percent.rstrip("%").strip()) * (PPM // 100)
    except InvalidOperation:
        return None
    if not value.is_finite() or value != value.to_integral_value() or not 0 < value <= PPM:
        return None
    return int(value)


def percent(ppm: int) -> str:
    """Parts per million as a percent for a form or a page (``12.5``)."""
    text = f"{Decimal(ppm) / (PPM // 100):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def no_prize_percent(values: Mapping[str, Any]) -> str:
    """The share of draws that win nothing, from a form's prize chances (blank if they do
    not read as percentages)."""
    total = 0
    for chance in values.get("prize_chance", []):
        if chance.strip():
            ppm = _ppm(chance)
            if ppm is None:
                return ""
            total += ppm
    return percent(PPM - total) if total <= PPM else ""


def form_values(terms: Mapping[str, Any], *, kind: str, tz: str, currency: str) -> dict[str, Any]:
    """A version's terms as the form's field values (for publishing the next version)."""
    limits = terms.get("limits") or {}
    prizes = list(terms.get("prizes") or [])
    exponent = minor_unit_exponent(currency)
    amount = Decimal(int(terms.get("voucher_amount_minor") or 0)) / 10**exponent
    return {
        "kind": kind,
        "name": terms.get("name", ""),
        "description": terms.get("description", ""),
        "image_url": terms.get("image_url", ""),
        "points": str(terms.get("points", "")),
        "visible": bool(terms.get("visible", True)),
        "active_from": to_local(terms.get("active_from"), tz),
        "active_until": to_local(terms.get("active_until"), tz),
        "limit_day": str(limits.get("day", "")),
        "limit_month": str(limits.get("month", "")),
        "limit_lifetime": str(limits.get("lifetime", "")),
        "min_balance": str(terms.get("min_balance") or ""),
        "voucher_amount": f"{amount:.{exponent}f}" if amount else "",
        "voucher_valid_days": str(terms.get("voucher_valid_days") or ""),
        **_prize_values(prizes),
    }


def _prize_values(prizes: list[Mapping[str, Any]]) -> dict[str, list[str]]:
    rows = [*prizes, *({} for _ in range(PRIZE_ROWS))]
    return {
        "prize_reward": [str(p.get("reward", "")) for p in rows],
        "prize_chance": [percent(int(p["chance_ppm"])) if p else "" for p in rows],
        "prize_label": [str(p.get("label", "")) for p in rows],
    }


def raw_values(form: MultiDict[str, str]) -> dict[str, Any]:
    """The submitted fields as typed, to show the form again with its problems."""
    values: dict[str, Any] = {name: form.get(name, "") for name in FIELDS}
    values["visible"] = form.get("visible") == "1"
    for name in ("prize_reward", "prize_chance", "prize_label"):
        submitted = form.getlist(name)
        values[name] = submitted + [""] * max(0, PRIZE_ROWS - len(submitted))
    return values


def blank_values(kind: str = "item") -> dict[str, Any]:
    """The create form's first values."""
    return {
        **{name: "" for name in FIELDS},
        "kind": kind if kind in KINDS else "item",
        "visible": True,
        **_prize_values([]),
    }


def local_window(terms: Mapping[str, Any], tz: str) -> str:
    """A reward's active window in the program's time zone, in words."""
    start = to_local(terms.get("active_from"), tz).replace("T", " ")
    end = to_local(terms.get("active_until"), tz).replace("T", " ")
    if start and end:
        return _("%(start)s to %(end)s", start=start, end=end)
    if start:
        return _("from %(start)s", start=start)
    if end:
        return _("until %(end)s", end=end)
    return _("always")


def limit_words(period: str, count: int) -> str:
    """A limit per member in words: ``2 a month``."""
    shown = points(count)
    if period == "day":
        return _("%(count)s a day", count=shown)
    if period == "month":
        return _("%(count)s a month", count=shown)
    if period == "lifetime":
        return _("%(count)s a lifetime", count=shown)
    return f"{shown} / {period}"


def window_state(terms: Mapping[str, Any], now: dt.datetime) -> str:
    """``not started``, ``ended`` or ``""`` for a window that is open now."""
    start, end = terms.get("active_from"), terms.get("active_until")
    if start and dt.datetime.fromisoformat(start) > now:
        return "not started"
    if end and dt.datetime.fromisoformat(end) <= now:
        return "ended"
    return ""
