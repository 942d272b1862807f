"""The examples for shops not on Python, run against a real API server on loopback.

The API is served by werkzeug in a thread (``tests/http_api/live_server.py``) over the test
database, SQLite and PostgreSQL, with the program ``shop`` and a server key.
``examples/curl_walkthrough.sh`` runs under bash with curl, twice: the first run's answers
and the database must show one earn, the hold captured and the refund gone through; the
second run must replay every write and change nothing. ``examples/storefront.js`` runs under
Node with a member token minted through the API and must print the member's balance, the
points expiring and the history; with another member's token it must fail with the API's
error code. ``examples/storefront.html`` is opened in Debian's chromium (headless, Playwright)
from another loopback origin that the program allows, and must show the same lines.
``jifen verify`` is clean at the end.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Select, func, select

from loyalty import services as svc
from loyalty.db import Database
from loyalty.db.tables import earnings, holds, reversals
from loyalty.errors import PermissionDenied
from loyalty.services.api_keys import add_origin, create_key
from tests.http_api.live_server import live_api
from tests.integration.helpers import PROGRAM, earn, enrol, make_program

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CURL_SCRIPT = EXAMPLES / "curl_walkthrough.sh"
STOREFRONT = EXAMPLES / "storefront.js"
CHROMIUM = "/usr/bin/chromium"
SCOPES = ("earn", "read", "redeem", "refund")
MEMBER = "cust-1001"
needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


@dataclass(frozen=True)
class Server:
    """The API on loopback: its base URL and a server key of ``shop``."""

    url: str
    key: str


@pytest.fixture
def server(db: Database) -> Iterator[Server]:
    make_program(db)
    key = create_key(db, program=PROGRAM, scopes=SCOPES, label="examples").secret
    with live_api(db) as url:
        yield Server(url, key)
    assert svc.verify_ledger(db).ok


def run(command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def count(db: Database, query: Select[Any]) -> int:
    with db.read() as conn:
        return int(conn.execute(query).scalar_one())


@needs_curl
def test_curl_walkthrough_earns_holds_captures_refunds(server: Server, db: Database) -> None:
    env = {"JIFEN_URL": server.url, "JIFEN_API_KEY": server.key}
    first = run(["bash", str(CURL_SCRIPT)], **env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr
    out = first.stdout
    assert "POST /v1/members -> HTTP 201" in out
    assert "POST /v1/earnings/purchase -> HTTP 201\n" in out
    assert "POST /v1/earnings/purchase -> HTTP 201 (replayed)" in out  # the retry
    assert '"points_granted": 258' in out
    assert "POST /v1/holds/WEB-1002/capture -> HTTP 200" in out
    assert '"status": "captured"' in out
    assert '"reversal_id": "RF-1001"' in out and '"status": "succeeded"' in out
    assert '"available": 8,' in out and '"lifetime_earned": 258' in out
    assert "refund RF-1001 of order WEB-1001 succeeded" in out

    balance = svc.balance(db, program=PROGRAM, member=MEMBER)
    assert (balance.available, balance.held, balance.frozen, balance.lifetime_earned) == (
        8,
        0,
        0,
        258,
    )
    assert count(db, select(func.count()).select_from(earnings)) == 1
    with db.read() as conn:
        assert conn.execute(select(holds.c.order_id, holds.c.status)).all() == [
            ("WEB-1002", "captured")
        ]
        assert conn.execute(
            select(reversals.c.external_id, reversals.c.order_id, reversals.c.status)
        ).all() == [("RF-1001", "WEB-1001", "succeeded")]

    again = run(["bash", str(CURL_SCRIPT)], **env)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr
    for step in (
        "POST /v1/earnings/purchase",
        "POST /v1/holds",
        "POST /v1/holds/WEB-1002/capture",
        "POST /v1/refunds",
    ):
        assert f"{step} -> HTTP 20" in again.stdout
        assert f"{step} -> HTTP 201\n" not in again.stdout, step
    assert again.stdout.count("(replayed)") == 5
    assert svc.balance(db, program=PROGRAM, member=MEMBER) == balance
    assert count(db, select(func.count()).select_from(earnings)) == 1


@needs_curl
def test_curl_walkthrough_stops_on_an_error(server: Server) -> None:
    done = run(["bash", str(CURL_SCRIPT)], JIFEN_URL=server.url, JIFEN_API_KEY="jfn_sk_wrong")
    assert done.returncode == 1
    assert "POST /v1/members -> HTTP 401" in done.stdout
    assert '"code": "not_authenticated"' in done.stdout
    assert "stopped: the server answered 401" in done.stderr


def member_token(server: Server, member: str) -> str:
    answer = httpx.post(
        f"{server.url}/v1/members/{member}/tokens",
        json={"ttl_seconds": 600},
        headers={"Authorization": f"Bearer {server.key}"},
    )
    assert answer.status_code == 201, answer.text
    token: str = answer.json()["token"]
    assert token.startswith("jfn_mt_")
    return token


@needs_node
def test_storefront_shows_the_balance_with_a_member_token(server: Server, db: Database) -> None:
    enrol(db, "cust-7", "cust-8")
    earn(db, "cust-7", "o-1", 30_000)
    earn(db, "cust-7", "o-2", 4_500)
    expiring = svc.balance(db, program=PROGRAM, member="cust-7", expiring_within_days=120).expiring
    assert expiring
    token = member_token(server, "cust-7")
    env = {"JIFEN_URL": server.url, "JIFEN_MEMBER": "cust-7", "JIFEN_MEMBER_TOKEN": token}

    done = run(["node", str(STOREFRONT)], **env, JIFEN_EXPIRING_WITHIN_DAYS="120")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "cust-7: 345 points available"
    for lot in expiring:
        assert f"Expiring: {lot.points} points, use them by {lot.last_day}" in lines
    assert lines.index("Recent activity:") == len(lines) - 3
    assert lines[-2].endswith("+45  purchase, order o-2")
    assert lines[-1].endswith("+300  purchase, order o-1")

    soon = run(["node", str(STOREFRONT)], **env, JIFEN_EXPIRING_WITHIN_DAYS="1")
    assert soon.returncode == 0, soon.stderr
    assert "No points expire in the next 1 day." in soon.stdout

    other = run(["node", str(STOREFRONT)], **{**env, "JIFEN_MEMBER": "cust-8"})
    assert other.returncode == 1
    assert f"Jifen answered {PermissionDenied.code}: " in other.stderr


@contextmanager
def static_site(directory: Path) -> Iterator[str]:
    """``directory`` served over HTTP on loopback (the shop's own origin); its base URL."""
    handler = functools.partial(QuietFiles, directory=str(directory))
    site = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{site.server_port}"
    finally:
        site.shutdown()
        site.server_close()
        thread.join(5)


class QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log on stderr."""


@pytest.mark.parametrize("backend", ["sqlite"])
def test_storefront_page_shows_the_points_in_a_browser(server: Server, db: Database) -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} is missing; CI=true requires it (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing: the browser test needs Debian's chromium")
    from playwright.sync_api import ConsoleMessage, expect, sync_playwright

    enrol(db, "cust-7")
    earn(db, "cust-7", "o-1", 30_000)
    token = member_token(server, "cust-7")
    with static_site(EXAMPLES) as shop, sync_playwright() as p:
        add_origin(db, program=PROGRAM, origin=shop)
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page()
        errors: list[str] = []

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                errors.append(message.text)

        page.on("console", on_console)
        page.goto(f"{shop}/storefront.html#url={server.url}&member=cust-7&token={token}")
        shown = page.locator("#points")
        expect(shown).to_contain_text("cust-7: 300 points available")
        expect(shown).to_contain_text("+300  purchase, order o-1")
        page.goto(f"{shop}/storefront.html#url={server.url}&member=cust-7&token=jfn_mt_bad")
        page.reload()
        expect(shown).to_contain_text("Your points could not be loaded (not_authenticated:")
        browser.close()
    assert not [e for e in errors if "401" not in e], errors
