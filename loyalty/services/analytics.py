"""Points analytics (积分分析): what the console's Analytics page reads, for a range of local
dates of the program compared with the period of the same length just before it.

What it owns:

* the **date range**: parsed from ``from``/``to`` (local dates, ``YYYY-MM-DD``) or a preset
  (last 7, 30 or 90 days, this month, last month), refused with :class:`InvalidInput` when a
  value is malformed, reversed, in the future, too early or too long (:func:`parse_range`);
* the **flows** per day (per week past :data:`DAILY_UP_TO` days) and their totals, for both
  periods: points issued, redeemed, expired, cleared, reversed and adjusted, the transfer fees,
  points outstanding at the end of each day and its money value, new members, members active
  (:func:`flows`);
* **breakdowns** of the points issued by action, by rule version, by location, and purchases'
  points by category and by campaign, with the rule versions that took effect and the
  campaigns that ran in the range (:func:`breakdowns`);
* points outstanding at the end of each period by **age** and by the month of their last
  usable day (:func:`holdings`);
* the **top members** by points issued with their share (:func:`top_members`) and the
  **transfer** volume (:func:`transfers`);
* the **tables** the console shows and exports as CSV, every instant in the program's zone
  with its offset (:func:`table`).

How the flows are counted from the ledger's entry kinds (points are the sum of the four
buckets' deltas, so each flow is what it changed in points outstanding):

============  =====================================================================
issued        ``earn``, ``earn_pending``: points earned by purchases and actions (what
              lifetime earned counts; manual grants are in *adjusted*)
redeemed      ``capture`` and ``reward_spend``, net of ``refund_return`` and
              ``reward_return`` (points given back when an order or a reward is undone)
expired       ``expire``, and ``expire_returned`` (points given back to a lot that had
              ended meanwhile, which lapse at once)
cleared       ``clear`` (year-end clearing)
reversed      refunds' and lost disputes' ``*_reverse`` and ``*_deduct``, and
              ``debt_repay`` (later points that paid a refund's debt)
adjusted      ``adjust_grant`` minus ``adjust_deduct`` (signed)
fees          ``transfer_fee``
============  =====================================================================

so points outstanding move by ``issued - redeemed - expired - cleared - reversed + adjusted
- fees`` (transfers in and out cancel out). Members are *active* in a period when they have an
entry in it that is not a sweep's (expiry, clearing, maturity).

Purchases' points by **category** and by **campaign** come from ``earning_parts`` (an order's
granted points split over its lines' categories and the campaign that multiplied each, with
the part the campaign's multiplier added as its *bonus*); what purchases earned without a
category (or without a campaign) is the rest of the purchases' points, so the rows add up to
the points purchases issued. Orders earned before schema 0012 have no parts: their points
count as without category and campaign.

Every figure is read set-based: the flows are summed per UTC hour and entry kind in SQL (one
row per hour and kind, whatever the number of entries) and put on the program's local dates in
Python, as :mod:`loyalty.services.console_queries` does, which is exact for every zone whose
offset is a whole number of hours; the other figures are sums grouped in SQL by
boundaries computed in the program's zone.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from fractions import Fraction
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    case,
    distinct,
    func,
    literal_column,
    select,
    union_all,
)

from loyalty.db.database import Database
from loyalty.db.dialect import utc_hour_label
from loyalty.db.tables import (
    earning_parts,
    earnings,
    entries,
    lots,
    members,
    rule_versions,
    transfers,
)
from loyalty.domain.calendar import add_months, local_midnight, zone
from loyalty.domain.money import minor_unit_exponent
from loyalty.domain.rules import RuleSet, format_ratio
from loyalty.errors import InvalidInput, InvalidRule
from loyalty.services.results import ProgramInfo
from loyalty.services.writes import program_row

MAX_RANGE_DAYS = 1096  # three years, one of them a leap year
DAILY_UP_TO = 92  # longer ranges are drawn and tabled per week
EARLIEST = dt.date(2000, 1, 1)
PRESETS: dict[str, str] = {
    "7d": "last 7 days",
    "30d": "last 30 days",
    "90d": "last 90 days",
    "this-month": "this month",
    "last-month": "last month",
}
DEFAULT_PRESET = "30d"
FLOWS = ("issued", "redeemed", "expired", "cleared", "reversed", "adjusted")
AGE_BANDS: tuple[tuple[int, int | None], ...] = (
    (0, 30),
    (31, 90),
    (91, 180),
    (181, 365),
    (366, None),
)
EXPIRY_MONTHS = 24  # months ahead shown one by one; later ones are summed
TOP_MEMBERS = 10
TOP_LOCATIONS = 10
# Entry kinds that count in a flow, with the sign that turns their points into it.
KIND_FLOWS: dict[str, tuple[str, int]] = {
    "earn": ("issued", 1),
    "earn_pending": ("issued", 1),
    "capture": ("redeemed", -1),
    "reward_spend": ("redeemed", -1),
    "refund_return": ("redeemed", -1),
    "reward_return": ("redeemed", -1),
    "expire": ("expired", -1),
    "expire_returned": ("expired", -1),
    "clear": ("cleared", -1),
    "refund_reverse": ("reversed", -1),
    "refund_deduct": ("reversed", -1),
    "dispute_reverse": ("reversed", -1),
    "dispute_deduct": ("reversed", -1),
    "debt_repay": ("reversed", -1),
    "adjust_grant": ("adjusted", 1),
    "adjust_deduct": ("adjusted", 1),
    "transfer_fee": ("fees", -1),
}
# Kinds that move points outstanding and count in no flow: between members, they cancel out.
_MOVING_KINDS = ("transfer_in", "transfer_out")
# Entries the sweeps write: they do not make a member active.
SWEEP_KINDS = ("expire", "clear", "expire_returned", "mature")
EARN_KINDS = ("earn", "earn_pending")

_POINTS = (
    entries.c.available_delta
    + entries.c.pending_delta
    + entries.c.held_delta
    + entries.c.frozen_delta
)
_LOT_POINTS = lots.c.available + lots.c.pending + lots.c.held + lots.c.frozen
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

Granularity = Literal["day", "week"]


# --- the date range --------------------------------------------------------------------------


@dataclass(frozen=True)
class DateRange:
    """Local dates ``first`` to ``last`` (both included) of a program in time zone ``tz``."""

    first: dt.date
    last: dt.date
    tz: str

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def start(self) -> dt.datetime:
        """The UTC instant the range starts: local midnight of ``first``."""
        return local_midnight(self.first, self.tz)

    @property
    def end(self) -> dt.datetime:
        """The UTC instant the range ends: local midnight after ``last``."""
        return local_midnight(self.last + dt.timedelta(days=1), self.tz)

    @property
    def granularity(self) -> Granularity:
        return "day" if self.days <= DAILY_UP_TO else "week"

    def previous(self) -> DateRange:
        """The range of the same length that ends the day before this one starts."""
        last = self.first - dt.timedelta(days=1)
        return DateRange(last - dt.timedelta(days=self.days - 1), last, self.tz)

    def buckets(self) -> tuple[tuple[dt.date, dt.date], ...]:
        """The range's days, or its weeks (seven days from ``first``; the last may be
        shorter), as first and last dates."""
        size = 1 if self.granularity == "day" else 7
        return tuple(
            (
                self.first + dt.timedelta(days=n),
                min(self.first + dt.timedelta(days=n + size - 1), self.last),
            )
            for n in range(0, self.days, size)
        )


def today_of(db: Database, tz: str) -> dt.date:
    """The program's local date now."""
    return db.clock.now().astimezone(zone(tz)).date()


