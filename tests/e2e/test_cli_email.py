"""``jifen email`` as an operator runs it, in process, against a SQLite file and a real SMTP
server (aiosmtpd) on loopback: set and show the settings (the password read from standard
input and never printed), preview, a test e-mail, a sending run and the reminders' states,
and the one-line errors."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from babel.dates import format_date
from click.testing import CliRunner, Result

from loyalty import migrate
from loyalty import services as svc
from loyalty.cli import main, render
from loyalty.db import Database
from loyalty.services.reminders import send_reminders


class Inbox:
    """An aiosmtpd handler keeping (recipients, parsed message) of what it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(bytes(envelope.content), policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 OK"


@pytest.fixture
def smtp_port() -> Iterator[tuple[int, Inbox]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, inbox
    controller.stop()


@pytest.fixture(autouse=True)
def wide_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render.console, "_width", 200)


@pytest.fixture
def shop(tmp_path: Path) -> str:
    """A shop (Asia/Shanghai) whose members' points expire 10 days after they are earned,
    today: alice (with an address) and bob (without), both reminded already."""
    url = f"sqlite:///{tmp_path / 'jifen.db'}"
    migrate.upgrade(url)
    db = Database.from_url(url)
    try:
        svc.create_program(
            db,
            code="shop",
            name="茶馆",
            currency="CNY",
            timezone="Asia/Shanghai",
            rules={"expiry": {"days": 10}},
        )
        svc.enrol_member(db, program="shop", external_id="alice", email="alice@example.com")
        svc.enrol_member(db, program="shop", external_id="bob")
        for member in ("alice", "bob"):
            svc.earn_purchase(
                db,
                program="shop",
                member=member,
                order_id=f"o-{member}",
                currency="CNY",
                amount_minor=250_000,
            )
        assert send_reminders(db).created == 2
    finally:
        db.dispose()
    return url


def jifen(url: str, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, [*args, "--database-url", url], input=stdin, prog_name="jifen")


def one_line_error(result: Result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def local_day(days_ahead: int, locale: str) -> str:
    today = dt.datetime.now(dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=8))).date()
    return format_date(today + dt.timedelta(days=days_ahead), format="long", locale=locale)


def set_up(url: str, port: int, *extra: str, stdin: str | None = None) -> Result:
    return jifen(
        url,
        "email",
        "set",
        "--program",
        "shop",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--security",
        "none",
        "--from",
        "points@shop.example",
        *extra,
        stdin=stdin,
    )


def test_set_and_show_never_print_the_password(shop: str, smtp_port: tuple[int, Inbox]) -> None:
    port, _inbox = smtp_port
    first = jifen(shop, "email", "set", "--program", "shop", "--host", "127.0.0.1")
    assert "the first time, give the SMTP server with --host and the sender with --from" in (
        one_line_error(first)
    )
    result = set_up(
        shop,
        port,
        "--username",
        "mailer",
        "--password-stdin",
        "--shop-url",
        "https://shop.example/points",
        stdin="hunter2 with spaces\n",
    )
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output
    shown = jifen(shop, "email", "show", "--program", "shop")
    assert shown.exit_code == 0, shown.output
    assert "server: 127.0.0.1:" in shown.stdout and "(none)" in shown.stdout
    assert "login: mailer (password set)" in shown.stdout
    assert "language: zh_Hans" in shown.stdout
    assert "Reminder e-mails: 1 pending, 0 sent, 0 failed, 1 skipped" in shown.stdout
    assert "hunter2" not in shown.stdout

    # what is not given keeps its value; --no-login forgets the user and the password
    changed = jifen(shop, "email", "set", "--program", "shop", "--locale", "en", "--no-login")
    assert changed.exit_code == 0, changed.output
    assert "language: en" in changed.stdout and "login: no login" in changed.stdout
    assert f"127.0.0.1:{port}" in changed.stdout
    entries = svc.list_audit(Database.from_url(shop), program="shop", action="email.").items
    assert len(entries) == 2 and all(e.actor.startswith("cli") for e in entries)
    assert all("hunter2" not in repr((e.before, e.after)) for e in entries)


def test_bad_settings_are_one_line(shop: str) -> None:
    result = jifen(
        shop,
        "email",
        "set",
        "--program",
        "shop",
        "--host",
        "smtp.example.com",
        "--from",
        "nobody",
        "--port",
        "25",
    )
    assert "'nobody' is not an email address" in one_line_error(result)
    unknown = jifen(shop, "email", "show", "--program", "nope")
    assert "no program has the code 'nope'" in one_line_error(unknown)
    none = jifen(shop, "email", "show", "--program", "shop")
    assert "has no e-mail settings" in none.stdout


def test_preview_in_both_languages(shop: str) -> None:
    zh = jifen(shop, "email", "preview", "--program", "shop")
    assert zh.exit_code == 0, zh.output
    assert f"Subject: 您有 1,200 积分将于 {local_day(15, 'zh_Hans')} 到期" in zh.stdout
    assert "茶馆的 1,200 积分" in zh.stdout
    en = jifen(shop, "email", "preview", "--program", "shop", "--locale", "en", "--html")
    assert f"1,200 points will expire on {local_day(15, 'en')}" in en.stdout
    assert en.stdout.count("<html") == 1


def test_test_email_and_its_failure(shop: str, smtp_port: tuple[int, Inbox]) -> None:
    port, inbox = smtp_port
    set_up(shop, port, "--disable")
    sent = jifen(shop, "email", "test", "--program", "shop", "--to", "me@shop.example")
    assert sent.exit_code == 0, sent.output
    assert "Test e-mail sent to me@shop.example." in sent.stdout
    [(tos, message)] = inbox.messages
    assert tos == ["me@shop.example"] and "积分将于" in message["Subject"]

    jifen(shop, "email", "set", "--program", "shop", "--security", "starttls", "--port", str(port))
    refused = jifen(shop, "email", "test", "--program", "shop", "--to", "me@shop.example")
    line = one_line_error(refused)
    assert "the test e-mail to me@shop.example was not sent" in line
    assert "does not offer STARTTLS" in line


def test_send_and_list(shop: str, smtp_port: tuple[int, Inbox]) -> None:
    port, inbox = smtp_port
    set_up(shop, port, "--shop-url", "https://shop.example/points")
    result = jifen(shop, "email", "send")
    assert result.exit_code == 0, result.output
    assert "Reminder e-mails: 1 sent, 0 to retry, 0 failed, 0 skipped." in result.stdout
    [(tos, message)] = inbox.messages
    assert tos == ["alice@example.com"]
    assert message["Subject"] == f"您有 2,500 积分将于 {local_day(10, 'zh_Hans')} 到期"
    again = jifen(shop, "email", "send")
    assert "0 sent, 0 to retry, 0 failed, 0 skipped" in again.stdout
    assert len(inbox.messages) == 1

    listed = jifen(shop, "email", "list", "--program", "shop")
    assert listed.exit_code == 0, listed.output
    rows = {
        cells[0]: cells
        for line in listed.stdout.splitlines()
        if line.startswith("│")
        for cells in [[c.strip() for c in line.strip().strip("│").split("│")]]
    }
    assert rows["alice"][1:4] == ["2,500", rows["alice"][2], "sent"]
    assert rows["bob"][3] == "skipped" and rows["bob"][6] == "the member has no e-mail address"
    only = jifen(shop, "email", "list", "--program", "shop", "--state", "sent")
    assert "alice" in only.stdout and "bob" not in only.stdout
