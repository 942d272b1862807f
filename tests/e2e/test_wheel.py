"""A wheel built from the repository installs in a clean virtual environment and migrates."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (built,) = out.glob("jifen-*.whl")
    return built


def test_wheel_holds_only_the_four_packages(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.startswith("jifen-")}
    assert top == {"loyalty", "admin", "api", "sdk"}
    # the API's document, the member page's templates and styles ship with it
    assert {"api/openapi.json", "api/templates/member/page.html"} <= set(names)
    assert "api/static/member/member.css" in names
    assert "loyalty/migrations/env.py" in names
    assert any(n.startswith("loyalty/migrations/versions/0001_") for n in names)


def test_wheel_installs_and_runs_db_upgrade_outside_the_repository(
    wheel: Path, tmp_path: Path
) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    pip = env_dir / "bin" / "pip"
    subprocess.run(
        [str(pip), "install", "--quiet", str(wheel)], check=True, capture_output=True, timeout=900
    )
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    database = workdir / "shop.db"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(
        [
            str(env_dir / "bin" / "jifen"),
            "db",
            "upgrade",
            "--database-url",
            f"sqlite:///{database}",
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with sqlite3.connect(database) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"programs", "members", "lots", "entries", "operations"} <= tables
    located = subprocess.run(
        [str(env_dir / "bin" / "python"), "-c", "import loyalty; print(loyalty.__file__)"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(env_dir) in located.stdout
