"""Background jobs: what each job runs, and its record in ``job_runs``.

This module owns the time-driven work of Jifen as *jobs*: a name, plain parameters (ids,
strings, ints) and a service call. Every door runs a job the same way, through
:func:`run_job`: the RQ worker (the ``*_job`` entry points below, enqueued by
:mod:`loyalty.queue` or registered with ``rq cron`` by :mod:`loyalty.cron_config`), the
``jifen`` commands inline, and tests.

==============  ===========================================  ==========================
job             service                                      parameters
==============  ===========================================  ==========================
expire          :func:`~loyalty.services.expire_due`         ``batch_size``
mature          :func:`~loyalty.services.mature_pending`     ``batch_size``
hold_timeouts   :func:`~loyalty.services.expire_holds`       ``batch_size``
remind          :func:`~loyalty.services.send_reminders`     ``program``, ``days``
clear           :func:`~loyalty.services.clear_due_year_ends`  ``batch_size``
clear_year      :func:`~loyalty.services.clear_year_end`     ``program``, ``year``, ``batch_size``
==============  ===========================================  ==========================

The services are idempotent, resumable and safe to run concurrently, so a job is too: it
opens its own transactions (the service's, one per batch) and may run twice.

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
import os
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, insert, select, update

from loyalty import services as svc
from loyalty.db.database import Database, database_url_from_env
from loyalty.db.tables import job_runs
from loyalty.domain.checks import require_int, require_text
from loyalty.errors import InvalidInput
from loyalty.services.results import SweepResult

STALE_AFTER = dt.timedelta(minutes=10)
ABANDONED = (
    "abandoned: the worker stopped without finishing (killed or crashed); the next run carried on"
)
TRIGGER_MAX = 16  # job_runs.trigger is String(16)

Progress = Callable[[SweepResult], None]


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


@dataclass(frozen=True)
class Outcome:
    """What a job's service call did, as a job run records it."""

    items: int
    points: int
    batches: int = 0
    details: dict[str, Any] = field(default_factory=dict)


JobFunction = Callable[..., Outcome]


@dataclass(frozen=True)
class JobSpec:
    """A job: its name, what it does, the parameters it takes and the function that runs it."""

    name: str
    summary: str
    params: tuple[str, ...]
    run: JobFunction


def _expire(db: Database, progress: Progress, *, batch_size: int = 1000) -> Outcome:
    r = svc.expire_due(db, batch_size=_size(batch_size), on_batch=progress)
    return Outcome(r.items, r.points, r.batches)


def _mature(db: Database, progress: Progress, *, batch_size: int = 1000) -> Outcome:
    r = svc.mature_pending(db, batch_size=_size(batch_size), on_batch=progress)
    return Outcome(r.items, r.points, r.batches)


def _hold_timeouts(db: Database, progress: Progress, *, batch_size: int = 200) -> Outcome:
    r = svc.expire_holds(db, batch_size=_size(batch_size), on_batch=progress)
    return Outcome(r.items, r.points, r.batches)


def _remind(
    db: Database, progress: Progress, *, program: str | None = None, days: int | None = None
) -> Outcome:
    r = svc.send_reminders(db, program=program, days=days)
    details = {
        "created": r.created,
        "already_sent": r.already_sent,
        "callback_errors": r.callback_errors,
    }
    return Outcome(items=r.created, points=0, details=details)


def _clear(db: Database, progress: Progress, *, batch_size: int = 1000) -> Outcome:
    latest = _Latest(progress)
    results = svc.clear_due_year_ends(db, batch_size=_size(batch_size), on_batch=latest)
    return latest.outcome({"clearings": [_clearing(r) for r in results]})


def _clear_year(
    db: Database,
    progress: Progress,
    *,
    program: str,
    year: int | None = None,
    batch_size: int = 1000,
) -> Outcome:
    latest = _Latest(progress)
    result = svc.clear_year_end(
        db, program=program, year=year, batch_size=_size(batch_size), on_batch=latest
    )
    return latest.outcome({"clearings": [_clearing(result)]})


def _clearing(result: Any) -> dict[str, Any]:
    return {**result.to_record(), "replayed": result.replayed}


def _size(batch_size: Any) -> int:
    return require_int("batch_size", batch_size, minimum=1)


