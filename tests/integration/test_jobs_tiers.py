"""The ``tiers`` job (the tier evaluation sweep) through the job runner, on SQLite and
PostgreSQL: its figures and progress in ``job_runs``, one program or all, a refused
program, and its place in the daily schedule and the console's "Run now"."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from helpers import PROGRAM, earn, enrol, local, make_program

from loyalty import jobs
from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.errors import ProgramNotFound
from loyalty.jobs.schedule import build_schedule
from loyalty.jobs.specs import console_jobs
from loyalty.services.results import SweepResult

LADDER: dict[str, Any] = {
    "tiers": [
        {"code": "member", "name": "普通", "threshold": 0},
        {"code": "silver", "name": "银卡", "threshold": 1_000, "multiplier": "1.5"},
        {"code": "gold", "name": "金卡", "threshold": 5_000, "multiplier": "2"},
    ],
    "window": "rolling",
    "window_months": 12,
    "anchor": "upgrade",
    "period_months": 12,
}
A_YEAR_ON = local(2027, 3, 2, 12)  # past the end of every period that began on 1 March 2026


def seed_tiers(db: Database, clock: FixedClock, program: str = PROGRAM) -> None:
    """On 1 March 2026 Alice earns to gold and Bob to silver; Carol earns nothing (the lowest
    tier is never evaluated)."""
    clock.set(local(2026, 3, 1, 10))
    make_program(db, code=program, rules={"base_ratio": "1"})
    s.publish_tiers(db, program=program, rules=LADDER, created_by="test")
    enrol(db, "alice", "bob", "carol", program=program)
    earn(db, "alice", "a-1", 600_000, program=program)
    earn(db, "bob", "b-1", 150_000, program=program)


def test_the_tiers_job_evaluates_the_due_members_batch_by_batch(
    db: Database, clock: FixedClock
) -> None:
    seed_tiers(db, clock)
    clock.set(A_YEAR_ON)
    seen: list[int] = []

    def watch(totals: SweepResult) -> None:
        (run,) = jobs.last_runs(db, limit_per_job=1, jobs=["tiers"])
        assert run.status == "running" and run.items == totals.items
        seen.append(totals.items)

    run = jobs.run_job(db, "tiers", trigger="test", batch_size=1, on_progress=watch)

    assert (run.job, run.status, run.items, run.points, run.batches) == (
        "tiers",
        "succeeded",
        2,
        0,
        2,
    )
    assert seen == [1, 2]
    assert run.details == {
        "params": {"batch_size": 1},
        "up": 0,
        "kept": 2,
        "down": 0,
        "warned": 0,  # tier.will_downgrade warnings sent after the sweep
    }
    for member, tier in (("alice", "gold"), ("bob", "silver")):
        (latest, *_) = s.tier_history(db, program=PROGRAM, member=member)
        assert (latest.reason, latest.from_tier, latest.to_tier) == ("evaluation", tier, tier)
    again = jobs.run_job(db, "tiers", trigger="test")  # nothing due any more
    assert (again.status, again.items, again.batches) == ("succeeded", 0, 0)
    report = s.verify_ledger(db)
    assert report.ok, [c for c in report.checks if not c.ok]


def test_the_tiers_job_catches_up_and_moves_down_when_the_window_holds_too_little(
    db: Database, clock: FixedClock
) -> None:
    seed_tiers(db, clock)
    clock.set(local(2028, 3, 5, 12))  # two periods on: the missed evaluation comes first
    run = jobs.run_job(db, "tiers", trigger="test", program=PROGRAM)
    assert (run.status, run.items) == ("succeeded", 4)
    assert (run.details["up"], run.details["kept"], run.details["down"]) == (0, 2, 2)
    progress = {
        m: s.tier_progress(db, program=PROGRAM, member=m).tier for m in ("alice", "bob", "carol")
    }
    assert progress == {"alice": "silver", "bob": "member", "carol": "member"}  # one step down
    assert s.verify_ledger(db).ok


def test_the_tiers_job_can_keep_to_one_program(db: Database, clock: FixedClock) -> None:
    seed_tiers(db, clock)
    seed_tiers(db, clock, program="other")
    clock.set(A_YEAR_ON)
    only = jobs.run_job(db, "tiers", trigger="test", program="other")
    assert (only.items, only.details["kept"]) == (2, 2)
    rest = jobs.run_job(db, "tiers", trigger="test")
    assert rest.items == 2  # the shop's, left for this run
    with pytest.raises(ProgramNotFound):
        jobs.run_job(db, "tiers", trigger="test", program="nowhere")
    (failed, *_) = jobs.last_runs(db, limit_per_job=5, jobs=["tiers"])
    assert (failed.status, failed.items) == ("failed", 0)
    assert failed.error_line is not None and "ProgramNotFound" in failed.error_line


def test_the_tiers_job_is_scheduled_daily_and_may_run_from_the_console() -> None:
    now = dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.UTC)
    (entry,) = [e for e in build_schedule([], now) if e.job == "tiers"]
    assert (entry.name, entry.cron) == ("jifen-tiers", "30 16 * * *")  # 00:30 in Shanghai
    assert entry.next_run_at == dt.datetime(2026, 11, 21, 16, 30, tzinfo=dt.UTC)
    assert "tiers" in console_jobs()
    assert jobs.job_spec("tiers").with_defaults({}) == {"program": None, "batch_size": 500}
