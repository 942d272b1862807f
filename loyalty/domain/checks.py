"""Guards for values that cross into the core: integers, amounts, aware datetimes, keys, text.

Every value from outside is checked here once, before any SQL, so bad input raises a
``loyalty.errors`` error and writes nothing, the same way on SQLite and PostgreSQL.

Bounds (inclusive):

- ``MAX_POINTS`` (10**12): any amount of points in a call, and the points an earn computes.
- ``MAX_MINOR_UNITS`` (10**14): money in minor units (an order, its lines, a refund).
- ``MAX_DAYS`` (3660, about ten years): day counts (expiring within, forecasts, reminders).
- ``MAX_ID`` (2**63 - 1): row ids and cursors, what a BigInteger column holds.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata
import urllib.parse
from typing import Any

from loyalty.errors import (
    InvalidAmount,
    InvalidIdempotencyKey,
    InvalidInput,
    InvalidText,
    NaiveDatetime,
)

MAX_POINTS = 10**12
MAX_MINOR_UNITS = 10**14
MAX_DAYS = 3660
MAX_ID = 2**63 - 1

MAX_KEY_LENGTH = 200
_KEY_PATTERN = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces
# What derive_key leaves as it is when it escapes a key: printable ASCII but "%".
_KEY_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")

MAX_PROGRAM_CODE = 64
MAX_MEMBER_ID = 128
MAX_ORDER_ID = MAX_KEY_LENGTH
MAX_EMAIL = 254

# Unicode general categories refused anywhere in text: controls (Cc, but see multiline),
# format characters (Cf: bidi controls, zero-width characters, BOM, soft hyphen...),
# surrogates (Cs), private use (Co), unassigned (Cn), line and paragraph separators (Zl, Zp).
_REFUSED_CATEGORIES = frozenset(["Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"])
_MULTILINE_CONTROLS = frozenset("\n\t")
_UNNAMED = {
    "Cc": "a control character",
    "Cs": "a lone surrogate",
    "Co": "a private-use character",
    "Cn": "an unassigned code point",
}


def require_int(name: str, value: Any, *, minimum: int = 1, maximum: int = MAX_ID) -> int:
    """Return ``value`` if it is an ``int`` (not a bool or float) in ``minimum..maximum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        hint = " (points and minor units are whole numbers)" if isinstance(value, float) else ""
        raise InvalidAmount(
            f"{name} must be an integer{hint}, got {type(value).__name__} {value!r}",
            field=name,
        )
    if value < minimum:
        what = "positive" if minimum == 1 else f"at least {minimum}"
        raise InvalidAmount(f"{name} must be {what}, got {value}", field=name, value=value)
    if value > maximum:
        raise InvalidAmount(
            f"{name} must be at most {maximum}, got {_short(value)}",
            field=name,
            maximum=maximum,
        )
    return value


def require_points(name: str, value: Any, *, minimum: int = 1) -> int:
    """Return ``value`` if it is a whole number of points in ``minimum..MAX_POINTS``."""
    return require_int(name, value, minimum=minimum, maximum=MAX_POINTS)


def require_minor_units(name: str, value: Any, *, minimum: int = 1) -> int:
    """Return ``value`` if it is money in minor units in ``minimum..MAX_MINOR_UNITS``."""
    return require_int(name, value, minimum=minimum, maximum=MAX_MINOR_UNITS)


def require_days(name: str, value: Any, *, minimum: int = 1) -> int:
    """Return ``value`` if it is a count of days in ``minimum..MAX_DAYS``."""
    return require_int(name, value, minimum=minimum, maximum=MAX_DAYS)


def _short(value: int) -> str:
    """An integer for a message: as it is, or its order of magnitude when it is huge."""
    text = str(value)
    return text if len(text) <= 30 else f"a number of {len(text)} digits"


def require_aware(name: str, value: Any) -> dt.datetime:
    """Return ``value`` converted to UTC if it is an aware datetime; raise otherwise."""
    if not isinstance(value, dt.datetime):
        raise InvalidInput(f"{name} must be a datetime, got {type(value).__name__}", field=name)
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetime(
            f"{name} has no time zone; pass an aware datetime such as datetime.now(timezone.utc)",
            field=name,
        )
    return value.astimezone(dt.UTC)


def require_key(value: Any, *, name: str = "idempotency_key") -> str:
    """Return ``value`` if it is a well-formed idempotency key or reference."""
    if not isinstance(value, str) or not value:
        raise InvalidIdempotencyKey(f"{name} must be a non-empty string", field=name)
    if len(value) > MAX_KEY_LENGTH:
        raise InvalidIdempotencyKey(
            f"{name} is {len(value)} characters long; the limit is {MAX_KEY_LENGTH}", field=name
        )
    if not _KEY_PATTERN.fullmatch(value):  # not match: "$" also matches before "\n"
        raise InvalidIdempotencyKey(
            f"{name} may only contain printable ASCII characters without spaces", field=name
        )
    return value


