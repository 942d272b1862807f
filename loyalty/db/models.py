"""The schema: SQLAlchemy 2.x models for programs, members, lots, the ledger and idempotency.

Design overview
---------------
* A **member** row holds cached balances (available, pending, held, frozen, debt), the
  lifetime total earned and the member's cap counters for the current local day, month and
  year. Caching them in the row lets one locked read serve a whole write.
* Every credit creates a **lot** with its own expiry. A lot's buckets (available, pending,
  held, frozen) say where its points are now; they never go below zero.
* Every change is an immutable **entry**: one row per lot touched, with the signed change of
  each bucket (``*_delta``). ``jifen verify`` proves that a member's balances equal the sum of
  their lots, which equals the sum of their entries.
* Every write is an **operation** with an idempotency key that is unique per program, written
  in the same transaction as its entries, and carrying the stored result for retries.
* **Rule versions** are immutable snapshots of a program's earning rules with an
  effective-from time; each earning records the version it used.

Hot write paths use these tables through SQLAlchemy Core (``Model.__table__``); the ORM
classes serve migrations, queries and the admin console.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from loyalty.db.types import UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so batch migrations can name constraints."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dt.datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }


# Entry kinds that end a lot (rolling expiry, year-end clearing): at most one per lot.
EXPIRY_KINDS = ("expire", "clear")
EXPIRY_KINDS_SQL = "kind IN ('expire', 'clear')"


def _points(**kw: Any) -> Any:
    return mapped_column(BigInteger, nullable=False, default=0, server_default="0", **kw)


class Program(Base):
    """A loyalty program: currency, time zone, rounding and redemption settings."""

    __tablename__ = "programs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    timezone: Mapped[str] = mapped_column(String(64))
    rounding: Mapped[str] = mapped_column(String(16), default="floor")
    points_per_unit: Mapped[int] = mapped_column(Integer, default=100)
    redeem_max_share_bp: Mapped[int] = mapped_column(Integer, default=10_000)
    redeem_min_points: Mapped[int] = mapped_column(Integer, default=1)
    redeem_min_order_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    hold_timeout_seconds: Mapped[int] = mapped_column(Integer, default=900)
    # Refunds and disputes: "debt" (what cannot be taken back becomes a debt that later
    # earnings repay) or "within_balance" (take back only what the member has).
    refund_policy: Mapped[str] = mapped_column(String(16), default="debt", server_default="debt")
    # Transfers between members: off unless enabled; limits in points, fee in points.
    transfers_enabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    transfer_min_points: Mapped[int] = mapped_column(BigInteger, default=1, server_default="1")
    transfer_max_points: Mapped[int | None] = mapped_column(BigInteger)
    transfer_daily_limit: Mapped[int | None] = mapped_column(BigInteger)
    transfer_fee_points: Mapped[int] = _points()
    transfer_fee_bp: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Year-end clearing: "none", "all" or "before_cutoff" (points earned more than
    # ``clearing_keep_months`` before the clearing moment), at the end of the local day
    # ``clearing_month``/``clearing_day``.
    clearing_policy: Mapped[str] = mapped_column(String(16), default="none", server_default="none")
    clearing_month: Mapped[int] = mapped_column(Integer, default=12, server_default="12")
    clearing_day: Mapped[int] = mapped_column(Integer, default=31, server_default="31")
    clearing_keep_months: Mapped[int] = mapped_column(Integer, default=12, server_default="12")
    # When clearing was switched on: the scheduled job never clears a year whose moment came
    # before (so enabling it mid-year does not wipe last year's points at once).
    clearing_enabled_at: Mapped[dt.datetime | None]
    reminder_days: Mapped[int] = mapped_column(Integer, default=15, server_default="15")
    # Outbound webhooks may target loopback and private networks only when this is on (a
    # receiver inside the shop's own network, or tests); off, such endpoints are refused.
    webhooks_allow_private: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    # The number of the risk rule version in force (``risk_rule_versions``); ``NULL``: none.
    risk_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime]

    __table_args__ = (
        CheckConstraint("points_per_unit > 0", name="points_per_unit_positive"),
        CheckConstraint("refund_policy IN ('debt', 'within_balance')", name="refund_policy_known"),
        CheckConstraint(
            "clearing_policy IN ('none', 'all', 'before_cutoff')", name="clearing_policy_known"
        ),
        CheckConstraint(
            "clearing_month BETWEEN 1 AND 12 AND clearing_day BETWEEN 1 AND 31",
            name="clearing_date_range",
        ),
        CheckConstraint("clearing_keep_months >= 0", name="clearing_keep_months_range"),
        CheckConstraint("reminder_days >= 0", name="reminder_days_range"),
        CheckConstraint(
            "transfer_min_points > 0 AND transfer_fee_points >= 0 "
            "AND transfer_fee_bp BETWEEN 0 AND 10000",
            name="transfer_settings_range",
        ),
        CheckConstraint(
            "redeem_max_share_bp BETWEEN 0 AND 10000", name="redeem_max_share_bp_range"
        ),
        CheckConstraint("hold_timeout_seconds > 0", name="hold_timeout_positive"),
    )


class RuleVersion(Base):
    """An immutable version of a program's earning rules, in force from ``effective_from``.

    A version cancelled before its time (``cancelled_at``) is never in force; its row and
    number stay, so a number is never given twice."""

    __tablename__ = "rule_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    version: Mapped[int] = mapped_column(Integer)
    effective_from: Mapped[dt.datetime]
    rules: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime]
    created_by: Mapped[str | None] = mapped_column(String(120))
    cancelled_at: Mapped[dt.datetime | None]
    cancelled_by: Mapped[str | None] = mapped_column(String(120))

    __table_args__ = (
        UniqueConstraint("program_id", "version"),
        Index("ix_rule_versions_program_effective", "program_id", "effective_from"),
    )


class Member(Base):
    """A customer of one program, known by the retailer's external id, with cached balances."""

    __tablename__ = "members"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    external_id: Mapped[str] = mapped_column(String(128))
    email: Mapped[str | None] = mapped_column(String(254))
    # The member's phone number as the shop gives it (E.164 such as ``+8613800138000``, or
    # the digits the till knows); operations search members by any part of it.
    phone: Mapped[str | None] = mapped_column(String(32))
    stripe_customer_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="active")
    available: Mapped[int] = _points()
    pending: Mapped[int] = _points()
    held: Mapped[int] = _points()
    frozen: Mapped[int] = _points()
    debt: Mapped[int] = _points()
    lifetime_earned: Mapped[int] = _points()
    cap_day_key: Mapped[str | None] = mapped_column(String(10))
    cap_day_points: Mapped[int] = _points()
    cap_month_key: Mapped[str | None] = mapped_column(String(7))
    cap_month_points: Mapped[int] = _points()
    cap_year_key: Mapped[str | None] = mapped_column(String(4))
    cap_year_points: Mapped[int] = _points()
    created_at: Mapped[dt.datetime]
    # The member's tier (会员等级; ``NULL``: the lowest) since ``tier_since``; the tier period
    # that ends at ``tier_period_end`` is evaluated at ``tier_evaluate_at`` (both ``NULL`` at
    # the lowest tier). A lock holds the member at ``tier_lock`` or above until
    # ``tier_locked_until``. ``jifen verify`` proves these equal the last tier change.
    tier: Mapped[str | None] = mapped_column(String(32))
    tier_since: Mapped[dt.datetime | None]
    tier_period_end: Mapped[dt.datetime | None]
    tier_evaluate_at: Mapped[dt.datetime | None]
    tier_lock: Mapped[str | None] = mapped_column(String(32))
    tier_locked_until: Mapped[dt.datetime | None]
    # The evaluation a ``tier.will_downgrade`` warning was sent for (one per evaluation).
    tier_warned_for: Mapped[dt.datetime | None]
    # Risk control: while ``risk_hold`` is on, new points stay pending (no maturity date)
    # until a person releases them; ``status_reason`` says why the status is what it is
    # (an account frozen by operations: status ``suspended``).
    risk_hold: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    status_reason: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (
        UniqueConstraint("program_id", "external_id"),
        UniqueConstraint("program_id", "stripe_customer_id"),
        Index("ix_members_email", "email"),
        Index(
            "ix_members_tier_due",
            "tier_evaluate_at",
            sqlite_where=text("tier_evaluate_at IS NOT NULL"),
            postgresql_where=text("tier_evaluate_at IS NOT NULL"),
        ),
        CheckConstraint(
            "available >= 0 AND pending >= 0 AND held >= 0 AND frozen >= 0 AND debt >= 0",
            name="balances_not_negative",
        ),
    )


