"""Outbound webhooks in the console: every role reads the endpoints and the outbound events
(viewers without secrets), only admin adds, rotates, disables, enables, tests and replays
(others get 403 and nothing is written); CSRF guards every form; bad input is shown on the
form with nothing written; the secret is shown once; deliveries and attempts read in local
time with the exact body; replays (one, or all failed after a confirmation) go through the
services and reach a real receiver on 127.0.0.1; the member page lists the member's events."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from standardwebhooks import Webhook

from loyalty import services as s
from loyalty.db import Database
from loyalty.db.tables import webhook_endpoints
from loyalty.domain.clock import FixedClock
from loyalty.events.delivery import deliver_due, list_deliveries
from loyalty.events.dispatch import dispatch_events
from loyalty.events.endpoints import EndpointCreated, EndpointInfo, add_endpoint, list_endpoints
from tests.integration.helpers import PROGRAM, earn, local, row_counts
from tests.integration.test_admin_support import build_app, login, post

ROLES = ("viewer", "marketing", "operations", "admin")
BASE = "/admin/webhooks_out"


class Receiver:
    """A webhook receiver on 127.0.0.1: records every request and answers ``status``."""

    def __init__(self) -> None:
        self.status = 200
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.append((dict(self.headers.items()), body))
                self.send_response(receiver.status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if receiver.status < 300 else b"receiver says no")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/jifen"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def app(db: Database, clock: FixedClock) -> Flask:
    clock.set(local(2026, 11, 27, 14, 2))
    app = build_app(db)
    s.update_program(db, program=PROGRAM, webhooks_allow_private=True)
    return app


def _signed_in(app: Flask, role: str) -> tuple[FlaskClient, str]:
    client = app.test_client()
    return client, login(client, role)


def _text(client: FlaskClient, path: str, status: int = 200) -> str:
    response = client.get(path)
    assert response.status_code == status, (path, response.status_code)
    return html.unescape(response.get_data(as_text=True))


def _plain(page: str) -> str:
    """A page's text without tags, spaces collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


def _event_rows(page: str) -> str:
    """The text of the outbound events table's rows."""
    return _plain(page).split("when event member points dispatched", 1)[1]


def _secret(page: str) -> str:
    found = re.search(r'value="(whsec_[^"]+)"', page)
    assert found, "the page shows the new secret"
    return found.group(1)


def _add(client: FlaskClient, token: str, url: str, *types: str, **extra: Any) -> Any:
    return post(
        client,
        f"{BASE}/add",
        token,
        url=url,
        event_types=list(types or ("*",)),
        description=extra.pop("description", "CRM sync"),
        **extra,
    )


def _endpoint_secret(db: Database, endpoint: int) -> str:
    with db.read() as conn:
        secret: str = conn.execute(
            select(webhook_endpoints.c.secret).where(webhook_endpoints.c.id == endpoint)
        ).scalar_one()
    return secret


# --- who may do what -------------------------------------------------------------------------


def test_every_role_reads_the_webhook_pages_and_only_admin_sees_the_form(
    app: Flask, db: Database, receiver: Receiver
) -> None:
    added = s_add(db, receiver.url)
    earn(db, "alice", "o-1", 12_000)
    for role in ROLES:
        client, _ = _signed_in(app, role)
        assert f'href="{BASE}/"' in _text(client, "/admin/")
        page = _text(client, f"{BASE}/")
        assert receiver.url in page
        assert "Enabled" in _plain(page)
        assert ('data-testid="endpoint-form"' in page) == (role == "admin")
        assert (f"…{added.endpoint.secret_hint}" in page) == (role == "admin")
        assert added.secret not in page
        events = _plain(_text(client, f"{BASE}/events"))
        assert "Points earned" in events and "alice" in events


def test_only_admin_may_change_endpoints_or_replay(
    app: Flask, db: Database, receiver: Receiver
) -> None:
    endpoint = s_add(db, receiver.url).endpoint.id
    before = row_counts(db)
    for role in ("viewer", "marketing", "operations"):
        client, token = _signed_in(app, role)
        for path, data in (
            ("add", {"url": receiver.url, "event_types": ["*"]}),
            ("rotate", {"endpoint": endpoint}),
            ("disable", {"endpoint": endpoint, "reason": "maintenance"}),
            ("enable", {"endpoint": endpoint}),
            ("test", {"endpoint": endpoint}),
            ("replay", {"delivery": 1}),
            ("replay-failed", {"endpoint": endpoint, "confirm": "yes"}),
        ):
            response = post(client, f"{BASE}/{path}", token, **data)
            assert response.status_code == 403, (role, path, response.status_code)
    assert row_counts(db) == before
    assert receiver.received == []


