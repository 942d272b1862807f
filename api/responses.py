"""What every view shares: the idempotency header, replays, the program's currency, dates
and times sent as text.

Writes run in the request's unit of work (:func:`api.context.in_unit`). The
``Idempotency-Key`` header becomes the service's idempotency key; without it the service
derives its key from the ids in the body (``earn:<order_id>``…), so every write is safe to
retry. A replay answers the first response's status and body with
``Idempotent-Replayed: true``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from flask import request

from api.context import context, request_target
from loyalty.errors import InvalidInput
from loyalty.services.programs import get_program

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"


def idempotency_key() -> str | None:
    """The request's ``Idempotency-Key`` (checked by the service), if any."""
    return request.headers.get(IDEMPOTENCY_HEADER)


def written(result: Any, status: int) -> tuple[Any, int, dict[str, str]]:
    """A write's response: the result, its status, and the replay header for a replay."""
    headers = {REPLAYED_HEADER: "true"} if getattr(result, "replayed", False) else {}
    return result, status, headers


def moment_in(body: Mapping[str, Any], name: str) -> Any:
    """The ISO 8601 text ``name`` of the body as a datetime (``None`` when not sent); what is
    not text is handed on as sent, so the service refuses it as for an embedded caller."""
    value = body.get(name)
    if not isinstance(value, str):
        return value
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{name} must be an ISO 8601 date and time such as 2027-01-01T00:00:00+08:00, "
            f"got {value!r:.60}",
            field=name,
        ) from None


def currency_of(program: str, given: Any) -> Any:
    """The currency a call uses: the one sent, else the program's."""
    if given is not None:
        return given
    known = context().currencies
    if program not in known:
        known[program] = get_program(request_target(), program).currency
    return known[program]
