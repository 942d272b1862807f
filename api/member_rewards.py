"""The member page's rewards (积分商城): the catalog as this member sees it, redeeming without
JavaScript, and "my rewards" with their codes, vouchers and fulfilment.

Redeeming is two plain HTML forms: the catalog's form per reward (quantity, and a shipping
address for an item) posts to a confirmation that states the points, whose button posts the
redemption; the answer is a redirect to the redemption's own page (post/redirect/get), so a
reload shows it again instead of posting again. Each catalog form carries an idempotency key
chosen when the page was rendered and a nonce signing that key, the reward and the member
token with the server's secret: a double submit redeems once, and a form that did not come
from a page this server rendered is refused (``Origin`` cannot tell: under
``Referrer-Policy: no-referrer`` browsers send ``Origin: null`` with a form post).

The services decide everything (:func:`~loyalty.services.rewards.list_rewards`,
:func:`~loyalty.services.reward_redemptions.redeem_reward`); a refusal is a message in the
page, in the member's language, never JSON.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace

from flask import g, redirect, render_template, request
from flask.typing import ResponseReturnValue
from itsdangerous import BadSignature, URLSafeSerializer

from api.context import context, database
from api.member_page import (
    Formats,
    _error_page,
    blp,
    language,
    link_here,
    say,
    tabs,
)
from api.member_texts import HTML_LANG
from loyalty.domain.rewards import MAX_QUANTITY
from loyalty.errors import (
    IdempotencyConflict,
    InsufficientPoints,
    InvalidInput,
    LoyaltyError,
    OutOfStock,
    RewardLimit,
    RewardRedemptionNotFound,
    RewardUnavailable,
)
from loyalty.services.api_keys import list_origins
from loyalty.services.member_tokens import MemberClaims, read_member_token
from loyalty.services.programs import get_program
from loyalty.services.queries import balance
from loyalty.services.results import ProgramInfo
from loyalty.services.reward_redemptions import (
    SHIPPING_FIELDS,
    get_redemption,
    list_redemptions,
    redeem_reward,
)
from loyalty.services.reward_results import (
    RewardEventInfo,
    RewardOffer,
    RewardRedemptionResult,
    VoucherInfo,
)
from loyalty.services.rewards import list_rewards
from loyalty.services.uow import UnitOfWork, unit_of_work

MY_REWARDS_PAGE_SIZE = 10
_NONCE_SALT = "jifen.member-page.redeem-form.v1"
_KEY_PREFIX = "member-page:"
_SHOWN_SHIPPING = ("name", "phone", "address", "city", "postcode")
_REQUIRED_SHIPPING = ("name", "phone", "address")


# --- what the views read ------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """The token's member and what every rewards view shows around its content."""

    claims: MemberClaims
    program: ProgramInfo
    available: int

    @property
    def code(self) -> str:
        return self.claims.member


def read_member(uow: UnitOfWork, token: str) -> Member:
    """The token's member (or :class:`NotAuthenticated`), its program and available points;
    the program's origins may frame the answer."""
    claims = read_member_token(uow, token, secret=context().secret)
    g.member_frame_origins = tuple(list_origins(uow, program=claims.program))
    points = balance(uow, program=claims.program, member=claims.member)
    return Member(claims, get_program(uow, claims.program), points.available)


# --- the form's key and nonce ---------------------------------------------------------------


def _signer() -> URLSafeSerializer:
    return URLSafeSerializer(
        context().secret, salt=_NONCE_SALT, signer_kwargs={"digest_method": hashlib.sha256}
    )


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def form_nonce(token: str, key: str, reward: str) -> str:
    """The nonce of a redeem form rendered for ``token`` with ``key`` for ``reward``."""
    return _signer().dumps({"t": _token_digest(token), "k": key, "r": reward})


def nonce_fits(nonce: str, token: str, key: str, reward: str) -> bool:
    """Whether ``nonce`` was signed here for this token, key and reward."""
    try:
        signed = _signer().loads(nonce)
    except BadSignature:
        return False
    return bool(signed == {"t": _token_digest(token), "k": key, "r": reward})


class FormRefused(Exception):
    """A posted form without a nonce this server signed for it."""


