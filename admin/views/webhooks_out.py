"""Outbound webhooks: the program's endpoints (state in words, delivery counts, last attempt),
adding one (its signing secret shown once, on the page that answers the form, never stored
or flashed), rotating the secret, disabling and enabling, a signed test; an endpoint's
deliveries (filter by status), a delivery with every attempt and the exact body sent,
replaying failed deliveries one by one or all at once (after a confirmation); and the
outbox's latest events (filter by type and member) with their JSON.

Every role reads, without secrets; only admin changes anything. Times are in the program's
time zone. Every change is a call to :mod:`loyalty.events.endpoints` or
:mod:`loyalty.events.delivery`, which check and audit it. The words are in the request's
language, and so are the reasons the delivery run disables an endpoint for (a reason typed
by hand is shown as typed).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from flask import abort, flash, make_response, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import LazyString, gettext
from flask_babel import lazy_gettext as _l
from marshmallow import Schema, fields, validate

from admin import rules_form
from admin.auth import actor, has_role, require_role
from admin.error_words import error_text
from admin.event_words import event_description, event_words, subscription_words
from admin.form_words import N_
from admin.formatting import points
from admin.views.base import ConsoleView, choice_arg, expose, flash_error, number_arg, search_arg
from admin.views.keys import load_form
from loyalty.domain.calendar import zone
from loyalty.domain.checks import MAX_ID, MAX_MEMBER_ID
from loyalty.errors import LoyaltyError
from loyalty.events import delivery as sending
from loyalty.events import endpoints as hooks
from loyalty.events.browse import get_outbound_event, list_outbound_events
from loyalty.events.outbox import ALL_TYPES, EVENT_TYPES

ADMIN = ("admin",)
EVENTS_PAGE = 50
DELIVERIES_PAGE = 50
MAX_ENDPOINT = 2**31 - 1
EVENT_ID_LENGTH = 40
OVERLAP_HOURS = (24, 1, 72, 168, 0)
_UTC_TIME = re.compile(r"\b(\d{4}-\d{2}-\d{2} \d{2}:\d{2}) UTC\b")
_WHEN = r"(?P<when>\d{4}-\d{2}-\d{2} \d{2}:\d{2}) UTC"
# The reasons the delivery run disables an endpoint for (loyalty.events.delivery), in words.
MACHINE_REASONS: tuple[tuple[re.Pattern[str], LazyString], ...] = (
    (
        re.compile(rf"the endpoint answered 410 Gone on {_WHEN}"),
        _l("the endpoint answered 410 Gone on %(when)s"),
    ),
    (
        re.compile(rf"failing for (?P<days>\d+) days since {_WHEN}"),
        _l("failing for %(days)s days since %(when)s"),
    ),
)
CHOOSE_TYPES = N_("choose at least one event type, or every type")
FORM_FIELDS = ("url", "event_types", "description")


class EndpointForm(Schema):
    """A new endpoint: where to send, which event types, and what it is for."""

    url = fields.String(required=True, validate=validate.Length(min=1, max=hooks.MAX_URL))
    event_types = fields.List(
        fields.String(validate=validate.OneOf((ALL_TYPES, *EVENT_TYPES))),
        required=True,
        validate=validate.Length(min=1, error=CHOOSE_TYPES),
        error_messages={"required": CHOOSE_TYPES},
    )
    description = fields.String(
        load_default=None, validate=validate.Length(max=hooks.MAX_DESCRIPTION)
    )


class EndpointChoice(Schema):
    """An endpoint, by id."""

    endpoint = fields.Integer(required=True, strict=False, validate=validate.Range(min=1))


class DeliveryChoice(Schema):
    """A delivery, by id."""

    delivery = fields.Integer(required=True, strict=False, validate=validate.Range(min=1))


class ReplayFailedForm(EndpointChoice):
    """Replay an endpoint's failed deliveries, optionally those since a local date; nothing
    happens until ``confirm`` is ``yes``."""

    since = fields.String(load_default=None, validate=validate.Length(max=20))
    confirm = fields.String(load_default=None)


class RotateForm(EndpointChoice):
    """Rotate an endpoint's secret; the old one keeps signing for ``overlap_hours``."""

    overlap_hours = fields.Integer(
        load_default=24, strict=False, validate=validate.OneOf(OVERLAP_HOURS)
    )


