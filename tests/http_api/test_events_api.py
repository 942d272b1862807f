"""`/v1/events`, `/v1/webhook-endpoints` and `/v1/webhook-deliveries`: the events feed
serves byte for byte what a real receiver gets (signature verified with standardwebhooks),
pages without missing or repeating an event (also while writes commit out of id order on
PostgreSQL), refuses bad input with a problem and its code, and is closed to member tokens
and keys without the scope; webhook endpoints are managed with their secret shown once,
their failed deliveries listed and replayed singly or in bulk."""

from __future__ import annotations

import http.server
import json
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from standardwebhooks import Webhook

from loyalty import services as core
from loyalty.db import Database
from loyalty.db.tables import events, programs
from loyalty.events import feed
from loyalty.events.delivery import iter_rounds
from loyalty.events.dispatch import dispatch_events
from loyalty.events.feed import list_events
from loyalty.events.outbox import envelope
from loyalty.services.api_keys import create_key
from loyalty.services.member_tokens import issue_member_token
from loyalty.services.uow import unit_of_work
from tests.http_api.conftest import SECRET, bearer, new_key
from tests.integration.helpers import PROGRAM, earn, enrol, make_program, row_counts

PROBLEM = "application/problem+json"
HOOK_URL = "http://127.0.0.1:9/hooks"


def stored_envelopes(db: Database, program: str = PROGRAM) -> list[dict[str, Any]]:
    """Every event of the program as the dispatcher would send it, oldest first."""
    with db.read() as conn:
        rows = conn.execute(
            select(events.c.event_id, events.c.type, events.c.occurred_at, events.c.data)
            .join(programs, programs.c.id == events.c.program_id)
            .where(programs.c.code == program)
            .order_by(events.c.id)
        ).all()
    return [envelope(r.event_id, r.type, r.occurred_at, r.data) for r in rows]


@pytest.fixture
def shop(program_db: Database) -> Database:
    """alice and bob, each with an earning."""
    enrol(program_db, "alice", "bob")
    earn(program_db, "alice", "o-1", 10_000)
    earn(program_db, "bob", "o-2", 20_000)
    return program_db


@pytest.fixture
def events_key(shop: Database) -> dict[str, str]:
    return bearer(new_key(shop, "events"))


def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert (response.status_code, response.mimetype) == (status, PROBLEM), response.get_data(True)
    body: dict[str, Any] = response.get_json()
    assert body["code"] == code, body
    return body


# --- the feed -------------------------------------------------------------------------------


def test_the_feed_serves_exactly_the_webhook_bodies_oldest_first(
    client: FlaskClient, shop: Database, events_key: dict[str, str]
) -> None:
    r = client.get("/v1/events", headers=events_key)
    assert r.status_code == 200, r.get_data(True)
    page = r.get_json()
    expected = stored_envelopes(shop)
    assert [e["type"] for e in expected] == [
        "member.enrolled",
        "member.enrolled",
        "points.earned",
        "points.earned",
    ]
    assert page == {"items": expected, "next_after": expected[-1]["id"], "has_more": False}
    assert page["items"][0]["timestamp"].endswith("Z")
    one = client.get(f"/v1/events/{expected[2]['id']}", headers=events_key)
    assert one.status_code == 200
    assert one.get_json() == expected[2]


def test_pages_follow_the_cursor_and_filters_narrow_them(
    client: FlaskClient, shop: Database, events_key: dict[str, str]
) -> None:
    expected = stored_envelopes(shop)
    seen: list[dict[str, Any]] = []
    after = None
    while True:
        query = {"limit": 1} if after is None else {"limit": 1, "after": after}
        page = client.get("/v1/events", query_string=query, headers=events_key).get_json()
        seen += page["items"]
        after = page["next_after"]
        if not page["has_more"]:
            break
    assert seen == expected
    empty = client.get("/v1/events", query_string={"after": after}, headers=events_key)
    assert empty.get_json() == {"items": [], "next_after": after, "has_more": False}

    earned = client.get("/v1/events", query_string={"type": "points.earned"}, headers=events_key)
    assert [e["data"]["member"] for e in earned.get_json()["items"]] == ["alice", "bob"]
    bobs = client.get("/v1/events", query_string={"member": "bob"}, headers=events_key)
    assert [e["type"] for e in bobs.get_json()["items"]] == ["member.enrolled", "points.earned"]
    assert all(e["data"]["member"] == "bob" for e in bobs.get_json()["items"])


