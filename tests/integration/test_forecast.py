"""The forecast: what will expire or be cleared, when and for whom, and that the sweeps agree."""

from __future__ import annotations

import datetime as dt

import pytest
from helpers import PROGRAM, earn, enrol, hold, make_program, row_counts

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.errors import InvalidAmount, InvalidInput, MemberNotFound, ProgramNotFound
from loyalty.services.clearing import clear_year_end
from loyalty.services.forecast import forecast
from loyalty.services.results import ForecastDay, ForecastItem

START = dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.UTC)
MOMENT = dt.datetime(2026, 12, 31, 16, 0, tzinfo=dt.UTC)  # end of 31 Dec 2026 in Shanghai
DAY = dt.timedelta(days=1)


def assert_clean(db: Database) -> None:
    report = s.verify_ledger(db)
    assert report.ok, [c for c in report.checks if not c.ok]


def brief(items: tuple[ForecastItem, ...]) -> list[tuple[str, dt.datetime, str, int, int]]:
    return [(i.member, i.due_at, i.kind, i.points, i.lots) for i in items]


def test_nothing_to_forecast(db: Database) -> None:
    make_program(db, rules={"expiry": None})
    enrol(db, "alice")
    earn(db, "alice", "o1", 10_000)
    result = forecast(db, program=PROGRAM)
    assert (result.items, result.days, result.points, result.lots) == ((), (), 0, 0)
    assert (result.from_at, result.until_at) == (START, START + 90 * DAY)


def test_rolling_expiry_per_member_instant_and_local_date(db: Database, clock: FixedClock) -> None:
    make_program(db, rules={"expiry": {"days": 10}})
    enrol(db, "alice", "bob")
    earn(db, "alice", "a1", 10_000)
    earn(db, "alice", "a2", 2_000)  # the same instant: one row with two lots
    clock.advance(dt.timedelta(hours=6, minutes=30))  # 16:30 UTC is 00:30 the next day local
    earn(db, "bob", "b1", 5_000)
    clock.advance(2 * DAY)
    earn(db, "alice", "a3", 3_000)
    counts = row_counts(db)

    result = forecast(db, program=PROGRAM, days=9)
    assert brief(result.items) == [
        ("alice", START + 10 * DAY, "expire", 120, 2),
        ("bob", START + 10 * DAY + dt.timedelta(hours=6, minutes=30), "expire", 50, 1),
    ]
    assert result.days == (
        ForecastDay("2026-12-01", expiring=120, clearing=0, lots=2),
        ForecastDay("2026-12-02", expiring=50, clearing=0, lots=1),
    )
    assert (result.points, result.lots) == (170, 3)
    assert forecast(db, program=PROGRAM, days=10).points == 200
    assert row_counts(db) == counts  # a forecast writes nothing

    clock.set(result.until_at)
    swept = s.expire_due(db)
    assert (swept.items, swept.points) == (result.lots, result.points)
    assert_clean(db)


def test_one_member_only(db: Database, clock: FixedClock) -> None:
    make_program(db, rules={"expiry": {"days": 10}})
    enrol(db, "alice", "bob")
    earn(db, "alice", "a1", 10_000)
    earn(db, "bob", "b1", 5_000)
    result = forecast(db, program=PROGRAM, member="bob", days=30)
    assert brief(result.items) == [("bob", START + 10 * DAY, "expire", 50, 1)]
    with pytest.raises(MemberNotFound):
        forecast(db, program=PROGRAM, member="carol")
    with pytest.raises(ProgramNotFound):
        forecast(db, program="nope")
    with pytest.raises(InvalidAmount):
        forecast(db, program=PROGRAM, days=-1)
    with pytest.raises(InvalidInput, match="at most"):
        forecast(db, program=PROGRAM, days=100_000)


def test_overdue_expiry_is_due_now_and_held_points_are_in_flight(
    db: Database, clock: FixedClock
) -> None:
    make_program(db, rules={"expiry": {"days": 10}})
    enrol(db, "alice")
    earn(db, "alice", "a1", 10_000)
    clock.advance(DAY)
    earn(db, "alice", "a2", 5_000)
    clock.advance(9 * DAY - dt.timedelta(minutes=5))
    hold(db, "alice", "h1", 30)
    clock.advance(dt.timedelta(hours=1))  # a1 lapsed 55 minutes ago; the sweep has not run
    result = forecast(db, program=PROGRAM, days=7)
    assert [(i.due_at, i.points, i.in_flight) for i in result.items] == [
        (clock.now(), 70, 30),
        (START + 11 * DAY, 50, 0),
    ]
    assert result.days == (ForecastDay("2026-12-01", 70, 0, 1), ForecastDay("2026-12-02", 50, 0, 1))

    clock.set(result.until_at)
    swept = s.expire_due(db)
    assert (swept.items, swept.points) == (2, 120)
    assert_clean(db)


