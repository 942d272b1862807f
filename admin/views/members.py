"""Members: search by external id, email or Stripe customer; a member's balance (with what
expires soon, as the forecast counts it), lots, history in words and local times, adjustment
requests, reward redemptions, the latest outbound events, and the tier panel (tier, progress,
lock, tier history in words), the risk panel (account freeze, hold, open cases; its changes
are the risk view's); link a Stripe customer (operations); set a member's tier by hand
(admin). In Simplified Chinese or English: codes have their words in :mod:`admin.risk_words`
(account states, rule actions), :mod:`admin.reward_words` (redemption states) and
:mod:`admin.ledger_words` (entry kinds, balances)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable

from flask import abort, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext

from admin import tier_form
from admin.auth import OPERATIONS, actor, has_role, require_role
from admin.event_words import event_description, event_words
from admin.formatting import points
from admin.forms import LinkStripeForm, load
from admin.ledger_words import BUCKET_WORDS, entry_kind_words
from admin.reward_words import draw_word, state_word, voucher_word
from admin.risk_words import TEMPLATE_WORDS as RISK_WORDS
from admin.risk_words import case_summaries
from admin.views.base import (
    ConsoleView,
    expose,
    flash_error,
    number_arg,
    page_number,
    search_arg,
)
from admin.views.tiers import TierPanel, tier_name
from loyalty.domain.calendar import zone
from loyalty.domain.checks import MAX_ID, MAX_MEMBER_ID
from loyalty.errors import LoyaltyError
from loyalty.events.browse import member_events
from loyalty.services import (
    balance,
    get_member,
    history,
    list_adjustment_requests,
    list_redemptions,
    set_member_tier_audited,
)
from loyalty.services.console_queries import member_expiring, open_lots, search_members
from loyalty.services.risk_review import member_risk_state
from loyalty.stripe.onboarding import link_applying_parked

PAGE = 25
HISTORY_PAGE = 20
REDEMPTIONS = 20
OUTBOUND_EVENTS = 20
EXPIRING_DAYS = 90
TIER_ROLES = ("admin",)

# flask-babel is untyped: its gettext, typed.
_: Callable[..., str] = gettext


class MembersView(ConsoleView):
    """Member search and the member page (every role reads; operations link and adjust)."""

    @expose("/")
    def index(self) -> ResponseReturnValue:
        program = self.program()
        query = search_arg("q")
        page = page_number()
        found = search_members(
            self.console.db, program=program.code, query=query, page=page, per_page=PAGE
        )
        rows = found.members
        if query and len(rows) == 1 and page == 1:
            return redirect(url_for(".member", id=rows[0].external_id))
        return self.render(
            "jifen/members.html",
            program=program,
            rows=rows,
            query=query,
            page=page,
            pages=max(1, -(-found.total // PAGE)),
            total=found.total,
            buckets=BUCKET_WORDS,
            member_status_word=RISK_WORDS["member_status_word"],
        )

    @expose("/member")
    def member(self) -> ResponseReturnValue:
        program = self.program()
        external_id = search_arg("id", max_length=MAX_MEMBER_ID)
        if not external_id:
            abort(404)
        cursor = number_arg("cursor", minimum=1, maximum=MAX_ID)
        db = self.console.db
        info = balance(db, program=program.code, member=external_id)
        expiring = member_expiring(db, program=program.code, member=external_id, days=EXPIRING_DAYS)
        page = history(
            db, program=program.code, member=external_id, limit=HISTORY_PAGE, cursor=cursor
        )
        identity = get_member(db, program=program.code, external_id=external_id)
        member_lots = open_lots(db, program=program.code, member=external_id)
        requests = list_adjustment_requests(db, program=program.code, member=external_id, limit=10)
        redeemed = list_redemptions(db, program=program.code, member=external_id, limit=REDEMPTIONS)
        risk = member_risk_state(db, program=program.code, member=external_id)
        return self.render(
            "jifen/member.html",
            program=program,
            member=identity,
            balance=info,
            expiring=expiring,
            lots=member_lots,
            history=page,
            cursor=cursor,
            requests=requests,
            redemptions=redeemed,
            can_operate=has_role(*OPERATIONS),
            threshold=self.console.approval_threshold,
            kind_words=entry_kind_words,
            buckets=BUCKET_WORDS,
            zone_label=zone_label(program.timezone, db.clock.now()),
            tier=TierPanel.read(db, program, external_id),
            risk=risk,
            case_summaries=case_summaries(db, program.code, risk.open_cases),
            can_set_tier=has_role(*TIER_ROLES),
            change_id=uuid.uuid4().hex,
            outbound=member_events(
                db, program=program.code, member=external_id, limit=OUTBOUND_EVENTS
            ),
            event_words=event_words,
            event_description=event_description,
            fulfilment_state_word=state_word,
            voucher_status_word=voucher_word,
            draw_reason_word=draw_word,
            **RISK_WORDS,
        )

    @expose("/set-tier", methods=("POST",))
    def set_tier(self) -> ResponseReturnValue:
        require_role(*TIER_ROLES)
        program = self.program()
        form = request.form
        member = form.get("member", "")
        try:
            change = set_member_tier_audited(
                self.console.db,
                program=program.code,
                member=member,
                tier=form.get("tier", ""),
                reason=form.get("reason", ""),
                change_id=form.get("change_id", "").strip() or uuid.uuid4().hex,
                actor=actor(),
                locked_until=tier_form.lock_until(form.get("locked_until", ""), program.timezone),
            )
        except LoyaltyError as exc:
            flash_error(exc)
        else:
            lock = form.get("locked_until", "").strip()
            tier = tier_name(self.console.db, program, change.to_tier)
            if lock:
                message = _(
                    "Set %(member)s to %(tier)s, locked until %(day)s.",
                    member=member,
                    tier=tier,
                    day=lock,
                )
            else:
                message = _("Set %(member)s to %(tier)s.", member=member, tier=tier)
            flash(message, "success")
        return redirect(url_for(".member", id=member) + "#tier")

    @expose("/link-stripe", methods=("POST",))
    def link_stripe(self) -> ResponseReturnValue:
        require_role(*OPERATIONS)
        program = self.program()
        member = request.form.get("member", "")
        db = self.console.db
        try:
            form = load(LinkStripeForm(), request.form)
            linked = link_applying_parked(
                db,
                program=program.code,
                external_id=form["member"],
                stripe_customer_id=form["stripe_customer_id"],
                actor=actor(),
            )
            info, applied = linked.member, linked.applied
        except LoyaltyError as exc:
            flash_error(exc)
        else:
            flash(_linked_words(info.external_id, info.stripe_customer_id, len(applied)), "success")
        return redirect(url_for(".member", id=member))


def _linked_words(member: str, customer: str | None, applied: int) -> str:
    """What linking a Stripe customer did, for the flash."""
    if not applied:
        return _(
            "Linked %(member)s to Stripe customer %(customer)s.", member=member, customer=customer
        )
    return _(
        "Linked %(member)s to Stripe customer %(customer)s; %(count)s parked event(s) applied.",
        member=member,
        customer=customer,
        count=points(applied),
    )


def zone_label(timezone: str, now: dt.datetime) -> str:
    """The program's time zone as staff read it beside times: ``Asia/Shanghai, UTC+08:00``
    (the offset at ``now``; a zone with summer time shows the one in force then)."""
    offset = now.astimezone(zone(timezone)).strftime("%z")
    return f"{timezone}, UTC{offset[:3]}:{offset[3:]}" if offset else timezone
