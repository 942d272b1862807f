"""What risk control costs an earn on PostgreSQL, and how long the risk job takes over a month.

**Earn.** Two programs in one scratch database, alike but for risk control: ``bench`` has no
risk rules, ``bench-risk`` has the typical rule set (``loyalty.domain.risk.TYPICAL_RULES``: a
member ``block`` at 20 earns an hour and a ``block`` of new members receiving over 50,000
points in 7 days, both checked inside the earn; the till, farming, gift-ring and issuance
rules are the risk job's). Each program has ``--members`` members enrolled 60 days ago
(*established*: each with ``--history`` earnings over the last 30 days, seeded in SQL, so the
velocity rule counts a real index range) and as many enrolled two days ago (*new*: the
new-member rule also sums what the member earned and received so far). Per case the two
programs alternate in ``--rounds`` slices of ``--seconds``, an SDK earn per call at one of 50
stores, members taken in turn (so none earns 20 times in an hour; a refused earn fails the
run). The ratio on/off is what matters (the issue asks for under 15 % cost: 0.85 or more at
8 threads); beside it, the CPU one earn took in Python and in PostgreSQL, steadier on a
shared machine.

**Scan.** A third program, ``scan``, with ``--scan-members`` members (5 % enrolled two days
ago) and ``--earnings`` earnings over 30 days at 50 stores and 400 tills (SQL, then
:func:`~loyalty.events.backfill.backfill_events`), refunds that make ``--farmers`` members
refund everything they earned and transfers that make ``--rings`` members each receive from
6 senders in a day, among ``--transfers`` ordinary ones over the month (both through the
services, at past times). Then ``scan_risk`` with each rule kind alone (the first scan opens
its cases, the second finds nothing new) and with the typical set: seconds per kind.

``jifen verify`` must be clean before the scans and at the end.

    python -m bench.risk_pg [--seconds 5] [--rounds 2] [--threads 8] [--members 2000]
        [--history 20] [--earnings 200000] [--scan-members 20000]
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from sqlalchemy import Connection, text

from bench.common import (
    PROGRAM,
    BenchFailure,
    analyze,
    base_parser,
    bulk_session,
    conninfo,
    interleaved,
    print_table,
    ratio,
    reset_sequences,
    scratch_database,
    verify,
    write_result,
)
from bench.cpu_meter import CpuMeter
from bench.rewards_pg import Measured, measure
from loyalty import services as svc
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.domain.risk import TYPICAL_RULES
from loyalty.errors import RiskBlocked
from loyalty.events.backfill import backfill_events
from sdk import Jifen

TARGET = 0.85  # risk rules on, of off, at 8 threads
RISK_PROGRAM = "bench-risk"
SCAN_PROGRAM = "scan"
AMOUNT_MINOR = 12_345
STORES = 50
TILLS = 400
# Each kind alone for the scan, as the risk job evaluates it (flag or hold, never block).
SCANNED_KINDS: dict[str, dict[str, Any]] = {
    "velocity (member earns, hour)": {
        "id": "member-burst", "kind": "velocity", "scope": "member", "measure": "earns",
        "limit": 20, "window": "hour", "action": "flag"},
    "velocity (location points, day)": TYPICAL_RULES["rules"][1],
    "velocity (device earns, hour)": {
        "id": "device-burst", "kind": "velocity", "scope": "device", "measure": "earns",
        "limit": 100, "window": "hour", "action": "flag"},
    "farming": TYPICAL_RULES["rules"][2],
    "transfer_ring": TYPICAL_RULES["rules"][3],
    "new_member_inflow": {**TYPICAL_RULES["rules"][4], "action": "flag", "points": 5000},
    "issuance_spike": TYPICAL_RULES["rules"][5],
}  # fmt: skip
GROUPS = {"established": ("e", 60), "new": ("n", 2)}  # member prefix, enrolled days ago


# --- seeding ------------------------------------------------------------------------------


def create_program(db: Database, code: str, **settings: Any) -> int:
    """A program like the benchmark's (CNY, Asia/Shanghai, no cap that bites); its id."""
    svc.create_program(
        db,
        code=code,
        name=code.title(),
        currency="CNY",
        timezone="Asia/Shanghai",
        rules={"caps": {"member_daily": 10**12}},
        **settings,
    )
    with db.read() as conn:
        found = conn.execute(text("SELECT id FROM programs WHERE code = :c"), {"c": code})
        return int(found.scalar_one())


