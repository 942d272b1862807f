"""Schema migrations: Alembic configured in code, usable from the CLI, tests and a wheel, and
the one check that a database holds the schema this Jifen needs (:func:`require_schema`).

In a source checkout the revisions live in the top-level ``migrations/`` folder; in an
installed wheel they ship inside the package as ``loyalty/migrations``.
"""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from loyalty.errors import ConfigurationError, SchemaMissing

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


@functools.cache
def known_revisions() -> tuple[frozenset[str], frozenset[str]]:
    """(head revisions, every revision) of the migrations that ship with this Jifen."""
    script = ScriptDirectory.from_config(alembic_config())
    every = frozenset(s.revision for s in script.walk_revisions())
    return frozenset(script.get_heads()), every


def upgrade_hint(where: str) -> str:
    """What to run to create or upgrade the schema of the database at ``where``."""
    return f"create or upgrade it with `jifen db upgrade --database-url {where}`"


def require_schema(connection: Connection, where: str, *, exact: bool = True) -> str:
    """The database's schema revision, or :class:`SchemaMissing` saying what to do.

    Without a schema it is always refused. With ``exact`` (the SDK, the console), a revision
    older or newer than this Jifen's head is refused too; without it (commands that migrate or
    only read what every revision has), any known schema passes.
    """
    current = current_revision(connection)
    if current is None:
        raise SchemaMissing(
            f"the database at {where} has no Jifen schema; {upgrade_hint(where)}", database=where
        )
    heads, known = known_revisions()
    if not exact or current in heads:
        return current
    if current not in known:
        raise SchemaMissing(
            f"the database at {where} is at schema revision {current!r}, newer than this "
            "Jifen knows; upgrade the jifen package",
            database=where,
            revision=current,
        )
    raise SchemaMissing(
        f"the database at {where} is at schema revision {current!r}, older than this Jifen "
        f"needs ({', '.join(sorted(heads))}); {upgrade_hint(where)}",
        database=where,
        revision=current,
    )
