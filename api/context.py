"""What a request of the API works with: the app's :class:`ApiContext` and the request's
unit of work.

A ``POST`` to the API opens one :class:`~loyalty.services.uow.UnitOfWork` before anything
else (:func:`begin_request_unit`): the credential is checked on its connection, and the view
runs its services in it (:func:`in_unit`), which commits it before the response is built, so
a failed commit is answered as an error, never as a success. A request that ends any other
way (a refused credential, a bad body, an error of the rules) is rolled back when the request
ends (:func:`end_request_unit`). Whatever a request composes commits together or not at all;
after-commit hooks run after the commit. Reads (``GET``) need no transaction and use the
database directly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from flask import Flask, current_app, g

from loyalty.db.database import Database
from loyalty.services.uow import Target, UnitOfWork, unit_of_work

EXTENSION = "jifen.api"
R = TypeVar("R")


@dataclass(frozen=True)
class ApiContext:
    """What every API request needs: the database, the token secret, policy settings."""

    db: Database
    secret: str
    approval_threshold: int
    redis_url: str | None
    currencies: dict[str, str] = field(default_factory=dict)  # a program's never changes


def context() -> ApiContext:
    """The running app's :class:`ApiContext`."""
    found: ApiContext = current_app.extensions[EXTENSION]
    return found


def database() -> Database:
    """The API's database."""
    return context().db


class _RequestEnded(Exception):
    """Thrown into a request's unit of work that was not committed, to roll it back."""


def begin_request_unit() -> None:
    """Open the request's unit of work (once)."""
    if "unit" not in g:
        stack = contextlib.ExitStack()
        g.unit = stack.enter_context(unit_of_work(database()))
        g.unit_stack = stack


def request_target() -> Target:
    """The request's unit of work if one is open, else the database."""
    unit: UnitOfWork | None = g.get("unit")
    return database() if unit is None else unit


def in_unit(work: Callable[[UnitOfWork], R]) -> R:
    """``work`` in the request's unit of work, committed when it returns (then its
    after-commit hooks run); in a unit of its own when the request has none."""
    unit: UnitOfWork | None = g.get("unit")
    if unit is None:
        with unit_of_work(database()) as own:
            return work(own)
    result = work(unit)
    end_request_unit(commit=True)
    return result


def end_request_unit(*, commit: bool) -> None:
    """Commit (or roll back) the request's unit of work, if it is still open."""
    stack: contextlib.ExitStack[None] | None = g.pop("unit_stack", None)
    g.pop("unit", None)
    if stack is None:
        return
    if commit:
        stack.close()
    else:
        stack.__exit__(_RequestEnded, _RequestEnded(), None)


def init_request_units(app: Flask) -> None:
    """Roll back, when a request ends, a unit of work its view did not commit."""

    @app.teardown_request
    def roll_back_unfinished(_error: BaseException | None) -> None:
        end_request_unit(commit=False)
