"""A member's lots as the spending services read them: the spendable ones in spending order,
and a hold with the lots it took points from.

Redemption, transfers, adjustments and reversals all spend or give back points lot by lot;
they read the lots here, so none of them depends on another for it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, func, or_, select

from loyalty.db.tables import entries, holds, lots
from loyalty.domain.allocation import SPENDING_ORDER, LotView, require_enough, take_in_order

_SPENDABLE = and_(
    lots.c.member_id == bindparam("member_id"),
    lots.c.available > 0,
    or_(lots.c.expires_at.is_(None), lots.c.expires_at > bindparam("now")),
)
SPENDABLE_LOTS = select(lots.c.id, lots.c.available, lots.c.expires_at, lots.c.earned_at).where(
    _SPENDABLE
)
# The same lots in spending order (``loyalty.domain.allocation.SPENDING_ORDER``), each with
# the points of the lots before it, keeping only the lots a spend of ``:points`` reaches.
_SPENDING_ORDER = [
    lots.c[part.field].asc().nulls_last() if part.none_last else lots.c[part.field].asc()
    for part in SPENDING_ORDER
]
_QUEUE = (
    select(
        lots.c.id,
        lots.c.available,
        (func.sum(lots.c.available).over(order_by=_SPENDING_ORDER) - lots.c.available).label(
            "before"
        ),
    )
    .where(_SPENDABLE)
    .subquery()
)
LOTS_TO_SPEND = (
    select(_QUEUE.c.id, _QUEUE.c.available)
    .where(_QUEUE.c.before < bindparam("points"))
    .order_by(_QUEUE.c.before)
)


def spendable_lots(conn: Connection, member_id: int, now: dt.datetime) -> list[LotView]:
    """The member's lots with available points that have not expired by ``now``."""
    rows = conn.execute(SPENDABLE_LOTS, {"member_id": member_id, "now": now})
    return [LotView(r.id, r.available, r.expires_at, r.earned_at) for r in rows]


def take_spendable(
    conn: Connection, member_id: int, now: dt.datetime, points: int
) -> list[tuple[int, int]]:
    """:func:`~loyalty.domain.allocation.allocate` over :func:`spendable_lots`, ordered and
    cut in SQL: only the lots the spend reaches come back."""
    rows = conn.execute(LOTS_TO_SPEND, {"member_id": member_id, "now": now, "points": points})
    return require_enough(take_in_order(((r.id, r.available) for r in rows), points), points)


# A hold with the lots it holds points in (one row per lot, in the order they were taken).
_HOLD_WITH_LOTS = (
    select(
        holds,
        entries.c.lot_id.label("held_lot_id"),
        entries.c.held_delta.label("held_points"),
        lots.c.expired_at.label("held_lot_expired_at"),
    )
    .select_from(
        # the hold's operation id as a parameter (it never changes), so the plan looks its
        # entries up by that id whatever the statistics say about holds
        holds.outerjoin(
            entries,
            and_(entries.c.operation_id == bindparam("operation_id"), entries.c.kind == "hold"),
        ).outerjoin(lots, lots.c.id == entries.c.lot_id)
    )
    .where(holds.c.id == bindparam("hold_id"))
    .order_by(entries.c.id)
)


@dataclass(frozen=True)
class HeldLot:
    """Points a hold keeps in one lot, and whether that lot has expired meanwhile."""

    lot_id: int
    points: int
    lot_expired: bool


def hold_with_lots(
    conn: Connection, hold_id: int, operation_id: int
) -> tuple[Row[Any], list[HeldLot]]:
    """A hold (read now: call it with the member locked) and the lots it holds points in.

    ``operation_id`` is the hold's own operation (the one that took the points).
    """
    rows = conn.execute(_HOLD_WITH_LOTS, {"hold_id": hold_id, "operation_id": operation_id}).all()
    held = [
        HeldLot(r.held_lot_id, r.held_points, r.held_lot_expired_at is not None)
        for r in rows
        if r.held_lot_id is not None
    ]
    return rows[0], held
