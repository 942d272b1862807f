"""What the console calls each outbound event type, in words staff read, in the request's
language: its name (``Points earned``) and what it says (``Points earned by a purchase…``).

Keys are the outbox's event types (:data:`loyalty.events.outbox.EVENT_TYPES`); the English
descriptions here are the outbox's own, capitalised (a test keeps them in step). A type added
to the outbox before its words here shows its code with spaces and the outbox's description,
never an empty cell.
"""

from __future__ import annotations

from flask_babel import LazyString
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from loyalty.events.outbox import EVENT_TYPES

EVENT_WORDS: dict[str, LazyString] = {
    "points.earned": _l("Points earned"),
    "points.pending_matured": _l("Pending points available"),
    "points.redeemed": _l("Points spent on an order"),
    "points.hold_released": _l("Hold released"),
    "points.reversed": _l("Points taken back"),
    "points.frozen": _l("Points frozen"),
    "points.released": _l("Frozen points released"),
    "points.expiring": _l("Expiry reminder"),
    "points.expired": _l("Points expired"),
    "points.cleared": _l("Year-end clearing"),
    "points.adjusted": _l("Manual adjustment"),
    "points.transferred": _l("Points transferred"),
    "member.enrolled": _l("Member enrolled"),
    "member.closed": _l("Member closed"),
    "member.status_changed": _l("Member status changed"),
    "tier.changed": _l("Tier changed"),
    "tier.will_downgrade": _l("Tier will go down"),
    "reward.redeemed": _l("Reward redeemed"),
    "reward.fulfilment_changed": _l("Reward fulfilment changed"),
    "webhook.test": _l("Test event"),
}

EVENT_DESCRIPTIONS: dict[str, LazyString] = {
    "points.earned": _l("Points earned by a purchase or an action (pending or available)"),
    "points.pending_matured": _l("Pending points became available after the return window"),
    "points.redeemed": _l("Held points were captured as payment for an order"),
    "points.hold_released": _l("Held points went back to the member (released or timed out)"),
    "points.reversed": _l("Points taken back after a refund or a lost dispute"),
    "points.frozen": _l("Points frozen while a refund or dispute is open"),
    "points.released": _l("Frozen points given back (a dispute won or a refund withdrawn)"),
    "points.expiring": _l("A reminder: points will expire or be cleared soon"),
    "points.expired": _l("Points reached the end of their validity"),
    "points.cleared": _l("Points removed by the year-end clearing"),
    "points.adjusted": _l("Points granted or deducted by hand"),
    "points.transferred": _l("Points sent to or received from another member"),
    "member.enrolled": _l("A member joined the program"),
    "member.closed": _l("A member's account was closed"),
    "member.status_changed": _l("A member was suspended or made active again"),
    "tier.changed": _l("A member moved to another tier"),
    "tier.will_downgrade": _l(
        "A member will move down at the coming evaluation unless they earn more"
    ),
    "reward.redeemed": _l("A member redeemed a reward from the catalog"),
    "reward.fulfilment_changed": _l("A reward redemption's fulfilment state changed"),
}


def event_words(type_: str) -> str:
    """An event type's name in words: ``Points earned`` for ``points.earned``."""
    found = EVENT_WORDS.get(type_)
    if found is not None:
        return str(found)
    return type_.replace(".", " ").replace("_", " ").capitalize()


def event_description(type_: str) -> str:
    """What an event type says, as a sentence (the outbox's description)."""
    found = EVENT_DESCRIPTIONS.get(type_)
    if found is not None:
        return str(found)
    text = EVENT_TYPES.get(type_, "")
    return text[:1].upper() + text[1:] if text else ""


def subscription_words(types: list[str] | tuple[str, ...]) -> list[str]:
    """An endpoint's subscribed types in words; ``["*"]`` is every type."""
    if "*" in types:
        return [_("Every event type")]
    return [event_words(t) for t in types]
