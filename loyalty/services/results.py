"""Frozen result types the services return, and their stored (JSON) form for replays.

A write's result is stored with its idempotency key; a retry rebuilds the same result from
the stored record with ``replayed=True``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self


class Record:
    """Mixin: to and from a JSON-able dict; fields ending in ``_at`` are datetimes."""

    def to_record(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if f.name == "replayed":
                continue
            value = getattr(self, f.name)
            out[f.name] = value.isoformat() if isinstance(value, dt.datetime) else value
        return out

    @classmethod
    def from_record(cls, record: Mapping[str, Any], *, replayed: bool = False) -> Self:
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name == "replayed":
                continue
            if f.name not in record:  # stored before the field existed: keep its default
                continue
            value = record[f.name]
            if f.name.endswith("_at") and isinstance(value, str):
                value = dt.datetime.fromisoformat(value)
            values[f.name] = value
        if any(f.name == "replayed" for f in dataclasses.fields(cls)):  # type: ignore[arg-type]
            values["replayed"] = replayed
        return cls(**values)


@dataclass(frozen=True)
class ProgramInfo(Record):
    """A program's settings."""

    code: str
    name: str
    currency: str
    timezone: str
    rounding: str
    points_per_unit: int
    redeem_max_share_bp: int
    redeem_min_points: int
    redeem_min_order_minor: int
    hold_timeout_seconds: int
    refund_policy: str = "debt"
    transfers_enabled: bool = False
    transfer_min_points: int = 1
    transfer_max_points: int | None = None
    transfer_daily_limit: int | None = None
    transfer_fee_points: int = 0
    transfer_fee_bp: int = 0
    clearing_policy: str = "none"
    clearing_month: int = 12
    clearing_day: int = 31
    clearing_keep_months: int = 12
    reminder_days: int = 15
    clearing_enabled_at: dt.datetime | None = None
    webhooks_allow_private: bool = False


@dataclass(frozen=True)
class RuleVersionInfo(Record):
    """A published rule version."""

    program: str
    version: int
    effective_from_at: dt.datetime
    rules: dict[str, Any]


@dataclass(frozen=True)
class MemberInfo(Record):
    """A member's identity."""

    program: str
    external_id: str
    email: str | None
    stripe_customer_id: str | None
    status: str
    phone: str | None = None


@dataclass(frozen=True)
class EarnResult(Record):
    """What an earn did: points requested, granted, and which cap cut them (if any).

    ``status`` is ``available`` or ``pending`` (until ``matures_at``); ``expires_at`` is when
    the points stop being usable (``None``: never). ``debt_repaid`` of the granted points
    paid off the member's debt (left by a refund of points already spent).

    With tiers, ``tier`` is the member's tier after the earn, ``tier_multiplier`` the
    multiplier of the tier the member held when earning (included in ``points_requested``),
    and ``tier_upgraded_from`` the tier the member left when this earn moved them up
    (``None`` when it did not). Without tiers all three are ``None``.
    """

    member: str
    source: str
    reference: str
    points_requested: int
    points_granted: int
    capped_by: str | None
    status: str
    rule_version: int
    matures_at: dt.datetime | None
    expires_at: dt.datetime | None
    debt_repaid: int = 0
    tier: str | None = None
    tier_multiplier: str | None = None
    tier_upgraded_from: str | None = None
    replayed: bool = False


@dataclass(frozen=True)
class EarnQuote(Record):
    """What an order would earn now, before (and, for a member, after) caps.

    For a member of a program with tiers, ``points`` includes the multiplier
    (``tier_multiplier``) of the member's ``tier``; both are ``None`` otherwise.
    """

    points: int
    points_after_caps: int
    capped_by: str | None
    rule_version: int
    tier: str | None = None
    tier_multiplier: str | None = None


@dataclass(frozen=True)
class RedemptionQuote(Record):
    """How many points may pay for an order, and what they are worth."""

    available: int
    max_points: int
    max_discount_minor: int
    currency: str


@dataclass(frozen=True)
class HoldResult(Record):
    """A redemption hold and its state: ``active``, ``captured``, ``released`` or ``expired``.

    ``returned`` is what a capture gave back at once: the share of the points that refunds of
    the order that went through before the capture would have given back.
    """

    member: str
    order_id: str
    points: int
    discount_minor: int
    currency: str
    status: str
    expires_at: dt.datetime
    returned: int = 0
    replayed: bool = False


@dataclass(frozen=True)
class ExpiringPoints:
    """Points that stop being usable at ``expires_at``; ``last_day`` is the last local date
    (program time zone) they can be used, the date to show a person: points ending at the
    end of 30 April (local midnight starting 1 May) show 30 April."""

    expires_at: dt.datetime
    points: int
    last_day: dt.date | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Balance:
    """A member's balance now; with tiers, the member's ``tier`` code and ``tier_name``
    (``None`` when the program has no tiers). :func:`tier_progress` tells the rest."""

    member: str
    available: int
    pending: int
    held: int
    frozen: int
    debt: int
    lifetime_earned: int
    expiring: tuple[ExpiringPoints, ...] = ()
    tier: str | None = None
    tier_name: str | None = None

    @property
    def expiring_soon(self) -> int:
        """Points in ``expiring`` (those that expire within the window asked for)."""
        return sum(e.points for e in self.expiring)


