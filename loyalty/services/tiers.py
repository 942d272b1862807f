"""Member tiers on the ledger: tier versions, the qualifying measure, changes and their
history, progress, manual changes and locks.

The rules are :mod:`loyalty.domain.tiers`; this module stores and applies them.

- **Versions** (:func:`publish_tiers`, :func:`cancel_tiers`) are effective-dated and immutable
  like earning rules: a new threshold never rewrites the past.
- **Qualifying rows** (:func:`record_qualifying`) are written by every earn, reversal,
  adjustment and received transfer, with or without tiers, in the write's own transaction.
- **Changes** (:func:`change_tier`) update the member's tier columns and append the history
  row in one go; the earn that crosses a threshold (:func:`upgrade_after_credit`), a reversal
  under the ``at_once`` policy (:func:`requalify_after`), a manual change or lock
  (:func:`set_member_tier`) and the evaluation sweep (:mod:`loyalty.services.tier_sweep`) all
  go through it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, case, func, insert, select, update

from loyalty.db.tables import (
    earnings,
    members,
    programs,
    tier_changes,
    tier_qualifying,
    tier_versions,
)
from loyalty.domain.checks import (
    require_aware,
    require_key,
    require_member_id,
    require_program_code,
    require_text,
)
from loyalty.domain.rules import format_ratio
from loyalty.domain.tiers import TierRules
from loyalty.errors import (
    ConfigurationError,
    Conflict,
    IdempotencyConflict,
    InvalidInput,
    InvalidRule,
    MemberNotFound,
    NotFound,
)
from loyalty.events.outbox import emit_current
from loyalty.services.tier_results import TierChangeInfo, TierProgress, TierVersionInfo
from loyalty.services.uow import Target
from loyalty.services.writes import program_row, request_hash, resolve_key

MAX_VERSION = 2**31 - 1  # the version column's range

# --- versions -------------------------------------------------------------------------------


def tier_version_at(program_id: Any) -> Any:
    """Scalar subquery: id of the tier version in force at ``:at`` for a program (``NULL``:
    the program has no tiers then)."""
    return (
        select(tier_versions.c.id)
        .where(
            tier_versions.c.program_id == program_id,
            tier_versions.c.effective_from <= bindparam("at"),
            tier_versions.c.cancelled_at.is_(None),
        )
        .order_by(tier_versions.c.effective_from.desc(), tier_versions.c.version.desc())
        .limit(1)
        .scalar_subquery()
    )


class TierCache:
    """Tier versions are immutable, so their parsed rules are cached by id."""

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[int, TierRules]] = {}

    def get(self, conn: Connection, version_id: int) -> tuple[int, TierRules]:
        """``(version number, rules)`` of tier version ``version_id``."""
        cached = self._by_id.get(version_id)
        if cached is None:
            row = conn.execute(
                select(tier_versions.c.version, tier_versions.c.rules).where(
                    tier_versions.c.id == version_id
                )
            ).one()
            cached = (row.version, TierRules.from_dict(row.rules))
            self._by_id[version_id] = cached
        return cached


def tier_cache(target: Target) -> TierCache:
    """The tier cache of ``target``'s database (shared by every call and unit of work)."""
    return target.cache(TierCache)


@dataclass(frozen=True)
class InForce:
    """The tier version in force: its row id, number and rules."""

    id: int
    version: int
    rules: TierRules


def tiers_at(target: Target, conn: Connection, program_id: int, at: dt.datetime) -> InForce | None:
    """The tier version of a program in force at ``at``, or ``None`` (no tiers then)."""
    version_id = conn.execute(select(tier_version_at(program_id)), {"at": at}).scalar()
    if version_id is None:
        return None
    version, rules = tier_cache(target).get(conn, version_id)
    return InForce(version_id, version, rules)


def _rules_of(value: TierRules | Mapping[str, Any]) -> TierRules:
    if isinstance(value, TierRules):
        return value
    return TierRules.from_dict(value)