def test_a_form_without_its_csrf_token_is_refused(app: Flask, db: Database) -> None:
    client, _ = _signed_in(app, "admin")
    before = row_counts(db)
    response = client.post(f"{BASE}/add", data={"url": "http://127.0.0.1:9/x", "event_types": "*"})
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    assert row_counts(db) == before


# --- adding, rotating, disabling -------------------------------------------------------------


def test_admin_adds_an_endpoint_and_sees_its_secret_once(app: Flask, db: Database) -> None:
    client, token = _signed_in(app, "admin")
    response = _add(client, token, "http://127.0.0.1:9/hooks", "points.earned", "points.expiring")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    page = html.unescape(response.get_data(as_text=True))
    secret = _secret(page)
    assert secret.startswith("whsec_")
    assert "shown only this once" in page
    assert "Points earned" in page and "Expiry reminder" in page
    (info,) = s_list(db)
    assert _endpoint_secret(db, info.id) == secret
    assert info.event_types == ("points.earned", "points.expiring")
    assert info.description == "CRM sync"
    listing = _text(client, f"{BASE}/")
    assert secret not in listing and f"…{secret[-4:]}" in listing
    audit = s.list_audit(db, action="webhook.").items
    assert [a.action for a in audit] == ["webhook.add"] and audit[0].actor == "admin"
    assert secret not in json.dumps([a.after for a in audit], default=str)


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"url": "ftp://127.0.0.1/x"}, "url", "url must start with https://"),
        ({"url": "http://user:pw@127.0.0.1/x"}, "url", "user name or password"),
        ({"url": ""}, "url", "url"),
        ({"event_types": []}, "event_types", "choose at least one event type"),
        ({"event_types": ["points.nonsense"]}, "event_types", "event_types"),
        ({"description": "x" * 501}, "description", "description"),
        ({"url": "http://no-such-host.invalid/x"}, "url", "does not resolve"),
    ],
)
def test_bad_input_is_shown_on_the_form_and_writes_nothing(
    app: Flask, db: Database, fields: dict[str, Any], field: str, words: str
) -> None:
    client, token = _signed_in(app, "admin")
    before = row_counts(db)
    data = {"url": "http://127.0.0.1:9/hooks", "event_types": ["*"], "description": "CRM"}
    data.update(fields)
    response = post(client, f"{BASE}/add", token, **data)
    assert response.status_code == 400
    page = html.unescape(response.get_data(as_text=True))
    problem = re.search(r'data-testid="form-problem">([^<]+)<', page)
    assert problem and words in problem.group(1), page[:2000]
    marked = "jifen-invalid" if field == "event_types" else f'is-invalid" id="{field}"'
    assert marked in page
    if fields.get("url"):
        assert f'value="{fields["url"]}"' in page  # what was typed stays in the form
    assert row_counts(db) == before


def test_a_private_address_is_refused_unless_the_program_allows_it(
    app: Flask, db: Database
) -> None:
    s.update_program(db, program=PROGRAM, webhooks_allow_private=False)
    client, token = _signed_in(app, "admin")
    before = row_counts(db)
    response = _add(client, token, "http://127.0.0.1:9/hooks")
    assert response.status_code == 400
    assert "loopback" in html.unescape(response.get_data(as_text=True))
    assert row_counts(db) == before


def test_rotating_shows_the_new_secret_once_and_the_overlap(
    app: Flask, db: Database, receiver: Receiver
) -> None:
    created = s_add(db, receiver.url)
    client, token = _signed_in(app, "admin")
    response = post(
        client, f"{BASE}/rotate", token, endpoint=created.endpoint.id, overlap_hours="24"
    )
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    page = _plain(html.unescape(response.get_data(as_text=True)))
    secret = _secret(html.unescape(response.get_data(as_text=True)))
    assert secret != created.secret and _endpoint_secret(db, created.endpoint.id) == secret
    assert "still signs beside the new one until Nov 28, 2026, 14:02" in page
    bad = post(client, f"{BASE}/rotate", token, endpoint=created.endpoint.id, overlap_hours="5")
    assert bad.status_code == 302
    assert "overlap_hours" in _plain(_text(client, f"{BASE}/"))
    assert _endpoint_secret(db, created.endpoint.id) == secret


