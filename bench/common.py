"""Shared pieces of the benchmarks: scratch databases, the thread runner, verify, tables, JSON.

Every benchmark measures Jifen and a hand-written baseline in the same process run, on the
same machine and database server, and writes ``bench/results/<name>.json`` with the machine
it ran on, the sizes, the figures, the ratio, the target and whether it was met. The ratio is
what matters: these machines are noisy, absolute figures only give context.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import resource
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    create_engine,
    text,
)
from sqlalchemy.engine import make_url

from loyalty import migrate
from loyalty import services as svc
from loyalty.db import Database
from loyalty.events.backfill import backfill_events
from sdk import Jifen

DEFAULT_PG_URL = os.environ.get("JIFEN_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
RESULTS = Path(os.environ.get("JIFEN_BENCH_RESULTS", Path(__file__).parent / "results"))
PROGRAM = "bench"


class BenchFailure(RuntimeError):
    """A benchmark could not be trusted: the ledger failed verify, or a request failed."""


# --- scratch databases ----------------------------------------------------------------------


def _admin_engine(base_url: str) -> Any:
    return create_engine(base_url, isolation_level="AUTOCOMMIT")


def url_for(base_url: str, name: str) -> str:
    """The URL of database ``name`` on the server of ``base_url``."""
    return make_url(base_url).set(database=name).render_as_string(hide_password=False)


def create_database(
    base_url: str, *, prefix: str = "jifen_bench", template: str | None = None, upgrade: bool = True
) -> str:
    """Create a database next to ``base_url`` (a copy of ``template`` if given); its URL.

    A new database is migrated to head unless it is a template copy or ``upgrade`` is false.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = _admin_engine(base_url)
    with admin.connect() as conn:
        clause = f' TEMPLATE "{template}"' if template else ""
        conn.execute(text(f'CREATE DATABASE "{name}"{clause}'))
    admin.dispose()
    url = url_for(base_url, name)
    if upgrade and template is None:
        migrate.upgrade(url)
    return url


def drop_database(base_url: str, url: str) -> None:
    """Drop the database of ``url`` (closing its connections)."""
    admin = _admin_engine(base_url)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


@contextlib.contextmanager
def scratch_database(base_url: str, *, keep: bool = False, **kwargs: Any) -> Iterator[str]:
    """A migrated scratch database for the block, dropped afterwards unless ``keep``."""
    url = create_database(base_url, **kwargs)
    try:
        yield url
    finally:
        if keep:
            print(f"kept database {url}")
        else:
            drop_database(base_url, url)


def conninfo(url: str) -> str:
    """A libpq connection string for psycopg from a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def bulk_session(conn: Any) -> None:
    """Session settings for server-side bulk loads of consistent data.

    ``session_replication_role = replica`` skips the foreign-key triggers (the data is built
    consistent and ``verify`` proves it afterwards); it needs a superuser, so it is optional.
    """
    conn.execute(text("SET LOCAL synchronous_commit = off"))
    with contextlib.suppress(Exception), conn.begin_nested():
        conn.execute(text("SET LOCAL session_replication_role = replica"))


def reset_sequences(conn: Any, tables: Sequence[str]) -> None:
    """Move each table's id sequence past the ids inserted explicitly."""
    for table in tables:
        conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
            )
        )


def seed_members(db: Database, count: int, *, stripe: bool = False, program: str = PROGRAM) -> int:
    """Insert ``count`` members ``m0``… (optionally linked to ``cus_bench<i>``); the program id."""
    with db.engine.begin() as conn:
        program_id = conn.execute(
            text("SELECT id FROM programs WHERE code = :c"), {"c": program}
        ).scalar_one()
        customer = "'cus_bench' || g" if stripe else "NULL"
        conn.execute(
            text(
                "INSERT INTO members (program_id, external_id, stripe_customer_id, status,"
                f" created_at) SELECT :p, 'm' || g, {customer}, 'active', now()"
                " FROM generate_series(0, :n - 1) g"
            ),
            {"p": program_id, "n": count},
        )
        backfill_events(conn)
    analyze(db)
    return int(program_id)


