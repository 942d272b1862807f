"""Guards for values that cross into the core: integers, amounts, aware datetimes, keys."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from loyalty.errors import InvalidAmount, InvalidIdempotencyKey, InvalidInput, NaiveDatetime

MAX_KEY_LENGTH = 200
_KEY_PATTERN = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces


def require_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """Return ``value`` if it is an ``int`` (not a bool or float) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        hint = " (points and minor units are whole numbers)" if isinstance(value, float) else ""
        raise InvalidAmount(
            f"{name} must be an integer{hint}, got {type(value).__name__} {value!r}",
            field=name,
        )
    if value < minimum:
        what = "positive" if minimum == 1 else f"at least {minimum}"
        raise InvalidAmount(f"{name} must be {what}, got {value}", field=name, value=value)
    return value


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


def require_text(name: str, value: Any, *, max_length: int = 200) -> str:
    """Return ``value`` if it is a non-empty string of at most ``max_length`` characters."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{name} must be a non-empty string", field=name)
    if len(value) > max_length:
        raise InvalidInput(f"{name} is longer than {max_length} characters", field=name)
    return value
