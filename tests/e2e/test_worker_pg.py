"""``jifen worker`` as operators run it: a subprocess on Redis and PostgreSQL, also SIGKILLed.

The killed-worker test: a forking worker is killed in the middle of an expiry sweep over
60,000 lots, with its whole session (RQ's work horse calls ``setpgrp()``, so killing the
worker's process group alone would leave the horse to finish the job). Its RQ job stays
*started* under its id until RQ's maintenance notices the lost heartbeat, so enqueueing the
same id again does nothing (``unique=True``). The next run comes under a fresh id, as the
next hourly slot would: it marks the killed run abandoned in ``job_runs`` and finishes the
sweep, and the ledger ends consistent with exactly one expiry entry per lot.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from rq.job import Job

from loyalty import jobs
from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.jobs import rq as queue
from tests.integration.helpers import earn, enrol, make_program, scalar
from tests.integration.test_sweeps_at_scale_pg import seed_due_lots

JIFEN = [sys.executable, "-m", "loyalty.cli"]
LOTS = 60_000


@pytest.fixture
def redis(redis_url: str) -> Iterator[Redis]:
    connection = Redis.from_url(redis_url)
    yield connection
    connection.close()


def url_of(db: Database) -> str:
    return db.engine.url.render_as_string(hide_password=False)


def start_worker(db: Database, redis_url: str, log: Path) -> subprocess.Popen[bytes]:
    """``jifen worker --burst`` in a process group of its own (it forks a work horse per job)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JIFEN_")}
    with log.open("ab") as out:
        return subprocess.Popen(
            [*JIFEN, "worker", "--burst", "--redis-url", redis_url, "--database-url", url_of(db)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill_session(leader: int) -> None:
    """SIGKILL every process of the worker's session: RQ's work horse calls ``setpgrp()``, so
    killing the worker's process group alone would leave the horse to finish the job."""
    pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    for pid in sorted(pids, key=lambda p: p != leader):  # the worker first: it cannot react
        try:
            if os.getsid(pid) == leader:
                os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def finish(worker: subprocess.Popen[bytes], log: Path) -> None:
    assert worker.wait(timeout=120) == 0, log.read_text()


def test_jifen_worker_burst_runs_an_enqueued_sweep(
    pg_db: Database, clock: FixedClock, redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    clock.set(dt.datetime.now(dt.UTC) - dt.timedelta(days=120))  # the worker's clock is real
    make_program(pg_db)
    enrol(pg_db, "alice")
    for n in range(3):
        earn(pg_db, "alice", f"o{n}", 10_000)

    enqueued = queue.enqueue("expire", connection=redis)
    log = tmp_path / "worker.log"
    finish(start_worker(pg_db, redis_url, log), log)

    assert Job.fetch(enqueued.job_id, connection=redis).get_status() == "finished"
    (run,) = jobs.last_runs(pg_db)
    assert (run.job_id, run.trigger, run.status, run.items, run.points) == (
        enqueued.job_id,
        "queue",
        "succeeded",
        3,
        300,
    )
    assert s.balance(pg_db, program="shop", member="alice").available == 0


def test_a_worker_killed_mid_sweep_is_carried_on_by_the_next_run(
    pg_db: Database, clock: FixedClock, redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    clock.set(dt.datetime.now(dt.UTC))
    seed_due_lots(pg_db, clock, LOTS)  # consistent members, lots and entries, all due
    log = tmp_path / "worker.log"
    first = queue.enqueue(
        "expire", params={"batch_size": 500}, job_id="jifen-expire-kill-1", connection=redis
    )
    assert first.created

    worker = start_worker(pg_db, redis_url, log)
    try:
        deadline = time.monotonic() + 60
        while not scalar(pg_db, "SELECT max(items) FROM job_runs WHERE status = 'running'"):
            assert worker.poll() is None, (
                f"the worker ended before it was killed:\n{log.read_text()}"
            )
            assert time.monotonic() < deadline, f"the sweep made no progress:\n{log.read_text()}"
            time.sleep(0.02)
        kill_session(worker.pid)  # the worker and its work horse
    finally:
        kill_session(worker.pid)
        worker.wait(timeout=30)

    (killed,) = jobs.last_runs(pg_db)
    assert (killed.job_id, killed.status) == (first.job_id, "running")
    assert 0 < killed.items < LOTS
    expired_at_kill = scalar(pg_db, "SELECT count(*) FROM entries WHERE kind = 'expire'")
    assert killed.items <= expired_at_kill < LOTS  # a batch may commit before its heartbeat

    # RQ still believes the killed job is running: its id is taken, so the same id does nothing.
    assert Job.fetch(first.job_id, connection=redis).get_status() == "started"
    same = queue.enqueue(
        "expire", params={"batch_size": 500}, job_id=first.job_id, connection=redis
    )
    assert (same.created, same.status) == (False, "started")
    # The next run comes under a new id; its stale threshold (1 s here, 10 min by default)
    # is what tells it the killed run is abandoned.
    time.sleep(1.1)
    second = queue.enqueue(
        "expire",
        params={"batch_size": 5_000},
        job_id="jifen-expire-kill-2",
        stale_after_seconds=1,
        connection=redis,
    )
    assert second.created
    finish(start_worker(pg_db, redis_url, log), log)

    verify = subprocess.run(
        [*JIFEN, "verify", "--database-url", url_of(pg_db)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "ledger is consistent" in verify.stdout
    assert scalar(pg_db, "SELECT count(*) FROM lots WHERE expired_at IS NULL") == 0
    assert scalar(pg_db, "SELECT count(*) FROM entries WHERE kind = 'expire'") == LOTS
    assert (
        scalar(
            pg_db,
            "SELECT count(*) FROM (SELECT lot_id FROM entries WHERE kind = 'expire'"
            " GROUP BY lot_id HAVING count(*) <> 1) AS twice",
        )
        == 0
    )
    abandoned = jobs.get_run(pg_db, killed.id)
    assert (abandoned.status, abandoned.error) == ("failed", jobs.ABANDONED)
    runs = jobs.last_runs(pg_db)
    assert [(r.job_id, r.status) for r in runs] == [
        ("jifen-expire-kill-2", "succeeded"),
        ("jifen-expire-kill-1", "failed"),
    ]
    assert runs[0].items == LOTS - expired_at_kill
    assert runs[0].details["abandoned_runs"] == [killed.id]
