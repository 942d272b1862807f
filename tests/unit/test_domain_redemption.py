"""Redemption arithmetic: what points are worth and the limits on using them."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty.domain.redemption import (
    Redemption,
    RedemptionPolicy,
    check_redemption,
    max_discount_minor,
    max_redeemable_points,
    value_minor,
)
from loyalty.errors import RedemptionLimit, RuleViolation

CNY = 2
JPY = 0
KWD = 3
DEFAULT = RedemptionPolicy()
JPY_100 = RedemptionPolicy(points_per_unit=100)


# value_minor and max_discount_minor


def test_default_policy_is_100_points_per_yuan():
    assert DEFAULT.points_per_unit == 100
    assert value_minor(100, DEFAULT, CNY) == 100  # 1 yuan = 100 fen
    assert value_minor(1, DEFAULT, CNY) == 1


def test_jpy_with_100_points_per_yen():
    assert value_minor(100, JPY_100, JPY) == 1
    assert value_minor(150, JPY_100, JPY) == 1  # rounded down
    assert value_minor(99, JPY_100, JPY) == 0


def test_kwd_with_100_points_per_dinar():
    assert value_minor(100, DEFAULT, KWD) == 1000
    assert value_minor(1, DEFAULT, KWD) == 10


def test_one_point_per_yuan():
    assert value_minor(3, RedemptionPolicy(points_per_unit=1), CNY) == 300


def test_max_discount_is_the_share_of_the_order_rounded_down():
    assert max_discount_minor(10000, RedemptionPolicy(max_share_bp=5000)) == 5000
    assert max_discount_minor(999, RedemptionPolicy(max_share_bp=3333)) == 332
    assert max_discount_minor(10000, RedemptionPolicy(max_share_bp=0)) == 0
    assert max_discount_minor(10000, DEFAULT) == 10000


# check_redemption


def test_valid_redemption_returns_points_and_discount():
    assert check_redemption(500, 10000, DEFAULT, CNY) == Redemption(points=500, discount_minor=500)


def test_jpy_redemption_of_whole_yen():
    assert check_redemption(300, 1000, JPY_100, JPY) == Redemption(300, 3)


def test_jpy_150_points_is_not_a_whole_amount_of_money():
    with pytest.raises(RedemptionLimit, match="not a whole amount of money") as info:
        check_redemption(150, 1000, JPY_100, JPY)
    assert "100 or 200" in info.value.message
    assert info.value.details["points"] == 150


def test_fewer_points_than_one_yen_suggests_one_yen():
    with pytest.raises(RedemptionLimit, match=r"multiple of 100 such as 100$"):
        check_redemption(50, 1000, JPY_100, JPY)


def test_awkward_ratio_suggests_valid_multiples():
    # 150 points per yuan: 3 points are worth exactly 2 fen.
    policy = RedemptionPolicy(points_per_unit=150)
    with pytest.raises(RedemptionLimit, match="multiple of 3 such as 99 or 102"):
        check_redemption(100, 10000, policy, CNY)
    assert check_redemption(99, 10000, policy, CNY) == Redemption(99, 66)
    assert check_redemption(102, 10000, policy, CNY) == Redemption(102, 68)


def test_min_points():
    policy = RedemptionPolicy(min_points=500)
    with pytest.raises(RedemptionLimit, match="at least 500 points") as info:
        check_redemption(499, 10000, policy, CNY)
    assert info.value.details == {"min_points": 500}
    assert check_redemption(500, 10000, policy, CNY).points == 500


def test_zero_points_are_refused_by_the_default_minimum():
    with pytest.raises(RedemptionLimit):
        check_redemption(0, 10000, DEFAULT, CNY)


def test_min_order():
    policy = RedemptionPolicy(min_order_minor=10000)
    with pytest.raises(RedemptionLimit, match="orders of at least 10000") as info:
        check_redemption(100, 9999, policy, CNY)
    assert info.value.details == {"min_order_minor": 10000}
    assert check_redemption(100, 10000, policy, CNY).discount_minor == 100


def test_max_share():
    policy = RedemptionPolicy(max_share_bp=5000)
    assert check_redemption(5000, 10000, policy, CNY).discount_minor == 5000
    with pytest.raises(RedemptionLimit, match="at most 50% of the order") as info:
        check_redemption(5001, 10000, policy, CNY)
    assert info.value.details == {"max_discount_minor": 5000, "max_share_bp": 5000}


def test_points_may_not_pay_more_than_the_whole_order():
    with pytest.raises(RedemptionLimit, match="at most 100%"):
        check_redemption(10001, 10000, DEFAULT, CNY)


def test_redemption_limit_is_a_rule_violation():
    assert issubclass(RedemptionLimit, RuleViolation)


# max_redeemable_points


def test_max_redeemable_is_limited_by_available_points():
    assert max_redeemable_points(10000, 300, DEFAULT, CNY) == 300


def test_max_redeemable_is_limited_by_the_share():
    assert max_redeemable_points(10000, 10**6, RedemptionPolicy(max_share_bp=2000), CNY) == 2000


def test_max_redeemable_is_zero_below_the_minimum_order():
    policy = RedemptionPolicy(min_order_minor=5000)
    assert max_redeemable_points(4999, 10**6, policy, CNY) == 0
    assert max_redeemable_points(5000, 10**6, policy, CNY) == 5000


def test_max_redeemable_is_zero_when_below_min_points():
    policy = RedemptionPolicy(min_points=500)
    assert max_redeemable_points(10000, 499, policy, CNY) == 0
    assert max_redeemable_points(400, 10**6, policy, CNY) == 0


def test_max_redeemable_is_zero_without_points_or_share():
    assert max_redeemable_points(10000, 0, DEFAULT, CNY) == 0
    assert max_redeemable_points(10000, 500, RedemptionPolicy(max_share_bp=0), CNY) == 0


def test_max_redeemable_in_jpy_rounds_down_to_whole_yen():
    assert max_redeemable_points(1000, 150, JPY_100, JPY) == 100
    assert max_redeemable_points(1000, 99, JPY_100, JPY) == 0
    assert max_redeemable_points(3, 10**6, JPY_100, JPY) == 300


def test_max_redeemable_with_one_point_per_yuan_does_not_round_up_past_the_order():
    # A 1.50 yuan order: one point (1 yuan) fits, two points (2 yuan) would exceed the order.
    policy = RedemptionPolicy(points_per_unit=1)
    points = max_redeemable_points(150, 10, policy, CNY)
    assert points == 1
    assert check_redemption(points, 150, policy, CNY) == Redemption(1, 100)


def test_max_redeemable_with_an_awkward_ratio_is_a_whole_amount():
    policy = RedemptionPolicy(points_per_unit=3)  # 3 points = 1 yuan
    assert max_redeemable_points(1000, 10**6, policy, CNY) == 30
    assert max_redeemable_points(99, 10**6, policy, CNY) == 0
    assert max_redeemable_points(1000, 29, policy, CNY) == 27


policies = st.builds(
    RedemptionPolicy,
    points_per_unit=st.one_of(st.sampled_from([1, 3, 7, 100, 150, 250]), st.integers(1, 10**4)),
    max_share_bp=st.integers(min_value=0, max_value=10_000),
    min_points=st.integers(min_value=1, max_value=1000),
    min_order_minor=st.integers(min_value=0, max_value=10_000),
)
exponents = st.sampled_from([0, 2, 3])


@settings(max_examples=300, deadline=None)
@given(
    policy=policies,
    exponent=exponents,
    order=st.integers(min_value=0, max_value=10**7),
    available=st.integers(min_value=0, max_value=10**7),
)
def test_max_redeemable_never_exceeds_available_or_share_and_is_a_valid_redemption(
    policy, exponent, order, available
):
    points = max_redeemable_points(order, available, policy, exponent)
    assert 0 <= points <= available
    assert value_minor(points, policy, exponent) <= max_discount_minor(order, policy)
    if points > 0:
        redemption = check_redemption(points, order, policy, exponent)
        assert redemption.points == points


@settings(max_examples=150, deadline=None)
@given(
    policy=st.builds(
        RedemptionPolicy,
        points_per_unit=st.integers(1, 300),
        max_share_bp=st.integers(0, 10_000),
        min_points=st.integers(1, 50),
        min_order_minor=st.integers(0, 300),
    ),
    exponent=exponents,
    order=st.integers(min_value=0, max_value=3000),
    available=st.integers(min_value=0, max_value=600),
)
def test_max_redeemable_is_the_largest_valid_redemption(policy, exponent, order, available):
    def valid(p):
        try:
            check_redemption(p, order, policy, exponent)
        except RedemptionLimit:
            return False
        return True

    best = max((p for p in range(1, available + 1) if valid(p)), default=0)
    assert max_redeemable_points(order, available, policy, exponent) == best
