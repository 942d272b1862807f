"""Maturation: pending purchase points become available when their return window ends."""

from __future__ import annotations

from sqlalchemy import select

from loyalty.db.database import Database
from loyalty.services.ledger import Move, SweepItem, lock_members, lots, post_sweep
from loyalty.services.results import SweepResult


def mature_pending(db: Database, *, batch_size: int = 1000) -> SweepResult:
    """Make every lot whose return window has ended available; set-based, per batch.

    Each batch is one transaction; a crash loses at most the batch in flight, and running
    again (or concurrently) finds only lots that are still pending.
    """
    now = db.clock.now()
    matured = points = batches = 0
    while True:
        with db.write() as conn:
            due = (
                conn.execute(
                    select(lots.c.member_id)
                    .where(lots.c.pending > 0, lots.c.matures_at <= now)
                    .order_by(lots.c.matures_at, lots.c.id)
                    .limit(batch_size)
                )
                .scalars()
                .all()
            )
            if not due:
                break
            locked = lock_members(conn, due)
            rows = conn.execute(
                select(lots.c.id, lots.c.member_id, lots.c.program_id, lots.c.pending).where(
                    lots.c.member_id.in_(locked), lots.c.pending > 0, lots.c.matures_at <= now
                )
            ).all()
            post_sweep(
                conn,
                kind="mature",
                key_prefix="sweep:mature",
                at=now,
                items=[
                    SweepItem(
                        r.program_id,
                        r.member_id,
                        Move("mature", r.id, pending=-r.pending, available=r.pending),
                    )
                    for r in rows
                ],
            )
        batches += 1
        matured += len(rows)
        points += sum(r.pending for r in rows)
        if not rows:
            break  # everything due is locked by a concurrent sweep
    return SweepResult(items=matured, points=points, batches=batches)