def preset_range(name: str, today: dt.date, tz: str) -> DateRange:
    """A preset of :data:`PRESETS` ending today (``last-month``: the whole previous month);
    :class:`InvalidInput` for another name."""
    if name == "this-month":
        return DateRange(today.replace(day=1), today, tz)
    if name == "last-month":
        first = add_months(today.replace(day=1), -1)
        return DateRange(first, today.replace(day=1) - dt.timedelta(days=1), tz)
    days = {"7d": 7, "30d": 30, "90d": 90}.get(name)
    if days is None:
        raise InvalidInput(
            f"range must be one of {', '.join(PRESETS)}, got {name!r:.40}", field="range"
        )
    return DateRange(today - dt.timedelta(days=days - 1), today, tz)


def _date(name: str, text: str) -> dt.date:
    text = text.strip()
    if not _DATE.fullmatch(text):
        raise InvalidInput(
            f"{name} must be a date written YYYY-MM-DD, got {text!r:.40}", field=name
        )
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{name} is not a date of the calendar: {text}", field=name) from None


def parse_range(
    first: str | None, last: str | None, *, preset: str | None, today: dt.date, tz: str
) -> DateRange:
    """The range asked for: ``first`` and ``last`` (local dates, both or neither), else the
    ``preset``, else :data:`DEFAULT_PRESET`. :class:`InvalidInput` (its ``field`` naming the
    value) for a malformed or impossible date, one date without the other, ``from`` after
    ``to``, ``to`` after today, a date before 2000 or more than :data:`MAX_RANGE_DAYS` days."""
    first, last = (first or "").strip(), (last or "").strip()
    if not first and not last:
        return preset_range(preset or DEFAULT_PRESET, today, tz)
    if not first or not last:
        missing = "from" if not first else "to"
        raise InvalidInput(f"give both dates, from and to: {missing} is missing", field=missing)
    rng = DateRange(_date("from", first), _date("to", last), tz)
    if rng.first > rng.last:
        raise InvalidInput(f"from ({rng.first}) must not be after to ({rng.last})", field="from")
    if rng.last > today:
        raise InvalidInput(f"to ({rng.last}) must not be after today ({today}, {tz})", field="to")
    if rng.first < EARLIEST:
        raise InvalidInput(f"from must be {EARLIEST} or later, got {rng.first}", field="from")
    if rng.days > MAX_RANGE_DAYS:
        raise InvalidInput(
            f"the range may be at most {MAX_RANGE_DAYS:,} days (3 years); "
            f"{rng.first} to {rng.last} is {rng.days:,} days",
            field="from",
        )
    return rng


# --- comparisons -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Compared:
    """A figure in the range and in the previous period of the same length."""

    value: int
    previous: int

    @property
    def change(self) -> Fraction | None:
        """The relative change in percent; None when the previous figure is zero."""
        if self.previous == 0:
            return None
        return Fraction(self.value - self.previous, abs(self.previous)) * 100


@dataclass(frozen=True)
class Rate:
    """``part`` of ``whole``, in percent; None without a whole."""

    part: int
    whole: int

    @property
    def percent(self) -> Fraction | None:
        return None if self.whole <= 0 else Fraction(self.part * 100, self.whole)


@dataclass(frozen=True)
class ComparedRate:
    """A rate in the range and in the previous period; its change in percentage points."""

    value: Rate
    previous: Rate

    @property
    def change(self) -> Fraction | None:
        now, before = self.value.percent, self.previous.percent
        return None if now is None or before is None else now - before


# --- flows -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlowTotals:
    """Points issued, redeemed, expired, cleared, reversed and adjusted (signed), and transfer
    fees, over some days."""

    issued: int = 0
    redeemed: int = 0
    expired: int = 0
    cleared: int = 0
    reversed: int = 0
    adjusted: int = 0
    fees: int = 0

    @property
    def net(self) -> int:
        """What these flows changed in points outstanding."""
        return (
            self.issued
            - self.redeemed
            - self.expired
            - self.cleared
            - self.reversed
            + self.adjusted
            - self.fees
        )

    @property
    def breakage(self) -> Rate:
        """Points expired or cleared per point issued."""
        return Rate(self.expired + self.cleared, self.issued)

    @property
    def redemption(self) -> Rate:
        """Points redeemed per point issued."""
        return Rate(self.redeemed, self.issued)

    def plus(self, other: FlowTotals) -> FlowTotals:
        return FlowTotals(
            *(getattr(self, f.name) + getattr(other, f.name) for f in fields(FlowTotals))
        )


