"""The operators' endpoints: ``GET /metrics``, ``GET /healthz`` and ``GET /readyz``.

A small Flask app of its own (:func:`create_ops_app`), mounted in front of the console by
:func:`mount_ops`, so that the console alone (``jifen console``, ``gunicorn
'admin:create_app()'``) and the whole server (``jifen serve``: the console's app answers
every path outside ``/v1`` and ``/m``) serve them at the top level, never behind the
console's login, CSRF or HTML error pages.

* ``/metrics``: Prometheus text (OpenMetrics when the ``Accept`` header asks), the
  in-process metrics of :mod:`loyalty.monitoring.metrics` (every worker's, in
  multi-process mode) and the database's gauges of :mod:`loyalty.monitoring.collector`.
  With ``JIFEN_METRICS_TOKEN`` set, only a request with ``Authorization: Bearer <token>``
  gets them (compared in constant time); others get 401.
* ``/healthz``: 200 while the process answers (no database).
* ``/readyz``: 200 when the database answers with its schema at head and Redis (when
  configured) answers, else 503; JSON with each check.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import TYPE_CHECKING

from flask import Flask, Response, jsonify, request

from loyalty.db.database import Database
from loyalty.monitoring.collector import HealthCollector
from loyalty.monitoring.health import Health, liveness, readiness
from loyalty.monitoring.metrics import exposition

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

OPS_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})


def create_ops_app(
    database: Database, *, redis_url: str | None = None, metrics_token: str | None = None
) -> Flask:
    """The three endpoints over ``database`` (and Redis at ``redis_url`` for readiness)."""
    app = Flask(__name__)
    collector = HealthCollector(database)
    expected = _digest(f"Bearer {metrics_token}") if metrics_token else None

    @app.get("/metrics")
    def metrics() -> Response:
        if expected is not None and not _same(request.headers.get("Authorization"), expected):
            return Response(
                "a bearer token is required to read the metrics\n",
                status=401,
                mimetype="text/plain",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        body, content_type = exposition(request.headers.get("Accept"), collector)
        return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})

    @app.get("/healthz")
    def healthz() -> Response:
        return _answer(liveness())

    @app.get("/readyz")
    def readyz() -> Response:
        return _answer(readiness(database, redis_url))

    return app


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def _same(given: str | None, expected: bytes) -> bool:
    """Whether the ``Authorization`` header is the expected one, compared in constant time
    (as digests, so its length does not show either)."""
    return hmac.compare_digest(_digest(given or ""), expected)


def _answer(health: Health) -> Response:
    response = jsonify(health.to_dict())
    response.status_code = health.http_status
    response.headers["Cache-Control"] = "no-store"
    return response


class OpsMount:
    """WSGI: ``/metrics``, ``/healthz`` and ``/readyz`` to the ops app, the rest to ``app``."""

    def __init__(self, ops: WSGIApplication, app: WSGIApplication) -> None:
        self.ops = ops
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") in OPS_PATHS:
            return self.ops(environ, start_response)
        return self.app(environ, start_response)


def mount_ops(
    app: Flask,
    database: Database,
    *,
    redis_url: str | None = None,
    metrics_token: str | None = None,
) -> None:
    """Serve the ops endpoints in front of ``app`` (its ``wsgi_app`` is wrapped)."""
    ops = create_ops_app(database, redis_url=redis_url, metrics_token=metrics_token)
    app.wsgi_app = OpsMount(ops.wsgi_app, app.wsgi_app)  # type: ignore[method-assign]
