"""Background jobs: the time-driven work of Jifen, and the RQ entry points that run it.

========================  ===============================================================
:mod:`.specs`             the one table of jobs: a ``JobSpec`` each (what it runs, its
                          parameters, retry policy, cron, console and ``jifen sweep`` use)
:mod:`.runs`              :func:`run_job` and the ``job_runs`` records
:mod:`.rq`                Redis and RQ: enqueue (or run inline), the worker, cron entries
:mod:`.worker`            what an entry point does in the worker: ``run_queued``
:mod:`.schedule`          the cron schedule, built from the specs and the programs
:mod:`.cron_config`       the configuration module for ``rq cron``
========================  ===============================================================

The ``*_job`` functions below are the RQ entry points. RQ stores a job's function as the
dotted path ``loyalty.jobs.<name>_job`` in Redis (:attr:`JobSpec.entry_point`), so they stay
here, under these names, for as long as queued jobs may name them.
"""

from __future__ import annotations

from typing import Any

from loyalty.db.tables import job_runs
from loyalty.jobs.runs import (
    ABANDONED,
    STALE_AFTER,
    TRIGGER_MAX,
    JobRunInfo,
    get_run,
    last_runs,
    run_job,
)
from loyalty.jobs.specs import (
    JOB_NAMES,
    JOBS,
    JobParam,
    JobSpec,
    Outcome,
    check_params,
    job_spec,
)
from loyalty.jobs.worker import dispose_worker_databases, run_queued, worker_database

__all__ = [
    "ABANDONED",
    "JOBS",
    "JOB_NAMES",
    "STALE_AFTER",
    "TRIGGER_MAX",
    "JobParam",
    "JobRunInfo",
    "JobSpec",
    "Outcome",
    "check_params",
    "clear_job",
    "clear_year_job",
    "dispose_worker_databases",
    "events_job",
    "expire_job",
    "get_run",
    "hold_timeouts_job",
    "job_runs",
    "job_spec",
    "last_runs",
    "mature_job",
    "remind_job",
    "risk_job",
    "run_job",
    "tiers_job",
    "worker_database",
]


def expire_job(**kwargs: Any) -> dict[str, Any]:
    """RQ entry point of ``expire``: rolling expiry of every due lot."""
    return run_queued("expire", **kwargs)


def mature_job(**kwargs: Any) -> dict[str, Any]:
    """RQ entry point of ``mature``: pending points whose return window ended."""
    return run_queued("mature", **kwargs)


def hold_timeouts_job(**kwargs: Any) -> dict[str, Any]:
    """RQ entry point of ``hold_timeouts``: release holds whose time-out passed."""
    return run_queued("hold_timeouts", **kwargs)


def remind_job(**kwargs: Any) -> dict[str, Any]:
    """RQ entry point of ``remind``: points-expiring reminders (stored; see ``on_reminder``)."""
    return run_queued("remind", **kwargs)


def clear_job(**kwargs: Any) -> dict[str, Any]:
    """RQ entry point of ``clear``: every program's year-end clearing that is due."""
    return run_queued("clear", **kwargs)


def tiers_job(**kwargs: Any) -> dict[str, Any]:
    """RQ entry point of ``tiers``: member tier evaluations that are due."""
    return run_queued("tiers", **kwargs)


def risk_job(**kwargs: Any) -> dict[str, Any]:
    """RQ entry point of ``risk``: evaluate every program's flag and hold risk rules."""
    return run_queued("risk", **kwargs)


def events_job(**kwargs: Any) -> dict[str, Any]:
    """RQ entry point of ``events``: dispatch and deliver outbound events, then the due
    reminder e-mails."""
    return run_queued("events", **kwargs)


def clear_year_job(**kwargs: Any) -> dict[str, Any]:
    """RQ entry point of ``clear_year``: one program's clearing (``year`` None: the latest due)."""
    return run_queued("clear_year", **kwargs)
