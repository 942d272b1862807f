"""``make demo`` and ``jifen console --demo``: the demo database is kept between starts (and
built again only on ``--fresh``, when missing, from another schema or half built, saying why),
a port another program holds is refused before anything is built (or asked for again at a
terminal), and ``make demo`` installs Jifen without the test tools and says which port it
serves on, how to choose another and whether it keeps or rebuilds the database."""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from admin.cli import DEMO_USERS, build_demo, console
from loyalty import services as svc
from loyalty.cli.demo import kept_demo_database, sqlite_url
from loyalty.db import Database
from loyalty.errors import ConfigurationError, NotFound
from loyalty.migrate import known_revisions
from loyalty.services.demo import DEMO_PROGRAM

ROOT = Path(__file__).resolve().parents[2]
LOGINS = [username for username, _, _ in DEMO_USERS]


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo database with 3 members and 10 orders, built once (tests use copies)."""
    path = tmp_path_factory.mktemp("demo") / "small.db"
    build_demo(path, members=3, orders=10)
    return path


@pytest.fixture
def kept(small_demo: Path, tmp_path: Path) -> Path:
    """A copy of the small demo database, as an earlier start would have left it."""
    path = tmp_path / "jifen-console-demo.db"
    shutil.copy(small_demo, path)
    return path


def _sql(path: Path, statement: str) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(statement)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _taken_port() -> Iterator[int]:
    """A port another program listens on, for the time of the block."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("JIFEN_")}


def _console(*args: str) -> list[str]:
    return [sys.executable, "-m", "admin.cli", "console", "--demo", *args]


def _wait_until_served(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2)
            return
        except (urllib.error.URLError, ConnectionError):
            assert process.poll() is None, "the demo console stopped before serving"
            assert time.monotonic() < deadline, "the demo console did not start in 2 minutes"
            time.sleep(0.3)


def _serve_once(folder: Path, *args: str) -> str:
    """Start the demo console in ``folder``, wait until it answers, stop it; its output."""
    port = _free_port()
    process = subprocess.Popen(
        _console("--port", str(port), *args),
        cwd=folder,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_until_served(port, process)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    return " ".join(output.split())


def _has_member(path: Path, member: str) -> bool:
    database = Database.from_url(sqlite_url(path))
    try:
        svc.get_member(database, program=DEMO_PROGRAM, external_id=member)
        return True
    except NotFound:
        return False
    finally:
        database.dispose()


def _enrol(path: Path, member: str) -> None:
    database = Database.from_url(sqlite_url(path))
    try:
        svc.enrol_member(database, program=DEMO_PROGRAM, external_id=member)
    finally:
        database.dispose()


# What a start finds at the demo database's path


def test_a_complete_demo_database_is_used_again_with_its_build_time(kept: Path) -> None:
    found = kept_demo_database(kept, LOGINS)
    assert found.rebuild_because is None
    assert found.built_at is not None
    assert found.built_at.utcoffset() is not None


def test_a_missing_demo_database_is_built(tmp_path: Path) -> None:
    found = kept_demo_database(tmp_path / "none.db", LOGINS)
    assert (found.built_at, found.rebuild_because) == (None, "there is none yet")


def test_a_demo_database_from_an_older_schema_is_built_again_saying_so(kept: Path) -> None:
    heads, known = known_revisions()
    older = sorted(known - heads)[0]
    _sql(kept, f"UPDATE alembic_version SET version_num = '{older}'")
    found = kept_demo_database(kept, LOGINS)
    assert found.built_at is None
    assert found.rebuild_because is not None
    assert "older schema" in found.rebuild_because and older in found.rebuild_because


def test_a_demo_database_from_a_newer_jifen_is_built_again_saying_so(kept: Path) -> None:
    _sql(kept, "UPDATE alembic_version SET version_num = '9999_from_the_future'")
    found = kept_demo_database(kept, LOGINS)
    assert found.rebuild_because is not None
    assert "newer Jifen" in found.rebuild_because


def test_a_demo_database_whose_build_was_stopped_is_built_again(kept: Path) -> None:
    _sql(kept, "DELETE FROM admin_users WHERE username = 'admin'")  # the logins come last
    found = kept_demo_database(kept, LOGINS)
    assert (found.built_at, found.rebuild_because) == (None, "its last build did not finish")


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"my notes, not a database\n" * 100, "not a SQLite database"),
        (None, "no Jifen schema"),
    ],
)
def test_a_file_that_is_no_demo_database_is_left_alone(
    tmp_path: Path, content: bytes | None, why: str
) -> None:
    path = tmp_path / "mine.db"
    if content is None:
        _sql(path, "CREATE TABLE notes (line TEXT)")
    else:
        path.write_bytes(content)
    before = path.read_bytes()
    with pytest.raises(ConfigurationError, match="--fresh") as raised:
        kept_demo_database(path, LOGINS)
    assert why in raised.value.message
    assert path.read_bytes() == before


def test_a_jifen_database_with_other_programs_is_left_alone(kept: Path) -> None:
    database = Database.from_url(sqlite_url(kept))
    try:
        svc.create_program(database, code="shop", name="Shop", currency="CNY")
    finally:
        database.dispose()
    with pytest.raises(ConfigurationError, match="other programs"):
        kept_demo_database(kept, LOGINS)


