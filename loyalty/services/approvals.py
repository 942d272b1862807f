"""Manual adjustments with four-eyes approval, as the admin console makes them.

:func:`request_adjustment` stores the request. Up to the threshold (in points, either way)
it is applied at once through :func:`~loyalty.services.adjust_points`; above it, it waits
as ``pending`` until a *different* person approves it (:func:`approve_adjustment`) or
someone rejects it (:func:`reject_adjustment`). The requester can never approve their own.

The threshold also holds over a running total, so a large grant cannot be split into small
ones: a request is applied at once only if it, plus every request the same person applied
at once for the same member on the same local day (the program's time zone), stays within
the threshold, grants and deductions both counting by their size. Requests a second person
approved do not count. The member's row is locked while the total is read, so two requests
at the same moment cannot both slip under it.

What the request would do is checked when it is made and again when it is applied (the
balance may have changed in between): a deduction needs that many points spendable now (a
manual adjustment never makes a debt, whatever the program's refund policy), and a grant
may not leave the member holding more than ``MAX_POINTS``; a closed member cannot be
adjusted. A request refused when it is made writes nothing; one refused when it is applied
is recorded as ``failed``. Amounts in these messages carry thousands separators.

The ledger write is keyed by the request (``adjustment_id`` ``console-<id>``), so applying
a request twice (a retried approval, a crash between the ledger write and the status
update) writes the points once. Every step writes an audit entry in its own transaction's
change: requested, approved, rejected, applied or failed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, func, select, update

from loyalty.db.tables import adjustment_requests, members, operations
from loyalty.domain.calendar import local_midnight, zone
from loyalty.domain.checks import (
    MAX_POINTS,
    require_int,
    require_member_id,
    require_program_code,
    require_text,
)
from loyalty.errors import (
    AdjustmentRequestNotFound,
    AdjustmentRequestSettled,
    ApprovalRequired,
    InsufficientPoints,
    InvalidAmount,
    InvalidInput,
    LoyaltyError,
    MemberInactive,
    MemberNotFound,
    SelfApproval,
)
from loyalty.services.adjustments import _require_points, adjust_points
from loyalty.services.audit import record_audit
from loyalty.services.lots import spendable_lots
from loyalty.services.results import AdjustmentResult
from loyalty.services.uow import Target, UnitOfWork, run_in
from loyalty.services.writes import program_row

DEFAULT_THRESHOLD = 1000
STATUSES = ("pending", "approving", "applied", "rejected", "failed")
APPLIED_AT_ONCE = ("approving", "applied")


@dataclass(frozen=True)
class AdjustmentRequestInfo:
    """An adjustment request and where it stands.

    ``status``: ``pending`` (waiting for a second person), ``approving``, ``applied``,
    ``rejected`` or ``failed`` (``error`` says why the ledger refused it). ``decided_by``
    approved or rejected it (the requester themself for one applied at once).
    """

    id: int
    program: str
    member: str
    points: int
    reason: str
    status: str
    requested_by: str
    requested_at: dt.datetime
    decided_by: str | None
    decided_at: dt.datetime | None
    adjustment_id: str | None
    error: str | None

    @property
    def needs_approval(self) -> bool:
        """True while it waits for a second person."""
        return self.status == "pending"


def _info(program: str, row: Row[Any]) -> AdjustmentRequestInfo:
    return AdjustmentRequestInfo(
        id=int(row.id),
        program=program,
        member=row.member,
        points=int(row.points),
        reason=row.reason,
        status=row.status,
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        adjustment_id=row.adjustment_id,
        error=row.error,
    )


def _select() -> Any:
    return select(adjustment_requests, members.c.external_id.label("member")).join(
        members, members.c.id == adjustment_requests.c.member_id
    )


def _load(conn: Connection, program_id: int, request_id: int, *, lock: bool) -> Row[Any]:
    query = _select().where(
        adjustment_requests.c.id == request_id, adjustment_requests.c.program_id == program_id
    )
    if lock:
        query = query.with_for_update(of=adjustment_requests)
    row = conn.execute(query).first()
    if row is None:
        raise AdjustmentRequestNotFound(
            f"no adjustment request {request_id}", request_id=request_id
        )
    return row


def _audit_values(row: Row[Any] | AdjustmentRequestInfo) -> dict[str, Any]:
    return {
        "member": row.member,
        "points": int(row.points),
        "reason": row.reason,
        "status": row.status,
        "requested_by": row.requested_by,
        "decided_by": row.decided_by,
    }


def adjust_within_threshold(
    db: Target,
    *,
    program: str,
    member: str,
    points: int,
    reason: str,
    adjustment_id: str,
    actor: str,
    threshold: int = DEFAULT_THRESHOLD,
    idempotency_key: str | None = None,
) -> AdjustmentResult:
    """An adjustment a caller without a second person makes (the HTTP API): the ledger write
    of :func:`~loyalty.services.adjust_points` when ``abs(points)`` is within ``threshold``;
    above it :class:`ApprovalRequired` and nothing is written (request it in the console)."""
    _require_points(points)
    require_int("threshold", threshold, minimum=0, maximum=MAX_POINTS)
    if abs(points) > threshold:
        raise ApprovalRequired(
            f"adjustments above {threshold:,} points need a second person's approval; "
            "request this one in the console (Adjustments)",
            threshold=threshold,
        )
    return adjust_points(
        db,
        program=program,
        member=member,
        points=points,
        reason=reason,
        adjustment_id=adjustment_id,
        actor=actor,
        idempotency_key=idempotency_key,
    )


def request_adjustment(
    db: Target,
    *,
    program: str,
    member: str,
    points: int,
    reason: str,
    requested_by: str,
    threshold: int = DEFAULT_THRESHOLD,
) -> AdjustmentRequestInfo:
    """Ask for a grant (``points`` > 0) or deduction (< 0) with a mandatory reason.

    Applied at once when ``abs(points)``, plus what ``requested_by`` applied at once for
    this member earlier the same local day, is at most ``threshold``; otherwise stored as
    ``pending`` for a second person. What it would do is checked first
    (:func:`check_adjustment`): a refusal raises and writes nothing. A ledger refusal when it
    is applied (for example :class:`InsufficientPoints`) marks the request ``failed`` and is
    raised.
    """
    _require_points(points)
    program = require_program_code(program)
    member = require_member_id(member)
    reason = require_text("reason", reason, max_length=500, multiline=True)
    requested_by = require_text("requested_by", requested_by, max_length=120)
    require_int("threshold", threshold, minimum=0, maximum=MAX_POINTS)
    outcome = run_in(
        db,
        lambda uow: _request(uow, program, member, points, reason, requested_by, threshold),
    )
    return _raise_or_return(outcome)


def _request(
    uow: UnitOfWork,
    program: str,
    member: str,
    points: int,
    reason: str,
    requested_by: str,
    threshold: int,
) -> _Outcome:
    """Store the request (and its audit entry) and, when it is small enough, apply it."""
    now = uow.clock.now()
    conn = uow.connection
    prog = program_row(conn, program)
    member_id = _lock_member(conn, prog.id, program, member)
    check_adjustment(conn, member_id, member, points, now=now)
    used = applied_today(conn, prog.id, member_id, requested_by, now=now, timezone=prog.timezone)
    immediate = abs(points) + used <= threshold
    request_id = int(
        conn.execute(
            adjustment_requests.insert()
            .values(
                program_id=prog.id,
                member_id=member_id,
                points=points,
                reason=reason,
                status="approving" if immediate else "pending",
                requested_by=requested_by,
                requested_at=now,
                decided_by=requested_by if immediate else None,
                decided_at=now if immediate else None,
            )
            .returning(adjustment_requests.c.id)
        ).scalar_one()
    )
    conn.execute(
        update(adjustment_requests)
        .where(adjustment_requests.c.id == request_id)
        .values(adjustment_id=f"console-{request_id}")
    )
    row = _load(conn, prog.id, request_id, lock=False)
    record_audit(
        conn,
        actor=requested_by,
        action="adjustment.request",
        target=f"member {member} adjustment #{request_id}",
        at=now,
        program_id=prog.id,
        after={**_audit_values(row), "threshold": threshold, "applied_today": used},
    )
    if not immediate:
        return _Outcome(_info(program, row), None)
    return _apply(uow, program, request_id)


def _lock_member(conn: Connection, program_id: int, program: str, member: str) -> int:
    """The member's row id, locked so the checks and the write see the same balance."""
    member_id = conn.execute(
        select(members.c.id)
        .where(members.c.program_id == program_id, members.c.external_id == member)
        .with_for_update()
    ).scalar()
    if member_id is None:
        raise MemberNotFound(
            f"no member {member!r} in program {program!r}", program=program, member=member
        )
    return int(member_id)


