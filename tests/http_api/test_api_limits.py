"""Rate limits on real Redis: per credential, answered as a problem with ``Retry-After``.

The app counts in Redis (``JIFEN_REDIS_URL``) with ``JIFEN_API_RATE_LIMIT`` per credential,
across every endpoint: the request past the limit is a 429 ``rate_limited`` problem, other
keys keep their own budget, made-up keys count against the caller's address, and the
OpenAPI document and the docs are never limited.
"""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from redis import Redis

from api import create_api_app
from loyalty.db import Database
from loyalty.services.api_keys import add_origin
from tests.http_api.conftest import SECRET, bearer, new_key
from tests.integration.helpers import PROGRAM

LIMIT = 5


@pytest.fixture
def limited(program_db: Database, redis_url: str) -> FlaskClient:
    """A client of the API limited to 5 requests a minute per credential, counted in Redis."""
    app = create_api_app(
        {
            "JIFEN_DATABASE": program_db,
            "SECRET_KEY": SECRET,
            "JIFEN_REDIS_URL": redis_url,
            "JIFEN_API_RATE_LIMIT": f"{LIMIT} per minute",
        }
    )
    return app.test_client()


def test_the_request_past_the_limit_is_a_429_problem(
    limited: FlaskClient, program_db: Database, redis_url: str
) -> None:
    key = bearer(new_key(program_db, "read"))
    for _ in range(LIMIT):
        r = limited.get("/v1/program", headers=key)
        assert r.status_code == 200, r.json
    r = limited.get("/v1/program", headers=key)
    assert r.status_code == 429
    assert r.mimetype == "application/problem+json"
    assert r.json is not None
    assert r.json["code"] == "rate_limited"
    assert r.json["status"] == 429
    assert r.json["detail"] and r.json["request_id"] == r.headers["X-Request-Id"]
    assert int(r.headers["Retry-After"]) > 0
    assert r.headers["X-RateLimit-Limit"] == str(LIMIT)
    assert r.headers["X-RateLimit-Remaining"] == "0"
    with Redis.from_url(redis_url) as redis:
        assert redis.keys("LIMITS:LIMITER/jifen-api/*"), "the counters are in Redis"


def test_another_key_keeps_its_own_budget(limited: FlaskClient, program_db: Database) -> None:
    first, second = bearer(new_key(program_db, "read")), bearer(new_key(program_db, "read"))
    for _ in range(LIMIT + 1):
        limited.get("/v1/program", headers=first)
    assert limited.get("/v1/program", headers=first).status_code == 429
    for _ in range(LIMIT):
        r = limited.get("/v1/program", headers=second)
        assert r.status_code == 200, r.json


def test_a_credential_has_one_budget_across_endpoints(
    limited: FlaskClient, program_db: Database
) -> None:
    key = bearer(new_key(program_db))
    for i in range(LIMIT - 1):
        r = limited.post("/v1/members", json={"member": f"m-{i}"}, headers=key)
        assert r.status_code == 201, r.json
    assert limited.get("/v1/program", headers=key).status_code == 200
    r = limited.post("/v1/members", json={"member": "one-too-many"}, headers=key)
    assert r.status_code == 429 and r.json is not None and r.json["code"] == "rate_limited"
    assert limited.get("/v1/rules", headers=key).status_code == 429
    r = limited.get("/v1/members/one-too-many", headers=bearer(new_key(program_db, "read")))
    assert r.status_code == 404, "the refused enrolment wrote nothing"


def test_made_up_keys_count_against_the_address(limited: FlaskClient) -> None:
    for i in range(LIMIT):
        r = limited.get("/v1/program", headers=bearer(f"jfn_sk_made-up-{i}"))
        assert r.status_code == 401
    r = limited.get("/v1/program", headers=bearer("jfn_sk_made-up-again"))
    assert r.status_code == 429 and r.json is not None and r.json["code"] == "rate_limited"


def test_callers_without_a_credential_are_limited_by_address(limited: FlaskClient) -> None:
    for _ in range(LIMIT):
        assert limited.get("/v1/program").status_code == 401
    r = limited.get("/v1/program")
    assert r.status_code == 429 and r.json is not None and r.json["code"] == "rate_limited"


def test_the_spec_and_the_docs_are_not_limited(limited: FlaskClient) -> None:
    for _ in range(3 * LIMIT):
        assert limited.get("/v1/openapi.json").status_code == 200
        assert limited.get("/v1/docs").status_code == 200
        assert limited.get("/v1/vendor/swagger-ui/swagger-ui.css").status_code == 200


def test_a_page_of_an_allowed_origin_can_read_its_429(
    limited: FlaskClient, program_db: Database
) -> None:
    add_origin(program_db, program=PROGRAM, origin="https://shop.example")
    key = bearer(new_key(program_db, "read"))
    page = key | {"Origin": "https://shop.example"}
    for _ in range(LIMIT):
        limited.get("/v1/program", headers=page)
    r = limited.get("/v1/program", headers=page)
    assert r.status_code == 429
    assert r.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "Retry-After" in r.headers["Access-Control-Expose-Headers"]