@dataclass(frozen=True)
class RedeemForm:
    """A posted redeem form, its nonce checked; quantity and address as typed."""

    reward: str
    key: str
    nonce: str
    quantity_text: str
    shipping: dict[str, str]

    @classmethod
    def posted(cls, token: str) -> RedeemForm:
        form = request.form
        reward, key, nonce = form.get("reward", ""), form.get("key", ""), form.get("nonce", "")
        if not (reward and key and nonce and nonce_fits(nonce, token, key, reward)):
            raise FormRefused
        shipping = {
            name: form.get(f"ship_{name}", "").strip()
            for name in SHIPPING_FIELDS
            if form.get(f"ship_{name}", "").strip()
        }
        return cls(reward, key, nonce, form.get("quantity", "1").strip(), shipping)

    def quantity(self) -> int | None:
        """The quantity asked for, or ``None`` when it is not a whole number in range."""
        if not self.quantity_text.isdigit():
            return None
        value = int(self.quantity_text)
        return value if 1 <= value <= MAX_QUANTITY else None


# --- the catalog ------------------------------------------------------------------------


@dataclass(frozen=True)
class RewardCard:
    """A reward as the catalog shows it, with a fresh form when the member can redeem it."""

    code: str
    kind: str
    kind_label: str
    name: str
    description: str
    image: str | None
    price: str
    facts: tuple[str, ...]
    reasons: tuple[str, ...]
    most: int
    key: str
    nonce: str


def image_of(offer: RewardOffer) -> str | None:
    """The reward's picture if the page may show it: an https address or this server's path
    (an http one would be blocked as mixed content, so none is shown)."""
    url = offer.image_url
    return url if url.startswith(("https://", "/")) and not url.startswith("//") else None


def reasons_in_words(offer: RewardOffer, available: int, formats: Formats) -> tuple[str, ...]:
    """Why the member cannot redeem ``offer`` now, in words (each reason code once)."""
    words = []
    for reason in offer.reasons:
        if reason == "not_started" and offer.active_from is not None:
            words.append(say("reason_not_started", date=formats.moment(offer.active_from)))
        elif reason == "min_balance":
            words.append(say("reason_min_balance", points=formats.number(offer.min_balance)))
        elif reason == "insufficient_points":
            missing = formats.number(max(offer.points - available, 1))
            words.append(say("reason_insufficient_points", points=missing))
        else:
            words.append(say(f"reason_{reason}"))
    return tuple(words)


