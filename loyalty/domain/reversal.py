"""The arithmetic of refunds and disputes: which share of an order's points each one takes back.

An order paid ``refundable`` in money and was granted ``granted`` points. Refunds (and lost
disputes) take back points in proportion to the money they return, measured cumulatively:
after refunds totalling ``c``, the order has given back ``granted * c // refundable`` points
(floor, so never more than was granted), and exactly ``granted`` once ``c`` reaches
``refundable``, whatever the rounding of each partial refund. A refund that fails gives its
points back and stops counting, so a later refund takes up what it left.

The share a refund freezes when it opens is provisional: it is measured against the order's
earlier refunds that still count, pending ones included, and some of those may fail later.
When a refund goes through, its share is settled again against the order's refunds that have
gone through before it (:func:`settled_points`), so the points taken back for an order always
total the cumulative share of the money of its refunds that went through, whatever the order
in which they opened, failed and went through. Settling moves points from the end of a freeze
first (:func:`take_last`).

The points redeemed on the order come back the same way when refunds succeed.

The moves of settling are computed here too: a freeze as :class:`FrozenSlice` pieces, a
share that shrinks (:func:`shrink_share`) gives its last frozen points back
(:func:`release_moves`) and reverses the rest (:func:`reverse_moves`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace

from loyalty.domain.moves import Move
from loyalty.errors import InvalidAmount


def cumulative_share(points: int, part: int, whole: int) -> int:
    """``points * part / whole``, rounded down: the share of ``points`` that ``part`` stands for."""
    if whole <= 0:
        raise InvalidAmount("the order has no refundable amount", whole=whole)
    return points * min(part, whole) // whole


def reversal_points(
    *, granted: int, refundable: int, refunded_before: int, amount: int, reversed_before: int
) -> int:
    """Points a new refund of ``amount`` takes back.

    ``refunded_before`` is the money of the order's earlier refunds that have not failed, and
    ``reversed_before`` the points they take back. The total never exceeds the cumulative
    share of the refunded money, so it never exceeds ``granted`` and equals it once the
    whole order is refunded.
    """
    if refunded_before + amount > refundable:
        raise InvalidAmount(
            f"refunds would total {refunded_before + amount}, more than the {refundable} paid "
            f"({refundable - refunded_before} can still be refunded)",
            refundable=refundable,
            refunded=refunded_before,
            amount=amount,
        )
    target = cumulative_share(granted, refunded_before + amount, refundable)
    return max(0, target - reversed_before)


def settled_points(
    *, granted: int, refundable: int, settled_before: int, amount: int, reversed_before: int
) -> int:
    """Points a refund of ``amount`` takes back for good when it goes through.

    ``settled_before`` is the money of the order's other refunds (and lost disputes) that have
    already gone through, and ``reversed_before`` the points they took back. The refund takes
    what the cumulative share of the settled money grows by: ``granted * (settled_before +
    amount) // refundable`` less ``reversed_before``, never less than zero. Settled one after
    the other, the refunds that go through take back exactly the cumulative share of their
    money, in whatever order they go through, and the refunds that fail count for nothing.
    """
    target = cumulative_share(granted, settled_before + amount, refundable)
    return max(0, target - reversed_before)


def take_last(parts: Sequence[int], points: int) -> list[int]:
    """How many of ``points`` come from each of ``parts``, taking from the last part first.

    ``parts`` are the sizes of the pieces of a freeze in the order they were taken; the answer
    has one number per part (zero for those left whole). At most ``sum(parts)`` are taken.
    """
    taken = [0] * len(parts)
    still = points
    for index in range(len(parts) - 1, -1, -1):
        if still <= 0:
            break
        taken[index] = min(parts[index], still)
        still -= taken[index]
    return taken


def return_slices(
    taken: Sequence[tuple[int, int]], already_returned: int, now_returned: int
) -> list[tuple[int, int]]:
    """Which lots get redeemed points back: ``(lot_id, points)`` pairs.

    ``taken`` is what the redemption took from each lot, in the order it took them. Points go
    back to the lots taken last first (those that expire last), continuing after the
    ``already_returned`` points earlier refunds gave back.
    """
    slices: list[tuple[int, int]] = []
    skip, give = already_returned, now_returned
    for lot_id, points in reversed(taken):
        if give <= 0:
            break
        passed = min(skip, points)
        skip -= passed
        back = min(points - passed, give)
        if back > 0:
            slices.append((lot_id, back))
            give -= back
    return slices


@dataclass(frozen=True)
class FrozenSlice:
    """Points a reversal holds frozen on one lot, taken from its available and pending points."""

    lot_id: int
    available: int
    pending: int
    matures_at: dt.datetime | None
    expired_at: dt.datetime | None
    # The lot's pending points are held by risk control (no maturity date) and its member is
    # still on hold: pending points given back stay pending, held until a person releases them.
    held: bool = False

    @property
    def points(self) -> int:
        return self.available + self.pending

    def part(self, points: int, *, last: bool) -> FrozenSlice:
        """``points`` of the slice: its last ones (pending first) or its first (available first)."""
        if last:
            pending = min(self.pending, points)
            return replace(self, available=points - pending, pending=pending)
        available = min(self.available, points)
        return replace(self, available=available, pending=points - available)


def split_last(
    slices: Sequence[FrozenSlice], points: int
) -> tuple[list[FrozenSlice], list[FrozenSlice]]:
    """``slices`` without their last ``points`` points, and those points (the last first)."""
    taken = take_last([s.points for s in slices], points)
    kept = [s.part(s.points - t, last=False) for s, t in zip(slices, taken, strict=True)]
    given = [s.part(t, last=True) for s, t in zip(slices, taken, strict=True) if t]
    return [s for s in kept if s.points], given[::-1]


@dataclass(frozen=True)
class Share:
    """A reversal's settled share: its figures, and the moves that reverse its frozen points
    (and give back those it no longer needs)."""

    points: int
    frozen: int
    lapsed: int
    missing: int
    moves: list[Move]
    deducted: int = 0  # of the missing points, those already taken from the order's lot


def shrink_share(
    share: Share,
    own: Sequence[FrozenSlice],
    points: int,
    *,
    release_kind: str,
    reverse_kind: str,
    now: dt.datetime,
) -> Share:
    """A smaller share of ``points``: fewer missing points, then frozen points back to their
    lots (the last frozen first); only a share smaller than what had lapsed counts fewer
    lapsed points. ``own`` is what the reversal holds frozen now, in the order it froze it."""
    excess = share.points - points
    unmissed = min(share.missing, excess)
    kept, given = split_last(own, excess - unmissed)
    released = sum(s.points for s in given)
    return Share(
        points=points,
        frozen=share.frozen - released,
        lapsed=share.lapsed - (excess - unmissed - released),
        missing=share.missing - unmissed,
        moves=release_moves(release_kind, given, now) + reverse_moves(reverse_kind, kept),
    )


def reverse_moves(entry_kind: str, slices: Sequence[FrozenSlice]) -> list[Move]:
    """Moves taking frozen points back for good."""
    return [Move(entry_kind, s.lot_id, frozen=-s.points) for s in slices]


def release_moves(entry_kind: str, slices: Sequence[FrozenSlice], now: dt.datetime) -> list[Move]:
    """Moves giving frozen points back: pending ones to pending while the lot is not mature
    or is held by risk control for a member still on hold; into a lot that expired
    meanwhile, they expire again at once."""
    moves: list[Move] = []
    for s in slices:
        expired = s.expired_at is not None
        maturing = s.matures_at is not None and s.matures_at > now
        still_pending = (maturing or s.held) and not expired
        pending = s.pending if still_pending else 0
        available = s.points - pending
        moves.append(
            Move(
                entry_kind,
                s.lot_id,
                frozen=-s.points,
                available=available,
                pending=pending,
            )
        )
        if expired:
            moves.append(Move("expire_returned", s.lot_id, available=-available))
    return moves
