"""Daily caps and month-end expiry at local boundaries: UTC-12, UTC+14, Shanghai and Berlin.

Every case earns one second before a local boundary and exactly on it, in the program's own
zone; for Berlin the boundaries sit on the days clocks change (29 March and 25 October 2026).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.errors import ConfigurationError
from tests.integration.helpers import earn, enrol, lots_of, make_program

SECOND = dt.timedelta(seconds=1)
# (zone, a local midnight that starts a new day, the last day of a month before it)
ZONES = {
    "Etc/GMT+12": dt.datetime(2026, 11, 22),  # UTC-12
    "Pacific/Kiritimati": dt.datetime(2026, 11, 22),  # UTC+14
    "Asia/Shanghai": dt.datetime(2026, 11, 22),
    "Europe/Berlin-spring": dt.datetime(2026, 3, 30),  # the day before is 23 hours long
    "Europe/Berlin-autumn": dt.datetime(2026, 10, 26),  # the day before is 25 hours long
}


def at_local(zone: str, wall: dt.datetime) -> dt.datetime:
    return wall.replace(tzinfo=ZoneInfo(zone)).astimezone(dt.UTC)


def zone_of(case: str) -> str:
    return case.split("-")[0]


@pytest.mark.parametrize("case", list(ZONES))
def test_the_daily_cap_resets_exactly_at_local_midnight(
    db: Database, clock: FixedClock, case: str
) -> None:
    zone = zone_of(case)
    midnight = at_local(zone, ZONES[case])
    clock.set(midnight - dt.timedelta(days=2))
    make_program(db, timezone=zone, rules={"caps": {"member_daily": 100}})
    enrol(db, "alice")
    clock.set(midnight - dt.timedelta(hours=20))  # earlier the same local day
    assert earn(db, "alice", "o1", 10_000).points_granted == 100
    clock.set(midnight - SECOND)
    last = earn(db, "alice", "o2", 10_000)
    assert (last.points_granted, last.capped_by) == (0, "member_daily")
    clock.set(midnight)
    assert earn(db, "alice", "o3", 10_000).points_granted == 100
    assert s.verify_ledger(db).ok


MONTH_ENDS = {
    "Etc/GMT+12": (dt.datetime(2026, 11, 1), dt.datetime(2026, 12, 1), dt.datetime(2027, 1, 1)),
    "Pacific/Kiritimati": (
        dt.datetime(2026, 11, 1),
        dt.datetime(2026, 12, 1),
        dt.datetime(2027, 1, 1),
    ),
    "Asia/Shanghai": (dt.datetime(2026, 11, 1), dt.datetime(2026, 12, 1), dt.datetime(2027, 1, 1)),
    # Earned in March (CET), expiring at the end of April (CEST), across the spring change.
    "Europe/Berlin-spring": (
        dt.datetime(2026, 3, 1),
        dt.datetime(2026, 4, 1),
        dt.datetime(2026, 5, 1),
    ),
    # Earned in September (CEST), expiring at the end of October (CET), across autumn's.
    "Europe/Berlin-autumn": (
        dt.datetime(2026, 10, 1),
        dt.datetime(2026, 11, 1),
        dt.datetime(2026, 12, 1),
    ),
}


@pytest.mark.parametrize("case", list(MONTH_ENDS))
def test_month_end_expiry_turns_over_exactly_at_the_local_month_boundary(
    db: Database, clock: FixedClock, case: str
) -> None:
    zone = zone_of(case)
    month_start, next_month, month_after = (at_local(zone, w) for w in MONTH_ENDS[case])
    clock.set(month_start - dt.timedelta(days=2))
    make_program(db, timezone=zone, rules={"expiry": {"months": 1, "month_end": True}})
    enrol(db, "alice")
    clock.set(month_start - SECOND)  # the last second of the month before
    assert earn(db, "alice", "late", 1_000).expires_at == next_month
    clock.set(month_start)  # the first instant of the month
    assert earn(db, "alice", "early", 1_000).expires_at == month_after
    late, early = lots_of(db, "alice")
    # The lot is usable until the last instant before its expiry, then swept at once.
    clock.set(next_month - SECOND)
    assert s.expire_due(db).items == 0
    clock.set(next_month)
    assert s.expire_due(db).items == 1
    assert [lot.expired_at is not None for lot in lots_of(db, "alice")] == [True, False]
    assert (late.points, early.points) == (10, 10)
    assert s.verify_ledger(db).ok


def test_earning_before_the_program_had_rules_is_a_clear_error(
    db: Database, clock: FixedClock
) -> None:
    make_program(db)
    enrol(db, "alice")
    clock.advance(-dt.timedelta(days=1))
    with pytest.raises(ConfigurationError, match="no rules in force"):
        earn(db, "alice", "o1", 1_000)
