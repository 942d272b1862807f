"""The base of every console page: role checks, the program, and small helpers.

Query arguments are read through the helpers here (:func:`page_number`, :func:`search_arg`,
:func:`number_arg`, :func:`choice_arg`): text is cleaned like every other text in Jifen
(:func:`~loyalty.domain.checks.clean_text`), numbers must be plain digits within a range,
and anything else raises :class:`~loyalty.errors.InvalidInput`, which the console answers
with a readable 400 page.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import flash, redirect, request
from flask.typing import ResponseReturnValue
from flask_admin import AdminIndexView, BaseView  # type: ignore[import-untyped]
from flask_admin import expose as _expose
from flask_login import current_user  # type: ignore[import-untyped]

from admin.auth import EVERYONE, inaccessible, local_path
from admin.context import Console, console
from loyalty.domain.checks import clean_text
from loyalty.errors import InvalidInput, LoyaltyError
from loyalty.services.results import ProgramInfo

F = TypeVar("F", bound=Callable[..., Any])
MAX_PAGE_NUMBER = 100_000
MAX_SEARCH = 200
_DIGITS = re.compile(r"[0-9]{1,18}")


def expose(url: str = "/", methods: tuple[str, ...] = ("GET",)) -> Callable[[F], F]:
    """flask-admin's ``expose``, typed."""
    return cast(Callable[[F], F], _expose(url, methods))


class RoleGate:
    """Mixin (before the flask-admin base): who may open the page at all.

    A signed-out visitor goes to the login page; a signed-in one without a role in
    ``read_roles`` gets 403. Changes check their own roles with ``require_role``.
    """

    read_roles: tuple[str, ...] = EVERYONE
    render: Callable[..., str]  # flask-admin's BaseView.render

    def is_accessible(self) -> bool:
        return bool(current_user.is_authenticated and current_user.has_role(*self.read_roles))

    def inaccessible_callback(self, name: Any, **kwargs: Any) -> ResponseReturnValue:
        return inaccessible(name, self.read_roles)

    @property
    def console(self) -> Console:
        return console()

    def program(self) -> ProgramInfo:
        return self.console.program()


class ConsoleView(RoleGate, BaseView):  # type: ignore[misc]
    """A console page."""


class ConsoleIndexView(RoleGate, AdminIndexView):  # type: ignore[misc]
    """The console's home page."""


def flash_error(exc: LoyaltyError) -> None:
    """Show a service's refusal as a message on the next page."""
    flash(exc.message, "error")


def back(default: str) -> ResponseReturnValue:
    """Redirect to the form's ``back`` field if it is a local path, else to ``default``."""
    target = local_path(request.form.get("back", ""))
    return redirect(target or default)


def number_arg(name: str, *, minimum: int, maximum: int) -> int | None:
    """The query argument ``name`` as a whole number in [minimum, maximum]; None if absent
    or blank; :class:`InvalidInput` otherwise."""
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    if not _DIGITS.fullmatch(raw) or not minimum <= int(raw) <= maximum:
        raise InvalidInput(
            f"{name} must be a whole number from {minimum:,} to {maximum:,}", field=name
        )
    return int(raw)


def page_number() -> int:
    """The ``page`` query argument (1-based), 1 if missing."""
    return number_arg("page", minimum=1, maximum=MAX_PAGE_NUMBER) or 1


def search_arg(name: str, *, max_length: int = MAX_SEARCH) -> str:
    """The query argument ``name`` as search text, cleaned; "" if absent or blank."""
    raw = request.args.get(name, "")
    if not raw.strip():
        return ""
    return clean_text(name, raw, max_length=max_length)


def choice_arg(name: str, choices: tuple[str, ...]) -> str:
    """The query argument ``name``: "" or one of ``choices``."""
    raw = request.args.get(name, "").strip()
    if raw and raw not in choices:
        raise InvalidInput(f"{name} must be one of {', '.join(choices)}", field=name)
    return raw
