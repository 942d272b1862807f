"""The Analytics page's date ranges: presets, the previous period of the same length, days or
weeks, every refusal with the field it names; and changes in percent and percentage points."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction

import pytest

from loyalty.errors import InvalidInput
from loyalty.services.analytics import (
    Compared,
    ComparedRate,
    DateRange,
    Rate,
    parse_range,
    preset_range,
)

D = dt.date
TZ = "Asia/Shanghai"
TODAY = D(2026, 3, 10)


def parse(first: str | None, last: str | None, preset: str | None = None) -> DateRange:
    return parse_range(first, last, preset=preset, today=TODAY, tz=TZ)


@pytest.mark.parametrize(
    ("preset", "first", "last"),
    [
        ("7d", D(2026, 3, 4), TODAY),
        ("30d", D(2026, 2, 9), TODAY),
        ("90d", D(2025, 12, 11), TODAY),
        ("this-month", D(2026, 3, 1), TODAY),
        ("last-month", D(2026, 2, 1), D(2026, 2, 28)),
    ],
)
def test_presets_end_today_or_cover_last_month(preset: str, first: D, last: D) -> None:
    assert preset_range(preset, TODAY, TZ) == DateRange(first, last, TZ)
    assert parse(None, None, preset) == DateRange(first, last, TZ)


def test_no_dates_and_no_preset_is_the_last_30_days() -> None:
    assert parse(None, None) == parse("", " ", "30d") == DateRange(D(2026, 2, 9), TODAY, TZ)


def test_last_month_in_january_is_december() -> None:
    assert preset_range("last-month", D(2027, 1, 31), TZ) == DateRange(
        D(2026, 12, 1), D(2026, 12, 31), TZ
    )


def test_the_previous_period_has_the_same_length_and_ends_the_day_before() -> None:
    march = DateRange(D(2026, 3, 1), D(2026, 3, 10), TZ)
    assert march.days == 10
    assert march.previous() == DateRange(D(2026, 2, 19), D(2026, 2, 28), TZ)
    this_month = preset_range("this-month", TODAY, TZ)  # ten days: compared with ten days
    assert this_month.previous().days == 10
    leap = DateRange(D(2028, 3, 1), D(2028, 3, 31), TZ)
    assert leap.previous() == DateRange(D(2028, 1, 30), D(2028, 2, 29), TZ)


def test_instants_are_local_midnights() -> None:
    day = DateRange(D(2026, 3, 10), D(2026, 3, 10), TZ)
    assert day.start == dt.datetime(2026, 3, 9, 16, tzinfo=dt.UTC)
    assert day.end == dt.datetime(2026, 3, 10, 16, tzinfo=dt.UTC)
    assert DateRange(D(2026, 3, 8), D(2026, 3, 8), "America/New_York").end - DateRange(
        D(2026, 3, 8), D(2026, 3, 8), "America/New_York"
    ).start == dt.timedelta(hours=23)  # the spring-forward day


def test_days_up_to_92_then_weeks_from_the_first_day() -> None:
    quarter = DateRange(D(2026, 1, 1), D(2026, 4, 2), TZ)
    assert quarter.days == 92 and quarter.granularity == "day"
    assert len(quarter.buckets()) == 92
    longer = DateRange(D(2026, 1, 1), D(2026, 4, 3), TZ)
    assert longer.granularity == "week"
    weeks = longer.buckets()
    assert len(weeks) == 14
    assert weeks[0] == (D(2026, 1, 1), D(2026, 1, 7))
    assert weeks[-1] == (D(2026, 4, 2), D(2026, 4, 3))  # the last week is shorter
    assert longer.previous().buckets()[-1] == (D(2025, 12, 30), D(2025, 12, 31))


@pytest.mark.parametrize(
    ("first", "last", "field", "words"),
    [
        ("2026-13-01", "2026-03-01", "from", "not a date of the calendar: 2026-13-01"),
        ("2026-02-30", "2026-03-01", "from", "not a date of the calendar"),
        ("2026/03/01", "2026-03-05", "from", "from must be a date written YYYY-MM-DD"),
        ("20260301", "2026-03-05", "from", "from must be a date written YYYY-MM-DD"),
        ("2026-03-01", "yesterday", "to", "to must be a date written YYYY-MM-DD, got 'yesterday'"),
        ("2026-03-01", None, "to", "give both dates, from and to: to is missing"),
        (None, "2026-03-01", "from", "give both dates, from and to: from is missing"),
        ("2026-03-05", "2026-03-01", "from", "from (2026-03-05) must not be after to (2026-03-01)"),
        ("2026-03-01", "2026-03-11", "to", "to (2026-03-11) must not be after today (2026-03-10"),
        ("1999-12-31", "2000-01-05", "from", "from must be 2000-01-01 or later"),
        ("2023-03-10", "2026-03-10", "from", "at most 1,096 days (3 years); 2023-03-10 to"),
    ],
)
def test_bad_ranges_are_refused_naming_the_field(
    first: str | None, last: str | None, field: str, words: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse(first, last)
    assert words in refused.value.message
    assert refused.value.details["field"] == field


def test_an_unknown_preset_is_refused() -> None:
    with pytest.raises(InvalidInput, match="range must be one of 7d, 30d, 90d") as refused:
        parse(None, None, "fortnight")
    assert refused.value.details["field"] == "range"


def test_three_years_is_the_longest_range() -> None:
    assert parse("2023-03-11", "2026-03-10").days == 1096


def test_changes_in_percent_and_percentage_points() -> None:
    assert Compared(150, 100).change == 50
    assert Compared(50, 200).change == -75
    assert Compared(-30, -10).change == -200  # a signed figure against its size
    assert Compared(10, 0).change is None and Compared(0, 0).change is None
    assert Rate(1, 3).percent == Fraction(100, 3)
    assert Rate(5, 0).percent is None
    assert ComparedRate(Rate(30, 100), Rate(20, 100)).change == 10
    assert ComparedRate(Rate(30, 100), Rate(0, 0)).change is None
