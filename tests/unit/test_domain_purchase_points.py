"""What an order earns before caps: ratios per line, one rounding, paid-with-points share."""

import datetime as dt
import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty.domain.rounding import Rounding
from loyalty.domain.rules import Campaign, OrderLine, RuleSet, purchase_points
from loyalty.errors import InvalidAmount, InvalidInput

AT = dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC)  # a Tuesday


def earn(rules, lines, *, paid=0, exponent=2, rounding=Rounding.FLOOR, at=AT, tz="Asia/Shanghai"):
    if isinstance(lines, int):
        lines = [OrderLine(lines)]
    return purchase_points(
        rules,
        lines,
        paid_with_points_minor=paid,
        at=at,
        tz=tz,
        exponent=exponent,
        rounding=rounding,
    )


BASE = RuleSet()


# base ratio and currencies


def test_one_point_per_yuan_floors_the_fen():
    assert earn(BASE, 12345) == 123  # 123.45 yuan


def test_rounding_policy_is_applied_to_the_exact_total():
    assert earn(BASE, 12350, rounding=Rounding.FLOOR) == 123
    assert earn(BASE, 12350, rounding=Rounding.HALF_UP) == 124
    assert earn(BASE, 12350, rounding=Rounding.HALF_EVEN) == 124  # 123.5 -> 124 (even)
    assert earn(BASE, 12250, rounding=Rounding.HALF_EVEN) == 122  # 122.5 -> 122 (even)
    assert earn(BASE, 12250, rounding=Rounding.HALF_UP) == 123


def test_jpy_has_no_minor_unit():
    assert earn(BASE, 1234, exponent=0) == 1234


def test_kwd_has_three_decimals():
    assert earn(BASE, 12345, exponent=3) == 12  # 12.345 dinar


def test_less_than_one_major_unit_earns_nothing_with_floor():
    assert earn(BASE, 99) == 0


def test_fractional_base_ratio():
    assert earn(RuleSet(base_ratio=Fraction(3, 2)), 1000) == 15
    assert earn(RuleSet(base_ratio=Fraction(0)), 1000) == 0


# lines, categories and SKUs

RATIOS = RuleSet(
    category_ratios={"drinks": Fraction(2), "books": Fraction(1, 2)},
    sku_ratios={"LATTE": Fraction(5)},
)


def test_each_line_uses_its_own_ratio():
    lines = [
        OrderLine(1000, category="drinks"),  # 10 yuan x 2 = 20
        OrderLine(1000, sku="LATTE", category="drinks"),  # 10 yuan x 5 = 50
        OrderLine(1000, category="books"),  # 10 yuan x 0.5 = 5
        OrderLine(1000),  # 10 yuan x 1 = 10
    ]
    assert earn(RATIOS, lines) == 85


def test_exact_fractions_are_summed_before_rounding_once():
    # Each line alone is worth 0.6 points (floor 0), together they are worth 1.2 -> 1.
    lines = [OrderLine(60), OrderLine(60)]
    assert earn(BASE, lines) == 1
    assert earn(BASE, [OrderLine(60)]) == 0


def test_fractions_from_different_ratios_add_up():
    # 0.5 yuan x 0.5 = 0.25 and 0.75 yuan x 1 = 0.75: exactly 1 point.
    lines = [OrderLine(50, category="books"), OrderLine(75)]
    assert earn(RATIOS, lines) == 1


def test_zero_amount_lines_are_allowed_when_the_total_is_positive():
    assert earn(BASE, [OrderLine(0), OrderLine(500)]) == 5


# paid with points


def test_the_part_paid_with_points_earns_nothing():
    assert earn(BASE, 10000, paid=2500) == 75


def test_paying_everything_with_points_earns_nothing():
    assert earn(BASE, 10000, paid=10000) == 0


def test_paid_with_points_is_taken_from_every_line_in_proportion():
    lines = [OrderLine(6000), OrderLine(4000, category="drinks")]
    # Full order: 60 + 80 = 140. Half paid with points: half of each line earns.
    assert earn(RATIOS, lines) == 140
    assert earn(RATIOS, lines, paid=5000) == 70


def test_paid_more_than_the_total_is_invalid_input():
    with pytest.raises(InvalidInput, match="larger than the order total") as info:
        earn(BASE, 1000, paid=1001)
    assert info.value.details == {"paid_with_points_minor": 1001, "total": 1000}


@pytest.mark.parametrize("paid", [-1, 1.5, True, "10"])
def test_paid_with_points_must_be_a_whole_non_negative_amount(paid):
    with pytest.raises(InvalidAmount):
        earn(BASE, 1000, paid=paid)


