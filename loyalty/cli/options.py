"""What every ``jifen`` command shares: the common options, one-line errors, opening the database.

The console's commands (``admin.cli``) use these too, so that every command of the group
takes ``--database-url`` and fails the same way.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from loyalty.config import DATABASE_URL_ENV, REDIS_URL_ENV, load_settings
from loyalty.db.database import Database
from loyalty.db.errors import open_checked, translate
from loyalty.db.tables import programs
from loyalty.errors import LoyaltyError, ProgramNotFound

F = TypeVar("F", bound=Callable[..., Any])

url_option = click.option(
    "--database-url",
    default=lambda: load_settings().database_url,
    metavar="URL",
    help=f"SQLAlchemy database URL (default: ${DATABASE_URL_ENV}).",
)
redis_option = click.option(
    "--redis-url",
    default=lambda: load_settings().redis_url,
    metavar="URL",
    help=f"Redis URL, e.g. redis://127.0.0.1:6379/0 (default: ${REDIS_URL_ENV}).",
)
enqueue_option = click.option(
    "--enqueue",
    is_flag=True,
    help="Put the job on the RQ queue for `jifen worker` instead of running it here (needs Redis).",
)


def friendly_errors(func: F) -> F:
    """Print Jifen errors, and the database errors a wrong URL or a missing schema raise, as
    one line (``error: …``, what to do next) and exit 1 instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (LoyaltyError, SQLAlchemyError) as exc:
            url = kwargs.get("database_url") or load_settings().database_url
            print_error(translate(exc, url).message)
            raise SystemExit(1) from exc

    return wrapper  # type: ignore[return-value]


def print_error(message: str) -> None:
    """One line on stderr, however long: ``error: <message>``."""
    click.echo(f"error: {' '.join(message.split())}", err=True)


def open_database(database_url: str | None) -> Database:
    """The database, checked with a round trip so a wrong URL fails with one clear line; a
    SQLite file that does not exist is refused, never created."""
    return open_checked(database_url)


def require_program(database: Database, code: str) -> None:
    """Refuse an unknown program code, listing the codes that exist."""
    with database.read() as conn:
        codes = conn.execute(select(programs.c.code).order_by(programs.c.code)).scalars().all()
    if code not in codes:
        known = ", ".join(codes) if codes else "none yet (create one first)"
        raise ProgramNotFound(
            f"no program has the code {code!r}; the programs here are: {known}",
            program=code,
        )
