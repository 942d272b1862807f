"""Business calendar: period keys, local midnights, month arithmetic and lot expiry."""

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty.domain.calendar import (
    ExpiryPolicy,
    Periods,
    add_months,
    first_of_next_month,
    local_midnight,
    lot_expiry,
    periods,
    start_of_local_day,
    start_of_period,
    zone,
)
from loyalty.errors import InvalidInput

TICK = dt.timedelta(microseconds=1)


def utc(*args):
    return dt.datetime(*args, tzinfo=dt.UTC)


# zone


def test_zone_returns_the_named_zone():
    assert zone("Asia/Shanghai").key == "Asia/Shanghai"


@pytest.mark.parametrize("name", ["Mars/Olympus", "../etc/passwd", "Asia/Shang hai"])
def test_zone_rejects_unknown_names_with_invalid_input(name):
    with pytest.raises(InvalidInput, match="unknown time zone"):
        zone(name)


# periods: the instants just before and just after each local boundary
#
# (zone, first UTC instant of the new local day, local day before, local day after)
BOUNDARIES = [
    # Etc/GMT+12 is UTC-12 (POSIX sign): local midnight is noon UTC, UTC is already "tomorrow".
    ("Etc/GMT+12", utc(2026, 6, 15, 12), "2026-06-14", "2026-06-15"),
    ("Etc/GMT+12", utc(2026, 3, 1, 12), "2026-02-28", "2026-03-01"),
    ("Etc/GMT+12", utc(2027, 1, 1, 12), "2026-12-31", "2027-01-01"),
    # Pacific/Kiritimati is UTC+14: the local day starts at 10:00 UTC of the previous day.
    ("Pacific/Kiritimati", utc(2026, 6, 14, 10), "2026-06-14", "2026-06-15"),
    ("Pacific/Kiritimati", utc(2026, 2, 28, 10), "2026-02-28", "2026-03-01"),
    ("Pacific/Kiritimati", utc(2026, 12, 31, 10), "2026-12-31", "2027-01-01"),
    ("Asia/Shanghai", utc(2026, 6, 14, 16), "2026-06-14", "2026-06-15"),
    ("Asia/Shanghai", utc(2026, 2, 28, 16), "2026-02-28", "2026-03-01"),
    ("Asia/Shanghai", utc(2026, 12, 31, 16), "2026-12-31", "2027-01-01"),
    # Europe/Berlin: UTC+1 in winter, UTC+2 in summer.
    ("Europe/Berlin", utc(2026, 6, 14, 22), "2026-06-14", "2026-06-15"),
    ("Europe/Berlin", utc(2026, 2, 28, 23), "2026-02-28", "2026-03-01"),
    ("Europe/Berlin", utc(2026, 6, 30, 22), "2026-06-30", "2026-07-01"),
    ("Europe/Berlin", utc(2026, 12, 31, 23), "2026-12-31", "2027-01-01"),
    # Berlin's short day (2026-03-29, clocks jump 02:00 -> 03:00) and long day (2026-10-25).
    ("Europe/Berlin", utc(2026, 3, 28, 23), "2026-03-28", "2026-03-29"),
    ("Europe/Berlin", utc(2026, 3, 29, 22), "2026-03-29", "2026-03-30"),
    ("Europe/Berlin", utc(2026, 10, 24, 22), "2026-10-24", "2026-10-25"),
    ("Europe/Berlin", utc(2026, 10, 25, 23), "2026-10-25", "2026-10-26"),
]


def _keys(day):
    """The period keys of a local day such as ``2026-02-28``."""
    return Periods(day=day, month=day[:7], year=day[:4])


@pytest.mark.parametrize(
    ("tz", "boundary", "before", "after"),
    BOUNDARIES,
    ids=[f"{b[0]}-{b[3]}" for b in BOUNDARIES],
)
def test_periods_just_before_and_at_local_midnight(tz, boundary, before, after):
    assert periods(boundary - TICK, tz) == _keys(before)
    assert periods(boundary, tz) == _keys(after)
    assert local_midnight(dt.date.fromisoformat(after), tz) == boundary


