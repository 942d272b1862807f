"""Downgrade warnings: ``tier.will_downgrade`` before an evaluation that would move a member down.

:func:`warn_tier_downgrades` looks at members whose next tier evaluation falls within a
program's warning window (its ``reminder_days``, like points reminders; 15 by default) and
weighs their measure as the evaluation will (the tier version in force then, the windows
closing at the period end and after the grace) counting only what they have now. A member
who would move down gets one ``tier.will_downgrade`` event per evaluation, saying to which
tier, when, and how much more of the measure keeps the tier; ``members.tier_warned_for``
remembers the evaluation, so running again, or concurrently, warns nobody twice.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select, update

from loyalty.db.database import Database
from loyalty.db.dialect import is_postgres
from loyalty.db.tables import members, programs
from loyalty.domain.checks import require_int
from loyalty.errors import InvalidInput
from loyalty.events.outbox import balance, emit, event_row, member_data
from loyalty.services.tiers import TierState, evaluation_windows, measures, tiers_at
from loyalty.services.writes import program_row

BATCH = 500
MAX_DAYS = 366


def warn_tier_downgrades(
    db: Database, *, program: str | None = None, days: int | None = None
) -> int:
    """Warn every member whose evaluation within ``days`` (default: each program's
    ``reminder_days``) would move them down; returns how many were warned."""
    if days is not None:
        require_int("days", days, minimum=1)
        if days > MAX_DAYS:
            raise InvalidInput(f"days may be at most {MAX_DAYS}, got {days}", field="days")
    with db.read() as conn:
        progs = (
            [program_row(conn, program)]
            if program is not None
            else conn.execute(select(programs).order_by(programs.c.id)).all()
        )
    warned = 0
    for prog in progs:
        window = prog.reminder_days if days is None else days
        if window > 0:
            warned += _warn_program(db, prog, window)
    return warned


def _warn_program(db: Database, prog: Any, days: int) -> int:
    """One program's warnings, a batch of members per transaction."""
    warned = 0
    after = 0
    while True:
        with db.write() as conn:
            now = db.clock.now()
            rows = _lock_unwarned(conn, prog.id, now, now + dt.timedelta(days=days), after)
            if not rows:
                return warned
            warned += _warn_batch(db, conn, prog, rows, now)
            after = rows[-1].id


def _lock_unwarned(
    conn: Connection, program_id: int, now: dt.datetime, until: dt.datetime, after: int
) -> Sequence[Any]:
    """The next members (id order) due an evaluation by ``until`` and not warned of it."""
    stmt = (
        select(members)
        .where(
            members.c.program_id == program_id,
            members.c.id > after,
            members.c.tier_evaluate_at.is_not(None),
            members.c.tier_evaluate_at > now,
            members.c.tier_evaluate_at <= until,
            members.c.tier_warned_for.is_distinct_from(members.c.tier_evaluate_at),
        )
        .order_by(members.c.id)
        .limit(BATCH)
    )
    if is_postgres(conn):
        stmt = stmt.with_for_update(skip_locked=True)
    return conn.execute(stmt).all()


def _warn_batch(
    db: Database, conn: Connection, prog: Any, rows: Sequence[Any], now: dt.datetime
) -> int:
    """Weigh each member's coming evaluation; warn those who would move down."""
    groups: dict[tuple[dt.datetime, dt.datetime], list[Any]] = defaultdict(list)
    for row in rows:
        groups[(row.tier_period_end, row.tier_evaluate_at)].append(row)
    events = []
    for (period_end, due), group in groups.items():
        tiers = tiers_at(db, conn, prog.id, due)
        if tiers is None:
            continue
        rules = tiers.rules
        found = measures(
            conn,
            rules,
            [r.id for r in group],
            evaluation_windows(rules, period_end, due, prog.timezone),
        )
        for row in group:
            state = TierState.of(row)
            if not rules.knows(state.tier):
                continue
            current = rules.rank(state.tier)
            new = rules.evaluate(current, found[row.id], state.lock_rank(rules, due))
            if new < current:
                keep = rules.tiers[current].threshold
                events.append(
                    event_row(
                        "tier.will_downgrade",
                        program_id=prog.id,
                        member_id=row.id,
                        operation_id=None,
                        at=now,
                        data=member_data(
                            prog.code,
                            row.external_id,
                            operation=None,
                            points=None,
                            balance=balance(row),
                            tier=state.tier,
                            to_tier=rules.tiers[new].code,
                            evaluate_at=due,
                            measure=rules.measure,
                            measured=found[row.id],
                            keep_threshold=keep,
                            needed=max(keep - found[row.id], 0),
                            tier_version=tiers.version,
                        ),
                    )
                )
    emit(conn, events)
    if events:
        conn.execute(
            update(members)
            .where(members.c.id.in_([e["member_id"] for e in events]))
            .values(tier_warned_for=members.c.tier_evaluate_at)
        )
    return len(events)
