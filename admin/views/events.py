"""Stripe webhook events: list, filter by status and type, see one, replay parked or failed
ones (one, or the selected ones at once). Operations and admin."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import func, or_, select

from admin.auth import OPERATIONS, actor, require_role
from admin.views.base import (
    ConsoleView,
    choice_arg,
    expose,
    flash_error,
    page_number,
    search_arg,
)
from loyalty.db.tables import stripe_events
from loyalty.errors import LoyaltyError
from loyalty.services import audit
from loyalty.services.ledger import program_row
from loyalty.stripe.sync import replay_event

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
        with self.console.db.read() as conn:
            prog = program_row(conn, program.code)
            where: list[Any] = [stripe_events.c.program_id == prog.id]
            if status in STATUSES:
                where.append(stripe_events.c.status == status)
            if kind:
                where.append(stripe_events.c.type.startswith(kind, autoescape=True))
            if query:
                where.append(
                    or_(
                        stripe_events.c.event_id == query,
                        stripe_events.c.customer == query,
                        stripe_events.c.payment_intent == query,
                        stripe_events.c.member_ref == query,
                    )
                )
            total = conn.execute(
                select(func.count()).select_from(stripe_events).where(*where)
            ).scalar()
            counts: dict[str, int] = dict(
                conn.execute(
                    select(stripe_events.c.status, func.count())
                    .where(stripe_events.c.program_id == prog.id)
                    .group_by(stripe_events.c.status)
                ).all()
            )
            rows = conn.execute(
                select(stripe_events)
                .where(*where)
                .order_by(stripe_events.c.received_at.desc(), stripe_events.c.id.desc())
                .limit(PAGE)
                .offset((page - 1) * PAGE)
            ).all()
        return self.render(
            "jifen/events.html",
            rows=rows,
            counts=counts,
            statuses=STATUSES,
            filters={"status": status, "type": kind, "q": query},
            page=page,
            pages=max(1, -(-int(total or 0) // PAGE)),
            total=int(total or 0),
        )

    @expose("/event")
    def event(self) -> ResponseReturnValue:
        program = self.program()
        event_id = search_arg("id")
        with self.console.db.read() as conn:
            prog = program_row(conn, program.code)
            row = conn.execute(
                select(stripe_events).where(
                    stripe_events.c.program_id == prog.id,
                    stripe_events.c.event_id == event_id,
                )
            ).first()
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
            flash("Select at least one event to replay.", "warning")
        for event_id in ids:
            try:
                result = replay_event(self.console.db, program=program.code, event_id=event_id)
            except LoyaltyError as exc:
                flash_error(exc)
                continue
            audit(
                self.console.db,
                actor=actor(),
                action="webhook.replay",
                target=f"stripe event {event_id}",
                program=program.code,
                after={"status": result.status, "message": result.message},
            )
            flash(f"{event_id}: {result.status}: {result.message}", "info")
        if len(ids) == 1 and request.form.get("back") == "event":
            return redirect(url_for(".event", id=ids[0]))
        return redirect(url_for(".index"))