def check_adjustment(
    conn: Connection, member_id: int, member: str, points: int, *, now: dt.datetime
) -> None:
    """Raise what the ledger would answer to adjusting ``member`` by ``points`` now:
    :class:`MemberInactive`, :class:`InsufficientPoints` for a deduction beyond the points
    spendable now, :class:`InvalidAmount` for a grant that would leave the member holding
    more than ``MAX_POINTS``. The caller holds the member's row lock."""
    m = members.c
    row = conn.execute(
        select(m.status, m.available, m.pending, m.held, m.frozen, m.debt).where(m.id == member_id)
    ).one()
    if row.status != "active":
        raise MemberInactive(
            f"member {member!r} is {row.status}; reopen the member before adjusting their points",
            member=member,
        )
    if points < 0:
        _check_deduction(conn, member_id, member, -points, now=now)
        return
    held = int(row.available) + int(row.pending) + int(row.held) + int(row.frozen)
    after = held + points - min(int(row.debt), points)
    if after > MAX_POINTS:
        most = MAX_POINTS - held + min(int(row.debt), points)
        raise InvalidAmount(
            f"a grant of {points:,} points would leave {member} holding {after:,} points; "
            f"a member may hold at most {MAX_POINTS:,}. Grant at most {max(most, 0):,} points.",
            field="points",
            maximum=max(most, 0),
        )