class _Latest:
    """A progress hook that remembers the last running totals it was given."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.totals = SweepResult(items=0, points=0, batches=0)

    def __call__(self, totals: SweepResult) -> None:
        self.totals = totals
        self.progress(totals)

    def outcome(self, details: dict[str, Any]) -> Outcome:
        t = self.totals
        return Outcome(t.items, t.points, t.batches, details)


JOBS: dict[str, JobSpec] = {
    spec.name: spec
    for spec in (
        JobSpec("expire", "rolling expiry of lots", ("batch_size",), _expire),
        JobSpec("mature", "pending points become available", ("batch_size",), _mature),
        JobSpec("hold_timeouts", "release timed-out holds", ("batch_size",), _hold_timeouts),
        JobSpec("remind", "points-expiring reminders", ("program", "days"), _remind),
        JobSpec("clear", "every year-end clearing that is due", ("batch_size",), _clear),
        JobSpec(
            "clear_year",
            "one program's year-end clearing",
            ("program", "year", "batch_size"),
            _clear_year,
        ),
    )
}
JOB_NAMES: tuple[str, ...] = tuple(JOBS)


def job_spec(name: str) -> JobSpec:
    """The job called ``name``; :class:`InvalidInput` naming the known jobs otherwise."""
    try:
        return JOBS[name]
    except (KeyError, TypeError):
        raise InvalidInput(
            f"unknown job {name!r}; the jobs are {', '.join(JOB_NAMES)}", field="job"
        ) from None


def check_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` if job ``name`` takes them and they are plain values (str, int, None)."""
    spec = job_spec(name)
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        takes = ", ".join(spec.params) or "no parameters"
        raise InvalidInput(
            f"job {name!r} takes {takes}; not {', '.join(unknown)}", field=unknown[0]
        )
    for key, value in params.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | str)):
            raise InvalidInput(
                f"job parameter {key} must be a string, an integer or None, got {value!r}",
                field=key,
            )
    return dict(params)


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
        outcome = spec.run(db, progress, **params)
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


# --- RQ entry points: plain values in, the database from $JIFEN_DATABASE_URL ----------------

_DATABASES: dict[str, tuple[int, Database]] = {}


def worker_database() -> Database:
    """The job's database, from ``$JIFEN_DATABASE_URL``, made once per process.

    A handle inherited through ``fork()`` (a forking worker's work horse) is never used: its
    pooled connections belong to the parent.
    """
    url = database_url_from_env()
    found = _DATABASES.get(url)
    if found is not None and found[0] == os.getpid():
        return found[1]
    if found is not None:
        found[1].engine.dispose(close=False)
    database = Database.from_url(url)
    _DATABASES[url] = (os.getpid(), database)
    return database


def dispose_worker_databases() -> None:
    """Close the databases the entry points opened in this process (tests, shutdown)."""
    for pid, database in _DATABASES.values():
        if pid == os.getpid():
            database.dispose()
    _DATABASES.clear()


def _run_queued(
    name: str, trigger: str, stale_after_seconds: int, params: dict[str, Any]
) -> dict[str, Any]:
    from rq import get_current_job

    current = get_current_job()
    stale_after = dt.timedelta(
        seconds=require_int("stale_after_seconds", stale_after_seconds, minimum=0)
    )
    run = run_job(
        worker_database(),
        name,
        trigger=trigger,
        job_id=current.id if current is not None else None,
        stale_after=stale_after,
        **params,
    )
    return run.to_dict()


STALE_SECONDS = int(STALE_AFTER.total_seconds())


def expire_job(
    *, batch_size: int = 1000, trigger: str = "queue", stale_after_seconds: int = STALE_SECONDS
) -> dict[str, Any]:
    """RQ entry point of ``expire``: rolling expiry of every due lot."""
    return _run_queued("expire", trigger, stale_after_seconds, {"batch_size": batch_size})


def mature_job(
    *, batch_size: int = 1000, trigger: str = "queue", stale_after_seconds: int = STALE_SECONDS
) -> dict[str, Any]:
    """RQ entry point of ``mature``: pending points whose return window ended."""
    return _run_queued("mature", trigger, stale_after_seconds, {"batch_size": batch_size})


def hold_timeouts_job(
    *, batch_size: int = 200, trigger: str = "queue", stale_after_seconds: int = STALE_SECONDS
) -> dict[str, Any]:
    """RQ entry point of ``hold_timeouts``: release holds whose time-out passed."""
    return _run_queued("hold_timeouts", trigger, stale_after_seconds, {"batch_size": batch_size})


def remind_job(
    *,
    program: str | None = None,
    days: int | None = None,
    trigger: str = "queue",
    stale_after_seconds: int = STALE_SECONDS,
) -> dict[str, Any]:
    """RQ entry point of ``remind``: points-expiring reminders (stored; see ``on_reminder``)."""
    params = {"program": program, "days": days}
    return _run_queued("remind", trigger, stale_after_seconds, params)


def clear_job(
    *, batch_size: int = 1000, trigger: str = "queue", stale_after_seconds: int = STALE_SECONDS
) -> dict[str, Any]:
    """RQ entry point of ``clear``: every program's year-end clearing that is due."""
    return _run_queued("clear", trigger, stale_after_seconds, {"batch_size": batch_size})


def clear_year_job(
    *,
    program: str,
    year: int | None = None,
    batch_size: int = 1000,
    trigger: str = "queue",
    stale_after_seconds: int = STALE_SECONDS,
) -> dict[str, Any]:
    """RQ entry point of ``clear_year``: one program's clearing (``year`` None: the latest due)."""
    params = {"program": program, "year": year, "batch_size": batch_size}
    return _run_queued("clear_year", trigger, stale_after_seconds, params)


ENTRY_POINTS: dict[str, Callable[..., dict[str, Any]]] = {
    "expire": expire_job,
    "mature": mature_job,
    "hold_timeouts": hold_timeouts_job,
    "remind": remind_job,
    "clear": clear_job,
    "clear_year": clear_year_job,
}
