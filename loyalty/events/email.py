"""The e-mail channel of points-expiry reminders (积分到期提醒): each program's SMTP settings,
the reminder e-mail in Chinese and English, and sending the reminders that are due.

Settings: :func:`set_email_settings` (checked, audited without the password) and
:func:`get_email_settings` (which says whether a password is set, never what it is).

Sending: a new reminder is written with ``email_status`` ``pending`` (due at once) when its
member has an address, else ``skipped`` (:mod:`loyalty.services.reminders`).
:func:`send_due_emails` claims the due ones in a short transaction — on PostgreSQL with
``FOR UPDATE SKIP LOCKED``, so runs at once share the work — by moving their
``email_next_at`` past the time the sending can take (a lease: a killed run's claims come
back), then sends outside any transaction, one SMTP connection per program, and records each
outcome at once: ``sent``, or a retry after 5 min, 30 min, 2 h and 6 h, then ``failed`` with
the error. A reminder that cannot go (no settings, e-mail off, no address, points already
gone) becomes ``skipped`` with the reason, which the console shows. A reminder is one row per
member and date, and only a run holding its claim sends it, so it is sent once.

The e-mail (:func:`render_reminder`) is ``multipart/alternative``: plain text and HTML from
the Jinja templates in ``templates/`` (HTML autoescaped), points with the locale's thousands
separators and the last usable day as a long local date (Babel).
"""

from __future__ import annotations

import datetime as dt
import email.errors
import email.utils
import smtplib
import ssl
import urllib.parse
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any

from babel.dates import format_date
from babel.numbers import format_decimal
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from sqlalchemy import Connection, Row, and_, func, insert, select, update

from loyalty.db.database import Database
from loyalty.db.dialect import is_postgres
from loyalty.db.tables import email_settings, members, notifications, programs
from loyalty.domain.calendar import zone
from loyalty.domain.checks import (
    clean_text,
    require_email,
    require_int,
    require_text,
    scrub_text,
)
from loyalty.errors import InvalidInput
from loyalty.services.audit import record_audit
from loyalty.services.uow import Target, writing
from loyalty.services.writes import program_row

