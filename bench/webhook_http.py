"""Stripe webhook ingestion over HTTP: Jifen's Flask blueprint against a raw-SQL earn endpoint.

gunicorn (``--workers 2 --threads 4``, gthread) serves ``bench/webhook_app.py`` on a free
loopback port. A client in this process keeps one HTTP/1.1 keep-alive connection per thread
and posts signed ``payment_intent.succeeded`` events (built from Stripe's published example
objects by ``tests/integration/stripe_support.py``; new event and PaymentIntent ids every
time) for members linked to Stripe customers, alternating between the raw endpoint and the
webhook in ``--rounds`` rounds (so a noisy moment hits both), ``--seconds`` per endpoint in
all. Every answer must be 200 with status ``applied``.

The client shares the machine's cores with the server and PostgreSQL, so both figures are
lower than a remote client would see; the ratio is what matters.

    python -m bench.webhook_http [--seconds 15] [--rounds 3] [--clients 8] [--members 2000]
"""

from __future__ import annotations

import itertools
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.common import (
    BenchFailure,
    Throughput,
    base_parser,
    create_bench_program,
    print_table,
    ratio,
    run_threads,
    scratch_database,
    seed_members,
    verify,
    write_result,
)
from loyalty.db import Database

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/ is not installed: stripe_support comes from the tree

from tests.integration.stripe_support import (  # noqa: E402
    SECRET,
    body,
    payment_intent_succeeded,
    sign,
)

TARGET = 0.5
ABSOLUTE_TARGET = 1_200  # req/s on the 2-core reference box (context)
AMOUNT_MINOR = 12_345


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(url: str, port: int, workers: int, threads: int) -> subprocess.Popen[bytes]:
    """gunicorn serving bench.webhook_app on 127.0.0.1:port; returns once it answers."""
    env = {**os.environ, "JIFEN_BENCH_DB_URL": url, "JIFEN_BENCH_SECRET": SECRET}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--worker-class",
            "gthread",
            "--bind",
            f"127.0.0.1:{port}",
            "--chdir",
            str(ROOT),
            "--log-level",
            "warning",
            "bench.webhook_app:app",
        ],
        env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise BenchFailure(f"gunicorn exited with {server.returncode}")
        try:
            client = HttpClient(port)
            status, _ = client.request("GET", "/hello", b"", {})
            client.close()
            if status == 200:
                return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise BenchFailure("gunicorn did not answer within 30 s")


class HttpClient:
    """One keep-alive HTTP/1.1 connection, with as little client work as possible."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.buffer = b""

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.buffer = sock, b""
        return sock

    def request(
        self, method: str, path: str, payload: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        sock = self.sock or self._connect()
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(payload)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall(head.encode() + b"\r\n" + payload)
        while b"\r\n\r\n" not in self.buffer:
            chunk = sock.recv(65536)
            if not chunk:
                self.close()
                raise OSError("the server closed the connection")
            self.buffer += chunk
        header, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = header.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        while len(self.buffer) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            self.buffer += chunk
        answer, self.buffer = self.buffer[:length], self.buffer[length:]
        if close:
            self.close()
        return status, answer

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None


def event_template() -> str:
    """A signed-body template of Stripe's payment_intent.succeeded, with id placeholders."""
    event = payment_intent_succeeded(
        "pi_XXPIXX", AMOUNT_MINOR, customer="cus_XXCUSXX", created=int(time.time())
    )
    event["id"] = "evt_XXEVTXX"
    return body(event).decode()


def poster(
    port: int, path: str, members: int, tag: str, clients: int
) -> tuple[Callable[[int, int], None], list[HttpClient]]:
    """A work function posting a fresh signed event per call on the thread's connection."""
    template = event_template()
    conns = [HttpClient(port) for _ in range(clients)]
    serial = itertools.count()

    def work(t: int, n: int) -> None:
        uid = f"{tag}{t}x{n}"
        payload = (
            template.replace("XXPIXX", uid)
            .replace("XXEVTXX", uid)
            .replace("XXCUSXX", f"bench{random.randrange(members)}")
            .encode()
        )
        headers = {"Content-Type": "application/json", "Stripe-Signature": sign(payload)}
        status, answer = conns[t].request("POST", path, payload, headers)
        if status != 200 or json.loads(answer).get("status") != "applied":
            raise BenchFailure(f"{path} answered {status}: {answer[:300]!r}")
        next(serial)

    return work, conns


