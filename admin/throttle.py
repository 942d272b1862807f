"""Sign-in throttling: failed logins are counted per account and per client address.

Flask-Limiter counts only failures (a 401 answer) over a moving window; once a count is
used up, every attempt for that account, or from that address, is refused with 429 before
the password is even checked (the right password included) until the window has room again.
The login page then says so and when to try again.

===============================  ==================================================
``JIFEN_LOGIN_ACCOUNT_LIMIT``    failures per account (``5 per minute``)
``JIFEN_LOGIN_ADDRESS_LIMIT``    failures per client address (``20 per minute``)
``JIFEN_REDIS_URL``              counts live in Redis (shared by every worker);
                                 without it, in each process's memory
===============================  ==================================================

Behind a reverse proxy the client address is the proxy's unless the app is wrapped in
werkzeug's ``ProxyFix`` (only when the proxy really overwrites ``X-Forwarded-For``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from typing import Any

from flask import Flask, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address

from admin.formatting import local_time, program_timezone

ACCOUNT_LIMIT = "5 per minute"
ADDRESS_LIMIT = "20 per minute"
ACCOUNT_MESSAGE = "Too many failed sign-ins for this account."
ADDRESS_MESSAGE = "Too many failed sign-ins from your address."
LOGIN_ENDPOINT = "auth.login"
# The refusals in the person's language (the limiter keeps the English text).
REFUSALS = {
    ACCOUNT_MESSAGE: _l("Too many failed sign-ins for this account."),
    ADDRESS_MESSAGE: _l("Too many failed sign-ins from your address."),
}


def account_key() -> str:
    """The throttling key of the account a login form names (hashed: no names in Redis)."""
    name = request.form.get("username", "").strip().lower()
    return "account:" + hashlib.sha256(name.encode("utf-8", "replace")).hexdigest()[:32]


def address_key() -> str:
    """The throttling key of the client's address."""
    return "address:" + (get_remote_address() or "unknown")


def _failed(response: object) -> bool:
    return getattr(response, "status_code", None) == 401


def init_throttle(app: Flask, redis_url: str | None) -> Limiter:
    """Throttle failed sign-ins on ``app``'s login view; counts in Redis when configured."""
    options: dict[str, str | int] = {}
    if redis_url:
        options = {"socket_connect_timeout": 1, "socket_timeout": 1}
    limiter = Limiter(
        address_key,
        app=app,
        storage_uri=redis_url or "memory://",
        storage_options=options,
        strategy="moving-window",
        in_memory_fallback_enabled=True,
        headers_enabled=False,
        key_prefix="jifen-console-login",
    )
    view: Any = app.view_functions[LOGIN_ENDPOINT]
    for setting, default, key_func, message in (
        ("JIFEN_LOGIN_ACCOUNT_LIMIT", ACCOUNT_LIMIT, account_key, ACCOUNT_MESSAGE),
        ("JIFEN_LOGIN_ADDRESS_LIMIT", ADDRESS_LIMIT, address_key, ADDRESS_MESSAGE),
    ):
        view = limiter.limit(
            app.config.get(setting) or default,
            key_func=key_func,
            methods=["POST"],
            deduct_when=_failed,  # only failures count; the check runs on every attempt
            error_message=message,
        )(view)
    app.view_functions[LOGIN_ENDPOINT] = view

    @app.errorhandler(RateLimitExceeded)
    def throttled(exc: RateLimitExceeded) -> ResponseReturnValue:
        return throttled_page(limiter, exc)

    return limiter


def throttled_page(limiter: Limiter, exc: RateLimitExceeded) -> ResponseReturnValue:
    """The login page saying why the attempt was refused and when to try again (429)."""
    current = limiter.current_limit
    reset_at = current.reset_at if current is not None else int(time.time()) + 60
    wait = max(1, int(reset_at - time.time()))
    until = dt.datetime.fromtimestamp(reset_at, dt.UTC)
    at = f"{local_time(until, '%H:%M:%S')} {program_timezone()}"
    why = REFUSALS.get(str(exc.description), exc.description)
    message = _("%(why)s Try again in %(wait)s seconds (at %(at)s).", why=why, wait=wait, at=at)
    page = render_template(
        "jifen/login.html",
        next=request.form.get("next", ""),
        throttled=message,
    )
    return page, 429, {"Retry-After": str(wait)}
