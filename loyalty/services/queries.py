"""Read side: a member's balance (with points expiring soon) and paginated history."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, Row, func, select

from loyalty.db.database import Database
from loyalty.domain.checks import require_int
from loyalty.errors import InvalidInput, MemberNotFound
from loyalty.services.ledger import entries, lots, members, operations, program_row
from loyalty.services.results import Balance, ExpiringPoints, HistoryItem, HistoryPage

MAX_PAGE = 500


def _member(conn: Connection, program: str, member: str) -> Row[Any]:
    prog = program_row(conn, program)
    row = conn.execute(
        select(members).where(members.c.program_id == prog.id, members.c.external_id == member)
    ).first()
    if row is None:
        raise MemberNotFound(
            f"no member {member!r} in program {program!r}", program=program, member=member
        )
    return row


def balance(db: Database, *, program: str, member: str, expiring_within_days: int = 30) -> Balance:
    """The member's balances now, and their available points that expire within the window.

    ``available`` leaves out points whose expiry has passed even if the expiry sweep has not
    removed them yet: they can no longer be spent.
    """
    require_int("expiring_within_days", expiring_within_days, minimum=0)
    now = db.clock.now()
    until = now + dt.timedelta(days=expiring_within_days)
    with db.read() as conn:
        row = _member(conn, program, member)
        lapsed = conn.execute(
            select(func.coalesce(func.sum(lots.c.available), 0)).where(
                lots.c.member_id == row.id, lots.c.available > 0, lots.c.expires_at <= now
            )
        ).scalar_one()
        expiring = conn.execute(
            select(lots.c.expires_at, func.sum(lots.c.available).label("points"))
            .where(
                lots.c.member_id == row.id,
                lots.c.available > 0,
                lots.c.expires_at > now,
                lots.c.expires_at <= until,
            )
            .group_by(lots.c.expires_at)
            .order_by(lots.c.expires_at)
        ).all()
    return Balance(
        member=member,
        available=row.available - int(lapsed),
        pending=row.pending,
        held=row.held,
        frozen=row.frozen,
        debt=row.debt,
        lifetime_earned=row.lifetime_earned,
        expiring=tuple(ExpiringPoints(e.expires_at, int(e.points)) for e in expiring),
    )


def history(
    db: Database, *, program: str, member: str, limit: int = 50, cursor: int | None = None
) -> HistoryPage:
    """The member's history, newest first, one item per operation and entry kind.

    Pass the page's ``next_cursor`` as ``cursor`` to read the next (older) page.
    """
    require_int("limit", limit)
    if limit > MAX_PAGE:
        raise InvalidInput(f"limit may be at most {MAX_PAGE}", field="limit")
    if cursor is not None:
        require_int("cursor", cursor)
    with db.read() as conn:
        row = _member(conn, program, member)
        page_ops = (
            select(entries.c.operation_id)
            .where(entries.c.member_id == row.id)
            .group_by(entries.c.operation_id)
            .order_by(entries.c.operation_id.desc())
            .limit(limit + 1)
        )
        if cursor is not None:
            page_ops = page_ops.where(entries.c.operation_id < cursor)
        op_ids = list(conn.execute(page_ops).scalars())
        more = len(op_ids) > limit
        op_ids = op_ids[:limit]
        deltas = [
            func.sum(entries.c[f"{b}_delta"]).label(b)
            for b in ("available", "pending", "held", "frozen", "debt")
        ]
        rows = conn.execute(
            select(
                entries.c.operation_id,
                entries.c.kind,
                operations.c.key,
                func.min(entries.c.created_at).label("created_at"),
                *deltas,
            )
            .join(operations, operations.c.id == entries.c.operation_id)
            .where(entries.c.member_id == row.id, entries.c.operation_id.in_(op_ids))
            .group_by(entries.c.operation_id, entries.c.kind, operations.c.key)
            .order_by(entries.c.operation_id.desc(), func.min(entries.c.id).desc())
        ).all()
    items = tuple(_item(r) for r in rows)
    return HistoryPage(items=items, next_cursor=op_ids[-1] if more else None)


def _item(r: Row[Any]) -> HistoryItem:
    available, pending, held, frozen, debt = (
        int(r.available),
        int(r.pending),
        int(r.held),
        int(r.frozen),
        int(r.debt),
    )
    created = r.created_at
    if isinstance(created, str):  # SQLite aggregate loses the column type
        created = dt.datetime.fromisoformat(created)
    if created.tzinfo is None:
        created = created.replace(tzinfo=dt.UTC)
    return HistoryItem(
        id=r.operation_id,
        kind=r.kind,
        reference=r.key,
        points=available + pending + held + frozen - debt,
        available=available,
        pending=pending,
        held=held,
        frozen=frozen,
        debt=debt,
        created_at=created,
    )
