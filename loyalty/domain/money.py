"""Currencies: ISO codes and the number of decimals of their minor unit (as Stripe uses them)."""

from __future__ import annotations

from loyalty.errors import CurrencyMismatch, InvalidInput

# Stripe's zero-decimal and three-decimal currencies; every other ISO currency has two.
_ZERO_DECIMAL = frozenset(
    [
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    ]
)
_THREE_DECIMAL = frozenset(["BHD", "JOD", "KWD", "OMR", "TND"])


def normalize_currency(code: object) -> str:
    """Return the upper-case ISO 4217 code, accepting Stripe's lower-case form."""
    if not isinstance(code, str) or len(code) != 3 or not code.isalpha() or not code.isascii():
        raise InvalidInput(f"currency must be a three-letter ISO code, got {code!r}")
    return code.upper()


def minor_unit_exponent(currency: str) -> int:
    """Decimals of the currency's minor unit: 0 for JPY, 3 for KWD, 2 otherwise."""
    code = normalize_currency(currency)
    if code in _ZERO_DECIMAL:
        return 0
    if code in _THREE_DECIMAL:
        return 3
    return 2


def require_currency(given: object, expected: str) -> str:
    """Return the normalised ``given`` currency if it is the program's ``expected`` one."""
    code = normalize_currency(given)
    if code != expected:
        raise CurrencyMismatch(
            f"the order is in {code} but the program counts in {expected}",
            currency=code,
            expected=expected,
        )
    return code
