"""The console's application factory: :func:`create_app`.

Configuration (a mapping passed to :func:`create_app`; the ``JIFEN_*`` environment, read by
:func:`loyalty.config.load_settings`, fills the gaps):

===========================  ==============================================================
``JIFEN_DATABASE``           a :class:`~loyalty.db.Database` to use (tests), or else
``JIFEN_DATABASE_URL``       the database URL (default ``$JIFEN_DATABASE_URL``)
``JIFEN_PROGRAM``            the program's code (default ``$JIFEN_PROGRAM``, else the first)
``JIFEN_APPROVAL_THRESHOLD`` adjustments above this many points need a second person (1000)
``JIFEN_REDIS_URL``          "run now" enqueues jobs there, and sign-in throttling counts
                             failures there; none: jobs run inline, counts stay in memory
``JIFEN_MAX_BODY_BYTES``     the largest request body accepted (1 MiB); larger ones get 413
``STRIPE_WEBHOOK_SECRET``    serve ``POST /webhooks/stripe`` with this signing secret
``SECRET_KEY``               required (``$JIFEN_SECRET_KEY``): at least 32 characters, and
                             not a few characters repeated (length x log2 of its distinct
                             characters >= 96); only ``TESTING`` and ``JIFEN_DEMO`` may leave
                             it out (a random key is made)
``SESSION_COOKIE_SECURE``    True by default (cookies only over https); the demo turns it off
``JIFEN_METRICS_TOKEN``      ``GET /metrics`` requires ``Authorization: Bearer <it>``
===========================  ==============================================================

``/metrics``, ``/healthz`` and ``/readyz`` are served in front of the console, outside its
login (:mod:`admin.ops`); every response carries an ``X-Request-Id``
(:class:`~loyalty.monitoring.logs.RequestIds`).

Request bodies are capped by Flask's ``MAX_CONTENT_LENGTH`` whatever their framing: a
``Content-Length`` above it is refused (413) before anything is read, and a chunked body is
read through Werkzeug's limited stream, at most one byte past the limit, before any view or
form parser sees it: over the limit it is refused with 413 too. (Werkzeug's limited stream
alone would stop at the limit and hand over a silently truncated body.)

Every POST is protected by flask-wtf's :class:`CSRFProtect` (the one CSRF mechanism; the
Stripe webhook blueprint is exempt: Stripe's signature authenticates it).
"""

from __future__ import annotations

import datetime as dt
import math
import secrets
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, redirect, render_template, request, send_from_directory, url_for
from flask.typing import ResponseReturnValue
from flask_admin import Admin  # type: ignore[import-untyped]
from flask_admin.theme import Bootstrap4Theme  # type: ignore[import-untyped]
from flask_babel import LazyString, force_locale
from flask_babel import lazy_gettext as _l
from flask_login import current_user  # type: ignore[import-untyped]
from flask_wtf.csrf import CSRFError, CSRFProtect  # type: ignore[import-untyped]
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from admin.auth import has_role, init_auth, local_path
from admin.context import EXTENSION, Console
from admin.error_words import error_text
from admin.formatting import init_filters, points
from admin.history_words import init_history_words
from admin.i18n import ENGLISH, init_i18n
from admin.ops import mount_ops
from admin.throttle import init_throttle
from admin.words import role_word
from loyalty.config import DEFAULT_MAX_BODY_BYTES, Settings, load_settings
from loyalty.db.database import Database
from loyalty.errors import ConfigurationError, LoyaltyError
from loyalty.monitoring.logs import RequestIds
from loyalty.services.approvals import DEFAULT_THRESHOLD

