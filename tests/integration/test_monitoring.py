"""Operators' endpoints on SQLite and PostgreSQL: ``/metrics`` counts exactly what the ledger
did (scraped before and after, parsed with prometheus-client's own parser), its token is
required when set; ``/healthz`` and ``/readyz`` pass and fail for the right reasons; the
database's gauges (job lag, backlogs, parked and open items, the sweeps' points) say what
the tables hold, and the console's health strip shows the same snapshot."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert

from loyalty import migrate
from loyalty import services as s
from loyalty.db import Database
from loyalty.db.tables import programs, risk_cases, stripe_events
from loyalty.domain.clock import FixedClock
from loyalty.errors import MemberNotFound
from loyalty.jobs.runs import run_job
from loyalty.monitoring.snapshot import take_snapshot
from tests.integration.helpers import PROGRAM, earn, hold, scalar
from tests.integration.test_admin_support import build_app, login

TOKEN = "metrics-token-0123456789"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def app(db: Database) -> Iterator[Flask]:
    yield build_app(db, JIFEN_METRICS_TOKEN=TOKEN)


def scrape(client: FlaskClient, token: str = TOKEN) -> Samples:
    """Every sample of ``/metrics``, by name and labels."""
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    found: Samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_metrics_count_exactly_the_writes_done_between_two_scrapes(
    app: Flask, db: Database
) -> None:
    client = app.test_client()
    before = scrape(client)

    earned = [earn(db, "alice", f"order-{n}", 12_345) for n in range(3)]
    replay = earn(db, "alice", "order-0", 12_345)
    with pytest.raises(MemberNotFound):
        earn(db, "nobody", "order-9", 1_000)
    hold(db, "alice", "pay-1", 100)
    captured = s.capture_hold(db, program=PROGRAM, order_id="pay-1")

    after = scrape(client)
    ops = "jifen_ledger_operations_total"
    assert replay.replayed
    assert delta(before, after, ops, kind="earn_purchase", outcome="ok") == 3
    assert delta(before, after, ops, kind="earn_purchase", outcome="replayed") == 1
    assert delta(before, after, ops, kind="earn_purchase", outcome="member_not_found") == 1
    assert delta(before, after, ops, kind="hold", outcome="ok") == 1
    assert delta(before, after, ops, kind="capture", outcome="ok") == 1
    assert delta(before, after, "jifen_ledger_errors_total", code="member_not_found") == 1
    issued = sum(e.points_granted for e in earned)
    assert delta(before, after, "jifen_points_issued_total", kind="earn_purchase") == issued
    assert delta(before, after, "jifen_points_redeemed_total", kind="capture") == captured.points
    count = "jifen_ledger_operation_seconds_count"
    assert delta(before, after, count, kind="earn_purchase") == 5
    assert delta(before, after, count, kind="capture") == 1

    undispatched = scalar(db, "SELECT count(*) FROM events WHERE dispatched_at IS NULL")
    assert undispatched > 0
    assert value(after, "jifen_outbox_backlog", program=PROGRAM) == undispatched
    assert value(after, "jifen_up") == 1


def test_the_token_is_required_when_set_and_compared_exactly(app: Flask) -> None:
    client = app.test_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        refused = client.get("/metrics", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert b"jifen_" not in refused.data
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}x"}).status_code == 401
    assert scrape(client)


def test_without_a_token_metrics_are_open_and_openmetrics_is_served_when_asked(
    db: Database,
) -> None:
    client = build_app(db).test_client()
    assert client.get("/metrics").status_code == 200
    asked = client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert asked.headers["Content-Type"].startswith("application/openmetrics-text")
    assert asked.get_data(as_text=True).rstrip().endswith("# EOF")


def test_the_ops_endpoints_are_outside_the_console_login(app: Flask) -> None:
    client = app.test_client()
    live = client.get("/healthz")
    assert live.status_code == 200
    assert live.get_json() == {"status": "ok", "checks": {"process": {"ok": True}}}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.get_json()
    assert ready.get_json()["checks"] == {"database": {"ok": True}, "schema": {"ok": True}}
    assert client.get("/admin/").status_code == 302  # the console still wants a login


def test_readyz_checks_redis_when_configured(db: Database, redis_url: str) -> None:
    reachable = build_app(db, JIFEN_REDIS_URL=redis_url).test_client().get("/readyz")
    assert reachable.status_code == 200
    assert reachable.get_json()["checks"]["redis"] == {"ok": True}

    nowhere = build_app(db, seed=False, JIFEN_REDIS_URL="redis://127.0.0.1:1/0")
    answer = nowhere.test_client().get("/readyz")
    assert answer.status_code == 503
    body = answer.get_json()
    assert body["status"] == "failing"
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["redis"]["ok"] is False
    assert "unreachable" in body["checks"]["redis"]["detail"]
    assert "127.0.0.1:1" not in answer.get_data(as_text=True)


def test_readyz_fails_on_a_schema_behind_head_and_healthz_still_passes(tmp_path: Path) -> None:
    from admin.ops import create_ops_app

    url = f"sqlite:///{tmp_path / 'old.db'}"
    heads, _known = migrate.known_revisions()
    migrate.upgrade(url, "0010")
    assert "0010" not in heads
    database = Database.from_url(url)
    try:
        client = create_ops_app(database).test_client()
        behind = client.get("/readyz")
        assert behind.status_code == 503
        schema = behind.get_json()["checks"]["schema"]
        assert schema["ok"] is False
        assert "at 0010" in schema["detail"] and "jifen db upgrade" in schema["detail"]
        assert client.get("/healthz").status_code == 200
    finally:
        database.dispose()


def test_readyz_fails_when_the_database_is_gone(tmp_path: Path) -> None:
    from admin.ops import create_ops_app

    database = Database.from_url("postgresql://jifen@127.0.0.1:1/none")
    client = create_ops_app(database).test_client()
    answer = client.get("/readyz")
    assert answer.status_code == 503
    checks = answer.get_json()["checks"]
    assert checks["database"]["ok"] is False and checks["schema"]["ok"] is False
    assert client.get("/healthz").status_code == 200
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "jifen_up 0.0" in metrics.get_data(as_text=True)
    database.dispose()


def _seed_waiting(db: Database, clock: FixedClock) -> None:
    """Two parked Stripe events and one open risk case of the shop, one resolved case."""
    now = clock.now()
    with db.write() as conn:
        shop = conn.execute(programs.select().where(programs.c.code == PROGRAM)).one().id
        for n in range(2):
            conn.execute(
                insert(stripe_events).values(
                    program_id=shop,
                    event_id=f"evt_parked_{n}",
                    type="payment_intent.succeeded",
                    stripe_created=now,
                    payload={},
                    status="parked",
                    received_at=now,
                )
            )
        for n, status in enumerate(("open", "resolved")):
            conn.execute(
                insert(risk_cases).values(
                    program_id=shop,
                    rule_id="velocity",
                    rule_version=1,
                    subject=f"member:m{n}",
                    action="flag",
                    status=status,
                    summary="many earns in an hour",
                    evidence={},
                    opened_at=now,
                    last_tripped_at=now,
                )
            )


def test_job_lag_backlogs_and_sweep_points_read_what_the_tables_hold(
    app: Flask, db: Database, clock: FixedClock
) -> None:
    earned = earn(db, "alice", "order-1", 50_000).points_granted
    clock.advance(dt.timedelta(days=200))  # past the default three months' expiry
    expired = run_job(db, "expire", trigger="test").points
    assert expired == earned
    run_job(db, "hold_timeouts", trigger="test")
    clock.advance(dt.timedelta(hours=3))
    _seed_waiting(db, clock)

    snapshot = take_snapshot(db)
    lags = {lag.job: lag for lag in snapshot.jobs}
    assert lags["expire"].lag_seconds == 3 * 3600
    assert lags["expire"].overdue  # hourly, may run an hour: overdue after two
    assert lags["hold_timeouts"].overdue
    assert lags["events"].lag_seconds is None and lags["events"].overdue
    assert [lag.job for lag in snapshot.jobs][-2:] == ["hold_timeouts", "expire"]  # worst first
    shop = snapshot.program(PROGRAM)
    assert (shop.stripe_parked, shop.risk_open) == (2, 1)
    assert snapshot.sweep_points["expired"] == expired

    samples = scrape(app.test_client())
    assert value(samples, "jifen_job_lag_seconds", job="expire") == 3 * 3600
    assert value(samples, "jifen_job_overdue", job="expire") == 1
    assert value(samples, "jifen_job_overdue", job="events") == 1
    assert ("jifen_job_lag_seconds", (("job", "events"),)) not in samples
    last = lags["expire"].last_success_at
    assert last is not None
    assert value(samples, "jifen_job_last_success_timestamp_seconds", job="expire") == (
        last.timestamp()
    )
    assert value(samples, "jifen_stripe_events_parked", program=PROGRAM) == 2
    assert value(samples, "jifen_risk_cases_open", program=PROGRAM) == 1
    assert value(samples, "jifen_points_expired_total") == expired
    assert value(samples, "jifen_webhook_deliveries_failed", program=PROGRAM) == 0


def test_the_dashboard_strip_shows_the_same_snapshot(
    app: Flask, db: Database, clock: FixedClock
) -> None:
    run_job(db, "events", trigger="test")
    clock.advance(dt.timedelta(seconds=40))
    _seed_waiting(db, clock)
    client = app.test_client()
    login(client, "operations")
    html = client.get("/admin/").get_data(as_text=True)
    assert 'data-testid="health-strip"' in html
    assert _item(html, "job-events") == ("ok", "40 s ago")
    assert _item(html, "job-expire") == ("alert", "never ran")
    assert _item(html, "stripe-parked") == ("alert", "2")
    assert _item(html, "risk-open") == ("alert", "1")
    assert 'href="/admin/events/?status=parked"' in html

    viewer = build_app(db, seed=False).test_client()
    login(viewer, "viewer")
    page = viewer.get("/admin/").get_data(as_text=True)
    assert "status=parked" not in page  # a page a viewer cannot open is not linked


def _item(html: str, key: str) -> tuple[str, str]:
    """The state and value of the strip's entry ``key``."""
    found = re.search(
        rf'data-testid="health-{key}" data-state="(\w+)"[^>]*>'
        r'<span class="name">[^<]*</span> <span class="num">([^<]*)</span>',
        html,
    )
    assert found, key
    return found.group(1), found.group(2)
