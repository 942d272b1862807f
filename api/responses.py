"""What every view shares: one unit of work per request, the idempotency header, replays.

A write runs in one :class:`~loyalty.services.uow.UnitOfWork` (:func:`in_unit`): whatever
the request composes commits together or not at all, and after-commit hooks run after the
commit. The ``Idempotency-Key`` header becomes the service's idempotency key; without it the
service derives its key from the ids in the body (``earn:<order_id>``…), so every write is
safe to retry. A replay answers the first response's status and body with
``Idempotent-Replayed: true``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import request

from api.auth import context, database
from loyalty.services.programs import get_program
from loyalty.services.uow import UnitOfWork, unit_of_work

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
R = TypeVar("R")


def in_unit(work: Callable[[UnitOfWork], R]) -> R:
    """``work`` in one unit of work of the API's database, committed when it returns."""
    with unit_of_work(database()) as uow:
        return work(uow)


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
        known[program] = get_program(database(), program).currency
    return known[program]
