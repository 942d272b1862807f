"""Frozen result types of tiers: versions, a member's progress and history, the evaluation
sweep, the forecast and the preview of draft tiers."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from loyalty.services.results import Record


@dataclass(frozen=True)
class TierVersionInfo(Record):
    """A published tier version (its ``rules`` as :meth:`TierRules.to_dict` gives them)."""

    program: str
    version: int
    effective_from_at: dt.datetime
    rules: dict[str, Any]


@dataclass(frozen=True)
class TierChangeInfo(Record):
    """One entry of a member's tier history (``from_tier`` of a member's first entry is the
    lowest tier: members start there).

    ``reason`` is ``earn``, ``refund``, ``dispute``, ``adjustment``, ``transfer``,
    ``evaluation`` (written even when the tier stays: ``from_tier == to_tier``),
    ``placement`` (:func:`place_members`), ``manual`` or ``lock``. ``measure`` is the
    qualifying measure the decision used; ``due_at`` the evaluation's due moment;
    ``evaluate_at`` the member's next evaluation after the change. ``reference`` names the
    order (or the action) of an ``earn`` change.
    """

    member: str
    from_tier: str | None
    to_tier: str | None
    reason: str
    measure: int
    tier_version: int
    created_at: dt.datetime
    due_at: dt.datetime | None = None
    evaluate_at: dt.datetime | None = None
    lock: str | None = None
    locked_until_at: dt.datetime | None = None
    actor: str | None = None
    note: str | None = None
    reference: str | None = None
    replayed: bool = False


@dataclass(frozen=True)
class TierProgress(Record):
    """Where a member stands: the tier, the measure, what the next tier needs, what keeping
    this tier needs by its evaluation, and when that is.

    ``measure`` is the qualifying measure now (``measure_kind`` ``points`` or ``money`` in
    minor units). ``to_next_tier`` is what the member still needs for ``next_tier``
    (``None`` at the top). ``to_keep_tier`` is what the member still needs, counted in the
    window that closes at the evaluation, to keep the tier then (0 when already enough;
    ``None`` at the lowest tier, which is never lost). ``evaluate_at`` is that evaluation.
    ``tiers_enabled`` is false when the program has no tiers (every other field is then
    empty).
    """

    member: str
    tiers_enabled: bool
    tier: str | None = None
    tier_name: str | None = None
    tier_since_at: dt.datetime | None = None
    measure_kind: str = "points"
    measure: int = 0
    next_tier: str | None = None
    next_tier_name: str | None = None
    next_threshold: int | None = None
    to_next_tier: int | None = None
    to_keep_tier: int | None = None
    keep_threshold: int | None = None
    period_end_at: dt.datetime | None = None
    evaluate_at: dt.datetime | None = None
    lock: str | None = None
    locked_until_at: dt.datetime | None = None
    multiplier: str = "1"
    benefits: list[str] = field(default_factory=list)
    tier_version: int | None = None


@dataclass(frozen=True)
class TierSweepResult(Record):
    """What an evaluation sweep did: evaluations written, members moved down, kept and up."""

    evaluated: int = 0
    down: int = 0
    kept: int = 0
    up: int = 0
    batches: int = 0


@dataclass(frozen=True)
class TierCount(Record):
    """How many members hold (or would hold) one tier."""

    tier: str
    name: str
    threshold: int
    members: int


@dataclass(frozen=True)
class TierForecast(Record):
    """The next evaluations if nobody earns more: per tier, members holding it, and how many
    would move ``up``, ``down`` or ``keep``, for evaluations due until ``until_at``."""

    program: str
    tier_version: int
    until_at: dt.datetime
    holding: list[TierCount]
    up: int
    down: int
    keep: int
    moves: dict[str, dict[str, int]]  # from tier -> to tier -> members
