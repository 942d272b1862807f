"""The fulfilment queue (operations and admin): reward redemptions filtered by state and
reward, newest first, a page at a time; several advanced at once (packing, shipped,
delivered) with each one's outcome shown; one cancelled with a reason (its points go back
into the lots they came from, and the stock to the reward); and a redemption's page with its
shipping address, codes, vouchers, draw (seed, number, prize) and events.

Every change is a call to :mod:`loyalty.services.reward_redemptions`, which audits it. The
pages, flashes and the console's own refusals are in the request's language; a service's
refusal (why one redemption could not move) is shown as it comes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import abort, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext

from admin.auth import OPERATIONS, actor, require_role
from admin.error_words import error_text
from admin.formatting import points
from admin.reward_words import TEMPLATE_WORDS, state_word
from admin.views.base import ConsoleView, choice_arg, expose, number_arg, search_arg
from loyalty.domain.checks import MAX_ID
from loyalty.domain.rewards import FULFILMENT_STATES, OPEN_STATES
from loyalty.errors import InvalidInput, LoyaltyError
from loyalty.services import list_catalog
from loyalty.services.reward_redemptions import (
    advance_fulfilment,
    advance_many,
    cancel_redemption,
    get_redemption,
    list_redemptions,
)
from loyalty.services.reward_results import BulkOutcome

# flask-babel is untyped: its gettext, typed.
_: Callable[..., str] = gettext

PAGE = 25
STEPS = ("packing", "shipped", "delivered")
MAX_SELECTED = 200


class FulfilmentView(ConsoleView):
    """The queue and a redemption's page."""

    read_roles = OPERATIONS

    def _queue(self, *, outcomes: tuple[BulkOutcome, ...] = (), step: str = "") -> str:
        program = self.program()
        db = self.console.db
        status = choice_arg("status", FULFILMENT_STATES)
        reward = search_arg("reward", max_length=64) or None
        cursor = number_arg("cursor", minimum=1, maximum=MAX_ID)
        found = list_redemptions(
            db,
            program=program.code,
            status=status or None,
            reward=reward,
            limit=PAGE,
            cursor=cursor,
        )
        return str(
            self.render(
                "jifen/fulfilment.html",
                program=program,
                page=found,
                status=status,
                reward=reward or "",
                cursor=cursor,
                states=FULFILMENT_STATES,
                open_states=OPEN_STATES,
                steps=STEPS,
                rewards=[r.code for r in list_catalog(db, program=program.code)],
                outcomes=outcomes,
                step=step,
                **TEMPLATE_WORDS,
            )
        )

    @expose("/")
    def index(self) -> ResponseReturnValue:
        return self._queue()

    @expose("/redemption")
    def redemption(self) -> ResponseReturnValue:
        program = self.program()
        redemption_id = number_arg("id", minimum=1, maximum=MAX_ID)
        if redemption_id is None:
            abort(404)
        found = get_redemption(self.console.db, program=program.code, redemption=redemption_id)
        return self.render(
            "jifen/redemption.html",
            program=program,
            redemption=found,
            steps=STEPS,
            open_states=OPEN_STATES,
            **TEMPLATE_WORDS,
        )

    @expose("/advance", methods=("POST",))
    def advance(self) -> ResponseReturnValue:
        """Advance the selected redemptions; the queue comes back with each one's outcome."""
        require_role(*OPERATIONS)
        program = self.program()
        step = request.form.get("status", "")
        try:
            ids = _selected(request.form.getlist("ids"))
            if step not in STEPS:
                raise _no_next_state()
        except LoyaltyError as exc:
            flash(error_text(exc), "error")
            return self._queue(), 400
        outcomes = advance_many(
            self.console.db, program=program.code, redemptions=ids, status=step, actor=actor()
        )
        moved = sum(1 for o in outcomes if o.error is None)
        words = {
            "moved": points(moved),
            "selected": points(len(outcomes)),
            "state": state_word(step),
        }
        if moved < len(outcomes):
            message = _(
                "%(moved)s of %(selected)s selected redemption(s) are now %(state)s; the others "
                "say why below.",
                **words,
            )
        else:
            message = _(
                "%(moved)s of %(selected)s selected redemption(s) are now %(state)s.", **words
            )
        flash(message, "success" if moved == len(outcomes) else "warning")
        return self._queue(outcomes=outcomes, step=step)

    @expose("/advance-one", methods=("POST",))
    def advance_one(self) -> ResponseReturnValue:
        """Advance one redemption from its page, with an optional note."""
        require_role(*OPERATIONS)
        return self._on_redemption(self._advance_one)

    @expose("/cancel", methods=("POST",))
    def cancel(self) -> ResponseReturnValue:
        require_role(*OPERATIONS)
        return self._on_redemption(self._cancel)

    def _on_redemption(self, change: Any) -> ResponseReturnValue:
        ids = _selected(request.form.getlist("id"))
        if len(ids) != 1:
            raise InvalidInput(_("choose one redemption"))
        try:
            message = change(self.program().code, ids[0])
        except LoyaltyError as exc:
            flash(error_text(exc), "error")
        else:
            flash(message, "success")
        return redirect(url_for(".redemption", id=ids[0]))

    def _advance_one(self, program: str, redemption: int) -> str:
        step = request.form.get("status", "")
        if step not in STEPS:
            raise _no_next_state()
        done = advance_fulfilment(
            self.console.db,
            program=program,
            redemption=redemption,
            status=step,
            reason=request.form.get("reason", "").strip() or None,
            actor=actor(),
        )
        if done.replayed:
            return _(
                "Redemption %(id)s was already %(state)s.",
                id=redemption,
                state=state_word(done.status),
            )
        return _(
            "Redemption %(id)s is now %(state)s.", id=redemption, state=state_word(done.status)
        )

    def _cancel(self, program: str, redemption: int) -> str:
        reason = request.form.get("reason", "").strip()
        if len(reason) < 3:
            raise InvalidInput(
                _(
                    "say why the redemption is cancelled (at least 3 characters): the member "
                    "sees it in their history"
                ),
                field="reason",
            )
        done = cancel_redemption(
            self.console.db, program=program, redemption=redemption, reason=reason, actor=actor()
        )
        words = {"id": redemption, "points": points(done.points), "member": done.member}
        if done.kind == "coupon":
            return _(
                "Redemption %(id)s is cancelled: %(points)s points went back to %(member)s.",
                **words,
            )
        return _(
            "Redemption %(id)s is cancelled: %(points)s points went back to %(member)s; the stock "
            "is back in the catalog.",
            **words,
        )


def _no_next_state() -> InvalidInput:
    steps = ", ".join(state_word(step) for step in STEPS)
    return InvalidInput(_("choose the next state: %(states)s", states=steps), field="status")


def _selected(values: list[str]) -> list[int]:
    """Redemption ids from checkboxes or a hidden field, in the order given, once each."""
    ids: list[int] = []
    for raw in values:
        raw = raw.strip()
        if not raw.isdigit() or len(raw) > 18:
            raise InvalidInput(_("%(value)s is not a redemption number", value=repr(raw[:20])))
        if int(raw) not in ids:
            ids.append(int(raw))
    if not ids:
        raise InvalidInput(_("select at least one redemption, then choose the next state"))
    if len(ids) > MAX_SELECTED:
        raise InvalidInput(
            _("select at most %(count)s redemptions at once", count=points(MAX_SELECTED))
        )
    return ids
