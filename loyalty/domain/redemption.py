"""Redemption arithmetic: what points are worth in money, and the limits on using them."""

from __future__ import annotations

import math
from dataclasses import dataclass

from loyalty.errors import RedemptionLimit


@dataclass(frozen=True)
class RedemptionPolicy:
    """How points pay for orders.

    ``points_per_unit`` points are worth one major currency unit (default 100 points = 1 yuan).
    At most ``max_share_bp`` basis points of an order may be paid with points; a redemption
    needs at least ``min_points`` points and an order of at least ``min_order_minor``.
    """

    points_per_unit: int = 100
    max_share_bp: int = 10_000
    min_points: int = 1
    min_order_minor: int = 0


@dataclass(frozen=True)
class Redemption:
    """An allowed redemption: the points taken and the discount they give, in minor units."""

    points: int
    discount_minor: int


def value_minor(points: int, policy: RedemptionPolicy, exponent: int) -> int:
    """The discount ``points`` are worth, in minor units, rounded down."""
    return int(points * 10**exponent) // policy.points_per_unit


def max_discount_minor(order_total_minor: int, policy: RedemptionPolicy) -> int:
    """The largest share of an order that points may pay, in minor units."""
    return order_total_minor * policy.max_share_bp // 10_000


def _points_step(policy: RedemptionPolicy, exponent: int) -> int:
    """The fewest points worth a whole number of minor units; valid amounts are its multiples."""
    return policy.points_per_unit // math.gcd(policy.points_per_unit, 10**exponent)


def max_redeemable_points(
    order_total_minor: int, available: int, policy: RedemptionPolicy, exponent: int
) -> int:
    """The most points that may pay for this order, given the member's available points."""
    if order_total_minor < policy.min_order_minor:
        return 0
    # The most points whose value fits in the order's share, rounded down to a whole amount.
    share_points = max_discount_minor(order_total_minor, policy) * policy.points_per_unit
    step = _points_step(policy, exponent)
    points = min(available, share_points // 10**exponent) // step * step
    return points if points > 0 and points >= policy.min_points else 0


def check_redemption(
    points: int, order_total_minor: int, policy: RedemptionPolicy, exponent: int
) -> Redemption:
    """Validate a redemption of ``points`` against an order; raise :class:`RedemptionLimit`."""
    if order_total_minor < policy.min_order_minor:
        raise RedemptionLimit(
            f"points can be used on orders of at least {policy.min_order_minor} minor units",
            min_order_minor=policy.min_order_minor,
        )
    if points < policy.min_points:
        raise RedemptionLimit(
            f"at least {policy.min_points} points must be used at once",
            min_points=policy.min_points,
        )
    discount = value_minor(points, policy, exponent)
    if discount * policy.points_per_unit != points * 10**exponent:
        step = _points_step(policy, exponent)
        below = points // step * step
        such_as = f"{below} or {below + step}" if below else f"{step}"
        raise RedemptionLimit(
            f"{points} points is not a whole amount of money; use a multiple of {step} "
            f"such as {such_as}",
            points=points,
            step=step,
        )
    limit = max_discount_minor(order_total_minor, policy)
    if discount > limit:
        raise RedemptionLimit(
            f"points may pay at most {policy.max_share_bp / 100:g}% of the order "
            f"({limit} minor units)",
            max_discount_minor=limit,
            max_share_bp=policy.max_share_bp,
        )
    return Redemption(points=points, discount_minor=discount)
