"""What every view shares: the idempotency header, replays, the program's currency.

Writes run in the request's unit of work (:func:`api.context.in_unit`). The
``Idempotency-Key`` header becomes the service's idempotency key; without it the service
derives its key from the ids in the body (``earn:<order_id>``…), so every write is safe to
retry. A replay answers the first response's status and body with
``Idempotent-Replayed: true``.
"""

from __future__ import annotations

from typing import Any

from flask import request

from api.context import context, request_target
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


def currency_of(program: str, given: Any) -> Any:
    """The currency a call uses: the one sent, else the program's."""
    if given is not None:
        return given
    known = context().currencies
    if program not in known:
        known[program] = get_program(request_target(), program).currency
    return known[program]
