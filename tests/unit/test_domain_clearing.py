"""Year-end clearing dates: the moment, the cutoff and the last passed year, in every zone."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalty.domain.calendar import (
    clearing_cutoff,
    clearing_moment,
    clearing_moments,
    last_clearing_year,
)
from loyalty.errors import InvalidRule

SECOND = dt.timedelta(seconds=1)
ZONES = ("Etc/GMT+12", "Pacific/Kiritimati", "Asia/Shanghai", "Europe/Berlin", "UTC")


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


# clearing_moment


@pytest.mark.parametrize(
    ("tz", "expected"),
    [
        ("Etc/GMT+12", utc(2027, 1, 1, 12)),  # UTC-12: the last zone to reach the new year
        ("Pacific/Kiritimati", utc(2026, 12, 31, 10)),  # UTC+14: the first
        ("Asia/Shanghai", utc(2026, 12, 31, 16)),
        ("Europe/Berlin", utc(2026, 12, 31, 23)),  # CET in winter
        ("UTC", utc(2027, 1, 1)),
    ],
)
def test_default_moment_is_the_local_midnight_after_31_december(
    tz: str, expected: dt.datetime
) -> None:
    moment = clearing_moment(2026, 12, 31, tz)
    assert moment == expected
    assert moment.tzinfo is dt.UTC


@pytest.mark.parametrize(
    ("month", "day", "expected"),
    [
        (3, 28, utc(2026, 3, 28, 23)),  # ends 29 March 00:00 CET; DST starts 01:00 UTC
        (3, 29, utc(2026, 3, 29, 22)),  # the 23-hour day: ends 30 March 00:00 CEST
        (10, 24, utc(2026, 10, 24, 22)),  # ends 25 October 00:00 CEST; DST ends 01:00 UTC
        (10, 25, utc(2026, 10, 25, 23)),  # the 25-hour day: ends 26 October 00:00 CET
    ],
)
def test_moment_across_berlin_daylight_saving_changes(
    month: int, day: int, expected: dt.datetime
) -> None:
    assert clearing_moment(2026, month, day, "Europe/Berlin") == expected


def test_29_february_means_28_february_in_a_common_year() -> None:
    assert clearing_moment(2026, 2, 29, "Asia/Shanghai") == utc(2026, 2, 28, 16)
    assert clearing_moment(2028, 2, 29, "Asia/Shanghai") == utc(2028, 2, 29, 16)


# clearing_cutoff


def test_policy_all_clears_everything_before_the_moment() -> None:
    moment = clearing_moment(2026, 12, 31, "Asia/Shanghai")
    assert clearing_cutoff(moment, "Asia/Shanghai", "all", 12) == moment


@pytest.mark.parametrize(
    ("tz", "expected"),
    [
        ("Etc/GMT+12", utc(2026, 1, 1, 12)),
        ("Pacific/Kiritimati", utc(2025, 12, 31, 10)),
        ("Asia/Shanghai", utc(2025, 12, 31, 16)),
        ("Europe/Berlin", utc(2025, 12, 31, 23)),
    ],
)
def test_twelve_months_keeps_the_current_calendar_year(tz: str, expected: dt.datetime) -> None:
    moment = clearing_moment(2026, 12, 31, tz)
    assert clearing_cutoff(moment, tz, "before_cutoff", 12) == expected


@pytest.mark.parametrize(
    ("month", "day", "keep", "expected"),
    [
        # moment 29 March 00:00 CET, minus one month: 29 February does not exist in 2026
        (3, 28, 1, utc(2026, 2, 27, 23)),
        # moment in summer time (30 March 00:00 CEST), cutoff in winter time (28 February)
        (3, 29, 1, utc(2026, 2, 27, 23)),
        # moment 25 October 00:00 CEST, cutoff 25 April 00:00 CEST
        (10, 24, 6, utc(2026, 4, 24, 22)),
        # moment 26 October 2026 00:00 CET, cutoff 26 October 2025 00:00, still CEST then
        (10, 25, 12, utc(2025, 10, 25, 22)),
    ],
)
def test_cutoff_across_berlin_daylight_saving_changes(
    month: int, day: int, keep: int, expected: dt.datetime
) -> None:
    moment = clearing_moment(2026, month, day, "Europe/Berlin")
    assert clearing_cutoff(moment, "Europe/Berlin", "before_cutoff", keep) == expected


def test_keeping_zero_months_clears_everything() -> None:
    moment = clearing_moment(2026, 12, 31, "Europe/Berlin")
    assert clearing_cutoff(moment, "Europe/Berlin", "before_cutoff", 0) == moment


def test_policy_none_has_no_cutoff() -> None:
    with pytest.raises(InvalidRule, match="no cutoff"):
        clearing_cutoff(utc(2027, 1, 1), "UTC", "none", 12)


# last_clearing_year


@pytest.mark.parametrize("tz", ZONES)
def test_last_year_changes_exactly_at_the_moment(tz: str) -> None:
    moment = clearing_moment(2026, 12, 31, tz)
    assert last_clearing_year(moment - SECOND, tz, 12, 31) == 2025
    assert last_clearing_year(moment, tz, 12, 31) == 2026


def test_last_year_of_a_mid_year_clearing() -> None:
    assert last_clearing_year(utc(2026, 3, 1), "Asia/Shanghai", 6, 30) == 2025
    assert last_clearing_year(utc(2026, 6, 30, 16), "Asia/Shanghai", 6, 30) == 2026
    assert last_clearing_year(utc(2026, 12, 31, 20), "Asia/Shanghai", 6, 30) == 2026


@given(
    now=st.datetimes(
        min_value=dt.datetime(2001, 1, 1),
        max_value=dt.datetime(2098, 12, 31),
        timezones=st.just(dt.UTC),
    ),
    tz=st.sampled_from(ZONES),
    month=st.integers(1, 12),
    day=st.integers(1, 31),
)
def test_last_year_is_the_latest_passed_moment(
    now: dt.datetime, tz: str, month: int, day: int
) -> None:
    year = last_clearing_year(now, tz, month, day)
    assert clearing_moment(year, month, day, tz) <= now < clearing_moment(year + 1, month, day, tz)


# clearing_moments


def test_moments_in_a_window_exclude_its_start_and_include_its_end() -> None:
    moment = clearing_moment(2026, 12, 31, "Asia/Shanghai")
    assert clearing_moments(moment, moment + dt.timedelta(days=400), "Asia/Shanghai", 12, 31) == [
        (2027, clearing_moment(2027, 12, 31, "Asia/Shanghai"))
    ]
    assert clearing_moments(moment - SECOND, moment, "Asia/Shanghai", 12, 31) == [(2026, moment)]
    assert clearing_moments(moment - dt.timedelta(days=2), moment - SECOND, "UTC", 12, 31) == []
