"""Earn throughput on SQLite (the embedded default): the SDK against stdlib ``sqlite3``.

One SQLite file is migrated and seeded (the program and ``--members`` members), then copied,
so both sides start from the same state. Jifen earns through ``Jifen("sqlite:///…")`` (WAL,
``synchronous=NORMAL``, ``BEGIN IMMEDIATE``); the baseline uses ``sqlite3`` on the copy with
the same settings and does the same writes in one ``BEGIN IMMEDIATE`` transaction per earn:
read the member, program, rule version, idempotency key and earlier earning of the order;
insert the operation, the lot, the entry and the earning; update the member's balances, lifetime
total and cap counters. One thread (SQLite has one writer). Both files are verified.

    python -m bench.earn_sqlite [--seconds 5] [--members 2000] [--dir DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import random
import shutil
import sqlite3
import tempfile
import uuid
import zoneinfo
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.common import (
    PROGRAM,
    create_bench_program,
    print_table,
    ratio,
    run_threads,
    verify,
    write_result,
)
from bench.earn_pg import event_data
from loyalty import migrate
from loyalty.db import Database
from loyalty.events.backfill import backfill_events
from sdk import Jifen

AMOUNT_MINOR = 12_345
TZ = zoneinfo.ZoneInfo("Asia/Shanghai")


def _ts(value: dt.datetime) -> str:
    """How SQLAlchemy stores a UTC datetime in SQLite."""
    return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def setup(path: Path, members: int) -> None:
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    db = Database.from_url(url)
    create_bench_program(db)
    db.dispose()
    conn = sqlite3.connect(path)
    with conn:
        program_id = conn.execute("SELECT id FROM programs").fetchone()[0]
        conn.executemany(
            "INSERT INTO members (program_id, external_id, status, available, pending, held,"
            " frozen, debt, lifetime_earned, cap_day_points, cap_month_points, cap_year_points,"
            " created_at) VALUES (?, ?, 'active', 0, 0, 0, 0, 0, 0, 0, 0, 0, ?)",
            [(program_id, f"m{i}", _ts(dt.datetime.now(dt.UTC))) for i in range(members)],
        )
    seeder = Database.from_url(url)
    with seeder.engine.begin() as seeding:
        backfill_events(seeding)
    seeder.dispose()
    # The file is copied for the baseline: everything, the seeded events included, must be
    # in the database file rather than its write-ahead log.
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


RAW_LOCK = """
SELECT m.id, m.program_id, m.cap_day_key, m.cap_day_points, m.cap_month_key,
       m.cap_month_points, m.cap_year_key, m.cap_year_points,
       (SELECT rv.id FROM rule_versions rv WHERE rv.program_id = p.id AND rv.effective_from <= ?
        ORDER BY rv.effective_from DESC, rv.version DESC LIMIT 1),
       (SELECT o.id FROM operations o WHERE o.program_id = p.id AND o.key = ?),
       (SELECT e.id FROM earnings e WHERE e.program_id = p.id AND e.order_id = ?),
       (SELECT tv.id FROM tier_versions tv WHERE tv.program_id = p.id AND tv.effective_from <= ?
        AND tv.cancelled_at IS NULL ORDER BY tv.effective_from DESC, tv.version DESC LIMIT 1),
       m.available, m.pending, m.held, m.frozen