def hello(port: int, clients: int) -> tuple[Callable[[int, int], None], list[HttpClient]]:
    conns = [HttpClient(port) for _ in range(clients)]

    def work(t: int, n: int) -> None:
        status, _ = conns[t].request("GET", "/hello", b"", {})
        if status != 200:
            raise BenchFailure(f"/hello answered {status}")

    return work, conns


def measure(
    make: tuple[Callable[[int, int], None], list[HttpClient]],
    clients: int,
    seconds: float,
    warmup: float,
) -> Throughput:
    work, conns = make
    try:
        return run_threads(clients, seconds, work, warmup=warmup)
    finally:
        for c in conns:
            c.close()


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="per endpoint, in all")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternate the endpoints this many times"
    )
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--clients", type=int, default=8, help="client threads (connections)")
    parser.add_argument("--members", type=int, default=2_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    args = parser.parse_args(argv)
    with scratch_database(args.url, keep=args.keep) as url:
        db = Database.from_url(url)
        create_bench_program(db)
        seed_members(db, args.members, stripe=True)
        db.dispose()
        port = free_port()
        server = start_server(url, port, args.workers, args.threads)
        try:
            tag = f"{random.randrange(16**6):06x}"
            hi = measure(hello(port, args.clients), args.clients, args.seconds / 2, args.warmup)
            raw = jf = Throughput(0, 0.0)
            share = args.seconds / args.rounds
            for n in range(args.rounds):  # interleaved, so a noisy moment hits both sides
                raw += measure(
                    poster(port, "/raw/earn", args.members, f"raw{tag}r{n}", args.clients),
                    args.clients,
                    share,
                    args.warmup,
                )
                jf += measure(
                    poster(port, "/webhooks/stripe", args.members, f"jf{tag}r{n}", args.clients),
                    args.clients,
                    share,
                    args.warmup,
                )
        finally:
            server.terminate()
            server.wait(timeout=30)
        checked = verify(url, label="webhook_http")
        r = ratio(jf.per_second, raw.per_second)
        met = r >= TARGET
        print_table(
            f"Stripe webhook over HTTP, gunicorn {args.workers}×{args.threads} gthread, "
            f"{args.clients} client threads (req/s)",
            ["endpoint", "requests", "req/s", "ratio to raw"],
            [
                ["GET /hello (context)", hi.operations, round(hi.per_second), None],
                ["POST /raw/earn (baseline)", raw.operations, round(raw.per_second), 1.0],
                ["POST /webhooks/stripe", jf.operations, round(jf.per_second), r],
            ],
        )
        write_result(
            "webhook_http",
            title="Stripe webhook over HTTP (req/s)",
            url=url,
            sizes={
                "members": args.members,
                "seconds": args.seconds,
                "rounds": args.rounds,
                "clients": args.clients,
                "workers": args.workers,
                "threads": args.threads,
            },
            figures={
                "hello_rps": round(hi.per_second),
                "raw_earn_rps": round(raw.per_second),
                "webhook_rps": round(jf.per_second),
                "webhook_requests": jf.operations,
                "raw_requests": raw.operations,
                "absolute_target_rps": ABSOLUTE_TARGET,
                "absolute_target_met": jf.per_second > ABSOLUTE_TARGET,
            },
            unit="req/s",
            jifen=round(jf.per_second),
            baseline=round(raw.per_second),
            ratio=r,
            target=f">= {TARGET} of the raw endpoint (context: > {ABSOLUTE_TARGET} req/s)",
            met=met,
            verify=checked,
            notes=["the load client runs on the same 2 cores as gunicorn and PostgreSQL"],
        )
    return {"name": "webhook_http", "jifen": round(jf.per_second), "ratio": r, "met": met}


if __name__ == "__main__":
    main()
