"""The ``jifen`` command: migrations, the demo, ledger verification, the forecast and the jobs.

Every command takes ``--database-url`` (or ``$JIFEN_DATABASE_URL``) and has ``--help``.
Errors are printed as one line that says what to do next, with exit status 1 (2 for usage).
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import random
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from loyalty import __version__, migrate
from loyalty import services as svc
from loyalty.db.database import (
    DATABASE_URL_ENV,
    Database,
    database_url_from_env,
    normalise_url,
)
from loyalty.db.errors import (
    open_checked,
    require_driver,
    require_sqlite_file,
    require_writable_dir,
    safe,
    translate,
)
from loyalty.domain.calendar import zone
from loyalty.domain.clock import FixedClock
from loyalty.errors import LoyaltyError, ProgramNotFound
from loyalty.services.forecast import forecast as forecast_points
from loyalty.services.results import Forecast
from loyalty.services.verify import VerifyReport

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

url_option = click.option(
    "--database-url",
    envvar=DATABASE_URL_ENV,
    metavar="URL",
    help=f"SQLAlchemy database URL (default: ${DATABASE_URL_ENV}).",
)


def friendly_errors(func: F) -> F:
    """Print Jifen errors, and the database errors a wrong URL or a missing schema raise, as
    one line (``error: …``, what to do next) and exit 1 instead of a traceback."""
    from sqlalchemy.exc import SQLAlchemyError

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (LoyaltyError, SQLAlchemyError) as exc:
            url = kwargs.get("database_url") or os.environ.get(DATABASE_URL_ENV)
            print_error(translate(exc, url).message)
            raise SystemExit(1) from exc

    return wrapper  # type: ignore[return-value]


def print_error(message: str) -> None:
    """One line on stderr, however long: ``error: <message>``."""
    click.echo(f"error: {' '.join(message.split())}", err=True)


class JifenGroup(click.Group):
    """The ``jifen`` group; the console's commands (``users``, ``console``) join it on first use.

    They live with the console in ``admin.cli`` and import from this module, so they are
    added lazily rather than imported here.
    """

    def _add_console_commands(self) -> None:
        if "console" not in self.commands:
            from admin import cli as console_cli

            self.add_command(console_cli.users)
            self.add_command(console_cli.console)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._add_console_commands()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_console_commands()
        return super().list_commands(ctx)


@click.group(cls=JifenGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="jifen")
def main() -> None:
    """Jifen: a self-hostable customer loyalty points platform."""


@main.group()
def db() -> None:
    """Create and upgrade the database schema."""


@db.command("upgrade")
@url_option
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@friendly_errors
def db_upgrade(database_url: str | None, revision: str) -> None:
    """Apply the migrations up to REVISION (the only way Jifen's schema is made)."""
    url = normalise_url(database_url_from_env(database_url))
    require_driver(url)
    _require_sqlite_dir(url)
    migrate.upgrade(url, revision)
    console.print(f"[green]database upgraded to {revision}[/]: {_safe(url)}")


@db.command("check")
@url_option
@friendly_errors
def db_check(database_url: str | None) -> None:
    """Fail if the models and the migrations have drifted apart."""
    url = normalise_url(database_url_from_env(database_url))
    require_driver(url)
    require_sqlite_file(url)
    migrate.check(url)
    console.print("[green]models and migrations agree[/]")


def _safe(url: str) -> str:
    return safe(url)


def _require_sqlite_dir(url: str) -> None:
    """A SQLite file can only be made in a directory that exists and can be written to."""
    from loyalty.db.errors import sqlite_file

    path = sqlite_file(url)
    if path is not None and not path.exists():
        require_writable_dir(path)


def _require_program(database: Database, code: str) -> None:
    """Refuse an unknown program code, listing the codes that exist."""
    from sqlalchemy import select

    from loyalty.db.tables import programs

    with database.read() as conn:
        codes = conn.execute(select(programs.c.code).order_by(programs.c.code)).scalars().all()
    if code not in codes:
        known = ", ".join(codes) if codes else "none yet (create one first)"
        raise ProgramNotFound(
            f"no program has the code {code!r}; the programs here are: {known}",
            program=code,
        )


@main.command()
@url_option
@click.option("--show-examples/--no-examples", default=True, help="List offending rows.")
@friendly_errors
def verify(database_url: str | None, show_examples: bool) -> None:
    """Check the ledger's invariants over the whole database; exit 1 if any fails."""
    database = _open_database(database_url)
    try:
        report = svc.verify_ledger(database)
    finally:
        database.dispose()
    print_report(report, show_examples=show_examples)
    if not report.ok:
        raise SystemExit(1)


def print_report(report: VerifyReport, *, show_examples: bool = True) -> None:
    """Print a verification report as a table, then the offending rows."""
    table = Table(title="Ledger verification", title_justify="left")
    table.add_column("check")
    table.add_column("invariant")
    table.add_column("result", justify="right")
    for check in report.checks:
        result = "[green]ok[/]" if check.ok else f"[bold red]{check.violations} failing[/]"
        table.add_row(check.name, check.description, result)
    console.print(table)
    counts = ", ".join(f"{n:,} {name}" for name, n in report.counts.items())
    console.print(f"checked {counts}")
    if show_examples:
        for check in report.checks:
            for example in check.examples:
                console.print(f"  [red]{check.name}[/]: {example}")
    verdict = (
        "[bold green]ledger is consistent[/]"
        if report.ok
        else "[bold red]ledger is NOT consistent[/]"
    )
    console.print(verdict)


DEMO_RULES: dict[str, Any] = {
    "base_ratio": "1",
    "category_ratios": {"grocery": "0.5", "electronics": "2"},
    "sku_ratios": {"GIFT-CARD": "0"},
    "actions": {
        "sign_in": {"points": 5, "limit": 1, "period": "day"},
        "review": {"points": 20, "limit": 3, "period": "month"},
    },
    "caps": {"member_daily": 3000, "member_monthly": 20000, "program_daily": 200000},
    "pending_days": 7,
    "expiry": {"months": 3, "days": 0, "month_end": True},
}
DEMO_CATEGORIES = ("grocery", "electronics", "apparel", "home")


@main.command()
@click.option(
    "--database",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("jifen-demo.db"),
    show_default=True,
    help="SQLite file to create.",
)
@click.option(
    "--members",
    "member_count",
    type=click.IntRange(1, 100_000),
    default=25,
    show_default=True,
    help="How many members to enrol.",
)
@click.option(
    "--orders",
    "order_count",
    type=click.IntRange(1, 1_000_000),
    default=400,
    show_default=True,
    help="How many orders to record over the last 60 days.",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Random seed.")
@click.option("--force", is_flag=True, help="Replace the file if it exists.")
@friendly_errors
def demo(path: Path, member_count: int, order_count: int, seed: int, force: bool) -> None:
    """Create a SQLite database with a program, members and 60 days of orders, then print
    balances and history."""
    if path.exists() and not force:
        raise click.UsageError(f"{path} exists; pass --force to replace it or --database")
    require_writable_dir(path)
    if path.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{path.resolve()}"
    migrate.upgrade(url)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    clock = FixedClock(now - dt.timedelta(days=60))
    database = Database.from_url(url, clock=clock)
    try:
        _fill_demo(database, clock, now, member_count, order_count, random.Random(seed))
        _show_demo(database)
    finally:
        database.dispose()
    command = "jifen" if shutil.which("jifen") else sys.argv[0]
    console.print(f"\n[bold]demo database:[/] {path}", soft_wrap=True)
    console.print(f"check it again with: {command} verify --database-url {url}", soft_wrap=True)


def _fill_demo(
    database: Database,
    clock: FixedClock,
    now: dt.datetime,
    member_count: int,
    order_count: int,
    rng: random.Random,
) -> None:
    svc.create_program(
        database,
        code="demo",
        name="Jifen Demo Store",
        currency="CNY",
        timezone="Asia/Shanghai",
        redeem_max_share_bp=3000,
        rules=DEMO_RULES,
    )
    members = [f"member-{i:04d}" for i in range(1, member_count + 1)]
    step = (now - clock.now()) / (order_count + 1)
    with _progress() as progress:
        task = progress.add_task("enrolling members", total=member_count)
        for i, member in enumerate(members, 1):
            svc.enrol_member(
                database, program="demo", external_id=member, email=f"{member}@example.com"
            )
            progress.update(task, completed=i)
        task = progress.add_task("recording orders", total=order_count)
        for n in range(1, order_count + 1):
            clock.advance(step)
            _demo_order(database, rng, rng.choice(members), f"order-{n:06d}")
            if n % 20 == 0:  # what the scheduled jobs do in production
                svc.mature_pending(database)
                svc.expire_holds(database)
            progress.update(task, completed=n)
        clock.set(now)
        svc.mature_pending(database)
        svc.expire_holds(database)


def _demo_order(database: Database, rng: random.Random, member: str, order_id: str) -> None:
    lines = [
        {"amount_minor": rng.randrange(500, 60_000), "category": rng.choice(DEMO_CATEGORIES)}
        for _ in range(rng.randint(1, 3))
    ]
    total = sum(line["amount_minor"] for line in lines)  # type: ignore[misc]
    quote = svc.quote_redemption(
        database, program="demo", member=member, order_total_minor=total, currency="CNY"
    )
    paid_with_points = 0
    if quote.max_points >= 100 and rng.random() < 0.3:
        hold = svc.hold_points(
            database,
            program="demo",
            member=member,
            order_id=order_id,
            points=quote.max_points,
            order_total_minor=total,
            currency="CNY",
        )
        if rng.random() < 0.9:
            svc.capture_hold(database, program="demo", order_id=order_id)
            paid_with_points = hold.discount_minor
        else:
            svc.release_hold(database, program="demo", order_id=order_id)
    svc.earn_purchase(
        database,
        program="demo",
        member=member,
        order_id=order_id,
        currency="CNY",
        lines=lines,
        paid_with_points_minor=paid_with_points,
    )
    if rng.random() < 0.4:
        day = database.clock.now().date().isoformat()
        svc.earn_action(database, program="demo", member=member, action="sign_in", reference=day)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<18}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _show_demo(database: Database) -> None:
    from sqlalchemy import select

    from loyalty.db.tables import members

    with database.read() as conn:
        top = (
            conn.execute(
                select(members.c.external_id).order_by(members.c.lifetime_earned.desc()).limit(8)
            )
            .scalars()
            .all()
        )
    table = Table(title="Balances of the top earners", title_justify="left")
    for column in ("member", "available", "pending", "held", "lifetime", "expiring in 30 days"):
        table.add_column(column, justify="left" if column == "member" else "right")
    for member in top:
        b = svc.balance(database, program="demo", member=member)
        table.add_row(
            member,
            f"{b.available:,}",
            f"{b.pending:,}",
            f"{b.held:,}",
            f"{b.lifetime_earned:,}",
            f"{b.expiring_soon:,}",
        )
    console.print(table)
    history = svc.history(database, program="demo", member=top[0], limit=12)
    table = Table(title=f"Latest history of {top[0]}", title_justify="left")
    for column in ("when (UTC)", "kind", "why", "points", "available"):
        table.add_column(column, justify="right" if column in ("points", "available") else "left")
    for item in history.items:
        table.add_row(
            item.created_at.strftime("%Y-%m-%d %H:%M"),
            item.kind,
            item.description,
            f"{item.points:+,}",
            f"{item.available:+,}",
        )
    console.print(table)
    report = svc.verify_ledger(database)
    verdict = "[green]consistent[/]" if report.ok else "[red]NOT consistent[/]"
    console.print(f"ledger check: {verdict} ({report.counts['entries']:,} entries)")


@main.command("forecast")
@url_option
@click.option("--program", required=True, metavar="CODE", help="The program's code.")
@click.option(
    "--days",
    type=click.IntRange(0, 3660),
    default=90,
    show_default=True,
    help="How many days ahead to look.",
)
@click.option("--member", metavar="ID", help="Only this member (their external id).")
@friendly_errors
def forecast_command(database_url: str | None, program: str, days: int, member: str | None) -> None:
    """Show the points that will expire or be cleared in the next DAYS days, per local date.

    Rolling expiry and year-end clearing both count, each lot once; points already due but not
    swept yet count as due now. Held and frozen points are in flight and shown apart. Nothing
    is written.
    """
    database = _open_database(database_url)
    try:
        _require_program(database, program)
        result = forecast_points(database, program=program, days=days, member=member)
    finally:
        database.dispose()
    print_forecast(result, by_member=member is not None)


def print_forecast(result: Forecast, *, by_member: bool = False) -> None:
    """Print a forecast: one row per last usable local day (and per instant for one member),
    then the total."""
    tz = zone(result.timezone)
    until = result.until_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
    table = Table(
        title=f"Points ending in {result.program} until {until} ({result.timezone})",
        title_justify="left",
    )
    for column in ("last day", "expiring", "cleared", "lots", "points"):
        table.add_column(column, justify="left" if column == "last day" else "right")
    for d in result.days:
        table.add_row(d.day, f"{d.expiring:,}", f"{d.clearing:,}", f"{d.lots:,}", f"{d.points:,}")
    console.print(table)
    if by_member and result.items:
        table = Table(title=f"By instant, for {result.items[0].member}", title_justify="left")
        table.add_column("when (local)")
        table.add_column("last day")
        table.add_column("how")
        for column in ("points", "lots", "in flight"):
            table.add_column(column, justify="right")
        for i in result.items:
            when = i.due_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
            how = "expires" if i.kind == "expire" else "cleared"
            last = "" if i.last_day is None else i.last_day.isoformat()
            row = (when, last, how, f"{i.points:,}", f"{i.lots:,}", f"{i.in_flight:,}")
            table.add_row(*row)
        console.print(table)
    console.print(f"total: {result.points:,} points in {result.lots:,} lots")


# --- jobs: the worker, the cron scheduler and the sweeps ------------------------------------

redis_option = click.option(
    "--redis-url",
    envvar="JIFEN_REDIS_URL",
    metavar="URL",
    help="Redis URL, e.g. redis://127.0.0.1:6379/0 (default: $JIFEN_REDIS_URL).",
)
enqueue_option = click.option(
    "--enqueue",
    is_flag=True,
    help="Put the job on the RQ queue for `jifen worker` instead of running it here (needs Redis).",
)
SWEEPS = {"holds": "hold_timeouts", "mature": "mature", "expire": "expire"}  # in running order


def _open_database(database_url: str | None) -> Database:
    """The database, checked with a round trip so a wrong URL fails with one clear line; a
    SQLite file that does not exist is refused, never created."""
    return open_checked(database_url)


@main.command()
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
    from loyalty import queue

    _open_database(database_url).dispose()  # fail now, not in every job
    connection = queue.connect(redis_url)
    os.environ[DATABASE_URL_ENV] = normalise_url(database_url_from_env(database_url))  # horses
    rq_worker = queue.make_worker(connection, simple=simple)
    kind = "simple worker" if simple else "worker"
    mode = ", until the queue is empty" if burst else "; Ctrl-C to stop"
    err_console.print(f"jifen {kind} on queue {queue.QUEUE_NAME!r}{mode}")
    rq_worker.work(burst=burst, with_scheduler=True)


@main.command("cron")
@url_option
@redis_option
@click.option(
    "--print", "print_only", is_flag=True, help="Print the schedule and exit (needs no Redis)."
)
@friendly_errors
def cron_command(database_url: str | None, redis_url: str | None, print_only: bool) -> None:
    """Run RQ's cron scheduler with Jifen's schedule (run exactly one).

    Hold time-outs every minute, maturation and expiry hourly, reminders daily, and each
    program's year-end clearing at its own moment in its time zone. Cron strings are UTC.
    The schedule is read at start: restart it after changing a program's clearing.
    """
    from loyalty.schedule import load_schedule

    database = _open_database(database_url)
    try:
        entries = load_schedule(database)
    finally:
        database.dispose()
    print_schedule(entries)
    if print_only:
        return
    from rq.cron import CronScheduler

    from loyalty import queue

    scheduler = CronScheduler(connection=queue.connect(redis_url))
    queue.register_schedule(entries, scheduler.register)
    err_console.print(f"jifen cron: {len(entries)} entries on queue {queue.QUEUE_NAME!r}")
    scheduler.start()  # type: ignore[no-untyped-call]


def print_schedule(entries: list[Any]) -> None:
    """Print the schedule: job, cron string (UTC), next run in UTC and in the program's zone."""
    table = Table(title="Jifen schedule (cron strings are UTC)", title_justify="left")
    for column in ("entry", "cron (UTC)", "next run (UTC)", "next run (local)", "what"):
        table.add_column(column)
    for e in entries:
        local = ""
        if e.timezone:
            at = e.next_run_at.astimezone(zone(e.timezone))
            local = f"{at:%Y-%m-%d %H:%M} {e.timezone}"
        table.add_row(e.name, e.cron, f"{e.next_run_at:%Y-%m-%d %H:%M}", local, e.description)
    console.print(table)


class JobFailed(click.ClickException):
    """A job failed with an unexpected error: one line here, the traceback in job_runs."""

    def show(self, file: Any = None) -> None:
        print_error(self.message)


def _run_inline(database_url: str | None, todo: list[tuple[str, dict[str, Any]]]) -> None:
    """Run jobs here, one after the other, with a live progress display, then a summary."""
    from loyalty import jobs

    database = _open_database(database_url)
    runs = []
    try:
        for _name, params in todo:
            if "program" in params:
                _require_program(database, params["program"])
        with _job_progress() as progress:
            for name, params in todo:
                task = progress.add_task(name, total=None, items=0, points=0, batches=0)

                def show(totals: Any, task: Any = task) -> None:
                    progress.update(
                        task, items=totals.items, points=totals.points, batches=totals.batches
                    )

                try:
                    run = jobs.run_job(database, name, trigger="cli", on_progress=show, **params)
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
                progress.update(
                    task,
                    total=1,
                    completed=1,
                    items=run.items,
                    points=run.points,
                    batches=run.batches,
                )
                runs.append(run)
    finally:
        database.dispose()
    table = Table(title="Job runs", title_justify="left")
    for column in ("job", "run", "status", "items", "points", "batches", "took", "details"):
        table.add_column(
            column, justify="right" if column in ("items", "points", "batches") else "left"
        )
    for r in runs:
        table.add_row(
            r.job,
            str(r.id),
            _status(r.status),
            f"{r.items:,}",
            f"{r.points:,}",
            f"{r.batches:,}",
            _took(r.duration),
            _details(r.details),
        )
    console.print(table)


def _job_progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<14}"),
        BarColumn(),
        TextColumn("{task.fields[items]:>10,} items"),
        TextColumn("{task.fields[points]:>12,} points"),
        TextColumn("{task.fields[batches]:>6,} batches"),
        TimeElapsedColumn(),
        console=console,
    )


