"""Members meeting their Stripe events: enrol a member, or link one to a Stripe customer, and
apply the Stripe purchases parked for them, in one unit of work.

A purchase that arrives before its customer is a member is parked (see :mod:`.sync`). The
moment the member exists, or is linked, those purchases earn. Doing both in one unit of work
means a member is never enrolled or linked without the points they had coming, and a failure
applying them leaves no half-enrolled member behind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loyalty.domain.checks import require_phone
from loyalty.errors import InvalidInput
from loyalty.services.audit import audit
from loyalty.services.members import enrol_member, get_member, link_stripe_customer
from loyalty.services.results import MemberInfo
from loyalty.services.uow import Target, UnitOfWork, run_in
from loyalty.stripe.sync import WebhookResult, apply_parked_for


@dataclass(frozen=True)
class Onboarded:
    """A member as enrolled or linked, and the parked Stripe events applied for them."""

    member: MemberInfo
    applied: tuple[WebhookResult, ...]


def enrol_applying_parked(
    db: Target,
    *,
    program: str,
    external_id: str,
    email: str | None = None,
    stripe_customer_id: str | None = None,
    phone: str | None = None,
) -> Onboarded:
    """Enrol a member (see :func:`~loyalty.services.enrol_member`) and apply what was parked
    for them, in one unit of work."""

    def enrol(uow: UnitOfWork) -> Onboarded:
        info = enrol_member(
            uow,
            program=program,
            external_id=external_id,
            email=email,
            stripe_customer_id=stripe_customer_id,
            phone=phone,
        )
        return Onboarded(info, tuple(apply_parked_for(uow, info)))

    return run_in(db, enrol)


def enrol_stripe_customer(
    db: Target, *, program: str, external_id: str, customer: Mapping[str, Any]
) -> Onboarded:
    """Enrol a member from a Stripe customer object (as Stripe sends or returns it): linked to
    its ``id``, with its ``email`` and ``phone``, and apply what was parked for them.

    Stripe keeps a customer's phone as free text; one that is not a phone number Jifen can
    store (see :func:`~loyalty.domain.checks.require_phone`) is left out rather than refusing
    the enrolment.
    """
    return enrol_applying_parked(
        db,
        program=program,
        external_id=external_id,
        email=customer.get("email") or None,
        stripe_customer_id=customer.get("id"),
        phone=stripe_phone(customer.get("phone")),
    )


def stripe_phone(value: Any) -> str | None:
    """A Stripe customer's ``phone`` as Jifen stores it, or None when it is missing or is not
    a phone number (``(555) 010-9999`` keeps its digits: brackets and dots are dropped too)."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return require_phone(value.replace("(", "").replace(")", "").replace(".", ""))
    except InvalidInput:
        return None


def link_applying_parked(
    db: Target,
    *,
    program: str,
    external_id: str,
    stripe_customer_id: str,
    actor: str | None = None,
) -> Onboarded:
    """Link a member to a Stripe customer (see :func:`~loyalty.services.link_stripe_customer`),
    audit it when an ``actor`` (a console user) did it, and apply what was parked for the
    member, in one unit of work."""

    def link(uow: UnitOfWork) -> Onboarded:
        before = get_member(uow, program=program, external_id=external_id)
        info = link_stripe_customer(
            uow, program=program, external_id=external_id, stripe_customer_id=stripe_customer_id
        )
        if actor is not None:
            audit(
                uow,
                actor=actor,
                action="member.link_stripe",
                target=f"member {info.external_id}",
                program=program,
                before={"stripe_customer_id": before.stripe_customer_id},
                after={"stripe_customer_id": info.stripe_customer_id},
            )
        return Onboarded(info, tuple(apply_parked_for(uow, info)))

    return run_in(db, link)
