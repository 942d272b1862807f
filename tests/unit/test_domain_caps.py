"""Member earning caps per local day/month/year and the program's daily budget."""

from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty.domain.calendar import Periods
from loyalty.domain.caps import CapDecision, CapUsage, apply_member_caps, apply_program_budget
from loyalty.domain.rules import Caps

TODAY = Periods(day="2026-03-18", month="2026-03", year="2026")
TOMORROW = Periods(day="2026-03-19", month="2026-03", year="2026")
NEXT_MONTH = Periods(day="2026-04-01", month="2026-04", year="2026")
NEXT_YEAR = Periods(day="2027-01-01", month="2027-01", year="2027")


def used(day=0, month=0, year=0, periods=TODAY):
    return CapUsage(periods.day, day, periods.month, month, periods.year, year)


# apply_member_caps


def test_no_caps_grants_everything():
    assert apply_member_caps(10**9, Caps(), used(500, 500, 500), TODAY) == CapDecision(10**9, None)


def test_request_within_every_cap_is_granted_in_full():
    caps = Caps(member_daily=100, member_monthly=1000, member_yearly=10000)
    assert apply_member_caps(50, caps, used(30, 300, 3000), TODAY) == CapDecision(50, None)


def test_daily_cap_grants_the_exact_remainder():
    caps = Caps(member_daily=100)
    assert apply_member_caps(100, caps, used(day=30), TODAY) == CapDecision(70, "member_daily")


def test_request_equal_to_the_remainder_is_not_capped():
    caps = Caps(member_daily=100)
    assert apply_member_caps(70, caps, used(day=30), TODAY) == CapDecision(70, None)


def test_monthly_cap_can_be_tighter_than_the_daily_cap():
    caps = Caps(member_daily=100, member_monthly=500)
    decision = apply_member_caps(100, caps, used(day=0, month=450), TODAY)
    assert decision == CapDecision(50, "member_monthly")


def test_yearly_cap_can_be_the_tightest():
    caps = Caps(member_daily=100, member_monthly=1000, member_yearly=5000)
    decision = apply_member_caps(100, caps, used(day=10, month=100, year=4990), TODAY)
    assert decision == CapDecision(10, "member_yearly")


def test_capped_by_names_the_tightest_cap_not_the_first_one_checked():
    caps = Caps(member_daily=100, member_monthly=200, member_yearly=150)
    decision = apply_member_caps(500, caps, used(day=0, month=0, year=0), TODAY)
    assert decision == CapDecision(100, "member_daily")
    decision = apply_member_caps(500, caps, used(day=0, month=190, year=0), TODAY)
    assert decision == CapDecision(10, "member_monthly")


def test_a_full_cap_grants_nothing():
    caps = Caps(member_daily=100)
    assert apply_member_caps(5, caps, used(day=100), TODAY) == CapDecision(0, "member_daily")


def test_usage_above_a_lowered_cap_grants_nothing_rather_than_a_negative_amount():
    caps = Caps(member_daily=50)
    assert apply_member_caps(5, caps, used(day=80), TODAY) == CapDecision(0, "member_daily")


def test_a_zero_cap_blocks_earning():
    assert apply_member_caps(5, Caps(member_monthly=0), CapUsage(), TODAY) == CapDecision(
        0, "member_monthly"
    )


def test_requesting_zero_is_never_capped():
    assert apply_member_caps(0, Caps(member_daily=0), CapUsage(), TODAY) == CapDecision(0, None)


def test_counters_from_an_older_day_count_as_zero():
    caps = Caps(member_daily=100, member_monthly=1000)
    yesterday_usage = used(day=100, month=200)
    assert apply_member_caps(100, caps, yesterday_usage, TOMORROW) == CapDecision(100, None)
    # The month counter still applies within the same month.
    decision = apply_member_caps(900, caps, yesterday_usage, TOMORROW)
    assert decision == CapDecision(100, "member_daily")
    decision = apply_member_caps(900, Caps(member_monthly=1000), yesterday_usage, TOMORROW)
    assert decision == CapDecision(800, "member_monthly")


def test_counters_from_an_older_month_and_year_count_as_zero():
    caps = Caps(member_monthly=100, member_yearly=1000)
    full = used(day=100, month=100, year=1000)
    assert apply_member_caps(100, caps, full, NEXT_MONTH) == CapDecision(0, "member_yearly")
    assert apply_member_caps(100, caps, full, NEXT_YEAR) == CapDecision(100, None)


def test_empty_usage_counts_as_zero():
    assert CapUsage().current(TODAY) == (0, 0, 0)


# apply_program_budget


def test_no_budget_grants_everything():
    assert apply_program_budget(10**9, None, 10**12) == CapDecision(10**9, None)


def test_budget_grants_the_remainder_of_the_day():
    assert apply_program_budget(500, 1000, 900) == CapDecision(100, "program_daily")


def test_budget_exact_remainder_is_not_capped():
    assert apply_program_budget(100, 1000, 900) == CapDecision(100, None)


def test_spent_budget_grants_nothing():
    assert apply_program_budget(1, 1000, 1000) == CapDecision(0, "program_daily")
    assert apply_program_budget(1, 1000, 1500) == CapDecision(0, "program_daily")


# CapUsage.plus


def test_plus_starts_counters_for_the_periods():
    assert CapUsage().plus(TODAY, 10) == CapUsage("2026-03-18", 10, "2026-03", 10, "2026", 10)


def test_plus_accumulates_within_the_same_periods():
    usage = CapUsage().plus(TODAY, 10).plus(TODAY, 5)
    assert usage.current(TODAY) == (15, 15, 15)


def test_plus_on_a_new_day_resets_only_the_day():
    usage = CapUsage().plus(TODAY, 10).plus(TOMORROW, 5)
    assert usage == CapUsage("2026-03-19", 5, "2026-03", 15, "2026", 15)


def test_plus_in_a_new_month_keeps_the_year():
    usage = CapUsage().plus(TODAY, 10).plus(NEXT_MONTH, 5)
    assert usage == CapUsage("2026-04-01", 5, "2026-04", 5, "2026", 15)


def test_plus_in_a_new_year_resets_everything():
    usage = CapUsage().plus(TODAY, 10).plus(NEXT_YEAR, 5)
    assert usage.current(NEXT_YEAR) == (5, 5, 5)


def test_plus_returns_a_new_value():
    usage = CapUsage()
    usage.plus(TODAY, 10)
    assert usage == CapUsage()


optional_cap = st.one_of(st.none(), st.integers(min_value=0, max_value=1000))


@settings(max_examples=200, deadline=None)
@given(
    daily=optional_cap,
    monthly=optional_cap,
    yearly=optional_cap,
    requests=st.lists(st.integers(min_value=0, max_value=500), max_size=10),
    days=st.lists(st.sampled_from([TODAY, TOMORROW, NEXT_MONTH, NEXT_YEAR]), max_size=10),
)
def test_granting_request_after_request_never_exceeds_any_cap(
    daily, monthly, yearly, requests, days
):
    caps = Caps(member_daily=daily, member_monthly=monthly, member_yearly=yearly)
    usage = CapUsage()
    ordered = sorted(days, key=lambda p: p.day)
    for request, periods in zip(requests, ordered, strict=False):
        decision = apply_member_caps(request, caps, usage, periods)
        assert 0 <= decision.granted <= request
        assert (decision.capped_by is None) == (decision.granted == request)
        usage = usage.plus(periods, decision.granted)
        day, month, year = usage.current(periods)
        assert daily is None or day <= daily
        assert monthly is None or month <= monthly
        assert yearly is None or year <= yearly
