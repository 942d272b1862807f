"""Rolling expiry: lots whose ``expires_at`` has passed lose their available and pending points.

The sweep is set-based, in batches of one transaction each, like maturation. Every lot is
expired exactly once: its ``expired_at`` is set under the member's lock and only while it is
still ``NULL``, and the unique index ``uq_entries_one_expiry_per_lot`` is the last guard. Each
expired lot gets one ``expire`` entry, even when it had nothing left (a zero entry), so "one
expiry entry per expired lot" can be checked.

Held points stay held (a hold in flight): a capture spends them, a release puts them back and
takes them out again at once (``expire_returned``, see ``apply_settlement``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Row, and_

from loyalty.db.database import Database
from loyalty.services.ledger import end_lots, lots, sweep_lots
from loyalty.services.results import SweepResult


def expire_due(
    db: Database,
    *,
    batch_size: int = 20_000,
    on_batch: Callable[[SweepResult], None] | None = None,
) -> SweepResult:
    """Expire every lot whose expiry has passed and that is not expired yet; per batch.

    A batch holds its members' locks until it commits (about a second for 20,000 lots on a
    2-core machine), so their checkouts wait that long at most; a smaller ``batch_size``
    shortens the wait and slows the sweep (5,000: about 20 % fewer lots per second).

    ``on_batch`` gets the running totals after each committed batch (see ``sweep_lots``).
    """
    now = db.clock.now()

    def apply(conn: Connection, rows: Sequence[Row[Any]]) -> int:
        return end_lots(conn, rows, kind="expire", key_prefix="sweep:expire", at=now)

    return sweep_lots(
        db,
        due=and_(lots.c.expired_at.is_(None), lots.c.expires_at <= now),
        order_by=(lots.c.expires_at, lots.c.id),
        batch_size=batch_size,
        apply=apply,
        on_batch=on_batch,
    )