def test_expiry_and_clearing_never_count_a_lot_twice(db: Database, clock: FixedClock) -> None:
    make_program(db, rules={"expiry": {"days": 40}}, clearing_policy="all")
    enrol(db, "alice", "bob")
    earn(db, "alice", "a1", 10_000)  # expires 31 Dec 10:00 UTC, before the moment
    clock.advance(DAY)
    earn(db, "alice", "a2", 3_000)  # expires 1 Jan: cleared at the moment first
    earn(db, "bob", "b1", 5_000)
    hold(db, "bob", "h1", 10)
    clock.advance(dt.timedelta(hours=1))

    result = forecast(db, program=PROGRAM, days=60)
    assert brief(result.items) == [
        ("alice", START + 40 * DAY, "expire", 100, 1),
        ("alice", MOMENT, "clear", 30, 1),
        ("bob", MOMENT, "clear", 40, 1),
    ]
    assert result.items[2].in_flight == 10
    # per last usable day: the clearing at the end of 31 December leaves 31 December usable
    assert result.days == (ForecastDay("2026-12-31", expiring=100, clearing=70, lots=3),)
    assert (result.points, result.lots) == (170, 3)

    # the sweeps, each run at its instant, do what the forecast said
    clock.set(START + 40 * DAY)
    expired = s.expire_due(db)
    clock.set(MOMENT)
    cleared = clear_year_end(db, program=PROGRAM)
    clock.set(result.until_at)
    late = s.expire_due(db)
    assert (expired.items, expired.points) == (1, 100)
    assert (cleared.lots, cleared.points) == (2, 70)
    assert (late.items, late.points) == (0, 0)
    assert forecast(db, program=PROGRAM, days=60).items == ()
    assert_clean(db)


def test_forecast_matches_the_sweeps_run_at_the_horizon(db: Database, clock: FixedClock) -> None:
    make_program(db, rules={"expiry": {"days": 30}}, clearing_policy="all")
    members = ("alice", "bob", "carol", "dave")
    enrol(db, *members)
    for n in range(24):
        earn(db, members[n % 4], f"o{n}", 1_000 * (n + 1))
        clock.advance(dt.timedelta(hours=41))
    hold(db, "carol", "h1", 25)
    result = forecast(db, program=PROGRAM, days=45)
    assert {i.kind for i in result.items} == {"expire", "clear"}
    assert sum(d.points for d in result.days) == result.points

    clock.set(result.until_at)
    swept = s.expire_due(db)
    cleared = clear_year_end(db, program=PROGRAM)
    assert swept.items + cleared.lots == result.lots
    assert swept.points + cleared.points == result.points
    assert_clean(db)


def test_a_passed_clearing_not_yet_done_is_due_now(db: Database, clock: FixedClock) -> None:
    make_program(db, rules={"expiry": None}, clearing_policy="all")
    enrol(db, "alice")
    earn(db, "alice", "a1", 10_000)
    clock.set(MOMENT + dt.timedelta(hours=2))
    earn(db, "alice", "a2", 4_000)  # after the moment: kept
    result = forecast(db, program=PROGRAM, days=30)
    assert brief(result.items) == [("alice", clock.now(), "clear", 100, 1)]

    assert clear_year_end(db, program=PROGRAM).points == 100
    assert forecast(db, program=PROGRAM, days=30).items == ()
    assert_clean(db)


def test_before_cutoff_over_two_year_ends(db: Database, clock: FixedClock) -> None:
    make_program(
        db, rules={"expiry": None}, clearing_policy="before_cutoff", clearing_keep_months=12
    )
    enrol(db, "alice")
    earn(db, "alice", "a1", 10_000)
    next_moment = dt.datetime(2027, 12, 31, 16, 0, tzinfo=dt.UTC)
    # kept at the end of 2026 (earned in 2026), cleared at the end of 2027
    assert forecast(db, program=PROGRAM, days=365).items == ()
    result = forecast(db, program=PROGRAM, days=800)
    assert brief(result.items) == [("alice", next_moment, "clear", 100, 1)]
    assert result.days == (ForecastDay("2027-12-31", 0, 100, 1),)  # last usable day

    clock.set(MOMENT)
    assert clear_year_end(db, program=PROGRAM).lots == 0
    clock.set(next_moment)
    assert clear_year_end(db, program=PROGRAM).points == 100
    assert_clean(db)
