"""Redemption at checkout: quote, hold points for an order, then capture or release the hold.

A hold takes points from the member's lots, soonest-expiring first, into their ``held``
bucket. Capturing spends them; releasing (payment failed) or timing out puts them back into
the same lots (and, for a lot that expired meanwhile, takes them out again at once:
``expire_returned``). Holds time out after the program's ``hold_timeout_seconds``;
:func:`expire_holds` releases those that did.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol, cast

from sqlalchemy import Connection, Row, bindparam, select, update

from loyalty.db.tables import holds, members, operations, programs
from loyalty.domain.checks import (
    derive_key,
    require_int,
    require_member_id,
    require_minor_units,
    require_order_id,
    require_points,
    require_program_code,
)
from loyalty.domain.money import minor_unit_exponent, require_currency
from loyalty.domain.moves import Move
from loyalty.domain.redemption import (
    RedemptionPolicy,
    check_redemption,
    max_redeemable_points,
    value_minor,
)
from loyalty.errors import (
    AlreadyExists,
    HoldNotActive,
    HoldNotFound,
    InsufficientPoints,
    MemberNotFound,
)
from loyalty.events.outbox import change_event
from loyalty.services.ledger import (
    AT,
    MEMBER,
    PROGRAM,
    AlsoWrite,
    LostRace,
    insert_selecting,
    prefixed,
    record_and_post,
)
from loyalty.services.lots import HeldLot, hold_with_lots, spendable_lots, take_spendable
from loyalty.services.results import HoldResult, RedemptionQuote, SweepResult
from loyalty.services.reversals import returns_at_capture
from loyalty.services.uow import Target
from loyalty.services.writes import (
    LedgerWrite,
    LockedMember,
    StoredResult,
    lock_columns,
    program_row,
    resolve_key,
)


class _Spender(LockedMember, Protocol):
    """A member locked with :data:`ORDER_HELD`."""

    order_held: int | None


ORDER_HELD = {
    "order_held": select(holds.c.id)
    .where(holds.c.program_id == members.c.program_id, holds.c.order_id == bindparam("order_id"))
    .scalar_subquery()
}


def policy_of(row: Row[Any] | LockedMember, prefix: str = "program_") -> RedemptionPolicy:
    """The redemption policy of a program row (or a member row joined with its program)."""
    return RedemptionPolicy(
        points_per_unit=getattr(row, f"{prefix}points_per_unit"),
        max_share_bp=getattr(row, f"{prefix}redeem_max_share_bp"),
        min_points=getattr(row, f"{prefix}redeem_min_points"),
        min_order_minor=getattr(row, f"{prefix}redeem_min_order_minor"),
    )


# A new hold, with the operation that takes its points (see record_and_post).
INSERT_HOLD = AlsoWrite(
    "held",
    lambda operation_id: insert_selecting(
        holds,
        {
            "program_id": PROGRAM,
            "member_id": MEMBER,
            "operation_id": operation_id,
            "status": "active",
            "created_at": AT,
        },
        prefix="holds_",
        defaults=("resolved_at",),
    ),
)
_KEY_STORED = select(operations.c.id).where(
    operations.c.program_id == bindparam("program_id"), operations.c.key == bindparam("key")
)


def _take_for_hold(
    conn: Connection, row: LockedMember, key: str, now: dt.datetime, points: int
) -> list[tuple[int, int]]:
    """:func:`take_spendable` for a hold under ``key`` by the locked member ``row``.

    A concurrent retry of the key whose locking read missed the first hold finds the points
    already held: it loses the race on the key (and replays) instead of failing for lack of
    points.
    """
    try:
        return take_spendable(conn, row.id, now, points)
    except InsufficientPoints:
        stored = conn.execute(_KEY_STORED, {"program_id": row.program_id, "key": key}).first()
        if stored is not None:
            raise LostRace(row.program_id) from None
        raise


def quote_redemption(
    db: Target, *, program: str, member: str, order_total_minor: int, currency: str
) -> RedemptionQuote:
    """How many of the member's points may pay for this order, and what they are worth."""
    program = require_program_code(program)
    member = require_member_id(member)
    require_minor_units("order_total_minor", order_total_minor)
    now = db.clock.now()
    with db.read() as conn:
        prog = program_row(conn, program)
        cur = require_currency(currency, prog.currency)
        member_id = conn.execute(
            select(members.c.id).where(
                members.c.program_id == prog.id, members.c.external_id == member
            )
        ).scalar()
        if member_id is None:
            raise MemberNotFound(f"no member {member!r} in program {program!r}", member=member)
        available = sum(lot.available for lot in spendable_lots(conn, member_id, now))
    policy = policy_of(prog, prefix="")
    exponent = minor_unit_exponent(cur)
    points = max_redeemable_points(order_total_minor, available, policy, exponent)
    return RedemptionQuote(
        available=available,
        max_points=points,
        max_discount_minor=value_minor(points, policy, exponent),
        currency=cur,
    )


