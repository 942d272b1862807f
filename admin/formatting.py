"""Jinja filters: points, money, instants in the program's time zone, JSON for the audit log.

Instants have two forms. Tables, CSV and form inputs use the compact numeric
``2026-12-03 14:05`` (:func:`local_time`): it sorts, and it reads the same in both languages.
Sentences and headings write a date the way the page's language does, with Babel's CLDR
skeletons (:func:`long_date`, :func:`long_time`, :func:`long_day`): ``Dec 3, 2026, 14:05`` in
English, ``2026年12月3日 14:05`` in Chinese, always on the 24-hour clock.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from babel import Locale
from babel.dates import format_skeleton
from babel.numbers import format_currency
from flask import Flask, g, has_request_context

from admin.context import console
from admin.i18n import CHINESE, ENGLISH, current_locale
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


# CLDR skeletons: the fields to show; each locale chooses their order and punctuation.
DATE_SKELETON = "yMMMd"
TIME_SKELETON = "Hm"
# Babel's locale for each console language (``en``, never ``en_US``'s ``12/3/26``).
BABEL_LOCALES = {CHINESE: "zh_Hans_CN", ENGLISH: "en"}


def babel_locale() -> str:
    """The Babel locale of the request's language (``en`` outside a request)."""
    language = current_locale() if has_request_context() else ENGLISH
    return BABEL_LOCALES[language]


def day_words(day: dt.date, locale: str) -> str:
    """``Dec 3, 2026`` / ``2026年12月3日``."""
    return str(format_skeleton(DATE_SKELETON, day, locale=locale))


def instant_words(instant: dt.datetime, timezone: str, locale: str, *, time: bool) -> str:
    """An instant as its local date in ``timezone`` (``time=False``), or as its local date
    and time joined the way the locale joins them (CLDR has no single skeleton for both):
    ``Dec 3, 2026, 14:05`` / ``2026年12月3日 14:05``."""
    local = instant.astimezone(zone(timezone))
    date = day_words(local.date(), locale)
    if not time:
        return date
    clock = str(format_skeleton(TIME_SKELETON, local, tzinfo=local.tzinfo, locale=locale))
    joined = str(Locale.parse(locale).datetime_formats["medium"])
    return joined.replace("{1}", date).replace("{0}", clock)


def long_date(value: dt.datetime | None) -> str:
    """An instant's local date in the program's time zone, written in the page's language
    (``Dec 3, 2026`` / ``2026年12月3日``); blank for None."""
    if value is None:
        return ""
    return instant_words(value, program_timezone(), babel_locale(), time=False)


def long_time(value: dt.datetime | None) -> str:
    """An instant in the program's time zone, written in the page's language
    (``Dec 3, 2026, 14:05`` / ``2026年12月3日 14:05``); blank for None."""
    if value is None:
        return ""
    return instant_words(value, program_timezone(), babel_locale(), time=True)


def long_day(value: dt.date | None) -> str:
    """A local date (already in the program's time zone: a range bound, a last usable day),
    written in the page's language; blank for None."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):  # an instant: its local date, never its UTC one
        return long_date(value)
    return day_words(value, babel_locale())


def long_last_day(expires_at: dt.datetime | None) -> str:
    """:func:`last_day` written in the page's language (``Apr 30, 2026`` for points that end
    at the local midnight starting 1 May)."""
    if expires_at is None:
        return ""
    return long_day(last_usable_day(expires_at, program_timezone()))


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
        long_date=long_date,
        long_time=long_time,
        long_day=long_day,
        long_last_day=long_last_day,
        pretty_json=pretty_json,
    )
