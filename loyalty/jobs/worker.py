"""What an RQ entry point does inside a worker: plain values in, the database from the settings.

:func:`run_queued` runs a job through :func:`~loyalty.jobs.runs.run_job` in the process's
:func:`worker_database` (``$JIFEN_DATABASE_URL``) and records it under the current RQ job's
id. Importing this module does not import RQ (the ``jifen`` commands load it on every start).
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from loyalty.config import load_settings
from loyalty.db.database import Database, database_url_from_env
from loyalty.domain.checks import require_int
from loyalty.jobs.runs import STALE_AFTER, run_job
from loyalty.jobs.specs import check_params, job_spec

STALE_SECONDS = int(STALE_AFTER.total_seconds())
_DATABASES: dict[str, tuple[int, Database]] = {}


def worker_database() -> Database:
    """The job's database, from ``$JIFEN_DATABASE_URL``, made once per process.

    A handle inherited through ``fork()`` (a forking worker's work horse) is never used: its
    pooled connections belong to the parent.
    """
    url = database_url_from_env(load_settings().database_url)
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


def run_queued(
    name: str,
    *,
    trigger: str = "queue",
    stale_after_seconds: int = STALE_SECONDS,
    **params: Any,
) -> dict[str, Any]:
    """What an entry point does: run job ``name`` in :func:`worker_database` and record it
    (every parameter, defaults filled in) under the current RQ job's id; the run as a dict."""
    from rq import get_current_job

    spec = job_spec(name)
    given = check_params(spec.name, params)
    current = get_current_job()
    stale_after = dt.timedelta(
        seconds=require_int("stale_after_seconds", stale_after_seconds, minimum=0)
    )
    run = run_job(
        worker_database(),
        spec.name,
        trigger=trigger,
        job_id=current.id if current is not None else None,
        stale_after=stale_after,
        **spec.with_defaults(given),
    )
    return run.to_dict()
