"""``jifen forecast`` as a user runs it: in a subprocess, against a database with due points."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from loyalty import migrate
from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock

JIFEN = [sys.executable, "-m", "loyalty.cli"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "JIFEN_DATABASE_URL"}
    environment["COLUMNS"] = "200"
    return subprocess.run(
        [*JIFEN, *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def shop(tmp_path: Path) -> tuple[str, dt.datetime]:
    """A SQLite database whose lots, earned five days ago, expire in five days."""
    url = f"sqlite:///{tmp_path / 'jifen.db'}"
    migrate.upgrade(url)
    earned = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=5)
    db = Database.from_url(url, clock=FixedClock(earned))
    try:
        s.create_program(
            db,
            code="shop",
            name="Shop",
            currency="CNY",
            timezone="Asia/Shanghai",
            rules={"expiry": {"days": 10}},
        )
        for n, member in enumerate(("alice", "bob")):
            s.enrol_member(db, program="shop", external_id=member)
            s.earn_purchase(
                db,
                program="shop",
                member=member,
                order_id=f"o{n}",
                currency="CNY",
                amount_minor=10_000 * (n + 1),
            )
    finally:
        db.dispose()
    return url, earned + dt.timedelta(days=10)


def test_forecast_has_help(tmp_path: Path) -> None:
    result = run("forecast", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
    for option in ("--program", "--days", "--member", "--database-url"):
        assert option in result.stdout


def test_forecast_prints_a_row_per_date_and_the_total(
    tmp_path: Path, shop: tuple[str, dt.datetime]
) -> None:
    url, expires = shop
    result = run("forecast", "--program", "shop", "--database-url", url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    day = expires.astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()
    assert "Points ending in shop" in result.stdout
    assert day in result.stdout
    assert "total: 300 points in 2 lots" in result.stdout

    short = run("forecast", "--program", "shop", "--days", "3", "--database-url", url, cwd=tmp_path)
    assert short.returncode == 0, short.stderr
    assert "total: 0 points in 0 lots" in short.stdout


def test_forecast_of_one_member(tmp_path: Path, shop: tuple[str, dt.datetime]) -> None:
    url, expires = shop
    result = run(
        "forecast", "--program", "shop", "--member", "bob", "--database-url", url, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    when = expires.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M")
    assert "By instant, for bob" in result.stdout
    assert when in result.stdout and "expires" in result.stdout
    assert "total: 200 points in 1 lots" in result.stdout


def test_forecast_errors_say_what_to_do(tmp_path: Path, shop: tuple[str, dt.datetime]) -> None:
    url, _expires = shop
    unknown = run("forecast", "--program", "nope", "--database-url", url, cwd=tmp_path)
    assert unknown.returncode == 1
    assert "no program has the code 'nope'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    member = run(
        "forecast", "--program", "shop", "--member", "carol", "--database-url", url, cwd=tmp_path
    )
    assert member.returncode == 1 and "no member 'carol'" in member.stderr
    assert run("forecast", "--program", "shop", "--days", "-1", cwd=tmp_path).returncode == 2
    assert run("forecast", cwd=tmp_path).returncode == 2
