"""Currency codes and the decimals of their minor units."""

import pytest

from loyalty.domain.money import (
    EXPONENTS,
    minor_unit_exponent,
    normalize_currency,
    require_currency,
)
from loyalty.errors import CurrencyMismatch, InvalidInput, UnknownCurrency


@pytest.mark.parametrize(
    ("currency", "exponent"),
    [
        ("CNY", 2),
        ("USD", 2),
        ("EUR", 2),
        ("JPY", 0),
        ("KRW", 0),
        ("VND", 0),
        ("KWD", 3),
        ("BHD", 3),
        ("TND", 3),
    ],
)
def test_minor_unit_exponent(currency, exponent):
    assert minor_unit_exponent(currency) == exponent


def test_minor_unit_exponent_accepts_lower_case():
    assert minor_unit_exponent("cny") == 2
    assert minor_unit_exponent("jpy") == 0
    assert minor_unit_exponent("kwd") == 3


# Until ISO 4217 was checked this test pinned minor_unit_exponent("XYZ") == 2: that was the
# bug (any three letters made a two-decimal currency).
@pytest.mark.parametrize("code", ["XYZ", "xyz", "ABC", "XAU", "XTS", "XXX", "RMB", "NTD"])
def test_unknown_but_well_formed_codes_raise_unknown_currency_saying_what_to_do(code):
    with pytest.raises(UnknownCurrency, match="not an active ISO 4217 currency") as info:
        normalize_currency(code)
    assert "such as CNY" in info.value.message
    assert info.value.details == {"currency": code.upper()}
    with pytest.raises(UnknownCurrency):
        minor_unit_exponent(code)
    assert issubclass(UnknownCurrency, InvalidInput)


@pytest.mark.parametrize(
    ("currency", "exponent"),
    [
        ("CLF", 4),
        ("UYW", 4),
        ("IQD", 3),
        ("LYD", 3),
        ("OMR", 3),
        ("JOD", 3),
        ("UYI", 0),
        ("XOF", 0),
        ("CLP", 0),
        ("GBP", 2),
        ("HKD", 2),
        ("TWD", 2),
        ("HUF", 2),
        ("INR", 2),
        ("XCG", 2),
        ("ZWG", 2),
    ],
)
def test_exponents_follow_iso_4217(currency, exponent):
    assert minor_unit_exponent(currency) == exponent


@pytest.mark.parametrize(("currency", "exponent"), [("MGA", 0), ("ISK", 2), ("UGX", 0)])
def test_where_stripe_counts_differently_stripe_wins(currency, exponent):
    assert minor_unit_exponent(currency) == exponent


def test_the_table_holds_every_active_currency_in_upper_case_with_a_known_exponent():
    assert len(EXPONENTS) >= 160
    assert all(len(c) == 3 and c.isascii() and c.isupper() for c in EXPONENTS)
    assert set(EXPONENTS.values()) == {0, 2, 3, 4}


def test_require_currency_refuses_unknown_codes_before_comparing():
    with pytest.raises(UnknownCurrency):
        require_currency("XYZ", "CNY")


def test_normalize_currency_upper_cases():
    assert normalize_currency("cny") == "CNY"
    assert normalize_currency("Cny") == "CNY"
    assert normalize_currency("CNY") == "CNY"


@pytest.mark.parametrize("code", ["CN", "12A", "cnyy", "", "C Y", "ÄBC", "ＣＮＹ", None, 156])
def test_normalize_currency_rejects_anything_but_three_ascii_letters(code):
    with pytest.raises(InvalidInput, match="three-letter ISO code"):
        normalize_currency(code)


def test_minor_unit_exponent_rejects_malformed_codes():
    with pytest.raises(InvalidInput):
        minor_unit_exponent("CN")


def test_require_currency_returns_the_normalised_code_when_it_matches():
    assert require_currency("cny", "CNY") == "CNY"


def test_require_currency_raises_currency_mismatch_with_details():
    with pytest.raises(CurrencyMismatch, match="in USD but the program counts in CNY") as info:
        require_currency("usd", "CNY")
    assert info.value.details == {"currency": "USD", "expected": "CNY"}
    assert isinstance(info.value, InvalidInput)


def test_require_currency_rejects_malformed_codes_before_comparing():
    with pytest.raises(InvalidInput) as info:
        require_currency("CNYY", "CNY")
    assert not isinstance(info.value, CurrencyMismatch)