@pytest.mark.parametrize(
    ("query", "status", "code", "field"),
    [
        ({"limit": 0}, 400, "invalid_amount", "limit"),
        ({"limit": 101}, 400, "invalid_amount", "limit"),
        ({"limit": "many"}, 400, "invalid_input", None),
        ({"type": "points.stolen"}, 400, "invalid_input", "type"),
        ({"after": "evt_nope"}, 400, "invalid_input", "after"),
        ({"after": "evt_" + "0" * 32}, 404, "event_not_found", None),
        ({"member": "nobody"}, 404, "member_not_found", None),
    ],
)
def test_bad_queries_are_problems_with_a_code(
    client: FlaskClient,
    shop: Database,
    events_key: dict[str, str],
    query: dict[str, Any],
    status: int,
    code: str,
    field: str | None,
) -> None:
    body = problem(client.get("/v1/events", query_string=query, headers=events_key), status, code)
    if field is not None:
        assert body["details"]["field"] == field


def test_an_event_of_another_program_or_a_bad_id_is_not_served(
    client: FlaskClient, shop: Database, events_key: dict[str, str]
) -> None:
    make_program(shop, "other")
    enrol(shop, "zoe", program="other")
    theirs = stored_envelopes(shop, "other")[0]["id"]
    problem(client.get(f"/v1/events/{theirs}", headers=events_key), 404, "event_not_found")
    problem(client.get("/v1/events/evt_x", headers=events_key), 400, "invalid_input")
    page = client.get("/v1/events", headers=events_key).get_json()
    assert theirs not in {e["id"] for e in page["items"]}


def test_member_tokens_and_keys_without_the_scope_cannot_read_events(
    client: FlaskClient, shop: Database
) -> None:
    read_key = create_key(shop, program=PROGRAM, scopes=["read"], label="r").key
    token = issue_member_token(shop, key=read_key, member="alice", secret=SECRET).token
    first = stored_envelopes(shop)[0]["id"]
    for path in ("/v1/events", f"/v1/events/{first}"):
        problem(client.get(path, headers=bearer(token)), 403, "permission_denied")
        read_only = bearer(new_key(shop, "read", "earn", "webhooks"))
        problem(client.get(path, headers=read_only), 403, "permission_denied")
        assert client.get(path, headers=bearer(new_key(shop, "admin"))).status_code == 200


# --- webhook endpoints ----------------------------------------------------------------------


@pytest.fixture
def hooks_key(shop: Database) -> dict[str, str]:
    core.update_program(shop, program=PROGRAM, webhooks_allow_private=True)
    return bearer(new_key(shop, "webhooks"))


def test_an_endpoint_is_added_with_its_secret_shown_once(
    client: FlaskClient, shop: Database, hooks_key: dict[str, str]
) -> None:
    r = client.post(
        "/v1/webhook-endpoints",
        json={"url": HOOK_URL, "event_types": ["points.earned"], "description": "CRM"},
        headers=hooks_key,
    )
    assert r.status_code == 201, r.get_data(True)
    assert r.headers["Cache-Control"] == "no-store"
    created = r.get_json()
    secret = created["secret"]
    assert secret.startswith("whsec_")
    endpoint = created["endpoint"]
    assert endpoint["url"] == HOOK_URL
    assert endpoint["event_types"] == ["points.earned"]
    assert endpoint["secret_hint"] == secret[-4:]

    listed = client.get("/v1/webhook-endpoints", headers=hooks_key)
    assert listed.status_code == 200
    assert [e["id"] for e in listed.get_json()] == [endpoint["id"]]
    assert secret not in listed.get_data(True)
    one = client.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=hooks_key)
    assert one.get_json()["description"] == "CRM"
    assert secret not in one.get_data(True)


