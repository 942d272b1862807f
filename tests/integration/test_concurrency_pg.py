"""Real concurrency on PostgreSQL: threads that start together against one member or budget."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from helpers import PROGRAM, earn, enrol, hold, lots_of, make_program, row_counts, scalar

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.errors import AlreadyExists, InsufficientPoints

T = TypeVar("T")


def run_together(calls: Sequence[Callable[[], T]]) -> list[T | BaseException]:
    """Run every call in its own thread, all released at once; results or exceptions, in order."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T | BaseException:
        barrier.wait(timeout=30)
        try:
            return call()
        except Exception as exc:  # the test inspects what each call raised
            return exc

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls, timeout=120))


def _ok(results: Sequence[Any]) -> list[Any]:
    return [r for r in results if not isinstance(r, BaseException)]


def _errors(results: Sequence[Any]) -> list[BaseException]:
    return [r for r in results if isinstance(r, BaseException)]


def test_concurrent_holds_never_overspend(pg_db: Database, clock: FixedClock) -> None:
    make_program(pg_db)
    enrol(pg_db, "alice")
    for i in range(4):  # 100 points in four lots with different expiry
        earn(pg_db, "alice", f"o{i}", 2_500)
        clock.advance(dt.timedelta(minutes=1))
    assert s.balance(pg_db, program=PROGRAM, member="alice").available == 100

    def hold_and_capture(n: int) -> Callable[[], Any]:
        def call() -> Any:
            hold(pg_db, "alice", f"h{n}", 10, total=10_000)
            return s.capture_hold(pg_db, program=PROGRAM, order_id=f"h{n}")

        return call

    results = run_together([hold_and_capture(n) for n in range(50)])
    captured = _ok(results)
    errors = _errors(results)
    assert len(captured) == 10
    assert all(r.status == "captured" and r.points == 10 for r in captured)
    assert len(errors) == 40
    assert all(type(e) is InsufficientPoints for e in errors), {type(e) for e in errors}

    lots = lots_of(pg_db, "alice")
    assert all(lot.available == 0 and lot.held == 0 for lot in lots)
    b = s.balance(pg_db, program=PROGRAM, member="alice")
    assert (b.available, b.held, b.lifetime_earned) == (0, 0, 100)
    assert scalar(pg_db, "SELECT COUNT(*) FROM holds") == 10
    assert scalar(pg_db, "SELECT SUM(points) FROM holds WHERE status = 'captured'") == 100
    report = s.verify_ledger(pg_db)
    assert report.ok, [c for c in report.checks if not c.ok]


def test_concurrent_earns_never_pass_the_member_daily_cap(pg_db: Database) -> None:
    make_program(pg_db, rules={"caps": {"member_daily": 250}})
    enrol(pg_db, "alice")
    results = run_together(
        [lambda n=n: earn(pg_db, "alice", f"o{n}", 3_000) for n in range(20)]  # 30 points each
    )
    assert not _errors(results), _errors(results)
    granted = sorted((r.points_granted for r in results), reverse=True)
    assert sum(granted) == 250
    assert granted == [30] * 8 + [10] + [0] * 11
    assert {r.capped_by for r in results if r.points_granted < 30} == {"member_daily"}
    b = s.balance(pg_db, program=PROGRAM, member="alice")
    assert (b.available, b.lifetime_earned) == (250, 250)
    assert scalar(pg_db, "SELECT cap_day_points FROM members") == 250
    report = s.verify_ledger(pg_db)
    assert report.ok, [c for c in report.checks if not c.ok]


def test_concurrent_earns_never_pass_the_program_budget(pg_db: Database) -> None:
    make_program(pg_db, rules={"caps": {"program_daily": 500}})
    members = [f"m{n:02}" for n in range(20)]
    enrol(pg_db, *members)
    results = run_together(
        [lambda m=m: earn(pg_db, m, f"order-{m}", 4_000) for m in members]  # 40 points each
    )
    assert not _errors(results), _errors(results)
    granted = sorted((r.points_granted for r in results), reverse=True)
    assert sum(granted) == 500
    assert granted == [40] * 12 + [20] + [0] * 7
    assert {r.capped_by for r in results if r.points_granted < 40} == {"program_daily"}
    assert scalar(pg_db, "SELECT issued FROM program_issuance") == 500
    assert scalar(pg_db, "SELECT SUM(available) FROM members") == 500
    report = s.verify_ledger(pg_db)
    assert report.ok, [c for c in report.checks if not c.ok]


