"""Schema migrations: Alembic configured in code, usable from the CLI, tests and a wheel.

In a source checkout the revisions live in the top-level ``migrations/`` folder; in an
installed wheel they ship inside the package as ``loyalty/migrations``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

from loyalty.errors import ConfigurationError

_PACKAGE_DIR = Path(__file__).resolve().parent


def migrations_dir() -> Path:
    """Where the Alembic environment is: inside the package when installed, else the repo."""
    for candidate in (_PACKAGE_DIR / "migrations", _PACKAGE_DIR.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("Jifen's migrations are missing from this installation")


def alembic_config(url: str | None = None, *, connection: Connection | None = None) -> Config:
    """An Alembic config without an ini file, for ``url`` or an open ``connection``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` up to ``revision``; ``$JIFEN_DATABASE_URL`` plays no part.

    An empty ``url`` is refused rather than read from the environment, so a script that
    upgrades a scratch database can never migrate the one the environment names.
    """
    if not url:
        raise ConfigurationError("no database URL to migrate: pass one")
    command.upgrade(alembic_config(url), revision)


def upgrade_connection(connection: Connection, revision: str = "head") -> None:
    """Bring the database behind an open connection up to ``revision``."""
    command.upgrade(alembic_config(connection=connection), revision)


def check(url: str) -> None:
    """Raise if the models and the migrations of the database at ``url`` have drifted apart."""
    if not url:
        raise ConfigurationError("no database URL to check: pass one")
    command.check(alembic_config(url))


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at, or ``None`` for an empty database."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()
