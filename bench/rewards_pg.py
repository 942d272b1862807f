"""Reward redemption throughput on PostgreSQL: the SDK's redeem_reward against hand-written SQL.

One iteration redeems one coupon of the catalog for a random member: lock the member, take
``--points`` points from their soonest-expiring lots, take one from the reward's stock with a
conditional update, issue a free code of its pool and record the redemption; one transaction.
The hand-written psycopg side does the same writes in one transaction per redemption: lock
the member ``FOR UPDATE`` (with the operation already stored under the key), read the reward
and its version in force, read the lots to spend in order, insert the operation and one
``reward_spend`` entry per lot, update the lots and the member, take the stock, insert the
redemption, pick a free code (``FOR UPDATE SKIP LOCKED``) and give it to the redemption, then
store the operation's result and write the ``reward.redeemed`` event (the redemption and the
member's balance after it), as the service's outbox does.

Two cases, each side alternating in ``--rounds`` slices of ``--seconds``:

* ``spread``: ``--rewards`` coupons, each iteration picks one at random (a catalog);
* ``hot``: every thread redeems the same coupon, whose pool is large (a flash sale): the
  reward's row is the one every redemption updates, so they queue on its lock.

Members are pre-funded in SQL (ledger-consistent) with lots of 100 points; code pools are
filled in SQL with enough codes for the run. ``--profile N`` runs N SDK redemptions on one
thread under cProfile afterwards and prints where the time goes.

    python -m bench.rewards_pg [--seconds 5] [--rounds 2] [--threads 8] [--members 2000]
        [--rewards 16] [--points 150] [--profile 0]
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import hashlib
import io
import json
import math
import pstats
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import text

from bench.common import (
    PROGRAM,
    Throughput,
    Work,
    base_parser,
    bulk_session,
    conninfo,
    create_bench_program,
    print_table,
    ratio,
    run_threads,
    scratch_database,
    seed_members,
    verify,
    write_result,
)
from bench.cpu_meter import CpuMeter
from bench.redeem_pg import LOT_POINTS, fund_members
from loyalty import services as svc
from loyalty.db import Database
from sdk import Jifen

TARGET = 0.6
HOT = "hot"
# A generous guess of redemptions per second, to fund the members and fill the pools.
MAX_RATE = 1_500


def spread_codes(count: int) -> list[str]:
    """The reward codes of the spread case."""
    return [f"c{i}" for i in range(count)]


def create_coupons(db: Database, codes: Sequence[str], points: int, pool: int) -> None:
    """Coupon rewards priced ``points``, each with ``pool`` codes filled in SQL."""
    for code in codes:
        svc.create_reward(
            db,
            program=PROGRAM,
            code=code,
            kind="coupon",
            terms={"name": f"Coupon {code}", "points": points},
            actor="bench",
        )
    with db.engine.begin() as conn:
        bulk_session(conn)
        conn.execute(
            text(
                "INSERT INTO reward_codes (reward_id, code, created_at)"
                " SELECT r.id, r.code || '-' || g, now()"
                " FROM rewards r, generate_series(1, :n) g WHERE r.code = ANY(:codes)"
            ),
            {"n": pool, "codes": list(codes)},
        )
        conn.execute(
            text("UPDATE rewards SET stock_added = :n, stock_left = :n WHERE code = ANY(:codes)"),
            {"n": pool, "codes": list(codes)},
        )
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE reward_codes"))


def jifen_redeem(
    client: Jifen, members: int, rewards: Sequence[str], tag: str
) -> Callable[[int, int], None]:
    """The SDK's redeem_reward of one coupon for a random member."""

    def work(t: int, n: int) -> None:
        client.redeem_reward(
            member=f"m{random.randrange(members)}",
            reward=random.choice(rewards),
            idempotency_key=f"{tag}-{t}-{n}",
        )

    return work