def test_disable_needs_a_reason_and_reads_in_local_time_then_enable(
    app: Flask, db: Database, clock: FixedClock, receiver: Receiver
) -> None:
    endpoint = s_add(db, receiver.url).endpoint.id
    client, token = _signed_in(app, "admin")
    assert post(client, f"{BASE}/disable", token, endpoint=endpoint, reason=" ").status_code == 302
    assert "reason" in _plain(_text(client, f"{BASE}/"))
    assert s_list(db)[0].enabled
    post(client, f"{BASE}/disable", token, endpoint=endpoint, reason="receiver moved")
    page = _plain(_text(client, f"{BASE}/"))
    assert "Disabled: receiver moved (since 2026-11-27 14:02 CST)" in page
    assert not s_list(db)[0].enabled
    post(client, f"{BASE}/enable", token, endpoint=endpoint)
    assert s_list(db)[0].enabled
    post(client, f"{BASE}/disable", token, endpoint=endpoint, reason="down 2026-13-45 10:00 UTC")
    page = _plain(_text(client, f"{BASE}/"))
    assert "Disabled: down 2026-13-45 10:00 UTC (since 2026-11-27 14:02 CST)" in page
    post(client, f"{BASE}/enable", token, endpoint=endpoint)
    assert "Enabled" in _plain(_text(client, f"{BASE}/"))
    unknown = post(client, f"{BASE}/enable", token, endpoint=9999)
    assert unknown.status_code == 302
    assert "no webhook endpoint 9999" in _plain(_text(client, f"{BASE}/"))


# --- outbound events -------------------------------------------------------------------------


def test_events_list_filters_and_shows_the_body(app: Flask, db: Database) -> None:
    earn(db, "alice", "o-1", 12_000)
    earn(db, "bob", "o-2", 300_000)
    client, _ = _signed_in(app, "viewer")
    page = _plain(_text(client, f"{BASE}/events"))
    assert "2026-11-27 14:02" in page
    assert "Points earned" in page and "Member enrolled" in page
    only_bob = _event_rows(_text(client, f"{BASE}/events?type=points.earned&member=bob"))
    assert "bob 3,000" in only_bob and "alice" not in only_bob and "Member enrolled" not in only_bob
    assert "No events match the filter" in _plain(_text(client, f"{BASE}/events?member=nobody"))
    assert "type must be one of" in _text(client, f"{BASE}/events?type=nope", status=400)
    found = re.search(r'href="[^"]*/event\?id=(evt_[0-9a-f]{32})"', _text(client, f"{BASE}/events"))
    assert found
    detail = _text(client, f"{BASE}/event?id={found.group(1)}")
    raw = re.search(r'data-testid="event-raw">([^<]+)<', detail)
    assert raw is not None
    body = json.loads(raw.group(1))
    assert body["id"] == found.group(1) and body["type"] == "points.earned"
    assert body["data"]["member"] == "bob" and body["data"]["points"] == 3_000
    assert "Not dispatched yet" in _plain(detail)
    _text(client, f"{BASE}/event?id=evt_{'0' * 32}", status=404)


def test_events_page_older_and_newer(app: Flask, db: Database) -> None:
    for n in range(60):
        earn(db, "alice", f"o-{n}", 100 + n)
    client, _ = _signed_in(app, "viewer")
    first = _text(client, f"{BASE}/events?type=points.earned")
    older = re.search(r'href="([^"]*before=\d+[^"]*)">Older', first)
    assert older
    second = _plain(_text(client, html.unescape(older.group(1))))
    assert "Newest" in second and "Older" not in second
    assert _event_rows(second).count("Points earned") == 10