def card(offer: RewardOffer, member: Member, token: str, formats: Formats) -> RewardCard:
    facts = []
    if offer.kind == "voucher":
        money = formats.money(offer.voucher_amount_minor, offer.currency)
        days = formats.number(offer.voucher_valid_days)
        facts.append(say("reward_voucher_value", money=money, days=days))
    if offer.stock_left is not None and offer.kind != "draw":
        facts.append(say("reward_stock", count=formats.number(offer.stock_left)))
    most = MAX_QUANTITY if offer.kind != "draw" else 1
    if offer.stock_left is not None:
        most = min(most, max(offer.stock_left, 1))
    if offer.points:
        most = min(most, max(member.available // offer.points, 1))
    key = secrets.token_urlsafe(18)
    return RewardCard(
        code=offer.code,
        kind=offer.kind,
        kind_label=say(f"kind_{offer.kind}"),
        name=offer.name,
        description=offer.description,
        image=image_of(offer),
        price=say("reward_price", points=formats.number(offer.points)),
        facts=tuple(facts),
        reasons=reasons_in_words(offer, member.available, formats),
        most=most,
        key=key,
        nonce=form_nonce(token, key, offer.code),
    )


def render_catalog(
    token: str, problem: str | None = None, status: int = 200, typed: RedeemForm | None = None
) -> ResponseReturnValue:
    """The catalog for the token's member, with ``problem`` above it if a redemption was
    refused (and the address as typed, so it need not be typed again)."""
    with unit_of_work(database()) as uow:
        member = read_member(uow, token)
        offers = list_rewards(uow, program=member.claims.program, member=member.code)
    formats = Formats(language(), member.program.timezone)
    g.member_shows_images = True
    g.member_posts_forms = True
    html = render_template(
        "member/rewards.html",
        **_frame(member, formats, "member_page.rewards"),
        cards=[card(o, member, token, formats) for o in offers],
        problem=problem,
        typed=typed.shipping if typed else {},
        token=token,
        shipping_fields=_SHOWN_SHIPPING,
        required=_REQUIRED_SHIPPING,
    )
    return html, status


def _frame(
    member: Member, formats: Formats, tab: str, here: str | None = None, **args: object
) -> dict[str, object]:
    """What every rewards template needs: language, program, tabs (``tab`` current), the
    balance line, and this view in the other language (``here`` with ``args``)."""
    lang = language()
    return {
        "lang": lang,
        "html_lang": HTML_LANG[lang],
        "say": say,
        "program": member.program,
        "tabs": tabs(tab),
        "other_language": link_here(here or tab, lang="en" if lang == "zh" else "zh", **args),
        "balance_line": say("rewards_balance", points=formats.number(member.available)),
        "zone": formats.zone_name(),
    }


@blp.get("/rewards")
def rewards() -> ResponseReturnValue:
    """The rewards this member can redeem, and why not for the others."""
    return render_catalog(request.args.get("token", ""))


# --- confirming and redeeming ---------------------------------------------------------------


def _offer(member: Member, uow: UnitOfWork, code: str) -> RewardOffer | None:
    offers = list_rewards(uow, program=member.claims.program, member=member.code)
    return next((o for o in offers if o.code == code), None)


def _form_problem(form: RedeemForm, offer: RewardOffer | None) -> str | None:
    """What is wrong with the form before asking the services, in words."""
    if offer is None:
        return say("problem_gone")
    if form.quantity() is None or (offer.kind == "draw" and form.quantity() != 1):
        most = 1 if offer.kind == "draw" else MAX_QUANTITY
        return say("problem_quantity", most=most)
    if offer.kind == "item" and not all(form.shipping.get(f) for f in _REQUIRED_SHIPPING):
        return say("problem_shipping")
    return None


@blp.post("/rewards/confirm")
def confirm() -> ResponseReturnValue:
    """The points a redemption will take, and a button that redeems."""
    token = request.form.get("token", "")
    with unit_of_work(database()) as uow:
        member = read_member(uow, token)
        form = RedeemForm.posted(token)
        offer = _offer(member, uow, form.reward)
    problem = _form_problem(form, offer)
    if problem is not None or offer is None:
        return render_catalog(token, problem, 422, form)
    quantity = form.quantity() or 1
    formats = Formats(language(), member.program.timezone)
    total = offer.points * quantity
    if total > member.available:
        needed, has = formats.number(total), formats.number(member.available)
        problem = say("problem_points", name=offer.name, needed=needed, available=has)
        return render_catalog(token, problem, 422, form)
    g.member_shows_images = True
    g.member_posts_forms = True
    return render_template(
        "member/confirm.html",
        **_frame(member, formats, "member_page.rewards"),
        token=token,
        form=form,
        offer=offer,
        image=image_of(offer),
        question=say(
            "confirm_question",
            points=formats.number(total),
            quantity=formats.number(quantity),
            name=offer.name,
        ),
        after=say(
            "confirm_balance",
            available=formats.number(member.available),
            left=formats.number(member.available - total),
        ),
        address=_address(form.shipping) if offer.kind == "item" else None,
    )


def _address(shipping: Mapping[str, str] | None) -> str | None:
    if not shipping:
        return None
    return ", ".join(shipping[f] for f in _SHOWN_SHIPPING if shipping.get(f))


class Refused(Exception):
    """A redemption refused, in words, with the status of the page that says so."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.message, self.status = message, status


@blp.post("/rewards/redeem")
def redeem() -> ResponseReturnValue:
    """Redeem, then show the redemption on its own page (post/redirect/get). A refusal
    leaves the unit of work by its exception, so nothing of it is committed."""
    token = request.form.get("token", "")
    form: RedeemForm | None = None
    try:
        with unit_of_work(database()) as uow:
            member = read_member(uow, token)
            form = RedeemForm.posted(token)
            done = _redeem(uow, member, form)
    except Refused as refused:
        return render_catalog(token, refused.message, refused.status, form)
    target = link_here("member_page.my_reward", redemption=done.id, done=1)
    return redirect(target, code=303)


def _redeem(uow: UnitOfWork, member: Member, form: RedeemForm) -> RewardRedemptionResult:
    offer = _offer(member, uow, form.reward)
    problem = _form_problem(form, offer)
    if problem is not None or offer is None:
        raise Refused(problem or say("problem_gone"), 422)
    try:
        return redeem_reward(
            uow,
            program=member.claims.program,
            member=member.code,
            reward=offer.code,
            quantity=form.quantity() or 1,
            idempotency_key=_KEY_PREFIX + form.key,
            shipping=form.shipping if offer.kind == "item" else None,
        )
    except (OutOfStock, RewardLimit, InsufficientPoints, RewardUnavailable) as error:
        raise Refused(_refusal(error, offer, member), 409) from error
    except IdempotencyConflict as error:
        raise Refused(say("problem_used_form"), 409) from error
    except InvalidInput as error:
        raise Refused(say("problem_shipping"), 422) from error


def _refusal(error: LoyaltyError, offer: RewardOffer, member: Member) -> str:
    """A refused redemption in words."""
    formats = Formats(language(), member.program.timezone)
    if isinstance(error, OutOfStock):
        return say("problem_out_of_stock", name=offer.name)
    if isinstance(error, RewardLimit):
        return say("problem_limit", name=offer.name)
    if isinstance(error, InsufficientPoints):
        needed = formats.number(int(error.details.get("needed", offer.points)))
        has = formats.number(int(error.details.get("available", member.available)))
        return say("problem_points", name=offer.name, needed=needed, available=has)
    reasons = tuple(str(r) for r in error.details.get("reasons", ()))
    shown = replace(offer, reasons=reasons)
    why = "; ".join(reasons_in_words(shown, member.available, formats))
    return say("problem_unavailable", name=offer.name, why=why)


@blp.errorhandler(FormRefused)
def form_refused(error: FormRefused) -> ResponseReturnValue:
    """A post without this server's nonce: nothing redeemed, a page saying what to do."""
    del error
    return _error_page(403, "form_refused_title", "form_refused_body")


@blp.errorhandler(RewardRedemptionNotFound)
def redemption_not_found(error: RewardRedemptionNotFound) -> ResponseReturnValue:
    """Another member's redemption, or none: the same answer, so ids reveal nothing."""
    del error
    return _error_page(404, "not_found_title", "not_found_body")


# --- my rewards -----------------------------------------------------------------------------


@dataclass(frozen=True)
class VoucherLine:
    code: str
    worth: str
    status: str
    tone: str


@dataclass(frozen=True)
class RedemptionCard:
    """A redemption as the member sees it: what, when, for how many points, where it
    stands, and what it gave."""

    id: int
    name: str
    spent: str
    when: str
    at: str
    state: str
    tone: str
    codes: tuple[str, ...]
    vouchers: tuple[VoucherLine, ...]
    draw: str | None
    prize: RedemptionCard | None
    ship_to: str | None
    events: tuple[str, ...]


_TONES = {"cancelled": "off", "delivered": "done"}


def _state(result: RewardRedemptionResult) -> str:
    if result.status == "issued" and result.kind == "item":
        return say("state_issued_item")
    if result.kind == "draw":  # a draw is final once drawn: its prize has its own state
        return say("state_drawn")
    return say(f"state_{result.status}")


def _voucher_line(voucher: VoucherInfo, now: dt.datetime, formats: Formats) -> VoucherLine:
    last_day = formats.day(formats.local_day(voucher.valid_until_at - dt.timedelta(seconds=1)))
    if voucher.status == "used":
        status, tone = say("voucher_used", order=voucher.order_id or ""), "done"
    elif voucher.status == "cancelled":
        status, tone = say("voucher_cancelled"), "off"
    elif now >= voucher.valid_until_at:
        status, tone = say("voucher_expired", date=last_day), "off"
    else:
        status, tone = say("voucher_active", date=last_day), "open"
    worth = say("voucher_line", money=formats.money(voucher.amount_minor, voucher.currency))
    return VoucherLine(voucher.code, worth, status, tone)


def _event(event: RewardEventInfo, formats: Formats) -> str | None:
    when = formats.moment(event.created_at)
    if event.event == "status" and event.to_status in ("packing", "shipped", "delivered"):
        return say(f"event_{event.to_status}", when=when)
    if event.event == "status" and event.to_status == "cancelled":
        words = say("event_cancelled", when=when)
        return f"{words} · {say('detail_reason', reason=event.reason)}" if event.reason else words
    if event.event in ("voucher_used", "voucher_released"):
        return say(f"event_{event.event}", when=when, order=event.order_id or "")
    return None


def _draw(result: RewardRedemptionResult) -> str | None:
    if result.draw is None:
        return None
    outcome = result.draw
    prize = outcome.label or (result.prize.name if result.prize else outcome.drawn or "")
    if outcome.reason == "won":
        return say("draw_won", prize=prize)
    if outcome.drawn is not None:
        return say("draw_ran_out", prize=prize)
    return say("draw_no_prize")


def redemption_card(
    result: RewardRedemptionResult, now: dt.datetime, formats: Formats
) -> RedemptionCard:
    spent = say(
        "mine_spent", quantity=formats.number(result.quantity), points=formats.number(result.points)
    )
    events = (_event(e, formats) for e in result.events)
    return RedemptionCard(
        id=result.id,
        name=result.name,
        spent=spent,
        when=say("mine_redeemed_on", when=formats.moment(result.created_at)),
        at=result.created_at.isoformat(),
        state=_state(result),
        tone=_TONES.get(result.status, "open"),
        codes=result.codes,
        vouchers=tuple(_voucher_line(v, now, formats) for v in result.vouchers),
        draw=_draw(result),
        prize=redemption_card(result.prize, now, formats) if result.prize else None,
        ship_to=_address(result.shipping),
        events=tuple(e for e in events if e),
    )


def _cursor() -> int | None:
    cursor = request.args.get("cursor", type=int)
    return cursor if cursor is not None and 0 < cursor < 2**63 else None


@blp.get("/rewards/mine")
def my_rewards() -> ResponseReturnValue:
    """The member's redemptions, newest first, page by page (a draw's prize under it)."""
    cursor = _cursor()
    with unit_of_work(database()) as uow:
        member = read_member(uow, request.args.get("token", ""))
        found = list_redemptions(
            uow,
            program=member.claims.program,
            member=member.code,
            limit=MY_REWARDS_PAGE_SIZE,
            cursor=cursor,
        )
        results = [
            get_redemption(uow, program=member.claims.program, redemption=r.id)
            for r in found.items
            if r.parent is None
        ]
        now = uow.clock.now()
    formats = Formats(language(), member.program.timezone)
    next_cursor = found.next_cursor
    return render_template(
        "member/mine.html",
        **_frame(member, formats, "member_page.my_rewards"),
        cards=[redemption_card(r, now, formats) for r in results],
        older=link_here("member_page.my_rewards", cursor=next_cursor) if next_cursor else None,
        latest=link_here("member_page.my_rewards") if cursor is not None else None,
    )


@blp.get("/rewards/mine/<int:redemption>")
def my_reward(redemption: int) -> ResponseReturnValue:
    """One of the member's redemptions (right after redeeming it: with a word of success)."""
    with unit_of_work(database()) as uow:
        member = read_member(uow, request.args.get("token", ""))
        result = get_redemption(uow, program=member.claims.program, redemption=redemption)
        now = uow.clock.now()
    if result.member != member.code:
        raise RewardRedemptionNotFound("not this member's redemption", redemption=redemption)
    formats = Formats(language(), member.program.timezone)
    done = request.args.get("done") == "1"
    return render_template(
        "member/redemption.html",
        **_frame(
            member,
            formats,
            "member_page.my_rewards",
            "member_page.my_reward",
            redemption=redemption,
        ),
        item=redemption_card(result, now, formats),
        done=say("done_body", points=formats.number(result.points)) if done else None,
    )
