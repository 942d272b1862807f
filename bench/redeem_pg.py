"""Redeem throughput on PostgreSQL: SDK hold + capture against hand-written psycopg SQL.

One iteration is a checkout paid partly with points: hold ``--points`` points of a random
member for a new order, then capture the hold; two transactions. Both sides do the same
writes: the hold's operation row, the hold row, one ``hold`` entry per lot taken
(soonest-expiring first), the lots' buckets and the member's balances; then the capture's
operation row, one ``capture`` entry per lot, the lots, the member, the hold's status and the
``points.redeemed`` event (with the member's balance after it), as the service's outbox does.
Members are pre-funded (in SQL, ledger-consistent) with lots of 100 points, so a hold of 150
points usually spans two lots. The sides alternate in ``--rounds`` slices of ``--seconds``.

    python -m bench.redeem_pg [--seconds 5] [--rounds 2] [--threads 1,8] [--members 2000]
        [--points 150]
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import random
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from sqlalchemy import text

from bench.common import (
    PROGRAM,
    base_parser,
    bulk_session,
    conninfo,
    create_bench_program,
    print_table,
    ratio,
    reset_sequences,
    scratch_database,
    sdk_against_baseline,
    seed_members,
    verify,
    write_result,
)
from loyalty.db import Database
from loyalty.events.backfill import backfill_events
from sdk import Jifen

TARGET = 0.6
LOT_POINTS = 100
ORDER_TOTAL = 12_345
# A generous guess of iterations per second, to fund the members with enough points.
MAX_RATE = 1_500


def fund_members(db: Database, lots_per_member: int) -> None:
    """Give every member ``lots_per_member`` lots of LOT_POINTS, with their credit entries."""
    with db.engine.begin() as conn:
        bulk_session(conn)
        program_id = conn.execute(text("SELECT id FROM programs")).scalar_one()
        params = {"p": program_id, "n": lots_per_member, "pts": LOT_POINTS}
        op_id = conn.execute(
            text(
                "INSERT INTO operations (program_id, key, kind, request_hash, result, created_at)"
                " VALUES (:p, 'seed', 'seed', '', '{}', now()) RETURNING id"
            ),
            params,
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO lots (program_id, member_id, operation_id, points, available,"
                " earned_at, expires_at) SELECT :p, m.id, :op, :pts, :pts,"
                " now() - interval '10 days',"
                " now() + (30 + (m.id * 7 + g) % 300) * interval '1 day'"
                " FROM members m, generate_series(1, :n) g"
            ),
            {**params, "op": op_id},
        )
        conn.execute(
            text(
                "INSERT INTO entries (program_id, member_id, operation_id, lot_id, kind,"
                " available_delta, created_at)"
                " SELECT program_id, member_id, operation_id, id, 'earn', points, earned_at"
                " FROM lots"
            )
        )
        conn.execute(
            text(
                "UPDATE members SET available = CAST(:n AS bigint) * :pts,"
                " lifetime_earned = CAST(:n AS bigint) * :pts"
                " WHERE program_id = :p"
            ),
            params,
        )
        backfill_events(conn)
        reset_sequences(conn, ["lots", "entries", "operations"])
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))


def jifen_redeem(client: Jifen, members: int, points: int, tag: str) -> Callable[[int, int], None]:
    """SDK hold then capture of a new order for a random member."""

    def work(t: int, n: int) -> None:
        order = f"{tag}-{t}-{n}"
        client.hold(
            member=f"m{random.randrange(members)}",
            order_id=order,
            points=points,
            order_total_minor=ORDER_TOTAL,
        )
        client.capture(order_id=order)

    return work


RAW_LOCK = """
SELECT m.id, m.program_id, m.status, p.points_per_unit, p.redeem_max_share_bp,
       p.redeem_min_points, p.hold_timeout_seconds,
       (SELECT o.id FROM operations o WHERE o.program_id = p.id AND o.key = %s),
       (SELECT h.id FROM holds h WHERE h.program_id = p.id AND h.order_id = %s)
FROM members m JOIN programs p ON p.id = m.program_id
WHERE p.code = %s AND m.external_id = %s FOR UPDATE OF m
"""
RAW_SPENDABLE = (
    "SELECT id, available FROM lots WHERE member_id = %s AND available > 0"
    " AND (expires_at IS NULL OR expires_at > %s) ORDER BY expires_at, earned_at, id"
)
RAW_OPERATION = (
    "INSERT INTO operations (program_id, key, kind, member_id, request_hash, result, created_at)"
    " VALUES (%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (program_id, key) DO NOTHING RETURNING id"
)
RAW_HOLD = (
    "INSERT INTO holds (program_id, member_id, operation_id, order_id, points, discount_minor,"
    " order_total_minor, currency, status, expires_at, created_at)"
    " VALUES (%s,%s,%s,%s,%s,%s,%s,'CNY','active',%s,%s) RETURNING id"
)
RAW_ENTRY = (
    "INSERT INTO entries (program_id, member_id, operation_id, lot_id, kind, available_delta,"
    " pending_delta, held_delta, frozen_delta, debt_delta, created_at)"
    " VALUES (%s,%s,%s,%s,%s,%s,0,%s,0,0,%s)"
)
RAW_LOT = "UPDATE lots SET available = available + %s, held = held + %s WHERE id = %s"
RAW_MEMBER = "UPDATE members SET available = available + %s, held = held + %s WHERE id = %s"
RAW_FIND_HOLD = """
SELECT h.id, h.operation_id, h.program_id, h.member_id, h.points, h.discount_minor,
       h.expires_at
