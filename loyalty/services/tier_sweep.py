"""The tier evaluation sweep, and the reports that look ahead: the forecast of the next
evaluations and the preview of draft tiers.

The sweep is set-based like expiry: one transaction per batch, the batch's members locked in
id order skipping those a writer or a concurrent sweep holds, their measures read in one
grouped query per tier period end. Every evaluation due is written (one history row each,
also when the tier stays), so a sweep that ran late catches up period by period and
``jifen verify`` can prove none was skipped. Running it again, or concurrently, finds only
what is still due; the unique ``(member, due_at)`` of the history is the last guard.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, func, select

from loyalty.db.database import Database
from loyalty.db.tables import members, programs, tier_qualifying
from loyalty.domain.checks import require_int, require_program_code
from loyalty.domain.tiers import TierRules
from loyalty.errors import ConfigurationError, Conflict
from loyalty.services.tier_results import TierCount, TierForecast, TierSweepResult
from loyalty.services.tiers import (
    Change,
    InForce,
    TierState,
    catch_up,
    change_tier,
    evaluate_with,
    evaluation_windows,
    measures,
    tiers_at,
)
from loyalty.services.uow import Target
from loyalty.services.writes import program_row

# --- the sweep ------------------------------------------------------------------------------


def _lock_due(conn: Connection, now: dt.datetime, limit: int, program_id: int | None) -> list[int]:
    due = members.c.tier_evaluate_at <= now
    if program_id is not None:
        due = and_(due, members.c.program_id == program_id)
    next_due = (
        select(members.c.id)
        .where(due)
        .order_by(members.c.tier_evaluate_at, members.c.id)
        .limit(limit)
    )
    stmt = (
        select(members.c.id)
        .where(members.c.id.in_(next_due))
        .order_by(members.c.id)
        .with_for_update(skip_locked=True)
    )
    return [int(i) for i in conn.execute(stmt).scalars()]


@dataclass
class _Tally:
    evaluated: int = 0
    down: int = 0
    kept: int = 0
    up: int = 0
    batches: int = 0

    def result(self) -> TierSweepResult:
        return TierSweepResult(
            evaluated=self.evaluated,
            down=self.down,
            kept=self.kept,
            up=self.up,
            batches=self.batches,
        )


def evaluate_tiers(
    db: Database,
    *,
    program: str | None = None,
    batch_size: int = 500,
    on_batch: Callable[[TierSweepResult], None] | None = None,
) -> TierSweepResult:
    """Evaluate every member whose tier evaluation is due (``tier_evaluate_at`` has passed):
    keep the tier, move down by one or to what the measure supports (per the tier version in
    force when it was due), never below a lock. Evaluations missed while the sweep did not
    run are done one after the other. ``on_batch`` gets the running totals after each
    committed batch."""
    require_int("batch_size", batch_size, minimum=1, maximum=100_000)
    now = db.clock.now()
    tally = _Tally()
    program_id = None
    if program is not None:
        with db.read() as conn:
            program_id = int(program_row(conn, require_program_code(program)).id)
    while True:
        with db.write() as conn:
            ids = _lock_due(conn, now, batch_size, program_id)
            if not ids:
                break
            _evaluate_batch(db, conn, ids, now, tally)
        tally.batches += 1
        if on_batch is not None:
            on_batch(tally.result())
    return tally.result()


def _evaluate_batch(
    db: Database, conn: Connection, ids: Sequence[int], now: dt.datetime, tally: _Tally
) -> None:
    """Evaluate the locked members ``ids`` once each; repeat for those still due (a sweep
    that catches up)."""
    pending = list(ids)
    while pending:
        rows = conn.execute(
            select(members, programs.c.timezone.label("program_timezone"))
            .join(programs, programs.c.id == members.c.program_id)
            .where(members.c.id.in_(pending), members.c.tier_evaluate_at <= now)
        ).all()
        if not rows:
            return
        groups: dict[tuple[int, dt.datetime, dt.datetime], list[Any]] = defaultdict(list)
        for row in rows:
            groups[(row.program_id, row.tier_period_end, row.tier_evaluate_at)].append(row)
        for (program_id, period_end, due), group in groups.items():
            _evaluate_group(db, conn, program_id, period_end, due, group, now, tally)
        pending = [row.id for row in rows]


def _evaluate_group(
    db: Database,
    conn: Connection,
    program_id: int,
    period_end: dt.datetime,
    due: dt.datetime,
    rows: Sequence[Any],
    now: dt.datetime,
    tally: _Tally,
) -> None:
    tiers = tiers_at(db, conn, program_id, due)
    if tiers is None:
        raise ConfigurationError(
            "a member's tier evaluation is due but the program has no tiers in force then"
        )
    tz = rows[0].program_timezone
    windows = evaluation_windows(tiers.rules, period_end, due, tz)
    found = measures(conn, tiers.rules, [r.id for r in rows], windows)
    for row in rows:
        _evaluate_one(conn, tiers, tz, row, found[row.id], due, now, tally)


def _evaluate_one(
    conn: Connection,
    tiers: InForce,
    tz: str,
    row: Any,
    measure: int,
    due: dt.datetime,
    now: dt.datetime,
    tally: _Tally,
) -> None:
    state = TierState.of(row)
    current = tiers.rules.rank(state.tier) if tiers.rules.knows(state.tier) else 0
    new = evaluate_with(conn, tiers, tz, state, measure, due, now)
    tally.evaluated += 1
    if new < current:
        tally.down += 1
    elif new > current:
        tally.up += 1
    else:
        tally.kept += 1


# --- placing members by their measure --------------------------------------------------------


def place_members(
    db: Database,
    *,
    program: str,
    batch_size: int = 500,
    on_batch: Callable[[TierSweepResult], None] | None = None,
) -> TierSweepResult:
    """Move up every member whose measure now supports a higher tier than the one they hold
    (reason ``placement``): after tiers are switched on (members are placed by what they
    earned before) or after a version lowers a threshold. Never moves anyone down (that is
    the evaluation's job); idempotent; per batch of members, each batch one transaction."""
    program = require_program_code(program)
    require_int("batch_size", batch_size, minimum=1, maximum=100_000)
    tally = _Tally()
    after = 0
    while True:
        with db.write() as conn:
            prog = program_row(conn, program)
            now = db.clock.now()
            tiers = _require_tiers(db, conn, prog)
            ids = _lock_members_after(conn, prog.id, after, batch_size)
            if not ids:
                break
            _place_batch(db, conn, tiers, prog.timezone, ids, now, tally)
            after = ids[-1]
        tally.batches += 1
        if on_batch is not None:
            on_batch(tally.result())
    return tally.result()


def _lock_members_after(conn: Connection, program_id: int, after: int, limit: int) -> list[int]:
    """Lock the program's next ``limit`` members by id (waiting for writers: placement must
    not skip anyone)."""
    stmt = (
        select(members.c.id)
        .where(members.c.program_id == program_id, members.c.id > after)
        .order_by(members.c.id)
        .limit(limit)
        .with_for_update()
    )
    return [int(i) for i in conn.execute(stmt).scalars()]


def _place_batch(
    db: Database,
    conn: Connection,
    tiers: InForce,
    tz: str,
    ids: Sequence[int],
    now: dt.datetime,
    tally: _Tally,
) -> None:
    rules = tiers.rules
    found = measures(conn, rules, ids, [(rules.window_since(now, tz), now + _EPSILON)])
    candidates = [m for m in ids if rules.supported(found[m]) > 0]
    if not candidates:
        return
    rows = conn.execute(select(members).where(members.c.id.in_(candidates))).all()
    for row in rows:
        state = catch_up(conn, db, TierState.of(row), tz, now)
        current = rules.rank(state.tier) if rules.knows(state.tier) else 0
        supported = rules.supported(found[row.id])
        if supported <= current:
            continue
        change_tier(
            conn,
            state,
            tiers,
            tz,
            Change(to_rank=supported, reason="placement", measure=found[row.id], at=now),
        )
        tally.up += 1


_EPSILON = dt.timedelta(microseconds=1)


# --- looking ahead --------------------------------------------------------------------------


def tier_forecast(db: Target, *, program: str, days: int = 90) -> TierForecast:
    """What the evaluations due in the next ``days`` days would do if nobody earned more:
    members holding each tier, and how many would move up, down or keep their tier (each
    evaluation weighed by the tier version in force when it is due, as the sweep will)."""
    program = require_program_code(program)
    require_int("days", days, minimum=1, maximum=3660)
    now = db.clock.now()
    until = now + dt.timedelta(days=days)
    with db.read() as conn:
        prog = program_row(conn, program)
        tiers = _require_tiers(db, conn, prog)
        rows = conn.execute(
            select(members).where(
                members.c.program_id == prog.id,
                members.c.tier_evaluate_at.is_not(None),
                members.c.tier_evaluate_at <= until,
            )
        ).all()
        moves = _projected_moves(db, conn, prog.id, prog.timezone, rows)
        holding = _holding(conn, tiers.rules, prog.id)
    return _forecast(program, tiers, until, holding, moves)


def _projected_moves(
    db: Target, conn: Connection, program_id: int, tz: str, rows: Sequence[Any]
) -> list[tuple[str, str, int]]:
    """``(tier now, tier after, direction)`` for each member of ``rows`` at their next
    evaluation, weighed (like the sweep) by the tier version in force when it is due."""
    groups: dict[tuple[dt.datetime, dt.datetime], list[Any]] = defaultdict(list)
    for row in rows:
        groups[(row.tier_period_end, row.tier_evaluate_at)].append(row)
    out = []
    for (period_end, due), group in groups.items():
        tiers = tiers_at(db, conn, program_id, due)
        if tiers is None:
            raise ConfigurationError(
                "a member's tier evaluation is due but the program has no tiers in force then"
            )
        rules = tiers.rules
        windows = evaluation_windows(rules, period_end, due, tz)
        found = measures(conn, rules, [r.id for r in group], windows)
        for row in group:
            state = TierState.of(row)
            current = rules.rank(state.tier) if rules.knows(state.tier) else 0
            new = rules.evaluate(current, found[row.id], state.lock_rank(rules, due))
            direction = (new > current) - (new < current)
            out.append((rules.tiers[current].code, rules.tiers[new].code, direction))
    return out


def _forecast(
    program: str,
    tiers: InForce,
    until: dt.datetime,
    holding: Mapping[str, int],
    moves: Iterable[tuple[str, str, int]],
) -> TierForecast:
    rules = tiers.rules
    table: dict[str, dict[str, int]] = defaultdict(dict)
    counts: Counter[str] = Counter()
    for src, dst, direction in moves:
        table[src][dst] = table[src].get(dst, 0) + 1
        counts["up" if direction > 0 else "down" if direction < 0 else "keep"] += 1
    return TierForecast(
        program=program,
        tier_version=tiers.version,
        until_at=until,
        holding=[
            TierCount(
                tier=t.code, name=t.name, threshold=t.threshold, members=holding.get(t.code, 0)
            )
            for t in rules.tiers
        ],
        up=counts["up"],
        down=counts["down"],
        keep=counts["keep"],
        moves={k: dict(v) for k, v in table.items()},
    )


def _require_tiers(db: Target, conn: Connection, prog: Any) -> InForce:
    tiers = tiers_at(db, conn, prog.id, db.clock.now())
    if tiers is None:
        raise Conflict(f"program {prog.code} has no tiers; publish tiers first", program=prog.code)
    return tiers


def _holding(conn: Connection, rules: TierRules, program_id: int) -> dict[str, int]:
    """Members per tier code (those never placed hold the lowest)."""
    rows = conn.execute(
        select(members.c.tier, func.count())
        .where(members.c.program_id == program_id)
        .group_by(members.c.tier)
    ).all()
    out: Counter[str] = Counter()
    for code, n in rows:
        out[rules.tier(code).code if rules.knows(code) else rules.lowest.code] += int(n)
    return dict(out)


def tier_distribution(db: Target, *, program: str) -> list[TierCount]:
    """How many members hold each tier now (the dashboard's distribution)."""
    program = require_program_code(program)
    with db.read() as conn:
        prog = program_row(conn, program)
        tiers = _require_tiers(db, conn, prog)
        holding = _holding(conn, tiers.rules, prog.id)
    return [
        TierCount(tier=t.code, name=t.name, threshold=t.threshold, members=holding.get(t.code, 0))
        for t in tiers.rules.tiers
    ]


def preview_tiers(
    db: Target, *, program: str, rules: TierRules | Mapping[str, Any]
) -> list[TierCount]:
    """How many members each tier of draft ``rules`` would hold by their measure now (what
    the measure supports; members keep a higher tier until evaluated, and locks are not
    weighed). Writes nothing."""
    program = require_program_code(program)
    draft = rules if isinstance(rules, TierRules) else TierRules.from_dict(rules)
    now = db.clock.now()
    with db.read() as conn:
        prog = program_row(conn, program)
        column = (
            tier_qualifying.c.points if draft.measure == "points" else tier_qualifying.c.money_minor
        )
        since = draft.window_since(now, prog.timezone)
        per_member = (
            select(func.coalesce(func.sum(column), 0).label("measure"))
            .where(
                tier_qualifying.c.program_id == prog.id,
                tier_qualifying.c.source.in_(draft.counted_sources()),
                tier_qualifying.c.counted_at >= since,
            )
            .group_by(tier_qualifying.c.member_id)
        )
        found = [int(m) for m in conn.execute(per_member).scalars()]
        total = int(
            conn.execute(
                select(func.count()).select_from(members).where(members.c.program_id == prog.id)
            ).scalar_one()
        )
    counts: Counter[int] = Counter(draft.supported(m) for m in found)
    counts[0] += total - len(found)
    return [
        TierCount(tier=t.code, name=t.name, threshold=t.threshold, members=counts.get(i, 0))
        for i, t in enumerate(draft.tiers)
    ]
