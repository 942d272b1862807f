"""Jobs and their ``job_runs`` records, on SQLite and PostgreSQL: progress, failure, abandon."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from helpers import PROGRAM, earn, enrol, hold, make_program, scalar
from sqlalchemy import insert

from loyalty import jobs
from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.errors import InvalidInput, ProgramNotFound
from loyalty.services.results import SweepResult

EXPIRES = dt.datetime(2027, 2, 21, 10, 0, tzinfo=dt.UTC)  # three months after the test clock
MOMENT = dt.datetime(2026, 12, 31, 16, 0, tzinfo=dt.UTC)  # end of 31 Dec 2026 in Shanghai
NEVER = {"expiry": None}


def seed_lots(db: Database, *, alice: int = 3, bob: int = 2, **settings: Any) -> None:
    """Alice and Bob with one 100-point lot per order."""
    make_program(db, **settings)
    enrol(db, "alice", "bob")
    for member, count in (("alice", alice), ("bob", bob)):
        for n in range(count):
            earn(db, member, f"{member}-{n}", 10_000)


def job_run_count(db: Database) -> int:
    return int(scalar(db, "SELECT count(*) FROM job_runs"))


def test_a_run_is_recorded_as_running_then_succeeded_with_its_figures(
    db: Database, clock: FixedClock
) -> None:
    seed_lots(db)
    clock.set(EXPIRES)
    started = clock.now()
    during: list[tuple[SweepResult, jobs.JobRunInfo]] = []

    def watch(totals: SweepResult) -> None:
        (run,) = jobs.last_runs(db, limit_per_job=1, jobs=["expire"])
        during.append((totals, run))
        clock.advance(dt.timedelta(minutes=1))  # so each heartbeat is later than the last

    run = jobs.run_job(
        db, "expire", trigger="test", job_id="rq-job-1", batch_size=2, on_progress=watch
    )

    assert (run.job, run.job_id, run.trigger, run.status) == (
        "expire",
        "rq-job-1",
        "test",
        "succeeded",
    )
    assert (run.items, run.points, run.batches) == (5, 500, 3)
    assert run.started_at == started
    assert run.finished_at == clock.now()
    assert run.error is None
    assert run.details == {"params": {"batch_size": 2}}
    # After each committed batch the row was still running, with the totals and a heartbeat.
    assert [t.items for t, _ in during] == [2, 4, 5]
    for n, (totals, row) in enumerate(during):
        assert row.id == run.id and row.status == "running" and row.finished_at is None
        assert (row.items, row.points, row.batches) == (totals.items, totals.points, n + 1)
        assert row.heartbeat_at == started + dt.timedelta(minutes=n)
    assert jobs.get_run(db, run.id) == run
    again = jobs.run_job(db, "expire", trigger="test")  # safe to run twice: nothing left
    assert (again.status, again.items, again.batches) == ("succeeded", 0, 0)
    assert s.verify_ledger(db).ok


def test_a_failing_job_records_its_traceback_and_re_raises(db: Database, clock: FixedClock) -> None:
    make_program(db)
    with pytest.raises(ProgramNotFound):
        jobs.run_job(db, "clear_year", trigger="test", program="nowhere", year=2025)
    (run,) = jobs.last_runs(db)
    assert (run.job, run.status, run.items) == ("clear_year", "failed", 0)
    assert run.error is not None
    assert run.error.startswith("Traceback (most recent call last):")
    assert "loyalty/services/clearing.py" in run.error  # the full traceback, not just a line
    assert run.error_line is not None and run.error_line.startswith(
        "loyalty.errors.ProgramNotFound:"
    )
    assert run.finished_at == clock.now()


def test_a_job_failing_mid_way_keeps_the_figures_of_the_batches_that_committed(
    db: Database, clock: FixedClock
) -> None:
    seed_lots(db)
    clock.set(EXPIRES)

    def fail_on_the_second_batch(totals: SweepResult) -> None:
        if totals.batches == 2:
            raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError, match="went away"):
        jobs.run_job(
            db, "expire", trigger="test", batch_size=2, on_progress=fail_on_the_second_batch
        )
    (run,) = jobs.last_runs(db)
    assert (run.status, run.items, run.points, run.batches) == ("failed", 4, 400, 2)
    assert run.error_line == "RuntimeError: the database went away"
    assert int(scalar(db, "SELECT count(*) FROM entries WHERE kind = 'expire'")) == 4
    finished = jobs.run_job(db, "expire", trigger="test")  # the next run carries on
    assert (finished.status, finished.items) == ("succeeded", 1)
    assert s.verify_ledger(db).ok


def _running(db: Database, job: str, heartbeat_at: dt.datetime) -> int:
    """A run left ``running`` by a worker that was killed (it never wrote again)."""
    with db.write() as conn:
        return int(
            conn.execute(
                insert(jobs.job_runs)
                .values(
                    job=job,
                    job_id="killed",
                    trigger="queue",
                    status="running",
                    items=7,
                    points=70,
                    batches=1,
                    details={"params": {}},
                    started_at=heartbeat_at - dt.timedelta(minutes=1),
                    heartbeat_at=heartbeat_at,
                )
                .returning(jobs.job_runs.c.id)
            ).scalar_one()
        )


def test_stale_running_runs_of_the_same_job_are_marked_abandoned(
    db: Database, clock: FixedClock
) -> None:
    make_program(db)
    now = clock.now()
    killed = _running(db, "expire", now - dt.timedelta(minutes=11))
    alive = _running(db, "expire", now - dt.timedelta(minutes=9))  # may still be working
    other = _running(db, "mature", now - dt.timedelta(hours=2))  # another job: its own runs

    run = jobs.run_job(db, "expire", trigger="test")

    assert run.details["abandoned_runs"] == [killed]
    marked = jobs.get_run(db, killed)
    assert (marked.status, marked.error) == ("failed", jobs.ABANDONED)
    assert marked.error == (
        "abandoned: the worker stopped without finishing (killed or crashed); "
        "the next run carried on"
    )
    assert marked.finished_at == now - dt.timedelta(minutes=11)  # its last sign of life
    assert (marked.items, marked.points) == (7, 70)  # what it did before it died stays
    assert jobs.get_run(db, alive).status == "running"
    assert jobs.get_run(db, other).status == "running"

    clock.advance(dt.timedelta(minutes=5))
    shorter = jobs.run_job(db, "expire", trigger="test", stale_after=dt.timedelta(minutes=1))
    assert shorter.details["abandoned_runs"] == [alive]
    assert jobs.get_run(db, alive).status == "failed"
    assert jobs.get_run(db, run.id).status == "succeeded"  # finished runs are never touched


def test_last_runs_gives_the_latest_runs_of_each_job_newest_first(
    db: Database, clock: FixedClock
) -> None:
    make_program(db)
    ids = {}
    for n, name in enumerate(["mature", "expire", "expire", "expire", "remind"]):
        clock.advance(dt.timedelta(minutes=1))
        ids[(name, n)] = jobs.run_job(db, name, trigger="test").id
    assert jobs.last_runs(db, limit_per_job=10) == jobs.last_runs(db)  # 5 by default
    latest = jobs.last_runs(db, limit_per_job=2)
    assert [(r.job, r.id) for r in latest] == [
        ("expire", ids[("expire", 3)]),
        ("expire", ids[("expire", 2)]),
        ("mature", ids[("mature", 0)]),
        ("remind", ids[("remind", 4)]),
    ]
    assert [r.job for r in jobs.last_runs(db, jobs=["mature"])] == ["mature"]
    assert all(r.duration == dt.timedelta(0) for r in latest)
    with pytest.raises(InvalidInput, match="unknown job 'nope'"):
        jobs.last_runs(db, jobs=["nope"])


def test_unknown_jobs_and_parameters_are_refused_before_anything_is_written(db: Database) -> None:
    make_program(db)
    with pytest.raises(InvalidInput, match="unknown job 'sweep'; the jobs are expire, mature"):
        jobs.run_job(db, "sweep", trigger="test")
    with pytest.raises(InvalidInput, match="job 'expire' takes batch_size; not colour"):
        jobs.run_job(db, "expire", trigger="test", colour="red")
    with pytest.raises(InvalidInput, match="string, an integer or None"):
        jobs.run_job(db, "expire", trigger="test", batch_size=1.5)
    with pytest.raises(InvalidInput, match="trigger"):
        jobs.run_job(db, "expire", trigger="")
    assert job_run_count(db) == 0


def test_every_job_runs_its_service_and_records_what_it_did(
    db: Database, clock: FixedClock
) -> None:
    make_program(db, rules={"pending_days": 7, "expiry": None}, hold_timeout_seconds=60)
    make_program(db, "year-end", rules=NEVER, clearing_policy="all")
    enrol(db, "alice")
    enrol(db, "alice", program="year-end")
    earn(db, "alice", "p1", 10_000)  # pending for 7 days
    earn(db, "alice", "c1", 20_000, program="year-end")
    earn(db, "alice", "c2", 30_000, program="year-end")
    hold(db, "alice", "h1", 40, program="year-end")

    clock.advance(dt.timedelta(days=8))
    holds = jobs.run_job(db, "hold_timeouts", trigger="test")
    assert (holds.items, holds.points, holds.batches) == (1, 40, 1)
    mature = jobs.run_job(db, "mature", trigger="test")
    assert (mature.items, mature.points) == (1, 100)

    remind = jobs.run_job(db, "remind", trigger="test", program="year-end", days=366)
    assert (remind.items, remind.details["created"], remind.details["already_sent"]) == (1, 1, 0)
    assert jobs.run_job(db, "remind", trigger="test", days=366).details["already_sent"] == 1

    nothing = jobs.run_job(db, "clear", trigger="test")
    assert (nothing.items, nothing.details["clearings"]) == (0, [])
    clock.set(MOMENT)
    clear = jobs.run_job(db, "clear", trigger="test", batch_size=1)
    assert (clear.items, clear.points, clear.batches) == (2, 500, 2)
    (clearing,) = clear.details["clearings"]
    assert (clearing["program"], clearing["year"], clearing["status"]) == ("year-end", 2026, "done")
    assert clearing["replayed"] is False
    again = jobs.run_job(db, "clear_year", trigger="test", program="year-end", year=2026)
    assert (again.status, again.items) == ("succeeded", 0)
    assert again.details["clearings"][0]["replayed"] is True
    assert s.balance(db, program="year-end", member="alice").available == 0
    assert s.balance(db, program=PROGRAM, member="alice").available == 100
    assert {r.status for r in jobs.last_runs(db, limit_per_job=10)} == {"succeeded"}
    assert s.verify_ledger(db).ok


def test_the_rq_entry_points_take_their_database_from_the_environment(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JIFEN_DATABASE_URL", database_url)
    try:
        result = jobs.expire_job(batch_size=10)  # outside RQ: no current job, no job id
        assert (result["job"], result["status"], result["trigger"]) == (
            "expire",
            "succeeded",
            "queue",
        )
        assert result["job_id"] is None and result["details"] == {"params": {"batch_size": 10}}
        assert jobs.worker_database() is jobs.worker_database()  # one per process
        cleared = jobs.clear_job(trigger="cron")
        assert (cleared["job"], cleared["trigger"]) == ("clear", "cron")
    finally:
        jobs.dispose_worker_databases()
