"""The base of every console page: role checks, the program, and small helpers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import flash, redirect, request
from flask.typing import ResponseReturnValue
from flask_admin import AdminIndexView, BaseView  # type: ignore[import-untyped]
from flask_admin import expose as _expose
from flask_login import current_user  # type: ignore[import-untyped]

from admin.auth import EVERYONE, inaccessible
from admin.context import Console, console
from loyalty.errors import LoyaltyError
from loyalty.services.results import ProgramInfo

F = TypeVar("F", bound=Callable[..., Any])


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
        return inaccessible(name, **kwargs)

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
    target = request.form.get("back", "")
    if target.startswith("/") and not target.startswith("//"):
        return redirect(target)
    return redirect(default)


def page_number() -> int:
    """The ``page`` query argument (1-based), 1 if missing or bad."""
    raw = request.args.get("page", "1")
    return max(1, int(raw)) if raw.isdigit() else 1
