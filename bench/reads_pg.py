"""Read latency on PostgreSQL: SDK ``balance`` and ``history`` p50/p99 at 10 million entries.

The data is built in SQL with ``generate_series`` and is ledger-consistent (``jifen verify``
runs over all of it at the end, and its time is reported): ``--members`` members, each with
``--lots-per-member`` earned lots (their own operations and credit entries, expiring over
the next 400 days), then hold/release pairs (an operation of two ``hold`` entries on two
lots, then one of two ``release`` entries) until about ``--entries`` entries in all, the
pairs of all members interleaved in time as real traffic would be.

Latency is sampled in-process through the SDK, one call at a time, over random members:
``balance``, the first ``history`` page (50 items) and a deep page (through a cursor near
the member's oldest operations). The same queries, hand-written in psycopg, give the
baseline for context; the target is absolute: p99 under 5 ms.

    python -m bench.reads_pg [--members 100000] [--entries 10000000] [--samples 2000]
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from sqlalchemy import create_engine, text

from bench.common import (
    PROGRAM,
    base_parser,
    bulk_session,
    conninfo,
    create_bench_program,
    percentile,
    print_table,
    reset_sequences,
    scratch_database,
    verify,
    write_result,
)
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.events.backfill import backfill_events
from sdk import Jifen

TARGET_P99_MS = 5.0
LOT_POINTS = 1_000
PAIR_POINTS = 10
PAGE = 50


def shape(members: int, entries: int, lots_per_member: int) -> tuple[int, int]:
    """(lots per member, hold/release pairs per member) for about ``entries`` entries."""
    per_member = max(entries // members, 1)
    lots = max(1, min(lots_per_member, per_member))
    return lots, max(0, (per_member - lots) // 4)


def build(url: str, *, members: int, lots: int, pairs: int, now: dt.datetime) -> float:
    """Build the data; returns the seconds it took."""
    db = Database.from_url(url, clock=FixedClock(now - dt.timedelta(days=500)))
    create_bench_program(db)
    db.dispose()
    engine = create_engine(url)
    started = time.perf_counter()
    p = {
        "members": members,
        "lots": lots,
        "pairs": pairs,
        "base": members * lots,
        "now": now,
        "lp": LOT_POINTS,
        "pp": PAIR_POINTS,
        "lot_total": lots * LOT_POINTS,
        "pair_ops": pairs * members * 2,
    }
    with engine.begin() as conn:
        bulk_session(conn)
        conn.execute(text("SET LOCAL maintenance_work_mem = '512MB'"))
        p["p"] = conn.execute(text("SELECT id FROM programs")).scalar_one()
        # Secondary indexes of entries are dropped for the load and built again after it.
        indexes = conn.execute(
            text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'entries'"
                " AND indexname NOT IN (SELECT conname FROM pg_constraint)"
            )
        ).all()
        for name, _ in indexes:
            conn.execute(text(f'DROP INDEX "{name}"'))
        conn.execute(
            text(
                "INSERT INTO members (id, program_id, external_id, status, available,"
                " lifetime_earned, created_at)"
                " SELECT g, :p, 'm' || g, 'active', :lot_total, :lot_total,"
                " :now - interval '500 days' FROM generate_series(1, :members) g"
            ),
            p,
        )
        # Earn operations and lots share ids: (member - 1) * lots + j.
        conn.execute(
            text(
                "INSERT INTO operations (id, program_id, key, kind, member_id, request_hash,"
                " result, created_at)"
                " SELECT g, :p, 'seed:earn:' || g, 'earn_purchase', 1 + (g - 1) / :lots, '',"
                " '{}', :now - interval '200 days' FROM generate_series(1, :base) g"
            ),
            p,
        )
        conn.execute(
            text(
                "INSERT INTO lots (id, program_id, member_id, operation_id, points, available,"
                " earned_at, expires_at)"
                " SELECT g, :p, 1 + (g - 1) / :lots, g, :lp, :lp, :now - interval '200 days',"
                " :now + (1 + (g * 7) % 400) * interval '1 day'"
                " FROM generate_series(1, :base) g"
            ),
            p,
        )
        conn.execute(
            text(
                "INSERT INTO entries (program_id, member_id, operation_id, lot_id, kind,"
                " available_delta, created_at)"
                " SELECT program_id, member_id, operation_id, id, 'earn', points, earned_at"
                " FROM lots ORDER BY id"
            )
        )
        # Pair k of member m: hold operation base + ((k-1)*members + (m-1))*2 + 1, release +1.
        conn.execute(
            text(
                "INSERT INTO operations (id, program_id, key, kind, member_id, request_hash,"
                " result, created_at)"
                " SELECT :base + g, :p, 'seed:pair:' || g,"
                " CASE WHEN g % 2 = 1 THEN 'hold' ELSE 'release' END,"
                " 1 + ((g - 1) / 2) % :members, '', '{}',"
                " :now - interval '100 days' + g * interval '1 millisecond'"
                " FROM generate_series(1, :pair_ops) g"
            ),
            p,
        )
        conn.execute(
            text(
                "INSERT INTO entries (program_id, member_id, operation_id, lot_id, kind,"
                " available_delta, held_delta, created_at)"
                " SELECT :p, o.member_id, o.id,"
                " (o.member_id - 1) * :lots"
                " + 1 + ((o.id - :base - 1) / (2 * :members) + s) % :lots,"
                " o.kind, CASE WHEN o.kind = 'hold' THEN -:pp ELSE :pp END,"
                " CASE WHEN o.kind = 'hold' THEN :pp ELSE -:pp END, o.created_at"
                " FROM operations o CROSS JOIN (VALUES (0), (1)) v(s)"
                " WHERE o.id > :base ORDER BY o.id, s"
            ),
            p,
        )
        for _, definition in indexes:
            conn.execute(text(definition))
        backfill_events(conn)
        reset_sequences(conn, ["members", "lots", "entries", "operations"])
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()
    return time.perf_counter() - started


def deep_cursor(member: int, members: int, lots: int, pairs: int) -> int:
    """A cursor near the member's oldest operations (a fifth of the way up its pairs)."""
    k = max(1, pairs // 5)
    return members * lots + ((k - 1) * members + (member - 1)) * 2 + 1


RAW_MEMBER = (
    "SELECT m.* FROM members m JOIN programs p ON p.id = m.program_id"
    " WHERE p.code = %s AND m.external_id = %s"
)
RAW_LAPSED = (
    "SELECT coalesce(sum(available), 0) FROM lots"
    " WHERE member_id = %s AND available > 0 AND expires_at <= %s"
)
RAW_EXPIRING = (
    "SELECT expires_at, sum(available) FROM lots WHERE member_id = %s AND available > 0"
    " AND expires_at > %s AND expires_at <= %s GROUP BY expires_at ORDER BY expires_at"
)
RAW_PAGE = (
    "SELECT operation_id FROM entries WHERE member_id = %s{}"
    " GROUP BY operation_id ORDER BY operation_id DESC LIMIT %s"
)
RAW_FIRST_PAGE = RAW_PAGE.format("")
RAW_NEXT_PAGE = RAW_PAGE.format(" AND operation_id < %s")
RAW_ITEMS = (
    "SELECT e.operation_id, e.kind, o.key, min(e.created_at), sum(e.available_delta),"
    " sum(e.pending_delta), sum(e.held_delta), sum(e.frozen_delta), sum(e.debt_delta)"
    " FROM entries e JOIN operations o ON o.id = e.operation_id"
    " WHERE e.member_id = %s AND e.operation_id = ANY(%s)"
    " GROUP BY e.operation_id, e.kind, o.key ORDER BY e.operation_id DESC, min(e.id) DESC"
)


def raw_calls(conn: psycopg.Connection[Any]) -> dict[str, Callable[[str, int | None], Any]]:
    """The same reads, hand-written (autocommit, one connection)."""

    def member_id(cur: psycopg.Cursor[Any], member: str) -> int:
        cur.execute(RAW_MEMBER, (PROGRAM, member))
        return int(cur.fetchone()[0])  # type: ignore[index]

    def balance(member: str, _cursor: int | None) -> Any:
        now = dt.datetime.now(dt.UTC)
        with conn.cursor() as cur:
            mid = member_id(cur, member)
            cur.execute(RAW_LAPSED, (mid, now))
            cur.fetchone()
            cur.execute(RAW_EXPIRING, (mid, now, now + dt.timedelta(days=30)))
            return cur.fetchall()

    def history(member: str, cursor: int | None) -> Any:
        with conn.cursor() as cur:
            mid = member_id(cur, member)
            if cursor is None:
                cur.execute(RAW_FIRST_PAGE, (mid, PAGE + 1))
            else:
                cur.execute(RAW_NEXT_PAGE, (mid, cursor, PAGE + 1))
            ops = [r[0] for r in cur.fetchall()][:PAGE]
            cur.execute(RAW_ITEMS, (mid, ops))
            return cur.fetchall()

    return {"balance": balance, "history": history}


def sample(call: Callable[[], Any], count: int) -> list[float]:
    out = []
    for _ in range(count):
        started = time.perf_counter_ns()
        call()
        out.append((time.perf_counter_ns() - started) / 1e6)
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--entries", type=int, default=10_000_000)
    parser.add_argument("--lots-per-member", type=int, default=10)
    parser.add_argument("--samples", type=int, default=2_000)
    args = parser.parse_args(argv)
    lots, pairs = shape(args.members, args.entries, args.lots_per_member)
    now = dt.datetime.now(dt.UTC)
    rng = random.Random(7)
    with scratch_database(args.url, keep=args.keep) as url:
        built = build(url, members=args.members, lots=lots, pairs=pairs, now=now)
        print(f"built {args.members:,} members, ~{args.entries:,} entries in {built:.1f}s")
        picks = [1 + rng.randrange(args.members) for _ in range(args.samples)]
        cursors = [deep_cursor(m, args.members, lots, pairs) for m in picks]
        rows: list[list[Any]] = []
        figures: dict[str, Any] = {}
        with (
            Jifen(url, program=PROGRAM) as client,
            psycopg.connect(conninfo(url), autocommit=True) as conn,
        ):
            raw = raw_calls(conn)
            sdk_calls: dict[str, Callable[[str, int | None], Any]] = {
                "balance": lambda m, _c: client.balance(member=m),
                "history": lambda m, c: client.history(member=m, limit=PAGE, cursor=c),
            }
            cases = [("balance", False), ("history", False), ("history", True)]
            for name, deep in cases:
                label = (
                    f"{name} ({'deep page' if deep else 'first page'})"
                    if name != "balance"
                    else name
                )
                for side, calls in (("baseline", raw), ("jifen", sdk_calls)):
                    fn = calls[name]
                    counter = iter(range(10**9))

                    def one(
                        fn: Callable[[str, int | None], Any] = fn,
                        deep: bool = deep,
                        counter: Any = counter,
                    ) -> Any:
                        i = next(counter) % len(picks)
                        return fn(f"m{picks[i]}", cursors[i] if deep else None)

                    sample(one, min(200, args.samples))  # warm-up
                    lat = sample(one, args.samples)
                    figures[f"{side} {label}"] = {
                        "p50_ms": round(percentile(lat, 0.5), 3),
                        "p99_ms": round(percentile(lat, 0.99), 3),
                    }
                jf, base = figures[f"jifen {label}"], figures[f"baseline {label}"]
                rows.append(
                    [
                        label,
                        base["p50_ms"],
                        base["p99_ms"],
                        jf["p50_ms"],
                        jf["p99_ms"],
                        jf["p99_ms"] < TARGET_P99_MS,
                    ]
                )
        checked = verify(url, label="reads_pg")
        worst = max(r[4] for r in rows)
        worst_base = max(r[2] for r in rows)
        met = worst < TARGET_P99_MS
        print_table(
            f"Reads on PostgreSQL, {args.members:,} members, "
            f"{checked['counts']['entries']:,} entries (ms)",
            ["read", "SQL p50", "SQL p99", "Jifen p50", "Jifen p99", "p99 < 5 ms"],
            rows,
        )
        write_result(
            "reads_pg",
            title="Balance and history reads, worst p99 (ms)",
            url=url,
            sizes={
                "members": args.members,
                "entries": checked["counts"]["entries"],
                "lots_per_member": lots,
                "pairs_per_member": pairs,
                "samples": args.samples,
                "build_seconds": round(built, 1),
            },
            figures=figures,
            unit="ms (p99, lower is better)",
            jifen=worst,
            baseline=worst_base,
            ratio=round(worst_base / worst, 3) if worst else None,
            target=f"p99 < {TARGET_P99_MS} ms",
            met=met,
            verify=checked,
            notes=[
                f"verify over {checked['counts']['entries']:,} entries took {checked['seconds']}s"
            ],
        )
    return {"name": "reads_pg", "jifen": worst, "baseline": worst_base, "met": met}


if __name__ == "__main__":
    main()
