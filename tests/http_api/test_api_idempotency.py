"""Idempotency over HTTP: the ``Idempotency-Key`` header on every kind of write.

A retry with the same key and body answers the first response's status and body with
``Idempotent-Replayed: true`` and writes nothing more; the same key with another body (or on
another operation) is 409 ``idempotency_conflict``; a malformed key is 400
``invalid_idempotency_key``; neither writes anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient

from loyalty.db import Database
from tests.http_api.test_auth_matrix import seed
from tests.integration.helpers import row_counts

REPLAYED = "Idempotent-Replayed"


@dataclass(frozen=True)
class Write:
    """A write and a variant of its body that the same key must refuse."""

    path: str
    body: dict[str, Any] | None
    other_body: dict[str, Any] | None
    status: int


WRITES = {
    "purchase": Write(
        "/v1/earnings/purchase",
        {"member": "alice", "order_id": "o-new", "amount_minor": 5_000},
        {"member": "alice", "order_id": "o-new", "amount_minor": 6_000},
        201,
    ),
    "action": Write(
        "/v1/earnings/action",
        {"member": "alice", "action": "sign_in", "reference": "2026-11-21"},
        {"member": "bob", "action": "sign_in", "reference": "2026-11-21"},
        201,
    ),
    "hold": Write(
        "/v1/holds",
        {"member": "alice", "order_id": "o-hold", "points": 10, "order_total_minor": 100_000},
        {"member": "alice", "order_id": "o-hold", "points": 20, "order_total_minor": 100_000},
        201,
    ),
    "refund": Write(
        "/v1/refunds",
        {"order_id": "o-paid", "refund_id": "r-new", "amount_minor": 1_000},
        {"order_id": "o-paid", "refund_id": "r-new", "amount_minor": 2_000},
        201,
    ),
    "dispute_close": Write("/v1/disputes/d-open/close", {"won": True}, {"won": False}, 200),
    "transfer": Write(
        "/v1/transfers",
        {"sender": "alice", "recipient": "bob", "points": 10, "transfer_id": "t-1"},
        {"sender": "alice", "recipient": "bob", "points": 11, "transfer_id": "t-1"},
        201,
    ),
    "adjustment": Write(
        "/v1/adjustments",
        {"member": "alice", "points": 10, "reason": "goodwill", "adjustment_id": "a-1"},
        {"member": "alice", "points": -10, "reason": "goodwill", "adjustment_id": "a-1"},
        201,
    ),
}


@pytest.fixture
def seeded(program_db: Database) -> Database:
    seed(program_db)
    return program_db


@pytest.mark.parametrize("name", sorted(WRITES))
def test_a_retry_with_the_key_is_replayed(
    client: FlaskClient, auth: dict[str, str], seeded: Database, name: str
) -> None:
    write = WRITES[name]
    headers = {**auth, "Idempotency-Key": f"retry-{name}-1"}
    first = client.post(write.path, json=write.body, headers=headers)
    assert first.status_code == write.status, first.json
    assert REPLAYED not in first.headers
    after_first = row_counts(seeded)
    again = client.post(write.path, json=write.body, headers=headers)
    assert again.status_code == first.status_code
    assert again.headers[REPLAYED] == "true"
    assert again.get_data() == first.get_data()
    assert row_counts(seeded) == after_first


@pytest.mark.parametrize("name", sorted(WRITES))
def test_the_key_with_another_body_is_a_conflict(
    client: FlaskClient, auth: dict[str, str], seeded: Database, name: str
) -> None:
    write = WRITES[name]
    headers = {**auth, "Idempotency-Key": f"conflict-{name}-1"}
    first = client.post(write.path, json=write.body, headers=headers)
    assert first.status_code == write.status, first.json
    before = row_counts(seeded)
    r = client.post(write.path, json=write.other_body, headers=headers)
    assert r.status_code == 409, r.json
    assert r.mimetype == "application/problem+json" and r.json is not None
    assert r.json["code"] == "idempotency_conflict"
    assert REPLAYED not in r.headers
    assert row_counts(seeded) == before


def test_the_key_on_another_operation_is_a_conflict(
    client: FlaskClient, auth: dict[str, str], seeded: Database
) -> None:
    headers = {**auth, "Idempotency-Key": "one-key"}
    purchase, hold = WRITES["purchase"], WRITES["hold"]
    assert client.post(purchase.path, json=purchase.body, headers=headers).status_code == 201
    before = row_counts(seeded)
    r = client.post(hold.path, json=hold.body, headers=headers)
    assert r.status_code == 409 and r.json is not None
    assert r.json["code"] == "idempotency_conflict"
    assert row_counts(seeded) == before


def test_enrolling_again_is_idempotent_by_the_member(
    client: FlaskClient, auth: dict[str, str], seeded: Database
) -> None:
    first = client.post("/v1/members", json={"member": "erin"}, headers=auth)
    before = row_counts(seeded)
    again = client.post("/v1/members", json={"member": "erin"}, headers=auth)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.get_data() == first.get_data()
    assert row_counts(seeded) == before
    r = client.post("/v1/members", json={"member": "erin", "email": "e@example.com"}, headers=auth)
    assert r.status_code == 409 and r.json is not None and r.json["code"] == "already_exists"


def test_without_a_key_the_ids_in_the_body_are_the_key(
    client: FlaskClient, auth: dict[str, str], seeded: Database
) -> None:
    purchase = WRITES["purchase"]
    first = client.post(purchase.path, json=purchase.body, headers=auth)
    again = client.post(purchase.path, json=purchase.body, headers=auth)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers[REPLAYED] == "true" and again.get_data() == first.get_data()
    r = client.post(purchase.path, json=purchase.other_body, headers=auth)
    assert r.status_code == 409 and r.json is not None
    assert r.json["code"] == "idempotency_conflict"


@pytest.mark.parametrize(
    "key",
    ["two words", "x" * 500, "", "clé", "tab\there", "del\x7f"],
    ids=["spaces", "500 chars", "empty", "non-ascii", "tab", "control"],
)
def test_a_malformed_key_is_refused(
    client: FlaskClient, auth: dict[str, str], seeded: Database, key: str
) -> None:
    before = row_counts(seeded)
    hold = WRITES["hold"]
    r = client.post(hold.path, json=hold.body, headers={**auth, "Idempotency-Key": key})
    assert r.status_code == 400, r.json
    assert r.mimetype == "application/problem+json" and r.json is not None
    assert r.json["code"] == "invalid_idempotency_key"
    assert row_counts(seeded) == before
