"""Rolling expiry: the sweep expires each due lot exactly once, in batches, on both backends."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from helpers import PROGRAM, earn, enrol, execute, hold, local, lots_of, make_program, scalar

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.errors import InsufficientPoints
from loyalty.events.backfill import backfill_events
from loyalty.services.results import SweepResult

EXPIRES = dt.datetime(2027, 2, 21, 10, 0, tzinfo=dt.UTC)  # three months after the test clock


def available(db: Database, member: str = "alice") -> int:
    return s.balance(db, program=PROGRAM, member=member).available


def stored_available(db: Database, member: str = "alice") -> int:
    return int(scalar(db, "SELECT available FROM members WHERE external_id = :m", m=member))


def expire_entries(db: Database) -> int:
    return int(scalar(db, "SELECT count(*) FROM entries WHERE kind = 'expire'"))


def assert_clean(db: Database) -> None:
    report = s.verify_ledger(db)
    assert report.ok, [c for c in report.checks if not c.ok]


def test_lot_expires_exactly_at_expires_at(db: Database, clock: FixedClock) -> None:
    make_program(db)
    enrol(db, "alice")
    result = earn(db, "alice", "o1", 10_000)
    assert result.expires_at == EXPIRES
    assert lots_of(db, "alice")[0].expires_at == EXPIRES

    clock.set(EXPIRES - dt.timedelta(seconds=1))
    assert s.expire_due(db).items == 0
    assert available(db) == 100
    assert lots_of(db, "alice")[0].expired_at is None

    clock.set(EXPIRES)
    # Before the sweep runs, the balance and a hold already leave the lapsed lot out.
    assert available(db) == 0
    assert stored_available(db) == 100
    with pytest.raises(InsufficientPoints):
        hold(db, "alice", "h1", 10)

    swept = s.expire_due(db)
    assert (swept.items, swept.points, swept.batches) == (1, 100, 1)
    lot = lots_of(db, "alice")[0]
    assert (lot.available, lot.expired_at) == (0, EXPIRES)
    assert stored_available(db) == 0
    assert available(db) == 0
    kinds = [i.kind for i in s.history(db, program=PROGRAM, member="alice").items]
    assert kinds[0] == "expire"
    assert s.history(db, program=PROGRAM, member="alice").items[0].points == -100
    assert_clean(db)


def test_month_end_policy(db: Database, clock: FixedClock) -> None:
    make_program(db, rules={"expiry": {"months": 1, "month_end": True}})
    enrol(db, "alice")
    result = earn(db, "alice", "o1", 5_000)
    end = local(2027, 1, 1)  # earned 2026-11-21 local, +1 month, end of December local
    assert result.expires_at == end

    clock.set(end - dt.timedelta(microseconds=1))
    assert s.expire_due(db).items == 0
    clock.set(end)
    assert s.expire_due(db).points == 50
    assert lots_of(db, "alice")[0].expired_at == end
    assert_clean(db)


def test_running_twice_writes_nothing_more(db: Database, clock: FixedClock) -> None:
    make_program(db)
    enrol(db, "alice", "bob")
    earn(db, "alice", "o1", 10_000)
    earn(db, "bob", "o2", 2_000)
    clock.set(EXPIRES + dt.timedelta(days=1))
    assert s.expire_due(db).items == 2
    entries = scalar(db, "SELECT count(*) FROM entries")
    operations = scalar(db, "SELECT count(*) FROM operations")

    again = s.expire_due(db)
    assert (again.items, again.points, again.batches) == (0, 0, 0)
    clock.advance(dt.timedelta(days=30))
    assert s.expire_due(db).items == 0
    assert scalar(db, "SELECT count(*) FROM entries") == entries
    assert scalar(db, "SELECT count(*) FROM operations") == operations
    assert expire_entries(db) == 2
    assert_clean(db)


def _seven_lots(db: Database, clock: FixedClock) -> None:
    make_program(db)
    enrol(db, "alice", "bob", "carol")
    for n in range(7):
        earn(db, ("alice", "bob", "carol")[n % 3], f"o{n}", 1_000 * (n + 1))
        clock.advance(dt.timedelta(minutes=1))
    # one lot partly spent and one fully spent: all seven still get exactly one expiry entry
    hold(db, "alice", "spend-a", 15)
    s.capture_hold(db, program=PROGRAM, order_id="spend-a")
    hold(db, "bob", "spend-b", 70)
    s.capture_hold(db, program=PROGRAM, order_id="spend-b")
    clock.set(EXPIRES + dt.timedelta(hours=1))


def test_partial_batches_give_the_same_totals(db: Database, clock: FixedClock) -> None:
    _seven_lots(db, clock)
    total = 10 * (1 + 2 + 3 + 4 + 5 + 6 + 7) - 15 - 70
    swept = s.expire_due(db, batch_size=2)
    assert swept.items == 7
    assert swept.points == total
    assert swept.batches >= 2  # a batch takes every due lot of the members it locks
    assert expire_entries(db) == 7
    assert scalar(db, "SELECT count(*) FROM lots WHERE expired_at IS NULL") == 0
    assert scalar(db, "SELECT sum(available) FROM members") == 0
    assert s.expire_due(db, batch_size=2).items == 0
    assert_clean(db)


def test_one_batch_gives_the_same_totals(db: Database, clock: FixedClock) -> None:
    _seven_lots(db, clock)
    swept = s.expire_due(db)
    assert (swept.items, swept.points, swept.batches) == (7, 10 * 28 - 85, 1)
    assert expire_entries(db) == 7
    assert_clean(db)


def test_resumes_after_a_crash_mid_sweep(db: Database, clock: FixedClock) -> None:
    _seven_lots(db, clock)

    class Crash(Exception):
        pass

    calls = {"n": 0}
    real_write = db.write

    def crashing_write() -> Any:
        calls["n"] += 1
        if calls["n"] == 2:  # the second batch
            raise Crash()
        return real_write()

    db.write = crashing_write  # type: ignore[method-assign]
    try:
        s.expire_due(db, batch_size=2)
    except Crash:
        pass
    finally:
        db.write = real_write  # type: ignore[method-assign]
    done = expire_entries(db)
    assert 0 < done < 7
    assert s.expire_due(db, batch_size=2).items == 7 - done
    assert expire_entries(db) == 7
    assert_clean(db)


def test_pending_points_of_a_due_lot_expire_too(db: Database, clock: FixedClock) -> None:
    make_program(db, rules={"pending_days": 30, "expiry": {"days": 10}})
    enrol(db, "alice")
    earn(db, "alice", "o1", 3_000)
    clock.advance(dt.timedelta(days=10))
    swept = s.expire_due(db)
    assert (swept.items, swept.points) == (1, 30)
    lot = lots_of(db, "alice")[0]
    assert (lot.available, lot.pending) == (0, 0)
    clock.advance(dt.timedelta(days=30))
    assert s.mature_pending(db).items == 0
    assert s.balance(db, program=PROGRAM, member="alice").pending == 0
    assert_clean(db)


def _held_on_expiring_lot(db: Database, clock: FixedClock) -> SweepResult:
    make_program(db)
    enrol(db, "alice")
    earn(db, "alice", "o1", 10_000)
    clock.set(EXPIRES - dt.timedelta(minutes=5))
    hold(db, "alice", "h1", 40)
    clock.set(EXPIRES)
    return s.expire_due(db)


def test_held_points_on_an_expired_lot_can_be_captured(db: Database, clock: FixedClock) -> None:
    swept = _held_on_expiring_lot(db, clock)
    assert (swept.items, swept.points) == (1, 60)
    lot = lots_of(db, "alice")[0]
    assert (lot.available, lot.held) == (0, 40)
    assert_clean(db)

    assert s.capture_hold(db, program=PROGRAM, order_id="h1").status == "captured"
    bal = s.balance(db, program=PROGRAM, member="alice")
    assert (bal.available, bal.held) == (0, 0)
    assert_clean(db)


def test_release_into_an_expired_lot_expires_the_points_again(
    db: Database, clock: FixedClock
) -> None:
    _held_on_expiring_lot(db, clock)
    assert s.release_hold(db, program=PROGRAM, order_id="h1").status == "released"
    lot = lots_of(db, "alice")[0]
    assert (lot.available, lot.held) == (0, 0)
    assert stored_available(db) == 0
    items = s.history(db, program=PROGRAM, member="alice").items
    assert [(i.kind, i.available) for i in items[:2]] == [("expire_returned", -40), ("release", 40)]
    assert items[0].id == items[1].id  # one operation
    assert expire_entries(db) == 1
    assert s.expire_due(db).items == 0
    assert_clean(db)


def test_timed_out_hold_on_an_expired_lot_expires_the_points_again(
    db: Database, clock: FixedClock
) -> None:
    _held_on_expiring_lot(db, clock)
    clock.advance(dt.timedelta(minutes=15))
    assert s.expire_holds(db).items == 1
    assert stored_available(db) == 0
    assert scalar(db, "SELECT count(*) FROM entries WHERE kind = 'expire_returned'") == 1
    assert_clean(db)


def test_release_into_a_lapsed_but_unswept_lot_waits_for_the_sweep(
    db: Database, clock: FixedClock
) -> None:
    make_program(db)
    enrol(db, "alice")
    earn(db, "alice", "o1", 10_000)
    clock.set(EXPIRES - dt.timedelta(minutes=5))
    hold(db, "alice", "h1", 40)
    clock.set(EXPIRES)
    s.release_hold(db, program=PROGRAM, order_id="h1")
    assert stored_available(db) == 100
    assert available(db) == 0  # lapsed, not yet swept
    assert s.expire_due(db).points == 100
    assert stored_available(db) == 0
    assert_clean(db)


def _seed_lots(db: Database, *, members: int, lots: int, at: dt.datetime) -> None:
    """``lots`` lots of 10 points over ``members`` members, each with its earn entry."""
    make_program(db)
    program_id = scalar(db, "SELECT id FROM programs WHERE code = :p", p=PROGRAM)
    params: dict[str, Any] = {"p": program_id, "at": at, "n": members, "l": lots}
    execute(
        db,
        "INSERT INTO members (program_id, external_id, status, created_at)"
        " SELECT :p, 'm' || g, 'active', :at FROM generate_series(1, :n) g",
        **params,
    )
    execute(
        db,
        "INSERT INTO operations (program_id, key, kind, member_id, request_hash, result,"
        " created_at) VALUES (:p, 'seed', 'earn', NULL, '', '{}', :at)",
        **params,
    )
    execute(
        db,
        "WITH m AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM members),"
        " o AS (SELECT id FROM operations WHERE key = 'seed')"
        " INSERT INTO lots (program_id, member_id, operation_id, points, available,"
        " earned_at, expires_at)"
        " SELECT :p, m.id, o.id, 10, 10, :at, :at + (g % 97) * interval '1 second'"
        " FROM generate_series(0, :l - 1) g JOIN m ON m.k = g % :n CROSS JOIN o",
        **params,
    )
    execute(
        db,
        "INSERT INTO entries (program_id, member_id, operation_id, lot_id, kind,"
        " available_delta, created_at)"
        " SELECT program_id, member_id, operation_id, id, 'earn', points, :at FROM lots",
        **params,
    )
    execute(
        db,
        "UPDATE members SET available = t.s, lifetime_earned = t.s"
        " FROM (SELECT member_id, sum(points) AS s FROM lots GROUP BY member_id) t"
        " WHERE t.member_id = members.id",
    )
    with db.engine.begin() as conn:
        backfill_events(conn)


def test_concurrent_sweeps_expire_each_lot_once(pg_db: Database, clock: FixedClock) -> None:
    start = clock.now()
    _seed_lots(pg_db, members=700, lots=5_000, at=start - dt.timedelta(days=100))
    assert_clean(pg_db)
    clock.set(start)

    barrier = threading.Barrier(2)
    results: list[SweepResult | BaseException] = []

    def sweep() -> None:
        barrier.wait(timeout=30)
        try:
            results.append(s.expire_due(pg_db, batch_size=250))
        except BaseException as exc:  # the test asserts there are none
            results.append(exc)

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert all(isinstance(r, SweepResult) for r in results), results
    swept = [r for r in results if isinstance(r, SweepResult)]
    assert len(swept) == 2
    assert sum(r.items for r in swept) == 5_000
    assert sum(r.points for r in swept) == 50_000
    assert expire_entries(pg_db) == 5_000
    assert scalar(pg_db, "SELECT count(DISTINCT lot_id) FROM entries WHERE kind='expire'") == 5_000
    assert scalar(pg_db, "SELECT count(*) FROM lots WHERE expired_at IS NULL") == 0
    assert scalar(pg_db, "SELECT sum(available) FROM members") == 0
    assert s.expire_due(pg_db).items == 0
    assert_clean(pg_db)


def test_a_sweep_sees_checkouts_that_commit_while_it_runs(
    pg_db: Database, clock: FixedClock
) -> None:
    """Captures and releases on due lots race the sweep: every point is accounted for once.

    A release puts held points back into a lot that lapsed meanwhile, a capture spends them;
    either may commit between the start of a sweep batch and the moment it locks the member.
    The batch must take out what each lot holds as last committed, or the entries and the
    lots disagree (``verify_ledger``) and points are minted or lost.
    """
    start = clock.now()
    _seed_lots(pg_db, members=60, lots=3_000, at=start + dt.timedelta(seconds=60))
    orders = [f"m{n}" for n in range(1, 61)]
    for member in orders:
        hold(pg_db, member, f"h-{member}", 120)  # 12 lots of 10 points each, soonest first
    clock.set(start + dt.timedelta(seconds=200))  # every lot has lapsed; no hold has timed out
    held = 60 * 120
    barrier = threading.Barrier(5)
    results: dict[str, Any] = {}

    def sweep() -> None:
        barrier.wait(timeout=30)
        results["sweep"] = s.expire_due(pg_db, batch_size=300)

    def settle(name: str, members: list[str], settle_hold: Any) -> None:
        barrier.wait(timeout=30)
        results[name] = [settle_hold(pg_db, program=PROGRAM, order_id=f"h-{m}") for m in members]

    halves = {"captured": orders[::2], "released": orders[1::2]}
    threads = [threading.Thread(target=sweep)] + [
        threading.Thread(target=settle, args=(f"{name}{k}", halves[name][k::2], settle_hold))
        for name, settle_hold in (("captured", s.capture_hold), ("released", s.release_hold))
        for k in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    for name in ("captured", "released"):
        assert {r.status for k in range(2) for r in results[f"{name}{k}"]} == {name}
    assert_clean(pg_db)
    s.expire_due(pg_db)  # what a release returned after the last batch had passed its lot
    assert_clean(pg_db)
    assert expire_entries(pg_db) == 3_000
    assert scalar(pg_db, "SELECT count(*) FROM lots WHERE expired_at IS NULL") == 0
    assert scalar(pg_db, "SELECT sum(available + held) FROM members") == 0
    expired = -scalar(pg_db, "SELECT sum(available_delta) FROM entries WHERE kind LIKE 'expire%'")
    assert expired == 30_000 - held // 2  # all but the captured points
