"""Risk cases under review: listing them, their evidence, assigning and resolving them.

Resolving a case is one unit of work, audited: ``release`` makes the member's held points
available (a ``mature`` operation, as when a return window ends) and lifts the hold;
``reverse`` does that and deducts ``points`` (by default the points held) with the reason,
as an adjustment; ``dismiss`` closes the case as a false alarm and releases like
``release``. A member stays on hold while another of their hold cases is open, and their held
points stay held with them: only the resolution that lifts the hold releases them. Whether
another hold case is open is read under the member's lock, so two resolutions at once cannot
both leave the hold to the other.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, func, select, update

from loyalty.db.tables import (
    earnings,
    lots,
    members,
    operations,
    reversals,
    risk_cases,
    transfers,
)
from loyalty.domain.checks import require_text
from loyalty.domain.moves import Move
from loyalty.errors import InvalidInput, MemberNotFound, RiskCaseClosed, RiskCaseNotFound
from loyalty.services.adjustments import adjust_points
from loyalty.services.audit import record_audit
from loyalty.services.results import Record
from loyalty.services.sweeps import SweepItem, post_sweep
from loyalty.services.uow import Target, UnitOfWork, writing
from loyalty.services.writes import program_row

CASE_STATUSES = ("open", "resolved", "dismissed")
OUTCOMES = ("release", "reverse", "dismiss")
MAX_PAGE = 500
# A lot held by risk control: pending, with no maturity date (see services.earning).
HELD_LOT = and_(lots.c.pending > 0, lots.c.matures_at.is_(None))


@dataclass(frozen=True)
class RiskCaseInfo(Record):
    """A case: the rule and subject, what tripped it, who works on it and how it ended.

    ``held_points`` is what the member holds pending because of risk control now;
    ``evidence`` lists the operations that tripped the rule (newest first, at most 50) with
    the rule's figures."""

    id: int
    program: str
    rule_id: str
    rule_version: int
    action: str
    subject: str
    member: str | None
    member_on_hold: bool
    held_points: int
    status: str
    summary: str
    figures: dict[str, Any]
    evidence: tuple[dict[str, Any], ...]
    trips: int
    opened_at: dt.datetime
    last_tripped_at: dt.datetime
    assigned_to: str | None
    resolution: str | None
    resolution_note: str | None
    resolved_at: dt.datetime | None
    resolved_by: str | None


@dataclass(frozen=True)
class RiskCasePage(Record):
    """A page of risk cases, the most recently tripped first (without their evidence), and
    ``total``, how many cases the filters match; pass ``offset`` for the next page."""

    items: tuple[RiskCaseInfo, ...]
    total: int


def list_risk_cases(
    db: Target,
    *,
    program: str,
    status: str | None = "open",
    rule_id: str | None = None,
    member: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> RiskCasePage:
    """Cases of the program, the most recently tripped first (``status=None``: all)."""
    if status is not None and status not in CASE_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(CASE_STATUSES)}", field="status")
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise InvalidInput(f"limit must be 1 to {MAX_PAGE} and offset at least 0")
    with db.read() as conn:
        prog = program_row(conn, program)
        where = [risk_cases.c.program_id == prog.id]
        if status is not None:
            where.append(risk_cases.c.status == status)
        if rule_id is not None:
            where.append(risk_cases.c.rule_id == rule_id)
        if member is not None:
            where.append(members.c.external_id == member)
        joined = risk_cases.outerjoin(members, members.c.id == risk_cases.c.member_id)
        total = conn.execute(select(func.count()).select_from(joined).where(*where)).scalar_one()
        rows = conn.execute(
            _case_query(joined)
            .where(*where)
            .order_by(risk_cases.c.last_tripped_at.desc(), risk_cases.c.id.desc())
            .limit(limit)
            .offset(offset)
        ).all()
        return RiskCasePage(tuple(_info(conn, prog.code, r, detail=False) for r in rows), total)


def risk_case(db: Target, *, program: str, case_id: int) -> RiskCaseInfo:
    """One case with its evidence."""
    with db.read() as conn:
        prog = program_row(conn, program)
        return _info(conn, prog.code, _case_row(conn, prog.id, case_id), detail=True)


def assign_risk_case(
    db: Target, *, program: str, case_id: int, assignee: str | None, actor: str = "system"
) -> RiskCaseInfo:
    """Give the case to a person (``None``: unassign), audited."""
    if assignee is not None:
        assignee = require_text("assignee", assignee, max_length=120)
    with writing(db) as uow, uow.write() as conn:
        prog = program_row(conn, program)
        row = _case_row(conn, prog.id, case_id, lock=True)
        conn.execute(
            update(risk_cases).where(risk_cases.c.id == row.id).values(assigned_to=assignee)
        )
        _audit(
            uow,
            conn,
            prog.id,
            actor,
            "risk.case_assigned",
            row,
            {"assigned_to": row.assigned_to},
            {"assigned_to": assignee},
        )
        return _info(conn, prog.code, _case_row(conn, prog.id, case_id), detail=True)


