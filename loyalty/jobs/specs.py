"""The one table of Jifen's jobs: a :class:`JobSpec` per job, and what each one runs.

A job is a name, plain parameters (ids, strings, ints) and a service call. Everything else
that knows about a job reads its spec here: :mod:`loyalty.jobs.runs` (``run_job`` and the
``job_runs`` records), :mod:`loyalty.jobs.rq` (ids, time-outs, retries, the entry point),
:mod:`loyalty.jobs.schedule` (the cron entries), the ``jifen`` commands (``sweep``,
``jobs --job``) and the console's jobs page ("Run now").

==============  ===========================================  ==========================
job             service                                      parameters
==============  ===========================================  ==========================
expire          :func:`~loyalty.services.expire_due`         ``batch_size``
mature          :func:`~loyalty.services.mature_pending`     ``batch_size``
hold_timeouts   :func:`~loyalty.services.expire_holds`       ``batch_size``
remind          :func:`~loyalty.services.send_reminders`     ``program``, ``days``
clear           :func:`~loyalty.services.clear_due_year_ends`  ``batch_size``
clear_year      :func:`~loyalty.services.clear_year_end`     ``program``, ``year``, ``batch_size``
tiers           :func:`~loyalty.services.evaluate_tiers`     ``program``, ``batch_size``
events          :func:`~loyalty.events.delivery.run_outbound`  (none)
==============  ===========================================  ==========================

The services are idempotent, resumable and safe to run concurrently, so a job is too: it
opens its own transactions (the service's, one per batch) and may run twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from loyalty import services as svc
from loyalty.db.database import Database
from loyalty.domain.checks import require_int
from loyalty.errors import InvalidInput
from loyalty.services.results import SweepResult
from loyalty.services.tier_results import TierSweepResult
from loyalty.services.tier_warnings import warn_tier_downgrades

Progress = Callable[[SweepResult], None]
HOUR = 3600
ENTRY_POINT_MODULE = "loyalty.jobs"  # RQ stores "<module>.<name>_job" with every job: never move


Outcome = SweepResult
"""What a job's service call did, as its run records it: items, points, batches, details."""

JobFunction = Callable[..., Outcome]


@dataclass(frozen=True)
class JobParam:
    """A job parameter: its default (used when it is left out), or ``required``.

    ``minimum`` is checked when the job runs (a refused value is a failed run, recorded).
    """

    name: str
    default: int | str | None = None
    required: bool = False
    minimum: int | None = None

    def check(self, value: Any) -> Any:
        """``value`` if it is at least ``minimum`` (when there is one)."""
        if self.minimum is None:
            return value
        return require_int(self.name, value, minimum=self.minimum)


@dataclass(frozen=True)
class RetryPolicy:
    """How a job runs on RQ: its id's slot (``strftime`` in UTC), timeout and retries."""

    slot: str
    job_timeout: int
    retry_intervals: tuple[int, ...] = (60, 300)


@dataclass(frozen=True)
class Cron:
    """A fixed cron entry in UTC: at ``minute`` (None: every minute) of ``hour`` (None: every
    hour), described as ``description`` in the printed schedule."""

    minute: int | None
    hour: int | None
    description: str


@dataclass(frozen=True)
class Sweep:
    """A job that ``jifen sweep`` runs: its ``--only`` name and its place in the running order."""

    option: str
    step: int


