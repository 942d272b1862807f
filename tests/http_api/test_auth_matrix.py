"""Who may call what: every operation of the OpenAPI document against every wrong credential.

The operations are read from ``/v1/openapi.json``, so a new endpoint joins the matrix by
itself; :data:`OPERATIONS` gives each a valid request (and the test fails for one without
an entry). Each wrong credential must answer 401 ``not_authenticated`` or 403
``permission_denied`` as problem+json and write nothing (``api_keys.last_used_at`` may be
touched: row counts are compared, not values). The right scope must get past the door, and
a key of another program must neither see nor touch this program's members.

:func:`seed` (the shop with members, orders, holds, refunds and a dispute) is shared with
the schemathesis run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from werkzeug.test import TestResponse

from api.schemas import TIERS_EXAMPLE
from loyalty import services as core
from loyalty.db import Database
from loyalty.db.models import Base
from loyalty.db.tables import events, programs
from loyalty.domain.clock import FixedClock
from loyalty.events.dispatch import dispatch_events
from loyalty.events.endpoints import add_endpoint, disable_endpoint, enable_endpoint
from loyalty.services.api_keys import SCOPES, create_key, revoke_key
from loyalty.services.member_tokens import issue_member_token
from tests.http_api.conftest import SECRET, bearer, new_key
from tests.http_api.test_rewards_api import ADDRESS, name_vouchers, reward_catalog
from tests.integration.helpers import PROGRAM, earn, enrol, hold, make_program, row_counts

OTHER_PROGRAM = "other"
VOUCHERS = ("V-ALICE-0001", "V-ALICE-0002")  # alice's, from redemption 3
EVENT = "evt_" + "e" * 32  # the shop's first event (alice's enrolment), named by seed()
HOOK_URL = "http://127.0.0.1:9/hooks"  # endpoint 1 (the shop allows private addresses)
# Bulk replays of what failed since a moment to come replay nothing, so delivery 1 stays failed
# for its own replay whatever order the operations are called in.
LATER = "2099-01-01T00:00:00+00:00"
PROBLEM = "application/problem+json"
HTTP_METHODS = ("get", "post", "put", "patch", "delete")
RULES = {
    "base_ratio": "1",
    "actions": {"sign_in": {"points": 5, "limit": 1, "period": "day"}},
}
# alice's 1,000 points of the day trip it: risk case 1, alice on hold
RISK_RULES = [
    {"id": "big-day", "kind": "velocity", "scope": "member", "measure": "points",
     "limit": 600, "window": "day", "action": "hold"},
]  # fmt: skip


@dataclass(frozen=True)
class Operation:
    """A valid request of one operation: its path parameters, body and query."""

    path: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    query: dict[str, Any] = field(default_factory=dict)
    names_shop_data: bool = True  # it names a member, order, refund or dispute of the shop

    def url(self, template: str) -> str:
        return template.format(**self.path)


OPERATIONS: dict[tuple[str, str], Operation] = {
    ("GET", "/v1/program/tiers"): Operation(names_shop_data=False),
    ("POST", "/v1/program/tiers"): Operation(
        body={"rules": TIERS_EXAMPLE, "effective_from": "2099-01-01T00:00:00+00:00"},
        names_shop_data=False,
    ),
    ("POST", "/v1/program/tiers/{version}/cancel"): Operation(
        path={"version": "2"}, names_shop_data=False
    ),
    ("GET", "/v1/program/tiers/forecast"): Operation(query={"days": 30}, names_shop_data=False),
    ("POST", "/v1/program/tiers/preview"): Operation(
        body={"rules": TIERS_EXAMPLE}, names_shop_data=False
    ),
    ("GET", "/v1/program/tiers/distribution"): Operation(names_shop_data=False),
    ("GET", "/v1/members/{member}/tier"): Operation(path={"member": "alice"}),
    ("POST", "/v1/members/{member}/tier"): Operation(
        path={"member": "bob"}, body={"tier": "gold", "reason": "VIP", "change_id": "c-1"}
    ),
    ("GET", "/v1/members/{member}/tier/history"): Operation(path={"member": "alice"}),
    ("POST", "/v1/members"): Operation(body={"member": "erin"}, names_shop_data=False),
    ("GET", "/v1/members/{member}"): Operation(path={"member": "alice"}),
    ("POST", "/v1/members/{member}/stripe-customer"): Operation(
        path={"member": "dave"}, body={"stripe_customer_id": "cus_dave"}
    ),
    ("POST", "/v1/members/{member}/close"): Operation(path={"member": "carol"}),
    ("POST", "/v1/members/{member}/tokens"): Operation(
        path={"member": "alice"}, body={"ttl_seconds": 600}
    ),
    ("POST", "/v1/quotes/earn"): Operation(body={"amount_minor": 10_000}, names_shop_data=False),
    ("POST", "/v1/quotes/redemption"): Operation(
        body={"member": "alice", "order_total_minor": 10_000}
    ),
    ("POST", "/v1/earnings/purchase"): Operation(
        body={"member": "alice", "order_id": "o-new", "amount_minor": 5_000}
    ),
    ("POST", "/v1/earnings/action"): Operation(
        body={"member": "alice", "action": "sign_in", "reference": "2026-11-21"}
    ),
    ("POST", "/v1/holds"): Operation(
        body={"member": "alice", "order_id": "o-hold", "points": 10, "order_total_minor": 100_000}
    ),
    ("POST", "/v1/holds/{order_id}/capture"): Operation(path={"order_id": "o-held-1"}),
    ("POST", "/v1/holds/{order_id}/release"): Operation(path={"order_id": "o-held-2"}),
    ("POST", "/v1/refunds"): Operation(
        body={"order_id": "o-paid", "refund_id": "r-new", "amount_minor": 1_000}
    ),
    ("POST", "/v1/refunds/{refund_id}/complete"): Operation(path={"refund_id": "r-pending-1"}),
    ("POST", "/v1/refunds/{refund_id}/fail"): Operation(path={"refund_id": "r-pending-2"}),
    ("POST", "/v1/disputes"): Operation(
        body={"order_id": "o-paid", "dispute_id": "d-new", "amount_minor": 1_000}
    ),
    ("POST", "/v1/disputes/{dispute_id}/close"): Operation(
        path={"dispute_id": "d-open"}, body={"won": True}
    ),
    ("POST", "/v1/transfers"): Operation(
        body={"sender": "alice", "recipient": "bob", "points": 10, "transfer_id": "t-1"}
    ),
    ("POST", "/v1/adjustments"): Operation(
        body={"member": "alice", "points": 10, "reason": "goodwill", "adjustment_id": "a-1"}
    ),
    ("GET", "/v1/members/{member}/balance"): Operation(path={"member": "alice"}),
    ("GET", "/v1/members/{member}/history"): Operation(path={"member": "alice"}),
    ("GET", "/v1/members/{member}/forecast"): Operation(
        path={"member": "alice"}, query={"days": 30}
    ),
    ("GET", "/v1/forecast"): Operation(query={"days": 30}, names_shop_data=False),
    ("GET", "/v1/program"): Operation(names_shop_data=False),
    ("GET", "/v1/rules"): Operation(names_shop_data=False),
    ("POST", "/v1/rules"): Operation(body={"rules": RULES}, names_shop_data=False),
    ("POST", "/v1/jobs/{job}"): Operation(path={"job": "expire"}, names_shop_data=False),
    ("GET", "/v1/rewards"): Operation(names_shop_data=False),
    ("POST", "/v1/rewards"): Operation(
        body={"code": "tea", "kind": "item", "terms": {"name": "Tea", "points": 10}, "stock": 5},
        names_shop_data=False,
    ),
    ("POST", "/v1/rewards/{reward}/versions"): Operation(
        path={"reward": "mug"}, body={"terms": {"name": "Mug", "points": 350}}
    ),
    ("POST", "/v1/rewards/{reward}/restock"): Operation(
        path={"reward": "mug"}, body={"quantity": 2}
    ),
    ("POST", "/v1/rewards/{reward}/codes"): Operation(path={"reward": "coffee"}, body={"count": 3}),
    ("GET", "/v1/members/{member}/rewards"): Operation(path={"member": "alice"}),
    ("GET", "/v1/members/{member}/reward-redemptions"): Operation(path={"member": "alice"}),
    ("POST", "/v1/members/{member}/reward-redemptions"): Operation(
        path={"member": "alice"}, body={"reward": "coffee"}
    ),
    ("GET", "/v1/reward-redemptions"): Operation(query={"reward": "coffee"}, names_shop_data=False),
    ("GET", "/v1/reward-redemptions/{redemption}"): Operation(path={"redemption": "1"}),
    ("POST", "/v1/reward-redemptions/{redemption}/cancel"): Operation(
        path={"redemption": "1"}, body={"reason": "changed my mind"}
    ),
    ("POST", "/v1/reward-redemptions/{redemption}/fulfilment"): Operation(
        path={"redemption": "2"}, body={"status": "packing"}
    ),
    ("POST", "/v1/vouchers/{code}/validate"): Operation(
        path={"code": VOUCHERS[0]}, body={"order_total_minor": 10_000}
    ),
    ("POST", "/v1/vouchers/{code}/consume"): Operation(
        path={"code": VOUCHERS[1]}, body={"order_id": "o-voucher", "order_total_minor": 10_000}
    ),
    ("POST", "/v1/vouchers/{code}/release"): Operation(
        path={"code": VOUCHERS[1]}, body={"order_id": "o-voucher"}
    ),
    ("GET", "/v1/events"): Operation(query={"limit": 10}, names_shop_data=False),
    ("GET", "/v1/events/{event_id}"): Operation(path={"event_id": EVENT}),
    ("GET", "/v1/webhook-endpoints"): Operation(names_shop_data=False),
    ("POST", "/v1/webhook-endpoints"): Operation(
        body={"url": HOOK_URL, "event_types": ["points.earned"]}, names_shop_data=False
    ),
    ("GET", "/v1/webhook-endpoints/{endpoint}"): Operation(path={"endpoint": "1"}),
    ("POST", "/v1/webhook-endpoints/{endpoint}"): Operation(
        path={"endpoint": "1"}, body={"description": "CRM"}
    ),
    ("POST", "/v1/webhook-endpoints/{endpoint}/rotate"): Operation(path={"endpoint": "1"}),
    ("POST", "/v1/webhook-endpoints/{endpoint}/disable"): Operation(
        path={"endpoint": "1"}, body={"reason": "maintenance"}
    ),
    ("POST", "/v1/webhook-endpoints/{endpoint}/enable"): Operation(path={"endpoint": "1"}),
    ("POST", "/v1/webhook-endpoints/{endpoint}/replay"): Operation(
        path={"endpoint": "1"}, body={"since": LATER}
    ),
    ("GET", "/v1/webhook-deliveries"): Operation(query={"status": "failed"}, names_shop_data=False),
    ("POST", "/v1/webhook-deliveries/replay"): Operation(
        body={"since": LATER}, names_shop_data=False
    ),
    ("POST", "/v1/webhook-deliveries/{delivery_id}/replay"): Operation(path={"delivery_id": "1"}),
    ("GET", "/v1/risk/rules"): Operation(names_shop_data=False),
    ("PUT", "/v1/risk/rules"): Operation(
        body={"rules": RISK_RULES, "note": "again"}, names_shop_data=False
    ),
    ("GET", "/v1/risk/rules/versions"): Operation(names_shop_data=False),
    ("GET", "/v1/risk/cases"): Operation(query={"status": "all"}, names_shop_data=False),
    ("GET", "/v1/risk/cases/{case_id}"): Operation(path={"case_id": "1"}),
    ("POST", "/v1/risk/cases/{case_id}/assign"): Operation(
        path={"case_id": "1"}, body={"assignee": "li.na"}
    ),
    ("POST", "/v1/risk/cases/{case_id}/resolve"): Operation(
        path={"case_id": "1"}, body={"outcome": "release", "note": "a good customer"}
    ),
    ("POST", "/v1/members/{member}/freeze"): Operation(
        path={"member": "frank"}, body={"reason": "under review"}
    ),
    ("POST", "/v1/members/{member}/unfreeze"): Operation(
        path={"member": "frank"}, body={"reason": "cleared"}
    ),
    ("POST", "/v1/members/{member}/release-hold"): Operation(
        path={"member": "alice"}, body={"note": "verified"}
    ),
    ("POST", "/v1/risk/scan"): Operation(names_shop_data=False),
}
MEMBER_READS = ("balance", "history", "forecast")


def seed(db: Database) -> None:
    """The shop (``program_db``) made realistic: transfers on, an action rule; alice (1,000
    points, two holds, two pending refunds of o-paid), bob (500 points, a dispute open on
    o-bob), carol (to close), dave (to link to Stripe); the reward catalog of
    :func:`reward_catalog` with alice's redemptions of a coupon (1), a mug (2) and two
    vouchers (3, codes :data:`VOUCHERS`); webhook endpoint 1 with its deliveries failed
    (disabled and enabled again); the first event named :data:`EVENT`; frank (to freeze);
    the risk rules :data:`RISK_RULES` with alice's hold case 1 opened by a scan; and the
    program ``other``."""
    core.update_program(db, program=PROGRAM, transfers_enabled=True, webhooks_allow_private=True)
    core.publish_rules(db, program=PROGRAM, rules=RULES)
    enrol(db, "alice", "bob", "carol", "dave")
    earn(db, "alice", "o-paid", 100_000)
    earn(db, "bob", "o-bob", 50_000)
    hold(db, "alice", "o-held-1", 10)
    hold(db, "alice", "o-held-2", 10)
    for refund in ("r-pending-1", "r-pending-2"):
        core.refund_order(
            db,
            program=PROGRAM,
            order_id="o-paid",
            refund_id=refund,
            amount_minor=1_000,
            currency="CNY",
        )
    core.open_dispute(
        db,
        program=PROGRAM,
        order_id="o-bob",
        dispute_id="d-open",
        amount_minor=1_000,
        currency="CNY",
    )
    reward_catalog(db)
    for reward, extra in (("coffee", {}), ("mug", {"shipping": ADDRESS}), ("ten-off", {})):
        core.redeem_reward(
            db,
            program=PROGRAM,
            member="alice",
            reward=reward,
            quantity=2 if reward == "ten-off" else 1,
            **extra,  # type: ignore[arg-type]
        )
    name_vouchers(db, 3, *VOUCHERS)
    core.publish_tiers(db, program=PROGRAM, rules=TIERS_EXAMPLE)
    endpoint = add_endpoint(db, program=PROGRAM, url=HOOK_URL).endpoint.id
    dispatch_events(db)
    disable_endpoint(db, program=PROGRAM, endpoint=endpoint, reason="maintenance")
    enable_endpoint(db, program=PROGRAM, endpoint=endpoint)
    name_first_event(db, EVENT)
    enrol(db, "frank")
    core.publish_risk_rules(db, program=PROGRAM, rules={"rules": RISK_RULES})
    core.scan_risk(db, program=PROGRAM)
    make_program(db, OTHER_PROGRAM)


def name_first_event(db: Database, event_id: str) -> None:
    """Give the shop's first event a known public id (they are random)."""
    with db.write() as conn:
        shop = select(programs.c.id).where(programs.c.code == PROGRAM).scalar_subquery()
        first = select(func.min(events.c.id)).where(events.c.program_id == shop).scalar_subquery()
        conn.execute(update(events).where(events.c.id == first).values(event_id=event_id))


