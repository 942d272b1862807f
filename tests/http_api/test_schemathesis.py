"""schemathesis against the live API: every operation of ``/v1/openapi.json`` is called with
generated requests on a real threaded server, and must neither fail with a 5xx nor answer
anything its documented schema does not describe.

The database is the shop of :func:`tests.http_api.test_auth_matrix.seed` (members with
points, orders, holds, refunds, a dispute, rewards and redemptions). Generated member,
order, refund, dispute, reward, redemption and voucher ids are replaced by known ones half of
the time, so requests reach the services and succeed as well as fail. A guard counts, in the
app, how many requests were authorised and what they answered: a run where everything was 401
(a wrong key) or 404 (ids nobody has) fails.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from flask import Response, g, request
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import response_schema_conformance

from api import create_api_app
from api.schemas import RISK_RULES_EXAMPLE, TIERS_EXAMPLE
from loyalty.db import Database
from tests.http_api.conftest import SECRET, bearer, new_key
from tests.http_api.live_server import live_server
from tests.http_api.test_auth_matrix import EVENT, HOOK_URL, VOUCHERS, seed

MAX_EXAMPLES = 12
CHECKS = [not_a_server_error, response_schema_conformance]
KNOWN: dict[str, tuple[Any, ...]] = {
    "member": ("alice", "bob", "carol", "dave"),
    "sender": ("alice", "bob"),
    "recipient": ("alice", "bob"),
    "order_id": ("o-new", "o-paid", "o-bob", "o-held-1", "o-held-2"),
    "refund_id": ("r-pending-1", "r-pending-2", "r-new"),
    "dispute_id": ("d-open", "d-new"),
    "transfer_id": ("t-1", "t-2"),
    "adjustment_id": ("a-1", "a-2"),
    "action": ("sign_in",),
    "reference": ("2026-11-21", "2026-11-22"),
    "reason": ("goodwill",),
    "email": ("alice@example.com", None),
    "stripe_customer_id": ("cus_alice", "cus_bob"),
    "currency": ("CNY", None),
    "amount_minor": (1_000, 12_345),
    "order_total_minor": (10_000, 100_000),
    "points": (1, 10, 100),
    "paid_with_points_minor": (0, 100),
    "ttl_seconds": (60, 900),
    "job": ("expire", "mature", "hold_timeouts", "remind", "clear", "tiers", "events"),
    "reward": ("coffee", "ten-off", "lucky", "mug"),
    "quantity": (1, 2),
    "redemption": (1, 2, 3),
    "code": VOUCHERS,
    "status": ("packing", "shipped", "issued"),
    "rules": (TIERS_EXAMPLE, RISK_RULES_EXAMPLE),
    "tier": ("gold", "silver"),
    "change_id": ("c-1", "c-2"),
    "version": (1, 2),
    "kind": ("coupon", "item"),
    "terms": ({"name": "Tea", "points": 10},),
    "count": (3,),
    "event_id": (EVENT,),
    "endpoint": (1,),
    "delivery_id": (1, 2),
    "since": (None, "2026-01-01T00:00:00+00:00"),
    "url": (HOOK_URL,),
    "event_types": (["*"], ["points.earned", "points.expiring"]),
    "case_id": (1,),
    "assignee": ("li.na", None),
    "outcome": ("release", "dismiss", "reverse"),
    "note": ("checked", None),
    "location": ("store-1/till-2", None),
    "device": ("pos-7", None),
}
PRICED = ("POST /v1/quotes/earn", "POST /v1/earnings/purchase")
# closed and frozen members refuse most operations
LAST = ("POST /v1/members/{member}/freeze", "POST /v1/members/{member}/close")


@dataclass
class Tally:
    """What the app answered, per operation (filled by an ``after_request`` hook)."""

    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    codes: Counter[str] = field(default_factory=Counter)
    authorised: int = 0
    total: int = 0
    unrouted: int = 0

    def record(self, response: Response) -> Response:
        if request.url_rule is None:  # a generated id no route takes (a newline in a path)
            self.unrouted += 1
            return response
        rule = request.url_rule.rule
        if not rule.startswith("/v1/") or rule.startswith("/v1/openapi"):
            return response
        operation = f"{request.method} {rule}"
        self.statuses.setdefault(operation, Counter())[response.status_code] += 1
        self.total += 1
        if response.mimetype == "application/problem+json":
            problem = response.get_json(silent=True) or {}
            self.codes[f"{operation} {problem.get('code')}"] += 1
        if getattr(g, "program", None) and response.status_code not in (401, 403):
            self.authorised += 1
        return response

    def summary(self) -> str:
        answered = Counter(
            status // 100 for seen in self.statuses.values() for status in seen.elements()
        )
        return (
            f"{self.total} requests over {len(self.statuses)} operations, "
            f"{self.authorised} authorised, {answered[2]} 2xx, {answered[4]} 4xx, "
            f"{self.unrouted} no route took"
        )

    def with_2xx(self) -> list[str]:
        return [op for op, seen in self.statuses.items() if any(200 <= s < 300 for s in seen)]


def _realistic(case: Any, draw: Any) -> None:
    """Known ids and sane values where the generated ones were (the first one of each
    tuple is the one hypothesis prefers)."""
    for name in case.path_parameters:
        if name in KNOWN:
            case.path_parameters[name] = draw(st.sampled_from(KNOWN[name]))
    if isinstance(case.body, dict):
        for name in case.body:
            if name in KNOWN:
                case.body[name] = draw(st.sampled_from(KNOWN[name]))
        if case.operation.label in PRICED:  # an order is priced from its amount or its lines
            case.body.pop("lines", None)
            case.body["amount_minor"] = draw(st.sampled_from(KNOWN["amount_minor"]))


def _exercise(operation: Any, base_url: str, headers: dict[str, str]) -> str | None:
    """Run the operation's generated cases; the failure, if one was found."""

    @given(case=operation.as_strategy(), data=st.data())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any, data: st.DataObject) -> None:
        if not data.draw(st.booleans(), label="as generated"):  # hypothesis leans to False
            _realistic(case, data.draw)
        case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)

    try:
        run()
    except Exception as failure:  # hypothesis re-raises the check's failure
        return f"{operation.label}: {failure}"
    return None


def _operations(schema: Any) -> list[Any]:
    """The document's operations; one schemathesis cannot read fails the test."""
    found = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise AssertionError(f"schemathesis cannot read an operation: {result.err()}")
        found.append(result.ok())
    return found


def test_the_api_keeps_its_documented_schema(program_db: Database) -> None:
    seed(program_db)
    headers = bearer(new_key(program_db, "admin"))
    app = create_api_app(
        {
            "JIFEN_DATABASE": program_db,
            "SECRET_KEY": SECRET,
            "RATELIMIT_ENABLED": False,
            "JIFEN_REDIS_URL": None,
        }
    )
    tally = Tally()
    app.after_request(tally.record)
    with live_server(app) as base_url:
        schema = schemathesis.openapi.from_url(f"{base_url}/v1/openapi.json")
        operations = sorted(_operations(schema), key=lambda op: op.label in LAST)
        failures = [_exercise(op, base_url, headers) for op in operations]
    print("schemathesis:", tally.summary())  # shown with -s
    assert not [f for f in failures if f], "\n\n".join(f for f in failures if f)
    assert len(operations) == len(tally.statuses) >= 27
    assert tally.authorised > 0.3 * tally.total, tally
    assert len(tally.with_2xx()) >= 0.8 * len(operations), tally.statuses