class Operation(Base):
    """One write, by idempotency key: what was asked (hashed) and what it answered."""

    __tablename__ = "operations"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    request_hash: Mapped[str] = mapped_column(String(64))
    result: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime]

    __table_args__ = (UniqueConstraint("program_id", "key"),)


class Lot(Base):
    """Points from one credit, with their own expiry; the buckets say where they are now."""

    __tablename__ = "lots"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    operation_id: Mapped[int] = mapped_column(ForeignKey("operations.id"))
    points: Mapped[int] = mapped_column(BigInteger)
    available: Mapped[int] = _points()
    pending: Mapped[int] = _points()
    held: Mapped[int] = _points()
    frozen: Mapped[int] = _points()
    earned_at: Mapped[dt.datetime]
    matures_at: Mapped[dt.datetime | None]
    expires_at: Mapped[dt.datetime | None]
    expired_at: Mapped[dt.datetime | None]

    __table_args__ = (
        Index("ix_lots_member_expires", "member_id", "expires_at"),
        Index(
            "ix_lots_due_expiry",
            "expires_at",
            sqlite_where=text("expired_at IS NULL"),
            postgresql_where=text("expired_at IS NULL"),
        ),
        Index(
            "ix_lots_due_maturity",
            "matures_at",
            sqlite_where=text("pending > 0"),
            postgresql_where=text("pending > 0"),
        ),
        CheckConstraint("points > 0", name="points_positive"),
        CheckConstraint(
            "available >= 0 AND pending >= 0 AND held >= 0 AND frozen >= 0",
            name="buckets_not_negative",
        ),
    )