def test_periods_accepts_any_aware_input_zone():
    at = dt.datetime(2026, 12, 31, 23, 30, tzinfo=zone("Europe/Berlin"))
    assert periods(at, "Asia/Shanghai") == _keys("2027-01-01")
    assert periods(at, "Etc/GMT+12") == _keys("2026-12-31")


def test_periods_rejects_unknown_zone():
    with pytest.raises(InvalidInput):
        periods(utc(2026, 1, 1), "Nowhere/Special")


def test_berlin_spring_forward_day_is_23_hours_long():
    start = local_midnight(dt.date(2026, 3, 29), "Europe/Berlin")
    end = local_midnight(dt.date(2026, 3, 30), "Europe/Berlin")
    assert end - start == dt.timedelta(hours=23)


def test_berlin_fall_back_day_is_25_hours_long():
    start = local_midnight(dt.date(2026, 10, 25), "Europe/Berlin")
    end = local_midnight(dt.date(2026, 10, 26), "Europe/Berlin")
    assert end - start == dt.timedelta(hours=25)


@pytest.mark.parametrize(
    "at",
    [
        utc(2026, 3, 29, 0, 59),  # 01:59 CET
        utc(2026, 3, 29, 1, 0),  # 03:00 CEST
        utc(2026, 10, 25, 0, 30),  # 02:30 CEST (first)
        utc(2026, 10, 25, 1, 30),  # 02:30 CET (second)
    ],
)
def test_instants_around_berlin_clock_changes_stay_in_the_same_local_day(at):
    day = "2026-03-29" if at.month == 3 else "2026-10-25"
    assert periods(at, "Europe/Berlin") == _keys(day)
    assert start_of_local_day(at, "Europe/Berlin") == local_midnight(
        dt.date.fromisoformat(day), "Europe/Berlin"
    )


def test_local_midnight_is_aware_utc():
    result = local_midnight(dt.date(2026, 1, 1), "Asia/Shanghai")
    assert result == utc(2025, 12, 31, 16)
    assert result.tzinfo is dt.UTC


def test_start_of_local_day_uses_the_local_date_not_the_utc_date():
    # 2026-03-16 05:00 UTC is still Sunday 2026-03-15 17:00 in UTC-12.
    assert start_of_local_day(utc(2026, 3, 16, 5), "Etc/GMT+12") == utc(2026, 3, 15, 12)
    # 2026-03-15 20:00 UTC is already Monday 2026-03-16 04:00 in Shanghai.
    assert start_of_local_day(utc(2026, 3, 15, 20), "Asia/Shanghai") == utc(2026, 3, 15, 16)


# start_of_period

WEDNESDAY = utc(2026, 3, 18, 10)  # 18:00 Wednesday in Shanghai


@pytest.mark.parametrize(
    ("period", "expected"),
    [
        ("day", utc(2026, 3, 17, 16)),
        ("week", utc(2026, 3, 15, 16)),  # Monday 2026-03-16 00:00 Shanghai
        ("month", utc(2026, 2, 28, 16)),
        ("year", utc(2025, 12, 31, 16)),
        ("lifetime", None),
    ],
)
def test_start_of_period_in_shanghai(period, expected):
    assert start_of_period(WEDNESDAY, "Asia/Shanghai", period) == expected


@pytest.mark.parametrize(
    ("period", "expected"),
    [
        ("day", utc(2026, 3, 31, 22)),  # 2026-04-01 00:00 CEST
        ("week", utc(2026, 3, 29, 22)),  # Monday 2026-03-30 00:00 CEST
        ("month", utc(2026, 3, 31, 22)),
        ("year", utc(2025, 12, 31, 23)),  # 2026-01-01 00:00 CET
    ],
)
def test_start_of_period_in_berlin_after_the_spring_change(period, expected):
    assert start_of_period(utc(2026, 4, 1, 12), "Europe/Berlin", period) == expected


def test_start_of_week_is_the_local_monday():
    # Monday 05:00 UTC is Sunday evening in UTC-12, so the week began the previous Monday.
    assert start_of_period(utc(2026, 3, 16, 5), "Etc/GMT+12", "week") == utc(2026, 3, 9, 12)
    # At the first instant of Monday the week starts right then.
    monday = local_midnight(dt.date(2026, 3, 16), "Etc/GMT+12")
    assert start_of_period(monday, "Etc/GMT+12", "week") == monday
    assert start_of_period(monday - TICK, "Etc/GMT+12", "week") == utc(2026, 3, 9, 12)