RAW_LOCK = """
SELECT m.id, m.program_id, m.status, m.available,
       (SELECT o.id FROM operations o WHERE o.program_id = p.id AND o.key = %s),
       m.pending, m.held, m.frozen, m.debt
FROM members m JOIN programs p ON p.id = m.program_id
WHERE p.code = %s AND m.external_id = %s FOR UPDATE OF m
"""
RAW_REWARD = """
SELECT r.id, r.kind, r.retired_at, v.id, v.version, v.terms
FROM rewards r JOIN reward_versions v ON v.id = (
    SELECT iv.id FROM reward_versions iv WHERE iv.reward_id = r.id AND iv.effective_from <= %s
    ORDER BY iv.effective_from DESC, iv.version DESC LIMIT 1)
WHERE r.program_id = %s AND r.code = %s
"""
RAW_LOTS_TO_SPEND = """
SELECT id, available FROM (
    SELECT id, available,
           sum(available) OVER (ORDER BY expires_at, earned_at, id) - available AS before
    FROM lots WHERE member_id = %s AND available > 0 AND (expires_at IS NULL OR expires_at > %s)
) q WHERE before < %s ORDER BY before
"""
RAW_OPERATION = (
    "INSERT INTO operations (program_id, key, kind, member_id, request_hash, result, created_at)"
    " VALUES (%s,%s,'reward_redeem',%s,%s,'{}',%s) ON CONFLICT (program_id, key) DO NOTHING"
    " RETURNING id"
)
RAW_ENTRY = (
    "INSERT INTO entries (program_id, member_id, operation_id, lot_id, kind, available_delta,"
    " pending_delta, held_delta, frozen_delta, debt_delta, created_at)"
    " VALUES (%s,%s,%s,%s,'reward_spend',%s,0,0,0,0,%s)"
)
RAW_LOT = "UPDATE lots SET available = available - %s WHERE id = %s"
RAW_MEMBER = "UPDATE members SET available = available - %s WHERE id = %s"
RAW_STOCK = "UPDATE rewards SET stock_left = stock_left - 1 WHERE id = %s AND stock_left >= 1"
RAW_REDEMPTION = (
    "INSERT INTO reward_redemptions (program_id, member_id, reward_id, reward_version_id,"
    " operation_id, quantity, points, stock_taken, stock_returned, status, created_at,"
    " updated_at) VALUES (%s,%s,%s,%s,%s,1,%s,1,0,'issued',%s,%s) RETURNING id"
)
RAW_FREE_CODE = (
    "SELECT id, code FROM reward_codes WHERE reward_id = %s AND redemption_id IS NULL"
    " ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"
)
RAW_ISSUE_CODE = "UPDATE reward_codes SET redemption_id = %s, issued_at = %s WHERE id = %s"
RAW_RESULT = "UPDATE operations SET result = %s WHERE id = %s"
RAW_EVENT = (
    "INSERT INTO events (event_id, program_id, member_id, operation_id, type, occurred_at, data)"
    " VALUES (%s,%s,%s,%s,'reward.redeemed',%s,%s)"
)


def _hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


def raw_redeem_one(cur: psycopg.Cursor[Any], member: str, reward: str, key: str) -> None:
    """The hand-written redemption of one coupon: lock, check, spend, take, issue, record."""
    now = dt.datetime.now(dt.UTC)
    cur.execute(RAW_LOCK, (key, PROGRAM, member))
    row = cur.fetchone()
    if row is None:
        raise LookupError(member)
    member_id, program_id, status, available, existing = row[:5]
    if existing is not None or status != "active":
        raise LookupError(f"cannot redeem for {member} under {key}")
    cur.execute(RAW_REWARD, (now, program_id, reward))
    found = cur.fetchone()
    if found is None:
        raise LookupError(reward)
    reward_id, kind, retired_at, version_id, version, terms = found
    points = int(terms["points"])
    if kind != "coupon" or retired_at is not None or available < points:
        raise ValueError(f"{reward} cannot be redeemed by {member}")
    cur.execute(RAW_LOTS_TO_SPEND, (member_id, now, points))
    taken: list[tuple[int, int]] = []
    need = points
    for lot_id, lot_available in cur.fetchall():
        take = min(need, lot_available)
        taken.append((lot_id, take))
        need -= take
    if need > 0:
        raise ValueError(f"member {member} has too few points")
    request = {"member": member, "reward": reward, "quantity": 1, "shipping": None}
    cur.execute(RAW_OPERATION, (program_id, key, member_id, _hash(request), now))
    op_id = cur.fetchone()[0]  # type: ignore[index]
    cur.executemany(RAW_ENTRY, [(program_id, member_id, op_id, lot, -n, now) for lot, n in taken])
    cur.executemany(RAW_LOT, [(n, lot) for lot, n in taken])
    cur.execute(RAW_MEMBER, (points, member_id))
    cur.execute(RAW_STOCK, (reward_id,))
    if cur.rowcount != 1:
        raise ValueError(f"{reward} is out of stock")
    cur.execute(
        RAW_REDEMPTION, (program_id, member_id, reward_id, version_id, op_id, points, now, now)
    )
    redemption_id = cur.fetchone()[0]  # type: ignore[index]
    cur.execute(RAW_FREE_CODE, (reward_id,))
    code = cur.fetchone()
    if code is None:
        raise ValueError(f"{reward} has no coupons left")
    cur.execute(RAW_ISSUE_CODE, (redemption_id, now, code[0]))
    result = {
        "id": redemption_id,
        "member": member,
        "reward": reward,
        "kind": kind,
        "name": terms["name"],
        "version": version,
        "quantity": 1,
        "points": points,
        "status": "issued",
        "created_at": now.isoformat(),
        "codes": [code[1]],
        "vouchers": [],
        "draw": None,
        "shipping": None,
        "parent": None,
        "prize": None,
        "updated_at": now.isoformat(),
    }
    cur.execute(RAW_RESULT, (json.dumps(result), op_id))
    pending, held, frozen, debt = row[5:9]
    data = {
        "program": PROGRAM,
        "member": member,
        "operation": {"kind": "reward_redeem", "key": key},
        "points": points,
        "balance": {
            "available": available - points,
            "pending": pending,
            "held": held,
            "frozen": frozen,
            "debt": debt,
        },
        "redemption": result,
    }
    event = ("evt_" + uuid.uuid4().hex, program_id, member_id, op_id, now, json.dumps(data))
    cur.execute(RAW_EVENT, event)


