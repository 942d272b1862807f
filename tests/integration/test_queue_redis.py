"""The RQ adapter on a real Redis: unique job ids, a worker running jobs, failures kept."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from helpers import earn, enrol, make_program, scalar
from redis import Redis
from rq import Queue, SimpleWorker
from rq.cron import CronScheduler
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry

from loyalty import jobs
from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.errors import ConfigurationError, InvalidInput
from loyalty.jobs import rq as queue
from loyalty.services.uow import unit_of_work

SLOT = dt.datetime(2026, 11, 21, 10, 17, 30, tzinfo=dt.UTC)


@pytest.fixture
def redis(redis_url: str) -> Iterator[Redis]:
    connection = Redis.from_url(redis_url)
    yield connection
    connection.close()


@pytest.fixture
def worker_env(pg_db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    """The worker's jobs find the PostgreSQL database in $JIFEN_DATABASE_URL."""
    url = pg_db.engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("JIFEN_DATABASE_URL", url)
    yield pg_db
    jobs.dispose_worker_databases()


def work(redis: Redis) -> None:
    SimpleWorker([queue.job_queue(redis)], connection=redis).work(burst=True)


def test_deterministic_ids_make_a_duplicate_enqueue_do_nothing(redis: Redis) -> None:
    first = queue.enqueue("expire", connection=redis, at=SLOT)
    assert (first.job_id, first.created, first.message) == (
        "jifen-expire-2026-11-21T10",
        True,
        "queued",
    )
    again = queue.enqueue("expire", connection=redis, at=SLOT + dt.timedelta(minutes=40))
    assert (again.job_id, again.created, again.status) == (first.job_id, False, "queued")
    assert again.message == "already queued (that job is queued); nothing done"
    assert queue.job_queue(redis).count == 1

    later = queue.enqueue("expire", connection=redis, at=SLOT + dt.timedelta(hours=1))
    assert (later.job_id, later.created) == ("jifen-expire-2026-11-21T11", True)
    ids = {
        queue.enqueue(name, params=params, connection=redis, at=SLOT).job_id
        for name, params in [
            ("hold_timeouts", {}),
            ("remind", {}),
            ("remind", {"program": "shop"}),
            ("clear", {}),
            ("clear_year", {"program": "shop", "year": 2026}),
            ("clear_year", {"program": "Shop #2"}),
        ]
    }
    assert ids == {
        "jifen-hold_timeouts-2026-11-21T1017",
        "jifen-remind-2026-11-21",
        "jifen-remind-shop-2026-11-21",
        "jifen-clear-2026-11-21T10",
        "jifen-clear_year-shop-2026",
        "jifen-clear_year-Shop__2_48ff4afb-2026-11-21T10",  # RQ ids allow [A-Za-z0-9_-] only
    }
    job = Job.fetch(first.job_id, connection=redis)
    assert job.func_name == "loyalty.jobs.expire_job"
    assert job.kwargs == {"trigger": "queue"}
    assert job.failure_ttl == 7 * 24 * 3600 and job.result_ttl == 24 * 3600
    assert job.timeout == jobs.job_spec("expire").policy.job_timeout
    with pytest.raises(InvalidInput, match="takes batch_size"):
        queue.enqueue("expire", params={"days": 1}, connection=redis)
    with pytest.raises(InvalidInput, match="letters, digits"):
        queue.enqueue("expire", job_id="jifen:expire", connection=redis)


