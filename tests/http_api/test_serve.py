"""``jifen serve`` as an operator runs it: a subprocess under gunicorn on a free loopback port,
serving the API, its document, the console and the member page from one address; SIGTERM
stops it cleanly. A missing or weak secret, or a database that is not there, stops it before
any worker starts, with a message that says what to set. On SQLite and PostgreSQL."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from werkzeug.test import Client

from api.cli import behind_proxies
from loyalty.cli import main
from loyalty.db import Database
from loyalty.services.api_keys import create_key
from tests.integration.helpers import PROGRAM, make_program

JIFEN = [sys.executable, "-m", "loyalty.cli"]
STRONG_SECRET = secrets.token_urlsafe(32)
READY_ATTEMPTS = 600  # x 0.1 s: the server is up long before; a dead process ends it sooner
STOP_WAIT = 60  # seconds: the bound on a graceful stop (it takes about one)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def environment(**settings: str) -> dict[str, str]:
    """The test's environment without any JIFEN_* setting, plus ``settings``."""
    found = {k: v for k, v in os.environ.items() if not k.startswith("JIFEN_")}
    found.update(COLUMNS="200", **settings)
    return found


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[tuple[Server, str]]:
    """``jifen serve`` on the test database with the program ``shop``; and a read key."""
    database = Database.from_url(database_url)
    make_program(database)
    key = create_key(database, program=PROGRAM, scopes=["read"], label="serve test").secret
    database.dispose()
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                *JIFEN,
                "serve",
                "--database-url",
                database_url,
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                "--threads",
                "2",
                "--proxy-hops",
                "1",
            ],
            env=environment(
                JIFEN_SECRET_KEY=STRONG_SECRET, JIFEN_STRIPE_WEBHOOK_SECRET="whsec_test_serve"
            ),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        wait_until_up(server)
        yield server, key
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_until_up(server: Server) -> None:
    with httpx.Client(base_url=server.base, timeout=5) as client:
        for _ in range(READY_ATTEMPTS):
            if server.process.poll() is not None:
                pytest.fail(f"jifen serve exited early:\n{server.output()}")
            try:
                client.get("/v1/openapi.json")
                return
            except httpx.TransportError:
                time.sleep(0.1)
    pytest.fail(f"jifen serve did not answer:\n{server.output()}")


def test_serve_answers_the_api_the_console_and_the_member_page_and_stops_on_sigterm(
    served: tuple[Server, str],
) -> None:
    server, key = served
    with httpx.Client(base_url=server.base, timeout=30, follow_redirects=False) as client:
        program = client.get("/v1/program", headers={"Authorization": f"Bearer {key}"})
        assert program.status_code == 200, program.text
        assert program.json()["code"] == PROGRAM
        assert program.headers["X-Request-Id"]

        spec = client.get("/v1/openapi.json")
        assert spec.status_code == 200
        assert spec.json()["info"]["title"] == "Jifen API"

        console = client.get("/admin/")
        assert console.status_code == 302
        assert console.headers["Location"].startswith("/login")

        page = client.get("/m/")
        assert page.status_code == 401
        assert page.headers["Content-Type"].startswith("text/html")

        unauthorised = client.get("/v1/program")
        assert unauthorised.status_code == 401
        assert unauthorised.headers["Content-Type"] == "application/problem+json"

    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=STOP_WAIT) == 0
    output = server.output()
    for line in (
        f"{server.base}/v1",
        f"{server.base}/v1/docs",
        f"{server.base}/admin",
        f"{server.base}/m/",
        f"{server.base}/webhooks/stripe",
        "1 worker(s) x 2 thread(s)",
    ):
        assert line in output, output
    assert "Using worker: gthread" in output
    assert '"GET /v1/program HTTP/1.1" 200' in output  # the access log, with its request id
    assert "request_id=" in output
    assert "Shutting down" in output
    assert "Traceback" not in output


def run_serve(*args: str, **settings: str | None) -> Result:
    """``jifen serve`` in this process: it must stop before gunicorn starts."""
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("JIFEN_")}
    return CliRunner().invoke(
        main, ["serve", "--bind", "127.0.0.1:1", *args], env={**unset, **settings}
    )


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, "jifen serve needs $JIFEN_SECRET_KEY"),
        ({"JIFEN_SECRET_KEY": "short"}, "$JIFEN_SECRET_KEY) is too weak"),
    ],
)
def test_a_missing_or_weak_secret_stops_it_before_serving(
    database_url: str, settings: dict[str, str], expected: str
) -> None:
    result = run_serve("--database-url", database_url, **settings)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ")
    assert expected in result.stderr
    assert result.stdout == ""  # nothing served, nothing announced


def test_a_database_that_is_not_there_stops_it_before_serving(tmp_path: Path) -> None:
    missing = f"sqlite:///{tmp_path / 'nothing.db'}"
    result = run_serve("--database-url", missing, JIFEN_SECRET_KEY=STRONG_SECRET)
    assert result.exit_code == 1
    assert "jifen db upgrade" in result.stderr
    assert not (tmp_path / "nothing.db").exists()
    unset = run_serve(JIFEN_SECRET_KEY=STRONG_SECRET)
    assert unset.exit_code == 1
    assert "JIFEN_DATABASE_URL" in unset.stderr


def test_behind_proxies_reads_the_client_address_and_scheme_from_the_proxy() -> None:
    def echo(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{environ['REMOTE_ADDR']} {environ['wsgi.url_scheme']}".encode()]

    forwarded = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    peer = {"REMOTE_ADDR": "127.0.0.1"}  # the proxy, as the server sees it
    direct = Client(behind_proxies(echo, 0)).get("/", headers=forwarded, environ_base=peer)
    assert direct.get_data(as_text=True) == "127.0.0.1 http"  # headers ignored: no proxy
    proxied = Client(behind_proxies(echo, 1)).get("/", headers=forwarded, environ_base=peer)
    assert proxied.get_data(as_text=True) == "203.0.113.7 https"
