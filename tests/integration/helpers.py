"""Helpers shared by the integration tests of the service layer."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import func, select, text

from loyalty import services as s
from loyalty.db import Database
from loyalty.db.models import Base, Lot, Member, Program
from loyalty.services.results import EarnResult

PROGRAM = "shop"
TZ = "Asia/Shanghai"  # UTC+8, no DST: the test clock's 10:00 UTC is 18:00 local

Call = Callable[[Database], Any]


def deferred(service: Callable[..., Any], **defaults: Any) -> Callable[..., Call]:
    """A builder of calls to ``service`` with ``defaults``, for tables of inputs to try.

    ``lines`` replaces ``amount_minor``: an order is priced from one or the other.
    """

    def build(**overrides: Any) -> Call:
        values = defaults | overrides
        if "lines" in overrides:
            values.pop("amount_minor", None)
        return lambda db: service(db, **values)

    return build


def row_counts(db: Database) -> dict[str, int]:
    """How many rows every table of the schema holds."""
    with db.read() as conn:
        return {
            t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in Base.metadata.sorted_tables
        }


def make_program(
    db: Database,
    code: str = PROGRAM,
    *,
    rules: Mapping[str, Any] | None = None,
    currency: str = "CNY",
    timezone: str = TZ,
    **settings: Any,
) -> None:
    """Create a program (CNY, Asia/Shanghai by default)."""
    s.create_program(
        db,
        code=code,
        name=code.title(),
        currency=currency,
        timezone=timezone,
        rules=rules,
        **settings,
    )


def enrol(db: Database, *members: str, program: str = PROGRAM) -> None:
    """Enrol members by external id."""
    for member in members:
        s.enrol_member(db, program=program, external_id=member)


def earn(
    db: Database,
    member: str,
    order_id: str,
    amount_minor: int,
    *,
    program: str = PROGRAM,
    currency: str = "CNY",
    **kw: Any,
) -> EarnResult:
    """Earn for a purchase of ``amount_minor`` (CNY fen by default)."""
    return s.earn_purchase(
        db,
        program=program,
        member=member,
        order_id=order_id,
        currency=currency,
        amount_minor=amount_minor,
        **kw,
    )


def hold(
    db: Database,
    member: str,
    order_id: str,
    points: int,
    *,
    total: int = 1_000_000,
    program: str = PROGRAM,
    **kw: Any,
) -> Any:
    """Hold ``points`` for an order (a big order by default, so the share limit is no issue)."""
    return s.hold_points(
        db,
        program=program,
        member=member,
        order_id=order_id,
        points=points,
        order_total_minor=total,
        currency=kw.pop("currency", "CNY"),
        **kw,
    )


def lots_of(db: Database, member: str, program: str = PROGRAM) -> list[Any]:
    """The member's lots, oldest first (typed: datetimes are aware UTC on both backends)."""
    lots, members, programs = Lot.__table__, Member.__table__, Program.__table__
    with db.read() as conn:
        return list(
            conn.execute(
                select(lots)
                .join(members, members.c.id == lots.c.member_id)
                .join(programs, programs.c.id == members.c.program_id)
                .where(members.c.external_id == member, programs.c.code == program)
                .order_by(lots.c.id)
            ).all()
        )


def scalar(db: Database, sql: str, **params: Any) -> Any:
    """One value from raw SQL."""
    with db.read() as conn:
        return conn.execute(text(sql), params).scalar()


def execute(db: Database, sql: str, **params: Any) -> None:
    """Run raw SQL in its own committed transaction."""
    with db.engine.begin() as conn:
        conn.execute(text(sql), params)


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    """An instant given as Asia/Shanghai wall time, in UTC."""
    from zoneinfo import ZoneInfo

    return dt.datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(TZ)).astimezone(dt.UTC)


earn_call = deferred(
    s.earn_purchase,
    program=PROGRAM,
    member="alice",
    order_id="new-order",
    currency="CNY",
    amount_minor=1_000,
)
"""``earn_call(**overrides)``: an earn of alice's to try with one argument changed."""

hold_call = deferred(
    s.hold_points,
    program=PROGRAM,
    member="alice",
    order_id="new-hold",
    points=10,
    order_total_minor=10_000,
    currency="CNY",
)
"""``hold_call(**overrides)``: a hold of alice's to try with one argument changed."""
