"""Reminders in the console: every points-expiry reminder (积分到期提醒) with its member,
points, last usable day and e-mail state (sent when, failed and why, skipped and why, pending
and when it is tried next), filtered by state or member; the program's SMTP settings; a test
e-mail; and the reminder e-mail previewed in Chinese and English.

Every role reads (the SMTP password is never shown, only whether one is set); admin changes
the settings and sends test e-mails. Changes are calls to :mod:`loyalty.events.email`, which
audits them. The page is in the request's language, and so are the reasons the e-mail run
skips a reminder for; the previews are the e-mail in each of its own languages.
"""

from __future__ import annotations

import re
from typing import Any

from flask import flash, make_response, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import LazyString
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from marshmallow import Schema, fields, validate
from werkzeug.datastructures import MultiDict

from admin.auth import actor, has_role, require_role
from admin.error_words import error_text
from admin.form_words import N_
from admin.views.base import ConsoleView, choice_arg, expose, flash_error, page_number, search_arg
from admin.views.keys import load_form
from loyalty.errors import InvalidInput, LoyaltyError
from loyalty.events.email import (
    LOCALES,
    SECURITIES,
    STATES,
    EmailSettingsInfo,
    get_email_settings,
    list_reminder_emails,
    preview_reminder_email,
    send_test_email,
    set_email_settings,
)

ADMIN = ("admin",)
PAGE = 50
LANGUAGES = {"zh_Hans": "中文 (简体)", "en": "English"}
SECURITY_WORDS: dict[str, LazyString] = {
    "starttls": _l("STARTTLS (usually port 587)"),
    "tls": _l("TLS from the start (usually port 465)"),
    "none": _l("none (a relay on a trusted network, port 25)"),
}
STATE_WORDS: dict[str, LazyString] = {
    "pending": _l("pending"),
    "sent": _l("sent"),
    "failed": _l("failed"),
    "skipped": _l("skipped"),
}
# Why a reminder's e-mail did not go, as the e-mail run stores it (English), in words the
# page's language has; anything else (a mail server's answer) is shown as it is.
SKIP_REASONS = (
    N_("the member has no e-mail address"),
    N_("the member's account is closed: the points cannot be used"),
    N_("the points were due before the e-mail could be sent"),
)
SKIP_PATTERNS: tuple[tuple[re.Pattern[str], LazyString], ...] = (
    (
        re.compile(
            r"program (?P<program>\S+) has no e-mail settings \(set them in the console's "
            r"Reminders page or with jifen email set\)"
        ),
        _l(
            "program %(program)s has no e-mail settings (set them in the console's Reminders "
            "page or with jifen email set)"
        ),
    ),
    (
        re.compile(r"e-mail is turned off for program (?P<program>\S+)"),
        _l("e-mail is turned off for program %(program)s"),
    ),
)
_CHECKBOXES = ("enabled", "clear_password")
# An e-mail is styled inline (mail clients drop style sheets); shown in a frame of the page,
# it may apply those styles and nothing else: no scripts, no fetches, a sandbox of its own.
PREVIEW_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; sandbox"
)


class SettingsForm(Schema):
    """The SMTP settings form; a blank password keeps the stored one."""

    host = fields.String(required=True, validate=validate.Length(min=1, max=255))
    port = fields.Integer(required=True, strict=False, validate=validate.Range(min=1, max=65535))
    security = fields.String(required=True, validate=validate.OneOf(SECURITIES))
    from_address = fields.String(required=True, validate=validate.Length(min=3, max=254))
    reply_to = fields.String(load_default=None, validate=validate.Length(max=254))
    username = fields.String(load_default=None, validate=validate.Length(max=255))
    password = fields.String(load_default=None, validate=validate.Length(max=255))
    locale = fields.String(required=True, validate=validate.OneOf(LOCALES))
    shop_url = fields.String(load_default=None, validate=validate.Length(max=2000))


class EmailTestForm(Schema):
    """Where to send a test e-mail, and in which language."""

    to = fields.String(required=True, validate=validate.Length(min=3, max=254))
    locale = fields.String(load_default=None, validate=validate.OneOf(LOCALES))


def blank_values() -> dict[str, Any]:
    """The form for a program without settings."""
    return {
        "host": "",
        "port": 587,
        "security": "starttls",
        "from_address": "",
        "reply_to": "",
        "username": "",
        "locale": "zh_Hans",
        "shop_url": "",
        "enabled": True,
    }