class Entry(Base):
    """An immutable ledger entry: the signed change of each bucket of one member (and lot)."""

    __tablename__ = "entries"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    operation_id: Mapped[int] = mapped_column(ForeignKey("operations.id"))
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("lots.id"))
    kind: Mapped[str] = mapped_column(String(24))
    available_delta: Mapped[int] = _points()
    pending_delta: Mapped[int] = _points()
    held_delta: Mapped[int] = _points()
    frozen_delta: Mapped[int] = _points()
    debt_delta: Mapped[int] = _points()
    created_at: Mapped[dt.datetime]

    __table_args__ = (
        Index("ix_entries_member_id", "member_id", "id"),
        Index("ix_entries_lot_id", "lot_id"),
        Index("ix_entries_operation_id", "operation_id"),
        Index(
            "uq_entries_one_expiry_per_lot",
            "lot_id",
            unique=True,
            sqlite_where=text(EXPIRY_KINDS_SQL),
            postgresql_where=text(EXPIRY_KINDS_SQL),
        ),
    )


class Earning(Base):
    """What an order or an action earned: requested, granted, the cap and the rule version."""

    __tablename__ = "earnings"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    operation_id: Mapped[int] = mapped_column(ForeignKey("operations.id"))
    source: Mapped[str] = mapped_column(String(16))
    order_id: Mapped[str | None] = mapped_column(String(200))
    action: Mapped[str | None] = mapped_column(String(100))
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    # The part of the order paid with points; refunds are of the rest (the money paid).
    points_paid_minor: Mapped[int] = _points()
    currency: Mapped[str | None] = mapped_column(String(3))
    points_requested: Mapped[int] = mapped_column(BigInteger)
    points_granted: Mapped[int] = mapped_column(BigInteger)
    capped_by: Mapped[str | None] = mapped_column(String(32))
    rule_version_id: Mapped[int] = mapped_column(ForeignKey("rule_versions.id"))
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("lots.id"))
    # Where the earn happened, as the shop passes it (a store or till, a device id): what
    # risk control's velocity rules count per location or device.
    location: Mapped[str | None] = mapped_column(String(128))
    device: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[dt.datetime]

    __table_args__ = (
        UniqueConstraint("program_id", "order_id"),
        Index("ix_earnings_member_action", "member_id", "action", "created_at"),
        Index(
            "ix_earnings_location",
            "program_id",
            "location",
            "created_at",
            sqlite_where=text("location IS NOT NULL"),
            postgresql_where=text("location IS NOT NULL"),
        ),
        Index(
            "ix_earnings_device",
            "program_id",
            "device",
            "created_at",
            sqlite_where=text("device IS NOT NULL"),
            postgresql_where=text("device IS NOT NULL"),
        ),
        Index("ix_earnings_program_created", "program_id", "created_at"),
    )


class EarningPart(Base):
    """The share of one earning's granted points that came from one category under one
    campaign (``NULL``: no category, no campaign), for analytics by category and campaign.

    Written only for orders whose lines name a category or that a campaign multiplied; the
    parts of an earning add up to its ``points_granted`` (largest remainder, after caps and
    the tier multiplier). ``bonus`` is the part of ``points`` the campaign's multiplier added.
    """

    __tablename__ = "earning_parts"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    earning_id: Mapped[int] = mapped_column(ForeignKey("earnings.id"))
    category: Mapped[str | None] = mapped_column(String(100))
    campaign: Mapped[str | None] = mapped_column(String(100))
    points: Mapped[int] = mapped_column(BigInteger)
    bonus: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime]

    __table_args__ = (
        Index("ix_earning_parts_program_created", "program_id", "created_at"),
        Index("ix_earning_parts_earning", "earning_id"),
    )


