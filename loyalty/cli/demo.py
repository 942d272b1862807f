"""``jifen demo``: a SQLite file with the demo data set, then its balances and history.

:func:`new_demo_database` makes the file (``jifen console --demo`` uses it too, through
:func:`make_demo_database`); what goes in it is :func:`loyalty.services.demo.fill_demo`.
:func:`kept_demo_database` tells whether a demo file made before can be used again (the
console keeps its demo database between starts) or why it must be built anew.
"""

from __future__ import annotations

import datetime as dt
import random
import shutil
import sqlite3
import sys
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import click
from sqlalchemy import create_engine, select
from sqlalchemy.exc import SQLAlchemyError

from loyalty import migrate
from loyalty import services as svc
from loyalty.cli.options import friendly_errors
from loyalty.cli.render import console, demo_progress, table
from loyalty.db.database import Database
from loyalty.db.errors import require_writable_dir
from loyalty.db.tables import members, programs
from loyalty.domain.clock import FixedClock
from loyalty.errors import ConfigurationError
from loyalty.services.console_users import list_users
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


@dataclass(frozen=True)
class KeptDemo:
    """A demo database found at a path: when it was built if it can be used as it is, else
    why it has to be built again."""

    built_at: dt.datetime | None
    rebuild_because: str | None = None


def kept_demo_database(path: Path, logins: Collection[str]) -> KeptDemo:
    """Whether the demo database at ``path`` can be used again: it must exist, be at this
    Jifen's schema and hold the demo program and every one of ``logins`` (made last, so a
    build that was stopped half way is built again).

    A file that is not a Jifen demo database is never replaced silently: that is a
    :class:`ConfigurationError` telling to pass ``--fresh`` or choose another file.
    """
    if not path.exists():
        return KeptDemo(None, "there is none yet")
    stale, codes = _look_without_writing(path)
    if stale:
        return KeptDemo(None, stale)
    if codes - {DEMO_PROGRAM}:
        raise _not_a_demo(path, f"it holds other programs ({', '.join(sorted(codes))})")
    database = Database.from_url(sqlite_url(path))
    try:
        built = [u.created_at for u in list_users(database) if u.username in logins]
    finally:
        database.dispose()
    if DEMO_PROGRAM not in codes or len(built) < len(logins):
        return KeptDemo(None, "its last build did not finish")
    return KeptDemo(min(built))


def _look_without_writing(path: Path) -> tuple[str | None, set[str]]:
    """Why the SQLite file at ``path`` is too old or new a demo database, else its program
    codes; opened read-only, so a file that is someone else's stays as it was, byte for byte
    (a :class:`Database` would turn on its write-ahead log)."""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    engine = create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True))
    try:
        with engine.connect() as conn:
            stale = _schema_problem(path, migrate.current_revision(conn))
            if stale:
                return stale, set()
            return None, set(conn.execute(select(programs.c.code)).scalars())
    except SQLAlchemyError as exc:
        raise _not_a_demo(path, "it is not a SQLite database Jifen can read") from exc
    finally:
        engine.dispose()


def _schema_problem(path: Path, revision: str | None) -> str | None:
    """Why a demo database at ``revision`` cannot be used by this Jifen, if it cannot."""
    if revision is None:
        raise _not_a_demo(path, "it has no Jifen schema")
    heads, known = migrate.known_revisions()
    if revision in heads:
        return None
    needed = ", ".join(sorted(heads))
    if revision not in known:
        return f"it was built by a newer Jifen (schema {revision}; this one needs {needed})"
    return f"it is from an older schema ({revision}; this Jifen needs {needed})"


def _not_a_demo(path: Path, why: str) -> ConfigurationError:
    return ConfigurationError(
        f"{path} is not a Jifen demo database ({why}), so it is left alone; pass --fresh to "
        "replace it, or choose another file with --demo-database"
    )


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
