"""Stripe webhook events: list, filter by status and type, see one, replay parked or failed
ones (one, or the selected ones at once). Operations and admin. The console's words are in
the request's language; what Stripe sent and what the sync says of each event are shown as
they are."""

from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from admin.auth import OPERATIONS, actor, require_role
from admin.views.base import (
    ConsoleView,
    choice_arg,
    expose,
    flash_error,
    page_number,
    search_arg,
)
from admin.words import status_word
from loyalty.errors import LoyaltyError
from loyalty.services.console_queries import get_stripe_event, list_stripe_events
from loyalty.stripe.sync import replay_event_audited

STATUSES = ("received", "applied", "parked", "ignored", "failed")
PAGE = 50
MAX_BULK = 100


class EventsView(ConsoleView):
    """Webhook events as received; replays go through :func:`replay_event`."""

    read_roles = OPERATIONS

    @expose("/")
    def index(self) -> ResponseReturnValue:
        program = self.program()
        status = choice_arg("status", STATUSES)
        kind = search_arg("type")
        query = search_arg("q")
        page = page_number()
        found = list_stripe_events(
            self.console.db,
            program=program.code,
            status=status,
            type_prefix=kind,
            query=query,
            page=page,
            per_page=PAGE,
        )
        return self.render(
            "jifen/events.html",
            rows=found.events,
            counts=found.counts,
            statuses=STATUSES,
            filters={"status": status, "type": kind, "q": query},
            page=page,
            pages=max(1, -(-found.total // PAGE)),
            total=found.total,
        )

    @expose("/event")
    def event(self) -> ResponseReturnValue:
        program = self.program()
        event_id = search_arg("id")
        row = get_stripe_event(self.console.db, program=program.code, event_id=event_id)
        if row is None:
            abort(404)
        return self.render("jifen/event.html", event=row)

    @expose("/replay", methods=("POST",))
    def replay(self) -> ResponseReturnValue:
        """Replay one event (``event_id``) or the selected ones (bulk: several ``event_id``)."""
        require_role(*OPERATIONS)
        program = self.program()
        ids = [e for e in request.form.getlist("event_id") if e.strip()][:MAX_BULK]
        if not ids:
            flash(_("Select at least one event to replay."), "warning")
        for event_id in ids:
            try:
                result = replay_event_audited(
                    self.console.db, program=program.code, event_id=event_id, actor=actor()
                )
            except LoyaltyError as exc:
                flash_error(exc)
                continue
            flash(
                _(
                    "%(event)s: %(status)s: %(message)s",
                    event=event_id,
                    status=status_word(result.status),
                    message=result.message,
                ),
                "info",
            )
        if len(ids) == 1 and request.form.get("back") == "event":
            return redirect(url_for(".event", id=ids[0]))
        return redirect(url_for(".index"))
