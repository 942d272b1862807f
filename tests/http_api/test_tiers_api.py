"""Member tiers over HTTP, on both databases: a member's progress and tier history, manual
changes and locks (made once per change id, replayed with ``Idempotent-Replayed``), tier
versions published and cancelled, the forecast, the preview of draft tiers and the
distribution; earn results, quotes and balances carry the tier. Every refusal is a
problem+json with its code and writes nothing; scopes and member tokens (a token reads its own
member's tier and history, and changes nothing)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from loyalty import services as core
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.services.api_keys import create_key
from loyalty.services.member_tokens import issue_member_token
from tests.http_api.conftest import SECRET, bearer, new_key
from tests.integration.helpers import PROGRAM, earn, enrol, row_counts

PROBLEM = "application/problem+json"
REPLAYED = "Idempotent-Replayed"
LADDER: dict[str, Any] = {
    "tiers": [
        {"code": "member", "name": "普通", "threshold": 0},
        {
            "code": "silver",
            "name": "银卡",
            "threshold": 1_000,
            "multiplier": "1.5",
            "benefits": ["Free shipping"],
        },
        {"code": "gold", "name": "金卡", "threshold": 5_000, "multiplier": "2"},
    ],
    "measure": "points",
    "window": "rolling",
    "window_months": 12,
    "anchor": "upgrade",
    "period_months": 12,
}


@pytest.fixture
def shop(program_db: Database) -> Database:
    """The tiers of :data:`LADDER`; alice earned 1,100 points (silver), bob 100 (member)."""
    core.publish_tiers(program_db, program=PROGRAM, rules=LADDER, created_by="mkt")
    enrol(program_db, "alice", "bob")
    earn(program_db, "alice", "o-a", 110_000)
    earn(program_db, "bob", "o-b", 10_000)
    return program_db


@pytest.fixture
def admin(shop: Database) -> dict[str, str]:
    """A key with every scope (labelled ``test``)."""
    return bearer(new_key(shop, "admin"))


@pytest.fixture
def reader(shop: Database) -> dict[str, str]:
    return bearer(new_key(shop, "read"))


def token(db: Database, member: str) -> dict[str, str]:
    issuer = create_key(db, program=PROGRAM, scopes=("read",), label="page").key
    return bearer(issue_member_token(db, key=issuer, member=member, secret=SECRET).token)


def assert_problem(r: TestResponse, status: int, code: str) -> dict[str, Any]:
    assert (r.status_code, r.mimetype) == (status, PROBLEM), r.get_json()
    body: dict[str, Any] = r.get_json()
    assert body["code"] == code and body["detail"], body
    return body


def set_tier(
    client: FlaskClient, headers: dict[str, str], member: str = "bob", **body: Any
) -> TestResponse:
    change = {"tier": "gold", "reason": "VIP customer", "change_id": "c-1", **body}
    return client.post(f"/v1/members/{member}/tier", json=change, headers=headers)


def moment(text: str) -> dt.datetime:
    """An ISO 8601 answer as an aware datetime (it must carry its offset)."""
    parsed = dt.datetime.fromisoformat(text)
    assert parsed.utcoffset() is not None, text
    return parsed


# --- a member's tier ------------------------------------------------------------------------


def test_progress_and_history_of_a_member(
    client: FlaskClient, shop: Database, reader: dict[str, str]
) -> None:
    r = client.get("/v1/members/alice/tier", headers=reader)
    assert r.status_code == 200, r.json
    progress = r.json or {}
    expected = {
        "member": "alice",
        "tiers_enabled": True,
        "tier": "silver",
        "tier_name": "银卡",
        "measure_kind": "points",
        "measure": 1_100,
        "next_tier": "gold",
        "next_tier_name": "金卡",
        "next_threshold": 5_000,
        "to_next_tier": 3_900,
        "to_keep_tier": 0,
        "keep_threshold": 1_000,
        "lock": None,
        "locked_until_at": None,
        "multiplier": "1.5",
        "benefits": ["Free shipping"],
        "tier_version": 1,
    }
    assert {k: progress[k] for k in expected} == expected
    embedded = core.tier_progress(shop, program=PROGRAM, member="alice")
    for name in ("tier_since_at", "period_end_at", "evaluate_at"):
        assert moment(progress[name]) == getattr(embedded, name)

    history = client.get("/v1/members/alice/tier/history", headers=reader).json or []
    assert [(h["from_tier"], h["to_tier"], h["reason"]) for h in history] == [
        ("member", "silver", "earn")
    ]
    assert moment(history[0]["created_at"]) and history[0]["measure"] == 1_100
    assert client.get("/v1/members/bob/tier/history?limit=1", headers=reader).json == []
    bob = client.get("/v1/members/bob/tier", headers=reader).json or {}
    assert (bob["tier"], bob["to_keep_tier"], bob["evaluate_at"]) == ("member", None, None)


def test_earnings_quotes_and_balances_carry_the_tier(
    client: FlaskClient, shop: Database, admin: dict[str, str]
) -> None:
    quote = (
        client.post(
            "/v1/quotes/earn", json={"amount_minor": 10_000, "member": "alice"}, headers=admin
        ).json
        or {}
    )
    assert (quote["points"], quote["tier"], quote["tier_multiplier"]) == (150, "silver", "1.5")
    plain = client.post("/v1/quotes/earn", json={"amount_minor": 10_000}, headers=admin).json
    assert plain is not None and (plain["tier"], plain["tier_multiplier"]) == (None, None)

    r = client.post(
        "/v1/earnings/purchase",
        json={"member": "alice", "order_id": "o-up", "amount_minor": 300_000},
        headers=admin,
    )
    assert r.status_code == 201, r.json
    up = r.json or {}
    assert (up["tier"], up["tier_multiplier"], up["tier_upgraded_from"]) == (
        "gold",
        "1.5",
        "silver",
    )
    balance = client.get("/v1/members/alice/balance", headers=admin).json or {}
    assert (balance["tier"], balance["tier_name"]) == ("gold", "金卡")


def test_without_tiers_progress_says_so_and_tier_operations_are_conflicts(
    client: FlaskClient, program_db: Database
) -> None:
    enrol(program_db, "carol")
    key = bearer(new_key(program_db, "admin"))
    progress = client.get("/v1/members/carol/tier", headers=key).json or {}
    assert (progress["tiers_enabled"], progress["tier"], progress["multiplier"]) == (
        False,
        None,
        "1",
    )
    balance = client.get("/v1/members/carol/balance", headers=key).json or {}
    assert (balance["tier"], balance["tier_name"]) == (None, None)
    assert client.get("/v1/program/tiers", headers=key).json == []
    before = row_counts(program_db)
    assert_problem(set_tier(client, key, member="carol"), 409, "conflict")
    assert_problem(client.get("/v1/program/tiers/forecast", headers=key), 409, "conflict")
    assert_problem(client.get("/v1/program/tiers/distribution", headers=key), 409, "conflict")
    assert row_counts(program_db) == before


# --- manual changes and locks ---------------------------------------------------------------


def test_a_manual_change_is_made_once_and_replayed(
    client: FlaskClient, shop: Database, admin: dict[str, str]
) -> None:
    first = set_tier(client, admin, reason="升级 🎉 — 客服补偿")
    assert first.status_code == 201, first.json
    assert REPLAYED not in first.headers
    change = first.json or {}
    assert (change["member"], change["from_tier"], change["to_tier"]) == ("bob", "member", "gold")
    assert (change["reason"], change["note"], change["actor"]) == (
        "manual",
        "升级 🎉 — 客服补偿",
        "api:test",
    )
    before = row_counts(shop)
    again = set_tier(client, admin, reason="升级 🎉 — 客服补偿")
    assert (again.status_code, again.headers.get(REPLAYED)) == (201, "true")
    assert again.json == change
    assert_problem(set_tier(client, admin, tier="silver"), 409, "idempotency_conflict")
    assert row_counts(shop) == before
    progress = core.tier_progress(shop, program=PROGRAM, member="bob")
    assert (progress.tier, progress.lock) == ("gold", None)

    keyed = {**admin, "Idempotency-Key": "desk-7"}
    moved = set_tier(client, keyed, tier="silver", change_id="c-2", actor="客服 Li")
    assert moved.status_code == 201 and (moved.json or {})["actor"] == "客服 Li"
    replay = set_tier(client, keyed, tier="silver", change_id="c-2", actor="客服 Li")
    assert replay.headers.get(REPLAYED) == "true" and replay.json == moved.json


def test_a_lock_holds_the_member_until_its_end(
    client: FlaskClient, shop: Database, admin: dict[str, str], clock: FixedClock
) -> None:
    until = clock.now() + dt.timedelta(days=90)
    r = set_tier(
        client, admin, locked_until=until.astimezone(dt.timezone(dt.timedelta(hours=8))).isoformat()
    )
    assert r.status_code == 201, r.json
    change = r.json or {}
    assert (change["reason"], change["lock"]) == ("lock", "gold")
    assert moment(change["locked_until_at"]) == until
    progress = client.get("/v1/members/bob/tier", headers=admin).json or {}
    assert progress["lock"] == "gold" and moment(progress["locked_until_at"]) == until


BAD_CHANGES: list[tuple[str, dict[str, Any], int, str]] = [
    ("bob", {"tier": "platinum"}, 400, "invalid_input"),
    ("bob", {"tier": 10**30}, 400, "invalid_input"),
    ("bob", {"tier": ["gold"]}, 400, "invalid_input"),
    ("bob", {"reason": ""}, 400, "invalid_input"),
    ("bob", {"reason": "bad\u202ereason"}, 400, "invalid_text"),
    ("bob", {"reason": "nul\x00"}, 400, "invalid_text"),
    ("bob", {"reason": "x" * 501}, 400, "invalid_input"),
    ("bob", {"change_id": "has space"}, 400, "invalid_idempotency_key"),
    ("bob", {"change_id": "c" * 10_000}, 400, "invalid_idempotency_key"),
    ("bob", {"locked_until": "2020-01-01T00:00:00+00:00"}, 400, "invalid_input"),
    ("bob", {"locked_until": "2099-01-01T00:00:00"}, 400, "naive_datetime"),
    ("bob", {"locked_until": "next tuesday"}, 400, "invalid_input"),
    ("bob", {"locked_until": 10**30}, 400, "invalid_input"),
    ("bob", {"colour": "red"}, 400, "invalid_input"),
    ("zed", {}, 404, "member_not_found"),
]


@pytest.mark.parametrize(("member", "change", "status", "code"), BAD_CHANGES)
def test_a_refused_change_is_a_problem_and_writes_nothing(
    client: FlaskClient,
    shop: Database,
    admin: dict[str, str],
    member: str,
    change: dict[str, Any],
    status: int,
    code: str,
) -> None:
    before = row_counts(shop)
    assert_problem(set_tier(client, admin, member=member, **change), status, code)
    assert row_counts(shop) == before


def test_a_change_without_its_required_fields_is_refused(
    client: FlaskClient, shop: Database, admin: dict[str, str]
) -> None:
    before = row_counts(shop)
    for missing in ("tier", "reason", "change_id"):
        body = {"tier": "gold", "reason": "VIP", "change_id": "c-9"}
        del body[missing]
        r = client.post("/v1/members/bob/tier", json=body, headers=admin)
        assert missing in assert_problem(r, 400, "invalid_input")["errors"]["json"]
    assert row_counts(shop) == before


# --- the program's tiers ------------------------------------------------------------------


def test_versions_are_published_listed_and_cancelled(
    client: FlaskClient, shop: Database, admin: dict[str, str], clock: FixedClock
) -> None:
    later = (clock.now() + dt.timedelta(days=30)).isoformat()
    rules = {**LADDER, "grace_days": 14}
    r = client.post(
        "/v1/program/tiers", json={"rules": rules, "effective_from": later}, headers=admin
    )
    assert r.status_code == 201, r.json
    published = r.json or {}
    assert (published["program"], published["version"]) == (PROGRAM, 2)
    assert moment(published["effective_from_at"]) == dt.datetime.fromisoformat(later)
    assert published["rules"]["grace_days"] == 14
    versions = client.get("/v1/program/tiers", headers=admin).json or []
    assert [v["version"] for v in versions] == [1, 2]

    before = row_counts(shop)
    assert_problem(client.post("/v1/program/tiers/1/cancel", headers=admin), 409, "conflict")
    assert_problem(client.post("/v1/program/tiers/9/cancel", headers=admin), 404, "not_found")
    assert_problem(client.post("/v1/program/tiers/0/cancel", headers=admin), 400, "invalid_input")
    huge = client.post(f"/v1/program/tiers/{10**30}/cancel", headers=admin)
    assert_problem(huge, 404, "not_found")
    assert row_counts(shop) == before
    cancelled = client.post("/v1/program/tiers/2/cancel", headers=admin)
    assert cancelled.status_code == 200 and (cancelled.json or {})["version"] == 2
    assert_problem(client.post("/v1/program/tiers/2/cancel", headers=admin), 404, "not_found")
    assert [v["version"] for v in client.get("/v1/program/tiers", headers=admin).json or []] == [1]


BAD_VERSIONS: list[tuple[dict[str, Any], int, str]] = [
    ({"rules": {"tiers": []}}, 400, "invalid_rule"),
    ({"rules": {**LADDER, "measure": "karma"}}, 400, "invalid_rule"),
    ({"rules": {**LADDER, "window_months": 10**30}}, 400, "invalid_rule"),
    ({"rules": LADDER, "effective_from": "2000-01-01T00:00:00+00:00"}, 400, "invalid_rule"),
    ({"rules": LADDER, "effective_from": "2099-01-01T00:00:00"}, 400, "naive_datetime"),
    ({"rules": {"tiers": [{"code": "member", "name": "M", "threshold": 0}]}}, 409, "conflict"),
    ({"rules": "gold"}, 400, "invalid_input"),
    ({}, 400, "invalid_input"),
]


@pytest.mark.parametrize(("body", "status", "code"), BAD_VERSIONS)
def test_a_refused_version_is_a_problem_and_writes_nothing(
    client: FlaskClient,
    shop: Database,
    admin: dict[str, str],
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    before = row_counts(shop)
    assert_problem(client.post("/v1/program/tiers", json=body, headers=admin), status, code)
    assert row_counts(shop) == before


def test_forecast_preview_and_distribution(
    client: FlaskClient, shop: Database, reader: dict[str, str], clock: FixedClock
) -> None:
    distribution = client.get("/v1/program/tiers/distribution", headers=reader).json
    assert distribution == [
        {"tier": "member", "name": "普通", "threshold": 0, "members": 1},
        {"tier": "silver", "name": "银卡", "threshold": 1_000, "members": 1},
        {"tier": "gold", "name": "金卡", "threshold": 5_000, "members": 0},
    ]
    soon = client.get("/v1/program/tiers/forecast?days=30", headers=reader).json or {}
    assert (soon["up"], soon["down"], soon["keep"], soon["moves"]) == (0, 0, 0, {})
    assert soon["holding"] == distribution
    assert moment(soon["until_at"]) == clock.now() + dt.timedelta(days=30)
    year = client.get("/v1/program/tiers/forecast?days=400", headers=reader).json or {}
    # alice's 1,100 points are still inside the window that closes at her evaluation
    assert (year["keep"], year["down"], year["moves"]) == (1, 0, {"silver": {"silver": 1}})

    before = row_counts(shop)
    draft = {**LADDER, "tiers": [{**t, "threshold": t["threshold"] // 10} for t in LADDER["tiers"]]}
    r = client.post("/v1/program/tiers/preview", json={"rules": draft}, headers=reader)
    assert r.status_code == 200, r.json
    assert [(c["tier"], c["threshold"], c["members"]) for c in r.json or []] == [
        ("member", 0, 0),
        ("silver", 100, 1),
        ("gold", 500, 1),
    ]
    assert_problem(
        client.post("/v1/program/tiers/preview", json={"rules": {"tiers": []}}, headers=reader),
        400,
        "invalid_rule",
    )
    assert row_counts(shop) == before


@pytest.mark.parametrize(
    "path",
    [
        "/v1/program/tiers/forecast?days=0",
        "/v1/program/tiers/forecast?days=3661",
        f"/v1/program/tiers/forecast?days={10**30}",
        "/v1/program/tiers/forecast?days=soon",
        "/v1/members/alice/tier/history?limit=0",
        f"/v1/members/alice/tier/history?limit={10**30}",
        "/v1/members/alice/tier/history?limit=1001",
    ],
)
def test_out_of_range_queries_are_problems(
    client: FlaskClient, shop: Database, reader: dict[str, str], path: str
) -> None:
    r = client.get(path, headers=reader)
    assert r.status_code == 400 and r.mimetype == PROBLEM, r.get_json()
    assert (r.json or {})["code"] in ("invalid_input", "invalid_amount")


def test_an_unknown_member_is_not_found(
    client: FlaskClient, shop: Database, reader: dict[str, str]
) -> None:
    for path in (
        "/v1/members/zed/tier",
        "/v1/members/zed/tier/history",
        "/v1/members/%E2%80%AE/tier",
    ):
        r = client.get(path, headers=reader)
        assert r.status_code in (400, 404) and r.mimetype == PROBLEM, (path, r.get_json())
    assert_problem(client.get("/v1/members/zed/tier", headers=reader), 404, "member_not_found")


# --- who may -------------------------------------------------------------------------------


def test_a_member_token_reads_its_own_tier_and_changes_nothing(
    client: FlaskClient, shop: Database
) -> None:
    alice = token(shop, "alice")
    assert (client.get("/v1/members/alice/tier", headers=alice).json or {})["tier"] == "silver"
    history = client.get("/v1/members/alice/tier/history", headers=alice)
    assert history.status_code == 200 and len(history.json or []) == 1

    before = row_counts(shop)
    for path in ("/v1/members/bob/tier", "/v1/members/bob/tier/history", "/v1/program/tiers"):
        assert_problem(client.get(path, headers=alice), 403, "permission_denied")
    for path in ("/v1/program/tiers/distribution", "/v1/program/tiers/forecast"):
        assert_problem(client.get(path, headers=alice), 403, "permission_denied")
    assert_problem(set_tier(client, alice, member="alice"), 403, "permission_denied")
    assert_problem(
        client.post("/v1/program/tiers", json={"rules": LADDER}, headers=alice),
        403,
        "permission_denied",
    )
    assert_problem(
        client.post("/v1/program/tiers/preview", json={"rules": LADDER}, headers=alice),
        403,
        "permission_denied",
    )
    assert row_counts(shop) == before


def test_scopes_are_checked(client: FlaskClient, shop: Database, reader: dict[str, str]) -> None:
    earner = bearer(new_key(shop, "earn"))
    before = row_counts(shop)
    assert_problem(set_tier(client, reader), 403, "permission_denied")
    assert_problem(
        client.post("/v1/program/tiers", json={"rules": LADDER}, headers=reader),
        403,
        "permission_denied",
    )
    assert_problem(
        client.post("/v1/program/tiers/1/cancel", headers=reader), 403, "permission_denied"
    )
    for path in ("/v1/members/alice/tier", "/v1/program/tiers", "/v1/program/tiers/forecast"):
        assert_problem(client.get(path, headers=earner), 403, "permission_denied")
        assert_problem(client.get(path), 401, "not_authenticated")
    assert_problem(set_tier(client, {}), 401, "not_authenticated")
    assert row_counts(shop) == before
