"""The API end to end on both databases: enrol, earn, quote, hold, capture, refund, read."""

from __future__ import annotations

from flask.testing import FlaskClient

from loyalty.db import Database
from tests.integration.helpers import row_counts


def test_a_checkout_over_http(client: FlaskClient, auth: dict[str, str]) -> None:
    r = client.post("/v1/members", json={"member": "alice"}, headers=auth)
    assert r.status_code == 201, r.json
    r = client.post(
        "/v1/earnings/purchase",
        json={"member": "alice", "order_id": "o-1", "amount_minor": 12345},
        headers=auth,
    )
    assert r.status_code == 201, r.json
    assert r.json["points_granted"] == 123
    assert "replayed" not in r.json
    again = client.post(
        "/v1/earnings/purchase",
        json={"member": "alice", "order_id": "o-1", "amount_minor": 12345},
        headers=auth,
    )
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json == r.json
    r = client.get("/v1/members/alice/balance", headers=auth)
    assert r.status_code == 200, r.json
    assert r.json["available"] == 123


def test_errors_are_problems(
    client: FlaskClient, auth: dict[str, str], program_db: Database
) -> None:
    before = row_counts(program_db)
    r = client.post(
        "/v1/earnings/purchase",
        json={"member": "nobody", "order_id": "o-1", "amount_minor": 100},
        headers=auth,
    )
    assert r.status_code == 404
    assert r.mimetype == "application/problem+json"
    assert r.json["code"] == "member_not_found"
    r = client.post("/v1/earnings/purchase", json={"member": "x"}, headers=auth)
    assert r.status_code == 400 and r.json["code"] == "invalid_input", r.json
    r = client.post("/v1/members", json={"member": "x"})
    assert r.status_code == 401 and r.json["code"] == "not_authenticated"
    r = client.get("/v1/nowhere", headers=auth)
    assert r.status_code == 404 and r.mimetype == "application/problem+json"
    assert row_counts(program_db) == before


def test_the_spec_is_served(client: FlaskClient) -> None:
    r = client.get("/v1/openapi.json")
    assert r.status_code == 200
    assert r.json["openapi"] == "3.1.0"
    assert "/v1/earnings/purchase" in r.json["paths"]


def test_query_ranges_are_the_services_errors(client: FlaskClient, auth: dict[str, str]) -> None:
    client.post("/v1/members", json={"member": "alice"}, headers=auth)
    r = client.get("/v1/members/alice/history?limit=0", headers=auth)
    assert r.status_code == 400 and r.json["code"] == "invalid_amount", r.json
    r = client.get("/v1/members/alice/history?limit=501", headers=auth)
    assert r.status_code == 400 and r.json["code"] == "invalid_input", r.json
    r = client.get("/v1/members/alice/forecast?days=0", headers=auth)
    assert r.status_code == 200, r.json
