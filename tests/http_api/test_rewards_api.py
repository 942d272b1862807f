"""The reward catalog over HTTP, on both databases: the catalog with and without a member,
redeeming (with its Idempotency-Key), redemptions, cancelling, fulfilment and vouchers at
checkout; every refusal is a problem+json with its code and writes nothing; scopes and
member tokens (a token redeems and reads for its own member only)."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from loyalty import services as core
from loyalty.db import Database
from loyalty.services.api_keys import create_key
from loyalty.services.member_tokens import issue_member_token
from tests.http_api.conftest import SECRET, bearer, new_key
from tests.integration.helpers import PROGRAM, earn, enrol, execute, row_counts

PROBLEM = "application/problem+json"
ADDRESS = {"name": "Li Lei", "phone": "13800000000", "address": "1 Nanjing Rd", "city": "上海"}
COUPON_CODES = [f"COF-{n:04d}" for n in range(1, 6)]
REPLAYED = "Idempotent-Replayed"


def reward_catalog(db: Database) -> None:
    """A coupon (5 codes, 100 points), a voucher (10 CNY off, 200 points, stock 10), a mug
    (300 points, stock 3), a hidden sticker (a prize only) and a draw (50 points) that always
    wins the sticker."""
    core.create_reward(
        db, program=PROGRAM, code="coffee", kind="coupon", actor="mkt",
        terms={"name": "Coffee", "points": 100, "limits": {"day": 3}},
    )  # fmt: skip
    core.add_codes(db, program=PROGRAM, reward="coffee", codes=COUPON_CODES, actor="mkt")
    core.create_reward(
        db, program=PROGRAM, code="ten-off", kind="voucher", actor="mkt", stock=10,
        terms={"name": "10 CNY off", "points": 200, "voucher_amount_minor": 1_000,
               "voucher_valid_days": 30},
    )  # fmt: skip
    core.create_reward(
        db, program=PROGRAM, code="mug", kind="item", actor="mkt", stock=3,
        terms={"name": "Mug", "points": 300},
    )  # fmt: skip
    core.create_reward(
        db, program=PROGRAM, code="sticker", kind="item", actor="mkt", stock=5,
        terms={"name": "Sticker", "points": 1, "visible": False},
    )  # fmt: skip
    core.create_reward(
        db, program=PROGRAM, code="lucky", kind="draw", actor="mkt",
        terms={"name": "Lucky draw", "points": 50,
               "prizes": [{"reward": "sticker", "chance_ppm": 1_000_000}]},
    )  # fmt: skip


def name_vouchers(db: Database, redemption: int, *codes: str) -> None:
    """Give a redemption's vouchers known codes (they are random), in order."""
    found = core.get_redemption(db, program=PROGRAM, redemption=redemption).vouchers
    for voucher, code in zip(found, codes, strict=True):
        execute(db, "UPDATE vouchers SET code = :new WHERE code = :old", new=code, old=voucher.code)


@pytest.fixture
def shop(program_db: Database) -> Database:
    """The catalog; alice has 2,000 points, bob 100."""
    enrol(program_db, "alice", "bob")
    earn(program_db, "alice", "o-a", 200_000)
    earn(program_db, "bob", "o-b", 10_000)
    reward_catalog(program_db)
    return program_db


@pytest.fixture
def key(shop: Database) -> dict[str, str]:
    """A key with every scope but admin (labelled ``test``)."""
    return bearer(new_key(shop, "read", "redeem"))


def token(db: Database, member: str) -> dict[str, str]:
    issuer = create_key(db, program=PROGRAM, scopes=("read",), label="page").key
    return bearer(issue_member_token(db, key=issuer, member=member, secret=SECRET).token)


def redeem(
    client: FlaskClient, headers: dict[str, str], reward: str, member: str = "alice", **body: Any
) -> TestResponse:
    if reward == "mug" and "shipping" not in body:
        body["shipping"] = ADDRESS
    return client.post(
        f"/v1/members/{member}/reward-redemptions",
        json={"reward": reward, **body},
        headers=headers,
    )


def available(db: Database, member: str = "alice") -> int:
    return core.balance(db, program=PROGRAM, member=member).available