FROM holds h JOIN programs p ON p.id = h.program_id WHERE p.code = %s AND h.order_id = %s
"""
RAW_LOCK_HOLDER = """
SELECT m.id, (SELECT o.id FROM operations o WHERE o.program_id = m.program_id AND o.key = %s),
       (SELECT h.status FROM holds h WHERE h.id = %s),
       m.external_id, m.available, m.pending, m.held, m.frozen, m.debt
FROM members m WHERE m.id = %s FOR UPDATE
"""
RAW_HELD = (
    "SELECT e.lot_id, e.held_delta FROM entries e"
    " WHERE e.operation_id = %s AND e.kind = 'hold' ORDER BY e.id"
)
RAW_SETTLE = "UPDATE holds SET status = 'captured', resolved_at = %s WHERE id = %s"
RAW_EVENT = (
    "INSERT INTO events (event_id, program_id, member_id, operation_id, type, occurred_at, data)"
    " VALUES (%s,%s,%s,%s,'points.redeemed',%s,%s)"
)


def _hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


def raw_hold(cur: psycopg.Cursor[Any], member: str, order: str, points: int) -> None:
    """The hand-written hold: lock, record, allocate soonest-expiring first, post."""
    now = dt.datetime.now(dt.UTC)
    key = f"hold:{order}"
    cur.execute(RAW_LOCK, (key, order, PROGRAM, member))
    row = cur.fetchone()
    if row is None:
        raise LookupError(member)
    member_id, program_id, status, per_unit, max_bp, min_points, timeout, existing, held = row
    if existing is not None or held is not None or status != "active" or points < min_points:
        raise LookupError(f"cannot hold for {order}")
    discount = points * 100 // per_unit
    if discount * 10_000 > ORDER_TOTAL * max_bp:
        raise ValueError("over the redeemable share")
    expires = now + dt.timedelta(seconds=timeout)
    result = {
        "member": member,
        "order_id": order,
        "points": points,
        "discount_minor": discount,
        "currency": "CNY",
        "status": "active",
        "expires_at": expires.isoformat(),
        "returned": 0,
    }
    req_hash = _hash("hold", PROGRAM, member, order, points, ORDER_TOTAL, "CNY")
    cur.execute(
        RAW_OPERATION, (program_id, key, "hold", member_id, req_hash, json.dumps(result), now)
    )
    op_id = cur.fetchone()[0]  # type: ignore[index]
    cur.execute(RAW_SPENDABLE, (member_id, now))
    taken: list[tuple[int, int]] = []
    need = points
    for lot_id, available in cur.fetchall():
        take = min(need, available)
        taken.append((lot_id, take))
        need -= take
        if not need:
            break
    if need:
        raise ValueError(f"member {member} has too few points")
    cur.execute(
        RAW_HOLD,
        (program_id, member_id, op_id, order, points, discount, ORDER_TOTAL, expires, now),
    )
    cur.executemany(
        RAW_ENTRY,
        [(program_id, member_id, op_id, lot, "hold", -take, take, now) for lot, take in taken],
    )
    cur.executemany(RAW_LOT, [(-take, take, lot) for lot, take in taken])
    cur.execute(RAW_MEMBER, (-points, points, member_id))


def raw_capture(cur: psycopg.Cursor[Any], order: str) -> None:
    """The hand-written capture: find the hold, lock its member, spend the held points."""
    now = dt.datetime.now(dt.UTC)
    key = f"capture:{order}"
    cur.execute(RAW_FIND_HOLD, (PROGRAM, order))
    hold = cur.fetchone()
    if hold is None:
        raise LookupError(order)
    hold_id, hold_op, program_id, member_id, points, discount, expires = hold
    cur.execute(RAW_LOCK_HOLDER, (key, hold_id, member_id))
    locked = cur.fetchone()
    if locked is None:
        raise LookupError(f"no member for the hold of {order}")
    _member, existing, status, member = locked[:4]
    available, pending, held_points, frozen, debt = locked[4:9]
    if existing is not None or status != "active" or expires <= now:
        raise LookupError(f"hold of {order} is not active")
    result = {
        "member": member,
        "order_id": order,
        "points": points,
        "discount_minor": discount,
        "currency": "CNY",
        "status": "captured",
        "expires_at": expires.isoformat(),
        "returned": 0,
    }
    cur.execute(
        RAW_OPERATION,
        (
            program_id,
            key,
            "capture",
            member_id,
            _hash("capture", PROGRAM, order),
            json.dumps(result),
            now,
        ),
    )
    op_id = cur.fetchone()[0]  # type: ignore[index]
    cur.execute(RAW_HELD, (hold_op,))
    held = cur.fetchall()
    cur.executemany(
        RAW_ENTRY,
        [(program_id, member_id, op_id, lot, "capture", 0, -take, now) for lot, take in held],
    )
    cur.executemany(RAW_LOT, [(0, -take, lot) for lot, take in held])
    cur.execute(RAW_MEMBER, (0, -points, member_id))
    cur.execute(RAW_SETTLE, (now, hold_id))
    data = {
        "program": PROGRAM,
        "member": member,
        "operation": {"kind": "capture", "key": key},
        "points": points,
        "balance": {
            "available": available,
            "pending": pending,
            "held": held_points - points,
            "frozen": frozen,
            "debt": debt,
        },
        **{k: result[k] for k in ("order_id", "status", "discount_minor", "currency", "returned")},
    }
    event = ("evt_" + uuid.uuid4().hex, program_id, member_id, op_id, now, json.dumps(data))
    cur.execute(RAW_EVENT, event)


def raw_redeem(
    url: str, threads: int, members: int, points: int, tag: str
) -> Callable[[int, int], None]:
    """Hand-written hold then capture, one psycopg connection per thread."""
    conns = [psycopg.connect(conninfo(url)) for _ in range(threads)]

    def work(t: int, n: int) -> None:
        conn = conns[t]
        order = f"{tag}-{t}-{n}"
        with conn.transaction(), conn.cursor() as cur:
            raw_hold(cur, f"m{random.randrange(members)}", order, points)
        with conn.transaction(), conn.cursor() as cur:
            raw_capture(cur, order)

    return work


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=2, help="alternate the sides this often")
    parser.add_argument("--threads", default="1,8")
    parser.add_argument("--members", type=int, default=2_000)
    parser.add_argument("--points", type=int, default=150)
    args = parser.parse_args(argv)
    thread_counts = [int(t) for t in args.threads.split(",")]
    runs = 2 * len(thread_counts)
    spent = MAX_RATE * (args.seconds + args.warmup * args.rounds) * runs * args.points
    lots_per_member = max(10, math.ceil(2 * spent / args.members / LOT_POINTS))
    with scratch_database(args.url, keep=args.keep) as url:
        db = Database.from_url(url)
        create_bench_program(db)
        seed_members(db, args.members)
        fund_members(db, lots_per_member)
        db.dispose()
        verify(url, label="redeem_pg before")
        measured = sdk_against_baseline(
            url,
            args,
            lambda threads, tag: raw_redeem(url, threads, args.members, args.points, tag),
            lambda client, tag: jifen_redeem(client, args.members, args.points, tag),
        )
        rows = [
            {
                "threads": threads,
                "baseline_per_s": round(raw.per_second),
                "jifen_per_s": round(jf.per_second),
                "ratio": ratio(jf.per_second, raw.per_second),
            }
            for threads, raw, jf in measured
        ]
        checked = verify(url, label="redeem_pg after")
        headline = rows[-1]
        met = headline["ratio"] >= TARGET if headline["threads"] >= 8 else None
        print_table(
            "Redeem (hold + capture) on PostgreSQL (redemptions/s)",
            ["threads", "psycopg baseline", "Jifen SDK", "ratio"],
            [[r["threads"], r["baseline_per_s"], r["jifen_per_s"], r["ratio"]] for r in rows],
        )
        write_result(
            "redeem_pg",
            title=f"Redeem hold+capture, PostgreSQL, {headline['threads']} threads (per s)",
            url=url,
            sizes={
                "members": args.members,
                "lots_per_member": lots_per_member,
                "points_per_hold": args.points,
                "seconds": args.seconds,
                "rounds": args.rounds,
                "threads": thread_counts,
            },
            figures=rows,
            unit="redemptions/s",
            jifen=headline["jifen_per_s"],
            baseline=headline["baseline_per_s"],
            ratio=headline["ratio"],
            target=f">= {TARGET} of baseline at 8 threads",
            met=met,
            verify=checked,
        )
    return {
        "name": "redeem_pg",
        "jifen": headline["jifen_per_s"],
        "baseline": headline["baseline_per_s"],
        "ratio": headline["ratio"],
        "met": met,
    }


if __name__ == "__main__":
    main()
