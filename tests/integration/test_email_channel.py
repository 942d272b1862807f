"""The e-mail channel of reminders, sent to a real SMTP server (aiosmtpd) on loopback: the
settings, the Chinese and English e-mails (decoded from the MIME parts), retries after a
refusing or absent server, reminders skipped with their reason, and each reminder sent once
even when runs overlap on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import socket
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from helpers import PROGRAM, TZ, earn, scalar
from sqlalchemy import text

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.errors import InvalidInput, ProgramNotFound
from loyalty.events.email import (
    MAX_ATTEMPTS,
    RETRY_DELAYS,
    EmailRun,
    get_email_settings,
    list_reminder_emails,
    preview_reminder_email,
    render_reminder,
    send_due_emails,
    send_test_email,
    set_email_settings,
)
from loyalty.services.reminders import send_reminders

START = dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.UTC)
SHOP_URL = "https://shop.example/points?from=mail&utm=reminder"
SENDER = "points@shop.example"


class Inbox:
    """An aiosmtpd handler keeping every message it accepts; ``answer`` is what it says to
    DATA (``451 try later`` refuses for now)."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage, bytes]] = []
        self.answer = "250 OK"
        self.port = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.answer.startswith("250"):
            raw = bytes(envelope.content)
            parsed = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(parsed, EmailMessage)
            with self.lock:
                self.messages.append((list(envelope.rcpt_tos), parsed, raw))
        return self.answer

    def recipients(self) -> list[str]:
        return sorted(to for tos, _m, _r in self.messages for to in tos)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[Inbox]:
    """A real SMTP server on 127.0.0.1 (no STARTTLS, no authentication)."""
    inbox = Inbox()
    inbox.port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    yield inbox
    controller.stop()


def shop(db: Database, *, name: str = "积分小店") -> None:
    s.create_program(
        db,
        code=PROGRAM,
        name=name,
        currency="CNY",
        timezone=TZ,
        rules={"expiry": {"days": 10}},
    )


def configure(db: Database, inbox: Inbox, **overrides: Any) -> None:
    settings: dict[str, Any] = {
        "program": PROGRAM,
        "host": "127.0.0.1",
        "port": inbox.port,
        "security": "none",
        "from_address": SENDER,
        "shop_url": SHOP_URL,
    }
    set_email_settings(db, **(settings | overrides))


def remind(db: Database, *members: tuple[str, str | None]) -> None:
    """Members (id, e-mail) with 1,200 points each expiring on 1 December (18:00 local),
    reminded now (21 November)."""
    for n, (member, address) in enumerate(members):
        s.enrol_member(db, program=PROGRAM, external_id=member, email=address)
        earn(db, member, f"order-{n}", 120_000)
    assert send_reminders(db).created == len(members)


def email_states(db: Database) -> list[tuple[str, str, int, str | None]]:
    """(member, state, attempts, error) of every reminder."""
    page = list_reminder_emails(db, program=PROGRAM, limit=500)
    return sorted(
        (r.member, r.email_status or "", r.email_attempts, r.email_error) for r in page.items
    )


def bodies(message: EmailMessage) -> tuple[str, str]:
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    assert text_part is not None and html_part is not None
    return str(text_part.get_content()), str(html_part.get_content())


# --- the e-mail ------------------------------------------------------------------------------


def test_chinese_reminder_email(db: Database, smtp: Inbox) -> None:
    shop(db)
    configure(db, smtp, reply_to="help@shop.example")
    remind(db, ("alice", "alice@example.com"))
    assert send_due_emails(db) == EmailRun(sent=1, failed=0, retrying=0, skipped=0)

    [(tos, message, raw)] = smtp.messages
    assert tos == ["alice@example.com"]
    assert message["Subject"] == "您有 1,200 积分将于 2026年12月1日 到期"
    headers = raw.split(b"\r\n\r\n", 1)[0]
    assert b"=?utf-8?" in headers.lower()  # the Chinese subject and sender name, encoded
    assert headers.isascii()
    assert message["From"].addresses[0].display_name == "积分小店"
    assert message["From"].addresses[0].addr_spec == SENDER
    assert message["Reply-To"] == "help@shop.example"
    assert message.get_content_type() == "multipart/alternative"
    plain, html = bodies(message)
    assert "积分小店的 1,200 积分将于 2026年12月1日 到期" in plain
    assert "2026年12月1日 是使用这些积分的最后一天" in plain
    assert f"立即使用积分：{SHOP_URL}" in plain
    assert '<a href="https://shop.example/points?from=mail&amp;utm=reminder"' in html
    assert "1,200</strong> 积分将于 <strong>2026年12月1日</strong> 到期" in html

    [row] = list_reminder_emails(db, program=PROGRAM).items
    assert (row.email_status, row.email_attempts, row.email_error) == ("sent", 1, None)
    assert row.email_sent_at == START and row.email_next_at is None