def hold_points(
    db: Target,
    *,
    program: str,
    member: str,
    order_id: str,
    points: int,
    order_total_minor: int,
    currency: str,
    idempotency_key: str | None = None,
) -> HoldResult:
    """Reserve ``points`` to pay part of an order; capture or release the hold afterwards.

    Checks the program's points-to-cash ratio, minimum and maximum share of the order. The
    key defaults to ``hold:<order_id>``; one order has at most one hold.
    """
    program = require_program_code(program)
    member = require_member_id(member)
    order_id = require_order_id(order_id)
    require_points("points", points)
    require_minor_units("order_total_minor", order_total_minor)
    write = LedgerWrite.of(
        "hold",
        key=resolve_key(idempotency_key, f"hold:{order_id}"),
        result_type=HoldResult,
        request={
            "program": program,
            "member": member,
            "order_id": order_id,
            "points": points,
            "total": order_total_minor,
            "currency": str(currency).upper(),
        },
    )
    now = db.clock.now()

    def work(conn: Connection) -> HoldResult | StoredResult:
        row = write.lock(
            conn, program, member, at=now, extra=ORDER_HELD, params={"order_id": order_id}
        )
        if isinstance(row, StoredResult):
            return row
        cur = require_currency(currency, row.program_currency)
        if cast(_Spender, row).order_held is not None:
            raise AlreadyExists(f"order {order_id!r} already has a points hold", order_id=order_id)
        redemption = check_redemption(
            points, order_total_minor, policy_of(row), minor_unit_exponent(cur)
        )
        result = HoldResult(
            member=member,
            order_id=order_id,
            points=points,
            discount_minor=redemption.discount_minor,
            currency=cur,
            status="active",
            expires_at=now + dt.timedelta(seconds=row.program_hold_timeout_seconds),
        )
        taken = _take_for_hold(conn, row, write.key, now, points)
        record_and_post(
            conn,
            program_id=row.program_id,
            member_id=row.id,
            key=write.key,
            kind=write.kind,
            req_hash=write.req_hash,
            result=result.to_record(),
            moves=[Move("hold", lot_id, available=-take, held=take) for lot_id, take in taken],
            at=now,
            also=INSERT_HOLD,
            also_params=prefixed(
                "holds_",
                {
                    "order_id": order_id,
                    "points": points,
                    "discount_minor": redemption.discount_minor,
                    "order_total_minor": order_total_minor,
                    "currency": cur,
                    "expires_at": result.expires_at,
                },
            ),
        )
        return result

    return write.run(db, work)


def _hold_result(hold: Row[Any], member: str, status: str, *, replayed: bool = False) -> HoldResult:
    return HoldResult(
        member=member,
        order_id=hold.order_id,
        points=hold.points,
        discount_minor=hold.discount_minor,
        currency=hold.currency,
        status=status,
        expires_at=hold.expires_at,
        replayed=replayed,
    )


