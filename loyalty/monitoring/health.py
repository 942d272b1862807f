"""Liveness and readiness, as ``/healthz`` and ``/readyz`` answer them.

* **Liveness** (:func:`liveness`): the process answers; nothing else is touched, so a slow
  or lost database never gets a healthy process restarted.
* **Readiness** (:func:`readiness`): the database answers a query, its schema is the one
  this Jifen needs (the Alembic head: an upgrade not run yet, or a newer schema, is not
  ready), and Redis answers a ping when one is configured.

Each check says ``ok`` and, when it is not, a short reason without the database's or
Redis's address (these endpoints are usually open to the load balancer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from loyalty.db.database import Database
from loyalty.migrate import current_revision, known_revisions

REDIS_TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True)
class Check:
    """One readiness check: its name, whether it passed, and why not."""

    name: str
    ok: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"ok": self.ok}
        if self.detail:
            found["detail"] = self.detail
        return found


@dataclass(frozen=True)
class Health:
    """A set of checks; healthy when every one passed."""

    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def http_status(self) -> int:
        return 200 if self.ok else 503

    def to_dict(self) -> dict[str, Any]:
        """``{"status": "ok"|"failing", "checks": {name: {"ok": …, "detail": …}}}``."""
        return {
            "status": "ok" if self.ok else "failing",
            "checks": {check.name: check.to_dict() for check in self.checks},
        }


def liveness() -> Health:
    """The process is up (no other check)."""
    return Health((Check("process", True),))


def readiness(db: Database, redis_url: str | None) -> Health:
    """Database reachable, schema at head, and Redis reachable when configured."""
    database, schema = check_database(db)
    checks = [database, schema]
    if redis_url:
        checks.append(check_redis(redis_url))
    return Health(tuple(checks))


def check_database(db: Database) -> tuple[Check, Check]:
    """Whether the database answers, and whether its schema is at this Jifen's head."""
    try:
        with db.read() as conn:
            conn.execute(text("SELECT 1"))
            revision = current_revision(conn)
    except Exception as exc:
        reason = f"unreachable ({type(exc).__name__})"
        return Check("database", False, reason), Check("schema", False, "database unreachable")
    return Check("database", True), check_schema(revision)


def check_schema(revision: str | None) -> Check:
    """Whether ``revision`` is this Jifen's head."""
    heads, known = known_revisions()
    if revision in heads:
        return Check("schema", True)
    if revision is None:
        return Check("schema", False, "no Jifen schema: run jifen db upgrade")
    if revision not in known:
        return Check("schema", False, f"at {revision}, newer than this Jifen knows")
    wanted = ", ".join(sorted(heads))
    return Check("schema", False, f"at {revision}, this Jifen needs {wanted}: run jifen db upgrade")


def check_redis(url: str) -> Check:
    """Whether Redis at ``url`` answers a ping within a second."""
    from redis import Redis

    try:
        connection = Redis.from_url(
            url,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
        )
        try:
            connection.ping()
        finally:
            connection.close()
    except Exception as exc:
        return Check("redis", False, f"unreachable ({type(exc).__name__})")
    return Check("redis", True)