@dataclass(frozen=True)
class SpecOperation:
    """One operation of the OpenAPI document."""

    method: str
    template: str
    scope: str | None  # the server key scope it needs
    member_token: bool  # a member token may call it

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.template)

    @property
    def name(self) -> str:
        return f"{self.method} {self.template}"


def spec_operations(client: FlaskClient) -> list[SpecOperation]:
    """Every operation of the served OpenAPI document, with the credentials it accepts."""
    spec = client.get("/v1/openapi.json").json
    assert spec is not None
    found = []
    for template, item in spec["paths"].items():
        for method in HTTP_METHODS:
            if method not in item:
                continue
            security = item[method].get("security", [])
            scopes = [s for requirement in security for s in requirement.get("serverKey", [])]
            found.append(
                SpecOperation(
                    method=method.upper(),
                    template=template,
                    scope=scopes[0] if scopes else None,
                    member_token=any("memberToken" in r for r in security),
                )
            )
    return found


def call(client: FlaskClient, op: SpecOperation, headers: dict[str, str]) -> TestResponse:
    """``op`` with its valid request from :data:`OPERATIONS` and ``headers``."""
    entry = OPERATIONS.get(op.key)
    if entry is None:
        pytest.fail(f"{op.name} has no valid request in OPERATIONS: add one")
    return client.open(
        entry.url(op.template),
        method=op.method,
        json=entry.body,
        query_string=entry.query,
        headers=headers,
    )


