"""Rule changes in words, for staff, in the request's language: what a draft or a published
version changes, with local times and weekday names (``base ratio 1 → 2 points per CNY``,
``campaign Weekend added: ×2, Sat Sun, 2026-12-05 00:00–2026-12-07 00:00 Asia/Shanghai``;
in Chinese ``新增营销活动 Weekend：×2，周六 周日，…``), never raw JSON.

The rules page shows these for its preview and the audit log for ``rules.*`` entries. The
input is a plain rules dict as :meth:`RuleSet.to_dict` writes it, or the part of one an
audit entry holds (only the settings that changed). Times stay in the program's time zone;
campaign, category, SKU and action names are the shop's own and are shown as they are.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from flask_babel import gettext
from flask_babel import lazy_gettext as _l

from admin.code_words import code_word
from admin.formatting import babel_locale, instant_words

# flask-babel is untyped: its gettext, typed.
_: Callable[..., str] = gettext

# Monday first, as the rules number them (0 … 6).
WEEKDAY_NAMES = (_l("Mon"), _l("Tue"), _l("Wed"), _l("Thu"), _l("Fri"), _l("Sat"), _l("Sun"))
CAP_NAMES = {
    "member_daily": _l("member daily cap"),
    "member_monthly": _l("member monthly cap"),
    "member_yearly": _l("member yearly cap"),
    "program_daily": _l("program daily budget"),
}
# How often an action may earn: "at most 3 per day".
PERIOD_LIMITS = {
    "day": _l("at most %(limit)s per day"),
    "week": _l("at most %(limit)s per week"),
    "month": _l("at most %(limit)s per month"),
    "year": _l("at most %(limit)s per year"),
    "lifetime": _l("at most %(limit)s per lifetime"),
}
# An action rule's period: its code in English (as the rules store it), in words otherwise.
PERIOD_WORDS = {
    "day": _l("a day"),
    "week": _l("a week"),
    "month": _l("a month"),
    "year": _l("a year"),
    "lifetime": _l("over a lifetime"),
}
ARROW = " → "


def local(value: str | dt.datetime | None, tz: str) -> str:
    """An instant (ISO text or datetime) in zone ``tz`` as the page's language writes it in a
    sentence: ``Dec 3, 2026, 14:05`` / ``2026年12月3日 14:05``."""
    if value is None or value == "":
        return "—"
    instant = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
    return instant_words(instant, tz, babel_locale(), time=True)


def weekday_name(day: int) -> str:
    """A weekday (0 = Monday) by its short name: ``Sat``, ``周六``."""
    return str(WEEKDAY_NAMES[day])


def period_word(period: str) -> str:
    """An action rule's period (``day``…``lifetime``): the code in English, words (每天)
    in Chinese; an unknown one as it is."""
    return code_word(PERIOD_WORDS, period)


def _points(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def ratio(value: Any, currency: str) -> str:
    """A ratio in words: ``2 points per CNY``, ``1 point per CNY``."""
    if value is None:
        return "—"
    if str(value) == "1":
        return _("1 point per %(currency)s", currency=currency)
    return _("%(ratio)s points per %(currency)s", ratio=value, currency=currency)


def campaign_words(campaign: Mapping[str, Any], tz: str) -> str:
    """One campaign: multiplier, weekdays, local period and categories."""
    days = campaign.get("weekdays")
    categories = campaign.get("categories")
    return _(
        "%(multiplier)s, %(days)s, %(start)s–%(end)s %(zone)s, %(categories)s",
        multiplier="×" + str(campaign.get("multiplier")),
        days=" ".join(weekday_name(d) for d in days) if days else _("every day"),
        start=local(campaign.get("starts_at"), tz),
        end=local(campaign.get("ends_at"), tz),
        zone=tz,
        categories=(
            _("categories %(names)s", names=_(", ").join(categories))
            if categories
            else _("all categories")
        ),
    )


def action_words(action: Mapping[str, Any]) -> str:
    """One action rule: points and how often."""
    limit, period = action.get("limit"), str(action.get("period"))
    if limit is None:
        often = _("no limit")
    elif period in PERIOD_LIMITS:
        often = str(PERIOD_LIMITS[period]) % {"limit": _points(limit)}
    else:
        often = _(
            "at most %(limit)s per %(period)s", limit=_points(limit), period=period_word(period)
        )
    return _("%(points)s points, %(often)s", points=_points(action.get("points")), often=often)


def _span(count: int, unit: str) -> str:
    if unit == "months":
        return _("1 month") if count == 1 else _("%(count)s months", count=count)
    return _("1 day") if count == 1 else _("%(days)s days", days=count)


def expiry_words(expiry: Mapping[str, Any] | None) -> str:
    """The expiry policy: after how long, rounded up to the month's end or not."""
    if not expiry or not (expiry.get("months") or expiry.get("days")):
        return _("never")
    months, days = int(expiry.get("months") or 0), int(expiry.get("days") or 0)
    if months and days:
        span = _(
            "%(months)s and %(days)s", months=_span(months, "months"), days=_span(days, "days")
        )
    else:
        span = _span(months, "months") if months else _span(days, "days")
    if expiry.get("month_end"):
        return _("after %(span)s, rounded up to the end of the month", span=span)
    return _("after %(span)s", span=span)