@dataclass(frozen=True)
class HistoryItem:
    """One line of a member's history: an operation's effect on the member's buckets.

    ``points`` is the change in what the member owns (available + pending + held + frozen -
    debt): a hold is 0 (points only move to ``held``), a capture is negative. ``description``
    says why it happened in words (``purchase, order o-1``, ``refund re_1 of order o-1: points
    frozen``, ``transfer to bob``, ``adjustment by ops: goodwill``); ``reason`` is the reason a
    person gave (an adjustment's), else ``None``.
    """

    id: int
    kind: str
    reference: str
    points: int
    available: int
    pending: int
    held: int
    frozen: int
    debt: int
    created_at: dt.datetime
    reason: str | None = None
    description: str = ""


@dataclass(frozen=True)
class HistoryPage:
    """A page of history, newest first; pass ``next_cursor`` to get the next page."""

    items: tuple[HistoryItem, ...]
    next_cursor: int | None = None


@dataclass(frozen=True)
class SweepResult:
    """What a sweep did: how many items it processed and the points they carried."""

    items: int
    points: int
    batches: int = 0
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TransferResult(Record):
    """A transfer of points between two members of one program.

    The sender paid ``points`` plus ``fee``; the recipient got ``points`` in ``lots`` new lots,
    one per sender lot they came from, each keeping that lot's expiry and earn date.
    """

    transfer_id: str
    sender: str
    recipient: str
    points: int
    fee: int
    lots: int
    created_at: dt.datetime
    replayed: bool = False


@dataclass(frozen=True)
class ReversalResult(Record):
    """A refund or dispute of an order and what it did to the member's points.

    ``status``: a refund is ``pending``, ``succeeded`` or ``failed``; a dispute ``open``,
    ``lost`` or ``won``. ``points`` is its share of what the order was granted: ``frozen``
    of them were frozen, ``lapsed`` had expired with the order's lot and ``missing`` were
    already spent. The share set at the freeze is provisional: when the reversal goes
    through, it becomes the cumulative share of the order's money that went through, less
    what earlier reversals took, and the three figures follow. Once reversed, the missing
    points were ``deducted`` from points available by then, became ``debt`` or were
    ``waived`` (within-balance policy); ``returned`` is the share of the points redeemed on
    the order that a refund gave back.
    """

    kind: str
    reversal_id: str
    order_id: str
    member: str
    amount_minor: int
    currency: str
    status: str
    points: int
    frozen: int
    lapsed: int
    missing: int
    deducted: int = 0
    debt: int = 0
    waived: int = 0
    returned: int = 0
    replayed: bool = False


@dataclass(frozen=True)
class ClearingResult(Record):
    """A program's year-end clearing of one year: its moment, its cutoff and what it cleared.

    ``lots`` and ``points`` are the clearing's totals over every run. ``status`` is ``done``,
    or ``running`` when some due lots were busy and a later run will clear them. ``replayed``
    says the clearing was done before and this call wrote nothing.
    """

    program: str
    year: int
    policy: str
    moment_at: dt.datetime
    cutoff_at: dt.datetime
    lots: int
    points: int
    status: str
    replayed: bool = False


@dataclass(frozen=True)
class ForecastItem:
    """One member's points that end at one instant, by rolling ``expire`` or year-end ``clear``.

    ``points`` are the lots' available and pending points; ``in_flight`` their held and frozen
    points, which a hold or a refund settles later. Overdue endings are due now. ``last_day``
    is the last local date the points can be used (the date to show a person).
    """

    member: str
    due_at: dt.datetime
    kind: str
    points: int
    lots: int
    in_flight: int = 0
    last_day: dt.date | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ForecastDay:
    """What ends after one local date (``YYYY-MM-DD`` in the program's time zone): the last
    day those points can be used."""

    day: str
    expiring: int
    clearing: int
    lots: int

    @property
    def points(self) -> int:
        """Points expiring and cleared that day."""
        return self.expiring + self.clearing


@dataclass(frozen=True)
class Forecast:
    """What will expire or be cleared in ``(from_at, until_at]``, by member and by date."""

    program: str
    timezone: str
    from_at: dt.datetime
    until_at: dt.datetime
    items: tuple[ForecastItem, ...]
    days: tuple[ForecastDay, ...]
    points: int
    lots: int


@dataclass(frozen=True)
class Reminder:
    """A points-expiring notification: a member's points whose last usable local day is
    ``due_on`` (``YYYY-MM-DD``, program time zone; sent that many local days ahead).

    ``kind`` says how the earliest of them end (``expire`` or ``clear``) at ``due_at``.
    """

    id: int
    program: str
    member: str
    email: str | None
    kind: str
    due_on: str
    due_at: dt.datetime
    points: int
    attempts: int = 0
    last_error: str | None = None


@dataclass(frozen=True)
class ReminderResult:
    """What a reminder run did: notifications created, found already sent, callback errors."""

    created: int
    already_sent: int
    callback_errors: int = 0


@dataclass(frozen=True)
class AdjustmentResult(Record):
    """A manual grant (``points`` > 0) or deduction (< 0), its reason and who made it."""

    member: str
    adjustment_id: str
    points: int
    reason: str
    actor: str | None
    expires_at: dt.datetime | None
    debt_repaid: int
    created_at: dt.datetime
    replayed: bool = False
