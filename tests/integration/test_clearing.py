"""Year-end clearing: each due lot cleared once, at the right instant, on both backends."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from typing import Any

import pytest
from helpers import PROGRAM, earn, enrol, execute, hold, lots_of, make_program, row_counts, scalar

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.errors import ClearingNotDue, InvalidRule
from loyalty.events.backfill import backfill_events
from loyalty.services.clearing import clear_due_year_ends, clear_year_end
from loyalty.services.results import ClearingResult

SECOND = dt.timedelta(seconds=1)
NEVER = {"expiry": None}  # lots that never expire by rolling expiry
MOMENT = dt.datetime(2026, 12, 31, 16, 0, tzinfo=dt.UTC)  # end of 31 Dec 2026 in Shanghai


def assert_clean(db: Database) -> None:
    report = s.verify_ledger(db)
    assert report.ok, [c for c in report.checks if not c.ok]


def clear_entries(db: Database) -> int:
    return int(scalar(db, "SELECT count(*) FROM entries WHERE kind = 'clear'"))


def available(db: Database, member: str = "alice") -> int:
    return s.balance(db, program=PROGRAM, member=member).available


def test_policy_none_says_how_to_enable_it(db: Database) -> None:
    make_program(db)
    with pytest.raises(InvalidRule, match="clearing_policy='all'"):
        clear_year_end(db, program=PROGRAM)
    assert clear_due_year_ends(db) == []
    assert scalar(db, "SELECT count(*) FROM clearings") == 0


def test_policy_all_clears_every_lot_at_the_moment(db: Database, clock: FixedClock) -> None:
    make_program(db, rules=NEVER, clearing_policy="all")
    enrol(db, "alice", "bob")
    earn(db, "alice", "o1", 10_000)
    earn(db, "alice", "o2", 2_000)
    earn(db, "bob", "o3", 5_000)
    hold(db, "bob", "spend", 20)
    s.capture_hold(db, program=PROGRAM, order_id="spend")

    clock.set(MOMENT - SECOND)
    with pytest.raises(ClearingNotDue, match=r"2026-12-31T16:00:00\+00:00") as not_due:
        clear_year_end(db, program=PROGRAM, year=2026)
    assert not_due.value.details["year"] == 2026
    assert clear_entries(db) == 0

    clock.set(MOMENT)
    result = clear_year_end(db, program=PROGRAM)
    assert result == ClearingResult(
        program=PROGRAM,
        year=2026,
        policy="all",
        moment_at=MOMENT,
        cutoff_at=MOMENT,
        lots=3,
        points=100 + 20 + 30,
        status="done",
    )
    assert {lot.expired_at for lot in lots_of(db, "alice") + lots_of(db, "bob")} == {MOMENT}
    assert (available(db, "alice"), available(db, "bob")) == (0, 0)
    assert clear_entries(db) == 3
    items = s.history(db, program=PROGRAM, member="alice").items
    assert (items[0].kind, items[0].points) == ("clear", -120)
    row = scalar(db, "SELECT status || ':' || lots || ':' || points FROM clearings")
    assert row == "done:3:150"
    assert_clean(db)


def test_before_cutoff_keeps_this_years_points(db: Database, clock: FixedClock) -> None:
    cutoff = dt.datetime(2025, 12, 31, 16, 0, tzinfo=dt.UTC)  # 1 January 2026, Shanghai
    clock.set(cutoff - dt.timedelta(days=30))
    make_program(db, rules=NEVER, clearing_policy="before_cutoff", clearing_keep_months=12)
    enrol(db, "alice")
    earn(db, "alice", "old", 10_000)
    clock.set(cutoff - SECOND)
    earn(db, "alice", "last-second", 1_000)
    clock.set(cutoff)
    earn(db, "alice", "first-second", 2_000)
    clock.set(MOMENT)
    result = clear_year_end(db, program=PROGRAM)
    assert (result.cutoff_at, result.lots, result.points) == (cutoff, 2, 110)
    assert [lot.expired_at for lot in lots_of(db, "alice")] == [MOMENT, MOMENT, None]
    assert available(db) == 20
    assert_clean(db)


def test_running_twice_replays_and_writes_nothing(db: Database, clock: FixedClock) -> None:
    make_program(db, rules=NEVER, clearing_policy="all")
    enrol(db, "alice")
    earn(db, "alice", "o1", 10_000)
    clock.set(MOMENT + dt.timedelta(hours=1))
    first = clear_year_end(db, program=PROGRAM)
    counts = row_counts(db)

    again = clear_year_end(db, program=PROGRAM, year=2026)
    assert again.replayed and not first.replayed
    assert again == dataclasses.replace(first, replayed=True)
    assert clear_due_year_ends(db) == []
    assert row_counts(db) == counts
    assert_clean(db)


def test_running_late_leaves_lots_earned_after_the_moment(db: Database, clock: FixedClock) -> None:
    make_program(db, rules=NEVER, clearing_policy="all")
    enrol(db, "alice")
    earn(db, "alice", "before", 10_000)
    clock.set(MOMENT)
    earn(db, "alice", "at-the-moment", 2_000)
    clock.advance(dt.timedelta(days=3))
    earn(db, "alice", "after", 3_000)

    result = clear_year_end(db, program=PROGRAM)
    assert (result.year, result.lots, result.points) == (2026, 1, 100)
    assert [lot.expired_at for lot in lots_of(db, "alice")] == [clock.now(), None, None]
    assert available(db) == 50
    assert_clean(db)


def test_clear_due_year_ends_runs_each_due_program_once(db: Database, clock: FixedClock) -> None:
    make_program(db, rules=NEVER, clearing_policy="all")
    make_program(
        db, "mid-year", rules=NEVER, clearing_policy="all", clearing_month=6, clearing_day=30
    )
    make_program(db, "off", rules=NEVER)
    for program in (PROGRAM, "mid-year", "off"):
        enrol(db, "alice", program=program)
        earn(db, "alice", f"{program}-o1", 10_000, program=program)

    clock.set(MOMENT)
    results = clear_due_year_ends(db)
    # the mid-year program's last moment (end of 30 June 2026) came before it switched
    # clearing on (it was created on 21 November): the job leaves that year alone
    assert [(r.program, r.year, r.lots, r.points) for r in results] == [(PROGRAM, 2026, 1, 100)]
    assert clear_due_year_ends(db) == []
    assert_clean(db)


def test_switching_clearing_on_does_not_clear_past_years(db: Database, clock: FixedClock) -> None:
    make_program(db, rules=NEVER)
    enrol(db, "alice")
    earn(db, "alice", "o1", 10_000)
    clock.advance(dt.timedelta(days=1))
    s.update_program(db, program=PROGRAM, clearing_policy="all", clearing_month=6, clearing_day=30)
    assert clear_due_year_ends(db) == []
    with pytest.raises(ClearingNotDue, match="switched clearing on after its 2026 clearing"):
        clear_year_end(db, program=PROGRAM)
    assert clear_year_end(db, program=PROGRAM, year=2026).lots == 0  # by hand: allowed
    assert available(db) == 100
    clock.set(dt.datetime(2027, 6, 30, 16, tzinfo=dt.UTC))  # end of 30 June 2027 in Shanghai
    assert [(r.year, r.points) for r in clear_due_year_ends(db)] == [(2027, 100)]
    assert_clean(db)


def test_held_points_return_into_the_cleared_lot_and_are_cleared_at_once(
    db: Database, clock: FixedClock
) -> None:
    make_program(db, rules=NEVER, clearing_policy="all")
    enrol(db, "alice")
    earn(db, "alice", "o1", 10_000)
    clock.set(MOMENT - dt.timedelta(minutes=5))
    hold(db, "alice", "h1", 40)
    clock.set(MOMENT)
    result = clear_year_end(db, program=PROGRAM)
    assert (result.lots, result.points) == (1, 60)
    lot = lots_of(db, "alice")[0]
    assert (lot.available, lot.held, lot.expired_at) == (0, 40, MOMENT)
    assert_clean(db)

    assert s.release_hold(db, program=PROGRAM, order_id="h1").status == "released"
    lot = lots_of(db, "alice")[0]
    assert (lot.available, lot.held) == (0, 0)
    items = s.history(db, program=PROGRAM, member="alice").items
    assert [(i.kind, i.available) for i in items[:2]] == [("expire_returned", -40), ("release", 40)]
    assert clear_entries(db) == 1
    assert clear_year_end(db, program=PROGRAM).replayed
    assert_clean(db)


def test_a_lot_ends_once_whichever_comes_first(db: Database, clock: FixedClock) -> None:
    make_program(db, rules={"expiry": {"days": 20}}, clearing_policy="all")
    enrol(db, "alice")
    earn(db, "alice", "expires-first", 10_000)  # expires 11 December
    clock.set(dt.datetime(2026, 12, 20, 10, 0, tzinfo=dt.UTC))
    earn(db, "alice", "cleared-first", 3_000)  # would expire 9 January
    assert s.expire_due(db).items == 1

    clock.set(MOMENT)
    result = clear_year_end(db, program=PROGRAM)
    assert (result.lots, result.points) == (1, 30)
    expired, cleared = lots_of(db, "alice")
    assert (expired.expired_at, cleared.expired_at) == (
        MOMENT - dt.timedelta(days=11, hours=6),
        MOMENT,
    )

    clock.set(dt.datetime(2027, 2, 1, tzinfo=dt.UTC))  # past the cleared lot's expiry
    assert s.expire_due(db).items == 0
    assert scalar(db, "SELECT count(*) FROM entries WHERE kind = 'expire'") == 1
    assert clear_entries(db) == 1
    assert_clean(db)


def test_resumes_after_a_crash_with_exact_totals(db: Database, clock: FixedClock) -> None:
    make_program(db, rules=NEVER, clearing_policy="all")
    enrol(db, "alice", "bob", "carol")
    for n, member in enumerate(("alice", "bob", "carol")):
        earn(db, member, f"o{n}", 1_000 * (n + 1))
    clock.set(MOMENT)

    class Crash(Exception):
        pass

    calls = {"n": 0}
    real_write = db.write

    def crashing_write() -> Any:
        calls["n"] += 1
        if calls["n"] == 3:  # the start, the first batch, then the second batch
            raise Crash()
        return real_write()

    db.write = crashing_write  # type: ignore[method-assign]
    with pytest.raises(Crash):
        clear_year_end(db, program=PROGRAM, batch_size=1)
    db.write = real_write  # type: ignore[method-assign]
    assert scalar(db, "SELECT status || ':' || lots FROM clearings") == "running:1"
    assert clear_entries(db) == 1

    result = clear_year_end(db, program=PROGRAM, batch_size=1)
    assert (result.status, result.lots, result.points, result.replayed) == ("done", 3, 60, False)
    assert clear_entries(db) == 3
    assert_clean(db)


ZONE_CASES = [
    # zone, clearing month and day, months kept, the moment and the cutoff in UTC
    ("Etc/GMT+12", 12, 31, 12, (2027, 1, 1, 12), (2026, 1, 1, 12)),
    ("Pacific/Kiritimati", 12, 31, 12, (2026, 12, 31, 10), (2025, 12, 31, 10)),
    ("Asia/Shanghai", 12, 31, 12, (2026, 12, 31, 16), (2025, 12, 31, 16)),
    # Berlin: a moment in summer time (30 March 00:00 CEST) and a cutoff in winter time
    ("Europe/Berlin", 3, 29, 1, (2026, 3, 29, 22), (2026, 2, 27, 23)),
    # a moment in winter time (26 October 00:00 CET) and a cutoff in summer time
    ("Europe/Berlin", 10, 25, 12, (2026, 10, 25, 23), (2025, 10, 25, 22)),
    ("Europe/Berlin", 10, 24, 6, (2026, 10, 24, 22), (2026, 4, 24, 22)),
]


def _utc(parts: tuple[int, ...]) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=dt.UTC)


@pytest.mark.parametrize(("tz", "month", "day", "keep", "moment", "cutoff"), ZONE_CASES)
def test_moment_and_cutoff_in_every_zone(
    db: Database,
    clock: FixedClock,
    tz: str,
    month: int,
    day: int,
    keep: int,
    moment: tuple[int, ...],
    cutoff: tuple[int, ...],
) -> None:
    moment_at, cutoff_at = _utc(moment), _utc(cutoff)
    clock.set(cutoff_at - dt.timedelta(days=2))
    make_program(
        db,
        timezone=tz,
        rules=NEVER,
        clearing_policy="before_cutoff",
        clearing_month=month,
        clearing_day=day,
        clearing_keep_months=keep,
    )
    enrol(db, "alice")
    clock.set(cutoff_at - SECOND)
    earn(db, "alice", "before-cutoff", 10_000)
    clock.set(cutoff_at)
    earn(db, "alice", "at-cutoff", 2_000)

    clock.set(moment_at - SECOND)
    with pytest.raises(ClearingNotDue):
        clear_year_end(db, program=PROGRAM, year=2026)
    previous = clear_year_end(db, program=PROGRAM, year=2025)  # by hand: nothing that old
    assert (previous.year, previous.lots, previous.status) == (2025, 0, "done")

    clock.set(moment_at)
    result = clear_year_end(db, program=PROGRAM)
    assert (result.year, result.moment_at, result.cutoff_at) == (2026, moment_at, cutoff_at)
    assert (result.lots, result.points) == (1, 100)
    assert [lot.expired_at for lot in lots_of(db, "alice")] == [moment_at, None]
    assert_clean(db)


@pytest.mark.parametrize(("tz", "moment"), [(c[0], c[4]) for c in ZONE_CASES[:3]])
def test_policy_all_at_the_moment_in_every_zone(
    db: Database, clock: FixedClock, tz: str, moment: tuple[int, ...]
) -> None:
    moment_at = _utc(moment)
    make_program(db, timezone=tz, rules=NEVER, clearing_policy="all")
    enrol(db, "alice")
    clock.set(moment_at - SECOND)
    earn(db, "alice", "last-second", 10_000)
    with pytest.raises(ClearingNotDue):
        clear_year_end(db, program=PROGRAM, year=2026)
    assert clear_due_year_ends(db) == []  # 2025's moment came before clearing was on

    clock.set(moment_at)
    earn(db, "alice", "new-year", 2_000)
    [result] = clear_due_year_ends(db)
    assert (result.year, result.moment_at, result.lots, result.points) == (2026, moment_at, 1, 100)
    assert [lot.expired_at for lot in lots_of(db, "alice")] == [moment_at, None]
    assert_clean(db)


def _seed_lots(db: Database, *, members: int, lots: int, at: dt.datetime) -> None:
    """``lots`` lots of 10 points over ``members`` members, each with its earn entry."""
    make_program(db, rules=NEVER, clearing_policy="all")
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
        " INSERT INTO lots (program_id, member_id, operation_id, points, available, earned_at)"
        " SELECT :p, m.id, o.id, 10, 10, :at - (g % 97) * interval '1 hour'"
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


def test_concurrent_clearings_clear_each_lot_once(pg_db: Database, clock: FixedClock) -> None:
    _seed_lots(pg_db, members=500, lots=4_000, at=clock.now())
    assert_clean(pg_db)
    clock.set(MOMENT)

    barrier = threading.Barrier(2)
    results: list[ClearingResult | BaseException] = []

    def clear() -> None:
        barrier.wait(timeout=30)
        try:
            results.append(clear_year_end(pg_db, program=PROGRAM, year=2026, batch_size=200))
        except BaseException as exc:  # the test asserts there are none
            results.append(exc)

    threads = [threading.Thread(target=clear) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert all(isinstance(r, ClearingResult) for r in results), results
    done = [r for r in results if isinstance(r, ClearingResult) and r.status == "done"]
    assert done and all((r.lots, r.points) == (4_000, 40_000) for r in done)
    assert clear_entries(pg_db) == 4_000
    assert scalar(pg_db, "SELECT count(DISTINCT lot_id) FROM entries WHERE kind='clear'") == 4_000
    assert scalar(pg_db, "SELECT count(*) FROM lots WHERE expired_at IS NULL") == 0
    assert scalar(pg_db, "SELECT sum(available) FROM members") == 0
    again = clear_year_end(pg_db, program=PROGRAM)
    assert (again.replayed, again.lots, again.points) == (True, 4_000, 40_000)
    assert_clean(pg_db)
