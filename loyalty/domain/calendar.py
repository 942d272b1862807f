"""Business calendar in a program's time zone: period keys, month arithmetic, expiry dates and
year-end clearing moments.

Every boundary (day, month, year) is computed in the program's own time zone with
:mod:`zoneinfo`, and every instant that leaves this module is aware UTC.
"""

from __future__ import annotations

import calendar as _cal
import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from loyalty.errors import InvalidInput, InvalidRule


def zone(name: str) -> ZoneInfo:
    """The :class:`ZoneInfo` for an IANA name, with a clear error for unknown names."""
    try:
        if not isinstance(name, str) or len(name) > 64:  # the column's width; no IANA name is
            raise ValueError(name)  # longer, and a long one is an OSError from the file system
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(
            f"unknown time zone {name!r:.80}; use an IANA name such as 'Asia/Shanghai'"
        ) from exc


@dataclass(frozen=True)
class Periods:
    """The day, month and year an instant falls in, as keys such as ``2026-11-21``."""

    day: str
    month: str
    year: str


def periods(at: dt.datetime, tz: str) -> Periods:
    """The local day, month and year keys of ``at`` in time zone ``tz``."""
    local = at.astimezone(zone(tz))
    return Periods(
        day=local.strftime("%Y-%m-%d"), month=local.strftime("%Y-%m"), year=local.strftime("%Y")
    )


def local_midnight(day: dt.date, tz: str) -> dt.datetime:
    """The UTC instant at which local day ``day`` starts in ``tz``."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=zone(tz)).astimezone(dt.UTC)


def start_of_local_day(at: dt.datetime, tz: str) -> dt.datetime:
    """The UTC instant at which the local day containing ``at`` started."""
    return local_midnight(at.astimezone(zone(tz)).date(), tz)


def start_of_period(at: dt.datetime, tz: str, period: str) -> dt.datetime | None:
    """Start (UTC) of the local ``day``/``week``/``month``/``year`` containing ``at``.

    ``lifetime`` gives ``None``: the period has no start.
    """
    local = at.astimezone(zone(tz)).date()
    if period == "day":
        return local_midnight(local, tz)
    if period == "week":
        return local_midnight(local - dt.timedelta(days=local.weekday()), tz)
    if period == "month":
        return local_midnight(local.replace(day=1), tz)
    if period == "year":
        return local_midnight(local.replace(month=1, day=1), tz)
    if period == "lifetime":
        return None
    raise InvalidInput(f"unknown period {period!r}")


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` plus ``months`` calendar months, clamped to the last day of the month."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    last = _cal.monthrange(year, month + 1)[1]
    return dt.date(year, month + 1, min(day.day, last))


def first_of_next_month(day: dt.date) -> dt.date:
    """The first day of the month after ``day``'s month."""
    return add_months(day.replace(day=1), 1)


@dataclass(frozen=True)
class ExpiryPolicy:
    """Rolling expiry: a lot expires ``months`` and ``days`` after it was earned.

    With ``month_end`` the expiry is rounded up to the end of that local month. A policy of
    zero months and zero days means points never expire.
    """

    months: int = 0
    days: int = 0
    month_end: bool = False

    @property
    def never(self) -> bool:
        return self.months == 0 and self.days == 0


def lot_expiry(earned_at: dt.datetime, tz: str, policy: ExpiryPolicy) -> dt.datetime | None:
    """The first instant (UTC) at which points earned at ``earned_at`` are no longer usable."""
    if policy.never:
        return None
    local = earned_at.astimezone(zone(tz))
    day = add_months(local.date(), policy.months) + dt.timedelta(days=policy.days)
    if policy.month_end:
        return local_midnight(first_of_next_month(day), tz)
    naive = dt.datetime.combine(day, local.time().replace(tzinfo=None))
    return naive.replace(tzinfo=zone(tz)).astimezone(dt.UTC)


def last_usable_day(expires_at: dt.datetime, tz: str) -> dt.date:
    """The last local date on which points that stop being usable at ``expires_at`` can be used.

    The local date of the instant just before expiry: points that end at 10:00 on 15 April
    can be used on 15 April; points that end at the end of 30 April (local midnight that
    starts 1 May, as month-end rounding and year-end clearing put it) last on 30 April. This is
    the date people read, in reminders, balances, forecasts and the console.
    """
    return (expires_at - dt.timedelta(microseconds=1)).astimezone(zone(tz)).date()


def end_of_local_day_after(at: dt.datetime, tz: str, days: int) -> dt.datetime:
    """The UTC instant that ends the local day ``days`` calendar days after ``at``'s local day.

    Points whose :func:`last_usable_day` is at most that day end at or before this instant.
    """
    return local_midnight(at.astimezone(zone(tz)).date() + dt.timedelta(days=days + 1), tz)


def clearing_moment(year: int, month: int, day: int, tz: str) -> dt.datetime:
    """The UTC instant of ``year``'s year-end clearing: the end of local day ``month``/``day``.

    The end of a day is the local midnight that starts the next day. A day the month lacks in
    that year (29 February in a non-leap year) means the month's last day (28 February).
    """
    last = _cal.monthrange(year, month)[1]
    return local_midnight(dt.date(year, month, min(day, last)) + dt.timedelta(days=1), tz)


def clearing_cutoff(moment: dt.datetime, tz: str, policy: str, keep_months: int) -> dt.datetime:
    """The UTC instant before which points earned are cleared at ``moment``.

    ``all`` clears everything earned before the moment. ``before_cutoff`` keeps what was
    earned less than ``keep_months`` calendar months before it: the local day of the moment
    minus ``keep_months`` (:func:`add_months`, clamped to the month's end), at local
    midnight. With the default moment (end of 31 December) and 12 months, that is everything
    earned before the current calendar year.
    """
    if policy == "all":
        return moment
    if policy == "before_cutoff":
        local_day = moment.astimezone(zone(tz)).date()
        return local_midnight(add_months(local_day, -keep_months), tz)
    raise InvalidRule(f"clearing policy {policy!r} has no cutoff; use 'all' or 'before_cutoff'")


def last_clearing_year(now: dt.datetime, tz: str, month: int, day: int) -> int:
    """The year whose clearing moment (``month``/``day`` in ``tz``) most recently passed.

    A moment has passed when it is at or before ``now``. The moment of year Y lies in local
    year Y, or on 1 January of Y + 1 for a clearing at the end of 31 December.
    """
    year = now.astimezone(zone(tz)).year
    return year if clearing_moment(year, month, day, tz) <= now else year - 1


def clearing_moments(
    after: dt.datetime, until: dt.datetime, tz: str, month: int, day: int
) -> list[tuple[int, dt.datetime]]:
    """``(year, moment)`` of every clearing moment in ``(after, until]``, earliest first."""
    found = []
    year = last_clearing_year(after, tz, month, day) + 1
    while (moment := clearing_moment(year, month, day, tz)) <= until:
        found.append((year, moment))
        year += 1
    return found