class DisableForm(EndpointChoice):
    """Disable an endpoint, saying why."""

    reason = fields.String(required=True, validate=validate.Length(min=1, max=hooks.MAX_REASON))


def _(message: str, **values: Any) -> str:
    """flask-babel's ``gettext``, typed: ``message`` in the request's language."""
    return str(gettext(message, **values))


def problem_field(exc: LoyaltyError) -> str:
    """The add form's field a refusal is about (``url``, ``event_types``…), if any."""
    named = str(exc.details.get("field") or "")
    if named in FORM_FIELDS:
        return named
    found = exc.details.get("fields")
    if isinstance(found, dict):
        return next((name for name in FORM_FIELDS if name in found), "")
    return ""


def state_words(endpoint: hooks.EndpointInfo, timezone: str) -> str:
    """An endpoint's state as staff read it: ``Enabled``, ``Enabled, failing since
    2026-11-27 14:02 CST``, ``Disabled: <reason> (since 2026-12-02 14:02 CST)`` or, for a
    reason that says when (``failing for 5 days since 2026-11-27 06:02 UTC``), the reason
    alone; every time in the program's zone."""
    if endpoint.enabled:
        if endpoint.failing_since is None:
            return _("Enabled")
        return _(
            "Enabled, failing since %(when)s", when=local_words(endpoint.failing_since, timezone)
        )
    given = endpoint.disabled_reason or ""
    reason = reason_words(given, timezone) if given else _("by hand")
    if localise_utc(given, timezone) != given or endpoint.disabled_at is None:  # says when
        return _("Disabled: %(reason)s", reason=reason)
    return _(
        "Disabled: %(reason)s (since %(when)s)",
        reason=reason,
        when=local_words(endpoint.disabled_at, timezone),
    )


def reason_words(reason: str, timezone: str) -> str:
    """Why an endpoint is disabled: the delivery run's own reasons in the request's language,
    a reason typed by hand as typed; every ``YYYY-MM-DD HH:MM UTC`` in the program's zone."""
    for pattern, words in MACHINE_REASONS:
        found = pattern.fullmatch(reason)
        when = found and utc_words(found["when"], timezone)
        if found and when:
            return str(words) % (found.groupdict() | {"when": when})
    return localise_utc(reason, timezone)


def local_words(at: dt.datetime, timezone: str) -> str:
    """An instant in the program's zone with its abbreviation: ``2026-11-27 14:02 CST``."""
    return at.astimezone(zone(timezone)).strftime("%Y-%m-%d %H:%M %Z")


def localise_utc(text: str, timezone: str) -> str:
    """``text`` with each ``YYYY-MM-DD HH:MM UTC`` it quotes put in the program's zone."""

    def local(found: re.Match[str]) -> str:
        return utc_words(found.group(1), timezone) or found.group(0)

    return _UTC_TIME.sub(local, text)


def utc_words(stamp: str, timezone: str) -> str | None:
    """``YYYY-MM-DD HH:MM`` (UTC) in the program's zone; ``None`` if it is not a real time
    (a reason typed by hand), to be left as written."""
    try:
        at = dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M").replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    return local_words(at, timezone)


