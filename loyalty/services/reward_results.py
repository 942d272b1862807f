"""Frozen result types of the reward catalog: rewards as offered to a member, redemptions
with their codes, vouchers and events, and voucher checks at checkout.

A redemption's result is stored with its idempotency key like every ledger write's, so a
retry answers the same redemption, codes and draw outcome.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from loyalty.services.results import Record


@dataclass(frozen=True)
class RewardOffer:
    """A reward of the catalog as one member (or anyone, without a member) sees it now.

    ``points`` is the price per unit (for this member's tier, once tiers exist);
    ``stock_left`` is ``None`` for a reward without a stock limit. ``redeemable`` is whether
    the member can redeem one now; ``reasons`` says why not, as codes: ``retired``,
    ``not_started``, ``ended``, ``hidden``, ``tier``, ``out_of_stock``, ``limit_day``,
    ``limit_month``, ``limit_lifetime``, ``min_balance``, ``insufficient_points``.
    """

    code: str
    kind: str
    name: str
    description: str
    image_url: str
    points: int
    version: int
    stock_left: int | None
    visible: bool
    active_from: dt.datetime | None
    active_until: dt.datetime | None
    redeemable: bool
    reasons: tuple[str, ...] = ()
    voucher_amount_minor: int = 0
    voucher_valid_days: int = 0
    currency: str = ""
    limits: dict[str, int] = field(default_factory=dict)
    min_balance: int = 0
    retired: bool = False


@dataclass(frozen=True)
class RewardInfo:
    """A reward for the people who run the catalog: its terms in force, the versions, its
    stock and what it has issued."""

    code: str
    kind: str
    version: int
    terms: dict[str, Any]
    stock_added: int | None
    stock_left: int | None
    issued: int
    cancelled: int
    codes_free: int
    created_at: dt.datetime
    retired_at: dt.datetime | None = None
    scheduled: tuple[tuple[int, dt.datetime], ...] = ()


@dataclass(frozen=True)
class VoucherInfo(Record):
    """A voucher: its code, value, validity, and the order that used it (if any)."""

    code: str
    amount_minor: int
    currency: str
    valid_from_at: dt.datetime
    valid_until_at: dt.datetime
    status: str
    order_id: str | None = None
    used_at: dt.datetime | None = None
    member: str = ""
    reward: str = ""


@dataclass(frozen=True)
class RewardEventInfo:
    """One thing that happened to a redemption after it was made."""

    event: str
    from_status: str | None
    to_status: str | None
    actor: str
    reason: str | None
    order_id: str | None
    created_at: dt.datetime


@dataclass(frozen=True)
class DrawOutcome(Record):
    """What a draw gave: the seed and number recorded for an auditor, the prize band the
    number fell in (``drawn``, a reward code or ``None``) and what was awarded (``None``
    when the band was no prize, or the prize had run out: ``reason`` says which)."""

    seed: str
    value: int
    drawn: str | None
    awarded: str | None
    reason: str
    prize_redemption: int | None = None
    label: str = ""


@dataclass(frozen=True)
class RewardRedemptionResult(Record):
    """A redemption of a reward: what it cost, what it issued and where it stands."""

    id: int
    member: str
    reward: str
    kind: str
    name: str
    version: int
    quantity: int
    points: int
    status: str
    created_at: dt.datetime
    codes: tuple[str, ...] = ()
    vouchers: tuple[VoucherInfo, ...] = ()
    draw: DrawOutcome | None = None
    shipping: dict[str, str] | None = None
    parent: int | None = None
    prize: RewardRedemptionResult | None = None
    updated_at: dt.datetime | None = None
    events: tuple[RewardEventInfo, ...] = ()
    replayed: bool = False

    def to_record(self) -> dict[str, Any]:
        out = super().to_record()
        out["codes"] = list(self.codes)
        out["vouchers"] = [v.to_record() for v in self.vouchers]
        out["draw"] = self.draw.to_record() if self.draw else None
        out["prize"] = self.prize.to_record() if self.prize else None
        out.pop("events", None)
        return out

    @classmethod
    def from_record(cls, record: Mapping[str, Any], *, replayed: bool = False) -> Self:
        data = dict(record)
        data["codes"] = tuple(data.get("codes") or ())
        data["vouchers"] = tuple(VoucherInfo.from_record(v) for v in data.get("vouchers") or ())
        draw = data.get("draw")
        data["draw"] = DrawOutcome.from_record(draw) if draw else None
        prize = data.get("prize")
        data["prize"] = RewardRedemptionResult.from_record(prize) if prize else None
        data.pop("events", None)
        return super().from_record(data, replayed=replayed)


@dataclass(frozen=True)
class RedemptionPage:
    """A page of redemptions, newest first; pass ``next_cursor`` for the next page."""

    items: tuple[RewardRedemptionResult, ...]
    next_cursor: int | None = None


@dataclass(frozen=True)
class VoucherCheck(Record):
    """What a voucher takes off an order: ``discount_minor`` is its value, at most the
    order's total. ``replayed`` on a use answered from before (same voucher, same order)."""

    code: str
    discount_minor: int
    amount_minor: int
    currency: str
    valid_until_at: dt.datetime
    status: str
    order_id: str | None = None
    replayed: bool = False


@dataclass(frozen=True)
class BulkOutcome:
    """One redemption of a bulk fulfilment step: its new state, or the error that kept it."""

    id: int
    status: str | None
    error: str | None = None