@contextmanager
def raw_redeem(
    url: str, threads: int, members: int, rewards: Sequence[str], tag: str
) -> Iterator[Work]:
    """Hand-written redemptions, one psycopg connection per thread, one transaction each."""
    conns = [psycopg.connect(conninfo(url)) for _ in range(threads)]

    def work(t: int, n: int) -> None:
        conn = conns[t]
        with conn.transaction(), conn.cursor() as cur:
            raw_redeem_one(
                cur, f"m{random.randrange(members)}", random.choice(rewards), f"{tag}-{t}-{n}"
            )

    try:
        yield work
    finally:
        for conn in conns:
            conn.close()


@dataclass(frozen=True)
class Measured:
    """A side's throughput, with the CPU its calls took (warm-up calls included)."""

    throughput: Throughput
    calls: int
    cpu: dict[str, float]

    def __add__(self, other: Measured) -> Measured:
        cpu = {part: self.cpu[part] + other.cpu.get(part, 0.0) for part in self.cpu}
        return Measured(self.throughput + other.throughput, self.calls + other.calls, cpu)

    def cpu_ms(self, part: str) -> float:
        """Milliseconds of CPU per call in ``part`` (``python`` or ``postgres``)."""
        return round(1000 * self.cpu[part] / self.calls, 2) if self.calls else 0.0


def measure(meter: CpuMeter, threads: int, seconds: float, warmup: float, work: Work) -> Measured:
    """:func:`run_threads` with every call counted and the CPU each part used meanwhile."""
    calls = [0] * threads
    lock = threading.Lock()

    def counted(t: int, n: int) -> None:
        work(t, n)
        with lock:
            calls[t] += 1

    start = meter.read()
    got = run_threads(threads, seconds, counted, warmup=warmup)
    return Measured(got, sum(calls), meter.since(start))


def compare(
    url: str, args: argparse.Namespace, threads: int, rewards: Sequence[str]
) -> tuple[Measured, Measured]:
    """The baseline's and the SDK's figures on ``rewards``, in alternating slices."""
    meter = CpuMeter(conninfo(url))

    def raw_side(secs: float, tag: str) -> Measured:
        with raw_redeem(url, threads, args.members, rewards, tag) as work:
            return measure(meter, threads, secs, args.warmup, work)

    def sdk_side(secs: float, tag: str) -> Measured:
        with Jifen(url, program=PROGRAM) as client:
            work = jifen_redeem(client, args.members, rewards, tag)
            return measure(meter, threads, secs, args.warmup, work)

    sides = {"raw": raw_side, "jf": sdk_side}
    got: dict[str, Measured] = {}
    try:  # the order alternates per round, as bench.common.interleaved does
        for n in range(args.rounds):
            for name in sides if n % 2 == 0 else list(sides)[::-1]:
                part = sides[name](args.seconds / args.rounds, f"{name}{n}{uuid.uuid4().hex[:6]}")
                got[name] = got[name] + part if name in got else part
    finally:
        meter.close()
    return got["raw"], got["jf"]