@dataclass(frozen=True)
class Bucket:
    """One day or week of a period: its flows, points outstanding at its end (and their
    money value), the flows from the period's start to its end, and members who joined."""

    first: dt.date
    last: dt.date
    flows: FlowTotals
    outstanding: int
    liability_minor: int
    to_date: FlowTotals
    new_members: int


@dataclass(frozen=True)
class PeriodFlows:
    """A period's flows: per bucket and in all, points outstanding at its start and end,
    members who joined and members active in it."""

    range: DateRange
    buckets: tuple[Bucket, ...]
    totals: FlowTotals
    opening: int
    closing: int
    liability_minor: int
    new_members: int
    active_members: int


@dataclass(frozen=True)
class Flows:
    """The range's flows and the previous period's, bucket for bucket."""

    current: PeriodFlows
    previous: PeriodFlows

    @property
    def granularity(self) -> Granularity:
        return self.current.range.granularity

    def compared(self, name: str) -> Compared:
        """A flow total (``issued``, ``fees``...) or ``closing``, ``liability_minor``,
        ``new_members``, ``active_members``, in both periods."""
        if name in FlowTotals.__dataclass_fields__:
            return Compared(getattr(self.current.totals, name), getattr(self.previous.totals, name))
        return Compared(getattr(self.current, name), getattr(self.previous, name))

    def rate(self, name: str) -> ComparedRate:
        """``breakage`` or ``redemption``, in both periods."""
        if name not in ("breakage", "redemption"):
            raise ValueError(f"no rate {name!r}")
        return ComparedRate(getattr(self.current.totals, name), getattr(self.previous.totals, name))


