"""``jifen db``: create and upgrade the database schema, and check it against the models."""

from __future__ import annotations

import click

from loyalty import migrate
from loyalty.cli.options import friendly_errors, url_option
from loyalty.cli.render import console
from loyalty.db.database import database_url_from_env, normalise_url
from loyalty.db.errors import (
    require_driver,
    require_sqlite_file,
    require_writable_dir,
    safe,
    sqlite_file,
)


@click.group()
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
    console.print(f"[green]database upgraded to {revision}[/]: {safe(url)}")


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


def _require_sqlite_dir(url: str) -> None:
    """A SQLite file can only be made in a directory that exists and can be written to."""
    path = sqlite_file(url)
    if path is not None and not path.exists():
        require_writable_dir(path)