def _check_deduction(
    conn: Connection, member_id: int, member: str, points: int, *, now: dt.datetime
) -> None:
    spendable = sum(lot.available for lot in spendable_lots(conn, member_id, now))
    if points <= spendable:
        return
    limit = f"deduct at most {spendable:,} points" if spendable else "there is nothing to deduct"
    raise InsufficientPoints(
        f"{member} has {spendable:,} points that can be deducted now, not {points:,}: a "
        f"manual deduction never takes a balance below zero; {limit}.",
        available=spendable,
        requested=points,
    )


def _written(conn: Connection, program_id: int, adjustment_id: str) -> bool:
    """True if the ledger already holds the write keyed by this request."""
    key = f"adjust:{adjustment_id}"
    found = conn.execute(
        select(operations.c.id).where(
            operations.c.program_id == program_id, operations.c.key == key
        )
    ).first()
    return found is not None


def applied_today(
    conn: Connection,
    program_id: int,
    member_id: int,
    requested_by: str,
    *,
    now: dt.datetime,
    timezone: str,
) -> int:
    """Points (grants and deductions by size) ``requested_by`` applied at once, without a
    second person, for this member on the local day of ``now``."""
    today = now.astimezone(zone(timezone)).date()
    start = local_midnight(today, timezone)
    end = local_midnight(today + dt.timedelta(days=1), timezone)
    r = adjustment_requests.c
    total = conn.execute(
        select(func.coalesce(func.sum(func.abs(r.points)), 0)).where(
            r.program_id == program_id,
            r.member_id == member_id,
            r.requested_by == requested_by,
            r.decided_by == requested_by,
            r.status.in_(APPLIED_AT_ONCE),
            r.requested_at >= start,
            r.requested_at < end,
        )
    ).scalar_one()
    return int(total)


def approve_adjustment(
    db: Target, *, program: str, request_id: int, approver: str
) -> AdjustmentRequestInfo:
    """Approve a pending request and apply it; the requester cannot (:class:`SelfApproval`).

    The approval, the ledger write and the outcome are one unit of work. A request left
    ``approving`` (by a version that committed them apart) is finished by its approver
    approving again, without writing the points twice.
    """
    program = require_program_code(program)
    require_int("request_id", request_id, minimum=1)
    approver = require_text("approver", approver, max_length=120)
    return _raise_or_return(run_in(db, lambda uow: _approve(uow, program, request_id, approver)))


def _approve(uow: UnitOfWork, program: str, request_id: int, approver: str) -> _Outcome:
    """Mark the request approved by ``approver`` (audited), then apply it."""
    now = uow.clock.now()
    conn = uow.connection
    prog = program_row(conn, program)
    row = _load(conn, prog.id, request_id, lock=True)
    resuming = row.status == "approving" and row.decided_by == approver
    if not resuming:
        if row.status != "pending":
            raise AdjustmentRequestSettled(
                f"adjustment request {request_id} is already {row.status}",
                request_id=request_id,
                status=row.status,
            )
        if approver == row.requested_by:
            raise SelfApproval(
                f"{approver} asked for adjustment request {request_id} and cannot approve "
                "it; another operations user must",
                request_id=request_id,
            )
        conn.execute(
            update(adjustment_requests)
            .where(adjustment_requests.c.id == request_id)
            .values(status="approving", decided_by=approver, decided_at=now)
        )
        record_audit(
            conn,
            actor=approver,
            action="adjustment.approve",
            target=f"member {row.member} adjustment #{request_id}",
            at=now,
            program_id=prog.id,
            before=_audit_values(row),
            after={**_audit_values(row), "status": "approving", "decided_by": approver},
        )
    return _apply(uow, program, request_id)


