"""The HTTP API under load: ``wrk`` against Jifen's server and hand-written baselines.

gunicorn (``-k gthread --workers 2 --threads 4``) serves :mod:`bench.api_baseline` on a free
loopback port: Jifen's whole server (``api.server.create_server``, rate limits off) with the
baselines mounted beside it in the same worker processes. ``wrk`` (``bench/wrk/*.lua``)
drives it with ``--connections`` keep-alive connections; every request carries a new order
id and ``Idempotency-Key`` (or Stripe event id), and every answer that is not the expected
status is counted and reported (the run then fails). Pairs alternate in ``--rounds`` rounds
of ``--seconds`` each, so a noisy moment weighs on both sides.

1. Earn: ``POST /v1/earnings/purchase`` against ``/baseline/earnings/purchase`` (Flask +
   psycopg: the key looked up by hash, then the earn's writes of ``bench.earn_pg``), and
   against the same hand-written earn in this process on as many threads as connections
   (no HTTP at all).
2. Reads: ``GET /v1/members/{m}/balance`` for random members beside Flask's hello world on
   the same server.
3. The Stripe webhook: ``POST /webhooks/stripe`` of the whole server against the raw
   endpoint of ``bench/webhook_http.py``, and the same webhook blueprint alone in that
   benchmark's bare Flask app (what the console's layers cost); unique events signed in Lua
   (OpenSSL's HMAC through LuaJIT's FFI), so it measures new purchases, not the replay path.
4. The SDK: ``Jifen("http://127.0.0.1:port", api_key=…)`` (the remote SDK; plain ``httpx``
   with a pooled client if it is not installed) against the embedded ``Jifen(database_url)``,
   same database, same thread count, in this process.

wrk, gunicorn and PostgreSQL share the machine's cores, so absolute figures are lower than a
remote client would see; the ratios are what matter.

    python -m bench.api_http [--seconds 5] [--rounds 4] [--connections 8] [--members 2000]
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.api_baseline import BASELINE, STRIPE_BASELINE
from bench.common import (
    PROGRAM,
    BenchFailure,
    base_parser,
    conninfo,
    create_bench_program,
    machine_info,
    machine_line,
    percentile,
    print_table,
    ratio,
    run_threads,
    scratch_database,
    seed_members,
    verify,
    write_result,
)
from bench.cpu_meter import CpuMeter
from bench.earn_pg import AMOUNT_MINOR, jifen_earn, raw_earn
from bench.webhook_http import HttpClient, event_template, free_port
from loyalty.db import Database
from loyalty.services.api_keys import create_key
from sdk import Jifen
from tests.integration.stripe_support import SECRET as STRIPE_SECRET

ROOT = Path(__file__).resolve().parents[1]
WRK_DIR = Path(__file__).parent / "wrk"
EARN_TARGET = 0.7  # of the raw Flask + psycopg endpoint
IN_PROCESS_TARGET = 0.6  # of the hand-written earn in this process, same concurrency
EARN_PATH = "/v1/earnings/purchase"
WEBHOOK = "/webhooks/stripe"
Work = Callable[[int, int], None]


@dataclass(frozen=True)
class Figure:
    """What one side did: requests, seconds, latency percentiles, answers that were wrong."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    unexpected: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    first_bad: str = ""
    cpu: dict[str, float] = field(default_factory=dict)  # seconds, by part (bench.cpu_meter)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms(self) -> float:
        """Milliseconds of CPU a request took, all parts together (client, Python, database)."""
        return sum(self.cpu.values()) * 1000 / self.requests if self.requests else 0.0

    def __add__(self, other: Figure) -> Figure:
        """Two rounds together; their percentiles averaged, weighted by requests."""
        total = self.requests + other.requests

        def mean(a: float, b: float) -> float:
            return (a * self.requests + b * other.requests) / total if total else 0.0

        errors = _added(self.socket_errors, other.socket_errors)
        return Figure(
            requests=total,
            seconds=self.seconds + other.seconds,
            p50_ms=mean(self.p50_ms, other.p50_ms),
            p99_ms=mean(self.p99_ms, other.p99_ms),
            unexpected=self.unexpected + other.unexpected,
            socket_errors=errors,
            first_bad=self.first_bad or other.first_bad,
            cpu=_added(self.cpu, other.cpu),
        )

    def row(self) -> dict[str, Any]:
        """The figure as the JSON stores it."""
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 2),
            "per_second": round(self.per_second),
            "p50_ms": round(self.p50_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "unexpected_answers": self.unexpected,
            "socket_errors": self.socket_errors,
            "cpu_ms_per_request": {
                part: round(seconds * 1000 / self.requests, 3) if self.requests else None
                for part, seconds in self.cpu.items()
            },
        }