def add_members(
    conn: Connection, program_id: int, prefix: str, count: int, *, young: int, now: dt.datetime
) -> int:
    """``count`` members ``<prefix>0``… enrolled 60 days before ``now``, the last ``young``
    of them two days before; the id of the first."""
    first = conn.execute(text("SELECT coalesce(max(id), 0) + 1 FROM members")).scalar_one()
    conn.execute(
        text(
            "INSERT INTO members (id, program_id, external_id, status, created_at)"
            " SELECT :first + g, :p, :prefix || g, 'active', CASE WHEN g >= :n - :young"
            " THEN :now - interval '2 days' ELSE :now - interval '60 days' END"
            " FROM generate_series(0, :n - 1) g"
        ),
        {"first": first, "p": program_id, "prefix": prefix, "n": count, "young": young, "now": now},
    )
    reset_sequences(conn, ["members"])
    return int(first)


def add_earnings(
    conn: Connection,
    program_id: int,
    members: tuple[int, int, int],
    count: int,
    *,
    now: dt.datetime,
    tag: str,
) -> None:
    """``count`` purchase earnings (operation, lot, entry, earning, qualifying row, member
    balances) spread over ``members`` (first id, how many, how many of the last are young)
    by a stride: evenly over the 30 days before ``now``, a young member's within its two
    days; at 50 stores and 400 tills; 10 to 209 points each."""
    if count <= 0:
        return
    first_member, how_many, young = members
    version = conn.execute(
        text("SELECT max(id) FROM rule_versions WHERE program_id = :p"), {"p": program_id}
    ).scalar_one()
    conn.execute(text("DROP TABLE IF EXISTS seed"))
    conn.execute(
        text(
            "CREATE TEMP TABLE seed AS SELECT g, member_id, amount, amount / 100 AS points,"
            " CASE WHEN member_id >= :first + :members - :young"
            " THEN :now - interval '1 second' * (1 + g % 170000)"
            " ELSE :now - interval '30 days' * (g::float8 / (:n + 1)) END AS at,"
            " (SELECT coalesce(max(id), 0) FROM operations) + g AS op,"
            " (SELECT coalesce(max(id), 0) FROM lots) + g AS lot"
            " FROM (SELECT g, :first + (g * 7919) % :members AS member_id,"
            " 1000 + (g * 37) % 20000 AS amount FROM generate_series(1, :n) g) s"
        ),
        {"first": first_member, "members": how_many, "young": young, "n": count, "now": now},
    )
    p = {"p": program_id, "tag": tag, "version": version}
    for statement in (
        "INSERT INTO operations (id, program_id, key, kind, member_id, request_hash, result,"
        " created_at) SELECT op, :p, 'earn:' || :tag || g, 'earn_purchase', member_id,"
        """ md5(:tag || g), '{"seeded": true}', at FROM seed""",
        "INSERT INTO lots (id, program_id, member_id, operation_id, points, available,"
        " earned_at, expires_at) SELECT lot, :p, member_id, op, points, points, at,"
        " at + interval '1 year' FROM seed",
        "INSERT INTO entries (program_id, member_id, operation_id, lot_id, kind,"
        " available_delta, created_at) SELECT :p, member_id, op, lot, 'earn', points, at"
        " FROM seed",
        "INSERT INTO earnings (program_id, member_id, operation_id, source, order_id,"
        " amount_minor, currency, points_requested, points_granted, rule_version_id, lot_id,"
        " location, device, created_at) SELECT :p, member_id, op, 'purchase', :tag || g,"
        " amount, 'CNY', points, points, :version, lot, 'store-' || g % 50,"
        " 'till-' || g % 400, at FROM seed",
        "INSERT INTO tier_qualifying (program_id, member_id, operation_id, source, points,"
        " money_minor, counted_at, created_at) SELECT :p, member_id, op, 'purchase', points,"
        " amount, at, at FROM seed",
        "UPDATE members SET available = available + s.points,"
        " lifetime_earned = lifetime_earned + s.points FROM (SELECT member_id,"
        " sum(points) AS points FROM seed GROUP BY member_id) s WHERE members.id = s.member_id",
    ):
        conn.execute(text(statement), p)
    reset_sequences(conn, ["operations", "lots"])