FROM members m JOIN programs p ON p.id = m.program_id
WHERE p.code = ? AND m.external_id = ?
"""


def raw_earn(path: Path, members: int, tag: str) -> Callable[[int, int], None]:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")

    def work(t: int, n: int) -> None:
        now = dt.datetime.now(dt.UTC)
        at = _ts(now)
        member = f"m{random.randrange(members)}"
        order = f"{tag}-{t}-{n}"
        key = f"earn:{order}"
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(RAW_LOCK, (at, key, order, at, PROGRAM, member)).fetchone()
            member_id, program_id, dk, dp, mk, mp, yk, yp, rule_id, existing, earned = row[:11]
            if existing is not None or earned is not None:
                raise LookupError(order)
            points = AMOUNT_MINOR // 100
            local = now.astimezone(TZ)
            day, month, year = local.strftime("%Y-%m-%d"), local.strftime("%Y-%m"), str(local.year)
            dp = (dp if dk == day else 0) + points
            mp = (mp if mk == month else 0) + points
            yp = (yp if yk == year else 0) + points
            expires = _ts(now + dt.timedelta(days=92))
            req_hash = hashlib.sha256(
                json.dumps([PROGRAM, member, order, AMOUNT_MINOR, "CNY"]).encode()
            ).hexdigest()
            result = json.dumps(
                {
                    "member": member,
                    "source": "purchase",
                    "reference": order,
                    "points_requested": points,
                    "points_granted": points,
                    "capped_by": None,
                    "status": "available",
                    "rule_version": 1,
                    "matures_at": None,
                    "expires_at": expires,
                    "debt_repaid": 0,
                }
            )
            op_id = conn.execute(
                "INSERT INTO operations (program_id, key, kind, member_id, request_hash, result,"
                " created_at) VALUES (?,?,'earn_purchase',?,?,?,?)"
                " ON CONFLICT (program_id, key) DO NOTHING RETURNING id",
                (program_id, key, member_id, req_hash, result, at),
            ).fetchone()[0]
            lot_id = conn.execute(
                "INSERT INTO lots (program_id, member_id, operation_id, points, available,"
                " pending, held, frozen, earned_at, expires_at)"
                " VALUES (?,?,?,?,?,0,0,0,?,?) RETURNING id",
                (program_id, member_id, op_id, points, points, at, expires),
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO entries (program_id, member_id, operation_id, lot_id, kind,"
                " available_delta, pending_delta, held_delta, frozen_delta, debt_delta,"
                " created_at) VALUES (?,?,?,?,'earn',?,0,0,0,0,?)",
                (program_id, member_id, op_id, lot_id, points, at),
            )
            conn.execute(
                "UPDATE members SET available = available + ?, lifetime_earned ="
                " lifetime_earned + ?, cap_day_key = ?, cap_day_points = ?, cap_month_key = ?,"
                " cap_month_points = ?, cap_year_key = ?, cap_year_points = ? WHERE id = ?",
                (points, points, day, dp, month, mp, year, yp, member_id),
            )
            earning = (program_id, member_id, op_id, order, AMOUNT_MINOR, points, points)
            conn.execute(
                "INSERT INTO earnings (program_id, member_id, operation_id, source, order_id,"
                " amount_minor, points_paid_minor, currency, points_requested, points_granted,"
                " rule_version_id, lot_id, created_at)"
                " VALUES (?,?,?,'purchase',?,?,0,'CNY',?,?,?,?,?)",
                (*earning, rule_id, lot_id, at),
            )
            conn.execute(
                "INSERT INTO tier_qualifying (program_id, member_id, operation_id, source,"
                " points, money_minor, counted_at, created_at)"
                " VALUES (?,?,?,'purchase',?,?,?,?)",
                (program_id, member_id, op_id, points, AMOUNT_MINOR, at, at),
            )
            conn.execute(
                "INSERT INTO events (event_id, program_id, member_id, operation_id, type,"
                " occurred_at, data) VALUES (?,?,?,?,'points.earned',?,?)",
                (
                    "evt_" + uuid.uuid4().hex,
                    program_id,
                    member_id,
                    op_id,
                    at,
                    event_data(PROGRAM, member, key, points, row[12:16], json.loads(result)),
                ),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    return work


def jifen_earn(client: Jifen, members: int, tag: str) -> Callable[[int, int], None]:
    def work(t: int, n: int) -> None:
        client.earn(
            member=f"m{random.randrange(members)}",
            order_id=f"{tag}-{t}-{n}",
            amount_minor=AMOUNT_MINOR,
        )

    return work


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--members", type=int, default=2_000)
    parser.add_argument("--dir", type=Path, default=None, help="where the SQLite files go")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="jifen-bench-") as tmp:
        jf_path, raw_path = Path(tmp) / "jifen.db", Path(tmp) / "raw.db"
        setup(jf_path, args.members)
        shutil.copy(jf_path, raw_path)
        tag = uuid.uuid4().hex[:6]
        raw = run_threads(
            1, args.seconds, raw_earn(raw_path, args.members, f"raw{tag}"), warmup=args.warmup
        )
        with Jifen(f"sqlite:///{jf_path}", program=PROGRAM) as client:
            jf = run_threads(
                1, args.seconds, jifen_earn(client, args.members, f"jf{tag}"), warmup=args.warmup
            )
        checked = {
            "jifen": verify(f"sqlite:///{jf_path}", label="earn_sqlite jifen"),
            "baseline": verify(f"sqlite:///{raw_path}", label="earn_sqlite baseline"),
        }
        r = ratio(jf.per_second, raw.per_second)
        print_table(
            "Earn on SQLite, 1 thread (transactions/s)",
            ["side", "earns", "TPS", "ratio"],
            [
                ["stdlib sqlite3", raw.operations, round(raw.per_second), 1.0],
                ["Jifen SDK", jf.operations, round(jf.per_second), r],
            ],
        )
        write_result(
            "earn_sqlite",
            title="Earn, SQLite WAL, 1 thread (TPS)",
            url=f"sqlite:///{jf_path}",
            sizes={"members": args.members, "seconds": args.seconds, "threads": 1},
            figures={"baseline_tps": round(raw.per_second), "jifen_tps": round(jf.per_second)},
            unit="TPS",
            jifen=round(jf.per_second),
            baseline=round(raw.per_second),
            ratio=r,
            target="none set (context)",
            met=None,
            verify=checked,
        )
    return {"name": "earn_sqlite", "jifen": round(jf.per_second), "ratio": r}


if __name__ == "__main__":
    main()