def assert_problem(r: TestResponse, status: int, code: str) -> dict[str, Any]:
    assert (r.status_code, r.mimetype) == (status, PROBLEM), r.get_json()
    body: dict[str, Any] = r.get_json()
    assert body["code"] == code and body["detail"], body
    return body


# --- the catalog ----------------------------------------------------------------------------


def test_the_catalog_without_and_with_a_member(
    client: FlaskClient, shop: Database, key: dict[str, str]
) -> None:
    r = client.get("/v1/rewards", headers=key)
    assert r.status_code == 200
    assert [o["code"] for o in r.json or []] == ["coffee", "ten-off", "mug", "lucky"]
    assert all(o["redeemable"] for o in r.json or [])

    r = client.get("/v1/members/bob/rewards", headers=key)
    offers = {o["code"]: o for o in r.json or []}
    assert offers["coffee"]["redeemable"] and offers["coffee"]["points"] == 100
    assert offers["mug"]["reasons"] == ["insufficient_points"]
    assert offers["ten-off"]["voucher_amount_minor"] == 1_000
    assert offers["ten-off"]["currency"] == "CNY" and offers["mug"]["stock_left"] == 3
    assert offers["coffee"]["limits"] == {"day": 3}

    assert client.get("/v1/members/bob/rewards", headers=token(shop, "bob")).status_code == 200
    assert_problem(
        client.get("/v1/members/alice/rewards", headers=token(shop, "bob")),
        403,
        "permission_denied",
    )
    for unknown in ("/v1/members/zed/rewards", "/v1/members/zed/reward-redemptions"):
        assert_problem(client.get(unknown, headers=key), 404, "member_not_found")


# --- redeeming ------------------------------------------------------------------------------


def test_a_redemption_with_its_key_is_made_once(
    client: FlaskClient, shop: Database, key: dict[str, str]
) -> None:
    headers = {**key, "Idempotency-Key": "checkout-7"}
    first = redeem(client, headers, "coffee", quantity=2)
    assert first.status_code == 201 and REPLAYED not in first.headers
    body = first.json or {}
    assert (body["kind"], body["status"], body["points"]) == ("coupon", "issued", 200)
    assert body["codes"] == ["COF-0001", "COF-0002"] and body["member"] == "alice"

    again = redeem(client, headers, "coffee", quantity=2)
    assert again.status_code == 201 and again.headers[REPLAYED] == "true"
    assert again.json == body
    assert available(shop) == 1_800

    other = redeem(client, headers, "coffee", quantity=1)
    assert_problem(other, 409, "idempotency_conflict")
    assert available(shop) == 1_800


def test_each_kind_is_redeemed_over_http(
    client: FlaskClient, shop: Database, key: dict[str, str]
) -> None:
    voucher = (redeem(client, key, "ten-off").json or {})["vouchers"]
    assert [(v["amount_minor"], v["currency"], v["status"]) for v in voucher] == [
        (1_000, "CNY", "active")
    ]
    mug = redeem(client, key, "mug").json or {}
    assert (mug["kind"], mug["shipping"]["city"]) == ("item", "上海")
    draw = redeem(client, key, "lucky").json or {}
    assert draw["draw"]["awarded"] == "sticker" and draw["draw"]["seed"]
    assert draw["prize"]["reward"] == "sticker" and draw["prize"]["parent"] == draw["id"]
    assert available(shop) == 2_000 - 200 - 300 - 50


REFUSED_REDEMPTIONS = [
    # member, body, status, code
    ("bob", {"reward": "mug", "shipping": ADDRESS}, 422, "insufficient_points"),
    ("alice", {"reward": "mug", "quantity": 4, "shipping": ADDRESS}, 422, "out_of_stock"),
    ("alice", {"reward": "coffee", "quantity": 4}, 422, "reward_limit"),
    ("alice", {"reward": "sticker", "shipping": ADDRESS}, 422, "reward_unavailable"),
    ("alice", {"reward": "teapot"}, 404, "reward_not_found"),
    ("zed", {"reward": "coffee"}, 404, "member_not_found"),
    ("alice", {"reward": "mug"}, 400, "invalid_input"),
    ("alice", {"reward": "coffee", "quantity": 1.5}, 400, "invalid_amount"),
    ("alice", {"reward": "coffee", "colour": "red"}, 400, "invalid_input"),
    ("alice", {"quantity": 1}, 400, "invalid_input"),
]