def test_start_of_year_in_kiritimati_is_in_the_previous_utc_year():
    assert start_of_period(utc(2026, 6, 1), "Pacific/Kiritimati", "year") == utc(2025, 12, 31, 10)


def test_start_of_period_rejects_unknown_periods():
    with pytest.raises(InvalidInput, match="unknown period 'hour'"):
        start_of_period(WEDNESDAY, "UTC", "hour")


@settings(max_examples=100, deadline=None)
@given(
    at=st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1)),
    tz=st.sampled_from(["Etc/GMT+12", "Pacific/Kiritimati", "Asia/Shanghai", "Europe/Berlin"]),
    period=st.sampled_from(["day", "week", "month", "year"]),
)
def test_start_of_period_is_at_or_before_the_instant_and_in_the_same_period(at, tz, period):
    at = at.replace(tzinfo=dt.UTC)
    start = start_of_period(at, tz, period)
    assert start <= at
    assert start.tzinfo is dt.UTC
    if period != "week":
        assert getattr(periods(start, tz), period) == getattr(periods(at, tz), period)
    assert start_of_period(start, tz, period) == start


# add_months and first_of_next_month


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (dt.date(2026, 1, 31), 1, dt.date(2026, 2, 28)),
        (dt.date(2028, 1, 31), 1, dt.date(2028, 2, 29)),  # leap year
        (dt.date(2026, 3, 31), 1, dt.date(2026, 4, 30)),
        (dt.date(2026, 1, 15), 3, dt.date(2026, 4, 15)),
        (dt.date(2026, 12, 15), 1, dt.date(2027, 1, 15)),
        (dt.date(2026, 1, 31), 13, dt.date(2027, 2, 28)),
        (dt.date(2026, 8, 31), 6, dt.date(2027, 2, 28)),
        (dt.date(2026, 3, 31), -1, dt.date(2026, 2, 28)),
        (dt.date(2026, 1, 10), -1, dt.date(2025, 12, 10)),
        (dt.date(2026, 5, 31), 0, dt.date(2026, 5, 31)),
        (dt.date(2024, 2, 29), 12, dt.date(2025, 2, 28)),
    ],
)
def test_add_months_clamps_to_the_end_of_the_month(day, months, expected):
    assert add_months(day, months) == expected


@settings(max_examples=200, deadline=None)
@given(
    day=st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2200, 12, 31)),
    months=st.integers(min_value=-240, max_value=240),
)
def test_add_months_moves_exactly_that_many_months_and_never_overflows_the_month(day, months):
    result = add_months(day, months)
    assert (result.year * 12 + result.month) - (day.year * 12 + day.month) == months
    assert result.day <= day.day
    if day.day <= 28:
        assert result.day == day.day
    else:
        # Clamped only if the target month is shorter.
        assert result.day == day.day or (result + dt.timedelta(days=1)).day == 1


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (dt.date(2026, 1, 31), dt.date(2026, 2, 1)),
        (dt.date(2026, 2, 1), dt.date(2026, 3, 1)),
        (dt.date(2026, 12, 31), dt.date(2027, 1, 1)),
    ],
)
def test_first_of_next_month(day, expected):
    assert first_of_next_month(day) == expected


# lot_expiry


def test_expiry_policy_never_only_when_months_and_days_are_zero():
    assert ExpiryPolicy().never
    assert ExpiryPolicy(month_end=True).never
    assert not ExpiryPolicy(months=3).never
    assert not ExpiryPolicy(days=1).never


def test_lot_expiry_never_gives_none():
    assert lot_expiry(utc(2026, 1, 15), "Asia/Shanghai", ExpiryPolicy(0, 0)) is None
    assert lot_expiry(utc(2026, 1, 15), "Asia/Shanghai", ExpiryPolicy(month_end=True)) is None


def test_lot_expiry_after_months_keeps_the_local_time_of_day():
    earned = utc(2026, 1, 15, 10)  # 18:00 Shanghai
    expires = lot_expiry(earned, "Asia/Shanghai", ExpiryPolicy(months=3))
    assert expires == utc(2026, 4, 15, 10)
    assert expires.tzinfo is dt.UTC