def publish_tiers(
    db: Target,
    *,
    program: str,
    rules: TierRules | Mapping[str, Any],
    effective_from: dt.datetime | None = None,
    created_by: str | None = None,
) -> TierVersionInfo:
    """Publish a new tier version, in force from ``effective_from`` (default: now).

    A change never acts on the past (``effective_from`` may not lie in the past), and a
    version keeps every tier code that members hold or are locked at (:class:`Conflict`
    names them): rename a tier instead of removing it.
    """
    program = require_program_code(program)
    if created_by is not None:
        created_by = require_text("created_by", created_by, max_length=120)
    parsed = _rules_of(rules)
    now = db.clock.now()
    start = now if effective_from is None else require_aware("effective_from", effective_from)
    if start < now:
        raise InvalidRule(
            "a tier change cannot take effect in the past", effective_from=start.isoformat()
        )
    with db.write() as conn:
        prog = _lock_versions(conn, program)
        _refuse_dropping_held(conn, prog, parsed)
        version = _next_version(conn, prog.id)
        conn.execute(
            insert(tier_versions).values(
                program_id=prog.id,
                version=version,
                effective_from=start,
                rules=parsed.to_dict(),
                created_at=now,
                created_by=created_by,
            )
        )
    return TierVersionInfo(
        program=program, version=version, effective_from_at=start, rules=parsed.to_dict()
    )


def _lock_versions(conn: Connection, program: str) -> Row[Any]:
    """The program's row, locked against other publications and cancellations of its tiers
    (``FOR NO KEY UPDATE``: writes that only reference the program go on)."""
    prog = program_row(conn, program)
    conn.execute(
        select(programs.c.id).where(programs.c.id == prog.id).with_for_update(key_share=True)
    )
    return prog


def _next_version(conn: Connection, program_id: int) -> int:
    latest = conn.execute(
        select(func.coalesce(func.max(tier_versions.c.version), 0)).where(
            tier_versions.c.program_id == program_id
        )
    ).scalar_one()
    return int(latest) + 1


def _refuse_dropping_held(conn: Connection, prog: Row[Any], rules: TierRules) -> None:
    held = set(
        conn.execute(
            select(members.c.tier)
            .where(members.c.program_id == prog.id, members.c.tier.is_not(None))
            .distinct()
        ).scalars()
    ) | set(
        conn.execute(
            select(members.c.tier_lock)
            .where(members.c.program_id == prog.id, members.c.tier_lock.is_not(None))
            .distinct()
        ).scalars()
    )
    dropped = sorted(code for code in held if not rules.knows(code))
    if dropped:
        raise Conflict(
            f"members hold tier {', '.join(dropped)}, which this version leaves out; keep "
            "every tier members hold (rename it, or change its threshold) instead",
            program=prog.code,
            tiers=dropped,
        )


def cancel_tiers(
    db: Target, *, program: str, version: int, cancelled_by: str | None = None
) -> TierVersionInfo:
    """Cancel tier version ``version`` before it takes effect (:class:`Conflict` once it is in
    force, or while a later version follows it). Its number is never given again."""
    program = require_program_code(program)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidInput(f"version must be a whole number of at least 1, got {version!r:.40}")
    if version > MAX_VERSION:
        raise NotFound(f"tier version {version} of program {program} does not exist")
    if cancelled_by is not None:
        cancelled_by = require_text("cancelled_by", cancelled_by, max_length=120)
    now = db.clock.now()
    with db.write() as conn:
        prog = _lock_versions(conn, program)
        target = conn.execute(
            select(tier_versions).where(
                tier_versions.c.program_id == prog.id, tier_versions.c.version == version
            )
        ).first()
        if target is None or target.cancelled_at is not None:
            state = "was cancelled" if target is not None else "does not exist"
            raise NotFound(
                f"tier version {version} of program {program} {state}",
                program=program,
                version=version,
            )
        if target.effective_from <= now:
            raise Conflict(
                f"tier version {version} is in force and cannot be cancelled; publish a new "
                "version with the tiers you want instead",
                program=program,
                version=version,
            )
        later = conn.execute(
            select(func.max(tier_versions.c.version)).where(
                tier_versions.c.program_id == prog.id,
                tier_versions.c.version > version,
                tier_versions.c.effective_from >= target.effective_from,
                tier_versions.c.cancelled_at.is_(None),
            )
        ).scalar()
        if later is not None:
            raise Conflict(
                f"tier version {later} was published after version {version} and follows "
                f"it; cancel version {later} first",
                program=program,
                version=version,
                followed_by=later,
            )
        conn.execute(
            update(tier_versions)
            .where(tier_versions.c.id == target.id)
            .values(cancelled_at=now, cancelled_by=cancelled_by)
        )
    return TierVersionInfo(
        program=program,
        version=version,
        effective_from_at=target.effective_from,
        rules=target.rules,
    )


