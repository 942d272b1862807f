"""Earn throughput on PostgreSQL: Jifen's service against hand-written psycopg SQL.

Both sides do the same writes per earn, in one transaction: lock the member (reading the
program, the rule version in force and the idempotency key), store the operation, the lot,
the entry and the earning, and update the member's balance and cap counters. The ratio is
what matters: both run on this machine, in this process run, against the same database.

    python bench/earn_pg.py [--seconds 5] [--threads 1,8] [--url postgresql://...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from loyalty import migrate
from loyalty import services as svc
from loyalty.db import Database

MEMBERS = 2_000
RESULTS = Path(__file__).parent / "results"


def fresh_database(base_url: str) -> str:
    name = f"jifen_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(base_url).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)
    return url


def drop_database(base_url: str, url: str) -> None:
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def setup(db: Database) -> None:
    svc.create_program(
        db,
        code="bench",
        name="Bench",
        currency="CNY",
        timezone="Asia/Shanghai",
        rules={"caps": {"member_daily": 10**12}},
    )
    for i in range(MEMBERS):
        svc.enrol_member(db, program="bench", external_id=f"m{i}")


def run_threads(threads: int, seconds: float, work: Callable[[int, int], None]) -> float:
    """Run ``work(thread, n)`` in a loop on each thread; return transactions per second."""
    counts = [0] * threads
    stop = time.perf_counter() + seconds

    def loop(t: int) -> None:
        n = 0
        while time.perf_counter() < stop:
            work(t, n)
            n += 1
        counts[t] = n

    pool = [threading.Thread(target=loop, args=(t,)) for t in range(threads)]
    started = time.perf_counter()
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    return sum(counts) / (time.perf_counter() - started)


def jifen_earn(db: Database, tag: str) -> Callable[[int, int], None]:
    def work(t: int, n: int) -> None:
        svc.earn_purchase(
            db,
            program="bench",
            member=f"m{random.randrange(MEMBERS)}",
            order_id=f"{tag}-{t}-{n}",
            currency="CNY",
            amount_minor=12_345,
        )

    return work


RAW_LOCK = """
SELECT m.id, m.program_id, m.cap_day_key, m.cap_day_points, m.cap_month_key,
       m.cap_month_points, m.cap_year_key, m.cap_year_points,
       (SELECT rv.id FROM rule_versions rv WHERE rv.program_id = p.id AND rv.effective_from <= %s
        ORDER BY rv.effective_from DESC, rv.version DESC LIMIT 1),
       (SELECT o.id FROM operations o WHERE o.program_id = p.id AND o.key = %s)
FROM members m JOIN programs p ON p.id = m.program_id
WHERE p.code = 'bench' AND m.external_id = %s FOR UPDATE OF m
"""


def raw_earn(url: str, threads: int, tag: str) -> Callable[[int, int], None]:
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conns = [psycopg.connect(conninfo) for _ in range(threads)]

    def work(t: int, n: int) -> None:
        conn = conns[t]
        now = dt.datetime.now(dt.UTC)
        key = f"earn:{tag}-{t}-{n}"
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(RAW_LOCK, (now, key, f"m{random.randrange(MEMBERS)}"))
            member_id, program_id, *_caps, rule_id, _existing = cur.fetchone()  # type: ignore[misc]
            cur.execute(
                "INSERT INTO operations (program_id, key, kind, member_id, request_hash, result,"
                " created_at) VALUES (%s,%s,'earn_purchase',%s,%s,%s,%s)"
                " ON CONFLICT (program_id, key) DO NOTHING RETURNING id",
                (program_id, key, member_id, "h" * 64, json.dumps({"points": 123}), now),
            )
            op_id = cur.fetchone()[0]  # type: ignore[index]
            cur.execute(
                "INSERT INTO lots (program_id, member_id, operation_id, points, available,"
                " pending, held, frozen, earned_at, expires_at) VALUES"
                " (%s,%s,%s,123,123,0,0,0,%s,%s) RETURNING id",
                (program_id, member_id, op_id, now, now + dt.timedelta(days=90)),
            )
            lot_id = cur.fetchone()[0]  # type: ignore[index]
            cur.execute(
                "INSERT INTO entries (program_id, member_id, operation_id, lot_id, kind,"
                " available_delta, pending_delta, held_delta, frozen_delta, debt_delta,"
                " created_at) VALUES (%s,%s,%s,%s,'earn',123,0,0,0,0,%s)",
                (program_id, member_id, op_id, lot_id, now),
            )
            cur.execute(
                "UPDATE members SET available = available + 123, lifetime_earned ="
                " lifetime_earned + 123, cap_day_key = %s, cap_day_points = cap_day_points + 123,"
                " cap_month_key = %s, cap_month_points = cap_month_points + 123,"
                " cap_year_key = %s, cap_year_points = cap_year_points + 123 WHERE id = %s",
                ("2026-11-21", "2026-11", "2026", member_id),
            )
            cur.execute(
                "INSERT INTO earnings (program_id, member_id, operation_id, source, order_id,"
                " amount_minor, currency, points_requested, points_granted, rule_version_id,"
                " lot_id, created_at) VALUES (%s,%s,%s,'purchase',%s,12345,'CNY',123,123,%s,%s,%s)",
                (program_id, member_id, op_id, f"{tag}-{t}-{n}", rule_id, lot_id, now),
            )

    return work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", default="1,8")
    args = parser.parse_args()
    url = fresh_database(args.url)
    rows = []
    try:
        for threads in [int(t) for t in args.threads.split(",")]:
            db = Database.from_url(url, pool_size=threads + 2)
            if not rows:
                setup(db)
            tag = uuid.uuid4().hex[:6]
            raw = run_threads(threads, args.seconds, raw_earn(url, threads, f"raw{tag}"))
            jifen = run_threads(threads, args.seconds, jifen_earn(db, f"jf{tag}"))
            rows.append(
                {
                    "threads": threads,
                    "raw_tps": round(raw),
                    "jifen_tps": round(jifen),
                    "ratio": round(jifen / raw, 2),
                }
            )
            db.dispose()
        report = svc.verify_ledger(Database.from_url(url))
    finally:
        drop_database(args.url, url)
    print(f"{'threads':>7} {'raw SQL tps':>12} {'jifen tps':>10} {'ratio':>6}")
    for r in rows:
        print(f"{r['threads']:>7} {r['raw_tps']:>12} {r['jifen_tps']:>10} {r['ratio']:>6}")
    print("verify:", "clean" if report.ok else "FAILED (the raw baseline skips some checks)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "earn_pg.json").write_text(json.dumps({"earn_pg": rows}, indent=2))


if __name__ == "__main__":
    main()