def _cap(value: Any) -> str:
    return _("no cap") if value is None else _("%(points)s points", points=_points(value))


def _keyed(label: str, before: Any, after: Any, describe: Callable[[Any], str]) -> list[str]:
    """Changes between two name → value maps (categories, SKUs, actions)."""
    old, new = before or {}, after or {}
    lines = []
    for name in sorted({*old, *new}):
        if name not in old:
            lines.append(
                _(
                    "%(what)s %(name)s added: %(value)s",
                    what=label,
                    name=name,
                    value=describe(new[name]),
                )
            )
        elif name not in new:
            lines.append(
                _(
                    "%(what)s %(name)s removed (was %(value)s)",
                    what=label,
                    name=name,
                    value=describe(old[name]),
                )
            )
        elif old[name] != new[name]:
            lines.append(
                _(
                    "%(what)s %(name)s: %(old)s → %(new)s",
                    what=label,
                    name=name,
                    old=describe(old[name]),
                    new=describe(new[name]),
                )
            )
    return lines


def _campaigns(before: Any, after: Any, tz: str) -> list[str]:
    def by_name(items: Any) -> dict[str, Any]:
        return {c.get("name") or _("(no name)"): c for c in items or []}

    return _keyed(_("campaign"), by_name(before), by_name(after), lambda c: campaign_words(c, tz))


def _cap_lines(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    old_caps, new_caps = before.get("caps") or {}, after.get("caps") or {}
    return [
        _(
            "%(cap)s %(old)s → %(new)s",
            cap=name,
            old=_cap(old_caps.get(cap)),
            new=_cap(new_caps.get(cap)),
        )
        for cap, name in CAP_NAMES.items()
        if old_caps.get(cap) != new_caps.get(cap)
    ]


def describe_changes(
    before: Mapping[str, Any], after: Mapping[str, Any], *, currency: str, tz: str
) -> list[str]:
    """What changes from ``before`` to ``after``, one line per setting, in words."""
    lines: list[str] = []

    def changed(key: str) -> bool:
        return (key in before or key in after) and before.get(key) != after.get(key)

    def per_unit(value: Any) -> str:
        return ratio(value, currency)

    if changed("base_ratio"):
        old, new = before.get("base_ratio"), after.get("base_ratio")
        lines.append(_("base ratio %(old)s → %(new)s", old=old or "—", new=ratio(new, currency)))
    if changed("category_ratios"):
        old_ratios, new_ratios = before.get("category_ratios"), after.get("category_ratios")
        lines += _keyed(_("category"), old_ratios, new_ratios, per_unit)
    if changed("sku_ratios"):
        lines += _keyed(_("SKU"), before.get("sku_ratios"), after.get("sku_ratios"), per_unit)
    if changed("campaigns"):
        lines += _campaigns(before.get("campaigns"), after.get("campaigns"), tz)
    if changed("actions"):
        lines += _keyed(_("action"), before.get("actions"), after.get("actions"), action_words)
    if changed("caps"):
        lines += _cap_lines(before, after)
    if changed("pending_days"):
        old, new = before.get("pending_days") or 0, after.get("pending_days") or 0
        lines.append(_("pending period %(old)s → %(new)s days", old=old, new=new))
    if changed("expiry"):
        old_words, new_words = expiry_words(before.get("expiry")), expiry_words(after.get("expiry"))
        lines.append(_("expiry %(old)s → %(new)s", old=old_words, new=new_words))
    return lines


def audit_words(
    action: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    *,
    currency: str,
    tz: str,
) -> list[str] | None:
    """A ``rules.*`` audit entry in words (its headline first); None for other entries."""
    old, new = before or {}, after or {}
    if action == "rules.publish":
        head = _(
            "version %(old)s → %(new)s, in force from %(start)s %(zone)s",
            old=old.get("version", "—"),
            new=new.get("version", "—"),
            start=local(new.get("effective_from"), tz),
            zone=tz,
        )
        return [head, *describe_changes(old, new, currency=currency, tz=tz)]
    if action == "rules.cancel":
        head = _(
            "version %(version)s cancelled before its time; it was to take effect %(start)s "
            "%(zone)s",
            version=old.get("version", "—"),
            start=local(old.get("effective_from"), tz),
            zone=tz,
        )
        base = _("its base ratio: %(ratio)s", ratio=ratio(old.get("base_ratio"), currency))
        return [head, base]
    return None