def list_tier_versions(db: Target, *, program: str) -> list[TierVersionInfo]:
    """Every tier version of a program, oldest first (not those cancelled before their time)."""
    program = require_program_code(program)
    with db.read() as conn:
        prog = program_row(conn, program)
        rows = conn.execute(
            select(tier_versions)
            .where(tier_versions.c.program_id == prog.id, tier_versions.c.cancelled_at.is_(None))
            .order_by(tier_versions.c.version)
        ).all()
    return [
        TierVersionInfo(
            program=program, version=r.version, effective_from_at=r.effective_from, rules=r.rules
        )
        for r in rows
    ]


def tiers_in_force(
    db: Target, *, program: str, at: dt.datetime | None = None
) -> tuple[int, TierRules] | None:
    """``(version, rules)`` of the program's tiers at ``at`` (default: now); ``None`` when the
    program has no tiers then."""
    when = db.clock.now() if at is None else require_aware("at", at)
    with db.read() as conn:
        prog = program_row(conn, program)
        found = tiers_at(db, conn, prog.id, when)
    return None if found is None else (found.version, found.rules)


# --- the qualifying measure -----------------------------------------------------------------

INSERT_QUALIFYING = insert(tier_qualifying)


def record_qualifying(
    conn: Connection,
    *,
    program_id: int,
    member_id: int,
    operation_id: int,
    source: str,
    points: int,
    money_minor: int = 0,
    counted_at: dt.datetime,
    now: dt.datetime,
) -> None:
    """Append one qualifying row (see :class:`loyalty.db.models.TierQualifying`)."""
    conn.execute(
        INSERT_QUALIFYING,
        {
            "program_id": program_id,
            "member_id": member_id,
            "operation_id": operation_id,
            "source": source,
            "points": points,
            "money_minor": money_minor,
            "counted_at": counted_at,
            "created_at": now,
        },
    )


_MEASURES: dict[tuple[str, tuple[str, ...], bool], Any] = {}


def measure_statement(rules: TierRules, *, bounded: bool = False) -> Any:
    """SELECT of one member's measure (``:member``) counted in ``[:since, :until)`` (or from
    ``:since`` on), built once per measure kind and counted sources."""
    sources = rules.counted_sources()
    key = (rules.measure, sources, bounded)
    stmt = _MEASURES.get(key)
    if stmt is None:
        column = (
            tier_qualifying.c.points if rules.measure == "points" else tier_qualifying.c.money_minor
        )
        conditions = [
            tier_qualifying.c.member_id == bindparam("member"),
            tier_qualifying.c.counted_at >= bindparam("since"),
            tier_qualifying.c.source.in_(sources),
        ]
        if bounded:
            conditions.append(tier_qualifying.c.counted_at < bindparam("until"))
        stmt = select(func.coalesce(func.sum(column), 0)).where(*conditions)
        _MEASURES[key] = stmt
    return stmt


def measure_now(
    conn: Connection, rules: TierRules, member_id: int, now: dt.datetime, tz: str
) -> int:
    """The member's measure over the window that ends now."""
    since = rules.window_since(now, tz)
    return int(
        conn.execute(measure_statement(rules), {"member": member_id, "since": since}).scalar_one()
    )


def measure_until(
    conn: Connection, rules: TierRules, member_id: int, until: dt.datetime, tz: str
) -> int:
    """The member's measure over the window that ends at ``until``."""
    params = {"member": member_id, "since": rules.window_since(until, tz), "until": until}
    return int(conn.execute(measure_statement(rules, bounded=True), params).scalar_one())


# --- changes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TierState:
    """What a tier change reads of a member (a locked row has every column)."""

    id: int
    program_id: int
    external_id: str
    created_at: dt.datetime
    tier: str | None
    tier_since: dt.datetime | None
    tier_period_end: dt.datetime | None
    tier_evaluate_at: dt.datetime | None
    tier_lock: str | None
    tier_locked_until: dt.datetime | None

    @classmethod
    def of(cls, row: Any) -> TierState:
        return cls(**{name: getattr(row, name) for name in cls.__dataclass_fields__})

    def lock_rank(self, rules: TierRules, at: dt.datetime) -> int | None:
        """The rank the member is locked at on ``at`` (``None``: no lock then)."""
        if self.tier_lock is None or self.tier_locked_until is None:
            return None
        if self.tier_locked_until <= at or not rules.knows(self.tier_lock):
            return None
        return rules.rank(self.tier_lock)