class Hold(Base):
    """Points reserved for an order at checkout, until captured, released or timed out."""

    __tablename__ = "holds"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    operation_id: Mapped[int] = mapped_column(ForeignKey("operations.id"))
    order_id: Mapped[str] = mapped_column(String(200))
    points: Mapped[int] = mapped_column(BigInteger)
    discount_minor: Mapped[int] = mapped_column(BigInteger)
    order_total_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default="active")
    expires_at: Mapped[dt.datetime]
    created_at: Mapped[dt.datetime]
    resolved_at: Mapped[dt.datetime | None]

    __table_args__ = (
        UniqueConstraint("program_id", "order_id"),
        Index(
            "ix_holds_active_expiry",
            "expires_at",
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )


class ProgramIssuance(Base):
    """Points a program issued on one local day, against its daily budget."""

    __tablename__ = "program_issuance"

    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    issued: Mapped[int] = _points()


class Reversal(Base):
    """A refund or dispute of an earning order: points frozen at once, then reversed or released.

    ``points`` is this reversal's share of what the order was granted. At the freeze,
    ``frozen`` of them were frozen (from the order's lot, then the member's other lots),
    ``lapsed`` had already expired with the order's lot, and ``missing`` could not be found.
    These figures change when a reversal of the order goes through: its share is settled
    again against those that went through before it, giving frozen points back or taking
    them from the order's other open reversals (whose ``points`` and ``frozen`` shrink).
    When it succeeds, the frozen points are reversed and the missing ones are ``deducted``
    from points available by then, become ``debt``, or are ``waived`` (within-balance
    policy); a refund also gives back its share of the points redeemed on the order
    (``returned``).
    """

    __tablename__ = "reversals"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    earning_id: Mapped[int] = mapped_column(ForeignKey("earnings.id"))
    operation_id: Mapped[int] = mapped_column(ForeignKey("operations.id"))
    kind: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(200))
    order_id: Mapped[str] = mapped_column(String(200))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    points: Mapped[int] = _points()
    frozen: Mapped[int] = _points()
    lapsed: Mapped[int] = _points()
    missing: Mapped[int] = _points()
    deducted: Mapped[int] = _points()
    debt: Mapped[int] = _points()
    waived: Mapped[int] = _points()
    returned: Mapped[int] = _points()
    created_at: Mapped[dt.datetime]
    resolved_at: Mapped[dt.datetime | None]

    __table_args__ = (
        UniqueConstraint("program_id", "kind", "external_id"),
        Index("ix_reversals_earning", "earning_id"),
        # Risk control: the farming rule's refunds in a window, and a member's (its evidence).
        Index("ix_reversals_program_created", "program_id", "created_at"),
        Index("ix_reversals_member_created", "member_id", "created_at"),
        CheckConstraint("kind IN ('refund', 'dispute')", name="kind_known"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
    )


class Transfer(Base):
    """Points one member sent another (plus the fee the sender paid), on the sender's local day."""

    __tablename__ = "transfers"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    operation_id: Mapped[int] = mapped_column(ForeignKey("operations.id"))
    sender_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    recipient_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    points: Mapped[int] = mapped_column(BigInteger)
    fee: Mapped[int] = _points()
    day: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[dt.datetime]

    __table_args__ = (
        Index("ix_transfers_sender_day", "sender_id", "day"),
        # Risk control: what a new member received (checked inside each of their earns when
        # a new-member rule blocks), and the transfer-ring rule's window.
        Index("ix_transfers_recipient_created", "recipient_id", "created_at"),
        Index("ix_transfers_program_created", "program_id", "created_at"),
        CheckConstraint("points > 0", name="points_positive"),
    )


class Clearing(Base):
    """One program's year-end clearing of one year: when, which cutoff, and what it cleared."""

    __tablename__ = "clearings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    year: Mapped[int] = mapped_column(Integer)
    policy: Mapped[str] = mapped_column(String(16))
    moment: Mapped[dt.datetime]
    cutoff: Mapped[dt.datetime]
    status: Mapped[str] = mapped_column(String(16))
    lots: Mapped[int] = _points()
    points: Mapped[int] = _points()
    started_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime | None]

    __table_args__ = (UniqueConstraint("program_id", "year"),)


class Notification(Base):
    """A message to a member (points about to expire), with its delivery state.

    One per member, kind and local date (``due_on``): never two reminders for the same date.
    """

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    kind: Mapped[str] = mapped_column(String(32))
    due_on: Mapped[str] = mapped_column(String(10))
    due_at: Mapped[dt.datetime]
    points: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime]
    delivered_at: Mapped[dt.datetime | None]
    # The e-mail channel: ``pending`` until sent (``sent``), ``failed`` after its last try,
    # ``skipped`` when it cannot go (no address, e-mail off); ``None`` before migration 0010.
    email_status: Mapped[str | None] = mapped_column(String(16))
    email_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    email_next_at: Mapped[dt.datetime | None]
    email_error: Mapped[str | None] = mapped_column(Text)
    email_sent_at: Mapped[dt.datetime | None]

    __table_args__ = (
        UniqueConstraint("member_id", "kind", "due_on"),
        Index(
            "ix_notifications_email_due",
            "email_next_at",
            sqlite_where=text("email_status = 'pending'"),
            postgresql_where=text("email_status = 'pending'"),
        ),
        Index(
            "ix_notifications_undelivered",
            "created_at",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
    )


class StripeEvent(Base):
    """A Stripe webhook event as received: recorded once per program and event id.

    ``payload`` is the verified event as Stripe sent it, so an event can be applied again
    (a parked event once its member is linked or its purchase has arrived, or by hand).
    ``status`` is ``received`` while it is being applied, then ``applied``, ``parked``
    (waiting for a member or a purchase; ``reason`` says which), ``ignored`` (a type or
    state that moves no points) or ``failed`` (``reason`` holds the error).
    """

    __tablename__ = "stripe_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    event_id: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(255))
    payment_intent: Mapped[str | None] = mapped_column(String(255))
    customer: Mapped[str | None] = mapped_column(String(255))
    member_ref: Mapped[str | None] = mapped_column(String(128))
    livemode: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    stripe_created: Mapped[dt.datetime]
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    received_at: Mapped[dt.datetime]
    applied_at: Mapped[dt.datetime | None]

    __table_args__ = (
        UniqueConstraint("program_id", "event_id"),
        Index("ix_stripe_events_payment_intent", "program_id", "payment_intent"),
        Index("ix_stripe_events_status", "program_id", "status", "received_at"),
        Index("ix_stripe_events_customer", "program_id", "customer"),
        CheckConstraint(
            "status IN ('received', 'applied', 'parked', 'ignored', 'failed')",
            name="status_known",
        ),
    )


class JobRun(Base):
    """One run of a background job (a sweep, reminders, clearing): its progress and outcome.

    A run is ``running`` while it works (``items`` and ``heartbeat_at`` move after each
    batch), then ``succeeded`` or ``failed`` (``error`` keeps the traceback).
    """

    __tablename__ = "job_runs"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str | None] = mapped_column(String(255))
    trigger: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    items: Mapped[int] = _points()
    points: Mapped[int] = _points()
    batches: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[dt.datetime]
    heartbeat_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime | None]

    __table_args__ = (
        Index("ix_job_runs_job_started", "job", "started_at"),
        CheckConstraint("status IN ('running', 'succeeded', 'failed')", name="status_known"),
    )


