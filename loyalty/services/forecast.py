"""The expiry forecast: what rolling expiry and year-end clearing will take, when, from whom.

Reads only. A lot ends once: at the first clearing whose cutoff it was earned before, unless
its rolling expiry comes first (a tie goes to expiry: at ``expires_at`` a lot is already
unusable). The clearings counted are those whose moment falls in the horizon, plus the last
one that passed when it is not done yet (with the cutoff it started with). What is overdue (an
expiry or a clearing that passed before its sweep ran) is due now. Points are a lot's available
and pending points; held and frozen ones are in flight and reported apart.

The sums are SQL aggregates, grouped by member and instant, so the forecast of a million lots
reads one row per member and instant; :func:`points_due` sums them per member and local date
for the reminders. Dates people read are last usable days (:func:`last_usable_day`): points
that end at the end of 30 April (the local midnight that starts 1 May) show 30 April.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, Select, and_, case, func, not_, or_, select

from loyalty.db.tables import clearings, lots, members
from loyalty.domain.calendar import (
    clearing_cutoff,
    clearing_moment,
    clearing_moments,
    end_of_local_day_after,
    last_usable_day,
)
from loyalty.domain.checks import require_days
from loyalty.services.clearing import scheduled_year
from loyalty.services.queries import _member
from loyalty.services.results import Forecast, ForecastDay, ForecastItem
from loyalty.services.uow import Target
from loyalty.services.writes import program_row


@dataclass(frozen=True)
class _Clearing:
    """A clearing the forecast counts: its moment and its cutoff."""

    moment: dt.datetime
    cutoff: dt.datetime


@dataclass(frozen=True)
class Ending:
    """Lots of one member that end at one instant (with the member's id and email)."""

    member_id: int
    email: str | None
    item: ForecastItem


@dataclass(frozen=True)
class DuePoints:
    """A member's points whose last usable local day is ``due_on``: what one reminder is about.

    ``due_at`` is the earliest instant at which some of them end and ``kind`` how they end.
    """

    member_id: int
    member: str
    email: str | None
    due_on: str
    due_at: dt.datetime
    kind: str
    points: int
    lots: int


def forecast(db: Target, *, program: str, days: int = 90, member: str | None = None) -> Forecast:
    """What will expire or be cleared in the next ``days`` days, of one member or all."""
    require_days("days", days, minimum=0)
    now = db.clock.now()
    until = now + dt.timedelta(days=days)
    with db.read() as conn:
        prog = program_row(conn, program)
        member_id = None if member is None else int(_member(conn, program, member).id)
        found = endings(conn, prog, now=now, until=until, member_id=member_id)
    items = tuple(e.item for e in found)
    return Forecast(
        program=prog.code,
        timezone=prog.timezone,
        from_at=now,
        until_at=until,
        items=items,
        days=_per_day(items, prog.timezone),
        points=sum(i.points for i in items),
        lots=sum(i.lots for i in items),
    )


def points_due(conn: Connection, prog: Row[Any], *, now: dt.datetime, days: int) -> list[DuePoints]:
    """Per member and last usable day, the points not ended yet whose last usable day is at
    most ``days`` local calendar days after today (in the program's time zone).

    A lot usable until 15 April is due on 31 March with 15 days, whatever the hour it ends
    and whenever the reminder job runs that day.
    """
    until = end_of_local_day_after(now, prog.timezone, days)
    groups: dict[tuple[int, str], list[Ending]] = defaultdict(list)
    for e in endings(conn, prog, now=now, until=until):
        if e.item.due_at > now and e.item.points > 0:
            groups[e.member_id, _local_day(e.item.due_at, prog.timezone)].append(e)
    return [_due_on(day, group) for (_member_id, day), group in groups.items()]


def endings(
    conn: Connection,
    prog: Row[Any],
    *,
    now: dt.datetime,
    until: dt.datetime,
    member_id: int | None = None,
) -> list[Ending]:
    """Every member's lots that end up to ``until``, grouped by member, instant and kind."""
    ahead = _clearings(conn, prog, now, until)
    scope = [lots.c.program_id == prog.id, lots.c.expired_at.is_(None)]
    if member_id is not None:
        scope.append(lots.c.member_id == member_id)
    cleared_first = [_cleared_at(c, ahead[k - 1] if k else None) for k, c in enumerate(ahead)]
    # overdue expiries (NULL here) are all due now: one group per member
    due = case((lots.c.expires_at > now, lots.c.expires_at)).label("due")
    expiring = _grouped(due).where(*scope, lots.c.expires_at <= until)
    if cleared_first:
        expiring = expiring.where(not_(or_(*cleared_first)))
    tz = prog.timezone
    found = _endings(conn.execute(expiring).all(), "expire", now, tz)
    for clearing, condition in zip(ahead, cleared_first, strict=True):
        rows = conn.execute(_grouped().where(*scope, condition)).all()
        found.extend(_endings(rows, "clear", now, tz, at=clearing.moment))
    return sorted(found, key=lambda e: (e.item.due_at, e.item.kind, e.item.member))


def _clearings(
    conn: Connection, prog: Row[Any], now: dt.datetime, until: dt.datetime
) -> list[_Clearing]:
    """The program's clearings to count: the last passed one if not done, those ahead."""
    if prog.clearing_policy == "none":
        return []
    tz, month, day = prog.timezone, prog.clearing_month, prog.clearing_day
    last = scheduled_year(prog, now)
    ahead = [year for year, _moment in clearing_moments(now, until, tz, month, day)]
    years = ahead if last is None else [last, *ahead]
    stored = {
        r.year: r
        for r in conn.execute(
            select(clearings).where(clearings.c.program_id == prog.id, clearings.c.year.in_(years))
        )
    }
    found = []
    for year in years:
        row = stored.get(year)
        if row is not None:
            if row.status != "done":
                found.append(_Clearing(row.moment, row.cutoff))
            continue
        moment = clearing_moment(year, month, day, tz)
        cutoff = clearing_cutoff(moment, tz, prog.clearing_policy, prog.clearing_keep_months)
        found.append(_Clearing(moment, cutoff))
    return found


def _cleared_at(clearing: _Clearing, previous: _Clearing | None) -> ColumnElement[bool]:
    """The lots this clearing ends: earned before its cutoff (and not before the previous
    one's), and not expiring by its moment."""
    earned = lots.c.earned_at < clearing.cutoff
    if previous is not None:
        earned = and_(earned, lots.c.earned_at >= previous.cutoff)
    return and_(earned, or_(lots.c.expires_at.is_(None), lots.c.expires_at > clearing.moment))


def _grouped(*keys: Any) -> Select[Any]:
    """Lots joined to their members, summed per member (and ``keys``)."""
    columns = (members.c.id, members.c.external_id, members.c.email)
    return (
        select(
            *columns,
            *keys,
            func.count(lots.c.id).label("lots"),
            func.sum(lots.c.available + lots.c.pending).label("points"),
            func.sum(lots.c.held + lots.c.frozen).label("in_flight"),
        )
        .join(members, members.c.id == lots.c.member_id)
        .group_by(*columns, *keys)
    )


def _endings(
    rows: Iterable[Row[Any]],
    kind: str,
    now: dt.datetime,
    tz: str,
    *,
    at: dt.datetime | None = None,
) -> list[Ending]:
    """SQL groups as endings, at ``at`` or at their ``due`` column; what passed is due now."""
    found = []
    for r in rows:
        due = at if at is not None else r.due
        due_at = now if due is None else max(due, now)
        item = ForecastItem(
            member=r.external_id,
            due_at=due_at,
            last_day=last_usable_day(due_at if due is None else due, tz),
            kind=kind,
            points=int(r.points),
            lots=int(r.lots),
            in_flight=int(r.in_flight),
        )
        found.append(Ending(member_id=r.id, email=r.email, item=item))
    return found


@functools.lru_cache(maxsize=4096)
def _local_day(at: dt.datetime, tz: str) -> str:
    """The last usable local day of points ending at ``at`` (``YYYY-MM-DD``); endings share
    few instants (a moment, a month's end)."""
    return last_usable_day(at, tz).isoformat()


def _per_day(items: Iterable[ForecastItem], tz: str) -> tuple[ForecastDay, ...]:
    """Totals per local date of the program's zone, in date order."""
    sums: dict[str, list[int]] = {}
    for i in items:
        day = sums.setdefault(_local_day(i.due_at, tz), [0, 0, 0])
        day[0 if i.kind == "expire" else 1] += i.points
        day[2] += i.lots
    return tuple(ForecastDay(day, *sums[day]) for day in sorted(sums))


def _due_on(day: str, group: list[Ending]) -> DuePoints:
    """One member's endings on one local date, as one reminder's figures."""
    first = min(group, key=lambda e: e.item.due_at)
    return DuePoints(
        member_id=first.member_id,
        member=first.item.member,
        email=first.email,
        due_on=day,
        due_at=first.item.due_at,
        kind=first.item.kind,
        points=sum(e.item.points for e in group),
        lots=sum(e.item.lots for e in group),
    )
