"""Injectable clocks."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from loyalty.domain.clock import Clock, FixedClock, SystemClock
from loyalty.errors import NaiveDatetime

START = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def test_fixed_clock_stands_still():
    clock = FixedClock(START)
    assert clock.now() == START
    assert clock.now() == START


def test_fixed_clock_stores_utc():
    clock = FixedClock(dt.datetime(2026, 3, 1, 20, 0, tzinfo=ZoneInfo("Asia/Shanghai")))
    assert clock.now() == START
    assert clock.now().tzinfo is dt.UTC


def test_fixed_clock_rejects_a_naive_start():
    with pytest.raises(NaiveDatetime):
        FixedClock(dt.datetime(2026, 3, 1, 12, 0))


def test_advance_moves_forward_and_returns_the_new_time():
    clock = FixedClock(START)
    assert clock.advance(dt.timedelta(days=1, hours=2)) == START + dt.timedelta(days=1, hours=2)
    assert clock.now() == START + dt.timedelta(days=1, hours=2)


def test_advance_accumulates():
    clock = FixedClock(START)
    clock.advance(dt.timedelta(minutes=30))
    clock.advance(dt.timedelta(minutes=30))
    assert clock.now() == START + dt.timedelta(hours=1)


def test_set_moves_the_clock_and_converts_to_utc():
    clock = FixedClock(START)
    clock.set(dt.datetime(2026, 1, 1, 1, 0, tzinfo=ZoneInfo("Europe/Berlin")))
    assert clock.now() == dt.datetime(2026, 1, 1, 0, 0, tzinfo=dt.UTC)
    assert clock.now().tzinfo is dt.UTC


def test_set_rejects_a_naive_datetime_and_keeps_the_old_time():
    clock = FixedClock(START)
    with pytest.raises(NaiveDatetime):
        clock.set(dt.datetime(2026, 1, 1))
    assert clock.now() == START


def test_system_clock_returns_aware_utc_now():
    before = dt.datetime.now(dt.UTC)
    now = SystemClock().now()
    after = dt.datetime.now(dt.UTC)
    assert now.utcoffset() == dt.timedelta(0)
    assert before <= now <= after


def test_both_clocks_satisfy_the_clock_protocol():
    clocks: list[Clock] = [SystemClock(), FixedClock(START)]
    assert all(c.now().tzinfo is not None for c in clocks)
