"""A stateful test of the ledger: the real services on a real database against a plain model.

Hypothesis drives random sequences of earns (with retries, conflicting retries and retries
under other keys), holds (also just before a lot expires), captures, releases, clock moves
(random, or to just around an expiry, a maturity or a hold time-out) with the hold time-out,
maturation and expiry sweeps, quotes, history reads and bad input. A plain-Python model
predicts every answer: points requested and granted under the caps (per Asia/Shanghai day and
month, and the program's daily budget), which lots a hold takes (soonest-expiring first, lapsed
lots excluded), when holds succeed or fail and why, what each sweep does, and where released
points go (back to their lot, or gone if it expired meanwhile). After every step the ledger
must verify, and every balance, lot and hold in the database must equal the model's. Failed
and replayed calls must leave the database exactly as it was.

``pytest --hypothesis-show-statistics`` shows which paths the runs reached.

It runs on SQLite (a copy of a migrated template per run) and, smaller, on PostgreSQL (one
database for the module, truncated between runs, dropped at the end; skipped with a reason if
the server is unreachable, unless ``CI=true``).
"""

from __future__ import annotations

import atexit
import calendar
import dataclasses
import datetime as dt
import functools
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from loyalty import migrate
from loyalty import services as s
from loyalty.db import Database
from loyalty.db.models import Base, Hold, Lot, Member
from loyalty.domain.clock import FixedClock
from loyalty.domain.redemption import (
    RedemptionPolicy,
    check_redemption,
    max_redeemable_points,
)
from loyalty.domain.rounding import Rounding
from loyalty.domain.rules import OrderLine, RuleSet, purchase_points
from loyalty.errors import (
    AlreadyExists,
    CurrencyMismatch,
    HoldNotActive,
    HoldNotFound,
    IdempotencyConflict,
    InsufficientPoints,
    InvalidAmount,
    InvalidIdempotencyKey,
    InvalidInput,
    LoyaltyError,
    MemberNotFound,
    RedemptionLimit,
)
from loyalty.services.results import EarnResult, HoldResult

PROGRAM = "shop"
CURRENCY = "CNY"
TZ_NAME = "Asia/Shanghai"
TZ = ZoneInfo(TZ_NAME)
EXPONENT = 2  # CNY fen
POINTS_PER_UNIT = 100
MAX_SHARE_BP = 5000
HOLD_TIMEOUT = dt.timedelta(seconds=600)
DAILY_CAP = 2000
MEMBERS = ("m0", "m1", "m2")
START = dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.UTC)  # 18:00 in Shanghai