def test_rotate_disable_and_enable(
    client: FlaskClient, shop: Database, hooks_key: dict[str, str]
) -> None:
    created = client.post("/v1/webhook-endpoints", json={"url": HOOK_URL}, headers=hooks_key)
    endpoint_id = created.get_json()["endpoint"]["id"]
    assert created.get_json()["endpoint"]["event_types"] == ["*"]
    base = f"/v1/webhook-endpoints/{endpoint_id}"

    rotated = client.post(f"{base}/rotate", headers=hooks_key)
    assert rotated.status_code == 200
    assert rotated.headers["Cache-Control"] == "no-store"
    new_secret = rotated.get_json()["secret"]
    assert new_secret.startswith("whsec_") and new_secret != created.get_json()["secret"]
    assert rotated.get_json()["endpoint"]["rotating_until"] is not None

    disabled = client.post(f"{base}/disable", json={"reason": "maintenance"}, headers=hooks_key)
    assert disabled.status_code == 200
    assert (disabled.get_json()["enabled"], disabled.get_json()["disabled_reason"]) == (
        False,
        "maintenance",
    )
    enabled = client.post(f"{base}/enable", headers=hooks_key)
    assert enabled.get_json()["enabled"] is True

    changed = client.post(
        base,
        json={"event_types": ["points.expiring"], "description": "e-mail tool"},
        headers=hooks_key,
    )
    assert changed.status_code == 200, changed.get_data(True)
    assert (changed.get_json()["event_types"], changed.get_json()["url"]) == (
        ["points.expiring"],
        HOOK_URL,
    )
    kept = client.post(base, json={"url": HOOK_URL + "/v2"}, headers=hooks_key).get_json()
    assert (kept["url"], kept["description"]) == (HOOK_URL + "/v2", "e-mail tool")


def test_bad_endpoint_requests_are_problems_and_change_nothing(
    client: FlaskClient, shop: Database, hooks_key: dict[str, str]
) -> None:
    before = row_counts(shop)
    cases: list[tuple[str, dict[str, Any] | None, int, str]] = [
        ("/v1/webhook-endpoints", {"url": "ftp://example.com/x"}, 400, "invalid_input"),
        ("/v1/webhook-endpoints", {"url": HOOK_URL, "event_types": ["nope"]}, 400, "invalid_input"),
        ("/v1/webhook-endpoints", {"url": HOOK_URL, "colour": "red"}, 400, "invalid_input"),
        ("/v1/webhook-endpoints", {}, 400, "invalid_input"),
        ("/v1/webhook-endpoints/999/rotate", None, 404, "webhook_endpoint_not_found"),
        ("/v1/webhook-endpoints/999/disable", {"reason": "x"}, 404, "webhook_endpoint_not_found"),
        ("/v1/webhook-endpoints/999/enable", None, 404, "webhook_endpoint_not_found"),
        ("/v1/webhook-endpoints/999", {"description": "x"}, 404, "webhook_endpoint_not_found"),
    ]
    for path, body, status, code in cases:
        problem(client.post(path, json=body, headers=hooks_key), status, code)
    problem(
        client.get("/v1/webhook-endpoints/999", headers=hooks_key),
        404,
        "webhook_endpoint_not_found",
    )
    assert row_counts(shop) == before


def test_a_private_address_is_refused_unless_the_program_allows_it(
    client: FlaskClient, shop: Database
) -> None:
    key = bearer(new_key(shop, "webhooks"))
    body = problem(
        client.post("/v1/webhook-endpoints", json={"url": HOOK_URL}, headers=key),
        400,
        "invalid_input",
    )
    assert body["details"]["field"] == "url"


# --- paging while events commit out of id order (PostgreSQL) --------------------------------


def _earn_held_open(db: Database, member: str, order: str, hold_for: float) -> None:
    """Earn in a unit of work that stays open ``hold_for`` seconds after its event is written."""
    with unit_of_work(db) as uow:
        earn(uow, member, order, 1_000)  # type: ignore[arg-type]
        time.sleep(hold_for)