# The console across starts


def test_work_done_on_the_demo_survives_a_restart_and_fresh_rebuilds(kept: Path) -> None:
    _enrol(kept, "member-kept")  # what someone did in the console before stopping it
    output = _serve_once(kept.parent)
    assert f"using the demo database at {kept.name}, built " in output
    assert "--fresh (make demo FRESH=1) rebuilds it" in output
    assert "building" not in output
    assert _has_member(kept, "member-kept")

    output = _serve_once(kept.parent, "--fresh")
    assert f"building the demo database at {kept.name} (--fresh)" in output
    assert not _has_member(kept, "member-kept")
    assert _has_member(kept, "陈芳")  # the full demo: 25 members (the 25th)


def test_a_file_that_is_no_demo_database_stops_the_start_and_stays(tmp_path: Path) -> None:
    path = tmp_path / "jifen-console-demo.db"
    path.write_text("not a database\n")
    result = subprocess.run(
        _console("--port", str(_free_port())),
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "--fresh" in result.stderr and "Traceback" not in result.stderr
    assert path.read_text() == "not a database\n"


def test_fresh_without_demo_is_refused() -> None:
    result = CliRunner().invoke(console, ["--fresh"])
    assert result.exit_code == 2
    assert "--fresh rebuilds the demo database: use it with --demo" in result.output


# The port


def test_a_taken_port_is_refused_naming_the_option_before_anything_is_built(
    tmp_path: Path,
) -> None:
    with _taken_port() as port:
        result = subprocess.run(
            _console("--port", str(port)),
            cwd=tmp_path,
            env=_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert f"port {port} on 127.0.0.1 is taken by another program" in lines[0]
    assert re.search(r"choose another with --port \d+ \(make demo PORT=\d+\)", lines[0])
    assert not (tmp_path / "jifen-console-demo.db").exists()


def test_at_a_terminal_a_taken_port_is_asked_for_again(kept: Path) -> None:
    port = _free_port()
    with _taken_port() as taken:
        leader, follower = pty.openpty()
        process = subprocess.Popen(
            _console("--port", str(taken)),
            cwd=kept.parent,
            env={**_env(), "TERM": "dumb"},
            stdin=follower,
            stdout=follower,
            stderr=follower,
            text=True,
        )
        os.close(follower)
        try:
            asked = _read_until(leader, "port to use instead")
            assert f"port {taken} on 127.0.0.1 is taken" in asked
            os.write(leader, f"{port}\n".encode())
            _wait_until_served(port, process)
        finally:
            process.terminate()
            process.wait(timeout=10)
            os.close(leader)


def _read_until(fd: int, wanted: str) -> str:
    """What the program wrote on the terminal up to ``wanted``."""
    seen = ""
    deadline = time.monotonic() + 60
    while wanted not in seen:
        assert time.monotonic() < deadline, f"never asked: {seen!r}"
        ready, _, _ = select.select([fd], [], [], 1)
        if ready:
            seen += os.read(fd, 4096).decode(errors="replace")
    return " ".join(seen.split())


# What make installs


def _make(*args: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    result = subprocess.run(
        ["make", "-n", "-C", str(ROOT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def test_make_demo_installs_jifen_without_the_test_tools(tmp_path: Path) -> None:
    venv = f"VENV={tmp_path / 'venv'}"
    demo = _make("demo", venv)
    assert "pip install --quiet -e ." in demo
    assert "[test]" not in demo
    assert "[test]" in _make("test", venv)
    assert "[test]" in _make("lint", venv)


def test_make_demo_passes_the_port_and_fresh(tmp_path: Path) -> None:
    venv = f"VENV={tmp_path / 'venv'}"
    assert "console --demo --port 8080 --fresh" in _make("demo", venv, "PORT=8080", "FRESH=1")
    plain = _make("demo", venv, "FRESH=0")
    assert "--fresh" not in plain and "--port" not in plain


def _run_make_demo(tmp_path: Path, *args: str) -> str:
    """What ``make demo`` prints, run for real with a stand-in ``jifen`` that prints the
    command it was given (its venv already installed, so nothing is installed)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    jifen = tmp_path / "venv" / "bin" / "jifen"
    jifen.parent.mkdir(parents=True, exist_ok=True)
    jifen.write_text('#!/bin/sh\necho "ran: jifen $*"\n')
    jifen.chmod(0o755)
    result = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "demo", f"VENV={tmp_path / 'venv'}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return " ".join(result.stdout.split())


def test_make_demo_says_its_port_how_to_change_it_and_whether_it_rebuilds(
    tmp_path: Path,
) -> None:
    assert _run_make_demo(tmp_path) == (
        "make demo: the console on port 5000 (make demo PORT=5050 for another); "
        "the demo database is kept between starts (make demo FRESH=1 rebuilds it) "
        "ran: jifen console --demo"
    )
    assert _run_make_demo(tmp_path, "PORT=8080", "FRESH=yes") == (
        "make demo: the console on port 8080 (make demo PORT=5050 for another); "
        "building the demo database anew "
        "ran: jifen console --demo --port 8080 --fresh"
    )
    assert "kept between starts" in _run_make_demo(tmp_path, "FRESH=no")
