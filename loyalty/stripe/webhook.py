"""The Stripe webhook door: raw body, signature header and secret in; a result out.

Framework-free, so any web framework can host it (``admin/webhooks.py`` does in Flask, and
``examples/stripe_webhook.py`` shows a shop's own app)::

    hook = StripeWebhook(db, program="shop", secret=os.environ["STRIPE_WEBHOOK_SECRET"])
    result = hook.handle(request_body_bytes, request.headers.get("Stripe-Signature"))
    return result.to_dict(), result.http_status

The signature is checked on the raw body with stripe's own verification and its default
300-second tolerance. A bad or missing signature, a stale timestamp or a body that is not
UTF-8 or not an event gets **400** and writes nothing. A verified event goes to
:func:`loyalty.stripe.sync.receive_event`, which records and applies it.
"""

from __future__ import annotations

import json
from typing import Any

import stripe

from loyalty.db.database import Database
from loyalty.errors import ConfigurationError, InvalidStripeEvent
from loyalty.services.writes import program_row
from loyalty.stripe.payloads import parse_envelope
from loyalty.stripe.sync import WebhookResult, receive_event

DEFAULT_TOLERANCE = 300  # seconds, stripe's own default


class StripeWebhook:
    """A program's Stripe webhook endpoint: verify, record once, apply.

    ``secret`` is the endpoint's signing secret (``whsec_…``). One endpoint serves one
    program; host one per program for several.
    """

    def __init__(
        self, db: Database, *, program: str, secret: str, tolerance: int = DEFAULT_TOLERANCE
    ) -> None:
        if not secret or not isinstance(secret, str):
            raise ConfigurationError(
                "no Stripe webhook signing secret: set it from the endpoint's page in the "
                "Stripe dashboard (it starts with whsec_)"
            )
        with db.read() as conn:  # ProgramNotFound now, not at the first delivery
            self.program_id = int(program_row(conn, program).id)
        self.db = db
        self.program = program
        self.secret = secret
        self.tolerance = tolerance

    def handle(self, payload: bytes | str, signature: str | None) -> WebhookResult:
        """Verify one delivery and apply its event; never raises for bad input."""
        try:
            text_body = body_text(payload)
        except InvalidStripeEvent as exc:
            return WebhookResult(400, "rejected", exc.message)
        problem = self._verify(text_body, signature)
        if problem:
            return WebhookResult(400, "rejected", problem)
        try:
            event = json.loads(text_body, parse_constant=_not_json)
            envelope = parse_envelope(event)
        except (ValueError, InvalidStripeEvent) as exc:
            return WebhookResult(400, "rejected", f"the body is not a Stripe event: {exc}")
        return receive_event(self.db, self.program, event, envelope, program_id=self.program_id)

    def _verify(self, payload: str, signature: str | None) -> str | None:
        if not signature:
            return "missing Stripe-Signature header"
        try:
            # stripe's own check of the header on the raw body (the JSON is parsed once, later)
            stripe.WebhookSignature.verify_header(payload, signature, self.secret, self.tolerance)
        except stripe.SignatureVerificationError as exc:
            return f"signature check failed: {exc.user_message or exc}"
        return None


def body_text(payload: bytes | str) -> str:
    """The body as text: Stripe sends UTF-8 JSON, so anything else is
    :class:`InvalidStripeEvent` (stripe's check would fail with a ``UnicodeError``)."""
    try:
        if isinstance(payload, str):
            payload.encode("utf-8")  # lone surrogates cannot have been signed
            return payload
        return bytes(payload).decode("utf-8")
    except (UnicodeDecodeError, UnicodeEncodeError) as exc:
        raise InvalidStripeEvent(
            f"the body is not UTF-8 text ({exc.reason} at byte {exc.start}); "
            "Stripe sends events as UTF-8 JSON"
        ) from exc


def _not_json(token: str) -> Any:
    """``NaN``, ``Infinity`` and ``-Infinity`` are not JSON (Python's parser accepts them, and
    PostgreSQL's ``json`` type refuses them); Stripe never sends them."""
    raise ValueError(f"{token} is not a JSON value")
