"""``examples/webhook_receiver.py`` as a shop runs it: a real server on loopback, real deliveries.

The receiver runs as a subprocess (Flask's server). Jifen, in this process, gets an endpoint
pointing at it, earns, pays with points and transfers; the dispatcher and the sender deliver
every event, the receiver verifies each signature and logs it once. A delivery sent again (a
replay of a delivery the receiver has already handled, as after a lost answer) is answered
200 and not handled twice; a delivery signed with another secret is refused with 400.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from loyalty import services as s
from loyalty.db import Database
from loyalty.db.tables import webhook_deliveries
from loyalty.events.delivery import deliver_due, replay_delivery
from loyalty.events.dispatch import dispatch_events
from loyalty.events.endpoints import add_endpoint
from tests.e2e.test_example_stripe_webhook import free_port
from tests.e2e.test_examples import EXAMPLES
from tests.integration.helpers import PROGRAM, earn, enrol, make_program


@pytest.fixture
def receiver(db: Database, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The example receiving for an endpoint of the program; yields (url, its event log)."""
    make_program(db, transfers_enabled=True)
    s.update_program(db, program=PROGRAM, webhooks_allow_private=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}/jifen/events"
    created = add_endpoint(db, program=PROGRAM, url=url, description="the example receiver")
    log = tmp_path / "events.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(EXAMPLES / "webhook_receiver.py"),
            "--port",
            str(port),
            "--secret",
            created.secret,
            "--seen",
            str(tmp_path / "seen.sqlite3"),
            "--log",
            str(log),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_for(url, proc)
        yield url, log
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _wait_for(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read() if proc.stdout else "receiver exited")
        try:
            urllib.request.urlopen(urllib.request.Request(url, data=b"{}"), timeout=2)
        except urllib.error.HTTPError:
            return  # it answers (400: unsigned)
        except OSError:
            time.sleep(0.2)
    raise AssertionError("the receiver did not start")


def _deliver_all(db: Database) -> None:
    for _ in range(20):  # a member's next event is due once the one before it is delivered
        dispatch_events(db)
        if not deliver_due(db).attempted:
            return
    raise AssertionError("deliveries did not settle")


def test_the_receiver_verifies_and_handles_each_event_once(
    db: Database, receiver: tuple[str, Path]
) -> None:
    _url, log = receiver
    enrol(db, "alice", "bob")
    earn(db, "alice", "o1", 123_400)
    s.transfer_points(
        db, program=PROGRAM, sender="alice", recipient="bob", points=200, transfer_id="t1"
    )
    _deliver_all(db)
    handled = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    alice = [(e["type"], e["points"], e["available"]) for e in handled if e["member"] == "alice"]
    bob = [e["type"] for e in handled if e["member"] == "bob"]
    assert alice == [  # each member's events in the order they happened
        ("member.enrolled", None, None),
        ("points.earned", 1_234, 1_234),
        ("points.transferred", 200, 1_034),
    ]
    assert bob == ["member.enrolled", "points.transferred"]

    # the same delivery again (as if Jifen never got the first answer): handled once
    with db.write() as conn:
        first = conn.execute(
            update(webhook_deliveries)
            .where(webhook_deliveries.c.id == 3)
            .values(status="failed")
            .returning(webhook_deliveries.c.id)
        ).scalar_one()
    replay_delivery(db, program=PROGRAM, delivery=first, actor="ops")
    run = deliver_due(db)
    assert (run.attempted, run.delivered) == (1, 1)
    assert len(log.read_text(encoding="utf-8").splitlines()) == 5


def test_a_delivery_signed_with_another_secret_is_refused(
    receiver: tuple[str, Path],
) -> None:
    url, log = receiver
    from loyalty.events.delivery import signed_headers

    body = json.dumps({"id": "evt_x", "type": "points.earned", "data": {}})
    headers = signed_headers("evt_x", body, ("whsec_" + "A" * 43 + "=",))
    request = urllib.request.Request(url, data=body.encode(), headers=headers)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 400
    assert not log.exists()
