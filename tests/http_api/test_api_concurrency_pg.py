"""Concurrent requests through a real threaded server on PostgreSQL.

Fifty holds of 10 points race for a member's 100 points: exactly ten win and the others are
``insufficient_points``, and the ledger verifies. Twenty identical first earnings of one
order race: one earns, the others are replays of it, byte for byte. Transfers both ways at
once neither deadlock nor lose points; one ``Idempotency-Key`` sent with two bodies at once
keeps the first body and refuses the other with 409.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from api import create_api_app
from loyalty import services as core
from loyalty.db import Database
from loyalty.services.verify import verify_ledger
from tests.http_api.conftest import SECRET, bearer, new_key
from tests.http_api.live_server import live_server
from tests.integration.helpers import PROGRAM, earn, enrol, make_program

pytestmark = pytest.mark.postgres

HOLDS = 50
EARNS = 20
TRANSFERS = 40


@pytest.fixture
def shop(pg_db: Database) -> Database:
    """The shop on PostgreSQL with alice holding 100 points."""
    make_program(pg_db)
    enrol(pg_db, "alice")
    earn(pg_db, "alice", "o-paid", 10_000)
    assert core.balance(pg_db, program=PROGRAM, member="alice").available == 100
    return pg_db


@pytest.fixture
def base_url(shop: Database) -> Iterator[str]:
    """The API on a threaded werkzeug server over the shop."""
    app = create_api_app(
        {
            "JIFEN_DATABASE": shop,
            "SECRET_KEY": SECRET,
            "RATELIMIT_ENABLED": False,
            "JIFEN_REDIS_URL": None,
        }
    )
    with live_server(app) as url:
        yield url


def together(count: int, request: Callable[[httpx.Client, int], httpx.Response]) -> list[Any]:
    """``request`` sent ``count`` times at once, each from its own thread and client."""
    start = threading.Barrier(count)

    def one(i: int) -> httpx.Response:
        with httpx.Client(timeout=60) as client:
            start.wait()
            response = request(client, i)
            response.read()
            return response

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def test_fifty_holds_race_for_a_hundred_points(shop: Database, base_url: str) -> None:
    headers = bearer(new_key(shop, "redeem"))

    def hold(client: httpx.Client, i: int) -> httpx.Response:
        return client.post(
            f"{base_url}/v1/holds",
            json={
                "member": "alice",
                "order_id": f"o-{i}",
                "points": 10,
                "order_total_minor": 100_000,
            },
            headers=headers,
        )

    answers = together(HOLDS, hold)
    statuses = Counter(r.status_code for r in answers)
    assert statuses == {201: 10, 422: 40}, [r.text for r in answers if r.status_code >= 500]
    refused = [r for r in answers if r.status_code == 422]
    assert {(r.headers["content-type"], r.json()["code"]) for r in refused} == {
        ("application/problem+json", "insufficient_points")
    }
    won = [r.json()["order_id"] for r in answers if r.status_code == 201]
    with httpx.Client(base_url=base_url, headers=headers) as client:
        for order_id in won:
            captured = client.post(f"/v1/holds/{order_id}/capture")
            assert captured.status_code == 200, captured.text
            assert captured.json()["status"] == "captured"
    after = core.balance(shop, program=PROGRAM, member="alice")
    assert (after.available, after.held) == (0, 0)
    assert verify_ledger(shop).ok


def test_twenty_identical_first_earnings_earn_once(shop: Database, base_url: str) -> None:
    headers = bearer(new_key(shop, "earn"))
    body = {"member": "alice", "order_id": "o-race", "amount_minor": 5_000}

    def purchase(client: httpx.Client, i: int) -> httpx.Response:
        return client.post(f"{base_url}/v1/earnings/purchase", json=body, headers=headers)

    answers = together(EARNS, purchase)
    assert {r.status_code for r in answers} == {201}, [r.text for r in answers]
    replayed = Counter(r.headers.get("Idempotent-Replayed") for r in answers)
    assert replayed == {None: 1, "true": EARNS - 1}
    assert len({r.content for r in answers}) == 1
    assert answers[0].json()["points_granted"] == 50
    assert core.balance(shop, program=PROGRAM, member="alice").available == 150
    assert verify_ledger(shop).ok


def test_transfers_both_ways_at_once_neither_deadlock_nor_lose_points(
    shop: Database, base_url: str
) -> None:
    core.update_program(shop, program=PROGRAM, transfers_enabled=True)
    enrol(shop, "bob")
    earn(shop, "bob", "o-bob", 10_000)
    headers = bearer(new_key(shop, "transfer"))

    def transfer(client: httpx.Client, i: int) -> httpx.Response:
        sender, recipient = ("alice", "bob") if i % 2 else ("bob", "alice")
        body = {"sender": sender, "recipient": recipient, "points": 3, "transfer_id": f"t-{i}"}
        return client.post(f"{base_url}/v1/transfers", json=body, headers=headers)

    answers = together(TRANSFERS, transfer)
    assert {r.status_code for r in answers} == {201}, [
        r.text for r in answers if r.status_code != 201
    ]
    balances = [core.balance(shop, program=PROGRAM, member=m).available for m in ("alice", "bob")]
    assert balances == [100, 100]
    assert verify_ledger(shop).ok


def test_one_idempotency_key_with_two_bodies_at_once_keeps_one(
    shop: Database, base_url: str
) -> None:
    headers = bearer(new_key(shop, "redeem")) | {"Idempotency-Key": "checkout-7"}

    def hold(client: httpx.Client, i: int) -> httpx.Response:
        body = {
            "member": "alice",
            "order_id": "o-7",
            "points": 10 + i % 2,
            "order_total_minor": 100_000,
        }
        return client.post(f"{base_url}/v1/holds", json=body, headers=headers)

    answers = together(EARNS, hold)
    won = [r for r in answers if r.status_code == 201]
    lost = [r for r in answers if r.status_code != 201]
    assert {r.status_code for r in lost} == {409}
    assert {r.json()["code"] for r in lost} == {"idempotency_conflict"}
    assert len({r.content for r in won}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") is None for r in won) == 1
    assert core.balance(shop, program=PROGRAM, member="alice").held == won[0].json()["points"]
    assert verify_ledger(shop).ok
