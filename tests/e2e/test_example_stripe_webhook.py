"""``examples/stripe_webhook.py`` as a shop runs it: a real server on loopback, signed events.

The example is started as a subprocess (Flask's server) against a fresh database on SQLite
and on PostgreSQL. Stripe-shaped events signed with the test secret go over HTTP: a purchase
earns, its second delivery changes nothing, a bad signature gets 400, a refund takes points
back, a purchase of an unknown customer is parked. ``jifen verify`` is clean at the end.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_examples import EXAMPLES, fresh_url, jifen  # noqa: F401  (fixture)
from tests.integration import stripe_support as st


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(fresh_url: tuple[str, dict[str, str], list[str]], tmp_path: Path) -> Iterator[str]:  # noqa: F811
    url, env, _ = fresh_url
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "stripe_webhook.py"), "--port", str(port)],
        env={**env, "JIFEN_DATABASE_URL": url, "STRIPE_WEBHOOK_SECRET": st.SECRET},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(base, proc)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    verified = jifen("verify", "--database-url", url)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def _wait_for(base: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"the example stopped: {proc.stdout.read() if proc.stdout else ''}"
            )
        try:
            urllib.request.urlopen(f"{base}/balance/cust-2001", timeout=1).close()
            return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise AssertionError("the example did not start listening within 30 s")


def post(base: str, event: dict[str, Any], secret: str = st.SECRET) -> tuple[int, dict[str, Any]]:
    raw = st.body(event)
    request = urllib.request.Request(
        f"{base}/stripe/events",
        data=raw,
        headers={"Stripe-Signature": st.sign(raw, secret), "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def balance(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base}/balance/cust-2001", timeout=10) as response:
        return dict(json.loads(response.read()))


def test_the_example_applies_signed_events_over_http(server: str) -> None:
    pi = st.new_id("pi")
    purchase = st.payment_intent_succeeded(pi, 25_000, customer="cus_example")
    assert post(server, purchase) == (200, post_answer(purchase, "applied"))
    assert balance(server)["available"] == 250

    code, answer = post(server, purchase)
    assert (code, answer["status"]) == (200, "duplicate")
    code, answer = post(
        server, st.payment_intent_succeeded(st.new_id("pi"), 1, customer="x"), "whsec_no"
    )
    assert (code, answer["status"]) == (400, "rejected")

    refund = st.refund_event(
        "refund.created", pi, st.new_id("re"), 5_000, "succeeded", refund_created=st.T0 + 60
    )
    assert post(server, refund)[1]["status"] == "applied"
    assert post(server, st.charge_refunded(pi, 25_000, 5_000, created=st.T0 + 60))[0] == 200
    assert balance(server) == {"member": "cust-2001", "available": 200, "frozen": 0}

    stranger = st.payment_intent_succeeded(st.new_id("pi"), 9_900, customer="cus_unknown")
    code, answer = post(server, stranger)
    assert (code, answer["status"]) == (200, "parked")
    assert "cus_unknown" in answer["message"]


def post_answer(event: dict[str, Any], status: str) -> dict[str, Any]:
    return {
        "status": status,
        "message": "cust-2001 earned 250 points for " + event["data"]["object"]["id"],
        "event_id": event["id"],
        "type": event["type"],
    }