def test_every_operation_has_a_request_and_a_scope(client: FlaskClient) -> None:
    operations = spec_operations(client)
    assert len(operations) >= 27
    missing = [op.name for op in operations if op.key not in OPERATIONS]
    assert not missing, f"add these operations to OPERATIONS: {missing}"
    stale = set(OPERATIONS) - {op.key for op in operations}
    assert not stale, f"OPERATIONS names operations the API no longer has: {stale}"
    assert all(op.scope in SCOPES for op in operations), "every operation documents its scope"


# --- the wrong credentials ------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """A wrong credential, built per operation, and the status and code it must get."""

    status: int
    code: str
    headers: Callable[[Database, SpecOperation], dict[str, str] | None]  # None: not applicable


def _token(db: Database, member: str) -> str:
    key = core_key(db, "read")
    return issue_member_token(db, key=key, member=member, secret=SECRET).token


def core_key(db: Database, *scopes: str, program: str = PROGRAM) -> Any:
    """A new key's :class:`ApiKeyInfo` (for issuing member tokens directly)."""
    return create_key(db, program=program, scopes=scopes, label="test").key


def _no_authorization(db: Database, op: SpecOperation) -> dict[str, str]:
    return {}


def _malformed(db: Database, op: SpecOperation) -> dict[str, str]:
    return {"Authorization": "Basic YWxpY2U6c2VjcmV0"}