def _status(status: str) -> str:
    color = {"succeeded": "green", "failed": "red"}.get(status, "yellow")
    return f"[{color}]{status}[/]"


def _took(delta: dt.timedelta) -> str:
    seconds = max(delta.total_seconds(), 0.0)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def _details(details: dict[str, Any]) -> str:
    """What a run's details say beyond its figures, in a few words."""
    parts = []
    if "created" in details:
        parts.append(f"{details['created']:,} created, {details['already_sent']:,} already sent")
        if details.get("callback_errors"):
            parts.append(f"{details['callback_errors']:,} callback errors")
    for c in details.get("clearings", []):
        how = "replayed" if c.get("replayed") else c.get("status")
        parts.append(f"{c['program']} {c['year']}: {how}, {c['lots']:,} lots in all")
    if details.get("abandoned_runs"):
        runs = ", ".join(str(i) for i in details["abandoned_runs"])
        parts.append(f"marked abandoned: run {runs}")
    if "clearings" in details and not details["clearings"]:
        parts.append("no clearing due")
    return "; ".join(parts)


def _enqueue_all(redis_url: str | None, todo: list[tuple[str, dict[str, Any]]]) -> None:
    """Enqueue jobs for `jifen worker` and show their ids and what happened."""
    from loyalty import queue

    connection = queue.connect(redis_url)
    table = Table(title=f"Enqueued on {queue.QUEUE_NAME!r}", title_justify="left")
    for column in ("job", "job id", "result"):
        table.add_column(column)
    for name, params in todo:
        result = queue.enqueue(name, params=params, connection=connection, trigger="cli")
        shown = "[green]queued[/]" if result.created else f"[yellow]{result.message}[/]"
        table.add_row(name, result.job_id, shown)
    console.print(table)
    console.print("`jifen worker` runs them; `jifen jobs` shows how they went.")


