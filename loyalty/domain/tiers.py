"""Member tiers (会员等级) as plain rules: the tier ladder of one tier version, the qualifying
measure's window, tier periods and when they end, and what an evaluation decides.

A :class:`TierRules` is one immutable version of a program's tiers, stored as a JSON-able
dict (``to_dict``/``from_dict``) like earning rules. Its ladder is ordered by threshold, the
first tier's threshold is 0 (every member holds at least it).

**The measure.** Tiers qualify on points earned (never the balance) or on money spent, summed
from *qualifying rows*: one per earn (its granted points, the money paid other than with
points), one per refund or dispute that went through (minus what it reversed, dated at the
order's earn, so a reversed order counts as never earned), and one per adjustment or received
transfer (counted only if the version says so). ``measure(t)`` sums the rows counted in the
window ending at ``t``: a **rolling** window of ``months`` calendar months before ``t``, or the
**calendar** block of ``months`` months (aligned to 1 January, in the program's time zone)
that ``t`` closes.

**Tier periods.** A member above the lowest tier holds it for a period that ends at a local
midnight: ``months`` after the upgrade, at the anniversaries of the join date, or at fixed
calendar boundaries. The evaluation is due ``grace_days`` local days after the period ends;
it weighs the better of the measure at the period end and at the due moment, so the grace is
a chance to requalify. It keeps the tier, moves down by one tier or to what the measure
supports (per version), and never below a tier lock.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from loyalty.domain.calendar import add_months, local_midnight, zone
from loyalty.domain.checks import MAX_MINOR_UNITS, MAX_POINTS
from loyalty.domain.rounding import Rounding, round_points
from loyalty.domain.rules import format_ratio, parse_ratio
from loyalty.errors import InvalidRule

MEASURES = ("points", "money")
WINDOWS = ("rolling", "calendar")
ANCHORS = ("upgrade", "join", "calendar")
DOWNGRADES = ("one", "to_measure")
ON_REVERSAL = ("at_once", "next_evaluation")
# Where qualifying rows come from; earns and their reversals always count.
ALWAYS_COUNTED = ("purchase", "action", "refund", "dispute")
OPTIONAL_SOURCES = {"adjustment": "count_adjustments", "transfer": "count_transfers"}
SOURCES = (*ALWAYS_COUNTED, *OPTIONAL_SOURCES)
# Why a member's tier changed (the history's ``reason``).
REASONS = (
    "earn",
    "refund",
    "dispute",
    "adjustment",
    "transfer",
    "evaluation",
    "placement",
    "manual",
    "lock",
)
MAX_TIERS = 20
MAX_MULTIPLIER = Fraction(100)
_CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
CALENDAR_MONTHS = (1, 2, 3, 4, 6, 12)


@dataclass(frozen=True)
class Tier:
    """One rung: its code (stable across versions), name, threshold on the measure, earn
    multiplier and the benefits the member page lists."""

    code: str
    name: str
    threshold: int
    multiplier: Fraction = Fraction(1)
    benefits: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "threshold": self.threshold,
            "multiplier": format_ratio(self.multiplier),
            "benefits": list(self.benefits),
        }


@dataclass(frozen=True)
class TierRules:
    """One version of a program's tiers: the ladder and how members climb and keep it."""

    tiers: tuple[Tier, ...]
    measure: str = "points"
    count_adjustments: bool = False
    count_transfers: bool = False
    window: str = "rolling"
    window_months: int = 12
    anchor: str = "upgrade"
    period_months: int = 12
    grace_days: int = 0
    downgrade: str = "one"
    on_reversal: str = "next_evaluation"
    _ranks: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_ranks", {t.code: i for i, t in enumerate(self.tiers)})

    # --- the ladder ---------------------------------------------------------------------

    @property
    def lowest(self) -> Tier:
        return self.tiers[0]

    def rank(self, code: str | None) -> int:
        """The rank of tier ``code`` (0 = lowest); ``None`` (never placed) is the lowest."""
        if code is None:
            return 0
        try:
            return self._ranks[code]
        except KeyError:
            raise InvalidRule(
                f"no tier {code!r:.40} in this version (tiers: {', '.join(self._ranks)})",
                tier=code,
            ) from None

    def knows(self, code: str | None) -> bool:
        return code is None or code in self._ranks

    def tier(self, code: str | None) -> Tier:
        return self.tiers[self.rank(code)]

    def supported(self, measure: int) -> int:
        """The rank of the highest tier whose threshold ``measure`` reaches."""
        rank = 0
        for i, t in enumerate(self.tiers):
            if measure >= t.threshold:
                rank = i
        return rank

    def above(self, rank: int) -> Tier | None:
        return self.tiers[rank + 1] if rank + 1 < len(self.tiers) else None

    def counted_sources(self) -> tuple[str, ...]:
        """The qualifying rows' sources this version counts."""
        optional = tuple(s for s, flag in OPTIONAL_SOURCES.items() if getattr(self, flag))
        return (*ALWAYS_COUNTED, *optional)

    def multiplier(self, code: str | None) -> Fraction:
        return self.tier(code).multiplier if self.knows(code) else Fraction(1)

    # --- windows and periods ------------------------------------------------------------

    def window_since(self, until: dt.datetime, tz: str) -> dt.datetime:
        """Start (UTC) of the qualifying window that ends at ``until``: rows counted in
        ``[since, until)`` make the measure."""
        if self.window == "rolling":
            local = until.astimezone(zone(tz))
            day = add_months(local.date(), -self.window_months)
            start = dt.datetime.combine(day, local.time().replace(tzinfo=None))
            return start.replace(tzinfo=zone(tz)).astimezone(dt.UTC)
        closing = (until - dt.timedelta(microseconds=1)).astimezone(zone(tz)).date()
        return local_midnight(calendar_block_start(closing, self.window_months), tz)

    def period_end(
        self,
        *,
        tz: str,
        after: dt.datetime,
        tier_since: dt.datetime,
        joined: dt.datetime,
    ) -> dt.datetime:
        """The first end (UTC, a local midnight) of a tier period after ``after``.

        Periods run ``period_months`` from the upgrade (``tier_since``), from the join date,
        or in calendar blocks aligned to 1 January.
        """
        if self.anchor == "calendar":
            local = after.astimezone(zone(tz)).date()
            origin = dt.date(local.year - 1, 1, 1)
        else:
            start = tier_since if self.anchor == "upgrade" else joined
            origin = start.astimezone(zone(tz)).date()
        return next_boundary(origin, self.period_months, after, tz)

    def due(self, period_end: dt.datetime, tz: str) -> dt.datetime:
        """When the evaluation of a period ending at ``period_end`` is due (after the grace)."""
        if not self.grace_days:
            return period_end
        day = period_end.astimezone(zone(tz)).date() + dt.timedelta(days=self.grace_days)
        return local_midnight(day, tz)

    # --- decisions ----------------------------------------------------------------------

    def evaluate(self, current: int, measure: int, lock: int | None = None) -> int:
        """The rank an evaluation leaves: the supported tier when it is not lower (an
        evaluation may also move up), else one down or down to the supported tier; never
        below a lock."""
        supported = self.supported(measure)
        if supported >= current:
            new = supported
        elif self.downgrade == "one":
            new = max(current - 1, supported)
        else:
            new = supported
        return max(new, lock) if lock is not None else new

    def after_reversal(self, current: int, measure: int, lock: int | None = None) -> int:
        """The rank right after a reversal: with ``at_once``, the supported tier when lower
        (never below a lock); otherwise unchanged until the evaluation."""
        if self.on_reversal != "at_once":
            return current
        new = min(current, self.supported(measure))
        return max(new, lock) if lock is not None else new

    def earn_points(self, points: int, code: str | None, rounding: Rounding) -> int:
        """``points`` times the tier's multiplier, rounded by the program's policy."""
        multiplier = self.multiplier(code)
        if multiplier == 1:
            return points
        return round_points(points * multiplier, rounding)

    # --- storage ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "tiers": [t.to_dict() for t in self.tiers],
            "measure": self.measure,
            "count_adjustments": self.count_adjustments,
            "count_transfers": self.count_transfers,
            "window": self.window,
            "window_months": self.window_months,
            "anchor": self.anchor,
            "period_months": self.period_months,
            "grace_days": self.grace_days,
            "downgrade": self.downgrade,
            "on_reversal": self.on_reversal,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TierRules:
        """Validated tier rules from their dict form (unknown settings are refused)."""
        if not isinstance(data, Mapping):
            raise InvalidRule("tier rules must be a mapping")
        known = set(cls.__dataclass_fields__) - {"_ranks"}
        unknown = set(data) - known
        if unknown:
            raise InvalidRule(f"unknown tier settings: {', '.join(sorted(map(str, unknown)))}")
        window = _choice(data, "window", WINDOWS, "rolling")
        anchor = _choice(data, "anchor", ANCHORS, "upgrade")
        rules = cls(
            tiers=_ladder(data.get("tiers"), _choice(data, "measure", MEASURES, "points")),
            measure=_choice(data, "measure", MEASURES, "points"),
            count_adjustments=_flag(data, "count_adjustments"),
            count_transfers=_flag(data, "count_transfers"),
            window=window,
            window_months=_months(data, "window_months", calendar=window == "calendar"),
            anchor=anchor,
            period_months=_months(data, "period_months", calendar=anchor == "calendar"),
            grace_days=_whole(data.get("grace_days", 0), "grace_days", maximum=366),
            downgrade=_choice(data, "downgrade", DOWNGRADES, "one"),
            on_reversal=_choice(data, "on_reversal", ON_REVERSAL, "next_evaluation"),
        )
        return rules