def _unknown_key(db: Database, op: SpecOperation) -> dict[str, str]:
    return bearer("jfn_sk_" + "A" * 43)


def _revoked_key(db: Database, op: SpecOperation) -> dict[str, str]:
    created = create_key(db, program=PROGRAM, scopes=SCOPES, label="revoked")
    revoke_key(db, program=PROGRAM, key=created.key.id)
    return bearer(created.secret)


def _other_program_naming_shop(db: Database, op: SpecOperation) -> dict[str, str]:
    return {**bearer(new_key(db, program=OTHER_PROGRAM)), "Jifen-Program": PROGRAM}


def _missing_scope(db: Database, op: SpecOperation) -> dict[str, str]:
    others = [s for s in SCOPES if s not in (op.scope, "admin")]
    return bearer(new_key(db, *others))


def _member_token_on_key_endpoint(db: Database, op: SpecOperation) -> dict[str, str] | None:
    return None if op.member_token else bearer(_token(db, "alice"))


def _another_members_token(db: Database, op: SpecOperation) -> dict[str, str] | None:
    return bearer(_token(db, "bob")) if op.member_token else None


REFUSALS = {
    "no_authorization": Refusal(401, "not_authenticated", _no_authorization),
    "malformed_header": Refusal(401, "not_authenticated", _malformed),
    "unknown_key": Refusal(401, "not_authenticated", _unknown_key),
    "revoked_key": Refusal(401, "not_authenticated", _revoked_key),
    "other_program_naming_shop": Refusal(403, "permission_denied", _other_program_naming_shop),
    "missing_scope": Refusal(403, "permission_denied", _missing_scope),
    "member_token_on_key_endpoint": Refusal(
        403, "permission_denied", _member_token_on_key_endpoint
    ),
    "another_members_token": Refusal(403, "permission_denied", _another_members_token),
}


