"""Alembic environment for Jifen: the only way a schema is made, in tests too."""

from __future__ import annotations

import os
from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import Connection

from loyalty.db.models import Base

config = context.config
if config.config_file_name and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def db_url() -> str:
    """``-x db_url=…``, else ``sqlalchemy.url`` (the URL ``loyalty.migrate`` was given), else
    ``$JIFEN_DATABASE_URL``: an explicit URL always wins over the environment."""
    url = (
        context.get_x_argument(as_dictionary=True).get("db_url")
        or config.get_main_option("sqlalchemy.url")
        or os.environ.get("JIFEN_DATABASE_URL")
    )
    if not url:
        raise SystemExit("no database URL: pass --database-url or set JIFEN_DATABASE_URL")
    return url


def render_item(type_: str, obj: Any, autogen_context: Any) -> Any:
    """Custom column types need an import line in generated revisions."""
    if type_ == "type" and type(obj).__module__.startswith("loyalty."):
        autogen_context.imports.add(f"import {type(obj).__module__}")
    return False


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_item=render_item,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    url = db_url()
    context.configure(
        url=url,
        target_metadata=Base.metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()
elif (shared := config.attributes.get("connection")) is not None:
    run(shared)
else:
    with create_engine(db_url(), poolclass=pool.NullPool).connect() as conn:
        run(conn)