def age_words(seconds: float | None) -> str:
    """How long something has waited, roughly: ``40 s``, ``12 min``, ``3 h``, ``2 days``."""
    if seconds is None:
        return ""
    if seconds < 60:
        return _("%(n)s s", n=max(0, int(seconds)))
    if seconds < 3600:
        return _("%(n)s min", n=int(seconds // 60))
    if seconds < 2 * 86400:
        return _("%(n)s h", n=int(seconds // 3600))
    return _("%(n)s days", n=int(seconds // 86400))


def pretty_body(body: str) -> str:
    """A JSON body indented for reading (the exact bytes are shown beside it)."""
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body


class OutboundWebhooksView(ConsoleView):
    """Endpoints, deliveries and outbound events of the console's program."""

    def _render(self, template: str, **values: Any) -> str:
        program = self.program()
        return str(
            self.render(
                template,
                program=program,
                event_words=event_words,
                event_description=event_description,
                subscription_words=subscription_words,
                state_words=lambda e: state_words(e, program.timezone),
                pretty_body=pretty_body,
                age_words=age_words,
                can_change=has_role(*ADMIN),
                **values,
            )
        )

    # --- endpoints --------------------------------------------------------------------------

    def _index(self, *, form: dict[str, Any] | None = None, **extra: Any) -> str:
        program = self.program()
        return self._render(
            "jifen/outbound_endpoints.html",
            tab="endpoints",
            endpoints=hooks.list_endpoints(self.console.db, program=program.code),
            waiting=sending.backlog(self.console.db, program=program.code),
            types=EVENT_TYPES,
            form=form or {"url": "", "description": "", "event_types": [ALL_TYPES]},
            overlaps=OVERLAP_HOURS,
            **extra,
        )

    @expose("/")
    def index(self) -> ResponseReturnValue:
        return self._index()

    @expose("/add", methods=("POST",))
    def add(self) -> ResponseReturnValue:
        require_role(*ADMIN)
        program = self.program()
        given = {
            "url": request.form.get("url", "").strip(),
            "description": request.form.get("description", "").strip(),
            "event_types": [t for t in request.form.getlist("event_types") if t.strip()],
        }
        try:
            form = load_form(EndpointForm(), request.form, lists=("event_types",))
            created = hooks.add_endpoint(
                self.console.db,
                program=program.code,
                url=form["url"],
                event_types=form["event_types"],
                description=form["description"],
                actor=actor(),
            )
        except LoyaltyError as exc:
            page = self._index(
                form=given, problem=error_text(exc), problem_field=problem_field(exc)
            )
            return page, exc.http_status
        return self._secret_page(created, added=True)

    def _secret_page(self, created: hooks.EndpointCreated, *, added: bool) -> ResponseReturnValue:
        page = make_response(
            self._render("jifen/outbound_secret.html", created=created, added=added)
        )
        page.headers["Cache-Control"] = "no-store"  # the secret must not stay in a cache
        return page

    @expose("/rotate", methods=("POST",))
    def rotate(self) -> ResponseReturnValue:
        require_role(*ADMIN)
        program = self.program()
        try:
            form = load_form(RotateForm(), request.form)
            created = hooks.rotate_secret(
                self.console.db,
                program=program.code,
                endpoint=form["endpoint"],
                overlap_hours=form["overlap_hours"],
                actor=actor(),
            )
        except LoyaltyError as exc:
            flash_error(exc)
            return redirect(url_for(".index"))
        return self._secret_page(created, added=False)

    @expose("/disable", methods=("POST",))
    def disable(self) -> ResponseReturnValue:
        require_role(*ADMIN)
        program = self.program()
        try:
            form = load_form(DisableForm(), request.form)
            done = hooks.disable_endpoint(
                self.console.db,
                program=program.code,
                endpoint=form["endpoint"],
                reason=form["reason"],
                actor=actor(),
            )
        except LoyaltyError as exc:
            flash_error(exc)
        else:
            flash(
                _(
                    "Disabled %(url)s: nothing is sent to it until it is enabled again; its "
                    "pending deliveries are now failed (%(failed)s failed in all) and can be "
                    "replayed after enabling it.",
                    url=done.url,
                    failed=points(done.failed),
                ),
                "success",
            )
        return self._back()

    @expose("/enable", methods=("POST",))
    def enable(self) -> ResponseReturnValue:
        require_role(*ADMIN)
        program = self.program()
        try:
            form = load_form(EndpointChoice(), request.form)
            done = hooks.enable_endpoint(
                self.console.db, program=program.code, endpoint=form["endpoint"], actor=actor()
            )
        except LoyaltyError as exc:
            flash_error(exc)
        else:
            flash(
                _(
                    "Enabled %(url)s: new events are sent to it again; %(failed)s failed "
                    "deliveries wait for a replay.",
                    url=done.url,
                    failed=points(done.failed),
                )
                if done.failed
                else _("Enabled %(url)s: new events are sent to it again.", url=done.url),
                "success",
            )
        return self._back()

    def _back(self) -> ResponseReturnValue:
        """Back to the endpoint's page when the form came from there, else the list."""
        endpoint = request.form.get("endpoint", "")
        if request.form.get("back") == "endpoint" and endpoint.isdigit() and len(endpoint) < 10:
            return redirect(url_for(".endpoint_page", id=endpoint))
        return redirect(url_for(".index"))

    # --- outbound events --------------------------------------------------------------------

    @expose("/events")
    def events(self) -> ResponseReturnValue:
        program = self.program()
        type_ = choice_arg("type", tuple(EVENT_TYPES)) or None
        member = search_arg("member", max_length=MAX_MEMBER_ID) or None
        before = number_arg("before", minimum=1, maximum=MAX_ID)
        found = list_outbound_events(
            self.console.db,
            program=program.code,
            type=type_,
            member=member,
            before=before,
            limit=EVENTS_PAGE,
        )
        return self._render(
            "jifen/outbound_events.html",
            tab="events",
            rows=found.events,
            next_before=found.next_before,
            before=before,
            filters={"type": type_ or "", "member": member or ""},
            types=EVENT_TYPES,
        )

    @expose("/event")
    def event(self) -> ResponseReturnValue:
        program = self.program()
        event_id = search_arg("id", max_length=EVENT_ID_LENGTH)
        if not event_id:
            abort(404)
        found = get_outbound_event(self.console.db, program=program.code, event_id=event_id)
        if found is None:
            abort(404)
        return self._render("jifen/outbound_event.html", tab="events", found=found)

    # --- deliveries -------------------------------------------------------------------------

    @expose("/endpoint")
    def endpoint_page(self) -> ResponseReturnValue:
        program = self.program()
        endpoint_id = number_arg("id", minimum=1, maximum=MAX_ENDPOINT)
        if endpoint_id is None:
            abort(404)
        db = self.console.db
        status = choice_arg("status", sending.STATUSES) or None
        before = number_arg("before", minimum=1, maximum=MAX_ID)
        info = hooks.get_endpoint(db, program=program.code, endpoint=endpoint_id)
        found = sending.list_deliveries(
            db,
            program=program.code,
            endpoint=endpoint_id,
            status=status,
            before=before,
            limit=DELIVERIES_PAGE + 1,
        )
        rows = found[:DELIVERIES_PAGE]
        return self._render(
            "jifen/outbound_endpoint.html",
            tab="endpoints",
            endpoint=info,
            rows=rows,
            status=status or "",
            statuses=sending.STATUSES,
            before=before,
            next_before=rows[-1].id if len(found) > DELIVERIES_PAGE else None,
        )

    @expose("/delivery")
    def delivery(self) -> ResponseReturnValue:
        program = self.program()
        delivery_id = number_arg("id", minimum=1, maximum=MAX_ID)
        if delivery_id is None:
            abort(404)
        db = self.console.db
        found = sending.delivery_detail(db, program=program.code, delivery=delivery_id)
        endpoint = hooks.get_endpoint(db, program=program.code, endpoint=found.delivery.endpoint_id)
        return self._render(
            "jifen/outbound_delivery.html",
            tab="endpoints",
            found=found,
            endpoint=endpoint,
            body=sent_body(found.payload),
        )

    @expose("/test", methods=("POST",))
    def test(self) -> ResponseReturnValue:
        require_role(*ADMIN)
        program = self.program()
        try:
            form = load_form(EndpointChoice(), request.form)
            attempt = sending.send_test(
                self.console.db, program=program.code, endpoint=form["endpoint"], actor=actor()
            )
        except LoyaltyError as exc:
            flash_error(exc)
        else:
            flash(outcome_words(attempt), "success" if attempt.ok else "error")
        return self._back()

    @expose("/replay", methods=("POST",))
    def replay(self) -> ResponseReturnValue:
        require_role(*ADMIN)
        program = self.program()
        try:
            form = load_form(DeliveryChoice(), request.form)
            done = sending.replay_delivery(
                self.console.db, program=program.code, delivery=form["delivery"], actor=actor()
            )
        except LoyaltyError as exc:
            flash_error(exc)
            raw = request.form.get("delivery", "")
            if raw.isdigit() and len(raw) < 19:
                return redirect(url_for(".delivery", id=raw))
            return redirect(url_for(".index"))
        flash(
            _(
                "Delivery %(id)s (%(event)s) will be sent again with the next delivery run "
                "(every minute), from a fresh set of attempts.",
                id=done.id,
                event=event_words(done.event_type),
            ),
            "success",
        )
        return redirect(url_for(".delivery", id=done.id))

    @expose("/replay-failed", methods=("POST",))
    def replay_failed(self) -> ResponseReturnValue:
        """Replay an endpoint's failed deliveries (since a local date, if given): the first
        post asks for a confirmation, which posts again with ``confirm=yes``."""
        require_role(*ADMIN)
        program = self.program()
        db = self.console.db
        try:
            form = load_form(ReplayFailedForm(), request.form)
            since_text = form["since"] or ""
            since = rules_form.from_local(since_text, program.timezone, "since")
            endpoint = hooks.get_endpoint(db, program=program.code, endpoint=form["endpoint"])
            if form["confirm"] != "yes":
                return self._render(
                    "jifen/outbound_replay.html",
                    tab="endpoints",
                    endpoint=endpoint,
                    since=since_text,
                )
            count = sending.replay_failed(
                db, program=program.code, endpoint=endpoint.id, since=since, actor=actor()
            )
        except LoyaltyError as exc:
            flash_error(exc)
            return self._back()
        flash(
            _(
                "%(count)s failed deliveries to %(url)s will be sent again with the next "
                "delivery run (every minute).",
                count=points(count),
                url=endpoint.url,
            )
            if count
            else _("No failed deliveries to %(url)s matched: nothing to replay.", url=endpoint.url),
            "success" if count else "info",
        )
        return redirect(url_for(".endpoint_page", id=endpoint.id))


def sent_body(payload: dict[str, Any]) -> str:
    """The exact JSON text a delivery sends for its envelope (compact, UTF-8 as is), as
    :func:`loyalty.events.delivery.body_of` writes it."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def outcome_words(attempt: sending.AttemptInfo) -> str:
    """A test request's outcome in one sentence: status, latency and error."""
    took = {"ms": points(attempt.latency_ms), "status": attempt.status_code}
    if attempt.ok:
        return _(
            "Test event delivered: the endpoint answered HTTP %(status)s in %(ms)s ms.", **took
        )
    if attempt.status_code is None:
        error = attempt.error or _("no answer")
        return _("Test event not delivered: %(error)s (in %(ms)s ms).", error=error, **took)
    if attempt.response_excerpt:
        return _(
            "Test event not delivered: the endpoint answered HTTP %(status)s in %(ms)s ms: "
            "%(answer)s",
            answer=attempt.response_excerpt[:200],
            **took,
        )
    return _(
        "Test event not delivered: the endpoint answered HTTP %(status)s in %(ms)s ms.", **took
    )
