"""Year-end clearing (积分清零): the ``clearings`` table and the sweep that clears a year.

At a program's clearing moment (the end of ``clearing_month``/``clearing_day`` in its time
zone) every lot earned before the cutoff ends: ``all`` clears everything earned before the
moment, ``before_cutoff`` keeps what was earned less than ``clearing_keep_months`` months
before it (see :mod:`loyalty.domain.calendar`).

A clearing is one ``clearings`` row per program and year: ``running`` while lots are being
cleared, ``done`` with its totals once none is left. The sweep follows rolling expiry
(:mod:`loyalty.services.expiry`): set-based batches of one transaction each, every lot claimed
by setting its ``expired_at`` under its member's lock and only while it is still ``NULL``,
one ``clear`` entry per lot, guarded by the unique index ``uq_entries_one_expiry_per_lot``.
A lot ends once, whichever of expiry and clearing comes first; held and frozen points stay
for the hold or refund in flight, and the settlement takes back what it puts into a cleared
lot (``expire_returned``). Each batch adds its figures to the row, so a resumed or concurrent
run keeps the totals exact; once done, the clearing answers its stored figures and writes
nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, select, update

from loyalty.db.database import Database
from loyalty.db.dialect import insert_ignoring
from loyalty.db.tables import clearings, lots, programs
from loyalty.domain.calendar import clearing_cutoff, clearing_moment, last_clearing_year
from loyalty.domain.checks import require_int
from loyalty.errors import ClearingNotDue, InvalidInput, InvalidRule
from loyalty.services.results import ClearingResult, SweepResult
from loyalty.services.sweeps import Ending, end_due_lots
from loyalty.services.writes import program_row

_INSERT_CLEARING = insert_ignoring(clearings, conflict=["program_id", "year"])
# The lots a clearing ends: of ``:program``, earned before ``:cutoff`` (and not ended yet).
CLEARING = Ending(
    "clear",
    and_(lots.c.program_id == bindparam("program"), lots.c.earned_at < bindparam("cutoff")),
)
_LEFT_TO_CLEAR = select(lots.c.id).where(CLEARING.due).limit(1)
LAST_YEAR = 9998  # the moment of the end of 31 December 9999 is not a datetime
FIRST_YEAR = 1900  # a cutoff up to 100 years (1200 months) earlier is still a datetime


def clear_year_end(
    db: Database,
    *,
    program: str,
    year: int | None = None,
    batch_size: int = 1000,
    on_batch: Callable[[SweepResult], None] | None = None,
) -> ClearingResult:
    """Clear ``program``'s year-end points of ``year`` (default: the last moment that passed).

    The default skips a moment that came before clearing was switched on (see
    :func:`scheduled_year`); naming ``year`` clears it anyway.

    Raises :class:`InvalidRule` when the program has no clearing and :class:`ClearingNotDue`
    before the moment. Safe to run again, late or concurrently: a done clearing answers its
    figures with ``replayed=True``; lots earned from the cutoff on are never touched.
    ``on_batch`` gets this run's running totals after each committed batch.
    """
    require_int("batch_size", batch_size)
    now = db.clock.now()
    with db.read() as conn:
        prog = program_row(conn, program)
    clearing = _start(db, prog, _due_year(prog, year, now), now)
    if clearing.status == "done":
        return _result(prog.code, clearing, replayed=True)
    _sweep(
        db,
        clearing,
        key_prefix=f"clear:{prog.code}:{clearing.year}",
        now=now,
        size=batch_size,
        on_batch=on_batch,
    )
    return _result(prog.code, _finish(db, clearing, now))


def clear_due_year_ends(
    db: Database, *, batch_size: int = 1000, on_batch: Callable[[SweepResult], None] | None = None
) -> list[ClearingResult]:
    """Run every program's latest clearing whose moment has passed and that is not done.

    ``on_batch`` gets the running totals of this call, over every program, after each batch.
    """
    now = db.clock.now()
    with db.read() as conn:
        progs = conn.execute(
            select(programs).where(programs.c.clearing_policy != "none").order_by(programs.c.id)
        ).all()
        done = {
            (r.program_id, r.year)
            for r in conn.execute(
                select(clearings.c.program_id, clearings.c.year).where(clearings.c.status == "done")
            )
        }
    results = []
    totals = SweepResult(items=0, points=0, batches=0)
    for prog in progs:
        year = scheduled_year(prog, now)
        if year is not None and (prog.id, year) not in done:
            seen = [totals]
            report = _after(totals, seen, on_batch)
            results.append(
                clear_year_end(
                    db, program=prog.code, year=year, batch_size=batch_size, on_batch=report
                )
            )
            totals = seen[-1]
    return results


def _after(
    before: SweepResult, seen: list[SweepResult], on_batch: Callable[[SweepResult], None] | None
) -> Callable[[SweepResult], None]:
    """A batch hook for one program's clearing that adds the programs cleared ``before``."""

    def report(run: SweepResult) -> None:
        seen.append(
            SweepResult(
                items=before.items + run.items,
                points=before.points + run.points,
                batches=before.batches + run.batches,
            )
        )
        if on_batch is not None:
            on_batch(seen[-1])

    return report