def _added(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in {*a, *b}}


# --- the server ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    """The gunicorn serving the sides, and the meter of the CPU the run uses."""

    port: int
    meter: CpuMeter


@contextmanager
def gunicorn(url: str, args: Any) -> Iterator[Server]:
    """gunicorn serving :mod:`bench.api_baseline` on a free loopback port, for the block."""
    port = free_port()
    env = {
        **os.environ,
        "JIFEN_DATABASE_URL": url,
        "JIFEN_SECRET_KEY": secrets.token_urlsafe(32),
        "JIFEN_BENCH_DB_URL": url,
        "JIFEN_BENCH_SECRET": STRIPE_SECRET,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, "-m", "gunicorn", "-k", "gthread"]
    command += ["--workers", str(args.workers), "--threads", str(args.threads)]
    command += ["--bind", f"127.0.0.1:{port}", "--chdir", str(ROOT), "--log-level", "warning"]
    server = subprocess.Popen([*command, "bench.api_baseline:create_bench_server()"], env=env)
    meter = CpuMeter(conninfo(url), server.pid)
    try:
        _wait_until_up(server, port)
        yield Server(port, meter)
    finally:
        meter.close()
        server.terminate()
        server.wait(timeout=30)


def _wait_until_up(server: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise BenchFailure(f"gunicorn exited with {server.returncode}")
        client = HttpClient(port)
        try:
            if client.request("GET", BASELINE + "/hello", b"", {})[0] == 200:
                return
        except OSError:
            time.sleep(0.2)
        finally:
            client.close()
    server.kill()
    raise BenchFailure("gunicorn did not answer within 60 s")


# --- wrk -------------------------------------------------------------------------------------


def wrk(server: Server, script: str, seconds: int, args: Any, **settings: str | int) -> Figure:
    """One wrk run of ``bench/wrk/<script>.lua``; its figure (from the script's report)."""
    command = ["wrk", f"-t{min(2, args.connections)}", f"-c{args.connections}"]
    command += [f"-d{seconds}s", "--timeout", "10s", "--latency"]
    command += ["-s", str(WRK_DIR / f"{script}.lua"), f"http://127.0.0.1:{server.port}"]
    env = {**os.environ, "JIFEN_WRK_TAG": secrets.token_hex(4)}
    env.update({f"JIFEN_{k.upper()}": str(v) for k, v in settings.items()})
    start = server.meter.read()
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    cpu = server.meter.since(start)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("JIFEN_WRK ")]
    if done.returncode != 0 or not lines:
        raise BenchFailure(f"wrk failed ({done.returncode}): {done.stdout}{done.stderr}")
    found = json.loads(lines[-1].removeprefix("JIFEN_WRK "))
    errors = {k: v for k, v in found["errors"].items() if k != "status"}
    return Figure(
        requests=found["requests"],
        seconds=found["duration_us"] / 1e6,
        p50_ms=found["p50_us"] / 1000,
        p99_ms=found["p99_us"] / 1000,
        unexpected=found["unexpected"] + found["replayed"],
        socket_errors=errors,
        first_bad=found["first_bad"],
        cpu=cpu,
    )


# --- in process ------------------------------------------------------------------------------