TIER_COLUMNS = tuple(TierState.__dataclass_fields__)
INSERT_CHANGE = insert(tier_changes)


@dataclass(frozen=True)
class Change:
    """A tier change to write: to which rank, why, on what measure, and the period's start."""

    to_rank: int
    reason: str
    measure: int
    at: dt.datetime
    operation_id: int | None = None
    due_at: dt.datetime | None = None
    period_from: dt.datetime | None = None  # when the new tier's period starts (default: at)
    keep_since: bool = False  # an evaluation that keeps the tier: the period rolls on
    sets_lock: bool = False  # a manual change or lock replaces the member's lock
    lock: str | None = None
    locked_until: dt.datetime | None = None
    actor: str | None = None
    note: str | None = None
    key: str | None = None
    request_hash: str | None = None


def change_tier(
    conn: Connection,
    state: TierState,
    tiers: InForce,
    tz: str,
    change: Change,
) -> TierChangeInfo:
    """Move the member to ``change.to_rank`` (or keep the tier, for an evaluation): update the
    member's tier columns and append the history row."""
    rules = tiers.rules
    to_code = rules.tiers[change.to_rank].code
    from_code = state.tier if state.tier is not None else rules.lowest.code  # never placed
    since, period_end, evaluate_at = _period_after(state, rules, tz, change, to_code)
    lock = change.lock if change.sets_lock else state.tier_lock
    locked_until = change.locked_until if change.sets_lock else state.tier_locked_until
    conn.execute(
        update(members)
        .where(members.c.id == state.id)
        .values(
            tier=to_code,
            tier_since=since,
            tier_period_end=period_end,
            tier_evaluate_at=evaluate_at,
            tier_lock=lock,
            tier_locked_until=locked_until,
        )
    )
    conn.execute(
        INSERT_CHANGE,
        {
            "program_id": state.program_id,
            "member_id": state.id,
            "from_tier": from_code,
            "to_tier": to_code,
            "reason": change.reason,
            "measure": change.measure,
            "tier_version": tiers.version,
            "operation_id": change.operation_id,
            "due_at": change.due_at,
            "period_end": period_end,
            "evaluate_at": evaluate_at,
            "lock": change.lock,
            "locked_until": change.locked_until,
            "actor": change.actor,
            "note": change.note,
            "key": change.key,
            "request_hash": change.request_hash,
            "created_at": change.at,
        },
    )
    if to_code != from_code:
        emit_current(
            conn,
            "tier.changed",
            member_id=state.id,
            operation=None,
            operation_id=change.operation_id,
            points=None,
            at=change.at,
            from_tier=from_code,
            to_tier=to_code,
            direction="up" if change.to_rank > rules.rank(from_code) else "down",
            reason=change.reason,
            measure=change.measure,
            tier_version=tiers.version,
            due_at=change.due_at,
            period_end=period_end,
            evaluate_at=evaluate_at,
            actor=change.actor,
            note=change.note,
        )
    return TierChangeInfo(
        member=state.external_id,
        from_tier=from_code,
        to_tier=to_code,
        reason=change.reason,
        measure=change.measure,
        tier_version=tiers.version,
        created_at=change.at,
        due_at=change.due_at,
        evaluate_at=evaluate_at,
        lock=change.lock,
        locked_until_at=change.locked_until,
        actor=change.actor,
        note=change.note,
    )


def _period_after(
    state: TierState, rules: TierRules, tz: str, change: Change, to_code: str
) -> tuple[dt.datetime | None, dt.datetime | None, dt.datetime | None]:
    """``(tier_since, period_end, evaluate_at)`` after a change: no period at the lowest tier;
    an evaluation that keeps the tier rolls the period on from the one that ended; any other
    change starts a new period."""
    if change.to_rank == 0:
        since = state.tier_since if state.tier == to_code else change.period_from or change.at
        return since, None, None
    if change.keep_since and state.tier == to_code and state.tier_since is not None:
        since = state.tier_since
        after = state.tier_period_end or change.at
    else:
        since = change.period_from or change.at
        after = since
    end = rules.period_end(tz=tz, after=after, tier_since=since, joined=state.created_at)
    return since, end, rules.due(end, tz)


