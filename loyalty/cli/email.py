"""``jifen email``: the e-mail channel of points-expiry reminders from a shell: the program's
SMTP settings (set, show), a test e-mail to an address, the reminder e-mail previewed in
either language, the reminders with their e-mail state, and a sending run.

Every command calls :mod:`loyalty.events.email`; settings changes and test e-mails are
audited with the actor ``cli:<OS user>``. The SMTP password is never an option (a command
line is visible to other users of the machine): ``--password-stdin`` reads it.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from loyalty.cli.options import friendly_errors, open_database, require_program
from loyalty.cli.options import url_option as database_option
from loyalty.cli.render import console, table
from loyalty.cli.rewards import cli_actor, local
from loyalty.errors import InvalidInput
from loyalty.events.email import (
    LOCALES,
    MAX_RUN,
    SECURITIES,
    STATES,
    EmailRun,
    EmailSettingsInfo,
    get_email_settings,
    list_reminder_emails,
    preview_reminder_email,
    send_due_emails,
    send_test_email,
    set_email_settings,
)
from loyalty.services.programs import get_program

DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}

program_option = click.option(
    "--program", required=True, metavar="CODE", help="The program's code."
)
locale_option = click.option(
    "--locale",
    type=click.Choice(LOCALES),
    default=None,
    help="The e-mail's language (default: the program's e-mail language).",
)
timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True, max=300),
    default=30.0,
    show_default=True,
    help="Seconds to wait for the SMTP server at each step.",
)


@click.group("email")
def email_group() -> None:
    """E-mail reminders (积分到期提醒): SMTP settings, a test e-mail, the preview, sending."""


# --- settings --------------------------------------------------------------------------------


@email_group.command("set")
@database_option
@program_option
@click.option("--host", default=None, help="The SMTP server's host name or address.")
@click.option("--port", type=int, default=None, help="Its port (default: 25, 587 or 465).")
@click.option(
    "--security",
    type=click.Choice(SECURITIES),
    default=None,
    help="starttls (default), tls from the start, or none.",
)
@click.option(
    "--from", "from_address", default=None, metavar="ADDRESS", help="The sender's address."
)
@click.option("--reply-to", default=None, metavar="ADDRESS", help="Where replies go.")
@click.option("--username", default=None, help="Log in to the server with this user name.")
@click.option("--password-stdin", is_flag=True, help="Read the SMTP password from standard input.")
@click.option("--clear-password", is_flag=True, help="Forget the stored password.")
@click.option("--no-login", is_flag=True, help="Forget the user name and password.")
@locale_option
@click.option(
    "--shop-url", default=None, metavar="URL", help="The link in the e-mail (http or https)."
)
@click.option(
    "--enable/--disable", "enabled", default=None, help="Turn e-mail reminders on or off."
)
@friendly_errors
def set_command(database_url: str | None, program: str, **given: Any) -> None:
    """Set the program's e-mail settings. The first time, --host and --from are needed;
    afterwards, what is not given keeps its value."""
    database = open_database(database_url)
    try:
        require_program(database, program)
        current = get_email_settings(database, program=program)
        values = _merged(current, given)
        info = set_email_settings(database, program=program, actor=cli_actor(), **values)
    finally:
        database.dispose()
    console.print(f"E-mail settings of {program} saved.", highlight=False)
    _print_settings(info)


def _merged(current: EmailSettingsInfo | None, given: dict[str, Any]) -> dict[str, Any]:
    """The settings to store: what was given, else what is stored, else the defaults."""
    if current is None and (given["host"] is None or given["from_address"] is None):
        raise InvalidInput(
            "the first time, give the SMTP server with --host and the sender with --from"
        )

    def pick(name: str, default: Any = None) -> Any:
        if given.get(name) is not None:
            return given[name]
        return default if current is None else getattr(current, name)

    security = pick("security", "starttls")
    values = {
        "host": pick("host"),
        "security": security,
        "port": given["port"]
        if given["port"] is not None
        else (DEFAULT_PORTS[security] if current is None or given["security"] else current.port),
        "from_address": pick("from_address"),
        "reply_to": pick("reply_to"),
        "username": None if given["no_login"] else pick("username"),
        "locale": pick("locale", LOCALES[0]),
        "shop_url": pick("shop_url"),
        "enabled": pick("enabled", True),
        "clear_password": bool(given["clear_password"] or given["no_login"]),
    }
    if given["password_stdin"]:
        values["password"] = sys.stdin.readline().rstrip("\r\n")
    return values


@email_group.command("show")
@database_option
@program_option
@friendly_errors
def show_command(database_url: str | None, program: str) -> None:
    """Show the program's e-mail settings (never the password) and how many reminders are
    in each e-mail state."""
    database = open_database(database_url)
    try:
        require_program(database, program)
        info = get_email_settings(database, program=program)
        counts = list_reminder_emails(database, program=program, limit=1).counts
    finally:
        database.dispose()
    if info is None:
        console.print(
            f"Program {program} has no e-mail settings: reminders are not e-mailed. Set them "
            f"with `jifen email set --program {program} --host HOST --from ADDRESS`.",
            highlight=False,
        )
    else:
        _print_settings(info)
    console.print(
        "Reminder e-mails: " + ", ".join(f"{counts[state]:,} {state}" for state in STATES),
        highlight=False,
    )


def _print_settings(info: EmailSettingsInfo) -> None:
    login = (
        "no login"
        if not info.username
        else (f"{info.username} (password {'set' if info.has_password else 'not set'})")
    )
    lines = (
        ("e-mail", "on" if info.enabled else "off"),
        ("server", f"{info.host}:{info.port} ({info.security})"),
        ("login", login),
        ("from", info.from_address),
        ("reply to", info.reply_to or "-"),
        ("language", info.locale),
        ("shop link", info.shop_url or "-"),
        ("updated", f"{info.updated_at:%Y-%m-%d %H:%M} UTC by {info.updated_by or '-'}"),
    )
    for label, value in lines:
        console.print(f"{label:>10}: {value}", highlight=False, markup=False)


# --- test, preview, list, send ---------------------------------------------------------------


@email_group.command("test")
@database_option
@program_option
@click.option("--to", "to", required=True, metavar="ADDRESS", help="Where to send it.")
@locale_option
@timeout_option
@friendly_errors
def test_command(
    database_url: str | None, program: str, to: str, locale: str | None, timeout: float
) -> None:
    """Send the sample reminder to ADDRESS with the program's settings (even while e-mail
    reminders are off), to check them."""
    database = open_database(database_url)
    try:
        require_program(database, program)
        result = send_test_email(
            database,
            program=program,
            to=to,
            locale=locale,
            smtp_timeout=timeout,
            actor=cli_actor(),
        )
    finally:
        database.dispose()
    if not result.sent:
        raise InvalidInput(f"the test e-mail to {result.to} was not sent: {result.error}")
    console.print(f"Test e-mail sent to {result.to}.", highlight=False)


@email_group.command("preview")
@database_option
@program_option
@locale_option
@click.option("--html", is_flag=True, help="Print the HTML part instead of the text.")
@friendly_errors
def preview_command(database_url: str | None, program: str, locale: str | None, html: bool) -> None:
    """Print the reminder e-mail as the program's members get it, with sample figures."""
    database = open_database(database_url)
    try:
        require_program(database, program)
        rendered = preview_reminder_email(database, program=program, locale=locale)
    finally:
        database.dispose()
    click.echo(f"Subject: {rendered.subject}\n")
    click.echo(rendered.html if html else rendered.text, nl=False)