def test_the_member_page_lists_the_members_outbound_events(app: Flask, db: Database) -> None:
    earn(db, "alice", "o-1", 1_200_000)
    s.adjust_points(
        db, program=PROGRAM, member="alice", points=-500, reason="goodwill fix", adjustment_id="a1"
    )
    client, _ = _signed_in(app, "viewer")
    page = _text(client, "/admin/members/member?id=alice")
    panel = _plain(page.split('data-testid="member-outbound"', 1)[1].split("</table>", 1)[0])
    assert "Manual adjustment" in panel and "Points earned" in panel and "Member enrolled" in panel
    assert "12,000" in panel and "500" in panel
    assert panel.index("Manual adjustment") < panel.index("Points earned")
    assert f"{BASE}/events?member=alice" in page


# --- deliveries, tests and replays ----------------------------------------------------------


def test_send_test_reports_status_and_latency(app: Flask, db: Database, receiver: Receiver) -> None:
    created = s_add(db, receiver.url)
    client, token = _signed_in(app, "admin")
    response = post(client, f"{BASE}/test", token, endpoint=created.endpoint.id)
    assert response.status_code == 302
    page = _plain(_text(client, f"{BASE}/"))
    assert re.search(r"Test event delivered: the endpoint answered HTTP 200 in \d+ ms", page)
    headers, body = receiver.received[-1]
    sent = Webhook(created.secret).verify(body, headers)
    assert sent["type"] == "webhook.test"
    receiver.status = 500
    post(client, f"{BASE}/test", token, endpoint=created.endpoint.id, back="endpoint")
    page = _plain(_text(client, f"{BASE}/endpoint?id={created.endpoint.id}"))
    assert "Test event not delivered: the endpoint answered HTTP 500" in page


def test_deliveries_attempts_and_replays(
    app: Flask, db: Database, clock: FixedClock, receiver: Receiver
) -> None:
    created = s_add(db, receiver.url, "points.earned")
    endpoint = created.endpoint.id
    receiver.status = 503
    earn(db, "alice", "o-1", 12_000)
    dispatch_events(db)
    deliver_due(db, timeout=5)
    client, token = _signed_in(app, "viewer")
    clock.advance(dt.timedelta(minutes=12))
    backlog = _plain(_text(client, f"{BASE}/"))
    assert "deliveries pending 1 (1 due, the oldest for 12 min) · failed, to replay 0" in backlog
    listing = _plain(_text(client, f"{BASE}/endpoint?id={endpoint}"))
    assert "Points earned" in listing and "alice" in listing
    assert "pending" in listing and "HTTP 503" in listing
    assert "2026-11-27 14:02" in listing  # the next attempt, 5 s after the first
    (row,) = list_deliveries(db, program=PROGRAM, endpoint=endpoint)
    detail = _text(client, f"{BASE}/delivery?id={row.id}")
    assert "HTTP 503" in detail and "receiver says no" in detail
    raw = re.search(r'data-testid="delivery-raw">([^<]+)<', detail)
    assert raw is not None
    body = receiver.received[-1][1]
    assert raw.group(1).encode("utf-8") == body  # the exact bytes sent
    assert 'data-testid="replay-form"' not in detail  # a viewer, and not failed yet
    for _ in range(7):  # every attempt fails: the delivery fails for good
        clock.advance(dt.timedelta(hours=11))
        deliver_due(db, timeout=5)
    assert list_deliveries(db, program=PROGRAM, endpoint=endpoint)[0].status == "failed"
    assert "failed" in _plain(_text(client, f"{BASE}/endpoint?id={endpoint}&status=failed"))
    assert "No deliveries pending" in _plain(
        _text(client, f"{BASE}/endpoint?id={endpoint}&status=pending")
    )

    admin, token = _signed_in(app, "admin")
    assert 'data-testid="replay-form"' in _text(admin, f"{BASE}/delivery?id={row.id}")
    receiver.status = 200
    replayed = post(admin, f"{BASE}/replay", token, delivery=row.id)
    assert replayed.status_code == 302
    assert "will be sent again" in _plain(_text(admin, replayed.headers["Location"]))
    again = post(admin, f"{BASE}/replay", token, delivery=row.id)
    assert "only failed deliveries are replayed" in _plain(_text(admin, again.headers["Location"]))
    deliver_due(db, timeout=5)
    page = _plain(_text(admin, f"{BASE}/delivery?id={row.id}"))
    assert "delivered" in page and "HTTP 200" in page
    assert Webhook(created.secret).verify(receiver.received[-1][1], receiver.received[-1][0])


