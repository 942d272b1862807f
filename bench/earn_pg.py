"""Earn throughput on PostgreSQL: the SDK (``Jifen.earn``) against hand-written psycopg SQL.

Both sides do the same writes per earn, in one transaction: lock the member (reading the
program, the rule version in force, the idempotency key and whether the order earned
before, and the tier version in force), store the operation (idempotency record with its
result), the lot, the entry, the earning and the qualifying row of the tier measure, and
update the member's balances, lifetime total and cap counters. Same run, same database, the
sides alternating in ``--rounds`` slices of ``--seconds``; the ratio is what matters.

    python -m bench.earn_pg [--seconds 5] [--rounds 2] [--threads 1,8] [--members 2000]
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import uuid
import zoneinfo
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from bench.common import (
    PROGRAM,
    base_parser,
    conninfo,
    create_bench_program,
    print_table,
    ratio,
    scratch_database,
    sdk_against_baseline,
    seed_members,
    verify,
    write_result,
)
from loyalty.db import Database
from sdk import Jifen

TARGET = 0.6  # of the baseline, with 8 threads
AMOUNT_MINOR = 12_345
TZ = zoneinfo.ZoneInfo("Asia/Shanghai")


def jifen_earn(client: Jifen, members: int, tag: str) -> Callable[[int, int], None]:
    """One SDK earn per call, for a random member."""

    def work(t: int, n: int) -> None:
        client.earn(
            member=f"m{random.randrange(members)}",
            order_id=f"{tag}-{t}-{n}",
            amount_minor=AMOUNT_MINOR,
        )

    return work


RAW_LOCK = """
SELECT m.id, m.program_id, m.debt, m.cap_day_key, m.cap_day_points, m.cap_month_key,
       m.cap_month_points, m.cap_year_key, m.cap_year_points,
       (SELECT rv.id FROM rule_versions rv WHERE rv.program_id = p.id AND rv.effective_from <= %s
        ORDER BY rv.effective_from DESC, rv.version DESC LIMIT 1),
       (SELECT o.id FROM operations o WHERE o.program_id = p.id AND o.key = %s),
       (SELECT e.id FROM earnings e WHERE e.program_id = p.id AND e.order_id = %s),
       (SELECT tv.id FROM tier_versions tv WHERE tv.program_id = p.id AND tv.effective_from <= %s
        AND tv.cancelled_at IS NULL ORDER BY tv.effective_from DESC, tv.version DESC LIMIT 1),
       m.available, m.pending, m.held, m.frozen
FROM members m JOIN programs p ON p.id = m.program_id
WHERE p.code = %s AND m.external_id = %s FOR UPDATE OF m
"""
RAW_OPERATION = (
    "INSERT INTO operations (program_id, key, kind, member_id, request_hash, result, created_at)"
    " VALUES (%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (program_id, key) DO NOTHING RETURNING id"
)
RAW_LOT = (
    "INSERT INTO lots (program_id, member_id, operation_id, points, available, pending, held,"
    " frozen, earned_at, expires_at) VALUES (%s,%s,%s,%s,%s,0,0,0,%s,%s) RETURNING id"
)
RAW_ENTRY = (
    "INSERT INTO entries (program_id, member_id, operation_id, lot_id, kind, available_delta,"
    " pending_delta, held_delta, frozen_delta, debt_delta, created_at)"
    " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
)
RAW_MEMBER = (
    "UPDATE members SET available = available + %s, lifetime_earned = lifetime_earned + %s,"
    " cap_day_key = %s, cap_day_points = %s, cap_month_key = %s, cap_month_points = %s,"
    " cap_year_key = %s, cap_year_points = %s WHERE id = %s"
)
RAW_EARNING = (
    "INSERT INTO earnings (program_id, member_id, operation_id, source, order_id, amount_minor,"
    " points_paid_minor, currency, points_requested, points_granted, rule_version_id, lot_id,"
    " created_at) VALUES (%s,%s,%s,'purchase',%s,%s,0,'CNY',%s,%s,%s,%s,%s)"
)
RAW_QUALIFYING = (
    "INSERT INTO tier_qualifying (program_id, member_id, operation_id, source, points,"
    " money_minor, counted_at, created_at) VALUES (%s,%s,%s,'purchase',%s,%s,%s,%s)"
)
RAW_EVENT = (
    "INSERT INTO events (event_id, program_id, member_id, operation_id, type, occurred_at, data)"
    " VALUES (%s,%s,%s,%s,'points.earned',%s,%s)"
)


def event_data(
    program: str,
    member: str,
    key: str,
    points: int,
    balances: Sequence[int],
    result: dict[str, Any],
) -> str:
    """The ``points.earned`` event's data, as the outbox writes it."""
    available, pending, held, frozen = balances
    return json.dumps(
        {
            "program": program,
            "member": member,
            "operation": {"kind": "earn_purchase", "key": key},
            "points": points,
            "balance": {
                "available": available + points,
                "pending": pending,
                "held": held,
                "frozen": frozen,
                "debt": 0,
            },
            **{k: result[k] for k in ("source", "reference", "status", "expires_at")},
        }
    )


