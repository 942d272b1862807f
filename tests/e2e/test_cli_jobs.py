"""The job commands as a user runs them, inline without Redis: sweep, remind, clear, jobs."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from loyalty import migrate
from loyalty import services as s
from loyalty.cli import main
from loyalty.db import Database
from loyalty.domain.calendar import last_clearing_year
from loyalty.domain.clock import FixedClock

JIFEN = [sys.executable, "-m", "loyalty.cli"]
TZ = "Asia/Shanghai"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("JIFEN_")}
    environment["COLUMNS"] = "200"
    return subprocess.run(
        [*JIFEN, *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=120
    )


def rows(output: str) -> dict[str, list[str]]:
    """The rows of the tables printed, by their first cell (the job)."""
    found = {}
    for line in output.splitlines():
        if line.startswith("│"):
            cells = [c.strip() for c in line.strip("│").split("│")]
            found.setdefault(cells[0], cells)
    return found


@pytest.fixture
def due(tmp_path: Path) -> str:
    """A SQLite database where every job has work: a timed-out hold, pending points that
    matured, a lot that expired and a year-end clearing that passed."""
    url = f"sqlite:///{tmp_path / 'jifen.db'}"
    migrate.upgrade(url)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    clock = FixedClock(now - dt.timedelta(days=400))
    db = Database.from_url(url, clock=clock)
    try:
        s.create_program(
            db,
            code="year-end",
            name="Y",
            currency="CNY",
            timezone=TZ,
            rules={"expiry": None},
            clearing_policy="all",
        )
        s.enrol_member(db, program="year-end", external_id="alice")
        s.earn_purchase(
            db, program="year-end", member="alice", order_id="y1", currency="CNY",
            amount_minor=30_000,
        )  # fmt: skip
        s.hold_points(
            db, program="year-end", member="alice", order_id="h1", points=40,
            order_total_minor=1_000_000, currency="CNY",
        )  # fmt: skip
        s.create_program(
            db,
            code="shop",
            name="Shop",
            currency="CNY",
            timezone=TZ,
            rules={"pending_days": 7, "expiry": {"days": 10}},
        )
        s.enrol_member(db, program="shop", external_id="bob")
        clock.set(now - dt.timedelta(days=20))
        s.earn_purchase(
            db, program="shop", member="bob", order_id="o1", currency="CNY", amount_minor=10_000
        )
    finally:
        db.dispose()
    return url


@pytest.mark.parametrize("command", ["worker", "cron", "sweep", "remind", "clear", "jobs"])
def test_every_job_command_has_help(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])  # in-process: help needs no setup
    assert result.exit_code == 0, result.output
    assert "Usage: main" in result.output and "--database-url" in result.output
    if command != "jobs":
        assert "--redis-url" in result.output


def test_sweep_remind_clear_and_jobs_run_inline_and_are_recorded(tmp_path: Path, due: str) -> None:
    db = ["--database-url", due]
    swept = run("sweep", *db, cwd=tmp_path)
    assert swept.returncode == 0, swept.stderr
    table = rows(swept.stdout)
    # job, run, status, items, points, batches, took, details
    assert table["hold_timeouts"][2:5] == ["succeeded", "1", "40"]
    assert table["mature"][2:5] == ["succeeded", "1", "100"]
    assert table["expire"][2:5] == ["succeeded", "1", "100"]
    again = rows(run("sweep", "--only", "expire", *db, cwd=tmp_path).stdout)
    assert list(again) == ["expire"] and again["expire"][2:4] == ["succeeded", "0"]

    reminded = run("remind", "--days", "366", *db, cwd=tmp_path)
    assert reminded.returncode == 0, reminded.stderr
    assert "created" in rows(reminded.stdout)["remind"][-1]

    cleared = run("clear", *db, cwd=tmp_path)
    assert cleared.returncode == 0, cleared.stderr
    year = last_clearing_year(dt.datetime.now(dt.UTC), TZ, 12, 31)
    line = rows(cleared.stdout)["clear"]
    assert line[2:5] == ["succeeded", "1", "300"]
    assert f"year-end {year}: done" in line[-1]

    refused = run("clear", "--program", "shop", *db, cwd=tmp_path)
    assert refused.returncode == 1
    assert "clearing_policy is 'none'" in refused.stderr and "Traceback" not in refused.stderr

    listed = run("jobs", *db, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "Last job runs" in listed.stdout
    runs = rows(listed.stdout)
    assert runs["expire"][2:4] == ["succeeded", "cli"]  # the newest expire run first
    assert runs["clear_year"][2] == "failed"
    assert (
        "loyalty.errors.InvalidRule: program 'shop' has no year-end clearing"
        in runs["clear_year"][-1]
    )
    assert set(runs) >= {"hold_timeouts", "mature", "expire", "remind", "clear", "clear_year"}

    schedule = run("cron", "--print", *db, cwd=tmp_path)
    assert schedule.returncode == 0, schedule.stderr
    entries = rows(schedule.stdout)
    assert entries["jifen-clear_year-year-end"][1] == "0 16 31 12 *"
    assert entries["jifen-clear_year-year-end"][3].endswith("00:00 Asia/Shanghai")
    assert "jifen-clear_year-shop" not in entries  # no clearing
    assert entries["jifen-expire"][1] == "5 * * * *"

    database = Database.from_url(due)
    try:
        assert s.verify_ledger(database).ok
    finally:
        database.dispose()


def test_job_command_errors_say_what_to_do_next(tmp_path: Path, due: str) -> None:
    db = ["--database-url", due]
    checks = [
        (["sweep", "--enqueue", *db], 1, "no Redis URL: pass --redis-url"),
        (["worker", "--redis-url", "redis://127.0.0.1:1/0", *db], 1, "cannot reach Redis"),
        (["jobs"], 1, "JIFEN_DATABASE_URL"),
        (["clear", "--year", "2025", *db], 2, "--year needs --program"),
        (
            ["sweep", "--database-url", f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}"],
            1,
            "no database at",
        ),
    ]
    for args, status, message in checks:
        result = run(*args, cwd=tmp_path)
        assert result.returncode == status, (args, result.stdout, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
