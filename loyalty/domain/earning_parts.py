"""Where an order's points came from: its share per category and campaign.

An order's points are computed exactly per line and rounded once on the total
(:func:`loyalty.domain.rules.purchase_points`), then caps may cut them. To say how many of the
points *granted* came from each category and each campaign, the exact line points are summed
per ``(category, campaign)`` and the granted total is split in proportion by the largest
remainder method, so the parts are whole points that add up to exactly what was granted. A
part's *bonus* is the share of its points that its campaign's multiplier added
(``points × (1 - 1/multiplier)``, rounded down).

An order with no categorised line and no campaign has no parts: analytics counts its points
as "no category, no campaign".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from loyalty.domain.rules import OrderLine, RuleSet


@dataclass(frozen=True)
class PartWeight:
    """The exact points of an order's lines of one category under one campaign."""

    category: str | None
    campaign: str | None
    exact: Fraction
    bonus_share: Fraction  # the part of ``exact`` the campaign's multiplier added, as a share


@dataclass(frozen=True)
class EarningPart:
    """Whole points of one earning from one category under one campaign."""

    category: str | None
    campaign: str | None
    points: int
    bonus: int


def part_weights(
    rules: RuleSet, lines: Sequence[OrderLine], *, at: dt.datetime, tz: str
) -> tuple[PartWeight, ...]:
    """The exact points of ``lines`` grouped by category and winning campaign, in the order
    each group first appears; empty when no line has a category and no campaign applies."""
    campaigns = [rules.campaign_for(at, tz, line.category) for line in lines]
    if all(line.category is None for line in lines) and not any(campaigns):
        return ()  # the common case, decided before any exact arithmetic
    groups: dict[tuple[str | None, str | None], tuple[Fraction, Fraction]] = {}
    for line, campaign in zip(lines, campaigns, strict=True):
        multiplier = Fraction(1) if campaign is None else campaign.multiplier
        exact = line.amount_minor * rules.ratio_for(line.sku, line.category) * multiplier
        share = Fraction(0) if campaign is None else 1 - 1 / multiplier
        key = (line.category, None if campaign is None else campaign.name)
        total, bonus = groups.get(key, (Fraction(0), Fraction(0)))
        groups[key] = (total + exact, bonus + exact * share)
    return tuple(
        PartWeight(category, campaign, exact, bonus / exact if exact else Fraction(0))
        for (category, campaign), (exact, bonus) in groups.items()
    )


def split_points(granted: int, weights: Sequence[PartWeight]) -> tuple[EarningPart, ...]:
    """``granted`` split over ``weights`` in proportion to their exact points, by largest
    remainder (earlier parts first among equal remainders); parts of 0 points are left out."""
    total = sum((w.exact for w in weights), Fraction(0))
    if granted <= 0 or total <= 0:
        return ()
    shares = [granted * w.exact / total for w in weights]
    floors = [int(s) for s in shares]
    left = granted - sum(floors)
    by_remainder = sorted(range(len(shares)), key=lambda i: (-(shares[i] - floors[i]), i))
    for i in by_remainder[:left]:
        floors[i] += 1
    return tuple(
        EarningPart(w.category, w.campaign, points, int(points * w.bonus_share))
        for w, points in zip(weights, floors, strict=True)
        if points
    )
