"""Which lots pay for a spend: soonest-expiring first, then the oldest (FEFO).

The spending order is stated once, as data (:data:`SPENDING_ORDER`): Python sorts by it
(:func:`spending_order`) and the redemption service derives its SQL ``ORDER BY`` from it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from loyalty.errors import InsufficientPoints


@dataclass(frozen=True)
class SortedBy:
    """One part of a sort: a field of :class:`LotView` (a column of ``lots``), ascending;
    with ``none_last``, a lot without a value (one that never expires) comes after all."""

    field: str
    none_last: bool = False


SPENDING_ORDER = (SortedBy("expires_at", none_last=True), SortedBy("earned_at"), SortedBy("id"))


@dataclass(frozen=True)
class LotView:
    """What allocation needs to know about a lot."""

    id: int
    available: int
    expires_at: dt.datetime | None
    earned_at: dt.datetime


def spending_order(lot: LotView) -> tuple[Any, ...]:
    """Sort key of :data:`SPENDING_ORDER`: lots that expire sooner first, never-expiring
    last, then oldest, then id."""
    key: list[Any] = []
    for part in SPENDING_ORDER:
        value = getattr(lot, part.field)
        key.extend((value is None, value) if part.none_last else (value,))
    return tuple(key)


def take_in_order(lots: Iterable[tuple[int, int]], points: int) -> list[tuple[int, int]]:
    """Take up to ``points`` from ``(lot_id, available)`` pairs already in spending order.

    Returns ``(lot_id, points_taken)`` pairs; less than ``points`` in all when the lots hold
    less.
    """
    taken: list[tuple[int, int]] = []
    still = points
    for lot_id, available in lots:
        if still <= 0:
            break
        take = min(available, still)
        if take > 0:
            taken.append((lot_id, take))
            still -= take
    return taken


def allocate_up_to(lots: Iterable[LotView], points: int) -> list[tuple[int, int]]:
    """Take up to ``points`` from ``lots`` in spending order: ``(lot_id, points_taken)`` pairs.

    Takes less than ``points`` (all there is) when the lots hold less.
    """
    return take_in_order(
        ((lot.id, lot.available) for lot in sorted(lots, key=spending_order)), points
    )


def require_enough(taken: list[tuple[int, int]], points: int) -> list[tuple[int, int]]:
    """``taken`` if it adds up to ``points``, else :class:`InsufficientPoints`."""
    have = sum(take for _lot, take in taken)
    if have < points:
        raise InsufficientPoints(
            f"the member has {have} available points, {points} are needed",
            available=have,
            requested=points,
        )
    return taken


def allocate(lots: Iterable[LotView], points: int) -> list[tuple[int, int]]:
    """Take ``points`` from ``lots`` in spending order: a list of ``(lot_id, points_taken)``.

    Raises :class:`InsufficientPoints` when the lots hold less than ``points``.
    """
    return require_enough(allocate_up_to(lots, points), points)
