"""marshmallow schemas for the console's forms: what comes from a browser is checked here
before it reaches a service (the services check the rules again)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate
from werkzeug.datastructures import MultiDict

from loyalty.domain.checks import MAX_POINTS
from loyalty.errors import InvalidInput


class AdjustmentForm(Schema):
    """A grant or deduction: member, signed points, mandatory reason."""

    member = fields.String(required=True, validate=validate.Length(min=1, max=128))
    points = fields.Integer(
        required=True,
        strict=False,
        validate=validate.And(
            validate.Range(
                min=-MAX_POINTS,
                max=MAX_POINTS,
                error=f"points must be from {-MAX_POINTS:,} to {MAX_POINTS:,}",
            ),
            validate.NoneOf([0], error="points must not be zero"),
        ),
    )
    reason = fields.String(required=True, validate=validate.Length(min=3, max=500))


class LinkStripeForm(Schema):
    """Link a member to a Stripe customer id (``cus_…``)."""

    member = fields.String(required=True, validate=validate.Length(min=1, max=128))
    stripe_customer_id = fields.String(
        required=True, validate=[validate.Length(min=1, max=64), validate.Regexp(r"^\S+$")]
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
            f"{name}: {' '.join(map(str, msgs)) if isinstance(msgs, list) else msgs}"
            for name, msgs in sorted(dict(exc.messages_dict).items())
        )
        raise InvalidInput(f"please correct the form: {problems}", fields=exc.messages) from exc
    return result