def prepare_earn(url: str, members: int, history: int, now: dt.datetime) -> None:
    """Both earning programs, their established (with history) and new members."""
    db = Database.from_url(url)
    try:
        ids = [create_program(db, code) for code in (PROGRAM, RISK_PROGRAM)]
        with db.engine.begin() as conn:
            bulk_session(conn)
            for program_id in ids:
                for group, (prefix, _days) in GROUPS.items():
                    young = members if group == "new" else 0
                    first = add_members(conn, program_id, prefix, members, young=young, now=now)
                    if group == "established":
                        add_earnings(
                            conn,
                            program_id,
                            (first, members, 0),
                            members * history,
                            now=now,
                            tag=f"seed-{program_id}-{prefix}-",
                        )
            backfill_events(conn)
        svc.publish_risk_rules(db, program=RISK_PROGRAM, rules=TYPICAL_RULES, actor="bench")
    finally:
        db.dispose()
    analyze_url(url)


def analyze_url(url: str) -> None:
    db = Database.from_url(url)
    try:
        analyze(db)
    finally:
        db.dispose()


# --- the earn side ------------------------------------------------------------------------


def earning(client: Jifen, prefix: str, members: int, turn: Any, tag: str) -> Any:
    """One SDK earn per call at one of 50 stores; members in turn (``turn``: a counter
    shared by the slices of a side)."""

    def work(t: int, n: int) -> None:
        member = next(turn) % members
        try:
            client.earn(
                member=f"{prefix}{member}",
                order_id=f"{tag}-{t}-{n}",
                amount_minor=AMOUNT_MINOR,
                location=f"store-{member % STORES}",
            )
        except RiskBlocked as refused:
            raise BenchFailure(
                f"risk control refused an earn ({refused}): run with more --members"
            ) from refused

    return work


def side(
    url: str, meter: CpuMeter, program: str, group: str, threads: int, args: Any
) -> Callable[[float, str], Measured]:
    """A side of a case: ``run(seconds, tag)`` earning in ``program`` for the ``group``'s
    members on ``threads``, with the CPU its earns took."""
    prefix, _ = GROUPS[group]
    turn = itertools.count()

    def run(seconds: float, tag: str) -> Measured:
        with Jifen(url, program=program) as client:
            work = earning(client, prefix, args.members, turn, tag)
            return measure(meter, threads, seconds, args.warmup, work)

    return run


def earn_figures(group: str, threads: int, off: Measured, on: Measured) -> dict[str, Any]:
    """One row: each side's rate and CPU per earn, and the ratio on/off."""
    return {
        "case": group,
        "threads": threads,
        "risk_off_tps": round(off.throughput.per_second),
        "risk_on_tps": round(on.throughput.per_second),
        "ratio": ratio(on.throughput.per_second, off.throughput.per_second),
        "risk_off_python_cpu_ms": off.cpu_ms("python"),
        "risk_on_python_cpu_ms": on.cpu_ms("python"),
        "risk_off_postgres_cpu_ms": off.cpu_ms("postgres"),
        "risk_on_postgres_cpu_ms": on.cpu_ms("postgres"),
        "off_calls": off.calls,
        "on_calls": on.calls,
    }


def measure_earns(url: str, args: Any) -> list[dict[str, Any]]:
    meter = CpuMeter(conninfo(url))
    rows = []
    try:
        for threads in (int(t) for t in args.threads.split(",")):
            for group in GROUPS:
                got = interleaved(
                    args.rounds,
                    args.seconds,
                    {  # Measured adds up as Throughput does
                        name: cast(Any, side(url, meter, program, group, threads, args))
                        for name, program in (("off", PROGRAM), ("on", RISK_PROGRAM))
                    },
                )
                rows.append(
                    earn_figures(group, threads, cast(Any, got["off"]), cast(Any, got["on"]))
                )
    finally:
        meter.close()
    return rows


# --- the scan -----------------------------------------------------------------------------