@dataclass(frozen=True)
class JobSpec:
    """Everything about one job.

    ``run`` is called with the database, a progress hook and every parameter (defaults
    filled in). ``policy`` says how RQ runs it; ``cron`` when the schedule runs it (None: not
    on a fixed schedule; ``clear_year`` is scheduled per program by
    :func:`loyalty.jobs.schedule.clearing_entry`); ``console`` whether the console's "Run now"
    may run it (a job with a ``program`` parameter runs for the console's program); ``sweep``
    whether ``jifen sweep`` runs it.
    """

    name: str
    summary: str
    run: JobFunction
    params: tuple[JobParam, ...]
    policy: RetryPolicy
    cron: Cron | None = None
    console: bool = False
    sweep: Sweep | None = None

    @property
    def param_names(self) -> tuple[str, ...]:
        """The parameters' names, in order."""
        return tuple(p.name for p in self.params)

    @property
    def entry_point(self) -> str:
        """The dotted path of its RQ entry point, as RQ stores it with every queued job."""
        return f"{ENTRY_POINT_MODULE}.{self.name}_job"

    def with_defaults(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Every parameter: the ``given`` values, the defaults for the rest."""
        return {p.name: given.get(p.name, p.default) for p in self.params}

    def arguments(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Every parameter for ``run``, checked (:meth:`JobParam.check`), defaults filled in."""
        values = self.with_defaults(given)
        return {p.name: p.check(values[p.name]) for p in self.params}


def _expire(db: Database, progress: Progress, *, batch_size: int) -> Outcome:
    r = svc.expire_due(db, batch_size=batch_size, on_batch=progress)
    return Outcome(r.items, r.points, r.batches)


def _mature(db: Database, progress: Progress, *, batch_size: int) -> Outcome:
    r = svc.mature_pending(db, batch_size=batch_size, on_batch=progress)
    return Outcome(r.items, r.points, r.batches)


def _hold_timeouts(db: Database, progress: Progress, *, batch_size: int) -> Outcome:
    r = svc.expire_holds(db, batch_size=batch_size, on_batch=progress)
    return Outcome(r.items, r.points, r.batches)


def _remind(db: Database, progress: Progress, *, program: str | None, days: int | None) -> Outcome:
    r = svc.send_reminders(db, program=program, days=days)
    details = {
        "created": r.created,
        "already_sent": r.already_sent,
        "callback_errors": r.callback_errors,
    }
    return Outcome(items=r.created, points=0, details=details)


def _clear(db: Database, progress: Progress, *, batch_size: int) -> Outcome:
    latest = _Latest(progress)
    results = svc.clear_due_year_ends(db, batch_size=batch_size, on_batch=latest)
    return latest.outcome({"clearings": [_clearing(r) for r in results]})


def _clear_year(
    db: Database, progress: Progress, *, program: str, year: int | None, batch_size: int
) -> Outcome:
    latest = _Latest(progress)
    result = svc.clear_year_end(
        db, program=program, year=year, batch_size=batch_size, on_batch=latest
    )
    return latest.outcome({"clearings": [_clearing(result)]})


def _tiers(db: Database, progress: Progress, *, program: str | None, batch_size: int) -> Outcome:
    def show(totals: TierSweepResult) -> None:
        progress(SweepResult(items=totals.evaluated, points=0, batches=totals.batches))

    r = svc.evaluate_tiers(db, program=program, batch_size=batch_size, on_batch=show)
    warned = warn_tier_downgrades(db, program=program)
    details = {"up": r.up, "kept": r.kept, "down": r.down, "warned": warned}
    return Outcome(items=r.evaluated, points=0, batches=r.batches, details=details)


def _risk(db: Database, progress: Progress, *, program: str | None) -> Outcome:
    from loyalty.services.risk_scan import scan_risk

    r = scan_risk(db, program=program)
    progress(SweepResult(items=r.trips, points=0, batches=r.rules))
    details = {
        "rules": r.rules,
        "opened": r.opened,
        "updated": r.updated,
        "reopened": r.reopened,
        "held": r.held,
    }
    return Outcome(items=r.trips, points=0, batches=r.rules, details=details)


EVENTS_BUDGET_SECONDS = 45  # a run a minute: stop starting rounds before the next one


def _events(db: Database, progress: Progress) -> Outcome:
    from loyalty.events.delivery import OutboundRun, run_outbound

    def show(totals: OutboundRun) -> None:
        progress(SweepResult(items=totals.delivery.attempted, points=0, batches=totals.rounds))

    r = run_outbound(db, budget_seconds=EVENTS_BUDGET_SECONDS, on_round=show)
    sent = r.delivery
    details: dict[str, Any] = {
        "dispatched": r.dispatched,
        "deliveries_made": r.deliveries_made,
        "delivered": sent.delivered,
        "retrying": sent.retrying,
        "failed": sent.failed,
        "disabled_endpoints": sent.disabled_endpoints,
        "emails": None if r.emails is None else dataclasses.asdict(r.emails),
    }
    return Outcome(items=sent.attempted, points=0, batches=r.rounds, details=details)


def _clearing(result: Any) -> dict[str, Any]:
    return {**result.to_record(), "replayed": result.replayed}


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


def _batch_size(default: int) -> JobParam:
    return JobParam("batch_size", default, minimum=1)


HOURLY_SLOT = "%Y-%m-%dT%H"

JOBS: dict[str, JobSpec] = {
    spec.name: spec
    for spec in (
        JobSpec(
            "expire",
            "rolling expiry of lots",
            _expire,
            (_batch_size(1000),),
            RetryPolicy(HOURLY_SLOT, HOUR),
            cron=Cron(5, None, "hourly: rolling expiry"),  # after mature: they rarely meet
            console=True,
            sweep=Sweep("expire", 3),
        ),
        JobSpec(
            "mature",
            "pending points become available",
            _mature,
            (_batch_size(1000),),
            RetryPolicy(HOURLY_SLOT, HOUR),
            cron=Cron(0, None, "hourly: pending points become available"),
            console=True,
            sweep=Sweep("mature", 2),
        ),
        JobSpec(
            "hold_timeouts",
            "release timed-out holds",
            _hold_timeouts,
            (_batch_size(200),),
            RetryPolicy("%Y-%m-%dT%H%M", 10 * 60, ()),  # the next minute is the retry
            cron=Cron(None, None, "every minute: release timed-out holds"),  # minutes matter
            console=True,
            sweep=Sweep("holds", 1),
        ),
        JobSpec(
            "remind",
            "points-expiring reminders",
            _remind,
            (JobParam("program"), JobParam("days")),
            RetryPolicy("%Y-%m-%d", HOUR),
            cron=Cron(0, 1, "daily: points-expiring reminders"),  # 09:00 in Asia/Shanghai
            console=True,
        ),
        JobSpec(
            "clear",
            "every year-end clearing that is due",
            _clear,
            (_batch_size(1000),),
            RetryPolicy(HOURLY_SLOT, 4 * HOUR),
            cron=Cron(15, None, "hourly: every year-end clearing that is due (safety net)"),
            console=True,
        ),
        JobSpec(
            "clear_year",
            "one program's year-end clearing",
            _clear_year,
            (JobParam("program", required=True), JobParam("year"), _batch_size(1000)),
            RetryPolicy(HOURLY_SLOT, 4 * HOUR),
        ),
        JobSpec(
            "tiers",
            "member tier evaluations that are due",
            _tiers,
            (JobParam("program"), _batch_size(500)),
            RetryPolicy("%Y-%m-%d", 4 * HOUR),
            cron=Cron(30, 16, "daily: member tier evaluations"),  # 00:30 in Asia/Shanghai
            console=True,
        ),
        JobSpec(
            "events",
            "dispatch and deliver outbound events, send reminder e-mails",
            _events,
            (),
            RetryPolicy("%Y-%m-%dT%H%M", 10 * 60, ()),  # the next minute is the retry
            cron=Cron(None, None, "every minute: webhook deliveries and reminder e-mails"),
            console=True,
        ),
        JobSpec(
            "risk",
            "evaluate the risk rules (velocity, farming, transfer rings, issuance spikes)",
            _risk,
            (JobParam("program"),),
            RetryPolicy("%Y-%m-%dT%H%M", 10 * 60, ()),  # the next minute is the retry
            cron=Cron(None, None, "every minute: risk rules open and add to cases"),
            console=True,
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
    """``params`` if job ``name`` takes them, has its required ones and they are plain values
    (str, int, None)."""
    spec = job_spec(name)
    unknown = sorted(set(params) - set(spec.param_names))
    if unknown:
        takes = ", ".join(spec.param_names) or "no parameters"
        raise InvalidInput(
            f"job {name!r} takes {takes}; not {', '.join(unknown)}", field=unknown[0]
        )
    for key, value in params.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | str)):
            raise InvalidInput(
                f"job parameter {key} must be a string, an integer or None, got {value!r}",
                field=key,
            )
    missing = [p.name for p in spec.params if p.required and params.get(p.name) is None]
    if missing:
        raise InvalidInput(f"job {name!r} needs {', '.join(missing)}", field=missing[0])
    return dict(params)


def sweeps() -> dict[str, str]:
    """``jifen sweep --only`` names to job names, in running order."""
    found = sorted((s.sweep.step, s.sweep.option, s.name) for s in JOBS.values() if s.sweep)
    return {option: name for _step, option, name in found}


def console_jobs() -> tuple[str, ...]:
    """The jobs the console's "Run now" may run."""
    return tuple(s.name for s in JOBS.values() if s.console)