class AdminUser(Base):
    """A person who signs in to the admin console, with one role and a hashed password.

    ``role`` is ``viewer``, ``marketing``, ``operations`` or ``admin``; a disabled user
    (``active`` false) cannot sign in. Passwords are stored only as salted hashes.
    """

    __tablename__ = "admin_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(120), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[dt.datetime]
    last_login_at: Mapped[dt.datetime | None]
    # Part of every session cookie; signing out or a new password increments it, which ends
    # every session signed in under the old value.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # The console's language for this person (``zh`` or ``en``); ``NULL``: the browser's.
    locale: Mapped[str | None] = mapped_column(String(8))

    __table_args__ = (
        CheckConstraint(
            "role IN ('viewer', 'marketing', 'operations', 'admin')", name="role_known"
        ),
    )


class AuditEntry(Base):
    """Who changed what, when, with the values before and after: rules, adjustments, users.

    Entries are only ever inserted, in the same transaction as the change where possible.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    program_id: Mapped[int | None] = mapped_column(ForeignKey("programs.id"))
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(255))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime]

    __table_args__ = (
        Index("ix_audit_log_created", "created_at"),
        Index("ix_audit_log_action", "action", "created_at"),
    )


class AdjustmentRequest(Base):
    """A manual adjustment asked for in the console, and its approval (four eyes).

    ``status`` is ``pending`` (waiting for a second person), ``approving`` (approved, being
    applied), ``applied``, ``rejected`` or ``failed`` (the ledger refused it; ``error`` says
    why). Small adjustments are applied at once and go straight to ``applied``.
    """

    __tablename__ = "adjustment_requests"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    points: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str] = mapped_column(String(120))
    requested_at: Mapped[dt.datetime]
    decided_by: Mapped[str | None] = mapped_column(String(120))
    decided_at: Mapped[dt.datetime | None]
    adjustment_id: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_adjustment_requests_status", "program_id", "status", "requested_at"),
        CheckConstraint(
            "status IN ('pending', 'approving', 'applied', 'rejected', 'failed')",
            name="status_known",
        ),
        CheckConstraint("points <> 0", name="points_not_zero"),
    )


class ApiKey(Base):
    """A server key of one program for the HTTP API: a label, scopes, an expiry, a hash.

    The key itself (``jfn_sk_…``) is shown once when it is created; only its SHA-256 is
    stored (keys are 256 random bits, so a fast hash is enough) with its first characters
    (``prefix``) to recognise it in lists. ``scopes`` is a space-separated subset of
    ``read earn redeem refund transfer adjust events webhooks admin``. A key stops working
    when it is revoked (``revoked_at``) or expires (``expires_at``); several keys may be valid
    at once so a shop can rotate them.
    """

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    label: Mapped[str] = mapped_column(String(120))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(255))
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    last_used_at: Mapped[dt.datetime | None]

    __table_args__ = (Index("ix_api_keys_program", "program_id", "created_at"),)


class ApiOrigin(Base):
    """A web origin (``https://shop.example``) allowed to call the API from a browser (CORS)
    with a member token of the program, and to embed the member page."""

    __tablename__ = "api_origins"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    origin: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime]

    __table_args__ = (UniqueConstraint("program_id", "origin"),)


_BIG_ID = BigInteger().with_variant(Integer, "sqlite")


class Reward(Base):
    """A reward of a program's catalog (积分商城): a coupon from a code pool, a voucher, a
    physical item or a draw.

    Its price and rules are versioned (:class:`RewardVersion`); this row holds what is not:
    its code, kind, and stock. ``stock_added`` is the initial stock plus every restock (for a
    coupon, every code imported or generated); ``stock_left`` what can still be issued. Both
    are ``NULL`` for a reward without a stock limit. ``jifen verify`` proves
    ``stock_added = stock_left + taken - returned`` over the reward's redemptions.
    """

    __tablename__ = "rewards"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    code: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    stock_added: Mapped[int | None] = mapped_column(BigInteger)
    stock_left: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime]
    retired_at: Mapped[dt.datetime | None]

    __table_args__ = (
        UniqueConstraint("program_id", "code"),
        CheckConstraint("kind IN ('coupon', 'voucher', 'item', 'draw')", name="kind_known"),
        CheckConstraint("stock_left >= 0", name="stock_not_negative"),
        CheckConstraint("(stock_added IS NULL) = (stock_left IS NULL)", name="stock_both_or_none"),
    )


class RewardVersion(Base):
    """One version of a reward's terms (name, price, window, limits, prizes...), effective
    from a moment; never changed once written. A redemption records the version it used."""

    __tablename__ = "reward_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reward_id: Mapped[int] = mapped_column(ForeignKey("rewards.id"))
    version: Mapped[int] = mapped_column(Integer)
    terms: Mapped[dict[str, Any]] = mapped_column(JSON)
    effective_from: Mapped[dt.datetime]
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[dt.datetime]

    __table_args__ = (UniqueConstraint("reward_id", "version"),)


class RewardRedemption(Base):
    """A member's redemption of a reward: the points it spent (the entries of
    ``operation_id``), the stock it took, and its fulfilment state.

    A draw's prize is a redemption of the prize's reward with ``parent_id`` the draw's and no
    points of its own. ``draw`` records a draw's seed, number and outcome so an auditor can
    recompute it (:func:`loyalty.domain.rewards.draw_value`).
    """

    __tablename__ = "reward_redemptions"

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    reward_id: Mapped[int] = mapped_column(ForeignKey("rewards.id"))
    reward_version_id: Mapped[int] = mapped_column(ForeignKey("reward_versions.id"))
    operation_id: Mapped[int] = mapped_column(ForeignKey("operations.id"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("reward_redemptions.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    points: Mapped[int] = mapped_column(BigInteger)
    stock_taken: Mapped[int] = mapped_column(Integer, default=0)
    stock_returned: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))
    shipping: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    draw: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    cancel_operation_id: Mapped[int | None] = mapped_column(ForeignKey("operations.id"))
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]

    __table_args__ = (
        Index("ix_reward_redemptions_member", "member_id", "reward_id", "created_at"),
        Index("ix_reward_redemptions_reward", "reward_id", "created_at"),
        Index("ix_reward_redemptions_status", "program_id", "status", "created_at"),
        Index("ix_reward_redemptions_operation", "operation_id"),
        CheckConstraint(
            "status IN ('issued', 'packing', 'shipped', 'delivered', 'cancelled')",
            name="status_known",
        ),
        CheckConstraint("stock_returned <= stock_taken", name="returns_within_taken"),
    )


class RewardCode(Base):
    """A code of a coupon reward's pool, imported or generated; issued to at most one
    redemption (``redemption_id``), never again, even when that redemption is cancelled."""

    __tablename__ = "reward_codes"

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True)
    reward_id: Mapped[int] = mapped_column(ForeignKey("rewards.id"))
    code: Mapped[str] = mapped_column(String(64))
    redemption_id: Mapped[int | None] = mapped_column(ForeignKey("reward_redemptions.id"))
    created_at: Mapped[dt.datetime]
    issued_at: Mapped[dt.datetime | None]

    __table_args__ = (
        UniqueConstraint("reward_id", "code"),
        Index(
            "ix_reward_codes_free",
            "reward_id",
            "id",
            sqlite_where=text("redemption_id IS NULL"),
            postgresql_where=text("redemption_id IS NULL"),
        ),
        Index("ix_reward_codes_redemption", "redemption_id"),
    )


class Voucher(Base):
    """A fixed amount off a later order, issued by a voucher redemption: ``active`` until a
    checkout uses it on an order (``used``, given back by :func:`release_voucher` when that
    order is refunded) or its redemption is cancelled (``cancelled``)."""

    __tablename__ = "vouchers"

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    redemption_id: Mapped[int] = mapped_column(ForeignKey("reward_redemptions.id"))
    code: Mapped[str] = mapped_column(String(64))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    valid_from: Mapped[dt.datetime]
    valid_until: Mapped[dt.datetime]
    status: Mapped[str] = mapped_column(String(16))
    order_id: Mapped[str | None] = mapped_column(String(200))
    used_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime]

    __table_args__ = (
        UniqueConstraint("program_id", "code"),
        Index("ix_vouchers_redemption", "redemption_id"),
        CheckConstraint("status IN ('active', 'used', 'cancelled')", name="status_known"),
    )


class RewardEvent(Base):
    """What happened to a redemption after it was made, in order: a fulfilment state change
    (``status``), a voucher used on an order or given back (``voucher_used``,
    ``voucher_released``); who did it and why. The member's reward history reads these."""

    __tablename__ = "reward_events"

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True)
    redemption_id: Mapped[int] = mapped_column(ForeignKey("reward_redemptions.id"))
    event: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(120))
    reason: Mapped[str | None] = mapped_column(Text)
    order_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime]

    __table_args__ = (Index("ix_reward_events_redemption", "redemption_id", "id"),)


