"""Tier periods and windows in the program's time zone, on both databases: UTC-12, UTC+14,
Shanghai, and zones whose clocks change (New York, Berlin, and Santiago, where the day of
the spring change starts at 01:00). A period ends at the local midnight; the evaluation is
due then and not a moment before; an earn a minute before that midnight counts for it, a
minute after does not (it counts for the next)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from helpers import PROGRAM, earn, enrol, make_program

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock

MINUTE = dt.timedelta(minutes=1)
LADDER: list[dict[str, Any]] = [
    {"code": "member", "threshold": 0},
    {"code": "silver", "threshold": 1_000},
    {"code": "gold", "threshold": 5_000},
]

# (zone, the local day the member is put at silver, period months, the local day it ends)
PERIODS = [
    ("Etc/GMT+12", dt.date(2026, 5, 31), 1, dt.date(2026, 6, 30)),  # UTC-12, clamped
    ("Pacific/Kiritimati", dt.date(2026, 12, 31), 1, dt.date(2027, 1, 31)),  # UTC+14
    ("Asia/Shanghai", dt.date(2026, 1, 31), 1, dt.date(2026, 2, 28)),
    ("America/New_York", dt.date(2026, 2, 8), 1, dt.date(2026, 3, 8)),  # clocks go forward
    ("America/New_York", dt.date(2026, 10, 1), 1, dt.date(2026, 11, 1)),  # and back
    ("Europe/Berlin", dt.date(2026, 1, 29), 2, dt.date(2026, 3, 29)),
    ("Europe/Berlin", dt.date(2026, 9, 25), 1, dt.date(2026, 10, 25)),
    ("America/Santiago", dt.date(2026, 8, 6), 1, dt.date(2026, 9, 6)),  # no 00:00 that day
]
IDS = [f"{zone}-{end}" for zone, _, _, end in PERIODS]


def wall(zone: str, day: dt.date, hour: int = 0, minute: int = 0) -> dt.datetime:
    """A wall time in ``zone``, in UTC (the earlier reading when it falls in a gap)."""
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=ZoneInfo(zone)).astimezone(dt.UTC)


def first_instant(zone: str, day: dt.date) -> dt.datetime:
    """The first instant of local day ``day`` (01:00 where the day starts with a gap)."""
    start = wall(zone, day)
    local = start.astimezone(ZoneInfo(zone))
    assert local.date() == day and local.hour <= 1
    return start


def shop_in(db: Database, clock: FixedClock, zone: str, day: dt.date, months: int) -> None:
    """A program in ``zone`` whose member alice is put at silver at 18:00 local on ``day``."""
    clock.set(wall(zone, day, 18))
    make_program(db, rules={"base_ratio": "1"}, timezone=zone)
    enrol(db, "alice")
    s.publish_tiers(
        db,
        program=PROGRAM,
        rules={"tiers": LADDER, "window_months": 1, "period_months": months},
    )
    s.set_member_tier(
        db, program=PROGRAM, member="alice", tier="silver", reason="welcome", change_id="c-1"
    )


def history(db: Database) -> list[tuple[str | None, str | None, str]]:
    rows = s.tier_history(db, program=PROGRAM, member="alice")
    return [(h.from_tier, h.to_tier, h.reason) for h in reversed(rows)]


@pytest.mark.parametrize(("zone", "day", "months", "end_day"), PERIODS, ids=IDS)
def test_the_period_ends_and_is_evaluated_at_the_local_midnight(
    db: Database, clock: FixedClock, zone: str, day: dt.date, months: int, end_day: dt.date
) -> None:
    shop_in(db, clock, zone, day, months)
    end = first_instant(zone, end_day)
    progress = s.tier_progress(db, program=PROGRAM, member="alice")
    assert (progress.period_end_at, progress.evaluate_at) == (end, end)
    clock.set(end - dt.timedelta(microseconds=1))
    assert s.evaluate_tiers(db).evaluated == 0
    clock.set(end)
    result = s.evaluate_tiers(db)
    assert (result.evaluated, result.down) == (1, 1)
    assert s.tier_history(db, program=PROGRAM, member="alice")[0].due_at == end


@pytest.mark.parametrize(("zone", "day", "months", "end_day"), PERIODS, ids=IDS)
def test_an_earn_a_minute_before_the_local_midnight_counts_for_the_evaluation(
    db: Database, clock: FixedClock, zone: str, day: dt.date, months: int, end_day: dt.date
) -> None:
    shop_in(db, clock, zone, day, months)
    end = first_instant(zone, end_day)
    clock.set(end - MINUTE)
    earn(db, "alice", "o-1", 100_000)  # 1,000 points: what silver needs
    clock.set(end + MINUTE)
    assert (s.evaluate_tiers(db).evaluated, s.evaluate_tiers(db).evaluated) == (1, 0)
    assert history(db) == [("member", "silver", "manual"), ("silver", "silver", "evaluation")]
    assert s.verify_ledger(db).ok


@pytest.mark.parametrize(("zone", "day", "months", "end_day"), PERIODS, ids=IDS)
def test_an_earn_a_minute_after_the_local_midnight_counts_only_for_the_next(
    db: Database, clock: FixedClock, zone: str, day: dt.date, months: int, end_day: dt.date
) -> None:
    shop_in(db, clock, zone, day, months)
    end = first_instant(zone, end_day)
    clock.set(end + MINUTE)
    result = earn(db, "alice", "o-1", 100_000)  # the evaluation due at midnight comes first
    assert (result.tier, result.tier_upgraded_from) == ("silver", "member")
    assert history(db) == [
        ("member", "silver", "manual"),
        ("silver", "member", "evaluation"),
        ("member", "silver", "earn"),
    ]
    assert s.tier_history(db, program=PROGRAM, member="alice")[1].due_at == end
    assert s.verify_ledger(db).ok


@pytest.mark.parametrize(
    "zone",
    ["Etc/GMT+12", "Pacific/Kiritimati", "Asia/Shanghai", "America/New_York", "Europe/Berlin"],
)
def test_a_calendar_year_window_closes_at_the_local_new_year(
    db: Database, clock: FixedClock, zone: str
) -> None:
    new_year = wall(zone, dt.date(2027, 1, 1))
    clock.set(new_year - dt.timedelta(days=30))
    make_program(db, rules={"base_ratio": "1"}, timezone=zone)
    enrol(db, "alice")
    s.publish_tiers(
        db, program=PROGRAM, rules={"tiers": LADDER, "window": "calendar", "window_months": 12}
    )
    clock.set(new_year - MINUTE)
    assert earn(db, "alice", "o-1", 50_000).tier == "member"
    assert s.tier_progress(db, program=PROGRAM, member="alice").measure == 500
    clock.set(new_year)  # the window that ends at midnight is the year it closes
    assert s.tier_progress(db, program=PROGRAM, member="alice").measure == 500
    clock.set(new_year + MINUTE)
    assert s.tier_progress(db, program=PROGRAM, member="alice").measure == 0
    assert earn(db, "alice", "o-2", 60_000).tier == "member"  # 600 in 2027 alone
    assert s.tier_progress(db, program=PROGRAM, member="alice").measure == 600


@pytest.mark.parametrize(
    ("zone", "day"),
    [("America/New_York", dt.date(2026, 3, 8)), ("Europe/Berlin", dt.date(2026, 10, 25))],
)
def test_a_rolling_window_across_a_clock_change_starts_at_the_same_wall_time(
    db: Database, clock: FixedClock, zone: str, day: dt.date
) -> None:
    clock.set(wall(zone, day - dt.timedelta(days=40), 12))
    make_program(db, rules={"base_ratio": "1"}, timezone=zone)
    enrol(db, "alice")
    s.publish_tiers(db, program=PROGRAM, rules={"tiers": LADDER, "window_months": 1})
    month_before = wall(zone, day.replace(month=day.month - 1), 12)
    clock.set(month_before - MINUTE)
    earn(db, "alice", "o-1", 30_000)  # ages out a minute before 12:00 on the change day
    clock.set(month_before + MINUTE)
    earn(db, "alice", "o-2", 40_000)
    clock.set(wall(zone, day, 12))
    assert s.tier_progress(db, program=PROGRAM, member="alice").measure == 400
