"""The jobs' commands: ``worker``, ``cron``, ``sweep``, ``remind``, ``clear`` and ``jobs``.

Each job a command runs is a :class:`~loyalty.jobs.specs.JobSpec`: run here with live
progress (recorded in ``job_runs`` with trigger ``cli``), or with ``--enqueue`` put on the
RQ queue for ``jifen worker``.
"""

from __future__ import annotations

import os
from typing import Any

import click

from loyalty.cli.options import (
    enqueue_option,
    friendly_errors,
    open_database,
    print_error,
    redis_option,
    require_program,
    url_option,
)
from loyalty.cli.render import (
    console,
    err_console,
    job_progress,
    print_last_runs,
    print_runs,
    print_schedule,
    table,
)
from loyalty.config import DATABASE_URL_ENV
from loyalty.db.database import Database, database_url_from_env, normalise_url
from loyalty.errors import LoyaltyError
from loyalty.jobs.runs import STALE_AFTER, JobRunInfo, last_runs, run_job
from loyalty.jobs.specs import JOB_NAMES, sweeps
from loyalty.monitoring.logs import configure_logging

Todo = list[tuple[str, dict[str, Any]]]


@click.command()
@url_option
@redis_option
@click.option("--burst", is_flag=True, help="Quit once the queue is empty.")
@click.option(
    "--simple",
    is_flag=True,
    help="Run jobs in this process (RQ SimpleWorker) instead of a forked work horse per job.",
)
@friendly_errors
def worker(database_url: str | None, redis_url: str | None, burst: bool, simple: bool) -> None:
    """Run an RQ worker on the Jifen queue, with RQ's scheduler so that retries run.

    The jobs use --database-url (or $JIFEN_DATABASE_URL). Stop it with Ctrl-C (a warm
    shutdown: the job in hand finishes first).
    """
    from loyalty.jobs import rq

    open_database(database_url).dispose()  # fail now, not in every job
    connection = rq.connect(redis_url)
    os.environ[DATABASE_URL_ENV] = normalise_url(database_url_from_env(database_url))  # horses
    rq_worker = rq.make_worker(connection, simple=simple)
    kind = "simple worker" if simple else "worker"
    mode = ", until the queue is empty" if burst else "; Ctrl-C to stop"
    err_console.print(f"jifen {kind} on queue {rq.QUEUE_NAME!r}{mode}")
    configure_logging()
    rq_worker.work(burst=burst, with_scheduler=True)


@click.command("cron")
@url_option
@redis_option
@click.option(
    "--print", "print_only", is_flag=True, help="Print the schedule and exit (needs no Redis)."
)
@friendly_errors
def cron_command(database_url: str | None, redis_url: str | None, print_only: bool) -> None:
    """Run RQ's cron scheduler with Jifen's schedule (run exactly one).

    Hold time-outs and outbound events (webhooks, reminder e-mails) every minute,
    maturation and expiry hourly, reminders daily, and each
    program's year-end clearing at its own moment in its time zone. Cron strings are UTC.
    The schedule is read at start: restart it after changing a program's clearing.
    """
    from loyalty.jobs.schedule import load_schedule

    database = open_database(database_url)
    try:
        entries = load_schedule(database)
    finally:
        database.dispose()
    print_schedule(entries)
    if print_only:
        return
    from rq.cron import CronScheduler

    from loyalty.jobs import rq

    scheduler = CronScheduler(connection=rq.connect(redis_url))
    rq.register_schedule(entries, scheduler.register)
    err_console.print(f"jifen cron: {len(entries)} entries on queue {rq.QUEUE_NAME!r}")
    configure_logging()
    scheduler.start()  # type: ignore[no-untyped-call]


class JobFailed(click.ClickException):
    """A job failed with an unexpected error: one line here, the traceback in job_runs."""

    def show(self, file: Any = None) -> None:
        print_error(self.message)


def _run_inline(database_url: str | None, todo: Todo) -> None:
    """Run jobs here, one after the other, with a live progress display, then a summary."""
    database = open_database(database_url)
    runs = []
    try:
        for _name, params in todo:
            if "program" in params:
                require_program(database, params["program"])
        with job_progress() as start:
            for name, params in todo:
                line = start(name)
                run = _run_one(database, name, params, line.show)
                line.done(run)
                runs.append(run)
    finally:
        database.dispose()
    print_runs(runs)