def liability_minor(points: int, program: ProgramInfo) -> int:
    """What ``points`` are worth in the currency's minor units, at the program's redemption
    value (``points_per_unit`` points to a major unit), as the dashboard counts it."""
    exponent: int = minor_unit_exponent(program.currency)
    return int(points * 10**exponent // program.points_per_unit)


def _local_dates_per_hour(rows: Iterable[Any], tz: str) -> Iterable[tuple[dt.date, Any]]:
    """Each row with its ``hour`` label (UTC, ``YYYY-MM-DD HH``) as a local date."""
    where = zone(tz)
    dates: dict[str, dt.date] = {}
    for row in rows:
        label: str = row.hour
        day = dates.get(label)
        if day is None:
            instant = dt.datetime(
                int(label[:4]), int(label[5:7]), int(label[8:10]), int(label[11:13]), tzinfo=dt.UTC
            )
            day = dates[label] = instant.astimezone(where).date()
        yield day, row


_FLOW_NAMES = tuple(dict.fromkeys(flow for flow, _sign in KIND_FLOWS.values()))
_FLOW_COLUMNS = [
    func.sum(
        case(
            *(
                (entries.c.kind == kind, sign * _POINTS)
                for kind, (flow, sign) in KIND_FLOWS.items()
                if flow == name
            ),
            else_=0,
        )
    ).label(name)
    for name in _FLOW_NAMES
]


def _flow_sums(
    conn: Connection, program_id: int, since: dt.datetime, until: dt.datetime, tz: str
) -> dict[dt.date, dict[str, int]]:
    """Per local date, each flow's points and ``net``, the change in points outstanding."""
    hour = utc_hour_label(entries.c.created_at).on(conn).label("hour")
    rows = conn.execute(
        select(hour, func.sum(_POINTS).label("net"), *_FLOW_COLUMNS)
        .where(
            entries.c.program_id == program_id,
            entries.c.created_at >= since,
            entries.c.created_at < until,
            entries.c.kind.in_((*KIND_FLOWS, *_MOVING_KINDS)),
        )
        .group_by(hour)
    ).all()
    names = ("net", *_FLOW_NAMES)
    per_day: dict[dt.date, dict[str, int]] = defaultdict(lambda: dict.fromkeys(names, 0))
    for day, row in _local_dates_per_hour(rows, tz):
        sums = per_day[day]
        for name, value in zip(names, row[1:], strict=True):
            sums[name] += int(value or 0)
    return per_day


def _outstanding_before(conn: Connection, program_id: int, instant: dt.datetime) -> int:
    total = conn.execute(
        select(func.coalesce(func.sum(_POINTS), 0)).where(
            entries.c.program_id == program_id, entries.c.created_at < instant
        )
    ).scalar_one()
    return int(total)


def _new_members(
    conn: Connection, program_id: int, since: dt.datetime, until: dt.datetime, tz: str
) -> dict[dt.date, int]:
    hour = utc_hour_label(members.c.created_at).on(conn).label("hour")
    rows = conn.execute(
        select(hour, func.count().label("joined"))
        .where(
            members.c.program_id == program_id,
            members.c.created_at >= since,
            members.c.created_at < until,
        )
        .group_by(hour)
    ).all()
    per_day: dict[dt.date, int] = defaultdict(int)
    for day, row in _local_dates_per_hour(rows, tz):
        per_day[day] += int(row.joined)
    return per_day


def _active_members(conn: Connection, program_id: int, rng: DateRange) -> tuple[int, int]:
    """Members with an entry other than a sweep's in the range and in the previous period."""
    current = entries.c.created_at >= rng.start
    row = conn.execute(
        select(
            func.count(distinct(case((current, entries.c.member_id)))),
            func.count(distinct(case((~current, entries.c.member_id)))),
        ).where(
            entries.c.program_id == program_id,
            entries.c.created_at >= rng.previous().start,
            entries.c.created_at < rng.end,
            entries.c.kind.not_in(SWEEP_KINDS),
        )
    ).one()
    return int(row[0]), int(row[1])


def _totals(day: Mapping[str, int]) -> FlowTotals:
    return FlowTotals(*(day.get(f.name, 0) for f in fields(FlowTotals)))


def _period(
    rng: DateRange,
    program: ProgramInfo,
    opening: int,
    per_day: Mapping[dt.date, Mapping[str, int]],
    joined: Mapping[dt.date, int],
    active: int,
) -> PeriodFlows:
    buckets, outstanding, to_date = [], opening, FlowTotals()
    for first, last in rng.buckets():
        days = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
        flows = FlowTotals()
        for day in days:
            flows = flows.plus(_totals(per_day.get(day, {})))
            outstanding += per_day.get(day, {}).get("net", 0)
        to_date = to_date.plus(flows)
        buckets.append(
            Bucket(
                first,
                last,
                flows,
                outstanding,
                liability_minor(outstanding, program),
                to_date,
                sum(joined.get(day, 0) for day in days),
            )
        )
    return PeriodFlows(
        range=rng,
        buckets=tuple(buckets),
        totals=to_date,
        opening=opening,
        closing=outstanding,
        liability_minor=liability_minor(outstanding, program),
        new_members=sum(b.new_members for b in buckets),
        active_members=active,
    )


def flows(db: Database, program: ProgramInfo, rng: DateRange) -> Flows:
    """The range's flows per day (or week) and the previous period's."""
    before = rng.previous()
    with db.read() as conn:
        program_id = program_row(conn, program.code).id
        per_day = _flow_sums(conn, program_id, before.start, rng.end, rng.tz)
        opening = _outstanding_before(conn, program_id, before.start)
        joined = _new_members(conn, program_id, before.start, rng.end, rng.tz)
        active_now, active_before = _active_members(conn, program_id, rng)
    previous = _period(before, program, opening, per_day, joined, active_before)
    current = _period(rng, program, previous.closing, per_day, joined, active_now)
    return Flows(current, previous)


# --- breakdowns of the points issued ---------------------------------------------------------


@dataclass(frozen=True)
class IssuedRow:
    """Points issued by one action (or purchases), rule version or location, in both
    periods: earns counted, points granted, and points the caps cut."""

    key: str
    earns: Compared
    points: Compared
    capped: Compared


@dataclass(frozen=True)
class VersionRow(IssuedRow):
    """A rule version's earns, with when it took effect, who published it, its base ratio
    and the points purchases earned per major unit of money paid under it."""

    version: int = 0
    effective_from: dt.datetime | None = None
    published_at: dt.datetime | None = None
    published_by: str | None = None
    base_ratio: str = ""
    paid_minor: Compared = Compared(0, 0)
    purchase_points: Compared = Compared(0, 0)

    def per_unit(self, exponent: int) -> tuple[Fraction | None, Fraction | None]:
        """Points per major unit paid, in the range and in the previous period."""

        def ratio(points: int, minor: int) -> Fraction | None:
            return None if minor <= 0 else Fraction(points * 10**exponent, minor)

        return (
            ratio(self.purchase_points.value, self.paid_minor.value),
            ratio(self.purchase_points.previous, self.paid_minor.previous),
        )


@dataclass(frozen=True)
class RuleMarker:
    """A rule version that took effect in the range: a marker on the issued chart."""

    version: int
    effective_from: dt.datetime
    day: dt.date


@dataclass(frozen=True)
class CampaignWindow:
    """A campaign of a rule version in force in the range, over the part of it that ran."""

    name: str
    multiplier: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    categories: tuple[str, ...] | None
    weekdays: tuple[int, ...] | None


@dataclass(frozen=True)
class PartRow:
    """Purchases' points of one category (or campaign) in both periods, with the part of
    them campaigns' multipliers added (``bonus``) and their share of purchases' points."""

    key: str
    points: Compared
    bonus: Compared
    share: Rate


@dataclass(frozen=True)
class Breakdowns:
    """The points issued by action, by rule version and by location; purchases' points by
    category and by campaign; the rule versions that took effect and the campaigns that ran
    in the range."""

    actions: tuple[IssuedRow, ...]
    versions: tuple[VersionRow, ...]
    locations: tuple[IssuedRow, ...]
    markers: tuple[RuleMarker, ...]
    campaigns: tuple[CampaignWindow, ...]
    categories: tuple[PartRow, ...] = ()
    campaign_points: tuple[PartRow, ...] = ()


PURCHASES = "purchases"
NO_LOCATION = "(none given)"
OTHER_LOCATIONS = "(other locations)"
NO_CATEGORY = "(no category)"
NO_CAMPAIGN = "(no campaign)"


def _in_both(
    column: ColumnElement[Any], current: ColumnElement[bool], name: str
) -> list[ColumnElement[Any]]:
    return [
        func.coalesce(func.sum(case((current, column), else_=0)), 0).label(f"{name}_now"),
        func.coalesce(func.sum(case((~current, column), else_=0)), 0).label(f"{name}_before"),
    ]


Sums = dict[str, int]
_SUMS = ("earns", "points", "capped", "paid", "bought")


def _compared(sums: Mapping[str, int], name: str) -> Compared:
    return Compared(sums.get(f"{name}_now", 0), sums.get(f"{name}_before", 0))


@dataclass(frozen=True)
class _EarnGroup:
    action: str | None
    version_id: int
    location: str | None
    sums: Sums


def _earning_groups(conn: Connection, program_id: int, rng: DateRange) -> list[_EarnGroup]:
    """Earns of both periods summed per action, rule version and location, in one pass."""
    current = earnings.c.created_at >= rng.start
    purchase = earnings.c.source == "purchase"
    paid = earnings.c.amount_minor - earnings.c.points_paid_minor
    keys = (earnings.c.action, earnings.c.rule_version_id, earnings.c.location)
    rows = conn.execute(
        select(
            *keys,
            *_in_both(literal_column("1"), current, "earns"),
            *_in_both(earnings.c.points_granted, current, "points"),
            *_in_both(earnings.c.points_requested - earnings.c.points_granted, current, "capped"),
            *_in_both(case((purchase, paid), else_=0), current, "paid"),
            *_in_both(case((purchase, earnings.c.points_granted), else_=0), current, "bought"),
        )
        .where(
            earnings.c.program_id == program_id,
            earnings.c.created_at >= rng.previous().start,
            earnings.c.created_at < rng.end,
        )
        .group_by(*keys)
    ).all()
    names = [f"{name}_{when}" for name in _SUMS for when in ("now", "before")]
    return [
        _EarnGroup(r.action, r.rule_version_id, r.location, {n: int(r._mapping[n]) for n in names})
        for r in rows
    ]


def _summed_by(groups: Iterable[_EarnGroup], key: Callable[[_EarnGroup], Any]) -> dict[Any, Sums]:
    out: dict[Any, Sums] = {}
    for group in groups:
        sums = out.setdefault(key(group), defaultdict(int))
        for name, value in group.sums.items():
            sums[name] += value
    return out


def _issued_row(key: str, sums: Mapping[str, int]) -> IssuedRow:
    return IssuedRow(
        key, _compared(sums, "earns"), _compared(sums, "points"), _compared(sums, "capped")
    )


def _by_points(rows: Iterable[IssuedRow]) -> list[IssuedRow]:
    return sorted(rows, key=lambda r: (-r.points.value, -r.points.previous, r.key))


def _summed(key: str, rows: Sequence[IssuedRow]) -> IssuedRow:
    def total(name: str) -> Compared:
        return Compared(
            sum(getattr(r, name).value for r in rows), sum(getattr(r, name).previous for r in rows)
        )

    return IssuedRow(key, total("earns"), total("points"), total("capped"))


def _locations(groups: Sequence[_EarnGroup]) -> tuple[IssuedRow, ...]:
    sums = _summed_by(groups, lambda g: g.location or NO_LOCATION)
    ranked = _by_points(_issued_row(key, s) for key, s in sums.items())
    if len(ranked) <= TOP_LOCATIONS + 1:
        return tuple(ranked)
    return (*ranked[:TOP_LOCATIONS], _summed(OTHER_LOCATIONS, ranked[TOP_LOCATIONS:]))


def _base_ratio(rules: Any) -> str:
    try:
        return format_ratio(RuleSet.from_dict(rules).base_ratio)
    except InvalidRule:
        return ""


def _versions(known: Sequence[Any], groups: Sequence[_EarnGroup]) -> list[VersionRow]:
    by_id = {v.id: v for v in known}
    rows = []
    for version_id, sums in _summed_by(groups, lambda g: g.version_id).items():
        v = by_id[version_id]
        rows.append(
            VersionRow(
                f"v{v.version}",
                _compared(sums, "earns"),
                _compared(sums, "points"),
                _compared(sums, "capped"),
                version=v.version,
                effective_from=v.effective_from,
                published_at=v.created_at,
                published_by=v.created_by,
                base_ratio=_base_ratio(v.rules),
                paid_minor=_compared(sums, "paid"),
                purchase_points=_compared(sums, "bought"),
            )
        )
    return sorted(rows, key=lambda r: r.version)


def _in_force(versions: Sequence[Any], rng: DateRange) -> list[Any]:
    """The live versions in force at some moment of the range, oldest first."""
    live = sorted((v for v in versions if v.cancelled_at is None), key=lambda v: v.effective_from)
    started = [v for v in live if v.effective_from <= rng.start]
    during = [v for v in live if rng.start < v.effective_from < rng.end]
    return started[-1:] + during


def _markers(in_force: Sequence[Any], rng: DateRange) -> tuple[RuleMarker, ...]:
    where = zone(rng.tz)
    return tuple(
        RuleMarker(v.version, v.effective_from, v.effective_from.astimezone(where).date())
        for v in in_force
        if v.effective_from >= rng.start
    )


def _campaigns(in_force: Sequence[Any], rng: DateRange) -> tuple[CampaignWindow, ...]:
    seen: dict[tuple[Any, ...], CampaignWindow] = {}
    for v in in_force:
        try:
            campaigns = RuleSet.from_dict(v.rules).campaigns
        except InvalidRule:
            continue
        for c in campaigns:
            if c.ends_at <= rng.start or c.starts_at >= rng.end:
                continue
            window = CampaignWindow(
                c.name,
                format_ratio(c.multiplier),
                c.starts_at,
                c.ends_at,
                None if c.categories is None else tuple(sorted(c.categories)),
                None if c.weekdays is None else tuple(sorted(c.weekdays)),
            )
            seen.setdefault((c.name, c.starts_at, c.ends_at, window.multiplier), window)
    return tuple(sorted(seen.values(), key=lambda w: (w.starts_at, w.name)))


def _part_sums(
    conn: Connection, program_id: int, rng: DateRange, key: ColumnElement[Any]
) -> dict[str | None, Sums]:
    """Purchases' parts of both periods summed per ``key`` (category or campaign)."""
    p = earning_parts
    current = p.c.created_at >= rng.start
    rows = conn.execute(
        select(
            key.label("key"),
            *_in_both(p.c.points, current, "points"),
            *_in_both(p.c.bonus, current, "bonus"),
        )
        .where(
            p.c.program_id == program_id,
            p.c.created_at >= rng.previous().start,
            p.c.created_at < rng.end,
        )
        .group_by(key)
    ).all()
    names = [f"{n}_{w}" for n in ("points", "bonus") for w in ("now", "before")]
    return {r.key: {n: int(r._mapping[n]) for n in names} for r in rows}


def _part_rows(sums: Mapping[str | None, Sums], bought: Sums, rest: str) -> tuple[PartRow, ...]:
    """One row per key, most points first, and ``rest``: the purchases' points no part of a
    key accounts for (none when purchases issued nothing in either period)."""
    named = {k: v for k, v in sums.items() if k is not None}
    left = {
        f"points_{w}": bought.get(f"bought_{w}", 0) - sum(v[f"points_{w}"] for v in named.values())
        for w in ("now", "before")
    }
    if any(left.values()):
        named[rest] = {**left, "bonus_now": 0, "bonus_before": 0}
    total = _compared(bought, "bought")

    def row(key: str, v: Mapping[str, int]) -> PartRow:
        points = _compared(v, "points")
        return PartRow(
            key,
            points,
            _compared(v, "bonus"),
            Rate(points.value, total.value),
        )

    rows = [row(k, v) for k, v in named.items()]
    return tuple(
        sorted(rows, key=lambda r: (r.key == rest, -r.points.value, -r.points.previous, r.key))
    )


def breakdowns(db: Database, program: ProgramInfo, rng: DateRange) -> Breakdowns:
    """The points issued in the range and the previous period by action (purchases first
    among equals: rows by points, most first), by rule version and by the top locations."""
    with db.read() as conn:
        program_id = program_row(conn, program.code).id
        groups = _earning_groups(conn, program_id, rng)
        known = conn.execute(
            select(rule_versions).where(rule_versions.c.program_id == program_id)
        ).all()
        by_category = _part_sums(conn, program_id, rng, earning_parts.c.category)
        by_campaign = _part_sums(conn, program_id, rng, earning_parts.c.campaign)
    actions = _summed_by(groups, lambda g: g.action or PURCHASES)
    bought = _summed_by(groups, lambda g: True).get(True, {})
    in_force = _in_force(known, rng)
    return Breakdowns(
        actions=tuple(_by_points(_issued_row(key, sums) for key, sums in actions.items())),
        versions=tuple(_versions(known, groups)),
        locations=_locations(groups),
        markers=_markers(in_force, rng),
        campaigns=_campaigns(in_force, rng),
        categories=_part_rows(by_category, bought, NO_CATEGORY),
        campaign_points=_part_rows(by_campaign, bought, NO_CAMPAIGN),
    )


# --- points outstanding by age and expiry ----------------------------------------------------


@dataclass(frozen=True)
class Holdings:
    """Points outstanding at one instant by age (days since earned, :data:`AGE_BANDS`) and
    by the local month of their last usable day (``overdue``: past it, waiting for the
    sweep; ``later`` past :data:`EXPIRY_MONTHS` months; ``never``)."""

    at: dt.datetime
    by_age: tuple[int, ...]
    by_month: tuple[tuple[str, int], ...]

    @property
    def total(self) -> int:
        return sum(self.by_age)


@dataclass(frozen=True)
class HoldingsCompared:
    """Points outstanding at the end of the range and of the previous period."""

    current: Holdings
    previous: Holdings

    def age_rows(self) -> list[tuple[str, Compared]]:
        return [
            (age_label(band), Compared(now, before))
            for band, now, before in zip(
                AGE_BANDS, self.current.by_age, self.previous.by_age, strict=True
            )
        ]

    def month_rows(self) -> list[tuple[str, Compared]]:
        now, before = dict(self.current.by_month), dict(self.previous.by_month)
        keys = [k for k, _ in self.current.by_month]
        keys += [k for k, _ in self.previous.by_month if k not in now]
        return [(k, Compared(now.get(k, 0), before.get(k, 0))) for k in _month_order(keys)]


def age_label(band: tuple[int, int | None]) -> str:
    low, high = band
    return f">{low - 1} days" if high is None else f"{low}–{high} days"


def _month_order(keys: Iterable[str]) -> list[str]:
    rank = {"overdue": "0", "later": "9", "never": "99"}
    return sorted(set(keys), key=lambda k: rank.get(k, "1" + k))


def _holdings_at(conn: Connection, program_id: int, at: dt.datetime, tz: str) -> Holdings:
    ages = case(
        *(
            (lots.c.earned_at > at - dt.timedelta(days=high + 1), index)
            for index, (_, high) in enumerate(AGE_BANDS)
            if high is not None
        ),
        else_=len(AGE_BANDS) - 1,
    )
    first = at.astimezone(zone(tz)).date().replace(day=1)
    months = [add_months(first, k) for k in range(EXPIRY_MONTHS + 1)]
    expiry = case(
        (lots.c.expires_at.is_(None), -2),
        (lots.c.expires_at <= at, -1),
        *(
            (lots.c.expires_at <= local_midnight(months[k + 1], tz), k)
            for k in range(EXPIRY_MONTHS)
        ),
        else_=EXPIRY_MONTHS,
    )
    # A lot's points at ``at``: what it holds now less what its entries since changed.
    # (A transfer's lot keeps its source's earned_at, so it may be earned before ``at`` and
    # made after it: its entries all come after ``at`` and cancel what it holds.)
    held_now = select(ages.label("age"), expiry.label("month"), _LOT_POINTS.label("points")).where(
        lots.c.program_id == program_id, lots.c.earned_at < at
    )
    changed_since = (
        select(ages, expiry, (-_POINTS).label("points"))
        .select_from(entries.join(lots, lots.c.id == entries.c.lot_id))
        .where(
            entries.c.program_id == program_id,
            entries.c.created_at >= at,
            lots.c.earned_at < at,
        )
    )
    held = union_all(held_now, changed_since).subquery()
    rows = conn.execute(
        select(held.c.age, held.c.month, func.sum(held.c.points).label("points")).group_by(
            held.c.age, held.c.month
        )
    ).all()
    by_age = [0] * len(AGE_BANDS)
    by_month: dict[str, int] = defaultdict(int)
    names = {-2: "never", -1: "overdue", EXPIRY_MONTHS: "later"}
    for r in rows:
        points = int(r.points or 0)
        by_age[int(r.age)] += points
        name = names.get(int(r.month)) or months[int(r.month)].strftime("%Y-%m")
        by_month[name] += points
    kept = [(k, by_month[k]) for k in _month_order(by_month) if by_month[k]]
    return Holdings(at, tuple(by_age), tuple(kept))


def holdings(db: Database, program: ProgramInfo, rng: DateRange) -> HoldingsCompared:
    """Points outstanding at the end of the range (now, if it ends today) and at the end of
    the previous period, by age and by expiry month."""
    now = db.clock.now()
    with db.read() as conn:
        program_id = program_row(conn, program.code).id
        current = _holdings_at(conn, program_id, min(rng.end, now), rng.tz)
        previous = _holdings_at(conn, program_id, min(rng.previous().end, now), rng.tz)
    return HoldingsCompared(current, previous)


# --- top members and transfers ---------------------------------------------------------------


@dataclass(frozen=True)
class TopMember:
    """A member, the points they were issued in the range and in the previous period, and
    their share of all points issued in the range."""

    member: str
    issued: Compared
    share: Rate


def top_members(
    db: Database, program: ProgramInfo, rng: DateRange, *, limit: int = TOP_MEMBERS
) -> tuple[TopMember, ...]:
    """The members issued the most points in the range, most first (ties by id)."""
    issued = func.sum(_POINTS).label("issued")
    earned = entries.c.kind.in_(EARN_KINDS)
    with db.read() as conn:
        program_id = program_row(conn, program.code).id
        in_range = [entries.c.program_id == program_id, earned]
        total = conn.execute(
            select(func.coalesce(func.sum(_POINTS), 0)).where(
                *in_range, entries.c.created_at >= rng.start, entries.c.created_at < rng.end
            )
        ).scalar_one()
        top = conn.execute(
            select(members.c.id, members.c.external_id, issued)
            .join(members, members.c.id == entries.c.member_id)
            .where(*in_range, entries.c.created_at >= rng.start, entries.c.created_at < rng.end)
            .group_by(members.c.id, members.c.external_id)
            .having(issued > 0)
            .order_by(issued.desc(), members.c.external_id)
            .limit(limit)
        ).all()
        before = dict(
            conn.execute(
                select(entries.c.member_id, func.sum(_POINTS))
                .where(
                    *in_range,
                    entries.c.member_id.in_([r.id for r in top]),
                    entries.c.created_at >= rng.previous().start,
                    entries.c.created_at < rng.start,
                )
                .group_by(entries.c.member_id)
            ).all()
        )
    return tuple(
        TopMember(
            r.external_id,
            Compared(int(r.issued), int(before.get(r.id) or 0)),
            Rate(int(r.issued), int(total)),
        )
        for r in top
    )


@dataclass(frozen=True)
class Transfers:
    """Transfers between members: how many, their points and fees, distinct senders and
    recipients, in the range and in the previous period."""

    count: Compared
    points: Compared
    fees: Compared
    senders: Compared
    recipients: Compared


def transfers_between_members(db: Database, program: ProgramInfo, rng: DateRange) -> Transfers:
    """The transfer volume of the range and of the previous period."""
    current = transfers.c.created_at >= rng.start

    def distinct_in_both(column: ColumnElement[Any], name: str) -> list[ColumnElement[Any]]:
        return [
            func.count(distinct(case((current, column)))).label(f"{name}_now"),
            func.count(distinct(case((~current, column)))).label(f"{name}_before"),
        ]

    with db.read() as conn:
        program_id = program_row(conn, program.code).id
        row = conn.execute(
            select(
                *_in_both(literal_column("1"), current, "count"),
                *_in_both(transfers.c.points, current, "points"),
                *_in_both(transfers.c.fee, current, "fees"),
                *distinct_in_both(transfers.c.sender_id, "senders"),
                *distinct_in_both(transfers.c.recipient_id, "recipients"),
            ).where(
                and_(
                    transfers.c.program_id == program_id,
                    transfers.c.created_at >= rng.previous().start,
                    transfers.c.created_at < rng.end,
                )
            )
        ).one()
    sums = {name: int(value) for name, value in row._mapping.items()}
    return Transfers(
        *(_compared(sums, name) for name in ("count", "points", "fees", "senders", "recipients"))
    )


# --- the report and its tables ---------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """Everything the Analytics page shows for one range."""

    program: ProgramInfo
    range: DateRange
    flows: Flows
    breakdowns: Breakdowns
    holdings: HoldingsCompared
    top_members: tuple[TopMember, ...]
    transfers: Transfers
    today: dt.date


def report(db: Database, program: ProgramInfo, rng: DateRange) -> Report:
    """The whole page's figures."""
    return Report(
        program=program,
        range=rng,
        flows=flows(db, program, rng),
        breakdowns=breakdowns(db, program, rng),
        holdings=holdings(db, program, rng),
        top_members=top_members(db, program, rng),
        transfers=transfers_between_members(db, program, rng),
        today=today_of(db, rng.tz),
    )


@dataclass(frozen=True)
class Table:
    """A table as the CSV exports write it: a header and rows of plain values (instants in
    the program's zone, with their offset)."""

    header: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]


