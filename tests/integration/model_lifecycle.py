"""The plain model of an order's later life for the ledger state machine.

Refunds and disputes (freeze, then reverse or release), transfers between members and manual
adjustments: the records the machine keeps of them and the arithmetic it predicts them
with. Everything here is written from the documented rules, independently of the code under
test (``loyalty.domain.reversal``, ``loyalty.domain.allocation``, ``loyalty.services``):

* a refund (or a lost dispute) takes back ``granted * c // refundable`` points in total after
  refunds of ``c`` money units that still count (those neither failed nor won), so each new
  one freezes what that cumulative floor adds (never less than zero);
* that share is provisional: when a refund goes through (a dispute is lost) its share becomes
  what the cumulative floor over the order's reversals that went through before it grows by
  (never less than zero), so those that went through always total the floor share of their
  money. A smaller share needs fewer missing points, then gives back frozen points, the end of
  the freeze first (of a piece, its pending points before its available ones), as a failure
  would; only a share smaller than what lapsed counts fewer lapsed points. A larger one takes
  the extra points from the frozen points of the order's other open reversals (the latest
  opened first, the end of each freeze first; their shares and frozen points shrink by as
  much), then from the order's own lot (available, then pending: deducted at once), and
  counts the rest as missing;
* a refund gives back the same cumulative share of the points redeemed on the order, into the
  lots the redemption took them from, the lot taken last first;
* a transfer's fee is a fixed number of points plus basis points of the points, rounded up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from loyalty.services.results import AdjustmentResult, ReversalResult, TransferResult

REFUND, DISPUTE = "refund", "dispute"
# The status a reversal starts in, and the statuses that reverse or release its points.
OPENED = {REFUND: "pending", DISPUTE: "open"}
REVERSED = {REFUND: "succeeded", DISPUTE: "lost"}
RELEASED = {REFUND: "failed", DISPUTE: "won"}
NOT_COUNTING = frozenset(RELEASED.values())  # their money and points no longer count


def floor_share(points: int, part: int, whole: int) -> int:
    """The share of ``points`` that ``part`` of ``whole`` stands for, rounded down."""
    assert whole > 0
    return (points * min(part, whole)) // whole


def transfer_fee(points: int, fixed: int, bp: int) -> int:
    """``fixed`` plus ``bp`` basis points of ``points``, rounded up."""
    return fixed + (points * bp + 9_999) // 10_000


def largest_affordable(have: int, fixed: int, bp: int) -> int:
    """The most points a sender with ``have`` spendable points can send, fee included."""
    points = have - fixed
    while points > 0 and points + transfer_fee(points, fixed, bp) > have:
        points -= 1
    return max(points, 0)


def take_up_to(candidates: Sequence[tuple[int, int]], points: int) -> list[tuple[int, int]]:
    """From ``(lot index, available)`` pairs already in spending order, take up to ``points``:
    ``(lot index, taken)`` pairs, taking nothing from empty lots."""
    taken: list[tuple[int, int]] = []
    still = points
    for index, available in candidates:
        if still <= 0:
            break
        part = min(available, still)
        if part > 0:
            taken.append((index, part))
            still -= part
    return taken


def give_back(taken: Sequence[tuple[int, int]], before: int, now: int) -> list[tuple[int, int]]:
    """Which lots get ``now`` redeemed points back after ``before`` came back earlier.

    ``taken`` is what the redemption took from each lot, in the order it took them; points go
    back to the lot taken last first, and the first ``before`` of that reversed sequence were
    given back already."""
    plan: list[tuple[int, int]] = []
    position = 0  # points of the reversed sequence passed so far
    for index, points in reversed(taken):
        start, end = position, position + points
        position = end
        low, high = max(start, before), min(end, before + now)
        if high > low:
            plan.append((index, high - low))
    return plan


Piece = tuple[int, int, int]  # (model lot index, from available, from pending) of a freeze


def split_last(froze: Sequence[Piece], points: int) -> tuple[list[Piece], list[Piece]]:
    """A freeze without its last ``points`` points, and those points, the last first (of a
    piece, its pending points go before its available ones)."""
    kept: list[Piece] = []
    given: list[Piece] = []
    still = points
    for index, available, pending in reversed(froze):
        out = min(available + pending, still)
        still -= out
        out_pending = min(pending, out)
        if out:
            given.append((index, out - out_pending, out_pending))
        if available + pending > out:
            kept.append((index, available - (out - out_pending), pending - out_pending))
    return kept[::-1], given


def live_freeze(froze: Sequence[Piece], frozen: int) -> list[Piece]:
    """What a reversal still holds frozen: the first ``frozen`` points of its freeze."""
    kept, _ = split_last(froze, sum(a + p for _i, a, p in froze) - frozen)
    return kept


@dataclass
class MReversal:
    """A refund or dispute as asked, as the model expects it to stand, and its answers."""

    kind: str  # refund or dispute
    rid: str  # the refund or dispute id
    order_id: str
    member: int
    amount: int
    status: str
    points: int
    frozen: int
    lapsed: int
    missing: int
    froze: list[Piece]  # as frozen at the opening; ``frozen`` says how much of it is left
    opened: ReversalResult
    succeeded_flag: bool = False  # refund_order(succeeded=True): opened and completed at once
    deducted: int = 0
    debt: int = 0
    waived: int = 0
    returned: int = 0
    settled: ReversalResult | None = None

    @property
    def counts(self) -> bool:
        """Its money and points count towards the order's later reversals."""
        return self.status not in NOT_COUNTING

    def row(self) -> tuple[int, ...]:
        return (
            self.amount,
            self.points,
            self.frozen,
            self.lapsed,
            self.missing,
            self.deducted,
            self.debt,
            self.waived,
            self.returned,
        )


@dataclass
class MTransfer:
    """A transfer as asked and answered, for retries."""

    transfer_id: str
    sender: int
    recipient: int
    points: int
    fee: int
    day: str
    result: TransferResult


@dataclass
class MAdjustment:
    """An adjustment as asked and answered, for retries."""

    adjustment_id: str
    member: int
    points: int
    reason: str
    result: AdjustmentResult


@dataclass(frozen=True)
class TransferSettings:
    """The program's transfer settings for one run."""

    fee_points: int = 0
    fee_bp: int = 0
    min_points: int = 1
    max_points: int | None = None
    daily_limit: int | None = None

    def program_settings(self) -> dict[str, object]:
        return {
            "transfers_enabled": True,
            "transfer_fee_points": self.fee_points,
            "transfer_fee_bp": self.fee_bp,
            "transfer_min_points": self.min_points,
            "transfer_max_points": self.max_points,
            "transfer_daily_limit": self.daily_limit,
        }


TRANSFER_SETTINGS = (
    TransferSettings(),
    TransferSettings(fee_points=1),
    TransferSettings(fee_bp=250),
    TransferSettings(fee_points=2, fee_bp=100, min_points=10, max_points=1500, daily_limit=2500),
)