def resolve_risk_case(
    db: Target,
    *,
    program: str,
    case_id: int,
    outcome: str,
    note: str,
    actor: str = "system",
    points: int | None = None,
) -> RiskCaseInfo:
    """Close an open case: ``release``, ``reverse`` (deducting ``points``, by default the
    points held) or ``dismiss``; with a note saying why. One unit of work, audited."""
    if outcome not in OUTCOMES:
        raise InvalidInput(f"outcome must be one of {', '.join(OUTCOMES)}", field="outcome")
    note = require_text("note", note, max_length=500, multiline=True)
    with writing(db) as uow:
        with uow.write() as conn:
            prog = program_row(conn, program)
            row = _case_row(conn, prog.id, case_id, lock=True)
            if row.status != "open":
                raise RiskCaseClosed(
                    f"risk case {case_id} is already {row.status}; it reopens by itself if "
                    "the rule trips again on new activity",
                    case_id=case_id,
                )
            member = _member_of(conn, row)
            released = 0
            if member is not None:
                released = _release(uow, conn, prog.id, member, case_id, closing=row)
        if outcome == "reverse":
            _reverse(
                uow, prog.code, row, member, points if points is not None else released, note, actor
            )
        with uow.write() as conn:
            status = "dismissed" if outcome == "dismiss" else "resolved"
            resolution = {"release": "released", "reverse": "reversed", "dismiss": "dismissed"}
            values = {
                "status": status,
                "resolution": resolution[outcome],
                "resolution_note": note,
                "resolved_at": uow.clock.now(),
                "resolved_by": actor,
            }
            conn.execute(update(risk_cases).where(risk_cases.c.id == row.id).values(**values))
            _audit(
                uow,
                conn,
                prog.id,
                actor,
                f"risk.case_{status}",
                row,
                {"status": "open"},
                {**values, "released_points": released, "points": points},
            )
            return _info(conn, prog.code, _case_row(conn, prog.id, case_id), detail=True)


def release_member_hold(
    db: Target, *, program: str, member: str, note: str, actor: str = "system"
) -> int:
    """Lift a member's hold outside a case (the hold cases stay as they are); returns the
    points made available. Audited."""
    note = require_text("note", note, max_length=500, multiline=True)
    with writing(db) as uow, uow.write() as conn:
        prog = program_row(conn, program)
        row = conn.execute(
            select(members)
            .where(members.c.program_id == prog.id, members.c.external_id == member)
            .with_for_update()
        ).first()
        if row is None:
            raise MemberNotFound(f"no member {member!r} in program {program!r}", member=member)
        released = _release(uow, conn, prog.id, row, None, closing=None)
        record_audit(
            conn,
            actor=actor,
            action="risk.hold_released",
            target=f"member:{member}",
            at=uow.clock.now(),
            program_id=prog.id,
            after={"points": released, "note": note},
        )
        return released


def _release(
    uow: UnitOfWork,
    conn: Connection,
    program_id: int,
    member: Any,
    case_id: int | None,
    *,
    closing: Any,
) -> int:
    """Lift the member's hold and make their held lots available (one ``mature``
    operation), unless a hold case other than ``closing`` (the case being resolved; ``None``
    when a person lifts the hold outside a case) is still open: then the member stays on hold
    and their points stay held. Returns the points released."""
    locked = conn.execute(
        select(members.c.id).where(members.c.id == member.id).with_for_update()
    ).scalar_one()
    if closing is not None and _other_holds(conn, closing):
        return 0
    held = conn.execute(
        select(lots.c.id, lots.c.pending)
        .where(lots.c.member_id == locked, HELD_LOT)
        .order_by(lots.c.id)
        .with_for_update()
    ).all()
    post_sweep(
        conn,
        kind="mature",
        key_prefix=f"risk:release:{case_id or 'member'}",
        at=uow.clock.now(),
        items=[
            SweepItem(
                program_id, locked, Move("mature", r.id, pending=-r.pending, available=r.pending)
            )
            for r in held
        ],
    )
    conn.execute(update(members).where(members.c.id == locked).values(risk_hold=False))
    return sum(int(r.pending) for r in held)


def _reverse(
    uow: UnitOfWork, program: str, row: Any, member: Any, points: int, note: str, actor: str
) -> None:
    if member is None:
        raise InvalidInput(
            "this case names no member: there are no points to reverse; dismiss "
            "or release it instead",
            field="outcome",
        )
    if points <= 0:
        raise InvalidInput(
            "no points are held for this case: say how many points to reverse", field="points"
        )
    adjust_points(
        uow,
        program=program,
        member=member.external_id,
        points=-points,
        reason=f"risk case {row.id} ({row.rule_id}): {note}",
        adjustment_id=f"risk-case-{row.id}",
        actor=actor,
    )


