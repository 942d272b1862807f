"""A stateful test of the ledger: the real services on a real database against a plain model.

Hypothesis drives random sequences of earns (with retries, conflicting retries and retries
under other keys), holds (also just before a lot expires), captures, releases, clock moves
(random, or to just around an expiry, a maturity or a hold time-out) with the hold time-out,
maturation and expiry sweeps, quotes, history reads and bad input; and, later in an order's
life, refunds (partial and full; succeeded at once, failed, or left pending and settled later,
sometimes under another key), disputes (opened, then lost or won), several refunds and
disputes of one order opened and settled out of order, transfers between the members (with
the run's fee and limits), staff grants and deductions, retries of all of these
(replays, conflicts, another key) and their errors (refunding more than remains, settling a
settled refund the other way, sending or deducting more than is spendable, the transfer
limits); risk control: a velocity rule that puts a member with too many earns in an hour on
hold when the risk job scans (their new points stay pending with no maturity date, until a
person resolves their case or lifts the hold, which makes them available), and account
freezes (a frozen member's earns are refused and write nothing; while an account is frozen
only earns, refunds and disputes, sweeps, reads and risk control run). Two compound steps
reach the deep paths in a short run: a whole checkout (hold,
capture, earn for the money part, refunds that give the redeemed points back, an earlier order
refunded once its points are spent) and an order whose points are spent (by another order's
hold, a transfer or a deduction) before it is refunded or disputed (missing points: deducted
from later credits, debt that later credits repay, or waived).

A plain-Python model (here and in ``model_lifecycle``) predicts every answer: points requested
and granted under the caps (per Asia/Shanghai day and month, and the program's daily budget),
which lots a hold takes (soonest-expiring first, lapsed lots excluded), when holds succeed or
fail and why, what each sweep does, and where released points go (back to their lot, or gone
if it expired meanwhile); each refund's cumulative floor share of the order's points, which lots
it freezes (the order's lot, then the others soonest-expiring first), what had lapsed and what
is missing, what settling does to every lot (redeemed points back into their lots, the share
settled again against the order's reversals that went through, with frozen points given back or
taken from the order's other open reversals, missing points deducted, the rest debt or waived
by the run's refund policy; or the frozen points back to pending, available, or expired again),
how new credits repay debt, which lots a transfer or deduction takes and the lots a transfer
creates. After every step the ledger must verify, every balance (available, pending, held,
frozen, debt), lot, hold, refund, dispute and transfer in the database must equal the model's,
no bucket may be negative, every member's hold, account status and risk case (status,
trips, last trip, resolution time) must equal the model's, no order's counting reversals may
claim more points than it was granted, and the reversals of an order that went through must
total exactly the floor share of their money (so all its points once it is fully refunded).
Transfers must conserve points but for the fee. Failed and replayed calls must leave the
database exactly as it was. The outbox must hold exactly one event per ledger operation of the
kinds that report one (two for a transfer, one per member for a sweep, none for a hold or a
replay), each naming its operation and the member's balance right after it (the entries
replayed in order), a member's events in the order of its operations; and every freeze and
unfreeze its ``member.status_changed`` event.

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
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
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
from loyalty.db.models import (
    Base,
    Earning,
    Entry,
    Hold,
    Lot,
    Member,
    Operation,
    OutboxEvent,
    Reversal,
    RiskCase,
    Transfer,
)
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
    MemberFrozen,
    MemberNotFound,
    OrderNotFound,
    RedemptionLimit,
    ReversalNotFound,
    ReversalSettled,
    TransferLimit,
    TransferNotAllowed,
)
from loyalty.services.results import (
    AdjustmentResult,
    EarnResult,
    HoldResult,
    ReversalResult,
    TransferResult,
)
from loyalty.services.risk_scan import RiskScanResult
from tests.integration.model_lifecycle import (
    DISPUTE,
    OPENED,
    REFUND,
    RELEASED,
    REVERSED,
    TRANSFER_SETTINGS,
    MAdjustment,
    MReversal,
    MTransfer,
    TransferSettings,
    floor_share,
    give_back,
    largest_affordable,
    live_freeze,
    split_last,
    take_up_to,
    transfer_fee,
)

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
earnings_t = Earning.__table__
reversals_t = Reversal.__table__
transfers_t = Transfer.__table__
operations_t = Operation.__table__
entries_t = Entry.__table__
events_t = OutboxEvent.__table__
cases_t = RiskCase.__table__


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
    frozen: int = 0  # frozen by open refunds and disputes
    lapsed: int = 0  # points that expired from it: by the sweep, or returned after it


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
    lot: int | None  # the model index of the order's lot (None: nothing granted)
    at: dt.datetime  # when it earned: what the risk rule counts


@dataclass
class MCase:
    """The model of a member's risk case of the ``burst`` rule."""

    id: int
    status: str  # open, resolved, dismissed
    trips: int
    last_tripped_at: dt.datetime
    resolved_at: dt.datetime | None = None


@dataclass
class Config:
    """The program of one run: its rules and redemption settings."""

    pending_days: int
    month_end: bool
    monthly_cap: int | None
    program_daily: int | None
    min_points: int
    min_order: int
    refund_policy: str = "debt"
    transfer: TransferSettings = field(default_factory=TransferSettings)
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

# bad_input cases whose error class must match exactly (not just a subclass of it)
EXACT_ERRORS = frozenset(
    [
        "refund_zero",
        "refund_bad_id",
        "close_not_bool",
        "transfer_float",
        "adjust_zero",
        "adjust_blank_reason",
        "refund_wrong_currency",
    ]
)

AMOUNTS = st.one_of(st.integers(1, 200_000), st.sampled_from([1, 99, 100, 150_000, 200_000]))
MINUTES = st.one_of(  # mostly short; jump_to_boundary reaches expiries directly
    st.integers(0, 15),
    st.integers(0, 24 * 60),
    st.integers(0, 3 * 24 * 60),
    st.sampled_from([10, 6 * 60, 24 * 60, 2 * 24 * 60, 40 * 24 * 60]),
)


BURST = "burst"
HOUR = dt.timedelta(hours=1)


def burst_rules(limit: int) -> dict[str, Any]:
    """The run's risk rules: more than ``limit`` earns by a member within an hour puts the
    member on hold when the risk job scans."""
    rule = {"id": BURST, "kind": "velocity", "limit": limit, "window": "hour", "action": "hold"}
    return {"rules": [rule]}


