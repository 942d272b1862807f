"""The problems marshmallow finds in a console form, in the request's language.

marshmallow writes its messages in English (``Missing data for required field.``, ``Must be
one of: read, earn.``, ``Length must be between 1 and 120.``); :func:`problem_words` gives
each one the console's catalogue has in the request's language, with its figures and
choices kept, and any other message as it is. A form's own messages are marked with
:func:`N_` where they are written, so the catalogue has them and :func:`problem_words`
translates them where they are shown.

A problem names its field: in English by the field's name, as the form posts it and the
API's errors name it (``expires_in_days``), in Chinese by what the field is
(:func:`field_words`).
"""

from __future__ import annotations

import re

from flask_babel import LazyString
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l


def N_(message: str) -> str:
    """``message`` as it is, marked for the catalogue: it is translated where it is shown."""
    return message


PLAIN = (
    N_("Missing data for required field."),
    N_("Field may not be null."),
    N_("Invalid value."),
    N_("Not a valid string."),
    N_("Not a valid integer."),
    N_("Not a valid number."),
    N_("Not a valid list."),
    N_("Number too large."),
    N_("Unknown field."),
)
_FIGURES = r"(?P<{}>-?[0-9.,]+)"
WITH_FIGURES: tuple[tuple[re.Pattern[str], LazyString], ...] = (
    (re.compile(r"Must be one of: (?P<choices>.*)\."), _l("Must be one of: %(choices)s.")),
    (
        re.compile(
            rf"Length must be between {_FIGURES.format('min')} and {_FIGURES.format('max')}\."
        ),
        _l("Length must be between %(min)s and %(max)s."),
    ),
    (
        re.compile(rf"Shorter than minimum length {_FIGURES.format('min')}\."),
        _l("Shorter than minimum length %(min)s."),
    ),
    (
        re.compile(rf"Longer than maximum length {_FIGURES.format('max')}\."),
        _l("Longer than maximum length %(max)s."),
    ),
    (
        re.compile(
            rf"Must be greater than or equal to {_FIGURES.format('min')} and less than or "
            rf"equal to {_FIGURES.format('max')}\."
        ),
        _l("Must be greater than or equal to %(min)s and less than or equal to %(max)s."),
    ),
    (
        re.compile(rf"Must be greater than or equal to {_FIGURES.format('min')}\."),
        _l("Must be greater than or equal to %(min)s."),
    ),
    (
        re.compile(rf"Must be less than or equal to {_FIGURES.format('max')}\."),
        _l("Must be less than or equal to %(max)s."),
    ),
)


# Each form field's name, whose English is the name itself: what it is, in Chinese.
FIELD_WORDS: dict[str, LazyString] = {
    "url": _l("url"),
    "event_types": _l("event_types"),
    "description": _l("description"),
    "reason": _l("reason"),
    "since": _l("since"),
    "overlap_hours": _l("overlap_hours"),
    "endpoint": _l("endpoint"),
    "delivery": _l("delivery"),
    "scopes": _l("scopes"),
    "label": _l("label"),
    "expires_in_days": _l("expires_in_days"),
    "origin": _l("origin"),
    "key_id": _l("key_id"),
    "host": _l("host"),
    "port": _l("port"),
    "security": _l("security"),
    "from_address": _l("from_address"),
    "reply_to": _l("reply_to"),
    "username": _l("username"),
    "password": _l("password"),
    "locale": _l("locale"),
    "shop_url": _l("shop_url"),
}


def field_words(name: str) -> str:
    """A form field as a problem names it: its name in English, what it is in Chinese."""
    found = FIELD_WORDS.get(name)
    return name if found is None else str(found)


def problem_words(message: str) -> str:
    """``message`` in the request's language when the catalogue knows it, else as it is."""
    for pattern, words in WITH_FIGURES:
        found = pattern.fullmatch(message)
        if found:
            return str(words) % found.groupdict()
    return _(message) if message else message
