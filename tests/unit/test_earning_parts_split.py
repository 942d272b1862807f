"""Splitting the points granted over an order's categories and campaigns: whole points that
add up to exactly what was granted, each within one point of its exact share."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from loyalty.domain.earning_parts import PartWeight, split_points

weights = st.lists(
    st.builds(
        PartWeight,
        category=st.sampled_from([None, "生鲜", "数码", "服饰"]),
        campaign=st.sampled_from([None, "双十一"]),
        exact=st.fractions(min_value=Fraction(1, 100), max_value=10**9),
        bonus_share=st.sampled_from([Fraction(0), Fraction(1, 2), Fraction(2, 3)]),
    ),
    min_size=1,
    max_size=6,
    unique_by=lambda w: (w.category, w.campaign),
)


@given(st.integers(min_value=0, max_value=10**12), weights)
def test_the_parts_add_up_to_the_points_granted(granted: int, parts: list[PartWeight]) -> None:
    split = split_points(granted, parts)
    assert sum(p.points for p in split) == granted
    total = sum(w.exact for w in parts)
    exact = {(w.category, w.campaign): granted * w.exact / total for w in parts}
    for p in split:
        assert p.points > 0 and abs(p.points - exact[(p.category, p.campaign)]) < 1
        assert 0 <= p.bonus <= p.points
    left_out = set(exact) - {(p.category, p.campaign) for p in split}
    assert all(exact[key] < 1 for key in left_out)


def test_largest_remainders_take_the_points_left() -> None:
    parts = [
        PartWeight("a", None, Fraction(200), Fraction(0)),
        PartWeight("b", None, Fraction(600), Fraction(2, 3)),
        PartWeight(None, None, Fraction(50), Fraction(0)),
    ]
    assert [(p.points, p.bonus) for p in split_points(101, parts)] == [(24, 0), (71, 47), (6, 0)]


def test_nothing_granted_has_no_parts() -> None:
    assert split_points(0, [PartWeight("a", None, Fraction(1), Fraction(0))]) == ()
