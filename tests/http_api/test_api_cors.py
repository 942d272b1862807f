"""CORS for a shop's pages that read a member's points with a member token.

An origin the program allows (``add_origin``) gets a preflight with the allowed methods and
headers, and its real requests carry ``Access-Control-Allow-Origin`` (errors too, so the page
can read why it was refused); an origin no program allows gets neither, and an origin of
another program is not allowed to read this program's answers.
"""

from __future__ import annotations

import datetime as dt

import pytest
from flask.testing import FlaskClient

from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.services.api_keys import add_origin, create_key
from loyalty.services.member_tokens import issue_member_token
from tests.http_api.conftest import SECRET, bearer
from tests.integration.helpers import PROGRAM, earn, enrol, make_program

SHOP_ORIGIN = "https://shop.example"
OTHER_ORIGIN = "https://other.example"
UNKNOWN_ORIGIN = "https://evil.example"
ALLOW_ORIGIN = "Access-Control-Allow-Origin"
BALANCE = "/v1/members/alice/balance"


@pytest.fixture
def shop(program_db: Database) -> Database:
    """The shop allowing its storefront's origin, alice with points; another program with
    an origin of its own."""
    enrol(program_db, "alice")
    earn(program_db, "alice", "o-1", 10_000)
    add_origin(program_db, program=PROGRAM, origin=SHOP_ORIGIN)
    make_program(program_db, "other")
    add_origin(program_db, program="other", origin=OTHER_ORIGIN)
    return program_db


@pytest.fixture
def token(shop: Database) -> dict[str, str]:
    """A member token of alice's, as the shop's page holds it."""
    key = create_key(shop, program=PROGRAM, scopes=["read"], label="storefront").key
    return bearer(issue_member_token(shop, key=key, member="alice", secret=SECRET).token)


def preflight(client: FlaskClient, origin: str) -> dict[str, str]:
    r = client.options(
        BALANCE,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert r.status_code == 204
    assert "Origin" in r.headers.get("Vary", "")
    return dict(r.headers)


def test_an_allowed_origin_gets_the_preflight(client: FlaskClient, shop: Database) -> None:
    headers = preflight(client, SHOP_ORIGIN)
    assert headers[ALLOW_ORIGIN] == SHOP_ORIGIN
    assert "GET" in headers["Access-Control-Allow-Methods"]
    allowed = {h.strip().lower() for h in headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key", "x-request-id"} <= allowed
    assert int(headers["Access-Control-Max-Age"]) > 0


def test_an_allowed_origin_reads_with_a_member_token(
    client: FlaskClient, token: dict[str, str]
) -> None:
    r = client.get(BALANCE, headers=token | {"Origin": SHOP_ORIGIN})
    assert r.status_code == 200, r.json
    assert r.json is not None and r.json["available"] == 100
    assert r.headers[ALLOW_ORIGIN] == SHOP_ORIGIN
    assert "X-Request-Id" in r.headers["Access-Control-Expose-Headers"]
    assert "Origin" in r.headers["Vary"]


def test_an_unknown_origin_gets_neither(client: FlaskClient, token: dict[str, str]) -> None:
    headers = preflight(client, UNKNOWN_ORIGIN)
    assert ALLOW_ORIGIN not in headers
    assert "Access-Control-Allow-Headers" not in headers
    r = client.get(BALANCE, headers=token | {"Origin": UNKNOWN_ORIGIN})
    assert r.status_code == 200
    assert ALLOW_ORIGIN not in r.headers
    assert "Origin" in r.headers["Vary"]


def test_another_programs_origin_cannot_read_this_program(
    client: FlaskClient, token: dict[str, str]
) -> None:
    assert preflight(client, OTHER_ORIGIN)[ALLOW_ORIGIN] == OTHER_ORIGIN  # some program allows it
    r = client.get(BALANCE, headers=token | {"Origin": OTHER_ORIGIN})
    assert r.status_code == 200
    assert ALLOW_ORIGIN not in r.headers


def test_the_page_can_read_why_its_token_was_refused(
    client: FlaskClient, token: dict[str, str], clock: FixedClock
) -> None:
    clock.advance(dt.timedelta(hours=1))
    r = client.get(BALANCE, headers=token | {"Origin": SHOP_ORIGIN})
    assert r.status_code == 401 and r.json is not None
    assert r.json["code"] == "not_authenticated"
    assert r.headers[ALLOW_ORIGIN] == SHOP_ORIGIN
    r = client.get(BALANCE, headers=token | {"Origin": UNKNOWN_ORIGIN})
    assert r.status_code == 401
    assert ALLOW_ORIGIN not in r.headers


def test_another_members_data_is_refused_readably(
    client: FlaskClient, token: dict[str, str]
) -> None:
    r = client.get("/v1/members/bob/balance", headers=token | {"Origin": SHOP_ORIGIN})
    assert r.status_code == 403 and r.json is not None
    assert r.json["code"] == "permission_denied"
    assert r.headers[ALLOW_ORIGIN] == SHOP_ORIGIN


def test_a_request_without_an_origin_gets_no_cors_headers(
    client: FlaskClient, token: dict[str, str]
) -> None:
    r = client.get(BALANCE, headers=token)
    assert r.status_code == 200
    assert ALLOW_ORIGIN not in r.headers
