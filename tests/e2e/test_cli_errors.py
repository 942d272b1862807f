"""The ``jifen`` command meets a wrong database: one line on stderr that says what to do next,
exit status 1, no traceback, and nothing created (no empty SQLite file)."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from loyalty import services as svc
from loyalty.cli import main
from loyalty.db import Database
from tests.conftest import PG_URL, require_postgres
from tests.e2e.test_cli import run

READ_COMMANDS = [
    ["verify"],
    ["forecast", "--program", "shop"],
    ["jobs"],
    ["sweep"],
    ["remind"],
    ["clear"],
    ["db", "check"],
    ["users", "list"],
    ["console"],
]


def _assert_one_line_error(result: object, *expected: str) -> None:
    stdout, stderr = result.stdout, result.stderr  # type: ignore[attr-defined]
    assert result.returncode == 1, (stdout, stderr)  # type: ignore[attr-defined]
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    for text_ in expected:
        assert text_ in lines[0], stderr


def _all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from _all_commands(command, (*prefix, name))


def test_every_command_and_subcommand_has_help(tmp_path: Path) -> None:
    commands = list(_all_commands(main))
    assert {("verify",), ("forecast",), ("db", "upgrade"), ("users", "list"), ("console",)} <= set(
        commands
    )
    installed = run("--help", cwd=tmp_path)  # the console script itself, once
    assert installed.returncode == 0 and "Usage:" in installed.stdout, installed.stderr
    runner = CliRunner()
    for command in commands:  # each command's help, in process (a process each took 2 s)
        result = runner.invoke(main, [*command, "--help"], prog_name="jifen")
        assert result.exit_code == 0, (command, result.output)
        assert "Usage: jifen" in result.output, command


@pytest.mark.parametrize("command", READ_COMMANDS, ids=" ".join)
def test_a_missing_sqlite_file_is_named_and_not_created(tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / "missing.db"
    result = run(*command, "--database-url", f"sqlite:///{path}", cwd=tmp_path)
    _assert_one_line_error(result, f"no database at {path}", "jifen db upgrade")
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["verify"], ["forecast", "--program", "shop"], ["jobs"]])
def test_a_sqlite_file_without_the_schema_says_to_upgrade(
    tmp_path: Path, command: list[str]
) -> None:
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    result = run(*command, "--database-url", f"sqlite:///{path}", cwd=tmp_path)
    _assert_one_line_error(result, "no Jifen schema", "jifen db upgrade")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("not a database")
    result = run("verify", "--database-url", f"sqlite:///{path}", cwd=tmp_path)
    _assert_one_line_error(result, "file is not a database")


@pytest.mark.parametrize(
    ("command", "path"),
    [
        (["demo", "--database", "/nope/x.db"], "/nope/x.db"),
        (["db", "upgrade", "--database-url", "sqlite:////nope/x.db"], "/nope/x.db"),
        (["console", "--demo", "--demo-database", "/nope/x.db"], "/nope/x.db"),
    ],
)
def test_a_file_in_a_missing_directory(tmp_path: Path, command: list[str], path: str) -> None:
    result = run(*command, cwd=tmp_path)
    _assert_one_line_error(result, "the directory /nope does not exist")
    assert not Path(path).exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("notaurl", "not a database URL"),
        ("mysql://someone@127.0.0.1/shop", "cannot use a 'mysql' URL"),
        ("postgresql://postgres@127.0.0.1:1/x", "Connection refused"),
    ],
)
def test_a_wrong_url_or_a_closed_port(tmp_path: Path, url: str, expected: str) -> None:
    commands = (["verify"], ["forecast", "--program", "shop"], ["users", "list"], ["db", "upgrade"])
    for command in commands:
        result = run(*command, "--database-url", url, cwd=tmp_path)
        _assert_one_line_error(result, expected)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def pg_empty_url() -> Iterator[str]:
    """A PostgreSQL database without Jifen's schema, dropped at the end."""
    require_postgres()
    name = f"jifen_cli_empty_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_a_missing_role_on_postgresql(tmp_path: Path) -> None:
    require_postgres()
    url = make_url(PG_URL).set(username="no_such_role_jifen").render_as_string()
    result = run("verify", "--database-url", url, cwd=tmp_path)
    _assert_one_line_error(result, 'role "no_such_role_jifen" does not exist', "--database-url")


@pytest.mark.parametrize("command", [["verify"], ["forecast", "--program", "shop"], ["jobs"]])
def test_postgresql_without_the_schema_says_to_upgrade(
    tmp_path: Path, pg_empty_url: str, command: list[str]
) -> None:
    result = run(*command, "--database-url", pg_empty_url, cwd=tmp_path)
    _assert_one_line_error(result, "no Jifen schema", "jifen db upgrade")


def test_postgres_urls_are_accepted(tmp_path: Path, pg_empty_url: str) -> None:
    heroku = pg_empty_url.replace("postgresql://", "postgres://", 1)
    assert heroku.startswith("postgres://")
    upgraded = run("db", "upgrade", "--database-url", heroku, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    verified = run("verify", "--database-url", heroku, cwd=tmp_path)
    assert verified.returncode == 0, verified.stderr
    assert "ledger is consistent" in verified.stdout


def test_an_unknown_program_lists_the_codes_that_exist(tmp_path: Path, database_url: str) -> None:
    database = Database.from_url(database_url)
    try:
        for code in ("shop", "cafe"):
            svc.create_program(
                database, code=code, name=code, currency="CNY", timezone="Asia/Shanghai"
            )
    finally:
        database.dispose()
    for command in (["forecast"], ["remind"], ["clear"], ["console"]):
        result = run(*command, "--program", "nope", "--database-url", database_url, cwd=tmp_path)
        _assert_one_line_error(
            result, "no program has the code 'nope'", "the programs here are: cafe, shop"
        )
