"""Moves: the changes one ledger operation makes to lots' buckets and a member's balances.

A move is pure data. Services compute them (with the domain's allocation and reversal
arithmetic) and the ledger posts them: one entry per move, the lots and the member updated
by the same deltas.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

BUCKETS = ("available", "pending", "held", "frozen")

# Entry kinds that create a lot (one per lot, of the lot's full size).
LOT_CREDIT_KINDS = ("earn", "earn_pending", "transfer_in", "adjust_grant")
# Every entry kind, by what writes it.
ENTRY_KINDS = (
    *LOT_CREDIT_KINDS,
    "debt_repay",  # a new lot pays off the member's debt first
    "mature",
    "hold",
    "capture",
    "release",
    "expire",
    "clear",
    "expire_returned",  # points put back into a lot that had expired meanwhile
    "transfer_out",
    "transfer_fee",
    "adjust_deduct",
    *(
        f"{kind}_{step}"
        for kind in ("refund", "dispute")
        for step in ("freeze", "reverse", "release", "deduct", "debt")
    ),
    "refund_return",  # points redeemed on a refunded order, back into their lots
    "reward_spend",  # points spent on a reward of the catalog
    "reward_return",  # points of a cancelled reward redemption, back into their lots
)


@dataclass(frozen=True)
class Move:
    """A change to one lot's buckets (or, with ``lot_id`` None, to the member only)."""

    kind: str
    lot_id: int | None
    available: int = 0
    pending: int = 0
    held: int = 0
    frozen: int = 0
    debt: int = 0
    new_lot: bool = False  # the lot was inserted with these buckets already


def debt_repayment(
    debt: int, lot_id: int, credited: int, *, bucket: str = "available"
) -> list[Move]:
    """The move that lets a new lot of ``credited`` points pay off the member's ``debt``.

    Debt (points a refund could not take back) is repaid by the next credits, from the new
    lot's ``bucket`` (``available``, or ``pending`` for pending points).
    """
    repaid = min(debt, credited)
    if repaid <= 0:
        return []
    if bucket == "pending":
        return [Move("debt_repay", lot_id, debt=-repaid, pending=-repaid)]
    return [Move("debt_repay", lot_id, debt=-repaid, available=-repaid)]


def sums_by(keyed: Iterable[tuple[int, Move]], fields: Sequence[str]) -> dict[int, dict[str, int]]:
    """The moves' ``fields`` summed per key (a lot or member id), keys in first-seen order."""
    sums: dict[int, dict[str, int]] = {}
    for key, move in keyed:
        total = sums.setdefault(key, dict.fromkeys(fields, 0))
        for name in fields:
            total[name] += getattr(move, name)
    return sums
