"""The share of an order's points each refund takes back (frozen, then settled when it goes
through), and where redeemed points return."""

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalty.domain.moves import Move
from loyalty.domain.reversal import (
    FrozenSlice,
    Share,
    cumulative_share,
    release_moves,
    return_slices,
    reversal_points,
    settled_points,
    shrink_share,
    split_last,
    take_last,
)
from loyalty.errors import InvalidAmount


def share(granted: int, refunded_before: int, amount: int, reversed_before: int) -> int:
    return reversal_points(
        granted=granted,
        refundable=1_000,
        refunded_before=refunded_before,
        amount=amount,
        reversed_before=reversed_before,
    )


def test_a_partial_refund_takes_its_share_rounded_down():
    assert share(9, 0, 333, 0) == 2  # 9 * 333 / 1000 = 2.997, rounded down
    assert cumulative_share(9, 333, 1_000) == 2


def test_the_last_refund_takes_what_rounding_left():
    assert share(9, 666, 334, 5) == 4  # 9 in all, whatever the earlier refunds took


def test_refunding_more_than_was_paid_is_refused():
    with pytest.raises(InvalidAmount, match="more than the 100 paid"):
        reversal_points(granted=1, refundable=100, refunded_before=60, amount=41, reversed_before=0)


def test_an_order_with_nothing_paid_cannot_be_refunded():
    with pytest.raises(InvalidAmount):
        cumulative_share(10, 1, 0)


refund_steps = st.lists(
    st.tuples(st.integers(min_value=1, max_value=10_000), st.booleans()), max_size=30
)


@given(
    granted=st.integers(min_value=0, max_value=100_000),
    refundable=st.integers(min_value=1, max_value=1_000_000),
    steps=refund_steps,
)
def test_refunds_never_take_back_more_than_granted_and_all_of_it_at_the_end(
    granted: int, refundable: int, steps: list[tuple[int, bool]]
) -> None:
    live: list[tuple[int, int]] = []  # (amount, points) of refunds that did not fail
    for amount, fails in steps:
        refunded = sum(a for a, _p in live)
        amount = min(amount, refundable - refunded)
        if amount <= 0:
            break
        points = reversal_points(
            granted=granted,
            refundable=refundable,
            refunded_before=refunded,
            amount=amount,
            reversed_before=sum(p for _a, p in live),
        )
        assert points >= 0
        if fails:
            continue
        live.append((amount, points))
        assert sum(p for _a, p in live) <= granted
    rest = refundable - sum(a for a, _p in live)
    if rest:
        live.append(
            (
                rest,
                reversal_points(
                    granted=granted,
                    refundable=refundable,
                    refunded_before=refundable - rest,
                    amount=rest,
                    reversed_before=sum(p for _a, p in live),
                ),
            )
        )
    assert sum(p for _a, p in live) == granted


def test_redeemed_points_return_to_the_last_lots_first():
    taken = [(1, 200), (2, 100)]
    assert return_slices(taken, 0, 150) == [(2, 100), (1, 50)]
    assert return_slices(taken, 150, 150) == [(1, 150)]
    assert return_slices(taken, 300, 10) == []


@given(
    taken=st.lists(st.integers(min_value=1, max_value=500), min_size=1, max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=10),
)
def test_returns_in_steps_give_each_lot_back_at_most_what_it_gave(
    taken: list[int], cuts: list[int]
) -> None:
    lots = list(enumerate(taken))
    total = sum(taken)
    back: dict[int, int] = {}
    done = 0
    for cut in cuts:
        step = min(cut, total - done)
        slices = return_slices(lots, done, step)
        assert sum(p for _l, p in slices) == step
        for lot_id, points in slices:
            back[lot_id] = back.get(lot_id, 0) + points
        done += step
    for lot_id, points in back.items():
        assert points <= taken[lot_id]
    assert sum(back.values()) == done


def settle(granted: int, refundable: int, settled: list[tuple[int, int]], amount: int) -> int:
    """The settled share of a refund of ``amount`` after the ``(amount, points)`` settled."""
    return settled_points(
        granted=granted,
        refundable=refundable,
        settled_before=sum(a for a, _p in settled),
        amount=amount,
        reversed_before=sum(p for _a, p in settled),
    )


def test_a_settled_share_ignores_refunds_that_failed_meanwhile():
    # 3 points for 1000 paid. Opened while a refund of 200 was pending, a refund of 300 froze
    # floor(3 * 500 / 1000) - 0 = 1 point; the other failed, so it takes floor(0.9) = 0.
    frozen = reversal_points(
        granted=3, refundable=1_000, refunded_before=200, amount=300, reversed_before=0
    )
    assert frozen == 1
    assert settle(3, 1_000, [], 300) == 0
    # After it, a refund of the remaining 700 takes all 3 points.
    assert settle(3, 1_000, [(300, 0)], 700) == 3


