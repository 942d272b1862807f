"""``/metrics`` under ``jifen serve`` with two gunicorn workers: whichever worker answers the
scrape, it reports every worker's writes (prometheus-client's multi-process mode through
``$PROMETHEUS_MULTIPROC_DIR``), stale value files of an earlier run are cleared at start,
the JSON log lines come out one per line, and ``/healthz`` and ``/readyz`` answer."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from loyalty import migrate
from loyalty.db import Database
from loyalty.services.api_keys import create_key
from tests.http_api.test_serve import (
    JIFEN,
    STOP_WAIT,
    STRONG_SECRET,
    Server,
    environment,
    free_port,
    wait_until_up,
)
from tests.integration.helpers import PROGRAM, enrol, make_program

TOKEN = "scrape-token-0123456789"
TWO_WORKERS = ("--workers", "2", "--threads", "2")
MAX_EARNS = 400  # connections spread over both workers long before this


def earned_ok(base: str) -> float:
    """``jifen_ledger_operations_total{kind="earn_purchase",outcome="ok"}`` as scraped."""
    text = httpx.get(
        f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    ).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "jifen_ledger_operations_total" and sample.labels == {
                "kind": "earn_purchase",
                "outcome": "ok",
            }:
                return sample.value
    return 0.0


def test_two_workers_report_every_write_whichever_answers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    migrate.upgrade(url)
    database = Database.from_url(url)
    make_program(database)
    enrol(database, "alice")
    key = create_key(database, program=PROGRAM, scopes=["earn"], label="metrics").secret
    database.dispose()
    folder = tmp_path / "prometheus"
    folder.mkdir()
    (folder / "counter_999999.db").write_bytes(b"left by an earlier run")
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*JIFEN, "serve", "--database-url", url, "--bind", f"127.0.0.1:{port}", *TWO_WORKERS],
            env=environment(
                JIFEN_SECRET_KEY=STRONG_SECRET,
                JIFEN_METRICS_TOKEN=TOKEN,
                JIFEN_LOG_FORMAT="json",
                PROMETHEUS_MULTIPROC_DIR=str(folder),
            ),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        wait_until_up(server)
        assert not (folder / "counter_999999.db").exists()
        earns = 0
        while len(list(folder.glob("counter_*.db"))) < 2:
            assert earns < MAX_EARNS, "one worker took every connection"
            answer = httpx.post(  # a new connection each time: either worker may take it
                f"{server.base}/v1/earnings/purchase",
                json={"member": "alice", "order_id": f"o-{earns}", "amount_minor": 500},
                headers={"Authorization": f"Bearer {key}", "Connection": "close"},
                timeout=30,
            )
            assert answer.status_code == 201, answer.text
            earns += 1
        scraped = {earned_ok(server.base) for _ in range(6)}
        assert scraped == {float(earns)}
        assert httpx.get(f"{server.base}/healthz", timeout=10).status_code == 200
        assert httpx.get(f"{server.base}/readyz", timeout=10).json()["status"] == "ok"
        assert httpx.get(f"{server.base}/metrics", timeout=10).status_code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=STOP_WAIT)

    lines = [line for line in server.output().splitlines() if line.startswith("{")]
    parsed = [json.loads(line) for line in lines]
    loggers = {line["logger"] for line in parsed}
    assert {"gunicorn.error", "gunicorn.access", "jifen.ledger", "jifen.api"} <= loggers
    if any("Traceback" in line for line in server.output().splitlines()):
        pytest.fail(server.output())
