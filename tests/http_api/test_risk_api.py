"""Risk control (风控) over the API and the SDK: `/v1/risk/rules` (read with their sentences,
published as a new version, listed), `/v1/risk/cases` (listed and paged, read with their
evidence, assigned, resolved), a member's account freeze and risk hold, `/v1/risk/scan`, and
earnings that name their location and device. Every endpoint needs the ``risk`` scope;
bad input (huge numbers, odd characters, an unknown outcome, another program's case) is a
problem with its code that writes nothing; the SDK answers the same embedded and remote,
risk errors included."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from api.schemas import RISK_RULES_EXAMPLE
from loyalty import services as core
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.domain.risk import RiskRules
from loyalty.services.api_keys import SCOPES, create_key
from loyalty.services.member_tokens import issue_member_token
from sdk import (
    InvalidRule,
    Jifen,
    MemberFrozen,
    MemberInfo,
    RiskBlocked,
    RiskCaseClosed,
    RiskCaseInfo,
    RiskCaseNotFound,
    RiskCasePage,
    RiskRulesInfo,
    RiskScanResult,
)
from tests.conftest import START
from tests.http_api import test_sdk_transports as transports
from tests.http_api.conftest import SECRET, bearer, new_key
from tests.http_api.test_sdk_transports import TRANSPORTS, client_for, outcome, plain
from tests.integration.helpers import PROGRAM, enrol, make_program, row_counts

fresh_url = transports.fresh_url  # the fixture of fresh migrated databases
PROBLEM = "application/problem+json"
OTHER = "other"
# alice's 1,000 points in a day put her on hold; a till with two earns in a day is flagged
WATCH = [
    {"id": "big-day", "kind": "velocity", "scope": "member", "measure": "points",
     "limit": 600, "window": "day", "action": "hold"},
    {"id": "till-day", "kind": "velocity", "scope": "location", "measure": "earns",
     "limit": 1, "window": "day", "action": "flag"},
]  # fmt: skip
TILL_BLOCK = {
    "id": "till-burst", "kind": "velocity", "scope": "location", "measure": "earns",
    "limit": 2, "window": "hour", "action": "block",
}  # fmt: skip
ACTIONS = transports.ACTION_RULES


@pytest.fixture
def shop(program_db: Database) -> Database:
    """alice, bob and carol; a sign-in action; the program ``other`` with its member olga."""
    core.publish_rules(program_db, program=PROGRAM, rules=ACTIONS)
    enrol(program_db, "alice", "bob", "carol")
    make_program(program_db, OTHER)
    enrol(program_db, "olga", program=OTHER)
    return program_db


@pytest.fixture
def risk(shop: Database) -> dict[str, str]:
    """A key with the ``risk`` scope only."""
    return bearer(new_key(shop, "risk"))


@pytest.fixture
def earner(shop: Database) -> dict[str, str]:
    return bearer(new_key(shop, "earn", "read"))


def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert (response.status_code, response.mimetype) == (status, PROBLEM), response.get_data(True)
    body: dict[str, Any] = response.get_json()
    assert body["code"] == code, body
    return body


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def publish(client: FlaskClient, headers: dict[str, str], rules: list[Any], **more: Any) -> Any:
    return ok(client.put("/v1/risk/rules", json={"rules": rules, **more}, headers=headers))


def purchase(
    client: FlaskClient, headers: dict[str, str], member: str, order: str, amount: int, **where: Any
) -> Any:
    body = {"member": member, "order_id": order, "amount_minor": amount, **where}
    return client.post("/v1/earnings/purchase", json=body, headers=headers)


def actors(db: Database, action: str) -> list[str]:
    page = core.list_audit(db, program=PROGRAM, action=action)
    return [entry.actor for entry in page.items]


# --- rules ----------------------------------------------------------------------------------


def test_rules_are_published_read_and_listed_with_their_sentences(
    client: FlaskClient, shop: Database, risk: dict[str, str]
) -> None:
    body = problem(client.get("/v1/risk/rules", headers=risk), 404, "not_found")
    assert body["details"] == {"program": PROGRAM} and "PUT /v1/risk/rules" in body["detail"]
    assert ok(client.get("/v1/risk/rules/versions", headers=risk)) == []

    first = publish(client, risk, RISK_RULES_EXAMPLE, note="launch")
    assert (first["program"], first["version"], first["note"]) == (PROGRAM, 1, "launch")
    assert [r["id"] for r in first["rules"]["rules"]] == [r["id"] for r in RISK_RULES_EXAMPLE]
    parsed = RiskRules.from_dict({"rules": RISK_RULES_EXAMPLE}).rules
    assert first["sentences"] == [rule.explain() for rule in parsed]
    assert first["sentences"][0].startswith("More than 20 earns per member within an hour")
    assert first["sentences_zh"] == [rule.explain_zh() for rule in parsed]
    assert len(first["sentences_zh"]) == 4 and all(
        any("\u4e00" <= c <= "\u9fff" for c in sentence) for sentence in first["sentences_zh"]
    )
    assert first["created_by"] == "api:test"
    assert dt.datetime.fromisoformat(first["created_at"]) == START
    assert ok(client.get("/v1/risk/rules", headers=risk)) == first

    # the object form, as GET shows the rules, is taken too; an empty list turns risk off
    second = publish(client, risk, {"rules": []}, note=None)  # type: ignore[arg-type]
    assert (second["version"], second["rules"], second["sentences"]) == (2, {"rules": []}, [])
    assert ok(client.get("/v1/risk/rules", headers=risk))["version"] == 2
    assert ok(client.get("/v1/risk/rules?version=1", headers=risk)) == first
    versions = ok(client.get("/v1/risk/rules/versions", headers=risk))
    assert [v["version"] for v in versions] == [2, 1]
    assert actors(shop, "risk.rules_published") == ["api:test", "api:test"]


@pytest.mark.parametrize(
    "rules",
    [
        [{"id": "x", "kind": "telepathy"}],
        [{"id": "x", "kind": "farming", "refunded_percent": 50, "action": "block"}],
        [{"id": "x", "kind": "velocity", "limit": 10**30}],
        [{"id": "x", "kind": "velocity", "limit": 1.5}],
        [{"id": "x", "kind": "velocity", "limit": True}],
        [{"id": "x\u202e", "kind": "velocity", "limit": 5}],
        [{"id": "x", "kind": "velocity", "limit": 5}, {"id": "x", "kind": "velocity", "limit": 6}],
        [{"id": f"r{i}", "kind": "velocity", "limit": 5} for i in range(51)],
        ["not a rule"],
        "not a list",
        {"rules": [], "extra": 1},
    ],
)
def test_a_bad_rule_is_invalid_rule_and_publishes_nothing(
    client: FlaskClient, shop: Database, risk: dict[str, str], rules: Any
) -> None:
    publish(client, risk, RISK_RULES_EXAMPLE)
    before = row_counts(shop)
    r = client.put("/v1/risk/rules", json={"rules": rules}, headers=risk)
    problem(r, 400, "invalid_rule")
    assert row_counts(shop) == before
    assert ok(client.get("/v1/risk/rules", headers=risk))["version"] == 1


@pytest.mark.parametrize(
    ("body", "query", "code"),
    [
        ({"note": "no rules"}, "", "invalid_input"),
        ({"rules": [], "colour": "red"}, "", "invalid_input"),
        ({"rules": [], "note": "nul\x00"}, "", "invalid_text"),
        ({"rules": [], "note": "x" * 501}, "", "invalid_input"),
        (None, "?version=99", "invalid_input"),
        (None, f"?version={10**30}", "invalid_input"),
        (None, "?version=0", "invalid_input"),
        (None, "?version=two", "invalid_input"),
    ],
)
def test_bad_rule_requests_are_400(
    client: FlaskClient,
    shop: Database,
    risk: dict[str, str],
    body: dict[str, Any] | None,
    query: str,
    code: str,
) -> None:
    publish(client, risk, [])
    before = row_counts(shop)
    if body is None:
        r = client.get("/v1/risk/rules" + query, headers=risk)
    else:
        r = client.put("/v1/risk/rules", json=body, headers=risk)
    problem(r, 400, code)
    assert row_counts(shop) == before


# --- earnings name their location and device ------------------------------------------------


def test_earns_name_the_location_and_device_that_velocity_rules_count(
    client: FlaskClient, shop: Database, risk: dict[str, str], earner: dict[str, str]
) -> None:
    device_rule = {"id": "device-burst", "kind": "velocity", "scope": "device", "limit": 1}
    publish(client, risk, [TILL_BLOCK, device_rule])
    ok(purchase(client, earner, "alice", "o-1", 1_000, location="till-1", device="d-1"), 201)
    action = {"member": "bob", "action": "sign_in", "reference": "d1", "location": "till-1"}
    ok(client.post("/v1/earnings/action", json={**action, "device": "d-1"}, headers=earner), 201)

    before = row_counts(shop)
    refused = problem(purchase(client, earner, "carol", "o-3", 1_000, location="till-1"), 422,
                      "risk_blocked")  # fmt: skip
    assert refused["details"]["rule"] == "till-burst" and refused["details"]["member"] == "carol"
    r = client.post("/v1/earnings/action", json={**action, "member": "carol"}, headers=earner)
    assert problem(r, 422, "risk_blocked")["details"]["rule"] == "till-burst"
    assert row_counts(shop) == before
    ok(purchase(client, earner, "carol", "o-3", 1_000, location="till-2", device=None), 201)

    scanned = ok(client.post("/v1/risk/scan", headers=risk))
    assert scanned == {
        "programs": 1, "rules": 1, "trips": 1, "opened": 1, "updated": 0, "reopened": 0,
        "held": 0,
    }  # fmt: skip
    [case] = ok(client.get("/v1/risk/cases", headers=risk))["items"]
    assert (case["rule_id"], case["subject"], case["member"]) == (
        "device-burst",
        "device:d-1",
        None,
    )
    evidence = ok(client.get(f"/v1/risk/cases/{case['id']}", headers=risk))["evidence"]
    assert [(e["location"], e["device"], e["points"]) for e in evidence] == [
        ("till-1", "d-1", 5),
        ("till-1", "d-1", 10),
    ]
    assert dt.datetime.fromisoformat(evidence[0]["at"]) == START


@pytest.mark.parametrize(
    ("where", "code"),
    [
        ({"location": "x" * 129}, "invalid_input"),
        ({"device": 42}, "invalid_input"),
        ({"location": ""}, "invalid_input"),
        ({"device": "pos\u200b7"}, "invalid_text"),
        ({"location": "till\x00"}, "invalid_text"),
    ],
)
def test_a_bad_location_or_device_is_400_and_earns_nothing(
    client: FlaskClient, shop: Database, earner: dict[str, str], where: dict[str, Any], code: str
) -> None:
    before = row_counts(shop)
    problem(purchase(client, earner, "alice", "o-1", 1_000, **where), 400, code)
    action = {"member": "alice", "action": "sign_in", "reference": "d1", **where}
    problem(client.post("/v1/earnings/action", json=action, headers=earner), 400, code)
    assert row_counts(shop) == before


# --- cases ----------------------------------------------------------------------------------


@pytest.fixture
def cases(client: FlaskClient, shop: Database, risk: dict[str, str], earner: dict[str, str]) -> Any:
    """alice's hold case (1) and till-1's flag case (2), then alice earns 50 points more,
    held; the cases by rule id."""
    publish(client, risk, WATCH)
    ok(purchase(client, earner, "alice", "o-1", 100_000, location="till-1"), 201)
    ok(purchase(client, earner, "bob", "o-2", 10_000, location="till-1"), 201)
    scanned = ok(client.post("/v1/risk/scan", headers=risk))
    assert (scanned["opened"], scanned["held"]) == (2, 1)
    held = ok(purchase(client, earner, "alice", "o-3", 5_000), 201)
    assert (held["status"], held["matures_at"]) == ("pending", None)
    listed = ok(client.get("/v1/risk/cases", headers=risk))["items"]
    return {case["rule_id"]: case for case in listed}


def test_cases_are_listed_by_status_rule_and_member_and_paged(
    client: FlaskClient, risk: dict[str, str], cases: dict[str, Any]
) -> None:
    def ids(query: str) -> tuple[list[int], int]:
        page = ok(client.get("/v1/risk/cases" + query, headers=risk))
        return [c["id"] for c in page["items"]], page["total"]

    hold, till = cases["big-day"], cases["till-day"]
    assert (hold["member"], hold["action"], hold["member_on_hold"]) == ("alice", "hold", True)
    assert (till["member"], till["subject"], till["evidence"]) == (None, "location:till-1", [])
    everything = ids("")
    assert sorted(everything[0]) == [1, 2] and everything[1] == 2
    assert ids("?rule=big-day") == ([hold["id"]], 1)
    assert ids("?member=alice") == ([hold["id"]], 1)
    assert ids("?member=bob") == ([], 0)
    assert ids("?status=resolved") == ([], 0)
    assert ids("?status=all&limit=1") == (everything[0][:1], 2)
    assert ids("?status=all&limit=1&offset=1") == (everything[0][1:], 2)
    assert ids("?offset=2") == ([], 2)
    for query, code in [
        ("?status=lost", "invalid_input"),
        ("?limit=0", "invalid_input"),
        ("?limit=501", "invalid_input"),
        (f"?limit={10**30}", "invalid_input"),
        ("?offset=-1", "invalid_input"),
        (f"?offset={10**30}", "invalid_input"),
        ("?limit=1.5", "invalid_input"),
    ]:
        problem(client.get("/v1/risk/cases" + query, headers=risk), 400, code)


def test_a_case_is_read_assigned_and_resolved_once(
    client: FlaskClient, shop: Database, risk: dict[str, str], cases: dict[str, Any]
) -> None:
    case_id = cases["big-day"]["id"]
    url = f"/v1/risk/cases/{case_id}"
    case = ok(client.get(url, headers=risk))
    assert (case["held_points"], case["status"], case["figures"]["measured"]) == (50, "open", 1000)
    assert [(e["order_id"], e["location"]) for e in case["evidence"]] == [("o-1", "till-1")]

    assigned = ok(client.post(url + "/assign", json={"assignee": "李娜"}, headers=risk))
    assert assigned["assigned_to"] == "李娜"
    assert (
        ok(client.post(url + "/assign", json={"assignee": None}, headers=risk))["assigned_to"]
        is None
    )
    problem(client.post(url + "/assign", json={}, headers=risk), 400, "invalid_input")

    before = row_counts(shop)
    for body, code in [
        ({"outcome": "forgive", "note": "x"}, "invalid_input"),
        ({"outcome": "release"}, "invalid_input"),
        ({"outcome": "release", "note": "   "}, "invalid_input"),
        ({"outcome": "release", "note": "bidi \u202e override"}, "invalid_text"),
        ({"outcome": "reverse", "note": "x", "points": 10**30}, "invalid_amount"),
        ({"outcome": "reverse", "note": "x", "points": 1.5}, "invalid_amount"),
        ({"outcome": "release", "note": "x", "extra": True}, "invalid_input"),
    ]:
        problem(client.post(url + "/resolve", json=body, headers=risk), 400, code)
    assert row_counts(shop) == before
    assert ok(client.get(url, headers=risk))["status"] == "open"

    note = "客户来电确认，退货属实 ✅"
    done = ok(client.post(url + "/resolve", json={"outcome": "release", "note": note},
                          headers=risk))  # fmt: skip
    assert (done["status"], done["resolution"], done["resolution_note"]) == (
        "resolved",
        "released",
        note,
    )
    assert (done["resolved_by"], done["member_on_hold"], done["held_points"]) == (
        "api:test",
        False,
        0,
    )
    balance = core.balance(shop, program=PROGRAM, member="alice")
    assert (balance.available, balance.pending) == (1050, 0)
    again = client.post(url + "/resolve", json={"outcome": "dismiss", "note": "x"}, headers=risk)
    assert problem(again, 409, "risk_case_closed")["details"] == {"case_id": case_id}
    assert actors(shop, "risk.case_") == ["api:test"] * 3


def test_a_case_reversed_deducts_the_points_held(
    client: FlaskClient, shop: Database, risk: dict[str, str], cases: dict[str, Any]
) -> None:
    url = f"/v1/risk/cases/{cases['big-day']['id']}/resolve"
    done = ok(client.post(url, json={"outcome": "reverse", "note": "fraud"}, headers=risk))
    assert done["resolution"] == "reversed"
    balance = core.balance(shop, program=PROGRAM, member="alice")
    assert (balance.available, balance.pending) == (1000, 0)


def test_cases_of_another_program_or_none_are_404(
    client: FlaskClient, shop: Database, risk: dict[str, str], cases: dict[str, Any]
) -> None:
    other = bearer(new_key(shop, "risk", program=OTHER))
    case_id = cases["big-day"]["id"]
    before = row_counts(shop)
    for headers, target in [(other, case_id), (risk, 999)]:
        url = f"/v1/risk/cases/{target}"
        for r in (
            client.get(url, headers=headers),
            client.post(url + "/assign", json={"assignee": "x"}, headers=headers),
            client.post(
                url + "/resolve", json={"outcome": "dismiss", "note": "x"}, headers=headers
            ),
        ):
            assert problem(r, 404, "risk_case_not_found")["details"] == {"case_id": target}
    assert ok(client.get("/v1/risk/cases?status=all", headers=other)) == {"items": [], "total": 0}
    for target in (0, 2**63, 10**30):
        problem(client.get(f"/v1/risk/cases/{target}", headers=risk), 400, "invalid_input")
    problem(client.get("/v1/risk/cases/-1", headers=risk), 404, "not_found")
    assert row_counts(shop) == before


# --- members: freeze and hold ---------------------------------------------------------------


def test_a_frozen_member_cannot_earn_until_unfrozen(
    client: FlaskClient, shop: Database, risk: dict[str, str], earner: dict[str, str]
) -> None:
    reason = "chargeback fraud 调查中 🔍"
    frozen = ok(client.post("/v1/members/alice/freeze", json={"reason": reason}, headers=risk))
    assert (frozen["external_id"], frozen["status"]) == ("alice", "suspended")
    assert ok(client.get("/v1/members/alice", headers=earner))["status"] == "suspended"
    before = row_counts(shop)
    refused = problem(purchase(client, earner, "alice", "o-1", 1_000), 422, "member_frozen")
    assert "frozen" in refused["detail"]
    assert row_counts(shop) == before

    active = ok(client.post("/v1/members/alice/unfreeze", json={"reason": "cleared"},
                            headers=risk))  # fmt: skip
    assert active["status"] == "active"
    ok(purchase(client, earner, "alice", "o-1", 1_000), 201)
    assert actors(shop, "member.") == ["api:test", "api:test"]


@pytest.mark.parametrize(
    ("member", "body", "status", "code"),
    [
        ("alice", {"reason": ""}, 400, "invalid_input"),
        ("alice", {}, 400, "invalid_input"),
        ("alice", {"reason": "zero\u200bwidth"}, 400, "invalid_text"),
        ("alice", {"reason": "x" * 501}, 400, "invalid_input"),
        ("alice", {"reason": 10**30}, 400, "invalid_input"),
        ("nobody", {"reason": "x"}, 404, "member_not_found"),
        ("olga", {"reason": "x"}, 404, "member_not_found"),
        ("x" * 200, {"reason": "x"}, 400, "invalid_input"),
        ("carol", {"reason": "x"}, 400, "invalid_input"),  # closed
    ],
)
def test_bad_freezes_are_refused_and_change_nothing(
    client: FlaskClient,
    shop: Database,
    risk: dict[str, str],
    member: str,
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    core.set_member_status(shop, program=PROGRAM, external_id="carol", status="closed")
    before = row_counts(shop)
    for action in ("freeze", "unfreeze"):
        r = client.post(f"/v1/members/{member}/{action}", json=body, headers=risk)
        problem(r, status, code)
    assert row_counts(shop) == before
    assert core.get_member(shop, program=PROGRAM, external_id="alice").status == "active"


def test_a_members_hold_is_released_outside_a_case(
    client: FlaskClient, shop: Database, risk: dict[str, str], cases: dict[str, Any]
) -> None:
    url = "/v1/members/alice/release-hold"
    assert ok(client.post(url, json={"note": "verified by phone"}, headers=risk)) == {
        "released": 50
    }
    balance = core.balance(shop, program=PROGRAM, member="alice")
    assert (balance.available, balance.pending) == (1050, 0)
    assert ok(client.get(f"/v1/risk/cases/{cases['big-day']['id']}", headers=risk))["status"] == (
        "open"
    )
    assert ok(client.post(url, json={"note": "again"}, headers=risk)) == {"released": 0}
    problem(client.post(url, json={"note": ""}, headers=risk), 400, "invalid_input")
    r = client.post("/v1/members/olga/release-hold", json={"note": "x"}, headers=risk)
    problem(r, 404, "member_not_found")
    assert actors(shop, "risk.hold_released") == ["api:test", "api:test"]


# --- the scope ------------------------------------------------------------------------------

RISK_CALLS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/v1/risk/rules", None),
    ("PUT", "/v1/risk/rules", {"rules": []}),
    ("GET", "/v1/risk/rules/versions", None),
    ("GET", "/v1/risk/cases", None),
    ("GET", "/v1/risk/cases/1", None),
    ("POST", "/v1/risk/cases/1/assign", {"assignee": "x"}),
    ("POST", "/v1/risk/cases/1/resolve", {"outcome": "dismiss", "note": "x"}),
    ("POST", "/v1/members/alice/freeze", {"reason": "x"}),
    ("POST", "/v1/members/alice/unfreeze", {"reason": "x"}),
    ("POST", "/v1/members/alice/release-hold", {"note": "x"}),
    ("POST", "/v1/risk/scan", None),
]


def test_risk_needs_the_risk_scope(
    client: FlaskClient, shop: Database, risk: dict[str, str], cases: dict[str, Any]
) -> None:
    assert "risk" in SCOPES
    without = bearer(new_key(shop, *(s for s in SCOPES if s not in ("risk", "admin"))))
    key = create_key(shop, program=PROGRAM, scopes=["read"], label="t").key
    token = bearer(issue_member_token(shop, key=key, member="alice", secret=SECRET).token)
    before = row_counts(shop)
    for method, url, body in RISK_CALLS:
        for headers in (without, token):
            r = client.open(url, method=method, json=body, headers=headers)
            assert problem(r, 403, "permission_denied")
        r = client.open(url, method=method, json=body)
        problem(r, 401, "not_authenticated")
    assert core.list_risk_cases(shop, program=PROGRAM).total == 2
    assert row_counts(shop)["risk_rule_versions"] == before["risk_rule_versions"]
    admin = bearer(new_key(shop, "admin"))
    for method, url, body in RISK_CALLS:
        assert client.open(url, method=method, json=body, headers=admin).status_code == 200, url
    problem(purchase(client, risk, "bob", "o-9", 100), 403, "permission_denied")


# --- the SDK, embedded and remote -----------------------------------------------------------


def scenario(jifen: Jifen, clock: FixedClock) -> list[tuple[str, Any]]:
    """Every risk method of the client, with the errors a shop meets."""
    seen: list[tuple[str, Any]] = []

    def step(name: str, call: Callable[[], Any]) -> Any:
        seen.append((name, outcome(call)))
        return seen[-1][1]

    for member in ("alice", "bob", "carol"):
        jifen.enrol(member=member)
    step("no rules yet", lambda: jifen.risk_rules())
    step("no versions yet", lambda: jifen.risk_rule_versions())
    step("bad rule", lambda: jifen.publish_risk_rules(rules=[{"id": "x", "kind": "nope"}]))
    step("rules not a list", lambda: jifen.publish_risk_rules(rules="x"))  # type: ignore[arg-type]
    step("publish", lambda: jifen.publish_risk_rules(rules=[*WATCH, TILL_BLOCK], note="v1"))
    step("publish as object", lambda: jifen.publish_risk_rules(rules={"rules": WATCH}))
    step("publish as tuple", lambda: jifen.publish_risk_rules(rules=(*WATCH, TILL_BLOCK)))
    step("in force", lambda: jifen.risk_rules())
    step("version 2", lambda: jifen.risk_rules(version=2))
    step("version 9", lambda: jifen.risk_rules(version=9))
    step("versions", lambda: jifen.risk_rule_versions())

    def buy(member: str, order: str, amount: int, **where: Any) -> Any:
        return step(
            f"earn {order}",
            lambda: jifen.earn(member=member, order_id=order, amount_minor=amount, **where),
        )

    buy("alice", "o-1", 100_000, location="till-1", device="d-1")
    buy("bob", "o-2", 10_000, location="till-1")
    buy("carol", "o-3", 10_000, location="till-1")  # the third earn at till-1 in an hour
    buy("carol", "o-4", 10_000, location="x" * 129)
    step(
        "earn action at a till",
        lambda: jifen.earn_action(
            member="carol", action="sign_in", reference="d1", location="till-2", device="d-9"
        ),
    )
    step("scan", lambda: jifen.scan_risk())
    step("scan again", lambda: jifen.scan_risk())
    buy("alice", "o-5", 5_000)  # held
    step("open cases", lambda: jifen.risk_cases())
    step("every case, one per page", lambda: jifen.risk_cases(status=None, limit=1))
    step("second page", lambda: jifen.risk_cases(status=None, limit=1, offset=1))
    step("by rule and member", lambda: jifen.risk_cases(rule="big-day", member="alice"))
    step("bad status", lambda: jifen.risk_cases(status="lost"))
    step("limit 501", lambda: jifen.risk_cases(limit=501))
    step("case 1", lambda: jifen.risk_case(case_id=1))
    step("case 999", lambda: jifen.risk_case(case_id=999))
    step("case 0", lambda: jifen.risk_case(case_id=0))
    step("case of a bool", lambda: jifen.risk_case(case_id=True))
    step("assign", lambda: jifen.assign_risk_case(case_id=1, assignee="li.na"))
    step("unassign", lambda: jifen.assign_risk_case(case_id=2, assignee=None))
    step(
        "unknown outcome",
        lambda: jifen.resolve_risk_case(case_id=1, outcome="forgive", note="x"),
    )
    step("resolve", lambda: jifen.resolve_risk_case(case_id=1, outcome="release", note="ok ✅"))
    step("resolve again", lambda: jifen.resolve_risk_case(case_id=1, outcome="dismiss", note="x"))
    step("resolve 999", lambda: jifen.resolve_risk_case(case_id=999, outcome="dismiss", note="x"))
    step("dismiss", lambda: jifen.resolve_risk_case(case_id=2, outcome="dismiss", note="a till"))
    step("release without hold", lambda: jifen.release_member_hold(member="alice", note="x"))
    step("release unknown", lambda: jifen.release_member_hold(member="zed", note="x"))
    step("freeze", lambda: jifen.freeze_member(member="bob", reason="调查中"))
    step("frozen earns", lambda: jifen.earn(member="bob", order_id="o-6", amount_minor=100))
    step("frozen holds", lambda: jifen.hold(member="bob", order_id="o-7", points=1,
                                              order_total_minor=10_000))  # fmt: skip
    step("freeze oddly", lambda: jifen.freeze_member(member="bob", reason="x\u202e"))
    step("freeze unknown", lambda: jifen.freeze_member(member="zed", reason="x"))
    step("unfreeze", lambda: jifen.unfreeze_member(member="bob", reason="cleared"))
    step("member", lambda: jifen.get_member(member="bob"))
    clock.advance(dt.timedelta(days=2))
    step("balance alice", lambda: jifen.balance(member="alice"))
    return seen


def _as_one_actor(value: Any) -> Any:
    """``value`` (as :func:`plain` shows it) with the actor the API records for the key
    (``api:test``) shown as the embedded client's (``sdk``)."""
    if isinstance(value, str):
        return "sdk" if value == "api:test" else value
    if isinstance(value, tuple | list):
        return type(value)(_as_one_actor(v) for v in value)
    if isinstance(value, dict):
        return {k: _as_one_actor(v) for k, v in value.items()}
    return value