def upgrade_after_credit(
    conn: Connection,
    state: TierState,
    tiers: InForce,
    tz: str,
    *,
    reason: str,
    operation_id: int,
    now: dt.datetime,
) -> TierChangeInfo | None:
    """After a counted credit: move the member up at once to the tier the measure now
    supports, if it is higher (the credit's qualifying row is already written)."""
    rules = tiers.rules
    current = rules.rank(state.tier) if rules.knows(state.tier) else 0
    if current == len(rules.tiers) - 1:
        return None
    measure = measure_now(conn, rules, state.id, now, tz)
    supported = rules.supported(measure)
    if supported <= current:
        return None
    return change_tier(
        conn,
        state,
        tiers,
        tz,
        Change(
            to_rank=supported, reason=reason, measure=measure, at=now, operation_id=operation_id
        ),
    )


def requalify_after(
    conn: Connection,
    target: Target,
    *,
    member_id: int,
    tz: str,
    reason: str,
    operation_id: int,
    now: dt.datetime,
    direction: str,
) -> TierChangeInfo | None:
    """After a qualifying row that is not an earn (a reversal, an adjustment, a received
    transfer): move up at once when it added to a counted measure, or down at once when it
    took away and the version reverses ``at_once``. Reads the member under the lock the
    write holds."""
    row = conn.execute(select(members).where(members.c.id == member_id)).one()
    tiers = tiers_at(target, conn, row.program_id, now)
    if tiers is None or reason not in tiers.rules.counted_sources():
        return None
    state = catch_up(conn, target, TierState.of(row), tz, now)
    if direction == "up":
        return upgrade_after_credit(
            conn, state, tiers, tz, reason=reason, operation_id=operation_id, now=now
        )
    rules = tiers.rules
    current = rules.rank(state.tier) if rules.knows(state.tier) else 0
    if current == 0 or rules.on_reversal != "at_once":
        return None
    measure = measure_now(conn, rules, state.id, now, tz)
    new = rules.after_reversal(current, measure, state.lock_rank(rules, now))
    if new == current:
        return None
    return change_tier(
        conn,
        state,
        tiers,
        tz,
        Change(to_rank=new, reason=reason, measure=measure, at=now, operation_id=operation_id),
    )


def measures(
    conn: Connection,
    rules: TierRules,
    member_ids: Sequence[int],
    windows: Sequence[tuple[dt.datetime, dt.datetime]],
) -> dict[int, int]:
    """Each member's best measure over ``windows`` (``[since, until)`` pairs), in one query."""
    column = (
        tier_qualifying.c.points if rules.measure == "points" else tier_qualifying.c.money_minor
    )
    at = tier_qualifying.c.counted_at
    sums = [
        func.coalesce(func.sum(case((and_(at >= since, at < until), column), else_=0)), 0)
        for since, until in windows
    ]
    rows = conn.execute(
        select(tier_qualifying.c.member_id, *sums)
        .where(
            tier_qualifying.c.member_id.in_(member_ids),
            tier_qualifying.c.source.in_(rules.counted_sources()),
        )
        .group_by(tier_qualifying.c.member_id)
    ).all()
    found = {int(r[0]): max(int(v) for v in r[1:]) for r in rows}
    return {m: found.get(m, 0) for m in member_ids}


def evaluation_windows(
    rules: TierRules, period_end: dt.datetime, due: dt.datetime, tz: str
) -> list[tuple[dt.datetime, dt.datetime]]:
    """The windows an evaluation weighs: the one closing at the period end and, after a
    grace, the one closing at the due moment (the better counts)."""
    windows = [(rules.window_since(period_end, tz), period_end)]
    if due != period_end:
        windows.append((rules.window_since(due, tz), due))
    return windows


def evaluate_with(
    conn: Connection,
    tiers: InForce,
    tz: str,
    state: TierState,
    measure: int,
    due: dt.datetime,
    now: dt.datetime,
) -> int:
    """Write the evaluation due at ``due`` of a locked member, weighing ``measure``; the rank
    it leaves."""
    rules = tiers.rules
    current = rules.rank(state.tier) if rules.knows(state.tier) else 0
    new = rules.evaluate(current, measure, state.lock_rank(rules, due))
    change_tier(
        conn,
        state,
        tiers,
        tz,
        Change(
            to_rank=new,
            reason="evaluation",
            measure=measure,
            at=now,
            due_at=due,
            period_from=due,
            keep_since=new == current,
        ),
    )
    return new


