"""What member tiers cost an earn on PostgreSQL: the SDK's earn with tiers on against tiers off.

Two programs in one scratch database, alike but for tiers: ``bench`` has none, ``bench-tiers``
has a ladder of four (普通 0, 银卡 1,000 ×1.5, 金卡 10⁷ ×2, 钻石 10⁸ ×3). Every member of both
earns once before the run (1,500 points), so in ``bench-tiers`` they all stand at 银卡, mid-
ladder: each earn of the run reads the qualifying measure to see whether it crosses 金卡 (it
never does), applies the 1.5 multiplier and writes the qualifying row. Same run, the sides
alternating in ``--rounds`` slices of ``--seconds``, each an earn per call for a random member
(a new order id each); the ratio on/off is what matters. ``--profile N`` runs N earns of each
side on one thread under cProfile afterwards and prints where the time goes.

    python -m bench.tiers_pg [--seconds 5] [--rounds 2] [--threads 8] [--members 2000]
        [--profile 0]
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import random
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.common import (
    PROGRAM,
    base_parser,
    conninfo,
    create_bench_program,
    interleaved,
    print_table,
    ratio,
    scratch_database,
    seed_members,
    verify,
    write_result,
)
from bench.cpu_meter import CpuMeter
from bench.rewards_pg import Measured, measure
from loyalty import services as svc
from loyalty.db import Database
from sdk import Jifen

TARGET = 0.9  # tiers on, of tiers off, at 8 threads
TIERS_PROGRAM = "bench-tiers"
SEED_AMOUNT_MINOR = 150_000  # 1,500 points: every member reaches 银卡
AMOUNT_MINOR = 12_345
LADDER: dict[str, Any] = {
    "tiers": [
        {"code": "member", "name": "普通", "threshold": 0},
        {"code": "silver", "name": "银卡", "threshold": 1_000, "multiplier": "1.5"},
        {"code": "gold", "name": "金卡", "threshold": 10**7, "multiplier": "2"},
        {"code": "diamond", "name": "钻石", "threshold": 10**8, "multiplier": "3"},
    ],
    "measure": "points",
    "window": "rolling",
    "window_months": 12,
    "anchor": "upgrade",
    "period_months": 12,
}


def prepare(url: str, members: int) -> None:
    """Both programs, their members, the ladder, and every member's first earn."""
    db = Database.from_url(url)
    try:
        create_bench_program(db)
        svc.create_program(
            db,
            code=TIERS_PROGRAM,
            name="Bench with tiers",
            currency="CNY",
            timezone="Asia/Shanghai",
            rules={"caps": {"member_daily": 10**12}},  # as create_bench_program's
        )
        for program in (PROGRAM, TIERS_PROGRAM):
            seed_members(db, members, program=program)
        svc.publish_tiers(db, program=TIERS_PROGRAM, rules=LADDER, created_by="bench")
    finally:
        db.dispose()
    for program in (PROGRAM, TIERS_PROGRAM):
        with Jifen(url, program=program) as client, ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda m: seed_earn(client, m), range(members)))


def seed_earn(client: Jifen, member: int) -> None:
    client.earn(member=f"m{member}", order_id=f"seed-{member}", amount_minor=SEED_AMOUNT_MINOR)


def earning(client: Jifen, members: int, tag: str) -> Callable[[int, int], None]:
    """One SDK earn per call, for a random member."""

    def work(t: int, n: int) -> None:
        client.earn(
            member=f"m{random.randrange(members)}",
            order_id=f"{tag}-{t}-{n}",
            amount_minor=AMOUNT_MINOR,
        )

    return work


def side(
    url: str, meter: CpuMeter, program: str, threads: int, members: int, warmup: float
) -> Callable[[float, str], Measured]:
    """A side of the run: ``run(seconds, tag)`` earning in ``program`` on ``threads``, with
    the CPU its earns took (a shared machine moves the rate more than the CPU per earn)."""

    def run(seconds: float, tag: str) -> Measured:
        with Jifen(url, program=program) as client:
            return measure(meter, threads, seconds, warmup, earning(client, members, tag))

    return run