TABLES: dict[str, str] = {
    "summary": "every figure, this period and the previous one",
    "flows": "flows, points outstanding and rates per day or week",
    "actions": "points issued by action",
    "versions": "points issued by rule version",
    "locations": "points issued by location",
    "categories": "purchases' points by category",
    "campaigns": "purchases' points by campaign",
    "age": "points outstanding by age",
    "expiry": "points outstanding by expiry month",
    "top_members": "top members by points issued",
    "transfers": "transfer volume",
}


def percent_value(value: Fraction | None) -> float | None:
    """A percentage with one decimal, for CSV cells and the page."""
    return None if value is None else round(float(value), 1)


def _local(at: dt.datetime | None, tz: str) -> dt.datetime | None:
    return None if at is None else at.astimezone(zone(tz))


def _compared_cells(c: Compared) -> tuple[Any, ...]:
    return (c.value, c.previous, percent_value(c.change))


_COMPARED = ("this_period", "previous_period", "change_percent")


def _summary(r: Report) -> Table:
    """Every figure of the page's summary; a rate's change is in percentage points."""
    f, t, tz = r.flows, r.transfers, r.range.tz
    before = r.range.previous()
    rows: list[tuple[Any, ...]] = [
        ("period_start", _local(r.range.start, tz), _local(before.start, tz), None, None),
        ("period_end", _local(r.range.end, tz), _local(before.end, tz), None, None),
    ]
    counted = [(name, f.compared(name)) for name in (*FLOWS, "fees")]
    counted += [
        ("outstanding_at_end", f.compared("closing")),
        ("liability_minor_at_end", f.compared("liability_minor")),
        ("active_members", f.compared("active_members")),
        ("new_members", f.compared("new_members")),
    ]
    counted += [
        (f"transfer_{name}", getattr(t, name))
        for name in ("count", "points", "fees", "senders", "recipients")
    ]
    rows += [(name, *_compared_cells(c), None) for name, c in counted]
    for name in ("breakage", "redemption"):
        rate = f.rate(name)
        rows.append(
            (
                f"{name}_rate_percent",
                percent_value(rate.value.percent),
                percent_value(rate.previous.percent),
                None,
                percent_value(rate.change),
            )
        )
    return Table(("figure", *_COMPARED, "change_percentage_points"), tuple(rows))