class TierVersion(Base):
    """An immutable version of a program's tiers (:class:`loyalty.domain.tiers.TierRules`),
    in force from ``effective_from``; one cancelled before its time is never in force."""

    __tablename__ = "tier_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    version: Mapped[int] = mapped_column(Integer)
    effective_from: Mapped[dt.datetime]
    rules: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime]
    created_by: Mapped[str | None] = mapped_column(String(120))
    cancelled_at: Mapped[dt.datetime | None]
    cancelled_by: Mapped[str | None] = mapped_column(String(120))

    __table_args__ = (
        UniqueConstraint("program_id", "version"),
        Index("ix_tier_versions_program_effective", "program_id", "effective_from"),
    )


class TierQualifying(Base):
    """One row of a member's qualifying measure: what an earn, a reversal, an adjustment or a
    received transfer adds (or takes away) in points and money, ``counted_at`` the moment it
    counts for (a reversal counts at its order's earn). Written for every program, with or
    without tiers, so tiers switched on later see the past. Never updated. ``operation_id``
    is the write that made the row (a reversal's: the one that settled it; rows migration 0009
    wrote for reversals settled before it link the operation that opened the reversal)."""

    __tablename__ = "tier_qualifying"

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    operation_id: Mapped[int] = mapped_column(ForeignKey("operations.id"))
    source: Mapped[str] = mapped_column(String(16))
    points: Mapped[int] = _points()
    money_minor: Mapped[int] = _points()
    counted_at: Mapped[dt.datetime]
    created_at: Mapped[dt.datetime]

    __table_args__ = (
        # Covering on PostgreSQL: an earn sums the member's window from the index alone.
        Index(
            "ix_tier_qualifying_member_counted",
            "member_id",
            "counted_at",
            postgresql_include=["source", "points", "money_minor"],
        ),
        Index("ix_tier_qualifying_operation", "operation_id"),
        CheckConstraint(
            "source IN ('purchase', 'action', 'refund', 'dispute', 'adjustment', 'transfer')",
            name="source_known",
        ),
    )