def scheduled_year(prog: Row[Any], now: dt.datetime) -> int | None:
    """The year whose clearing moment passed last, unless clearing was enabled after it."""
    tz, month, day = prog.timezone, prog.clearing_month, prog.clearing_day
    year = last_clearing_year(now, tz, month, day)
    enabled = prog.clearing_enabled_at
    if enabled is None or clearing_moment(year, month, day, tz) < enabled:
        return None
    return year


def _due_year(prog: Row[Any], year: int | None, now: dt.datetime) -> int:
    """The year to clear; an error if the program has no clearing or it is not due yet."""
    if prog.clearing_policy == "none":
        raise InvalidRule(
            f"program {prog.code!r} has no year-end clearing (clearing_policy is 'none'); enable "
            f"it with update_program(db, program={prog.code!r}, clearing_policy='all') "
            "or clearing_policy='before_cutoff'",
            program=prog.code,
        )
    tz, month, day = prog.timezone, prog.clearing_month, prog.clearing_day
    if year is None:
        scheduled = scheduled_year(prog, now)
        if scheduled is None:
            last = last_clearing_year(now, tz, month, day)
            raise ClearingNotDue(
                f"program {prog.code!r} switched clearing on after its {last} clearing moment; "
                f"its first clearing is due at {clearing_moment(last + 1, month, day, tz)} "
                f"(pass year={last} to clear {last} anyway)",
                program=prog.code,
                year=last,
            )
        return scheduled
    require_int("year", year, minimum=FIRST_YEAR)
    if year > LAST_YEAR:
        raise InvalidInput(f"year must be at most {LAST_YEAR}, got {year}", field="year")
    moment = clearing_moment(year, month, day, tz)
    if moment > now:
        raise ClearingNotDue(
            f"the {year} clearing of program {prog.code!r} is due at {moment.isoformat()} "
            f"(the end of {month:02d}-{day:02d} in {tz}); run it then",
            program=prog.code,
            year=year,
            due_at=moment.isoformat(),
        )
    return year


def _start(db: Database, prog: Row[Any], year: int, now: dt.datetime) -> Row[Any]:
    """The program's clearing of ``year``, inserted as ``running`` unless it exists.

    A clearing that exists keeps the moment and cutoff it started with.
    """
    moment = clearing_moment(year, prog.clearing_month, prog.clearing_day, prog.timezone)
    values = {
        "program_id": prog.id,
        "year": year,
        "policy": prog.clearing_policy,
        "moment": moment,
        "cutoff": clearing_cutoff(
            moment, prog.timezone, prog.clearing_policy, prog.clearing_keep_months
        ),
        "status": "running",
        "lots": 0,
        "points": 0,
        "started_at": now,
        "finished_at": None,
    }
    with db.write() as conn:
        conn.execute(_INSERT_CLEARING.on(conn), values)
        return conn.execute(
            select(clearings).where(clearings.c.program_id == prog.id, clearings.c.year == year)
        ).one()


def _due_params(clearing: Row[Any]) -> dict[str, Any]:
    """The parameters of :data:`CLEARING`'s ``due`` for ``clearing``."""
    return {"program": clearing.program_id, "cutoff": clearing.cutoff}


def _sweep(
    db: Database,
    clearing: Row[Any],
    *,
    key_prefix: str,
    now: dt.datetime,
    size: int,
    on_batch: Callable[[SweepResult], None] | None = None,
) -> None:
    """Clear every due lot, batch by batch, adding each batch's figures to the clearing."""

    def tally(conn: Connection, lots_ended: int, points: int) -> None:
        conn.execute(
            update(clearings)
            .where(clearings.c.id == clearing.id)
            .values(lots=clearings.c.lots + lots_ended, points=clearings.c.points + points)
        )

    end_due_lots(
        db,
        CLEARING,
        params=_due_params(clearing),
        key_prefix=key_prefix,
        at=now,
        batch_size=size,
        tally=tally,
        on_batch=on_batch,
    )


def _finish(db: Database, clearing: Row[Any], now: dt.datetime) -> Row[Any]:
    """Mark the clearing done unless due lots are left (busy members: a later run clears them)."""
    with db.write() as conn:
        if conn.execute(_LEFT_TO_CLEAR, _due_params(clearing)).first() is None:
            conn.execute(
                update(clearings)
                .where(clearings.c.id == clearing.id, clearings.c.status == "running")
                .values(status="done", finished_at=now)
            )
        return conn.execute(select(clearings).where(clearings.c.id == clearing.id)).one()


def _result(program: str, clearing: Row[Any], *, replayed: bool = False) -> ClearingResult:
    return ClearingResult(
        program=program,
        year=clearing.year,
        policy=clearing.policy,
        moment_at=clearing.moment,
        cutoff_at=clearing.cutoff,
        lots=clearing.lots,
        points=clearing.points,
        status=clearing.status,
        replayed=replayed,
    )
