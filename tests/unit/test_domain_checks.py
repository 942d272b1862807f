"""Guards for integers, aware datetimes, idempotency keys and text."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from loyalty.domain.checks import (
    MAX_ID,
    MAX_KEY_LENGTH,
    require_aware,
    require_int,
    require_key,
    require_text,
)
from loyalty.errors import (
    InvalidAmount,
    InvalidIdempotencyKey,
    InvalidInput,
    NaiveDatetime,
)

# require_int


def test_require_int_returns_a_positive_int():
    assert require_int("points", 5) == 5


def test_require_int_rejects_bool_even_though_bool_is_an_int():
    with pytest.raises(InvalidAmount, match="must be an integer") as info:
        require_int("points", True)
    assert info.value.details == {"field": "points"}


def test_require_int_rejects_float_and_says_amounts_are_whole_numbers():
    with pytest.raises(InvalidAmount, match="whole numbers"):
        require_int("points", 5.0)


def test_require_int_rejects_str_without_the_float_hint():
    with pytest.raises(InvalidAmount) as info:
        require_int("points", "5")
    assert "whole numbers" not in info.value.message
    assert "str" in info.value.message


@pytest.mark.parametrize("value", [None, [5], 5 + 0j])
def test_require_int_rejects_other_types(value):
    with pytest.raises(InvalidAmount):
        require_int("points", value)


@pytest.mark.parametrize("value", [0, -1, -100])
def test_require_int_rejects_zero_and_negative_by_default(value):
    with pytest.raises(InvalidAmount, match="must be positive") as info:
        require_int("points", value)
    assert info.value.details == {"field": "points", "value": value}


def test_require_int_with_minimum_zero_accepts_zero_but_not_negative():
    assert require_int("paid", 0, minimum=0) == 0
    with pytest.raises(InvalidAmount, match="at least 0"):
        require_int("paid", -1, minimum=0)


def test_require_int_with_a_higher_minimum_names_it():
    with pytest.raises(InvalidAmount, match="at least 10"):
        require_int("points", 9, minimum=10)
    assert require_int("points", 10, minimum=10) == 10


def test_require_int_accepts_up_to_what_a_bigint_column_holds_and_no_more():
    # Until the bounds existed this test pinned require_int(10**30) == 10**30: that was the bug
    # (the value escaped later as OverflowError or DataError).
    assert require_int("row id", MAX_ID) == MAX_ID
    with pytest.raises(InvalidAmount, match="at most") as info:
        require_int("row id", MAX_ID + 1)
    assert info.value.details == {"field": "row id", "maximum": MAX_ID}
    with pytest.raises(InvalidAmount, match="a number of 31 digits"):
        require_int("points", 10**30)


def test_invalid_amount_is_an_invalid_input():
    assert issubclass(InvalidAmount, InvalidInput)


# require_aware


def test_require_aware_rejects_a_naive_datetime():
    with pytest.raises(NaiveDatetime, match="no time zone") as info:
        require_aware("at", dt.datetime(2026, 1, 1, 12, 0))
    assert info.value.details == {"field": "at"}


def test_require_aware_converts_to_utc():
    shanghai = dt.datetime(2026, 1, 1, 8, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    result = require_aware("at", shanghai)
    assert result == dt.datetime(2026, 1, 1, 0, 0, tzinfo=dt.UTC)
    assert result.tzinfo is dt.UTC


def test_require_aware_keeps_a_utc_datetime():
    at = dt.datetime(2026, 5, 1, 3, 4, 5, 6, tzinfo=dt.UTC)
    assert require_aware("at", at) == at


def test_require_aware_accepts_fixed_offsets():
    at = dt.datetime(2026, 1, 1, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    assert require_aware("at", at) == dt.datetime(2026, 1, 1, 5, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize("value", [dt.date(2026, 1, 1), "2026-01-01T00:00:00Z", 0, None])
def test_require_aware_rejects_non_datetimes(value):
    with pytest.raises(InvalidInput, match="must be a datetime") as info:
        require_aware("at", value)
    assert not isinstance(info.value, NaiveDatetime)


def test_require_aware_treats_a_tzinfo_without_offset_as_naive():
    class NoOffset(dt.tzinfo):
        def utcoffset(self, d):
            return None

    with pytest.raises(NaiveDatetime):
        require_aware("at", dt.datetime(2026, 1, 1, tzinfo=NoOffset()))


# require_key


@pytest.mark.parametrize("key", ["a", "order-123", "earn:order_1/2?x=y", "~" * MAX_KEY_LENGTH])
def test_require_key_accepts_printable_ascii_without_spaces(key):
    assert require_key(key) == key


@pytest.mark.parametrize("key", ["", None, 123, b"abc"])
def test_require_key_rejects_empty_and_non_strings(key):
    with pytest.raises(InvalidIdempotencyKey, match="non-empty string"):
        require_key(key)


@pytest.mark.parametrize("key", ["has space", " lead", "trail ", "tab\there", "\x00", "x\x7f"])
def test_require_key_rejects_spaces_and_control_characters(key):
    with pytest.raises(InvalidIdempotencyKey, match="printable ASCII"):
        require_key(key)


@pytest.mark.parametrize("key", ["abc\n", "abc\r\n", "\n"])
def test_require_key_rejects_a_trailing_newline(key):
    with pytest.raises(InvalidIdempotencyKey, match="printable ASCII"):
        require_key(key)


@pytest.mark.parametrize("key", ["订单-1", "café", "ｆｕｌｌ"])
def test_require_key_rejects_non_ascii(key):
    with pytest.raises(InvalidIdempotencyKey):
        require_key(key)


def test_require_key_rejects_more_than_200_characters():
    assert MAX_KEY_LENGTH == 200
    with pytest.raises(InvalidIdempotencyKey, match="201 characters long"):
        require_key("k" * 201)


def test_require_key_names_the_field_in_its_errors():
    with pytest.raises(InvalidIdempotencyKey, match=r"^order_id ") as info:
        require_key("", name="order_id")
    assert info.value.details == {"field": "order_id"}


# require_text


def test_require_text_accepts_text_up_to_the_limit():
    assert require_text("name", "Coffee Club") == "Coffee Club"
    assert require_text("code", "x" * 64, max_length=64) == "x" * 64


@pytest.mark.parametrize("value", ["", "   ", None, 5])
def test_require_text_rejects_blank_and_non_strings(value):
    with pytest.raises(InvalidInput, match="non-empty string"):
        require_text("name", value)


def test_require_text_rejects_too_long_text():
    with pytest.raises(InvalidInput, match="longer than 64"):
        require_text("code", "x" * 65, max_length=64)
