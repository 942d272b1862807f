"""Reliability: bursts of Stripe deliveries on a small pool, dropped connections, migrations.

* A Stripe delivery is one transaction on one pooled connection (its order lock, its row and
  its service calls), so bursts of signed deliveries served over HTTP by a threaded server
  on a pool of five connections all answer 2xx: 64 of different orders, 40 of one order.
* Idempotent replays and refused calls inside such a transaction roll back their savepoint
  only.
* After PostgreSQL drops every connection (a restart, a failover), the next read and write
  succeed.
* ``loyalty.migrate.upgrade(url)`` migrates ``url`` even when ``$JIFEN_DATABASE_URL`` is set.
* Enrolling, linking a Stripe customer and creating a program a second time answer as
  documented (the concurrent versions are in ``test_concurrency_pg.py``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from flask import Flask, request
from flask.typing import ResponseReturnValue
from sqlalchemy import create_engine, inspect, text
from werkzeug.serving import make_server

from loyalty import migrate
from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.errors import AlreadyExists, ConfigurationError, InsufficientPoints
from loyalty.services.uow import unit_of_work
from loyalty.stripe.webhook import StripeWebhook
from tests.integration import stripe_support as st
from tests.integration.helpers import (
    PROGRAM,
    earn,
    enrol,
    hold,
    make_program,
    row_counts,
    scalar,
)

Event = dict[str, Any]
MEMBERS = 16
SMALL_POOL = {"pool_size": 5, "max_overflow": 0, "pool_timeout": 10}


@pytest.fixture
def small_pool(database_url: str, clock: FixedClock) -> Iterator[Database]:
    """The test's database behind a pool of five connections (an app's share of a server)."""
    database = Database.from_url(database_url, clock=clock, **SMALL_POOL)
    yield database
    database.dispose()


def customer(n: int) -> str:
    return f"cus_m{n % MEMBERS:02d}"


def open_shop(db: Database) -> None:
    make_program(db)
    for n in range(MEMBERS):
        s.enrol_member(db, program=PROGRAM, external_id=f"m{n:02d}", stripe_customer_id=customer(n))


@contextlib.contextmanager
def serving(db: Database) -> Iterator[str]:
    """The webhook in a Flask app served by Werkzeug's threaded server on loopback."""
    app = Flask("reliability")
    hook = StripeWebhook(db, program=PROGRAM, secret=st.SECRET)

    @app.post("/stripe/events")
    def stripe_events() -> ResponseReturnValue:
        result = hook.handle(request.get_data(), request.headers.get("Stripe-Signature"))
        return result.to_dict(), result.http_status

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/stripe/events"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def deliver(url: str, event: Event) -> tuple[int, str]:
    """POST one signed event; the HTTP status and the answer's ``status``."""
    raw = st.body(event)
    req = urllib.request.Request(
        url,
        data=raw,
        headers={"Stripe-Signature": st.sign(raw), "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, str(json.loads(response.read())["status"])
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")[:300]


def deliver_together(url: str, events: Sequence[Event]) -> tuple[list[tuple[int, str]], float]:
    """Every event in its own thread, all released at once; the answers and the seconds."""
    barrier = threading.Barrier(len(events))

    def one(event: Event) -> tuple[int, str]:
        barrier.wait(timeout=30)
        return deliver(url, event)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(events)) as pool:
        answers = list(pool.map(one, events, timeout=90))
    return answers, time.monotonic() - started


def assert_all_2xx(answers: Sequence[tuple[int, str]]) -> None:
    failed = [a for a in answers if not 200 <= a[0] < 300]
    assert not failed, failed


def assert_verified(db: Database) -> None:
    report = s.verify_ledger(db)
    assert report.ok, [c for c in report.checks if not c.ok]


def event_statuses(db: Database) -> dict[str, str]:
    with db.read() as conn:
        rows = conn.execute(text("SELECT event_id, status FROM stripe_events")).all()
    return {r.event_id: r.status for r in rows}


# --- one delivery, one connection -------------------------------------------------------------


def test_a_refund_needs_one_connection(database_url: str, clock: FixedClock) -> None:
    """A pool of ONE connection: the order's lock must not take one while the calls wait."""
    db = Database.from_url(database_url, clock=clock, pool_size=1, max_overflow=0, pool_timeout=3)
    try:
        open_shop(db)
        hook = StripeWebhook(db, program=PROGRAM, secret=st.SECRET)
        pi = st.new_id("pi")
        events = [
            st.payment_intent_succeeded(pi, 10_000, customer=customer(0)),
            st.refund_event(
                "refund.created", pi, st.new_id("re"), 2_500, "succeeded", refund_created=st.T0 + 60
            ),
            st.dispute_event(
                "charge.dispute.created",
                pi,
                st.new_id("dp"),
                7_500,
                "needs_response",
                created=st.T0 + 120,
            ),
        ]
        answers = [hook.handle(st.body(e), st.sign(st.body(e))).status for e in events]
        assert answers == ["applied", "applied", "applied"]
        b = s.balance(db, program=PROGRAM, member="m00")
        assert (b.available, b.frozen) == (0, 75)
        assert_verified(db)
    finally:
        db.dispose()


def test_a_burst_of_deliveries_of_different_orders(small_pool: Database) -> None:
    """64 purchases, then 64 refunds of different orders at once, on five connections."""
    db = small_pool
    open_shop(db)
    orders = [st.new_id("pi") for _ in range(64)]
    purchases = [
        st.payment_intent_succeeded(pi, 10_000 + 100 * n, customer=customer(n))
        for n, pi in enumerate(orders)
    ]
    refunds = [
        st.refund_event(
            "refund.created", pi, st.new_id("re"), 5_000, "succeeded", refund_created=st.T0 + 60
        )
        for pi in orders
    ]
    with serving(db) as url:
        bought, bought_in = deliver_together(url, purchases)
        refunded, refunded_in = deliver_together(url, refunds)
    assert_all_2xx(bought)
    assert_all_2xx(refunded)
    assert {a[1] for a in bought} == {"applied"}
    assert {a[1] for a in refunded} == {"applied"}
    print(f"64 purchases in {bought_in:.2f} s, 64 refunds in {refunded_in:.2f} s")
    assert bought_in < 30 and refunded_in < 30

    statuses = event_statuses(db)
    assert len(statuses) == 128 and set(statuses.values()) == {"applied"}
    assert scalar(db, "SELECT COUNT(*) FROM earnings") == 64
    assert scalar(db, "SELECT COUNT(*) FROM reversals WHERE status = 'succeeded'") == 64
    earned = sum(100 + n for n in range(64))  # 100 fen a point
    assert scalar(db, "SELECT SUM(available) FROM members") == earned - 64 * 50
    assert scalar(db, "SELECT SUM(frozen) + SUM(debt) FROM members") == 0
    assert_verified(db)


def one_order_events(pi: str) -> list[Event]:
    """40 deliveries of one order: a purchase (six times), its checkout (four times), ten
    refunds pending then succeeded, two that fail, a dispute won, and charge.refunded."""
    t = st.T0
    purchase = st.payment_intent_succeeded(pi, 100_000, customer=customer(3), created=t)
    checkout = st.checkout_session_completed(pi, 100_000, customer=customer(3), created=t)
    events = [purchase] * 6 + [checkout] * 4
    for n in range(12):
        rid, at = st.new_id("re"), t + 100 * (n + 1)
        final = ("refund.updated", "succeeded") if n < 10 else ("refund.failed", "failed")
        events.append(
            st.refund_event("refund.created", pi, rid, 1_000, "pending", refund_created=at)
        )
        events.append(
            st.refund_event(final[0], pi, rid, 1_000, final[1], refund_created=at, created=at + 30)
        )
    did = st.new_id("dp")
    events += [
        st.dispute_event(
            "charge.dispute.created", pi, did, 50_000, "needs_response", created=t + 2_000
        ),
        st.dispute_event("charge.dispute.closed", pi, did, 50_000, "won", created=t + 3_000),
    ]
    events += [st.charge_refunded(pi, 100_000, 10_000, created=t + 2_500)] * 4
    assert len(events) == 40
    return events


def test_a_burst_of_deliveries_of_one_order(small_pool: Database) -> None:
    """40 deliveries of one order at once, shuffled, on five connections: applied once each."""
    db = small_pool
    open_shop(db)
    pi = st.new_id("pi")
    events = one_order_events(pi)
    random.Random(15).shuffle(events)
    with serving(db) as url:
        answers, took = deliver_together(url, events)
    assert_all_2xx(answers)
    print(f"40 deliveries of one order in {took:.2f} s")
    assert took < 30
    assert {a[1] for a in answers} <= {"applied", "parked", "duplicate"}

    statuses = event_statuses(db)
    assert len(statuses) == len({e["id"] for e in events}) == 29
    assert set(statuses.values()) == {"applied"}
    assert scalar(db, "SELECT COUNT(*) FROM earnings") == 1
    # charge.refunded delivered before the refunds' own events froze stand-ins, since released
    real = "kind = 'refund' AND external_id NOT LIKE '%unexplained%'"
    assert scalar(db, f"SELECT COUNT(*) FROM reversals WHERE {real} AND status = 'succeeded'") == 10
    # a failed refund is recorded (then released) only if its pending event came first
    others = scalar(db, f"SELECT COUNT(*) FROM reversals WHERE {real} AND status <> 'succeeded'")
    assert others <= 2
    assert scalar(db, "SELECT COUNT(*) FROM reversals WHERE status IN ('pending', 'open')") == 0
    assert scalar(db, "SELECT COUNT(*) FROM reversals WHERE status = 'succeeded'") == 10
    # the dispute froze points only if its opening came before its closing (then released)
    assert scalar(db, "SELECT status FROM reversals WHERE kind = 'dispute'") in (None, "won")
    b = s.balance(db, program=PROGRAM, member="m03")
    assert (b.available, b.frozen, b.lifetime_earned) == (900, 0, 1_000)
    assert_verified(db)


# --- replays inside one transaction -------------------------------------------------------------


def test_replays_and_refusals_inside_a_transaction_roll_back_only_themselves(db: Database) -> None:
    make_program(db)
    enrol(db, "alice")
    before = row_counts(db)
    with unit_of_work(db) as unit:
        first = earn(unit, "alice", "o1", 10_000)
        again = earn(unit, "alice", "o1", 10_000)
        with pytest.raises(InsufficientPoints):
            hold(unit, "alice", "h1", 500)
        held = hold(unit, "alice", "h2", 40)
    assert (first.replayed, again.replayed) == (False, True)
    assert again.points_granted == first.points_granted == 100
    assert held.points == 40
    after = row_counts(db)
    assert after["operations"] - before["operations"] == 2  # the earn and the hold
    assert after["holds"] - before["holds"] == 1
    b = s.balance(db, program=PROGRAM, member="alice")
    assert (b.available, b.held) == (60, 40)
    assert_verified(db)


def test_a_transaction_rolls_back_every_call_in_it(db: Database) -> None:
    make_program(db)
    enrol(db, "alice")
    before = row_counts(db)
    with pytest.raises(RuntimeError), unit_of_work(db) as unit:
        earn(unit, "alice", "o1", 10_000)
        raise RuntimeError("the caller failed after the earn")
    assert row_counts(db) == before


def test_a_lost_race_inside_a_transaction_answers_the_winner(pg_db: Database) -> None:
    """Two transactions store the same key; the loser waits, then replays inside its own."""
    make_program(pg_db)
    enrol(pg_db, "alice", "bob")
    earned = threading.Event()
    results: dict[str, Any] = {}

    def winner() -> None:
        with unit_of_work(pg_db) as unit:
            results["winner"] = earn(unit, "alice", "o1", 10_000, idempotency_key="k1")
            earned.set()
            time.sleep(0.5)  # the loser's insert waits for this commit

    def loser() -> None:
        earned.wait(timeout=10)
        with unit_of_work(pg_db) as unit:
            earn(unit, "bob", "other", 5_000)
            results["loser"] = earn(unit, "alice", "o1", 10_000, idempotency_key="k1")

    threads = [threading.Thread(target=winner), threading.Thread(target=loser)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results["winner"].replayed is False
    assert results["loser"].replayed is True
    assert results["loser"].points_granted == results["winner"].points_granted == 100
    assert s.balance(pg_db, program=PROGRAM, member="bob").available == 50
    assert scalar(pg_db, "SELECT COUNT(*) FROM operations WHERE key = 'k1'") == 1
    assert_verified(pg_db)


# --- connections dropped by the server ----------------------------------------------------------


def terminate_other_backends(url: str) -> int:
    """What a restart does to a pool: every other connection to the database is closed."""
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            return len(
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ).all()
            )
    finally:
        admin.dispose()


def test_reads_and_writes_recover_after_the_server_drops_connections(
    pg_db: Database, clock: FixedClock
) -> None:
    pg_url = pg_db.engine.url.render_as_string(hide_password=False)
    db = Database.from_url(pg_url, clock=clock, pool_size=3, max_overflow=0)
    try:
        make_program(db)
        enrol(db, "alice")
        with db.read() as a, db.read() as b, db.read() as c:  # three pooled connections
            for conn in (a, b, c):
                conn.execute(text("SELECT 1"))
        assert terminate_other_backends(pg_url) >= 3
        assert s.balance(db, program=PROGRAM, member="alice").available == 0
        assert terminate_other_backends(pg_url) >= 1
        assert earn(db, "alice", "o1", 10_000).points_granted == 100
        assert s.balance(db, program=PROGRAM, member="alice").available == 100
    finally:
        db.dispose()


def test_a_heroku_style_postgres_url_opens_with_psycopg(pg_db: Database) -> None:
    url = pg_db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    db = Database.from_url(url.replace("postgresql://", "postgres://", 1))
    try:
        assert db.engine.dialect.driver == "psycopg"
        with db.read() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        db.dispose()


# --- migrations of the URL given ----------------------------------------------------------------


def test_upgrade_migrates_the_url_given_even_when_the_environment_names_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    production = tmp_path / "production.db"
    scratch = tmp_path / "scratch.db"
    monkeypatch.setenv("JIFEN_DATABASE_URL", f"sqlite:///{production}")
    migrate.upgrade(f"sqlite:///{scratch}")
    scratch_engine = create_engine(f"sqlite:///{scratch}")
    try:
        assert "programs" in inspect(scratch_engine).get_table_names()
    finally:
        scratch_engine.dispose()
    assert not production.exists() or production.stat().st_size == 0
    with pytest.raises(ConfigurationError):
        migrate.upgrade("")  # never "whatever the environment names"
    # Alembic's own command line without a URL still takes the environment's
    command.upgrade(migrate.alembic_config(), "head")
    production_engine = create_engine(f"sqlite:///{production}")
    try:
        assert "programs" in inspect(production_engine).get_table_names()
    finally:
        production_engine.dispose()


# --- second enrolments and programs -------------------------------------------------------------


def test_enrolling_again_answers_the_member_or_already_exists(db: Database) -> None:
    make_program(db)
    first = s.enrol_member(db, program=PROGRAM, external_id="alice", stripe_customer_id="cus_1")
    again = s.enrol_member(db, program=PROGRAM, external_id="alice", stripe_customer_id="cus_1")
    assert again == first
    with pytest.raises(AlreadyExists, match="other details"):
        s.enrol_member(db, program=PROGRAM, external_id="alice", email="a@example.com")
    with pytest.raises(AlreadyExists, match="'alice'") as taken:
        s.enrol_member(db, program=PROGRAM, external_id="bob", stripe_customer_id="cus_1")
    assert taken.value.details.get("member") == "alice"
    s.enrol_member(db, program=PROGRAM, external_id="carol")
    with pytest.raises(AlreadyExists, match="'alice'"):
        s.link_stripe_customer(db, program=PROGRAM, external_id="carol", stripe_customer_id="cus_1")
    with pytest.raises(AlreadyExists, match="already exists"):
        make_program(db)
    assert scalar(db, "SELECT COUNT(*) FROM members") == 2
    assert scalar(db, "SELECT COUNT(*) FROM programs") == 1
