"""The Stripe webhook endpoint as a Flask blueprint: ``POST /webhooks/stripe``.

The blueprint is a thin door over :class:`loyalty.stripe_events.StripeWebhook`: it hands the
raw body and the ``Stripe-Signature`` header over and answers with the result's status and a
small JSON body. It needs no login and no CSRF token (Stripe's signature is its
authentication); an app with CSRF protection exempts it.
"""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, jsonify
from flask import request as flask_request
from flask.typing import ResponseReturnValue

from loyalty.stripe_events import StripeWebhook

EXTENSION = "jifen_stripe_webhook"
MAX_BODY_BYTES = 1024 * 1024  # Stripe's events are far smaller

blueprint = Blueprint("stripe_webhook", __name__)


def init_stripe_webhook(app: Flask, hook: StripeWebhook) -> Blueprint:
    """Serve ``hook`` at ``POST /webhooks/stripe`` in ``app``; returns the blueprint."""
    app.extensions[EXTENSION] = hook
    app.register_blueprint(blueprint)
    return blueprint


@blueprint.post("/webhooks/stripe")
def receive_stripe_event() -> ResponseReturnValue:
    """Verify, record and apply one Stripe event."""
    hook: StripeWebhook | None = current_app.extensions.get(EXTENSION)
    if hook is None:
        return jsonify(status="unavailable", message="the Stripe webhook is not configured"), 503
    if (flask_request.content_length or 0) > MAX_BODY_BYTES:
        return jsonify(status="rejected", message="the body is too large for a Stripe event"), 413
    result = hook.handle(
        flask_request.get_data(cache=False), flask_request.headers.get("Stripe-Signature")
    )
    return jsonify(result.to_dict()), result.http_status
