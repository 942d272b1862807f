"""``jifen keys``: a key is printed once and never listed; statuses, revoking by prefix or id,
the origins, and errors that say what to do next (exit 1; 2 for a usage mistake). Every test
runs on SQLite and on PostgreSQL, through the ``jifen`` group as installed (entry points)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

from loyalty.cli import main
from loyalty.cli.render import console
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.errors import NotAuthenticated
from loyalty.services import api_keys, list_audit
from tests.integration.helpers import PROGRAM, make_program

SECRET = re.compile(r"jfn_sk_[A-Za-z0-9_-]{40,}")


@pytest.fixture
def url(database_url: str) -> Iterator[str]:
    """A migrated database with the program ``shop`` (Asia/Shanghai)."""
    database = Database.from_url(database_url)
    make_program(database)
    database.dispose()
    yield database_url


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """One table row per line, whatever the terminal running the tests."""
    monkeypatch.setattr(console, "width", 160)


def jifen(url: str, *args: str) -> Result:
    return CliRunner().invoke(main, [*args, "--database-url", url])


def keys(url: str, *args: str) -> Result:
    return jifen(url, "keys", *args)


def row_of(output: str, prefix: str) -> str:
    rows = [line for line in output.splitlines() if prefix in line]
    assert len(rows) == 1, output
    return rows[0]


def test_create_prints_the_key_once_and_list_never_shows_it(url: str) -> None:
    created = keys(url, "create", "--program", PROGRAM, "--scope", "earn", "--scope", "READ")
    assert created.exit_code == 0, created.output
    secret = SECRET.findall(created.output)
    assert len(secret) == 1, created.output
    assert "shown only this once" in created.output
    assert "scopes:  read earn" in created.output
    assert "expires: never" in created.output

    database = Database.from_url(url)
    key = api_keys.authenticate(database, secret[0])
    assert key.scopes == ("read", "earn")
    assert key.created_by == "cli"
    assert [a.action for a in list_audit(database, program=PROGRAM).items] == ["api_key.create"]
    database.dispose()

    listed = keys(url, "list", "--program", PROGRAM)
    assert listed.exit_code == 0, listed.output
    assert secret[0] not in listed.output
    assert not SECRET.search(listed.output)
    row = row_of(listed.output, f"{key.prefix}…")
    assert "read earn" in row
    assert "active" in row
    assert "times in Asia/Shanghai" in listed.output


def test_key_only_prints_just_the_key_on_stdout_for_scripts(url: str) -> None:
    result = keys(url, "create", "--program", PROGRAM, "--scope", "read", "--key-only")
    assert result.exit_code == 0, result.output
    assert SECRET.fullmatch(result.stdout.strip())
    assert "shown only this once" in result.stderr
    assert not SECRET.search(result.stderr)


def test_expiry_in_days_or_at_a_local_time(url: str) -> None:
    at = keys(
        url, "create", "--program", PROGRAM, "--scope", "read", "--expires-at", "2030-06-30T18:00"
    )
    assert at.exit_code == 0, at.output
    assert "expires: 2030-06-30 18:00" in at.output
    database = Database.from_url(url)
    (key,) = api_keys.list_keys(database, program=PROGRAM)
    assert key.expires_at == dt.datetime(2030, 6, 30, 10, 0, tzinfo=dt.UTC)  # 18:00 in Shanghai

    days = keys(url, "create", "--program", PROGRAM, "--scope", "read", "--expires-in-days", "7")
    assert days.exit_code == 0, days.output
    newest = api_keys.list_keys(database, program=PROGRAM)[0]
    assert newest.expires_at is not None
    assert dt.timedelta(days=6, hours=23) < newest.expires_at - newest.created_at
    assert newest.expires_at - newest.created_at <= dt.timedelta(days=7)
    database.dispose()


@pytest.mark.parametrize(
    ("options", "code", "message"),
    [
        (["--expires-at", "2020-01-01T00:00"], 1, "has already passed"),
        (["--expires-at", "next tuesday"], 1, "must be an ISO date and time"),
        (["--expires-in-days", "0"], 2, "1<=x<=3660"),
        (["--expires-in-days", "3", "--expires-at", "2030-01-01"], 2, "not both"),
    ],
)
def test_a_bad_expiry_is_refused_and_creates_nothing(
    url: str, options: list[str], code: int, message: str
) -> None:
    result = keys(url, "create", "--program", PROGRAM, "--scope", "read", *options)
    assert result.exit_code == code, result.output
    assert message in result.output
    database = Database.from_url(url)
    assert api_keys.list_keys(database, program=PROGRAM) == []
    database.dispose()


def test_list_shows_active_revoked_and_expired_keys(url: str) -> None:
    past = FixedClock(dt.datetime.now(dt.UTC) - dt.timedelta(days=10))
    then = Database.from_url(url, clock=past)
    expired = api_keys.create_key(
        then,
        program=PROGRAM,
        scopes=["read"],
        label="last season",
        expires_at=past.now() + dt.timedelta(days=1),
    ).key
    then.dispose()
    database = Database.from_url(url)
    revoked = api_keys.create_key(database, program=PROGRAM, scopes=["earn"], label="old till")
    api_keys.revoke_key(database, program=PROGRAM, key=revoked.key.id)
    active = api_keys.create_key(database, program=PROGRAM, scopes=["admin"], label="ops").key
    database.dispose()

    listed = keys(url, "list", "--program", PROGRAM)
    assert listed.exit_code == 0, listed.output
    assert "expired" in row_of(listed.output, expired.prefix)
    assert "revoked" in row_of(listed.output, revoked.key.prefix)
    assert "active" in row_of(listed.output, active.prefix)
    assert "never" in row_of(listed.output, active.prefix)  # no expiry, never used


def test_revoke_by_prefix_and_by_id(url: str) -> None:
    database = Database.from_url(url)
    first = api_keys.create_key(database, program=PROGRAM, scopes=["read"], label="one")
    second = api_keys.create_key(database, program=PROGRAM, scopes=["read"], label="two")

    by_prefix = keys(url, "revoke", "--program", PROGRAM, f"{first.key.prefix}…")
    assert by_prefix.exit_code == 0, by_prefix.output
    assert f"revoked API key {first.key.prefix}… ('one')" in by_prefix.output
    by_id = keys(url, "revoke", "--program", PROGRAM, str(second.key.id))
    assert by_id.exit_code == 0, by_id.output
    assert "('two')" in by_id.output
    again = keys(url, "revoke", "--program", PROGRAM, str(second.key.id))
    assert again.exit_code == 0, again.output  # revoking twice changes nothing

    for created in (first, second):
        with pytest.raises(NotAuthenticated, match="revoked"):
            api_keys.authenticate(database, created.secret)
    actions = [a.action for a in list_audit(database, program=PROGRAM, action="api_key.").items]
    assert sorted(actions) == ["api_key.create"] * 2 + ["api_key.revoke"] * 2
    database.dispose()


def test_an_unknown_key_is_a_clear_error(url: str) -> None:
    result = keys(url, "revoke", "--program", PROGRAM, "jfn_sk_nopez")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no single API key 'jfn_sk_nopez' in program 'shop'")
    assert "jifen keys list --program shop" in result.stderr
    assert "Traceback" not in result.output


def test_an_unknown_program_is_a_clear_error(url: str) -> None:
    result = keys(url, "list", "--program", "nope")
    assert result.exit_code == 1
    assert "no program has the code 'nope'; the programs here are: shop" in result.stderr


def test_a_bad_scope_lists_the_scopes(url: str) -> None:
    result = keys(url, "create", "--program", PROGRAM, "--scope", "root")
    assert result.exit_code == 2
    for scope in api_keys.SCOPES:
        assert f"'{scope}'" in result.stderr
    missing = keys(url, "create", "--program", PROGRAM)
    assert missing.exit_code == 2
    assert "--scope" in missing.stderr


def test_origins_add_list_remove_and_a_bad_origin_is_refused(url: str) -> None:
    added = keys(url, "origins", "add", "--program", PROGRAM, "https://Shop.example/")
    assert added.exit_code == 0, added.output
    assert added.output.splitlines() == ["https://shop.example"]
    keys(url, "origins", "add", "--program", PROGRAM, "http://localhost:5173")
    listed = keys(url, "origins", "list", "--program", PROGRAM)
    assert listed.output.splitlines() == ["http://localhost:5173", "https://shop.example"]

    bad = keys(url, "origins", "add", "--program", PROGRAM, "https://shop.example/path")
    assert bad.exit_code == 1
    assert "an origin is scheme://host[:port]" in bad.stderr

    removed = keys(url, "origins", "remove", "--program", PROGRAM, "https://shop.example")
    assert removed.exit_code == 0, removed.output
    assert removed.output.splitlines() == ["http://localhost:5173"]
    keys(url, "origins", "remove", "--program", PROGRAM, "http://localhost:5173")
    empty = keys(url, "origins", "list", "--program", PROGRAM)
    assert "shop allows no browser origins" in empty.output


@pytest.mark.parametrize(
    "command",
    [
        ["keys"],
        ["keys", "create"],
        ["keys", "list"],
        ["keys", "revoke"],
        ["keys", "origins"],
        ["keys", "origins", "add"],
        ["keys", "origins", "remove"],
        ["keys", "origins", "list"],
        ["serve"],
        ["api", "spec"],
    ],
)
def test_every_command_has_help_with_examples(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output
    assert "jifen " in result.output