def calendar_block_start(day: dt.date, months: int) -> dt.date:
    """The first day of the ``months``-month block (aligned to 1 January) holding ``day``."""
    return dt.date(day.year, (day.month - 1) // months * months + 1, 1)


def next_boundary(origin: dt.date, months: int, after: dt.datetime, tz: str) -> dt.datetime:
    """The first local midnight of ``origin`` plus a multiple (at least one) of ``months``
    calendar months that lies after ``after`` (counted from ``origin`` each time, so a
    31 January origin gives 28/29 February, then 31 March: no drift)."""
    local = after.astimezone(zone(tz)).date()
    elapsed = (local.year - origin.year) * 12 + (local.month - origin.month)
    k = max(1, elapsed // months)
    while True:
        end = local_midnight(add_months(origin, k * months), tz)
        if end > after:
            return end
        k += 1


def _ladder(value: Any, measure: str) -> tuple[Tier, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise InvalidRule("tiers must be a non-empty list (the lowest first, threshold 0)")
    if len(value) > MAX_TIERS:
        raise InvalidRule(f"a program has at most {MAX_TIERS} tiers, got {len(value)}")
    limit = MAX_POINTS if measure == "points" else MAX_MINOR_UNITS
    ladder = tuple(_tier(i, item, limit) for i, item in enumerate(value))
    if ladder[0].threshold != 0:
        raise InvalidRule(
            f"the lowest tier ({ladder[0].code}) must have threshold 0: every member holds it"
        )
    for lower, higher in itertools.pairwise(ladder):
        if higher.threshold <= lower.threshold:
            raise InvalidRule(
                f"tier {higher.code} needs a threshold above {lower.code}'s "
                f"({lower.threshold}), got {higher.threshold}"
            )
    codes = [t.code for t in ladder]
    if len(set(codes)) != len(codes):
        raise InvalidRule("tier codes must be different from each other")
    return ladder


def _tier(index: int, item: Any, limit: int) -> Tier:
    if not isinstance(item, Mapping):
        raise InvalidRule(f"tiers[{index}] must be a mapping")
    unknown = set(item) - {"code", "name", "threshold", "multiplier", "benefits"}
    if unknown:
        raise InvalidRule(f"unknown settings in tiers[{index}]: {', '.join(sorted(unknown))}")
    code = item.get("code")
    if not isinstance(code, str) or not _CODE.fullmatch(code):
        raise InvalidRule(
            f"tiers[{index}].code must be 1-32 lowercase letters, digits, '-' or '_' "
            f"starting with a letter or digit, got {code!r:.40}"
        )
    name = item.get("name", code)
    if not isinstance(name, str) or not name.strip() or len(name) > 60:
        raise InvalidRule(f"tiers[{index}].name must be 1-60 characters")
    multiplier = parse_ratio(item.get("multiplier", "1"), what=f"tiers[{index}].multiplier")
    if not 1 <= multiplier <= MAX_MULTIPLIER:
        raise InvalidRule(
            f"tiers[{index}].multiplier must be between 1 and {MAX_MULTIPLIER}, got "
            f"{item.get('multiplier')!r:.40}"
        )
    return Tier(
        code=code,
        name=name.strip(),
        threshold=_whole(item.get("threshold"), f"tiers[{index}].threshold", maximum=limit),
        multiplier=multiplier,
        benefits=_benefits(index, item.get("benefits", [])),
    )


def _benefits(index: int, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or len(value) > 20:
        raise InvalidRule(f"tiers[{index}].benefits must be a list of at most 20 texts")
    for text in value:
        if not isinstance(text, str) or not text.strip() or len(text) > 200:
            raise InvalidRule(f"tiers[{index}].benefits must be texts of 1-200 characters")
    return tuple(text.strip() for text in value)


def _choice(data: Mapping[str, Any], name: str, choices: Sequence[str], default: str) -> str:
    value = data.get(name, default)
    if value not in choices:
        raise InvalidRule(f"{name} must be one of {', '.join(choices)}, got {value!r:.40}")
    return str(value)


def _flag(data: Mapping[str, Any], name: str) -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise InvalidRule(f"{name} must be true or false")
    return value


def _whole(value: Any, name: str, *, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise InvalidRule(f"{name} must be a whole number from 0 to {maximum}, got {value!r:.40}")
    return value


def _months(data: Mapping[str, Any], name: str, *, calendar: bool) -> int:
    months = _whole(data.get(name, 12), name, maximum=120)
    if months < 1:
        raise InvalidRule(f"{name} must be at least 1")
    if calendar and months not in CALENDAR_MONTHS:
        allowed = ", ".join(map(str, CALENDAR_MONTHS))
        raise InvalidRule(
            f"{name} of a calendar window or period must divide the year ({allowed}), got {months}"
        )
    return months
