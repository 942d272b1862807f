"""The WSGI app ``bench/webhook_http.py`` serves under gunicorn: Jifen's Stripe webhook and a
raw-SQL earn endpoint side by side, on the same database.

* ``POST /webhooks/stripe``: the real blueprint (``admin.webhooks.init_stripe_webhook``) over
  :class:`loyalty.stripe.sync.StripeWebhook`: verify, record the event, earn, finish.
* ``POST /raw/earn``: the ceiling. It takes the same signed ``payment_intent.succeeded`` body,
  checks the signature with ``hmac`` (not stripe's library), finds the member by Stripe
  customer and does the earn's writes in one hand-written psycopg transaction (those of
  ``bench.earn_pg.raw_earn_in``), on one connection per server thread. It records no event.
* ``GET /hello``: Flask's hello world, the server's own ceiling (context only).

Configured by ``JIFEN_BENCH_DB_URL`` and ``JIFEN_BENCH_SECRET``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
from typing import Any

import psycopg
from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

from admin.webhooks import init_stripe_webhook
from bench.common import PROGRAM, conninfo
from bench.earn_pg import raw_earn_in
from loyalty.db import Database
from loyalty.stripe.webhook import StripeWebhook

URL = os.environ["JIFEN_BENCH_DB_URL"]
SECRET = os.environ["JIFEN_BENCH_SECRET"]
TOLERANCE = 300

app = Flask(__name__)
database = Database.from_url(URL, pool_size=10, max_overflow=10)
init_stripe_webhook(app, StripeWebhook(database, program=PROGRAM, secret=SECRET))

_local = threading.local()


def _connection() -> psycopg.Connection[Any]:
    conn: psycopg.Connection[Any] | None = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = psycopg.connect(conninfo(URL))
        _local.conn = conn
    return conn


def _signed(payload: bytes, header: str | None) -> bool:
    if not header:
        return False
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        ts = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - ts) > TOLERANCE:
        return False
    mac = hmac.new(SECRET.encode(), f"{ts}.".encode() + payload, hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac, parts.get("v1", ""))


@app.get("/hello")
def hello() -> ResponseReturnValue:
    """Flask's hello world."""
    return "Hello, World!"


@app.post("/raw/earn")
def raw_earn() -> ResponseReturnValue:
    """The same purchase event, earned in hand-written SQL."""
    payload = request.get_data(cache=False)
    if not _signed(payload, request.headers.get("Stripe-Signature")):
        return jsonify(status="rejected"), 400
    obj = json.loads(payload)["data"]["object"]
    conn = _connection()
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "SELECT m.external_id FROM members m JOIN programs p ON p.id = m.program_id"
            " WHERE p.code = %s AND m.stripe_customer_id = %s",
            (PROGRAM, obj["customer"]),
        )
        member = cur.fetchone()
        if member is None:
            return jsonify(status="parked"), 200
        points = raw_earn_in(
            cur,
            member=member[0],
            order_id=obj["id"],
            amount_minor=obj["amount_received"],
            program=PROGRAM,
        )
    return jsonify(status="applied", points=points), 200
