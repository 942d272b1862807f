"""A stateful test of the reward catalog: the real services on a real database against a
plain model.

Hypothesis drives random sequences of earns, redemptions (an item with a small stock and a
daily limit, a coupon with a small pool and a monthly limit, a voucher, a draw whose prize is
a hidden item with its own small stock, and that hidden prize asked for directly), retries of
a redemption under its key (replays) and with other parameters (conflicts), cancellations
(under the derived key, which replays, or a key of their own), fulfilment moves, restocks,
codes added to the pool (sometimes one it holds already), vouchers used on orders and given
back, catalog reads, and clock moves (minutes to weeks, with or without the expiry sweep), so
lots expire, vouchers run out and daily and monthly limits start again.

The model predicts every answer: which error a refused redemption gets (out of stock before a
limit before a lack of points, as the service ranks them), which lots a redemption takes
(soonest-expiring first, lapsed lots left out), which codes the pool gives, when a voucher
runs out, what a draw awards given its recorded seed (the seed is random; the model
recomputes the outcome from it, as an auditor would), where cancelled points go (back into
their lots, or expired again if the lot expired meanwhile) and what stock comes back. After
every step every balance, every reward's stock, every redemption's and voucher's status must
equal the model's and the ledger must verify; a refused or replayed call changes nothing.

It runs on SQLite (a copy of a migrated template per run) and, smaller, on PostgreSQL (one
database for the module, truncated between runs), with the ledger machine's databases.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import test_ledger_state_machine as ledger_machine
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from sqlalchemy import func, select
from test_ledger_state_machine import ledger_pg_database  # noqa: F401 (the fixture)

from loyalty import services as s
from loyalty.db import Database
from loyalty.db.models import Base
from loyalty.db.tables import members, reward_redemptions, rewards, vouchers
from loyalty.domain.clock import FixedClock
from loyalty.domain.rewards import LIMIT_PERIODS, RewardTerms, draw_value, pick_prize
from loyalty.errors import (
    AlreadyExists,
    FulfilmentConflict,
    IdempotencyConflict,
    InsufficientPoints,
    InvalidInput,
    LoyaltyError,
    OutOfStock,
    RewardLimit,
    RewardUnavailable,
    VoucherNotUsable,
)
from loyalty.services.reward_results import RewardRedemptionResult, VoucherInfo

PROGRAM = "shop"
CURRENCY = "CNY"
TZ_NAME = "Asia/Shanghai"
TZ = ZoneInfo(TZ_NAME)
MEMBERS = ("m0", "m1", "m2")
START = dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.UTC)  # 18:00 in Shanghai
ACTOR = "ops@example.com"
REASON = "changed my mind"
SHIPPING = {"name": "Li Lei", "phone": "13800000000", "address": "1 Nanjing Road, Shanghai"}
VOUCHER_DAYS = 3
PRIZE_PPM = 400_000

# The catalog of every run: code -> (kind, terms); stocks are drawn per run.
CATALOG: dict[str, tuple[str, dict[str, Any]]] = {
    "pen": ("item", {"name": "Pen", "points": 5, "visible": False}),  # only won, or refused
    "mug": ("item", {"name": "Mug", "points": 40, "limits": {"day": 2}}),
    "tea": ("coupon", {"name": "Tea", "points": 25, "limits": {"month": 3}}),
    "ten-off": (
        "voucher",
        {
            "name": "10 off",
            "points": 50,
            "voucher_amount_minor": 1_000,
            "voucher_valid_days": VOUCHER_DAYS,
        },
    ),
    "spin": (
        "draw",
        {
            "name": "Spin",
            "points": 10,
            "limits": {"day": 3},
            "prizes": [{"reward": "pen", "chance_ppm": PRIZE_PPM, "label": "a pen"}],
        },
    ),
}
WRITTEN = [
    Base.metadata.tables[name]
    for name in (
        "lots",
        "entries",
        "operations",
        "reward_codes",
        "reward_events",
        "reward_versions",
        "audit_log",
    )
]
PRIZES = RewardTerms.from_dict(CATALOG["spin"][1], kind="draw").prizes
REDEEMABLE = ("mug", "tea", "ten-off", "spin", "pen")
ITEM_FLOW = {
    "issued": ("packing", "shipped", "cancelled"),
    "packing": ("shipped", "cancelled"),
    "shipped": ("delivered", "cancelled"),
}
DIGITAL_FLOW = {"issued": ("cancelled",)}

AMOUNTS = st.one_of(st.integers(100, 12_000), st.sampled_from([5_000, 10_000]))
MINUTES = st.one_of(
    st.integers(0, 90),
    st.sampled_from([6 * 60, 24 * 60, 3 * 24 * 60, 12 * 24 * 60, 35 * 24 * 60]),
)


# --- the model --------------------------------------------------------------------------


@dataclass
class MLot:
    """A lot as the model has it: points left and when it expires (and was swept)."""

    member: int
    available: int
    earned_at: dt.datetime
    expires_at: dt.datetime
    expired_at: dt.datetime | None = None


@dataclass
class MRedemption:
    """A redemption: what it cost, from which lots, what stock it took, where it stands."""

    id: int
    member: int
    reward: str
    kind: str
    quantity: int
    points: int
    created_at: dt.datetime
    taken: list[tuple[int, int]]  # (model lot index, points)
    stock_taken: int
    prize: bool = False  # won in a draw: no points, outside the limits
    status: str = "issued"
    vouchers: list[str] = field(default_factory=list)
    cancel_result: RewardRedemptionResult | None = None  # cancelled under the derived key


@dataclass
class MVoucher:
    """A voucher: its owner, value, end of validity and the order that uses it."""

    code: str
    member: int
    redemption: int
    amount: int
    valid_until: dt.datetime
    status: str = "active"
    order_id: str | None = None


@dataclass
class Keyed:
    """A redemption made under an explicit key, to retry."""

    key: str
    member: int
    reward: str
    quantity: int
    result: RewardRedemptionResult


def local_start(at: dt.datetime, period: str) -> dt.datetime:
    """The start of ``at``'s Shanghai day or month (lifetime: the beginning of time)."""
    local = at.astimezone(TZ)
    if period == "day":
        return dt.datetime(local.year, local.month, local.day, tzinfo=TZ).astimezone(dt.UTC)
    if period == "month":
        return dt.datetime(local.year, local.month, 1, tzinfo=TZ).astimezone(dt.UTC)
    return dt.datetime.min.replace(tzinfo=dt.UTC)