SECURITIES = ("none", "starttls", "tls")
LOCALES = ("zh_Hans", "en")
STATES = ("pending", "sent", "failed", "skipped")
RETRY_DELAYS = (
    dt.timedelta(minutes=5),
    dt.timedelta(minutes=30),
    dt.timedelta(hours=2),
    dt.timedelta(hours=6),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
MAX_RUN = 1000
MAX_TIMEOUT = 300.0
MAX_URL = 2000
SAMPLE_POINTS = 1200
DEFAULT_REMINDER_DAYS = 15
SYSTEM_ACTOR = "system"
_AUDITED = (
    "enabled",
    "host",
    "port",
    "security",
    "username",
    "has_password",
    "from_address",
    "reply_to",
    "locale",
    "shop_url",
)

# What fails one message and leaves the session usable for the next: the server's refusals
# (smtplib resets the session after them), an address the server cannot take (non-ASCII
# without SMTPUTF8: refused before anything is sent) and a message that cannot be built.
_REFUSED = (
    smtplib.SMTPRecipientsRefused,
    smtplib.SMTPSenderRefused,
    smtplib.SMTPDataError,
    smtplib.SMTPNotSupportedError,
    email.errors.MessageError,
    ValueError,
)

_templates = Environment(
    loader=PackageLoader("loyalty.events", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html",), default=False),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmailSettingsInfo:
    """A program's e-mail settings as shown: the password only as ``has_password``."""

    program: str
    enabled: bool
    host: str
    port: int
    security: str
    username: str | None
    has_password: bool
    from_address: str
    reply_to: str | None
    locale: str
    shop_url: str | None
    updated_at: dt.datetime
    updated_by: str | None


@dataclass(frozen=True)
class EmailRun:
    """What a sending run did: e-mails sent, failed for good, to be retried, and reminders
    skipped (with their reason stored)."""

    sent: int
    failed: int
    retrying: int
    skipped: int


@dataclass(frozen=True)
class RenderedEmail:
    """A reminder e-mail's subject and its plain-text and HTML bodies, in ``locale``."""

    locale: str
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class EmailTestResult:
    """A test e-mail: sent to ``to``, or the error that stopped it."""

    to: str
    sent: bool
    error: str | None


@dataclass(frozen=True)
class ReminderEmail:
    """A reminder and its e-mail's state, as the console lists it (``due_on`` is the last
    usable local day)."""

    id: int
    member: str
    email: str | None
    points: int
    kind: str
    due_on: str
    due_at: dt.datetime
    created_at: dt.datetime
    email_status: str | None
    email_attempts: int
    email_next_at: dt.datetime | None
    email_error: str | None
    email_sent_at: dt.datetime | None


@dataclass(frozen=True)
class ReminderEmailPage:
    """A page of reminders, newest due date first, how many match, and the count per e-mail
    state over all the program's reminders."""

    items: tuple[ReminderEmail, ...]
    total: int
    counts: Mapping[str, int]


class EmailNotSent(Exception):
    """Sending failed in a way that needs saying plainly (the SMTP library's own errors are
    described by :func:`describe_error`)."""


# --- settings --------------------------------------------------------------------------------


def set_email_settings(
    db: Target,
    *,
    program: str,
    host: str,
    port: int,
    from_address: str,
    security: str = "starttls",
    username: str | None = None,
    password: str | None = None,
    clear_password: bool = False,
    reply_to: str | None = None,
    locale: str = "zh_Hans",
    shop_url: str | None = None,
    enabled: bool = True,
    actor: str | None = None,
) -> EmailSettingsInfo:
    """Store ``program``'s e-mail settings (all of them; ``password=None`` keeps the stored
    password unless ``clear_password``), audited without the password."""
    values = _checked_settings(
        host=host,
        port=port,
        security=security,
        from_address=from_address,
        username=username,
        reply_to=reply_to,
        locale=locale,
        shop_url=shop_url,
        enabled=enabled,
    )
    if password is not None:
        values["password"] = _checked_password(password)
    elif clear_password:
        values["password"] = None
    who = require_text("actor", actor, max_length=120) if actor is not None else None
    with writing(db) as uow:
        conn, now = uow.connection, uow.clock.now()
        prow = program_row(conn, program)
        before = _settings_row(conn, prow.id)
        if before is None:
            values.setdefault("password", None)
        values |= {"updated_at": now, "updated_by": who}
        if before is None:
            conn.execute(insert(email_settings).values(program_id=prow.id, **values))
        else:
            conn.execute(
                update(email_settings)
                .where(email_settings.c.program_id == prow.id)
                .values(**values)
            )
        after = _settings_row(conn, prow.id)
        assert after is not None
        _audit_settings(conn, prow.id, prow.code, before, after, who or SYSTEM_ACTOR, now)
        return _settings_info(prow.code, after)


def get_email_settings(db: Target, *, program: str) -> EmailSettingsInfo | None:
    """``program``'s e-mail settings, or ``None`` when it has none."""
    with db.read() as conn:
        prow = program_row(conn, program)
        row = _settings_row(conn, prow.id)
    return None if row is None else _settings_info(prow.code, row)


def _checked_settings(
    *,
    host: Any,
    port: Any,
    security: Any,
    from_address: Any,
    username: Any,
    reply_to: Any,
    locale: Any,
    shop_url: Any,
    enabled: Any,
) -> dict[str, Any]:
    """The settings' columns, each checked (``InvalidInput`` naming the field)."""
    if security not in SECURITIES:
        raise InvalidInput(f"security must be one of {', '.join(SECURITIES)}", field="security")
    if locale not in LOCALES:
        raise InvalidInput(f"locale must be one of {', '.join(LOCALES)}", field="locale")
    if not isinstance(enabled, bool):
        raise InvalidInput("enabled must be true or false", field="enabled")
    return {
        "host": _checked_host(host),
        "port": require_int("port", port, minimum=1, maximum=65535),
        "security": security,
        "from_address": require_email(from_address, name="from_address"),
        "reply_to": None if reply_to is None else require_email(reply_to, name="reply_to"),
        "username": None
        if username is None
        else require_text("username", username, max_length=255),
        "locale": locale,
        "shop_url": None if shop_url is None else _checked_url(shop_url),
        "enabled": enabled,
    }


def _checked_host(value: Any) -> str:
    """An SMTP server's host name or address: no spaces, scheme, path or credentials."""
    host = clean_text("host", value, max_length=255)
    if any(c.isspace() or c in "/@?#" for c in host):
        raise InvalidInput(
            f"host must be a server name or address such as smtp.example.com, got {host!r}",
            field="host",
        )
    return host


def _checked_url(value: Any) -> str:
    """The shop's link: an absolute http(s) URL."""
    url = clean_text("shop_url", value, max_length=MAX_URL)
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in url:
        raise InvalidInput(
            f"shop_url must be an http:// or https:// link, got {url!r:.200}", field="shop_url"
        )
    return url


def _checked_password(value: Any) -> str:
    """An SMTP password: kept as given (spaces count), but printable and not too long."""
    if not isinstance(value, str) or not value:
        raise InvalidInput("password must be a non-empty string", field="password")
    if len(value) > 255 or not value.isprintable():
        raise InvalidInput("password must be at most 255 printable characters", field="password")
    return value


def _settings_row(conn: Connection, program_id: int) -> Row[Any] | None:
    return conn.execute(
        select(email_settings).where(email_settings.c.program_id == program_id)
    ).first()


def _settings_info(program: str, row: Row[Any]) -> EmailSettingsInfo:
    return EmailSettingsInfo(
        program=program,
        enabled=bool(row.enabled),
        host=row.host,
        port=int(row.port),
        security=row.security,
        username=row.username,
        has_password=row.password is not None,
        from_address=row.from_address,
        reply_to=row.reply_to,
        locale=row.locale,
        shop_url=row.shop_url,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


def _audit_settings(
    conn: Connection,
    program_id: int,
    program: str,
    before: Row[Any] | None,
    after: Row[Any],
    actor: str,
    now: dt.datetime,
) -> None:
    """One audit entry with the fields that changed (a new password says only that)."""
    old = None if before is None else _audited(program, before)
    new = _audited(program, after)
    changed = [k for k in _AUDITED if old is None or old[k] != new[k]]
    if before is not None and before.password != after.password and after.password:
        changed.append("password")
    if old is not None and not changed:
        return
    record_audit(
        conn,
        actor=actor,
        action="email.settings",
        target=f"email settings of {program}",
        at=now,
        program_id=program_id,
        before=None if old is None else {k: old[k] for k in changed if k in old},
        after={k: new.get(k, "changed") for k in changed},
    )


def _audited(program: str, row: Row[Any]) -> dict[str, Any]:
    info = _settings_info(program, row)
    return {k: getattr(info, k) for k in _AUDITED}


# --- the e-mail ------------------------------------------------------------------------------


def render_reminder(
    *,
    locale: str,
    program_name: str,
    points: int,
    due_on: dt.date,
    kind: str,
    shop_url: str | None,
) -> RenderedEmail:
    """A reminder e-mail in ``locale``: ``kind`` ``expire`` or ``clear``, ``due_on`` the last
    usable local day."""
    if locale not in LOCALES:
        raise InvalidInput(f"locale must be one of {', '.join(LOCALES)}", field="locale")
    context = {
        "program": program_name,
        "points": format_decimal(points, locale=locale),
        "count": points,
        "day": format_date(due_on, format="long", locale=locale),
        "kind": kind,
        "shop_url": shop_url,
    }
    subject = _render(f"reminder.{locale}.subject.txt", context).strip()
    context["subject"] = subject
    return RenderedEmail(
        locale=locale,
        subject=subject,
        text=_render(f"reminder.{locale}.txt", context),
        html=_render(f"reminder.{locale}.html", context),
    )


def _render(name: str, context: Mapping[str, Any]) -> str:
    return _templates.get_template(name).render(context)


def preview_reminder_email(db: Target, *, program: str, locale: str | None = None) -> RenderedEmail:
    """A sample reminder as ``program``'s members would get it: 1,200 points expiring as far
    ahead as the program reminds, in ``locale`` (default: the settings' language)."""
    with db.read() as conn:
        prow = program_row(conn, program)
        settings = _settings_row(conn, prow.id)
    chosen = locale or (settings.locale if settings is not None else LOCALES[0])
    today = db.clock.now().astimezone(zone(prow.timezone)).date()
    ahead = prow.reminder_days or DEFAULT_REMINDER_DAYS
    return render_reminder(
        locale=chosen,
        program_name=prow.name,
        points=SAMPLE_POINTS,
        due_on=today + dt.timedelta(days=ahead),
        kind="expire",
        shop_url=None if settings is None else settings.shop_url,
    )


def build_message(
    rendered: RenderedEmail,
    *,
    settings: Row[Any],
    sender_name: str,
    to: str,
    at: dt.datetime,
) -> EmailMessage:
    """The MIME message: ``multipart/alternative`` (text, then HTML), UTF-8 headers."""
    message = EmailMessage()
    message["Subject"] = rendered.subject
    message["From"] = Address(display_name=sender_name, addr_spec=settings.from_address)
    message["To"] = to
    if settings.reply_to:
        message["Reply-To"] = settings.reply_to
    message["Date"] = email.utils.format_datetime(at)
    domain = settings.from_address.rpartition("@")[2]
    message["Message-ID"] = email.utils.make_msgid(domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    message["Content-Language"] = "zh-Hans" if rendered.locale == "zh_Hans" else "en"
    message.set_content(rendered.text, charset="utf-8")
    message.add_alternative(rendered.html, subtype="html", charset="utf-8")
    return message


# --- SMTP ------------------------------------------------------------------------------------


@contextmanager
def smtp_session(settings: Row[Any], *, timeout: float) -> Iterator[smtplib.SMTP]:
    """A connection to the program's SMTP server, secured and logged in as its settings say,
    closed at the end."""
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if settings.security == "tls":
        smtp = smtplib.SMTP_SSL(settings.host, settings.port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(settings.host, settings.port, timeout=timeout)
    try:
        smtp.ehlo()
        if settings.security == "starttls":
            if not smtp.has_extn("starttls"):
                raise EmailNotSent(
                    f"the SMTP server {settings.host}:{settings.port} does not offer STARTTLS; "
                    "use security 'tls' if it expects TLS from the start, or 'none' for a "
                    "server on a trusted network"
                )
            smtp.starttls(context=context)
            smtp.ehlo()
        if settings.username:
            smtp.login(settings.username, settings.password or "")
        yield smtp
    finally:
        _close(smtp)


def _close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def describe_error(exc: BaseException) -> str:
    """An SMTP failure in one readable line (stored as the reminder's ``email_error``)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(
            f"recipient {to} refused: {code} {_text(msg)}"
            for to, (code, msg) in exc.recipients.items()
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"SMTP server answered {exc.smtp_code} {_text(exc.smtp_error)}"
    if isinstance(exc, EmailNotSent):
        return str(exc)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return f"the SMTP server cannot take this message: {exc}"
    if isinstance(exc, TimeoutError | smtplib.SMTPServerDisconnected):
        return f"{type(exc).__name__}: {exc or 'the SMTP server did not answer in time'}"
    if isinstance(exc, OSError):
        return f"cannot reach the SMTP server: {exc}"
    return f"{type(exc).__name__}: {exc}"


def _text(message: bytes | str) -> str:
    return message.decode("utf-8", "replace") if isinstance(message, bytes) else message


def is_permanent(exc: BaseException) -> bool:
    """Whether retrying cannot help: every recipient refused with a 5xx answer, an address
    the server does not support, or a message that cannot be built."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _msg in exc.recipients.values())
    return isinstance(exc, smtplib.SMTPNotSupportedError | email.errors.MessageError | ValueError)


def send_test_email(
    db: Target,
    *,
    program: str,
    to: str,
    locale: str | None = None,
    smtp_timeout: float = 30.0,
    actor: str | None = None,
) -> EmailTestResult:
    """Send the sample reminder to ``to`` with ``program``'s settings (even while e-mail is
    off), now; the result says whether it went or why not. Audited."""
    to = require_email(to, name="to")
    timeout = _checked_timeout(smtp_timeout)
    with db.read() as conn:
        prow = program_row(conn, program)
        settings = _settings_row(conn, prow.id)
    if settings is None:
        raise InvalidInput(
            f"program {prow.code!r} has no e-mail settings yet; set them first",
            field="program",
        )
    rendered = preview_reminder_email(db, program=prow.code, locale=locale)
    message = build_message(
        rendered, settings=settings, sender_name=prow.name, to=to, at=db.clock.now()
    )
    error = None
    try:
        with smtp_session(settings, timeout=timeout) as smtp:
            smtp.send_message(message)
    except (smtplib.SMTPException, OSError, EmailNotSent) as exc:
        error = scrub_text(describe_error(exc), max_length=2000)
    with writing(db) as uow:
        record_audit(
            uow.connection,
            actor=actor or SYSTEM_ACTOR,
            action="email.test",
            target=f"email settings of {prow.code}",
            at=uow.clock.now(),
            program_id=prow.id,
            after={"to": to, "sent": error is None, "error": error},
        )
    return EmailTestResult(to=to, sent=error is None, error=error)


def _checked_timeout(value: Any) -> float:
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not 0 < value <= MAX_TIMEOUT
    ):
        raise InvalidInput(
            f"smtp_timeout must be a number of seconds above 0 and at most {MAX_TIMEOUT:g}",
            field="smtp_timeout",
        )
    return float(value)


# --- sending the due reminders ---------------------------------------------------------------


@dataclass(frozen=True)
class _Outgoing:
    """A claimed reminder: what its e-mail says, to whom, and which attempt this is."""

    id: int
    program_id: int
    program_name: str
    to: str
    points: int
    due_on: str
    kind: str
    attempt: int


def send_due_emails(db: Database, *, limit: int = 200, smtp_timeout: float = 30.0) -> EmailRun:
    """Send up to ``limit`` reminder e-mails that are due; safe to run twice or at once."""
    require_int("limit", limit)
    if limit > MAX_RUN:
        raise InvalidInput(f"limit may be at most {MAX_RUN}", field="limit")
    timeout = _checked_timeout(smtp_timeout)
    outgoing, settings, skipped = _claim(db, limit=limit, timeout=timeout)
    totals = EmailRun(sent=0, failed=0, retrying=0, skipped=skipped)
    for program_id, claimed in _by_program(outgoing).items():
        totals = _plus(totals, _send_program(db, settings[program_id], claimed, timeout))
    return totals


def _claim(
    db: Database, *, limit: int, timeout: float
) -> tuple[list[_Outgoing], dict[int, Row[Any]], int]:
    """Claim the due reminders that can go and skip those that cannot, in one transaction;
    returns the claimed ones, their programs' settings and how many were skipped."""
    with db.write() as conn:
        now = db.clock.now()
        ids = _due_ids(conn, now, limit)
        if not ids:
            return [], {}, 0
        rows = conn.execute(_details(ids)).all()
        settings = {
            r.program_id: r
            for r in conn.execute(
                select(email_settings).where(
                    email_settings.c.program_id.in_({row.program_id for row in rows})
                )
            )
        }
        reasons = {row.id: _why_not(row, settings.get(row.program_id), now) for row in rows}
        _skip(conn, {i: why for i, why in reasons.items() if why is not None})
        chosen = [row for row in rows if reasons[row.id] is None]
        lease_until = now + _lease(len(chosen), timeout)
        if chosen:
            conn.execute(
                update(notifications)
                .where(notifications.c.id.in_([row.id for row in chosen]))
                .values(
                    email_next_at=lease_until,
                    email_attempts=notifications.c.email_attempts + 1,
                )
            )
    skipped = len(rows) - len(chosen)
    return [_outgoing(row) for row in chosen], settings, skipped


def _due_ids(conn: Connection, now: dt.datetime, limit: int) -> list[int]:
    """Ids of due pending reminders, oldest due first; locked (skipping those another run
    holds) on PostgreSQL, where a run's claim must not wait for another's."""
    query = (
        select(notifications.c.id)
        .where(notifications.c.email_status == "pending", notifications.c.email_next_at <= now)
        .order_by(notifications.c.email_next_at, notifications.c.id)
        .limit(limit)
    )
    if is_postgres(conn):
        query = query.with_for_update(skip_locked=True)
    return list(conn.execute(query).scalars())


def _details(ids: Sequence[int]) -> Any:
    """The claimed reminders with their member's address and their program."""
    return (
        select(
            notifications.c.id,
            notifications.c.program_id,
            notifications.c.points,
            notifications.c.due_on,
            notifications.c.due_at,
            notifications.c.payload,
            notifications.c.email_attempts,
            members.c.email,
            members.c.status.label("member_status"),
            programs.c.code.label("program_code"),
            programs.c.name.label("program_name"),
        )
        .join(members, members.c.id == notifications.c.member_id)
        .join(programs, programs.c.id == notifications.c.program_id)
        .where(notifications.c.id.in_(ids))
        .order_by(notifications.c.id)
    )


def _why_not(row: Row[Any], settings: Row[Any] | None, now: dt.datetime) -> str | None:
    """Why a reminder's e-mail cannot go (kept as its ``email_error``), or ``None``."""
    if settings is None:
        return (
            f"program {row.program_code} has no e-mail settings "
            "(set them in the console's Reminders page or with jifen email set)"
        )
    if not settings.enabled:
        return f"e-mail is turned off for program {row.program_code}"
    if not row.email:
        return "the member has no e-mail address"
    if row.member_status != "active":
        return "the member's account is closed: the points cannot be used"
    if row.due_at <= now:
        return "the points were due before the e-mail could be sent"
    return None


def _skip(conn: Connection, reasons: Mapping[int, str]) -> None:
    """Mark reminders skipped, each with its reason (one statement per reason)."""
    by_reason: dict[str, list[int]] = {}
    for notification_id, reason in reasons.items():
        by_reason.setdefault(reason, []).append(notification_id)
    for reason, ids in by_reason.items():
        conn.execute(
            update(notifications)
            .where(notifications.c.id.in_(ids))
            .values(email_status="skipped", email_error=reason, email_next_at=None)
        )


def _lease(count: int, timeout: float) -> dt.timedelta:
    """How long a claim is held: enough to send ``count`` e-mails one after the other if
    every exchange (connect, envelope, data) took the whole timeout, plus a minute."""
    return dt.timedelta(seconds=60 + 3 * timeout * (count + 1))


def _outgoing(row: Row[Any]) -> _Outgoing:
    return _Outgoing(
        id=row.id,
        program_id=row.program_id,
        program_name=row.program_name,
        to=row.email,
        points=int(row.points),
        due_on=row.due_on,
        kind=_ending(row),
        attempt=int(row.email_attempts) + 1,
    )


def _ending(row: Row[Any]) -> str:
    """How a reminder's points end (``expire`` or ``clear``), from its payload."""
    payload = row.payload if isinstance(row.payload, Mapping) else {}
    return str(payload.get("kind", "expire"))


def _by_program(outgoing: Sequence[_Outgoing]) -> dict[int, list[_Outgoing]]:
    groups: dict[int, list[_Outgoing]] = {}
    for item in outgoing:
        groups.setdefault(item.program_id, []).append(item)
    return groups


def _send_program(
    db: Database, settings: Row[Any], claimed: Sequence[_Outgoing], timeout: float
) -> EmailRun:
    """Send one program's claimed reminders over one connection, recording each outcome as
    soon as it is known. A message the server refuses fails alone (the session goes on); a
    connection that cannot be made or breaks fails every reminder not sent yet."""
    run = EmailRun(0, 0, 0, 0)
    left = deque(claimed)
    try:
        with smtp_session(settings, timeout=timeout) as smtp:
            while left:
                item = left[0]
                try:
                    _send_one(db, smtp, settings, item)
                except _REFUSED as exc:  # smtplib has reset the session: the next can go
                    run = _plus(run, _record_failure(db, left.popleft(), exc))
                    continue
                run = _plus(run, _record_sent(db, left.popleft()))
    except (smtplib.SMTPException, OSError, EmailNotSent) as exc:
        while left:
            run = _plus(run, _record_failure(db, left.popleft(), exc))
    return run


def _send_one(db: Database, smtp: smtplib.SMTP, settings: Row[Any], item: _Outgoing) -> None:
    rendered = render_reminder(
        locale=settings.locale,
        program_name=item.program_name,
        points=item.points,
        due_on=dt.date.fromisoformat(item.due_on),
        kind=item.kind,
        shop_url=settings.shop_url,
    )
    message = build_message(
        rendered, settings=settings, sender_name=item.program_name, to=item.to, at=db.clock.now()
    )
    smtp.send_message(message)


def _record_sent(db: Database, item: _Outgoing) -> EmailRun:
    with db.write() as conn:
        conn.execute(
            update(notifications)
            .where(_still_claimed(item))
            .values(
                email_status="sent",
                email_sent_at=db.clock.now(),
                email_error=None,
                email_next_at=None,
            )
        )
    return EmailRun(sent=1, failed=0, retrying=0, skipped=0)


def _record_failure(db: Database, item: _Outgoing, exc: BaseException) -> EmailRun:
    """A failed attempt: retried later on the schedule, or failed for good after the last
    one (or at once when retrying cannot help)."""
    error = scrub_text(describe_error(exc), max_length=2000)
    final = item.attempt >= MAX_ATTEMPTS or is_permanent(exc)
    with db.write() as conn:
        values: dict[str, Any] = {"email_error": error}
        if final:
            values |= {"email_status": "failed", "email_next_at": None}
        else:
            values["email_next_at"] = db.clock.now() + RETRY_DELAYS[item.attempt - 1]
        conn.execute(update(notifications).where(_still_claimed(item)).values(**values))
    return EmailRun(sent=0, failed=int(final), retrying=int(not final), skipped=0)


def _still_claimed(item: _Outgoing) -> Any:
    """The reminder as this run claimed it (pending, at this attempt)."""
    return and_(
        notifications.c.id == item.id,
        notifications.c.email_status == "pending",
        notifications.c.email_attempts == item.attempt,
    )


def _plus(a: EmailRun, b: EmailRun) -> EmailRun:
    return EmailRun(
        a.sent + b.sent, a.failed + b.failed, a.retrying + b.retrying, a.skipped + b.skipped
    )


# --- what the console and the CLI read -------------------------------------------------------


def list_reminder_emails(
    db: Target,
    *,
    program: str,
    state: str | None = None,
    member: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> ReminderEmailPage:
    """``program``'s reminders with their e-mail state, latest due date first, optionally
    only those in ``state`` or of ``member``."""
    if state is not None and state not in STATES:
        raise InvalidInput(f"state must be one of {', '.join(STATES)}", field="state")
    require_int("limit", limit, maximum=500)
    require_int("offset", offset, minimum=0)
    with db.read() as conn:
        prow = program_row(conn, program)
        where = [notifications.c.program_id == prow.id]
        if state is not None:
            where.append(notifications.c.email_status == state)
        if member is not None:
            where.append(members.c.external_id == require_text("member", member, max_length=128))
        base = select(notifications, members.c.external_id, members.c.email).join(
            members, members.c.id == notifications.c.member_id
        )
        rows = conn.execute(
            base.where(*where)
            .order_by(notifications.c.due_on.desc(), notifications.c.id.desc())
            .limit(limit)
            .offset(offset)
        ).all()
        total = conn.execute(
            select(func.count())
            .select_from(notifications.join(members, members.c.id == notifications.c.member_id))
            .where(*where)
        ).scalar_one()
        counts = _state_counts(conn, prow.id)
    return ReminderEmailPage(tuple(_reminder_email(r) for r in rows), int(total), counts)


def _state_counts(conn: Connection, program_id: int) -> dict[str, int]:
    counted: dict[str | None, int] = dict(
        conn.execute(
            select(notifications.c.email_status, func.count())
            .where(notifications.c.program_id == program_id)
            .group_by(notifications.c.email_status)
        ).all()
    )
    return {state: int(counted.get(state, 0)) for state in STATES}


def _reminder_email(row: Row[Any]) -> ReminderEmail:
    return ReminderEmail(
        id=row.id,
        member=row.external_id,
        email=row.email,
        points=int(row.points),
        kind=_ending(row),
        due_on=row.due_on,
        due_at=row.due_at,
        created_at=row.created_at,
        email_status=row.email_status,
        email_attempts=int(row.email_attempts),
        email_next_at=row.email_next_at,
        email_error=row.email_error,
        email_sent_at=row.email_sent_at,
    )


__all__ = [
    "LOCALES",
    "RETRY_DELAYS",
    "SECURITIES",
    "STATES",
    "EmailRun",
    "EmailSettingsInfo",
    "EmailTestResult",
    "ReminderEmail",
    "ReminderEmailPage",
    "RenderedEmail",
    "get_email_settings",
    "list_reminder_emails",
    "preview_reminder_email",
    "render_reminder",
    "send_due_emails",
    "send_test_email",
    "set_email_settings",
]
