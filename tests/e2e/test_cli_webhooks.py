"""``jifen webhooks`` and ``jifen events`` as an operator runs them, in process, against a
SQLite file and a real receiver on loopback: an endpoint added with its secret printed once,
a signed test, events dispatched and delivered (signatures verified with the
``standardwebhooks`` package), a failing receiver, disabling, enabling and replaying, a
rotation, and errors that say what to do next."""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from standardwebhooks import Webhook

from loyalty import migrate
from loyalty import services as svc
from loyalty.cli import main, render
from loyalty.db import Database


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 answering ``status`` to every POST."""

    status: int = 200
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            state.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(state.status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            del format, args

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def wide_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render.console, "_width", 250)


@pytest.fixture
def shop(tmp_path: Path) -> str:
    """A program that allows loopback endpoints (alice and bob are members), and one that
    does not."""
    url = f"sqlite:///{tmp_path / 'jifen.db'}"
    migrate.upgrade(url)
    db = Database.from_url(url)
    try:
        svc.create_program(db, code="shop", name="Shop", currency="CNY", rules={})
        svc.update_program(db, program="shop", webhooks_allow_private=True)
        svc.create_program(db, code="strict", name="Strict", currency="CNY", rules={})
        for member in ("alice", "bob"):
            svc.enrol_member(db, program="shop", external_id=member)
    finally:
        db.dispose()
    return url


def jifen(url: str, *args: str) -> Result:
    return CliRunner().invoke(main, [*args, "--database-url", url], prog_name="jifen")


def assert_one_line_error(result: Result, *expected: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for part in expected:
        assert part in lines[0], lines[0]


def added_secret(result: Result) -> str:
    assert result.exit_code == 0, result.output
    found = re.search(r"secret: (whsec_\S+)", result.stdout)
    assert found is not None, result.stdout
    assert "it is not shown again" in result.stderr
    return found.group(1)


def table_rows(output: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in output.splitlines()
        if line.startswith("│")
    ]


def test_add_test_run_and_list(shop: str, receiver: Receiver) -> None:
    added = jifen(
        shop, "webhooks", "add", "--program", "shop", receiver.url, "--description", "CRM"
    )
    secret = added_secret(added)
    assert f"added endpoint 1 of shop: {receiver.url} (*)" in added.stdout

    tested = jifen(shop, "webhooks", "test", "--program", "shop", "1")
    assert tested.exit_code == 0, tested.output
    assert "endpoint 1 answered 200" in tested.stdout
    headers, body = receiver.received[0]
    assert Webhook(secret).verify(body, headers)["type"] == "webhook.test"

    ran = jifen(shop, "events", "run")
    assert ran.exit_code == 0, ran.output
    assert "dispatched 2 events; 2 sent: 2 delivered, 0 to retry, 0 failed" in ran.stdout
    assert "round 1:" in ran.stderr
    events = [Webhook(secret).verify(b, h) for h, b in receiver.received[1:]]
    assert sorted(e["data"]["member"] for e in events) == ["alice", "bob"]

    listed = table_rows(jifen(shop, "webhooks", "list", "--program", "shop").stdout)
    assert [r[:7] for r in listed] == [["1", receiver.url, "*", "enabled", "0", "0", "2"]]
    shown = jifen(shop, "webhooks", "show", "--program", "shop", "1")
    assert shown.exit_code == 0, shown.output
    assert f"secret: whsec_…{secret[-4:]}" in shown.stdout and "description: CRM" in shown.stdout
    delivered = jifen(shop, "webhooks", "deliveries", "--program", "shop", "--status", "delivered")
    assert [r[5] for r in table_rows(delivered.stdout)] == ["delivered", "delivered"]
    one = jifen(shop, "webhooks", "deliveries", "--program", "shop", "--id", "1")
    assert "delivered after 1 attempt(s)" in one.stdout and "200" in one.stdout


def test_a_failing_receiver_disable_enable_and_replay(shop: str, receiver: Receiver) -> None:
    secret = added_secret(jifen(shop, "webhooks", "add", "--program", "shop", receiver.url))
    receiver.status = 500
    sent = jifen(shop, "events", "run", "--max-rounds", "1")
    assert "2 sent: 0 delivered, 2 to retry" in sent.stdout, sent.output
    failed_test = jifen(shop, "webhooks", "test", "--program", "shop", "1")
    assert_one_line_error(failed_test, "did not accept the test", "HTTP 500")

    off = jifen(shop, "webhooks", "disable", "--program", "shop", "1", "--reason", "moving")
    assert off.exit_code == 0, off.output
    assert "2 failed deliveries can be replayed" in off.stdout
    on = jifen(shop, "webhooks", "enable", "--program", "shop", "1")
    assert "replay its 2 failed deliveries" in on.stdout
    receiver.status = 200
    replay = jifen(shop, "webhooks", "replay", "--program", "shop", "--failed", "--endpoint", "1")
    assert "2 failed deliveries are due again" in replay.stdout, replay.output
    delivered = jifen(shop, "events", "deliver")
    assert "2 sent: 2 delivered" in delivered.stdout, delivered.output
    for headers, body in receiver.received[-2:]:
        Webhook(secret).verify(body, headers)

    usage = jifen(shop, "webhooks", "replay", "--program", "shop")
    assert usage.exit_code == 2 and "give a DELIVERY id or --failed" in usage.output
    not_failed = jifen(shop, "webhooks", "replay", "--program", "shop", "1")
    assert_one_line_error(not_failed, "delivery 1 is delivered", "only failed")


def test_rotation_prints_the_new_secret_and_both_sign(shop: str, receiver: Receiver) -> None:
    old = added_secret(jifen(shop, "webhooks", "add", "--program", "shop", receiver.url))
    rotated = jifen(shop, "webhooks", "rotate", "--program", "shop", "1", "--overlap-hours", "2")
    new = added_secret(rotated)
    assert new != old and "the previous one signs too until" in rotated.stdout
    jifen(shop, "events", "run")
    for headers, body in receiver.received:
        assert len(headers["webhook-signature"].split()) == 2
        Webhook(old).verify(body, headers)
        Webhook(new).verify(body, headers)


def test_errors_say_what_to_do_next(shop: str, receiver: Receiver) -> None:
    assert_one_line_error(
        jifen(shop, "webhooks", "add", "--program", "strict", receiver.url),
        "127.0.0.1",
        "webhooks_allow_private",
    )
    assert_one_line_error(
        jifen(shop, "webhooks", "add", "--program", "shop", receiver.url, "--type", "nope"),
        "unknown event types",
    )
    assert_one_line_error(
        jifen(shop, "webhooks", "show", "--program", "shop", "7"),
        "no webhook endpoint 7",
        "jifen webhooks list",
    )
    assert_one_line_error(
        jifen(shop, "webhooks", "list", "--program", "nope"), "no program has the code 'nope'"
    )
    empty = jifen(shop, "webhooks", "list", "--program", "strict")
    assert "jifen webhooks add --program strict URL" in empty.stdout
    types = CliRunner().invoke(main, ["webhooks", "types"], prog_name="jifen")
    assert "points.expiring" in types.stdout
