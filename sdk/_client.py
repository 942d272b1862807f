"""The :class:`Jifen` client: checkout code's one door into the loyalty core.

Built from a database URL (or engine) it is embedded: this module, calling the services
in-process. Built from a server URL (``https://…``) it is remote: :mod:`sdk._remote`, the same
methods over Jifen's HTTP API (:meth:`Jifen.__new__` picks the class).

The client owns no points logic. It holds a :class:`loyalty.db.Database` (one engine with a
connection pool, one clock), the program it works for and that program's currency, and hands
every call to the service functions in :mod:`loyalty.services`. Results are the core's frozen
dataclasses; errors are the core's tree (:class:`loyalty.errors.LoyaltyError` and its
subclasses, each with a stable ``code``). Bad input is refused before anything is written.

A client keeps no state that changes per call, so one client may be shared by every thread
of a web application.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from loyalty import migrate
from loyalty import services as core
from loyalty.config import DATABASE_URL_ENV, load_settings
from loyalty.db.database import Database, make_engine, missing_sqlite_file, url_to_reopen
from loyalty.domain.checks import require_aware, require_program_code
from loyalty.domain.clock import Clock
from loyalty.domain.money import require_currency
from loyalty.domain.rules import OrderLine
from loyalty.domain.tiers import TierRules
from loyalty.errors import ConfigurationError, ProgramNotFound
from loyalty.events import delivery as webhook_delivery
from loyalty.events import endpoints as webhook_endpoints
from loyalty.events.delivery import DeliveryInfo
from loyalty.events.endpoints import EndpointCreated, EndpointInfo
from loyalty.events.feed import Event, EventPage, get_event, list_events
from loyalty.events.outbox import ALL_TYPES
from loyalty.services.forecast import forecast as forecast_points
from loyalty.services.members import set_member_status
from loyalty.services.reminders import ReminderCallback, send_reminders
from loyalty.services.reminders import on_reminder as register_reminder_callback
from loyalty.services.results import (
    AdjustmentResult,
    Balance,
    EarnQuote,
    EarnResult,
    Forecast,
    HistoryPage,
    HoldResult,
    MemberInfo,
    ProgramInfo,
    RedemptionQuote,
    ReminderResult,
    ReversalResult,
    TransferResult,
)
from loyalty.services.reward_redemptions import (
    advance_fulfilment,
    cancel_redemption,
    get_redemption,
    list_redemptions,
    redeem_reward,
)
from loyalty.services.reward_results import (
    RedemptionPage,
    RewardOffer,
    RewardRedemptionResult,
    VoucherCheck,
)
from loyalty.services.rewards import list_rewards
from loyalty.services.risk_cases import RiskCaseInfo, RiskCasePage
from loyalty.services.risk_rules import RiskRulesInfo
from loyalty.services.risk_scan import RiskScanResult
from loyalty.services.tier_results import (
    TierChangeInfo,
    TierCount,
    TierForecast,
    TierProgress,
    TierVersionInfo,
)
from loyalty.services.transfers import transfer_points
from loyalty.services.vouchers import consume_voucher, release_voucher, validate_voucher
from loyalty.stripe.onboarding import enrol_applying_parked, link_applying_parked
from loyalty.stripe.webhook import DEFAULT_TOLERANCE, StripeWebhook

__all__ = ["Jifen"]

SDK_ACTOR = "sdk"

OrderLines = Sequence[OrderLine | Mapping[str, Any]]
"""Order lines: mappings with ``amount_minor`` and optional ``sku`` and ``category``."""


def _safe_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


class Jifen:
    """A loyalty client for one program, safe to share across threads.

    Build it from a database URL, from ``$JIFEN_DATABASE_URL``, or from your application's
    own SQLAlchemy engine so the shop and Jifen share one database::

        jifen = Jifen("postgresql://shop@db/shop", program="shop")
        jifen = Jifen(program="shop")                   # reads $JIFEN_DATABASE_URL
        jifen = Jifen(engine=app_engine, program="shop")

    or from the URL of a Jifen server, to work over its HTTP API with a server key (default
    ``$JIFEN_API_KEY``)::

        jifen = Jifen("https://loyalty.example.com", api_key="jfn_sk_…", program="shop")

    The remote client has the same methods, results and errors; ``timeout`` (seconds, default
    10) bounds each call, failed deliveries are retried (see :mod:`sdk._remote`), and what
    needs the database in this process (:attr:`database`, reminders, the Stripe webhook)
    raises :class:`~loyalty.errors.ConfigurationError` saying where it runs instead.

    It checks at once that the database is reachable, has Jifen's schema at the version this
    Jifen needs, and holds the program; each problem raises a
    :class:`~loyalty.errors.ConfigurationError` or :class:`~loyalty.errors.ProgramNotFound`
    whose message says what to do.

    ``currency`` is the default currency of every call that takes one (it must be the
    program's; by default it is). ``clock`` is any :class:`loyalty.domain.clock.Clock`
    (tests and replays pass a ``FixedClock``); by default the system clock in UTC.

    On PostgreSQL the client uses the engine you pass as it is. A SQLite engine is not used
    directly: Jifen needs ``BEGIN IMMEDIATE`` to serialise writes, so it opens its own engine
    on the same file. Use the client as a context manager or call :meth:`close`; only an
    engine the client created is disposed.

    Every write takes ``idempotency_key``; when it is left out the core derives it from the
    order, refund, dispute, transfer or adjustment id (``earn:<order_id>``, ``hold:<order_id>``,
    …; a key that would hold a non-ASCII member id is percent-encoded as ``utf8:…``, one that
    would be too long becomes ``sha256:…``). A retry returns the first result with
    ``replayed=True``; the same key with different parameters raises
    :class:`~loyalty.errors.IdempotencyConflict`.
    """

    def __new__(
        cls,
        url: str | None = None,
        *,
        program: str,
        engine: Engine | None = None,
        currency: str | None = None,
        clock: Clock | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
    ) -> Jifen:
        """An embedded client, or a remote one (:class:`sdk._remote.RemoteJifen`) when
        ``url`` is a server's (``http://`` or ``https://``)."""
        from sdk._remote import RemoteJifen, is_server_url

        if cls is Jifen and is_server_url(url):
            return super().__new__(RemoteJifen)
        return super().__new__(cls)

    def __init__(
        self,
        url: str | None = None,
        *,
        program: str,
        engine: Engine | None = None,
        currency: str | None = None,
        clock: Clock | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
    ) -> None:
        program = require_program_code(program)
        if api_key is not None or timeout is not None:
            raise ConfigurationError(
                "api_key= and timeout= are for a Jifen server URL (https://…); a database "
                "URL or engine needs neither"
            )
        _check_clock(clock)
        engine, self._owns_engine = _engine_for(url, engine)
        try:
            self._db = Database(engine, clock=clock)
            _check_schema(self._db)
            self._info = _program_info(self._db, program)
            self._currency = (
                self._info.currency
                if currency is None
                else require_currency(currency, self._info.currency)
            )
        except BaseException:
            if self._owns_engine:
                engine.dispose()
            raise
        self._program = program

    # --- the client itself ------------------------------------------------------------------

    @property
    def program(self) -> str:
        """The code of the program every call works on."""
        return self._program

    @property
    def currency(self) -> str:
        """The currency calls use when none is passed (the program's)."""
        return self._currency

    @property
    def program_info(self) -> ProgramInfo:
        """The program's settings, as read when the client was built."""
        return self._info

    @property
    def database(self) -> Database:
        """The core database handle, for calling :mod:`loyalty.services` directly."""
        return self._db

    def close(self) -> None:
        """Close the client's pooled connections, if the client created its engine."""
        if self._owns_engine:
            self._db.dispose()

    def __enter__(self) -> Self:
        """Use the client in a ``with`` block; it is closed when the block ends."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the client (see :meth:`close`)."""
        self.close()

    def __repr__(self) -> str:
        """The program and the database (without its password)."""
        return f"Jifen(program={self._program!r}, database={_safe_url(self._db.engine)!r})"

    # --- members ----------------------------------------------------------------------------

    def enrol(
        self,
        *,
        member: str,
        email: str | None = None,
        stripe_customer_id: str | None = None,
        phone: str | None = None,
    ) -> MemberInfo:
        """Enrol a customer by your own id; enrolling again with the same details returns them.

        ``phone`` is digits with an optional leading ``+`` (5 to 20 digits); spaces and dashes
        are taken out, so ``"+86 138-0013-8000"`` is kept as ``"+8613800138000"``.

        Enrolment is idempotent by ``member`` already, so it takes no idempotency key; the same
        id with other details raises :class:`~loyalty.errors.AlreadyExists`.
        """
        return enrol_applying_parked(
            self._db,
            program=self._program,
            external_id=member,
            email=email,
            stripe_customer_id=stripe_customer_id,
            phone=phone,
        ).member

    def get_member(self, *, member: str) -> MemberInfo:
        """A member's identity (email, phone, Stripe customer, status), or ``MemberNotFound``."""
        return core.get_member(self._db, program=self._program, external_id=member)

    def link_stripe_customer(self, *, member: str, stripe_customer_id: str) -> MemberInfo:
        """Link (or re-link) a member to a Stripe customer id, so Stripe events find them.

        Stripe purchases that were parked for this customer (or for this member's id in the
        payment's metadata) are applied now.
        """
        return link_applying_parked(
            self._db,
            program=self._program,
            external_id=member,
            stripe_customer_id=stripe_customer_id,
        ).member

    def close_member(self, *, member: str) -> MemberInfo:
        """Close a member: no more earning, spending or receiving points; their points stay.

        Closing a closed member answers them again.
        """
        return set_member_status(
            self._db, program=self._program, external_id=member, status="closed"
        )

    # --- earning ----------------------------------------------------------------------------

    def quote(
        self,
        *,
        amount_minor: int | None = None,
        lines: OrderLines | None = None,
        paid_with_points_minor: int = 0,
        member: str | None = None,
        currency: str | None = None,
    ) -> EarnQuote:
        """What an order would earn now; writes nothing.

        Pass ``amount_minor`` (the total, in minor units) or ``lines`` (dicts with
        ``amount_minor`` and optional ``sku`` and ``category``, so category and SKU ratios
        apply). With ``member``, ``points_after_caps`` also applies their caps.
        """
        return core.quote_purchase(
            self._db,
            program=self._program,
            currency=currency or self._currency,
            amount_minor=amount_minor,
            lines=lines,
            paid_with_points_minor=paid_with_points_minor,
            member=member,
        )

    def earn(
        self,
        *,
        member: str,
        order_id: str,
        amount_minor: int | None = None,
        lines: OrderLines | None = None,
        paid_with_points_minor: int = 0,
        currency: str | None = None,
        idempotency_key: str | None = None,
        location: str | None = None,
        device: str | None = None,
    ) -> EarnResult:
        """Credit the points a paid order earns, once per order (key: ``earn:<order_id>``).

        Pass ``amount_minor`` or ``lines`` as for :meth:`quote`, and the part paid with points
        as ``paid_with_points_minor`` (a hold's ``discount_minor``): that part earns nothing.
        The result says what was requested, what was granted and which cap cut it.

        ``location`` (a store, a till) and ``device`` (up to 128 characters each) are what
        risk control's velocity rules count per location or device. A ``block`` rule may
        refuse the earn (:class:`~loyalty.errors.RiskBlocked`); a frozen account always does
        (:class:`~loyalty.errors.MemberFrozen`).
        """
        return core.earn_purchase(
            self._db,
            program=self._program,
            member=member,
            order_id=order_id,
            currency=currency or self._currency,
            amount_minor=amount_minor,
            lines=lines,
            paid_with_points_minor=paid_with_points_minor,
            idempotency_key=idempotency_key,
            location=location,
            device=device,
        )

    def earn_action(
        self,
        *,
        member: str,
        action: str,
        reference: str,
        idempotency_key: str | None = None,
        location: str | None = None,
        device: str | None = None,
    ) -> EarnResult:
        """Credit a named action's fixed points (``sign_in``, ``review``…) within its limit.

        ``reference`` names the occurrence (a date, a review id); the key defaults to
        ``action:<action>:<member>:<reference>``. Over the limit it grants 0 with
        ``capped_by="action_limit"``. ``location`` and ``device`` as for :meth:`earn`.
        """
        return core.earn_action(
            self._db,
            program=self._program,
            member=member,
            action=action,
            reference=reference,
            idempotency_key=idempotency_key,
            location=location,
            device=device,
        )

    # --- redemption -------------------------------------------------------------------------

    def quote_redemption(
        self, *, member: str, order_total_minor: int, currency: str | None = None
    ) -> RedemptionQuote:
        """How many of the member's points may pay for this order, and what they are worth."""
        return core.quote_redemption(
            self._db,
            program=self._program,
            member=member,
            order_total_minor=order_total_minor,
            currency=currency or self._currency,
        )

    def hold(
        self,
        *,
        member: str,
        order_id: str,
        points: int,
        order_total_minor: int,
        currency: str | None = None,
        idempotency_key: str | None = None,
    ) -> HoldResult:
        """Reserve points to pay part of an order, before the payment is taken.

        Then call :meth:`capture` when the payment succeeds or :meth:`release` when it fails;
        a hold left alone times out after the program's ``hold_timeout_seconds``. The
        result's ``discount_minor`` is what the points pay; charge the rest. One order has
        at most one hold; the key defaults to ``hold:<order_id>``.

        Retrying: a hold retried with the same key replays its first result, also after it
        was captured or released, so a retry answers ``status="active"`` with
        ``replayed=True`` whatever happened since. To learn the hold's current state, call
        :meth:`capture` (or :meth:`release`) again: a capture of a captured hold answers
        ``status="captured"`` (``replayed=True``) and a release of a released or timed-out
        hold answers its status; a capture of a released or timed-out hold, or a release of
        a captured one, raises :class:`~loyalty.errors.HoldNotActive` whose
        ``details["status"]`` is the hold's state.
        """
        return core.hold_points(
            self._db,
            program=self._program,
            member=member,
            order_id=order_id,
            points=points,
            order_total_minor=order_total_minor,
            currency=currency or self._currency,
            idempotency_key=idempotency_key,
        )

    def capture(self, *, order_id: str, idempotency_key: str | None = None) -> HoldResult:
        """The payment succeeded: spend the order's held points (key: ``capture:<order_id>``).

        Capturing a captured hold answers its state again; a released or timed-out hold
        raises :class:`~loyalty.errors.HoldNotActive` (hold the points again).
        """
        return core.capture_hold(
            self._db, program=self._program, order_id=order_id, idempotency_key=idempotency_key
        )

    def release(self, *, order_id: str, idempotency_key: str | None = None) -> HoldResult:
        """The payment failed: give the order's held points back (key: ``release:<order_id>``).

        Releasing a released or timed-out hold answers its state again; a captured hold
        raises :class:`~loyalty.errors.HoldNotActive` (refund the order instead).
        """
        return core.release_hold(
            self._db, program=self._program, order_id=order_id, idempotency_key=idempotency_key
        )

    # --- refunds and disputes ---------------------------------------------------------------

    def refund(
        self,
        *,
        order_id: str,
        refund_id: str,
        amount_minor: int,
        currency: str | None = None,
        succeeded: bool = False,
        idempotency_key: str | None = None,
    ) -> ReversalResult:
        """A refund of ``amount_minor`` of an order: its share of the points is frozen at once.

        Call :meth:`complete_refund` or :meth:`fail_refund` when the outcome is known, or pass
        ``succeeded=True`` for a refund that already went through (the points are reversed
        and a share of the points redeemed on the order comes back). Key: ``refund:<refund_id>``.
        """
        return core.refund_order(
            self._db,
            program=self._program,
            order_id=order_id,
            refund_id=refund_id,
            amount_minor=amount_minor,
            currency=currency or self._currency,
            succeeded=succeeded,
            idempotency_key=idempotency_key,
        )

    def complete_refund(
        self, *, refund_id: str, idempotency_key: str | None = None
    ) -> ReversalResult:
        """The refund succeeded: reverse its frozen points, give back redeemed points."""
        return core.complete_refund(
            self._db, program=self._program, refund_id=refund_id, idempotency_key=idempotency_key
        )

    def fail_refund(self, *, refund_id: str, idempotency_key: str | None = None) -> ReversalResult:
        """The refund failed: its frozen points go back to the member."""
        return core.fail_refund(
            self._db, program=self._program, refund_id=refund_id, idempotency_key=idempotency_key
        )

    def open_dispute(
        self,
        *,
        order_id: str,
        dispute_id: str,
        amount_minor: int,
        currency: str | None = None,
        idempotency_key: str | None = None,
    ) -> ReversalResult:
        """A chargeback of ``amount_minor`` of an order: its share of the points is frozen."""
        return core.open_dispute(
            self._db,
            program=self._program,
            order_id=order_id,
            dispute_id=dispute_id,
            amount_minor=amount_minor,
            currency=currency or self._currency,
            idempotency_key=idempotency_key,
        )

    def close_dispute(
        self, *, dispute_id: str, won: bool, idempotency_key: str | None = None
    ) -> ReversalResult:
        """The dispute closed: a lost one reverses the frozen points, a won one releases them."""
        return core.close_dispute(
            self._db,
            program=self._program,
            dispute_id=dispute_id,
            won=won,
            idempotency_key=idempotency_key,
        )

    # --- transfers and adjustments ----------------------------------------------------------

    def transfer(
        self,
        *,
        sender: str,
        recipient: str,
        points: int,
        transfer_id: str,
        idempotency_key: str | None = None,
    ) -> TransferResult:
        """Give ``points`` of the sender's available points to another member.

        The program must allow transfers; its limits and fee apply. Transferred points keep
        their expiry. Key: ``transfer:<transfer_id>``.
        """
        return transfer_points(
            self._db,
            program=self._program,
            sender=sender,
            recipient=recipient,
            points=points,
            transfer_id=transfer_id,
            idempotency_key=idempotency_key,
        )

    def adjust(
        self,
        *,
        member: str,
        points: int,
        reason: str,
        adjustment_id: str,
        actor: str | None = None,
        idempotency_key: str | None = None,
    ) -> AdjustmentResult:
        """Grant (``points`` > 0) or deduct (``points`` < 0) points by hand, with a reason.

        ``actor`` says who did it. A deduction needs that many available points. Key:
        ``adjust:<adjustment_id>``. (Approval of large adjustments belongs to the admin
        console; this is the ledger write.)
        """
        return core.adjust_points(
            self._db,
            program=self._program,
            member=member,
            points=points,
            reason=reason,
            adjustment_id=adjustment_id,
            actor=actor,
            idempotency_key=idempotency_key,
        )

    # --- reads ------------------------------------------------------------------------------

    def balance(self, *, member: str, expiring_within_days: int = 30) -> Balance:
        """The member's balances now, and the points that expire within the window."""
        return core.balance(
            self._db,
            program=self._program,
            member=member,
            expiring_within_days=expiring_within_days,
        )

    def history(self, *, member: str, limit: int = 50, cursor: int | None = None) -> HistoryPage:
        """A page of the member's history, newest first; pass ``next_cursor`` as ``cursor``."""
        return core.history(
            self._db, program=self._program, member=member, limit=limit, cursor=cursor
        )

    def forecast(self, *, days: int = 90, member: str | None = None) -> Forecast:
        """What will expire or be cleared in the next ``days`` days, for one member or all."""
        return forecast_points(self._db, program=self._program, days=days, member=member)

    # --- the reward catalog -----------------------------------------------------------------

    def rewards(self, *, member: str | None = None) -> tuple[RewardOffer, ...]:
        """The visible catalog now; with ``member``, whether they can redeem each reward and,
        when not, why (``reasons``: ``out_of_stock``, ``insufficient_points``, ``limit_day``…)."""
        return list_rewards(self._db, program=self._program, member=member)

    def redeem_reward(
        self,
        *,
        member: str,
        reward: str,
        quantity: int = 1,
        idempotency_key: str | None = None,
        shipping: Mapping[str, Any] | None = None,
    ) -> RewardRedemptionResult:
        """Spend the member's points on ``quantity`` of a reward, in one transaction.

        Points come from the soonest-expiring lots; the stock is taken and the coupon code,
        voucher, item or draw (``draw``, and its ``prize``) issued. An item needs
        ``shipping`` (``name``, ``phone``, ``address``; ``city``, ``postcode``, ``country``
        optional). Refused with nothing changed: :class:`~loyalty.errors.OutOfStock`,
        :class:`~loyalty.errors.RewardLimit`, :class:`~loyalty.errors.InsufficientPoints`,
        :class:`~loyalty.errors.RewardUnavailable` (``details["reasons"]``). Pass an
        ``idempotency_key`` to make a retry answer the same redemption (a remote client sends
        one key for all its attempts of one call even without it).
        """
        return redeem_reward(
            self._db,
            program=self._program,
            member=member,
            reward=reward,
            quantity=quantity,
            idempotency_key=idempotency_key,
            shipping=shipping,
        )

    def get_redemption(self, *, redemption: int) -> RewardRedemptionResult:
        """A redemption with its codes, vouchers, draw, prize and events."""
        return get_redemption(self._db, program=self._program, redemption=redemption)

    def redemptions(
        self,
        *,
        member: str | None = None,
        reward: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: int | None = None,
    ) -> RedemptionPage:
        """A page of redemptions, newest first, by member, reward and state; pass
        ``next_cursor`` as ``cursor`` for older ones."""
        return list_redemptions(
            self._db,
            program=self._program,
            member=member,
            reward=reward,
            status=status,
            limit=limit,
            cursor=cursor,
        )

    def cancel_redemption(
        self,
        *,
        redemption: int,
        reason: str,
        actor: str | None = None,
        idempotency_key: str | None = None,
    ) -> RewardRedemptionResult:
        """Cancel a redemption not yet delivered (or a coupon or voucher not used): the points
        go back into the lots they came from, with their expiry, and the stock back to the
        reward. A used voucher or a delivered item raises
        :class:`~loyalty.errors.FulfilmentConflict`. Key: ``reward-cancel:<redemption>``.
        """
        return cancel_redemption(
            self._db,
            program=self._program,
            redemption=redemption,
            reason=reason,
            actor=actor or SDK_ACTOR,
            idempotency_key=idempotency_key,
        )

    def advance_fulfilment(
        self, *, redemption: int, status: str, reason: str | None = None, actor: str | None = None
    ) -> RewardRedemptionResult:
        """Move an item's redemption to ``packing``, ``shipped`` or ``delivered``; asking for
        the state it is in answers it again (``replayed``). A move the states do not allow
        raises :class:`~loyalty.errors.FulfilmentConflict`."""
        return advance_fulfilment(
            self._db,
            program=self._program,
            redemption=redemption,
            status=status,
            actor=actor or SDK_ACTOR,
            reason=reason,
        )

    def validate_voucher(
        self,
        *,
        code: str,
        order_total_minor: int,
        member: str | None = None,
        currency: str | None = None,
    ) -> VoucherCheck:
        """What a voucher takes off an order now (``discount_minor``); writes nothing. One
        that cannot be used raises :class:`~loyalty.errors.VoucherNotUsable` with
        ``details["reason"]``; pass ``member`` to refuse another member's voucher."""
        return validate_voucher(
            self._db,
            program=self._program,
            code=code,
            order_total_minor=order_total_minor,
            currency=currency or self._currency,
            member=member,
        )

    def consume_voucher(
        self,
        *,
        code: str,
        order_id: str,
        order_total_minor: int,
        member: str | None = None,
        currency: str | None = None,
    ) -> VoucherCheck:
        """Use a voucher on an order: charge ``discount_minor`` less. Again on the same order
        answers the first use (``replayed``); on another order it raises
        :class:`~loyalty.errors.VoucherNotUsable`."""
        return consume_voucher(
            self._db,
            program=self._program,
            code=code,
            order_id=order_id,
            order_total_minor=order_total_minor,
            currency=currency or self._currency,
            member=member,
        )

    def release_voucher(self, *, code: str, order_id: str) -> VoucherCheck:
        """The order that used the voucher was refunded or cancelled: the voucher can be used
        again until it expires. Releasing one not in use answers it (``replayed``)."""
        return release_voucher(self._db, program=self._program, code=code, order_id=order_id)

    # --- member tiers -----------------------------------------------------------------------

    def tier_progress(self, *, member: str) -> TierProgress:
        """Where the member stands: ``tier``, the qualifying ``measure``, what ``next_tier``
        needs (``to_next_tier``), what keeping the tier needs by ``evaluate_at``
        (``to_keep_tier``), the tier's ``multiplier`` and ``benefits``, and a ``lock``.
        ``tiers_enabled`` is false when the program has no tiers."""
        return core.tier_progress(self._db, program=self._program, member=member)

    def tier_history(self, *, member: str, limit: int = 100) -> tuple[TierChangeInfo, ...]:
        """The member's tier changes, newest first (``reason``: ``earn``, ``refund``,
        ``dispute``, ``adjustment``, ``transfer``, ``evaluation``, ``manual`` or ``lock``);
        ``limit`` is 1 to 1000."""
        found = core.tier_history(self._db, program=self._program, member=member, limit=limit)
        return tuple(found)

    def set_member_tier(
        self,
        *,
        member: str,
        tier: str,
        reason: str,
        change_id: str,
        locked_until: dt.datetime | None = None,
        actor: str | None = None,
        idempotency_key: str | None = None,
    ) -> TierChangeInfo:
        """Put the member at ``tier`` by hand, with a ``reason`` kept in their tier history;
        with ``locked_until`` (aware), also hold them at that tier or above until then
        (evaluations and refunds never go below a lock; earning may still move them up).

        The new tier's period starts now; a change without ``locked_until`` ends any lock.
        Key: ``tier:<change_id>``: a retry returns the first change (``replayed``), the same
        key for another change raises :class:`~loyalty.errors.IdempotencyConflict`. A tier
        the program does not have raises :class:`~loyalty.errors.InvalidInput`; a program
        without tiers :class:`~loyalty.errors.Conflict`.
        """
        return core.set_member_tier(
            self._db,
            program=self._program,
            member=member,
            tier=tier,
            reason=reason,
            change_id=change_id,
            actor=actor or SDK_ACTOR,
            locked_until=locked_until,
            idempotency_key=idempotency_key,
        )

    def publish_tiers(
        self,
        *,
        rules: TierRules | Mapping[str, Any],
        effective_from: dt.datetime | None = None,
    ) -> TierVersionInfo:
        """Publish a tier version (a rules mapping such as ``{"tiers": [{"code": "member",
        "name": "普通", "threshold": 0}, …], "measure": "points", "window": "rolling", …}``)
        in force from ``effective_from`` (aware; default now, never in the past). It must keep
        every tier members hold or are locked at (:class:`~loyalty.errors.Conflict` names
        them); bad rules raise :class:`~loyalty.errors.InvalidRule`."""
        return core.publish_tiers(
            self._db,
            program=self._program,
            rules=rules,
            effective_from=effective_from,
            created_by=SDK_ACTOR,
        )

    def tier_versions(self) -> tuple[TierVersionInfo, ...]:
        """Every tier version, oldest first, without those cancelled."""
        return tuple(core.list_tier_versions(self._db, program=self._program))

    def cancel_tiers(self, *, version: int) -> TierVersionInfo:
        """Cancel tier version ``version`` before it takes effect; one in force, or followed
        by a later version, raises :class:`~loyalty.errors.Conflict`."""
        return core.cancel_tiers(
            self._db, program=self._program, version=version, cancelled_by=SDK_ACTOR
        )

    def tier_forecast(self, *, days: int = 90) -> TierForecast:
        """What the evaluations due in the next ``days`` days would do if nobody earned more:
        members per tier (``holding``), and how many would move ``up``, ``down`` or
        ``keep`` (``moves``: from tier to tier to members)."""
        return core.tier_forecast(self._db, program=self._program, days=days)

    def tier_distribution(self) -> tuple[TierCount, ...]:
        """How many members hold each tier now, lowest tier first."""
        return tuple(core.tier_distribution(self._db, program=self._program))

    def preview_tiers(self, *, rules: TierRules | Mapping[str, Any]) -> tuple[TierCount, ...]:
        """How many members each tier of draft ``rules`` would hold by their measure now;
        writes nothing."""
        return tuple(core.preview_tiers(self._db, program=self._program, rules=rules))

    # --- outbound events and webhook endpoints ---------------------------------------------

    def events(
        self,
        *,
        after: str | None = None,
        limit: int = 50,
        type: str | None = None,
        member: str | None = None,
    ) -> EventPage:
        """The program's events after the event ``after`` (from the first when None), oldest
        first, ``limit`` 1 to 100, only of ``type`` and ``member`` when given. Each item is
        exactly what a webhook receiver gets (``id``, ``type``, ``timestamp``, ``data``).
        Keep ``next_after`` and pass it as ``after`` to poll: no event is missed or seen
        twice. An empty page with ``has_more`` means events are still being written."""
        return list_events(
            self._db, program=self._program, after=after, limit=limit, type=type, member=member
        )

    def event(self, *, event_id: str) -> Event:
        """One event (``evt_…``), as a webhook receiver gets it; an id the program does not
        have raises :class:`~loyalty.errors.EventNotFound`."""
        return get_event(self._db, program=self._program, event_id=event_id)

    def webhook_endpoints(self) -> tuple[EndpointInfo, ...]:
        """The program's webhook endpoints, with their delivery counts."""
        return webhook_endpoints.list_endpoints(self._db, program=self._program)

    def webhook_endpoint(self, *, endpoint: int) -> EndpointInfo:
        """One webhook endpoint, with its delivery counts."""
        return webhook_endpoints.get_endpoint(self._db, program=self._program, endpoint=endpoint)

    def add_webhook_endpoint(
        self,
        *,
        url: str,
        event_types: Sequence[str] = (ALL_TYPES,),
        description: str | None = None,
    ) -> EndpointCreated:
        """Send the program's events of ``event_types`` (``"*"``: all) to ``url``, signed
        per Standard Webhooks. The result's ``secret`` (``whsec_…``) is shown this once:
        keep it to verify deliveries. An address in a private network is refused
        (:class:`~loyalty.errors.InvalidInput`) unless the program allows it."""
        return webhook_endpoints.add_endpoint(
            self._db,
            program=self._program,
            url=url,
            event_types=event_types,
            description=description,
            actor=SDK_ACTOR,
        )

    def update_webhook_endpoint(
        self,
        *,
        endpoint: int,
        url: str | None = None,
        event_types: Sequence[str] | None = None,
        description: str | None = None,
    ) -> EndpointInfo:
        """Change the endpoint's ``url``, ``event_types`` or ``description`` (``None`` keeps
        it; an empty description clears it). Only events dispatched from now on follow new
        types; a new URL is checked as a new endpoint's."""
        return webhook_endpoints.update_endpoint(
            self._db,
            program=self._program,
            endpoint=endpoint,
            url=url,
            event_types=event_types,
            description=description,
            actor=SDK_ACTOR,
        )

    def rotate_webhook_secret(self, *, endpoint: int) -> EndpointCreated:
        """A new signing secret for the endpoint, shown this once; the previous one keeps
        signing beside it for 24 hours (``rotating_until``), so receivers can switch."""
        return webhook_endpoints.rotate_secret(
            self._db, program=self._program, endpoint=endpoint, actor=SDK_ACTOR
        )

    def disable_webhook_endpoint(self, *, endpoint: int, reason: str) -> EndpointInfo:
        """Stop sending to the endpoint; its pending deliveries become failed, to be
        replayed once it is enabled again."""
        return webhook_endpoints.disable_endpoint(
            self._db, program=self._program, endpoint=endpoint, reason=reason, actor=SDK_ACTOR
        )

    def enable_webhook_endpoint(self, *, endpoint: int) -> EndpointInfo:
        """Send to the endpoint again: new events reach it; failed deliveries wait for a
        replay."""
        return webhook_endpoints.enable_endpoint(
            self._db, program=self._program, endpoint=endpoint, actor=SDK_ACTOR
        )

    def webhook_deliveries(
        self,
        *,
        endpoint: int | None = None,
        status: str | None = None,
        limit: int = 50,
        before: int | None = None,
    ) -> tuple[DeliveryInfo, ...]:
        """The program's webhook deliveries, newest first (``limit`` 1 to 500), of one
        ``endpoint`` and ``status`` (``pending``, ``delivered``, ``failed``) when given; pass
        the last one's ``id`` as ``before`` for older ones."""
        return webhook_delivery.list_deliveries(
            self._db,
            program=self._program,
            endpoint=endpoint,
            status=status,
            limit=limit,
            before=before,
        )

    def replay_webhook_delivery(self, *, delivery: int) -> DeliveryInfo:
        """Send a failed delivery again from the start (its attempts reset, due now); one
        that is not failed, or whose endpoint is disabled, raises
        :class:`~loyalty.errors.Conflict`."""
        return webhook_delivery.replay_delivery(
            self._db, program=self._program, delivery=delivery, actor=SDK_ACTOR
        )

    def replay_webhook_deliveries(
        self, *, endpoint: int | None = None, since: dt.datetime | None = None
    ) -> int:
        """Send every failed delivery of the program's enabled endpoints (or of one
        ``endpoint``) again from the start, those last tried since ``since`` (aware) when
        given; returns how many."""
        return webhook_delivery.replay_failed(
            self._db, program=self._program, endpoint=endpoint, since=since, actor=SDK_ACTOR
        )

    # --- risk control (风控) -------------------------------------------------------------------

    def publish_risk_rules(
        self,
        *,
        rules: Sequence[Mapping[str, Any]] | Mapping[str, Any],
        note: str | None = None,
    ) -> RiskRulesInfo:
        """Put a new version of the program's risk rules in force now, audited: a list of
        rules such as ``[{"id": "earn-burst", "kind": "velocity", "scope": "member",
        "measure": "earns", "limit": 20, "window": "hour", "action": "block"}, …]`` (or
        ``{"rules": [...]}`` as :meth:`risk_rules` shows them); an empty list turns risk
        control off. A bad rule raises :class:`~loyalty.errors.InvalidRule` naming it, and
        nothing is published."""
        return core.publish_risk_rules(
            self._db, program=self._program, rules=_rule_set(rules), note=note, actor=SDK_ACTOR
        )

    def risk_rules(self, *, version: int | None = None) -> RiskRulesInfo | None:
        """The risk rules in force (or version ``version``), each explained in English
        (``sentences``) and Chinese (``sentences_zh``); ``None`` if none were ever
        published."""
        return core.risk_rules(self._db, program=self._program, version=version)

    def risk_rule_versions(self) -> tuple[RiskRulesInfo, ...]:
        """Every published version of the risk rules, newest first."""
        return tuple(core.risk_rule_versions_of(self._db, program=self._program))

    def risk_cases(
        self,
        *,
        status: str | None = "open",
        rule: str | None = None,
        member: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> RiskCasePage:
        """The program's risk cases, the most recently tripped first: ``open`` ones, or
        ``resolved``, ``dismissed``, or all (``None``); of one ``rule`` (its id) and
        ``member`` when given. ``total`` counts them all; ``limit`` is 1 to 500, pass
        ``offset`` for the next page. Listed cases carry no evidence: read one with
        :meth:`risk_case`."""
        return core.list_risk_cases(
            self._db,
            program=self._program,
            status=status,
            rule_id=rule,
            member=member,
            limit=limit,
            offset=offset,
        )

    def risk_case(self, *, case_id: int) -> RiskCaseInfo:
        """One risk case with its evidence (the operations that tripped the rule, newest
        first, at most 50), the rule's figures and the points the member holds; one the
        program does not have raises :class:`~loyalty.errors.RiskCaseNotFound`."""
        return core.risk_case(self._db, program=self._program, case_id=case_id)

    def assign_risk_case(self, *, case_id: int, assignee: str | None) -> RiskCaseInfo:
        """Give the case to a person (``None``: to nobody), audited."""
        return core.assign_risk_case(
            self._db, program=self._program, case_id=case_id, assignee=assignee, actor=SDK_ACTOR
        )

    def resolve_risk_case(
        self, *, case_id: int, outcome: str, note: str, points: int | None = None
    ) -> RiskCaseInfo:
        """Close an open case with a ``note``, in one audited unit of work: ``release``
        makes the member's held points available and lifts the hold (unless another hold
        case of theirs is open), ``reverse`` does that and deducts ``points`` (by default the
        points held), ``dismiss`` closes it as a false alarm, releasing like ``release``. A
        closed case raises :class:`~loyalty.errors.RiskCaseClosed`."""
        return core.resolve_risk_case(
            self._db,
            program=self._program,
            case_id=case_id,
            outcome=outcome,
            note=note,
            points=points,
            actor=SDK_ACTOR,
        )

    def freeze_member(self, *, member: str, reason: str) -> MemberInfo:
        """Freeze the member's account (账户冻结), with the reason, audited: status
        ``suspended``; earning, spending and transfers raise
        :class:`~loyalty.errors.MemberFrozen`; balances are kept."""
        return core.freeze_member(
            self._db, program=self._program, member=member, reason=reason, actor=SDK_ACTOR
        )

    def unfreeze_member(self, *, member: str, reason: str) -> MemberInfo:
        """Lift the member's account freeze, with the reason, audited."""
        return core.unfreeze_member(
            self._db, program=self._program, member=member, reason=reason, actor=SDK_ACTOR
        )

    def release_member_hold(self, *, member: str, note: str) -> int:
        """Lift the member's risk hold outside a case (the hold cases stay as they are),
        audited; returns the points made available."""
        return core.release_member_hold(
            self._db, program=self._program, member=member, note=note, actor=SDK_ACTOR
        )

    def scan_risk(self) -> RiskScanResult:
        """Evaluate the program's ``flag`` and ``hold`` rules now, as the risk job does
        every minute: rules evaluated, subjects over a limit, cases opened, added to,
        reopened, and members put on hold. Safe to run twice."""
        return core.scan_risk(self._db, program=self._program)

    # --- reminders --------------------------------------------------------------------------

    def on_reminder(self, callback: ReminderCallback) -> ReminderCallback:
        """Have ``callback(reminder)`` called for every new points-expiring reminder.

        Usable as a decorator. Callbacks run in this process, after the reminders are
        committed, when :meth:`send_reminders` runs on this client; a callback that raises
        leaves its reminder pending for a retry and does not stop the others.
        """
        return register_reminder_callback(self._db, callback)

    def send_reminders(self, *, days: int | None = None) -> ReminderResult:
        """Create the program's due reminders (once per member and date) and deliver them.

        ``days`` overrides the program's ``reminder_days`` window. Safe to run twice.
        """
        return send_reminders(self._db, program=self._program, days=days)

    # --- Stripe -----------------------------------------------------------------------------

    def stripe_webhook(self, *, secret: str, tolerance: int = DEFAULT_TOLERANCE) -> StripeWebhook:
        """The program's Stripe webhook handler, to host at a URL of your web app.

        ``secret`` is the endpoint's signing secret (``whsec_…``). Pass each request's raw
        body and ``Stripe-Signature`` header to ``handle()`` and answer with the result's
        ``http_status`` and ``to_dict()``; see ``examples/stripe_webhook.py``.
        """
        return StripeWebhook(self._db, program=self._program, secret=secret, tolerance=tolerance)


def _rule_set(rules: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> Any:
    """Risk rules as the service takes them (``{"rules": [...]}``); what is neither a
    mapping nor a sequence reaches the service as given, to be refused there."""
    if isinstance(rules, Mapping):
        return rules
    return {"rules": list(rules) if isinstance(rules, list | tuple) else rules}


# --- construction checks --------------------------------------------------------------------


def _check_clock(clock: Clock | None) -> None:
    """A clock must have ``now()`` returning an aware datetime."""
    if clock is None:
        return
    now = getattr(clock, "now", None)
    if isinstance(clock, dt.datetime) or not callable(now):
        raise ConfigurationError(
            f"clock must be an object with a now() method, got {type(clock).__name__}; "
            "for a fixed time pass loyalty.domain.clock.FixedClock(aware_datetime)"
        )
    require_aware("clock.now()", now())


def _engine_for(url: str | None, engine: Engine | None) -> tuple[Engine, bool]:
    """The engine the client uses, and whether the client created it."""
    if url is not None and engine is not None:
        raise ConfigurationError("pass a database URL or an engine, not both")
    if engine is not None:
        if not isinstance(engine, Engine):
            raise ConfigurationError(
                f"engine must be a SQLAlchemy Engine, got {type(engine).__name__}"
            )
        url = url_to_reopen(engine)
        if url is None:
            return engine, False
    found = url or load_settings().database_url
    if not found:
        raise ConfigurationError(
            f"no database: pass a database URL or set {DATABASE_URL_ENV} (for example "
            "'postgresql://user@host/shop' or 'sqlite:///jifen.db'), or pass engine=your_engine"
        )
    created = make_engine(found)
    database = missing_sqlite_file(created)
    if database is not None:
        created.dispose()
        raise ConfigurationError(
            f"no SQLite database at {database!r}; "
            f"{migrate.upgrade_hint(created.url.render_as_string(hide_password=True))}"
        )
    return created, True


def _check_schema(db: Database) -> None:
    """The database answers and its schema is at the revision this Jifen ships."""
    try:
        with db.read() as conn:
            migrate.require_schema(conn, _safe_url(db.engine))
    except DBAPIError as exc:
        raise ConfigurationError(
            f"cannot use the database at {_safe_url(db.engine)}: {exc.orig}; "
            "check the URL and that the server is running"
        ) from exc


def _program_info(db: Database, program: str) -> ProgramInfo:
    """The program's settings, or a :class:`ProgramNotFound` that says what to do."""
    try:
        return core.get_program(db, program)
    except ProgramNotFound as exc:
        raise ProgramNotFound(
            f"no program has the code {program!r} in this database; check program= or "
            "create the program first (loyalty.services.create_program)",
            program=program,
        ) from exc