def test_english_reminder_email(db: Database, smtp: Inbox) -> None:
    shop(db, name="Tea <House>")
    configure(db, smtp, locale="en")
    remind(db, ("bob", "bob@example.com"))
    send_due_emails(db)

    [(_tos, message, _raw)] = smtp.messages
    assert message["Subject"] == "1,200 points will expire on December 1, 2026"
    plain, html = bodies(message)
    assert "1,200 of your points at Tea <House> will expire on December 1, 2026." in plain
    assert f"Use your points: {SHOP_URL}" in plain
    assert "at Tea &lt;House&gt; will expire" in html  # HTML is escaped, text is not
    assert "<House>" not in html
    assert "Use your points</a>" in html


def cleared(locale: str, points: int) -> Any:
    """The reminder of ``points`` cleared on 31 December, without a shop link."""
    return render_reminder(
        locale=locale,
        program_name="小店",
        points=points,
        due_on=dt.date(2026, 12, 31),
        kind="clear",
        shop_url=None,
    )


def test_cleared_points_and_no_shop_link() -> None:
    zh = cleared("zh_Hans", 12_345_678)
    assert zh.subject == "您有 12,345,678 积分将于 2026年12月31日 清零"
    assert "立即使用" not in zh.text and "<a " not in zh.html
    assert cleared("en", 1).subject == "1 point will be cleared on December 31, 2026"
    assert cleared("en", 1_000).subject == "1,000 points will be cleared on December 31, 2026"
    with pytest.raises(InvalidInput) as caught:
        cleared("fr", 1)
    assert caught.value.details["field"] == "locale"


def test_preview_in_both_languages(db: Database, clock: FixedClock) -> None:
    shop(db)
    zh = preview_reminder_email(db, program=PROGRAM)  # no settings yet: Chinese, no link
    assert zh.locale == "zh_Hans"
    assert zh.subject == "您有 1,200 积分将于 2026年12月6日 到期"  # 15 local days ahead
    en = preview_reminder_email(db, program=PROGRAM, locale="en")
    assert en.subject == "1,200 points will expire on December 6, 2026"
    with pytest.raises(ProgramNotFound):
        preview_reminder_email(db, program="nope")


# --- settings --------------------------------------------------------------------------------


def test_settings_are_stored_audited_and_never_show_the_password(db: Database) -> None:
    shop(db)
    assert get_email_settings(db, program=PROGRAM) is None
    info = set_email_settings(
        db,
        program=PROGRAM,
        host="smtp.example.com",
        port=587,
        from_address=SENDER,
        username="mailer",
        password="s3cret pass",
        actor="ops",
    )
    assert info.has_password and info.security == "starttls" and info.locale == "zh_Hans"
    assert info.updated_by == "ops" and "s3cret" not in repr(info)
    again = set_email_settings(
        db,
        program=PROGRAM,
        host="smtp.example.com",
        port=465,
        security="tls",
        from_address=SENDER,
        username="mailer",
        actor="ops",
    )
    assert again.has_password and again.port == 465  # no password given: the stored one stays
    cleared = set_email_settings(
        db,
        program=PROGRAM,
        host="smtp.example.com",
        port=465,
        security="tls",
        from_address=SENDER,
        clear_password=True,
    )
    assert not cleared.has_password and cleared.updated_by is None
    assert scalar(db, "SELECT password FROM email_settings") is None

    entries = s.list_audit(db, program=PROGRAM, action="email.").items
    assert [e.actor for e in entries] == ["system", "ops", "ops"]
    assert entries[1].before == {"port": 587, "security": "starttls"}
    assert entries[1].after == {"port": 465, "security": "tls"}
    assert all("s3cret" not in repr((e.before, e.after)) for e in entries)
    assert entries[2].after is not None and entries[2].after["has_password"] is True


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"port": 0}, "port"),
        ({"port": 65536}, "port"),
        ({"host": "smtp.example.com/x"}, "host"),
        ({"host": " "}, "host"),
        ({"security": "ssl"}, "security"),
        ({"from_address": "not-an-address"}, "from_address"),
        ({"reply_to": "a b@c"}, "reply_to"),
        ({"locale": "fr"}, "locale"),
        ({"shop_url": "ftp://shop.example"}, "shop_url"),
        ({"shop_url": "javascript:alert(1)"}, "shop_url"),
        ({"password": ""}, "password"),
        ({"password": "a\nb"}, "password"),
    ],
)
def test_bad_settings_change_nothing(db: Database, change: dict[str, Any], field: str) -> None:
    shop(db)
    good: dict[str, Any] = {
        "program": PROGRAM,
        "host": "smtp.example.com",
        "port": 25,
        "from_address": SENDER,
    }
    with pytest.raises(InvalidInput) as caught:
        set_email_settings(db, **(good | change))
    assert caught.value.details["field"] == field
    assert get_email_settings(db, program=PROGRAM) is None
    assert scalar(db, "SELECT count(*) FROM audit_log") == 0


