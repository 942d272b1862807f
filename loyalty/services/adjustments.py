"""Manual adjustments: staff grant or deduct points with a reason.

A grant creates a lot that expires under the program's expiry rules in force (and repays
the member's debt first, like any new lot); a deduction takes available points, soonest
expiring first. Approval of large adjustments (four eyes) belongs to the admin console;
this is the ledger write it ends with.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection

from loyalty.domain.allocation import allocate
from loyalty.domain.calendar import lot_expiry
from loyalty.domain.checks import (
    MAX_POINTS,
    require_key,
    require_member_id,
    require_program_code,
    require_text,
)
from loyalty.domain.moves import Move, debt_repayment
from loyalty.errors import InvalidAmount
from loyalty.events.outbox import emit_change
from loyalty.services.earning import INSERT_LOT
from loyalty.services.ledger import post_moves, record_operation
from loyalty.services.lots import spendable_lots
from loyalty.services.results import AdjustmentResult
from loyalty.services.tiers import record_qualifying, requalify_after
from loyalty.services.uow import Target
from loyalty.services.writes import (
    LedgerWrite,
    LockedMember,
    StoredResult,
    resolve_key,
    rule_cache,
)

MAX_ADJUSTMENT = MAX_POINTS  # the bound of every amount of points, either way


def adjust_points(
    db: Target,
    *,
    program: str,
    member: str,
    points: int,
    reason: str,
    adjustment_id: str,
    actor: str | None = None,
    idempotency_key: str | None = None,
) -> AdjustmentResult:
    """Grant (``points`` > 0) or deduct (``points`` < 0) points, with a mandatory reason.

    The key defaults to ``adjust:<adjustment_id>``. A deduction needs that many available
    points (:class:`InsufficientPoints` otherwise); it never creates a debt.
    """
    _require_points(points)
    program = require_program_code(program)
    member = require_member_id(member)
    reason = require_text("reason", reason, max_length=500, multiline=True)
    require_key(adjustment_id, name="adjustment_id")
    if actor is not None:
        actor = require_text("actor", actor, max_length=120)
    params = {"program": program, "member": member, "points": points, "reason": reason}
    write = LedgerWrite.of(
        "adjust",
        key=resolve_key(idempotency_key, f"adjust:{adjustment_id}"),
        result_type=AdjustmentResult,
        request={**params, "id": adjustment_id, "actor": actor},
    )
    now = db.clock.now()

    def work(conn: Connection) -> AdjustmentResult | StoredResult:
        row = write.lock(conn, program, member, at=now)
        if isinstance(row, StoredResult):
            return row
        expires_at = _grant_expiry(db, conn, row, now) if points > 0 else None
        result = AdjustmentResult(
            member=member,
            adjustment_id=adjustment_id,
            points=points,
            reason=reason,
            actor=actor,
            expires_at=expires_at,
            debt_repaid=min(row.debt, points) if points > 0 else 0,
            created_at=now,
        )
        op_id = record_operation(
            conn,
            program_id=row.program_id,
            **write.identity,
            member_id=row.id,
            result=result.to_record(),
            at=now,
        )
        moves = (
            _grant(conn, row, op_id, points, expires_at, now)
            if points > 0
            else _deduct(conn, row.id, -points, now)
        )
        post_moves(
            conn,
            program_id=row.program_id,
            member_id=row.id,
            operation_id=op_id,
            at=now,
            moves=moves,
        )
        emit_change(
            conn,
            "points.adjusted",
            row,
            program=row.program_code,
            operation=(write.kind, write.key),
            operation_id=op_id,
            moves=moves,
            points=points,
            at=now,
            adjustment_id=adjustment_id,
            reason=reason,
            actor=actor,
            expires_at=expires_at,
            debt_repaid=result.debt_repaid,
        )
        record_qualifying(
            conn,
            program_id=row.program_id,
            member_id=row.id,
            operation_id=op_id,
            source="adjustment",
            points=points,
            counted_at=now,
            now=now,
        )
        requalify_after(
            conn,
            db,
            member_id=row.id,
            tz=row.program_timezone,
            reason="adjustment",
            operation_id=op_id,
            now=now,
            direction="up" if points > 0 else "down",
        )
        return result

    return write.run(db, work)


def _require_points(points: object) -> None:
    if isinstance(points, bool) or not isinstance(points, int):
        raise InvalidAmount(
            f"points must be an integer (positive grants, negative deducts), got {points!r}",
            field="points",
        )
    if points == 0 or abs(points) > MAX_ADJUSTMENT:
        raise InvalidAmount(
            f"points must be non-zero and at most {MAX_ADJUSTMENT} either way, got {points}",
            field="points",
        )


def _grant_expiry(
    db: Target, conn: Connection, row: LockedMember, now: dt.datetime
) -> dt.datetime | None:
    _version, rules = rule_cache(db).get(conn, row.rule_version_id)
    return lot_expiry(now, row.program_timezone, rules.expiry)


def _grant(
    conn: Connection,
    row: LockedMember,
    op_id: int,
    points: int,
    expires_at: dt.datetime | None,
    now: dt.datetime,
) -> list[Move]:
    lot_id = conn.execute(
        INSERT_LOT,
        {
            "program_id": row.program_id,
            "member_id": row.id,
            "operation_id": op_id,
            "points": points,
            "available": points,
            "pending": 0,
            "held": 0,
            "frozen": 0,
            "earned_at": now,
            "matures_at": None,
            "expires_at": expires_at,
            "expired_at": None,
        },
    ).scalar_one()
    return [
        Move("adjust_grant", lot_id, available=points, new_lot=True),
        *debt_repayment(row.debt, lot_id, points),
    ]


def _deduct(conn: Connection, member_id: int, points: int, now: dt.datetime) -> list[Move]:
    taken = allocate(spendable_lots(conn, member_id, now), points)
    return [Move("adjust_deduct", lot_id, available=-take) for lot_id, take in taken]
