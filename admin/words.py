"""Words the whole console shows for codes: roles and statuses, in the request's language.

The codes stay what they are in the database and the API (``operations``, ``pending``); a
page shows their word. An unknown code is shown as it is.
"""

from __future__ import annotations

from flask import Flask
from flask_babel import lazy_gettext as _l

ROLE_WORDS = {
    "viewer": _l("viewer"),
    "marketing": _l("marketing"),
    "operations": _l("operations"),
    "admin": _l("admin"),
}
STATUS_WORDS = {
    "applied": _l("applied"),
    "succeeded": _l("succeeded"),
    "pending": _l("pending"),
    "approving": _l("approving"),
    "running": _l("running"),
    "parked": _l("parked"),
    "received": _l("received"),
    "ignored": _l("ignored"),
    "rejected": _l("rejected"),
    "failed": _l("failed"),
}


def role_word(role: str) -> str:
    """The word for a console role."""
    return str(ROLE_WORDS.get(role, role))


def status_word(status: str) -> str:
    """The word for a status code (Stripe events, jobs, adjustment requests)."""
    return str(STATUS_WORDS.get(status, status))


def init_words(app: Flask) -> None:
    """``role_word`` and ``status_word`` in every template."""
    app.jinja_env.globals.update(role_word=role_word, status_word=status_word)
