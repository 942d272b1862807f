"""Guards for integers, aware datetimes, idempotency keys and text."""

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest

from loyalty.domain.checks import (
    MAX_DAYS,
    MAX_ID,
    MAX_KEY_LENGTH,
    MAX_MINOR_UNITS,
    MAX_POINTS,
    clean_text,
    derive_key,
    require_aware,
    require_days,
    require_email,
    require_int,
    require_key,
    require_member_id,
    require_minor_units,
    require_order_id,
    require_points,
    require_program_code,
    require_text,
)
from loyalty.errors import (
    InvalidAmount,
    InvalidIdempotencyKey,
    InvalidInput,
    InvalidText,
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


# bounds


@pytest.mark.parametrize(
    ("check", "bound"),
    [
        (require_points, MAX_POINTS),
        (require_minor_units, MAX_MINOR_UNITS),
        (require_days, MAX_DAYS),
    ],
)
def test_named_bounds_accept_their_maximum_and_refuse_one_more(check, bound):
    assert check("n", bound) == bound
    with pytest.raises(InvalidAmount, match=f"at most {bound}"):
        check("n", bound + 1)
    with pytest.raises(InvalidAmount, match="got 100000000000000000000"):
        check("n", 10**20)
    with pytest.raises(InvalidAmount, match="a number of 41 digits"):
        check("n", 10**40)


def test_the_bounds_are_what_the_readme_says():
    assert (MAX_POINTS, MAX_MINOR_UNITS, MAX_DAYS, MAX_ID) == (10**12, 10**14, 3660, 2**63 - 1)


# clean_text


@pytest.mark.parametrize(
    ("given", "cleaned"),
    [
        ("  alice ", "alice"),
        ("alice\n", "alice"),
        ("\talice", "alice"),
        ("Rene\u0301e", "Ren\u00e9e"),  # NFD to NFC
        ("会员-张三", "会员-张三"),
        ("a\u00a0b", "a\u00a0b"),  # a no-break space inside is visible enough
        ("😀", "😀"),
        ("Łódź café", "Łódź café"),
    ],
)
def test_clean_text_normalises_and_strips(given, cleaned):
    assert clean_text("name", given, max_length=50) == cleaned


@pytest.mark.parametrize(
    ("value", "codepoint"),
    [
        ("a\x00b", "U+0000"),
        ("a\x07b", "U+0007"),
        ("a\x1b[31mb", "U+001B"),
        ("a\x7fb", "U+007F"),
        ("a\x85b", "U+0085"),
        ("a\nb", "U+000A"),
        ("a\tb", "U+0009"),
        ("a\rb", "U+000D"),
        ("a\ud800b", "U+D800"),
        ("a\udfffb", "U+DFFF"),
        ("a\u202ab", "U+202A"),
        ("a\u202eb", "U+202E"),
        ("a\u2066b", "U+2066"),
        ("a\u2069b", "U+2069"),
        ("a\u200eb", "U+200E"),
        ("a\u200fb", "U+200F"),
        ("a\u061cb", "U+061C"),
        ("a\u200bb", "U+200B"),
        ("a\u200cb", "U+200C"),
        ("a\u200db", "U+200D"),
        ("a\u2060b", "U+2060"),
        ("a\ufeffb", "U+FEFF"),
        ("a\u00adb", "U+00AD"),
        ("a\ue000b", "U+E000"),
        ("a\U000f0000b", "U+F0000"),
        ("a\U000e0fffb", "U+E0FFF"),
        ("a\u2028b", "U+2028"),
        ("a\u2029b", "U+2029"),
    ],
)
def test_clean_text_refuses_unshowable_characters_and_names_them(value, codepoint):
    # the message names the character (or what it is, for controls and unassigned points)
    with pytest.raises(InvalidText, match=re.escape(codepoint)) as info:
        clean_text("member", value, max_length=50)
    assert info.value.details["codepoint"] == codepoint
    assert info.value.details["position"] == 1
    assert "remove it" in info.value.message


def test_clean_text_multiline_allows_newlines_and_tabs_and_unifies_line_ends():
    assert clean_text("reason", " a\r\nb\rc\td \n", max_length=50, multiline=True) == "a\nb\nc\td"
    with pytest.raises(InvalidText):
        clean_text("reason", "a\n\x00", max_length=50, multiline=True)
    with pytest.raises(InvalidText):
        clean_text("reason", "a\u2028b", max_length=50, multiline=True)


@pytest.mark.parametrize("value", ["", "   ", "\n\t ", None, 5, b"alice"])
def test_clean_text_refuses_blank_and_non_strings_as_invalid_input(value):
    with pytest.raises(InvalidInput, match="non-empty string") as info:
        clean_text("name", value, max_length=50)
    assert type(info.value) is InvalidInput


def test_clean_text_counts_the_cleaned_length():
    assert clean_text("code", " " + "x" * 64 + " ", max_length=64) == "x" * 64
    assert len(clean_text("n", "e\u0301" * 10, max_length=10)) == 10  # NFC makes it fit
    with pytest.raises(InvalidInput, match="longer than 64"):
        clean_text("code", "x" * 65, max_length=64)
    with pytest.raises(InvalidInput, match="longer than 64"):
        clean_text("code", "x" * 10**7, max_length=64)


def test_require_text_returns_the_cleaned_value():
    assert require_text("name", " Coffee\u00a0Club ") == "Coffee\u00a0Club"
    with pytest.raises(InvalidText):
        require_text("name", "ali\u200bce")


# ids and emails


def test_program_and_member_ids_are_cleaned_with_their_limits():
    assert require_program_code(" shop ") == "shop"
    assert require_member_id(" 会员-张三 ") == "会员-张三"
    with pytest.raises(InvalidInput, match="longer than 64"):
        require_program_code("p" * 65)
    with pytest.raises(InvalidInput, match="longer than 128"):
        require_member_id("m" * 129)


def test_order_ids_keep_the_rules_of_keys():
    assert require_order_id("pi_3Nk") == "pi_3Nk"
    for bad in ("", "order 1", "订单-1", "o" * 201):
        with pytest.raises(InvalidIdempotencyKey):
            require_order_id(bad)


@pytest.mark.parametrize("email", ["a@b", " dan@example.com ", "名@例え.jp", "a+b@x.io"])
def test_require_email_accepts_one_at_sign_and_no_spaces(email):
    assert require_email(email) == email.strip()


@pytest.mark.parametrize(
    "email", ["nope", "a@b@c", "@b", "a@", "a b@c", "a@b\u00a0c", "a@b\u3000c"]
)
def test_require_email_refuses_other_shapes(email):
    with pytest.raises(InvalidInput, match="not an email address"):
        require_email(email)


# derived keys


@pytest.mark.parametrize("key", ["earn:pi_1", "action:sign_in:alice:2026-11-21", "k" * 200])
def test_derive_key_keeps_a_valid_key_byte_for_byte(key):
    assert derive_key(key) == key


def test_derive_key_percent_encodes_what_a_key_may_not_hold():
    key = derive_key("action:签到:会员 张三:r%1")
    assert key == "utf8:action:%E7%AD%BE%E5%88%B0:%E4%BC%9A%E5%91%98%20%E5%BC%A0%E4%B8%89:r%251"
    assert require_key(key) == key


def test_derive_key_digests_what_would_be_too_long():
    long = "action:sign_in:" + "会" * 128 + ":r"
    key = derive_key(long)
    assert key.startswith("sha256:") and len(key) == 71 and require_key(key) == key
    assert derive_key("earn:" + "o" * 200).startswith("sha256:")
    assert derive_key(long) == key  # deterministic


def test_derive_key_is_injective_on_distinct_escaped_ids():
    ids = ["会员", "会员 ", "会 员", "%E4%BC%9A%E5%91%98", "a%b", "a%25b"]
    keys = {derive_key(f"action:x:{m}:r") for m in ids}
    assert len(keys) == len(ids)
