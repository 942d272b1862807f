"""The RQ adapter: Jifen's jobs on a Redis queue, or inline when there is no Redis.

This module owns everything that knows about Redis and RQ: the connection (from an argument
or ``$JIFEN_REDIS_URL``; none means *no Redis: run inline*, see :func:`submit`), the queue
(``jifen``), the job ids, the timeouts and retention, the worker and the cron entries (what
an entry point does inside a worker is :mod:`loyalty.jobs.worker`). Each job's slot, time-out and
retries are its :class:`~loyalty.jobs.specs.RetryPolicy`; its entry point is
``loyalty.jobs.<name>_job`` (:attr:`~loyalty.jobs.specs.JobSpec.entry_point`).

**Job ids** are deterministic: ``jifen-<job>-<slot>``, the slot being the UTC hour for
``expire``, ``mature`` and ``clear`` (``jifen-expire-2026-11-21T10``), the minute for
``hold_timeouts``, the day for ``remind``; ``clear_year`` names the program and year. RQ
allows only letters, digits, ``_`` and ``-`` in an id. Jobs are enqueued with
``unique=True``, so asking twice for the same slot does nothing the second time
(:attr:`Enqueued.created` is False): the job with that id is still there, queued, running,
finished (kept a day) or failed (kept 7 days with its traceback). A new run in the same
slot needs another id (``job_id=``); the next slot gets one by itself.

A worker killed in the middle of a job leaves that job *started* in RQ until RQ's own
maintenance notices the lost heartbeat (a minute or two) and moves it to the failed
registry, or retries it if retries are left. The sweeps are resumable, so nothing is lost:
the next slot's run (or a run under a new id) carries on where the killed one stopped, and
marks the killed run abandoned in ``job_runs``. Jifen never deletes or re-uses the id of a
job that may still be running.

**Jobs are enqueued only after the transaction that asked for them has committed**, so a
worker never looks for rows that are not there yet (or never will be): inside a unit of work,
:func:`submit_after_commit` registers the submission as an after-commit hook of the unit, and
a unit that rolls back submits nothing.

Cron-started jobs (``rq cron`` / ``jifen cron``) get ids from RQ, because rq's cron cannot
name a job per run; there must be exactly one cron process (rq has no leader election),
and a duplicate would only run an idempotent sweep twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry, SimpleWorker, Worker
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job
from rq.utils import import_attribute
from rq.worker import BaseWorker

from loyalty.config import REDIS_URL_ENV, load_settings
from loyalty.db.database import Database
from loyalty.domain.checks import require_aware, require_int
from loyalty.domain.clock import SystemClock
from loyalty.errors import ConfigurationError, InvalidInput
from loyalty.jobs.runs import JobRunInfo, run_job
from loyalty.jobs.schedule import ScheduledJob
from loyalty.jobs.specs import HOUR, JobSpec, check_params, job_spec
from loyalty.services.uow import UnitOfWork

QUEUE_NAME = "jifen"
DAY = 24 * HOUR
RESULT_TTL = DAY  # a finished job (and its result) is kept a day
FAILURE_TTL = 7 * DAY  # a failed job keeps its traceback for a week
JOB_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]+")  # what RQ accepts


def redis_url_from_env(url: str | None = None) -> str | None:
    """``url`` if given, else ``$JIFEN_REDIS_URL``; None means no Redis (run jobs inline)."""
    return url or load_settings().redis_url


def require_redis_url(url: str | None = None) -> str:
    """The Redis URL, or a :class:`ConfigurationError` saying how to give one."""
    found = redis_url_from_env(url)
    if found is None:
        raise ConfigurationError(
            f"no Redis URL: pass --redis-url redis://127.0.0.1:6379/0 or set {REDIS_URL_ENV} "
            "(without Redis, run the job inline: leave out --enqueue)"
        )
    return found


def connect(url: str | None = None) -> Redis:
    """A Redis connection (bytes replies, as RQ needs), checked with a PING."""
    found = require_redis_url(url)
    try:
        connection = Redis.from_url(found, socket_connect_timeout=5)
        connection.ping()
    except (RedisError, ValueError) as exc:
        raise ConfigurationError(
            f"cannot reach Redis at {_safe(found)} ({type(exc).__name__}: {exc}); start it "
            "(redis-server) or fix --redis-url / $JIFEN_REDIS_URL"
        ) from exc
    return connection


def _safe(url: str) -> str:
    return re.sub(r"//[^@/]*@", "//***@", url)


def job_queue(connection: Redis) -> Queue:
    """Jifen's queue on ``connection``."""
    return Queue(QUEUE_NAME, connection=connection)


def _id_part(text: str) -> str:
    """``text`` as part of an RQ job id: unchanged if RQ accepts it, else cleaned and hashed."""
    if JOB_ID_PATTERN.fullmatch(text):
        return text
    digest = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:8]
    return f"{re.sub(r'[^A-Za-z0-9_-]', '_', text)}_{digest}"


def default_job_id(name: str, params: Mapping[str, Any], at: dt.datetime) -> str:
    """The deterministic id of job ``name`` with ``params`` in the slot that contains ``at``."""
    slot = require_aware("at", at).strftime(job_spec(name).policy.slot)
    if name == "clear_year":
        program = _id_part(str(params.get("program")))
        year = params.get("year")
        return f"jifen-clear_year-{program}-{year if year is not None else slot}"
    if name == "remind" and params.get("program") is not None:
        return f"jifen-remind-{_id_part(str(params['program']))}-{slot}"
    return f"jifen-{name}-{slot}"


