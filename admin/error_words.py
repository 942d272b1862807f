"""The services' refusals in the console's language: :func:`error_text`.

Every refusal is a :class:`~loyalty.errors.LoyaltyError` with a stable ``code``, an English
``message`` and ``details``. An English page shows the message as it is. A Chinese page
shows one Chinese sentence per code, built from the catalogue (``errors.po``):

* a **shape** is a message a service writes, word for word, with ``%(name)s`` where it
  varies. When the message has that shape, its Chinese says all the English says, with the
  values from ``details`` (numbers with thousands separators, states in their words) or,
  for a value ``details`` lacks, from the message itself;
* otherwise the code's **sentence** (the first whose placeholders ``details`` fills) says
  what went wrong, and the English original follows it as ``（原文：…）``, so nothing the
  English said is lost when a service words a refusal in a way this table does not know.

A message the console wrote itself in the request's language (it holds Chinese outside
quoted values) is shown as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask_babel import gettext

from admin.form_words import N_
from admin.i18n import ENGLISH, current_locale
from admin.reward_words import state_word
from admin.risk_words import case_status_word, member_status_word
from admin.words import status_word
from loyalty.errors import LoyaltyError

# flask-babel is untyped: its gettext, typed.
_: Callable[..., str] = gettext


Words = Callable[[str], str]


@dataclass(frozen=True)
class Sentence:
    """What went wrong, for a message of no known shape; ``needs`` are the details it
    names (it is used only when all of them are there)."""

    msgid: str
    needs: tuple[str, ...] = ()


@dataclass(frozen=True)
class CodeWords:
    """The Chinese of one error code: its shapes (most specific first) and its sentences."""

    sentences: tuple[Sentence, ...]
    shapes: tuple[str, ...] = ()
    # How a value is shown, by its name (a state's word, a list's items' words).
    words: Mapping[str, Words] = field(default_factory=dict)


_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")


def shape_pattern(shape: str) -> re.Pattern[str]:
    """The regular expression a message of ``shape`` matches in full."""
    parts: list[str] = []
    seen: set[str] = set()
    last = 0
    for found in _PLACEHOLDER.finditer(shape):
        parts.append(re.escape(shape[last : found.start()]))
        name = found.group(1)
        if name is None:
            parts.append("%")
        elif name in seen:
            parts.append(f"(?P={name})")
        else:
            seen.add(name)
            parts.append(f"(?P<{name}>.+?)")
        last = found.end()
    parts.append(re.escape(shape[last:]))
    return re.compile("".join(parts), re.S)


def _listed(word: Words) -> Words:
    """A comma-separated list shown item by item in ``word``."""
    return lambda text: "、".join(word(item.strip()) for item in text.split(","))


_HOLD_STATES = {"released": N_("released (points hold)"), "expired": N_("expired (points hold)")}
_ADJUSTMENT_STATES = {
    "approved": N_("approved (adjustment request)"),
    "rejected": N_("rejected (adjustment request)"),
    "applied": N_("applied (adjustment request)"),
}
_REWARD_REASONS = {
    "retired": N_("retired (reward)"),
    "not_started": N_("not on offer yet (reward)"),
    "ended": N_("no longer on offer (reward)"),
    "hidden": N_("hidden (reward)"),
    "tier": N_("not for the member's tier (reward)"),
    "out_of_stock": N_("out of stock (reward)"),
    "limit_day": N_("daily limit reached (reward)"),
    "limit_month": N_("monthly limit reached (reward)"),
    "limit_lifetime": N_("lifetime limit reached (reward)"),
    "min_balance": N_("below the minimum balance (reward)"),
    "insufficient_points": N_("not enough points (reward)"),
}
_ROLES = {"sender": N_("the sender (transfer)"), "recipient": N_("the recipient (transfer)")}


def _table(words: Mapping[str, str]) -> Words:
    return lambda code: _(words[code]) if code in words else code


def _adjustment_state(code: str) -> str:
    return _(_ADJUSTMENT_STATES[code]) if code in _ADJUSTMENT_STATES else status_word(code)


WORDS: dict[str, CodeWords] = {
    "loyalty_error": CodeWords((Sentence(N_("Jifen refused this request.")),)),
    "invalid_input": CodeWords(
        (
            Sentence(N_("The value of %(field)s is not valid; nothing was saved."), ("field",)),
            Sentence(N_("The input is not valid; nothing was saved.")),
        )
    ),
    "invalid_amount": CodeWords(
        (
            Sentence(N_("The amount in %(field)s is not valid; nothing was saved."), ("field",)),
            Sentence(N_("The amount is not valid; nothing was saved.")),
        ),
        shapes=(
            N_(
                "a grant of %(points)s points would leave %(member)s holding %(after)s points; "
                "a member may hold at most %(most)s. Grant at most %(maximum)s points."
            ),
        ),
    ),
    "naive_datetime": CodeWords(
        (
            Sentence(N_("%(field)s has no time zone; give a time with its time zone."), ("field",)),
            Sentence(N_("A time has no time zone; give a time with its time zone.")),
        )
    ),
    "invalid_idempotency_key": CodeWords(
        (
            Sentence(N_("The idempotency key %(field)s is not valid."), ("field",)),
            Sentence(N_("The idempotency key is not valid.")),
        )
    ),
    "currency_mismatch": CodeWords(
        (
            Sentence(
                N_("The order's currency is not the program's (%(expected)s)."), ("expected",)
            ),
            Sentence(N_("The order's currency is not the program's.")),
        ),
        shapes=(N_("the order is in %(currency)s but the program counts in %(expected)s"),),
    ),
    "invalid_rule": CodeWords(
        (
            Sentence(
                N_("The setting %(field)s cannot work as given; nothing was saved."), ("field",)
            ),
            Sentence(N_("These rules or settings cannot work as given; nothing was saved.")),
        ),
        shapes=(
            N_("%(what)s must not be negative, got %(value)s"),
            N_("a rule change cannot take effect in the past"),
            N_("a tier change cannot take effect in the past"),
        ),
    ),
    "invalid_stripe_event": CodeWords(
        (
            Sentence(
                N_("The Stripe event lacks something Jifen needs, or a field has the wrong type.")
            ),
        )
    ),
    "invalid_text": CodeWords(
        (
            Sentence(
                N_(
                    "%(field)s holds a character that cannot be stored or shown unambiguously; "
                    "remove it."
                ),
                ("field",),
            ),
            Sentence(
                N_("The text holds a character that cannot be stored or shown unambiguously.")
            ),
        )
    ),
    "unknown_currency": CodeWords(
        (
            Sentence(N_("%(currency)s is not a currency Jifen knows."), ("currency",)),
            Sentence(N_("This is not a currency Jifen knows.")),
        ),
        shapes=(
            N_(
                "%(currency)s is not an active ISO 4217 currency; use the code your payments "
                "are in, such as CNY, USD, EUR or JPY"
            ),
        ),
    ),
    "not_found": CodeWords((Sentence(N_("What the request names does not exist.")),)),
    "program_not_found": CodeWords(
        (
            Sentence(N_("There is no program with the code %(program)s."), ("program",)),
            Sentence(N_("There is no program here.")),
        ),
        shapes=(N_("no program has the code '%(program)s'"),),
    ),
    "member_not_found": CodeWords(
        (
            Sentence(N_("There is no member %(member)s in this program."), ("member",)),
            Sentence(N_("There is no such member in this program.")),
        ),
        shapes=(
            N_("no member '%(member)s' in program '%(program)s'"),
            N_("no member '%(member)s' in program '%(program)s'; enrol the member first"),
        ),
    ),
    "hold_not_found": CodeWords(
        (
            Sentence(N_("There is no points hold for order %(order_id)s."), ("order_id",)),
            Sentence(N_("There is no points hold for this order.")),
        ),
        shapes=(N_("no points hold for order '%(order_id)s'"),),
    ),
    "order_not_found": CodeWords(
        (
            Sentence(N_("No points were earned for order %(order_id)s."), ("order_id",)),
            Sentence(N_("No points were earned for this order.")),
        ),
        shapes=(
            N_(
                "order '%(order_id)s' earned no points in program '%(program)s'; record the "
                "purchase before its refund"
            ),
        ),
    ),
    "reversal_not_found": CodeWords(
        (Sentence(N_("No refund or dispute with this id was recorded.")),),
        shapes=(
            N_("no refund '%(refund_id)s' in program '%(program)s'; record it first"),
            N_("no dispute '%(dispute_id)s' in program '%(program)s'; record it first"),
        ),
    ),
    "stripe_event_not_found": CodeWords(
        (
            Sentence(N_("No Stripe event %(event_id)s was received."), ("event_id",)),
            Sentence(N_("No Stripe event with this id was received.")),
        ),
        shapes=(N_("no Stripe event '%(event_id)s' was received for program '%(program)s'"),),
    ),
    "adjustment_request_not_found": CodeWords(
        (
            Sentence(N_("There is no adjustment request %(request_id)s."), ("request_id",)),
            Sentence(N_("There is no such adjustment request.")),
        ),
        shapes=(N_("no adjustment request %(request_id)s"),),
    ),
    "reward_not_found": CodeWords(
        (
            Sentence(N_("There is no reward %(reward)s in the catalog."), ("reward",)),
            Sentence(N_("There is no such reward in the catalog.")),
        ),
        shapes=(
            N_("no reward '%(reward)s' in the catalog"),
            N_("reward '%(reward)s' has no terms in force"),
        ),
    ),
    "reward_redemption_not_found": CodeWords(
        (
            Sentence(N_("There is no reward redemption %(redemption)s."), ("redemption",)),
            Sentence(N_("There is no such reward redemption.")),
        ),
        shapes=(N_("no reward redemption %(redemption)s in this program"),),
    ),
    "voucher_not_found": CodeWords(
        (
            Sentence(N_("There is no voucher %(voucher)s."), ("voucher",)),
            Sentence(N_("There is no such voucher.")),
        ),
        shapes=(N_("no voucher '%(voucher)s' in this program"),),
    ),
    "webhook_endpoint_not_found": CodeWords(
        (
            Sentence(N_("There is no webhook endpoint %(endpoint)s."), ("endpoint",)),
            Sentence(N_("There is no such webhook endpoint.")),
        ),
        shapes=(
            N_(
                "no webhook endpoint %(endpoint)s in this program; `jifen webhooks list` shows them"
            ),
        ),
    ),
    "webhook_delivery_not_found": CodeWords(
        (
            Sentence(N_("There is no webhook delivery %(delivery)s."), ("delivery",)),
            Sentence(N_("There is no such webhook delivery.")),
        ),
        shapes=(
            N_(
                "no webhook delivery %(delivery)s in this program; `jifen webhooks "
                "deliveries` lists them"
            ),
        ),
    ),
    "event_not_found": CodeWords(
        (
            Sentence(N_("There is no outbound event %(event)s."), ("event",)),
            Sentence(N_("There is no such outbound event.")),
        ),
        shapes=(N_("program '%(program)s' has no event '%(event)s'"),),
    ),
    "risk_case_not_found": CodeWords(
        (
            Sentence(N_("There is no risk case %(case_id)s."), ("case_id",)),
            Sentence(N_("There is no such risk case.")),
        ),
        shapes=(N_("no risk case %(case_id)s in this program"),),
    ),
    "conflict": CodeWords((Sentence(N_("This conflicts with the current state.")),)),
    "idempotency_conflict": CodeWords(
        (Sentence(N_("This idempotency key was already used for a different request.")),),
        shapes=(
            N_("the idempotency key '%(key)s' was already used for a different %(kind)s request"),
        ),
    ),
    "already_exists": CodeWords(
        (Sentence(N_("It already exists.")),),
        shapes=(
            N_("the catalog already has a reward '%(reward)s'"),
            N_("a program with the code '%(program)s' already exists"),
            N_("a user called '%(username)s' already exists"),
            N_("order '%(order_id)s' already has a points hold"),
        ),
    ),
    "hold_not_active": CodeWords(
        (
            Sentence(
                N_(
                    "The points hold for order %(order_id)s is no longer active; hold the "
                    "points again."
                ),
                ("order_id",),
            ),
            Sentence(N_("The points hold is no longer active; hold the points again.")),
        ),
        shapes=(
            N_("the hold for order '%(order_id)s' was %(status)s; hold the points again"),
            N_("the hold for order '%(order_id)s' was already captured; refund the order instead"),
        ),
        words={"status": _table(_HOLD_STATES)},
    ),
    "reversal_settled": CodeWords(
        (Sentence(N_("The refund or dispute was already settled the other way.")),)
    ),
    "adjustment_request_settled": CodeWords(
        (
            Sentence(N_("Adjustment request %(request_id)s was already settled."), ("request_id",)),
            Sentence(N_("The adjustment request was already settled.")),
        ),
        shapes=(N_("adjustment request %(request_id)s is already %(status)s"),),
        words={"status": _adjustment_state},
    ),
    "fulfilment_conflict": CodeWords(
        (
            Sentence(
                N_("Reward redemption %(redemption)s cannot move to that state."),
                ("redemption",),
            ),
            Sentence(N_("The reward redemption cannot move to that state.")),
        ),
        shapes=(
            N_(
                "redemption %(redemption)s is %(status)s; it cannot become %(target)s "
                "(possible: none (it is final))"
            ),
            N_(
                "redemption %(redemption)s is %(status)s; it cannot become %(target)s "
                "(possible: %(possible)s)"
            ),
            N_(
                "redemption %(redemption)s is a draw; a draw cannot be cancelled (cancel its "
                "prize instead)"
            ),
            N_(
                "voucher %(voucher)s was used on order %(order)s; release it from that order "
                "(refund the order) before cancelling"
            ),
        ),
        words={"status": state_word, "target": state_word, "possible": _listed(state_word)},
    ),
    "risk_case_closed": CodeWords(
        (
            Sentence(N_("Risk case %(case_id)s is already closed."), ("case_id",)),
            Sentence(N_("The risk case is already closed.")),
        ),
        shapes=(
            N_(
                "risk case %(case_id)s is already %(status)s; it reopens by itself if the rule "
                "trips again on new activity"
            ),
        ),
        words={"status": case_status_word},
    ),
    "rule_violation": CodeWords((Sentence(N_("The program's rules do not allow this.")),)),
    "insufficient_points": CodeWords(
        (
            Sentence(
                N_("The member has %(available)s points available; %(needed)s are needed."),
                ("available", "needed"),
            ),
            Sentence(
                N_("The member has %(available)s points available, fewer than %(requested)s."),
                ("available", "requested"),
            ),
            Sentence(N_("The member does not have enough available points.")),
        ),
        shapes=(
            N_("reward '%(reward)s' costs %(needed)s points; the member has %(available)s"),
            N_(
                "%(member)s has %(available)s points that can be deducted now, not "
                "%(requested)s: a manual deduction never takes a balance below zero; deduct "
                "at most %(most)s points."
            ),
            N_(
                "%(member)s has %(available)s points that can be deducted now, not "
                "%(requested)s: a manual deduction never takes a balance below zero; there is "
                "nothing to deduct."
            ),
            N_(
                "member '%(member)s' has %(available)s available points; the transfer needs "
                "%(total)s (%(requested)s plus a fee of %(fee)s); send fewer points"
            ),
            N_("the member has %(available)s available points, %(requested)s are needed"),
        ),
    ),
    "redemption_limit": CodeWords(
        (
            Sentence(
                N_(
                    "This use of points is below the program's minimum or above the share of "
                    "the order points may pay."
                )
            ),
        ),
        shapes=(
            N_("points can be used on orders of at least %(min_order_minor)s minor units"),
            N_("at least %(min_points)s points must be used at once"),
            N_(
                "%(points)s points is not a whole amount of money; use a multiple of %(step)s "
                "such as %(such_as)s"
            ),
            N_(
                "points may pay at most %(share)s%% of the order (%(max_discount_minor)s minor "
                "units)"
            ),
        ),
    ),
    "member_inactive": CodeWords(
        (
            Sentence(
                N_("Member %(member)s is not active: they cannot earn, spend or receive points."),
                ("member",),
            ),
            Sentence(N_("The member is not active: they cannot earn, spend or receive points.")),
        ),
        shapes=(
            N_("member '%(member)s' is %(status)s"),
            N_(
                "member '%(member)s' is %(status)s; reopen the member before adjusting their points"
            ),
            N_("the %(role)s '%(member)s' is %(status)s; reopen the member to transfer"),
        ),
        words={"status": member_status_word, "role": _table(_ROLES)},
    ),
    "member_frozen": CodeWords(
        (
            Sentence(
                N_(
                    "Member %(member)s is frozen: no earning, spending or transfers until "
                    "operations unfreeze the account."
                ),
                ("member",),
            ),
            Sentence(
                N_(
                    "The account is frozen: no earning, spending or transfers until operations "
                    "unfreeze it."
                )
            ),
        ),
        shapes=(
            N_(
                "member '%(member)s' is frozen: no earning, spending or transfers until "
                "operations unfreeze the account"
            ),
        ),
    ),
    "transfer_not_allowed": CodeWords(
        (Sentence(N_("This transfer is not allowed.")),),
        shapes=(
            N_("member '%(member)s' cannot transfer points to themself; choose another recipient"),
            N_(
                "program '%(program)s' does not allow transfers; enable them with "
                "update_program(transfers_enabled=True)"
            ),
        ),
    ),
    "transfer_limit": CodeWords(
        (
            Sentence(
                N_("A transfer of %(requested)s points is outside the limit of %(limit)s."),
                ("requested", "limit"),
            ),
            Sentence(N_("The transfer is outside the program's limits.")),
        ),
        shapes=(
            N_(
                "a transfer is at least %(limit)s points, got %(requested)s; send %(limit)s or more"
            ),
            N_(
                "a transfer is at most %(limit)s points, got %(requested)s; split it into "
                "smaller ones"
            ),
            N_(
                "%(requested)s points would pass '%(member)s''s daily limit of %(limit)s points; "
                "%(remaining)s left today (%(day)s); send at most that or wait for the next day"
            ),
        ),
    ),
    "clearing_not_due": CodeWords(
        (
            Sentence(
                N_("The %(year)s clearing of program %(program)s is not due yet."),
                ("year", "program"),
            ),
            Sentence(N_("The year-end clearing is not due yet.")),
        )
    ),
    "self_approval": CodeWords(
        (
            Sentence(
                N_(
                    "Whoever asked for adjustment request %(request_id)s cannot approve it; "
                    "another operations user must."
                ),
                ("request_id",),
            ),
            Sentence(
                N_(
                    "Whoever asked for an adjustment cannot approve it; another operations "
                    "user must."
                )
            ),
        ),
        shapes=(
            N_(
                "%(approver)s asked for adjustment request %(request_id)s and cannot approve "
                "it; another operations user must"
            ),
        ),
    ),
    "approval_required": CodeWords(
        (
            Sentence(
                N_(
                    "Adjustments above %(threshold)s points need a second person's approval; "
                    "request this one in the console."
                ),
                ("threshold",),
            ),
            Sentence(
                N_("This adjustment needs a second person's approval; request it in the console.")
            ),
        ),
        shapes=(
            N_(
                "adjustments above %(threshold)s points need a second person's approval; "
                "request this one in the console (Adjustments)"
            ),
        ),
    ),
    "not_authenticated": CodeWords(
        (
            Sentence(
                N_("Not authenticated: the key or token is missing, unknown, revoked or expired.")
            ),
        )
    ),
    "permission_denied": CodeWords((Sentence(N_("This credential may not do this.")),)),
    "rate_limited": CodeWords(
        (
            Sentence(
                N_("Too many requests; wait %(retry_after)s seconds and try again."),
                ("retry_after",),
            ),
            Sentence(N_("Too many requests; wait a moment and try again.")),
        )
    ),
    "configuration_error": CodeWords((Sentence(N_("This deployment is not set up.")),)),
    "schema_missing": CodeWords(
        (Sentence(N_("The database has no Jifen schema, or an older one; run jifen db upgrade.")),)
    ),
    "database_unavailable": CodeWords((Sentence(N_("The database cannot be reached.")),)),
    "server_unreachable": CodeWords(
        (
            Sentence(
                N_(
                    "The Jifen server cannot be reached; a write may be retried with the same "
                    "idempotency key."
                )
            ),
        )
    ),
    "out_of_stock": CodeWords(
        (
            Sentence(N_("Reward %(reward)s has too few left; no points were taken."), ("reward",)),
            Sentence(N_("The reward has too few left; no points were taken.")),
        ),
        shapes=(
            N_("reward '%(reward)s' has fewer than %(quantity)s left"),
            N_("reward '%(reward)s' has no coupons left"),
        ),
    ),
    "reward_unavailable": CodeWords(
        (
            Sentence(N_("Reward %(reward)s cannot be redeemed now."), ("reward",)),
            Sentence(N_("The reward cannot be redeemed now.")),
        ),
        shapes=(N_("reward '%(reward)s' cannot be redeemed now: %(reasons)s"),),
        words={"reasons": _listed(_table(_REWARD_REASONS))},
    ),
    "reward_limit": CodeWords(
        (
            Sentence(N_("The member reached their limit of reward %(reward)s."), ("reward",)),
            Sentence(N_("The member reached their limit of this reward.")),
        ),
        shapes=(
            N_("you reached the limit of reward '%(reward)s' per day"),
            N_("you reached the limit of reward '%(reward)s' per month"),
            N_("you reached the limit of reward '%(reward)s' per lifetime"),
        ),
    ),
    "voucher_not_usable": CodeWords(
        (
            Sentence(N_("Voucher %(voucher)s cannot pay for this order."), ("voucher",)),
            Sentence(N_("The voucher cannot pay for this order.")),
        ),
        shapes=(
            N_("voucher %(voucher)s was cancelled"),
            N_("voucher %(voucher)s was used on order %(order)s, not %(other)s"),
            N_("voucher %(voucher)s was used on order %(order)s"),
            N_("voucher %(voucher)s belongs to another member"),
            N_("voucher %(voucher)s is valid from %(day)s"),
            N_("voucher %(voucher)s expired on %(day)s"),
        ),
    ),
    "risk_blocked": CodeWords(
        (
            Sentence(
                N_("Risk rule %(rule)s refused this for member %(member)s; nothing was written."),
                ("rule", "member"),
            ),
            Sentence(N_("A risk rule refused this; nothing was written.")),
        )
    ),
}
ORIGINAL = N_("%(sentence)s (original: %(message)s)")
_PATTERNS = {shape: shape_pattern(shape) for words in WORDS.values() for shape in words.shapes}
# Shapes tried longest first, so a shape never swallows a longer one's extra words.
_BY_LENGTH = {
    code: sorted(words.shapes, key=lambda s: len(_PLACEHOLDER.sub("", s)), reverse=True)
    for code, words in WORDS.items()
}
# Chinese characters outside quoted values: a message already in the reader's language.
_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|“[^”]*”")


def error_text(exc: LoyaltyError) -> str:
    """The refusal ``exc`` in the request's language (see the module's docstring)."""
    if current_locale() == ENGLISH:
        return exc.message
    return chinese_text(exc)


def chinese_text(exc: LoyaltyError) -> str:
    """The refusal ``exc`` in Chinese."""
    code = code_of(exc)
    words = WORDS[code]
    for shape in _BY_LENGTH[code]:
        found = _PATTERNS[shape].fullmatch(exc.message)
        if found:
            return _(shape, **_values(found.groupdict(), exc.details, words.words))
    if _HAN.search(_QUOTED.sub("", exc.message)):
        return exc.message
    sentence = next(
        s for s in words.sentences if all(exc.details.get(n) is not None for n in s.needs)
    )
    said = _(sentence.msgid, **_values({}, exc.details, words.words))
    return _(ORIGINAL, sentence=said, message=exc.message)


def code_of(exc: LoyaltyError) -> str:
    """``exc``'s code if it has words, else the code of the nearest error class above it."""
    for cls in type(exc).__mro__:
        code = getattr(cls, "code", None)
        if isinstance(code, str) and code in WORDS:
            return code
    return "loyalty_error"


def _values(
    captured: Mapping[str, str], details: Mapping[str, Any], words: Mapping[str, Words]
) -> dict[str, str]:
    """The shown value of every placeholder: from ``details`` where it has one, else as the
    message said it; in its word where ``words`` has one."""
    shown: dict[str, str] = {}
    for name in {*captured, *details}:
        value = details.get(name)
        text = _shown(value) if value is not None else captured.get(name, "")
        word = words.get(name)
        shown[name] = word(text) if word and text else text
    return shown


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence):
        return ", ".join(_shown(item) for item in value)
    return str(value)
