"""Running a job and its record in ``job_runs``: :func:`run_job`, :func:`last_runs`.

Every door runs a job the same way, through :func:`run_job`: the RQ worker (the entry points
in :mod:`loyalty.jobs`, enqueued by :mod:`loyalty.jobs.rq` or registered with ``rq cron`` by
:mod:`loyalty.jobs.cron_config`), the ``jifen`` commands inline, the console, and tests. What
each job runs is its :class:`~loyalty.jobs.specs.JobSpec`.

A run is one ``job_runs`` row, written in short transactions of its own: inserted as
``running``, its ``items``/``points``/``batches`` and ``heartbeat_at`` moved after each
committed batch, then ``succeeded`` with ``details`` or ``failed`` with the full traceback
in ``error`` (the exception is re-raised, so RQ marks its job failed too). A worker killed
mid-run cannot write anything: its row stays ``running`` with an old heartbeat, and the next
run of the same job marks it failed as abandoned (:data:`ABANDONED`) once the heartbeat is
older than ``stale_after`` (default 10 minutes; a batch takes seconds).
"""

from __future__ import annotations

import datetime as dt
import traceback
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, insert, select, update

from loyalty.db.database import Database
from loyalty.db.tables import job_runs
from loyalty.domain.checks import require_int, require_text
from loyalty.errors import InvalidInput
from loyalty.jobs.specs import JOB_NAMES, Outcome, Progress, check_params, job_spec
from loyalty.services.results import SweepResult

STALE_AFTER = dt.timedelta(minutes=10)
ABANDONED = (
    "abandoned: the worker stopped without finishing (killed or crashed); the next run carried on"
)
TRIGGER_MAX = 16  # job_runs.trigger is String(16)


