"""The console's Reminders page: every role reads the reminders with their e-mail state and
the preview in both languages; only admin saves the SMTP settings (CSRF, errors shown on
the form with what was typed, the password never sent back) and sends a test e-mail, which
reaches a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import html
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from flask.testing import FlaskClient

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.events.email import get_email_settings, send_due_emails, set_email_settings
from loyalty.services.reminders import send_reminders
from tests.integration.helpers import PROGRAM, earn, execute, local, scalar
from tests.integration.test_admin_support import build_app, login, post

PAGE = "/admin/reminders/"
ROLES = ("viewer", "marketing", "operations", "admin")


class Inbox:
    """An aiosmtpd handler keeping the recipients of what it accepts."""

    def __init__(self) -> None:
        self.recipients: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.recipients.extend(envelope.rcpt_tos)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, inbox
    controller.stop()


@pytest.fixture
def app(db: Database, clock: FixedClock) -> Flask:
    """The console with alice (an address, 1,200 points) and bob (none, 800 points), both
    reminded of points expiring on 11 March (local)."""
    clock.set(local(2026, 3, 1, 10))
    app = build_app(db)
    s.publish_rules(db, program=PROGRAM, rules={"base_ratio": "1", "expiry": {"days": 10}})
    execute(db, "UPDATE members SET email = 'alice@example.com' WHERE external_id = 'alice'")
    earn(db, "alice", "a1", 120_000)
    earn(db, "bob", "b1", 80_000)
    send_reminders(db)
    return app


def signed_in(app: Flask, role: str) -> tuple[FlaskClient, str]:
    client = app.test_client()
    return client, login(client, role)


def page_text(client: FlaskClient, path: str = PAGE) -> str:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return html.unescape(response.get_data(as_text=True))


def plain(page: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


def settings_form(port: int, **changes: str) -> dict[str, str]:
    return {
        "enabled": "1",
        "host": "127.0.0.1",
        "port": str(port),
        "security": "none",
        "from_address": "points@shop.example",
        "reply_to": "",
        "username": "",
        "password": "",
        "locale": "zh_Hans",
        "shop_url": "https://shop.example/points",
        **changes,
    }


@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_reminders_and_previews(app: Flask, role: str) -> None:
    client, _token = signed_in(app, role)
    text = plain(page_text(client))
    assert "alice alice@example.com 1,200 2026-03-11" in text
    assert "bob 800 2026-03-11" in text
    assert "the member has no e-mail address" in text
    assert "No e-mail settings yet" in text
    assert "您有 1,200 积分将于 2026年3月16日 到期" in text  # previews, 15 local days ahead
    assert "1,200 points will expire on March 16, 2026" in text
    assert ('data-testid="settings-form"' in page_text(client)) == (role == "admin")


@pytest.mark.parametrize("role", ("viewer", "marketing", "operations"))
def test_only_admin_changes_settings_or_sends_tests(app: Flask, db: Database, role: str) -> None:
    client, token = signed_in(app, role)
    assert post(client, f"{PAGE}settings", token, **settings_form(25)).status_code == 403
    assert post(client, f"{PAGE}test", token, to="me@shop.example").status_code == 403
    assert get_email_settings(db, program=PROGRAM) is None


def test_nav_entry(app: Flask) -> None:
    client, _token = signed_in(app, "viewer")
    assert 'href="/admin/reminders/"' in page_text(client, "/admin/")


def test_admin_saves_settings_and_the_password_never_comes_back(
    app: Flask, db: Database, smtp: tuple[int, Inbox]
) -> None:
    port, _inbox = smtp
    client, token = signed_in(app, "admin")
    form = settings_form(port, username="mailer", password="hunter2-secret")
    response = post(client, f"{PAGE}settings", token, **form)
    assert response.status_code == 302
    page = page_text(client)
    assert "E-mail settings saved; e-mail reminders are on." in page
    assert "hunter2" not in page
    assert "set: leave blank to keep it" in page
    info = get_email_settings(db, program=PROGRAM)
    assert info is not None and info.has_password and info.updated_by == "admin"

    # saved again with a blank password: kept; then e-mail goes out and the page says so
    post(client, f"{PAGE}settings", token, **settings_form(port, username="mailer"))
    assert scalar(db, "SELECT password FROM email_settings") == "hunter2-secret"
    set_email_settings(
        db,
        program=PROGRAM,
        host="127.0.0.1",
        port=port,
        security="none",
        from_address="points@shop.example",
    )
    assert send_due_emails(db).sent == 1
    sent = plain(page_text(client, f"{PAGE}?state=sent"))
    assert "alice alice@example.com 1,200 2026-03-11" in sent and "bob" not in sent
    assert "sent 2026-03-01 10:00" in sent


def test_bad_settings_are_shown_on_the_form_and_change_nothing(app: Flask, db: Database) -> None:
    client, token = signed_in(app, "admin")
    form = settings_form(25, host="smtp.example.com/x", password="not-kept")
    response = post(client, f"{PAGE}settings", token, **form)
    assert response.status_code == 400
    page = html.unescape(response.get_data(as_text=True))
    assert "host must be a server name or address" in page
    assert 'value="smtp.example.com/x"' in page  # what was typed stays in the form
    assert "not-kept" not in page
    assert get_email_settings(db, program=PROGRAM) is None

    missing = post(client, f"{PAGE}settings", token, **settings_form(0))
    assert missing.status_code == 400 and "port" in missing.get_data(as_text=True)
    no_csrf = client.post(f"{PAGE}settings", data=settings_form(25))
    assert no_csrf.status_code == 400
    assert scalar(db, "SELECT count(*) FROM email_settings") == 0


def test_send_a_test_email(app: Flask, db: Database, smtp: tuple[int, Inbox]) -> None:
    port, inbox = smtp
    client, token = signed_in(app, "admin")
    post(client, f"{PAGE}settings", token, **settings_form(port))
    response = post(client, f"{PAGE}test", token, to="me@shop.example", locale="en")
    assert response.status_code == 302
    assert "Test e-mail sent to me@shop.example" in page_text(client)
    assert inbox.recipients == ["me@shop.example"]

    post(client, f"{PAGE}settings", token, **settings_form(port, security="starttls"))
    post(client, f"{PAGE}test", token, to="me@shop.example")
    page = page_text(client)
    assert "The test e-mail to me@shop.example was not sent" in page
    assert "does not offer STARTTLS" in page
    bad = post(client, f"{PAGE}test", token, to="nobody")
    assert bad.status_code == 302
    assert "'nobody' is not an email address" in page_text(client)


def test_filters_and_bad_arguments(app: Flask) -> None:
    client, _token = signed_in(app, "viewer")
    skipped = plain(page_text(client, f"{PAGE}?state=skipped"))
    assert "bob 800" in skipped and "alice alice@example.com 1,200" not in skipped
    by_member = plain(page_text(client, f"{PAGE}?member=alice"))
    assert "alice alice@example.com 1,200" in by_member and "bob 800" not in by_member
    assert client.get(f"{PAGE}?state=lost").status_code == 400
    assert client.get(f"{PAGE}?page=0").status_code == 400


def test_the_html_preview_has_its_own_policy(app: Flask) -> None:
    client, _token = signed_in(app, "viewer")
    response = client.get(f"{PAGE}preview?locale=en")
    assert response.status_code == 200
    assert "1,200</strong> of your points at Shop will expire" in response.get_data(as_text=True)
    policy = response.headers["Content-Security-Policy"]
    assert "script-src" not in policy and "default-src 'none'" in policy and "sandbox" in policy
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert client.get(f"{PAGE}preview?locale=fr").status_code == 400
    page = client.get(PAGE)
    assert page.headers["X-Frame-Options"] == "DENY"  # the page itself is never framed