def test_a_page_waits_for_an_earlier_event_still_being_committed(pg_db: Database) -> None:
    make_program(pg_db)
    enrol(pg_db, "alice", "bob")
    seen = list_events(pg_db, program=PROGRAM)
    slow = threading.Thread(target=_earn_held_open, args=(pg_db, "alice", "o-slow", 0.6))
    slow.start()
    time.sleep(0.2)  # alice's event has its id, uncommitted
    earn(pg_db, "bob", "o-fast", 1_000)  # a larger id, committed first
    page = list_events(pg_db, program=PROGRAM, after=seen.next_after)
    slow.join()
    assert [e.data["member"] for e in page.items] == ["alice", "bob"]
    assert [e.id for e in page.items] == [e["id"] for e in stored_envelopes(pg_db)[-2:]]


def test_a_page_says_to_ask_again_when_a_writer_stays_open(
    pg_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_program(pg_db)
    enrol(pg_db, "alice", "bob")
    cursor = list_events(pg_db, program=PROGRAM).next_after
    monkeypatch.setattr(feed, "SETTLE_TIMEOUT", 0.1)
    slow = threading.Thread(target=_earn_held_open, args=(pg_db, "alice", "o-slow", 1.0))
    slow.start()
    time.sleep(0.2)
    earn(pg_db, "bob", "o-fast", 1_000)
    page = list_events(pg_db, program=PROGRAM, after=cursor)
    assert (page.items, page.next_after, page.has_more) == ((), cursor, True)
    slow.join()
    page = list_events(pg_db, program=PROGRAM, after=cursor)
    assert [e.data["member"] for e in page.items] == ["alice", "bob"]


def test_polling_during_concurrent_writes_sees_every_event_once_in_order(
    pg_db: Database,
) -> None:
    make_program(pg_db)
    members = [f"m{i}" for i in range(8)]
    enrol(pg_db, *members)
    errors: list[BaseException] = []

    def writer(member: str) -> None:
        rng = random.Random(member)
        try:
            for n in range(12):
                _earn_held_open(pg_db, member, f"{member}-o{n}", rng.uniform(0, 0.02))
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(m,)) for m in members]
    for t in threads:
        t.start()
    collected: list[str] = []
    cursor = None
    while True:
        done = not any(t.is_alive() for t in threads)
        page = list_events(pg_db, program=PROGRAM, after=cursor, limit=5)
        collected += [e.id for e in page.items]
        cursor = page.next_after
        if done and not page.has_more and not page.items:
            break
    assert not errors
    stored = [e["id"] for e in stored_envelopes(pg_db)]
    assert len(stored) == 8 + 8 * 12
    assert collected == stored  # every event, once, in id order