def _go(
    database_url: str | None,
    redis_url: str | None,
    enqueue: bool,
    todo: list[tuple[str, dict[str, Any]]],
) -> None:
    if enqueue:
        _enqueue_all(redis_url, todo)
    else:
        _run_inline(database_url, todo)


@main.command()
@url_option
@redis_option
@click.option(
    "--only",
    type=click.Choice(list(SWEEPS)),
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
    names = [SWEEPS[only]] if only else list(SWEEPS.values())
    params = {} if batch_size is None else {"batch_size": batch_size}
    _go(database_url, redis_url, enqueue, [(name, dict(params)) for name in names])


@main.command()
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


@main.command()
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


@main.command("jobs")
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
    type=click.Choice(["expire", "mature", "hold_timeouts", "remind", "clear", "clear_year"]),
    help="Only this job (repeatable).",
)
@friendly_errors
def jobs_command(database_url: str | None, limit: int, names: tuple[str, ...]) -> None:
    """Show the last runs of each job: status, start, duration, figures and error."""
    from loyalty.jobs import STALE_AFTER, last_runs

    database = _open_database(database_url)
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
    table = Table(title="Last job runs", title_justify="left")
    for column in ("job", "run", "status", "trigger", "started (UTC)", "took", "items", "points"):
        table.add_column(column, justify="right" if column in ("items", "points") else "left")
    table.add_column("error", overflow="fold")
    for r in runs:
        status = _status(r.status)
        if r.status == "running" and now - r.heartbeat_at > STALE_AFTER:
            status += f" [red](no heartbeat for {_took(now - r.heartbeat_at)})[/]"
        table.add_row(
            r.job,
            str(r.id),
            status,
            r.trigger,
            f"{r.started_at:%Y-%m-%d %H:%M:%S}",
            _took(r.duration),
            f"{r.items:,}",
            f"{r.points:,}",
            r.error_line or "",
        )
    console.print(table)


if __name__ == "__main__":  # pragma: no cover
    main()