@pytest.fixture
def seeded(program_db: Database) -> Database:
    """The shop with :func:`seed`'s data."""
    seed(program_db)
    return program_db


def _problems(
    client: FlaskClient,
    db: Database,
    refusal: Refusal,
    requests: Iterator[tuple[SpecOperation, dict[str, str]]],
) -> list[str]:
    """What went wrong for each request that should have been refused."""
    wrong = []
    for op, headers in requests:
        before = row_counts(db)
        r = call(client, op, headers)
        body = r.get_json(silent=True) or {}
        if (r.status_code, r.mimetype, body.get("code")) != (refusal.status, PROBLEM, refusal.code):
            wrong.append(f"{op.name}: {r.status_code} {r.mimetype} {body.get('code')}")
        elif not body.get("detail") or not body.get("request_id"):
            wrong.append(f"{op.name}: problem without detail or request_id: {body}")
        if row_counts(db) != before:
            wrong.append(f"{op.name}: wrote rows while refusing")
    return wrong


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_wrong_credential_is_refused_everywhere(
    client: FlaskClient, seeded: Database, case: str
) -> None:
    refusal = REFUSALS[case]
    operations = spec_operations(client)

    def requests() -> Iterator[tuple[SpecOperation, dict[str, str]]]:
        for op in operations:
            headers = refusal.headers(seeded, op)
            if headers is not None:
                yield op, headers

    tried = list(requests())
    assert tried, "the case applies to some operation"
    assert not _problems(client, seeded, refusal, iter(tried))


