"""Members: enrol by the retailer's external id, link a Stripe customer, close and reopen.

Concurrent first-time writes end as documented, the same way on both backends: the enrolment
is an ``INSERT … ON CONFLICT DO NOTHING`` that re-reads what won (the same member, or
:class:`AlreadyExists` naming whoever holds the id or the Stripe customer), and a link runs in
a savepoint whose unique violation becomes :class:`AlreadyExists` naming the other member.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Row, select, update
from sqlalchemy.exc import IntegrityError

from loyalty.db.dialect import insert_ignoring
from loyalty.db.tables import members
from loyalty.domain.checks import (
    require_email,
    require_member_id,
    require_phone,
    require_program_code,
    require_text,
)
from loyalty.errors import AlreadyExists, InvalidInput, MemberNotFound
from loyalty.events.outbox import emit_one
from loyalty.services.results import MemberInfo
from loyalty.services.uow import Target
from loyalty.services.writes import program_row

# ``suspended``: the account is frozen by operations (账户冻结, see services.risk_rules).
MEMBER_STATUSES = ("active", "closed", "suspended")


def _info(program: str, row: Row[Any]) -> MemberInfo:
    return MemberInfo(
        program=program,
        external_id=row.external_id,
        email=row.email,
        stripe_customer_id=row.stripe_customer_id,
        status=row.status,
        phone=row.phone,
    )


def _optional(name: str, value: str | None, max_length: int) -> str | None:
    return None if value is None else require_text(name, value, max_length=max_length)


def enrol_member(
    db: Target,
    *,
    program: str,
    external_id: str,
    email: str | None = None,
    stripe_customer_id: str | None = None,
    phone: str | None = None,
) -> MemberInfo:
    """Enrol a member; enrolling the same member again with the same details (email, phone,
    Stripe customer) returns it. ``phone`` is kept as :func:`require_phone` writes it."""
    program = require_program_code(program)
    external_id = require_member_id(external_id, name="external_id")
    email = None if email is None else require_email(email)
    phone = None if phone is None else require_phone(phone)
    stripe_customer_id = _optional("stripe_customer_id", stripe_customer_id, 64)
    with db.write() as conn:
        prog = program_row(conn, program)
        row = _find_member(conn, prog.id, external_id)
        if row is None:
            values = {
                "program_id": prog.id,
                "external_id": external_id,
                "email": email,
                "phone": phone,
                "stripe_customer_id": stripe_customer_id,
                "status": "active",
                "created_at": db.clock.now(),
            }
            inserted = conn.execute(_INSERT_MEMBER.on(conn), values).first()
            if inserted is None:
                row = _enrolled_meanwhile(conn, prog.id, external_id, stripe_customer_id)
            else:
                _emit_status(
                    conn, "member.enrolled", prog, int(inserted.id), values, values["created_at"]
                )
        if row is not None:
            return _same_member(program, row, email, phone, stripe_customer_id)
    return MemberInfo(
        program=program,
        external_id=external_id,
        email=email,
        stripe_customer_id=stripe_customer_id,
        status="active",
        phone=phone,
    )


# Any unique conflict (the external id, or the Stripe customer) inserts nothing; on
# PostgreSQL it first waits for the transaction that holds the other row.
_INSERT_MEMBER = insert_ignoring(members, returning=[members.c.id])


def _find_member(conn: Connection, program_id: int, external_id: str) -> Row[Any] | None:
    return conn.execute(
        select(members).where(
            members.c.program_id == program_id, members.c.external_id == external_id
        )
    ).first()


def _enrolled_meanwhile(
    conn: Connection, program_id: int, external_id: str, stripe_customer_id: str | None
) -> Row[Any]:
    """After an insert that conflicted: the member enrolled under this id (concurrently, too),
    or :class:`AlreadyExists` naming the member who holds the Stripe customer."""
    row = _find_member(conn, program_id, external_id)
    if row is not None:
        return row
    _check_stripe_free(conn, program_id, stripe_customer_id)
    raise AlreadyExists(  # pragma: no cover - a conflict names one of the two
        f"member {external_id!r} could not be enrolled: a concurrent enrolment conflicts",
        member=external_id,
    )


def _same_member(
    program: str,
    row: Row[Any],
    email: str | None,
    phone: str | None,
    stripe_customer_id: str | None,
) -> MemberInfo:
    """The member already enrolled, if it has these details; else :class:`AlreadyExists`."""
    if (row.email, row.phone, row.stripe_customer_id) == (email, phone, stripe_customer_id):
        return _info(program, row)
    raise AlreadyExists(
        f"member {row.external_id!r} already exists with other details; "
        "use link_stripe_customer to change them",
        member=row.external_id,
    )


def _check_stripe_free(
    conn: Any, program_id: int, stripe_customer_id: str | None, member_id: int | None = None
) -> None:
    if stripe_customer_id is None:
        return
    holder = conn.execute(
        select(members.c.id, members.c.external_id).where(
            members.c.program_id == program_id, members.c.stripe_customer_id == stripe_customer_id
        )
    ).first()
    if holder is not None and holder.id != member_id:
        raise AlreadyExists(
            f"Stripe customer {stripe_customer_id!r} is already linked to member "
            f"{holder.external_id!r}",
            stripe_customer_id=stripe_customer_id,
            member=holder.external_id,
        )


def _member_row(conn: Any, program_id: int, program: str, external_id: str) -> Row[Any]:
    row = conn.execute(
        select(members)
        .where(members.c.program_id == program_id, members.c.external_id == external_id)
        .with_for_update()
    ).first()
    if row is None:
        raise MemberNotFound(
            f"no member {external_id!r} in program {program!r}", program=program, member=external_id
        )
    return row  # type: ignore[no-any-return]


def get_member(db: Target, *, program: str, external_id: str) -> MemberInfo:
    """A member's identity, or :class:`MemberNotFound`."""
    program = require_program_code(program)
    external_id = require_member_id(external_id, name="external_id")
    with db.read() as conn:
        prog = program_row(conn, program)
        return _info(program, _member_row(conn, prog.id, program, external_id))


