"""Tier changes made by people, audited: publishing and cancelling tier versions, manual tier
changes and locks. Each runs the tier service and writes its audit entry in one unit of work,
so the change and its record commit together (the console calls these)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from loyalty.db.database import Database
from loyalty.domain.checks import require_text
from loyalty.domain.tiers import TierRules
from loyalty.services.audit import audit
from loyalty.services.tier_results import TierChangeInfo, TierSweepResult, TierVersionInfo
from loyalty.services.tier_sweep import place_members
from loyalty.services.tiers import cancel_tiers, publish_tiers, set_member_tier, tiers_in_force
from loyalty.services.uow import Target, UnitOfWork, run_in


def publish_tiers_audited(
    db: Target,
    *,
    program: str,
    rules: TierRules | Mapping[str, Any],
    actor: str,
    effective_from: dt.datetime | None = None,
) -> TierVersionInfo:
    """Publish a tier version (:func:`~loyalty.services.tiers.publish_tiers`) and audit it:
    the tiers in force before and the new version."""
    actor = require_text("actor", actor, max_length=120)
    return run_in(db, lambda uow: _publish(uow, program, rules, actor, effective_from))


def _publish(
    uow: UnitOfWork,
    program: str,
    rules: TierRules | Mapping[str, Any],
    actor: str,
    effective_from: dt.datetime | None,
) -> TierVersionInfo:
    current = tiers_in_force(uow, program=program)
    published = publish_tiers(
        uow, program=program, rules=rules, effective_from=effective_from, created_by=actor
    )
    audit(
        uow,
        actor=actor,
        action="tiers.publish",
        target=f"program {program} tiers v{published.version}",
        program=program,
        before=None if current is None else {"version": current[0], **current[1].to_dict()},
        after={
            "version": published.version,
            "effective_from": published.effective_from_at.isoformat(),
            **published.rules,
        },
    )
    return published


def cancel_tiers_audited(db: Target, *, program: str, version: int, actor: str) -> TierVersionInfo:
    """Cancel a scheduled tier version (:func:`~loyalty.services.tiers.cancel_tiers`) and
    audit it: the entry holds the cancelled version."""
    actor = require_text("actor", actor, max_length=120)
    return run_in(db, lambda uow: _cancel(uow, program, version, actor))


def _cancel(uow: UnitOfWork, program: str, version: int, actor: str) -> TierVersionInfo:
    cancelled = cancel_tiers(uow, program=program, version=version, cancelled_by=actor)
    audit(
        uow,
        actor=actor,
        action="tiers.cancel",
        target=f"program {program} tiers v{version}",
        program=program,
        before={
            "version": version,
            "effective_from": cancelled.effective_from_at.isoformat(),
            **cancelled.rules,
        },
        after=None,
    )
    return cancelled


def set_member_tier_audited(
    db: Target,
    *,
    program: str,
    member: str,
    tier: str,
    reason: str,
    change_id: str,
    actor: str,
    locked_until: dt.datetime | None = None,
) -> TierChangeInfo:
    """A manual tier change or lock (:func:`~loyalty.services.tiers.set_member_tier`) and its
    audit entry (the tier before and after, the lock and the reason); a replay audits
    nothing."""
    actor = require_text("actor", actor, max_length=120)

    def work(uow: UnitOfWork) -> TierChangeInfo:
        change = set_member_tier(
            uow,
            program=program,
            member=member,
            tier=tier,
            reason=reason,
            change_id=change_id,
            actor=actor,
            locked_until=locked_until,
        )
        if not change.replayed:
            audit(
                uow,
                actor=actor,
                action="tier.lock" if change.reason == "lock" else "tier.set",
                target=f"member {member} tier",
                program=program,
                before={"tier": change.from_tier},
                after={
                    "tier": change.to_tier,
                    "locked_until": None
                    if change.locked_until_at is None
                    else change.locked_until_at.isoformat(),
                    "reason": reason,
                },
            )
        return change

    return run_in(db, work)


def place_members_audited(db: Database, *, program: str, actor: str) -> TierSweepResult:
    """Place every member by their measure (:func:`~loyalty.services.tier_sweep.
    place_members`, one transaction per batch) and audit how many moved up."""
    actor = require_text("actor", actor, max_length=120)
    placed = place_members(db, program=program)
    audit(
        db,
        actor=actor,
        action="tiers.place",
        target=f"program {program} tiers",
        program=program,
        after={"moved_up": placed.up, "batches": placed.batches},
    )
    return placed