def prepare_scan(url: str, args: Any, now: dt.datetime) -> dict[str, Any]:
    """The ``scan`` program with a month of activity; how long each part took."""
    took: dict[str, Any] = {}
    started = time.perf_counter()
    db = Database.from_url(url)
    young = max(args.scan_members // 20, 1)
    try:
        program_id = create_program(db, SCAN_PROGRAM, transfers_enabled=True)
        with db.engine.begin() as conn:
            bulk_session(conn)
            first = add_members(conn, program_id, "s", args.scan_members, young=young, now=now)
            add_earnings(
                conn,
                program_id,
                (first, args.scan_members, young),
                args.earnings,
                now=now,
                tag="scan-",
            )
            backfill_events(conn)
    finally:
        db.dispose()
    took["sql_seconds"] = round(time.perf_counter() - started, 1)
    took |= make_farmers(url, args.farmers, now)
    senders = range(args.farmers, args.scan_members - young)  # established, not refunded
    took |= make_transfers(url, senders, args.transfers, args.rings, now)
    analyze_url(url)
    return took


def make_farmers(url: str, farmers: int, now: dt.datetime) -> dict[str, Any]:
    """``farmers`` established members refund every order they earned in the window."""
    started = time.perf_counter()
    db = Database.from_url(url, clock=FixedClock(now - dt.timedelta(hours=2)))
    try:
        with db.read() as conn:
            orders = conn.execute(
                text(
                    "SELECT e.order_id, e.amount_minor FROM earnings e"
                    " JOIN members m ON m.id = e.member_id JOIN programs p ON p.id = m.program_id"
                    " WHERE p.code = :c AND m.external_id IN (SELECT 's' || g FROM"
                    " generate_series(0, :n - 1) g) ORDER BY e.id"
                ),
                {"c": SCAN_PROGRAM, "n": farmers},
            ).all()

        def refund(order: Any) -> None:
            svc.refund_order(
                db,
                program=SCAN_PROGRAM,
                order_id=order.order_id,
                refund_id=f"r-{order.order_id}",
                amount_minor=order.amount_minor,
                currency="CNY",
                succeeded=True,
            )

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(refund, orders))
    finally:
        db.dispose()
    return {"refunds": len(orders), "refund_seconds": round(time.perf_counter() - started, 1)}