def link_stripe_customer(
    db: Target, *, program: str, external_id: str, stripe_customer_id: str
) -> MemberInfo:
    """Link (or re-link) a member to a Stripe customer id."""
    program = require_program_code(program)
    external_id = require_member_id(external_id, name="external_id")
    stripe_customer_id = require_text("stripe_customer_id", stripe_customer_id, max_length=64)
    with db.write() as conn:
        prog = program_row(conn, program)
        row = _member_row(conn, prog.id, program, external_id)
        _check_stripe_free(conn, prog.id, stripe_customer_id, row.id)
        try:
            with conn.begin_nested():  # another member may link the customer meanwhile
                conn.execute(
                    update(members)
                    .where(members.c.id == row.id)
                    .values(stripe_customer_id=stripe_customer_id)
                )
        except IntegrityError:
            _check_stripe_free(conn, prog.id, stripe_customer_id, row.id)
            raise
        return _info(program, _member_row(conn, prog.id, program, external_id))


def set_member_status(
    db: Target, *, program: str, external_id: str, status: str, reason: str | None = None
) -> MemberInfo:
    """Close a member (no more earning, spending or receiving), freeze their account
    (``suspended``) or reopen them; ``reason`` is kept with the status."""
    program = require_program_code(program)
    external_id = require_member_id(external_id, name="external_id")
    if status not in MEMBER_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(MEMBER_STATUSES)}", field="status")
    with db.write() as conn:
        prog = program_row(conn, program)
        row = _member_row(conn, prog.id, program, external_id)
        conn.execute(
            update(members)
            .where(members.c.id == row.id)
            .values(status=status, status_reason=reason)
        )
        if status != row.status:
            after = _member_row(conn, prog.id, program, external_id)
            event = "member.closed" if status == "closed" else "member.status_changed"
            at = db.clock.now()
            why = {} if reason is None else {"reason": reason}
            _emit_status(conn, event, prog, row.id, after._mapping, at, previous=row.status, **why)
        return _info(program, _member_row(conn, prog.id, program, external_id))


def _emit_status(
    conn: Connection,
    type_: str,
    prog: Row[Any],
    member_id: int,
    member: Mapping[Any, Any],
    at: dt.datetime,
    **fields: Any,
) -> None:
    """A member event: enrolled, closed, or another status change."""
    emit_one(
        conn,
        type_,
        program_id=prog.id,
        member_id=member_id,
        operation_id=None,
        at=at,
        data={
            "program": prog.code,
            "member": member["external_id"],
            "email": member["email"],
            "phone": member["phone"],
            "stripe_customer_id": member["stripe_customer_id"],
            "status": member["status"],
            **fields,
        },
    )