def raw_earn_in(
    cur: psycopg.Cursor[Any], *, member: str, order_id: str, amount_minor: int, program: str
) -> int:
    """The hand-written earn: the same writes as ``earn_purchase``; returns the points."""
    now = dt.datetime.now(dt.UTC)
    key = f"earn:{order_id}"
    cur.execute(RAW_LOCK, (now, key, order_id, now, program, member))
    found = cur.fetchone()
    if found is None:
        raise LookupError(f"no member {member}")
    member_id, program_id, _debt, day_key, day_pts, month_key, month_pts = found[:7]
    year_key, year_pts, rule_id, existing, earned, _tier_version = found[7:13]
    if existing is not None or earned is not None:
        raise LookupError(f"order {order_id} earned before")
    points = amount_minor // 100  # 1 point per currency unit at the default 100 per unit
    local = now.astimezone(TZ)
    day, month, year = local.strftime("%Y-%m-%d"), local.strftime("%Y-%m"), local.strftime("%Y")
    day_pts = (day_pts if day_key == day else 0) + points
    month_pts = (month_pts if month_key == month else 0) + points
    year_pts = (year_pts if year_key == year else 0) + points
    expires = now + dt.timedelta(days=92)
    req_hash = hashlib.sha256(
        json.dumps([program, member, order_id, amount_minor, "CNY"]).encode()
    ).hexdigest()
    result = {
        "member": member,
        "source": "purchase",
        "reference": order_id,
        "points_requested": points,
        "points_granted": points,
        "capped_by": None,
        "status": "available",
        "rule_version": 1,
        "matures_at": None,
        "expires_at": expires.isoformat(),
        "debt_repaid": 0,
    }
    cur.execute(
        RAW_OPERATION,
        (program_id, key, "earn_purchase", member_id, req_hash, json.dumps(result), now),
    )
    op = cur.fetchone()
    if op is None:
        raise LookupError(f"key {key} used meanwhile")
    cur.execute(RAW_LOT, (program_id, member_id, op[0], points, points, now, expires))
    lot_id = cur.fetchone()[0]  # type: ignore[index]
    cur.execute(RAW_ENTRY, (program_id, member_id, op[0], lot_id, "earn", points, 0, 0, 0, 0, now))
    cur.execute(
        RAW_MEMBER,
        (points, points, day, day_pts, month, month_pts, year, year_pts, member_id),
    )
    earning = (program_id, member_id, op[0], order_id, amount_minor, points, points)
    cur.execute(
        RAW_EARNING,
        (*earning, rule_id, lot_id, now),
    )
    cur.execute(RAW_QUALIFYING, (program_id, member_id, op[0], points, amount_minor, now, now))
    data = event_data(program, member, key, points, found[13:17], result)
    cur.execute(RAW_EVENT, ("evt_" + uuid.uuid4().hex, program_id, member_id, op[0], now, data))
    return points


def raw_earn(url: str, threads: int, members: int, tag: str) -> Callable[[int, int], None]:
    """One hand-written earn per call, one psycopg connection per thread."""
    conns = [psycopg.connect(conninfo(url)) for _ in range(threads)]

    def work(t: int, n: int) -> None:
        conn = conns[t]
        with conn.transaction(), conn.cursor() as cur:
            raw_earn_in(
                cur,
                member=f"m{random.randrange(members)}",
                order_id=f"{tag}-{t}-{n}",
                amount_minor=AMOUNT_MINOR,
                program=PROGRAM,
            )

    return work


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=2, help="alternate the sides this often")
    parser.add_argument("--threads", default="1,8")
    parser.add_argument("--members", type=int, default=2_000)
    args = parser.parse_args(argv)
    thread_counts = [int(t) for t in args.threads.split(",")]
    with scratch_database(args.url, keep=args.keep) as url:
        db = Database.from_url(url)
        create_bench_program(db)
        seed_members(db, args.members)
        db.dispose()
        measured = sdk_against_baseline(
            url,
            args,
            lambda threads, tag: raw_earn(url, threads, args.members, tag),
            lambda client, tag: jifen_earn(client, args.members, tag),
        )
        rows = [
            {
                "threads": threads,
                "baseline_tps": round(raw.per_second),
                "jifen_tps": round(jf.per_second),
                "ratio": ratio(jf.per_second, raw.per_second),
            }
            for threads, raw, jf in measured
        ]
        checked = verify(url, label="earn_pg")
        version_url = url
        headline = rows[-1]
        met = headline["ratio"] >= TARGET if headline["threads"] >= 8 else None
        print_table(
            "Earn on PostgreSQL (transactions/s)",
            ["threads", "psycopg baseline", "Jifen SDK", "ratio"],
            [[r["threads"], r["baseline_tps"], r["jifen_tps"], r["ratio"]] for r in rows],
        )
        result = {
            "name": "earn_pg",
            "jifen": headline["jifen_tps"],
            "baseline": headline["baseline_tps"],
            "ratio": headline["ratio"],
            "met": met,
        }
        write_result(
            "earn_pg",
            title=f"Earn, PostgreSQL, {headline['threads']} threads (TPS)",
            url=version_url,
            sizes={
                "members": args.members,
                "seconds": args.seconds,
                "rounds": args.rounds,
                "threads": thread_counts,
            },
            figures=rows,
            unit="TPS",
            jifen=headline["jifen_tps"],
            baseline=headline["baseline_tps"],
            ratio=headline["ratio"],
            target=f">= {TARGET} of baseline at 8 threads",
            met=met,
            verify=checked,
        )
    return result


if __name__ == "__main__":
    main()