def test_a_refused_redemption_is_a_problem_and_writes_nothing(
    client: FlaskClient, shop: Database, key: dict[str, str]
) -> None:
    before = row_counts(shop)
    for member, body, status, code in REFUSED_REDEMPTIONS:
        r = client.post(f"/v1/members/{member}/reward-redemptions", json=body, headers=key)
        problem = assert_problem(r, status, code)
        if code == "reward_unavailable":
            assert problem["details"]["reasons"] == ["hidden"]
    assert row_counts(shop) == before


def test_a_member_token_redeems_and_reads_for_its_member_only(
    client: FlaskClient, shop: Database
) -> None:
    alice = token(shop, "alice")
    r = redeem(client, {**alice, "Idempotency-Key": "page-1"}, "coffee")
    assert r.status_code == 201, r.json
    redemption = (r.json or {})["id"]
    page = client.get("/v1/members/alice/reward-redemptions", headers=alice)
    assert [i["id"] for i in (page.json or {})["items"]] == [redemption]

    before = row_counts(shop)
    assert_problem(redeem(client, alice, "coffee", member="bob"), 403, "permission_denied")
    assert_problem(
        client.get("/v1/members/bob/reward-redemptions", headers=alice), 403, "permission_denied"
    )
    for path, body in [
        (f"/v1/reward-redemptions/{redemption}/cancel", {"reason": "oops"}),
        ("/v1/vouchers/V-NONE-0001/consume", {"order_id": "o-1", "order_total_minor": 100}),
    ]:
        assert_problem(client.post(path, json=body, headers=alice), 403, "permission_denied")
    assert_problem(
        client.get(f"/v1/reward-redemptions/{redemption}", headers=alice),
        403,
        "permission_denied",
    )
    assert row_counts(shop) == before


def test_scopes_are_checked(client: FlaskClient, shop: Database) -> None:
    reader = bearer(new_key(shop, "read"))
    redeemer = bearer(new_key(shop, "redeem"))
    assert_problem(redeem(client, reader, "coffee"), 403, "permission_denied")
    assert_problem(client.get("/v1/rewards", headers=redeemer), 403, "permission_denied")
    done = redeem(client, redeemer, "mug").json or {}
    r = client.post(
        f"/v1/reward-redemptions/{done['id']}/fulfilment",
        json={"status": "packing"},
        headers=redeemer,
    )
    assert_problem(r, 403, "permission_denied")


# --- after the redemption -------------------------------------------------------------------


def test_redemptions_come_in_pages_by_member_reward_and_state(
    client: FlaskClient, shop: Database, key: dict[str, str]
) -> None:
    ids = [(redeem(client, key, reward).json or {})["id"] for reward in ("coffee", "mug", "coffee")]
    redeem(client, key, "coffee", member="bob")
    first = client.get("/v1/members/alice/reward-redemptions?limit=2", headers=key).json or {}
    assert [i["id"] for i in first["items"]] == [ids[2], ids[1]]
    rest = (
        client.get(
            f"/v1/members/alice/reward-redemptions?limit=2&cursor={first['next_cursor']}",
            headers=key,
        ).json
        or {}
    )
    assert [i["id"] for i in rest["items"]] == [ids[0]] and rest["next_cursor"] is None
    coffee = client.get("/v1/reward-redemptions?reward=coffee&status=issued", headers=key).json
    assert [i["member"] for i in (coffee or {})["items"]] == ["bob", "alice", "alice"]
    assert_problem(
        client.get("/v1/reward-redemptions?status=lost", headers=key), 400, "invalid_input"
    )
    assert_problem(
        client.get("/v1/reward-redemptions?limit=201", headers=key), 400, "invalid_input"
    )


