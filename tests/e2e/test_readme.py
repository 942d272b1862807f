"""The README's Python snippet runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def python_snippets() -> list[str]:
    """The Python blocks of the README's "Use the core from Python" section, in order."""
    section = README.read_text().split("## Use the core from Python", 1)[1]
    return re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], re.S)


def run(code: str, folder: Path) -> str:
    """Run ``code`` in a fresh interpreter in ``folder``; its output (it must succeed)."""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=folder, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_readme_core_snippet_runs(tmp_path: Path) -> None:
    output = run(python_snippets()[0], tmp_path)
    assert "518 518 None available" in output


def test_readme_unit_of_work_snippet_runs_after_the_core_one(tmp_path: Path) -> None:
    core, unit = python_snippets()[:2]
    check = (
        "\nb = jifen.balance(db, program='shop', member='cust-42')"
        "\nprint('after the unit:', b.available, b.held)"
    )
    output = run(core + unit + check, tmp_path)
    assert "both committed" in output
    assert "after the unit: 30 20" in output  # 50 earned, 20 of them held
