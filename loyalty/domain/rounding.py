"""Rounding policies for turning exact fractional points into whole points."""

from __future__ import annotations

import enum
import math
from fractions import Fraction


class Rounding(enum.StrEnum):
    """How fractional points become whole points. ``floor`` never mints a fraction."""

    FLOOR = "floor"
    HALF_UP = "half_up"
    HALF_EVEN = "half_even"


def round_points(exact: Fraction, policy: Rounding) -> int:
    """Round a non-negative exact number of points by ``policy``."""
    if exact < 0:
        raise ValueError("points to round must not be negative")
    if policy is Rounding.FLOOR:
        return math.floor(exact)
    if policy is Rounding.HALF_UP:
        return math.floor(exact + Fraction(1, 2))
    return round(exact)  # Fraction.__round__ rounds half to even
