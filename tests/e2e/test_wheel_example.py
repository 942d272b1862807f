"""The checkout example runs against an installed wheel, far from the repository.

A wheel built from the repository is installed into a clean virtual environment (made
without pip: the test's own pip installs into it, which is much faster), ``jifen db
upgrade`` creates a SQLite database, and a copy of ``examples/checkout.py`` runs with that
environment's Python: it imports ``sdk`` and ``loyalty`` from the wheel, not from here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean virtual environment with the wheel installed; its ``bin`` folder."""
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = dist.glob("jifen-*.whl")
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    done = subprocess.run(
        [*pip, "install", "--quiet", "--no-compile", str(wheel)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return env_dir / "bin"


def test_the_checkout_example_runs_from_the_installed_wheel(
    installed: Path, tmp_path: Path
) -> None:
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    example = shutil.copy(ROOT / "examples" / "checkout.py", workdir / "checkout.py")
    url = f"sqlite:///{workdir / 'shop.db'}"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV", "JIFEN_DATABASE_URL")
    }

    def run(*command: str) -> str:
        result = subprocess.run(
            list(command), cwd=workdir, env=env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    run(str(installed / "jifen"), "db", "upgrade", "--database-url", url)
    located = run(
        str(installed / "python"),
        "-c",
        "import loyalty, sdk; print(sdk.__file__, loyalty.__file__)",
    )
    assert str(ROOT) not in located and str(installed.parent) in located
    printed = run(str(installed / "python"), str(example), url)
    assert "Order EX-1001 earned 431 points" in printed
    assert "Balance of cust-1001: 1641 points available" in printed
    assert "ledger is consistent" in run(str(installed / "jifen"), "verify", "--database-url", url)
