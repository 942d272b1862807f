"""Point transfers: limits, fee, lots that keep their expiry, debt, idempotency, concurrency."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import random
from collections.abc import Callable
from typing import Any

import pytest
from helpers import PROGRAM, earn, enrol, hold, lots_of, make_program, row_counts, scalar
from sqlalchemy import insert, update
from test_concurrency_pg import run_together

from loyalty import services as s
from loyalty.db import Database
from loyalty.db.models import Entry, Member, Operation
from loyalty.domain.clock import FixedClock
from loyalty.domain.moves import Move, debt_repayment
from loyalty.errors import (
    IdempotencyConflict,
    InsufficientPoints,
    InvalidAmount,
    InvalidIdempotencyKey,
    InvalidInput,
    LoyaltyError,
    MemberInactive,
    MemberNotFound,
    ProgramNotFound,
    TransferLimit,
    TransferNotAllowed,
)
from loyalty.events.backfill import backfill_events
from loyalty.services.results import TransferResult
from loyalty.services.transfers import transfer_fee, transfer_points

KIRITIMATI = "Pacific/Kiritimati"  # UTC+14: local midnight is 10:00 UTC


def send(
    db: Database,
    sender: str,
    recipient: str,
    points: Any,
    transfer_id: str,
    *,
    program: str = PROGRAM,
    **kw: Any,
) -> TransferResult:
    return transfer_points(
        db,
        program=program,
        sender=sender,
        recipient=recipient,
        points=points,
        transfer_id=transfer_id,
        **kw,
    )


def _ok(db: Database) -> None:
    report = s.verify_ledger(db)
    assert report.ok, [c for c in report.checks if not c.ok]


def _available(db: Database, member: str) -> int:
    return s.balance(db, program=PROGRAM, member=member).available


def _kinds(db: Database, member: str) -> list[str]:
    return [i.kind for i in s.history(db, program=PROGRAM, member=member).items]


def _three_lots(db: Database, clock: FixedClock, **settings: Any) -> None:
    """Alice gets 100 points in each of three lots: expiring in 3 months, 1 month, never."""
    make_program(db, transfers_enabled=True, **settings)
    enrol(db, "alice", "bob")
    earn(db, "alice", "three-months", 10_000)  # default expiry: 3 months
    clock.advance(dt.timedelta(minutes=1))
    s.publish_rules(db, program=PROGRAM, rules={"expiry": {"months": 1}})
    earn(db, "alice", "one-month", 10_000)
    clock.advance(dt.timedelta(minutes=1))
    s.publish_rules(db, program=PROGRAM, rules={"expiry": None})
    earn(db, "alice", "never", 10_000)
    clock.advance(dt.timedelta(minutes=1))


# --- the happy path ------------------------------------------------------------------------


def test_a_transfer_moves_points_and_keeps_their_expiry(db: Database, clock: FixedClock) -> None:
    make_program(db, transfers_enabled=True)
    enrol(db, "alice", "bob")
    earn(db, "alice", "o1", 10_000)
    earn(db, "bob", "o2", 5_000)
    clock.advance(dt.timedelta(hours=2))
    before = row_counts(db)

    result = send(db, "alice", "bob", 40, "t1")

    assert result == TransferResult(
        transfer_id="t1",
        sender="alice",
        recipient="bob",
        points=40,
        fee=0,
        lots=1,
        created_at=clock.now(),
    )
    a = s.balance(db, program=PROGRAM, member="alice")
    b = s.balance(db, program=PROGRAM, member="bob")
    assert (a.available, a.lifetime_earned) == (60, 100)
    assert (b.available, b.lifetime_earned) == (90, 50)  # transfers are not earnings
    [source] = lots_of(db, "alice")
    received = lots_of(db, "bob")[-1]
    assert (received.points, received.available, received.pending) == (40, 40, 0)
    assert received.expires_at == source.expires_at
    assert received.earned_at == source.earned_at != clock.now()
    assert received.matures_at is None
    assert _kinds(db, "alice") == ["transfer_out", "earn"]
    assert _kinds(db, "bob") == ["transfer_in", "earn"]
    after = row_counts(db)
    assert {t: after[t] - before[t] for t in after if after[t] != before[t]} == {
        "operations": 1,
        "transfers": 1,
        "lots": 1,
        "entries": 2,
        "tier_qualifying": 1,  # the recipient's measure (counted only if tiers say so)
        "events": 2,  # points.transferred, to each side
    }
    assert scalar(db, "SELECT kind FROM operations ORDER BY id DESC LIMIT 1") == "transfer"
    assert scalar(db, "SELECT day FROM transfers") == "2026-11-21"  # 20:00 in Shanghai
    _ok(db)


def test_the_soonest_expiring_lots_go_first(db: Database, clock: FixedClock) -> None:
    _three_lots(db, clock)
    three, one, never = lots_of(db, "alice")

    result = send(db, "alice", "bob", 250, "t1")

    assert result.lots == 3
    assert [lot.available for lot in lots_of(db, "alice")] == [0, 0, 50]
    received = lots_of(db, "bob")
    assert [(r.points, r.expires_at, r.earned_at) for r in received] == [
        (100, one.expires_at, one.earned_at),
        (100, three.expires_at, three.earned_at),
        (50, None, never.earned_at),
    ]
    assert (_available(db, "alice"), _available(db, "bob")) == (50, 250)
    # Bob spends what he received in the same order: the one-month points first.
    assert send(db, "bob", "alice", 120, "t2").lots == 2
    assert [lot.available for lot in lots_of(db, "bob")] == [0, 80, 50]
    _ok(db)


def test_received_points_expire_with_their_lot(db: Database, clock: FixedClock) -> None:
    _three_lots(db, clock)
    send(db, "alice", "bob", 150, "t1")  # 100 one-month points and 50 three-month ones
    clock.advance(dt.timedelta(days=40))
    assert _available(db, "bob") == 50  # the one-month points lapsed, swept or not
    s.expire_due(db)
    assert _available(db, "bob") == 50
    assert scalar(db, "SELECT SUM(available) FROM lots") == 200  # alice's 150 and bob's 50
    _ok(db)


# --- the fee -------------------------------------------------------------------------------


def test_the_fee_is_fixed_plus_basis_points_rounded_up() -> None:
    assert transfer_fee(100, 0, 0) == 0
    assert transfer_fee(100, 5, 0) == 5
    assert transfer_fee(100, 0, 150) == 2  # 1.5 points, rounded up
    assert transfer_fee(101, 2, 150) == 4  # 2 + ceil(1.515)
    assert transfer_fee(200, 0, 50) == 1  # exactly 1: no rounding
    assert transfer_fee(1, 0, 1) == 1  # any fraction rounds up
    assert transfer_fee(7, 3, 10_000) == 10  # 100% of the points plus the fixed part


def test_the_sender_pays_the_fee_after_the_points(db: Database, clock: FixedClock) -> None:
    _three_lots(db, clock, transfer_fee_points=2, transfer_fee_bp=150)
    three, one, _never = (lot.id for lot in lots_of(db, "alice"))

    result = send(db, "alice", "bob", 99, "t1")

    assert (result.points, result.fee, result.lots) == (99, 4, 1)
    assert (_available(db, "alice"), _available(db, "bob")) == (197, 99)
    # One FEFO pass for 103 points: the 99 points from the one-month lot, the fee from the
    # one point left there and then the three-month lot.
    with db.read() as conn:
        moved = conn.execute(
            Entry.__table__.select()
            .where(Entry.__table__.c.kind.in_(["transfer_out", "transfer_fee"]))
            .order_by(Entry.__table__.c.id)
        ).all()
    assert [(e.kind, e.lot_id, e.available_delta) for e in moved] == [
        ("transfer_out", one, -99),
        ("transfer_fee", one, -1),
        ("transfer_fee", three, -3),
    ]
    assert scalar(db, "SELECT fee FROM transfers") == 4
    assert _kinds(db, "alice")[:2] == ["transfer_fee", "transfer_out"]
    assert _kinds(db, "bob") == ["transfer_in"]
    _ok(db)


def test_the_fee_must_be_covered_too(db: Database) -> None:
    make_program(db, transfers_enabled=True, transfer_fee_points=1, transfer_fee_bp=300)
    enrol(db, "alice", "bob")
    earn(db, "alice", "o1", 10_000)
    before = row_counts(db)
    with pytest.raises(InsufficientPoints) as caught:
        send(db, "alice", "bob", 97, "t1")  # 97 + 1 + ceil(2.91) = 101
    assert caught.value.details == {"available": 100, "requested": 97, "fee": 4}
    assert row_counts(db) == before
    assert send(db, "alice", "bob", 96, "t2").fee == 4  # 96 + 1 + ceil(2.88) = 100
    assert (_available(db, "alice"), _available(db, "bob")) == (0, 96)
    _ok(db)


# --- what is spendable ---------------------------------------------------------------------


def test_only_available_points_can_be_sent(db: Database, clock: FixedClock) -> None:
    make_program(db, transfers_enabled=True)
    enrol(db, "alice", "bob")
    s.publish_rules(db, program=PROGRAM, rules={"expiry": {"days": 10}})
    earn(db, "alice", "lapsing", 10_000)  # 100 points that expire in 10 days
    clock.advance(dt.timedelta(days=11))  # expired, not swept yet
    s.publish_rules(db, program=PROGRAM, rules={"expiry": {"months": 3}})
    earn(db, "alice", "spendable", 10_000)
    hold(db, "alice", "h1", 30)  # 30 of them held for an order
    s.publish_rules(db, program=PROGRAM, rules={"pending_days": 14})
    earn(db, "alice", "pending", 5_000)  # 50 pending points
    b = s.balance(db, program=PROGRAM, member="alice")
    assert (b.available, b.held, b.pending) == (70, 30, 50)
    assert scalar(db, "SELECT SUM(available) FROM lots") == 170  # the lapsed lot still counts

    before = row_counts(db)
    with pytest.raises(InsufficientPoints) as caught:
        send(db, "alice", "bob", 71, "t1")
    assert caught.value.details["available"] == 70
    assert row_counts(db) == before

    send(db, "alice", "bob", 70, "t2")
    b = s.balance(db, program=PROGRAM, member="alice")
    assert (b.available, b.held, b.pending) == (0, 30, 50)
    _ok(db)


# --- limits --------------------------------------------------------------------------------


def test_minimum_and_maximum_per_transfer(db: Database) -> None:
    make_program(db, transfers_enabled=True, transfer_min_points=10, transfer_max_points=100)
    enrol(db, "alice", "bob")
    earn(db, "alice", "o1", 100_000)
    before = row_counts(db)
    with pytest.raises(TransferLimit) as low:
        send(db, "alice", "bob", 9, "t1")
    assert low.value.details == {"limit": 10, "requested": 9}
    with pytest.raises(TransferLimit) as high:
        send(db, "alice", "bob", 101, "t1")
    assert high.value.details == {"limit": 100, "requested": 101}
    assert row_counts(db) == before
    send(db, "alice", "bob", 10, "t2")
    send(db, "alice", "bob", 100, "t3")
    assert _available(db, "bob") == 110
    _ok(db)


def test_the_daily_limit_follows_the_program_local_day(db: Database, clock: FixedClock) -> None:
    clock.set(dt.datetime(2026, 11, 21, 9, 58, tzinfo=dt.UTC))  # 23:58 local, 21 November
    make_program(db, timezone=KIRITIMATI, transfers_enabled=True, transfer_daily_limit=100)
    enrol(db, "alice", "bob")
    earn(db, "alice", "o1", 100_000)

    send(db, "alice", "bob", 60, "t1")
    before = row_counts(db)
    with pytest.raises(TransferLimit) as caught:
        send(db, "alice", "bob", 41, "t2")
    assert caught.value.details == {"limit": 100, "remaining": 40, "requested": 41}
    assert "40 left today" in caught.value.message
    assert row_counts(db) == before
    send(db, "alice", "bob", 40, "t3")  # exactly the limit
    with pytest.raises(TransferLimit):
        send(db, "alice", "bob", 1, "t4")

    clock.set(dt.datetime(2026, 11, 21, 10, 1, tzinfo=dt.UTC))  # 00:01 local: a new day
    send(db, "alice", "bob", 100, "t5")  # the same UTC day, but a new local one
    with pytest.raises(TransferLimit):
        send(db, "alice", "bob", 1, "t6")
    # Bob's limit is his own: what he received does not count.
    send(db, "bob", "alice", 100, "t7")
    with db.read() as conn:
        rows = conn.exec_driver_sql("SELECT day, SUM(points) FROM transfers GROUP BY day").all()
    assert sorted(tuple(r) for r in rows) == [("2026-11-21", 100), ("2026-11-22", 200)]
    _ok(db)


# --- errors write nothing ------------------------------------------------------------------


@pytest.fixture
def scene(db: Database) -> Database:
    """Transfers with every limit; alice (1000 points) has sent 500 today under key k-used."""
    make_program(
        db,
        transfers_enabled=True,
        transfer_min_points=10,
        transfer_max_points=500,
        transfer_daily_limit=600,
        transfer_fee_points=1,
        transfer_fee_bp=100,
    )
    enrol(db, "alice", "bob", "carol", "dave")
    earn(db, "alice", "o1", 100_000)
    earn(db, "carol", "o2", 10_000)
    earn(db, "dave", "o3", 5_000)
    s.set_member_status(db, program=PROGRAM, external_id="carol", status="closed")
    send(db, "alice", "bob", 500, "t-used", idempotency_key="k-used")
    make_program(db, "off")
    enrol(db, "alice", "bob", program="off")
    earn(db, "alice", "o4", 10_000, program="off")
    return db


def _call(
    sender: str = "alice",
    recipient: str = "bob",
    points: Any = 20,
    transfer_id: str = "t-new",
    **kw: Any,
) -> Callable[[Database], Any]:
    return lambda db: send(db, sender, recipient, points, transfer_id, **kw)


ERROR_CASES: list[tuple[str, Callable[[Database], Any], type[LoyaltyError]]] = [
    ("transfers off", _call(program="off"), TransferNotAllowed),
    ("self transfer", _call(recipient="alice"), TransferNotAllowed),
    ("unknown recipient", _call(recipient="zed"), MemberNotFound),
    ("unknown sender", _call(sender="zed"), MemberNotFound),
    ("unknown program", _call(program="nope"), ProgramNotFound),
    ("closed recipient", _call(recipient="carol"), MemberInactive),
    ("closed sender", _call(sender="carol"), MemberInactive),
    ("below the minimum", _call(points=9), TransferLimit),
    ("above the maximum", _call(sender="bob", recipient="dave", points=501), TransferLimit),
    ("over the daily limit", _call(points=101), TransferLimit),
    ("fee not covered", _call(sender="dave", points=50), InsufficientPoints),
    ("zero points", _call(points=0), InvalidAmount),
    ("negative points", _call(points=-5), InvalidAmount),
    ("float points", _call(points=10.0), InvalidAmount),
    ("bool points", _call(points=True), InvalidAmount),
    ("text points", _call(points="10"), InvalidAmount),
    ("empty transfer id", _call(transfer_id=""), InvalidIdempotencyKey),
    ("transfer id with space", _call(transfer_id="t 1"), InvalidIdempotencyKey),
    ("bad key", _call(idempotency_key="a b"), InvalidIdempotencyKey),
    ("empty sender", _call(sender=""), InvalidInput),
    ("key used, other points", _call(points=20, idempotency_key="k-used"), IdempotencyConflict),
    ("key used, other id", _call(points=500, idempotency_key="k-used"), IdempotencyConflict),
]


@pytest.mark.parametrize(
    ("call", "error"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_errors_write_nothing(
    scene: Database, call: Callable[[Database], Any], error: type[LoyaltyError]
) -> None:
    before = row_counts(scene)
    with pytest.raises(LoyaltyError) as caught:
        call(scene)
    assert type(caught.value) is error
    assert caught.value.message
    assert row_counts(scene) == before
    _ok(scene)


def test_error_messages_say_what_to_do(scene: Database) -> None:
    hints = {
        "transfers off": "enable them",
        "self transfer": "choose another recipient",
        "unknown recipient": "enrol the recipient",
        "closed recipient": "reopen",
        "below the minimum": "send 10 or more",
        "above the maximum": "split it",
        "over the daily limit": "100 left today",
        "fee not covered": "send fewer points",
    }
    cases = {name: call for name, call, _error in ERROR_CASES}
    for name, hint in hints.items():
        with pytest.raises(LoyaltyError) as caught:
            cases[name](scene)
        assert hint in caught.value.message, (name, caught.value.message)
        assert caught.value.details, name


# --- debt ----------------------------------------------------------------------------------


def _give_debt(db: Database, member: str, points: int) -> None:
    """Put ``points`` of debt on a member, with the entry that explains it (as a refund would)."""
    members, operations = Member.__table__, Operation.__table__
    with db.engine.begin() as conn:
        row = conn.execute(members.select().where(members.c.external_id == member)).one()
        op_id = conn.execute(
            insert(operations)
            .values(
                program_id=row.program_id,
                key=f"test-debt:{member}",
                kind="refund",
                member_id=row.id,
                request_hash="",
                result={},
                created_at=db.clock.now(),
            )
            .returning(operations.c.id)
        ).scalar_one()
        conn.execute(
            insert(Entry.__table__).values(
                program_id=row.program_id,
                member_id=row.id,
                operation_id=op_id,
                lot_id=None,
                kind="refund_debt",
                debt_delta=points,
                created_at=db.clock.now(),
            )
        )
        conn.execute(update(members).where(members.c.id == row.id).values(debt=points))
        backfill_events(conn)


def test_received_points_repay_debt_lot_by_lot(db: Database, clock: FixedClock) -> None:
    make_program(db, transfers_enabled=True)
    enrol(db, "alice", "bob")
    earn(db, "alice", "small", 2_000)  # 20 points, expiring first
    clock.advance(dt.timedelta(minutes=1))
    earn(db, "alice", "big", 10_000)
    _give_debt(db, "bob", 30)
    _ok(db)

    assert send(db, "alice", "bob", 50, "t1").lots == 2

    b = s.balance(db, program=PROGRAM, member="bob")
    assert (b.available, b.debt, b.lifetime_earned) == (20, 0, 0)
    assert [(lot.points, lot.available) for lot in lots_of(db, "bob")] == [(20, 0), (30, 20)]
    assert _kinds(db, "bob")[:2] == ["debt_repay", "transfer_in"]
    assert scalar(db, "SELECT COUNT(*) FROM entries WHERE kind = 'debt_repay'") == 2
    _ok(db)


def test_a_small_transfer_repays_part_of_the_debt(db: Database) -> None:
    make_program(db, transfers_enabled=True)
    enrol(db, "alice", "bob")
    earn(db, "alice", "o1", 10_000)
    _give_debt(db, "bob", 30)
    send(db, "alice", "bob", 25, "t1")
    b = s.balance(db, program=PROGRAM, member="bob")
    assert (b.available, b.debt) == (0, 5)
    assert lots_of(db, "bob")[0].available == 0
    _ok(db)


def test_debt_repayment_moves() -> None:
    assert debt_repayment(0, 7, 50) == []
    assert debt_repayment(30, 7, 50) == [Move("debt_repay", 7, debt=-30, available=-30)]
    assert debt_repayment(80, 7, 50) == [Move("debt_repay", 7, debt=-50, available=-50)]


# --- idempotency ---------------------------------------------------------------------------


def test_a_retry_answers_the_stored_result(db: Database, clock: FixedClock) -> None:
    make_program(db, transfers_enabled=True, transfer_fee_points=1)
    enrol(db, "alice", "bob")
    earn(db, "alice", "o1", 10_000)
    first = send(db, "alice", "bob", 80, "t1")
    before = row_counts(db)

    clock.advance(dt.timedelta(minutes=5))
    again = send(db, "alice", "bob", 80, "t1")  # alice no longer has 81 points: a replay

    assert again == dataclasses.replace(first, replayed=True)
    assert row_counts(db) == before
    assert (_available(db, "alice"), _available(db, "bob")) == (19, 80)
    # A replay answers even after the program switched transfers off and alice was closed.
    s.update_program(db, program=PROGRAM, transfers_enabled=False)
    s.set_member_status(db, program=PROGRAM, external_id="alice", status="closed")
    before["events"] += 1  # member.closed
    assert send(db, "alice", "bob", 80, "t1").replayed
    assert row_counts(db) == before
    _ok(db)


def test_the_same_key_with_other_parameters_conflicts(db: Database) -> None:
    make_program(db, transfers_enabled=True)
    enrol(db, "alice", "bob", "carol")
    earn(db, "alice", "o1", 10_000)
    send(db, "alice", "bob", 10, "t1", idempotency_key="k1")
    earn(db, "bob", "o2", 10_000, idempotency_key="k2")
    before = row_counts(db)
    for recipient, points, transfer_id in (
        ("bob", 11, "t1"),  # other points
        ("bob", 10, "t2"),  # another transfer id under the same key
        ("carol", 10, "t1"),  # another recipient
    ):
        with pytest.raises(IdempotencyConflict):
            send(db, "alice", recipient, points, transfer_id, idempotency_key="k1")
    with pytest.raises(IdempotencyConflict):  # a key an earning used
        send(db, "alice", "bob", 10, "t3", idempotency_key="k2")
    with pytest.raises(IdempotencyConflict):  # a key another transfer used
        send(db, "bob", "carol", 10, "t1", idempotency_key="k1")
    assert row_counts(db) == before
    _ok(db)


def test_the_default_key_is_the_transfer_id(db: Database) -> None:
    make_program(db, transfers_enabled=True)
    enrol(db, "alice", "bob")
    earn(db, "alice", "o1", 10_000)
    send(db, "alice", "bob", 10, "t1")
    assert scalar(db, "SELECT key FROM operations WHERE kind = 'transfer'") == "transfer:t1"
    before = row_counts(db)
    with pytest.raises(IdempotencyConflict):
        send(db, "alice", "bob", 11, "t1")
    assert row_counts(db) == before


# --- real concurrency (PostgreSQL) ---------------------------------------------------------


def _errors(results: list[Any]) -> list[BaseException]:
    return [r for r in results if isinstance(r, BaseException)]


def test_random_transfers_both_ways_conserve_points(pg_db: Database) -> None:
    make_program(pg_db, transfers_enabled=True, transfer_fee_points=1, transfer_fee_bp=250)
    names = [f"m{n}" for n in range(6)]
    enrol(pg_db, *names)
    for name in names:
        earn(pg_db, name, f"seed-{name}", 50_000)  # 500 points each

    def transfers(n: int) -> Callable[[], list[TransferResult]]:
        def call() -> list[TransferResult]:
            rng = random.Random(n)
            done = []
            for i in range(25):
                # Everyone starts with m0 -> m1 or m1 -> m0 at once; then random pairs.
                pair = ("m0", "m1")[:: 1 if n % 2 else -1] if i == 0 else rng.sample(names, 2)
                with contextlib.suppress(InsufficientPoints):
                    done.append(send(pg_db, *pair, rng.randint(1, 120), f"t{n}-{i}"))
            return done

        return call

    def earns(n: int) -> Callable[[], list[Any]]:
        def call() -> list[Any]:
            rng = random.Random(100 + n)
            return [
                earn(pg_db, rng.choice(names), f"e{n}-{i}", 1_000 * rng.randint(1, 5))
                for i in range(25)
            ]

        return call

    results = run_together([transfers(n) for n in range(8)] + [earns(n) for n in range(2)])
    assert not _errors(results), _errors(results)  # no deadlock, no lost update
    done = [t for r in results[:8] for t in r]
    assert len(done) > 100
    assert scalar(pg_db, "SELECT COUNT(*) FROM operations WHERE kind = 'transfer'") == len(done)
    earned = 6 * 500 + sum(e.points_granted for r in results[8:] for e in r)
    fees = sum(t.fee for t in done)
    assert scalar(pg_db, "SELECT SUM(lifetime_earned) FROM members") == earned
    assert scalar(pg_db, "SELECT SUM(fee) FROM transfers") == fees
    assert scalar(pg_db, "SELECT SUM(available) FROM members") == earned - fees
    assert scalar(pg_db, "SELECT COUNT(*) FROM transfers") == len(done)
    _ok(pg_db)


def test_concurrent_transfers_never_pass_the_daily_limit(pg_db: Database) -> None:
    make_program(pg_db, transfers_enabled=True, transfer_daily_limit=100)
    recipients = [f"r{n}" for n in range(5)]
    enrol(pg_db, "alice", *recipients)
    earn(pg_db, "alice", "o1", 100_000)
    results = run_together(
        [lambda n=n: send(pg_db, "alice", recipients[n % 5], 7, f"t{n}") for n in range(30)]
    )
    sent = [r for r in results if not isinstance(r, BaseException)]
    assert len(sent) == 14  # 98 points
    assert {type(e) for e in _errors(results)} == {TransferLimit}
    assert scalar(pg_db, "SELECT SUM(points) FROM transfers") == 98
    assert _available(pg_db, "alice") == 902
    _ok(pg_db)


@pytest.mark.parametrize(("sender", "recipient"), [("alice", "bob"), ("bob", "alice")])
def test_the_same_transfer_sent_concurrently(pg_db: Database, sender: str, recipient: str) -> None:
    make_program(pg_db, transfers_enabled=True)
    enrol(pg_db, "alice", "bob")  # alice has the lower id: the sender is locked first or second
    earn(pg_db, "alice", "o1", 10_000)
    earn(pg_db, "bob", "o2", 10_000)
    before = row_counts(pg_db)
    # 80 of 100 points: a retry that did not see the first transfer would find too few.
    results = run_together([lambda: send(pg_db, sender, recipient, 80, "t1") for _ in range(10)])
    assert not _errors(results), _errors(results)
    firsts = [r for r in results if not r.replayed]
    assert len(firsts) == 1
    assert all(r == dataclasses.replace(firsts[0], replayed=True) for r in results if r.replayed)
    after = row_counts(pg_db)
    assert (after["operations"] - before["operations"], after["transfers"]) == (1, 1)
    assert (_available(pg_db, sender), _available(pg_db, recipient)) == (20, 180)
    _ok(pg_db)