# --- what receivers get, deliveries and replays ---------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 answering ``status`` to every delivery."""

    url: str = ""
    status: int = 200
    received: list[Received] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            state.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(state.status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            del format, args

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    yield state
    server.shutdown()
    server.server_close()


def verify(secret: str, got: Received) -> Any:
    """The payload, if the signature is valid (standardwebhooks' own check)."""
    return Webhook(secret).verify(got.body, got.headers)


def _deliver_everything(db: Database) -> None:
    dispatch_events(db)
    for _ in iter_rounds(db, rounds=10, timeout=5.0):
        pass


def test_the_feed_serves_byte_for_byte_what_receivers_get(
    client: FlaskClient, shop: Database, hooks_key: dict[str, str], receiver: Receiver
) -> None:
    created = client.post("/v1/webhook-endpoints", json={"url": receiver.url}, headers=hooks_key)
    secret = created.get_json()["secret"]
    _deliver_everything(shop)
    page = client.get("/v1/events", headers=bearer(new_key(shop, "events"))).get_json()
    assert len(receiver.received) == len(page["items"]) == 4
    received = {got.headers["webhook-id"]: got for got in receiver.received}
    for item in page["items"]:
        got = received[item["id"]]  # members' events arrive in parallel
        assert verify(secret, got) == item
        assert got.body.decode() == json.dumps(item, separators=(",", ":"), ensure_ascii=False)


def test_failed_deliveries_are_listed_and_replayed_singly_or_in_bulk(
    client: FlaskClient, shop: Database, hooks_key: dict[str, str], receiver: Receiver
) -> None:
    created = client.post("/v1/webhook-endpoints", json={"url": receiver.url}, headers=hooks_key)
    endpoint = created.get_json()["endpoint"]["id"]
    receiver.status = 410  # the first answer disables the endpoint
    _deliver_everything(shop)
    failed = client.get(
        "/v1/webhook-deliveries", query_string={"status": "failed"}, headers=hooks_key
    ).get_json()
    assert len(failed) == 4 and {d["status"] for d in failed} == {"failed"}
    assert [d["id"] for d in failed] == sorted((d["id"] for d in failed), reverse=True)
    first = failed[-1]["id"]
    problem(
        client.post(f"/v1/webhook-deliveries/{first}/replay", headers=hooks_key), 409, "conflict"
    )

    client.post(f"/v1/webhook-endpoints/{endpoint}/enable", headers=hooks_key)
    receiver.status = 200
    replayed = client.post(f"/v1/webhook-deliveries/{first}/replay", headers=hooks_key)
    assert replayed.status_code == 200, replayed.get_data(True)
    assert (replayed.get_json()["status"], replayed.get_json()["attempts"]) == ("pending", 0)
    problem(
        client.post(f"/v1/webhook-deliveries/{first}/replay", headers=hooks_key), 409, "conflict"
    )
    later = client.post(
        f"/v1/webhook-endpoints/{endpoint}/replay",
        json={"since": "2099-01-01T00:00:00+00:00"},
        headers=hooks_key,
    )
    assert later.get_json() == {"replayed": 0}
    everything = client.post("/v1/webhook-deliveries/replay", json={}, headers=hooks_key)
    assert everything.get_json() == {"replayed": 3}
    _deliver_everything(shop)
    delivered = client.get(
        "/v1/webhook-deliveries",
        query_string={"endpoint": endpoint, "status": "delivered", "limit": 2},
        headers=hooks_key,
    ).get_json()
    assert len(delivered) == 2
    older = client.get(
        "/v1/webhook-deliveries",
        query_string={"status": "delivered", "before": delivered[-1]["id"]},
        headers=hooks_key,
    ).get_json()
    assert len(older) == 2 and older[0]["id"] < delivered[-1]["id"]
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 4


@pytest.mark.parametrize(
    ("path", "body", "query", "status", "code"),
    [
        ("/v1/webhook-deliveries/replay", {"since": "yesterday"}, None, 400, "invalid_input"),
        ("/v1/webhook-deliveries/replay", {"since": "2026-01-01T00:00:00"}, None, 400,
         "naive_datetime"),
        ("/v1/webhook-deliveries/999/replay", None, None, 404, "webhook_delivery_not_found"),
        ("/v1/webhook-endpoints/999/replay", {}, None, 404, "webhook_endpoint_not_found"),
        ("/v1/webhook-deliveries", None, {"status": "lost"}, 400, "invalid_input"),
        ("/v1/webhook-deliveries", None, {"endpoint": 999}, 404, "webhook_endpoint_not_found"),
        ("/v1/webhook-deliveries", None, {"limit": 501}, 400, "invalid_amount"),
    ],
)  # fmt: skip
def test_bad_delivery_requests_are_problems_and_change_nothing(
    client: FlaskClient,
    shop: Database,
    hooks_key: dict[str, str],
    path: str,
    body: dict[str, Any] | None,
    query: dict[str, Any] | None,
    status: int,
    code: str,
) -> None:
    before = row_counts(shop)
    if query is not None:
        r = client.get(path, query_string=query, headers=hooks_key)
    else:
        r = client.post(path, json=body, headers=hooks_key)
    problem(r, status, code)
    assert row_counts(shop) == before