@dataclass(frozen=True)
class Enqueued:
    """What :func:`enqueue` did: ``created`` a job, or found one with that id already.

    ``status`` is the job's RQ status (``queued``, ``started``, ``finished``, ``failed``…).
    """

    job: str
    job_id: str
    created: bool
    status: str

    @property
    def message(self) -> str:
        """``queued``, or ``already queued`` with the existing job's status and what to do."""
        if self.created:
            return "queued"
        hint = {
            "started": "; if its worker died, the next slot's run carries on (or run it inline "
            "now: leave out --enqueue)",
            "failed": "; see `jifen jobs` for why, and run it inline now (leave out --enqueue) "
            "or let the next slot's run carry on",
        }.get(self.status, "")
        return f"already queued (that job is {self.status}); nothing done{hint}"


def enqueue(
    name: str,
    *,
    params: Mapping[str, Any] | None = None,
    job_id: str | None = None,
    redis_url: str | None = None,
    connection: Redis | None = None,
    at: dt.datetime | None = None,
    trigger: str = "queue",
    retries: int | None = None,
    stale_after_seconds: int | None = None,
) -> Enqueued:
    """Put job ``name`` on the queue under ``job_id`` (default: :func:`default_job_id`).

    Unique: when a job with that id exists, nothing is enqueued and the result says so.
    Call it only after the transaction that asked for the job has committed.
    ``retries`` overrides the job's retry count (0: none).
    """
    spec = job_spec(name)
    params = check_params(spec.name, params or {})
    policy = spec.policy
    when = at or SystemClock().now()
    job_id = job_id or default_job_id(spec.name, params, when)
    if not JOB_ID_PATTERN.fullmatch(job_id):
        raise InvalidInput(
            f"job id {job_id!r} may only hold letters, digits, '_' and '-'", field="job_id"
        )
    intervals = policy.retry_intervals
    if retries is not None:
        base = policy.retry_intervals or (60,)
        count = require_int("retries", retries, minimum=0)
        intervals = tuple(base[min(i, len(base) - 1)] for i in range(count))
    kwargs: dict[str, Any] = {**params, "trigger": trigger}
    if stale_after_seconds is not None:
        kwargs["stale_after_seconds"] = stale_after_seconds
    conn = connection if connection is not None else connect(redis_url)
    queue = job_queue(conn)
    try:
        queue.enqueue_call(
            entry_point(spec),
            kwargs=kwargs,
            job_id=job_id,
            unique=True,
            timeout=policy.job_timeout,
            result_ttl=RESULT_TTL,
            failure_ttl=FAILURE_TTL,
            retry=Retry(max=len(intervals), interval=list(intervals)) if intervals else None,
            description=f"jifen {spec.name} {params}" if params else f"jifen {spec.name}",
        )
    except DuplicateJobError:
        return Enqueued(spec.name, job_id, created=False, status=_status(conn, job_id))
    return Enqueued(spec.name, job_id, created=True, status="queued")


def _status(connection: Redis, job_id: str) -> str:
    """The RQ status of job ``job_id`` (``gone`` once it has expired)."""
    try:
        status = Job.fetch(job_id, connection=connection).get_status()
    except NoSuchJobError:
        return "gone"
    return status.value if status is not None else "gone"


def submit(
    name: str,
    *,
    params: Mapping[str, Any] | None = None,
    db: Database | None = None,
    redis_url: str | None = None,
    job_id: str | None = None,
    trigger: str = "inline",
) -> Enqueued | JobRunInfo:
    """Enqueue job ``name`` when Redis is configured, else run it inline in ``db`` now.

    Inline runs are recorded in ``job_runs`` like queued ones (trigger ``inline``).
    """
    url = redis_url_from_env(redis_url)
    if url is not None:
        return enqueue(name, params=params, job_id=job_id, redis_url=url)
    database = db if db is not None else Database.from_url()
    return run_job(database, name, trigger=trigger, job_id=job_id, **dict(params or {}))


def submit_after_commit(
    uow: UnitOfWork,
    name: str,
    *,
    params: Mapping[str, Any] | None = None,
    redis_url: str | None = None,
    job_id: str | None = None,
    trigger: str = "inline",
) -> None:
    """:func:`submit` job ``name`` once ``uow`` has committed (never if it rolls back).

    The parameters are checked now, so a bad one fails the unit instead of the hook.
    """
    check_params(name, dict(params or {}))
    uow.after_commit(
        lambda: submit(
            name, params=params, db=uow.db, redis_url=redis_url, job_id=job_id, trigger=trigger
        )
    )


def entry_point(spec: JobSpec) -> Callable[..., dict[str, Any]]:
    """The job's RQ entry point (``loyalty.jobs.<name>_job``)."""
    found: Callable[..., dict[str, Any]] = import_attribute(spec.entry_point)
    return found


def make_worker(connection: Redis, *, simple: bool = False) -> BaseWorker:
    """A worker on Jifen's queue: forking (a work horse per job), or in-process if ``simple``."""
    worker_class: type[BaseWorker] = SimpleWorker if simple else Worker
    return worker_class([job_queue(connection)], connection=connection)


def cron_options(entry: ScheduledJob) -> dict[str, Any]:
    """The keyword arguments of rq's ``cron.register`` / ``CronScheduler.register`` for it."""
    spec = job_spec(entry.job)
    return {
        "func": entry_point(spec),
        "queue_name": QUEUE_NAME,
        "kwargs": {**entry.params, "trigger": "cron"},
        "cron": entry.cron,
        "job_timeout": spec.policy.job_timeout,
        "result_ttl": RESULT_TTL,
        "failure_ttl": FAILURE_TTL,
        "name": entry.name,
    }


def register_schedule(
    entries: list[ScheduledJob], register: Callable[..., Any]
) -> list[dict[str, Any]]:
    """Register every entry with ``register`` (rq's ``cron.register`` or a scheduler's)."""
    options = [cron_options(entry) for entry in entries]
    for option in options:
        register(**option)
    return options
