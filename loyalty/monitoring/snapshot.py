"""The system's health as the database tells it: :func:`take_snapshot`.

One function, read by both the Prometheus collector (:mod:`loyalty.monitoring.collector`, at
scrape time) and the console's health strip, so the two never disagree. It reads:

* **job lag**: for each job on a fixed schedule, the end of its last successful run in
  ``job_runs`` and the time since; a job is *overdue* when that is longer than its period
  plus its time-out (an hourly job that may run an hour: two hours), or when it never
  succeeded;
* per program: **outbox backlog** (``events`` not dispatched), **webhook backlog**
  (``webhook_deliveries`` pending) and **failed deliveries**, **parked Stripe events**
  (``stripe_events`` waiting for a member or a purchase) and **open risk cases**
  (``risk_cases`` waiting for review);
* the **points the sweeps moved**, summed over ``job_runs`` per job (what every run of
  expire, clear, clear_year and mature recorded, failed runs' committed batches included).

Every count is one correlated subquery per program on an index: the partial indexes of
undispatched events and pending deliveries, ``ix_stripe_events_status``,
``ix_risk_cases_status`` and ``ix_job_runs_job_started``. Failed deliveries have no index
of their own: they are counted per endpoint (``ix_webhook_deliveries_endpoint``), reading
that endpoint's deliveries. Three statements in all.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, literal, select

from loyalty.db.database import Database
from loyalty.db.tables import (
    events,
    job_runs,
    programs,
    risk_cases,
    stripe_events,
    webhook_deliveries,
    webhook_endpoints,
)
from loyalty.jobs.specs import JOBS, Cron

# The sweeps whose runs' points the snapshot sums: what each one does to points.
SWEEP_POINTS = {
    "expire": "expired",
    "clear": "cleared",
    "clear_year": "cleared",
    "mature": "matured",
}


@dataclass(frozen=True)
class JobLag:
    """How long ago a scheduled job last succeeded, against how often it should."""

    job: str
    every_seconds: int
    allowed_seconds: int
    last_success_at: dt.datetime | None
    lag_seconds: float | None

    @property
    def overdue(self) -> bool:
        """It never succeeded, or not within its period plus its time-out."""
        return self.lag_seconds is None or self.lag_seconds > self.allowed_seconds


@dataclass(frozen=True)
class ProgramBacklog:
    """What waits in one program: events to dispatch, deliveries pending and failed,
    Stripe events parked, risk cases open."""

    program: str
    outbox: int = 0
    webhooks_pending: int = 0
    webhooks_failed: int = 0
    stripe_parked: int = 0
    risk_open: int = 0


@dataclass(frozen=True)
class HealthSnapshot:
    """Job lag (worst first), each program's backlog (by code) and the sweeps' points."""

    taken_at: dt.datetime
    jobs: tuple[JobLag, ...]
    programs: tuple[ProgramBacklog, ...]
    sweep_points: dict[str, int]

    def program(self, code: str) -> ProgramBacklog:
        """The backlog of program ``code`` (all zero if it has none or does not exist)."""
        for found in self.programs:
            if found.program == code:
                return found
        return ProgramBacklog(code)

    @property
    def overdue_jobs(self) -> tuple[JobLag, ...]:
        """The jobs that are overdue."""
        return tuple(j for j in self.jobs if j.overdue)


def period_seconds(cron: Cron) -> int:
    """How often a fixed cron entry fires: every minute, hourly or daily."""
    if cron.minute is None:
        return 60
    return 3600 if cron.hour is None else 86400


def scheduled_jobs() -> dict[str, tuple[int, int]]:
    """Every job on a fixed schedule: ``(period, allowed lag)`` in seconds."""
    return {
        spec.name: (period_seconds(spec.cron), period_seconds(spec.cron) + spec.policy.job_timeout)
        for spec in JOBS.values()
        if spec.cron is not None
    }


def take_snapshot(db: Database) -> HealthSnapshot:
    """Read the system's health now (by the database's clock)."""
    now = db.clock.now()
    with db.read() as conn:
        jobs = _job_lags(conn, now)
        backlogs = _backlogs(conn)
        points = _sweep_points(conn)
    return HealthSnapshot(taken_at=now, jobs=jobs, programs=backlogs, sweep_points=points)


def _last_success(job: str) -> Any:
    """Scalar subquery: the end of the job's latest successful run (newest start first)."""
    return (
        select(job_runs.c.finished_at)
        .where(job_runs.c.job == job, job_runs.c.status == "succeeded")
        .order_by(job_runs.c.started_at.desc())
        .limit(1)
        .scalar_subquery()
        .label(job)
    )


def _job_lags(conn: Connection, now: dt.datetime) -> tuple[JobLag, ...]:
    schedule = scheduled_jobs()
    row = conn.execute(select(*[_last_success(job) for job in schedule])).one()
    found = []
    for job, (every, allowed) in schedule.items():
        last: dt.datetime | None = row._mapping[job]
        lag = None if last is None else max((now - last).total_seconds(), 0.0)
        found.append(JobLag(job, every, allowed, last, lag))
    return tuple(sorted(found, key=_worst_first))


def _worst_first(lag: JobLag) -> tuple[int, float, str]:
    """Never succeeded first, then by how far past its allowance, then by name."""
    if lag.lag_seconds is None:
        return (0, 0.0, lag.job)
    return (1, -(lag.lag_seconds / lag.allowed_seconds), lag.job)


def _count(table: Any, *where: Any) -> Any:
    return select(func.count()).select_from(table).where(*where).scalar_subquery()


def _backlogs(conn: Connection) -> tuple[ProgramBacklog, ...]:
    d, e = webhook_deliveries.c, webhook_endpoints.c
    endpoint_deliveries = webhook_deliveries.join(webhook_endpoints, e.id == d.endpoint_id)
    query = select(
        programs.c.code,
        _count(events, events.c.program_id == programs.c.id, events.c.dispatched_at.is_(None)),
        _count(endpoint_deliveries, e.program_id == programs.c.id, d.status == "pending"),
        _count(endpoint_deliveries, e.program_id == programs.c.id, d.status == "failed"),
        _count(
            stripe_events,
            stripe_events.c.program_id == programs.c.id,
            stripe_events.c.status == "parked",
        ),
        _count(risk_cases, risk_cases.c.program_id == programs.c.id, risk_cases.c.status == "open"),
    ).order_by(programs.c.code)
    return tuple(
        ProgramBacklog(program, *(int(count) for count in counts))
        for program, *counts in conn.execute(query)
    )


def _sweep_points(conn: Connection) -> dict[str, int]:
    """Points each sweep's runs moved, by what they did (expired, cleared, matured)."""
    rows = conn.execute(
        select(job_runs.c.job, func.coalesce(func.sum(job_runs.c.points), literal(0)))
        .where(job_runs.c.job.in_(sorted(SWEEP_POINTS)))
        .group_by(job_runs.c.job)
    ).all()
    totals = dict.fromkeys(sorted(set(SWEEP_POINTS.values())), 0)
    for job, points in rows:
        totals[SWEEP_POINTS[job]] += int(points)
    return totals