class TierChange(Base):
    """One entry of a member's tier history: from, to, when, why and the measure then.

    ``reason`` is earn, refund, dispute, adjustment, transfer (the write in ``operation_id``),
    evaluation (the one due at ``due_at``; it is written even when the tier stays), placement
    (moved up to what the measure supports after tiers were switched on or lowered), manual
    or lock (by ``actor``, with a ``note``). ``period_end`` and ``evaluate_at`` are the
    member's after the change. ``key`` makes a manual change idempotent."""

    __tablename__ = "tier_changes"

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    from_tier: Mapped[str | None] = mapped_column(String(32))
    to_tier: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(16))
    measure: Mapped[int] = mapped_column(BigInteger)
    tier_version: Mapped[int] = mapped_column(Integer)
    operation_id: Mapped[int | None] = mapped_column(ForeignKey("operations.id"))
    due_at: Mapped[dt.datetime | None]
    period_end: Mapped[dt.datetime | None]
    evaluate_at: Mapped[dt.datetime | None]
    lock: Mapped[str | None] = mapped_column(String(32))
    locked_until: Mapped[dt.datetime | None]
    actor: Mapped[str | None] = mapped_column(String(120))
    note: Mapped[str | None] = mapped_column(String(500))
    key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime]

    __table_args__ = (
        Index("ix_tier_changes_member", "member_id", "id"),
        UniqueConstraint("program_id", "key"),
        UniqueConstraint("member_id", "due_at"),
        CheckConstraint(
            "reason IN ('earn', 'refund', 'dispute', 'adjustment', 'transfer', 'evaluation', "
            "'placement', 'manual', 'lock')",
            name="reason_known",
        ),
    )


class OutboxEvent(Base):
    """An outbound event (the outbox): written in the transaction of the change it reports,
    so a committed change always has its event and a rolled-back one never does.

    ``event_id`` is the stable public id (``evt_…``, the ``webhook-id`` of every delivery);
    ``operation_id`` the ledger operation that caused it (none for enrolment, tier
    evaluations and reminders); ``data`` the payload's ``data`` object. ``dispatched_at`` is
    set once the dispatcher has made its deliveries; ids give the order, also per member.
    """

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    operation_id: Mapped[int | None] = mapped_column(ForeignKey("operations.id"))
    type: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[dt.datetime]
    data: Mapped[dict[str, Any]]
    dispatched_at: Mapped[dt.datetime | None]

    __table_args__ = (
        Index(
            "ix_events_undispatched",
            "id",
            sqlite_where=text("dispatched_at IS NULL"),
            postgresql_where=text("dispatched_at IS NULL"),
        ),
        Index("ix_events_member", "member_id", "id"),
        Index("ix_events_program", "program_id", "id"),
    )