# --- sending ---------------------------------------------------------------------------------


def test_sent_once_when_run_twice(db: Database, smtp: Inbox) -> None:
    shop(db)
    configure(db, smtp)
    remind(db, ("alice", "alice@example.com"), ("bob", "bob@example.com"))
    assert send_due_emails(db).sent == 2
    assert send_due_emails(db) == EmailRun(0, 0, 0, 0)
    assert send_reminders(db).created == 0  # one reminder per member and date, ever
    assert send_due_emails(db) == EmailRun(0, 0, 0, 0)
    assert smtp.recipients() == ["alice@example.com", "bob@example.com"]


def test_refused_then_retried_on_schedule(db: Database, clock: FixedClock, smtp: Inbox) -> None:
    shop(db)
    configure(db, smtp)
    remind(db, ("alice", "alice@example.com"))
    smtp.answer = "451 try later"
    assert send_due_emails(db) == EmailRun(sent=0, failed=0, retrying=1, skipped=0)
    [(_m, state, attempts, error)] = email_states(db)
    assert (state, attempts, error) == ("pending", 1, "SMTP server answered 451 try later")
    [row] = list_reminder_emails(db, program=PROGRAM).items
    assert row.email_next_at == START + RETRY_DELAYS[0]

    clock.advance(RETRY_DELAYS[0] - dt.timedelta(seconds=1))
    assert send_due_emails(db) == EmailRun(0, 0, 0, 0)  # not due yet
    smtp.answer = "250 OK"
    clock.advance(dt.timedelta(seconds=1))
    assert send_due_emails(db).sent == 1
    assert email_states(db) == [("alice", "sent", 2, None)]
    assert smtp.recipients() == ["alice@example.com"]


def test_fails_after_the_last_retry(db: Database, clock: FixedClock, smtp: Inbox) -> None:
    shop(db)
    configure(db, smtp)
    remind(db, ("alice", "alice@example.com"))
    smtp.answer = "451 try later"
    runs = []
    for delay in (dt.timedelta(0), *RETRY_DELAYS):
        clock.advance(delay)
        runs.append(send_due_emails(db))
    assert [r.retrying for r in runs] == [1, 1, 1, 1, 0]
    assert runs[-1].failed == 1
    assert email_states(db) == [
        ("alice", "failed", MAX_ATTEMPTS, "SMTP server answered 451 try later")
    ]
    clock.advance(dt.timedelta(days=1))
    assert send_due_emails(db) == EmailRun(0, 0, 0, 0)
    assert smtp.messages == []


def test_a_server_that_is_not_there_is_retried(db: Database, clock: FixedClock) -> None:
    shop(db)
    closed = Inbox()
    closed.port = free_port()  # nothing listens there
    configure(db, closed)
    remind(db, ("alice", "alice@example.com"), ("bob", "bob@example.com"))
    assert send_due_emails(db, smtp_timeout=5) == EmailRun(0, 0, 2, 0)
    states = email_states(db)
    assert all(st == "pending" and n == 1 for _m, st, n, _e in states)
    assert all((e or "").startswith("cannot reach the SMTP server") for *_x, e in states)


def test_starttls_against_a_server_without_it_says_so(db: Database, smtp: Inbox) -> None:
    shop(db)
    configure(db, smtp, security="starttls")
    remind(db, ("alice", "alice@example.com"))
    assert send_due_emails(db).retrying == 1
    [(_m, _s, _n, error)] = email_states(db)
    assert error is not None and "does not offer STARTTLS" in error
    result = send_test_email(db, program=PROGRAM, to="me@shop.example")
    assert not result.sent and result.error is not None and "STARTTLS" in result.error
    assert smtp.messages == []


