"""Adjustments (operations): grant or deduct with a reason; above the threshold a request
waits for a second person, who approves or rejects it. The requester cannot approve.

Flashes: an adjustment applied is a success (green), a request stored to wait for a second
person is information (blue), a refusal is an error (red); amounts carry separators. The
flashes are in the request's language; a service's refusal is shown as it comes."""

from __future__ import annotations

from collections.abc import Callable

from flask import flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext

from admin.auth import OPERATIONS, actor, require_role
from admin.formatting import points, signed
from admin.forms import AdjustmentForm, DecisionForm, load
from admin.views.base import ConsoleView, back, expose, flash_error, search_arg
from loyalty.errors import LoyaltyError
from loyalty.services import (
    approve_adjustment,
    list_adjustment_requests,
    reject_adjustment,
    request_adjustment,
)

# flask-babel is untyped: its gettext, typed.
_: Callable[..., str] = gettext


class AdjustmentsView(ConsoleView):
    """The approval queue, recent adjustments and the form (operations and admin)."""

    read_roles = OPERATIONS

    @expose("/")
    def index(self) -> ResponseReturnValue:
        program = self.program()
        db = self.console.db
        return self.render(
            "jifen/adjustments.html",
            program=program,
            pending=list_adjustment_requests(db, program=program.code, status="pending", limit=200),
            recent=list_adjustment_requests(db, program=program.code, limit=50),
            threshold=self.console.approval_threshold,
            me=actor(),
            member=search_arg("member"),
        )

    @expose("/new", methods=("POST",))
    def new(self) -> ResponseReturnValue:
        require_role(*OPERATIONS)
        program = self.program()
        try:
            form = load(AdjustmentForm(), request.form)
            made = request_adjustment(
                self.console.db,
                program=program.code,
                member=form["member"],
                points=form["points"],
                reason=form["reason"],
                requested_by=actor(),
                threshold=self.console.approval_threshold,
            )
        except LoyaltyError as exc:
            flash_error(exc)
        else:
            if made.status == "applied":
                flash(
                    _(
                        "Adjustment #%(id)s applied: %(points)s points to %(member)s.",
                        id=made.id,
                        points=signed(made.points),
                        member=made.member,
                    ),
                    "success",
                )
            else:
                flash(
                    _(
                        "Adjustment #%(id)s of %(points)s points waits for a second person to "
                        "approve it: alone, or with what you adjusted for this member today, it "
                        "is above the approval threshold (%(threshold)s).",
                        id=made.id,
                        points=signed(made.points),
                        threshold=points(self.console.approval_threshold),
                    ),
                    "info",
                )
        return back(url_for(".index"))

    @expose("/approve", methods=("POST",))
    def approve(self) -> ResponseReturnValue:
        require_role(*OPERATIONS)
        program = self.program()
        try:
            form = load(DecisionForm(), request.form)
            done = approve_adjustment(
                self.console.db,
                program=program.code,
                request_id=form["request_id"],
                approver=actor(),
            )
        except LoyaltyError as exc:
            flash_error(exc)
        else:
            flash(
                _(
                    "Adjustment #%(id)s approved and applied: %(points)s points to %(member)s.",
                    id=done.id,
                    points=signed(done.points),
                    member=done.member,
                ),
                "success",
            )
        return back(url_for(".index"))

    @expose("/reject", methods=("POST",))
    def reject(self) -> ResponseReturnValue:
        require_role(*OPERATIONS)
        program = self.program()
        try:
            form = load(DecisionForm(), request.form)
            done = reject_adjustment(
                self.console.db,
                program=program.code,
                request_id=form["request_id"],
                rejecter=actor(),
                note=form.get("note"),
            )
        except LoyaltyError as exc:
            flash_error(exc)
        else:
            words = {"id": done.id, "points": signed(done.points)}
            if done.decided_by == done.requested_by:
                message = _(
                    "Adjustment #%(id)s of %(points)s points withdrawn; nothing was written.",
                    **words,
                )
            else:
                message = _(
                    "Adjustment #%(id)s of %(points)s points rejected; nothing was written.",
                    **words,
                )
            flash(message)
        return redirect(url_for(".index"))
