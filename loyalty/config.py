"""Every ``JIFEN_*`` setting: its name, default and meaning, read from the environment here only.

:func:`load_settings` reads the environment once and returns a frozen :class:`Settings`; a
door (a ``jifen`` command, the console's :func:`~admin.create_app`, an RQ job) calls it when
it starts and passes the values on. An empty variable counts as unset. Values given
explicitly (a ``--database-url`` option, a key in the console's config mapping) win over
these.

==============================  ===========================================================
``JIFEN_DATABASE_URL``          the SQLAlchemy database URL (no default: required)
``JIFEN_REDIS_URL``             Redis for the job queue and the console's sign-in throttle;
                                unset: jobs run inline, throttle counts stay in memory
``JIFEN_PROGRAM``               the console's program code (default: the first program)
``JIFEN_SECRET_KEY``            the console's session-signing key (required by the console)
``JIFEN_STRIPE_WEBHOOK_SECRET`` the console serves ``POST /webhooks/stripe`` with this secret
``JIFEN_MAX_BODY_BYTES``        the console's largest request body (default 1 MiB)
``JIFEN_API_KEY``               the server key a remote SDK client sends (``jfn_sk_…``) when
                                ``Jifen("https://…")`` is given no ``api_key``
``JIFEN_METRICS_TOKEN``         ``GET /metrics`` then requires ``Authorization: Bearer <it>``
                                (unset: ``/metrics`` answers anyone who reaches it)
``JIFEN_LOG_FORMAT``            ``text`` (the default: one readable line per record) or
                                ``json`` (one JSON object per line, with the request id)
==============================  ===========================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

DEFAULT_MAX_BODY_BYTES = 1024 * 1024


def _setting(env: str, doc: str) -> Any:
    """A settings field read from ``$env`` (None when unset or empty)."""
    return field(default=None, metadata={"env": env, "doc": doc})


@dataclass(frozen=True)
class Settings:
    """The ``JIFEN_*`` environment, one field per variable (None: not set)."""

    database_url: str | None = _setting("JIFEN_DATABASE_URL", "the SQLAlchemy database URL")
    redis_url: str | None = _setting(
        "JIFEN_REDIS_URL", "Redis for the job queue and sign-in throttling; none: inline"
    )
    program: str | None = _setting("JIFEN_PROGRAM", "the console's program (default: the first)")
    secret_key: str | None = _setting("JIFEN_SECRET_KEY", "the console's session-signing key")
    stripe_webhook_secret: str | None = _setting(
        "JIFEN_STRIPE_WEBHOOK_SECRET", "serve POST /webhooks/stripe with this signing secret"
    )
    max_body_bytes: str | None = _setting(
        "JIFEN_MAX_BODY_BYTES",
        f"the console's largest request body in bytes (default {DEFAULT_MAX_BODY_BYTES})",
    )
    api_key: str | None = _setting(
        "JIFEN_API_KEY", "the server key (jfn_sk_…) of a remote SDK client without api_key="
    )
    metrics_token: str | None = _setting(
        "JIFEN_METRICS_TOKEN", "GET /metrics requires Authorization: Bearer <this token>"
    )
    log_format: str | None = _setting(
        "JIFEN_LOG_FORMAT", "text (default) or json: one JSON object per log line"
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings in ``environ`` (default: ``os.environ``)."""
        source = os.environ if environ is None else environ
        return cls(**{f.name: source.get(env_name(f.name)) or None for f in fields(cls)})


def env_name(setting: str) -> str:
    """The environment variable of the :class:`Settings` field ``setting``."""
    found = {f.name: f.metadata["env"] for f in fields(Settings)}
    return str(found[setting])


DATABASE_URL_ENV = env_name("database_url")
REDIS_URL_ENV = env_name("redis_url")
API_KEY_ENV = env_name("api_key")
METRICS_TOKEN_ENV = env_name("metrics_token")
LOG_FORMAT_ENV = env_name("log_format")


def load_settings() -> Settings:
    """Read every ``JIFEN_*`` setting from the environment now."""
    return Settings.from_env()
