"""The Stripe webhook endpoint as a Flask blueprint: ``POST /webhooks/stripe``.

The blueprint is a thin door over :class:`loyalty.stripe.sync.StripeWebhook`: it hands the
raw body and the ``Stripe-Signature`` header over and answers with the result's status and a
small JSON body. It needs no login and no CSRF token (Stripe's signature is its
authentication); an app with CSRF protection exempts it.

The body is read through a limit of its own, whatever app hosts the blueprint: at most
:data:`MAX_BODY_BYTES` (or the app's ``MAX_CONTENT_LENGTH`` if that is smaller). A larger
``Content-Length`` is refused before reading, and a chunked body is cut off while it streams
in: both answer 413 and record nothing. A body the handler refuses as not being a Stripe
event (:class:`~loyalty.errors.InvalidInput`, for example one that is not UTF-8) answers 400.
"""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, jsonify
from flask import request as flask_request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import RequestEntityTooLarge

from loyalty.errors import InvalidInput
from loyalty.stripe.webhook import StripeWebhook

EXTENSION = "jifen_stripe_webhook"
MAX_BODY_BYTES = 1024 * 1024  # Stripe's events are far smaller (well under 256 KB)

blueprint = Blueprint("stripe_webhook", __name__)


def init_stripe_webhook(app: Flask, hook: StripeWebhook) -> Blueprint:
    """Serve ``hook`` at ``POST /webhooks/stripe`` in ``app``; returns the blueprint."""
    app.extensions[EXTENSION] = hook
    app.register_blueprint(blueprint)
    return blueprint


def body_limit() -> int:
    """The most bytes this request's body may have: ours, or the app's if smaller."""
    app_limit = current_app.config.get("MAX_CONTENT_LENGTH")
    return MAX_BODY_BYTES if app_limit is None else min(int(app_limit), MAX_BODY_BYTES)


@blueprint.post("/webhooks/stripe")
def receive_stripe_event() -> ResponseReturnValue:
    """Verify, record and apply one Stripe event."""
    hook: StripeWebhook | None = current_app.extensions.get(EXTENSION)
    if hook is None:
        return jsonify(status="unavailable", message="the Stripe webhook is not configured"), 503
    limit = body_limit()
    # One byte over the limit: Werkzeug's limited stream stops at its limit without an error
    # (a chunked body would be cut short silently), so reading limit + 1 tells "too large".
    flask_request.max_content_length = limit + 1  # before the body's stream is first opened
    try:
        body = flask_request.get_data(cache=False)
    except RequestEntityTooLarge:
        body = None
    if body is None or len(body) > limit:
        message = f"the body is larger than {limit:,} bytes, too large for a Stripe event"
        return jsonify(status="rejected", message=message), 413
    try:
        result = hook.handle(body, flask_request.headers.get("Stripe-Signature"))
    except InvalidInput as exc:
        return jsonify(status="rejected", message=exc.message), 400
    return jsonify(result.to_dict()), result.http_status
