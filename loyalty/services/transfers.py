"""Point transfers between members of one program: the limits, the fee and the moved lots.

A transfer takes the points plus the fee from the sender's spendable lots in one pass,
soonest-expiring first (the points first, then the fee). The recipient gets one new lot per
sender lot the points came from, with that lot's expiry and earn date, so expiry and
year-end clearing treat them as the sender's points would have been treated; the new lots
repay the recipient's debt first. A transfer is one operation, stored under its idempotency
key (default ``transfer:<transfer_id>``), with the entries of both members.

Both members are locked in ascending id order, the order every writer that locks more than
one member uses, so transfers in opposite directions cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, bindparam, func, insert, select

from loyalty.db.tables import lots, members, programs, transfers
from loyalty.domain.allocation import LotView, allocate
from loyalty.domain.calendar import periods
from loyalty.domain.checks import (
    require_key,
    require_member_id,
    require_points,
    require_program_code,
)
from loyalty.domain.moves import Move, debt_repayment
from loyalty.errors import (
    InsufficientPoints,
    MemberInactive,
    MemberNotFound,
    TransferLimit,
    TransferNotAllowed,
)
from loyalty.events.outbox import emit_change
from loyalty.services.ledger import post_moves, record_operation
from loyalty.services.lots import spendable_lots
from loyalty.services.results import TransferResult
from loyalty.services.risk_rules import check_received
from loyalty.services.tiers import record_qualifying, requalify_after
from loyalty.services.uow import Target
from loyalty.services.writes import (
    LedgerWrite,
    LockedMember,
    StoredResult,
    frozen_error,
    program_row,
    resolve_key,
)

KIND = "transfer"
Taken = list[tuple[int, int]]  # (lot id, points), as :func:`allocate` answers

# Both members, locked in ascending id order by one statement: PostgreSQL sorts the rows
# before it locks them (as the sweeps in ``loyalty.services.sweeps`` rely on too).
LOCK_PAIR = (
    select(members)
    .join(programs, programs.c.id == members.c.program_id)
    .where(
        programs.c.code == bindparam("program"),
        members.c.external_id.in_([bindparam("sender"), bindparam("recipient")]),
    )
    .order_by(members.c.id)
    .with_for_update(of=members)
)
SENT_ON_DAY = select(func.coalesce(func.sum(transfers.c.points), 0)).where(
    transfers.c.sender_id == bindparam("sender"), transfers.c.day == bindparam("day")
)
INSERT_LOTS = insert(lots).returning(lots.c.id, sort_by_parameter_order=True)
INSERT_TRANSFER = insert(transfers)


def transfer_fee(points: int, fixed: int, bp: int) -> int:
    """The sender's fee: ``fixed`` points plus ``bp`` basis points of ``points``, rounded up."""
    return fixed + -(-points * bp // 10_000)


def transfer_points(
    db: Target,
    *,
    program: str,
    sender: str,
    recipient: str,
    points: int,
    transfer_id: str,
    idempotency_key: str | None = None,
) -> TransferResult:
    """Send ``points`` of the sender's available points to another member of the program.

    The program must allow transfers; its minimum, maximum and per-sender daily limit (on
    the program's local day) apply, and the sender pays its fee on top of the points. Both
    members must be active. The key defaults to ``transfer:<transfer_id>``.
    """
    require_key(transfer_id, name="transfer_id")
    program = require_program_code(program)
    sender = require_member_id(sender, name="sender")
    recipient = require_member_id(recipient, name="recipient")
    require_points("points", points)
    if sender == recipient:
        raise TransferNotAllowed(
            f"member {sender!r} cannot transfer points to themself; choose another recipient",
            member=sender,
        )
    write = LedgerWrite.of(
        KIND,
        key=resolve_key(idempotency_key, f"transfer:{transfer_id}"),
        result_type=TransferResult,
        request={
            "program": program,
            "sender": sender,
            "recipient": recipient,
            "points": points,
            "transfer_id": transfer_id,
        },
    )
    now = db.clock.now()

    def work(conn: Connection) -> TransferResult | StoredResult:
        to = _lock_pair(conn, program, sender, recipient)
        # After both locks: this read sees every transfer the previous lock holders committed.
        row = write.lock(conn, program, sender, at=now, active=False)
        if isinstance(row, StoredResult):
            return row
        _check_allowed(row, to)
        day = periods(now, row.program_timezone).day
        _check_limits(conn, row, points, day)
        check_received(db, conn, to, risk_version=row.program_risk_version, points=points, now=now)
        fee = transfer_fee(points, row.program_transfer_fee_points, row.program_transfer_fee_bp)
        spendable = spendable_lots(conn, row.id, now)
        sent, fee_taken = _split(_allocate(row, spendable, points, fee), points)
        result = TransferResult(
            transfer_id=transfer_id,
            sender=sender,
            recipient=recipient,
            points=points,
            fee=fee,
            lots=len(sent),
            created_at=now,
        )
        op_id = _post(
            conn,
            row,
            to,
            result,
            write=write,
            day=day,
            spendable=spendable,
            sent=sent,
            fee_taken=fee_taken,
        )
        requalify_after(
            conn,
            db,
            member_id=to.id,
            tz=row.program_timezone,
            reason="transfer",
            operation_id=op_id,
            now=now,
            direction="up",
        )
        return result

    return write.run(db, work)


def _lock_pair(conn: Connection, program: str, sender: str, recipient: str) -> Row[Any]:
    """Lock sender and recipient in id order; the recipient's row."""
    params = {"program": program, "sender": sender, "recipient": recipient}
    found = {r.external_id: r for r in conn.execute(LOCK_PAIR, params)}
    for role, member in (("sender", sender), ("recipient", recipient)):
        if member not in found:
            program_row(conn, program)
            raise MemberNotFound(
                f"no member {member!r} in program {program!r}; enrol the {role} first",
                program=program,
                member=member,
            )
    return found[recipient]


def _require_active(row: Row[Any] | LockedMember, role: str) -> None:
    if row.status == "suspended":
        raise frozen_error(row)
    if row.status != "active":
        raise MemberInactive(
            f"the {role} {row.external_id!r} is {row.status}; reopen the member to transfer",
            member=row.external_id,
            status=row.status,
        )


def _check_allowed(row: LockedMember, to: Row[Any]) -> None:
    """The program allows transfers and both members are active."""
    if not row.program_transfers_enabled:
        raise TransferNotAllowed(
            f"program {row.program_code!r} does not allow transfers; "
            "enable them with update_program(transfers_enabled=True)",
            program=row.program_code,
        )
    _require_active(row, "sender")
    _require_active(to, "recipient")


def _check_limits(conn: Connection, row: LockedMember, points: int, day: str) -> None:
    """The transfer's minimum and maximum, and the sender's daily limit on ``day``."""
    low, high = row.program_transfer_min_points, row.program_transfer_max_points
    if points < low:
        raise TransferLimit(
            f"a transfer is at least {low} points, got {points}; send {low} or more",
            limit=low,
            requested=points,
        )
    if high is not None and points > high:
        raise TransferLimit(
            f"a transfer is at most {high} points, got {points}; split it into smaller ones",
            limit=high,
            requested=points,
        )
    limit = row.program_transfer_daily_limit
    if limit is None:
        return
    sent = int(conn.execute(SENT_ON_DAY, {"sender": row.id, "day": day}).scalar_one())
    if sent + points > limit:
        remaining = max(limit - sent, 0)
        raise TransferLimit(
            f"{points} points would pass {row.external_id!r}'s daily limit of {limit} points; "
            f"{remaining} left today ({day}); send at most that or wait for the next day",
            limit=limit,
            remaining=remaining,
            requested=points,
        )


def _allocate(row: LockedMember, spendable: Sequence[LotView], points: int, fee: int) -> Taken:
    """The lots that pay ``points`` and then ``fee``, soonest-expiring first."""
    have = sum(lot.available for lot in spendable)
    if have < points + fee:
        raise InsufficientPoints(
            f"member {row.external_id!r} has {have} available points; the transfer needs "
            f"{points + fee} ({points} plus a fee of {fee}); send fewer points",
            available=have,
            requested=points,
            fee=fee,
        )
    return allocate(spendable, points + fee)


def _split(taken: Taken, points: int) -> tuple[Taken, Taken]:
    """Split an allocation of points plus fee: the first ``points`` are sent, the rest is fee."""
    sent: Taken = []
    fee: Taken = []
    still = points
    for lot_id, take in taken:
        part = min(take, still)
        still -= part
        if part:
            sent.append((lot_id, part))
        if take > part:
            fee.append((lot_id, take - part))
    return sent, fee


def _incoming(new_lots: Taken, debt: int, *, held: bool) -> list[Move]:
    """The recipient's moves: each new lot credited (pending, when risk control holds the
    recipient's new points), repaying the debt lot by lot."""
    moves: list[Move] = []
    bucket = "pending" if held else "available"
    for lot_id, credited in new_lots:
        moves.append(Move("transfer_in", lot_id, new_lot=True, **{bucket: credited}))
        repay = debt_repayment(debt, lot_id, credited, bucket=bucket)
        debt += sum(m.debt for m in repay)
        moves.extend(repay)
    return moves


def _new_lots(
    conn: Connection,
    to: Row[Any],
    op_id: int,
    sent: Taken,
    spendable: Sequence[LotView],
) -> Taken:
    """Insert the recipient's lots, one per sender lot, keeping its expiry and earn date; a
    recipient on risk control's hold gets them pending with no maturity date (held until a
    person releases them, as earned points are)."""
    source = {lot.id: lot for lot in spendable}
    held = bool(to.risk_hold)
    rows = [
        {
            "program_id": to.program_id,
            "member_id": to.id,
            "operation_id": op_id,
            "points": take,
            "available": 0 if held else take,
            "pending": take if held else 0,
            "held": 0,
            "frozen": 0,
            "earned_at": source[lot_id].earned_at,
            "matures_at": None,
            "expires_at": source[lot_id].expires_at,
            "expired_at": None,
        }
        for lot_id, take in sent
    ]
    ids = conn.execute(INSERT_LOTS, rows).scalars().all()
    return [(int(new_id), take) for new_id, (_lot, take) in zip(ids, sent, strict=True)]


def _post(
    conn: Connection,
    row: LockedMember,
    to: Row[Any],
    result: TransferResult,
    *,
    write: LedgerWrite[TransferResult],
    day: str,
    spendable: Sequence[LotView],
    sent: Taken,
    fee_taken: Taken,
) -> int:
    """Store the operation, the recipient's lots, the transfer, both members' moves and the
    recipient's qualifying row; the operation's id."""
    now = result.created_at
    op_id = record_operation(
        conn,
        program_id=row.program_id,
        **write.identity,
        member_id=row.id,
        result=result.to_record(),
        at=now,
    )
    new_lots = _new_lots(conn, to, op_id, sent, spendable)
    conn.execute(
        INSERT_TRANSFER,
        {
            "program_id": row.program_id,
            "operation_id": op_id,
            "sender_id": row.id,
            "recipient_id": to.id,
            "points": result.points,
            "fee": result.fee,
            "day": day,
            "created_at": now,
        },
    )
    outgoing = [Move("transfer_out", lot_id, available=-take) for lot_id, take in sent]
    outgoing += [Move("transfer_fee", lot_id, available=-take) for lot_id, take in fee_taken]
    incoming = _incoming(new_lots, to.debt, held=bool(to.risk_hold))
    for member_id, moves in ((row.id, outgoing), (to.id, incoming)):
        post_moves(
            conn,
            program_id=row.program_id,
            member_id=member_id,
            operation_id=op_id,
            moves=moves,
            at=now,
        )
    for member, moves, direction, other in (
        (row, outgoing, "out", result.recipient),
        (to, incoming, "in", result.sender),
    ):
        emit_change(
            conn,
            "points.transferred",
            member,
            program=row.program_code,
            operation=(write.kind, write.key),
            operation_id=op_id,
            moves=moves,
            points=result.points,
            at=now,
            direction=direction,
            counterparty=other,
            transfer_id=result.transfer_id,
            fee=result.fee if direction == "out" else 0,
        )
    record_qualifying(
        conn,
        program_id=row.program_id,
        member_id=to.id,
        operation_id=op_id,
        source="transfer",
        points=result.points,
        counted_at=now,
        now=now,
    )
    return op_id
