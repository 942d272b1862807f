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
"""

from __future__ import annotations

from collections.abc import Sequence

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
