"""What the admin console reads that no other service answers: the dashboard's figures, the
expiry forecast week by week and paged, member search, a member's open lots and what of theirs
expires soon, the Stripe webhook events, the rows of the CSV exports, and a reward's versions
and redemptions per day.

Every function takes a :class:`Database` and returns frozen dataclasses (or plain rows for the
exports, streamed a chunk at a time), so the console's views never build SQL themselves.

Members are listed and exported through one :class:`MemberFilter` (search, filters, sort),
so an export holds exactly what the list shows; every time an export writes is in the
program's zone, with its offset.

The dashboard's per-day flows are summed per UTC hour in SQL (one row per hour and kind,
whatever the number of entries) and put on the program's local dates in Python, which is exact
for every zone whose offset is a whole number of hours.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, Connection, Row, Select, case, distinct, func, or_, select

from loyalty.db.database import Database
from loyalty.db.dialect import utc_hour_label
from loyalty.db.tables import (
    entries,
    lots,
    members,
    operations,
    programs,
    reward_redemptions,
    reward_versions,
    rewards,
    stripe_events,
)
from loyalty.domain.calendar import last_usable_day, zone
from loyalty.domain.checks import MAX_POINTS, require_days, require_int
from loyalty.domain.money import minor_unit_exponent
from loyalty.errors import InvalidInput, MemberNotFound, RewardNotFound
from loyalty.services.forecast import forecast
from loyalty.services.results import ForecastItem, ProgramInfo
from loyalty.services.tiers import tiers_in_force
from loyalty.services.verify import EARN_KINDS
from loyalty.services.writes import program_row

ISSUE_KINDS = ("earn", "earn_pending", "adjust_grant")
FLOWS = ("issued", "redeemed", "expired", "cleared")
EXPIRING_WINDOWS = (30, 60, 90)
MAX_OPEN_LOTS = 200


# --- the programs ----------------------------------------------------------------------------


def first_program_code(db: Database) -> str | None:
    """The first program's code (by code), or None when the database has no program yet."""
    with db.read() as conn:
        code: str | None = conn.execute(select(programs.c.code).order_by(programs.c.code)).scalar()
    return code


# --- the dashboard ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DayFlows:
    """Points issued, redeemed, expired and cleared on one local date."""

    day: str
    issued: int
    redeemed: int
    expired: int
    cleared: int


@dataclass(frozen=True)
class TopEarner:
    """A member, the points they earned in the period (purchases and actions: what lifetime
    earned counts) and the points staff granted them by hand in it (not earned)."""

    member: str
    email: str | None
    earned: int
    available: int
    granted: int = 0


@dataclass(frozen=True)
class MemberTotals:
    """The program's members counted, and the points they hold or owe."""

    outstanding: int
    debt: int
    total: int
    active: int


@dataclass(frozen=True)
class Dashboard:
    """Everything on the dashboard."""

    days: tuple[DayFlows, ...]
    outstanding: int
    liability_minor: int
    debt: int
    expiring: dict[int, int]
    members_active: int
    members_total: int
    members_recent: int
    top_earners: tuple[TopEarner, ...]

    def total(self, flow: str) -> int:
        """The period's total of one flow."""
        return sum(getattr(d, flow) for d in self.days)


_ALL_DELTAS = (
    entries.c.available_delta
    + entries.c.pending_delta
    + entries.c.held_delta
    + entries.c.frozen_delta
)
_FLOW_SUMS: dict[str, ColumnElement[Any]] = {
    "issued": func.sum(
        case(
            (
                entries.c.kind.in_(ISSUE_KINDS),
                entries.c.available_delta + entries.c.pending_delta,
            ),
            else_=0,
        )
    ),
    "redeemed": func.sum(case((entries.c.kind == "capture", -entries.c.held_delta), else_=0)),
    "expired": func.sum(case((entries.c.kind == "expire", -_ALL_DELTAS), else_=0)),
    "cleared": func.sum(case((entries.c.kind == "clear", -_ALL_DELTAS), else_=0)),
}