class WebhookEndpoint(Base):
    """A program's webhook endpoint: where events go, which types, and the signing secrets.

    ``secret`` signs every delivery (``whsec_`` + base64); after a rotation the previous one
    also signs until ``previous_expires_at``, so receivers can switch without a gap.
    ``event_types`` is a list of types (``["*"]``: all). ``failing_since`` is the first failed
    attempt since the last success: five days of failures disable the endpoint
    (``disabled_reason`` says why, also after a 410 or by hand).
    """

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str | None] = mapped_column(String(500))
    event_types: Mapped[list[str]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(String(120))
    previous_secret: Mapped[str | None] = mapped_column(String(120))
    previous_expires_at: Mapped[dt.datetime | None]
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    disabled_reason: Mapped[str | None] = mapped_column(String(500))
    disabled_at: Mapped[dt.datetime | None]
    failing_since: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime]
    created_by: Mapped[str | None] = mapped_column(String(120))
    updated_at: Mapped[dt.datetime]

    __table_args__ = (Index("ix_webhook_endpoints_program", "program_id"),)


class WebhookDelivery(Base):
    """One event for one endpoint, with its delivery state.

    ``status``: ``pending`` (to be tried at ``next_attempt_at``; a sender claims it by moving
    that time past its request's timeout), ``delivered``, ``failed`` (every retry used, the
    endpoint disabled, or given up by hand; can be replayed). ``member_id`` copies the
    event's, so a member's events reach an endpoint in order: a delivery waits while an
    earlier one of the same member to the same endpoint is pending.
    """

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"))
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[dt.datetime | None]
    last_attempt_at: Mapped[dt.datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime]

    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        Index(
            "ix_webhook_deliveries_member_queue",
            "endpoint_id",
            "member_id",
            "event_id",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),
        CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status_known"),
    )


class WebhookAttempt(Base):
    """One attempt to deliver: when, the HTTP status (none when no answer came), how long it
    took, the error and the start of the response body."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id"))
    attempted_at: Mapped[dt.datetime]
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    manual: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __table_args__ = (Index("ix_webhook_attempts_delivery", "delivery_id", "id"),)


class EmailSettings(Base):
    """A program's e-mail channel (reminders): the SMTP server, the sender, the language and
    the shop's link. ``security`` is ``none``, ``starttls`` or ``tls`` (implicit TLS)."""

    __tablename__ = "email_settings"

    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    security: Mapped[str] = mapped_column(String(16), default="starttls")
    username: Mapped[str | None] = mapped_column(String(255))
    password: Mapped[str | None] = mapped_column(String(255))
    from_address: Mapped[str] = mapped_column(String(320))
    reply_to: Mapped[str | None] = mapped_column(String(320))
    locale: Mapped[str] = mapped_column(String(16), default="zh_Hans")
    shop_url: Mapped[str | None] = mapped_column(String(2000))
    updated_at: Mapped[dt.datetime]
    updated_by: Mapped[str | None] = mapped_column(String(120))

    __table_args__ = (
        CheckConstraint("security IN ('none', 'starttls', 'tls')", name="security_known"),
        CheckConstraint("port BETWEEN 1 AND 65535", name="port_range"),
    )


class RiskRuleVersion(Base):
    """An immutable version of a program's risk rules (风控规则), in force from its creation
    until the next version; ``programs.risk_version`` names the one in force."""

    __tablename__ = "risk_rule_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    version: Mapped[int] = mapped_column(Integer)
    rules: Mapped[dict[str, Any]]
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[dt.datetime]
    created_by: Mapped[str | None] = mapped_column(String(120))

    __table_args__ = (UniqueConstraint("program_id", "version"),)


class RiskCase(Base):
    """A case for review: one risk rule tripped by one subject (a member, a location, a
    device, or the program itself for an issuance spike), with its evidence.

    One row per program, rule and subject, ever: a rule that trips again while the case is
    open adds to it; after a case is resolved or dismissed only activity newer than the
    resolution reopens it. ``status`` is ``open``, ``resolved`` or ``dismissed``;
    ``resolution`` says what was done (``released``, ``reversed``, ``dismissed``)."""

    __tablename__ = "risk_cases"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    rule_id: Mapped[str] = mapped_column(String(64))
    rule_version: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(String(500))
    evidence: Mapped[dict[str, Any]]
    trips: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    opened_at: Mapped[dt.datetime]
    last_tripped_at: Mapped[dt.datetime]
    assigned_to: Mapped[str | None] = mapped_column(String(120))
    resolution: Mapped[str | None] = mapped_column(String(16))
    resolution_note: Mapped[str | None] = mapped_column(String(500))
    resolved_at: Mapped[dt.datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(120))

    __table_args__ = (
        UniqueConstraint("program_id", "rule_id", "subject"),
        Index("ix_risk_cases_status", "program_id", "status", "last_tripped_at"),
        Index("ix_risk_cases_member", "member_id"),
        CheckConstraint("status IN ('open', 'resolved', 'dismissed')", name="status_known"),
        CheckConstraint("action IN ('flag', 'hold', 'block')", name="action_known"),
    )
