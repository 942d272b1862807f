"""The base of every console page: role checks, the program, and small helpers.

Query arguments are read through the helpers here (:func:`page_number`, :func:`search_arg`,
:func:`number_arg`, :func:`choice_arg`): text is cleaned like every other text in Jifen
(:func:`~loyalty.domain.checks.clean_text`), numbers must be plain digits within a range,
and anything else raises :class:`~loyalty.errors.InvalidInput`, which the console answers
with a readable 400 page. Those refusals are in the request's language; an argument is named
by its name in English (as the URL spells it) and by what it is in Chinese
(:func:`argument_words`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import flash, redirect, request
from flask.typing import ResponseReturnValue
from flask_admin import AdminIndexView, BaseView  # type: ignore[import-untyped]
from flask_admin import expose as _expose
from flask_babel import LazyString, gettext
from flask_babel import lazy_gettext as _l
from flask_login import current_user  # type: ignore[import-untyped]

from admin.auth import EVERYONE, inaccessible, local_path
from admin.code_words import code_word
from admin.context import Console, console
from admin.error_words import error_text
from admin.formatting import points
from loyalty.domain.checks import clean_text
from loyalty.errors import InvalidInput, LoyaltyError
from loyalty.services.results import ProgramInfo

F = TypeVar("F", bound=Callable[..., Any])
MAX_PAGE_NUMBER = 100_000
MAX_SEARCH = 200
_DIGITS = re.compile(r"[0-9]{1,18}")
# flask-babel is untyped: its gettext, typed.
_: Callable[..., str] = gettext
# What common query arguments are, for a refusal in another language than English.
ARGUMENT_WORDS: dict[str, LazyString] = {
    "page": _l("page number"),
    "days": _l("number of days"),
    "id": _l("id number"),
    "cursor": _l("position in the list"),
}


def argument_words(name: str) -> str:
    """A query argument as a refusal names it: its name in English (as the URL spells it),
    what it is in Chinese."""
    return code_word(ARGUMENT_WORDS, name)


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
    flash(error_text(exc), "error")


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
            _(
                "%(name)s must be a whole number from %(minimum)s to %(maximum)s",
                name=argument_words(name),
                minimum=points(minimum),
                maximum=points(maximum),
            ),
            field=name,
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
        raise InvalidInput(
            _(
                "%(name)s must be one of %(choices)s",
                name=argument_words(name),
                choices=", ".join(choices),
            ),
            field=name,
        )
    return raw
