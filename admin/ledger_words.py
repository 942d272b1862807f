"""What the console calls each kind of ledger entry, in words staff read, in the request's
language.

Keys are the ledger's entry kinds (``loyalty.domain.moves.ENTRY_KINDS``). The console shows
the words and keeps the code for support staff in a tooltip; a kind added to the ledger before
its words shows its code with spaces, never an empty cell.

A member's tier history reads the same way (:func:`tier_change_words`): each change as a
sentence with its cause, the measure it weighed and local dates. Tier names are the shop's
own and are shown as they are; a money measure is written as the console writes money.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping

from flask_babel import LazyString, gettext
from flask_babel import lazy_gettext as _l

from admin.code_words import code_words
from admin.formatting import money, points
from loyalty.domain.calendar import zone
from loyalty.services.tier_results import TierChangeInfo

# flask-babel is untyped: its gettext, typed.
_: Callable[..., str] = gettext

ENTRY_KIND_WORDS: dict[str, LazyString] = {
    "earn": _l("Earned"),
    "earn_pending": _l("Earned, pending"),
    "transfer_in": _l("Transfer received"),
    "adjust_grant": _l("Manual grant"),
    "debt_repay": _l("Debt repaid"),
    "mature": _l("Pending points available"),
    "hold": _l("Held for an order"),
    "capture": _l("Spent on an order"),
    "release": _l("Hold released"),
    "expire": _l("Expired"),
    "clear": _l("Year-end clearing"),
    "expire_returned": _l("Given back after expiry"),
    "transfer_out": _l("Transfer sent"),
    "transfer_fee": _l("Transfer fee"),
    "adjust_deduct": _l("Manual deduction"),
    "refund_freeze": _l("Refund: frozen"),
    "refund_reverse": _l("Refund: taken back"),
    "refund_release": _l("Refund failed: unfrozen"),
    "refund_deduct": _l("Refund: taken from other points"),
    "refund_debt": _l("Refund: left as debt"),
    "refund_return": _l("Refund: spent points given back"),
    "dispute_freeze": _l("Dispute: frozen"),
    "dispute_reverse": _l("Dispute lost: taken back"),
    "dispute_release": _l("Dispute won: unfrozen"),
    "dispute_deduct": _l("Dispute: taken from other points"),
    "dispute_debt": _l("Dispute: left as debt"),
    "reward_spend": _l("Reward redeemed"),
    "reward_return": _l("Reward cancelled: points back"),
}

# The balances an entry moves: named by their code in English (``available +1,000``), by
# what they hold in Chinese (:mod:`admin.code_words`).
BUCKET_MEANINGS: dict[str, LazyString] = {
    "available": _l("available points"),
    "pending": _l("pending points"),
    "held": _l("points held for orders"),
    "frozen": _l("frozen points"),
    "debt": _l("points owed"),
}
BUCKET_WORDS = code_words(BUCKET_MEANINGS)


def entry_kind_words(kind: str) -> str:
    """What an entry of ``kind`` is, in words (``earn_pending`` reads "Earned, pending")."""
    found = ENTRY_KIND_WORDS.get(kind)
    return str(found) if found is not None else kind.replace("_", " ").capitalize()


# --- tier history ---------------------------------------------------------------------------

# Why a tier moved, after "Moved up/down from A to B: " (the history's ``reason``).
TIER_CAUSE_WORDS: dict[str, LazyString] = {
    "earn": _l("earned"),
    "refund": _l("a refund took points back"),
    "dispute": _l("a lost dispute took points back"),
    "adjustment": _l("a manual adjustment"),
    "transfer": _l("a transfer received"),
}


def tier_measure_words(measure: int, kind: str, currency: str) -> str:
    """A qualifying measure: ``5,230 points`` or ``CNY 5,230.00 spent``."""
    if kind != "money":
        if measure == 1:
            return _("1 point")
        return _("%(points)s points", points=points(measure))
    return _("%(money)s spent", money=money(measure, currency))


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
    measure = _(
        "(measure %(measure)s)",
        measure=tier_measure_words(change.measure, measure_kind, currency),
    )
    if change.reason in ("manual", "lock"):
        return _set_by_hand(change, names, tz)
    if change.reason == "evaluation":
        return _evaluated(change, names, tz, measure)
    cause = str(TIER_CAUSE_WORDS.get(change.reason) or change.reason.replace("_", " "))
    reference = getattr(change, "reference", None)
    if reference and change.reason == "earn":
        cause = _("%(cause)s on order %(reference)s", cause=cause, reference=reference)
    elif reference:
        cause = _("%(cause)s (%(reference)s)", cause=cause, reference=reference)
    return _(
        "%(moved)s: %(cause)s %(measure)s",
        moved=_moved(change, names),
        cause=cause,
        measure=measure,
    )


def _set_by_hand(change: TierChangeInfo, names: Mapping[str, str], tz: str) -> str:
    """ "Set to Gold by admin: VIP guest, locked until 2027-06-01"."""
    tier = _tier_name(change.to_tier, names)
    if change.actor:
        words = _("Set to %(tier)s by %(actor)s", tier=tier, actor=change.actor)
    else:
        words = _("Set to %(tier)s", tier=tier)
    if change.note:
        words = _("%(change)s: %(note)s", change=words, note=change.note)
    if change.locked_until_at is not None:
        day = _local_day(change.locked_until_at, tz)
        words = _("%(change)s, locked until %(day)s", change=words, day=day)
    return words


def _evaluated(change: TierChangeInfo, names: Mapping[str, str], tz: str, measure: str) -> str:
    """ "Kept Gold at the evaluation due 2027-03-01 (measure …)", or the move it made."""
    due = _local_day(change.due_at, tz) if change.due_at is not None else ""
    if change.from_tier == change.to_tier:
        tier = _tier_name(change.to_tier, names)
        if due:
            return _(
                "Kept %(tier)s at the evaluation due %(day)s %(measure)s",
                tier=tier,
                day=due,
                measure=measure,
            )
        return _("Kept %(tier)s at the evaluation %(measure)s", tier=tier, measure=measure)
    moved = _moved(change, names)
    if due:
        return _(
            "%(moved)s at the evaluation due %(day)s %(measure)s",
            moved=moved,
            day=due,
            measure=measure,
        )
    return _("%(moved)s at the evaluation %(measure)s", moved=moved, measure=measure)


def _moved(change: TierChangeInfo, names: Mapping[str, str]) -> str:
    to_name = _tier_name(change.to_tier, names)
    # A member never placed holds the lowest tier (the first of ``names``).
    from_code = change.from_tier or next(iter(names), None)
    if from_code is None:
        return _("Placed at %(tier)s", tier=to_name)
    ranks = {code: n for n, code in enumerate(names)}
    from_name = _tier_name(from_code, names)
    if ranks.get(change.to_tier or "", 0) > ranks.get(from_code, 0):
        return _("Moved up from %(from)s to %(to)s", **{"from": from_name, "to": to_name})
    return _("Moved down from %(from)s to %(to)s", **{"from": from_name, "to": to_name})


def _tier_name(code: str | None, names: Mapping[str, str]) -> str:
    if code is None:
        return _("no tier")
    return names.get(code) or code


def _local_day(instant: dt.datetime | None, tz: str) -> str:
    return "" if instant is None else instant.astimezone(zone(tz)).date().isoformat()