def test_an_expired_key_is_refused_everywhere(
    client: FlaskClient, seeded: Database, clock: FixedClock
) -> None:
    expires = clock.now() + dt.timedelta(hours=1)
    secret = create_key(
        seeded, program=PROGRAM, scopes=SCOPES, label="expiring", expires_at=expires
    ).secret
    r = client.get("/v1/program", headers=bearer(secret))
    assert r.status_code == 200, r.json
    clock.advance(dt.timedelta(hours=1, seconds=1))
    refusal = Refusal(401, "not_authenticated", _no_authorization)
    operations = spec_operations(client)
    wrong = _problems(client, seeded, refusal, ((op, bearer(secret)) for op in operations))
    assert not wrong
    r = client.get("/v1/program", headers=bearer(secret))
    assert r.json is not None and r.json["details"]["status"] == "expired"


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer    ",
        "bearer jfn_mt_not-a-token",
        "Token jfn_sk_x",
        "jfn_sk_x",
        "Bearer \x7f",
    ],
)
def test_malformed_headers_are_401(client: FlaskClient, seeded: Database, header: str) -> None:
    r = client.get("/v1/members/alice/balance", headers={"Authorization": header})
    assert r.status_code == 401, r.json
    assert r.mimetype == PROBLEM and r.json is not None
    assert r.json["code"] == "not_authenticated"


# --- the right credentials ------------------------------------------------------------------


def test_the_right_scope_gets_through_everywhere(client: FlaskClient, seeded: Database) -> None:
    wrong = []
    for op in spec_operations(client):
        assert op.scope is not None
        r = call(client, op, bearer(new_key(seeded, op.scope)))
        if not 200 <= r.status_code < 300:
            wrong.append(f"{op.name} with scope {op.scope}: {r.status_code} {r.get_json()}")
    assert not wrong


