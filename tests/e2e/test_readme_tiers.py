"""The README's tiers snippet runs as written and prints what its comments say."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def test_readme_tiers_snippet_runs(tmp_path: Path) -> None:
    section = README.read_text().split("## Member tiers (会员等级)", 1)[1]
    section = section.split("\n## ", 1)[0]
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
    assert result.stdout.splitlines() == [
        "silver member",
        "150 1.5",
        "银卡 1350 3650",
        "member",
        "refund silver -> member",
        "earn member -> silver",
    ]
