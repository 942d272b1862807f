"""Members: the list operations work from (any part of the external id, email, phone or
Stripe customer; filters on status, tier, balance, last activity and risk hold; sorted on any
column; exported as CSV with the same filter, see :func:`member_filter`); a member's balance
(with what expires soon, as the forecast counts it), lots, history in words and local times,
adjustment requests, reward redemptions, the latest outbound events, and the tier panel
(tier, progress, lock, tier history in words), the risk panel (account freeze, hold, open
cases; its changes are the risk view's); link a Stripe customer (operations); set a member's
tier by hand (admin). In Simplified Chinese or English: codes have their words in
:mod:`admin.risk_words` (account states, rule actions), :mod:`admin.reward_words`
(redemption states) and :mod:`admin.ledger_words` (entry kinds, balances)."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable, Mapping

from flask import abort, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import LazyString, gettext
from flask_babel import lazy_gettext as _l

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
    MAX_SEARCH,
    ConsoleView,
    expose,
    flash_error,
    number_arg,
    page_number,
    search_arg,
)
from admin.views.tiers import TierPanel, tier_name
from loyalty.db.database import Database
from loyalty.domain.calendar import zone
from loyalty.domain.checks import MAX_DAYS, MAX_ID, MAX_MEMBER_ID, MAX_POINTS, clean_text
from loyalty.errors import InvalidInput, LoyaltyError
from loyalty.events.browse import member_events
from loyalty.services import (
    balance,
    get_member,
    history,
    list_adjustment_requests,
    list_redemptions,
    set_member_tier_audited,
)
from loyalty.services.console_queries import (
    MEMBER_FILTER_STATUSES,
    MEMBER_SORTS,
    MemberFilter,
    member_expiring,
    open_lots,
    search_members,
)
from loyalty.services.results import ProgramInfo
from loyalty.services.risk_review import member_risk_state
from loyalty.services.tiers import tiers_in_force
from loyalty.stripe.onboarding import link_applying_parked

PAGE = 25
HISTORY_PAGE = 20
REDEMPTIONS = 20
OUTBOUND_EVENTS = 20
EXPIRING_DAYS = 90
TIER_ROLES = ("admin",)

# flask-babel is untyped: its gettext, typed.
_: Callable[..., str] = gettext

# The query arguments of the members list and its export, in what a refusal calls them.
FILTER_WORDS: dict[str, LazyString] = {
    "status": _l("status"),
    "tier": _l("tier"),
    "min": _l("lowest balance"),
    "max": _l("highest balance"),
    "activity": _l("last activity"),
    "hold": _l("risk hold"),
    "sort": _l("sort"),
    "order": _l("sort order"),
}
# The last activity choices the filter bar offers (any other "idle-N" or "active-N" works).
ACTIVITY_CHOICES = ("active-7", "active-30", "idle-30", "idle-90", "idle-180", "idle-365")
_ACTIVITY = re.compile(r"(idle|active)-([0-9]{1,4})")
_DIGITS = re.compile(r"[0-9]{1,13}")
HOLD_CHOICES = {"yes": True, "no": False}
ORDERS = ("asc", "desc")
# The list's filter arguments (what paging, sorting and the export link carry on).
FILTER_ARGS = ("q", "status", "tier", "min", "max", "activity", "hold", "sort", "order")


def _refuse(name: str, choices: tuple[str, ...]) -> InvalidInput:
    return InvalidInput(
        _(
            "%(name)s must be one of %(choices)s",
            name=FILTER_WORDS[name],
            choices=", ".join(choices),
        ),
        field=name,
    )


def _choice(args: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    raw = args.get(name, "").strip()
    if raw and raw not in choices:
        raise _refuse(name, choices)
    return raw or None


def _balance(args: Mapping[str, str], name: str) -> int | None:
    raw = args.get(name, "").strip().replace(",", "")
    if not raw:
        return None
    if not _DIGITS.fullmatch(raw) or int(raw) > MAX_POINTS:
        raise InvalidInput(
            _(
                "%(name)s must be a whole number from %(minimum)s to %(maximum)s",
                name=FILTER_WORDS[name],
                minimum=points(0),
                maximum=points(MAX_POINTS),
            ),
            field=name,
        )
    return int(raw)


def _activity(args: Mapping[str, str]) -> tuple[int | None, int | None]:
    """``(idle_days, active_days)`` of the ``activity`` argument (``idle-90``, ``active-7``)."""
    raw = args.get("activity", "").strip()
    if not raw:
        return None, None
    found = _ACTIVITY.fullmatch(raw)
    if found is None or not 1 <= int(found[2]) <= MAX_DAYS:
        raise InvalidInput(
            _(
                "%(name)s must be idle-N (no activity for N days) or active-N (active within "
                "N days), N from 1 to %(maximum)s",
                name=FILTER_WORDS["activity"],
                maximum=points(MAX_DAYS),
            ),
            field="activity",
        )
    days = int(found[2])
    return (days, None) if found[1] == "idle" else (None, days)


def member_filter(
    args: Mapping[str, str], tier_codes: tuple[str, ...] | None = None
) -> MemberFilter:
    """The :class:`MemberFilter` of the members list's query arguments (``q``, ``status``,
    ``tier``, ``min``, ``max``, ``activity``, ``hold``, ``sort``, ``order``): the list and its
    CSV export both read it here. A value that is not one the list offers raises
    :class:`InvalidInput` saying what it may be; ``tier_codes`` are the tiers in force
    (None: the program has none, so no tier may be asked for)."""
    query = args.get("q", "")
    tier = args.get("tier", "").strip() or None
    if tier is not None and tier not in (tier_codes or ()):
        raise _refuse("tier", tier_codes or ())
    idle_days, active_days = _activity(args)
    balance_min, balance_max = _balance(args, "min"), _balance(args, "max")
    if balance_min is not None and balance_max is not None and balance_min > balance_max:
        raise InvalidInput(
            _(
                "The lowest balance (%(low)s) is above the highest (%(high)s).",
                low=points(balance_min),
                high=points(balance_max),
            ),
            field="min",
        )
    hold = _choice(args, "hold", tuple(HOLD_CHOICES))
    return MemberFilter(
        query=clean_text("q", query, max_length=MAX_SEARCH) if query.strip() else "",
        status=_choice(args, "status", MEMBER_FILTER_STATUSES),
        tier=tier,
        balance_min=balance_min,
        balance_max=balance_max,
        idle_days=idle_days,
        active_days=active_days,
        risk_hold=None if hold is None else HOLD_CHOICES[hold],
        sort=_choice(args, "sort", MEMBER_SORTS) or "external_id",  # type: ignore[arg-type]
        descending=_choice(args, "order", ORDERS) == "desc",
    )


Ladder = tuple[tuple[str, str], ...]


def tier_ladder(db: Database, program: ProgramInfo) -> Ladder | None:
    """``(code, name)`` of each tier in force, lowest first; None without tiers."""
    found = tiers_in_force(db, program=program.code)
    return None if found is None else tuple((t.code, t.name) for t in found[1].tiers)


def request_member_filter(
    program: ProgramInfo, db: Database, ladder: Ladder | None = None
) -> MemberFilter:
    """The members list's filter of this request (see :func:`member_filter`); ``ladder``:
    the tiers in force if already read."""
    ladder = ladder or tier_ladder(db, program)
    codes = None if ladder is None else tuple(code for code, _name in ladder)
    return member_filter(request.args, codes)


def filter_args(args: Mapping[str, str]) -> dict[str, str]:
    """The filter arguments of ``args`` that hold something (no page): what the list's
    headers, pages and export link carry on."""
    return {name: args[name] for name in FILTER_ARGS if args.get(name, "").strip()}


class MembersView(ConsoleView):
    """Member search and the member page (every role reads; operations link and adjust)."""

    @expose("/")
    def index(self) -> ResponseReturnValue:
        program = self.program()
        db = self.console.db
        ladder = tier_ladder(db, program)
        criteria = request_member_filter(program, db, ladder)  # InvalidInput: a readable 400
        page = page_number()
        found = search_members(
            db, program=program.code, criteria=criteria, page=page, per_page=PAGE
        )
        rows = found.members
        query = criteria.query
        if query and criteria == MemberFilter(query=query) and len(rows) == 1 and page == 1:
            return redirect(url_for(".member", id=rows[0].external_id))
        names = dict(ladder or ())
        lowest = ladder[0][1] if ladder else ""
        return self.render(
            "jifen/members.html",
            program=program,
            rows=rows,
            query=query,
            criteria=criteria,
            args=filter_args(request.args),
            page=page,
            pages=max(1, -(-found.total // PAGE)),
            total=found.total,
            buckets=BUCKET_WORDS,
            member_status_word=RISK_WORDS["member_status_word"],
            statuses=MEMBER_FILTER_STATUSES,
            ladder=ladder or (),
            tier_word=lambda code: names.get(code, code) if code else lowest,
            activity_choices=ACTIVITY_CHOICES,
            can_export=has_role(*OPERATIONS),
            zone_label=zone_label(program.timezone, db.clock.now()),
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
