"""Jinja filters: points, money, instants in the program's time zone, JSON for the audit log."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from babel.numbers import format_currency
from flask import Flask, g, has_request_context

from admin.context import console
from admin.i18n import CHINESE, current_locale
from loyalty.domain.calendar import last_usable_day, zone
from loyalty.domain.money import minor_unit_exponent
from loyalty.errors import LoyaltyError


def points(value: Any) -> str:
    """``12,345`` (and ``-12`` for negatives); blank for None."""
    return "" if value is None else f"{int(value):,}"


def signed(value: Any) -> str:
    """``+12`` / ``-12``."""
    return "" if value is None else f"{int(value):+,}"


def money(minor: Any, currency: str) -> str:
    """Minor units as ``CNY 1,234.56`` in English and ``¥1,234.56`` in Chinese (Babel's
    CLDR pattern for the locale; the code keeps English pages unambiguous across currencies)."""
    if minor is None:
        return ""
    exponent = minor_unit_exponent(currency)
    major = Decimal(int(minor)).scaleb(-exponent)
    if has_request_context() and current_locale() == CHINESE:
        return str(format_currency(major, currency, locale="zh_Hans_CN"))
    return f"{currency} {major:,.{exponent}f}"


def program_timezone() -> str:
    """The console program's time zone, read once per request (UTC before any program)."""
    tz = g.get("jifen_timezone")
    if tz is None:
        try:
            tz = console().program().timezone
        except LoyaltyError:  # no program yet: show UTC
            tz = "UTC"
        g.jifen_timezone = tz
    return str(tz)


def local_time(value: dt.datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """An instant in the program's time zone."""
    if value is None:
        return ""
    return value.astimezone(zone(program_timezone())).strftime(fmt)


def last_day(expires_at: dt.datetime | None) -> str:
    """The last local day points ending at ``expires_at`` can be used (``2026-04-30`` for
    points that end at the local midnight starting 1 May)."""
    if expires_at is None:
        return ""
    return last_usable_day(expires_at, program_timezone()).isoformat()


def pretty_json(value: Any) -> str:
    """Compact, sorted JSON for before/after values."""
    if value is None:
        return ""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, indent=1, default=str)


def init_filters(app: Flask) -> None:
    """Register the filters on ``app``."""
    app.jinja_env.filters.update(
        points=points,
        signed=signed,
        money=money,
        local_time=local_time,
        last_day=last_day,
        pretty_json=pretty_json,
    )
