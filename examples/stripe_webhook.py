"""Host Jifen's Stripe webhook in your own Flask app: purchases and refunds move points.

Point a Stripe webhook endpoint at ``/stripe/events`` and subscribe it to
``payment_intent.succeeded``, ``checkout.session.completed``,
``checkout.session.async_payment_succeeded``, ``charge.refunded``, ``refund.created``,
``refund.updated``, ``refund.failed`` and ``charge.dispute.*``. Jifen finds the member by the
Stripe customer linked to them (``link_stripe_customer``) or by the ``jifen_member`` metadata
you put on the PaymentIntent; an event it cannot place yet is parked and applied later.

Run it against a database with Jifen's schema::

    jifen db upgrade --database-url sqlite:///shop.db
    export JIFEN_DATABASE_URL=sqlite:///shop.db STRIPE_WEBHOOK_SECRET=whsec_...
    python examples/stripe_webhook.py --port 5000
    stripe listen --forward-to localhost:5000/stripe/events    # in another terminal

It creates its program (``example-shop``) and one member linked to the Stripe customer
``cus_example`` when they are missing.
"""

from __future__ import annotations

import argparse
import os

from flask import Flask, request
from flask.typing import ResponseReturnValue

from loyalty import services
from loyalty.db import Database
from loyalty.db.database import database_url_from_env
from sdk import AlreadyExists, Jifen

PROGRAM = "example-shop"


def ensure_program(database_url: str | None) -> Jifen:
    """The SDK client for the example's program; the program and its member made if missing."""
    database = Database.from_url(database_url_from_env(database_url))
    try:
        services.create_program(
            database, code=PROGRAM, name="Example shop", currency="CNY", timezone="Asia/Shanghai"
        )
    except AlreadyExists:
        pass
    finally:
        database.dispose()
    jifen = Jifen(database_url, program=PROGRAM)
    jifen.enrol(member="cust-2001", stripe_customer_id="cus_example")  # idempotent
    return jifen


def create_app(jifen: Jifen, secret: str) -> Flask:
    """Your app, with one route that hands Stripe's requests to Jifen."""
    app = Flask(__name__)
    hook = jifen.stripe_webhook(secret=secret)

    @app.post("/stripe/events")
    def stripe_events() -> ResponseReturnValue:
        # The raw body, exactly as Stripe sent it: the signature is over these bytes.
        result = hook.handle(request.get_data(), request.headers.get("Stripe-Signature"))
        return result.to_dict(), result.http_status

    @app.get("/balance/<member>")
    def balance(member: str) -> ResponseReturnValue:
        bal = jifen.balance(member=member)
        return {"member": member, "available": bal.available, "frozen": bal.frozen}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("JIFEN_DATABASE_URL"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()
    secret = os.environ.get("STRIPE_WEBHOOK_SECRET")
    if not secret:
        parser.exit(2, "set STRIPE_WEBHOOK_SECRET to the endpoint's signing secret (whsec_...)\n")
    jifen = ensure_program(args.database_url)
    print(f"Stripe webhook for {PROGRAM} at http://{args.host}:{args.port}/stripe/events")
    create_app(jifen, secret).run(host=args.host, port=args.port)


if __name__ == "__main__":
    main()