PG_URL = os.environ.get("JIFEN_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_SERVICES = os.environ.get("CI", "").lower() == "true"

lots_t = Lot.__table__
holds_t = Hold.__table__
members_t = Member.__table__


# --- databases --------------------------------------------------------------------------


@functools.cache
def _sqlite_template() -> Path:
    """A SQLite file migrated to head once per test process; every run copies it."""
    folder = Path(tempfile.mkdtemp(prefix="jifen-ledger-sm-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


_pg_run_url: str | None = None  # set by the module fixture of the PostgreSQL run class


def _pg_problem() -> str | None:
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any failure means "not available"
        return f"PostgreSQL at {PG_URL} is not reachable ({type(exc).__name__})"
    return None


@pytest.fixture(scope="module")
def ledger_pg_database() -> Iterator[str]:
    """A dedicated, migrated PostgreSQL database for the state machine, dropped at the end."""
    global _pg_run_url
    problem = _pg_problem()
    if problem:
        if REQUIRE_SERVICES:
            pytest.fail(f"{problem}; CI=true requires PostgreSQL")
        pytest.skip(f"{problem}: the PostgreSQL ledger state machine is skipped")
    name = f"jifen_sm_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(url)
        _pg_run_url = url
        yield url
    finally:
        _pg_run_url = None
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _truncate_all(url: str) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


# --- the model --------------------------------------------------------------------------


@dataclass
class MLot:
    """The model of one lot; its index in ``LedgerMachine.lots`` is its creation order."""

    member: int
    points: int
    available: int
    pending: int
    held: int
    earned_at: dt.datetime
    matures_at: dt.datetime | None
    expires_at: dt.datetime | None
    expired_at: dt.datetime | None = None  # set by the expiry sweep


@dataclass
class MHold:
    """The model of one successful hold and the lots it took its points from."""

    order_id: str
    member: int
    points: int
    total: int
    status: str  # active, captured, released, expired
    expires_at: dt.datetime
    taken: list[tuple[int, int]]  # (model lot index, points)
    result: HoldResult


@dataclass
class MEarn:
    """An earn as asked and as answered, for retries."""

    order_id: str
    member: int
    amount: int
    paid: int
    result: EarnResult


@dataclass
class Config:
    """The program of one run: its rules and redemption settings."""

    pending_days: int
    month_end: bool
    monthly_cap: int | None
    program_daily: int | None
    min_points: int
    min_order: int
    rules: RuleSet = field(init=False)

    def __post_init__(self) -> None:
        self.rules = RuleSet.from_dict(self.rules_dict())

    def rules_dict(self) -> dict[str, Any]:
        return {
            "base_ratio": "1",
            "caps": {
                "member_daily": DAILY_CAP,
                "member_monthly": self.monthly_cap,
                "program_daily": self.program_daily,
            },
            "pending_days": self.pending_days,
            "expiry": {"months": 1, "month_end": self.month_end},
        }

    @property
    def policy(self) -> RedemptionPolicy:
        return RedemptionPolicy(
            points_per_unit=POINTS_PER_UNIT,
            max_share_bp=MAX_SHARE_BP,
            min_points=self.min_points,
            min_order_minor=self.min_order,
        )


def expected_expiry(earned_at: dt.datetime, month_end: bool) -> dt.datetime:
    """One calendar month after ``earned_at`` in Shanghai (clamped to the month's last day),
    or, with ``month_end``, the local midnight that ends that month; written independently of
    :func:`loyalty.domain.calendar.lot_expiry`."""
    local = earned_at.astimezone(TZ)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    if month_end:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return dt.datetime(year, month, 1, tzinfo=TZ).astimezone(dt.UTC)
    day = min(local.day, calendar.monthrange(year, month)[1])
    wall = dt.datetime.combine(dt.date(year, month, day), local.time(), tzinfo=TZ)
    return wall.astimezone(dt.UTC)


def spending_key(lot: MLot, index: int) -> tuple[dt.datetime, dt.datetime, int]:
    """FEFO: soonest expiry first, then the oldest, then creation order (the lot id)."""
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    return (lot.expires_at or far, lot.earned_at, index)


# --- the machine ------------------------------------------------------------------------

AMOUNTS = st.one_of(st.integers(1, 200_000), st.sampled_from([1, 99, 100, 150_000, 200_000]))
MINUTES = st.one_of(  # mostly short; jump_to_boundary reaches expiries directly
    st.integers(0, 15),
    st.integers(0, 24 * 60),
    st.integers(0, 3 * 24 * 60),
    st.sampled_from([10, 6 * 60, 24 * 60, 2 * 24 * 60, 40 * 24 * 60]),
)


class LedgerMachine(RuleBasedStateMachine):
    """Drives the services on a fresh database and keeps a plain model in step."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FixedClock(START)
        self.workdir: Path | None = None
        self.url = self.fresh_database()
        self.db = Database.from_url(self.url, clock=self.clock)
        self.ready = False
        self.cfg: Config | None = None
        self.lots: list[MLot] = []
        self.holds: dict[str, MHold] = {}
        self.earns: dict[str, MEarn] = {}
        self.lifetime = [0] * len(MEMBERS)
        self.day_used: dict[tuple[int, str], int] = {}
        self.month_used: dict[tuple[int, str], int] = {}
        self.issued: dict[str, int] = {}
        self.serial = 0
        self.member_ids: dict[int, int] = {}  # database id -> model member index

    # database per run -------------------------------------------------------------------

    def fresh_database(self) -> str:
        self.workdir = Path(tempfile.mkdtemp(dir=_sqlite_template().parent))
        path = self.workdir / "jifen.db"
        shutil.copy(_sqlite_template(), path)
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

    def usable(self, lot: MLot) -> bool:
        return lot.expires_at is None or lot.expires_at > self.now

    def spendable(self, member: int) -> list[tuple[int, MLot]]:
        return [
            (i, lot)
            for i, lot in enumerate(self.lots)
            if lot.member == member and lot.available > 0 and self.usable(lot)
        ]

    def expected_grant(self, member: int, amount: int, paid: int) -> tuple[int, int, set[str]]:
        """``(requested, granted, acceptable capped_by names)`` for an earn now."""
        assert self.cfg is not None
        requested = purchase_points(
            self.cfg.rules,
            [OrderLine(amount)],
            paid_with_points_minor=paid,
            at=self.now,
            tz=TZ_NAME,
            exponent=EXPONENT,
            rounding=Rounding.FLOOR,
        )
        local = self.now.astimezone(TZ)
        day, month = local.strftime("%Y-%m-%d"), local.strftime("%Y-%m")
        rooms = {"member_daily": DAILY_CAP - self.day_used.get((member, day), 0)}
        if self.cfg.monthly_cap is not None:
            rooms["member_monthly"] = self.cfg.monthly_cap - self.month_used.get((member, month), 0)
        member_room = max(0, min(rooms.values()))
        granted = min(requested, member_room)
        names = {name for name, room in rooms.items() if max(room, 0) == granted}
        if granted and self.cfg.program_daily is not None:
            budget_room = max(0, self.cfg.program_daily - self.issued.get(day, 0))
            if budget_room < granted:
                granted, names = budget_room, {"program_daily"}
        return requested, granted, names if granted < requested else set()

    def fingerprint(self) -> tuple[Any, ...]:
        """Every table's row count, every member row and every lot row: to prove that a
        failed or replayed call changed nothing."""
        with self.db.read() as conn:
            counts = tuple(
                int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                for t in Base.metadata.sorted_tables
            )
            rows = tuple(
                tuple(r) for r in conn.execute(select(members_t).order_by(members_t.c.id)).all()
            )
            lot_rows = tuple(
                tuple(r) for r in conn.execute(select(lots_t).order_by(lots_t.c.id)).all()
            )
        return counts, rows, lot_rows

    def expect_unchanged(self, error: type[LoyaltyError], call: Callable[[], Any]) -> LoyaltyError:
        """Run ``call``; it must raise ``error`` (exactly that class or a subclass) and write
        nothing."""
        before = self.fingerprint()
        with pytest.raises(error) as info:
            call()
        assert self.fingerprint() == before, f"{error.__name__} changed the database"
        return info.value

    # set-up ---------------------------------------------------------------------------------

    @initialize(
        pending_days=st.sampled_from([0, 2]),
        month_end=st.booleans(),
        monthly_cap=st.sampled_from([None, 3000]),
        program_daily=st.sampled_from([None, 4500]),
        min_points=st.sampled_from([1, 1, 100]),
        min_order=st.sampled_from([0, 0, 500]),
        seed=st.lists(st.integers(10_000, 200_000), min_size=len(MEMBERS), max_size=len(MEMBERS)),
    )
    def setup_program(
        self,
        pending_days: int,
        month_end: bool,
        monthly_cap: int | None,
        program_daily: int | None,
        min_points: int,
        min_order: int,
        seed: list[int],
    ) -> None:
        self.cfg = Config(
            pending_days, month_end, monthly_cap, program_daily, min_points, min_order
        )
        s.create_program(
            self.db,
            code=PROGRAM,
            name="Shop",
            currency=CURRENCY,
            timezone=TZ_NAME,
            redeem_max_share_bp=MAX_SHARE_BP,
            redeem_min_points=min_points,
            redeem_min_order_minor=min_order,
            hold_timeout_seconds=int(HOLD_TIMEOUT.total_seconds()),
            rules=self.cfg.rules_dict(),
        )
        for external_id in MEMBERS:
            s.enrol_member(self.db, program=PROGRAM, external_id=external_id)
        with self.db.read() as conn:
            rows = conn.execute(select(members_t.c.id, members_t.c.external_id)).all()
        self.member_ids = {r.id: MEMBERS.index(r.external_id) for r in rows}
        self.ready = True
        for member, amount in enumerate(seed):  # a starting balance, so holds can succeed
            self.earn_purchase(member, amount, 0)

    # earning --------------------------------------------------------------------------------

    @rule(
        member=st.integers(0, len(MEMBERS) - 1),
        amount=AMOUNTS,
        paid_pct=st.sampled_from([0, 0, 0, 30, 100]),
    )
    def earn_purchase(self, member: int, amount: int, paid_pct: int) -> None:
        assert self.cfg is not None
        order_id = self.next_id("o")
        paid = amount * paid_pct // 100
        requested, granted, names = self.expected_grant(member, amount, paid)
        result = s.earn_purchase(
            self.db,
            program=PROGRAM,
            member=MEMBERS[member],
            order_id=order_id,
            currency=CURRENCY,
            amount_minor=amount,
            paid_with_points_minor=paid,
        )
        pending = self.cfg.pending_days > 0
        matures_at = self.now + dt.timedelta(days=self.cfg.pending_days) if pending else None
        expires_at = expected_expiry(self.now, self.cfg.month_end)
        assert not result.replayed
        assert result.member == MEMBERS[member]
        assert result.source == "purchase"
        assert result.reference == order_id
        assert result.points_requested == requested
        assert result.points_granted == granted, (requested, granted, result)
        event(f"earn: capped by {result.capped_by}" if granted < requested else "earn: in full")
        if granted < requested:
            assert result.capped_by in names, (result.capped_by, names)
        else:
            assert result.capped_by is None
        assert result.status == ("pending" if pending else "available")
        assert result.rule_version == 1
        assert result.matures_at == matures_at
        assert result.expires_at == expires_at
        self.earns[order_id] = MEarn(order_id, member, amount, paid, result)
        if granted:
            local = self.now.astimezone(TZ)
            day, month = local.strftime("%Y-%m-%d"), local.strftime("%Y-%m")
            self.day_used[(member, day)] = self.day_used.get((member, day), 0) + granted
            self.month_used[(member, month)] = self.month_used.get((member, month), 0) + granted
            self.issued[day] = self.issued.get(day, 0) + granted
            self.lifetime[member] += granted
            self.lots.append(
                MLot(
                    member=member,
                    points=granted,
                    available=0 if pending else granted,
                    pending=granted if pending else 0,
                    held=0,
                    earned_at=self.now,
                    matures_at=matures_at,
                    expires_at=expires_at,
                )
            )

    @precondition(lambda self: self.earns)
    @rule(
        data=st.data(),
        change=st.sampled_from([None, None, "amount", "member", "paid", "other_key", "hold_key"]),
    )
    def retry_earn(self, data: st.DataObject, change: str | None) -> None:
        """The same order again: with the same parameters the first result comes back
        (``replayed``) and nothing changes; with different ones (same key) it is an
        :class:`IdempotencyConflict`, under another key :class:`AlreadyExists`, and under a
        key a hold used an :class:`IdempotencyConflict`; nothing changes either way."""
        earn = self.earns[data.draw(st.sampled_from(sorted(self.earns)), label="order")]
        member, amount, paid = earn.member, earn.amount, earn.paid
        key: str | None = None
        error: type[LoyaltyError] = IdempotencyConflict
        if change == "amount":
            amount += 1
        elif change == "member":
            member = (member + 1) % len(MEMBERS)
        elif change == "paid":
            paid = 1 if paid == 0 else 0
        elif change == "other_key":
            key, error = f"again:{earn.order_id}", AlreadyExists
        elif change == "hold_key":
            if not self.holds:
                return
            key = f"hold:{data.draw(st.sampled_from(sorted(self.holds)), label='hold')}"

        def call() -> EarnResult:
            return s.earn_purchase(
                self.db,
                program=PROGRAM,
                member=MEMBERS[member],
                order_id=earn.order_id,
                currency=CURRENCY.lower(),  # Stripe's lower case is the same request
                amount_minor=amount,
                paid_with_points_minor=paid,
                idempotency_key=key,
            )

        if change is not None:
            self.expect_unchanged(error, call)
            return
        before = self.fingerprint()
        again = call()
        assert again.replayed
        assert again.points_granted == earn.result.points_granted
        assert again == dataclasses.replace(earn.result, replayed=True)
        assert self.fingerprint() == before

    # redemption -----------------------------------------------------------------------------

    @rule(
        member=st.integers(0, len(MEMBERS) - 1),
        size=st.sampled_from(["drawn", "drawn", "drawn", "half", "all", "all+1"]),
        drawn=st.one_of(
            st.integers(100, 500),
            st.integers(100, 500),
            st.integers(1, 500),
            st.sampled_from([1, 99, 100]),
        ),
        share=st.sampled_from(["large", "large", "large", "at_limit", "over_limit", "drawn"]),
        drawn_total=st.integers(1, 3000),
    )
    def hold(self, member: int, size: str, drawn: int, share: str, drawn_total: int) -> None:
        """Hold points for an order; sizes and totals aim at the boundaries: all spendable
        points, one more, exactly the 50% share of the order, one minor unit short of it."""
        assert self.cfg is not None
        order_id = self.next_id("h")
        have = sum(lot.available for _, lot in self.spendable(member))
        points = {
            "drawn": drawn,
            "half": max(have // 2, 1),
            "all": max(have, 1),
            "all+1": have + 1,
        }[size]
        total = {
            "large": 1_000_000,
            "at_limit": 2 * points,
            "over_limit": 2 * points - 1,
            "drawn": drawn_total,
        }[share]

        def call() -> HoldResult:
            return s.hold_points(
                self.db,
                program=PROGRAM,
                member=MEMBERS[member],
                order_id=order_id,
                points=points,
                order_total_minor=total,
                currency=CURRENCY,
            )

        try:
            redemption = check_redemption(points, total, self.cfg.policy, EXPONENT)
        except RedemptionLimit as exc:
            event(f"hold: redemption limit ({sorted(exc.details)[0]})")
            self.expect_unchanged(RedemptionLimit, call)
            return
        candidates = sorted(self.spendable(member), key=lambda pair: spending_key(pair[1], pair[0]))
        lapsed = any(
            lot.member == member and lot.available > 0 and not self.usable(lot) for lot in self.lots
        )
        event(
            f"hold: {'insufficient' if points > have else 'ok'}, "
            f"{len(candidates)} lot(s) spendable, lapsed lots {lapsed}"
        )
        if points > have:
            error = self.expect_unchanged(InsufficientPoints, call)
            assert error.details.get("available") == have, error.details
            return
        taken: list[tuple[int, int]] = []
        still = points
        for index, lot in candidates:
            take = min(lot.available, still)
            if take:
                taken.append((index, take))
                still -= take
            if not still:
                break
        result = call()
        assert not result.replayed
        assert result.status == "active"
        assert result.points == points
        assert result.discount_minor == redemption.discount_minor == points
        assert result.currency == CURRENCY
        assert result.expires_at == self.now + HOLD_TIMEOUT
        for index, take in taken:
            self.lots[index].available -= take
            self.lots[index].held += take
        self.holds[order_id] = MHold(
            order_id, member, points, total, "active", result.expires_at, taken, result
        )

    def _about_to_expire(self) -> list[tuple[int, MLot]]:
        """Each member's soonest-expiring spendable lot whose expiry is at least 10 minutes away."""
        soonest: dict[int, tuple[int, MLot]] = {}
        for index, lot in enumerate(self.lots):
            if lot.available and self.usable(lot) and lot.expires_at is not None:
                best = soonest.get(lot.member)
                if best is None or spending_key(lot, index) < spending_key(best[1], best[0]):
                    soonest[lot.member] = (index, lot)
        limit = self.now + dt.timedelta(minutes=10)
        return [
            pair
            for _, pair in sorted(soonest.items())
            if pair[1].expires_at is not None and pair[1].expires_at >= limit
        ]

    @precondition(lambda self: self._about_to_expire())
    @rule(
        data=st.data(),
        seconds=st.integers(1, 599),
        drawn=st.integers(1, 500),
        then=st.sampled_from([None, "before", "after", "skip"]),
    )
    def hold_before_expiry(
        self, data: st.DataObject, seconds: int, drawn: int, then: str | None
    ) -> None:
        """Hold points a little before the member's soonest lot expires; with ``then``, move
        on to the expiry and sweep while they are still held. Releasing, capturing or timing
        out the hold is left to the other rules."""
        _, lot = data.draw(st.sampled_from(self._about_to_expire()), label="lot")
        assert lot.expires_at is not None
        self.clock.set(lot.expires_at - dt.timedelta(seconds=seconds))
        self.hold(lot.member, "drawn", drawn, "large", 0)
        if then is not None:
            self.clock.set(lot.expires_at)
            self._sweep(then)

    @precondition(lambda self: self.holds)
    @rule(data=st.data(), change=st.sampled_from([None, "points", "other_key"]))
    def retry_hold(self, data: st.DataObject, change: str | None) -> None:
        """A retried hold answers its first result (whatever happened to the hold since);
        with other parameters it conflicts; under another key the order is already held."""
        hold = self.holds[data.draw(st.sampled_from(sorted(self.holds)), label="hold")]

        def call() -> HoldResult:
            return s.hold_points(
                self.db,
                program=PROGRAM,
                member=MEMBERS[hold.member],
                order_id=hold.order_id,
                points=hold.points + (1 if change == "points" else 0),
                order_total_minor=hold.total,
                currency=CURRENCY,
                idempotency_key=f"again:{hold.order_id}" if change == "other_key" else None,
            )

        if change is not None:
            self.expect_unchanged(
                IdempotencyConflict if change == "points" else AlreadyExists, call
            )
            return
        before = self.fingerprint()
        again = call()
        assert again == dataclasses.replace(hold.result, replayed=True)
        assert self.fingerprint() == before

    def _settle_back(self, hold: MHold, status: str) -> None:
        """Captured points leave; released or timed-out points go back to their lots, except
        to a lot the expiry sweep expired meanwhile: there they expire at once."""
        for index, take in hold.taken:
            lot = self.lots[index]
            lot.held -= take
            if status != "captured" and lot.expired_at is None:
                lot.available += take
            if lot.expired_at is not None:
                event(f"{status} points held on an expired lot")
        hold.status = status

    @precondition(lambda self: self.holds)
    @rule(data=st.data())
    def capture(self, data: st.DataObject) -> None:
        active = sorted(o for o, h in self.holds.items() if h.status == "active")
        pool = active if active and data.draw(st.booleans(), label="prefer active") else None
        order_id = data.draw(st.sampled_from(pool or sorted(self.holds)), label="hold")
        hold = self.holds[order_id]

        def call() -> HoldResult:
            return s.capture_hold(self.db, program=PROGRAM, order_id=order_id)

        timed_out = hold.status == "active" and hold.expires_at <= self.now
        event(f"capture: {hold.status}{' (timed out)' if timed_out else ''}")
        if hold.status == "active" and hold.expires_at > self.now:
            result = call()
            assert (result.status, result.replayed) == ("captured", False)
            assert result.points == hold.points
            self._settle_back(hold, "captured")
        elif hold.status == "captured":
            before = self.fingerprint()
            result = call()
            assert (result.status, result.replayed) == ("captured", True)
            assert self.fingerprint() == before
        else:  # released, expired, or active but timed out
            self.expect_unchanged(HoldNotActive, call)

    @precondition(lambda self: self.holds)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        order_id = data.draw(st.sampled_from(sorted(self.holds)), label="hold")
        hold = self.holds[order_id]

        def call() -> HoldResult:
            return s.release_hold(self.db, program=PROGRAM, order_id=order_id)

        timed_out = hold.status == "active" and hold.expires_at <= self.now
        event(f"release: {hold.status}{' (timed out)' if timed_out else ''}")
        if hold.status == "active":  # also when timed out but not yet swept
            result = call()
            assert (result.status, result.replayed) == ("released", False)
            self._settle_back(hold, "released")
        elif hold.status in ("released", "expired"):
            before = self.fingerprint()
            result = call()
            assert (result.status, result.replayed) == (hold.status, True)
            assert self.fingerprint() == before
        else:
            self.expect_unchanged(HoldNotActive, call)

    # time and sweeps ------------------------------------------------------------------------

    def _expire_holds(self) -> None:
        due = [h for h in self.holds.values() if h.status == "active" and h.expires_at <= self.now]
        if due:
            event("sweep: holds timed out")
        swept = s.expire_holds(self.db)
        assert (swept.items, swept.points) == (len(due), sum(h.points for h in due))
        for hold in due:
            self._settle_back(hold, "expired")

    def _mature(self) -> None:
        due = [
            lot
            for lot in self.lots
            if lot.pending > 0 and lot.matures_at is not None and lot.matures_at <= self.now
        ]
        if due:
            event("sweep: lots matured")
        matured = s.mature_pending(self.db)
        assert (matured.items, matured.points) == (len(due), sum(lot.pending for lot in due))
        for lot in due:
            lot.available += lot.pending
            lot.pending = 0

    def _expire_lots(self) -> None:
        due = [
            lot
            for lot in self.lots
            if lot.expired_at is None and lot.expires_at is not None and lot.expires_at <= self.now
        ]
        if due:
            held = any(lot.held for lot in due)
            event(f"sweep: lots expired{' (with points held)' if held else ''}")
        expired = s.expire_due(self.db)
        assert (expired.items, expired.points) == (
            len(due),
            sum(lot.available + lot.pending for lot in due),
        )
        for lot in due:  # held points stay held: a hold in flight
            lot.expired_at = self.now
            lot.available = lot.pending = 0

    def _sweep(self, expiry: str) -> None:
        """The hold time-out first, then maturation and the expiry sweep in either order (or
        no expiry sweep: lapsed lots then just stop counting as available)."""
        self._expire_holds()
        if expiry == "before":
            self._expire_lots()
        self._mature()
        if expiry == "after":
            self._expire_lots()
        # sweeps are safe to run twice: the second finds nothing
        before = self.fingerprint()
        assert s.expire_holds(self.db).items == 0
        assert s.mature_pending(self.db).items == 0
        if expiry != "skip":
            assert s.expire_due(self.db).items == 0
        assert self.fingerprint() == before

    @rule(
        minutes=MINUTES,
        micros=st.sampled_from([0, 0, 0, 1, 500_000, 999_999]),
        sweep=st.sampled_from([True, True, True, False]),
        expiry=st.sampled_from(["before", "after", "skip"]),
    )
    def advance_clock(self, minutes: int, micros: int, sweep: bool, expiry: str) -> None:
        """Move the clock (0: sweep now), sometimes off the whole second; usually run the
        sweeps, sometimes leave them for later."""
        self.clock.advance(dt.timedelta(minutes=minutes, microseconds=micros))
        if sweep:
            self._sweep(expiry)

    @rule(
        data=st.data(),
        boundary=st.sampled_from(["expiry", "maturity", "hold"]),
        offset=st.sampled_from([-300_000_000, -1, 0, 1]),
        sweep=st.booleans(),
        expiry=st.sampled_from(["before", "after", "skip"]),
    )
    def jump_to_boundary(
        self, data: st.DataObject, boundary: str, offset: int, sweep: bool, expiry: str
    ) -> None:
        """Move the clock to just around an instant where something changes: a lot's expiry
        or maturity, or a hold's time-out (``offset`` microseconds from it)."""
        instants = {
            "expiry": [lot.expires_at for lot in self.lots if lot.expired_at is None],
            "maturity": [lot.matures_at for lot in self.lots if lot.pending],
            "hold": [h.expires_at for h in self.holds.values() if h.status == "active"],
        }[boundary]
        targets = sorted(
            {
                at + dt.timedelta(microseconds=offset)
                for at in instants
                if at is not None and at + dt.timedelta(microseconds=offset) >= self.now
            }
        )
        if not targets:
            return
        self.clock.set(data.draw(st.sampled_from(targets[:3]), label="to"))
        event(f"jump to {boundary} {offset:+d} µs")
        if sweep:
            self._sweep(expiry)

    # reads ----------------------------------------------------------------------------------

    @rule(
        member=st.integers(0, len(MEMBERS) - 1),
        amount=AMOUNTS,
        total=st.integers(1, 5000),
        limit=st.integers(1, 4),
    )
    def reads(self, member: int, amount: int, total: int, limit: int) -> None:
        """Quotes (earning and redemption) agree with the model; so does the history."""
        self.quote(member, amount, total)
        self.read_history(member, limit)

    def quote(self, member: int, amount: int, total: int) -> None:
        assert self.cfg is not None
        requested, granted, names = self.expected_grant(member, amount, 0)
        quote = s.quote_purchase(
            self.db, program=PROGRAM, currency=CURRENCY, amount_minor=amount, member=MEMBERS[member]
        )
        assert (quote.points, quote.points_after_caps) == (requested, granted), quote
        assert quote.capped_by in (names or {None})
        have = sum(lot.available for _, lot in self.spendable(member))
        redeem = s.quote_redemption(
            self.db,
            program=PROGRAM,
            member=MEMBERS[member],
            order_total_minor=total,
            currency=CURRENCY,
        )
        assert redeem.available == have
        expected = max_redeemable_points(total, have, self.cfg.policy, EXPONENT)
        assert redeem.max_points == expected
        if redeem.max_points:  # what the quote offers can be held
            assert redeem.max_points <= have
            offer = check_redemption(redeem.max_points, total, self.cfg.policy, EXPONENT)
            assert offer.discount_minor == redeem.max_discount_minor

    def read_history(self, member: int, limit: int) -> None:
        """Paging through the whole history adds up to the member's buckets."""
        sums = dict.fromkeys(("available", "pending", "held", "frozen", "debt"), 0)
        cursor: int | None = None
        seen: list[int] = []
        for _ in range(1000):
            page = s.history(
                self.db, program=PROGRAM, member=MEMBERS[member], limit=limit, cursor=cursor
            )
            for item in page.items:
                for bucket in sums:
                    sums[bucket] += getattr(item, bucket)
                assert item.points == (
                    item.available + item.pending + item.held + item.frozen - item.debt
                )
                assert item.created_at.tzinfo is not None and item.created_at <= self.now
                if not seen or seen[-1] != item.id:
                    seen.append(item.id)
            assert len({i.id for i in page.items}) <= limit
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen)), seen
        mine = [lot for lot in self.lots if lot.member == member]
        assert sums == {
            "available": sum(lot.available for lot in mine),
            "pending": sum(lot.pending for lot in mine),
            "held": sum(lot.held for lot in mine),
            "frozen": 0,
            "debt": 0,
        }

    # bad input ------------------------------------------------------------------------------

    @rule(
        case=st.sampled_from(
            [
                "earn_zero",
                "earn_negative",
                "earn_float",
                "earn_bool",
                "earn_unknown_member",
                "earn_wrong_currency",
                "earn_paid_too_much",
                "earn_bad_order_id",
                "hold_zero",
                "hold_negative",
                "hold_unknown_member",
                "hold_zero_total",
                "hold_wrong_currency",
                "capture_unknown",
                "release_unknown",
                "balance_unknown_member",
            ]
        ),
        member=st.integers(0, len(MEMBERS) - 1),
    )
    def bad_input(self, case: str, member: int) -> None:
        order_id = self.next_id("bad")
        who = MEMBERS[member]

        def earn(**kw: Any) -> Callable[[], Any]:
            args: dict[str, Any] = dict(
                program=PROGRAM,
                member=who,
                order_id=order_id,
                currency=CURRENCY,
                amount_minor=10_000,
            )
            args.update(kw)
            return lambda: s.earn_purchase(self.db, **args)

        def hold(**kw: Any) -> Callable[[], Any]:
            args: dict[str, Any] = dict(
                program=PROGRAM,
                member=who,
                order_id=order_id,
                points=1,
                order_total_minor=100_000,
                currency=CURRENCY,
            )
            args.update(kw)
            return lambda: s.hold_points(self.db, **args)

        cases: dict[str, tuple[type[LoyaltyError], Callable[[], Any]]] = {
            "earn_zero": (InvalidAmount, earn(amount_minor=0)),
            "earn_negative": (InvalidAmount, earn(amount_minor=-500)),
            "earn_float": (InvalidAmount, earn(amount_minor=100.0)),
            "earn_bool": (InvalidAmount, earn(amount_minor=True)),
            "earn_unknown_member": (MemberNotFound, earn(member="ghost")),
            "earn_wrong_currency": (CurrencyMismatch, earn(currency="USD")),
            "earn_paid_too_much": (InvalidInput, earn(paid_with_points_minor=10_001)),
            "earn_bad_order_id": (InvalidIdempotencyKey, earn(order_id="bad order")),
            "hold_zero": (InvalidAmount, hold(points=0)),
            "hold_negative": (InvalidAmount, hold(points=-3)),
            "hold_unknown_member": (MemberNotFound, hold(member="ghost")),
            "hold_zero_total": (InvalidAmount, hold(order_total_minor=0)),
            "hold_wrong_currency": (CurrencyMismatch, hold(currency="USD")),
            "capture_unknown": (
                HoldNotFound,
                lambda: s.capture_hold(self.db, program=PROGRAM, order_id=order_id),
            ),
            "release_unknown": (
                HoldNotFound,
                lambda: s.release_hold(self.db, program=PROGRAM, order_id=order_id),
            ),
            "balance_unknown_member": (
                MemberNotFound,
                lambda: s.balance(self.db, program=PROGRAM, member="ghost"),
            ),
        }
        error, call = cases[case]
        self.expect_unchanged(error, call)

    # invariants -----------------------------------------------------------------------------

    @invariant()
    def ledger_verifies(self) -> None:
        if not self.ready:
            return
        report = s.verify_ledger(self.db)
        failing = [
            f"{c.name} ({c.description}): {c.violations} violation(s): {list(c.examples)}"
            for c in report.checks
            if not c.ok
        ]
        assert report.ok, "verify_ledger failed:\n" + "\n".join(failing)

    @invariant()
    def balances_match_model(self) -> None:
        if not self.ready:
            return
        horizon = self.now + dt.timedelta(days=30)
        for member, external_id in enumerate(MEMBERS):
            mine = [lot for lot in self.lots if lot.member == member]
            expiring: dict[dt.datetime, int] = {}
            for lot in mine:
                usable = lot.available > 0 and self.usable(lot) and lot.expires_at is not None
                if usable and lot.expires_at <= horizon:  # type: ignore[operator]
                    expiring[lot.expires_at] = expiring.get(lot.expires_at, 0) + lot.available
            got = s.balance(self.db, program=PROGRAM, member=external_id)
            want = {
                "available": sum(lot.available for lot in mine if self.usable(lot)),
                "pending": sum(lot.pending for lot in mine),
                "held": sum(lot.held for lot in mine),
                "frozen": 0,
                "debt": 0,
                "lifetime_earned": self.lifetime[member],
            }
            have = {name: getattr(got, name) for name in want}
            assert have == want, f"balance of {external_id} at {self.now}: {have} != {want}"
            assert [(e.expires_at, e.points) for e in got.expiring] == sorted(expiring.items())

    @invariant()
    def lots_and_holds_match_model(self) -> None:
        if not self.ready:
            return
        with self.db.read() as conn:
            lot_rows = conn.execute(select(lots_t).order_by(lots_t.c.id)).all()
            hold_rows = conn.execute(select(holds_t).order_by(holds_t.c.id)).all()
        assert len(lot_rows) == len(self.lots)
        for row, lot in zip(lot_rows, self.lots, strict=True):
            assert min(row.available, row.pending, row.held, row.frozen) >= 0, row
            got = (
                self.member_ids[row.member_id],
                row.points,
                row.available,
                row.pending,
                row.held,
                row.frozen,
                row.earned_at,
                row.matures_at,
                row.expires_at,
                row.expired_at,
            )
            want = (
                lot.member,
                lot.points,
                lot.available,
                lot.pending,
                lot.held,
                0,
                lot.earned_at,
                lot.matures_at,
                lot.expires_at,
                lot.expired_at,
            )
            assert got == want, f"lot {row.id}: {got} != {want}"
        assert {
            r.order_id: (self.member_ids[r.member_id], r.points, r.status) for r in hold_rows
        } == {h.order_id: (h.member, h.points, h.status) for h in self.holds.values()}


class PostgresLedgerMachine(LedgerMachine):
    """The same machine on PostgreSQL: one database for the module, truncated per run."""

    def fresh_database(self) -> str:
        assert _pg_run_url is not None, "the ledger_pg_database fixture did not run"
        _truncate_all(_pg_run_url)
        return _pg_run_url


TestLedger = LedgerMachine.TestCase
TestLedger.settings = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

TestLedgerPostgres = pytest.mark.postgres(
    pytest.mark.usefixtures("ledger_pg_database")(PostgresLedgerMachine.TestCase)
)
TestLedgerPostgres.settings = settings(
    max_examples=8,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