def test_cancel_returns_the_points_and_is_recorded_with_the_key_label(
    client: FlaskClient, shop: Database, key: dict[str, str]
) -> None:
    coffee = redeem(client, key, "coffee").json or {}
    assert available(shop) == 1_900
    path = f"/v1/reward-redemptions/{coffee['id']}"
    r = client.post(f"{path}/cancel", json={"reason": "wrong size"}, headers=key)
    assert r.status_code == 200 and (r.json or {})["status"] == "cancelled"
    assert available(shop) == 2_000
    again = client.post(f"{path}/cancel", json={"reason": "wrong size"}, headers=key)
    assert again.status_code == 200 and again.headers[REPLAYED] == "true"
    assert available(shop) == 2_000

    got = client.get(path, headers=key).json or {}
    assert [(e["to_status"], e["actor"], e["reason"]) for e in got["events"]] == [
        ("cancelled", "api:test", "wrong size")
    ]
    assert_problem(
        client.post(f"{path}/cancel", json={"reason": "again, otherwise"}, headers=key),
        409,
        "idempotency_conflict",
    )
    assert_problem(
        client.get("/v1/reward-redemptions/999", headers=key), 404, "reward_redemption_not_found"
    )
    assert_problem(
        client.post("/v1/reward-redemptions/999/cancel", json={"reason": "x"}, headers=key),
        404,
        "reward_redemption_not_found",
    )


def test_an_item_moves_through_fulfilment_and_a_delivered_one_stays(
    client: FlaskClient, shop: Database, key: dict[str, str]
) -> None:
    admin = bearer(new_key(shop, "admin"))
    mug = redeem(client, key, "mug").json or {}
    path = f"/v1/reward-redemptions/{mug['id']}"
    for status in ("packing", "shipped", "delivered"):
        r = client.post(
            f"{path}/fulfilment", json={"status": status, "reason": f"now {status}"}, headers=admin
        )
        assert r.status_code == 200 and (r.json or {})["status"] == status, r.json
        assert REPLAYED not in r.headers
    again = client.post(f"{path}/fulfilment", json={"status": "delivered"}, headers=admin)
    assert again.status_code == 200 and again.headers[REPLAYED] == "true"

    before = row_counts(shop)
    assert_problem(
        client.post(f"{path}/cancel", json={"reason": "late"}, headers=key),
        409,
        "fulfilment_conflict",
    )
    assert_problem(
        client.post(f"{path}/fulfilment", json={"status": "packing"}, headers=admin),
        409,
        "fulfilment_conflict",
    )
    coffee = redeem(client, key, "coffee").json or {}
    before = row_counts(shop)
    assert_problem(
        client.post(
            f"/v1/reward-redemptions/{coffee['id']}/fulfilment",
            json={"status": "shipped"},
            headers=admin,
        ),
        409,
        "fulfilment_conflict",
    )
    assert_problem(
        client.post(f"{path}/fulfilment", json={"status": "cancelled"}, headers=admin),
        400,
        "invalid_input",
    )
    assert row_counts(shop) == before
    events = (client.get(path, headers=key).json or {})["events"]
    assert [(e["to_status"], e["actor"]) for e in events] == [
        ("packing", "api:test"),
        ("shipped", "api:test"),
        ("delivered", "api:test"),
    ]


# --- vouchers at checkout -------------------------------------------------------------------


def test_a_voucher_is_validated_used_once_per_order_and_released(
    client: FlaskClient, shop: Database, key: dict[str, str]
) -> None:
    done = redeem(client, key, "ten-off").json or {}
    name_vouchers(shop, done["id"], "V-TEST-0001")
    path = "/v1/vouchers/V-TEST-0001"
    before = row_counts(shop)
    r = client.post(f"{path}/validate", json={"order_total_minor": 600}, headers=key)
    assert r.status_code == 200
    assert (r.json or {})["discount_minor"] == 600 and (r.json or {})["status"] == "active"
    assert row_counts(shop) == before

    order = {"order_id": "o-9", "order_total_minor": 5_000, "member": "alice"}
    used = client.post(f"{path}/consume", json=order, headers=key)
    assert used.status_code == 200 and REPLAYED not in used.headers
    assert (used.json or {})["status"] == "used" and (used.json or {})["discount_minor"] == 1_000
    again = client.post(f"{path}/consume", json=order, headers=key)
    assert again.status_code == 200 and again.headers[REPLAYED] == "true"
    elsewhere = client.post(f"{path}/consume", json={**order, "order_id": "o-10"}, headers=key)
    assert assert_problem(elsewhere, 422, "voucher_not_usable")["details"]["reason"] == "used"

    released = client.post(f"{path}/release", json={"order_id": "o-9"}, headers=key)
    assert released.status_code == 200 and (released.json or {})["status"] == "active"
    twice = client.post(f"{path}/release", json={"order_id": "o-9"}, headers=key)
    assert twice.headers[REPLAYED] == "true"


