"""The README's SDK snippet ("Use Jifen from your checkout") runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_sdk_snippet_runs(tmp_path: Path) -> None:
    section = README.read_text().split("## Use Jifen from your checkout", 1)[1]
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
    lines = result.stdout.splitlines()
    assert lines[:5] == ["300", "300 300", "297 False", "99 100", "298 597"]
    assert lines[5].startswith("insufficient_points - the member has 298 available points")
    # the comments in the snippet tell the reader what it prints
    for printed in ("# 300", "# 300 300", "# 297 False", "# 99 100", "# 298 597"):
        assert printed in snippet.group(1)