@email_group.command("list")
@database_option
@program_option
@click.option(
    "--state", type=click.Choice(STATES), default=None, help="Only reminders in this e-mail state."
)
@click.option("--member", default=None, help="Only this member's reminders.")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@friendly_errors
def list_command(
    database_url: str | None, program: str, state: str | None, member: str | None, limit: int
) -> None:
    """List the program's reminders, latest due day first, with their e-mail state."""
    database = open_database(database_url)
    try:
        require_program(database, program)
        timezone = get_program(database, program).timezone
        page = list_reminder_emails(
            database, program=program, state=state, member=member, limit=limit
        )
    finally:
        database.dispose()
    shown = table(
        f"Reminders of {program}: {page.total:,} (times in {timezone})",
        ("member", "points", "last day", "e-mail", "when", "attempts", "note"),
        right=("points", "attempts"),
    )
    for r in page.items:
        when = r.email_sent_at if r.email_status == "sent" else r.email_next_at
        shown.add_row(
            r.member,
            f"{r.points:,}",
            r.due_on,
            r.email_status or "-",
            local(when, timezone),
            str(r.email_attempts),
            r.email_error or "",
        )
    console.print(shown)


@email_group.command("send")
@database_option
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_RUN),
    default=200,
    show_default=True,
    help="Reminders claimed at a time; batches go on until none is due.",
)
@timeout_option
@friendly_errors
def send_command(database_url: str | None, limit: int, timeout: float) -> None:
    """Send the reminder e-mails that are due, for every program."""
    database = open_database(database_url)
    totals = EmailRun(0, 0, 0, 0)
    try:
        while True:
            run = send_due_emails(database, limit=limit, smtp_timeout=timeout)
            totals = EmailRun(*(a + b for a, b in zip(_counts(totals), _counts(run), strict=True)))
            if sum(_counts(run)) < limit:
                break
    finally:
        database.dispose()
    console.print(
        f"Reminder e-mails: {totals.sent:,} sent, {totals.retrying:,} to retry, "
        f"{totals.failed:,} failed, {totals.skipped:,} skipped.",
        highlight=False,
    )


def _counts(run: EmailRun) -> tuple[int, int, int, int]:
    return (run.sent, run.failed, run.retrying, run.skipped)
