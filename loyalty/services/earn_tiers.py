"""What tiers do to one earn: the multiplier of the member's tier, and the upgrade the earn
brings.

The measure an upgrade weighs must include every earn committed before this one, so it is
never read in the member's locking statement (on PostgreSQL that statement's snapshot can
predate the commit of the earn that held the lock before it). It is read after the lock: on
PostgreSQL inside the credit's own statement (:func:`measure_column`, no extra round trip),
elsewhere with a statement of its own.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol, cast

from sqlalchemy import Connection, bindparam, func, literal_column, select

from loyalty.db.tables import programs, tier_qualifying
from loyalty.domain.tiers import SOURCES, TierRules
from loyalty.services.tiers import InForce, TierState, catch_up, tier_cache, tier_version_at
from loyalty.services.uow import Target
from loyalty.services.writes import LockedMember

# Read with the member lock: the tier version in force (``NULL``: the program has no tiers).
TIER_VERSION = {"tier_version_id": tier_version_at(programs.c.id)}


class _TieredMember(LockedMember, Protocol):
    tier_version_id: int | None


_MEASURE_COLUMNS: dict[tuple[str, tuple[str, ...]], tuple[int, Any]] = {}


def measure_column(rules: TierRules, member: Any) -> tuple[int, Any]:
    """``(variant, subquery)``: the measure of ``member`` (a bind parameter) counted from
    ``:measured_since`` under ``rules``, one variant per measure kind and counted sources."""
    sources = rules.counted_sources()
    assert set(sources) <= set(SOURCES)
    key = (rules.measure, sources)
    found = _MEASURE_COLUMNS.get(key)
    if found is None:
        q = tier_qualifying
        column = q.c.points if rules.measure == "points" else q.c.money_minor
        found = (
            len(_MEASURE_COLUMNS),
            select(func.coalesce(func.sum(column), 0))
            .where(
                q.c.member_id == member,
                # not "tier_since": a bind named like a member column would become a SET of
                # the credit statement's member UPDATE
                q.c.counted_at >= bindparam("measured_since", type_=q.c.counted_at.type),
                # the sources are this module's constants: rendered in the SQL, so the
                # statement needs no expanding parameter rendered anew at every earn
                q.c.source.in_([literal_column(f"'{source}'") for source in sources]),
            )
            .scalar_subquery(),
        )
        _MEASURE_COLUMNS[key] = found
    return found


@dataclass(frozen=True)
class TierPlan:
    """The tier side of one earn: the tier version in force and the member's tier state
    (``tiers`` ``None``: the program has no tiers)."""

    tiers: InForce | None
    state: TierState | None = None

    @property
    def rank(self) -> int:
        if self.tiers is None or self.state is None:
            return 0
        rules = self.tiers.rules
        return rules.rank(self.state.tier) if rules.knows(self.state.tier) else 0

    @property
    def tier(self) -> str | None:
        return None if self.tiers is None else self.tiers.rules.tiers[self.rank].code

    @property
    def multiplier(self) -> Fraction:
        if self.tiers is None or self.state is None:
            return Fraction(1)
        return self.tiers.rules.multiplier(self.state.tier)

    def measure_wanted(self, adds: int) -> TierRules | None:
        """The rules whose measure this earn must read: only when it adds to the measure and
        a tier lies above."""
        if self.tiers is None or adds <= 0 or self.rank == len(self.tiers.rules.tiers) - 1:
            return None
        return self.tiers.rules

    def upgrade_to(self, measure: int) -> int | None:
        """The rank ``measure`` (after the earn) moves the member up to, if higher."""
        if self.tiers is None:
            return None
        supported = self.tiers.rules.supported(measure)
        return supported if supported > self.rank else None


def tier_plan(db: Target, conn: Connection, row: LockedMember, now: dt.datetime) -> TierPlan:
    """The member's tier for this earn, after any evaluation that is due."""
    version_id = cast(_TieredMember, row).tier_version_id
    if version_id is None:
        return TierPlan(None)
    version, rules = tier_cache(db).get(conn, version_id)
    state = TierState.of(row)
    if state.tier_evaluate_at is not None and state.tier_evaluate_at <= now:
        state = catch_up(conn, db, state, row.program_timezone, now)
    return TierPlan(InForce(version_id, version, rules), state)


def contribution(rules: TierRules, granted: int, money: int) -> int:
    """What an earn adds to the measure of ``rules``."""
    return granted if rules.measure == "points" else money