def test_lot_expiry_after_months_clamps_the_day():
    earned = utc(2026, 11, 30, 4)  # 12:00 Shanghai on 2026-11-30
    assert lot_expiry(earned, "Asia/Shanghai", ExpiryPolicy(months=3)) == utc(2027, 2, 28, 4)


def test_lot_expiry_with_days_only():
    earned = utc(2026, 1, 15, 10)
    assert lot_expiry(earned, "Asia/Shanghai", ExpiryPolicy(days=30)) == utc(2026, 2, 14, 10)


def test_lot_expiry_with_months_and_days():
    earned = utc(2026, 1, 15, 10)
    policy = ExpiryPolicy(months=1, days=20)
    assert lot_expiry(earned, "Asia/Shanghai", policy) == utc(2026, 3, 7, 10)


def test_lot_expiry_in_days_keeps_local_wall_time_across_a_dst_change():
    earned = utc(2026, 3, 20, 11)  # 12:00 CET
    # 30 days later it is 12:00 CEST, which is an hour earlier in UTC.
    assert lot_expiry(earned, "Europe/Berlin", ExpiryPolicy(days=30)) == utc(2026, 4, 19, 10)


def test_lot_expiry_landing_in_the_spring_gap_resolves_after_the_gap():
    earned = utc(2026, 1, 29, 1, 30)  # 02:30 CET; 2026-03-29 02:30 does not exist in Berlin
    expires = lot_expiry(earned, "Europe/Berlin", ExpiryPolicy(months=2))
    assert expires == utc(2026, 3, 29, 1, 30)  # 03:30 CEST
    assert expires.astimezone(zone("Europe/Berlin")).hour == 3


def test_lot_expiry_month_end_is_the_first_instant_of_the_next_local_month():
    earned = dt.datetime(2026, 1, 15, 12, tzinfo=zone("Asia/Shanghai"))
    policy = ExpiryPolicy(months=3, month_end=True)
    assert lot_expiry(earned, "Asia/Shanghai", policy) == utc(2026, 4, 30, 16)


def test_lot_expiry_month_end_after_a_clamped_month():
    earned = dt.datetime(2026, 1, 31, 9, tzinfo=zone("Europe/Berlin"))
    policy = ExpiryPolicy(months=1, month_end=True)
    # Feb 28 -> first instant of March in Berlin (CET).
    assert lot_expiry(earned, "Europe/Berlin", policy) == utc(2026, 2, 28, 23)


def test_lot_expiry_month_end_with_days_only():
    earned = dt.datetime(2026, 1, 25, 9, tzinfo=zone("Asia/Shanghai"))
    policy = ExpiryPolicy(days=10, month_end=True)  # Feb 4 -> end of February
    assert lot_expiry(earned, "Asia/Shanghai", policy) == utc(2026, 2, 28, 16)


def test_lot_expiry_month_end_into_summer_time_uses_the_summer_offset():
    earned = dt.datetime(2026, 1, 10, 9, tzinfo=zone("Europe/Berlin"))
    policy = ExpiryPolicy(months=3, month_end=True)  # April -> 2026-05-01 00:00 CEST
    assert lot_expiry(earned, "Europe/Berlin", policy) == utc(2026, 4, 30, 22)


class TestEarnAt2330OnTheLastDayOfAMonthWhereUtcIsAlreadyTomorrow:
    """2026-01-31 23:30 in UTC-12 is 2026-02-01 11:30 UTC: the local month is January."""

    TZ = "Etc/GMT+12"
    EARNED = utc(2026, 2, 1, 11, 30)

    def test_the_earn_falls_in_the_local_month(self):
        assert periods(self.EARNED, self.TZ) == _keys("2026-01-31")

    def test_rolling_months_count_from_the_local_date(self):
        # Jan 31 + 1 month = Feb 28 23:30 local = Mar 1 11:30 UTC.
        policy = ExpiryPolicy(months=1)
        assert lot_expiry(self.EARNED, self.TZ, policy) == utc(2026, 3, 1, 11, 30)

    def test_month_end_counts_from_the_local_month(self):
        # January + 1 month = February -> 2026-03-01 00:00 local = 12:00 UTC.
        policy = ExpiryPolicy(months=1, month_end=True)
        assert lot_expiry(self.EARNED, self.TZ, policy) == utc(2026, 3, 1, 12)

    def test_the_same_instant_in_utc_would_expire_a_month_later(self):
        policy = ExpiryPolicy(months=1, month_end=True)
        assert lot_expiry(self.EARNED, "UTC", policy) == utc(2026, 4, 1)

    def test_one_day_counts_from_the_local_date(self):
        policy = ExpiryPolicy(days=1)
        assert lot_expiry(self.EARNED, self.TZ, policy) == utc(2026, 2, 2, 11, 30)