def threaded(
    server: Server, threads: int, seconds: float, warmup: float, make: Callable[[str], Work]
) -> Figure:
    """``make(tag)``'s work on ``threads`` threads, warmed up first; with its latencies and
    the CPU the measured part used."""
    if warmup:
        run_threads(threads, warmup, make(f"w{secrets.token_hex(4)}"))
    samples: list[float] = []
    work = make(f"m{secrets.token_hex(4)}")

    def timed(t: int, n: int) -> None:
        started = time.perf_counter()
        work(t, n)
        samples.append(time.perf_counter() - started)

    start = server.meter.read()
    got = run_threads(threads, seconds, timed)
    return Figure(
        requests=got.operations,
        seconds=got.seconds,
        p50_ms=percentile(samples, 0.5) * 1000,
        p99_ms=percentile(samples, 0.99) * 1000,
        cpu=server.meter.since(start),
    )


def sdk_earn(client: Jifen, members: int) -> Callable[[str], Work]:
    """Earns through an SDK client (embedded or remote): ``earn_pg``'s work, per tag."""
    return functools.partial(jifen_earn, client, members)


def remote_available() -> bool:
    """Whether the SDK can talk to a server (``Jifen(url, api_key=…)``)."""
    return "api_key" in inspect.signature(Jifen).parameters


@contextmanager
def remote_earn(port: int, key: str, members: int, threads: int) -> Iterator[Callable[[str], Work]]:
    """Earns over HTTP from this process: the remote SDK, else a pooled ``httpx`` client."""
    base = f"http://127.0.0.1:{port}"
    if remote_available():
        with Jifen(base, api_key=key, program=PROGRAM) as client:
            yield sdk_earn(client, members)
        return
    limits = httpx.Limits(max_connections=threads, max_keepalive_connections=threads)
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=headers, limits=limits, timeout=30) as http:

        def make(tag: str) -> Work:
            def work(t: int, n: int) -> None:
                order = f"{tag}-{t}-{n}"
                body = {
                    "member": f"m{random.randrange(members)}",
                    "order_id": order,
                    "amount_minor": AMOUNT_MINOR,
                }
                answer = http.post(EARN_PATH, json=body, headers={"Idempotency-Key": order})
                if answer.status_code != 201:
                    raise BenchFailure(f"{EARN_PATH} answered {answer.status_code}: {answer.text}")

            return work

        yield make


# --- the runs --------------------------------------------------------------------------------


def alternate(rounds: int, sides: Mapping[str, Callable[[], Figure]]) -> dict[str, Figure]:
    """Each side run ``rounds`` times, in turn (reversed every other round), added up."""
    totals: dict[str, Figure] = {}
    names = list(sides)
    for n in range(rounds):
        for name in names if n % 2 == 0 else names[::-1]:
            got = sides[name]()
            totals[name] = totals[name] + got if name in totals else got
    return totals


def warm_up(server: Server, args: Any, common: dict[str, str | int]) -> None:
    """One short run of each endpoint, so every worker has loaded and connected."""
    if not args.warmup:
        return
    for path in (BASELINE + "/earnings/purchase", EARN_PATH):
        wrk(server, "earn", args.warmup, args, wrk_path=path, **common)
    for path in (STRIPE_BASELINE + "/raw/earn", "/webhooks/stripe", STRIPE_BASELINE + WEBHOOK):
        wrk(server, "stripe", args.warmup, args, wrk_path=path, **common)


def measure(url: str, server: Server, key: str, body_file: str, args: Any) -> dict[str, Figure]:
    """Every side of every comparison, in this order: hello, earn, webhook, reads, SDK."""
    common: dict[str, str | int] = {
        "wrk_members": args.members,
        "api_key": key,
        "wrk_body": body_file,
        "wrk_secret": STRIPE_SECRET,
    }
    secs, rounds, conns = args.seconds, args.rounds, args.connections
    warm_up(server, args, common)
    found = {"hello": wrk(server, "get", secs, args, wrk_path=BASELINE + "/hello", **common)}

    def earn_over(path: str) -> Callable[[], Figure]:
        return lambda: wrk(server, "earn", secs, args, wrk_path=path, **common)

    def hand_written(tag: str) -> Work:
        return raw_earn(url, conns, args.members, tag)

    def in_process() -> Figure:
        return threaded(server, conns, secs, 0.0, hand_written)

    found |= alternate(
        rounds,
        {
            "earn_baseline": earn_over(BASELINE + "/earnings/purchase"),
            "earn_api": earn_over(EARN_PATH),
            "earn_in_process": in_process,
        },
    )

    def stripe_to(path: str) -> Callable[[], Figure]:
        return lambda: wrk(server, "stripe", secs, args, wrk_path=path, **common)

    found |= alternate(
        rounds,
        {
            "webhook_baseline": stripe_to(STRIPE_BASELINE + "/raw/earn"),
            "webhook_jifen": stripe_to(WEBHOOK),
            "webhook_bare": stripe_to(STRIPE_BASELINE + WEBHOOK),
        },
    )
    balance = "/v1/members/{member}/balance"
    found["balance"] = wrk(server, "get", secs, args, wrk_path=balance, **common)
    found |= sdk_sides(url, server, key, args)
    return found