def make_transfers(
    url: str, senders: range, transfers: int, rings: int, now: dt.datetime
) -> dict[str, Any]:
    """``transfers`` ordinary transfers over the month (a day's batch at a time), then
    ``rings`` members each receiving from 6 senders an hour ago; among ``senders``."""
    started = time.perf_counter()
    clock = FixedClock(now - dt.timedelta(days=30))
    db = Database.from_url(url, clock=clock)
    sent = itertools.count()

    def send(pair: tuple[int, int]) -> None:
        sender, recipient = pair
        svc.transfer_points(
            db,
            program=SCAN_PROGRAM,
            sender=f"s{sender}",
            recipient=f"s{recipient}",
            points=10,
            transfer_id=f"t{next(sent)}",
        )

    try:
        per_day = max(transfers // 30, 1)
        with ThreadPoolExecutor(8) as pool:
            for day in range(30):
                clock.set(now - dt.timedelta(days=30 - day, hours=1))
                start = day * per_day
                pairs = [pick(senders, 7 * n, 7 * n + 3) for n in range(start, start + per_day)]
                list(pool.map(send, pairs))
            clock.set(now - dt.timedelta(hours=1))
            ring = [
                pick(senders, r * 13 + k * 101 + 1, r * 997 + 5)
                for r in range(rings)
                for k in range(6)
            ]
            list(pool.map(send, ring))
    finally:
        db.dispose()
    return {"transfers": next(sent), "transfer_seconds": round(time.perf_counter() - started, 1)}


def pick(members: range, sender: int, recipient: int) -> tuple[int, int]:
    """A sender and another recipient among ``members``, by number."""
    size = len(members)
    a, b = members[sender % size], members[recipient % size]
    return (a, b) if a != b else (a, members[(recipient + 1) % size])


def time_scans(url: str) -> list[dict[str, Any]]:
    """Each kind alone, then the typical set: seconds of the first and second scan."""
    db = Database.from_url(url)
    rows = []
    try:
        sets = {kind: {"rules": [rule]} for kind, rule in SCANNED_KINDS.items()}
        sets["typical set (its flag and hold rules)"] = TYPICAL_RULES
        for kind, rules in sets.items():
            svc.publish_risk_rules(db, program=SCAN_PROGRAM, rules=rules, actor="bench")
            first = timed(lambda: svc.scan_risk(db, program=SCAN_PROGRAM))
            second = timed(lambda: svc.scan_risk(db, program=SCAN_PROGRAM))
            rows.append(
                {
                    "kind": kind,
                    "first_seconds": first[0],
                    "second_seconds": second[0],
                    "trips": first[1].trips,
                    "opened": first[1].opened,
                    "second_opened": second[1].opened,
                }
            )
    finally:
        db.dispose()
    return rows


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return round(time.perf_counter() - started, 3), result


# --- the run ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per side, case and threads")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=2, help="alternate the sides this often")
    parser.add_argument("--threads", default="8", help="thread counts, e.g. 1,8")
    parser.add_argument("--members", type=int, default=2_000, help="per group and program")
    parser.add_argument("--history", type=int, default=20, help="earnings per established member")
    parser.add_argument("--earnings", type=int, default=200_000, help="of the scanned program")
    parser.add_argument("--scan-members", type=int, default=20_000)
    parser.add_argument("--farmers", type=int, default=100)
    parser.add_argument("--transfers", type=int, default=6_000)
    parser.add_argument("--rings", type=int, default=50)
    args = parser.parse_args(argv)
    now = dt.datetime.now(dt.UTC)
    with scratch_database(args.url, keep=args.keep) as url:
        prepare_earn(url, args.members, args.history, now)
        seeded = prepare_scan(url, args, now)
        before = verify(url, label="risk_pg before the run")
        rows = measure_earns(url, args)
        scans = time_scans(url)
        after = verify(url, label="risk_pg")
        report(rows, scans, seeded)
        headline = min((r for r in rows if r["threads"] == rows[-1]["threads"]), key=ratio_of)
        met = headline["ratio"] >= TARGET if headline["threads"] >= 8 else None
        write_result(
            "risk_pg",
            title=f"Earn with the typical risk rules, PostgreSQL, {headline['threads']} threads"
            " (TPS)",
            url=url,
            sizes={
                "members": args.members,
                "history": args.history,
                "seconds": args.seconds,
                "rounds": args.rounds,
                "threads": args.threads,
                "scan": {
                    "members": args.scan_members,
                    "earnings": args.earnings,
                    "farmers": args.farmers,
                    "rings": args.rings,
                    **seeded,
                },
            },
            figures={"earn": rows, "scan": scans},
            unit="TPS",
            jifen=headline["risk_on_tps"],
            baseline=headline["risk_off_tps"],
            ratio=headline["ratio"],
            target=f">= {TARGET} of no risk rules at 8 threads (the lower of the two cases)",
            met=met,
            verify={"before": before, "after": after},
            notes=[
                "baseline: the same SDK earn in a program without risk rules",
                "headline: the case (established or new members) with the lower ratio",
            ],
        )
    return {
        "name": "risk_pg",
        "jifen": headline["risk_on_tps"],
        "baseline": headline["risk_off_tps"],
        "ratio": headline["ratio"],
        "met": met,
    }


def ratio_of(row: dict[str, Any]) -> float:
    return float(row["ratio"])


def report(rows: list[dict[str, Any]], scans: list[dict[str, Any]], seeded: dict[str, Any]) -> None:
    print_table(
        "Earn on PostgreSQL, typical risk rules on against off (transactions/s; CPU ms per"
        " earn, Python/PostgreSQL)",
        ["case", "threads", "risk off", "risk on", "ratio on/off", "CPU off", "CPU on"],
        [
            [
                r["case"],
                r["threads"],
                r["risk_off_tps"],
                r["risk_on_tps"],
                r["ratio"],
                f"{r['risk_off_python_cpu_ms']}/{r['risk_off_postgres_cpu_ms']}",
                f"{r['risk_on_python_cpu_ms']}/{r['risk_on_postgres_cpu_ms']}",
            ]
            for r in rows
        ],
    )
    print_table(
        f"scan_risk over a month ({seeded})",
        ["rule kind", "first scan s", "second scan s", "trips", "opened"],
        [
            [s["kind"], s["first_seconds"], s["second_seconds"], s["trips"], s["opened"]]
            for s in scans
        ],
    )


if __name__ == "__main__":
    main()