def test_a_settled_share_is_never_negative():
    assert settle(3, 1_000, [(300, 2)], 100) == 0  # took too much earlier: nothing more


@given(
    granted=st.integers(min_value=0, max_value=10_000),
    refundable=st.integers(min_value=1, max_value=100_000),
    refunds=st.lists(
        st.tuples(st.integers(min_value=1, max_value=50_000), st.booleans()), max_size=8
    ),
    data=st.data(),
)
def test_settled_shares_total_the_share_of_the_money_in_any_order(
    granted: int,
    refundable: int,
    refunds: list[tuple[int, bool]],
    data: st.DataObject,
) -> None:
    facts, left = [], refundable
    for amount, through in refunds:
        if min(amount, left) > 0:
            facts.append((min(amount, left), through))
            left -= min(amount, left)
    through_money = sum(a for a, through in facts if through)
    totals = []
    for run in range(2):
        order = data.draw(st.permutations(range(len(facts))), label=f"order {run}")
        settled: list[tuple[int, int]] = []
        for index in order:
            amount, through = facts[index]
            if not through:
                continue  # failed: it counts for nothing
            points = settle(granted, refundable, settled, amount)
            assert points >= 0
            settled.append((amount, points))
            total = sum(p for _a, p in settled)
            assert total == cumulative_share(granted, sum(a for a, _p in settled), refundable)
        totals.append(sum(p for _a, p in settled))
    assert totals[0] == totals[1] == cumulative_share(granted, through_money, refundable)


def test_take_last_takes_from_the_end_first():
    assert take_last([3, 2, 4], 5) == [0, 1, 4]
    assert take_last([3, 2, 4], 0) == [0, 0, 0]
    assert take_last([3, 2, 4], 20) == [3, 2, 4]
    assert take_last([], 3) == []


@given(
    parts=st.lists(st.integers(min_value=0, max_value=50), max_size=8),
    points=st.integers(min_value=0, max_value=400),
)
def test_take_last_takes_what_it_can_and_leaves_the_first_parts_whole(
    parts: list[int], points: int
) -> None:
    taken = take_last(parts, points)
    assert sum(taken) == min(points, sum(parts))
    assert all(0 <= t <= p for t, p in zip(taken, parts, strict=True))
    for i in range(len(parts)):  # a part gives only once every later one gave all it had
        if taken[i]:
            assert all(taken[j] == parts[j] for j in range(i + 1, len(parts)))


def _slice(lot_id: int, available: int, pending: int = 0, **when: Any) -> FrozenSlice:
    return FrozenSlice(lot_id, available, pending, when.get("matures"), when.get("expired"))


NOW = dt.datetime(2026, 11, 21, 10, tzinfo=dt.UTC)


def test_a_share_shrinks_by_its_missing_points_first_then_gives_back_its_last_frozen() -> None:
    own = [_slice(1, 30), _slice(2, 20)]
    share = Share(points=60, frozen=50, lapsed=0, missing=10, moves=[])
    smaller = shrink_share(
        share, own, 35, release_kind="refund_release", reverse_kind="refund_reverse", now=NOW
    )
    # 25 fewer: 10 missing points, then 15 frozen ones from the end of the freeze (lot 2)
    assert (smaller.points, smaller.frozen, smaller.missing, smaller.lapsed) == (35, 35, 0, 0)
    assert smaller.moves == [
        Move("refund_release", 2, frozen=-15, available=15),
        Move("refund_reverse", 1, frozen=-30),
        Move("refund_reverse", 2, frozen=-5),
    ]


def test_released_points_stay_pending_until_maturity_and_expire_again_in_an_ended_lot() -> None:
    later = NOW + dt.timedelta(days=3)
    moves = release_moves(
        "dispute_release",
        [_slice(1, 5, 7, matures=later), _slice(2, 4, expired=NOW - dt.timedelta(days=1))],
        NOW,
    )
    assert moves == [
        Move("dispute_release", 1, frozen=-12, available=5, pending=7),
        Move("dispute_release", 2, frozen=-4, available=4),
        Move("expire_returned", 2, available=-4),
    ]
    assert split_last([_slice(1, 3), _slice(2, 2)], 4) == (
        [_slice(1, 1)],
        [_slice(2, 2), _slice(1, 2)],
    )
