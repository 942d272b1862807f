"""The README's risk control snippet runs as written and prints what its comments say."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_risk_snippet_runs(tmp_path: Path) -> None:
    section = README.read_text().split("## Risk control (风控)", 1)[1].split("\n## ", 1)[0]
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
    lines = result.stdout.splitlines()
    assert lines[:4] == [
        "More than 3 earns per location within an hour: refuse the operation.",
        "每个门店在 1 小时内超过 3 笔积分获取：拒绝该操作。",
        "risk_blocked till-burst",
        "1",
    ]
    assert lines[4].startswith("refund-farming 100 % of 600 points earned in 30 days refunded")
    assert lines[5:] == ["pending None", "100"]