def _flows_table(r: Report) -> Table:
    tz = r.range.tz
    header = (
        "period",
        "from",
        "until",
        *FLOWS,
        "fees",
        "outstanding_at_end",
        "liability_minor_at_end",
        "breakage_to_date_percent",
        "redemption_to_date_percent",
        "new_members",
    )
    rows = []
    for name, period in (("this", r.flows.current), ("previous", r.flows.previous)):
        for b in period.buckets:
            rows.append(
                (
                    name,
                    _local(local_midnight(b.first, tz), tz),
                    _local(local_midnight(b.last + dt.timedelta(days=1), tz), tz),
                    *(getattr(b.flows, flow) for flow in (*FLOWS, "fees")),
                    b.outstanding,
                    b.liability_minor,
                    percent_value(b.to_date.breakage.percent),
                    percent_value(b.to_date.redemption.percent),
                    b.new_members,
                )
            )
    return Table(header, tuple(rows))


def _issued_table(key: str, rows: Sequence[IssuedRow]) -> Table:
    header = (
        key,
        *(f"{name}_{c}" for name in ("points", "earns", "capped") for c in _COMPARED),
    )
    return Table(
        header,
        tuple(
            (
                r.key,
                *_compared_cells(r.points),
                *_compared_cells(r.earns),
                *_compared_cells(r.capped),
            )
            for r in rows
        ),
    )