def reject_adjustment(
    db: Target, *, program: str, request_id: int, rejecter: str, note: str | None = None
) -> AdjustmentRequestInfo:
    """Reject a pending request (the requester may withdraw their own); nothing is written
    to the ledger."""
    program = require_program_code(program)
    require_int("request_id", request_id, minimum=1)
    rejecter = require_text("rejecter", rejecter, max_length=120)
    if isinstance(note, str) and len(note) > 500:
        raise InvalidInput("the note may be at most 500 characters", field="note")
    if note is not None and (not isinstance(note, str) or note.strip()):
        note = require_text("note", note, max_length=500, multiline=True)
    elif note is not None:
        note = None  # a blank note is no note
    now = db.clock.now()
    with db.write() as conn:
        prog = program_row(conn, program)
        row = _load(conn, prog.id, request_id, lock=True)
        if row.status != "pending":
            raise AdjustmentRequestSettled(
                f"adjustment request {request_id} is already {row.status}",
                request_id=request_id,
                status=row.status,
            )
        conn.execute(
            update(adjustment_requests)
            .where(adjustment_requests.c.id == request_id)
            .values(status="rejected", decided_by=rejecter, decided_at=now, error=note or None)
        )
        record_audit(
            conn,
            actor=rejecter,
            action="adjustment.reject",
            target=f"member {row.member} adjustment #{request_id}",
            at=now,
            program_id=prog.id,
            before=_audit_values(row),
            after={
                **_audit_values(row),
                "status": "rejected",
                "decided_by": rejecter,
                "note": note,
            },
        )
        return _info(program, _load(conn, prog.id, request_id, lock=False))


@dataclass(frozen=True)
class _Outcome:
    """A request as it stands once its unit of work ends, and the ledger's refusal if any
    (raised only after the unit commits, so the ``failed`` status and its audit entry stay)."""

    info: AdjustmentRequestInfo
    failure: LoyaltyError | None


def _raise_or_return(outcome: _Outcome) -> AdjustmentRequestInfo:
    if outcome.failure is not None:
        raise outcome.failure
    return outcome.info


def _apply(uow: UnitOfWork, program: str, request_id: int) -> _Outcome:
    """Write an approved request to the ledger (a savepoint: a refusal writes nothing), then
    record how it went, in the same unit of work."""
    conn = uow.connection
    prog = program_row(conn, program)
    row = _load(conn, prog.id, request_id, lock=False)
    result: AdjustmentResult | None = None
    failure: LoyaltyError | None = None
    try:
        if not _written(conn, prog.id, row.adjustment_id):
            member_id = _lock_member(conn, prog.id, program, row.member)
            check_adjustment(conn, member_id, row.member, int(row.points), now=uow.clock.now())
        result = adjust_points(
            uow,
            program=program,
            member=row.member,
            points=int(row.points),
            reason=row.reason,
            adjustment_id=row.adjustment_id,
            actor=row.requested_by,
        )
    except LoyaltyError as exc:
        failure = exc
    status = "failed" if failure is not None else "applied"
    conn.execute(
        update(adjustment_requests)
        .where(adjustment_requests.c.id == request_id)
        .values(status=status, error=None if failure is None else failure.message)
    )
    after = {**_audit_values(row), "status": status}
    if failure is not None:
        after["error"] = failure.message
    elif result is not None and result.expires_at is not None:
        after["expires_at"] = result.expires_at.isoformat()
    record_audit(
        conn,
        actor=row.decided_by or row.requested_by,
        action=f"adjustment.{status}",
        target=f"member {row.member} adjustment #{request_id}",
        at=uow.clock.now(),
        program_id=prog.id,
        before=_audit_values(row),
        after=after,
    )
    return _Outcome(_info(program, _load(conn, prog.id, request_id, lock=False)), failure)


def get_adjustment_request(db: Target, *, program: str, request_id: int) -> AdjustmentRequestInfo:
    """One request, or :class:`AdjustmentRequestNotFound`."""
    program = require_program_code(program)
    require_int("request_id", request_id, minimum=1)
    with db.read() as conn:
        prog = program_row(conn, program)
        return _info(program, _load(conn, prog.id, request_id, lock=False))


def list_adjustment_requests(
    db: Target,
    *,
    program: str,
    status: str | None = None,
    member: str | None = None,
    limit: int = 50,
) -> list[AdjustmentRequestInfo]:
    """Requests newest first, optionally of one status or member."""
    program = require_program_code(program)
    member = None if member is None else require_member_id(member)
    require_int("limit", limit, minimum=1)
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}", field="status")
    with db.read() as conn:
        prog = program_row(conn, program)
        query = _select().where(adjustment_requests.c.program_id == prog.id)
        if status is not None:
            query = query.where(adjustment_requests.c.status == status)
        if member is not None:
            query = query.where(members.c.external_id == member)
        rows = conn.execute(query.order_by(adjustment_requests.c.id.desc()).limit(limit)).all()
    return [_info(program, r) for r in rows]