def voucher_end(at: dt.datetime) -> dt.datetime:
    """The Shanghai midnight that ends the voucher's last day (the day of issue counts)."""
    last = at.astimezone(TZ).date() + dt.timedelta(days=VOUCHER_DAYS)
    return dt.datetime.combine(last, dt.time(), tzinfo=TZ).astimezone(dt.UTC)


class CatalogMachine(RuleBasedStateMachine):
    """Drives the catalog's services on a fresh database and keeps a plain model in step."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FixedClock(START)
        self.workdir: Path | None = None
        self.db = Database.from_url(self.fresh_database(), clock=self.clock)
        self.ready = False
        self.lots: list[MLot] = []
        self.stock: dict[str, int | None] = {}
        self.pool: list[str] = []  # the coupon's free codes, in the order they are given
        self.known_codes: list[str] = []
        self.redemptions: dict[int, MRedemption] = {}
        self.vouchers: dict[str, MVoucher] = {}
        self.keyed: list[Keyed] = []
        self.serial = 0

    # database per run -----------------------------------------------------------------------

    def fresh_database(self) -> str:
        template = ledger_machine._sqlite_template()
        self.workdir = Path(tempfile.mkdtemp(dir=template.parent))
        path = self.workdir / "jifen.db"
        shutil.copy(template, path)
        return f"sqlite:///{path}"

    def teardown(self) -> None:
        self.db.dispose()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # helpers --------------------------------------------------------------------------------

    @property
    def now(self) -> dt.datetime:
        return self.clock.now()

    def next_id(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.serial}"

    def usable(self, member: int) -> list[tuple[int, MLot]]:
        """The member's lots a spend may take from, soonest-expiring first."""
        mine = [
            (i, lot)
            for i, lot in enumerate(self.lots)
            if lot.member == member and lot.available > 0 and lot.expires_at > self.now
        ]
        return sorted(mine, key=lambda pair: (pair[1].expires_at, pair[1].earned_at, pair[0]))

    def spendable(self, member: int) -> int:
        return sum(lot.available for _, lot in self.usable(member))

    def booked(self, member: int) -> int:
        """The member row's available points: lapsed points count until the sweep ends them."""
        return sum(lot.available for lot in self.lots if lot.member == member)

    def usage(self, member: int, reward: str, period: str) -> int:
        since = local_start(self.now, period)
        return sum(
            r.quantity
            for r in self.redemptions.values()
            if r.member == member
            and r.reward == reward
            and not r.prize
            and r.status != "cancelled"
            and r.created_at >= since
        )

    def reasons(
        self, member: int, reward: str, quantity: int, *, offered: bool = False
    ) -> list[str]:
        """Why ``member`` cannot redeem ``quantity`` of ``reward`` now, as the service says:
        redeeming weighs the member row's points (lapsed ones until the sweep; taking the lots
        then refuses them), the catalog as ``offered`` only the points spendable now."""
        terms = CATALOG[reward][1]
        reasons = []
        if terms.get("visible") is False:
            reasons.append("hidden")
        stock = self.stock[reward]
        if stock is not None and stock < quantity:
            reasons.append("out_of_stock")
        for period in LIMIT_PERIODS:
            limit = terms.get("limits", {}).get(period)
            if limit is not None and self.usage(member, reward, period) + quantity > limit:
                reasons.append(f"limit_{period}")
        points = self.spendable(member) if offered else self.booked(member)
        if points < terms["points"] * quantity:
            reasons.append("insufficient_points")
        return reasons

    def why_not(self, member: int, reward: str) -> list[str]:
        """Why the catalog does not offer one of ``reward`` to ``member``."""
        return self.reasons(member, reward, 1, offered=True)

    def fingerprint(self) -> tuple[Any, ...]:
        """The row counts of the tables a redemption, a cancellation or a voucher writes, and
        every member, reward, redemption and voucher row."""
        with self.db.read() as conn:
            counts = tuple(
                int(conn.execute(select(func.count()).select_from(t)).scalar_one()) for t in WRITTEN
            )
            rows = tuple(
                tuple(tuple(r) for r in conn.execute(select(t).order_by(t.c.id)).all())
                for t in (members, rewards, reward_redemptions, vouchers)
            )
        return counts, rows

    def expect_unchanged(self, error: type[LoyaltyError], call: Callable[[], Any]) -> LoyaltyError:
        """Run ``call``: it must raise exactly ``error`` and write nothing."""
        before = self.fingerprint()
        with pytest.raises(LoyaltyError) as info:
            call()
        assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"
        assert self.fingerprint() == before, f"{error.__name__} changed the database"
        return info.value

    # set-up ---------------------------------------------------------------------------------

    @initialize(
        mug=st.sampled_from([3, 1, 0]),
        voucher=st.sampled_from([None, 4, 1, 0]),
        pen=st.sampled_from([2, 1, 0]),
        codes=st.sampled_from([3, 1, 0]),
        seed=st.lists(st.integers(0, 400), min_size=len(MEMBERS), max_size=len(MEMBERS)),
    )
    def setup_catalog(
        self, mug: int, voucher: int | None, pen: int, codes: int, seed: list[int]
    ) -> None:
        s.create_program(
            self.db,
            code=PROGRAM,
            name="Shop",
            currency=CURRENCY,
            timezone=TZ_NAME,
            rules={"base_ratio": "1", "expiry": {"months": 1}},
        )
        for external_id in MEMBERS:
            s.enrol_member(self.db, program=PROGRAM, external_id=external_id)
        stocks = {"pen": pen, "mug": mug, "tea": None, "ten-off": voucher, "spin": None}
        for code, (kind, terms) in CATALOG.items():
            info = s.create_reward(
                self.db,
                program=PROGRAM,
                code=code,
                kind=kind,
                terms=terms,
                actor=ACTOR,
                stock=stocks[code],
            )
            assert info.version == 1
            self.stock[code] = 0 if kind == "coupon" else stocks[code]
        self.ready = True
        if codes:
            self.add_codes(codes, False)
        for member, points in enumerate(seed):
            if points:
                self.earn(member, points * 100)

    # earning --------------------------------------------------------------------------------

    @rule(member=st.integers(0, len(MEMBERS) - 1), amount=AMOUNTS)
    def earn(self, member: int, amount: int) -> None:
        result = s.earn_purchase(
            self.db,
            program=PROGRAM,
            member=MEMBERS[member],
            order_id=self.next_id("o"),
            currency=CURRENCY,
            amount_minor=amount,
        )
        assert result.points_granted == amount // 100  # one point per yuan, no caps
        assert result.expires_at is not None and result.expires_at > self.now
        self.lots.append(MLot(member, result.points_granted, self.now, result.expires_at))

    # redeeming ------------------------------------------------------------------------------

    @rule(
        member=st.integers(0, len(MEMBERS) - 1),
        reward=st.sampled_from(REDEEMABLE),
        quantity=st.sampled_from([1, 1, 1, 2]),
        keyed=st.booleans(),
    )
    def redeem(self, member: int, reward: str, quantity: int, keyed: bool) -> None:
        kind, terms = CATALOG[reward]
        quantity = 1 if kind == "draw" else quantity
        key = self.next_id("redeem-") if keyed else None
        call = self.redeem_call(member, reward, quantity, key)
        reasons = self.reasons(member, reward, quantity)
        points = terms["points"] * quantity
        error: type[LoyaltyError] | None = None
        if "out_of_stock" in reasons:
            error = OutOfStock
        elif any(r.startswith("limit_") for r in reasons):
            error = RewardLimit
        elif reasons == ["insufficient_points"] or (
            not reasons and self.spendable(member) < points
        ):
            error = InsufficientPoints
        elif reasons:
            error = RewardUnavailable
        if error is not None:
            event(f"redeem refused: {error.__name__}")
            self.expect_unchanged(error, call)
            return
        result = call()
        event(f"redeemed a {kind}")
        self.check_redemption(result, member, reward, quantity, points)
        if key is not None:
            self.keyed.append(Keyed(key, member, reward, quantity, result))

    @rule(
        member=st.integers(0, len(MEMBERS) - 1),
        reward=st.sampled_from(["mug", "tea", "ten-off", "spin"]),
    )
    def redeem_one(self, member: int, reward: str) -> None:
        """One of a reward on offer, without a key: the commonest redemption."""
        self.redeem(member, reward, 1, False)

    def redeem_call(
        self, member: int, reward: str, quantity: int, key: str | None
    ) -> Callable[[], RewardRedemptionResult]:
        return lambda: s.redeem_reward(
            self.db,
            program=PROGRAM,
            member=MEMBERS[member],
            reward=reward,
            quantity=quantity,
            idempotency_key=key,
            shipping=SHIPPING if CATALOG[reward][0] == "item" else None,
        )

    def take(self, member: int, points: int) -> list[tuple[int, int]]:
        """Spend ``points`` from the member's lots, soonest-expiring first."""
        taken = []
        for index, lot in self.usable(member):
            if points == 0:
                break
            part = min(points, lot.available)
            lot.available -= part
            points -= part
            taken.append((index, part))
        assert points == 0
        return taken

    def check_redemption(
        self,
        result: RewardRedemptionResult,
        member: int,
        reward: str,
        quantity: int,
        points: int,
    ) -> None:
        kind = CATALOG[reward][0]
        assert not result.replayed
        assert (result.member, result.reward, result.kind) == (MEMBERS[member], reward, kind)
        assert (result.quantity, result.points, result.status) == (quantity, points, "issued")
        assert result.created_at == self.now and result.version == 1
        assert result.id not in self.redemptions
        stock = self.stock[reward]
        if stock is not None and kind != "coupon":
            self.stock[reward] = stock - quantity
        model = MRedemption(
            id=result.id,
            member=member,
            reward=reward,
            kind=kind,
            quantity=quantity,
            points=points,
            created_at=self.now,
            taken=self.take(member, points),
            stock_taken=quantity if stock is not None else 0,
        )
        self.redemptions[result.id] = model
        if kind == "coupon":
            assert result.codes == tuple(self.pool[:quantity])
            del self.pool[:quantity]
            self.stock[reward] = len(self.pool)
        else:
            assert result.codes == ()
        if kind == "voucher":
            self.check_vouchers(result.vouchers, model)
        else:
            assert result.vouchers == ()
        if kind == "draw":
            self.check_draw(result, member)
        else:
            assert result.draw is None and result.prize is None

    def check_vouchers(self, issued: tuple[VoucherInfo, ...], model: MRedemption) -> None:
        assert len(issued) == model.quantity
        codes = {v.code for v in issued}
        assert len(codes) == len(issued) and not codes & set(self.vouchers)
        for voucher in issued:
            assert (voucher.amount_minor, voucher.currency, voucher.status) == (
                1_000,
                CURRENCY,
                "active",
            )
            assert voucher.valid_from_at == self.now
            assert voucher.valid_until_at == voucher_end(self.now)
            self.vouchers[voucher.code] = MVoucher(
                voucher.code, model.member, model.id, 1_000, voucher.valid_until_at
            )
            model.vouchers.append(voucher.code)

    def check_draw(self, result: RewardRedemptionResult, member: int) -> None:
        """The outcome follows from the recorded seed; the prize is awarded if one is left."""
        draw = result.draw
        assert draw is not None
        assert draw.value == draw_value(draw.seed)
        drawn = pick_prize(PRIZES, draw.value)
        assert draw.drawn == (drawn.reward if drawn else None)
        if drawn is None:
            event("draw: no prize")
            assert (draw.reason, draw.awarded, result.prize) == ("no_prize", None, None)
            return
        pen = self.stock["pen"]
        if pen is not None and pen < 1:
            event("draw: the prize ran out")
            assert (draw.reason, draw.awarded, result.prize) == ("prize_out_of_stock", None, None)
            return
        event("draw: won")
        prize = result.prize
        assert prize is not None and draw.reason == "won" and draw.awarded == "pen"
        assert draw.prize_redemption == prize.id and prize.parent == result.id
        assert (prize.reward, prize.kind, prize.points, prize.quantity) == ("pen", "item", 0, 1)
        if pen is not None:
            self.stock["pen"] = pen - 1
        self.redemptions[prize.id] = MRedemption(
            id=prize.id,
            member=member,
            reward="pen",
            kind="item",
            quantity=1,
            points=0,
            created_at=self.now,
            taken=[],
            stock_taken=1 if pen is not None else 0,
            prize=True,
        )

    @rule(data=st.data(), change=st.sampled_from([None, None, "quantity", "reward", "member"]))
    def retry_redeem(self, data: st.DataObject, change: str | None) -> None:
        """The same key and request answers the first redemption, whatever happened since;
        the same key with another request is a conflict. Neither writes anything."""
        if not self.keyed:
            return
        first = data.draw(st.sampled_from(self.keyed), label="keyed")
        member, reward, quantity = first.member, first.reward, first.quantity
        if change == "quantity":
            quantity = 2 if quantity == 1 else 1
        elif change == "reward":
            reward = "mug" if reward != "mug" else "tea"
        elif change == "member":
            member = (member + 1) % len(MEMBERS)
        call = self.redeem_call(member, reward, quantity, first.key)
        if change is not None:
            event("redeem retried with another request")
            self.expect_unchanged(IdempotencyConflict, call)
            return
        event("redeem retried")
        before = self.fingerprint()
        assert call() == dataclasses.replace(first.result, replayed=True)
        assert self.fingerprint() == before

    # after the redemption -------------------------------------------------------------------

    @rule(data=st.data(), derived_key=st.booleans())
    def cancel(self, data: st.DataObject, derived_key: bool) -> None:
        if not self.redemptions:
            return
        redemption = self.redemptions[
            data.draw(st.sampled_from(sorted(self.redemptions)), label="redemption")
        ]

        def call() -> RewardRedemptionResult:
            return s.cancel_redemption(
                self.db,
                program=PROGRAM,
                redemption=redemption.id,
                reason=REASON,
                actor=ACTOR,
                idempotency_key=None if derived_key else self.next_id("cancel-"),
            )

        used = [c for c in redemption.vouchers if self.vouchers[c].status == "used"]
        if redemption.kind == "draw":
            event("cancel refused: a draw")
            self.expect_unchanged(FulfilmentConflict, call)
        elif derived_key and redemption.cancel_result is not None:
            event("cancel replayed")
            before = self.fingerprint()
            assert call() == dataclasses.replace(redemption.cancel_result, replayed=True)
            assert self.fingerprint() == before
        elif redemption.status not in ITEM_FLOW or used:
            event(f"cancel refused: {'a voucher used' if used else redemption.status}")
            self.expect_unchanged(FulfilmentConflict, call)
        else:
            result = call()
            event(f"cancelled a {redemption.kind}{' prize' if redemption.prize else ''}")
            assert (result.id, result.status, result.points) == (
                redemption.id,
                "cancelled",
                redemption.points,
            )
            assert not result.replayed
            self.give_back(redemption)
            if derived_key:
                redemption.cancel_result = result

    def give_back(self, redemption: MRedemption) -> None:
        """Points back into their lots (expiring again at once if the lot was swept), the
        stock back (not a coupon's: its codes are void), the vouchers cancelled."""
        for index, points in redemption.taken:
            lot = self.lots[index]
            if lot.expired_at is None:
                lot.available += points
            else:
                event("cancel: points expired again")
        if redemption.kind != "coupon" and redemption.stock_taken:
            stock = self.stock[redemption.reward]
            assert stock is not None
            self.stock[redemption.reward] = stock + redemption.stock_taken
        for code in redemption.vouchers:
            self.vouchers[code].status = "cancelled"
        redemption.status = "cancelled"

    @rule(data=st.data(), status=st.sampled_from(["packing", "shipped", "delivered"]))
    def advance(self, data: st.DataObject, status: str) -> None:
        target = status
        if not self.redemptions:
            return
        redemption = self.redemptions[
            data.draw(st.sampled_from(sorted(self.redemptions)), label="redemption")
        ]

        def call() -> RewardRedemptionResult:
            return s.advance_fulfilment(
                self.db, program=PROGRAM, redemption=redemption.id, status=target, actor=ACTOR
            )

        flow = ITEM_FLOW if redemption.kind == "item" else DIGITAL_FLOW
        if redemption.status == target:
            event("fulfilment: asked again")
            before = self.fingerprint()
            result = call()
            assert result.replayed and result.status == target
            assert self.fingerprint() == before
        elif target in flow.get(redemption.status, ()):
            event(f"fulfilment: {redemption.status} -> {target}")
            result = call()
            assert (result.id, result.status, result.replayed) == (redemption.id, target, False)
            redemption.status = target
        else:
            event("fulfilment refused")
            self.expect_unchanged(FulfilmentConflict, call)

    # stock ----------------------------------------------------------------------------------

    @rule(reward=st.sampled_from(REDEEMABLE), quantity=st.integers(1, 3))
    def restock(self, reward: str, quantity: int) -> None:
        def call() -> Any:
            return s.restock_reward(
                self.db, program=PROGRAM, reward=reward, quantity=quantity, actor=ACTOR
            )

        stock = self.stock[reward]
        if CATALOG[reward][0] == "coupon" or stock is None:
            self.expect_unchanged(InvalidInput, call)
            return
        info = call()
        self.stock[reward] = stock + quantity
        assert info.stock_left == stock + quantity

    @rule(count=st.integers(1, 3), repeat=st.booleans())
    def add_codes(self, count: int, repeat: bool) -> None:
        """New codes join the pool; a file with a code the pool holds adds nothing."""
        codes = [self.next_id("TEA-") for _ in range(count)]
        if repeat and self.known_codes:
            codes.append(self.known_codes[0])

        def call() -> Any:
            return s.add_codes(self.db, program=PROGRAM, reward="tea", codes=codes, actor=ACTOR)

        if repeat and self.known_codes:
            event("codes refused: one known")
            self.expect_unchanged(AlreadyExists, call)
            return
        info = call()
        self.pool.extend(codes)
        self.known_codes.extend(codes)
        self.stock["tea"] = len(self.pool)
        assert (info.stock_left, info.codes_free) == (len(self.pool), len(self.pool))

    # vouchers at the checkout ---------------------------------------------------------------

    @rule(
        data=st.data(),
        order=st.sampled_from(["new", "new", "its own"]),
        total=st.integers(1, 3_000),
        who=st.sampled_from(["anyone", "owner", "someone else"]),
    )
    def consume_voucher(self, data: st.DataObject, order: str, total: int, who: str) -> None:
        if not self.vouchers:
            return
        voucher = self.vouchers[data.draw(st.sampled_from(sorted(self.vouchers)), label="code")]
        order_id = voucher.order_id if order == "its own" and voucher.order_id else None
        order_id = order_id or self.next_id("order-")
        member = {
            "anyone": None,
            "owner": MEMBERS[voucher.member],
            "someone else": MEMBERS[(voucher.member + 1) % len(MEMBERS)],
        }[who]

        def call() -> Any:
            return s.consume_voucher(
                self.db,
                program=PROGRAM,
                code=voucher.code,
                order_id=order_id,
                order_total_minor=total,
                currency=CURRENCY,
                member=member,
            )

        why = None
        if voucher.status == "cancelled":
            why = "cancelled"
        elif voucher.status == "used" and voucher.order_id != order_id:
            why = "used"
        elif who == "someone else":
            why = "other_member"
        elif self.now >= voucher.valid_until and voucher.status != "used":
            why = "expired"
        if why is not None:
            event(f"voucher refused: {why}")
            error = self.expect_unchanged(VoucherNotUsable, call)
            assert error.details["reason"] == why
            return
        again = voucher.status == "used"
        before = self.fingerprint() if again else None
        check = call()
        event("voucher used again on its order" if again else "voucher used")
        assert (check.code, check.discount_minor, check.status, check.order_id) == (
            voucher.code,
            min(voucher.amount, total),
            "used",
            order_id,
        )
        assert check.replayed == again
        if before is not None:
            assert self.fingerprint() == before
        voucher.status, voucher.order_id = "used", order_id

    @rule(data=st.data(), its_order=st.booleans())
    def release_voucher(self, data: st.DataObject, its_order: bool) -> None:
        if not self.vouchers:
            return
        voucher = self.vouchers[data.draw(st.sampled_from(sorted(self.vouchers)), label="code")]
        order_id = voucher.order_id if its_order and voucher.order_id else self.next_id("order-")

        def call() -> Any:
            return s.release_voucher(self.db, program=PROGRAM, code=voucher.code, order_id=order_id)

        if voucher.status != "used":
            before = self.fingerprint()
            answer = call()
            assert answer.replayed and answer.status == voucher.status
            assert self.fingerprint() == before
        elif voucher.order_id != order_id:
            error = self.expect_unchanged(VoucherNotUsable, call)
            assert error.details["reason"] == "other_order"
        else:
            event("voucher released")
            answer = call()
            assert (answer.status, answer.order_id, answer.replayed) == ("active", None, False)
            voucher.status, voucher.order_id = "active", None

    # reads and time -------------------------------------------------------------------------

    @rule(member=st.integers(0, len(MEMBERS) - 1))
    def read_catalog(self, member: int) -> None:
        """The catalog as a member sees it: the visible rewards, and why not for each."""
        offers = s.list_rewards(self.db, program=PROGRAM, member=MEMBERS[member])
        got = {o.code: (o.redeemable, set(o.reasons), o.stock_left) for o in offers}
        want = {
            code: (not self.why_not(member, code), set(self.why_not(member, code)), stock)
            for code, stock in self.stock.items()
            if CATALOG[code][1].get("visible", True)
        }
        assert got == want

    @rule(minutes=MINUTES, sweep=st.booleans())
    def advance_clock(self, minutes: int, sweep: bool) -> None:
        """Move the clock; with ``sweep``, expire the lots whose time has come."""
        self.clock.advance(dt.timedelta(minutes=minutes))
        if not sweep:
            return
        due = [lot for lot in self.lots if lot.expired_at is None and lot.expires_at <= self.now]
        if due:
            event("sweep: lots expired")
        swept = s.expire_due(self.db)
        assert (swept.items, swept.points) == (len(due), sum(lot.available for lot in due))
        for lot in due:
            lot.expired_at = self.now
            lot.available = 0

    # invariants -----------------------------------------------------------------------------

    @invariant()
    def ledger_verifies(self) -> None:
        if not self.ready:
            return
        report = s.verify_ledger(self.db)
        failing = [f"{c.name}: {list(c.examples)}" for c in report.checks if not c.ok]
        assert report.ok, "verify_ledger failed:\n" + "\n".join(failing)

    @invariant()
    def balances_match_model(self) -> None:
        if not self.ready:
            return
        for member, external_id in enumerate(MEMBERS):
            got = s.balance(self.db, program=PROGRAM, member=external_id).available
            assert got == self.spendable(member), f"{external_id} at {self.now}"

    @invariant()
    def stock_matches_model(self) -> None:
        if not self.ready:
            return
        infos = {i.code: i for i in s.list_catalog(self.db, program=PROGRAM)}
        assert {code: i.stock_left for code, i in infos.items()} == self.stock
        assert infos["tea"].codes_free == len(self.pool)

    @invariant()
    def statuses_match_model(self) -> None:
        if not self.ready:
            return
        with self.db.read() as conn:
            got = {
                r.id: r.status
                for r in conn.execute(select(reward_redemptions.c.id, reward_redemptions.c.status))
            }
            issued = {
                r.code: (r.status, r.order_id)
                for r in conn.execute(
                    select(vouchers.c.code, vouchers.c.status, vouchers.c.order_id)
                )
            }
        assert got == {r.id: r.status for r in self.redemptions.values()}
        assert issued == {v.code: (v.status, v.order_id) for v in self.vouchers.values()}


class PostgresCatalogMachine(CatalogMachine):
    """The same machine on PostgreSQL: one database for the module, truncated per run."""

    def fresh_database(self) -> str:
        url = ledger_machine._pg_run_url
        assert url is not None, "the ledger_pg_database fixture did not run"
        ledger_machine._truncate_all(url)
        return url


TestCatalog = CatalogMachine.TestCase
TestCatalog.settings = settings(
    max_examples=15,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

TestCatalogPostgres = pytest.mark.postgres(
    pytest.mark.usefixtures("ledger_pg_database")(PostgresCatalogMachine.TestCase)
)
TestCatalogPostgres.settings = settings(
    max_examples=4,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