def _parts_table(key: str, rows: Sequence[PartRow]) -> Table:
    header = (
        key,
        *(f"{name}_{c}" for name in ("points", "bonus") for c in _COMPARED),
        "share_percent",
    )
    return Table(
        header,
        tuple(
            (
                r.key,
                *_compared_cells(r.points),
                *_compared_cells(r.bonus),
                percent_value(r.share.percent),
            )
            for r in rows
        ),
    )


def _versions_table(r: Report) -> Table:
    exponent = minor_unit_exponent(r.program.currency)
    tz = r.range.tz
    base = _issued_table("version", r.breakdowns.versions)
    rows = []
    for v, cells in zip(r.breakdowns.versions, base.rows, strict=True):
        now, before = v.per_unit(exponent)
        rows.append(
            (
                *cells,
                _local(v.effective_from, tz),
                _local(v.published_at, tz),
                v.published_by,
                v.base_ratio,
                None if now is None else round(float(now), 4),
                None if before is None else round(float(before), 4),
            )
        )
    header = (
        *base.header,
        "effective_from",
        "published_at",
        "published_by",
        "base_ratio",
        "purchase_points_per_unit_this_period",
        "purchase_points_per_unit_previous_period",
    )
    return Table(header, tuple(rows))


def _age_table(r: Report) -> Table:
    return Table(
        ("age", *_COMPARED),
        tuple((label, *_compared_cells(c)) for label, c in r.holdings.age_rows()),
    )