def test_replay_all_failed_asks_first_then_replays_since_a_local_date(
    app: Flask, db: Database, clock: FixedClock, receiver: Receiver
) -> None:
    endpoint = s_add(db, receiver.url, "points.earned").endpoint.id
    receiver.status = 410  # gone: the endpoint is disabled and its deliveries fail
    earn(db, "alice", "o-1", 12_000)
    earn(db, "bob", "o-2", 300_000)
    dispatch_events(db)
    deliver_due(db, timeout=5)
    client, token = _signed_in(app, "admin")
    state = _plain(_text(client, f"{BASE}/endpoint?id={endpoint}"))
    assert "Disabled: the endpoint answered 410 Gone on 2026-11-27 14:02 CST" in state
    backlog = _plain(_text(client, f"{BASE}/"))
    assert (
        "Waiting now: events to dispatch 0 · deliveries pending 0 (0 due) · "
        "failed, to replay 2" in backlog
    )
    assert "2 failed" in state
    receiver.status = 200
    post(client, f"{BASE}/enable", token, endpoint=endpoint, back="endpoint")
    before = row_counts(db)
    asked = post(client, f"{BASE}/replay-failed", token, endpoint=endpoint, since="2026-11-27")
    assert asked.status_code == 200
    question = _plain(html.unescape(asked.get_data(as_text=True)))
    assert "on or after 2026-11-27 (Asia/Shanghai)" in question and "2 failed" in question
    assert row_counts(db) == before
    later = post(
        client, f"{BASE}/replay-failed", token, endpoint=endpoint, since="2026-11-28", confirm="yes"
    )
    assert "nothing to replay" in _plain(_text(client, later.headers["Location"]))
    done = post(
        client, f"{BASE}/replay-failed", token, endpoint=endpoint, since="2026-11-27", confirm="yes"
    )
    assert "2 failed deliveries" in _plain(_text(client, done.headers["Location"]))
    deliver_due(db, timeout=5)
    deliver_due(db, timeout=5)
    statuses = {d.status for d in list_deliveries(db, program=PROGRAM, endpoint=endpoint)}
    assert statuses == {"delivered"}
    bad = post(client, f"{BASE}/replay-failed", token, endpoint=endpoint, since="27/11/2026")
    assert bad.status_code == 302
    assert "since is not a date" in _plain(_text(client, f"{BASE}/endpoint?id={endpoint}"))


def test_an_endpoint_failing_for_five_days_says_so_in_local_time(
    app: Flask, db: Database, clock: FixedClock, receiver: Receiver
) -> None:
    endpoint = s_add(db, receiver.url, "points.earned").endpoint.id
    receiver.status = 500
    earn(db, "alice", "o-1", 12_000)
    dispatch_events(db)
    deliver_due(db, timeout=5)
    client, _ = _signed_in(app, "viewer")
    failing = _plain(_text(client, f"{BASE}/"))
    assert "Enabled, failing since 2026-11-27 14:02 CST" in failing
    clock.advance(dt.timedelta(days=5))
    earn(db, "bob", "o-2", 12_000)
    dispatch_events(db)
    deliver_due(db, timeout=5)
    page = _plain(_text(client, f"{BASE}/endpoint?id={endpoint}"))
    assert "Disabled: failing for 5 days since 2026-11-27 14:02 CST" in page
    assert "UTC" not in page


def test_unknown_endpoint_and_delivery_pages_are_not_found(app: Flask) -> None:
    client, _ = _signed_in(app, "viewer")
    _text(client, f"{BASE}/endpoint?id=4242", status=404)
    _text(client, f"{BASE}/delivery?id=4242", status=404)
    assert "id must be a whole number" in _text(client, f"{BASE}/endpoint?id=x", status=400)


# --- helpers ---------------------------------------------------------------------------------


def s_add(db: Database, url: str, *types: str) -> EndpointCreated:
    return add_endpoint(db, program=PROGRAM, url=url, event_types=types or ("*",), actor="admin")


def s_list(db: Database) -> tuple[EndpointInfo, ...]:
    return list_endpoints(db, program=PROGRAM)
