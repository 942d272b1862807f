"""Database mistakes said in one line: a wrong URL, a server that cannot be reached, a missing
role, a SQLite file that does not exist, a database without Jifen's schema.

:func:`open_checked` opens a database for a command and proves it usable with one round trip
(without creating a SQLite file that is not there); :func:`translate` turns the SQLAlchemy and
driver errors such mistakes raise later into :class:`~loyalty.errors.DatabaseUnavailable`,
:class:`~loyalty.errors.SchemaMissing` or :class:`~loyalty.errors.ConfigurationError`, each
with a message that says what to do next. ``postgres://`` URLs (Heroku style) are accepted
as ``postgresql+psycopg://``.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from loyalty.config import DATABASE_URL_ENV
from loyalty.db.database import Database, database_url_from_env, normalise_url
from loyalty.domain.clock import Clock
from loyalty.errors import ConfigurationError, DatabaseUnavailable, LoyaltyError, SchemaMissing
from loyalty.migrate import require_schema, upgrade_hint

_HINT = f"check --database-url or ${DATABASE_URL_ENV}"


def parse(url: str) -> URL:
    """The parsed URL, or a :class:`ConfigurationError` that shows the expected shape."""
    try:
        return make_url(normalise_url(url))
    except ArgumentError as exc:
        raise ConfigurationError(
            f"not a database URL: {url!r}; use for example 'sqlite:///jifen.db' or "
            "'postgresql://user:password@host:5432/dbname'"
        ) from exc


def safe(url: str) -> str:
    """The URL with its password hidden, for messages."""
    try:
        return parse(url).render_as_string(hide_password=True)
    except ConfigurationError:
        return "(not a URL)"


def require_driver(url: str) -> None:
    """Refuse a URL whose backend or driver is not installed, before anything connects."""
    try:
        parse(url).get_dialect().import_dbapi()
    except (NoSuchModuleError, ImportError) as exc:
        raise _bad_driver(url, exc) from exc


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names, or ``None`` (another backend, memory, a URI filename)."""
    parsed = parse(url)
    if parsed.get_backend_name() != "sqlite" or parsed.query.get("uri"):
        return None
    if parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def require_sqlite_file(url: str) -> None:
    """Refuse a SQLite URL whose file does not exist (opening it would create it empty)."""
    path = sqlite_file(url)
    if path is not None and not path.is_file():
        raise ConfigurationError(
            f"no database at {path}; create it with `jifen db upgrade --database-url {url}`"
        )


def require_writable_dir(path: Path) -> None:
    """Refuse a file path whose directory does not exist or cannot be written to."""
    folder = path.resolve().parent
    if not folder.is_dir():
        raise ConfigurationError(
            f"cannot create {path}: the directory {folder} does not exist; create it or "
            "choose another path"
        )
    if not _writable(folder):
        raise ConfigurationError(
            f"cannot create {path}: the directory {folder} is not writable; choose another path"
        )


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def open_checked(
    url: str | None = None, *, clock: Clock | None = None, need_schema: bool = True
) -> Database:
    """The database at ``url`` (or ``$JIFEN_DATABASE_URL``), proved reachable and migrated.

    A SQLite file that does not exist is refused rather than created. Every failure is a
    :class:`LoyaltyError` whose message says what to do next.
    """
    found = normalise_url(database_url_from_env(url))
    parse(found)
    require_sqlite_file(found)
    try:
        database = Database.from_url(found, clock=clock)
    except (NoSuchModuleError, ArgumentError, ImportError) as exc:
        raise _bad_driver(found, exc) from exc
    try:
        with database.read() as conn:
            conn.execute(text("SELECT 1"))
            if need_schema:
                require_schema(conn, safe(found), exact=False)
    except SQLAlchemyError as exc:
        database.dispose()
        raise translate(exc, found) from exc
    except SchemaMissing:
        database.dispose()
        raise
    return database


def _no_schema(url: str) -> SchemaMissing:
    where = safe(url)
    return SchemaMissing(f"the database at {where} has no Jifen schema; {upgrade_hint(where)}")


def _bad_driver(url: str, exc: Exception) -> ConfigurationError:
    scheme = parse(url).drivername
    return ConfigurationError(
        f"cannot use a {scheme!r} URL ({_first_line(exc)}); use 'sqlite:///PATH' or "
        "'postgresql://user:password@host:5432/dbname'"
    )


def translate(exc: BaseException, url: str | None) -> LoyaltyError:
    """The Jifen error that says in one line what a database error means and what to do."""
    if isinstance(exc, LoyaltyError):
        return exc
    where = safe(url) if url else "the database"
    if isinstance(exc, (NoSuchModuleError, ArgumentError)):
        return _bad_driver(url or "", exc) if url else ConfigurationError(_first_line(exc))
    reason = _first_line(getattr(exc, "orig", None) or exc)
    if _is_missing_table(reason):
        return _no_schema(url) if url else SchemaMissing(f"{reason}; run `jifen db upgrade`")
    if "unable to open database file" in reason or "file is not a database" in reason:
        return DatabaseUnavailable(f"cannot open the SQLite database {where} ({reason}); {_HINT}")
    return DatabaseUnavailable(f"cannot reach the database at {where} ({reason}); {_HINT}")


def _is_missing_table(reason: str) -> bool:
    """SQLite's ``no such table`` or PostgreSQL's ``relation "…" does not exist``."""
    return "no such table" in reason or (
        reason.startswith('relation "') and reason.endswith("does not exist")
    )


def _first_line(exc: BaseException | object) -> str:
    """The line of a driver message that says what went wrong (``FATAL:`` first)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "FATAL:" in line:
            return line[line.index("FATAL:") + len("FATAL:") :].strip()
    if not lines:
        return type(exc).__name__
    first = lines[0]
    if first.startswith("(") and ") " in first:  # "(psycopg.OperationalError) ..."
        first = first.split(") ", 1)[1]
    return first.removeprefix("connection failed: ")
