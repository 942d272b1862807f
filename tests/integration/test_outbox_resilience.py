"""Outbound webhooks survive a receiver that is down for hours and a sender killed mid-flight.

A real receiver on 127.0.0.1 (``ThreadingHTTPServer`` in a thread) takes every request,
checks its signature with the ``standardwebhooks`` package from PyPI (not our code) and
records it in arrival order. Two scenarios, on SQLite and PostgreSQL:

* the receiver is down for a simulated six hours (answering 503, then with its port closed)
  while members keep earning, spending and transferring; the test clock follows the retry
  schedule: afterwards every event has arrived, with a valid signature, exactly once after
  deduplication by ``webhook-id``, each member's in the order of its writes;
* a sender process (``dispatch_events`` then ``deliver_due`` in a loop) is killed with
  SIGKILL while dispatching, and another while its requests are in flight (the receiver
  holds them); once the lease has passed a new run delivers everything: each event at least
  once, and twice only if it was in flight when the sender died (sent, its answer not
  recorded yet).
"""

from __future__ import annotations

import datetime as dt
import http.server
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers import PROGRAM, earn, enrol, hold, make_program
from sqlalchemy import func, select
from standardwebhooks import Webhook

from loyalty import services as s
from loyalty.db import Database
from loyalty.db.tables import events, members, webhook_attempts, webhook_deliveries
from loyalty.domain.clock import FixedClock
from loyalty.events.delivery import LEASE_MARGIN, RETRY_DELAYS, deliver_due
from loyalty.events.dispatch import dispatch_events
from loyalty.events.endpoints import add_endpoint

ROOT = Path(__file__).resolve().parents[2]
OUTAGE = dt.timedelta(hours=6)
TIMEOUT = 5.0  # seconds a request may take; the lease is this plus LEASE_MARGIN
MEMBERS = [f"m{n}" for n in range(6)]


# --- the receiver ---------------------------------------------------------------------------


@dataclass
class Arrival:
    """One request as the receiver got it."""

    webhook_id: str
    payload: dict[str, Any] | None  # the verified body; None when the signature failed
    answered: int  # the status it was answered with (0: held, then the sender died)


