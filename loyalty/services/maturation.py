"""Maturation: pending purchase points become available when their return window ends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam

from loyalty.db.database import Database
from loyalty.db.tables import lots
from loyalty.domain.moves import Move
from loyalty.services.results import SweepResult
from loyalty.services.sweeps import SweepItem, post_sweep, sweep_lots

# Lots whose return window has ended by ``:now``, in the order they mature.
_DUE = and_(lots.c.pending > 0, lots.c.matures_at <= bindparam("now"))
_MATURING_ORDER = (lots.c.matures_at, lots.c.id)


def mature_pending(
    db: Database,
    *,
    batch_size: int = 1000,
    on_batch: Callable[[SweepResult], None] | None = None,
) -> SweepResult:
    """Make every lot whose return window has ended available; set-based, per batch.

    ``on_batch`` gets the running totals after each committed batch (see
    ``loyalty.services.sweeps.run_batches``).
    """
    now = db.clock.now()

    def apply(conn: Connection, rows: Sequence[Row[Any]]) -> int:
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
        return sum(r.pending for r in rows)

    return sweep_lots(
        db,
        due=_DUE,
        params={"now": now},
        order_by=_MATURING_ORDER,
        batch_size=batch_size,
        apply=apply,
        on_batch=on_batch,
    )