# While an account is frozen only earns (refused), refunds and disputes of past orders, the
# sweeps, reads and risk control run: spending, transfers and staff grants by or to a frozen
# member are refused, which these rules' models do not predict.
not_frozen = precondition(lambda self: not self.frozen)


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
        self.debt = [0] * len(MEMBERS)
        self.reversals: dict[tuple[str, str], MReversal] = {}  # (kind, id) -> reversal
        self.transfers: dict[str, MTransfer] = {}
        self.adjustments: dict[str, MAdjustment] = {}
        self.sent_on: dict[tuple[int, str], int] = {}  # (sender, local day) -> points sent
        self.frozen: set[int] = set()  # members whose account is frozen
        self.status_changes: list[int] = []  # each freeze and unfreeze: its member's event
        self.burst_limit = 0  # the risk rule: more earns than this in an hour holds the member
        self.on_hold = [False] * len(MEMBERS)
        self.cases: dict[int, MCase] = {}  # member -> their case of the burst rule

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

    def fefo(self, member: int, *, skip: int | None = None) -> list[tuple[int, int]]:
        """``(lot index, available)`` of the member's spendable lots in spending order."""
        pairs = sorted(self.spendable(member), key=lambda pair: spending_key(pair[1], pair[0]))
        return [(index, lot.available) for index, lot in pairs if index != skip]

    def have(self, member: int) -> int:
        return sum(lot.available for _, lot in self.spendable(member))

    def local_day(self) -> str:
        return self.now.astimezone(TZ).strftime("%Y-%m-%d")

    def credit_lot(self, lot: MLot) -> int:
        """Add a new lot; it repays the member's debt first (from its pending points if it is
        pending). Returns the points repaid."""
        repaid = min(self.debt[lot.member], lot.points)
        self.debt[lot.member] -= repaid
        if lot.pending:
            lot.pending -= repaid
        else:
            lot.available -= repaid
        if repaid:
            event("debt repaid by a new lot")
        self.lots.append(lot)
        return repaid

    def debtor(self, wanted: bool, member: int, *, but: int | None = None) -> int:
        """With ``wanted``, a member in debt (other than ``but``) if there is one, else
        ``member``."""
        owing = [m for m, debt in enumerate(self.debt) if debt and m != but]
        return owing[0] if wanted and owing else member

    def expire_again(self, lot: MLot, points: int) -> None:
        """Points put back into a lot the expiry sweep expired: they expire again at once."""
        lot.available -= points
        lot.lapsed += points

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

    def expect_unchanged(
        self, error: type[LoyaltyError], call: Callable[[], Any], *, exact: bool = False
    ) -> LoyaltyError:
        """Run ``call``; it must raise ``error`` (that class or, unless ``exact``, a subclass)
        and write nothing."""
        before = self.fingerprint()
        with pytest.raises(error) as info:
            call()
        if exact:
            assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"
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
        refund_policy=st.sampled_from(["debt", "within_balance"]),
        transfer=st.sampled_from(TRANSFER_SETTINGS),
        seed=st.lists(st.integers(10_000, 200_000), min_size=len(MEMBERS), max_size=len(MEMBERS)),
        grants=st.lists(
            st.sampled_from([0, 0, 150, 600]), min_size=len(MEMBERS), max_size=len(MEMBERS)
        ),
        burst_limit=st.sampled_from([1, 2, 3]),
    )
    def setup_program(
        self,
        pending_days: int,
        month_end: bool,
        monthly_cap: int | None,
        program_daily: int | None,
        min_points: int,
        min_order: int,
        refund_policy: str,
        transfer: TransferSettings,
        seed: list[int],
        grants: list[int],
        burst_limit: int,
    ) -> None:
        self.cfg = Config(
            pending_days,
            month_end,
            monthly_cap,
            program_daily,
            min_points,
            min_order,
            refund_policy,
            transfer,
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
            refund_policy=refund_policy,
            **transfer.program_settings(),
        )
        for external_id in MEMBERS:
            s.enrol_member(self.db, program=PROGRAM, external_id=external_id)
        with self.db.read() as conn:
            rows = conn.execute(select(members_t.c.id, members_t.c.external_id)).all()
        self.member_ids = {r.id: MEMBERS.index(r.external_id) for r in rows}
        self.burst_limit = burst_limit
        s.publish_risk_rules(self.db, program=PROGRAM, rules=burst_rules(burst_limit))
        self.ready = True
        for member, amount in enumerate(seed):  # a starting balance, so holds can succeed
            self.earn_purchase(member, amount, 0)
            if grants[member]:  # and sometimes a second lot, so holds take from two
                self.adjust(member, "grant", grants[member])

    # earning --------------------------------------------------------------------------------

    @rule(
        member=st.integers(0, len(MEMBERS) - 1),
        amount=AMOUNTS,
        paid_pct=st.sampled_from([0, 0, 0, 30, 100]),
    )
    def earn_purchase(self, member: int, amount: int, paid_pct: int) -> None:
        self.earn(member, amount, amount * paid_pct // 100, self.next_id("o"))

    def earn(self, member: int, amount: int, paid: int, order_id: str) -> None:
        """Earn for an order; a member on hold gets the points pending with no maturity date
        (until the hold is released); a frozen member's earn is refused and writes nothing."""
        assert self.cfg is not None

        def call() -> EarnResult:
            return s.earn_purchase(
                self.db,
                program=PROGRAM,
                member=MEMBERS[member],
                order_id=order_id,
                currency=CURRENCY,
                amount_minor=amount,
                paid_with_points_minor=paid,
            )

        if member in self.frozen:
            self.expect_unchanged(MemberFrozen, call, exact=True)
            event("earn: refused, the account is frozen")
            return
        requested, granted, names = self.expected_grant(member, amount, paid)
        result = call()
        held = self.on_hold[member]
        pending = self.cfg.pending_days > 0 or held
        matures_at = (
            self.now + dt.timedelta(days=self.cfg.pending_days) if pending and not held else None
        )
        if held:
            event("earn: held by risk control")
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
        lot: int | None = None
        repaid = 0
        if granted:
            local = self.now.astimezone(TZ)
            day, month = local.strftime("%Y-%m-%d"), local.strftime("%Y-%m")
            self.day_used[(member, day)] = self.day_used.get((member, day), 0) + granted
            self.month_used[(member, month)] = self.month_used.get((member, month), 0) + granted
            self.issued[day] = self.issued.get(day, 0) + granted
            self.lifetime[member] += granted
            lot = len(self.lots)
            repaid = self.credit_lot(
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
        assert result.debt_repaid == repaid, (result.debt_repaid, repaid)
        self.earns[order_id] = MEarn(order_id, member, amount, paid, result, lot, self.now)

    @not_frozen
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

    @not_frozen
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
    def hold(
        self,
        member: int,
        size: str,
        drawn: int,
        share: str,
        drawn_total: int,
        order_id: str | None = None,
    ) -> None:
        """Hold points for an order; sizes and totals aim at the boundaries: all spendable
        points, one more, exactly the 50% share of the order, one minor unit short of it."""
        assert self.cfg is not None
        order_id = order_id or self.next_id("h")
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

    @not_frozen
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

    @not_frozen
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

    @not_frozen
    @rule(
        member=st.integers(0, len(MEMBERS) - 1),
        size=st.sampled_from(["half", "all", "all", "all", "drawn"]),
        drawn=st.integers(1, 500),
        extra=st.one_of(st.integers(0, 20_000), st.just(0)),
        pay=st.sampled_from(["capture", "capture", "capture", "release", "leave"]),
        data=st.data(),
        earlier=st.sampled_from([False, True, True]),
        earn_first=st.sampled_from([False, False, True]),
        topup=st.sampled_from([0, 300, 300]),
        refund=st.sampled_from([None, "rest", "part", "twice", "twice", "twice"]),
        outcomes=st.lists(
            st.sampled_from(["at_once", "at_once", "at_once", "reverse", "release", "open"]),
            min_size=2,
            max_size=2,
        ),
    )
    def checkout(
        self,
        member: int,
        size: str,
        drawn: int,
        extra: int,
        pay: str,
        data: st.DataObject,
        earlier: bool,
        earn_first: bool,
        topup: int,
        refund: str | None,
        outcomes: list[str],
    ) -> None:
        """A whole checkout: hold points for an order (at most half its total), capture the
        hold (or release it, or leave it), and earn for the part paid in money. With
        ``earlier``, an earlier order of the member is refunded in full just before the earn
        (its points may be spent by now: debt, that the earn then repays); with ``refund`` the
        new order is refunded at once, in part, in full, or in two parts (``twice``), each
        refund with its outcome (giving redeemed points back when it succeeds). A member with
        nothing to spend is granted points first (and with ``topup`` anyway, so the hold may
        take two lots). With ``earn_first`` the order earns before the hold, which may then
        take the order's own points too."""
        if topup or not self.have(member):
            self.adjust(member, "grant", topup or 1000)
        have = self.have(member)
        points = max({"half": have // 2, "all": have, "drawn": drawn}[size], 1)
        order_id = self.next_id("c")
        if earn_first:
            self.earn(member, 2 * points + extra, points, order_id)
            if size == "all":  # the order's own points too, if they are available already
                points = max(self.have(member), 1)
        self.hold(member, "drawn", points, "drawn", 2 * points + extra, order_id=order_id)
        if order_id not in self.holds:
            return
        hold = self.holds[order_id]
        if pay == "capture":
            result = s.capture_hold(self.db, program=PROGRAM, order_id=order_id)
            assert (result.status, result.replayed) == ("captured", False)
            self._settle_back(hold, "captured")
        elif pay == "release":
            result = s.release_hold(self.db, program=PROGRAM, order_id=order_id)
            assert (result.status, result.replayed) == ("released", False)
            self._settle_back(hold, "released")
        event(f"checkout: {pay}")
        if earlier:
            before = self.orders_to_reverse("spent", member)
            if before:
                earn = self.earns[data.draw(st.sampled_from(before), label="earlier order")]
                self.reverse(data, earn, REFUND, "rest", "at_once")
        if not earn_first:
            self.earn(member, hold.total, hold.result.discount_minor, order_id)
        if refund is not None:
            earn = self.earns[order_id]
            self.reverse(data, earn, REFUND, "part" if refund == "twice" else refund, outcomes[0])
            if refund == "twice":
                self.reverse(data, earn, REFUND, "rest", outcomes[1])

    def model_return_at_capture(self, hold: MHold) -> int:
        """A capture after refunds of its order went through gives back at once what they
        would have given back had it come first (recorded on the latest opened of them)."""
        earn = self.earns.get(hold.order_id)
        done = [
            r
            for r in self.reversals_of(hold.order_id)
            if r.kind == REFUND and r.status == REVERSED[REFUND]
        ]
        if earn is None or not done:
            return 0
        given = sum(r.returned for r in done)
        target = floor_share(hold.points, sum(r.amount for r in done), self.refundable(earn))
        returned = max(0, target - given)
        if returned:
            event("a capture after refunds gives back redeemed points")
        for index, points in give_back(hold.taken, given, returned):
            lot = self.lots[index]
            lot.available += points
            if lot.expired_at is not None:
                self.expire_again(lot, points)
        latest = done[-1]
        latest.returned += returned
        if latest.settled is not None:  # a replay of the refund reads its row
            latest.settled = dataclasses.replace(latest.settled, returned=latest.returned)
        return returned

    def _settle_back(self, hold: MHold, status: str) -> None:
        """Captured points leave; released or timed-out points go back to their lots, except
        to a lot the expiry sweep expired meanwhile: there they expire at once."""
        for index, take in hold.taken:
            lot = self.lots[index]
            lot.held -= take
            if status != "captured":
                lot.available += take
                if lot.expired_at is not None:
                    self.expire_again(lot, take)
            if lot.expired_at is not None:
                event(f"{status} points held on an expired lot")
        hold.status = status

    @not_frozen
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
            assert result.returned == self.model_return_at_capture(hold)
        elif hold.status == "captured":
            before = self.fingerprint()
            result = call()
            assert (result.status, result.replayed) == ("captured", True)
            assert self.fingerprint() == before
        else:  # released, expired, or active but timed out
            self.expect_unchanged(HoldNotActive, call)

    @not_frozen
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

    # refunds and disputes -------------------------------------------------------------------

    def order_lot(self, order_id: str) -> MLot | None:
        index = self.earns[order_id].lot
        return None if index is None else self.lots[index]

    def reversals_of(self, order_id: str) -> list[MReversal]:
        return [r for r in self.reversals.values() if r.order_id == order_id]

    @staticmethod
    def refundable(earn: MEarn) -> int:
        """The money paid for the order (not with points): what refunds are measured against."""
        return earn.amount - earn.paid

    def still_refundable(self, earn: MEarn) -> int:
        counting = sum(r.amount for r in self.reversals_of(earn.order_id) if r.counts)
        return self.refundable(earn) - counting

    def orders_to_reverse(self, focus: str, member: int | None = None) -> list[str]:
        """Orders (of ``member``, if given) to refund or dispute: any, or those that earned
        points and have money left to refund, preferring, with ``redeemed``, those with a
        captured hold, or with ``spent``, those whose lot (not expired) no longer holds all
        its points."""
        orders = sorted(o for o, e in self.earns.items() if member in (None, e.member))
        if focus == "any":
            return orders
        left = [
            o
            for o in orders
            if self.earns[o].lot is not None and self.still_refundable(self.earns[o]) > 0
        ]
        chosen = left
        if focus == "redeemed":
            chosen = [o for o in left if o in self.holds and self.holds[o].status == "captured"]
        elif focus == "spent":
            chosen = []
            for o in left:
                lot = self.order_lot(o)
                assert lot is not None
                if lot.expired_at is None and lot.available + lot.pending + lot.frozen < lot.points:
                    chosen.append(o)
        return chosen or left or (orders if member is None else [])

    def open_call(
        self,
        kind: str,
        order_id: str,
        rid: str,
        amount: int,
        *,
        succeeded: bool = False,
        key: str | None = None,
        currency: str = CURRENCY,
    ) -> Callable[[], ReversalResult]:
        if kind == REFUND:
            return lambda: s.refund_order(
                self.db,
                program=PROGRAM,
                order_id=order_id,
                refund_id=rid,
                amount_minor=amount,
                currency=currency,
                succeeded=succeeded,
                idempotency_key=key,
            )
        return lambda: s.open_dispute(
            self.db,
            program=PROGRAM,
            order_id=order_id,
            dispute_id=rid,
            amount_minor=amount,
            currency=currency,
            idempotency_key=key,
        )

    def settle_call(
        self, rev: MReversal, reverse: bool, key: str | None = None
    ) -> Callable[[], ReversalResult]:
        if rev.kind == REFUND:
            settle = s.complete_refund if reverse else s.fail_refund
            return lambda: settle(self.db, program=PROGRAM, refund_id=rev.rid, idempotency_key=key)
        return lambda: s.close_dispute(
            self.db, program=PROGRAM, dispute_id=rev.rid, won=not reverse, idempotency_key=key
        )

    @precondition(lambda self: self.earns)
    @rule(
        data=st.data(),
        kind=st.sampled_from([REFUND, REFUND, DISPUTE]),
        size=st.sampled_from(["rest", "rest", "part", "part", "half", "one", "over"]),
        outcome=st.sampled_from(["at_once", "reverse", "release", "open", "open"]),
        focus=st.sampled_from(["any", "refundable", "redeemed", "redeemed", "spent", "spent"]),
    )
    def reverse_order(
        self, data: st.DataObject, kind: str, size: str, outcome: str, focus: str
    ) -> None:
        """Refund (or dispute) part or all of what is left of an order's money, or one unit
        more; a refund succeeds at once (``succeeded=True``), or is opened and then completed
        or failed, or left open for :meth:`settle_reversal` (a dispute likewise: lost at once or
        later, or won)."""
        earn = self.earns[data.draw(st.sampled_from(self.orders_to_reverse(focus)), label="o")]
        self.reverse(data, earn, kind, size, outcome)

    def reverse(self, data: st.DataObject, earn: MEarn, kind: str, size: str, outcome: str) -> None:
        """Open a refund or dispute of ``size`` (of what is left to refund) and settle it as
        ``outcome`` says; more than is left is refused and changes nothing."""
        rest = self.still_refundable(earn)
        amount = {
            "rest": rest,
            "part": data.draw(st.integers(1, max(rest, 1)), label="part"),
            "half": rest // 2,
            "one": 1,
            "over": rest + 1,
        }[size]
        amount = max(amount, 1)
        rid = self.next_id("re" if kind == REFUND else "dp")
        at_once = kind == REFUND and outcome == "at_once"
        call = self.open_call(kind, earn.order_id, rid, amount, succeeded=at_once)
        if amount > rest:
            why = "paid with points only" if self.refundable(earn) <= 0 else "more than is left"
            event(f"{kind}: refused, {why}")
            self.expect_unchanged(InvalidAmount, call, exact=True)
            return
        rev = self.model_open(kind, earn, rid, amount)
        rev.succeeded_flag = at_once
        event(
            f"{kind} {'in full' if amount == rest else 'partial'}: "
            + ", ".join(
                f"{name} {'>0' if getattr(rev, name) else '0'}"
                for name in ("frozen", "lapsed", "missing")
            )
        )
        if at_once:
            self.model_reverse(rev)
            assert call() == rev.settled
            return
        assert call() == rev.opened
        if outcome == "at_once" or outcome == "reverse":  # a dispute lost at once
            self.settle(rev, reverse=True)
        elif outcome == "release":
            self.settle(rev, reverse=False)

    @not_frozen
    @rule(
        data=st.data(),
        member=st.integers(0, len(MEMBERS) - 1),
        amount=st.integers(5_000, 100_000),
        spend=st.sampled_from(["hold", "hold", "transfer", "deduct"]),
        part=st.sampled_from(["all", "all", "half"]),
        kind=st.sampled_from([REFUND, REFUND, DISPUTE]),
        size=st.sampled_from(["rest", "rest", "half"]),
        credit=st.sampled_from([0, 0, 40, 3000]),
        settle=st.sampled_from(["reverse", "reverse", "release", "open"]),
    )
    def spend_then_refund(
        self,
        data: st.DataObject,
        member: int,
        amount: int,
        spend: str,
        part: str,
        kind: str,
        size: str,
        credit: int,
        settle: str,
    ) -> None:
        """An order's points are spent (captured by another order's hold, sent to another
        member or deducted by staff) before the order is refunded or disputed: the refund
        finds them missing. Points granted while it is open (``credit``) are deducted when it
        goes through; what is still missing becomes debt (or is waived), which later credits
        repay. A fresh order is earned (and matured) when the member has none to spend."""
        orders = []
        for o in self.orders_to_reverse("refundable", member):
            lot = self.order_lot(o)
            if lot is not None and lot.available and self.usable(lot):
                orders.append(o)
        if orders:
            earn = self.earns[data.draw(st.sampled_from(orders), label="order")]
        else:
            order_id = self.next_id("o")
            self.earn(member, amount, 0, order_id)
            earn = self.earns[order_id]
            if earn.lot is None:
                return
            matures_at = self.lots[earn.lot].matures_at
            if matures_at is not None:
                self.clock.set(max(self.now, matures_at))
                self._sweep("after")
        have = self.have(member)
        points = max(have if part == "all" else have // 2, 1)
        event(f"spend then {kind}: by {spend}")
        if spend == "hold":
            held = set(self.holds)
            self.hold(member, "drawn", points, "large", 0)
            for order_id in set(self.holds) - held:
                result = s.capture_hold(self.db, program=PROGRAM, order_id=order_id)
                assert (result.status, result.replayed) == ("captured", False)
                self._settle_back(self.holds[order_id], "captured")
        elif spend == "transfer":
            self.transfer(member, 1, "all" if part == "all" else "drawn", points, True)
        else:
            self.adjust(member, "deduct_all" if part == "all" else "deduct", points)
        opened = set(self.reversals)
        self.reverse(data, earn, kind, size, "open")
        made = set(self.reversals) - opened
        if not made:
            return
        rev = self.reversals[made.pop()]
        if credit:
            self.adjust(member, "grant", credit)
        if settle != "open":
            self.settle(rev, reverse=settle == "reverse")

    @precondition(lambda self: self.earns)
    @rule(data=st.data(), count=st.integers(2, 4))
    def reverse_out_of_order(self, data: st.DataObject, count: int) -> None:
        """Several refunds and disputes of one order, opened and settled in an order of their
        own (as webhooks may arrive): some settle while others are still opening, the rest in
        any order, each going through or not. Each share is settled again when it goes
        through, taking frozen points of the others or giving some back."""
        order = data.draw(st.sampled_from(self.orders_to_reverse("refundable")), label="o")
        earn = self.earns[order]
        waiting: list[tuple[str, str]] = []
        for _ in range(count):
            kind = data.draw(st.sampled_from([REFUND, REFUND, DISPUTE]), label="kind")
            size = data.draw(st.sampled_from(["part", "half", "one"]), label="size")
            before = set(self.reversals)
            self.reverse(data, earn, kind, size, "open")
            waiting += sorted(set(self.reversals) - before)
            if waiting and data.draw(st.booleans(), label="settle one now"):
                key = waiting.pop(data.draw(st.integers(0, len(waiting) - 1), label="which"))
                self.settle(self.reversals[key], reverse=data.draw(st.booleans(), label="how"))
        for key in data.draw(st.permutations(waiting), label="settling order"):
            self.settle(self.reversals[key], reverse=data.draw(st.booleans(), label="how"))

    @precondition(lambda self: self.reversals)
    @rule(
        data=st.data(),
        reverse=st.booleans(),
        other_key=st.sampled_from([False, False, True]),
    )
    def settle_reversal(self, data: st.DataObject, reverse: bool, other_key: bool) -> None:
        """Settle a refund or dispute (mostly an open one): the same way again answers as
        before and changes nothing, the other way is :class:`ReversalSettled`."""
        opened = sorted(k for k, r in self.reversals.items() if r.status == OPENED[r.kind])
        prefer = data.draw(st.booleans(), label="prefer open")
        pool = opened if opened and prefer else None
        rev = self.reversals[data.draw(st.sampled_from(pool or sorted(self.reversals)), label="r")]
        self.settle(rev, reverse, key=self.next_id("settle-") if other_key else None)

    def settle(self, rev: MReversal, reverse: bool, key: str | None = None) -> None:
        target = REVERSED[rev.kind] if reverse else RELEASED[rev.kind]
        call = self.settle_call(rev, reverse, key)
        event(f"settle {rev.kind}: {rev.status} -> {target}")
        if rev.status == target:
            before = self.fingerprint()
            assert rev.settled is not None
            assert call() == dataclasses.replace(rev.settled, replayed=True)
            assert self.fingerprint() == before
        elif rev.status != OPENED[rev.kind]:
            error = self.expect_unchanged(ReversalSettled, call, exact=True)
            assert error.details.get("status") == rev.status, error.details
        else:
            if reverse:
                self.model_reverse(rev)
            else:
                self.model_release(rev)
            assert call() == rev.settled

    def model_open(self, kind: str, earn: MEarn, rid: str, amount: int) -> MReversal:
        """The order's cumulative floor share; frozen from the order's lot (available, then
        pending), then lapsed (what expired from that lot, less what earlier reversals
        counted), then from the member's other spendable lots soonest-expiring first; the rest
        is missing."""
        counting = [r for r in self.reversals_of(earn.order_id) if r.counts]
        granted = earn.result.points_granted
        share = floor_share(
            granted, sum(r.amount for r in counting) + amount, self.refundable(earn)
        )
        points = max(0, share - sum(r.points for r in counting))
        still, lapsed = points, 0
        froze: list[tuple[int, int, int]] = []
        if earn.lot is not None and still:
            lot = self.lots[earn.lot]
            available = min(lot.available, still)
            pending = min(lot.pending, still - available)
            if available or pending:
                froze.append((earn.lot, available, pending))
                still -= available + pending
            if still and lot.expired_at is not None:
                lapsed = min(still, max(0, lot.lapsed - sum(r.lapsed for r in counting)))
                still -= lapsed
        for index, take in take_up_to(self.fefo(earn.member, skip=earn.lot), still):
            froze.append((index, take, 0))
            still -= take
        for index, available, pending in froze:
            lot = self.lots[index]
            lot.available -= available
            lot.pending -= pending
            lot.frozen += available + pending
        frozen = points - lapsed - still
        opened = ReversalResult(
            kind=kind,
            reversal_id=rid,
            order_id=earn.order_id,
            member=MEMBERS[earn.member],
            amount_minor=amount,
            currency=CURRENCY,
            status=OPENED[kind],
            points=points,
            frozen=frozen,
            lapsed=lapsed,
            missing=still,
        )
        rev = MReversal(
            kind=kind,
            rid=rid,
            order_id=earn.order_id,
            member=earn.member,
            amount=amount,
            status=OPENED[kind],
            points=points,
            frozen=frozen,
            lapsed=lapsed,
            missing=still,
            froze=froze,
            opened=opened,
        )
        self.reversals[(kind, rid)] = rev
        return rev

    def model_reverse(self, rev: MReversal) -> None:
        """A refund first gives back its cumulative share of the points redeemed by the
        order's captured hold (into the lots the hold took them from, last taken first; an
        expired lot loses them again at once); then its share is settled (see
        :meth:`settle_share`), the frozen points go, the missing ones are deducted from what
        is spendable now and the rest becomes debt or is waived."""
        assert self.cfg is not None
        earn = self.earns[rev.order_id]
        hold = self.holds.get(rev.order_id)
        returned = 0
        if rev.kind == REFUND and hold is not None and hold.status == "captured":
            done = [
                r
                for r in self.reversals_of(rev.order_id)
                if r.kind == REFUND and r.status == REVERSED[REFUND]
            ]
            given = sum(r.returned for r in done)
            target = floor_share(
                hold.points, sum(r.amount for r in done) + rev.amount, self.refundable(earn)
            )
            returned = max(0, target - given)
            event(f"refund gives back redeemed points ({'some' if returned else 'none'})")
            for index, points in give_back(hold.taken, given, returned):
                lot = self.lots[index]
                lot.available += points
                if lot.expired_at is not None:
                    event("redeemed points returned to an expired lot")
                    self.expire_again(lot, points)
        deducted = self.settle_share(rev, earn)
        late = self.lapsed_since_freeze(rev, earn, rev.missing - deducted)
        if late:
            event("missing points lapsed with the order's lot after the freeze")
        rev.lapsed += late
        rev.missing -= late
        for index, take in take_up_to(self.fefo(rev.member), rev.missing - deducted):
            self.lots[index].available -= take
            deducted += take
        rest = rev.missing - deducted
        debt = rest if self.cfg.refund_policy == "debt" else 0
        self.debt[rev.member] += debt
        if rest:
            event(f"reversal leaves {'debt' if debt else 'points waived'}")
        rev.status = REVERSED[rev.kind]
        rev.deducted, rev.debt, rev.waived, rev.returned = deducted, debt, rest - debt, returned
        rev.settled = dataclasses.replace(
            rev.opened,
            status=rev.status,
            points=rev.points,
            frozen=rev.frozen,
            lapsed=rev.lapsed,
            missing=rev.missing,
            deducted=deducted,
            debt=debt,
            waived=rest - debt,
            returned=returned,
        )

    def settle_share(self, rev: MReversal, earn: MEarn) -> int:
        """The share becomes what the floor share over the order's reversals that went through
        grows by; a smaller one needs fewer missing points, then gives frozen points back (the
        end of the freeze first), then (only below what lapsed) counts fewer lapsed ones; a
        larger one takes frozen points of the order's other open reversals (latest first, the
        end of each freeze first), then points of the order's lot (available, then pending:
        deducted), the rest missing. The frozen points left are reversed. Returns the points
        deducted from the order's lot."""
        others = [r for r in self.reversals_of(rev.order_id) if r is not rev]
        done = [r for r in others if r.status == REVERSED[r.kind]]
        total = floor_share(
            earn.result.points_granted,
            sum(r.amount for r in done) + rev.amount,
            self.refundable(earn),
        )
        share = max(0, total - sum(r.points for r in done))
        own = live_freeze(rev.froze, rev.frozen)
        deducted = 0
        if share < rev.points:
            event("settled share smaller than frozen")
            excess = rev.points - share
            unmissed = min(rev.missing, excess)
            own, given = split_last(own, excess - unmissed)
            released = sum(a + p for _i, a, p in given)
            self.release_pieces(given)
            rev.missing -= unmissed
            rev.frozen -= released
            rev.lapsed -= excess - unmissed - released
            if excess - unmissed - released:
                event("settled share smaller than what lapsed")
        elif share > rev.points:
            event("settled share larger than frozen")
            extra = share - rev.points
            for other in reversed(others):
                if not extra:
                    break
                if other.status != OPENED[other.kind] or not other.frozen:
                    continue
                want = min(extra, other.frozen)
                _, given = split_last(live_freeze(other.froze, other.frozen), want)
                for index, available, pending in given:
                    self.lots[index].frozen -= available + pending
                other.points -= want
                other.frozen -= want
                rev.frozen += want
                extra -= want
                event("settled share takes frozen points of another open reversal")
            rev.missing += extra
            if extra and earn.lot is not None:
                lot = self.lots[earn.lot]
                available = min(lot.available, extra)
                pending = min(lot.pending, extra - available)
                lot.available -= available
                lot.pending -= pending
                deducted = available + pending
                if deducted:
                    event("settled share takes points of the order's lot")
        rev.points = share
        for index, available, pending in own:
            self.lots[index].frozen -= available + pending
        return deducted

    def lapsed_since_freeze(self, rev: MReversal, earn: MEarn, missing: int) -> int:
        """Of ``missing`` points, those that lapsed with the order's lot after the freeze (such
        as redeemed points the refund just returned into it): what the lot lost, less what the
        order's counting reversals (this one included) already counted."""
        if earn.lot is None or not missing or self.lots[earn.lot].expired_at is None:
            return 0
        counted = sum(r.lapsed for r in self.reversals_of(rev.order_id) if r.counts)
        return min(missing, max(0, self.lots[earn.lot].lapsed - counted))

    def model_release(self, rev: MReversal) -> None:
        """What is left of the freeze goes back (see :meth:`release_pieces`); the answer gives
        the share and frozen points as they stood (less what other reversals took)."""
        self.release_pieces(live_freeze(rev.froze, rev.frozen))
        rev.status = RELEASED[rev.kind]
        rev.settled = dataclasses.replace(
            rev.opened, status=rev.status, points=rev.points, frozen=rev.frozen
        )

    def release_pieces(self, pieces: list[tuple[int, int, int]]) -> None:
        """Frozen points go back: to pending while their lot is pending and not yet mature,
        or held by risk control for a member still on hold, else to available; a lot that
        expired meanwhile loses them again at once."""
        for index, available, pending in pieces:
            lot = self.lots[index]
            expired = lot.expired_at is not None
            immature = lot.matures_at is not None and lot.matures_at > self.now
            held = lot.matures_at is None and self.on_hold[lot.member]
            to_pending = pending if (immature or held) and not expired else 0
            back = available + pending - to_pending
            if pending and lot.matures_at is None:
                event(f"held points frozen, then given back {'held' if held else 'available'}")
            lot.frozen -= available + pending
            lot.pending += to_pending
            lot.available += back
            if expired:
                event("frozen points released to an expired lot")
                self.expire_again(lot, back)

    @not_frozen
    @precondition(lambda self: self.reversals or self.transfers or self.adjustments)
    @rule(data=st.data(), change=st.sampled_from([None, None, "changed", "other_key"]))
    def retry_later_write(self, data: st.DataObject, change: str | None) -> None:
        """Retry a refund, dispute, transfer or adjustment: as it was, changed, or (a refund
        or dispute) under another key."""
        pool: list[tuple[str, tuple[str, str]]] = [("r", k) for k in sorted(self.reversals)]
        pool += [("t", (k, "")) for k in sorted(self.transfers)]
        pool += [("a", (k, "")) for k in sorted(self.adjustments)]
        what, key = data.draw(st.sampled_from(pool), label="write")
        if what == "r":
            if change == "changed":
                change = data.draw(st.sampled_from(["amount", "order"]), label="change")
            self.retry_reversal(data, self.reversals[key], change)
        else:
            self.retry_transfer_or_adjustment(what, key[0], change)

    def retry_reversal(self, data: st.DataObject, rev: MReversal, change: str | None) -> None:
        """A retried refund or dispute answers its first result (a refund opened with
        ``succeeded=True`` its completion), whatever happened since; with another amount or
        order it conflicts; under another key the id is already recorded. Nothing changes."""
        amount, order_id, key = rev.amount, rev.order_id, None
        error: type[LoyaltyError] = IdempotencyConflict
        if change == "amount":
            amount += 1
        elif change == "order":
            others = sorted(o for o in self.earns if o != rev.order_id)
            order_id = data.draw(st.sampled_from(others), label="other order")
        elif change == "other_key":
            key, error = f"again:{rev.rid}", AlreadyExists
        call = self.open_call(
            rev.kind,
            order_id,
            rev.rid,
            amount,
            succeeded=rev.succeeded_flag,
            key=key,
            currency=CURRENCY.lower(),  # the same request
        )
        if change is not None:
            self.expect_unchanged(error, call, exact=True)
            return
        before = self.fingerprint()
        again = call()
        first = rev.settled if rev.succeeded_flag else rev.opened
        assert first is not None
        assert again == dataclasses.replace(first, replayed=True)
        assert self.fingerprint() == before

    # transfers and adjustments ----------------------------------------------------------------

    def owned_total(self) -> int:
        """What all members own, from their database rows: every bucket less debt."""
        with self.db.read() as conn:
            rows = conn.execute(select(members_t)).all()
        return sum(r.available + r.pending + r.held + r.frozen - r.debt for r in rows)

    def transfer_call(
        self, sender: int, recipient: int, points: Any, transfer_id: str, key: str | None = None
    ) -> Callable[[], TransferResult]:
        return lambda: s.transfer_points(
            self.db,
            program=PROGRAM,
            sender=MEMBERS[sender],
            recipient=MEMBERS[recipient],
            points=points,
            transfer_id=transfer_id,
            idempotency_key=key,
        )

    @not_frozen
    @rule(
        sender=st.integers(0, len(MEMBERS) - 1),
        offset=st.sampled_from([1, 1, 1, 2, 2, 2, 0]),
        size=st.sampled_from(["drawn", "drawn", "drawn", "all", "all+1", "min-1", "max+1", "day"]),
        drawn=st.one_of(st.integers(1, 800), st.sampled_from([1, 9, 10, 1500, 1501])),
        to_debtor=st.booleans(),
    )
    def transfer(self, sender: int, offset: int, size: str, drawn: int, to_debtor: bool) -> None:
        """Send points to another member (0 offset: to oneself, refused; ``to_debtor``: to a
        member in debt if there is one); sizes aim at the limits: everything spendable after
        the fee, one more, just under the minimum, just over the maximum and over what is left
        of today's limit."""
        assert self.cfg is not None
        cfg = self.cfg.transfer
        recipient = (sender + offset) % len(MEMBERS)
        if offset:
            recipient = self.debtor(to_debtor, recipient, but=sender)
        have = self.have(sender)
        day = self.local_day()
        sent_today = self.sent_on.get((sender, day), 0)
        affordable = largest_affordable(have, cfg.fee_points, cfg.fee_bp)
        points = {
            "drawn": drawn,
            "all": affordable,
            "all+1": affordable + 1,
            "min-1": cfg.min_points - 1,
            "max+1": (cfg.max_points or drawn) + 1,
            "day": (cfg.daily_limit or drawn) - sent_today + 1,
        }[size]
        transfer_id = self.next_id("t")
        call = self.transfer_call(sender, recipient, points, transfer_id)
        fee = transfer_fee(points, cfg.fee_points, cfg.fee_bp)
        too_big = cfg.max_points is not None and points > cfg.max_points
        over_day = cfg.daily_limit is not None and sent_today + points > cfg.daily_limit
        if points < 1:
            error: type[LoyaltyError] | None = InvalidAmount
        elif sender == recipient:
            error = TransferNotAllowed
        elif points < cfg.min_points or too_big or over_day:
            error = TransferLimit
        elif have < points + fee:
            error = InsufficientPoints
        else:
            error = None
        event(f"transfer: {error.__name__ if error else 'ok'}{' (fee)' if fee else ''}")
        if error is not None:
            raised = self.expect_unchanged(error, call, exact=True)
            if error is InsufficientPoints:
                assert raised.details == {"available": have, "requested": points, "fee": fee}
            return
        taken = take_up_to(self.fefo(sender), points + fee)
        still, sent = points, []
        for index, take in taken:
            part = min(take, still)
            still -= part
            if part:
                sent.append((index, part))
            self.lots[index].available -= take
        held = self.on_hold[recipient]  # risk control holds the recipient's new points
        if held and sent:
            event("points transferred to a member on hold")
        for index, part in sent:
            source = self.lots[index]
            self.credit_lot(
                MLot(
                    member=recipient,
                    points=part,
                    available=0 if held else part,
                    pending=part if held else 0,
                    held=0,
                    earned_at=source.earned_at,
                    matures_at=None,
                    expires_at=source.expires_at,
                )
            )
        self.sent_on[(sender, day)] = sent_today + points
        expected = TransferResult(
            transfer_id=transfer_id,
            sender=MEMBERS[sender],
            recipient=MEMBERS[recipient],
            points=points,
            fee=fee,
            lots=len(sent),
            created_at=self.now,
        )
        before = self.owned_total()
        assert call() == expected
        assert self.owned_total() == before - fee, "a transfer created or lost points"
        self.transfers[transfer_id] = MTransfer(
            transfer_id, sender, recipient, points, fee, day, expected
        )

    def adjust_call(
        self, member: int, points: Any, reason: str, adjustment_id: str
    ) -> Callable[[], AdjustmentResult]:
        return lambda: s.adjust_points(
            self.db,
            program=PROGRAM,
            member=MEMBERS[member],
            points=points,
            reason=reason,
            adjustment_id=adjustment_id,
            actor="staff",
        )

    @not_frozen
    @rule(
        member=st.integers(0, len(MEMBERS) - 1),
        size=st.sampled_from(["grant", "grant", "deduct", "deduct", "deduct_all", "deduct_all+1"]),
        drawn=st.integers(1, 3000),
        to_debtor=st.booleans(),
    )
    def adjust(self, member: int, size: str, drawn: int, to_debtor: bool = False) -> None:
        """Staff grant points (a new lot, expiring like earned points, repaying debt first) or
        deduct them (spendable points, soonest-expiring first; never more than there are).
        With ``to_debtor``, to a member in debt if there is one."""
        member = self.debtor(to_debtor, member)
        have = self.have(member)
        points = {
            "grant": drawn,
            "deduct": -drawn,
            "deduct_all": -have,
            "deduct_all+1": -have - 1,
        }[size]
        adjustment_id = self.next_id("adj")
        reason = "goodwill" if points > 0 else "correction"
        call = self.adjust_call(member, points, reason, adjustment_id)
        if points == 0:
            self.expect_unchanged(InvalidAmount, call, exact=True)
            return
        if -points > have:
            event("adjust: deduction refused")
            raised = self.expect_unchanged(InsufficientPoints, call, exact=True)
            assert raised.details.get("available") == have, raised.details
            return
        assert self.cfg is not None
        expires_at: dt.datetime | None = None
        repaid = 0
        if points > 0:
            expires_at = expected_expiry(self.now, self.cfg.month_end)
            repaid = self.credit_lot(
                MLot(
                    member=member,
                    points=points,
                    available=points,
                    pending=0,
                    held=0,
                    earned_at=self.now,
                    matures_at=None,
                    expires_at=expires_at,
                )
            )
        else:
            for index, take in take_up_to(self.fefo(member), -points):
                self.lots[index].available -= take
        event(f"adjust: {'grant' if points > 0 else 'deduction'}")
        expected = AdjustmentResult(
            member=MEMBERS[member],
            adjustment_id=adjustment_id,
            points=points,
            reason=reason,
            actor="staff",
            expires_at=expires_at,
            debt_repaid=repaid,
            created_at=self.now,
        )
        assert call() == expected
        self.adjustments[adjustment_id] = MAdjustment(
            adjustment_id, member, points, reason, expected
        )

    def retry_transfer_or_adjustment(self, what: str, key: str, change: str | None) -> None:
        """A retried transfer or adjustment answers its first result whatever happened since
        (even when the points are no longer there); with other points (an adjustment: or
        another reason) it conflicts. Nothing changes."""
        call: Callable[[], Any]
        if what == "t":
            t = self.transfers[key]
            more = 1 if change is not None else 0
            call = self.transfer_call(t.sender, t.recipient, t.points + more, t.transfer_id)
            first: Any = t.result
        else:
            a = self.adjustments[key]
            points = a.points + (1 if a.points > 0 else -1) * (change == "changed")
            reason = a.reason + (" again" if change == "other_key" else "")
            call = self.adjust_call(a.member, points, reason, a.adjustment_id)
            first = a.result
        if change is not None:
            self.expect_unchanged(IdempotencyConflict, call, exact=True)
            return
        before = self.fingerprint()
        assert call() == dataclasses.replace(first, replayed=True)
        assert self.fingerprint() == before

    # risk control --------------------------------------------------------------------------

    @rule(
        member=st.integers(0, len(MEMBERS) - 1),
        amount=AMOUNTS,
        stay=st.sampled_from([False, True]),
    )
    def freeze(self, member: int, amount: int, stay: bool) -> None:
        """Freeze an account (账户冻结): its earns are refused and write nothing; balances
        stay. Unfrozen at once, or left frozen for the next steps (``stay``)."""
        info = s.freeze_member(
            self.db, program=PROGRAM, member=MEMBERS[member], reason="card reported", actor="ops"
        )
        assert info.status == "suspended"
        if member not in self.frozen:  # freezing a frozen account again changes nothing
            self.status_changes.append(member)
        self.frozen.add(member)
        self.earn(member, amount, 0, self.next_id("f"))
        if not stay:
            self.unfreeze_member(member)

    @precondition(lambda self: self.frozen)
    @rule(data=st.data())
    def unfreeze(self, data: st.DataObject) -> None:
        self.unfreeze_member(data.draw(st.sampled_from(sorted(self.frozen)), label="member"))

    def unfreeze_member(self, member: int) -> None:
        info = s.unfreeze_member(
            self.db, program=PROGRAM, member=MEMBERS[member], reason="card replaced", actor="ops"
        )
        assert info.status == "active"
        self.frozen.discard(member)
        self.status_changes.append(member)

    @not_frozen
    @rule(member=st.integers(0, len(MEMBERS) - 1), amount=st.integers(100, 20_000))
    def earn_burst(self, member: int, amount: int) -> None:
        """One earn more than the risk rule allows within the hour, the risk job, and an
        earn after it (held if the job put the member on hold)."""
        for _ in range(self.burst_limit + 1):
            self.earn(member, amount, 0, self.next_id("b"))
        self.scan()
        self.earn(member, amount, 0, self.next_id("b"))

    @rule()
    def scan(self) -> None:
        """The risk job: a member with more earns than the limit in the last hour trips the
        rule; the trip opens their case (and holds them), adds to the open case only with an
        earn newer than it saw, or reopens the closed case only with an earn newer than its
        resolution (and holds them again)."""
        since = self.now - HOUR
        outcomes: list[str] = []
        for member in range(len(MEMBERS)):
            recent = [e.at for e in self.earns.values() if e.member == member and e.at > since]
            if len(recent) > self.burst_limit:
                outcomes.append(self.model_trip(member, max(recent)))
        result = s.scan_risk(self.db)
        count = outcomes.count
        assert result == RiskScanResult(
            programs=1,
            rules=1,
            trips=len(outcomes),
            opened=count("opened"),
            updated=count("updated"),
            reopened=count("reopened"),
            held=count("opened") + count("reopened"),
        ), (result, outcomes)
        for outcome in set(outcomes) - {"unchanged"}:
            event(f"risk scan: a case {outcome}")
        cases = s.list_risk_cases(self.db, program=PROGRAM, status=None).items
        for found in cases:
            assert found.member is not None
            self.cases[MEMBERS.index(found.member)].id = found.id

    def model_trip(self, member: int, latest: dt.datetime) -> str:
        """Open, add to or reopen the member's case; what the trip did."""
        case = self.cases.get(member)
        if case is None:
            self.cases[member] = MCase(0, "open", 1, latest)
            self.on_hold[member] = True
            return "opened"
        if case.status == "open":
            if latest <= case.last_tripped_at:
                return "unchanged"
            case.trips, case.last_tripped_at = case.trips + 1, latest
            return "updated"
        assert case.resolved_at is not None
        if latest <= case.resolved_at:
            return "unchanged"
        case.status, case.resolved_at = "open", None
        case.trips, case.last_tripped_at = case.trips + 1, latest
        self.on_hold[member] = True
        return "reopened"

    def open_cases(self) -> set[int]:
        return {m for m, case in self.cases.items() if case.status == "open"}

    @precondition(lambda self: any(self.on_hold) or self.open_cases())
    @rule(data=st.data(), via=st.sampled_from(["release", "dismiss", "member"]))
    def release_risk_hold(self, data: st.DataObject, via: str) -> None:
        """A person releases a member: resolving their open case (``release`` or
        ``dismiss``), or lifting the hold outside it (``member``: the case stays open). Every
        point held (pending with no maturity date) becomes available; new earns are not
        held any more."""
        members = sorted({m for m, held in enumerate(self.on_hold) if held} | self.open_cases())
        member = data.draw(st.sampled_from(members), label="member")
        held = [
            lot
            for lot in self.lots
            if lot.member == member and lot.pending > 0 and lot.matures_at is None
        ]
        case = self.cases.get(member)
        if via == "member" or case is None or case.status != "open":
            released = s.release_member_hold(
                self.db, program=PROGRAM, member=MEMBERS[member], note="known customer"
            )
            assert released == sum(lot.pending for lot in held)
        else:
            info = s.resolve_risk_case(
                self.db, program=PROGRAM, case_id=case.id, outcome=via, note="checked"
            )
            case.status = "dismissed" if via == "dismiss" else "resolved"
            case.resolved_at = self.now
            assert (info.status, info.member_on_hold, info.held_points) == (case.status, False, 0)
        event(f"risk hold released ({via}){' with points held' if held else ''}")
        for lot in held:
            lot.available += lot.pending
            lot.pending = 0
        self.on_hold[member] = False

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
        for lot in due:  # held and frozen points stay: a hold or a refund in flight
            lot.expired_at = self.now
            lot.lapsed += lot.available + lot.pending
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
            "frozen": sum(lot.frozen for lot in mine),
            "debt": self.debt[member],
        }

    # bad input ------------------------------------------------------------------------------

    @not_frozen
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
                "refund_unknown_order",
                "refund_zero",
                "refund_wrong_currency",
                "refund_bad_id",
                "complete_unknown",
                "close_unknown",
                "close_not_bool",
                "transfer_to_self",
                "transfer_unknown_recipient",
                "transfer_float",
                "adjust_zero",
                "adjust_blank_reason",
                "adjust_unknown_member",
            ]
        ),
        member=st.integers(0, len(MEMBERS) - 1),
    )
    def bad_input(self, case: str, member: int) -> None:
        order_id = self.next_id("bad")
        who = MEMBERS[member]
        earned = min(self.earns)  # an order that earned (the set-up earns three)

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
            "refund_unknown_order": (
                OrderNotFound,
                self.open_call(REFUND, order_id, order_id, 100),
            ),
            "refund_zero": (InvalidAmount, self.open_call(REFUND, earned, order_id, 0)),
            "refund_wrong_currency": (
                CurrencyMismatch,
                self.open_call(DISPUTE, earned, order_id, 1, currency="USD"),
            ),
            "refund_bad_id": (InvalidIdempotencyKey, self.open_call(REFUND, earned, "re 1", 1)),
            "complete_unknown": (
                ReversalNotFound,
                lambda: s.complete_refund(self.db, program=PROGRAM, refund_id=order_id),
            ),
            "close_unknown": (
                ReversalNotFound,
                lambda: s.close_dispute(self.db, program=PROGRAM, dispute_id=order_id, won=False),
            ),
            "close_not_bool": (
                InvalidAmount,
                lambda: s.close_dispute(
                    self.db,
                    program=PROGRAM,
                    dispute_id=order_id,
                    won=1,  # type: ignore[arg-type]
                ),
            ),
            "transfer_to_self": (
                TransferNotAllowed,
                self.transfer_call(member, member, 1, order_id),
            ),
            "transfer_unknown_recipient": (
                MemberNotFound,
                lambda: s.transfer_points(
                    self.db,
                    program=PROGRAM,
                    sender=who,
                    recipient="ghost",
                    points=1,
                    transfer_id=order_id,
                ),
            ),
            "transfer_float": (
                InvalidAmount,
                self.transfer_call(member, (member + 1) % len(MEMBERS), 1.0, order_id),
            ),
            "adjust_zero": (InvalidAmount, self.adjust_call(member, 0, "zero", order_id)),
            "adjust_blank_reason": (InvalidInput, self.adjust_call(member, 5, "  ", order_id)),
            "adjust_unknown_member": (
                MemberNotFound,
                lambda: s.adjust_points(
                    self.db,
                    program=PROGRAM,
                    member="ghost",
                    points=5,
                    reason="why",
                    adjustment_id=order_id,
                ),
            ),
        }
        error, call = cases[case]
        self.expect_unchanged(error, call, exact=case in EXACT_ERRORS)

    # invariants -----------------------------------------------------------------------------

    @invariant()
    def risk_control_matches_model(self) -> None:
        """Each member's hold and account status, and their case, as the model has them."""
        if not self.ready:
            return
        with self.db.read() as conn:
            member_rows = conn.execute(select(members_t)).all()
            case_rows = conn.execute(select(cases_t)).all()
        assert {self.member_ids[m.id]: (m.risk_hold, m.status) for m in member_rows} == {
            m: (self.on_hold[m], "suspended" if m in self.frozen else "active")
            for m in range(len(MEMBERS))
        }
        assert {
            self.member_ids[c.member_id]: (c.status, c.trips, c.last_tripped_at, c.resolved_at)
            for c in case_rows
        } == {
            m: (c.status, c.trips, c.last_tripped_at, c.resolved_at) for m, c in self.cases.items()
        }

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
                "frozen": sum(lot.frozen for lot in mine),
                "debt": self.debt[member],
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
                lot.frozen,
                lot.earned_at,
                lot.matures_at,
                lot.expires_at,
                lot.expired_at,
            )
            assert got == want, f"lot {row.id}: {got} != {want}"
        assert {
            r.order_id: (self.member_ids[r.member_id], r.points, r.status) for r in hold_rows
        } == {h.order_id: (h.member, h.points, h.status) for h in self.holds.values()}

    @invariant()
    def reversals_transfers_and_members_match_model(self) -> None:
        """Every refund, dispute and transfer as the model has it; no negative balance or
        debt; no order whose counting reversals claim more points than it was granted; the
        reversals of an order that went through take back exactly the floor share of their
        money, whatever the order of events (so all its points once all its money was
        refunded)."""
        if not self.ready:
            return
        with self.db.read() as conn:
            rev_rows = conn.execute(select(reversals_t)).all()
            earning_rows = conn.execute(select(earnings_t)).all()
            transfer_rows = conn.execute(select(transfers_t).order_by(transfers_t.c.id)).all()
            member_rows = conn.execute(select(members_t)).all()
        got = {
            (r.kind, r.external_id): (
                self.member_ids[r.member_id],
                r.order_id,
                r.status,
                r.amount_minor,
                r.points,
                r.frozen,
                r.lapsed,
                r.missing,
                r.deducted,
                r.debt,
                r.waived,
                r.returned,
            )
            for r in rev_rows
        }
        want = {k: (r.member, r.order_id, r.status, *r.row()) for k, r in self.reversals.items()}
        assert got == want
        for r in rev_rows:
            assert r.frozen + r.lapsed + r.missing == r.points, r
            if r.status in REVERSED.values():
                assert r.deducted + r.debt + r.waived == r.missing, r
        by_order: dict[str, list[Any]] = {}
        for r in rev_rows:
            by_order.setdefault(r.order_id, []).append(r)
        for e in earning_rows:
            mine = by_order.get(e.order_id, [])
            if not mine:
                continue
            counting = [r for r in mine if r.status not in RELEASED.values()]
            through = [r for r in mine if r.status in REVERSED.values()]
            assert sum(r.points for r in counting) <= e.points_granted, (e, mine)
            paid = e.amount_minor - e.points_paid_minor
            assert sum(r.points for r in through) == floor_share(
                e.points_granted, sum(r.amount_minor for r in through), paid
            ), (e, mine)
            if sum(r.amount_minor for r in through) == paid:
                event("an order fully refunded")
                assert sum(r.points for r in through) == e.points_granted, (e, mine)
        for m in member_rows:
            assert min(m.available, m.pending, m.held, m.frozen, m.debt) >= 0, m
        assert [
            (self.member_ids[r.sender_id], self.member_ids[r.recipient_id], r.points, r.fee, r.day)
            for r in transfer_rows
        ] == [(t.sender, t.recipient, t.points, t.fee, t.day) for t in self.transfers.values()]

    @invariant()
    def outbox_has_one_event_per_operation(self) -> None:
        """The outbox holds exactly the events of the ledger's operations: one of its kind's
        type for its member (a transfer and a sweep: one per member of its entries), none for
        a hold (nor for a replay, which makes no operation); each naming its operation and the
        member's balance right after it, rebuilt by replaying the entries in order; a
        member's events in the order of its operations."""
        if not self.ready:
            return
        with self.db.read() as conn:
            ops = conn.execute(select(operations_t).order_by(operations_t.c.id)).all()
            entry_rows = conn.execute(select(entries_t).order_by(entries_t.c.id)).all()
            event_rows = conn.execute(select(events_t).order_by(events_t.c.id)).all()
        expected, balances_after = expected_outbox(ops, entry_rows)
        with_op = [e for e in event_rows if e.operation_id is not None]
        got = sorted((e.operation_id, e.member_id, e.type) for e in with_op)
        assert got == sorted(expected), f"outbox {got} != operations {sorted(expected)}"
        assert sorted(
            (e.type, self.member_ids[e.member_id]) for e in event_rows if e.operation_id is None
        ) == sorted(
            [("member.enrolled", m) for m in range(len(MEMBERS))]
            + [("member.status_changed", m) for m in self.status_changes]
        )
        by_id = {op.id: op for op in ops}
        for e in with_op:
            data = e.data if isinstance(e.data, dict) else json.loads(e.data)
            op = by_id[e.operation_id]
            assert data["operation"] == {"kind": op.kind, "key": op.key}, (e, op)
            assert data["member"] == MEMBERS[self.member_ids[e.member_id]]
            want = balances_after[(e.member_id, e.operation_id)]
            assert data["balance"] == want, f"{e.type} of {op.kind} {op.key}: {data} != {want}"
        for member_id in self.member_ids:
            mine = [e.operation_id for e in with_op if e.member_id == member_id]
            assert mine == sorted(mine), f"member {member_id}: events out of order {mine}"
        event("outbox: " + ", ".join(sorted({e.type for e in with_op})) if with_op else "")


