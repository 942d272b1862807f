"""When Jifen's jobs run: the schedule as rq cron entries, built from the programs.

:func:`build_schedule` is pure: given the programs' clearing settings and the time now, it
returns one :class:`ScheduledJob` per cron entry, each with a cron string in **UTC** (rq
evaluates cron strings in UTC) and its next run:

==============  ================  ===================================================
job             cron (UTC)        why
==============  ================  ===================================================
hold_timeouts   ``* * * * *``     holds time out after minutes; release them promptly
mature          ``0 * * * *``     pending points become available within the hour
expire          ``5 * * * *``     after maturation, so the two sweeps rarely meet
clear           ``15 * * * *``    safety net: every year-end clearing that is due
remind          ``0 1 * * *``     daily (09:00 in Asia/Shanghai)
clear_year      per program       the program's own year-end moment, in its time zone
==============  ================  ===================================================

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


@dataclass(frozen=True)
class _Fixed:
    job: str
    minute: int | None  # None: every minute
    hour: int | None  # None: every hour
    description: str


FIXED = (
    _Fixed("hold_timeouts", None, None, "every minute: release timed-out holds"),
    _Fixed("mature", 0, None, "hourly: pending points become available"),
    _Fixed("expire", 5, None, "hourly: rolling expiry"),
    _Fixed("clear", 15, None, "hourly: every year-end clearing that is due (safety net)"),
    _Fixed("remind", 0, 1, "daily: points-expiring reminders"),
)


def build_schedule(programs: Iterable[ProgramClearing], now: dt.datetime) -> list[ScheduledJob]:
    """Every cron entry for these programs: the fixed jobs, then one clearing per program."""
    entries = [_fixed(f, now) for f in FIXED]
    for p in sorted(programs, key=lambda p: p.code):
        if p.clearing_policy != "none":
            entries.append(clearing_entry(p, now))
    return entries


def _fixed(f: _Fixed, now: dt.datetime) -> ScheduledJob:
    minute = "*" if f.minute is None else str(f.minute)
    hour = "*" if f.hour is None else str(f.hour)
    start = now.astimezone(dt.UTC).replace(second=0, microsecond=0)
    if f.minute is None:
        following = start + MINUTE
    else:
        step = dt.timedelta(hours=1) if f.hour is None else dt.timedelta(days=1)
        following = start.replace(minute=f.minute, hour=start.hour if f.hour is None else f.hour)
        while following <= now:
            following += step
    return ScheduledJob(
        name=f"jifen-{f.job}",
        job=f.job,
        cron=f"{minute} {hour} * * *",
        next_run_at=following,
        description=f.description,
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