def test_the_risk_methods_give_the_same_outcomes_on_both_transports(
    fresh_url: Callable[[], str],
) -> None:
    outcomes: dict[str, list[tuple[str, Any]]] = {}
    for transport in TRANSPORTS:  # the program has the sign-in action (ACTION_RULES)
        clock = FixedClock(START)
        with client_for(transport, fresh_url(), clock) as client:
            outcomes[transport] = scenario(client, clock)
    embedded, remote = outcomes["embedded"], outcomes["remote"]
    assert [name for name, _ in remote] == [name for name, _ in embedded]
    for (name, here), (_, there) in zip(embedded, remote, strict=True):
        assert _as_one_actor(plain(there)) == plain(here), name
    _the_scenario_does_what_it_says(dict(embedded))


def _the_scenario_does_what_it_says(by_name: dict[str, Any]) -> None:
    """Checked once: the transports agree."""
    assert by_name["no rules yet"] is None and by_name["no versions yet"] == ()
    in_force = by_name["in force"]
    assert isinstance(in_force, RiskRulesInfo) and in_force.version == 3
    assert by_name["publish"].rules == in_force.rules and in_force.sentences_zh
    assert by_name["publish as object"].rules == {"rules": WATCH}
    assert [v.version for v in by_name["versions"]] == [3, 2, 1]
    scan = by_name["scan"]
    assert isinstance(scan, RiskScanResult) and (scan.opened, scan.held) == (2, 1)
    assert by_name["scan again"].opened == 0
    assert by_name["earn o-5"].status == "pending"
    page = by_name["open cases"]
    assert isinstance(page, RiskCasePage) and page.total == 2
    assert all(isinstance(c, RiskCaseInfo) for c in page.items)
    assert by_name["every case, one per page"].items + by_name["second page"].items == page.items
    case = by_name["case 1"]
    assert isinstance(case, RiskCaseInfo) and case.held_points == 50
    assert [e["at"] for e in case.evidence] == [START]
    assert case.evidence[0]["device"] == "d-1"
    assert by_name["resolve"].status == "resolved" and by_name["dismiss"].status == "dismissed"
    assert by_name["release without hold"] == 0
    assert isinstance(by_name["freeze"], MemberInfo) and by_name["freeze"].status == "suspended"
    assert by_name["member"].status == "active"
    assert by_name["balance alice"].available == 1050
    raised = {n: o for n, o in by_name.items() if isinstance(o, tuple) and o[:1] == ("raised",)}
    assert {name: o[2] for name, o in raised.items()} == {
        "bad rule": "invalid_rule",
        "rules not a list": "invalid_rule",
        "version 9": "invalid_input",
        "earn o-3": "risk_blocked",
        "earn o-4": "invalid_input",
        "bad status": "invalid_input",
        "limit 501": "invalid_input",
        "case 999": "risk_case_not_found",
        "case 0": "invalid_input",
        "case of a bool": "invalid_input",
        "unknown outcome": "invalid_input",
        "resolve again": "risk_case_closed",
        "resolve 999": "risk_case_not_found",
        "release unknown": "member_not_found",
        "frozen earns": "member_frozen",
        "frozen holds": "member_frozen",
        "freeze oddly": "invalid_text",
        "freeze unknown": "member_not_found",
    }
    for name, cls in [
        ("bad rule", InvalidRule),
        ("earn o-3", RiskBlocked),
        ("case 999", RiskCaseNotFound),
        ("resolve again", RiskCaseClosed),
        ("frozen earns", MemberFrozen),
    ]:
        assert raised[name][1] is cls, name
    assert by_name["earn o-3"][4]["rule"] == "till-burst"


def test_every_risk_result_type_is_frozen() -> None:
    for cls in (RiskRulesInfo, RiskCaseInfo, RiskCasePage, RiskScanResult):
        assert dataclasses.is_dataclass(cls)
        assert cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
