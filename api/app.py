"""The API's application factory: :func:`create_api_app`.

Configuration (a mapping; the ``JIFEN_*`` environment fills the gaps):

============================  ============================================================
``JIFEN_DATABASE``            a :class:`~loyalty.db.Database` to use (tests), or else
``JIFEN_DATABASE_URL``        the database URL (default ``$JIFEN_DATABASE_URL``)
``SECRET_KEY``                signs member tokens (``$JIFEN_SECRET_KEY``); without it no
                              member tokens are issued
``JIFEN_REDIS_URL``           rate-limit counters and queued jobs; none: in memory / inline
``JIFEN_API_RATE_LIMIT``      per credential (default ``1200 per minute``)
``JIFEN_APPROVAL_THRESHOLD``  adjustments above this many points need the console (1000)
``JIFEN_MAX_BODY_BYTES``      the largest request body (1 MiB); larger ones get 413
============================  ============================================================

It serves ``/v1/…`` (the API), ``/v1/openapi.json`` and ``/v1/docs`` (Swagger UI from the
installed package, no CDN), and the member page at ``/m/``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import swagger_ui_bundle
from flask import Flask, Response, g, request, send_from_directory
from flask.typing import ResponseReturnValue
from flask_limiter import Limit, Limiter

from api import events, members, points, program, rewards, risk, tiers
from api.auth import init_credentials, limit_key, refused_key
from api.context import EXTENSION, ApiContext, init_request_units
from api.cors import init_cors
from api.problems import JifenApi, init_problems
from loyalty.config import DEFAULT_MAX_BODY_BYTES, load_settings
from loyalty.db.database import Database
from loyalty.errors import ConfigurationError
from loyalty.monitoring.logs import REQUEST_ID_HEADER, RequestIds, current_request_id
from loyalty.services.approvals import DEFAULT_THRESHOLD

API_VERSION = "1.0.0"
DEFAULT_RATE_LIMIT = "1200 per minute"
SWAGGER_URL = "/v1/vendor/swagger-ui/"
log = logging.getLogger("jifen.api")
_REDIS_TIMEOUTS: dict[str, Any] = {"socket_connect_timeout": 1, "socket_timeout": 1}

API_DESCRIPTION = """\
Jifen's loyalty points API. Every endpoint calls the same services as the Python SDK and
answers the same results and errors.

* **Authentication**: `Authorization: Bearer jfn_sk_…` (a server key of one program, with
  scopes `read`, `earn`, `redeem`, `refund`, `transfer`, `adjust`, `events` (the events
  feed), `webhooks` (webhook endpoints), `risk` (risk rules, cases, account freezes),
  `admin`), or for a
  member's own reads `Bearer jfn_mt_…` (a member token from `POST /v1/members/{member}/tokens`).
* **Idempotency**: every points write (earnings, holds and their capture or release,
  refunds, disputes, transfers, adjustments) takes an `Idempotency-Key` header; without one
  the key is derived from the ids in the body (`earn:<order_id>`…). A retry answers the first
  response with `Idempotent-Replayed: true`; the same key with another body is 409. A reward
  redemption has no id to derive one from: send a key, or every call is a new redemption.
  Using a voucher is idempotent per order, moving a fulfilment per state. A manual tier
  change is idempotent by its `change_id` (key `tier:<change_id>`).
  Enrolling, linking and closing a member are idempotent by the member's id (the same call
  again answers the same member) and do not read the header.
* **Errors** are RFC 9457 `application/problem+json` with the error's stable `code`.
"""


def create_api_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the API (and the member page) as a Flask app."""
    app = Flask(__name__)
    _configure(app, dict(config or {}))
    database = app.config.get("JIFEN_DATABASE")
    if database is None:
        database = Database.from_url(app.config.get("JIFEN_DATABASE_URL"))
    if not isinstance(database, Database):
        raise ConfigurationError("JIFEN_DATABASE must be a loyalty.db.Database")
    app.extensions[EXTENSION] = ApiContext(
        db=database,
        secret=str(app.config.get("SECRET_KEY") or ""),
        approval_threshold=int(app.config["JIFEN_APPROVAL_THRESHOLD"]),
        redis_url=app.config.get("JIFEN_REDIS_URL") or None,
    )
    _init_request_ids(app)
    init_problems(app)
    api = JifenApi(app)
    api.spec.components.security_scheme(
        "serverKey", {"type": "http", "scheme": "bearer", "bearerFormat": "jfn_sk_…"}
    )
    api.spec.components.security_scheme(
        "memberToken", {"type": "http", "scheme": "bearer", "bearerFormat": "jfn_mt_…"}
    )
    blueprints = (
        members.blp,
        points.blp,
        program.blp,
        rewards.blp,
        tiers.blp,
        events.blp,
        risk.blp,
    )
    for blueprint in blueprints:
        api.register_blueprint(blueprint)
    limiter = _init_limits(app)
    init_credentials(app, (blueprint.name for blueprint in blueprints))
    init_request_units(app)
    limiter.exempt(app.blueprints["api-docs"])  # type: ignore[call-overload]
    _init_docs_assets(app, limiter)
    _init_member_page(app, limiter)
    init_cors(app)
    app.wsgi_app = RequestIds(app.wsgi_app)  # type: ignore[method-assign]
    return app


