"""The schedule: fixed sweeps, and each program's year-end clearing as a UTC cron string."""

from __future__ import annotations

import datetime as dt

import pytest
from croniter import croniter

from loyalty import jobs
from loyalty.jobs.rq import FAILURE_TTL, QUEUE_NAME, cron_options
from loyalty.jobs.schedule import ProgramClearing, build_schedule, clearing_entry

NOW = dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.UTC)

PROGRAMS = [
    ProgramClearing("utc", "UTC", "all"),
    ProgramClearing("shanghai", "Asia/Shanghai", "all"),
    ProgramClearing("berlin", "Europe/Berlin", "before_cutoff"),
    ProgramClearing("kiritimati", "Pacific/Kiritimati", "all"),  # UTC+14
    ProgramClearing("off", "Asia/Shanghai", "none"),
]


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def test_the_schedule_of_programs_in_several_time_zones() -> None:
    schedule = build_schedule(PROGRAMS, NOW)
    assert [(e.name, e.job, e.cron, e.next_run_at, e.params) for e in schedule] == [
        ("jifen-hold_timeouts", "hold_timeouts", "* * * * *", at(2026, 11, 21, 10, 1), {}),
        ("jifen-events", "events", "* * * * *", at(2026, 11, 21, 10, 1), {}),
        ("jifen-risk", "risk", "* * * * *", at(2026, 11, 21, 10, 1), {}),
        ("jifen-mature", "mature", "0 * * * *", at(2026, 11, 21, 11, 0), {}),
        ("jifen-expire", "expire", "5 * * * *", at(2026, 11, 21, 10, 5), {}),
        ("jifen-clear", "clear", "15 * * * *", at(2026, 11, 21, 10, 15), {}),
        ("jifen-remind", "remind", "0 1 * * *", at(2026, 11, 22, 1, 0), {}),
        ("jifen-tiers", "tiers", "30 16 * * *", at(2026, 11, 21, 16, 30), {}),
        # the end of 31 December, local: midnight starting 1 January
        ("jifen-clear_year-berlin", "clear_year", "0 23 31 12 *", at(2026, 12, 31, 23, 0),
         {"program": "berlin"}),
        ("jifen-clear_year-kiritimati", "clear_year", "0 10 31 12 *", at(2026, 12, 31, 10, 0),
         {"program": "kiritimati"}),
        ("jifen-clear_year-shanghai", "clear_year", "0 16 31 12 *", at(2026, 12, 31, 16, 0),
         {"program": "shanghai"}),
        ("jifen-clear_year-utc", "clear_year", "0 0 1 1 *", at(2027, 1, 1, 0, 0),
         {"program": "utc"}),
    ]  # fmt: skip
    clearing = {e.program: e for e in schedule if e.program}
    assert "off" not in clearing  # clearing_policy 'none': no entry
    assert clearing["shanghai"].timezone == "Asia/Shanghai"
    assert {e.job for e in schedule} <= set(jobs.JOB_NAMES)


def test_rq_reads_every_cron_string_as_its_next_run() -> None:
    """rq evaluates cron strings in UTC with croniter: it must agree with ``next_run_at``."""
    for now in (NOW, at(2026, 12, 31, 23, 59), at(2027, 6, 30, 0, 0)):
        for entry in build_schedule(PROGRAMS, now):
            assert croniter(entry.cron, now).get_next(dt.datetime) == entry.next_run_at, entry


@pytest.mark.parametrize(
    ("program", "now", "cron", "moment"),
    [
        # Daylight saving time: the coming moment's offset counts. Europe/Berlin switches to
        # CEST on the last Sunday of March: 29 March 2026, 28 March 2027.
        (ProgramClearing("b", "Europe/Berlin", "all", 3, 28), at(2026, 1, 10), "0 23 28 3 *",
         at(2026, 3, 28, 23, 0)),  # ends at midnight CET (UTC+1)
        (ProgramClearing("b", "Europe/Berlin", "all", 3, 28), NOW, "0 22 28 3 *",
         at(2027, 3, 28, 22, 0)),  # ends at midnight CEST (UTC+2)
        (ProgramClearing("b", "Europe/Berlin", "all", 6, 30), NOW, "0 22 30 6 *",
         at(2027, 6, 30, 22, 0)),
        (ProgramClearing("k", "Asia/Kolkata", "all"), NOW, "30 18 31 12 *",
         at(2026, 12, 31, 18, 30)),  # UTC+5:30
        (ProgramClearing("f", "UTC", "all", 2, 29), NOW, "0 0 1 3 *",
         at(2027, 3, 1, 0, 0)),  # 2027 has no 29 February: the end of the 28th
        # At the moment itself, the next one is a year later.
        (ProgramClearing("s", "Asia/Shanghai", "all"), at(2026, 12, 31, 16, 0), "0 16 31 12 *",
         at(2027, 12, 31, 16, 0)),
    ],
)  # fmt: skip
def test_a_clearing_runs_at_its_coming_moment(
    program: ProgramClearing, now: dt.datetime, cron: str, moment: dt.datetime
) -> None:
    entry = clearing_entry(program, now)
    assert (entry.cron, entry.next_run_at) == (cron, moment)
    assert croniter(entry.cron, now).get_next(dt.datetime) == moment


def test_cron_options_register_the_jobs_entry_point_with_its_limits() -> None:
    entries = {e.job: e for e in build_schedule(PROGRAMS[:1], NOW)}
    options = cron_options(entries["clear_year"])
    assert options["func"] is jobs.clear_year_job
    assert options["queue_name"] == QUEUE_NAME
    assert options["kwargs"] == {"program": "utc", "trigger": "cron"}
    assert options["cron"] == "0 0 1 1 *"
    assert options["name"] == "jifen-clear_year-utc"
    assert options["failure_ttl"] == FAILURE_TTL == 7 * 24 * 3600
    assert options["job_timeout"] > 0 and "timeout" not in options
    assert cron_options(entries["expire"])["func"] is jobs.expire_job
