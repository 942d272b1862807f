"""Every program in ``examples/`` runs as a user would run it, on SQLite and on PostgreSQL.

Each example runs as a subprocess against a fresh database migrated by ``jifen db upgrade``
(the URL as its argument on SQLite, in ``$JIFEN_DATABASE_URL`` on PostgreSQL), twice: the
second run must replay and print the same figures. Then ``jifen verify`` must be clean.
``stripe_webhook.py`` hosts a web endpoint: ``test_example_stripe_webhook.py`` runs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
# test_example_stripe_webhook.py, test_example_webhook_receiver.py
TESTED_ELSEWHERE = {"stripe_webhook.py", "webhook_receiver.py"}
BIN = Path(sys.executable).parent

# What each example must print (figures a reader can check by hand), on every run.
EXPECTED = {
    "checkout.py": [
        "Earlier order EX-1000 earned 2598 points",
        "  Total                                    405.00 CNY",
        "This order earns 454 points",
        "Held 2000 points = 20.00 CNY off",
        "charging 385.00 CNY to the card",
        "Payment succeeded: hold captured",
        "Order EX-1001 earned 431 points (the part paid with points earns nothing)",
        "Refunded 150.19 CNY for the coffee: 168 earned points taken back, "
        "780 spent points given back (succeeded)",
        "Balance of cust-1001: 1641 points available, 0 frozen, 0 owed, 3029 earned in all",
        "refund_reverse     -168  refund-succeeded:RF-1001-1",
        "capture           -2000  capture:EX-1001",
    ],
}
# Printed on the first run only: the second one sees the points already spent.
FIRST_RUN_ONLY = {
    "checkout.py": ["You have 2598 points; up to 2598 of them (25.98 CNY) can pay for this order"],
}


def examples() -> list[Path]:
    """The examples this module runs."""
    return sorted(p for p in EXAMPLES.glob("*.py") if p.name not in TESTED_ELSEWHERE)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "JIFEN_DATABASE_URL"}
    return {**env, **extra}


def jifen(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "jifen"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env or clean_env(),
    )


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_url(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, dict[str, str], list[str]]]:
    """A fresh database migrated by ``jifen db upgrade``: (URL, environment, arguments)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shop.db'}"
        done = jifen("db", "upgrade", "--database-url", url)
        assert done.returncode == 0, done.stderr
        yield url, clean_env(), [url]
        return
    pg_url: str = request.getfixturevalue("pg_url")  # skips, or fails under CI=true
    name = f"jifen_examples_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    env = clean_env(JIFEN_DATABASE_URL=url)
    try:
        done = jifen("db", "upgrade", env=env)
        assert done.returncode == 0, done.stderr
        yield url, env, []
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run(example: Path, env: dict[str, str], args: list[str], cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, str(example), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_there_is_an_example_to_run() -> None:
    assert [p.name for p in examples()][:1] == ["checkout.py"]


@pytest.mark.parametrize("example", examples(), ids=lambda p: p.name)
def test_example_runs_twice_and_the_ledger_verifies(
    example: Path, fresh_url: tuple[str, dict[str, str], list[str]], tmp_path: Path
) -> None:
    url, env, args = fresh_url
    first = run(example, env, args, tmp_path)
    for line in EXPECTED.get(example.name, []) + FIRST_RUN_ONLY.get(example.name, []):
        assert line in first, f"{line!r} missing from:\n{first}"
    assert "(replayed)" not in first

    second = run(example, env, args, tmp_path)
    for line in EXPECTED.get(example.name, []):
        assert line in second, f"{line!r} missing from the second run:\n{second}"
    if example.name == "checkout.py":
        assert second.count("(replayed)") == 5  # earlier order, hold, capture, earn, refund

    verified = jifen("verify", "--database-url", url)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "ledger is consistent" in verified.stdout


def test_checkout_without_the_schema_says_to_run_db_upgrade(tmp_path: Path) -> None:
    missing = tmp_path / "not-yet.db"
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "checkout.py"), f"sqlite:///{missing}"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "jifen db upgrade" in result.stderr
    assert "Traceback" not in result.stderr
    assert not missing.exists()


def test_checkout_without_a_database_url_says_where_to_put_it(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "checkout.py")],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "pass a database URL or set JIFEN_DATABASE_URL" in result.stderr
    assert "usage: python examples/checkout.py [DATABASE_URL]" in result.stderr