def _run_one(database: Database, name: str, params: dict[str, Any], show: Any) -> JobRunInfo:
    """Run one job; an unexpected failure becomes :class:`JobFailed` saying where it is."""
    try:
        return run_job(database, name, trigger="cli", on_progress=show, **params)
    except LoyaltyError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        recorded = any("job_runs" in n for n in getattr(exc, "__notes__", []))
        where = (
            "its traceback is in job_runs (see `jifen jobs`)"
            if recorded
            else "it could not be recorded in job_runs"
        )
        raise JobFailed(
            f"job {name} failed ({type(exc).__name__}: {first}); {where}; "
            "fix the cause and run it again"
        ) from exc


def _enqueue_all(redis_url: str | None, todo: Todo) -> None:
    """Enqueue jobs for `jifen worker` and show their ids and what happened."""
    from loyalty.jobs import rq

    connection = rq.connect(redis_url)
    enqueued = table(f"Enqueued on {rq.QUEUE_NAME!r}", ("job", "job id", "result"))
    for name, params in todo:
        result = rq.enqueue(name, params=params, connection=connection, trigger="cli")
        shown = "[green]queued[/]" if result.created else f"[yellow]{result.message}[/]"
        enqueued.add_row(name, result.job_id, shown)
    console.print(enqueued)
    console.print("`jifen worker` runs them; `jifen jobs` shows how they went.")


def _go(database_url: str | None, redis_url: str | None, enqueue: bool, todo: Todo) -> None:
    if enqueue:
        _enqueue_all(redis_url, todo)
    else:
        _run_inline(database_url, todo)


@click.command()
@url_option
@redis_option
@click.option(
    "--only",
    type=click.Choice(list(sweeps())),
    help="Run one sweep (default: holds, then mature, then expire).",
)
@click.option(
    "--batch-size", type=click.IntRange(1, 100_000), help="Lots (or holds) per transaction."
)
@enqueue_option
@friendly_errors
def sweep(
    database_url: str | None,
    redis_url: str | None,
    only: str | None,
    batch_size: int | None,
    enqueue: bool,
) -> None:
    """Release timed-out holds, mature pending points and expire due lots, here and now.

    Each sweep is recorded in job_runs (trigger 'cli'); running one twice, or next to the
    worker's, is safe.
    """
    names = [sweeps()[only]] if only else list(sweeps().values())
    params = {} if batch_size is None else {"batch_size": batch_size}
    _go(database_url, redis_url, enqueue, [(name, dict(params)) for name in names])


@click.command()
@url_option
@redis_option
@click.option("--program", metavar="CODE", help="Only this program (default: every program).")
@click.option(
    "--days",
    type=click.IntRange(0, 366),
    help="Remind of points ending within DAYS days (default: each program's reminder_days).",
)
@enqueue_option
@friendly_errors
def remind(
    database_url: str | None,
    redis_url: str | None,
    program: str | None,
    days: int | None,
    enqueue: bool,
) -> None:
    """Store points-expiring reminders: one per member and expiry date, never twice."""
    params = {k: v for k, v in (("program", program), ("days", days)) if v is not None}
    _go(database_url, redis_url, enqueue, [("remind", params)])


@click.command()
@url_option
@redis_option
@click.option(
    "--program",
    metavar="CODE",
    help="Only this program's clearing (default: every program whose clearing is due).",
)
@click.option(
    "--year",
    type=click.IntRange(1, 9998),
    help="With --program: the year to clear (default: the last moment that passed).",
)
@enqueue_option
@friendly_errors
def clear(
    database_url: str | None,
    redis_url: str | None,
    program: str | None,
    year: int | None,
    enqueue: bool,
) -> None:
    """Run year-end clearing: every due one, or one program's. Safe to run again."""
    if year is not None and program is None:
        raise click.UsageError("--year needs --program: say which program's year to clear")
    if program is None:
        _go(database_url, redis_url, enqueue, [("clear", {})])
        return
    params: dict[str, Any] = {"program": program}
    if year is not None:
        params["year"] = year
    _go(database_url, redis_url, enqueue, [("clear_year", params)])


@click.command("jobs")
@url_option
@click.option(
    "--limit",
    type=click.IntRange(1, 100),
    default=3,
    show_default=True,
    help="Runs shown per job.",
)
@click.option(
    "--job",
    "names",
    multiple=True,
    type=click.Choice(list(JOB_NAMES)),
    help="Only this job (repeatable).",
)
@friendly_errors
def jobs_command(database_url: str | None, limit: int, names: tuple[str, ...]) -> None:
    """Show the last runs of each job: status, start, duration, figures and error."""
    database = open_database(database_url)
    try:
        runs = last_runs(database, limit_per_job=limit, jobs=names or None)
        now = database.clock.now()
    finally:
        database.dispose()
    if not runs:
        console.print(
            "no job has run yet: run `jifen sweep`, or start `jifen worker` and `jifen cron`"
        )
        return
    print_last_runs(runs, now, STALE_AFTER)