MIN_SECRET_CHARS = 32
MIN_SECRET_BITS = 96  # length x log2(distinct characters): refuses "abab..." and "aaaa..."
# The member page's reward pictures (the ``api`` package beside this one, in a checkout and
# in a wheel alike), which the demo's catalog names as ``/m/static/rewards/…``.
REWARD_IMAGES = Path(__file__).resolve().parent.parent / "api" / "static" / "member" / "rewards"
# No 'unsafe-inline': every script and style is a file under a static folder (no inline
# <script>, event handler or style attribute), so injected markup cannot run or restyle.
# Images may come from any https host: reward images are given by URL (a shop's CDN).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: https:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
MAKE_A_SECRET = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the console: login, roles, CSRF, the views and (if configured) the webhook."""
    app = Flask(__name__)
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=True,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=8),
        WTF_CSRF_TIME_LIMIT=8 * 3600,
        JIFEN_APPROVAL_THRESHOLD=DEFAULT_THRESHOLD,
        JIFEN_DEMO=False,
        JIFEN_MAX_BODY_BYTES=DEFAULT_MAX_BODY_BYTES,
        FLASK_ADMIN_RAISE_ON_VIEW_EXCEPTION=False,
    )
    given = dict(config or {})
    for key, value in _from_settings(load_settings()).items():
        if key not in given and value:
            app.config[key] = value
    app.config.update(given)
    app.config["REMEMBER_COOKIE_SECURE"] = app.config["SESSION_COOKIE_SECURE"]
    app.config["MAX_CONTENT_LENGTH"] = _body_limit(app.config["JIFEN_MAX_BODY_BYTES"])
    _require_secret(app)

    database = app.config.get("JIFEN_DATABASE")
    if database is None:
        database = Database.from_url(app.config.get("JIFEN_DATABASE_URL"))
    if not isinstance(database, Database):
        raise ConfigurationError("JIFEN_DATABASE must be a loyalty.db.Database")
    threshold = int(app.config["JIFEN_APPROVAL_THRESHOLD"])
    app.extensions[EXTENSION] = Console(
        db=database,
        program_code=app.config.get("JIFEN_PROGRAM") or None,
        approval_threshold=threshold,
        redis_url=app.config.get("JIFEN_REDIS_URL") or None,
    )

    _init_body_limit(app)  # before CSRFProtect, whose check reads the form
    csrf = CSRFProtect(app)
    init_auth(app)
    init_throttle(app, app.config.get("JIFEN_REDIS_URL") or None)
    init_i18n(app)
    init_history_words(app)
    _init_admin(app)
    _init_webhook(app, database, csrf)
    _init_errors(app)
    _init_headers(app)
    app.jinja_env.globals.update(has_role=has_role)
    init_filters(app)

    @app.get("/m/static/rewards/<path:name>")
    def reward_image(name: str) -> ResponseReturnValue:
        """The reward pictures the member page serves (``/m/static/rewards/…``, what the
        demo's catalog points to), so the console's catalog shows them too."""
        return send_from_directory(REWARD_IMAGES, name, max_age=3600)

    @app.get("/")
    def home() -> ResponseReturnValue:
        if not current_user.is_authenticated:
            return redirect(url_for("auth.login"))
        return redirect(url_for("admin.index"))

    mount_ops(
        app,
        database,
        redis_url=app.config.get("JIFEN_REDIS_URL") or None,
        metrics_token=app.config.get("JIFEN_METRICS_TOKEN") or None,
    )
    app.wsgi_app = RequestIds(app.wsgi_app)  # type: ignore[method-assign]
    return app


def _from_settings(settings: Settings) -> dict[str, str | None]:
    """The app config keys that the ``JIFEN_*`` environment may fill."""
    return {
        "JIFEN_DATABASE_URL": settings.database_url,
        "JIFEN_PROGRAM": settings.program,
        "JIFEN_REDIS_URL": settings.redis_url,
        "SECRET_KEY": settings.secret_key,
        "STRIPE_WEBHOOK_SECRET": settings.stripe_webhook_secret,
        "JIFEN_MAX_BODY_BYTES": settings.max_body_bytes,
        "JIFEN_METRICS_TOKEN": settings.metrics_token,
    }


def _init_body_limit(app: Flask) -> None:
    """Refuse a chunked body over ``MAX_CONTENT_LENGTH`` with 413, reading no more than
    the limit and one byte; a body within it is kept for the form parser and the views."""

    @app.before_request
    def cap_chunked_body() -> None:
        if "chunked" not in request.headers.get("Transfer-Encoding", "").lower():
            return  # Content-Length bodies are checked by Werkzeug before they are read
        limit = int(app.config["MAX_CONTENT_LENGTH"])
        request.max_content_length = limit + 1
        if len(request.get_data(cache=True)) > limit:
            raise RequestEntityTooLarge()


def _body_limit(value: Any) -> int:
    """``JIFEN_MAX_BODY_BYTES`` as a whole number of bytes, at least 1 KiB."""
    text = str(value).strip()
    if not text.isdigit() or not 1024 <= int(text) <= 2**40:
        raise ConfigurationError(
            f"JIFEN_MAX_BODY_BYTES must be a whole number of bytes from 1024 up, got {value!r}"
        )
    return int(text)


def secret_strength(key: str | bytes) -> float:
    """A rough estimate of a key's bits: its length times log2 of its distinct symbols."""
    distinct = len(set(key))
    return len(key) * math.log2(distinct) if distinct > 1 else 0.0


def _require_secret(app: Flask) -> None:
    key = app.config.get("SECRET_KEY")
    if not key and (app.config.get("TESTING") or app.config.get("JIFEN_DEMO")):
        app.config["SECRET_KEY"] = secrets.token_urlsafe(32)
        return
    if not key:
        raise ConfigurationError(
            "the console needs a SECRET_KEY to sign sessions: set $JIFEN_SECRET_KEY to a long "
            f"random string ({MAKE_A_SECRET})"
        )
    if not isinstance(key, str | bytes) or (
        len(key) < MIN_SECRET_CHARS or secret_strength(key) < MIN_SECRET_BITS
    ):
        raise ConfigurationError(
            f"the SECRET_KEY ($JIFEN_SECRET_KEY) is too weak to sign sessions: use at least "
            f"{MIN_SECRET_CHARS} random characters, not a few characters repeated; make one "
            f"with {MAKE_A_SECRET}"
        )


def _init_admin(app: Flask) -> Admin:
    from admin.views import (
        AdjustmentsView,
        AuditView,
        DashboardView,
        EventsView,
        ExportView,
        FulfilmentView,
        JobsView,
        KeysView,
        MembersView,
        OutboundWebhooksView,
        RewardsView,
        RulesView,
        TiersView,
    )
    from admin.views.analytics import AnalyticsView
    from admin.views.reminders import RemindersView
    from admin.views.risk import RiskView

    admin = Admin(
        app,
        name="Jifen",
        url="/admin",
        index_view=DashboardView(name=_l("Dashboard"), url="/admin", endpoint="admin"),
        theme=Bootstrap4Theme(swatch="cerulean", fluid=True, base_template="jifen/master.html"),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        admin.add_view(AnalyticsView(name=_l("Analytics"), endpoint="analytics"))
        admin.add_view(RulesView(name=_l("Earning rules"), endpoint="rules"))
        admin.add_view(TiersView(name=_l("Tiers"), endpoint="tiers"))
        admin.add_view(RewardsView(name=_l("Rewards"), endpoint="rewards"))
        admin.add_view(MembersView(name=_l("Members"), endpoint="members"))
        admin.add_view(FulfilmentView(name=_l("Fulfilment"), endpoint="fulfilment"))
        admin.add_view(AdjustmentsView(name=_l("Adjustments"), endpoint="adjustments"))
        admin.add_view(RiskView(name=_l("Risk"), endpoint="risk"))
        admin.add_view(JobsView(name=_l("Jobs"), endpoint="jobs"))
        admin.add_view(RemindersView(name=_l("Reminders"), endpoint="reminders"))
        admin.add_view(EventsView(name=_l("Webhook events"), endpoint="events"))
        admin.add_view(OutboundWebhooksView(name=_l("Webhooks"), endpoint="webhooks_out"))
        admin.add_view(AuditView(name=_l("Audit log"), endpoint="audit"))
        admin.add_view(ExportView(name=_l("Export"), endpoint="export"))
        admin.add_view(KeysView(name=_l("API keys"), endpoint="keys"))
    return admin


def _init_webhook(app: Flask, database: Database, csrf: CSRFProtect) -> None:
    secret = app.config.get("STRIPE_WEBHOOK_SECRET")
    if not secret:
        return
    from admin.webhooks import init_stripe_webhook
    from loyalty.stripe.webhook import StripeWebhook

    with app.app_context():
        program = app.extensions[EXTENSION].program().code
    hook = StripeWebhook(database, program=program, secret=secret)
    csrf.exempt(init_stripe_webhook(app, hook))


# Each error page's title, in the request's language.
ERROR_TITLES = {
    400: _l("That request could not be understood"),
    401: _l("Please sign in"),
    403: _l("You do not have access to this page"),
    404: _l("Page not found"),
    405: _l("That is not allowed here"),
    413: _l("That request is too large"),
    429: _l("Too many attempts"),
    500: _l("Something went wrong"),
}
UNEXPECTED = _l(
    "The console hit an unexpected error; it has been logged. Try again, and tell your "
    "administrator if it keeps happening."
)
# What the page says for an HTTP error raised with Werkzeug's own (English) description.
HTTP_MESSAGES = {
    400: _l("The browser sent a request this console could not understand."),
    404: _l("There is no page at this address: check the link, or go back to the dashboard."),
    405: _l("This page does not take that kind of request."),
    429: _l("Too many requests: wait a moment and try again."),
    500: UNEXPECTED,
}


def _error_page(status: int, message: Any) -> ResponseReturnValue:
    """The error page in the request's language; for the Stripe webhook, a JSON error in
    English (it answers Stripe, not a person)."""
    if request.path.startswith("/webhooks/"):
        with force_locale(ENGLISH):
            return {"error": {"code": str(status), "message": str(message)}}, status
    title = ERROR_TITLES.get(status, ERROR_TITLES[500])
    html = render_template("jifen/error.html", status=status, title=title, message=str(message))
    return html, status


def _http_message(exc: HTTPException) -> Any:
    """An HTTP error's message: the console's words for Werkzeug's own descriptions, else the
    description it was raised with; a refusal for a role names the roles that may go on."""
    roles = getattr(exc, "roles", None)
    if roles:
        words = ", ".join(role_word(r) for r in roles)
        return _l("This needs one of these roles: %(roles)s.", roles=words)
    if exc.code in HTTP_MESSAGES and exc.description == type(exc).description:
        return HTTP_MESSAGES[exc.code]
    return exc.description or ""


def _init_errors(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> ResponseReturnValue:
        return _error_page(
            400,
            _l(
                "The form expired or did not come from this console (missing or wrong CSRF "
                "token). Go back, reload the page and try again."
            ),
        )

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc: RequestEntityTooLarge) -> ResponseReturnValue:
        limit = app.config["MAX_CONTENT_LENGTH"]
        return _error_page(
            413,
            _l(
                "The request body is larger than the %(limit)s bytes this server accepts; "
                "nothing was read past that point or saved.",
                limit=points(limit),
            ),
        )

    @app.errorhandler(403)
    def forbidden(exc: HTTPException) -> ResponseReturnValue:
        view = _console_view(app)
        if view is None or not current_user.is_authenticated:
            return _error_page(403, _http_message(exc))
        html = view.render(
            "jifen/error.html",
            status=403,
            title=ERROR_TITLES[403],
            message="",
            roles=getattr(exc, "roles", None) or (),
            page_name=view.name,
            writing=request.method not in ("GET", "HEAD"),
            back=_back_link(),
        )
        return html, 403

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> ResponseReturnValue:
        if exc.code == 401:
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        return _error_page(exc.code or 500, _http_message(exc))

    @app.errorhandler(LoyaltyError)
    def loyalty_error(exc: LoyaltyError) -> ResponseReturnValue:
        return _error_page(exc.http_status, LazyString(error_text, exc))

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> ResponseReturnValue:
        if app.config.get("JIFEN_RAISE_ERRORS"):
            raise exc
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return _error_page(500, UNEXPECTED)


def _console_view(app: Flask) -> Any:
    """The console view the request went to (its page, for the console's layout), else the
    dashboard; None outside the console (the webhook)."""
    if request.path.startswith("/webhooks/"):
        return None
    admins = app.extensions.get("admin") or []
    if not admins:
        return None
    for view in admins[0]._views:
        if view.endpoint == request.blueprint:
            return view
    return admins[0].index_view


def _back_link() -> str:
    """Where "Back" leads from an error page: the page the person came from when it is on
    this console, else the dashboard."""
    parts = urlsplit(request.referrer or "")
    if parts.netloc == request.host and parts.path != request.path:
        target = local_path(parts.path + (f"?{parts.query}" if parts.query else ""))
        if target:
            return target
    return str(url_for("admin.index"))


def _init_headers(app: Flask) -> None:
    @app.after_request
    def security_headers(response: Any) -> Any:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            CONTENT_SECURITY_POLICY,
        )
        return response