def daily_flows(db: Database, program: ProgramInfo, *, days: int = 90) -> tuple[DayFlows, ...]:
    """One :class:`DayFlows` per local date of the last ``days`` days (today included)."""
    tz = zone(program.timezone)
    first = db.clock.now().astimezone(tz).date() - dt.timedelta(days=days - 1)
    since = dt.datetime.combine(first, dt.time(), tz).astimezone(dt.UTC)
    with db.read() as conn:
        hour = utc_hour_label(entries.c.created_at).on(conn).label("hour")
        rows = conn.execute(
            select(hour, *(v.label(k) for k, v in _FLOW_SUMS.items()))
            .where(
                entries.c.program_id == program_row(conn, program.code).id,
                entries.c.created_at >= since,
                entries.c.kind.in_((*ISSUE_KINDS, "capture", "expire", "clear")),
            )
            .group_by(hour)
        ).all()
    per_day: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for r in rows:
        instant = dt.datetime.strptime(r.hour, "%Y-%m-%d %H").replace(tzinfo=dt.UTC)
        day = per_day[instant.astimezone(tz).date().isoformat()]
        for i, flow in enumerate(FLOWS):
            day[i] += int(getattr(r, flow) or 0)
    dates = [(first + dt.timedelta(days=n)).isoformat() for n in range(days)]
    return tuple(DayFlows(d, *per_day.get(d, [0, 0, 0, 0])) for d in dates)


def member_totals(db: Database, program: str) -> MemberTotals:
    """Points outstanding (every bucket) and owed, members in all and active ones."""
    outstanding = members.c.available + members.c.pending + members.c.held + members.c.frozen
    active = case((members.c.status == "active", 1), else_=0)
    with db.read() as conn:
        row = conn.execute(
            select(
                func.coalesce(func.sum(outstanding), 0).label("outstanding"),
                func.coalesce(func.sum(members.c.debt), 0).label("debt"),
                func.count().label("total"),
                func.coalesce(func.sum(active), 0).label("active"),
            ).where(members.c.program_id == program_row(conn, program).id)
        ).one()
    return MemberTotals(int(row.outstanding), int(row.debt), int(row.total), int(row.active))


def members_with_entries_since(db: Database, program: str, since: dt.datetime) -> int:
    """How many members have a ledger entry at or after ``since``."""
    with db.read() as conn:
        count = conn.execute(
            select(func.count(distinct(entries.c.member_id))).where(
                entries.c.program_id == program_row(conn, program).id,
                entries.c.created_at >= since,
            )
        ).scalar_one()
    return int(count)


def top_earners(
    db: Database, program: str, since: dt.datetime, *, limit: int = 10
) -> tuple[TopEarner, ...]:
    """The members who earned the most points since ``since``, most first (ties by id).

    Earned is what a member's lifetime earned counts (``earn`` and ``earn_pending`` entries:
    purchases and actions), so a member's figure here never exceeds their lifetime earned;
    manual grants are summed apart and rank no one.
    """
    credited = entries.c.available_delta + entries.c.pending_delta
    earned = func.sum(case((entries.c.kind.in_(EARN_KINDS), credited), else_=0)).label("earned")
    granted = func.sum(case((entries.c.kind == "adjust_grant", credited), else_=0)).label("granted")
    with db.read() as conn:
        rows = conn.execute(
            select(members.c.external_id, members.c.email, members.c.available, earned, granted)
            .join(members, members.c.id == entries.c.member_id)
            .where(
                entries.c.program_id == program_row(conn, program).id,
                entries.c.created_at >= since,
                entries.c.kind.in_((*EARN_KINDS, "adjust_grant")),
            )
            .group_by(members.c.id, members.c.external_id, members.c.email, members.c.available)
            .having(earned > 0)
            .order_by(earned.desc(), members.c.external_id)
            .limit(limit)
        ).all()
    return tuple(
        TopEarner(r.external_id, r.email, int(r.earned), int(r.available), int(r.granted or 0))
        for r in rows
    )


def expiring_totals(db: Database, program: str) -> dict[int, int]:
    """Points that expire or are cleared within 30, 60 and 90 days, per window."""
    now = db.clock.now()
    ahead = forecast(db, program=program, days=max(EXPIRING_WINDOWS))
    return {
        window: sum(i.points for i in ahead.items if i.due_at <= now + dt.timedelta(days=window))
        for window in EXPIRING_WINDOWS
    }