def profile_sdk(url: str, members: int, rewards: Sequence[str], count: int) -> str:
    """``count`` SDK redemptions on this thread under cProfile with a CPU clock (waiting on
    the server does not count): the top functions by their own time, as text."""
    profiler = cProfile.Profile(time.process_time)
    with Jifen(url, program=PROGRAM) as client:
        work = jifen_redeem(client, members, rewards, "profile")
        work(0, -1)  # warm the statement caches outside the profile
        profiler.enable()
        for n in range(count):
            work(0, n)
        profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
    return out.getvalue()


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=2, help="alternate the sides this often")
    parser.add_argument("--threads", default="8")
    parser.add_argument("--members", type=int, default=2_000)
    parser.add_argument("--rewards", type=int, default=16, help="coupons of the spread case")
    parser.add_argument("--points", type=int, default=150, help="a coupon's price")
    parser.add_argument("--profile", type=int, default=0, help="profile N SDK redemptions")
    args = parser.parse_args(argv)
    thread_counts = [int(t) for t in args.threads.split(",")]
    per_case = math.ceil(
        MAX_RATE * (args.seconds + args.warmup * args.rounds) * 2 * len(thread_counts)
    )
    spent = 2 * per_case * args.points + args.profile * args.points
    lots_per_member = max(10, math.ceil(2 * spent / args.members / LOT_POINTS))
    spread = spread_codes(args.rewards)
    with scratch_database(args.url, keep=args.keep) as url:
        db = Database.from_url(url)
        create_bench_program(db)
        seed_members(db, args.members)
        fund_members(db, lots_per_member)
        create_coupons(db, spread, args.points, math.ceil(2 * per_case / args.rewards))
        create_coupons(db, [HOT], args.points, 2 * per_case + args.profile + 1)
        db.dispose()
        verify(url, label="rewards_pg before")
        rows: list[dict[str, Any]] = []
        for case, rewards in (("spread", spread), ("hot", [HOT])):
            for threads in thread_counts:
                raw, jf = compare(url, args, threads, rewards)
                rows.append(
                    {
                        "case": case,
                        "threads": threads,
                        "baseline_per_s": round(raw.throughput.per_second),
                        "jifen_per_s": round(jf.throughput.per_second),
                        "ratio": ratio(jf.throughput.per_second, raw.throughput.per_second),
                        "baseline_python_cpu_ms": raw.cpu_ms("python"),
                        "jifen_python_cpu_ms": jf.cpu_ms("python"),
                        "baseline_postgres_cpu_ms": raw.cpu_ms("postgres"),
                        "jifen_postgres_cpu_ms": jf.cpu_ms("postgres"),
                    }
                )
        profile = profile_sdk(url, args.members, spread, args.profile) if args.profile else ""
        checked = verify(url, label="rewards_pg after")
    headline = [r for r in rows if r["case"] == "spread"][-1]
    met = headline["ratio"] >= TARGET if headline["threads"] >= 8 else None
    print_table(
        "Coupon redemption on PostgreSQL (redemptions/s)",
        ["case", "threads", "psycopg baseline", "Jifen SDK", "ratio", "CPU ms (py/pg)"],
        [
            [
                r["case"],
                r["threads"],
                r["baseline_per_s"],
                r["jifen_per_s"],
                r["ratio"],
                f"{r['baseline_python_cpu_ms']}/{r['baseline_postgres_cpu_ms']} vs "
                f"{r['jifen_python_cpu_ms']}/{r['jifen_postgres_cpu_ms']}",
            ]
            for r in rows
        ],
    )
    if profile:
        print(profile)
    write_result(
        "rewards_pg",
        title=f"Redeem a coupon, PostgreSQL, {headline['threads']} threads (per s)",
        url=args.url,
        sizes={
            "members": args.members,
            "lots_per_member": lots_per_member,
            "rewards_spread": args.rewards,
            "points_per_coupon": args.points,
            "seconds": args.seconds,
            "rounds": args.rounds,
            "threads": thread_counts,
        },
        figures=rows,
        unit="redemptions/s",
        jifen=headline["jifen_per_s"],
        baseline=headline["baseline_per_s"],
        ratio=headline["ratio"],
        target=f">= {TARGET} of baseline at 8 threads (spread; hot beside it)",
        met=met,
        verify=checked,
    )
    return {
        "name": "rewards_pg",
        "jifen": headline["jifen_per_s"],
        "baseline": headline["baseline_per_s"],
        "ratio": headline["ratio"],
        "met": met,
    }


if __name__ == "__main__":
    main()