@dataclass(frozen=True)
class JobRunInfo:
    """One run of a job as ``job_runs`` records it.

    ``status`` is ``running``, ``succeeded`` or ``failed``; ``items`` and ``points`` are what
    this run did (lots, holds or reminders, and the points they carried), ``error`` the
    traceback of a failed run.
    """

    id: int
    job: str
    job_id: str | None
    trigger: str
    status: str
    items: int
    points: int
    batches: int
    details: dict[str, Any]
    error: str | None
    started_at: dt.datetime
    heartbeat_at: dt.datetime
    finished_at: dt.datetime | None

    @property
    def duration(self) -> dt.timedelta:
        """From the start to the end, or to the last heartbeat while running."""
        return (self.finished_at or self.heartbeat_at) - self.started_at

    @property
    def error_line(self) -> str | None:
        """The exception's first line (its type and message) at the end of the traceback."""
        if not self.error:
            return None
        lines = self.error.rstrip().splitlines()
        frames = [i for i, line in enumerate(lines) if line.startswith("  File ")]
        after = lines[frames[-1] + 1 :] if frames else lines
        for line in after:  # the frame's source lines are indented, the exception is not
            if line.strip() and not line[0].isspace():
                return line.strip()
        return lines[-1].strip() if lines else None

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (what an RQ job returns as its result)."""
        return asdict(self)


def run_job(
    db: Database,
    name: str,
    *,
    trigger: str,
    job_id: str | None = None,
    stale_after: dt.timedelta = STALE_AFTER,
    on_progress: Progress | None = None,
    **params: Any,
) -> JobRunInfo:
    """Run job ``name`` with ``params`` and record the run in ``job_runs``; the finished run.

    ``trigger`` says who started it (``cli``, ``cron``, ``queue``…; at most 16 characters),
    ``job_id`` the RQ job it ran in. Runs of the same job still ``running`` with a heartbeat
    older than ``stale_after`` are marked failed as abandoned first. ``on_progress`` gets the
    running totals after each batch (after the run's row has been updated).

    A failing service call is recorded with its traceback and re-raised.
    """
    spec = job_spec(name)
    params = check_params(name, params)
    trigger = require_text("trigger", trigger, max_length=TRIGGER_MAX)
    if job_id is not None:
        job_id = require_text("job_id", job_id, max_length=255)
    run_id = _start(db, spec.name, trigger, job_id, params, stale_after)
    latest = SweepResult(items=0, points=0, batches=0)

    def progress(totals: SweepResult) -> None:
        nonlocal latest
        latest = totals
        _beat(db, run_id, totals)
        if on_progress is not None:
            on_progress(totals)

    try:
        outcome = spec.run(db, progress, **spec.arguments(params))
    except BaseException as exc:
        if _fail(db, run_id, latest, traceback.format_exc()):
            exc.add_note(f"job_runs: run {run_id} of job {spec.name} recorded this failure")
        raise
    return _succeed(db, run_id, outcome, params)


def _start(
    db: Database,
    job: str,
    trigger: str,
    job_id: str | None,
    params: dict[str, Any],
    stale_after: dt.timedelta,
) -> int:
    """Mark the job's stale runs abandoned and insert this run as ``running``; its id."""
    now = db.clock.now()
    with db.write() as conn:
        stale = (
            conn.execute(
                select(job_runs.c.id).where(
                    job_runs.c.job == job,
                    job_runs.c.status == "running",
                    job_runs.c.heartbeat_at < now - stale_after,
                )
            )
            .scalars()
            .all()
        )
        if stale:
            conn.execute(
                update(job_runs)
                .where(job_runs.c.id.in_(stale), job_runs.c.status == "running")
                .values(status="failed", error=ABANDONED, finished_at=job_runs.c.heartbeat_at)
            )
        details: dict[str, Any] = {"params": params}
        if stale:
            details["abandoned_runs"] = list(stale)
        return int(
            conn.execute(
                insert(job_runs)
                .values(
                    job=job,
                    job_id=job_id,
                    trigger=trigger,
                    status="running",
                    items=0,
                    points=0,
                    batches=0,
                    details=details,
                    started_at=now,
                    heartbeat_at=now,
                )
                .returning(job_runs.c.id)
            ).scalar_one()
        )


def _beat(db: Database, run_id: int, totals: SweepResult) -> None:
    """Record a batch: the running totals and a fresh heartbeat."""
    with db.write() as conn:
        conn.execute(
            update(job_runs)
            .where(job_runs.c.id == run_id)
            .values(
                items=totals.items,
                points=totals.points,
                batches=totals.batches,
                heartbeat_at=db.clock.now(),
            )
        )


def _succeed(db: Database, run_id: int, outcome: Outcome, params: dict[str, Any]) -> JobRunInfo:
    now = db.clock.now()
    with db.write() as conn:
        details = conn.execute(select(job_runs.c.details).where(job_runs.c.id == run_id)).scalar()
        conn.execute(
            update(job_runs)
            .where(job_runs.c.id == run_id)
            .values(
                status="succeeded",
                items=outcome.items,
                points=outcome.points,
                batches=outcome.batches,
                details={**(details or {"params": params}), **outcome.details},
                error=None,
                heartbeat_at=now,
                finished_at=now,
            )
        )
        return _info(conn.execute(select(job_runs).where(job_runs.c.id == run_id)).one())


def _fail(db: Database, run_id: int, totals: SweepResult, error: str) -> bool:
    """Record the failure (True once done); never hide the original error behind a second."""
    try:
        now = db.clock.now()
        with db.write() as conn:
            conn.execute(
                update(job_runs)
                .where(job_runs.c.id == run_id)
                .values(
                    status="failed",
                    items=totals.items,
                    points=totals.points,
                    batches=totals.batches,
                    error=error,
                    heartbeat_at=now,
                    finished_at=now,
                )
            )
    except Exception:  # the database may be what failed; the caller re-raises the cause
        traceback.print_exc()
        return False
    return True


def _info(row: Any) -> JobRunInfo:
    return JobRunInfo(
        id=row.id,
        job=row.job,
        job_id=row.job_id,
        trigger=row.trigger,
        status=row.status,
        items=row.items,
        points=row.points,
        batches=row.batches,
        details=dict(row.details or {}),
        error=row.error,
        started_at=row.started_at,
        heartbeat_at=row.heartbeat_at,
        finished_at=row.finished_at,
    )


def get_run(db: Database, run_id: int) -> JobRunInfo:
    """One run by its id; :class:`InvalidInput` if there is none."""
    with db.read() as conn:
        row = conn.execute(select(job_runs).where(job_runs.c.id == run_id)).first()
    if row is None:
        raise InvalidInput(f"no job run with id {run_id}", field="run_id")
    return _info(row)


def last_runs(
    db: Database, *, limit_per_job: int = 5, jobs: Iterable[str] | None = None
) -> list[JobRunInfo]:
    """The latest ``limit_per_job`` runs of each job (or of ``jobs``), by job, newest first."""
    require_int("limit_per_job", limit_per_job, minimum=1)
    names = [job_spec(j).name for j in jobs] if jobs is not None else None
    rank = (
        func.row_number()
        .over(
            partition_by=job_runs.c.job,
            order_by=(job_runs.c.started_at.desc(), job_runs.c.id.desc()),
        )
        .label("rank")
    )
    query = select(job_runs, rank)
    if names is not None:
        query = query.where(job_runs.c.job.in_(names))
    ranked = query.subquery()
    with db.read() as conn:
        rows = conn.execute(
            select(ranked)
            .where(ranked.c.rank <= limit_per_job)
            .order_by(ranked.c.job, ranked.c.started_at.desc(), ranked.c.id.desc())
        ).all()
    order = {name: i for i, name in enumerate(JOB_NAMES)}
    runs = [_info(r) for r in rows]
    return sorted(runs, key=lambda r: order.get(r.job, len(order)))  # stable: newest first