# The member lock (``lock_member``'s row) reached through the member's hold for an order,
# with the hold's id and operation (they never change; read the rest after the lock).
_LOCK_HOLDER = (
    select(
        *lock_columns({}),
        holds.c.id.label("hold_id"),
        holds.c.operation_id.label("hold_operation_id"),
    )
    .select_from(
        holds.join(members, members.c.id == holds.c.member_id).join(
            programs, programs.c.id == holds.c.program_id
        )
    )
    .where(programs.c.code == bindparam("program"), holds.c.order_id == bindparam("order_id"))
    .with_for_update(of=members)
)
# A hold's new status, with the operation that settles it (see record_and_post).
_SETTLE_HOLD = AlsoWrite(
    "settled",
    lambda _operation_id: (
        update(holds)
        .where(holds.c.id == bindparam("hold_id"))
        .values(status=bindparam("new_status"), resolved_at=AT)
    ),
)


def _lock_holder(
    conn: Connection, program: str, order_id: str, *, key: str, at: dt.datetime
) -> Row[Any]:
    """Lock the member who holds points for an order (see :data:`_LOCK_HOLDER`)."""
    program = require_program_code(program)
    values = {"program": program, "order_id": order_id, "key": key, "at": at}
    row = conn.execute(_LOCK_HOLDER, values).first()
    if row is None:
        program_row(conn, program)
        raise HoldNotFound(f"no points hold for order {order_id!r}", order_id=order_id)
    return cast(Row[Any], row)


def _settle(
    db: Target,
    *,
    program: str,
    order_id: str,
    kind: str,
    key: str,
    decide: Callable[[Row[Any], dt.datetime], str | None],
) -> HoldResult:
    """Capture or release a hold: ``decide`` returns the hold's new status, or ``None`` to
    answer with its current state without changing anything."""
    program = require_program_code(program)
    order_id = require_order_id(order_id)
    write = LedgerWrite.of(
        kind, key=key, result_type=HoldResult, request={"program": program, "order_id": order_id}
    )
    now = db.clock.now()

    def work(conn: Connection) -> HoldResult | StoredResult:
        row = _lock_holder(conn, program, order_id, key=key, at=now)
        done = write.replayed(conn, row)
        if done is not None:
            return done
        hold, held = hold_with_lots(conn, row.hold_id, row.hold_operation_id)
        status = decide(hold, now)
        if status is None:  # already settled: answer with its state, change nothing
            return _hold_result(hold, row.external_id, hold.status, replayed=True)
        returned: Sequence[Move] = ()
        if status == "captured":
            returned = returns_at_capture(conn, hold, held)
        result = _hold_result(hold, row.external_id, status)
        if returned:
            given = sum(m.available for m in returned if m.kind == "refund_return")
            result = replace(result, returned=given)
        apply_settlement(
            conn,
            row,
            hold,
            held,
            status,
            now,
            **write.identity,
            result=result,
            returned=returned,
        )
        return result

    return write.run(db, work)


def apply_settlement(
    conn: Connection,
    row: Row[Any],
    hold: Row[Any],
    held: Sequence[HeldLot],
    status: str,
    now: dt.datetime,
    *,
    key: str,
    kind: str,
    req_hash: str,
    result: HoldResult,
    returned: Sequence[Move] = (),
) -> None:
    """Move a locked member's held points out (captured) or back (released, expired); a
    capture also posts ``returned``, what refunds that went through before it give back."""
    captured = status == "captured"
    moves: list[Move] = []
    for lot in held:
        if captured:
            moves.append(Move("capture", lot.lot_id, held=-lot.points))
            continue
        moves.append(Move("release", lot.lot_id, held=-lot.points, available=lot.points))
        if lot.lot_expired:  # the lot expired while the points were held: they don't come back
            moves.append(Move("expire_returned", lot.lot_id, available=-lot.points))
    moves.extend(returned)
    event = change_event(
        "points.redeemed" if captured else "points.hold_released",
        row,
        program=row.program_code,
        operation=(kind, key),
        moves=moves,
        points=hold.points,
        at=now,
        order_id=hold.order_id,
        status=status,
        discount_minor=hold.discount_minor,
        currency=hold.currency,
        returned=result.returned,
    )
    record_and_post(
        conn,
        program_id=row.program_id,
        member_id=row.id,
        key=key,
        kind=kind,
        req_hash=req_hash,
        result=result.to_record(),
        moves=moves,
        at=now,
        also=_SETTLE_HOLD,
        also_params={"hold_id": hold.id, "new_status": status},
        event=event,
    )


