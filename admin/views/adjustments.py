"""Adjustments (operations): grant or deduct with a reason; above the threshold a request
waits for a second person, who approves or rejects it. The requester cannot approve.

Flashes: an adjustment applied is a success (green), a request stored to wait for a second
person is information (blue), a refusal is an error (red); amounts carry separators."""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask.typing import ResponseReturnValue

from admin.auth import OPERATIONS, actor, require_role
from admin.forms import AdjustmentForm, DecisionForm, load
from admin.views.base import ConsoleView, back, expose, flash_error, search_arg
from loyalty.errors import LoyaltyError
from loyalty.services import (
    approve_adjustment,
    list_adjustment_requests,
    reject_adjustment,
    request_adjustment,
)


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
                    f"Adjustment #{made.id} applied: {made.points:+,} points to {made.member}.",
                    "success",
                )
            else:
                flash(
                    f"Adjustment #{made.id} of {made.points:+,} points waits for a second "
                    "person to approve it: alone, or with what you adjusted for this member "
                    f"today, it is above the approval threshold "
                    f"({self.console.approval_threshold:,}).",
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
                f"Adjustment #{done.id} approved and applied: {done.points:+,} points to "
                f"{done.member}.",
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
            what = "withdrawn" if done.decided_by == done.requested_by else "rejected"
            flash(f"Adjustment #{done.id} of {done.points:+,} points {what}; nothing was written.")
        return redirect(url_for(".index"))