def dashboard(db: Database, program: ProgramInfo, *, days: int = 90, top: int = 10) -> Dashboard:
    """The dashboard's figures for ``program`` now."""
    since = db.clock.now() - dt.timedelta(days=days)
    totals = member_totals(db, program.code)
    exponent = minor_unit_exponent(program.currency)
    return Dashboard(
        days=daily_flows(db, program, days=days),
        outstanding=totals.outstanding,
        liability_minor=totals.outstanding * 10**exponent // program.points_per_unit,
        debt=totals.debt,
        expiring=expiring_totals(db, program.code),
        members_active=totals.active,
        members_total=totals.total,
        members_recent=members_with_entries_since(db, program.code, since),
        top_earners=top_earners(db, program.code, since, limit=top),
    )


# --- the forecast, week by week --------------------------------------------------------------


@dataclass(frozen=True)
class ForecastWeek:
    """Points that expire or are cleared in one week of the forecast: from ``first`` to
    ``last`` (local dates, the last week may be shorter), and the last usable days they fall
    on (the dates the forecast's rows show)."""

    first: dt.date
    last: dt.date
    expiring: int
    clearing: int
    dates: tuple[str, ...]


@dataclass(frozen=True)
class ForecastWeeks:
    """The forecast for the console: its totals, every week of the horizon (empty ones too)
    and one page of its rows that hold points, most points first (``lots`` counts theirs;
    lots spent to nothing still end, but no one loses anything with them)."""

    days: int
    today: dt.date
    points: int
    lots: int
    weeks: tuple[ForecastWeek, ...]
    items: tuple[ForecastItem, ...]
    item_count: int
    page: int
    pages: int
    per_page: int