@pytest.mark.parametrize("lines", [[], [OrderLine(0)], [OrderLine(0), OrderLine(0)]])
def test_an_order_needs_a_positive_total(lines):
    with pytest.raises(InvalidInput, match="positive total"):
        earn(BASE, lines)


# campaigns


def test_campaign_multiplies_matching_lines_only():
    rules = RuleSet(
        campaigns=(
            Campaign(
                name="drinks x3",
                multiplier=Fraction(3),
                starts_at=AT - dt.timedelta(days=1),
                ends_at=AT + dt.timedelta(days=1),
                categories=frozenset({"drinks"}),
            ),
        )
    )
    lines = [OrderLine(1000, category="drinks"), OrderLine(1000, category="books")]
    assert earn(rules, lines) == 40  # 10 x 3 + 10


def test_campaign_multiplies_before_the_single_rounding():
    rules = RuleSet(
        campaigns=(
            Campaign(
                name="x1.5",
                multiplier=Fraction(3, 2),
                starts_at=AT - dt.timedelta(days=1),
                ends_at=AT + dt.timedelta(days=1),
            ),
        )
    )
    assert earn(rules, 150) == 2  # 1.5 yuan x 1.5 = 2.25
    assert earn(rules, 150, at=AT + dt.timedelta(days=1)) == 1  # ended: 1.5 -> 1


# properties

amounts = st.integers(min_value=0, max_value=10**7)
line_ratios = st.fractions(min_value=0, max_value=20, max_denominator=1000)
exponents = st.sampled_from([0, 2, 3])


def exact_points(lines, ratios, exponent, paid=0):
    total = sum(lines)
    share = Fraction(total - paid, total)
    return sum(
        (Fraction(a) * share / 10**exponent * r for a, r in zip(lines, ratios, strict=True)),
        Fraction(0),
    )


def rules_for(ratios):
    return RuleSet(sku_ratios={f"S{i}": r for i, r in enumerate(ratios)})


def order(amounts_):
    return [OrderLine(a, sku=f"S{i}") for i, a in enumerate(amounts_)]


@st.composite
def orders(draw):
    n = draw(st.integers(min_value=1, max_value=6))
    lines = draw(st.lists(amounts, min_size=n, max_size=n).filter(lambda xs: sum(xs) > 0))
    ratios = draw(st.lists(line_ratios, min_size=n, max_size=n))
    return lines, ratios


@settings(max_examples=100, deadline=None)
@given(data=orders(), exponent=exponents)
def test_floor_earns_exactly_the_floor_of_the_exact_total_and_never_mints(data, exponent):
    lines, ratios = data
    exact = exact_points(lines, ratios, exponent)
    points = earn(rules_for(ratios), order(lines), exponent=exponent)
    assert points == math.floor(exact)
    assert points <= exact


@settings(max_examples=100, deadline=None)
@given(data=orders(), exponent=exponents, rounding=st.sampled_from(list(Rounding)))
def test_every_policy_is_within_one_point_of_the_exact_total(data, exponent, rounding):
    lines, ratios = data
    exact = exact_points(lines, ratios, exponent)
    points = earn(rules_for(ratios), order(lines), exponent=exponent, rounding=rounding)
    assert abs(points - exact) < 1


@settings(max_examples=100, deadline=None)
@given(
    parts=st.lists(amounts, min_size=1, max_size=8).filter(lambda xs: sum(xs) > 0),
    ratio=line_ratios,
    exponent=exponents,
)
def test_splitting_an_order_into_lines_never_earns_more_than_the_exact_total(
    parts, ratio, exponent
):
    rules = RuleSet(base_ratio=ratio)
    whole = earn(rules, [OrderLine(sum(parts))], exponent=exponent)
    split = earn(rules, [OrderLine(p) for p in parts], exponent=exponent)
    exact = Fraction(sum(parts)) / 10**exponent * ratio
    assert split == whole == math.floor(exact)


@settings(max_examples=100, deadline=None)
@given(data=orders(), exponent=exponents)
def test_splitting_an_order_into_separate_orders_never_earns_more(data, exponent):
    lines, ratios = data
    rules = rules_for(ratios)
    together = earn(rules, order(lines), exponent=exponent)
    separately = sum(
        earn(rules, [line], exponent=exponent) for line in order(lines) if line.amount_minor > 0
    )
    assert separately <= together


@settings(max_examples=100, deadline=None)
@given(data=orders(), exponent=exponents, paid_share=st.fractions(0, 1))
def test_paying_with_points_earns_proportionally_less(data, exponent, paid_share):
    lines, ratios = data
    total = sum(lines)
    paid = math.floor(total * paid_share)
    rules = rules_for(ratios)
    points = earn(rules, order(lines), paid=paid, exponent=exponent)
    assert points == math.floor(exact_points(lines, ratios, exponent, paid))
    assert points <= earn(rules, order(lines), exponent=exponent)
