"""Currencies: ISO 4217 codes and the decimals of their minor unit, as Stripe counts them.

``EXPONENTS`` lists every active ISO 4217 currency with the exponent of its minor unit (ISO
4217, list one). Where Stripe's API counts a currency differently, Stripe wins, because
Stripe's amounts reach Jifen as they are:

- ``MGA``: ISO gives 2 decimals; Stripe treats it as zero-decimal.
- ``ISK``: ISO gives 0; Stripe represents it with two decimals (``500`` is 5 ISK), as Jifen
  always did.
- ``HUF`` and ``TWD``: two decimals in both (Stripe pays out whole units only); ``UGX``: zero
  in both.

Funds, precious metals and test codes (``XAU``, ``XDR``, ``XTS``, ``XXX``...) have no minor
unit and are not money a shop takes: they are unknown here.
"""

from __future__ import annotations

from loyalty.errors import CurrencyMismatch, InvalidInput, UnknownCurrency

_BY_EXPONENT: dict[int, str] = {
    0: "BIF CLP DJF GNF ISK JPY KMF KRW MGA PYG RWF UGX UYI VND VUV XAF XOF XPF",
    2: (
        "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD "
        "BTN BWP BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD "
        "EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR "
        "IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MKD MMK MNT MOP MRU "
        "MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR "
        "RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB "
        "TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW "
        "ZWG ZWL"
    ),
    3: "BHD IQD JOD KWD LYD OMR TND",
    4: "CLF UYW",
}
_STRIPE_DIFFERS = {"MGA": 0, "ISK": 2}

EXPONENTS: dict[str, int] = {
    code: exponent for exponent, codes in _BY_EXPONENT.items() for code in codes.split()
} | _STRIPE_DIFFERS


def normalize_currency(code: object) -> str:
    """Return the upper-case ISO 4217 code, accepting Stripe's lower-case form.

    Raises :class:`InvalidInput` for anything but three ASCII letters and
    :class:`UnknownCurrency` for three letters that name no active currency.
    """
    if not isinstance(code, str) or len(code) != 3 or not code.isalpha() or not code.isascii():
        raise InvalidInput(f"currency must be a three-letter ISO code, got {code!r}")
    upper = code.upper()
    if upper not in EXPONENTS:
        raise UnknownCurrency(
            f"{upper} is not an active ISO 4217 currency; use the code your payments are in, "
            "such as CNY, USD, EUR or JPY",
            currency=upper,
        )
    return upper


def minor_unit_exponent(currency: str) -> int:
    """Decimals of the currency's minor unit: 0 for JPY, 2 for CNY, 3 for KWD, 4 for CLF."""
    return EXPONENTS[normalize_currency(currency)]


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