def form_values(info: EmailSettingsInfo | None) -> dict[str, Any]:
    """The form filled with the stored settings (never the password)."""
    if info is None:
        return blank_values()
    return {
        "host": info.host,
        "port": info.port,
        "security": info.security,
        "from_address": info.from_address,
        "reply_to": info.reply_to or "",
        "username": info.username or "",
        "locale": info.locale,
        "shop_url": info.shop_url or "",
        "enabled": info.enabled,
    }


def posted_values(form: MultiDict[str, str]) -> dict[str, Any]:
    """The form as posted, to show again with its error (never the password)."""
    values = {k: form.get(k, "").strip() for k in blank_values() if k not in _CHECKBOXES}
    return values | {"enabled": bool(form.get("enabled"))}


def email_error_words(text: str) -> str:
    """Why a reminder's e-mail did not go, in the request's language when the reason is one
    of the e-mail run's own; a mail server's answer as it is."""
    for pattern, words in SKIP_PATTERNS:
        found = pattern.fullmatch(text)
        if found:
            return str(words) % found.groupdict()
    return _(text) if text in SKIP_REASONS else text


class RemindersView(ConsoleView):
    """Reminders and their e-mails; the e-mail settings (admin)."""

    def _page(self, *, values: dict[str, Any] | None = None, form_error: str | None = None) -> str:
        program = self.program()
        db = self.console.db
        state = choice_arg("state", STATES)
        member = search_arg("member", max_length=128)
        page = page_number()
        found = list_reminder_emails(
            db,
            program=program.code,
            state=state or None,
            member=member or None,
            limit=PAGE,
            offset=(page - 1) * PAGE,
        )
        settings = get_email_settings(db, program=program.code)
        return str(
            self.render(
                "jifen/reminders.html",
                program=program,
                found=found,
                states=STATES,
                filters={"state": state, "member": member},
                page=page,
                pages=max(1, -(-found.total // PAGE)),
                settings=settings,
                values=values or form_values(settings),
                form_error=form_error,
                previews=[
                    preview_reminder_email(db, program=program.code, locale=lo) for lo in LOCALES
                ],
                languages=LANGUAGES,
                securities=SECURITY_WORDS,
                state_words=STATE_WORDS,
                email_error_words=email_error_words,
                can_edit=has_role(*ADMIN),
            )
        )

    @expose("/")
    def index(self) -> ResponseReturnValue:
        return self._page()

    @expose("/preview")
    def preview(self) -> ResponseReturnValue:
        """The HTML part of the sample reminder, for the page's sandboxed frame: its own
        policy lets the e-mail's inline styles apply and nothing else load or run."""
        program = self.program()
        locale = choice_arg("locale", LOCALES) or None
        rendered = preview_reminder_email(self.console.db, program=program.code, locale=locale)
        response = make_response(rendered.html)
        response.headers["Content-Security-Policy"] = PREVIEW_POLICY
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
        return response

    @expose("/settings", methods=("POST",))
    def settings(self) -> ResponseReturnValue:
        require_role(*ADMIN)
        program = self.program()
        try:
            form = load_form(SettingsForm(), request.form)
            info = set_email_settings(
                self.console.db,
                program=program.code,
                enabled=bool(request.form.get("enabled")),
                clear_password=bool(request.form.get("clear_password")),
                actor=actor(),
                **form,
            )
        except InvalidInput as exc:
            page = make_response(
                self._page(values=posted_values(request.form), form_error=error_text(exc)), 400
            )
            return page
        flash(
            _("E-mail settings saved; e-mail reminders are on.")
            if info.enabled
            else _("E-mail settings saved; e-mail reminders are off."),
            "success",
        )
        return redirect(url_for(".index"))

    @expose("/test", methods=("POST",))
    def test(self) -> ResponseReturnValue:
        require_role(*ADMIN)
        program = self.program()
        try:
            form = load_form(EmailTestForm(), request.form)
            result = send_test_email(self.console.db, program=program.code, actor=actor(), **form)
        except LoyaltyError as exc:
            flash_error(exc)
            return redirect(url_for(".index"))
        if result.sent:
            flash(_("Test e-mail sent to %(to)s: check that it arrived.", to=result.to), "success")
        else:
            flash(
                _(
                    "The test e-mail to %(to)s was not sent: %(error)s",
                    to=result.to,
                    error=result.error,
                ),
                "error",
            )
        return redirect(url_for(".index"))