def test_no_redis_url_means_inline_and_an_unreachable_redis_is_a_clear_error(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JIFEN_REDIS_URL", raising=False)
    assert queue.redis_url_from_env() is None
    run = queue.submit("expire", db=db)  # no Redis: run here, recorded like a queued run
    assert isinstance(run, jobs.JobRunInfo)
    assert (run.status, run.trigger) == ("succeeded", "inline")
    with pytest.raises(ConfigurationError, match="no Redis URL"):
        queue.connect()
    with pytest.raises(ConfigurationError, match=r"cannot reach Redis at redis://127\.0\.0\.1:1/0"):
        queue.connect("redis://127.0.0.1:1/0")


def test_a_simple_worker_runs_the_expiry_job_against_postgresql(
    redis: Redis, worker_env: Database, clock: FixedClock
) -> None:
    db = worker_env
    clock.set(dt.datetime.now(dt.UTC) - dt.timedelta(days=120))  # the worker's clock is real
    make_program(db)
    enrol(db, "alice", "bob")
    for n in range(5):
        earn(db, "alice" if n % 2 else "bob", f"o{n}", 10_000)  # expire after 3 months

    enqueued = queue.enqueue("expire", params={"batch_size": 2}, connection=redis)
    assert enqueued.created
    work(redis)

    job = Job.fetch(enqueued.job_id, connection=redis)
    assert job.get_status() == "finished"
    (run,) = jobs.last_runs(db)
    assert (run.job, run.job_id, run.trigger, run.status) == (
        "expire",
        enqueued.job_id,
        "queue",
        "succeeded",
    )
    assert (run.items, run.points, run.batches) == (5, 500, 3)
    assert job.return_value() == run.to_dict()
    assert scalar(db, "SELECT count(*) FROM lots WHERE expired_at IS NULL") == 0
    assert s.verify_ledger(db).ok
    # The slot's job is done: asking again in the same slot does nothing.
    again = queue.enqueue("expire", params={"batch_size": 2}, connection=redis)
    assert (again.job_id, again.created, again.status) == (enqueued.job_id, False, "finished")
    assert queue.job_queue(redis).count == 0


def test_a_failing_job_keeps_its_traceback_in_rq_and_in_job_runs(
    redis: Redis, worker_env: Database
) -> None:
    make_program(worker_env)
    enqueued = queue.enqueue(
        "clear_year", params={"program": "nowhere", "year": 2025}, connection=redis, retries=0
    )
    work(redis)

    failed = FailedJobRegistry(queue=Queue(queue.QUEUE_NAME, connection=redis))
    assert failed.get_job_ids() == [enqueued.job_id]
    job = Job.fetch(enqueued.job_id, connection=redis)
    result = job.latest_result()
    assert result is not None and result.exc_string is not None
    assert "Traceback (most recent call last)" in result.exc_string
    assert "loyalty.errors.ProgramNotFound: no program has the code 'nowhere'" in result.exc_string
    assert job.failure_ttl == 7 * 24 * 3600
    (run,) = jobs.last_runs(worker_env)
    assert (run.job, run.job_id, run.status) == ("clear_year", enqueued.job_id, "failed")
    assert run.error is not None and "Traceback (most recent call last)" in run.error
    assert run.error_line == "loyalty.errors.ProgramNotFound: no program has the code 'nowhere'"
    # RQ's copy of the traceback points to the run that recorded it
    assert result.exc_string.strip().endswith(
        f"job_runs: run {run.id} of job clear_year recorded this failure"
    )


def test_retries_are_scheduled_for_a_failing_job(redis: Redis, worker_env: Database) -> None:
    make_program(worker_env)
    enqueued = queue.enqueue("clear_year", params={"program": "nowhere"}, connection=redis)
    work(redis)
    job = Job.fetch(enqueued.job_id, connection=redis)
    assert job.get_status() == "scheduled"  # retried in a minute by the worker's scheduler
    assert job.retries_left == 1


def test_rq_cron_loads_the_schedule_from_the_cron_config_module(
    db: Database, database_url: str, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_program(db, "east", timezone="Asia/Shanghai", clearing_policy="all")
    make_program(db, "north", timezone="Europe/Berlin")  # no clearing
    monkeypatch.setenv("JIFEN_DATABASE_URL", database_url)
    scheduler = CronScheduler(connection=redis)  # what `rq cron loyalty.jobs.cron_config` does
    scheduler.load_config_from_file("loyalty.jobs.cron_config")
    registered = {j.name: j for j in scheduler.get_jobs()}
    assert {name: j.cron for name, j in registered.items()} == {
        "jifen-hold_timeouts": "* * * * *",
        "jifen-mature": "0 * * * *",
        "jifen-expire": "5 * * * *",
        "jifen-clear": "15 * * * *",
        "jifen-remind": "0 1 * * *",
        "jifen-tiers": "30 16 * * *",
        "jifen-events": "* * * * *",
        "jifen-risk": "* * * * *",
        "jifen-clear_year-east": "0 16 31 12 *",
    }
    east = registered["jifen-clear_year-east"]
    assert east.func is jobs.clear_year_job
    assert (east.queue_name, east.kwargs) == ("jifen", {"program": "east", "trigger": "cron"})
    assert east.job_options["failure_ttl"] == 7 * 24 * 3600

    # When its time comes, rq's cron enqueues the entry point under an id of its own.
    job = registered["jifen-expire"].enqueue(redis)
    try:
        work(redis)
    finally:
        jobs.dispose_worker_databases()
    assert job.get_status() == "finished"
    (run,) = jobs.last_runs(db)
    assert (run.job, run.job_id, run.trigger, run.status) == ("expire", job.id, "cron", "succeeded")


def test_a_job_asked_for_inside_a_unit_of_work_is_queued_only_after_it_commits(
    redis: Redis, redis_url: str, db: Database
) -> None:
    make_program(db)
    enrol(db, "alice")
    with unit_of_work(db) as uow:
        earn(uow, "alice", "o1", 10_000)
        queue.submit_after_commit(uow, "expire", redis_url=redis_url, job_id="jifen-expire-uow1")
        assert queue.job_queue(redis).count == 0  # not while the transaction is open
    assert Job.fetch("jifen-expire-uow1", connection=redis).get_status() == "queued"

    with pytest.raises(RuntimeError), unit_of_work(db) as uow:
        queue.submit_after_commit(uow, "expire", redis_url=redis_url, job_id="jifen-expire-uow2")
        raise RuntimeError("the door failed")
    with pytest.raises(NoSuchJobError):
        Job.fetch("jifen-expire-uow2", connection=redis)
    with pytest.raises(InvalidInput), unit_of_work(db) as uow:  # checked before commit
        queue.submit_after_commit(uow, "expire", params={"nope": 1}, redis_url=redis_url)