# The event each operation kind reports for its member, and those that report one per member
# of their entries; a hold reports none. A kind in neither is a failure: decide its event.
OPERATION_EVENT = {
    "earn_purchase": "points.earned",
    "earn_action": "points.earned",
    "capture": "points.redeemed",
    "release": "points.hold_released",
    "hold_timeout": "points.hold_released",
    "adjust": "points.adjusted",
    "refund": "points.frozen",
    "dispute": "points.frozen",
    "refund_succeeded": "points.reversed",
    "dispute_lost": "points.reversed",
    "refund_failed": "points.released",
    "dispute_won": "points.released",
}
PER_MEMBER_OF_ENTRIES = {
    "transfer": "points.transferred",
    "mature": "points.pending_matured",
    "expire": "points.expired",
    "clear": "points.cleared",
}
SILENT_KINDS = {"hold"}
BALANCE_NAMES = ("available", "pending", "held", "frozen", "debt")


def expected_outbox(
    ops: Sequence[Any], entry_rows: Sequence[Any]
) -> tuple[list[tuple[int, int, str]], dict[tuple[int, int], dict[str, int]]]:
    """``(operation id, member id, type)`` of every event the operations should have written,
    and each member's balance right after each operation that moved it (its entries summed
    in order)."""
    members_of: dict[int, set[int]] = {}
    running: dict[int, dict[str, int]] = {}
    after: dict[tuple[int, int], dict[str, int]] = {}
    for entry in entry_rows:
        members_of.setdefault(entry.operation_id, set()).add(entry.member_id)
        totals = running.setdefault(entry.member_id, dict.fromkeys(BALANCE_NAMES, 0))
        for name in BALANCE_NAMES:
            totals[name] += int(getattr(entry, f"{name}_delta"))
        after[(entry.member_id, entry.operation_id)] = dict(totals)
    expected = []
    for op in ops:
        if op.kind in OPERATION_EVENT:
            expected.append((op.id, op.member_id, OPERATION_EVENT[op.kind]))
            if (op.member_id, op.id) not in after:  # nothing posted (an earn capped to 0)
                after[(op.member_id, op.id)] = _balance_before(running_at(entry_rows, op))
        elif op.kind in PER_MEMBER_OF_ENTRIES:
            expected += [(op.id, m, PER_MEMBER_OF_ENTRIES[op.kind]) for m in members_of[op.id]]
        else:
            assert op.kind in SILENT_KINDS, f"operation kind {op.kind!r} has no event decided"
    return expected, after


def running_at(entry_rows: Sequence[Any], op: Any) -> list[Any]:
    """The member's entries of operations before ``op``."""
    return [e for e in entry_rows if e.member_id == op.member_id and e.operation_id < op.id]


def _balance_before(entries_before: list[Any]) -> dict[str, int]:
    return {
        name: sum(int(getattr(e, f"{name}_delta")) for e in entries_before)
        for name in BALANCE_NAMES
    }


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
