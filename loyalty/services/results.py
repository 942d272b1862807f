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
            value = record.get(f.name)
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


@dataclass(frozen=True)
class EarnResult(Record):
    """What an earn did: points requested, granted, and which cap cut them (if any).

    ``status`` is ``available`` or ``pending`` (until ``matures_at``); ``expires_at`` is when
    the points stop being usable (``None``: never).
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
    replayed: bool = False


@dataclass(frozen=True)
class EarnQuote(Record):
    """What an order would earn now, before (and, for a member, after) caps."""

    points: int
    points_after_caps: int
    capped_by: str | None
    rule_version: int


@dataclass(frozen=True)
class RedemptionQuote(Record):
    """How many points may pay for an order, and what they are worth."""

    available: int
    max_points: int
    max_discount_minor: int
    currency: str


@dataclass(frozen=True)
class HoldResult(Record):
    """A redemption hold and its state: ``active``, ``captured``, ``released`` or ``expired``."""

    member: str
    order_id: str
    points: int
    discount_minor: int
    currency: str
    status: str
    expires_at: dt.datetime
    replayed: bool = False


@dataclass(frozen=True)
class ExpiringPoints:
    """Points that stop being usable at ``expires_at``."""

    expires_at: dt.datetime
    points: int


@dataclass(frozen=True)
class Balance:
    """A member's balance now."""

    member: str
    available: int
    pending: int
    held: int
    frozen: int
    debt: int
    lifetime_earned: int
    expiring: tuple[ExpiringPoints, ...] = ()

    @property
    def expiring_soon(self) -> int:
        """Points in ``expiring`` (those that expire within the window asked for)."""
        return sum(e.points for e in self.expiring)


@dataclass(frozen=True)
class HistoryItem:
    """One line of a member's history: an operation's effect on the member's buckets.

    ``points`` is the change in what the member owns (available + pending + held + frozen -
    debt): a hold is 0 (points only move to ``held``), a capture is negative.
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