def _capture_decision(hold: Row[Any], now: dt.datetime) -> str | None:
    if hold.status == "captured":
        return None
    if hold.status != "active":
        raise HoldNotActive(
            f"the hold for order {hold.order_id!r} was {hold.status}; hold the points again",
            order_id=hold.order_id,
            status=hold.status,
        )
    if hold.expires_at <= now:
        raise HoldNotActive(
            f"the hold for order {hold.order_id!r} timed out at "
            f"{hold.expires_at.isoformat()}; hold the points again",
            order_id=hold.order_id,
            status="expired",
        )
    return "captured"


def _release_decision(hold: Row[Any], now: dt.datetime) -> str | None:
    if hold.status in ("released", "expired"):
        return None
    if hold.status == "captured":
        raise HoldNotActive(
            f"the hold for order {hold.order_id!r} was already captured; refund the order instead",
            order_id=hold.order_id,
            status=hold.status,
        )
    return "released"


def capture_hold(
    db: Target, *, program: str, order_id: str, idempotency_key: str | None = None
) -> HoldResult:
    """Spend the held points once the payment succeeded. Key default: ``capture:<order_id>``."""
    order_id = require_order_id(order_id)
    key = resolve_key(idempotency_key, f"capture:{order_id}")
    return _settle(
        db, program=program, order_id=order_id, kind="capture", key=key, decide=_capture_decision
    )


def release_hold(
    db: Target, *, program: str, order_id: str, idempotency_key: str | None = None
) -> HoldResult:
    """Give the held points back when the payment failed. Key default: ``release:<order_id>``."""
    order_id = require_order_id(order_id)
    key = resolve_key(idempotency_key, f"release:{order_id}")
    return _settle(
        db, program=program, order_id=order_id, kind="release", key=key, decide=_release_decision
    )


def expire_holds(
    db: Target,
    *,
    batch_size: int = 200,
    on_batch: Callable[[SweepResult], None] | None = None,
) -> SweepResult:
    """Release every active hold whose time-out has passed; safe to run at any time, twice.

    ``on_batch`` gets the running totals after each batch (every hold is settled in its own
    transaction, so they have all committed by then).
    """
    require_int("batch_size", batch_size)
    now = db.clock.now()
    count = points = batches = 0
    while True:
        with db.read() as conn:
            due = conn.execute(
                select(holds.c.order_id, programs.c.code)
                .join(programs, programs.c.id == holds.c.program_id)
                .where(holds.c.status == "active", holds.c.expires_at <= now)
                .order_by(holds.c.expires_at)
                .limit(batch_size)
            ).all()
        if not due:
            break
        batches += 1
        for order_id, program in due:
            result = _settle(
                db,
                program=program,
                order_id=order_id,
                kind="hold_timeout",
                key=derive_key(f"hold-timeout:{order_id}"),
                decide=_timeout_decision(now),
            )
            if result.status == "expired" and not result.replayed:
                count += 1
                points += result.points
        if on_batch is not None:
            on_batch(SweepResult(items=count, points=points, batches=batches))
        if len(due) < batch_size:
            break
    return SweepResult(items=count, points=points, batches=batches)


def _timeout_decision(now: dt.datetime) -> Callable[[Row[Any], dt.datetime], str | None]:
    def decide(hold: Row[Any], _at: dt.datetime) -> str | None:
        return "expired" if hold.status == "active" and hold.expires_at <= now else None

    return decide