def analyze(db: Database) -> None:
    """Refresh the planner's statistics after a bulk load, as autovacuum soon would.

    Without them, generic plans of prepared statements may pick the wrong one of two
    equally-costed indexes (members by Stripe customer instead of by external id).
    """
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))


def create_bench_program(db: Database, **settings: Any) -> None:
    """The benchmark program: CNY, Asia/Shanghai, a member daily cap that never bites."""
    rules = settings.pop("rules", {"caps": {"member_daily": 10**12}})
    svc.create_program(
        db,
        code=PROGRAM,
        name="Bench",
        currency="CNY",
        timezone="Asia/Shanghai",
        rules=rules,
        **settings,
    )


# --- running ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Throughput:
    """What a timed run did: operations, seconds, operations per second."""

    operations: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.operations / self.seconds if self.seconds else 0.0

    def __add__(self, other: Throughput) -> Throughput:
        """Two timed runs of the same work taken together."""
        return Throughput(self.operations + other.operations, self.seconds + other.seconds)


def run_threads(
    threads: int,
    seconds: float,
    work: Callable[[int, int], None],
    *,
    warmup: float = 0.0,
) -> Throughput:
    """Run ``work(thread, n)`` in a loop on ``threads`` threads for ``seconds``.

    ``n`` counts each thread's calls from 0 (warm-up calls included, so keys stay unique).
    An exception in any thread stops the run and is raised here.
    """
    counts = [0] * threads
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads + 1)
    window: dict[str, float] = {}

    def loop(t: int) -> None:
        n = 0
        try:
            barrier.wait()
            end_warmup = window["start"]
            while time.perf_counter() < end_warmup and not errors:
                work(t, n)
                n += 1
            first = n
            while time.perf_counter() < window["stop"] and not errors:
                work(t, n)
                n += 1
            counts[t] = n - first
        except BaseException as exc:
            errors.append(exc)
            raise

    pool = [
        threading.Thread(target=loop, args=(t,), daemon=True, name=f"bench-{t}")
        for t in range(threads)
    ]
    for th in pool:
        th.start()
    now = time.perf_counter()
    window["start"] = now + warmup
    window["stop"] = now + warmup + seconds
    barrier.wait()
    for th in pool:
        th.join()
    if errors:
        raise BenchFailure(f"a benchmark thread failed: {errors[0]!r}") from errors[0]
    elapsed = max(time.perf_counter(), window["stop"]) - window["start"]
    return Throughput(sum(counts), elapsed)


def interleaved(
    rounds: int, seconds: float, sides: Mapping[str, Callable[[float, str], Throughput]]
) -> dict[str, Throughput]:
    """Each side's throughput over ``seconds``, run in ``rounds`` slices that alternate.

    ``sides`` maps a name to ``run(seconds, tag)``; the first side goes first in even rounds
    and last in odd ones, so a noisy moment weighs on both. ``tag`` is unique per slice.
    """
    totals: dict[str, Throughput] = {}
    names = list(sides)
    for n in range(rounds):
        for name in names if n % 2 == 0 else names[::-1]:
            got = sides[name](seconds / rounds, f"{name}{n}{uuid.uuid4().hex[:6]}")
            totals[name] = totals[name] + got if name in totals else got
    return totals


Work = Callable[[int, int], None]  # work(thread, n), as run_threads calls it


def sdk_against_baseline(
    url: str,
    args: argparse.Namespace,
    raw_work: Callable[[int, str], Work],
    sdk_work: Callable[[Jifen, str], Work],
) -> list[tuple[int, Throughput, Throughput]]:
    """For each of ``args.threads``: the baseline's and the SDK's throughput, interleaved.

    ``raw_work(threads, tag)`` and ``sdk_work(client, tag)`` build one side's work for a
    slice; ``tag`` keeps its keys unique. Slices follow ``args.rounds``, ``args.seconds`` and
    ``args.warmup`` (see :func:`interleaved`).
    """
    found = []
    for threads in (int(t) for t in args.threads.split(",")):

        def raw_side(secs: float, tag: str, threads: int = threads) -> Throughput:
            return run_threads(threads, secs, raw_work(threads, tag), warmup=args.warmup)

        def sdk_side(secs: float, tag: str, threads: int = threads) -> Throughput:
            with Jifen(url, program=PROGRAM) as client:
                return run_threads(threads, secs, sdk_work(client, tag), warmup=args.warmup)

        got = interleaved(args.rounds, args.seconds, {"raw": raw_side, "jf": sdk_side})
        found.append((threads, got["raw"], got["jf"]))
    return found