def clean_text(name: str, value: Any, *, max_length: int, multiline: bool = False) -> str:
    """Return ``value`` normalised to NFC and stripped, or raise if it cannot be stored.

    Surrounding whitespace (spaces, tabs, line breaks) is stripped first. Inside the text,
    refuses (``InvalidText``) NUL and other control characters (``\\n`` and ``\\t`` are allowed
    when ``multiline``, where ``\\r\\n`` and ``\\r`` become ``\\n``), lone surrogates, bidi
    controls, zero-width and other format characters, private-use and unassigned code points,
    and line or paragraph separators. Empty text and text longer than ``max_length`` after
    cleaning raise ``InvalidInput``.
    """
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a non-empty string", field=name)
    if len(value) > 4 * max_length + 64:  # not worth normalising: it cannot fit afterwards
        raise InvalidInput(f"{name} is longer than {max_length} characters", field=name)
    if value.isascii() and value.isprintable():  # the usual id: nothing to normalise or refuse
        cleaned = value.strip()
    else:
        if multiline:
            value = value.replace("\r\n", "\n").replace("\r", "\n")
        cleaned = unicodedata.normalize("NFC", value).strip()  # "alice\n" from a file is alice
        _refuse_unshowable(name, cleaned, multiline=multiline)
    if not cleaned:
        raise InvalidInput(f"{name} must be a non-empty string", field=name)
    if len(cleaned) > max_length:
        raise InvalidInput(f"{name} is longer than {max_length} characters", field=name)
    return cleaned


def _refuse_unshowable(name: str, value: str, *, multiline: bool) -> None:
    """Raise ``InvalidText`` naming the first character that cannot be shown unambiguously."""
    for position, char in enumerate(value):
        if multiline and char in _MULTILINE_CONTROLS:
            continue
        category = unicodedata.category(char)
        if category in _REFUSED_CATEGORIES:
            label = unicodedata.name(char, _UNNAMED.get(category, "unnamed character"))
            raise InvalidText(
                f"{name} contains U+{ord(char):04X} ({label}) at position {position}; "
                "remove it: control, invisible, direction-changing and private-use "
                "characters cannot be stored",
                field=name,
                position=position,
                codepoint=f"U+{ord(char):04X}",
            )


def scrub_text(value: Any, *, max_length: int) -> str:
    """Free text Jifen records rather than receives (an exception's message): never refused,
    its unshowable characters replaced by U+FFFD and its length cut to ``max_length``."""
    text = value if isinstance(value, str) else str(value)
    text = "".join(
        "\ufffd"
        if unicodedata.category(c) in _REFUSED_CATEGORIES and c not in _MULTILINE_CONTROLS
        else c
        for c in text[: max_length * 2]
    )
    return unicodedata.normalize("NFC", text).strip()[:max_length]


def require_text(name: str, value: Any, *, max_length: int = 200, multiline: bool = False) -> str:
    """Return the cleaned ``value`` (see :func:`clean_text`): NFC, stripped, showable."""
    return clean_text(name, value, max_length=max_length, multiline=multiline)


def require_program_code(value: Any, *, name: str = "program") -> str:
    """A program code, cleaned (see :func:`clean_text`), at most ``MAX_PROGRAM_CODE`` long."""
    return clean_text(name, value, max_length=MAX_PROGRAM_CODE)


def require_member_id(value: Any, *, name: str = "member") -> str:
    """A member's external id, cleaned (see :func:`clean_text`), at most 128 characters."""
    return clean_text(name, value, max_length=MAX_MEMBER_ID)


def require_order_id(value: Any, *, name: str = "order_id") -> str:
    """An order, refund or dispute id: the rules of a key (printable ASCII, no spaces, at most
    ``MAX_ORDER_ID`` characters), since a caller's systems make them and Jifen keys on them.

    Keys derived from it (``hold-timeout:<order_id>`` is longer than the id) still go through
    :func:`derive_key`.
    """
    return require_key(value, name=name)


def require_email(value: Any, *, name: str = "email") -> str:
    """An email address, cleaned, of the shape ``local@domain``: one ``@``, no spaces."""
    email = clean_text(name, value, max_length=MAX_EMAIL)
    local, at, domain = email.partition("@")
    if not at or not local or not domain or "@" in domain or any(c.isspace() for c in email):
        raise InvalidInput(f"{email!r} is not an email address", field=name)
    return email


def derive_key(composed: str) -> str:
    """The idempotency key for a default key composed from ids (``earn:<order_id>``...).

    A composed key that is already a valid key is kept byte for byte (stored keys of existing
    shops still match). Otherwise it is escaped deterministically: ``utf8:`` and the key
    percent-encoded as UTF-8 (``%`` included), or, when that is longer than the limit,
    ``sha256:`` and the hex digest of the composed key. Neither prefix starts a composed key.
    """
    if len(composed) <= MAX_KEY_LENGTH and _KEY_PATTERN.fullmatch(composed):
        return composed
    escaped = "utf8:" + urllib.parse.quote(composed, safe=_KEY_SAFE, encoding="utf-8")
    if len(escaped) <= MAX_KEY_LENGTH:
        return escaped
    return "sha256:" + hashlib.sha256(composed.encode("utf-8", "surrogatepass")).hexdigest()


MAX_PHONE_DIGITS = 20
MIN_PHONE_DIGITS = 5
_PHONE_PATTERN = re.compile(r"\+?[0-9]+")


def require_phone(value: Any, *, name: str = "phone") -> str:
    """A phone number as Jifen stores it: digits with an optional leading ``+``, from
    ``MIN_PHONE_DIGITS`` to ``MAX_PHONE_DIGITS`` digits; the spaces and dashes people write
    between groups are taken out (``+86 138-0013-8000`` is ``+8613800138000``)."""
    text = clean_text(name, value, max_length=64)
    phone = text.replace(" ", "").replace("-", "")
    digits = len(phone.lstrip("+"))
    if not _PHONE_PATTERN.fullmatch(phone) or not MIN_PHONE_DIGITS <= digits <= MAX_PHONE_DIGITS:
        raise InvalidInput(
            f"{text!r} is not a phone number: digits with an optional leading +, "
            f"{MIN_PHONE_DIGITS} to {MAX_PHONE_DIGITS} of them (spaces and dashes allowed)",
            field=name,
        )
    return phone
