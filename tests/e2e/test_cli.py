"""The ``jifen`` command as a user runs it: in a subprocess, in a fresh directory."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

JIFEN = [sys.executable, "-m", "loyalty.cli"]


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "JIFEN_DATABASE_URL"}
    environment.update(env or {})
    environment["COLUMNS"] = "200"
    return subprocess.run(
        [*JIFEN, *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    "command", [[], ["db"], ["db", "upgrade"], ["db", "check"], ["demo"], ["verify"]]
)
def test_every_command_has_help(tmp_path: Path, command: list[str]) -> None:
    result = run(*command, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout


def test_demo_creates_a_database_and_prints_balances_and_history(tmp_path: Path) -> None:
    result = run("demo", "--members", "6", "--orders", "60", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Balances of the top earners" in result.stdout
    assert "Latest history of " in result.stdout
    assert "ledger check: consistent" in result.stdout
    assert (tmp_path / "jifen-demo.db").is_file()
    again = run("demo", cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr


def test_verify_passes_on_the_demo_and_fails_on_a_corrupted_copy(tmp_path: Path) -> None:
    assert run("demo", "--members", "4", "--orders", "30", cwd=tmp_path).returncode == 0
    url = f"sqlite:///{tmp_path / 'jifen-demo.db'}"
    clean = run("verify", "--database-url", url, cwd=tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "ledger is consistent" in clean.stdout

    with sqlite3.connect(tmp_path / "jifen-demo.db") as conn:
        conn.execute("UPDATE members SET available = available + 7 WHERE id = 1")
    broken = run("verify", "--database-url", url, cwd=tmp_path)
    assert broken.returncode == 1
    assert "members_equal_lots" in broken.stdout and "NOT consistent" in broken.stdout


def test_db_upgrade_then_check(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgraded = run("db", "upgrade", cwd=tmp_path, env={"JIFEN_DATABASE_URL": url})
    assert upgraded.returncode == 0, upgraded.stderr
    checked = run("db", "check", "--database-url", url, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr


def test_missing_database_url_says_what_to_do(tmp_path: Path) -> None:
    result = run("verify", cwd=tmp_path)
    assert result.returncode == 1
    assert "JIFEN_DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr
