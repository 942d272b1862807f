"""Vouchers at the shop's checkout: check one against an order, use it on the order, and give
it back when that order is refunded.

A voucher (from a voucher reward, see :mod:`loyalty.services.reward_redemptions`) is a fixed
amount off one later order in the program's currency, valid for a period. Using it is
idempotent per order: using the same voucher on the same order again answers the first use;
on another order it is :class:`VoucherNotUsable`. Releasing it (the order was refunded or
cancelled) makes it usable again until it expires. Each use and release is a reward event and
an audit entry.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, Row, select, update

from loyalty.db.tables import members, vouchers
from loyalty.domain.checks import require_member_id, require_minor_units, require_order_id
from loyalty.domain.money import require_currency
from loyalty.domain.rewards import require_code
from loyalty.errors import VoucherNotFound, VoucherNotUsable
from loyalty.services.audit import record_audit
from loyalty.services.reward_redemptions import record_reward_event
from loyalty.services.reward_results import VoucherCheck
from loyalty.services.uow import Target
from loyalty.services.writes import program_row

API_ACTOR = "checkout"


def _voucher(conn: Connection, program_id: int, code: str, *, lock: bool) -> Row[Any]:
    stmt = (
        select(vouchers, members.c.external_id.label("member_external_id"))
        .join(members, members.c.id == vouchers.c.member_id)
        .where(vouchers.c.program_id == program_id, vouchers.c.code == code)
    )
    if lock:
        stmt = stmt.with_for_update(of=vouchers)
    row = conn.execute(stmt).first()
    if row is None:
        raise VoucherNotFound(f"no voucher {code!r} in this program", voucher=code)
    return row


def _check(
    row: Row[Any],
    *,
    now: dt.datetime,
    currency: str,
    total: int,
    member: str | None,
    order_id: str | None = None,
) -> VoucherCheck:
    """What the voucher takes off an order of ``total``; :class:`VoucherNotUsable` if none."""

    def refuse(why: str, message: str) -> VoucherNotUsable:
        return VoucherNotUsable(message, voucher=row.code, reason=why)

    require_currency(currency, row.currency)
    if row.status == "cancelled":
        raise refuse("cancelled", f"voucher {row.code} was cancelled")
    if row.status == "used" and row.order_id != order_id:
        raise refuse("used", f"voucher {row.code} was used on order {row.order_id}")
    if member is not None and member != row.member_external_id:
        raise refuse("other_member", f"voucher {row.code} belongs to another member")
    if now < row.valid_from:
        raise refuse("not_yet_valid", f"voucher {row.code} is valid from {row.valid_from:%Y-%m-%d}")
    if now >= row.valid_until and row.status != "used":
        raise refuse("expired", f"voucher {row.code} expired on {row.valid_until:%Y-%m-%d}")
    return VoucherCheck(
        code=row.code,
        discount_minor=min(row.amount_minor, total),
        amount_minor=row.amount_minor,
        currency=row.currency,
        valid_until_at=row.valid_until,
        status=row.status,
        order_id=row.order_id,
    )


def validate_voucher(
    db: Target,
    *,
    program: str,
    code: str,
    order_total_minor: int,
    currency: str,
    member: str | None = None,
) -> VoucherCheck:
    """What a voucher would take off an order now (nothing is written); raises
    :class:`VoucherNotUsable` with ``details["reason"]`` when it cannot be used.
    Pass ``member`` to refuse a voucher of another member."""
    code = require_code(code)
    total = require_minor_units("order_total_minor", order_total_minor)
    member = require_member_id(member) if member is not None else None
    with db.read() as conn:
        prog = program_row(conn, program)
        row = _voucher(conn, prog.id, code, lock=False)
        return _check(row, now=db.clock.now(), currency=currency, total=total, member=member)


def consume_voucher(
    db: Target,
    *,
    program: str,
    code: str,
    order_id: str,
    order_total_minor: int,
    currency: str,
    member: str | None = None,
) -> VoucherCheck:
    """Use a voucher on an order. Again on the same order answers the first use
    (``replayed``); on another order it is :class:`VoucherNotUsable`."""
    code = require_code(code)
    order_id = require_order_id(order_id)
    total = require_minor_units("order_total_minor", order_total_minor)
    member = require_member_id(member) if member is not None else None
    now = db.clock.now()
    with db.write() as conn:
        prog = program_row(conn, program)
        row = _voucher(conn, prog.id, code, lock=True)
        check = _check(
            row, now=now, currency=currency, total=total, member=member, order_id=order_id
        )
        if row.status == "used":  # on this order (else _check refused)
            return replace(check, replayed=True)
        _record_use(
            conn,
            prog.id,
            row,
            used_on=order_id,
            order_id=order_id,
            at=now,
            audited={"discount_minor": check.discount_minor},
        )
        return replace(check, status="used", order_id=order_id)


def release_voucher(db: Target, *, program: str, code: str, order_id: str) -> VoucherCheck:
    """Give a voucher back after the order that used it was refunded or cancelled: it can be
    used again until it expires. Releasing one that is not used answers it unchanged
    (``replayed``); one used on another order is :class:`VoucherNotUsable`."""
    code = require_code(code)
    order_id = require_order_id(order_id)
    now = db.clock.now()
    with db.write() as conn:
        prog = program_row(conn, program)
        row = _voucher(conn, prog.id, code, lock=True)
        answer = VoucherCheck(
            code=row.code,
            discount_minor=0,
            amount_minor=row.amount_minor,
            currency=row.currency,
            valid_until_at=row.valid_until,
            status=row.status,
            order_id=row.order_id,
        )
        if row.status != "used":
            return replace(answer, replayed=True)
        if row.order_id != order_id:
            raise VoucherNotUsable(
                f"voucher {code} was used on order {row.order_id}, not {order_id}",
                voucher=code,
                reason="other_order",
            )
        _record_use(conn, prog.id, row, used_on=None, order_id=order_id, at=now)
        return replace(answer, status="active", order_id=None)


def _record_use(
    conn: Connection,
    program_id: int,
    row: Row[Any],
    *,
    used_on: str | None,
    order_id: str,
    at: dt.datetime,
    audited: dict[str, Any] | None = None,
) -> None:
    """Mark a locked voucher used on ``used_on`` (``None``: given back from ``order_id``),
    with its reward event and audit entry."""
    used = used_on is not None
    conn.execute(
        update(vouchers)
        .where(vouchers.c.id == row.id)
        .values(status="used" if used else "active", order_id=used_on, used_at=at if used else None)
    )
    event = "voucher_used" if used else "voucher_released"
    record_reward_event(conn, row.redemption_id, event, actor=API_ACTOR, at=at, order_id=order_id)
    record_audit(
        conn,
        actor=API_ACTOR,
        action="voucher.use" if used else "voucher.release",
        target=f"voucher:{row.code}",
        at=at,
        program_id=program_id,
        after={"order_id": order_id, **(audited or {})},
    )