def test_a_refused_recipient_fails_alone(db: Database, smtp: Inbox) -> None:
    class Picky(Inbox):
        async def handle_RCPT(
            self, server: Any, session: Any, envelope: Any, address: str, options: Any
        ) -> str:
            if address.startswith("gone"):
                return "550 no such mailbox"
            envelope.rcpt_tos.append(address)
            return "250 OK"

    picky = Picky()
    picky.port = free_port()
    controller = Controller(picky, hostname="127.0.0.1", port=picky.port)
    controller.start()
    try:
        shop(db)
        configure(db, picky)
        remind(db, ("alice", "alice@example.com"), ("gone", "gone@example.com"))
        assert send_due_emails(db) == EmailRun(sent=1, failed=1, retrying=0, skipped=0)
    finally:
        controller.stop()
    assert picky.recipients() == ["alice@example.com"]
    states = dict((m, (st, e)) for m, st, _n, e in email_states(db))
    assert states["gone"] == ("failed", "recipient gone@example.com refused: 550 no such mailbox")


def test_a_chinese_address_goes_where_the_server_speaks_smtputf8(db: Database, smtp: Inbox) -> None:
    shop(db)
    configure(db, smtp)
    remind(db, ("zhang", "张三@例子.中国"))
    assert send_due_emails(db).sent == 1
    [(tos, message, _raw)] = smtp.messages
    assert tos == ["张三@例子.中国"] and message["To"] == "张三@例子.中国"


def test_an_address_the_server_cannot_take_fails_alone(db: Database) -> None:
    ascii_only = Inbox()
    ascii_only.port = free_port()
    controller = Controller(
        ascii_only, hostname="127.0.0.1", port=ascii_only.port, enable_SMTPUTF8=False
    )
    controller.start()
    try:
        shop(db)
        configure(db, ascii_only)
        remind(db, ("zhang", "张三@例子.中国"), ("alice", "alice@example.com"))
        assert send_due_emails(db) == EmailRun(sent=1, failed=1, retrying=0, skipped=0)
    finally:
        controller.stop()
    assert ascii_only.recipients() == ["alice@example.com"]
    [(_m, state, attempts, error)] = [r for r in email_states(db) if r[0] == "zhang"]
    assert (state, attempts) == ("failed", 1)
    assert error is not None and error.startswith("the SMTP server cannot take this message")
    assert "SMTPUTF8" in error


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_logs_in_with_the_stored_user_and_password(db: Database) -> None:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    logins: list[tuple[str, str]] = []

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login = (data.login.decode(), data.password.decode())
        logins.append(login)
        if login == ("mailer", "right pass"):
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False, message="535 5.7.8 wrong password")

    guarded = Inbox()
    guarded.port = free_port()
    controller = Controller(
        guarded,
        hostname="127.0.0.1",
        port=guarded.port,
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=False,
        auth_exclude_mechanism=["LOGIN"],  # PLAIN only, so one try per login
    )
    controller.start()
    try:
        shop(db)
        configure(db, guarded, username="mailer", password="wrong pass")
        remind(db, ("alice", "alice@example.com"))
        assert send_due_emails(db, smtp_timeout=5).retrying == 1
        [(_m, _s, _n, error)] = email_states(db)
        assert error == "SMTP server answered 535 5.7.8 wrong password"
        configure(db, guarded, username="mailer", password="right pass")
        result = send_test_email(db, program=PROGRAM, to="me@shop.example")
        assert (result.sent, result.error) == (True, None)
    finally:
        controller.stop()
    assert logins == [("mailer", "wrong pass"), ("mailer", "right pass")]
    assert guarded.recipients() == ["me@shop.example"]


def test_skipped_with_the_reason(db: Database, clock: FixedClock, smtp: Inbox) -> None:
    shop(db)
    remind(db, ("alice", "alice@example.com"), ("nomail", None))
    assert send_due_emails(db) == EmailRun(sent=0, failed=0, retrying=0, skipped=1)
    assert email_states(db) == [
        (
            "alice",
            "skipped",
            0,
            "program shop has no e-mail settings "
            "(set them in the console's Reminders page or with jifen email set)",
        ),
        ("nomail", "skipped", 0, "the member has no e-mail address"),
    ]
    page = list_reminder_emails(db, program=PROGRAM, state="skipped")
    assert page.total == 2 and page.counts["skipped"] == 2 and page.counts["sent"] == 0


