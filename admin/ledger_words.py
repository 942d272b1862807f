"""What the console calls each kind of ledger entry, in words staff read (English for now;
the translations will start from this one table).

Keys are the ledger's entry kinds (``loyalty.domain.moves.ENTRY_KINDS``). The console shows
the words and keeps the code for support staff in a tooltip; a kind added to the ledger before
its words shows its code with spaces, never an empty cell.

A member's tier history reads the same way (:func:`tier_change_words`): each change as a
sentence with its cause, the measure it weighed and local dates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from loyalty.domain.calendar import zone
from loyalty.domain.money import minor_unit_exponent
from loyalty.services.tier_results import TierChangeInfo

ENTRY_KIND_WORDS: dict[str, str] = {
    "earn": "Earned",
    "earn_pending": "Earned, pending",
    "transfer_in": "Transfer received",
    "adjust_grant": "Manual grant",
    "debt_repay": "Debt repaid",
    "mature": "Pending points available",
    "hold": "Held for an order",
    "capture": "Spent on an order",
    "release": "Hold released",
    "expire": "Expired",
    "clear": "Year-end clearing",
    "expire_returned": "Given back after expiry",
    "transfer_out": "Transfer sent",
    "transfer_fee": "Transfer fee",
    "adjust_deduct": "Manual deduction",
    "refund_freeze": "Refund: frozen",
    "refund_reverse": "Refund: taken back",
    "refund_release": "Refund failed: unfrozen",
    "refund_deduct": "Refund: taken from other points",
    "refund_debt": "Refund: left as debt",
    "refund_return": "Refund: spent points given back",
    "dispute_freeze": "Dispute: frozen",
    "dispute_reverse": "Dispute lost: taken back",
    "dispute_release": "Dispute won: unfrozen",
    "dispute_deduct": "Dispute: taken from other points",
    "dispute_debt": "Dispute: left as debt",
    "reward_spend": "Reward redeemed",
    "reward_return": "Reward cancelled: points back",
}

BUCKET_WORDS: dict[str, str] = {
    "available": "available",
    "pending": "pending",
    "held": "held",
    "frozen": "frozen",
    "debt": "debt",
}


def entry_kind_words(kind: str) -> str:
    """What an entry of ``kind`` is, in words (``earn_pending`` reads "Earned, pending")."""
    return ENTRY_KIND_WORDS.get(kind) or kind.replace("_", " ").capitalize()


# --- tier history ---------------------------------------------------------------------------

# Why a tier moved, after "Moved up/down from A to B: " (the history's ``reason``).
TIER_CAUSE_WORDS: dict[str, str] = {
    "earn": "earned",
    "refund": "a refund took points back",
    "dispute": "a lost dispute took points back",
    "adjustment": "a manual adjustment",
    "transfer": "a transfer received",
}


def tier_measure_words(measure: int, kind: str, currency: str) -> str:
    """A qualifying measure: ``5,230 points`` or ``CNY 5,230.00 spent``."""
    if kind != "money":
        return f"{measure:,} {'point' if measure == 1 else 'points'}"
    exponent = minor_unit_exponent(currency)
    major = measure / 10**exponent if exponent else measure
    return f"{currency} {major:,.{exponent}f} spent"


def tier_change_words(
    change: TierChangeInfo,
    *,
    names: Mapping[str, str],
    measure_kind: str,
    currency: str,
    tz: str,
) -> str:
    """One tier-history entry in words: "Moved up from Silver to Gold: earned on order o-12
    (measure 5,230 points)", "Kept Gold at the evaluation due 2027-03-01 (…)", "Set to Gold
    by ops: VIP guest, locked until 2027-06-01". ``names`` maps tier codes to their names,
    lowest tier first; a code without one is shown as it is."""
    to_name = _tier_name(change.to_tier, names)
    measure = f"(measure {tier_measure_words(change.measure, measure_kind, currency)})"
    if change.reason in ("manual", "lock"):
        by = f" by {change.actor}" if change.actor else ""
        note = f": {change.note}" if change.note else ""
        until = change.locked_until_at
        lock = f", locked until {_local_day(until, tz)}" if until is not None else ""
        return f"Set to {to_name}{by}{note}{lock}"
    if change.reason == "evaluation":
        due = f" due {_local_day(change.due_at, tz)}" if change.due_at is not None else ""
        if change.from_tier == change.to_tier:
            return f"Kept {to_name} at the evaluation{due} {measure}"
        return f"{_moved(change, names)} at the evaluation{due} {measure}"
    cause = TIER_CAUSE_WORDS.get(change.reason) or change.reason.replace("_", " ")
    reference = getattr(change, "reference", None)
    if reference:
        cause += f" on order {reference}" if change.reason == "earn" else f" ({reference})"
    return f"{_moved(change, names)}: {cause} {measure}"


def _moved(change: TierChangeInfo, names: Mapping[str, str]) -> str:
    to_name = _tier_name(change.to_tier, names)
    # A member never placed holds the lowest tier (the first of ``names``).
    from_code = change.from_tier or next(iter(names), None)
    if from_code is None:
        return f"Placed at {to_name}"
    ranks = {code: n for n, code in enumerate(names)}
    up = ranks.get(change.to_tier or "", 0) > ranks.get(from_code, 0)
    return f"Moved {'up' if up else 'down'} from {_tier_name(from_code, names)} to {to_name}"


def _tier_name(code: str | None, names: Mapping[str, str]) -> str:
    if code is None:
        return "no tier"
    return names.get(code) or code


def _local_day(instant: dt.datetime | None, tz: str) -> str:
    return "" if instant is None else instant.astimezone(zone(tz)).date().isoformat()