def sdk_sides(url: str, server: Server, key: str, args: Any) -> dict[str, Figure]:
    """The remote SDK's earn against the embedded SDK's, same database, same threads."""
    threads, secs, warmup = args.connections, args.seconds, args.warmup
    with (
        Jifen(url, program=PROGRAM) as embedded,
        remote_earn(server.port, key, args.members, threads) as remote,
    ):
        local = sdk_earn(embedded, args.members)
        return alternate(
            args.rounds,
            {
                "sdk_embedded": lambda: threaded(server, threads, secs, warmup, local),
                "sdk_remote": lambda: threaded(server, threads, secs, warmup, remote),
            },
        )


# --- reporting -------------------------------------------------------------------------------

LABELS = {
    "hello": "GET /baseline/hello (Flask hello world)",
    "balance": "GET /v1/members/{m}/balance",
    "earn_baseline": "POST /baseline/earnings/purchase (Flask + psycopg)",
    "earn_api": "POST /v1/earnings/purchase",
    "earn_in_process": "hand-written earn in process (psycopg, no HTTP)",
    "webhook_baseline": "POST /stripe-baseline/raw/earn (hmac + psycopg)",
    "webhook_jifen": "POST /webhooks/stripe (the whole server)",
    "webhook_bare": "the same webhook alone in a bare Flask app",
    "sdk_embedded": "Jifen(database_url).earn",
    "sdk_remote": "Jifen(http://…).earn",
}


COMPARISONS = {  # ratio name: (Jifen's side, its baseline)
    "earn_api_to_baseline": ("earn_api", "earn_baseline"),
    "earn_api_to_in_process": ("earn_api", "earn_in_process"),
    "balance_to_hello": ("balance", "hello"),
    "webhook_to_baseline": ("webhook_jifen", "webhook_baseline"),
    "bare_webhook_to_baseline": ("webhook_bare", "webhook_baseline"),
    "sdk_remote_to_embedded": ("sdk_remote", "sdk_embedded"),
}


def ratios(found: Mapping[str, Figure]) -> dict[str, float]:
    """Each comparison's ratio of requests per second, Jifen over its baseline."""
    return {
        name: ratio(found[a].per_second, found[b].per_second)
        for name, (a, b) in COMPARISONS.items()
    }


def cpu_ratios(found: Mapping[str, Figure]) -> dict[str, float]:
    """Each comparison's ratio of CPU per request, the baseline's over Jifen's: what the
    throughput ratio would be on a machine where CPU is all that limits both."""
    return {name: ratio(found[b].cpu_ms, found[a].cpu_ms) for name, (a, b) in COMPARISONS.items()}