def _other_holds(conn: Connection, row: Any) -> bool:
    return (
        conn.execute(
            select(func.count()).where(
                risk_cases.c.member_id == row.member_id,
                risk_cases.c.status == "open",
                risk_cases.c.action == "hold",
                risk_cases.c.id != row.id,
            )
        ).scalar_one()
        > 0
    )


def _member_of(conn: Connection, row: Any) -> Any:
    if row.member_id is None:
        return None
    return conn.execute(select(members).where(members.c.id == row.member_id)).one()


def _case_row(conn: Connection, program_id: int, case_id: int, *, lock: bool = False) -> Any:
    if isinstance(case_id, bool) or not isinstance(case_id, int) or not 0 < case_id < 2**63:
        raise InvalidInput("case_id must be a positive whole number", field="case_id")
    joined = risk_cases.outerjoin(members, members.c.id == risk_cases.c.member_id)
    stmt = _case_query(joined).where(
        risk_cases.c.program_id == program_id, risk_cases.c.id == case_id
    )
    row = conn.execute(stmt.with_for_update(of=risk_cases) if lock else stmt).first()
    if row is None:
        raise RiskCaseNotFound(f"no risk case {case_id} in this program", case_id=case_id)
    return row


def _case_query(joined: Any) -> Any:
    return select(
        risk_cases,
        members.c.external_id.label("member_external_id"),
        members.c.risk_hold.label("member_risk_hold"),
    ).select_from(joined)


def _info(conn: Connection, program: str, row: Any, *, detail: bool) -> RiskCaseInfo:
    held = 0
    if row.member_id is not None:
        held = conn.execute(
            select(func.coalesce(func.sum(lots.c.pending), 0)).where(
                lots.c.member_id == row.member_id, HELD_LOT
            )
        ).scalar_one()
    ops = row.evidence.get("operations", []) if detail else []
    return RiskCaseInfo(
        id=row.id,
        program=program,
        rule_id=row.rule_id,
        rule_version=row.rule_version,
        action=row.action,
        subject=row.subject,
        member=row.member_external_id,
        member_on_hold=bool(row.member_risk_hold),
        held_points=int(held),
        status=row.status,
        summary=row.summary,
        figures=dict(row.evidence.get("figures", {})),
        evidence=tuple(_evidence(conn, ops)),
        trips=row.trips,
        opened_at=row.opened_at,
        last_tripped_at=row.last_tripped_at,
        assigned_to=row.assigned_to,
        resolution=row.resolution,
        resolution_note=row.resolution_note,
        resolved_at=row.resolved_at,
        resolved_by=row.resolved_by,
    )


def _evidence(conn: Connection, operation_ids: list[int]) -> list[dict[str, Any]]:
    """The operations of a case's evidence, in words a reviewer reads: when, what, who,
    how many points, and the order, location or device where there is one."""
    if not operation_ids:
        return []
    earned = {
        r.operation_id: r
        for r in conn.execute(
            select(earnings).where(earnings.c.operation_id.in_(operation_ids))
        ).all()
    }
    refunded = {
        r.operation_id: r
        for r in conn.execute(
            select(reversals).where(reversals.c.operation_id.in_(operation_ids))
        ).all()
    }
    recipients = members.alias("recipients")
    sent = {
        r.operation_id: r
        for r in conn.execute(
            select(
                transfers,
                members.c.external_id.label("sender"),
                recipients.c.external_id.label("recipient"),
            )
            .join(members, members.c.id == transfers.c.sender_id)
            .join(recipients, recipients.c.id == transfers.c.recipient_id)
            .where(transfers.c.operation_id.in_(operation_ids))
        ).all()
    }
    rows = conn.execute(
        select(operations.c.id, operations.c.kind, operations.c.key, operations.c.created_at)
        .where(operations.c.id.in_(operation_ids))
        .order_by(operations.c.id.desc())
    ).all()
    return [_evidence_item(r, earned.get(r.id), refunded.get(r.id), sent.get(r.id)) for r in rows]


def _evidence_item(op: Any, earning: Any, reversal: Any, transfer: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "operation_id": op.id,
        "kind": op.kind,
        "key": op.key,
        "at": op.created_at,
    }
    if earning is not None:
        item.update(
            points=earning.points_granted,
            order_id=earning.order_id,
            action=earning.action,
            location=earning.location,
            device=earning.device,
        )
    if reversal is not None:
        item.update(
            points=reversal.points,
            order_id=reversal.order_id,
            refund=reversal.external_id,
            status=reversal.status,
        )
    if transfer is not None:
        item.update(points=transfer.points, sender=transfer.sender, recipient=transfer.recipient)
    return item


def _audit(
    uow: UnitOfWork,
    conn: Connection,
    program_id: int,
    actor: str,
    action: str,
    row: Any,
    before: dict[str, Any],
    after: dict[str, Any],
) -> None:
    record_audit(
        conn,
        actor=actor,
        action=action,
        target=f"risk-case:{row.id}",
        at=uow.clock.now(),
        program_id=program_id,
        before=before,
        after={k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in after.items()},
    )
