"""The dashboard's figures: read-only SQL aggregates over the ledger, in the program's days.

Per-day flows are summed per UTC hour in SQL (one row per hour and kind, whatever the
number of entries) and put on the program's local dates in Python, which is exact for every
zone whose offset is a whole number of hours.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, case, distinct, func, select

from loyalty.db.database import Database
from loyalty.db.tables import entries, members
from loyalty.domain.calendar import zone
from loyalty.domain.money import minor_unit_exponent
from loyalty.services import forecast
from loyalty.services.ledger import program_row
from loyalty.services.results import ProgramInfo

ISSUE_KINDS = ("earn", "earn_pending", "adjust_grant")
FLOWS = ("issued", "redeemed", "expired", "cleared")


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
    """A member and the points they earned in the period."""

    member: str
    email: str | None
    earned: int
    available: int


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


def _hour(db: Database) -> ColumnElement[Any]:
    if db.is_sqlite:
        return func.strftime("%Y-%m-%d %H", entries.c.created_at)
    return func.to_char(func.timezone("UTC", entries.c.created_at), "YYYY-MM-DD HH24")


def daily_flows(db: Database, program: ProgramInfo, *, days: int = 90) -> tuple[DayFlows, ...]:
    """One :class:`DayFlows` per local date of the last ``days`` days (today included)."""
    tz = zone(program.timezone)
    now = db.clock.now()
    today = now.astimezone(tz).date()
    first = today - dt.timedelta(days=days - 1)
    since = dt.datetime.combine(first, dt.time(), tz).astimezone(dt.UTC)
    all_deltas = (
        entries.c.available_delta
        + entries.c.pending_delta
        + entries.c.held_delta
        + entries.c.frozen_delta
    )
    sums = {
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
        "expired": func.sum(case((entries.c.kind == "expire", -all_deltas), else_=0)),
        "cleared": func.sum(case((entries.c.kind == "clear", -all_deltas), else_=0)),
    }
    hour = _hour(db).label("hour")
    with db.read() as conn:
        prog = program_row(conn, program.code)
        rows = conn.execute(
            select(hour, *(v.label(k) for k, v in sums.items()))
            .where(
                entries.c.program_id == prog.id,
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


def dashboard(db: Database, program: ProgramInfo, *, days: int = 90, top: int = 10) -> Dashboard:
    """The dashboard's figures for ``program`` now."""
    flows = daily_flows(db, program, days=days)
    now = db.clock.now()
    since = now - dt.timedelta(days=days)
    outstanding_col = members.c.available + members.c.pending + members.c.held + members.c.frozen
    earned = func.sum(entries.c.available_delta + entries.c.pending_delta).label("earned")
    with db.read() as conn:
        prog = program_row(conn, program.code)
        totals = conn.execute(
            select(
                func.coalesce(func.sum(outstanding_col), 0).label("outstanding"),
                func.coalesce(func.sum(members.c.debt), 0).label("debt"),
                func.count().label("total"),
                func.coalesce(func.sum(case((members.c.status == "active", 1), else_=0)), 0).label(
                    "active"
                ),
            ).where(members.c.program_id == prog.id)
        ).one()
        recent = conn.execute(
            select(func.count(distinct(entries.c.member_id))).where(
                entries.c.program_id == prog.id, entries.c.created_at >= since
            )
        ).scalar_one()
        top_rows = conn.execute(
            select(members.c.external_id, members.c.email, members.c.available, earned)
            .join(members, members.c.id == entries.c.member_id)
            .where(
                entries.c.program_id == prog.id,
                entries.c.created_at >= since,
                entries.c.kind.in_(ISSUE_KINDS),
            )
            .group_by(members.c.id, members.c.external_id, members.c.email, members.c.available)
            .order_by(earned.desc(), members.c.external_id)
            .limit(top)
        ).all()
    ahead = forecast(db, program=program.code, days=90)
    expiring = {
        window: sum(i.points for i in ahead.items if i.due_at <= now + dt.timedelta(days=window))
        for window in (30, 60, 90)
    }
    outstanding = int(totals.outstanding)
    exponent = minor_unit_exponent(program.currency)
    return Dashboard(
        days=flows,
        outstanding=outstanding,
        liability_minor=outstanding * 10**exponent // program.points_per_unit,
        debt=int(totals.debt),
        expiring=expiring,
        members_active=int(totals.active),
        members_total=int(totals.total),
        members_recent=int(recent),
        top_earners=tuple(
            TopEarner(r.external_id, r.email, int(r.earned or 0), int(r.available))
            for r in top_rows
        ),
    )
