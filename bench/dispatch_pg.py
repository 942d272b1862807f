"""Outbound webhook throughput on PostgreSQL: dispatch and signed delivery against plain posts.

``--events`` events (5,000 by default: one earn each, over ``--members`` members) wait in the
outbox of a program with one endpoint, a receiver on 127.0.0.1 (``ThreadingHTTPServer``,
HTTP/1.1 keep-alive, answering 204 at once and recording each ``webhook-id``). The Jifen side
times ``dispatch_events`` and then ``deliver_due`` rounds until nothing is due: each round
claims the head of every member's queue (a member's events go out one at a time, in order),
posts them on ``--workers`` threads and records every attempt in its own transaction.

The baseline, in the same run, sends the same number of bodies of the same size to the same
receiver, signed with ``standardwebhooks`` as Jifen signs them, over one ``httpx.Client`` on
``--workers`` threads: no database, no order, no record. The ratio Jifen / baseline (events
per second) says what the outbox's guarantees (the claim, the lease, the per-member order,
the attempt log) cost against the network and signing alone. ``--rounds`` repeats both with
new events, alternating which goes first.

Afterwards every event must have reached the receiver (deduplicated by ``webhook-id``), and
``jifen verify`` must be clean.

    python -m bench.dispatch_pg [--events 5000] [--members 50] [--workers 4] [--rounds 1]
"""

from __future__ import annotations

import datetime as dt
import http.server
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import func, select

from bench.common import (
    PROGRAM,
    BenchFailure,
    base_parser,
    create_bench_program,
    print_table,
    ratio,
    scratch_database,
    verify,
    write_result,
)
from loyalty import services as svc
from loyalty.db import Database
from loyalty.db.tables import events, webhook_deliveries
from loyalty.events.delivery import body_of, deliver_due, signed_headers
from loyalty.events.dispatch import dispatch_events
from loyalty.events.endpoints import add_endpoint
from sdk import Jifen

AMOUNT_MINOR = 12_345


class Receiver:
    """A keep-alive HTTP receiver on loopback that counts what it gets by ``webhook-id``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ids: dict[str, int] = {}
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.count(self.headers.get("webhook-id", ""))
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def count(self, webhook_id: str) -> None:
        with self.lock:
            self.ids[webhook_id] = self.ids.get(webhook_id, 0) + 1

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def receiving() -> Iterator[Receiver]:
    receiver = Receiver()
    try:
        yield receiver
    finally:
        receiver.close()


def prepare(db: Database, url: str, members: int) -> str:
    """The program (loopback allowed), its endpoint and members; the endpoint's secret."""
    create_bench_program(db, webhooks_allow_private=True)
    secret = add_endpoint(db, program=PROGRAM, url=url, actor="bench").secret
    for n in range(members):
        svc.enrol_member(db, program=PROGRAM, external_id=f"m{n}")
    return secret


def make_events(url: str, count: int, members: int, tag: str) -> None:
    """``count`` earns (one ``points.earned`` event each), spread evenly over the members."""
    with Jifen(url, program=PROGRAM) as client, ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda n: client.earn(
                    member=f"m{n % members}", order_id=f"{tag}-{n}", amount_minor=AMOUNT_MINOR
                ),
                range(count),
            )
        )


@dataclass(frozen=True)
class JifenRun:
    """One timed dispatch and delivery."""

    events: int
    dispatch_seconds: float
    deliver_seconds: float
    rounds: int

    @property
    def per_second(self) -> float:
        return self.events / (self.dispatch_seconds + self.deliver_seconds)


def run_jifen(db: Database, workers: int) -> JifenRun:
    """Dispatch everything, then deliver rounds until nothing is due; timed."""
    started = time.perf_counter()
    dispatched = dispatch_events(db)
    dispatched_at = time.perf_counter()
    rounds = 0
    while deliver_due(db, limit=500, workers=workers).attempted:
        rounds += 1
    done = time.perf_counter()
    return JifenRun(dispatched.events, dispatched_at - started, done - dispatched_at, rounds)


def sample_bodies(db: Database) -> list[tuple[str, str]]:
    """``(webhook id, body)`` of the last events, as Jifen sends them (for the baseline)."""
    with db.read() as conn:
        rows = conn.execute(select(events).order_by(events.c.id.desc()).limit(200)).all()
    return [(r.event_id, body_of(r.event_id, r.type, r.occurred_at, r.data)) for r in rows]