@dataclass
class Receiver:
    """A webhook receiver on loopback: ``mode`` says how it answers (``up``: 200,
    ``503``: Service Unavailable, ``hold``: keep the request open until released); it can be
    closed and opened again on the same port."""

    secret: str = ""
    mode: str = "up"
    hold_after: int | None = None  # when up: hold every request after this many accepted
    arrivals: list[Arrival] = field(default_factory=list)
    held: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0
    server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/jifen"

    def open(self) -> None:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.take(self, body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        """Stop listening: connections are refused until :meth:`open` again."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def take(self, handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        headers = {k.lower(): v for k, v in handler.headers.items()}
        try:
            payload = Webhook(self.secret).verify(body.decode("utf-8"), headers)
        except Exception:  # a bad signature: recorded as such, and refused
            payload = None
        with self.lock:
            mode = self.mode if payload is not None else "bad"
            taken = sum(a.answered == 200 for a in self.arrivals)
            if mode == "up" and self.hold_after is not None and taken >= self.hold_after:
                mode = "hold"
            status = {"up": 200, "503": 503, "bad": 400, "hold": 0}[mode]
            self.arrivals.append(Arrival(headers.get("webhook-id", ""), payload, status))
        if mode == "hold":
            self.held.set()
            self.released.wait(60)
            return  # the sender is gone by now; nobody reads an answer
        handler.send_response(status)
        handler.send_header("content-length", "2")
        handler.end_headers()
        handler.wfile.write(b"ok")

    def accepted(self) -> list[Arrival]:
        with self.lock:
            return [a for a in self.arrivals if a.answered == 200]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    got = Receiver()
    got.open()
    yield got
    got.released.set()
    got.close()


def connect(db: Database, receiver: Receiver) -> None:
    """The program (private destinations allowed: the receiver is on loopback) and its
    endpoint for every event type, before any member exists."""
    make_program(db, transfers_enabled=True, webhooks_allow_private=True)
    created = add_endpoint(db, program=PROGRAM, url=receiver.url, actor="ops")
    receiver.secret = created.secret


# --- what the database holds ----------------------------------------------------------------


def outbox_by_member(db: Database) -> dict[str, list[str]]:
    """Each member's event ids in the order of the member's writes."""
    with db.read() as conn:
        rows = conn.execute(
            select(members.c.external_id, events.c.event_id)
            .join(members, members.c.id == events.c.member_id)
            .order_by(events.c.id)
        ).all()
    by_member: dict[str, list[str]] = {}
    for member, event_id in rows:
        by_member.setdefault(member, []).append(event_id)
    return by_member


def delivery_states(db: Database) -> dict[str, int]:
    with db.read() as conn:
        rows = conn.execute(
            select(webhook_deliveries.c.status, func.count()).group_by(webhook_deliveries.c.status)
        ).all()
    return {status: int(n) for status, n in rows}


def next_due(db: Database) -> dt.datetime | None:
    """When the next pending delivery falls due after now (those due already wait behind an
    earlier delivery of their member), or ``None`` when none is pending."""
    now = db.clock.now()
    with db.read() as conn:
        pending = conn.execute(
            select(func.count(), func.min(webhook_deliveries.c.next_attempt_at)).where(
                webhook_deliveries.c.status == "pending"
            )
        ).one()
        later: dt.datetime | None = conn.execute(
            select(func.min(webhook_deliveries.c.next_attempt_at)).where(
                webhook_deliveries.c.status == "pending",
                webhook_deliveries.c.next_attempt_at > now,
            )
        ).scalar()
    if not pending[0]:
        return None
    assert later is not None, f"deliveries due at {pending[1]} were not sent at {now}"
    return later


def attempts_by_code(db: Database) -> dict[int | None, int]:
    with db.read() as conn:
        rows = conn.execute(
            select(webhook_attempts.c.status_code, func.count()).group_by(
                webhook_attempts.c.status_code
            )
        ).all()
    return {code: int(n) for code, n in rows}


def first_arrivals_by_member(arrivals: list[Arrival]) -> dict[str, list[str]]:
    """Each member's webhook ids in the order they first arrived (duplicates dropped)."""
    seen: set[str] = set()
    by_member: dict[str, list[str]] = {}
    for a in arrivals:
        if a.webhook_id in seen or a.payload is None:
            continue
        seen.add(a.webhook_id)
        by_member.setdefault(a.payload["data"]["member"], []).append(a.webhook_id)
    return by_member


def assert_signed_and_matching(receiver: Receiver) -> None:
    """Every request verified, and its body is the event it names."""
    assert all(a.payload is not None for a in receiver.arrivals), "a signature did not verify"
    for a in receiver.arrivals:
        assert a.payload is not None and a.payload["id"] == a.webhook_id


# --- a receiver down for six hours ----------------------------------------------------------


def writes_at(hour: int) -> Callable[[Database], None]:
    """Some of every member's writes, at an hour of the outage."""

    def write(db: Database) -> None:
        for n, member in enumerate(MEMBERS):
            earn(db, member, f"o-{hour}-{member}", 10_000 + 100 * n)
            if hour % 2:
                hold(db, member, f"h-{hour}-{member}", 20)
                s.capture_hold(db, program=PROGRAM, order_id=f"h-{hour}-{member}")
        s.transfer_points(
            db,
            program=PROGRAM,
            sender=MEMBERS[hour % len(MEMBERS)],
            recipient=MEMBERS[(hour + 1) % len(MEMBERS)],
            points=7,
            transfer_id=f"t-{hour}",
        )

    return write


def test_a_receiver_down_for_six_hours_gets_every_event_once_in_order(
    db: Database, clock: FixedClock, receiver: Receiver
) -> None:
    connect(db, receiver)
    start = clock.now()
    receiver.mode = "503"
    enrol(db, *MEMBERS)
    writes = {start + dt.timedelta(hours=h, minutes=7): writes_at(h) for h in range(6)}

    def outage(now: dt.datetime) -> None:
        """503 for the first hour (attempts at 0, 5 s, 5 min and 35 min), then the port
        closed (the attempt at 2 h 35 min), then up again (the one at 7 h 35 min)."""
        if now >= start + OUTAGE:
            if receiver.server is None:
                receiver.open()
            receiver.mode = "up"
        elif now >= start + dt.timedelta(hours=1) and receiver.server is not None:
            receiver.close()

    rounds = 0
    while True:
        outage(clock.now())
        dispatch_events(db)
        while deliver_due(db, limit=50, timeout=TIMEOUT).attempted:
            rounds += 1
        due = next_due(db)
        upcoming = [at for at in writes if at > clock.now()]
        if due is None and not upcoming:
            break
        clock.set(max(clock.now(), min([*upcoming, *([due] if due else [])])))
        for at in [at for at in writes if at <= clock.now()]:
            writes.pop(at)(db)

    assert clock.now() - start > OUTAGE  # the schedule reached past the outage
    assert delivery_states(db) == {"delivered": sum(map(len, outbox_by_member(db).values()))}
    codes = attempts_by_code(db)
    assert codes[503] > 0 and codes[None] > 0  # refused while down, then unreachable
    assert codes[200] == sum(map(len, outbox_by_member(db).values()))
    assert_signed_and_matching(receiver)
    accepted = [a.webhook_id for a in receiver.accepted()]
    assert len(accepted) == len(set(accepted)), "an event was accepted twice"
    assert first_arrivals_by_member(receiver.accepted()) == outbox_by_member(db)
    assert s.verify_ledger(db).ok


def test_the_retry_schedule_is_the_specifications(
    db: Database, clock: FixedClock, receiver: Receiver
) -> None:
    connect(db, receiver)
    receiver.mode = "503"
    enrol(db, "m0")
    dispatch_events(db)
    start = clock.now()
    tried_at = []
    while True:
        if deliver_due(db, timeout=TIMEOUT).attempted:
            tried_at.append(clock.now() - start)
        due = next_due(db)
        if due is None:
            break
        clock.set(due)
    waits = [b - a for a, b in itertools.pairwise(tried_at)]
    assert waits == list(RETRY_DELAYS)  # 8 attempts in all, then failed
    assert delivery_states(db) == {"failed": 1}
    assert len(receiver.arrivals) == 8 and {a.answered for a in receiver.arrivals} == {503}


# --- a sender killed mid-flight ------------------------------------------------------------

SENDER = """
import sys, time
from loyalty.db import Database
from loyalty.events.delivery import deliver_due
from loyalty.events.dispatch import dispatch_events

db = Database.from_url(sys.argv[1])
pause = float(sys.argv[2])

def progress(done):
    print(f"dispatched {done.events}", flush=True)
    time.sleep(pause)

dispatch_events(db, batch_size=1, on_batch=progress)
print("delivering", flush=True)
while deliver_due(db, limit=50, workers=4, timeout=float(sys.argv[3])).attempted:
    print("round", flush=True)
print("done", flush=True)
"""


def start_sender(url: str, pause: float) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", SENDER, url, str(pause), str(TIMEOUT)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill_when(sender: subprocess.Popen[str], ready: Callable[[str], bool]) -> list[str]:
    """Read the sender's lines until ``ready`` says so, then SIGKILL it; the lines read."""
    assert sender.stdout is not None
    lines = []
    for line in sender.stdout:
        lines.append(line.strip())
        if ready(line.strip()):
            break
    else:
        raise AssertionError(f"the sender ended before it was killed: {lines}")
    os.kill(sender.pid, signal.SIGKILL)
    assert sender.wait(10) == -signal.SIGKILL
    return lines


def dispatched_count(db: Database) -> tuple[int, int]:
    """Events dispatched, and deliveries made."""
    with db.read() as conn:
        done = conn.execute(
            select(func.count()).where(events.c.dispatched_at.is_not(None))
        ).scalar_one()
        made = conn.execute(select(func.count()).select_from(webhook_deliveries)).scalar_one()
    return int(done), int(made)


@pytest.mark.slow
def test_a_sender_killed_mid_dispatch_and_mid_delivery_loses_nothing(
    db: Database, clock: FixedClock, receiver: Receiver
) -> None:
    clock.set(dt.datetime.now(dt.UTC))  # the sender process runs on the wall clock
    connect(db, receiver)
    enrol(db, *MEMBERS)
    for member in MEMBERS:
        earn(db, member, f"o-{member}", 10_000)
        s.adjust_points(
            db, program=PROGRAM, member=member, points=5, reason="gift", adjustment_id=member
        )
    total = sum(map(len, outbox_by_member(db).values()))
    url = db.engine.url.render_as_string(hide_password=False)

    # Killed while dispatching, a batch of one event at a time: what committed stays, once.
    kill_when(start_sender(url, 0.05), lambda line: line == "dispatched 5")
    done, made = dispatched_count(db)
    assert 5 <= done < total and made == done  # one endpoint: a delivery per event

    # Killed with requests in flight: the receiver answers the first few, then holds them.
    receiver.hold_after = 3
    sender = start_sender(url, 0.0)
    assert receiver.held.wait(60), "no request was held"
    time.sleep(1.0)  # the other workers' requests arrive and are held too
    os.kill(sender.pid, signal.SIGKILL)
    assert sender.wait(10) == -signal.SIGKILL
    # In flight: sent by the dead sender and not recorded as delivered (held by the receiver,
    # or answered while the sender waited for the rest of its batch).
    held = {a.webhook_id for a in receiver.arrivals if a.answered == 0}
    in_flight = {a.webhook_id for a in receiver.arrivals} - delivered_ids(db)
    assert held and held <= in_flight and dispatched_count(db) == (total, total)
    receiver.hold_after = None
    receiver.released.set()
    mark = len(receiver.arrivals)

    # Before the lease ends, the requests that were in flight are not sent again.
    clock.set(dt.datetime.now(dt.UTC))
    deliver_all(db)
    assert not in_flight & {a.webhook_id for a in receiver.arrivals[mark:]}
    assert delivery_states(db)["pending"] >= len(in_flight)

    # After it, everything is delivered; duplicates are only the ones in flight at the kill.
    clock.set(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=TIMEOUT) + LEASE_MARGIN)
    deliver_all(db)
    assert delivery_states(db) == {"delivered": total}
    assert_signed_and_matching(receiver)
    seen: dict[str, int] = {}
    for a in receiver.arrivals:
        seen[a.webhook_id] = seen.get(a.webhook_id, 0) + 1
    assert set(seen) == {e for ids in outbox_by_member(db).values() for e in ids}
    assert {w for w, n in seen.items() if n > 1} == in_flight
    accepted = [a.webhook_id for a in receiver.accepted()]
    assert len(set(accepted)) == total
    assert {w for w in accepted if accepted.count(w) > 1} <= in_flight
    assert first_arrivals_by_member(receiver.arrivals) == outbox_by_member(db)
    assert attempts_by_code(db) == {200: total}  # one recorded success each, nothing else
    assert s.verify_ledger(db).ok


def delivered_ids(db: Database) -> set[str]:
    """The webhook ids of the deliveries recorded as delivered."""
    with db.read() as conn:
        return set(
            conn.execute(
                select(events.c.event_id)
                .join(webhook_deliveries, webhook_deliveries.c.event_id == events.c.id)
                .where(webhook_deliveries.c.status == "delivered")
            ).scalars()
        )


def deliver_all(db: Database) -> None:
    """Dispatch, then deliver until nothing due is left at the clock's time."""
    dispatch_events(db)
    while deliver_due(db, limit=50, timeout=TIMEOUT).attempted:
        pass
