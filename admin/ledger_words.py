"""What the console calls each kind of ledger entry, in words staff read (English for now;
the translations will start from this one table).

Keys are the ledger's entry kinds (``loyalty.domain.moves.ENTRY_KINDS``). The console shows
the words and keeps the code for support staff in a tooltip; a kind added to the ledger before
its words shows its code with spaces, never an empty cell.
"""

from __future__ import annotations

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
