"""The README's Python snippet runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_core_snippet_runs(tmp_path: Path) -> None:
    section = README.read_text().split("## Use the core from Python", 1)[1]
    snippet = re.search(r"```python\n(.*?)```", section, re.S)
    assert snippet is not None
    result = subprocess.run(
        [sys.executable, "-c", snippet.group(1)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "518 518 None available" in result.stdout


def test_readme_unit_of_work_snippet_runs_after_the_core_one(tmp_path: Path) -> None:
    section = README.read_text().split("## Use the core from Python", 1)[1]
    snippets = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], re.S)
    assert len(snippets) >= 2
    check = (
        "\nb = jifen.balance(db, program='shop', member='cust-42')"
        "\nprint('after the unit:', b.available, b.held)"
    )
    result = subprocess.run(
        [sys.executable, "-c", snippets[0] + snippets[1] + check],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "both committed" in result.stdout
    assert "after the unit: 30 20" in result.stdout  # 50 earned, 20 of them held
