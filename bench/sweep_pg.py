"""The expiry sweep on PostgreSQL: ``expire_due`` against one hand-written set-based statement.

The data (members, one seed operation, ``--lots`` lots with their credit entries, a share
``--due-share`` of them past their expiry) is built once in SQL with ``generate_series``, so
the ledger is consistent and ``jifen verify`` is clean before the sweep. Each side runs on
its own identical copy made with ``CREATE DATABASE … TEMPLATE``: the baseline runs one
statement (a CTE that claims the due lots, inserts one ``expire`` entry per lot, zeroes the
lots, updates the members' balances and writes one ``points.expired`` event per member, as the
service's outbox does); ``loyalty.services.expire_due`` runs in a child
process whose peak resident memory (``ru_maxrss``) and longest batch (how long a batch holds
its members' locks) are reported. The sides alternate over ``--rounds`` rounds (baseline
first, then Jifen first), so a noisy moment weighs on both. Every copy is verified afterwards
and both sides must have expired the same lots and points.

    python -m bench.sweep_pg [--lots 1000000] [--due-share 0.3] [--members 100000] [--rounds 2]
"""

from __future__ import annotations

import datetime as dt
import itertools
import multiprocessing
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.common import (
    BenchFailure,
    base_parser,
    bulk_session,
    create_bench_program,
    create_database,
    drop_database,
    peak_rss_mb,
    print_table,
    ratio,
    reset_sequences,
    verify,
    write_result,
)
from loyalty import services as svc
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.events.backfill import backfill_events

TARGET = 0.8
MEMORY_LIMIT_MB = 300
POINTS = 10


