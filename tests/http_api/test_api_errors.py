"""Every error the API can answer is an RFC 9457 problem, and bad input writes nothing.

Each status the error tree reaches over HTTP (400, 401, 403, 404, 405, 409, 413, 422, 429,
500, 503) answers ``application/problem+json`` with the error's ``code``, a ``detail`` and
the request id (also in ``X-Request-Id``). Malformed bodies and values the services refuse
(huge or fractional amounts, booleans, invisible or direction-changing characters, NUL) are
400 with the service's code. A crash is a 500 problem that shows no traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from api import create_api_app
from loyalty import services as core
from loyalty.db import Database
from tests.http_api.conftest import SECRET, bearer, new_key
from tests.integration.helpers import earn, enrol, row_counts

PROBLEM = "application/problem+json"
MiB = 1024 * 1024
PURCHASE = {"member": "alice", "order_id": "o-2", "amount_minor": 1_000}
HOLD = {"member": "alice", "order_id": "o-h", "points": 10, "order_total_minor": 100_000}


@pytest.fixture
def shop(program_db: Database) -> Database:
    """The shop with alice holding 100 points from order o-1."""
    enrol(program_db, "alice")
    earn(program_db, "alice", "o-1", 10_000)
    return program_db


def app_on(db: Database, **config: Any) -> Flask:
    """The API on ``db`` as it runs in production: exceptions become 500 problems."""
    settings = {
        "JIFEN_DATABASE": db,
        "SECRET_KEY": SECRET,
        "RATELIMIT_ENABLED": False,
        "JIFEN_REDIS_URL": None,
        "PROPAGATE_EXCEPTIONS": False,
    }
    return create_api_app(settings | config)


def assert_problem(r: TestResponse, status: int, code: str) -> dict[str, Any]:
    """``r`` is a problem with ``status`` and ``code``, a detail and its request id."""
    body = r.get_json(silent=True)
    assert r.status_code == status, (r.status_code, r.get_data(as_text=True)[:500])
    assert r.mimetype == PROBLEM
    assert isinstance(body, dict)
    assert (body["status"], body["code"]) == (status, code), body
    assert body["detail"] and isinstance(body["detail"], str)
    assert body["request_id"] and body["request_id"] == r.headers["X-Request-Id"]
    assert "Traceback" not in r.get_data(as_text=True)
    return body


# --- one scenario per status ----------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    status: int
    code: str
    send: Callable[[FlaskClient, dict[str, str]], TestResponse]


SCENARIOS = {
    "missing field": Scenario(
        400, "invalid_input", lambda c, h: c.post("/v1/earnings/purchase", json={}, headers=h)
    ),
    "fractional amount": Scenario(
        400,
        "invalid_amount",
        lambda c, h: c.post(
            "/v1/earnings/purchase", json=PURCHASE | {"amount_minor": 1.5}, headers=h
        ),
    ),
    "no credential": Scenario(401, "not_authenticated", lambda c, h: c.get("/v1/program")),
    "program header of another program": Scenario(
        403,
        "permission_denied",
        lambda c, h: c.get("/v1/program", headers=h | {"Jifen-Program": "elsewhere"}),
    ),
    "unknown member": Scenario(
        404, "member_not_found", lambda c, h: c.get("/v1/members/nobody", headers=h)
    ),
    "unknown path": Scenario(404, "not_found", lambda c, h: c.get("/v1/nowhere", headers=h)),
    "wrong method": Scenario(405, "method_not_allowed", lambda c, h: c.get("/v1/holds", headers=h)),
    "order earned again otherwise": Scenario(
        409,
        "idempotency_conflict",
        lambda c, h: c.post(
            "/v1/earnings/purchase", json=PURCHASE | {"order_id": "o-1"}, headers=h
        ),
    ),
    "body too large": Scenario(
        413,
        "request_too_large",
        lambda c, h: c.post(
            "/v1/members",
            data=b"{" + b" " * (2 * MiB) + b"}",
            headers=h,
            content_type="application/json",
        ),
    ),
    "too few points": Scenario(
        422,
        "insufficient_points",
        lambda c, h: c.post("/v1/holds", json=HOLD | {"points": 101}, headers=h),
    ),
    "adjustment above the threshold": Scenario(
        422,
        "approval_required",
        lambda c, h: c.post(
            "/v1/adjustments",
            json={"member": "alice", "points": 5_000, "reason": "x", "adjustment_id": "a-1"},
            headers=h,
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_status_is_a_problem(shop: Database, name: str) -> None:
    scenario = SCENARIOS[name]
    client, key = app_on(shop).test_client(), bearer(new_key(shop))
    before = row_counts(shop)
    r = scenario.send(client, key)
    assert_problem(r, scenario.status, scenario.code)
    assert row_counts(shop) == before


def test_405_keeps_allow(client: FlaskClient, auth: dict[str, str]) -> None:
    r = client.delete("/v1/members/alice", headers=auth)
    assert_problem(r, 405, "method_not_allowed")
    assert "GET" in r.headers["Allow"] and "DELETE" not in r.headers["Allow"]


def test_429_is_a_problem(shop: Database) -> None:
    client = app_on(shop, RATELIMIT_ENABLED=True, JIFEN_API_RATE_LIMIT="1 per minute").test_client()
    key = bearer(new_key(shop, "read"))
    assert client.get("/v1/program", headers=key).status_code == 200
    r = client.get("/v1/program", headers=key)
    assert_problem(r, 429, "rate_limited")
    assert int(r.headers["Retry-After"]) > 0


def test_a_crash_is_a_500_problem_without_a_traceback(
    shop: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("internal detail: /srv/jifen/secret.py line 42")

    monkeypatch.setattr(core, "get_program", crash)
    client = app_on(shop).test_client()
    r = client.get("/v1/program", headers=bearer(new_key(shop, "read")))
    body = assert_problem(r, 500, "internal_error")
    text = r.get_data(as_text=True)
    assert "RuntimeError" not in text and "secret.py" not in text
    assert "request id" in body["detail"]


def test_a_database_that_cannot_be_reached_is_a_503_problem(shop: Database) -> None:
    key = new_key(shop, "read")
    down = Database.from_url("postgresql://jifen@127.0.0.1:1/jifen")
    try:
        r = app_on(down).test_client().get("/v1/program", headers=bearer(key))
    finally:
        down.dispose()
    assert_problem(r, 503, "database_unavailable")
    assert "127.0.0.1" not in r.get_data(as_text=True)


# --- request ids ----------------------------------------------------------------------------


def test_a_sane_request_id_is_echoed(client: FlaskClient, auth: dict[str, str]) -> None:
    r = client.get("/v1/program", headers=auth | {"X-Request-Id": "checkout-42.a:b_c"})
    assert r.headers["X-Request-Id"] == "checkout-42.a:b_c"
    r = client.get("/v1/members/nobody", headers=auth | {"X-Request-Id": "checkout-43"})
    assert assert_problem(r, 404, "member_not_found")["request_id"] == "checkout-43"


@pytest.mark.parametrize(
    "given",
    ["two words", "x" * 65, "<script>alert(1)</script>", "ré", "a\tb", ""],
    ids=["spaces", "65 chars", "markup", "non-ascii", "tab", "empty"],
)
def test_an_insane_request_id_is_replaced(
    client: FlaskClient, auth: dict[str, str], given: str
) -> None:
    r = client.get("/v1/members/nobody", headers=auth | {"X-Request-Id": given})
    body = assert_problem(r, 404, "member_not_found")
    assert body["request_id"] != given and len(body["request_id"]) == 32


def test_each_request_gets_its_own_id(client: FlaskClient, auth: dict[str, str]) -> None:
    ids = {client.get("/v1/program", headers=auth).headers["X-Request-Id"] for _ in range(3)}
    assert len(ids) == 3


# --- malformed bodies and refused values ----------------------------------------------------


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b"not json", "application/json"),
        (b'{"member": "alice",', "application/json"),
        (b"member=alice", "application/x-www-form-urlencoded"),
        (b"<member>alice</member>", "application/xml"),
        (b"[1, 2]", "application/json"),
        (b'"alice"', "application/json"),
        (b"\xff\xfe", "application/json"),
    ],
    ids=["text", "truncated", "form", "xml", "array", "string", "not utf-8"],
)
def test_a_body_that_is_not_a_json_object_is_400(
    client: FlaskClient, auth: dict[str, str], shop: Database, data: bytes, content_type: str
) -> None:
    before = row_counts(shop)
    r = client.post("/v1/members", data=data, content_type=content_type, headers=auth)
    assert_problem(r, 400, "invalid_input")
    assert row_counts(shop) == before


def test_an_unknown_field_is_400(client: FlaskClient, auth: dict[str, str]) -> None:
    r = client.post("/v1/earnings/purchase", json=PURCHASE | {"points": 5}, headers=auth)
    body = assert_problem(r, 400, "invalid_input")
    assert body["errors"] == {"json": {"points": ["Unknown field."]}}


REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("/v1/earnings/purchase", PURCHASE | {"amount_minor": 10**30}, "invalid_amount"),
    ("/v1/earnings/purchase", PURCHASE | {"amount_minor": -1}, "invalid_amount"),
    ("/v1/earnings/purchase", PURCHASE | {"amount_minor": 99.99}, "invalid_amount"),
    ("/v1/earnings/purchase", PURCHASE | {"amount_minor": 1e300}, "invalid_amount"),
    ("/v1/earnings/purchase", PURCHASE | {"amount_minor": True}, "invalid_amount"),
    ("/v1/earnings/purchase", PURCHASE | {"amount_minor": "1000"}, "invalid_amount"),
    ("/v1/earnings/purchase", PURCHASE | {"currency": "ZZZ"}, "unknown_currency"),
    ("/v1/earnings/purchase", PURCHASE | {"currency": "USD"}, "currency_mismatch"),
    ("/v1/holds", HOLD | {"points": 10**30}, "invalid_amount"),
    ("/v1/holds", HOLD | {"points": False}, "invalid_amount"),
    ("/v1/holds", HOLD | {"points": 2.5}, "invalid_amount"),
    ("/v1/members", {"member": "Ω\u200b"}, "invalid_text"),
    ("/v1/members", {"member": "\u202eevil"}, "invalid_text"),
    ("/v1/members", {"member": "nul\x00byte"}, "invalid_text"),
    ("/v1/members", {"member": ""}, "invalid_input"),
    ("/v1/members", {"member": None}, "invalid_input"),
    ("/v1/members", {"member": 42}, "invalid_input"),
    ("/v1/earnings/purchase", PURCHASE | {"order_id": "o-\u200b"}, "invalid_idempotency_key"),
    (
        "/v1/adjustments",
        {"member": "alice", "points": 5, "reason": "a\u202eb", "adjustment_id": "a"},
        "invalid_text",
    ),
]


@pytest.mark.parametrize(("path", "body", "code"), REFUSED, ids=[repr(b) for _, b, _ in REFUSED])
def test_a_value_the_service_refuses_is_400_with_its_code(
    client: FlaskClient,
    auth: dict[str, str],
    shop: Database,
    path: str,
    body: dict[str, Any],
    code: str,
) -> None:
    before = row_counts(shop)
    r = client.post(path, json=body, headers=auth)
    assert_problem(r, 400, code)
    assert row_counts(shop) == before


def test_an_odd_member_id_in_the_path_is_400(client: FlaskClient, auth: dict[str, str]) -> None:
    for member in ("a%00b", "%E2%80%AEevil", "%CE%A9%E2%80%8B"):
        r = client.get(f"/v1/members/{member}/balance", headers=auth)
        assert_problem(r, 400, "invalid_text")
