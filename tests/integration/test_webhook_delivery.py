"""Signed webhook delivery against a real receiver on loopback: signatures verified with the
``standardwebhooks`` package, the retry schedule on the test clock, Retry-After, 410, the
five-day limit, timeouts, each member's order, the attempt log, replays, the destination rule
at send time and two senders at once on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import email.utils
import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from helpers import PROGRAM, earn, enrol, execute, make_program
from sqlalchemy import select
from standardwebhooks import Webhook

from loyalty import services as s
from loyalty.db import Database
from loyalty.db.tables import webhook_deliveries, webhook_endpoints
from loyalty.domain.clock import FixedClock
from loyalty.errors import Conflict, InvalidInput, WebhookDeliveryNotFound
from loyalty.events import delivery as dl
from loyalty.events import endpoints as ep
from loyalty.events.dispatch import dispatch_events
from loyalty.jobs.runs import run_job


@dataclass
class Received:
    """One request as the receiver saw it."""

    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


Reply = tuple[int, dict[str, str], str]


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1; ``answer`` decides each reply (200 by default)."""

    answer: Callable[[Received], Reply] = lambda _r: (200, {}, "ok")
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    in_flight: dict[str, int] = field(default_factory=dict)
    overlaps: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def handle(self, headers: dict[str, str], body: bytes) -> Reply:
        got = Received(headers, body)
        key = headers.get("webhook-id", "")
        with self.lock:
            self.received.append(got)
            self.in_flight[key] = self.in_flight.get(key, 0) + 1
            if self.in_flight[key] > 1:
                self.overlaps.append(key)
        try:
            if self.delay:
                time.sleep(self.delay)
            return self.answer(got)
        finally:
            with self.lock:
                self.in_flight[key] -= 1

    def ids(self) -> list[str]:
        return [r.headers["webhook-id"] for r in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, text = state.handle(headers, body)
            payload = text.encode()
            try:
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the sender gave up (a timeout test)

        def log_message(self, format: str, *args: Any) -> None:
            del format, args

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def secret(db: Database, receiver: Receiver) -> str:
    """A program that allows loopback, with one endpoint (all types) at the receiver."""
    make_program(db, webhooks_allow_private=True)
    return ep.add_endpoint(db, program=PROGRAM, url=receiver.url).secret


def endpoint_id(db: Database) -> int:
    return int(ep.list_endpoints(db, program=PROGRAM)[0].id)


def verify(secret: str, got: Received) -> dict[str, Any]:
    payload: dict[str, Any] = Webhook(secret).verify(got.body, got.headers)
    return payload


def deliveries(db: Database) -> list[Any]:
    with db.read() as conn:
        return list(
            conn.execute(select(webhook_deliveries).order_by(webhook_deliveries.c.id)).all()
        )


def send(db: Database, **options: Any) -> dl.DeliveryRun:
    dispatch_events(db)
    return dl.deliver_due(db, **options)


def drain(db: Database, rounds: int = 50, **options: Any) -> dl.DeliveryRun:
    dispatch_events(db)
    total = dl.DeliveryRun()
    for run in dl.iter_rounds(db, rounds=rounds, **options):
        total = total + run
    return total


def test_deliveries_are_signed_per_the_specification(
    db: Database, receiver: Receiver, secret: str
) -> None:
    enrol(db, "alice")
    earn(db, "alice", "o1", 10_000)
    run = drain(db)
    assert (run.attempted, run.delivered, run.retrying, run.failed) == (2, 2, 0, 0)
    types = []
    for got in receiver.received:
        payload = verify(secret, got)
        assert payload == got.event
        assert got.headers["webhook-id"] == payload["id"] and payload["id"].startswith("evt_")
        assert got.headers["content-type"] == "application/json"
        assert got.headers["user-agent"] == "Jifen-Webhooks/1"
        assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 60
        assert payload["data"]["member"] == "alice"
        types.append(payload["type"])
    assert types == ["member.enrolled", "points.earned"]
    assert [d.status for d in deliveries(db)] == ["delivered", "delivered"]
    detail = dl.delivery_detail(db, program=PROGRAM, delivery=deliveries(db)[1].id)
    assert [(a.status_code, a.error, a.response_excerpt) for a in detail.attempts] == [
        (200, None, "ok")
    ]
    assert detail.payload == receiver.received[1].event
    assert dl.deliver_due(db).attempted == 0  # nothing is sent twice


def test_a_tampered_body_does_not_verify(db: Database, receiver: Receiver, secret: str) -> None:
    enrol(db, "alice")
    drain(db)
    got = receiver.received[0]
    with pytest.raises(Exception, match="signature"):
        Webhook(secret).verify(got.body.replace(b"alice", b"mallory"), got.headers)


def test_while_rotating_both_secrets_sign(
    db: Database, receiver: Receiver, secret: str, clock: FixedClock
) -> None:
    rotated = ep.rotate_secret(db, program=PROGRAM, endpoint=endpoint_id(db), overlap_hours=1)
    enrol(db, "alice")
    drain(db)
    got = receiver.received[-1]
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    assert verify(secret, got) == verify(rotated.secret, got)
    clock.advance(dt.timedelta(hours=1))
    enrol(db, "bob")
    drain(db)
    got = receiver.received[-1]
    assert len(got.headers["webhook-signature"].split(" ")) == 1
    verify(rotated.secret, got)
    with pytest.raises(Exception, match="signature"):
        verify(secret, got)


def test_retries_follow_the_schedule_then_fail(
    db: Database, receiver: Receiver, secret: str, clock: FixedClock
) -> None:
    del secret
    receiver.answer = lambda _r: (500, {}, "boom")
    enrol(db, "alice")
    start = clock.now()
    waits = []
    for attempt in range(1, dl.MAX_ATTEMPTS + 1):
        run = send(db)
        assert run.attempted == 1, attempt
        assert dl.deliver_due(db).attempted == 0  # not due again yet
        row = deliveries(db)[0]
        assert row.attempts == attempt and row.last_status_code == 500
        if attempt < dl.MAX_ATTEMPTS:
            assert row.status == "pending" and run.retrying == 1
            waits.append(row.next_attempt_at - clock.now())
            clock.set(row.next_attempt_at)
    assert row.status == "failed" and row.next_attempt_at is None and run.failed == 1
    assert row.last_error == "HTTP 500 Internal Server Error"
    assert waits == list(dl.RETRY_DELAYS)
    assert len(receiver.received) == dl.MAX_ATTEMPTS
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
    info = ep.get_endpoint(db, program=PROGRAM, endpoint=endpoint_id(db))
    assert info.failing_since == start and info.enabled and info.failed == 1
    assert info.last_status_code == 500
    detail = dl.delivery_detail(db, program=PROGRAM, delivery=row.id)
    assert len(detail.attempts) == dl.MAX_ATTEMPTS
    assert all(a.status_code == 500 and a.latency_ms >= 0 for a in detail.attempts)


def test_a_success_ends_the_failure_streak(
    db: Database, receiver: Receiver, secret: str, clock: FixedClock
) -> None:
    del secret
    receiver.answer = lambda _r: (502, {}, "")
    enrol(db, "alice")
    send(db)
    assert ep.get_endpoint(db, program=PROGRAM, endpoint=endpoint_id(db)).failing_since
    receiver.answer = lambda _r: (204, {}, "")
    clock.advance(dt.timedelta(seconds=5))
    assert send(db).delivered == 1
    assert ep.get_endpoint(db, program=PROGRAM, endpoint=endpoint_id(db)).failing_since is None


@pytest.mark.parametrize(
    ("header", "wait"),
    [
        ("120", dt.timedelta(seconds=120)),
        ("1", dt.timedelta(seconds=5)),  # never sooner than the schedule
        ("999999", dt.timedelta(hours=24)),  # capped at a day
    ],
)
def test_retry_after_moves_the_next_attempt(
    db: Database,
    receiver: Receiver,
    secret: str,
    clock: FixedClock,
    header: str,
    wait: dt.timedelta,
) -> None:
    del secret
    receiver.answer = lambda _r: (429, {"Retry-After": header}, "slow down")
    enrol(db, "alice")
    assert send(db).retrying == 1
    assert deliveries(db)[0].next_attempt_at == clock.now() + wait


def test_retry_after_as_an_http_date(
    db: Database, receiver: Receiver, secret: str, clock: FixedClock
) -> None:
    del secret
    later = email.utils.format_datetime(
        dt.datetime.now(dt.UTC) + dt.timedelta(hours=1), usegmt=True
    )
    receiver.answer = lambda _r: (503, {"Retry-After": later}, "")
    enrol(db, "alice")
    send(db)
    wait = deliveries(db)[0].next_attempt_at - clock.now()
    assert dt.timedelta(minutes=58) < wait <= dt.timedelta(hours=1)


def test_410_disables_the_endpoint_and_fails_its_pending_deliveries(
    db: Database, receiver: Receiver, secret: str
) -> None:
    del secret
    receiver.answer = lambda _r: (410, {}, "gone")
    enrol(db, "alice")
    earn(db, "alice", "o1", 10_000)
    run = send(db)
    assert (run.attempted, run.failed, run.disabled_endpoints) == (1, 1, 1)
    info = ep.get_endpoint(db, program=PROGRAM, endpoint=endpoint_id(db))
    assert not info.enabled and info.disabled_reason is not None
    assert "410 Gone" in info.disabled_reason
    rows = deliveries(db)
    assert [r.status for r in rows] == ["failed", "failed"]
    assert rows[1].last_error.startswith("endpoint disabled: the endpoint answered 410")
    enrol(db, "bob")
    assert send(db).attempted == 0 and len(deliveries(db)) == 2  # no more deliveries made


def test_five_days_of_failures_disable_the_endpoint(
    db: Database, receiver: Receiver, secret: str, clock: FixedClock
) -> None:
    del secret
    receiver.answer = lambda _r: (500, {}, "")
    enrol(db, "alice")
    start = clock.now()
    send(db)
    clock.advance(dt.timedelta(days=4, hours=23))
    enrol(db, "bob")
    assert send(db).disabled_endpoints == 0
    clock.set(start + dt.timedelta(days=5))
    run = send(db)
    assert run.disabled_endpoints == 1
    info = ep.get_endpoint(db, program=PROGRAM, endpoint=endpoint_id(db))
    assert not info.enabled
    assert info.disabled_reason == f"failing for 5 days since {start:%Y-%m-%d %H:%M} UTC"
    assert {r.status for r in deliveries(db)} == {"failed"}


def test_a_slow_receiver_times_out_and_is_retried(
    db: Database, receiver: Receiver, secret: str, clock: FixedClock
) -> None:
    del secret
    receiver.delay = 1.5
    enrol(db, "alice")
    started = time.monotonic()
    run = send(db, timeout=0.3)
    assert time.monotonic() - started < 1.4
    assert run.retrying == 1
    row = deliveries(db)[0]
    assert row.last_status_code is None and "timed out" in row.last_error
    assert row.next_attempt_at == clock.now() + dt.timedelta(seconds=5)


def test_each_members_events_arrive_in_order_behind_a_failing_first(
    db: Database, receiver: Receiver, secret: str, clock: FixedClock
) -> None:
    del secret
    enrol(db, "alice", "bob")
    earn(db, "alice", "o1", 10_000)
    earn(db, "bob", "o2", 10_000)
    earn(db, "alice", "o3", 20_000)
    dispatch_events(db)
    first_of_alice = deliveries(db)[0]
    failing = {"on": True}

    def answer(got: Received) -> Reply:
        member_enrolled = got.event["type"] == "member.enrolled"
        if failing["on"] and member_enrolled and got.event["data"]["member"] == "alice":
            return (503, {}, "not now")
        return (200, {}, "ok")

    receiver.answer = answer
    drain(db)  # bob's two go through; alice waits behind her first
    sent = [(r.event["data"]["member"], r.event["type"]) for r in receiver.received]
    assert [x for x in sent if x[0] == "alice"] == [("alice", "member.enrolled")]
    assert [x for x in sent if x[0] == "bob"] == [
        ("bob", "member.enrolled"),
        ("bob", "points.earned"),
    ]
    failing["on"] = False
    clock.advance(dt.timedelta(seconds=5))
    drain(db)
    alice = [r.event for r in receiver.received if r.event["data"]["member"] == "alice"]
    assert [e["type"] for e in alice] == ["member.enrolled"] * 2 + ["points.earned"] * 2
    assert [e["data"]["points"] for e in alice[2:]] == [100, 200]
    assert deliveries(db)[0].id == first_of_alice.id and deliveries(db)[0].attempts == 2
    assert {r.status for r in deliveries(db)} == {"delivered"}


def test_an_event_waiting_for_dispatch_holds_back_the_members_later_ones(
    db: Database, receiver: Receiver, secret: str
) -> None:
    del secret
    enrol(db, "alice")
    earn(db, "alice", "o1", 10_000)
    dispatch_events(db)
    first = deliveries(db)[0]
    execute(db, "DELETE FROM webhook_deliveries WHERE id = :id", id=first.id)
    execute(db, "UPDATE events SET dispatched_at = NULL WHERE id = :id", id=first.event_id)
    assert dl.deliver_due(db).attempted == 0
    drain(db)
    assert [r.event["type"] for r in receiver.received] == ["member.enrolled", "points.earned"]


def test_failed_deliveries_are_replayed_singly_and_in_bulk(
    db: Database, receiver: Receiver, secret: str, clock: FixedClock
) -> None:
    del secret
    enrol(db, "alice", "bob", "carol")
    dispatch_events(db)
    endpoint = endpoint_id(db)
    ep.disable_endpoint(db, program=PROGRAM, endpoint=endpoint, reason="maintenance")
    one, *rest = deliveries(db)
    with pytest.raises(Conflict, match="enable it first"):
        dl.replay_delivery(db, program=PROGRAM, delivery=one.id)
    ep.enable_endpoint(db, program=PROGRAM, endpoint=endpoint)
    replayed = dl.replay_delivery(db, program=PROGRAM, delivery=one.id, actor="ana")
    assert (replayed.status, replayed.attempts, replayed.next_attempt_at) == (
        "pending",
        0,
        clock.now(),
    )
    with pytest.raises(Conflict, match="only failed deliveries"):
        dl.replay_delivery(db, program=PROGRAM, delivery=one.id)
    assert dl.deliver_due(db).delivered == 1
    assert dl.replay_failed(db, program=PROGRAM, since=clock.now() + dt.timedelta(1)) == 0
    assert dl.replay_failed(db, program=PROGRAM, endpoint=endpoint, actor="ana") == len(rest)
    assert dl.deliver_due(db).delivered == len(rest)
    assert {r.status for r in deliveries(db)} == {"delivered"}
    assert len(receiver.received) == 3
    actions = [a.action for a in s.list_audit(db, program=PROGRAM, action="webhook.").items]
    assert actions[:3] == ["webhook.replay_failed", "webhook.replay_failed", "webhook.replay"]
    with pytest.raises(WebhookDeliveryNotFound):
        dl.replay_delivery(db, program=PROGRAM, delivery=10_000)


def test_the_destination_is_checked_again_when_sending(
    db: Database, receiver: Receiver, secret: str
) -> None:
    del secret
    enrol(db, "alice")
    s.update_program(db, program=PROGRAM, webhooks_allow_private=False)
    assert send(db).retrying == 1
    assert receiver.received == []
    row = deliveries(db)[0]
    assert row.last_error.startswith("not sent: the host '127.0.0.1' resolves to 127.0.0.1")


def test_redirects_are_not_followed(db: Database, receiver: Receiver, secret: str) -> None:
    del secret
    receiver.answer = lambda _r: (302, {"Location": "http://127.0.0.1:1/elsewhere"}, "")
    enrol(db, "alice")
    assert send(db).retrying == 1
    assert "redirects are not followed" in deliveries(db)[0].last_error
    assert len(receiver.received) == 1


def test_the_attempt_log_keeps_the_start_of_the_response(
    db: Database, receiver: Receiver, secret: str
) -> None:
    del secret
    receiver.answer = lambda _r: (400, {}, "é" * 2000)
    enrol(db, "alice")
    send(db)
    row = deliveries(db)[0]
    [attempt] = dl.delivery_detail(db, program=PROGRAM, delivery=row.id).attempts
    assert attempt.response_excerpt == "é" * 500 and attempt.status_code == 400
    listed = dl.list_deliveries(db, program=PROGRAM, status="pending")
    assert [d.id for d in listed] == [row.id] and listed[0].member == "alice"
    assert dl.list_deliveries(db, program=PROGRAM, status="delivered") == ()
    with pytest.raises(InvalidInput):
        dl.list_deliveries(db, program=PROGRAM, status="lost")


def test_a_hand_test_is_signed_and_reported(db: Database, receiver: Receiver, secret: str) -> None:
    attempt = dl.send_test(db, program=PROGRAM, endpoint=endpoint_id(db), actor="ana")
    assert attempt.ok and attempt.manual and attempt.status_code == 200
    payload = verify(secret, receiver.received[0])
    assert payload["type"] == "webhook.test" and payload["data"]["program"] == PROGRAM
    assert deliveries(db) == []
    receiver.answer = lambda _r: (500, {}, "down")
    failed = dl.send_test(db, program=PROGRAM, endpoint=endpoint_id(db))
    assert not failed.ok and failed.error == "HTTP 500 Internal Server Error"


def test_backlog_counts_what_waits(
    db: Database, receiver: Receiver, secret: str, clock: FixedClock
) -> None:
    del secret
    receiver.answer = lambda _r: (500, {}, "")
    enrol(db, "alice", "bob")
    assert dl.backlog(db, program=PROGRAM).undispatched == 2
    dispatch_events(db)
    clock.advance(dt.timedelta(minutes=1))
    waiting = dl.backlog(db)
    assert (waiting.undispatched, waiting.pending, waiting.due, waiting.failed) == (0, 2, 2, 0)
    assert waiting.oldest_pending_seconds == 60
    dl.deliver_due(db)
    after = dl.backlog(db, program=PROGRAM)
    assert (after.pending, after.due) == (2, 0)


def test_bad_options_are_refused(db: Database, secret: str) -> None:
    del secret
    for options in ({"limit": 0}, {"workers": 0}, {"timeout": 0}, {"timeout": "5"}):
        with pytest.raises(InvalidInput):
            dl.deliver_due(db, **options)


def test_two_senders_at_once_never_send_a_delivery_twice(
    pg_db: Database, receiver: Receiver
) -> None:
    make_program(pg_db, webhooks_allow_private=True)
    secret = ep.add_endpoint(pg_db, program=PROGRAM, url=receiver.url).secret
    members = [f"m{i}" for i in range(40)]
    enrol(pg_db, *members)
    for i, member in enumerate(members):
        earn(pg_db, member, f"o{i}", 10_000)
    dispatch_events(pg_db)
    receiver.delay = 0.01
    errors: list[BaseException] = []

    def sender() -> None:
        try:
            for _ in dl.iter_rounds(pg_db, rounds=50, limit=7, workers=3):
                pass
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    ids = receiver.ids()
    assert len(ids) == len(set(ids)) == 2 * len(members)
    assert receiver.overlaps == []
    by_member: dict[str, list[str]] = {}
    for got in receiver.received:
        payload = verify(secret, got)
        by_member.setdefault(payload["data"]["member"], []).append(payload["type"])
    assert all(types == ["member.enrolled", "points.earned"] for types in by_member.values())
    with pg_db.read() as conn:
        assert conn.execute(select(webhook_endpoints.c.failing_since)).scalar() is None


def test_the_events_job_dispatches_delivers_and_records_its_run(
    db: Database, receiver: Receiver, secret: str
) -> None:
    enrol(db, "alice", "bob")
    earn(db, "alice", "o1", 10_000)
    run = run_job(db, "events", trigger="test")
    assert (run.status, run.items) == ("succeeded", 3)
    assert run.details["dispatched"] == 3 and run.details["delivered"] == 3
    assert run.batches >= 2  # alice's second event went in the round after her first
    for got in receiver.received:
        verify(secret, got)
    again = run_job(db, "events", trigger="test")
    assert (again.items, again.details["dispatched"]) == (0, 0)


def test_a_claim_left_by_a_killed_sender_comes_back_after_its_lease(
    db: Database, receiver: Receiver, secret: str, clock: FixedClock
) -> None:
    del secret
    enrol(db, "alice")
    dispatch_events(db)
    lease = dt.timedelta(seconds=dl.DEFAULT_TIMEOUT) + dl.LEASE_MARGIN
    [claimed] = dl.claim_due(db, limit=10, lease=lease)  # then the sender dies
    assert dl.deliver_due(db).attempted == 0
    clock.advance(lease - dt.timedelta(seconds=1))
    assert dl.deliver_due(db).attempted == 0
    clock.advance(dt.timedelta(seconds=1))
    assert dl.deliver_due(db).delivered == 1
    assert receiver.ids() == [claimed.webhook_id]
