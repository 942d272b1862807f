"""Which lots pay for a spend: soonest expiry first, never-expiring last (FEFO)."""

import datetime as dt
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty.domain.allocation import LotView, allocate, spending_order
from loyalty.errors import InsufficientPoints, RuleViolation


def utc(*args):
    return dt.datetime(*args, tzinfo=dt.UTC)


NEW_YEAR = utc(2026, 1, 1)


def lot(id, available, expires=None, earned=NEW_YEAR):
    return LotView(id=id, available=available, expires_at=expires, earned_at=earned)


def test_soonest_expiry_is_spent_first():
    lots = [
        lot(1, 100, expires=utc(2026, 6, 1)),
        lot(2, 100, expires=utc(2026, 4, 1)),
        lot(3, 100, expires=utc(2026, 5, 1)),
    ]
    assert allocate(lots, 250) == [(2, 100), (3, 100), (1, 50)]


def test_never_expiring_lots_are_spent_last():
    lots = [lot(1, 100, expires=None), lot(2, 100, expires=utc(2099, 1, 1))]
    assert allocate(lots, 150) == [(2, 100), (1, 50)]


def test_equal_expiry_spends_the_oldest_earned_first():
    same = utc(2026, 6, 1)
    lots = [
        lot(1, 10, expires=same, earned=utc(2026, 3, 1)),
        lot(2, 10, expires=same, earned=utc(2026, 2, 1)),
    ]
    assert allocate(lots, 15) == [(2, 10), (1, 5)]


def test_never_expiring_lots_are_spent_oldest_first():
    lots = [lot(1, 10, earned=utc(2026, 3, 1)), lot(2, 10, earned=utc(2026, 2, 1))]
    assert allocate(lots, 15) == [(2, 10), (1, 5)]


def test_full_ties_are_broken_by_id():
    lots = [lot(9, 10), lot(3, 10), lot(5, 10)]
    assert allocate(lots, 25) == [(3, 10), (5, 10), (9, 5)]


def test_expiries_in_different_zones_compare_as_instants():
    plus8 = dt.timezone(dt.timedelta(hours=8))
    lots = [
        lot(1, 10, expires=utc(2026, 6, 1, 0)),
        lot(2, 10, expires=dt.datetime(2026, 6, 1, 7, tzinfo=plus8)),  # 23:00 UTC on May 31
    ]
    assert allocate(lots, 10) == [(2, 10)]


def test_partial_take_from_the_first_lot():
    assert allocate([lot(1, 100)], 30) == [(1, 30)]


def test_exact_total_uses_every_lot():
    assert allocate([lot(1, 10), lot(2, 20)], 30) == [(1, 10), (2, 20)]


def test_stops_as_soon_as_the_points_are_covered():
    assert allocate([lot(1, 10), lot(2, 20), lot(3, 30)], 10) == [(1, 10)]


def test_empty_lots_are_skipped():
    assert allocate([lot(1, 0, expires=utc(2026, 1, 2)), lot(2, 10)], 5) == [(2, 5)]


def test_zero_points_takes_nothing():
    assert allocate([lot(1, 10)], 0) == []
    assert allocate([], 0) == []


def test_input_order_does_not_matter():
    lots = [
        lot(i, 7, expires=utc(2026, 1 + i % 12, 1), earned=utc(2025, 1, 1 + i)) for i in range(20)
    ]
    expected = allocate(lots, 100)
    shuffled = lots[:]
    random.Random(4).shuffle(shuffled)
    assert allocate(shuffled, 100) == expected


def test_accepts_any_iterable():
    assert allocate(iter([lot(1, 10)]), 5) == [(1, 5)]


def test_insufficient_points_reports_available_and_requested():
    with pytest.raises(InsufficientPoints, match="has 30 available points, 31 are needed") as info:
        allocate([lot(1, 10), lot(2, 20)], 31)
    assert info.value.details == {"available": 30, "requested": 31}
    assert isinstance(info.value, RuleViolation)


def test_insufficient_points_with_no_lots():
    with pytest.raises(InsufficientPoints) as info:
        allocate([], 1)
    assert info.value.details == {"available": 0, "requested": 1}


def test_spending_order_puts_never_expiring_after_any_date():
    never = lot(1, 1, expires=None)
    far = lot(2, 1, expires=dt.datetime(9999, 12, 31, tzinfo=dt.UTC))
    assert spending_order(far) < spending_order(never)


lot_lists = st.lists(
    st.builds(
        LotView,
        id=st.integers(min_value=1, max_value=10**6),
        available=st.integers(min_value=0, max_value=1000),
        expires_at=st.one_of(
            st.none(),
            st.datetimes(min_value=dt.datetime(2026, 1, 1), max_value=dt.datetime(2027, 1, 1)).map(
                lambda d: d.replace(tzinfo=dt.UTC)
            ),
        ),
        earned_at=st.datetimes(
            min_value=dt.datetime(2025, 1, 1), max_value=dt.datetime(2026, 1, 1)
        ).map(lambda d: d.replace(tzinfo=dt.UTC)),
    ),
    max_size=10,
    unique_by=lambda x: x.id,
)


@settings(max_examples=200, deadline=None)
@given(lots=lot_lists, points=st.integers(min_value=0, max_value=5000))
def test_allocation_takes_exactly_the_points_in_spending_order_or_raises(lots, points):
    total = sum(x.available for x in lots)
    if points > total:
        with pytest.raises(InsufficientPoints):
            allocate(lots, points)
        return
    taken = allocate(lots, points)
    assert sum(t for _, t in taken) == points
    by_id = {x.id: x for x in lots}
    assert all(0 < t <= by_id[i].available for i, t in taken)
    # Every lot but the last one taken is emptied, and they follow the spending order.
    order = [x.id for x in sorted(lots, key=spending_order) if x.available > 0]
    assert [i for i, _ in taken] == order[: len(taken)]
    assert all(t == by_id[i].available for i, t in taken[:-1])
