"""Sweeps at scale on PostgreSQL: two sweeps at once over 100,000 lots, and a sweep SIGKILLed.

The lots are made in SQL (with their credit entries and the members' balances), so the
ledger is consistent before the sweep and ``verify_ledger`` can judge what the sweep did.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import text

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.events.backfill import backfill_events
from tests.integration.helpers import make_program, scalar

LOTS = 100_000
MEMBERS = 1_000
POINTS = 10


def seed_due_lots(db: Database, clock: FixedClock, count: int = LOTS) -> None:
    """MEMBERS members with ``count`` lots of POINTS points each, all past their expiry."""
    make_program(db)
    earned = clock.now() - dt.timedelta(days=400)
    expired = clock.now() - dt.timedelta(days=1)
    per_member = count // MEMBERS
    with db.engine.begin() as conn:
        program_id = conn.execute(text("SELECT id FROM programs")).scalar_one()
        params = {"p": program_id, "at": earned, "exp": expired, "n": per_member * POINTS}
        conn.execute(
            text(
                "INSERT INTO members (program_id, external_id, status, available, lifetime_earned,"
                " created_at) SELECT :p, 'm' || g, 'active', :n, :n, :at"
                f" FROM generate_series(1, {MEMBERS}) g"
            ),
            params,
        )
        op_id = conn.execute(
            text(
                "INSERT INTO operations (program_id, key, kind, request_hash, result, created_at)"
                " VALUES (:p, 'seed', 'earn', '', '{}', :at) RETURNING id"
            ),
            params,
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO lots (program_id, member_id, operation_id, points, available,"
                " earned_at, expires_at) SELECT :p, m.id, :op, :pts, :pts, :at, :exp"
                f" FROM members m, generate_series(1, {per_member}) g"
            ),
            {**params, "op": op_id, "pts": POINTS},
        )
        conn.execute(
            text(
                "INSERT INTO entries (program_id, member_id, operation_id, lot_id, kind,"
                " available_delta, created_at)"
                " SELECT program_id, member_id, operation_id, id, 'earn', points, earned_at"
                " FROM lots"
            )
        )
        backfill_events(conn)
    report = s.verify_ledger(db)
    assert report.ok, [c for c in report.checks if not c.ok]


def assert_all_expired_once(db: Database, count: int = LOTS) -> None:
    assert scalar(db, "SELECT count(*) FROM lots WHERE expired_at IS NULL") == 0
    assert scalar(db, "SELECT count(*) FROM entries WHERE kind = 'expire'") == count
    assert scalar(db, "SELECT sum(available) FROM members") == 0
    report = s.verify_ledger(db)
    assert report.ok, [c for c in report.checks if not c.ok]


def test_two_concurrent_sweeps_over_100k_lots_expire_each_lot_once(
    pg_db: Database, clock: FixedClock
) -> None:
    seed_due_lots(pg_db, clock)
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(lambda _: s.expire_due(pg_db, batch_size=2_000), range(2)))
    assert sum(r.items for r in runs) == LOTS
    assert sum(r.points for r in runs) == LOTS * POINTS
    assert s.expire_due(pg_db).items == 0  # and a third finds nothing
    assert_all_expired_once(pg_db)


SWEEPER = textwrap.dedent(
    """
    import datetime as dt, sys
    from loyalty import services as s
    from loyalty.db import Database
    from loyalty.domain.clock import FixedClock

    db = Database.from_url(sys.argv[1], clock=FixedClock(dt.datetime.fromisoformat(sys.argv[2])))
    s.expire_due(db, batch_size=200)
    """
)


def test_a_sweep_killed_mid_way_is_finished_by_the_next_run(
    pg_db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    lots = 20_000
    seed_due_lots(pg_db, clock, lots)
    script = tmp_path / "sweep.py"
    script.write_text(SWEEPER)
    url = pg_db.engine.url.render_as_string(hide_password=False)
    sweeper = subprocess.Popen(
        [sys.executable, str(script), url, clock.now().isoformat()],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        deadline = time.monotonic() + 60
        while scalar(pg_db, "SELECT count(*) FROM entries WHERE kind = 'expire'") < 2_000:
            assert sweeper.poll() is None, "the sweep ended before it could be killed"
            assert time.monotonic() < deadline, "the sweep made no progress"
            time.sleep(0.05)
        sweeper.send_signal(signal.SIGKILL)
    finally:
        sweeper.kill()
        sweeper.wait(timeout=30)
    done = scalar(pg_db, "SELECT count(*) FROM entries WHERE kind = 'expire'")
    assert 0 < done < lots  # killed mid-way: some batches committed, the one in flight not
    assert s.verify_ledger(pg_db).ok  # a half-done sweep is still a consistent ledger
    finished = s.expire_due(pg_db, batch_size=5_000)
    assert finished.items == lots - done
    assert_all_expired_once(pg_db, lots)