REFUSED_VOUCHER_CALLS = [
    # path, body, status, code, details["reason"]
    ("V-NONE-0001/validate", {"order_total_minor": 100}, 404, "voucher_not_found", None),
    (
        "V-TEST-0001/validate",
        {"order_total_minor": 100, "member": "bob"},
        422,
        "voucher_not_usable",
        "other_member",
    ),
    (
        "V-TEST-0001/validate",
        {"order_total_minor": 100, "currency": "USD"},
        400,
        "currency_mismatch",
        None,
    ),
    (
        "V-TEST-0001/consume",
        {"order_id": "o-1", "order_total_minor": -5},
        400,
        "invalid_amount",
        None,
    ),
    ("V-TEST-0001/consume", {"order_total_minor": 100}, 400, "invalid_input", None),
    ("V-TEST-0001/release", {"order_id": "o-1"}, 200, None, None),
]


def test_voucher_refusals_are_problems_and_write_nothing(
    client: FlaskClient, shop: Database, key: dict[str, str]
) -> None:
    done = redeem(client, key, "ten-off").json or {}
    name_vouchers(shop, done["id"], "V-TEST-0001")
    before = row_counts(shop)
    for path, body, status, code, reason in REFUSED_VOUCHER_CALLS:
        r = client.post(f"/v1/vouchers/{path}", json=body, headers=key)
        if code is None:  # releasing a voucher no order used answers it unchanged
            assert r.status_code == status and r.headers[REPLAYED] == "true"
        else:
            problem = assert_problem(r, status, code)
            assert problem["details"].get("reason") == reason
    assert row_counts(shop) == before


# --- managing the catalog -------------------------------------------------------------------


def test_an_admin_key_manages_the_catalog(
    client: FlaskClient, shop: Database, key: dict[str, str]
) -> None:
    admin = bearer(new_key(shop, "admin"))
    tea = {"code": "tea", "kind": "coupon", "terms": {"name": "Tea", "points": 80}}
    r = client.post("/v1/rewards", json=tea, headers=admin)
    assert r.status_code == 201, r.json
    assert (r.json or {})["version"] == 1 and (r.json or {})["stock_left"] == 0
    assert_problem(client.post("/v1/rewards", json=tea, headers=admin), 409, "already_exists")
    assert_problem(client.post("/v1/rewards", json=tea, headers=key), 403, "permission_denied")
    bad = {**tea, "code": "tea-2", "kind": "spaceship"}
    assert_problem(client.post("/v1/rewards", json=bad, headers=admin), 400, "invalid_input")

    made = client.post("/v1/rewards/tea/codes", json={"count": 3, "prefix": "TEA-"}, headers=admin)
    assert made.status_code == 200 and (made.json or {})["codes_free"] == 3
    imported = {"codes": ["TEA-IMPORTED-1", "TEA-IMPORTED-2"]}
    r = client.post("/v1/rewards/tea/codes", json=imported, headers=admin)
    assert (r.json or {})["codes_free"] == 5
    again = client.post("/v1/rewards/tea/codes", json=imported, headers=admin)
    assert assert_problem(again, 409, "already_exists")["details"]["codes"] == imported["codes"]
    assert_problem(
        client.post("/v1/rewards/tea/codes", json={}, headers=admin), 400, "invalid_input"
    )
    done = redeem(client, key, "tea").json or {}
    assert done["points"] == 80 and done["codes"][0].startswith("TEA-")

    r = client.post(
        "/v1/rewards/tea/versions", json={"terms": {"name": "Tea", "points": 60}}, headers=admin
    )
    assert r.status_code == 201 and (r.json or {})["version"] == 2
    offers = {o["code"]: o for o in client.get("/v1/rewards", headers=key).json or []}
    assert offers["tea"]["points"] == 60 and offers["tea"]["version"] == 2

    r = client.post("/v1/rewards/mug/restock", json={"quantity": 2}, headers=admin)
    assert r.status_code == 200 and (r.json or {})["stock_left"] == 5
    assert_problem(
        client.post("/v1/rewards/teapot/restock", json={"quantity": 2}, headers=admin),
        404,
        "reward_not_found",
    )
    assert_problem(
        client.post("/v1/rewards/mug/restock", json={"quantity": 0}, headers=admin),
        400,
        "invalid_amount",
    )