def forecast_weeks(
    db: Database, program: ProgramInfo, *, days: int, page: int = 1, per_page: int = 50
) -> ForecastWeeks:
    """What will expire or be cleared in the next ``days`` days, week by week from today (the
    program's local date), with page ``page`` of its rows; :class:`InvalidInput` for a page
    past the last."""
    ahead = forecast(db, program=program.code, days=days)
    today = db.clock.now().astimezone(zone(program.timezone)).date()
    horizon = last_usable_day(ahead.until_at, program.timezone)
    count = (horizon - today).days // 7 + 1
    sums = [[0, 0] for _ in range(count)]
    dates: list[list[str]] = [[] for _ in range(count)]
    for day in ahead.days:
        week = min(max((dt.date.fromisoformat(day.day) - today).days // 7, 0), count - 1)
        sums[week][0] += day.expiring
        sums[week][1] += day.clearing
        if day.points:
            dates[week].append(day.day)
    weeks = tuple(
        ForecastWeek(
            first=today + dt.timedelta(days=7 * k),
            last=min(today + dt.timedelta(days=7 * k + 6), horizon),
            expiring=sums[k][0],
            clearing=sums[k][1],
            dates=tuple(dates[k]),
        )
        for k in range(count)
    )
    rows = sorted(
        (i for i in ahead.items if i.points or i.in_flight),
        key=lambda i: (-i.points, i.due_at, i.member, i.kind),
    )
    pages = max(1, -(-len(rows) // per_page))
    if page > pages:
        raise InvalidInput(
            f"page must be from 1 to {pages:,}: the forecast has {len(rows):,} rows", field="page"
        )
    return ForecastWeeks(
        days=days,
        today=today,
        points=ahead.points,
        lots=sum(i.lots for i in rows),
        weeks=weeks,
        items=tuple(rows[(page - 1) * per_page : page * per_page]),
        item_count=len(rows),
        page=page,
        pages=pages,
        per_page=per_page,
    )


# --- members ---------------------------------------------------------------------------------

MemberSort = Literal["external_id", "balance", "lifetime_earned", "last_activity", "joined"]
MEMBER_SORTS: tuple[MemberSort, ...] = (
    "external_id",
    "balance",
    "lifetime_earned",
    "last_activity",
    "joined",
)
MEMBER_FILTER_STATUSES = ("active", "suspended", "closed")
_PHONE_QUERY = re.compile(r"[+0-9 ()\-]*[0-9][+0-9 ()\-]*")


@dataclass(frozen=True)
class MemberFilter:
    """Which members a console list or export shows, and in what order.

    ``query`` is any part of the external id, email, phone or Stripe customer id (any case;
    a phone also matches on its digits alone: ``138 0013`` finds ``+8613800138000``).
    ``tier`` is a tier code (members never placed count as the lowest tier); ``balance_min``
    and ``balance_max`` bound available points; ``idle_days`` keeps members with no ledger
    entry in that many days (never active included), ``active_days`` those with one;
    ``risk_hold`` keeps members with (True) or without (False) a risk hold. The sort is
    stable: ties are in member id order. The console's list and its CSV export build the same
    object from the same query arguments.
    """

    query: str = ""
    status: str | None = None
    tier: str | None = None
    balance_min: int | None = None
    balance_max: int | None = None
    idle_days: int | None = None
    active_days: int | None = None
    risk_hold: bool | None = None
    sort: MemberSort = "external_id"
    descending: bool = False

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in MEMBER_FILTER_STATUSES:
            choices = ", ".join(MEMBER_FILTER_STATUSES)
            raise InvalidInput(f"status must be one of {choices}", field="status")
        if self.sort not in MEMBER_SORTS:
            raise InvalidInput(f"sort must be one of {', '.join(MEMBER_SORTS)}", field="sort")
        for name in ("balance_min", "balance_max"):
            require_int(name, getattr(self, name) or 0, minimum=0, maximum=MAX_POINTS)
        for name in ("idle_days", "active_days"):
            if getattr(self, name) is not None:
                require_days(name, getattr(self, name))
        low, high = self.balance_min, self.balance_max
        if low is not None and high is not None and low > high:
            raise InvalidInput(
                f"the lowest balance ({low:,}) is above the highest ({high:,})",
                field="balance_min",
            )

    def to_record(self) -> dict[str, Any]:
        """The criteria that differ from "every member by external id", for the audit log."""
        blank = MemberFilter()
        return {
            name: getattr(self, name)
            for name in MemberFilter.__dataclass_fields__
            if getattr(self, name) != getattr(blank, name)
        }


@dataclass(frozen=True)
class MemberSummary:
    """A member's identity and balances, as the member list shows them; ``tier`` is None at
    the lowest tier and ``last_activity`` (their latest ledger entry) None before any."""

    external_id: str
    email: str | None
    stripe_customer_id: str | None
    status: str
    available: int
    pending: int
    held: int
    frozen: int
    debt: int
    lifetime_earned: int
    phone: str | None = None
    tier: str | None = None
    risk_hold: bool = False
    created_at: dt.datetime | None = None
    last_activity: dt.datetime | None = None


@dataclass(frozen=True)
class MemberSearch:
    """One page of the members a search matched, and how many matched in all."""

    members: tuple[MemberSummary, ...]
    total: int


@dataclass(frozen=True)
class OpenLot:
    """A lot that still holds points in some bucket."""

    id: int
    points: int
    available: int
    pending: int
    held: int
    frozen: int
    earned_at: dt.datetime
    matures_at: dt.datetime | None
    expires_at: dt.datetime | None


_MEMBER_SUMMARY = [
    members.c[name] for name in MemberSummary.__dataclass_fields__ if name != "last_activity"
]
_OPEN_LOT = [lots.c[name] for name in OpenLot.__dataclass_fields__]


def _member_matches(query: str) -> ColumnElement[bool]:
    """Any part of the external id, email, phone or Stripe customer id is ``query`` (any case;
    ``%`` and ``_`` are characters, not wildcards); a query of digits, spaces, dashes and
    brackets also matches phones on its digits alone."""
    lowered = query.lower()
    matches = [
        func.lower(column).contains(lowered, autoescape=True)
        for column in (
            members.c.external_id,
            members.c.email,
            members.c.phone,
            members.c.stripe_customer_id,
        )
    ]
    if _PHONE_QUERY.fullmatch(query):
        digits = "".join(c for c in query if c.isdigit())
        matches.append(members.c.phone.contains(digits, autoescape=True))  # stored: + and digits
    return or_(*matches)


def _last_activity() -> ColumnElement[Any]:
    """The time of the member's latest ledger entry (None before any): one backward step
    along the ``(member_id, id)`` index per member, whatever the size of the ledger."""
    return (
        select(entries.c.created_at)
        .where(entries.c.member_id == members.c.id)
        .order_by(entries.c.id.desc())
        .limit(1)
        .correlate(members)
        .scalar_subquery()
    )


# Never active sorts and filters as the oldest activity: one expression, one lookup per member.
_NEVER = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class _Scope:
    """What a member query needs besides its criteria, read before it runs: the program's
    lowest tier in force (members never placed, ``tier`` NULL, are in it) and now."""

    lowest_tier: str | None
    now: dt.datetime

    @classmethod
    def read(cls, db: Database, program: str) -> _Scope:
        found = tiers_in_force(db, program=program)
        return cls(None if found is None else found[1].lowest.code, db.clock.now())


def _filtered_members(
    conn: Connection, program: str, criteria: MemberFilter, scope: _Scope
) -> list[ColumnElement[bool]]:
    """The WHERE clauses of ``criteria``."""
    where: list[ColumnElement[bool]] = [members.c.program_id == program_row(conn, program).id]
    if criteria.query:
        where.append(_member_matches(criteria.query))
    if criteria.status is not None:
        where.append(members.c.status == criteria.status)
    if criteria.tier is not None:
        named = members.c.tier == criteria.tier
        lowest = criteria.tier == scope.lowest_tier
        where.append(or_(named, members.c.tier.is_(None)) if lowest else named)
    if criteria.balance_min is not None:
        where.append(members.c.available >= criteria.balance_min)
    if criteria.balance_max is not None:
        where.append(members.c.available <= criteria.balance_max)
    if criteria.risk_hold is not None:
        where.append(members.c.risk_hold.is_(criteria.risk_hold))
    last = func.coalesce(_last_activity(), _NEVER)
    if criteria.idle_days is not None:
        where.append(last < scope.now - dt.timedelta(days=criteria.idle_days))
    if criteria.active_days is not None:
        where.append(last >= scope.now - dt.timedelta(days=criteria.active_days))
    return where


def _member_order(criteria: MemberFilter) -> list[ColumnElement[Any]]:
    """ORDER BY for ``criteria``: its sort (never-active members count as the oldest
    activity), then member id in the same direction, so equal values keep one order."""
    keys: dict[MemberSort, ColumnElement[Any]] = {
        "external_id": members.c.external_id,
        "balance": members.c.available,
        "lifetime_earned": members.c.lifetime_earned,
        "last_activity": func.coalesce(_last_activity(), _NEVER),
        "joined": members.c.created_at,
    }
    order = [keys[criteria.sort], members.c.id]
    return [key.desc() for key in order] if criteria.descending else order


MemberColumns = Callable[[ColumnElement[Any]], Sequence[ColumnElement[Any]]]


def _summary_columns(last: ColumnElement[Any]) -> Sequence[ColumnElement[Any]]:
    return [*_MEMBER_SUMMARY, last.label("last_activity")]


def _member_select(
    conn: Connection,
    program: str,
    criteria: MemberFilter,
    scope: _Scope,
    columns: MemberColumns = _summary_columns,
) -> tuple[Select[Any], Select[Any]]:
    """The members of ``criteria`` in its order (``columns`` of the member and their last
    activity), and the query that counts them.

    Last activity is the time of the member's latest ledger entry (by id: the ledger is
    append-only), looked up per member along ``ix_entries_member_id``; PostgreSQL computes
    the shown column for the rows of the page only. Measured at 100,000 members and a
    million entries, that is about 2.5 times faster than grouping the whole ledger.
    """
    where = _filtered_members(conn, program, criteria, scope)
    count = select(func.count()).select_from(members).where(*where)
    rows = (
        select(*columns(_last_activity()))
        .select_from(members)
        .where(*where)
        .order_by(*_member_order(criteria))
    )
    return rows, count


def search_members(
    db: Database,
    *,
    program: str,
    query: str = "",
    page: int = 1,
    per_page: int = 25,
    criteria: MemberFilter | None = None,
) -> MemberSearch:
    """Page ``page`` (of ``per_page``) of the members ``criteria`` keeps (every member by
    external id without one; ``query`` alone is ``MemberFilter(query=query)``), and how many
    it keeps in all: one query for the page, one to count."""
    criteria = criteria or MemberFilter(query=query)
    scope = _Scope.read(db, program)
    with db.read() as conn:
        select_page, count = _member_select(conn, program, criteria, scope)
        total = conn.execute(count).scalar()
        rows = conn.execute(select_page.limit(per_page).offset((page - 1) * per_page)).all()
    return MemberSearch(tuple(MemberSummary(*r) for r in rows), int(total or 0))


def open_lots(
    db: Database, *, program: str, member: str, limit: int = MAX_OPEN_LOTS
) -> tuple[OpenLot, ...]:
    """The member's lots that still hold points, soonest expiry first (never-expiring last);
    :class:`MemberNotFound` if there is no such member."""
    with db.read() as conn:
        member_id = conn.execute(
            select(members.c.id).where(
                members.c.program_id == program_row(conn, program).id,
                members.c.external_id == member,
            )
        ).scalar()
        if member_id is None:
            raise MemberNotFound(
                f"no member {member!r} in program {program!r}", program=program, member=member
            )
        rows = conn.execute(
            select(*_OPEN_LOT)
            .where(
                lots.c.member_id == member_id,
                (lots.c.available + lots.c.pending + lots.c.held + lots.c.frozen) > 0,
            )
            .order_by(lots.c.expires_at.is_(None), lots.c.expires_at, lots.c.id)
            .limit(limit)
        ).all()
    return tuple(OpenLot(*r) for r in rows)


@dataclass(frozen=True)
class MemberExpiring:
    """A member's points that expire or are cleared within ``days`` days, counted as the
    forecast counts them: available and pending points of each lot, at the moment the lot
    ends (its rolling expiry, or the year-end clearing that takes it first); what is overdue
    is due now. One item per moment and kind, soonest first."""

    days: int
    points: int
    items: tuple[ForecastItem, ...]


def member_expiring(db: Database, *, program: str, member: str, days: int = 90) -> MemberExpiring:
    """The member page's "expiring" figure, read from :func:`forecast` for this one member so
    it always equals the member's lines in the forecast and their share of the dashboard's
    expiring totals; :class:`MemberNotFound` if there is no such member."""
    ahead = forecast(db, program=program, days=days, member=member)
    return MemberExpiring(days=days, points=ahead.points, items=ahead.items)


# --- Stripe webhook events -------------------------------------------------------------------


@dataclass(frozen=True)
class StripeEventSummary:
    """A received Stripe event, as the event list shows it."""

    event_id: str
    type: str
    status: str
    reason: str | None
    customer: str | None
    attempts: int
    received_at: dt.datetime


@dataclass(frozen=True)
class StripeEventDetail(StripeEventSummary):
    """A received Stripe event with what it was about, its outcome and its payload."""

    payment_intent: str | None
    member_ref: str | None
    stripe_created: dt.datetime
    applied_at: dt.datetime | None
    outcome: dict[str, Any] | None
    payload: dict[str, Any]


@dataclass(frozen=True)
class StripeEventList:
    """One page of events a filter matched, how many matched, and the count per status."""

    events: tuple[StripeEventSummary, ...]
    total: int
    counts: Mapping[str, int]


_EVENT_SUMMARY = [stripe_events.c[name] for name in StripeEventSummary.__dataclass_fields__]
_EVENT_DETAIL = [stripe_events.c[name] for name in StripeEventDetail.__dataclass_fields__]


def _event_filters(
    program_id: int, status: str | None, type_prefix: str, query: str
) -> list[ColumnElement[bool]]:
    """Events of the program, in ``status``, of a type starting with ``type_prefix``, whose
    event id, customer, payment intent or member is ``query`` (each only when given)."""
    where = [stripe_events.c.program_id == program_id]
    if status:
        where.append(stripe_events.c.status == status)
    if type_prefix:
        where.append(stripe_events.c.type.startswith(type_prefix, autoescape=True))
    if query:
        where.append(
            or_(
                stripe_events.c.event_id == query,
                stripe_events.c.customer == query,
                stripe_events.c.payment_intent == query,
                stripe_events.c.member_ref == query,
            )
        )
    return where


def _event_counts(conn: Connection, program_id: int) -> dict[str, int]:
    rows = conn.execute(
        select(stripe_events.c.status, func.count())
        .where(stripe_events.c.program_id == program_id)
        .group_by(stripe_events.c.status)
    ).all()
    return {status: int(count) for status, count in rows}


def list_stripe_events(
    db: Database,
    *,
    program: str,
    status: str | None = None,
    type_prefix: str = "",
    query: str = "",
    page: int = 1,
    per_page: int = 50,
) -> StripeEventList:
    """Received Stripe events matching the filters, newest first, page ``page`` of
    ``per_page``, with the program's count of events per status (whatever the filters)."""
    with db.read() as conn:
        program_id = program_row(conn, program).id
        where = _event_filters(program_id, status, type_prefix, query)
        total = conn.execute(select(func.count()).select_from(stripe_events).where(*where)).scalar()
        rows = conn.execute(
            select(*_EVENT_SUMMARY)
            .where(*where)
            .order_by(stripe_events.c.received_at.desc(), stripe_events.c.id.desc())
            .limit(per_page)
            .offset((page - 1) * per_page)
        ).all()
        counts = _event_counts(conn, program_id)
    return StripeEventList(tuple(StripeEventSummary(*r) for r in rows), int(total or 0), counts)


def get_stripe_event(db: Database, *, program: str, event_id: str) -> StripeEventDetail | None:
    """The received Stripe event with this id, or None."""
    with db.read() as conn:
        row = conn.execute(
            select(*_EVENT_DETAIL).where(
                stripe_events.c.program_id == program_row(conn, program).id,
                stripe_events.c.event_id == event_id,
            )
        ).first()
    return None if row is None else StripeEventDetail(*row)


# --- CSV exports -----------------------------------------------------------------------------

ExportName = Literal["members", "lots", "ledger"]
ExportRows = Sequence[Sequence[Any]]

_MEMBER_COLUMNS = (
    *(members.c[name] for name in ("external_id", "email", "phone", "stripe_customer_id")),
    members.c.status,
    members.c.tier,
    *(members.c[name] for name in ("available", "pending", "held", "frozen", "debt")),
    members.c.lifetime_earned,
    members.c.created_at,
)
_LAST_ACTIVITY = "last_activity"  # the members export's last column: their latest entry
_LOT_COLUMNS = (
    lots.c.id,
    members.c.external_id.label("member"),
    *(lots.c[name] for name in ("points", "available", "pending", "held", "frozen")),
    *(lots.c[name] for name in ("earned_at", "matures_at", "expires_at", "expired_at")),
)
_LEDGER_COLUMNS = (
    entries.c.id,
    entries.c.created_at,
    members.c.external_id.label("member"),
    entries.c.kind,
    entries.c.lot_id,
    operations.c.key.label("operation"),
    *(entries.c[f"{bucket}_delta"] for bucket in ("available", "pending", "held", "frozen")),
    entries.c.debt_delta,
)
_LAST_DAY = "last_day"  # the lots export's last column: the last local day a lot can be used

EXPORT_HEADERS: dict[ExportName, tuple[str, ...]] = {
    "members": (*(c.name for c in _MEMBER_COLUMNS), _LAST_ACTIVITY),
    "lots": (*(c.name for c in _LOT_COLUMNS), _LAST_DAY),
    "ledger": tuple(c.name for c in _LEDGER_COLUMNS),
}


def _export_columns(last: ColumnElement[Any]) -> Sequence[ColumnElement[Any]]:
    return [*_MEMBER_COLUMNS, last.label(_LAST_ACTIVITY)]


def _export_query(
    conn: Connection, name: ExportName, program: str, criteria: MemberFilter, scope: _Scope
) -> Select[Any]:
    program_id = program_row(conn, program).id
    if name == "members":
        return _member_select(conn, program, criteria, scope, _export_columns)[0]
    if name == "lots":
        return (
            select(*_LOT_COLUMNS)
            .join(members, members.c.id == lots.c.member_id)
            .where(lots.c.program_id == program_id)
            .order_by(lots.c.id)
        )
    return (
        select(*_LEDGER_COLUMNS)
        .join(members, members.c.id == entries.c.member_id)
        .join(operations, operations.c.id == entries.c.operation_id)
        .where(entries.c.program_id == program_id)
        .order_by(entries.c.id)
    )


def _in_zone(tz: str, *, last_day: bool) -> Callable[[Row[Any]], Sequence[Any]]:
    """A row with its times in the program's zone (aware, so they are written with their
    offset) and, for a lot (``last_day``), the last local day its points can be used (None if
    they never expire)."""
    local = zone(tz)

    def convert(row: Row[Any]) -> Sequence[Any]:
        cells = [v.astimezone(local) if isinstance(v, dt.datetime) else v for v in row]
        if last_day:
            expires_at = row.expires_at
            cells.append(None if expires_at is None else last_usable_day(expires_at, tz))
        return cells

    return convert


def export_rows(
    db: Database,
    *,
    program: str,
    name: ExportName,
    chunk: int = 1000,
    criteria: MemberFilter | None = None,
) -> Iterator[ExportRows]:
    """The rows of an export (columns as in :data:`EXPORT_HEADERS`), ``chunk`` rows at a
    time, read with a server-side cursor so a million rows never sit in memory. Times are in
    the program's zone. The members export holds the members ``criteria`` keeps, in its
    order: what the console's list shows, page after page (every member without one)."""
    scope = _Scope.read(db, program)
    with db.read(streaming=True) as conn:
        prog = program_row(conn, program)
        query = _export_query(conn, name, program, criteria or MemberFilter(), scope)
        result = conn.execution_options(stream_results=True, yield_per=chunk).execute(query)
        convert = _in_zone(prog.timezone, last_day=name == "lots")
        for rows in result.partitions(chunk):
            yield [convert(row) for row in rows]


# --- the reward catalog ----------------------------------------------------------------------


@dataclass(frozen=True)
class RewardVersionRow:
    """One published version of a reward's terms: when it takes effect and who published it."""

    version: int
    effective_from: dt.datetime
    created_by: str
    created_at: dt.datetime
    terms: Mapping[str, Any]


@dataclass(frozen=True)
class RewardDay:
    """Units of a reward redeemed on one local date, and how many of those were cancelled."""

    day: str
    redeemed: int
    cancelled: int


def _reward_id(conn: Connection, program_id: int, code: str) -> int:
    found = conn.execute(
        select(rewards.c.id).where(rewards.c.program_id == program_id, rewards.c.code == code)
    ).scalar()
    if found is None:
        raise RewardNotFound(f"no reward {code!r} in the catalog", reward=code)
    return int(found)


def reward_versions_of(db: Database, *, program: str, reward: str) -> tuple[RewardVersionRow, ...]:
    """Every version of a reward's terms, newest first (scheduled ones included)."""
    with db.read() as conn:
        reward_id = _reward_id(conn, program_row(conn, program).id, reward)
        rows = conn.execute(
            select(
                reward_versions.c.version,
                reward_versions.c.effective_from,
                reward_versions.c.created_by,
                reward_versions.c.created_at,
                reward_versions.c.terms,
            )
            .where(reward_versions.c.reward_id == reward_id)
            .order_by(reward_versions.c.version.desc())
        ).all()
    return tuple(RewardVersionRow(*r) for r in rows)


def reward_daily_redemptions(
    db: Database, program: ProgramInfo, *, reward: str, days: int = 30
) -> tuple[RewardDay, ...]:
    """One :class:`RewardDay` per local date of the last ``days`` days (today included):
    units redeemed that day (prizes won in draws included) and, of those, units since
    cancelled. Summed per UTC hour in SQL, like :func:`daily_flows`."""
    tz = zone(program.timezone)
    first = db.clock.now().astimezone(tz).date() - dt.timedelta(days=days - 1)
    since = dt.datetime.combine(first, dt.time(), tz).astimezone(dt.UTC)
    quantity = reward_redemptions.c.quantity
    with db.read() as conn:
        reward_id = _reward_id(conn, program_row(conn, program.code).id, reward)
        hour = utc_hour_label(reward_redemptions.c.created_at).on(conn).label("hour")
        rows = conn.execute(
            select(
                hour,
                func.sum(quantity).label("redeemed"),
                func.sum(
                    case((reward_redemptions.c.status == "cancelled", quantity), else_=0)
                ).label("cancelled"),
            )
            .where(
                reward_redemptions.c.reward_id == reward_id,
                reward_redemptions.c.created_at >= since,
            )
            .group_by(hour)
        ).all()
    per_day: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        instant = dt.datetime.strptime(r.hour, "%Y-%m-%d %H").replace(tzinfo=dt.UTC)
        day = per_day[instant.astimezone(tz).date().isoformat()]
        day[0] += int(r.redeemed or 0)
        day[1] += int(r.cancelled or 0)
    dates = [(first + dt.timedelta(days=n)).isoformat() for n in range(days)]
    return tuple(RewardDay(d, *per_day.get(d, [0, 0])) for d in dates)