def run_baseline(
    url: str, secret: str, bodies: Sequence[tuple[str, str]], count: int, workers: int
) -> float:
    """``count`` signed posts of Jifen's bodies over one client on ``workers`` threads;
    posts per second."""
    with httpx.Client(timeout=15.0, follow_redirects=False) as client:

        def send(n: int) -> None:
            webhook_id, body = bodies[n % len(bodies)]
            headers = signed_headers(f"base_{n}_{webhook_id}", body, [secret])
            response = client.post(url, content=body.encode("utf-8"), headers=headers)
            if response.status_code != 204:
                raise BenchFailure(f"the receiver answered {response.status_code}")

        started = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(send, range(count)))
        return count / (time.perf_counter() - started)


def check_delivered(db: Database, receiver: Receiver) -> dict[str, int]:
    """Every event reached the receiver (by ``webhook-id``); every delivery is delivered."""
    with db.read() as conn:
        ids = set(conn.execute(select(events.c.event_id)).scalars())
        states: dict[str, int] = dict(
            conn.execute(
                select(webhook_deliveries.c.status, func.count()).group_by(
                    webhook_deliveries.c.status
                )
            ).all()
        )
    got = {i for i in receiver.ids if not i.startswith("base_")}
    if got != ids or set(states) != {"delivered"}:  # the endpoint came before every event
        raise BenchFailure(f"{len(ids - got)} events never arrived; deliveries {states}")
    duplicates = sum(n - 1 for i, n in receiver.ids.items() if i in ids)
    return {"events": len(ids), "delivered": int(states["delivered"]), "duplicates": duplicates}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000, help="events per round")
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--workers", type=int, default=4, help="sending threads, both sides")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    with scratch_database(args.url, keep=args.keep) as url, receiving() as receiver:
        db = Database.from_url(url)
        try:
            secret = prepare(db, receiver.url, args.members)
            dispatch_events(db)  # the enrolments
            while deliver_due(db, limit=500, workers=args.workers).attempted:
                pass
            runs: list[JifenRun] = []
            baselines: list[float] = []
            for n in range(args.rounds):
                make_events(url, args.events, args.members, f"r{n}")
                bodies = sample_bodies(db)
                if n % 2:
                    baselines.append(
                        run_baseline(receiver.url, secret, bodies, args.events, args.workers)
                    )
                runs.append(run_jifen(db, args.workers))
                if not n % 2:
                    baselines.append(
                        run_baseline(receiver.url, secret, bodies, args.events, args.workers)
                    )
            delivered = check_delivered(db, receiver)
        finally:
            db.dispose()
        checked = verify(url, label="dispatch_pg")
    total = sum(r.events for r in runs)
    jifen_rate = total / sum(r.dispatch_seconds + r.deliver_seconds for r in runs)
    base_rate = len(baselines) * args.events / sum(args.events / b for b in baselines)
    dispatch_rate = total / sum(r.dispatch_seconds for r in runs)
    row = {
        "events": total,
        "members": args.members,
        "workers": args.workers,
        "dispatch_events_per_s": round(dispatch_rate),
        "jifen_events_per_s": round(jifen_rate),
        "baseline_posts_per_s": round(base_rate),
        "ratio": ratio(jifen_rate, base_rate),
        "delivery_rounds": sum(r.rounds for r in runs),
        "duplicates": delivered["duplicates"],
    }
    met = None  # the issue asks for the figure, not a bar: context, as earn_sqlite
    print_table(
        "Outbound webhooks on PostgreSQL to a loopback receiver (events/s)",
        ["events", "dispatch only", "dispatch + delivery", "plain signed posts", "ratio"],
        [
            [
                row["events"],
                row["dispatch_events_per_s"],
                row["jifen_events_per_s"],
                row["baseline_posts_per_s"],
                row["ratio"],
            ]
        ],
    )
    write_result(
        "dispatch_pg",
        title=f"Dispatch and delivery, PostgreSQL, {args.workers} sending threads (events/s)",
        url=None,
        sizes={"events": args.events, "members": args.members, "rounds": args.rounds},
        figures=[row],
        unit="events/s",
        jifen=row["jifen_events_per_s"],
        baseline=row["baseline_posts_per_s"],
        ratio=row["ratio"],
        target="none (context: events/s, and the ratio to plain signed posts)",
        met=met,
        verify=checked,
        notes=[
            "baseline: the same bodies signed with standardwebhooks and posted with httpx on"
            " the same threads, no database",
            f"at {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        ],
    )
    return {
        "name": "dispatch_pg",
        "jifen": row["jifen_events_per_s"],
        "baseline": row["baseline_posts_per_s"],
        "ratio": row["ratio"],
        "met": met,
    }


if __name__ == "__main__":
    main()
