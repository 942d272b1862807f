"""API keys and browser origins (admin only): the program's server keys with their status,
creating one (its secret shown once, on the page that answers the form, never stored or
flashed), revoking one, and the origins allowed to call the API from a browser and embed the
member page. Every change is a call to :mod:`loyalty.services.api_keys`, which audits it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from flask import flash, make_response, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import LazyString
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from marshmallow import Schema, ValidationError, fields, validate
from werkzeug.datastructures import MultiDict

from admin.auth import actor, require_role
from admin.form_words import N_, field_words, problem_words
from admin.views.base import ConsoleView, expose, flash_error
from loyalty.errors import InvalidInput, LoyaltyError
from loyalty.services import api_keys

ADMIN = ("admin",)
MAX_DAYS = 3660
CHOOSE_SCOPES = N_("choose at least one scope")
SCOPE_WORDS: dict[str, LazyString] = {
    "read": _l("members, balances and history"),
    "earn": _l("points for purchases and actions"),
    "redeem": _l("points spent on orders, rewards redeemed"),
    "refund": _l("refunds and disputes"),
    "transfer": _l("points sent between members"),
    "adjust": _l("points granted or deducted by hand"),
    "events": _l("the outbound events feed"),
    "webhooks": _l("webhook endpoints and their secrets"),
    "risk": _l("risk rules, cases, freezes and holds"),
    "admin": _l("every scope"),
}
KEY_STATUS_WORDS: dict[str, LazyString] = {
    "active": _l("active"),
    "revoked": _l("revoked"),
    "expired": _l("expired"),
}


class NewKeyForm(Schema):
    """A new key: what it is for, its scopes, and optionally how many days it works."""

    label = fields.String(required=True, validate=validate.Length(min=1, max=120))
    scopes = fields.List(
        fields.String(validate=validate.OneOf(api_keys.SCOPES)),
        required=True,
        validate=validate.Length(min=1, error=CHOOSE_SCOPES),
        error_messages={"required": CHOOSE_SCOPES},
    )
    expires_in_days = fields.Integer(
        load_default=None, strict=False, validate=validate.Range(min=1, max=MAX_DAYS)
    )


class RevokeForm(Schema):
    """Revoke one key, by id."""

    key_id = fields.Integer(required=True, strict=False, validate=validate.Range(min=1))


class OriginForm(Schema):
    """One browser origin, scheme://host[:port] (the service normalises and checks it)."""

    origin = fields.String(required=True, validate=validate.Length(min=1, max=255))


def load_form(schema: Schema, form: MultiDict[str, str], *, lists: tuple[str, ...] = ()) -> Any:
    """The form checked by ``schema`` (fields in ``lists`` take every value); blank fields
    count as missing; :class:`InvalidInput` naming every problem in the request's language
    (:mod:`admin.form_words`)."""
    data: dict[str, Any] = {}
    for name in schema.fields:
        if name in lists:
            values = [v.strip() for v in form.getlist(name) if v.strip()]
            if values:
                data[name] = values
        elif form.get(name, "").strip():
            data[name] = form[name].strip()
    try:
        return schema.load(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{field_words(name)}: {_messages(msgs)}"
            for name, msgs in sorted(dict(exc.messages_dict).items())
        )
        message = _("please correct the form: %(problems)s", problems=problems)
        raise InvalidInput(message, fields=exc.messages) from exc


def _messages(found: Any) -> str:
    if isinstance(found, dict):
        return " ".join(_messages(m) for m in found.values())
    if isinstance(found, list):
        return " ".join(problem_words(str(m)) for m in found)
    return problem_words(str(found))


class KeysView(ConsoleView):
    """Server keys and origins of the console's program (admin only)."""

    read_roles = ADMIN

    @expose("/")
    def index(self) -> ResponseReturnValue:
        program = self.program()
        db = self.console.db
        return self.render(
            "jifen/keys.html",
            program=program,
            keys=api_keys.list_keys(db, program=program.code),
            origins=api_keys.list_origins(db, program=program.code),
            scopes=api_keys.SCOPES,
            scope_words=SCOPE_WORDS,
            key_status_words=KEY_STATUS_WORDS,
            now=db.clock.now(),
            max_days=MAX_DAYS,
        )

    @expose("/create", methods=("POST",))
    def create(self) -> ResponseReturnValue:
        require_role(*ADMIN)
        program = self.program()
        db = self.console.db
        try:
            form = load_form(NewKeyForm(), request.form, lists=("scopes",))
            days = form["expires_in_days"]
            created = api_keys.create_key(
                db,
                program=program.code,
                scopes=form["scopes"],
                label=form["label"],
                expires_at=None if days is None else db.clock.now() + dt.timedelta(days=days),
                actor=actor(),
            )
        except LoyaltyError as exc:
            flash_error(exc)
            return redirect(url_for(".index"))
        page = make_response(
            self.render("jifen/key_created.html", program=program, created=created)
        )
        page.headers["Cache-Control"] = "no-store"  # the secret must not stay in a cache
        return page

    @expose("/revoke", methods=("POST",))
    def revoke(self) -> ResponseReturnValue:
        require_role(*ADMIN)
        program = self.program()
        try:
            form = load_form(RevokeForm(), request.form)
            done = api_keys.revoke_key(
                self.console.db, program=program.code, key=form["key_id"], actor=actor()
            )
        except LoyaltyError as exc:
            flash_error(exc)
        else:
            flash(
                _(
                    "API key %(prefix)s… (%(label)s) is revoked: requests with it are "
                    "refused from now on.",
                    prefix=done.prefix,
                    label=done.label,
                ),
                "success",
            )
        return redirect(url_for(".index"))

    @expose("/origins/add", methods=("POST",))
    def add_origin(self) -> ResponseReturnValue:
        return self._change_origin(api_keys.add_origin, _l("%(origin)s is allowed."))

    @expose("/origins/remove", methods=("POST",))
    def remove_origin(self) -> ResponseReturnValue:
        return self._change_origin(api_keys.remove_origin, _l("%(origin)s is no longer allowed."))

    def _change_origin(
        self, change: Callable[..., list[str]], outcome: LazyString
    ) -> ResponseReturnValue:
        """Add or remove an origin; ``outcome`` says what happened to ``%(origin)s``."""
        require_role(*ADMIN)
        program = self.program()
        try:
            form = load_form(OriginForm(), request.form)
            origin = api_keys.normalise_origin(form["origin"])
            change(self.console.db, program=program.code, origin=origin, actor=actor())
        except LoyaltyError as exc:
            flash_error(exc)
        else:
            flash(str(outcome) % {"origin": origin}, "success")
        return redirect(url_for(".index"))
