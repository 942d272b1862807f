"""What the console calls each outbound event type, in words staff read (English for now).

Keys are the outbox's event types (:data:`loyalty.events.outbox.EVENT_TYPES`, whose longer
descriptions the console shows beside these names); a type added to the outbox before its
words here shows its code with spaces, never an empty cell.
"""

from __future__ import annotations

from loyalty.events.outbox import EVENT_TYPES

EVENT_WORDS: dict[str, str] = {
    "points.earned": "Points earned",
    "points.pending_matured": "Pending points available",
    "points.redeemed": "Points spent on an order",
    "points.hold_released": "Hold released",
    "points.reversed": "Points taken back",
    "points.frozen": "Points frozen",
    "points.released": "Frozen points released",
    "points.expiring": "Expiry reminder",
    "points.expired": "Points expired",
    "points.cleared": "Year-end clearing",
    "points.adjusted": "Manual adjustment",
    "points.transferred": "Points transferred",
    "member.enrolled": "Member enrolled",
    "member.closed": "Member closed",
    "member.status_changed": "Member status changed",
    "tier.changed": "Tier changed",
    "tier.will_downgrade": "Tier will go down",
    "reward.redeemed": "Reward redeemed",
    "reward.fulfilment_changed": "Reward fulfilment changed",
    "webhook.test": "Test event",
}


def event_words(type_: str) -> str:
    """An event type's name in words: ``Points earned`` for ``points.earned``."""
    return EVENT_WORDS.get(type_) or type_.replace(".", " ").replace("_", " ").capitalize()


def event_description(type_: str) -> str:
    """What an event type says, as a sentence (the outbox's description)."""
    text = EVENT_TYPES.get(type_, "")
    return text[:1].upper() + text[1:] if text else ""


def subscription_words(types: list[str] | tuple[str, ...]) -> list[str]:
    """An endpoint's subscribed types in words; ``["*"]`` is every type."""
    if "*" in types:
        return ["Every event type"]
    return [event_words(t) for t in types]