def percentile(samples: Sequence[float], share: float) -> float:
    """The ``share`` (0–1) percentile of ``samples`` by nearest rank."""
    ordered = sorted(samples)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))
    return ordered[index]


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (``ru_maxrss``)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 1024 / 1024


# --- verify ------------------------------------------------------------------------------


def verify(url_or_db: str | Database, *, label: str = "") -> dict[str, Any]:
    """``jifen verify`` on a database; raises :class:`BenchFailure` unless it is clean."""
    db = url_or_db if isinstance(url_or_db, Database) else Database.from_url(url_or_db)
    started = time.perf_counter()
    try:
        report = svc.verify_ledger(db)
    finally:
        if not isinstance(url_or_db, Database):
            db.dispose()
    seconds = time.perf_counter() - started
    if not report.ok:
        broken = [f"{c.name}: {c.violations} ({'; '.join(c.examples[:3])})" for c in report.checks]
        raise BenchFailure(
            f"jifen verify FAILED{' on ' + label if label else ''}: "
            + " | ".join(b for b, c in zip(broken, report.checks, strict=True) if not c.ok)
        )
    print(f"verify{' ' + label if label else ''}: ok in {seconds:.1f}s {report.counts}")
    return {"ok": True, "seconds": round(seconds, 2), "counts": report.counts}


# --- machine and results ------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _ram_gb() -> float:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def server_version(url: str) -> str:
    """The database server's version string (PostgreSQL or SQLite)."""
    if make_url(url).get_backend_name() == "sqlite":
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version}"
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SHOW server_version")).scalar_one()).split()[0]
    finally:
        engine.dispose()


def machine_info(url: str | None = None) -> dict[str, Any]:
    """CPU count and model, RAM, database and Python versions, date."""
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "ram_gb": _ram_gb(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    if url is not None:
        with contextlib.suppress(Exception):
            info["postgresql" if "postgres" in url else "sqlite"] = server_version(url)
    return info


def machine_line(info: dict[str, Any]) -> str:
    """One line describing the machine, for tables and the README."""
    db = f"PostgreSQL {info['postgresql']}" if "postgresql" in info else info.get("sqlite", "")
    return (
        f"{info['cpus']} × {info['cpu_model']}, {info['ram_gb']} GB RAM, {db}, "
        f"Python {info['python']}, {info['date']}"
    )


def write_result(
    name: str,
    *,
    title: str,
    url: str | None,
    sizes: dict[str, Any],
    figures: Any,
    unit: str,
    jifen: float,
    baseline: float | None,
    ratio: float | None,
    target: str,
    met: bool | None,
    verify: Any,
    notes: Sequence[str] = (),
) -> Path:
    """Write ``bench/results/<name>.json``; returns its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    data = {
        "benchmark": name,
        "title": title,
        "machine": machine_info(url),
        "sizes": sizes,
        "figures": figures,
        "unit": unit,
        "jifen": jifen,
        "baseline": baseline,
        "ratio": ratio,
        "target": target,
        "met": met,
        "verify": verify,
        "notes": list(notes),
    }
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    print(f"wrote {path}")
    return path


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A table on stdout (rich when the terminal is interactive, plain text otherwise)."""
    cells = [[_cell(v) for v in row] for row in rows]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        for h in headers:
            table.add_column(h, justify="right")
        for row in cells:
            table.add_row(*row)
        Console().print(table)
        return
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print(title)
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    for row in cells:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def base_parser(description: str) -> argparse.ArgumentParser:
    """Options every PostgreSQL benchmark takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--url",
        default=DEFAULT_PG_URL,
        help="a PostgreSQL database; scratch databases are created next to it",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases")
    return parser


def ratio(jifen: float, baseline: float) -> float:
    """``jifen / baseline``, rounded; 0 when the baseline did nothing."""
    return round(jifen / baseline, 3) if baseline else 0.0