def _configure(app: Flask, given: dict[str, Any]) -> None:
    settings = load_settings()
    app.config.update(
        API_TITLE="Jifen API",
        API_VERSION=API_VERSION,
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX="/v1",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL=SWAGGER_URL,
        OPENAPI_SWAGGER_UI_CONFIG={"validatorUrl": None},
        API_SPEC_OPTIONS={
            "info": {"description": API_DESCRIPTION},
            "servers": [{"url": "/", "description": "this server"}],
        },
        JIFEN_APPROVAL_THRESHOLD=DEFAULT_THRESHOLD,
        JIFEN_API_RATE_LIMIT=DEFAULT_RATE_LIMIT,
        JIFEN_MAX_BODY_BYTES=DEFAULT_MAX_BODY_BYTES,
        JSON_SORT_KEYS=False,
    )
    from_env = {
        "JIFEN_DATABASE_URL": settings.database_url,
        "JIFEN_REDIS_URL": settings.redis_url,
        "SECRET_KEY": settings.secret_key,
        "JIFEN_MAX_BODY_BYTES": settings.max_body_bytes,
    }
    app.config.update({k: v for k, v in from_env.items() if v and k not in given})
    app.config.update(given)
    app.config["MAX_CONTENT_LENGTH"] = int(app.config["JIFEN_MAX_BODY_BYTES"])
    app.json.sort_keys = False  # type: ignore[attr-defined]


def _init_request_ids(app: Flask) -> None:
    """The request's id (given by :class:`~loyalty.monitoring.logs.RequestIds`: the caller's
    ``X-Request-Id`` if it is sane), in the response's header and in one log line per
    request."""

    @app.before_request
    def assign_request_id() -> None:
        g.request_id = current_request_id() or ""
        g.started = time.perf_counter()

    @app.after_request
    def log_request(response: Response) -> Response:
        request_id = getattr(g, "request_id", "")
        response.headers[REQUEST_ID_HEADER] = request_id
        if log.isEnabledFor(logging.INFO):
            key = getattr(g, "api_key", None)
            log.info(
                "%s %s %s %.1fms request_id=%s key=%s",
                request.method,
                request.path,
                response.status_code,
                (time.perf_counter() - getattr(g, "started", time.perf_counter())) * 1000,
                request_id,
                key.prefix if key is not None else "-",
            )
        return response


def _init_limits(app: Flask) -> Limiter:
    """Per-credential rate limits (429 with ``Retry-After``), in Redis when configured.

    A credential has one budget across every endpoint; refused credentials (401) also count
    against the caller's address, which is refused once it has used that budget up.
    """
    redis_url = app.config.get("JIFEN_REDIS_URL")
    rate = str(app.config["JIFEN_API_RATE_LIMIT"])
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    limiter = Limiter(
        limit_key,
        app=app,
        default_limits=[
            Limit(rate, shared=True, scope="api"),
            Limit(
                rate,
                key_function=refused_key,
                shared=True,
                scope="refused",
                deduct_when=lambda response: response.status_code == 401,
            ),
        ],
        storage_uri=redis_url or "memory://",
        storage_options=_REDIS_TIMEOUTS if redis_url else {},
        in_memory_fallback_enabled=bool(redis_url),
        strategy="moving-window",
        key_prefix="jifen-api",
    )
    return limiter


def _init_docs_assets(app: Flask, limiter: Limiter) -> None:
    """Swagger UI's files, served from the installed package (no CDN)."""

    @app.get(SWAGGER_URL + "<path:filename>")
    @limiter.exempt
    def swagger_assets(filename: str) -> ResponseReturnValue:
        return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename)


def _init_member_page(app: Flask, limiter: Limiter) -> None:
    """The member page at ``/m/``, if its module is installed."""
    from api.member_page import blp as member_page

    app.register_blueprint(member_page)
    del limiter