def _one_operation(results: Sequence[Any], db: Database, key: str) -> None:
    assert not _errors(results), _errors(results)
    firsts = [r for r in results if not r.replayed]
    assert len(firsts) == 1
    expected = dataclasses.replace(firsts[0], replayed=True)
    assert all(r == expected for r in results if r.replayed)
    assert scalar(db, "SELECT COUNT(*) FROM operations WHERE key = :k", k=key) == 1


def test_the_same_earn_key_sent_concurrently(pg_db: Database) -> None:
    make_program(pg_db, rules={"caps": {"program_daily": 1_000}})
    enrol(pg_db, "alice")
    before = row_counts(pg_db)
    results = run_together(
        [
            lambda: earn(pg_db, "alice", "o1", 12_345, idempotency_key="checkout-1")
            for _ in range(10)
        ]
    )
    _one_operation(results, pg_db, "checkout-1")
    assert results[0].points_granted == 123
    after = row_counts(pg_db)
    assert after["lots"] - before["lots"] == 1
    assert after["earnings"] - before["earnings"] == 1
    assert after["entries"] - before["entries"] == 1
    assert scalar(pg_db, "SELECT issued FROM program_issuance") == 123
    assert s.balance(pg_db, program=PROGRAM, member="alice").available == 123
    assert s.verify_ledger(pg_db).ok


def test_the_same_hold_key_sent_concurrently(pg_db: Database) -> None:
    make_program(pg_db)
    enrol(pg_db, "alice")
    earn(pg_db, "alice", "o1", 10_000)
    # 80 of 100 points: a retry that did not see the first hold would find too few points.
    results = run_together([lambda: hold(pg_db, "alice", "h1", 80) for _ in range(10)])
    _one_operation(results, pg_db, "hold:h1")
    b = s.balance(pg_db, program=PROGRAM, member="alice")
    assert (b.available, b.held) == (20, 80)

    results = run_together(
        [lambda: s.capture_hold(pg_db, program=PROGRAM, order_id="h1") for _ in range(10)]
    )
    _one_operation(results, pg_db, "capture:h1")
    b = s.balance(pg_db, program=PROGRAM, member="alice")
    assert (b.available, b.held) == (20, 0)
    assert s.verify_ledger(pg_db).ok


def test_the_same_order_under_different_keys_concurrently(pg_db: Database) -> None:
    make_program(pg_db)
    enrol(pg_db, "alice")
    earned = run_together(
        [
            lambda n=n: earn(pg_db, "alice", "o1", 10_000, idempotency_key=f"earn-{n}")
            for n in range(10)
        ]
    )
    assert len(_ok(earned)) == 1
    assert {type(e) for e in _errors(earned)} == {AlreadyExists}
    held = run_together(
        [lambda n=n: hold(pg_db, "alice", "h1", 10, idempotency_key=f"hold-{n}") for n in range(10)]
    )
    assert len(_ok(held)) == 1
    assert {type(e) for e in _errors(held)} == {AlreadyExists}
    assert s.verify_ledger(pg_db).ok


# --- first-time writes racing -------------------------------------------------------------------


def test_concurrent_enrolments_of_one_member_answer_the_member(pg_db: Database) -> None:
    make_program(pg_db)
    same = run_together(
        [
            lambda: s.enrol_member(
                pg_db, program=PROGRAM, external_id="alice", stripe_customer_id="cus_A"
            )
            for _ in range(10)
        ]
    )
    assert not _errors(same), _errors(same)
    assert len(set(same)) == 1 and same[0].external_id == "alice"

    emails = ["b1@example.com", "b2@example.com"]
    mixed = run_together(
        [
            lambda n=n: s.enrol_member(
                pg_db, program=PROGRAM, external_id="bob", email=emails[n % 2]
            )
            for n in range(10)
        ]
    )
    enrolled = _ok(mixed)
    assert len(set(enrolled)) == 1  # whichever details came first, the others get AlreadyExists
    assert {type(e) for e in _errors(mixed)} <= {AlreadyExists}
    assert len(enrolled) + len(_errors(mixed)) == 10 and len(_errors(mixed)) >= 1
    assert scalar(pg_db, "SELECT COUNT(*) FROM members") == 2


