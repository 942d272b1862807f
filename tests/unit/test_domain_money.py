"""Currency codes and the decimals of their minor units."""

import pytest

from loyalty.domain.money import minor_unit_exponent, normalize_currency, require_currency
from loyalty.errors import CurrencyMismatch, InvalidInput


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


def test_unknown_but_well_formed_codes_default_to_two_decimals():
    assert minor_unit_exponent("XYZ") == 2


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
