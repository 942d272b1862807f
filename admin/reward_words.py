"""What the console calls the codes of the reward catalog and its redemptions, in the
request's language: reward kinds, a reward's status in the catalog, fulfilment states,
voucher statuses, draw outcomes, redemption events, a window that is not open and the
fields of a shipping address.

The codes stay what they are in the database and the API (``voucher``, ``packing``); the
catalog, reward, fulfilment and redemption pages show their words (:data:`TEMPLATE_WORDS`).
A code without words is shown with spaces for its underscores, never as an empty cell.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from flask_babel import lazy_gettext as _l

# Each word is a lazy string, read in the language of the request that shows it.

KIND_WORDS: dict[str, object] = {
    "coupon": _l("coupon"),
    "voucher": _l("voucher"),
    "item": _l("item"),
    "draw": _l("draw"),
}
# A reward as members find it: in the catalog, left out of it, or no longer redeemable.
STATUS_WORDS: dict[str, object] = {
    "visible": _l("visible"),
    "hidden": _l("hidden"),
    "retired": _l("retired"),
}
STATE_WORDS: dict[str, object] = {
    "issued": _l("issued"),
    "packing": _l("packing"),
    "shipped": _l("shipped"),
    "delivered": _l("delivered"),
    "cancelled": _l("cancelled"),
}
VOUCHER_WORDS: dict[str, object] = {
    "active": _l("active"),
    "used": _l("used"),
    "expired": _l("expired"),
}
# Why a draw awarded what it did (``DrawOutcome.reason``).
DRAW_WORDS: dict[str, object] = {
    "won": _l("won"),
    "no_prize": _l("no prize"),
    "prize_retired": _l("the prize is retired"),
    "prize_out_of_stock": _l("the prize is out of stock"),
}
# A redemption's events other than a change of state.
EVENT_WORDS: dict[str, object] = {
    "redeemed": _l("redeemed"),
    "voucher_used": _l("voucher used"),
    "voucher_released": _l("voucher released"),
}
# ``not started`` and ``ended``: a reward whose window is not open now.
WINDOW_WORDS: dict[str, object] = {
    "not started": _l("not started"),
    "ended": _l("ended"),
}
SHIPPING_WORDS: dict[str, object] = {
    "name": _l("recipient"),
    "phone": _l("phone"),
    "address": _l("address"),
    "city": _l("city"),
    "postcode": _l("postcode"),
    "country": _l("country"),
}


def _word(words: Mapping[str, object], code: str | None) -> str:
    if not code:
        return ""
    found = words.get(code)
    return str(found) if found is not None else code.replace("_", " ")


def kind_word(kind: str | None) -> str:
    """A reward kind: ``coupon`` reads 券码 in Chinese."""
    return _word(KIND_WORDS, kind)


def status_word(status: str | None) -> str:
    """A reward's status in the catalog: visible, hidden or retired."""
    return _word(STATUS_WORDS, status)


def state_word(state: str | None) -> str:
    """A redemption's fulfilment state: issued, packing, shipped, delivered or cancelled."""
    return _word(STATE_WORDS, state)


def voucher_word(status: str | None) -> str:
    """A voucher's status: active, used or expired."""
    return _word(VOUCHER_WORDS, status)


def draw_word(reason: str | None) -> str:
    """Why a draw awarded its prize, or nothing."""
    return _word(DRAW_WORDS, reason)


def event_word(event: str | None) -> str:
    """A redemption event that is not a change of state."""
    return _word(EVENT_WORDS, event)


def window_word(state: str | None) -> str:
    """``not started`` or ``ended`` (blank for a window open now)."""
    return _word(WINDOW_WORDS, state)


def shipping_word(field: str | None) -> str:
    """A field of a shipping address."""
    return _word(SHIPPING_WORDS, field)


# The words every reward and fulfilment page is rendered with.
TEMPLATE_WORDS: dict[str, Callable[[str | None], str]] = {
    "reward_kind_word": kind_word,
    "reward_status_word": status_word,
    "fulfilment_state_word": state_word,
    "voucher_status_word": voucher_word,
    "draw_reason_word": draw_word,
    "redemption_event_word": event_word,
    "window_state_word": window_word,
    "shipping_field_word": shipping_word,
}