def catch_up(
    conn: Connection, target: Target, state: TierState, tz: str, now: dt.datetime
) -> TierState:
    """Do the evaluations of a locked member that are due and not done yet (the sweep has
    not reached them), so that no other change skips one; the member's state after them."""
    while state.tier_evaluate_at is not None and state.tier_evaluate_at <= now:
        due, end = state.tier_evaluate_at, state.tier_period_end or state.tier_evaluate_at
        tiers = tiers_at(target, conn, state.program_id, due)
        if tiers is None:
            raise ConfigurationError(
                "a member's tier evaluation is due but the program has no tiers in force then"
            )
        windows = evaluation_windows(tiers.rules, end, due, tz)
        measure = measures(conn, tiers.rules, [state.id], windows)[state.id]
        evaluate_with(conn, tiers, tz, state, measure, due, now)
        state = TierState.of(conn.execute(select(members).where(members.c.id == state.id)).one())
    return state


# --- reading --------------------------------------------------------------------------------


def _member_row(conn: Connection, program: str, member: str) -> tuple[Row[Any], Row[Any]]:
    prog = program_row(conn, program)
    row = conn.execute(
        select(members).where(members.c.program_id == prog.id, members.c.external_id == member)
    ).first()
    if row is None:
        raise MemberNotFound(f"no member {member!r} in program {prog.code!r}", member=member)
    return prog, row


def tier_progress(db: Target, *, program: str, member: str) -> TierProgress:
    """Where ``member`` stands: tier, measure, what the next tier needs, what keeping the tier
    needs by the next evaluation, and when that is (see :class:`TierProgress`)."""
    program = require_program_code(program)
    member = require_member_id(member)
    now = db.clock.now()
    with db.read() as conn:
        prog, row = _member_row(conn, program, member)
        tiers = tiers_at(db, conn, prog.id, now)
        if tiers is None:
            return TierProgress(member=member, tiers_enabled=False)
        return _progress(conn, tiers, prog.timezone, TierState.of(row), now)


def _progress(
    conn: Connection, tiers: InForce, tz: str, state: TierState, now: dt.datetime
) -> TierProgress:
    rules = tiers.rules
    rank = rules.rank(state.tier) if rules.knows(state.tier) else 0
    tier = rules.tiers[rank]
    measure = measure_now(conn, rules, state.id, now, tz)
    above = rules.above(rank)
    keep_needed = keep_threshold = None
    if rank > 0 and state.tier_period_end is not None:
        keep_threshold = tier.threshold
        counted = _counted_towards(conn, rules, state.id, state.tier_period_end, tz, now)
        keep_needed = max(0, keep_threshold - counted)
    lock_rank = state.lock_rank(rules, now)
    return TierProgress(
        member=state.external_id,
        tiers_enabled=True,
        tier=tier.code,
        tier_name=tier.name,
        tier_since_at=state.tier_since,
        measure_kind=rules.measure,
        measure=measure,
        next_tier=None if above is None else above.code,
        next_tier_name=None if above is None else above.name,
        next_threshold=None if above is None else above.threshold,
        to_next_tier=None if above is None else max(0, above.threshold - measure),
        to_keep_tier=keep_needed,
        keep_threshold=keep_threshold,
        period_end_at=state.tier_period_end if rank > 0 else None,
        evaluate_at=state.tier_evaluate_at if rank > 0 else None,
        lock=state.tier_lock if lock_rank is not None else None,
        locked_until_at=state.tier_locked_until if lock_rank is not None else None,
        multiplier=format_ratio(tier.multiplier),
        benefits=list(tier.benefits),
        tier_version=tiers.version,
    )


def _counted_towards(
    conn: Connection,
    rules: TierRules,
    member_id: int,
    period_end: dt.datetime,
    tz: str,
    now: dt.datetime,
) -> int:
    """What is already counted in the window that closes at ``period_end`` (rows that will
    have aged out by then are not)."""
    since = rules.window_since(period_end, tz)
    stmt = measure_statement(rules)
    if since > now:
        return 0
    return int(conn.execute(stmt, {"member": member_id, "since": since}).scalar_one())


