"""The WSGI app ``bench/api_http.py`` serves under gunicorn: Jifen's whole server beside the
hand-written baselines, in the same worker processes, on the same database.

* everything else (``/v1/…``, ``/webhooks/stripe``…): :func:`api.server.create_server`, the
  server a shop runs, with rate limits off (their cost is not what is measured here) and the
  Stripe webhook configured for the bench program;
* ``/baseline/earnings/purchase``: the ceiling of ``POST /v1/earnings/purchase``. A bare
  Flask view over psycopg: it reads the same JSON body, looks the bearer key up by its
  SHA-256 (revoked, expired, scope) and does an earn's writes in one hand-written
  transaction (:func:`bench.earn_pg.raw_earn_in`: the member lock with the program, rule
  version, idempotency key and earlier earning; operation, lot, entry, earning, member), on
  one connection per server thread (the pool a fixed thread count needs, with no checkout
  cost). It answers 201 with the points.
* ``/baseline/hello``: Flask's hello world, the server's own ceiling (context).
* ``/stripe-baseline/…``: the app of ``bench/webhook_http.py`` (:mod:`bench.webhook_app`):
  ``raw/earn``, the raw Stripe endpoint (the same signed body, ``hmac``, the earn's writes
  in psycopg), and ``webhooks/stripe``, Jifen's webhook blueprint alone in a bare Flask app.

Configured by ``JIFEN_DATABASE_URL``, ``JIFEN_SECRET_KEY`` and ``JIFEN_BENCH_SECRET`` (the
Stripe signing secret); :mod:`bench.webhook_app` reads ``JIFEN_BENCH_DB_URL`` too.

    gunicorn -k gthread --workers 2 --threads 4 'bench.api_baseline:create_bench_server()'
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Any

import psycopg
from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from bench.common import PROGRAM, conninfo
from bench.earn_pg import raw_earn_in

BASELINE = "/baseline"
STRIPE_BASELINE = "/stripe-baseline"
KEY_SQL = (
    "SELECT p.code, k.scopes FROM api_keys k JOIN programs p ON p.id = k.program_id"
    " WHERE k.key_hash = %s AND k.revoked_at IS NULL"
    " AND (k.expires_at IS NULL OR k.expires_at > now())"
)


def create_baseline_app(url: str) -> Flask:
    """The hand-written endpoints: an earn in psycopg, and hello world."""
    app = Flask(__name__)
    local = threading.local()

    def connection() -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(local, "conn", None)
        if conn is None or conn.closed:
            conn = psycopg.connect(conninfo(url))
            local.conn = conn
        return conn

    @app.get("/hello")
    def hello() -> ResponseReturnValue:
        """Flask's hello world."""
        return "Hello, World!"

    @app.post("/earnings/purchase")
    def earn_purchase() -> ResponseReturnValue:
        """The same earn as ``POST /v1/earnings/purchase``, in hand-written SQL."""
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        body = request.get_json()
        conn = connection()
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(KEY_SQL, (hashlib.sha256(key.encode()).hexdigest(),))
            found = cur.fetchone()
            scopes = found[1].split() if found else []
            if scheme.lower() != "bearer" or not ("earn" in scopes or "admin" in scopes):
                return jsonify(code="not_authenticated"), 401
            points = raw_earn_in(
                cur,
                member=body["member"],
                order_id=body["order_id"],
                amount_minor=body["amount_minor"],
                program=found[0],  # type: ignore[index]
            )
        return jsonify(member=body["member"], reference=body["order_id"], points=points), 201

    return app


def create_bench_server() -> DispatcherMiddleware:
    """Jifen's server with the baselines mounted beside it (see the module's docstring)."""
    from api.server import create_server
    from bench import webhook_app

    url = os.environ["JIFEN_DATABASE_URL"]
    jifen = create_server(
        {
            "JIFEN_DATABASE_URL": url,
            "JIFEN_PROGRAM": PROGRAM,
            "JIFEN_REDIS_URL": None,
            "RATELIMIT_ENABLED": False,
            "STRIPE_WEBHOOK_SECRET": os.environ["JIFEN_BENCH_SECRET"],
        }
    )
    mounts = {BASELINE: create_baseline_app(url), STRIPE_BASELINE: webhook_app.app}
    return DispatcherMiddleware(jifen, mounts)  # type: ignore[arg-type]
