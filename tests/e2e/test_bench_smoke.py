"""The benchmarks keep working: each runs at a tiny size, writes its JSON and verifies clean.

No timing is asserted (benchmarks are never part of pass/fail); the PostgreSQL ones create
their scratch databases next to ``$JIFEN_TEST_PG_URL`` and are skipped if it is not running.
``api_http`` drives gunicorn with ``wrk`` for a second per side, and is skipped if ``wrk`` is
not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.run_all import ORDER, POSTGRES, command  # noqa: E402

PG_URL = os.environ.get("JIFEN_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
NEEDS_WRK = {"api_http"}


def _pg_problem() -> str | None:
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        return f"PostgreSQL at {PG_URL} is not reachable ({type(exc).__name__})"
    return None


def _run(args: list[str], results: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JIFEN_BENCH_RESULTS": str(results), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("name", ORDER)
def test_benchmark_runs_at_a_tiny_size(name: str, tmp_path: Path) -> None:
    if name in POSTGRES:
        problem = _pg_problem()
        if problem:
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(f"{problem}; CI=true requires it")
            pytest.skip(problem)
    if name in NEEDS_WRK and shutil.which("wrk") is None:
        pytest.skip(
            f"{name} drives the server with wrk, which is not installed (apt-get install wrk)"
        )
    done = _run(command(name, "smoke", PG_URL), tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    result = json.loads((tmp_path / f"{name}.json").read_text())
    assert result["benchmark"] == name
    assert result["machine"]["cpus"]
    checks = result["verify"]
    checks = checks.values() if "ok" not in checks else [checks]
    flat = [c for group in checks for c in (group if isinstance(group, list) else [group])]
    assert flat and all(c["ok"] for c in flat), result["verify"]
    assert "verify" in done.stdout and "ok" in done.stdout
    if name == "rewards_pg":  # the hot-item case is reported beside the spread one
        assert {f["case"] for f in result["figures"]} == {"spread", "hot"}
        assert all(f["jifen_python_cpu_ms"] > 0 for f in result["figures"])
    if name == "tiers_pg":  # both sides earned: tiers on and tiers off
        assert all(f["tiers_on_tps"] > 0 and f["tiers_off_tps"] > 0 for f in result["figures"])
        assert all(f["tiers_on_python_cpu_ms"] > 0 for f in result["figures"])
    if name == "risk_pg":  # both cases earned on both sides; every rule kind was scanned
        earns = result["figures"]["earn"]
        assert {f["case"] for f in earns} == {"established", "new"}
        assert all(f["risk_on_tps"] > 0 and f["risk_off_tps"] > 0 for f in earns)
        scans = result["figures"]["scan"]
        assert len(scans) == 8 and all(s["second_opened"] == 0 for s in scans)
        assert sum(s["opened"] for s in scans) > 0


def test_run_all_writes_the_summary(tmp_path: Path) -> None:
    done = _run(
        [sys.executable, "-m", "bench", "--size", "smoke", "--only", "earn_sqlite"], tmp_path
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [r["benchmark"] for r in summary["results"]] == ["earn_sqlite"]
    markdown = (tmp_path / "summary.md").read_text()
    assert markdown.startswith("Machine: ")
    assert "| benchmark |" in markdown
