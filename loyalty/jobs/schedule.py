"""When Jifen's jobs run: the schedule as rq cron entries, built from the programs.

:func:`build_schedule` is pure: given the programs' clearing settings and the time now, it
returns one :class:`ScheduledJob` per cron entry, each with a cron string in **UTC** (rq
evaluates cron strings in UTC) and its next run. The fixed entries are each job's
:attr:`~loyalty.jobs.specs.JobSpec.cron` (hold time-outs every minute, maturation, expiry
and the clearing safety net hourly, reminders and tier evaluations daily), most frequent
first; ``clear_year`` gets one entry per program, at the program's own year-end moment in
its time zone.

A program's year-end moment (the end of ``clearing_month``/``clearing_day`` in its time zone,
:func:`loyalty.domain.calendar.clearing_moment`) is a UTC cron string computed for the
*coming* moment, so the offset is the one in force then (a zone with daylight saving time
gets the right hour for that date). A program in Asia/Shanghai clearing at the end of
31 December runs at ``0 16 31 12 *``. Programs with ``clearing_policy='none'`` get no entry.

The schedule is read when the cron process starts: restart ``jifen cron`` after adding a
program or changing its clearing settings. The hourly ``clear`` job is the safety net for
whatever the per-program entry misses (a cron process that was down at the moment, a
clearing day that a year lacks, a time-zone rule that changed): clearing is idempotent per
program and year, so running it late, or twice, is safe.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from loyalty.db.database import Database
from loyalty.db.tables import programs
from loyalty.domain.calendar import clearing_moment, last_clearing_year
from loyalty.jobs.specs import JOBS, Cron

MINUTE = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class ProgramClearing:
    """What the schedule needs to know about a program: its zone and clearing settings."""

    code: str
    timezone: str
    clearing_policy: str = "none"
    clearing_month: int = 12
    clearing_day: int = 31


@dataclass(frozen=True)
class ScheduledJob:
    """One cron entry: job ``job`` with ``params`` at ``cron`` (UTC), next at ``next_run_at``.

    ``name`` is unique within a schedule (rq's cron job name); ``program`` and ``timezone`` are
    set for a program's clearing.
    """

    name: str
    job: str
    cron: str
    next_run_at: dt.datetime
    description: str
    params: dict[str, Any] = field(default_factory=dict)
    program: str | None = None
    timezone: str | None = None


def fixed_crons() -> list[tuple[str, Cron]]:
    """Every job on a fixed schedule with its cron: every minute, then hourly, then daily, each
    by time of day."""
    found = [(spec.name, spec.cron) for spec in JOBS.values() if spec.cron is not None]
    return sorted(found, key=lambda item: _frequency(item[1]))


def _frequency(cron: Cron) -> tuple[int, int, int]:
    """Sorts every-minute entries first, then hourly, then daily, each by time of day."""
    rank = 0 if cron.minute is None else 1 if cron.hour is None else 2
    return rank, cron.hour or 0, cron.minute or 0


def build_schedule(programs: Iterable[ProgramClearing], now: dt.datetime) -> list[ScheduledJob]:
    """Every cron entry for these programs: the fixed jobs, then one clearing per program."""
    entries = [_fixed(job, cron, now) for job, cron in fixed_crons()]
    for p in sorted(programs, key=lambda p: p.code):
        if p.clearing_policy != "none":
            entries.append(clearing_entry(p, now))
    return entries


def _fixed(job: str, cron: Cron, now: dt.datetime) -> ScheduledJob:
    minute = "*" if cron.minute is None else str(cron.minute)
    hour = "*" if cron.hour is None else str(cron.hour)
    start = now.astimezone(dt.UTC).replace(second=0, microsecond=0)
    if cron.minute is None:
        following = start + MINUTE
    else:
        step = dt.timedelta(hours=1) if cron.hour is None else dt.timedelta(days=1)
        at_hour = start.hour if cron.hour is None else cron.hour
        following = start.replace(minute=cron.minute, hour=at_hour)
        while following <= now:
            following += step
    return ScheduledJob(
        name=f"jifen-{job}",
        job=job,
        cron=f"{minute} {hour} * * *",
        next_run_at=following,
        description=cron.description,
    )


def next_clearing_moment(program: ProgramClearing, now: dt.datetime) -> dt.datetime:
    """The program's first year-end moment after ``now`` (UTC)."""
    tz, month, day = program.timezone, program.clearing_month, program.clearing_day
    return clearing_moment(last_clearing_year(now, tz, month, day) + 1, month, day, tz)


def clearing_entry(program: ProgramClearing, now: dt.datetime) -> ScheduledJob:
    """The cron entry of a program's year-end clearing: its coming moment, as a UTC cron."""
    moment = next_clearing_moment(program, now)
    return ScheduledJob(
        name=f"jifen-clear_year-{program.code}",
        job="clear_year",
        cron=f"{moment.minute} {moment.hour} {moment.day} {moment.month} *",
        next_run_at=moment,
        description=(
            f"yearly: {program.code}'s clearing at the end of "
            f"{program.clearing_month:02d}-{program.clearing_day:02d} in {program.timezone}"
        ),
        params={"program": program.code},
        program=program.code,
        timezone=program.timezone,
    )


def program_clearings(db: Database) -> list[ProgramClearing]:
    """Every program's time zone and clearing settings, by code."""
    with db.read() as conn:
        rows = conn.execute(
            select(
                programs.c.code,
                programs.c.timezone,
                programs.c.clearing_policy,
                programs.c.clearing_month,
                programs.c.clearing_day,
            ).order_by(programs.c.code)
        ).all()
    return [ProgramClearing(*row) for row in rows]


def load_schedule(db: Database) -> list[ScheduledJob]:
    """The schedule for the programs in ``db``, as of its clock's now."""
    return build_schedule(program_clearings(db), db.clock.now())