def _expiry_table(r: Report) -> Table:
    return Table(
        ("last_usable_month", *_COMPARED),
        tuple((label, *_compared_cells(c)) for label, c in r.holdings.month_rows()),
    )


def _top_table(r: Report) -> Table:
    return Table(
        ("member", *_COMPARED, "share_percent"),
        tuple(
            (m.member, *_compared_cells(m.issued), percent_value(m.share.percent))
            for m in r.top_members
        ),
    )


def _transfers_table(r: Report) -> Table:
    t = r.transfers
    return Table(
        ("figure", *_COMPARED),
        tuple(
            (name, *_compared_cells(getattr(t, name)))
            for name in ("count", "points", "fees", "senders", "recipients")
        ),
    )


_TABLES: dict[str, Callable[[Report], Table]] = {
    "summary": _summary,
    "flows": _flows_table,
    "actions": lambda r: _issued_table("action", r.breakdowns.actions),
    "versions": _versions_table,
    "locations": lambda r: _issued_table("location", r.breakdowns.locations),
    "categories": lambda r: _parts_table("category", r.breakdowns.categories),
    "campaigns": lambda r: _parts_table("campaign", r.breakdowns.campaign_points),
    "age": _age_table,
    "expiry": _expiry_table,
    "top_members": _top_table,
    "transfers": _transfers_table,
}


def table(r: Report, name: str) -> Table:
    """The table ``name`` of :data:`TABLES`; :class:`InvalidInput` for another name."""
    build = _TABLES.get(name)
    if build is None:
        raise InvalidInput(
            f"no analytics table {name!r:.40}; the tables are {', '.join(TABLES)}", field="table"
        )
    return build(r)
