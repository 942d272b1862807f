"""Rounding policies that turn exact fractional points into whole points."""

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty.domain.rounding import Rounding, round_points


@pytest.mark.parametrize(
    ("exact", "floor", "half_up", "half_even"),
    [
        (Fraction(0), 0, 0, 0),
        (Fraction(7), 7, 7, 7),
        (Fraction(5, 2), 2, 3, 2),  # 2.5
        (Fraction(7, 2), 3, 4, 4),  # 3.5
        (Fraction(1, 2), 0, 1, 0),  # 0.5
        (Fraction(3, 2), 1, 2, 2),  # 1.5
        (Fraction(249, 100), 2, 2, 2),  # 2.49
        (Fraction(251, 100), 2, 3, 3),  # 2.51
        (Fraction(99, 100), 0, 1, 1),  # 0.99
        (Fraction(1, 3), 0, 0, 0),
        (Fraction(2, 3), 0, 1, 1),
    ],
)
def test_each_policy_rounds_as_named(exact, floor, half_up, half_even):
    assert round_points(exact, Rounding.FLOOR) == floor
    assert round_points(exact, Rounding.HALF_UP) == half_up
    assert round_points(exact, Rounding.HALF_EVEN) == half_even


def test_exact_half_goes_to_even_neighbour_with_half_even_and_up_with_half_up():
    assert round_points(Fraction(5, 2), Rounding.HALF_EVEN) == 2
    assert round_points(Fraction(5, 2), Rounding.HALF_UP) == 3


def test_results_are_plain_ints():
    for policy in Rounding:
        assert type(round_points(Fraction(5, 2), policy)) is int


def test_negative_points_are_refused():
    with pytest.raises(ValueError, match="negative"):
        round_points(Fraction(-1, 2), Rounding.FLOOR)


def test_policies_parse_from_their_stored_names():
    assert Rounding("floor") is Rounding.FLOOR
    assert Rounding("half_up") is Rounding.HALF_UP
    assert Rounding("half_even") is Rounding.HALF_EVEN
    with pytest.raises(ValueError):
        Rounding("ceil")


exact_points = st.fractions(min_value=0, max_value=10**9, max_denominator=10**6)


@settings(max_examples=300, deadline=None)
@given(exact=exact_points)
def test_floor_never_exceeds_the_exact_value_and_every_policy_is_within_one(exact):
    assert round_points(exact, Rounding.FLOOR) <= exact
    for policy in Rounding:
        assert abs(round_points(exact, policy) - exact) < 1


@settings(max_examples=200, deadline=None)
@given(exact=exact_points)
def test_half_policies_are_nearest_integer(exact):
    for policy in (Rounding.HALF_UP, Rounding.HALF_EVEN):
        assert abs(round_points(exact, policy) - exact) <= Fraction(1, 2)


@settings(max_examples=200, deadline=None)
@given(whole=st.integers(min_value=0, max_value=10**12))
def test_whole_numbers_are_unchanged_by_every_policy(whole):
    for policy in Rounding:
        assert round_points(Fraction(whole), policy) == whole