def test_a_members_own_token_reads_its_balance_history_and_forecast(
    client: FlaskClient, seeded: Database
) -> None:
    token = bearer(_token(seeded, "alice"))
    for read in MEMBER_READS:
        r = client.get(f"/v1/members/alice/{read}", headers=token)
        assert r.status_code == 200, (read, r.json)
        r = client.get(
            f"/v1/members/alice/{read}", headers={**token, "Jifen-Program": OTHER_PROGRAM}
        )
        assert r.status_code == 403 and r.json is not None
        assert r.json["code"] == "permission_denied"


def _shop_rows(db: Database) -> dict[str, int]:
    """How many rows of each table belong to the shop (tables with a ``program_id``)."""
    with db.read() as conn:
        shop_id = conn.execute(select(programs.c.id).where(programs.c.code == PROGRAM)).scalar()
        return {
            t.name: int(
                conn.execute(
                    select(func.count()).select_from(t).where(t.c.program_id == shop_id)
                ).scalar_one()
            )
            for t in Base.metadata.sorted_tables
            if "program_id" in t.c and t.name != "api_keys"
        }


def _shop_state(db: Database) -> dict[str, Any]:
    members = ("alice", "bob", "carol", "dave")
    return {
        "rows": _shop_rows(db),
        "balances": [core.balance(db, program=PROGRAM, member=m) for m in members],
        "members": [core.get_member(db, program=PROGRAM, external_id=m) for m in members],
    }


def test_a_key_of_another_program_neither_sees_nor_touches_the_shop(
    client: FlaskClient, seeded: Database
) -> None:
    other = bearer(new_key(seeded, program=OTHER_PROGRAM))
    before = _shop_state(seeded)
    wrong = []
    for op in spec_operations(client):
        r = call(client, op, other)
        body = r.get_json(silent=True) or {}
        if OPERATIONS[op.key].names_shop_data and r.status_code != 404:
            wrong.append(f"{op.name}: {r.status_code} {body}")
        if r.status_code in (401, 403) or r.status_code >= 500:
            wrong.append(f"{op.name}: {r.status_code} {body}")
    assert not wrong
    assert _shop_state(seeded) == before
    r = client.get("/v1/program", headers=other)
    assert r.json is not None and r.json["code"] == OTHER_PROGRAM


BAD_QUERY = {"days": "x", "limit": "x", "cursor": "x", "expiring_within_days": "x"}


@pytest.mark.parametrize("case", ["no_authorization", "unknown_key", "revoked_key"])
def test_a_refused_credential_is_401_whatever_the_request(
    client: FlaskClient, seeded: Database, case: str
) -> None:
    refusal = REFUSALS[case]
    wrong = []
    for op in spec_operations(client):
        entry = OPERATIONS[op.key]
        r = client.open(
            entry.url(op.template),
            method=op.method,
            json={"bogus": True} if entry.body is not None else None,
            query_string=BAD_QUERY if op.method == "GET" else {},
            headers=refusal.headers(seeded, op),
        )
        body = r.get_json(silent=True) or {}
        if (r.status_code, body.get("code")) != (401, "not_authenticated"):
            wrong.append(f"{op.name}: {r.status_code} {body.get('code')}")
    assert not wrong


def test_a_member_token_ends_with_its_key_and_its_time(
    client: FlaskClient, seeded: Database, clock: FixedClock
) -> None:
    key = core_key(seeded, "read")
    token = bearer(issue_member_token(seeded, key=key, member="alice", secret=SECRET).token)
    assert client.get("/v1/members/alice/balance", headers=token).status_code == 200
    revoke_key(seeded, program=PROGRAM, key=key.id)
    r = client.get("/v1/members/alice/balance", headers=token)
    assert r.status_code == 401 and r.json is not None and r.json["code"] == "not_authenticated"
    token = bearer(_token(seeded, "alice"))
    clock.advance(dt.timedelta(minutes=15, seconds=1))
    r = client.get("/v1/members/alice/history", headers=token)
    assert r.status_code == 401 and r.json is not None
    assert r.json["details"]["status"] == "expired"
    forged = token["Authorization"][:-3] + "AAA"
    r = client.get("/v1/members/alice/history", headers={"Authorization": forged})
    assert r.status_code == 401
