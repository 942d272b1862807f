"""``jifen demo``: a SQLite file with the demo data set, then its balances and history.

:func:`new_demo_database` makes the file (``jifen console --demo`` uses it too, through
:func:`make_demo_database`); what goes in it is :func:`loyalty.services.demo.fill_demo`.
"""

from __future__ import annotations

import datetime as dt
import random
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from sqlalchemy import select

from loyalty import migrate
from loyalty import services as svc
from loyalty.cli.options import friendly_errors
from loyalty.cli.render import console, demo_progress, table
from loyalty.db.database import Database
from loyalty.db.errors import require_writable_dir
from loyalty.db.tables import members
from loyalty.domain.clock import FixedClock
from loyalty.services.demo import DEMO_PROGRAM, fill_demo

DEMO_DAYS = 60


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of the SQLite file at ``path``."""
    return f"sqlite:///{path.resolve()}"


@contextmanager
def new_demo_database(
    path: Path, *, member_count: int = 25, order_count: int = 400, seed: int = 7
) -> Iterator[Database]:
    """A fresh SQLite demo database at ``path`` (any file there replaced), filled with
    ``DEMO_DAYS`` days of orders and showing their progress; closed on leaving the block."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    url = sqlite_url(path)
    migrate.upgrade(url)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    clock = FixedClock(now - dt.timedelta(days=DEMO_DAYS))
    database = Database.from_url(url, clock=clock)
    try:
        with demo_progress() as show:
            fill_demo(database, clock, now, member_count, order_count, random.Random(seed), show)
        yield database
    finally:
        database.dispose()


def make_demo_database(
    path: Path, *, member_count: int = 25, order_count: int = 400, seed: int = 7
) -> str:
    """:func:`new_demo_database`, closed once filled; its URL."""
    with new_demo_database(path, member_count=member_count, order_count=order_count, seed=seed):
        return sqlite_url(path)


@click.command()
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
    with new_demo_database(
        path, member_count=member_count, order_count=order_count, seed=seed
    ) as database:
        _show_demo(database)
    command = "jifen" if shutil.which("jifen") else sys.argv[0]
    console.print(f"\n[bold]demo database:[/] {path}", soft_wrap=True)
    url = sqlite_url(path)
    console.print(f"check it again with: {command} verify --database-url {url}", soft_wrap=True)


def _show_demo(database: Database) -> None:
    """The top earners' balances, the latest history of the first, and the ledger check."""
    with database.read() as conn:
        top = (
            conn.execute(
                select(members.c.external_id).order_by(members.c.lifetime_earned.desc()).limit(8)
            )
            .scalars()
            .all()
        )
    amounts = ("available", "pending", "held", "lifetime", "expiring in 30 days")
    balances = table("Balances of the top earners", ("member", *amounts), right=amounts)
    for member in top:
        b = svc.balance(database, program=DEMO_PROGRAM, member=member)
        figures = (b.available, b.pending, b.held, b.lifetime_earned, b.expiring_soon)
        balances.add_row(member, *(f"{n:,}" for n in figures))
    console.print(balances)
    history = svc.history(database, program=DEMO_PROGRAM, member=top[0], limit=12)
    latest = table(
        f"Latest history of {top[0]}",
        ("when (UTC)", "kind", "why", "points", "available"),
        right=("points", "available"),
    )
    for item in history.items:
        latest.add_row(
            item.created_at.strftime("%Y-%m-%d %H:%M"),
            item.kind,
            item.description,
            f"{item.points:+,}",
            f"{item.available:+,}",
        )
    console.print(latest)
    report = svc.verify_ledger(database)
    verdict = "[green]consistent[/]" if report.ok else "[red]NOT consistent[/]"
    console.print(f"ledger check: {verdict} ({report.counts['entries']:,} entries)")
