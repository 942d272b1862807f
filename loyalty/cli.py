"""The ``jifen`` command: database migrations, the demo, ledger verification and the forecast.

Every command takes ``--database-url`` (or ``$JIFEN_DATABASE_URL``) and has ``--help``.
Errors are printed as one line that says what to do next, with exit status 1 (2 for usage).
"""

from __future__ import annotations

import datetime as dt
import functools
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
from loyalty.db.database import DATABASE_URL_ENV, Database, database_url_from_env
from loyalty.domain.calendar import zone
from loyalty.domain.clock import FixedClock
from loyalty.errors import LoyaltyError
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
    """Print Jifen errors as one clear line and exit 1 instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LoyaltyError as exc:
            err_console.print(f"[bold red]error:[/] {exc.message}")
            raise SystemExit(1) from exc

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    url = database_url_from_env(database_url)
    migrate.upgrade(url, revision)
    console.print(f"[green]database upgraded to {revision}[/]: {_safe(url)}")


@db.command("check")
@url_option
@friendly_errors
def db_check(database_url: str | None) -> None:
    """Fail if the models and the migrations have drifted apart."""
    migrate.check(database_url_from_env(database_url))
    console.print("[green]models and migrations agree[/]")


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@main.command()
@url_option
@click.option("--show-examples/--no-examples", default=True, help="List offending rows.")
@friendly_errors
def verify(database_url: str | None, show_examples: bool) -> None:
    """Check the ledger's invariants over the whole database; exit 1 if any fails."""
    database = Database.from_url(database_url)
    report = svc.verify_ledger(database)
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
    if path.exists():
        if not force:
            raise click.UsageError(f"{path} exists; pass --force to replace it or --database")
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

    from loyalty.services.ledger import members

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
    for column in ("when (UTC)", "kind", "reference", "points", "available"):
        table.add_column(column, justify="right" if column in ("points", "available") else "left")
    for item in history.items:
        table.add_row(
            item.created_at.strftime("%Y-%m-%d %H:%M"),
            item.kind,
            item.reference,
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
    database = Database.from_url(database_url)
    try:
        result = forecast_points(database, program=program, days=days, member=member)
    finally:
        database.dispose()
    print_forecast(result, by_member=member is not None)


def print_forecast(result: Forecast, *, by_member: bool = False) -> None:
    """Print a forecast: one row per local date (and per instant for one member), the total."""
    tz = zone(result.timezone)
    until = result.until_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
    table = Table(
        title=f"Points ending in {result.program} until {until} ({result.timezone})",
        title_justify="left",
    )
    for column in ("date", "expiring", "cleared", "lots", "points"):
        table.add_column(column, justify="left" if column == "date" else "right")
    for d in result.days:
        table.add_row(d.day, f"{d.expiring:,}", f"{d.clearing:,}", f"{d.lots:,}", f"{d.points:,}")
    console.print(table)
    if by_member and result.items:
        table = Table(title=f"By instant, for {result.items[0].member}", title_justify="left")
        table.add_column("when (local)")
        table.add_column("how")
        for column in ("points", "lots", "in flight"):
            table.add_column(column, justify="right")
        for i in result.items:
            when = i.due_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
            how = "expires" if i.kind == "expire" else "cleared"
            table.add_row(when, how, f"{i.points:,}", f"{i.lots:,}", f"{i.in_flight:,}")
        console.print(table)
    console.print(f"total: {result.points:,} points in {result.lots:,} lots")


if __name__ == "__main__":  # pragma: no cover
    main()