def build(url: str, *, lots: int, members: int, due_share: float, now: dt.datetime) -> None:
    """Members, one seed operation, lots and their credit entries, ``due_share`` of them due."""
    db = Database.from_url(url, clock=FixedClock(now - dt.timedelta(days=500)))
    create_bench_program(db)
    db.dispose()
    engine = create_engine(url)
    per_member = -(-lots // members)
    params = {
        "n": lots,
        "members": members,
        "per": per_member,
        "pts": POINTS,
        "now": now,
        "permille": round(due_share * 1000),
    }
    started = time.perf_counter()
    with engine.begin() as conn:
        bulk_session(conn)
        params["p"] = conn.execute(text("SELECT id FROM programs")).scalar_one()
        conn.execute(
            text(
                "INSERT INTO members (id, program_id, external_id, status, created_at)"
                " SELECT g, :p, 'm' || g, 'active', :now - interval '500 days'"
                " FROM generate_series(1, :members) g"
            ),
            params,
        )
        params["op"] = conn.execute(
            text(
                "INSERT INTO operations (program_id, key, kind, request_hash, result, created_at)"
                " VALUES (:p, 'seed', 'seed', '', '{}', :now - interval '400 days')"
                " RETURNING id"
            ),
            params,
        ).scalar_one()
        # Lot g belongs to member 1 + (g - 1) % members; a scrambled permille decides if it is
        # due, so due lots are spread over members and over the expires_at order.
        conn.execute(
            text(
                "INSERT INTO lots (id, program_id, member_id, operation_id, points, available,"
                " earned_at, expires_at)"
                " SELECT g, :p, 1 + (g - 1) % :members, :op, :pts, :pts,"
                " :now - interval '400 days',"
                " CASE WHEN (g * 2654435761) % 1000 < :permille"
                " THEN :now - (1 + g % 60) * interval '1 day'"
                " ELSE :now + (1 + g % 300) * interval '1 day' END"
                " FROM generate_series(1, :n) g"
            ),
            params,
        )
        conn.execute(
            text(
                "INSERT INTO entries (program_id, member_id, operation_id, lot_id, kind,"
                " available_delta, created_at)"
                " SELECT program_id, member_id, operation_id, id, 'earn', points, earned_at"
                " FROM lots ORDER BY id"
            )
        )
        conn.execute(
            text(
                "UPDATE members m SET available = s.total, lifetime_earned = s.total"
                " FROM (SELECT member_id, sum(points) AS total FROM lots GROUP BY member_id) s"
                " WHERE m.id = s.member_id"
            )
        )
        backfill_events(conn)
        reset_sequences(conn, ["members", "lots", "entries", "operations"])
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()
    print(f"built {lots:,} lots for {members:,} members in {time.perf_counter() - started:.1f}s")


# One statement: claim the due lots (remembering what they held), one operation, one expire
# entry per lot, the lots zeroed, the members' balances reduced by what their lots held, and
# one points.expired event per member with what expired and the balance after it (the data
# the outbox writes for a sweep operation).
BASELINE = """
WITH due AS (
    SELECT id, program_id, member_id, available, pending FROM lots
    WHERE expired_at IS NULL AND expires_at <= :now
    FOR UPDATE
), op AS (
    INSERT INTO operations (program_id, key, kind, request_hash, result, created_at)
    SELECT p.id, 'sweep:expire:baseline', 'expire', '', '{}', :now FROM programs p
    RETURNING id, program_id
), ended AS (
    UPDATE lots l SET expired_at = :now, available = 0, pending = 0
    FROM due WHERE l.id = due.id
    RETURNING due.id, due.program_id, due.member_id, due.available, due.pending
), posted AS (
    INSERT INTO entries (program_id, member_id, operation_id, lot_id, kind, available_delta,
                         pending_delta, created_at)
    SELECT ended.program_id, ended.member_id, op.id, ended.id, 'expire', -ended.available,
           -ended.pending, :now
    FROM ended JOIN op ON op.program_id = ended.program_id
), balances AS (
    UPDATE members m SET available = m.available - s.available, pending = m.pending - s.pending
    FROM (SELECT member_id, sum(available) AS available, sum(pending) AS pending,
                 count(*) AS lots
          FROM ended GROUP BY member_id) s
    WHERE m.id = s.member_id
    RETURNING m.id, m.program_id, m.external_id, m.available, m.pending, m.held, m.frozen,
              m.debt, s.available + s.pending AS expired, s.lots
), reported AS (
    INSERT INTO events (event_id, program_id, member_id, operation_id, type, occurred_at, data)
    SELECT 'evt_' || replace(gen_random_uuid()::text, '-', ''), b.program_id, b.id, op.id,
           'points.expired', :now,
           json_build_object(
               'program', p.code, 'member', b.external_id,
               'operation', json_build_object('kind', 'expire', 'key', 'sweep:expire:baseline'),
               'points', b.expired,
               'balance', json_build_object('available', b.available, 'pending', b.pending,
                                            'held', b.held, 'frozen', b.frozen, 'debt', b.debt),
               'lots', b.lots)
    FROM balances b JOIN op ON op.program_id = b.program_id JOIN programs p ON p.id = op.program_id
    ORDER BY b.id
)
SELECT count(*), coalesce(sum(available + pending), 0) FROM ended
"""


def run_baseline(url: str, now: dt.datetime) -> dict[str, Any]:
    engine = create_engine(url)
    started = time.perf_counter()
    with engine.begin() as conn:
        count, points = conn.execute(text(BASELINE), {"now": now}).one()
    seconds = time.perf_counter() - started
    engine.dispose()
    return {"lots": int(count), "points": int(points), "seconds": seconds}


def run_jifen(url: str, now_iso: str, batch_size: int | None) -> dict[str, Any]:
    """``expire_due`` in this (child) process; its time and this process's peak memory."""
    db = Database.from_url(url, clock=FixedClock(dt.datetime.fromisoformat(now_iso)))
    before = peak_rss_mb()
    started = time.perf_counter()
    kwargs: dict[str, Any] = {} if batch_size is None else {"batch_size": batch_size}
    ends = [started]
    result = svc.expire_due(db, on_batch=lambda _: ends.append(time.perf_counter()), **kwargs)
    seconds = time.perf_counter() - started
    longest = max((b - a for a, b in itertools.pairwise(ends)), default=0.0)
    db.dispose()
    return {
        "lots": result.items,
        "points": result.points,
        "batches": result.batches,
        "seconds": seconds,
        "longest_batch_s": round(longest, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "rss_before_mb": round(before, 1),
    }


def _run_side(side: str, url: str, now: dt.datetime, batch_size: int | None) -> dict[str, Any]:
    """One sweep of ``side`` on the copy at ``url``: the baseline here, Jifen in a child."""
    if side == "baseline":
        return run_baseline(url, now)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return dict(pool.apply(run_jifen, (url, now.isoformat(), batch_size)))


def _total(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The lots, points and seconds of every run of one side, added up; every run must agree."""
    if len({(r["lots"], r["points"]) for r in runs}) != 1:
        raise BenchFailure(f"the runs of one side differ: {runs}")
    return {k: sum(r[k] for r in runs) for k in ("lots", "points", "seconds")}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--lots", type=int, default=1_000_000)
    parser.add_argument("--due-share", type=float, default=0.3)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument(
        "--batch-size", type=int, default=None, help="expire_due's batch size (its default)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="alternate the sides this often")
    args = parser.parse_args(argv)
    members = min(args.members, args.lots)
    now = dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.UTC)
    template = create_database(args.url, prefix="jifen_bench_sweep_tpl")
    copies: list[str] = []
    try:
        build(template, lots=args.lots, members=members, due_share=args.due_share, now=now)
        before = verify(template, label="sweep_pg before")
        name = make_url(template).database
        runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "jifen": []}
        after = []
        for n in range(args.rounds):
            for side in ("baseline", "jifen") if n % 2 == 0 else ("jifen", "baseline"):
                copies.append(create_database(args.url, prefix="jifen_bench_sweep", template=name))
                runs[side].append(_run_side(side, copies[-1], now, args.batch_size))
                after.append(verify(copies[-1], label=f"{side} after, round {n + 1}"))
                if not args.keep:
                    drop_database(args.url, copies.pop())
        base, jf = _total(runs["baseline"]), _total(runs["jifen"])
        if (base["lots"], base["points"]) != (jf["lots"], jf["points"]):
            raise BenchFailure(f"the two sweeps differ: baseline {runs['baseline']}, Jifen {jf}")
        jf["longest_batch_s"] = max(r["longest_batch_s"] for r in runs["jifen"])
        jf["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs["jifen"])
        jf["batches"] = runs["jifen"][0]["batches"]
        base_rate = base["lots"] / base["seconds"]
        jf_rate = jf["lots"] / jf["seconds"]
        r = ratio(jf_rate, base_rate)
        met = r >= TARGET and jf["peak_rss_mb"] < MEMORY_LIMIT_MB
        print_table(
            f"Expiry sweep: {runs['baseline'][0]['lots']:,} due of {args.lots:,} lots, "
            f"{args.rounds} rounds (lots/s)",
            ["side", "seconds", "lots/s", "longest batch s", "peak RSS MB", "ratio"],
            [
                ["set-based SQL", round(base["seconds"], 2), round(base_rate), None, None, None],
                [
                    "expire_due",
                    round(jf["seconds"], 2),
                    round(jf_rate),
                    jf["longest_batch_s"],
                    jf["peak_rss_mb"],
                    r,
                ],
            ],
        )
        write_result(
            "sweep_pg",
            title=f"Expiry sweep, {args.lots:,} lots, {args.due_share:.0%} due (lots/s)",
            url=template,
            sizes={
                "lots": args.lots,
                "due_share": args.due_share,
                "members": members,
                "due_lots": runs["baseline"][0]["lots"],
                "rounds": args.rounds,
                "batch_size": args.batch_size or "expire_due default",
            },
            figures={"baseline": base, "jifen": jf, "rounds": runs},
            unit="lots/s",
            jifen=round(jf_rate),
            baseline=round(base_rate),
            ratio=r,
            target=f">= {TARGET} of baseline and peak RSS < {MEMORY_LIMIT_MB} MB",
            met=met,
            verify={"before": before, "after": after},
            notes=[
                f"Jifen peak RSS {jf['peak_rss_mb']} MB (child process, ru_maxrss; "
                f"{runs['jifen'][0]['rss_before_mb']} MB before the sweep started)",
                f"longest batch {jf['longest_batch_s']} s: how long a batch holds the locks of "
                f"its members ({jf['batches']} batches a run)",
            ],
        )
    finally:
        if not args.keep:
            for url in [*copies, template]:
                drop_database(args.url, url)
    return {"name": "sweep_pg", "jifen": round(jf_rate), "baseline": round(base_rate)}


if __name__ == "__main__":
    main()