def tier_history(
    db: Target, *, program: str, member: str, limit: int = 100
) -> list[TierChangeInfo]:
    """The member's tier changes, newest first (evaluations that kept the tier included)."""
    program = require_program_code(program)
    member = require_member_id(member)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise InvalidInput(f"limit must be between 1 and 1000, got {limit!r:.40}")
    with db.read() as conn:
        _prog, row = _member_row(conn, program, member)
        reference = func.coalesce(earnings.c.order_id, earnings.c.action).label("reference")
        rows = conn.execute(
            select(tier_changes, reference)
            .outerjoin(earnings, earnings.c.operation_id == tier_changes.c.operation_id)
            .where(tier_changes.c.member_id == row.id)
            .order_by(tier_changes.c.id.desc())
            .limit(limit)
        ).all()
    return [change_info(member, r) for r in rows]


def change_info(member: str, r: Row[Any], *, replayed: bool = False) -> TierChangeInfo:
    return TierChangeInfo(
        member=member,
        from_tier=r.from_tier,
        to_tier=r.to_tier,
        reason=r.reason,
        measure=r.measure,
        tier_version=r.tier_version,
        created_at=r.created_at,
        due_at=r.due_at,
        evaluate_at=r.evaluate_at,
        lock=r.lock,
        locked_until_at=r.locked_until,
        actor=r.actor,
        note=r.note,
        reference=getattr(r, "reference", None),
        replayed=replayed,
    )


# --- manual changes and locks ---------------------------------------------------------------


def set_member_tier(
    db: Target,
    *,
    program: str,
    member: str,
    tier: str,
    reason: str,
    change_id: str,
    actor: str | None = None,
    locked_until: dt.datetime | None = None,
    idempotency_key: str | None = None,
) -> TierChangeInfo:
    """Put ``member`` at ``tier`` by hand, with a mandatory reason; with ``locked_until``, also
    hold them at that tier or above until then (evaluations and reversals never go below a
    lock; earning may still move them up).

    The new tier's period starts now; a manual change without ``locked_until`` ends any lock
    the member had. The key defaults to ``tier:<change_id>``; a retry
    returns the first change, the same key for another change is an
    :class:`IdempotencyConflict`.
    """
    program = require_program_code(program)
    member = require_member_id(member)
    reason = require_text("reason", reason, max_length=500, multiline=True)
    require_key(change_id, name="change_id")
    if actor is not None:
        actor = require_text("actor", actor, max_length=120)
    now = db.clock.now()
    if locked_until is not None:
        locked_until = require_aware("locked_until", locked_until)
        if locked_until <= now:
            raise InvalidInput("locked_until must lie in the future", field="locked_until")
    key = resolve_key(idempotency_key, f"tier:{change_id}")
    fingerprint = request_hash(
        "set_member_tier",
        {
            "program": program,
            "member": member,
            "tier": tier,
            "reason": reason,
            "actor": actor,
            "locked_until": locked_until,
        },
    )
    with db.write() as conn:
        prog, _row = _member_row(conn, program, member)
        row = conn.execute(select(members).where(members.c.id == _row.id).with_for_update()).one()
        stored = conn.execute(
            select(tier_changes).where(
                tier_changes.c.program_id == prog.id, tier_changes.c.key == key
            )
        ).first()
        if stored is not None:
            if stored.request_hash != fingerprint:
                raise IdempotencyConflict(
                    f"idempotency key {key!r} was used for another tier change",
                    idempotency_key=key,
                )
            return change_info(member, stored, replayed=True)
        tiers = tiers_at(db, conn, prog.id, now)
        if tiers is None:
            raise Conflict(f"program {program} has no tiers; publish tiers first", program=program)
        if not isinstance(tier, str) or not tiers.rules.knows(tier):
            codes = ", ".join(t.code for t in tiers.rules.tiers)
            raise InvalidInput(
                f"no tier {tier!r:.40} in program {program} (tiers: {codes})", field="tier"
            )
        state = catch_up(conn, db, TierState.of(row), prog.timezone, now)
        measure = measure_now(conn, tiers.rules, state.id, now, prog.timezone)
        return change_tier(
            conn,
            state,
            tiers,
            prog.timezone,
            Change(
                to_rank=tiers.rules.rank(tier),
                reason="lock" if locked_until is not None else "manual",
                measure=measure,
                at=now,
                sets_lock=True,
                lock=tier if locked_until is not None else None,
                locked_until=locked_until,
                actor=actor,
                note=reason,
                key=key,
                request_hash=fingerprint,
            ),
        )


def tier_codes(rules: TierRules) -> Sequence[str]:
    """The ladder's codes, lowest first."""
    return [t.code for t in rules.tiers]