def test_skipped_while_email_is_off_and_when_too_late(
    db: Database, clock: FixedClock, smtp: Inbox
) -> None:
    shop(db)
    configure(db, smtp, enabled=False)
    remind(db, ("alice", "alice@example.com"))
    assert send_due_emails(db).skipped == 1
    assert email_states(db)[0][3] == "e-mail is turned off for program shop"

    configure(db, smtp)
    s.enrol_member(db, program=PROGRAM, external_id="late", email="late@example.com")
    earn(db, "late", "late-order", 50_000)
    clock.advance(dt.timedelta(days=1))
    send_reminders(db)
    clock.set(dt.datetime(2026, 12, 2, 10, 30, tzinfo=dt.UTC))  # its points are gone
    assert send_due_emails(db).skipped == 1
    assert dict((m, e) for m, _s, _n, e in email_states(db))["late"] == (
        "the points were due before the e-mail could be sent"
    )
    assert smtp.messages == []


def test_a_closed_member_is_not_told_to_spend(db: Database, smtp: Inbox) -> None:
    shop(db)
    configure(db, smtp)
    remind(db, ("alice", "alice@example.com"), ("carol", "carol@example.com"))
    s.set_member_status(db, program=PROGRAM, external_id="carol", status="closed")
    assert send_due_emails(db) == EmailRun(sent=1, failed=0, retrying=0, skipped=1)
    assert dict((m, e) for m, _s, _n, e in email_states(db))["carol"] == (
        "the member's account is closed: the points cannot be used"
    )
    assert smtp.recipients() == ["alice@example.com"]


def test_the_member_address_in_force_is_used(db: Database, smtp: Inbox) -> None:
    shop(db)
    configure(db, smtp)
    remind(db, ("alice", "old@example.com"))
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE members SET email = 'new@example.com'"))
    send_due_emails(db)
    assert smtp.recipients() == ["new@example.com"]


def test_send_test_email(db: Database, smtp: Inbox) -> None:
    shop(db)
    with pytest.raises(InvalidInput):
        send_test_email(db, program=PROGRAM, to="me@shop.example")
    configure(db, smtp, enabled=False, locale="en")
    result = send_test_email(db, program=PROGRAM, to="me@shop.example", actor="ops")
    assert (result.sent, result.error) == (True, None)
    [(tos, message, _raw)] = smtp.messages
    assert tos == ["me@shop.example"]
    assert message["Subject"] == "1,200 points will expire on December 6, 2026"
    [entry] = s.list_audit(db, program=PROGRAM, action="email.test").items
    assert entry.actor == "ops" and entry.after == {
        "to": "me@shop.example",
        "sent": True,
        "error": None,
    }
    with pytest.raises(InvalidInput):
        send_test_email(db, program=PROGRAM, to="nobody")
    with pytest.raises(InvalidInput):
        send_test_email(db, program=PROGRAM, to="me@shop.example", smtp_timeout=0)


def test_limit_bounds(db: Database) -> None:
    with pytest.raises(InvalidInput):
        send_due_emails(db, limit=0)
    with pytest.raises(InvalidInput):
        send_due_emails(db, limit=100_000)
    with pytest.raises(InvalidInput):
        list_reminder_emails(db, program=PROGRAM, state="lost")


def test_a_lease_held_by_a_killed_run_comes_back(
    db: Database, clock: FixedClock, smtp: Inbox
) -> None:
    shop(db)
    configure(db, smtp)
    remind(db, ("alice", "alice@example.com"))
    with db.engine.begin() as conn:  # as a run that claimed it and died before sending
        conn.execute(
            text("UPDATE notifications SET email_attempts = 1, email_next_at = :lease"),
            {"lease": START + dt.timedelta(minutes=10)},
        )
    assert send_due_emails(db) == EmailRun(0, 0, 0, 0)
    clock.advance(dt.timedelta(minutes=10))
    assert send_due_emails(db).sent == 1
    assert email_states(db) == [("alice", "sent", 2, None)]


def test_concurrent_runs_send_each_reminder_once(
    pg_db: Database, clock: FixedClock, smtp: Inbox
) -> None:
    shop(pg_db)
    configure(pg_db, smtp)
    members = [(f"m{n:02}", f"m{n:02}@example.com") for n in range(40)]
    remind(pg_db, *members)
    barrier = threading.Barrier(4)
    runs: list[EmailRun | BaseException] = []

    def run() -> None:
        barrier.wait(timeout=30)
        try:
            while (done := send_due_emails(pg_db, limit=3)).sent:
                runs.append(done)
        except BaseException as exc:  # the test asserts there are none
            runs.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(isinstance(r, EmailRun) for r in runs), runs
    assert sum(r.sent for r in runs if isinstance(r, EmailRun)) == 40
    assert smtp.recipients() == sorted(address for _m, address in members)
    assert scalar(pg_db, "SELECT count(*) FROM notifications WHERE email_status = 'sent'") == 40