def print_figures(found: Mapping[str, Figure], shares: Mapping[str, float], args: Any) -> None:
    compared = {
        "earn_api": shares["earn_api_to_baseline"],
        "balance": shares["balance_to_hello"],
        "webhook_jifen": shares["webhook_to_baseline"],
        "webhook_bare": shares["bare_webhook_to_baseline"],
        "sdk_remote": shares["sdk_remote_to_embedded"],
    }
    print_table(
        f"HTTP API, gunicorn {args.workers}×{args.threads} gthread, {args.connections} "
        f"connections/threads, {args.rounds} round(s) of {args.seconds} s",
        ["side", "requests", "req/s", "p50 ms", "p99 ms", "CPU ms/req", "wrong", "ratio"],
        [
            [
                LABELS[name],
                f.requests,
                round(f.per_second),
                round(f.p50_ms, 2),
                round(f.p99_ms, 2),
                round(f.cpu_ms, 2),
                f.unexpected,
                compared.get(name),
            ]
            for name, f in found.items()
        ],
    )
    print(
        f"earn over HTTP / in-process psycopg earn: {shares['earn_api_to_in_process']}"
        f" (target >= {IN_PROCESS_TARGET}); earn API / Flask + psycopg endpoint: "
        f"{shares['earn_api_to_baseline']} (target >= {EARN_TARGET})"
    )
    print(
        "by CPU per request (client, Python and PostgreSQL together; the baseline's over "
        "Jifen's): " + ", ".join(f"{k} {v}" for k, v in cpu_ratios(found).items())
    )


def failures(found: Mapping[str, Figure]) -> list[str]:
    """Sides with wrong answers: their figures cannot be trusted."""
    return [
        f"{LABELS[name]}: {f.unexpected} wrong answers, first: {f.first_bad!r}"
        for name, f in found.items()
        if f.unexpected
    ]


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="per wrk run (and in-process run)")
    parser.add_argument("--rounds", type=int, default=4, help="alternate each pair this often")
    parser.add_argument(
        "--warmup", type=int, default=1, help="seconds per endpoint first (0: none)"
    )
    parser.add_argument("--connections", type=int, default=8, help="wrk connections = threads")
    parser.add_argument("--members", type=int, default=2_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise BenchFailure("wrk is not installed (Debian: apt-get install wrk)")
    with scratch_database(args.url, keep=args.keep) as url, tempfile.TemporaryDirectory() as tmp:
        db = Database.from_url(url)
        create_bench_program(db)
        seed_members(db, args.members, stripe=True)
        key = create_key(db, program=PROGRAM, scopes=("earn", "read"), label="bench").secret
        db.dispose()
        body_file = Path(tmp) / "event.json"
        body_file.write_text(event_template())
        with gunicorn(url, args) as server:
            found = measure(url, server, key, str(body_file), args)
        checked = verify(url, label="api_http")
        return report(url, found, checked, args)


def report(url: str, found: Mapping[str, Figure], checked: Any, args: Any) -> dict[str, Any]:
    """Print the table, write the JSON; fail if any answer was wrong."""
    shares = ratios(found)
    print_figures(found, shares, args)
    print(f"machine: {machine_line(machine_info(url))}; wrk, gunicorn and PostgreSQL share it")
    met = (
        shares["earn_api_to_baseline"] >= EARN_TARGET
        and shares["earn_api_to_in_process"] >= IN_PROCESS_TARGET
    )
    wrong = failures(found)
    client = "the remote SDK" if remote_available() else "httpx (pooled; no remote SDK)"
    write_result(
        "api_http",
        title="Earn over the HTTP API (req/s)",
        url=url,
        sizes={
            "members": args.members,
            "seconds": args.seconds,
            "rounds": args.rounds,
            "connections": args.connections,
            "workers": args.workers,
            "threads": args.threads,
        },
        figures={
            **{name: f.row() for name, f in found.items()},
            "ratios": shares,
            "cpu_ratios": cpu_ratios(found),
            "remote_client": client,
        },
        unit="req/s",
        jifen=round(found["earn_api"].per_second),
        baseline=round(found["earn_baseline"].per_second),
        ratio=shares["earn_api_to_baseline"],
        target=(
            f">= {EARN_TARGET} of the Flask + psycopg endpoint, "
            f">= {IN_PROCESS_TARGET} of the in-process psycopg earn"
        ),
        met=met and not wrong,
        verify=checked,
        notes=[
            "wrk, gunicorn and PostgreSQL share the machine's cores",
            "webhook events are new (unique ids signed in Lua): the purchase path, not replays",
            f"remote side of the SDK comparison: {client}",
            "rate limits are off on the server (their cost is not measured)",
            *wrong,
        ],
    )
    if wrong:
        raise BenchFailure("; ".join(wrong))
    return {"name": "api_http", "jifen": round(found["earn_api"].per_second), "met": met}


if __name__ == "__main__":
    main()