def _one_holder(results: Sequence[Any]) -> None:
    """One member got the Stripe customer; every other call was told which one."""
    (holder,) = _ok(results)
    errors = _errors(results)
    assert len(errors) == len(results) - 1
    assert all(
        isinstance(e, AlreadyExists) and e.details["member"] == holder.external_id for e in errors
    ), errors


def test_two_members_racing_for_one_stripe_customer(pg_db: Database) -> None:
    make_program(pg_db)
    results = run_together(
        [
            lambda n=n: s.enrol_member(
                pg_db, program=PROGRAM, external_id=f"m{n}", stripe_customer_id="cus_shared"
            )
            for n in range(10)
        ]
    )
    _one_holder(results)
    assert scalar(pg_db, "SELECT COUNT(*) FROM members") == 1

    enrol(pg_db, *[f"n{n}" for n in range(10)])
    linked = run_together(
        [
            lambda n=n: s.link_stripe_customer(
                pg_db, program=PROGRAM, external_id=f"n{n}", stripe_customer_id="cus_linked"
            )
            for n in range(10)
        ]
    )
    _one_holder(linked)
    assert (
        scalar(pg_db, "SELECT COUNT(*) FROM members WHERE stripe_customer_id = 'cus_linked'") == 1
    )


def test_concurrent_creations_of_one_program(pg_db: Database) -> None:
    results = run_together(
        [
            lambda: s.create_program(pg_db, code="race", name="Race", currency="CNY")
            for _ in range(10)
        ]
    )
    assert len(_ok(results)) == 1
    errors = _errors(results)
    assert len(errors) == 9 and {type(e) for e in errors} == {AlreadyExists}, errors
    assert scalar(pg_db, "SELECT COUNT(*) FROM programs") == 1
    assert scalar(pg_db, "SELECT COUNT(*) FROM rule_versions") == 1


# --- verify while the shop is open --------------------------------------------------------------


def test_verify_sees_one_moment_while_points_are_earned_held_and_captured(
    pg_db: Database,
) -> None:
    """Writers commit all the time; every report must describe one moment of the ledger.

    Every write here makes exactly one operation and one entry (an earn makes a lot; a hold
    and its capture touch the member's one lot), so at any one moment entries equal
    operations. Counted in one snapshot they do; counted statement by statement while the
    writers commit, they do not.
    """
    make_program(pg_db)
    earners, spenders = [f"e{n}" for n in range(4)], [f"h{n}" for n in range(2)]
    enrol(pg_db, *earners, *spenders)
    for member in spenders:
        earn(pg_db, member, f"{member}-stock", 10_000_000)  # one lot, 100,000 points
    stop = threading.Event()

    def earning(member: str) -> None:
        for n in itertools.count():
            if stop.is_set():
                return
            earn(pg_db, member, f"{member}-{n}", 1_000)

    def holding(member: str) -> None:
        for n in itertools.count():
            if stop.is_set():
                return
            hold(pg_db, member, f"{member}-hold-{n}", 1)
            s.capture_hold(pg_db, program=PROGRAM, order_id=f"{member}-hold-{n}")

    writers = [threading.Thread(target=earning, args=(m,)) for m in earners]
    writers += [threading.Thread(target=holding, args=(m,)) for m in spenders]
    for writer in writers:
        writer.start()
    reports = []
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline and len(reports) < 60:
            reports.append(s.verify_ledger(pg_db))
    finally:
        stop.set()
        for writer in writers:
            writer.join(timeout=30)
    assert len(reports) >= 10
    bad = [[c.name for c in r.checks if not c.ok] for r in reports if not r.ok]
    assert not bad, bad
    moments = [(r.counts["entries"], r.counts["operations"]) for r in reports]
    torn = [m for m in moments if m[0] != m[1]]
    assert not torn, f"{len(torn)} of {len(reports)} reports mixed moments: {torn[:5]}"
    assert moments[-1][0] > moments[0][0]  # the writers did write meanwhile
    final = s.verify_ledger(pg_db)
    assert final.ok and final.counts["entries"] == final.counts["operations"]