@settings(max_examples=100, deadline=None)
@given(
    earned=st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1)),
    tz=st.sampled_from(["Etc/GMT+12", "Pacific/Kiritimati", "Asia/Shanghai", "Europe/Berlin"]),
    months=st.integers(min_value=0, max_value=36),
    days=st.integers(min_value=0, max_value=400),
    month_end=st.booleans(),
)
def test_lot_expiry_is_after_the_earn_and_month_end_is_a_local_midnight_on_the_first(
    earned, tz, months, days, month_end
):
    earned = earned.replace(tzinfo=dt.UTC)
    expires = lot_expiry(earned, tz, ExpiryPolicy(months, days, month_end))
    if months == 0 and days == 0:
        assert expires is None
        return
    assert expires > earned
    assert expires.tzinfo is dt.UTC
    if month_end:
        local = expires.astimezone(zone(tz))
        assert (local.day, local.hour, local.minute, local.second) == (1, 0, 0, 0)
        without = lot_expiry(earned, tz, ExpiryPolicy(months, days))
        assert without < expires


@pytest.mark.parametrize(
    ("expires_at", "tz", "last"),
    [
        # 15 April 10:00 in Shanghai: 15 April is still usable
        (dt.datetime(2027, 4, 15, 2, 0, tzinfo=dt.UTC), "Asia/Shanghai", dt.date(2027, 4, 15)),
        # month-end rounding: the end of 30 April is the local midnight starting 1 May
        (dt.datetime(2027, 4, 30, 16, 0, tzinfo=dt.UTC), "Asia/Shanghai", dt.date(2027, 4, 30)),
        # the same in a negative offset: 1 May 00:00 in New York is 04:00 UTC
        (dt.datetime(2027, 5, 1, 4, 0, tzinfo=dt.UTC), "America/New_York", dt.date(2027, 4, 30)),
        # 1 May 00:30 New York: the points still serve half an hour of 1 May
        (dt.datetime(2027, 5, 1, 4, 30, tzinfo=dt.UTC), "America/New_York", dt.date(2027, 5, 1)),
    ],
)
def test_last_usable_day_is_the_local_date_just_before_expiry(expires_at, tz, last):
    from loyalty.domain.calendar import last_usable_day

    assert last_usable_day(expires_at, tz) == last


def test_month_end_expiry_lasts_until_the_last_day_of_the_month():
    from loyalty.domain.calendar import last_usable_day

    policy = ExpiryPolicy(months=3, month_end=True)
    for tz in ("Asia/Shanghai", "America/Sao_Paulo", "America/New_York"):
        earned = dt.datetime(2027, 1, 20, 12, 0, tzinfo=dt.UTC)
        expires = lot_expiry(earned, tz, policy)
        assert expires is not None
        assert last_usable_day(expires, tz) == dt.date(2027, 4, 30), tz


def test_end_of_local_day_after_counts_local_calendar_days():
    from loyalty.domain.calendar import end_of_local_day_after

    # 31 March 01:00 UTC is 09:00 in Shanghai: 15 days on ends with 15 April, local
    at = dt.datetime(2027, 3, 31, 1, 0, tzinfo=dt.UTC)
    assert end_of_local_day_after(at, "Asia/Shanghai", 15) == dt.datetime(
        2027, 4, 15, 16, 0, tzinfo=dt.UTC
    )
    # the same instant is 30 March 22:00 in Sao Paulo (UTC-3)
    assert end_of_local_day_after(at, "America/Sao_Paulo", 15) == dt.datetime(
        2027, 4, 15, 3, 0, tzinfo=dt.UTC
    )