def figures(threads: int, off: Measured, on: Measured) -> dict[str, Any]:
    """One row of the result: each side's rate and CPU per earn, and the ratio on/off."""
    return {
        "threads": threads,
        "tiers_off_tps": round(off.throughput.per_second),
        "tiers_on_tps": round(on.throughput.per_second),
        "ratio": ratio(on.throughput.per_second, off.throughput.per_second),
        "tiers_off_python_cpu_ms": off.cpu_ms("python"),
        "tiers_on_python_cpu_ms": on.cpu_ms("python"),
        "tiers_off_postgres_cpu_ms": off.cpu_ms("postgres"),
        "tiers_on_postgres_cpu_ms": on.cpu_ms("postgres"),
    }


def check_placed(url: str, members: int) -> dict[str, int]:
    """Members per tier in ``bench-tiers``: all at 银卡, or the run measured the wrong thing."""
    db = Database.from_url(url)
    try:
        holding = {c.tier: c.members for c in svc.tier_distribution(db, program=TIERS_PROGRAM)}
    finally:
        db.dispose()
    if holding.get("silver") != members:
        raise RuntimeError(f"the members should all stand at silver, they stand at {holding}")
    return holding


def profile(url: str, members: int, count: int) -> None:
    """``count`` earns of each side on one thread under cProfile: the top of each."""
    for program in (PROGRAM, TIERS_PROGRAM):
        with Jifen(url, program=program) as client:
            work = earning(client, members, f"profile-{program}")
            profiler = cProfile.Profile()
            profiler.enable()
            for n in range(count):
                work(0, n)
            profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(
            int(os.environ.get("BENCH_PROFILE_LINES", "25"))
        )
        print(f"--- {program}: {count} earns, by cumulative time ---")
        print(out.getvalue())


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per side and thread count")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=2, help="alternate the sides this often")
    parser.add_argument("--threads", default="8", help="thread counts, e.g. 1,8")
    parser.add_argument("--members", type=int, default=2_000)
    parser.add_argument("--profile", type=int, default=0, help="earns per side under cProfile")
    args = parser.parse_args(argv)
    thread_counts = [int(t) for t in args.threads.split(",")]
    with scratch_database(args.url, keep=args.keep) as url:
        prepare(url, args.members)
        check_placed(url, args.members)
        meter = CpuMeter(conninfo(url))
        rows = []
        for threads in thread_counts:
            got = interleaved(
                args.rounds,
                args.seconds,
                {
                    name: side(url, meter, program, threads, args.members, args.warmup)
                    for name, program in (("off", PROGRAM), ("on", TIERS_PROGRAM))
                },
            )
            rows.append(figures(threads, got["off"], got["on"]))
        meter.close()
        if args.profile:
            profile(url, args.members, args.profile)
        checked = verify(url, label="tiers_pg")
        headline = rows[-1]
        met = headline["ratio"] >= TARGET if headline["threads"] >= 8 else None
        print_table(
            "Earn on PostgreSQL, tiers on against off (transactions/s; CPU ms per earn,"
            " Python/PostgreSQL)",
            ["threads", "tiers off", "tiers on", "ratio on/off", "CPU off", "CPU on"],
            [
                [
                    r["threads"],
                    r["tiers_off_tps"],
                    r["tiers_on_tps"],
                    r["ratio"],
                    f"{r['tiers_off_python_cpu_ms']}/{r['tiers_off_postgres_cpu_ms']}",
                    f"{r['tiers_on_python_cpu_ms']}/{r['tiers_on_postgres_cpu_ms']}",
                ]
                for r in rows
            ],
        )
        write_result(
            "tiers_pg",
            title=f"Earn with tiers, PostgreSQL, {headline['threads']} threads (TPS)",
            url=url,
            sizes={
                "members": args.members,
                "seconds": args.seconds,
                "rounds": args.rounds,
                "threads": thread_counts,
            },
            figures=rows,
            unit="TPS",
            jifen=headline["tiers_on_tps"],
            baseline=headline["tiers_off_tps"],
            ratio=headline["ratio"],
            target=f">= {TARGET} of tiers off at 8 threads",
            met=met,
            verify=checked,
            notes=["baseline: the same SDK earn in a program without tiers"],
        )
    return {
        "name": "tiers_pg",
        "jifen": headline["tiers_on_tps"],
        "baseline": headline["tiers_off_tps"],
        "ratio": headline["ratio"],
        "met": met,
    }


if __name__ == "__main__":
    main()
