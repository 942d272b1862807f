"""marshmallow schemas for the console's forms: what comes from a browser is checked here
before it reaches a service (the services check the rules again). A form that does not read
is refused naming each field and its problem in the request's language (:func:`load`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from marshmallow import Schema, ValidationError, fields, validate
from werkzeug.datastructures import MultiDict

from admin.form_words import N_, field_words, problem_words
from loyalty.domain.checks import MAX_POINTS
from loyalty.errors import InvalidInput

# flask-babel is untyped: its gettext, typed.
_: Callable[..., str] = gettext

POINTS_RANGE = N_("points must be from %(min)s to %(max)s")
POINTS_NOT_ZERO = N_("points must not be zero")
NO_SPACES = N_("must not contain spaces")
# The refusals of a points field, with their figures.
ADJUSTED_POINTS = POINTS_RANGE % {"min": f"{-MAX_POINTS:,}", "max": f"{MAX_POINTS:,}"}
POINTS_FROM_ONE = POINTS_RANGE % {"min": "1", "max": f"{MAX_POINTS:,}"}
_POINTS_RANGE = re.compile(r"points must be from (?P<min>-?[0-9,]+) to (?P<max>-?[0-9,]+)")
# The fields of the member, adjustment and risk forms: their names in English (as the form
# posts them), what they are in Chinese.
FIELD_WORDS: dict[str, object] = {
    "member": _l("member"),
    "points": _l("points"),
    "reason": _l("reason"),
    "note": _l("note"),
    "stripe_customer_id": _l("stripe_customer_id"),
    "request_id": _l("request_id"),
    "id": _l("id"),
    "outcome": _l("outcome"),
    "assignee": _l("assignee"),
}


class AdjustmentForm(Schema):
    """A grant or deduction: member, signed points, mandatory reason."""

    member = fields.String(required=True, validate=validate.Length(min=1, max=128))
    points = fields.Integer(
        required=True,
        strict=False,
        validate=validate.And(
            validate.Range(min=-MAX_POINTS, max=MAX_POINTS, error=ADJUSTED_POINTS),
            validate.NoneOf([0], error=POINTS_NOT_ZERO),
        ),
    )
    reason = fields.String(required=True, validate=validate.Length(min=3, max=500))


class LinkStripeForm(Schema):
    """Link a member to a Stripe customer id (``cus_…``)."""

    member = fields.String(required=True, validate=validate.Length(min=1, max=128))
    stripe_customer_id = fields.String(
        required=True,
        validate=[validate.Length(min=1, max=64), validate.Regexp(r"^\S+$", error=NO_SPACES)],
    )


class DecisionForm(Schema):
    """Approve or reject one adjustment request."""

    request_id = fields.Integer(required=True, validate=validate.Range(min=1))
    note = fields.String(load_default=None, validate=validate.Length(max=500))


def load(schema: Schema, form: MultiDict[str, str]) -> dict[str, Any]:
    """The form's fields checked by ``schema``; :class:`InvalidInput` with every problem."""
    data = {k: v.strip() for k, v in form.items() if k in schema.fields and v.strip() != ""}
    try:
        result: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{field_word(name)}: {_problems(msgs)}"
            for name, msgs in sorted(dict(exc.messages_dict).items())
        )
        message = _("please correct the form: %(problems)s", problems=problems)
        raise InvalidInput(message, fields=exc.messages) from exc
    return result


def field_word(name: str) -> str:
    """A form field as a problem names it: its name in English, what it is in Chinese."""
    found = FIELD_WORDS.get(name)
    return field_words(name) if found is None else str(found)


def _problems(found: Any) -> str:
    if isinstance(found, list):
        return " ".join(map(_problem, found))
    return _problem(found)


def _problem(message: Any) -> str:
    """One problem in the request's language: the points' own, else marshmallow's."""
    text = str(message)
    points_range = _POINTS_RANGE.fullmatch(text)
    if points_range is not None:
        return _(POINTS_RANGE, **points_range.groupdict())
    return problem_words(text)
