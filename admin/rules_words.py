"""Rule changes in words, for staff: what a draft or a published version changes, with
local times and weekday names (``base ratio 1 → 2 points per CNY``, ``campaign Weekend
added: ×2, Sat Sun, 2026-12-05 00:00–2026-12-07 00:00 Asia/Shanghai``), never raw JSON.

The rules page shows these for its preview and the audit log for ``rules.*`` entries. The
input is a plain rules dict as :meth:`RuleSet.to_dict` writes it, or the part of one an
audit entry holds (only the settings that changed).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from loyalty.domain.calendar import zone

WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
CAP_NAMES = {
    "member_daily": "member daily cap",
    "member_monthly": "member monthly cap",
    "member_yearly": "member yearly cap",
    "program_daily": "program daily budget",
}
ARROW = " → "


def local(value: str | dt.datetime | None, tz: str) -> str:
    """An instant (ISO text or datetime) as ``YYYY-MM-DD HH:MM`` in zone ``tz``."""
    if value is None or value == "":
        return "—"
    instant = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
    return instant.astimezone(zone(tz)).strftime("%Y-%m-%d %H:%M")


def _points(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def ratio(value: Any, currency: str) -> str:
    """A ratio in words: ``2 points per CNY``, ``1 point per CNY``."""
    if value is None:
        return "—"
    return f"{value} {'point' if str(value) == '1' else 'points'} per {currency}"


def campaign_words(campaign: Mapping[str, Any], tz: str) -> str:
    """One campaign: multiplier, weekdays, local period and categories."""
    days = campaign.get("weekdays")
    categories = campaign.get("categories")
    parts = [
        f"×{campaign.get('multiplier')}",
        " ".join(WEEKDAY_NAMES[d] for d in days) if days else "every day",
        f"{local(campaign.get('starts_at'), tz)}–{local(campaign.get('ends_at'), tz)} {tz}",
        f"categories {', '.join(categories)}" if categories else "all categories",
    ]
    return ", ".join(parts)


def action_words(action: Mapping[str, Any]) -> str:
    """One action rule: points and how often."""
    limit = action.get("limit")
    often = "no limit" if limit is None else f"at most {_points(limit)} per {action.get('period')}"
    return f"{_points(action.get('points'))} points, {often}"


def expiry_words(expiry: Mapping[str, Any] | None) -> str:
    """The expiry policy: after how long, rounded up to the month's end or not."""
    if not expiry or not (expiry.get("months") or expiry.get("days")):
        return "never"
    spans = [
        f"{expiry[unit]} {unit if expiry[unit] != 1 else unit[:-1]}"
        for unit in ("months", "days")
        if expiry.get(unit)
    ]
    end = ", rounded up to the end of the month" if expiry.get("month_end") else ""
    return f"after {' and '.join(spans)}{end}"


def _cap(value: Any) -> str:
    return "no cap" if value is None else f"{_points(value)} points"


def _keyed(label: str, before: Any, after: Any, describe: Callable[[Any], str]) -> list[str]:
    """Changes between two name → value maps (categories, SKUs, actions)."""
    old, new = before or {}, after or {}
    lines = []
    for name in sorted({*old, *new}):
        if name not in old:
            lines.append(f"{label} {name} added: {describe(new[name])}")
        elif name not in new:
            lines.append(f"{label} {name} removed (was {describe(old[name])})")
        elif old[name] != new[name]:
            lines.append(f"{label} {name}: {describe(old[name])}{ARROW}{describe(new[name])}")
    return lines


def _campaigns(before: Any, after: Any, tz: str) -> list[str]:
    def by_name(items: Any) -> dict[str, Any]:
        return {c.get("name") or "(no name)": c for c in items or []}

    return _keyed("campaign", by_name(before), by_name(after), lambda c: campaign_words(c, tz))


def describe_changes(
    before: Mapping[str, Any], after: Mapping[str, Any], *, currency: str, tz: str
) -> list[str]:
    """What changes from ``before`` to ``after``, one line per setting, in words."""
    lines: list[str] = []

    def changed(key: str) -> bool:
        return (key in before or key in after) and before.get(key) != after.get(key)

    if changed("base_ratio"):
        old, new = before.get("base_ratio"), after.get("base_ratio")
        lines.append(f"base ratio {old or '—'}{ARROW}{ratio(new, currency)}")

    def per_unit(value: Any) -> str:
        return ratio(value, currency)

    if changed("category_ratios"):
        lines += _keyed(
            "category", before.get("category_ratios"), after.get("category_ratios"), per_unit
        )
    if changed("sku_ratios"):
        lines += _keyed("SKU", before.get("sku_ratios"), after.get("sku_ratios"), per_unit)
    if changed("campaigns"):
        lines += _campaigns(before.get("campaigns"), after.get("campaigns"), tz)
    if changed("actions"):
        lines += _keyed("action", before.get("actions"), after.get("actions"), action_words)
    if changed("caps"):
        old_caps, new_caps = before.get("caps") or {}, after.get("caps") or {}
        for cap, name in CAP_NAMES.items():
            if old_caps.get(cap) != new_caps.get(cap):
                lines.append(f"{name} {_cap(old_caps.get(cap))}{ARROW}{_cap(new_caps.get(cap))}")
    if changed("pending_days"):
        old, new = before.get("pending_days") or 0, after.get("pending_days") or 0
        lines.append(f"pending period {old}{ARROW}{new} days")
    if changed("expiry"):
        old_expiry, new_expiry = before.get("expiry"), after.get("expiry")
        lines.append(f"expiry {expiry_words(old_expiry)}{ARROW}{expiry_words(new_expiry)}")
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
        head = (
            f"version {old.get('version', '—')}{ARROW}{new.get('version', '—')}, "
            f"in force from {local(new.get('effective_from'), tz)} {tz}"
        )
        return [head, *describe_changes(old, new, currency=currency, tz=tz)]
    if action == "rules.cancel":
        head = (
            f"version {old.get('version', '—')} cancelled before its time; it was to take "
            f"effect {local(old.get('effective_from'), tz)} {tz}"
        )
        return [head, f"its base ratio: {ratio(old.get('base_ratio'), currency)}"]
    return None
