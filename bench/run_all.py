"""Run every benchmark, print one summary table, write ``summary.json`` and ``summary.md``.

Each benchmark runs in its own process (so the sweep's peak memory is its own), at the
``full`` sizes of the issue, the ``quick`` sizes (a minute or two in all) or the ``smoke``
sizes the test suite uses. A benchmark that fails (a verify that is not clean, a request
that is not answered 200) is reported as failed and the run exits non-zero.

    python -m bench [--size full|quick|smoke] [--only earn_pg,sweep_pg] [--url postgresql://…]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import DEFAULT_PG_URL, RESULTS, machine_info, machine_line, print_table

ROOT = Path(__file__).resolve().parents[1]
POSTGRES = (
    "earn_pg",
    "redeem_pg",
    "rewards_pg",
    "tiers_pg",
    "outbox_pg",
    "risk_pg",
    "dispatch_pg",
    "sweep_pg",
    "webhook_http",
    "api_http",
    "reads_pg",
)
ORDER = (*POSTGRES, "earn_sqlite")

# risk_pg's options at the quick and smoke sizes: a smaller month to scan, fewer members.
RISK_QUICK = ["--seconds", "3", "--warmup", "0.5", "--earnings", "50000", "--scan-members", "5000"]
RISK_QUICK += ["--transfers", "1500", "--farmers", "30", "--rings", "10"]
RISK_SMOKE = ["--seconds", "0.5", "--warmup", "0.1", "--rounds", "1", "--members", "50"]
RISK_SMOKE += ["--history", "2", "--earnings", "2000", "--scan-members", "200", "--farmers", "5"]
RISK_SMOKE += ["--transfers", "60", "--rings", "2"]

SIZES: dict[str, dict[str, list[str]]] = {
    "full": {
        "earn_pg": ["--seconds", "10"],
        "redeem_pg": ["--seconds", "10"],
        "rewards_pg": ["--seconds", "10", "--threads", "1,8"],
        "tiers_pg": ["--seconds", "10", "--threads", "1,8"],
        "outbox_pg": ["--seconds", "10", "--rounds", "4"],
        "risk_pg": ["--seconds", "10", "--rounds", "4"],
        "dispatch_pg": ["--events", "5000", "--members", "50"],
        "sweep_pg": ["--lots", "1000000", "--due-share", "0.3"],
        "webhook_http": ["--seconds", "15", "--rounds", "3"],
        "api_http": ["--seconds", "5", "--rounds", "4"],
        "reads_pg": ["--members", "100000", "--entries", "10000000"],
        "earn_sqlite": ["--seconds", "10"],
    },
    "quick": {
        "earn_pg": ["--seconds", "3", "--warmup", "0.5"],
        "redeem_pg": ["--seconds", "3", "--warmup", "0.5"],
        "rewards_pg": ["--seconds", "3", "--warmup", "0.5"],
        "tiers_pg": ["--seconds", "3", "--warmup", "0.5"],
        "outbox_pg": ["--seconds", "3", "--warmup", "0.5"],
        "risk_pg": RISK_QUICK,
        "dispatch_pg": ["--events", "1000", "--members", "50"],
        "sweep_pg": ["--lots", "100000", "--members", "10000"],
        "webhook_http": ["--seconds", "3", "--warmup", "0.5"],
        "api_http": ["--seconds", "3", "--rounds", "1"],
        "reads_pg": ["--members", "10000", "--entries", "1000000", "--samples", "1000"],
        "earn_sqlite": ["--seconds", "3", "--warmup", "0.5"],
    },
    "smoke": {
        "earn_pg": ["--seconds", "0.5", "--warmup", "0.1", "--members", "50"],
        "redeem_pg": ["--seconds", "0.5", "--warmup", "0.1", "--members", "50"],
        "rewards_pg": ["--seconds", "0.5", "--warmup", "0.1", "--members", "50", "--rewards", "4"],
        "tiers_pg": ["--seconds", "0.5", "--warmup", "0.1", "--members", "50"],
        "outbox_pg": ["--seconds", "0.5", "--warmup", "0.1", "--members", "50"],
        "risk_pg": RISK_SMOKE,
        "dispatch_pg": ["--events", "100", "--members", "10"],
        "sweep_pg": ["--lots", "1000", "--members", "100"],
        "webhook_http": ["--seconds", "0.5", "--rounds", "1", "--warmup", "0.1", "--members", "50"],
        "api_http": ["--seconds", "1", "--rounds", "1", "--warmup", "0", "--members", "50"],
        "reads_pg": ["--members", "200", "--entries", "5000", "--samples", "50"],
        "earn_sqlite": ["--seconds", "0.5", "--warmup", "0.1", "--members", "50"],
    },
}


def command(name: str, size: str, url: str) -> list[str]:
    """The command line that runs one benchmark at a size."""
    args = [sys.executable, "-m", f"bench.{name}", *SIZES[size][name]]
    if name in POSTGRES:
        args += ["--url", url]
    return args


def run_one(name: str, size: str, url: str) -> dict[str, Any]:
    """Run one benchmark; its result JSON, or a failure record."""
    path = RESULTS / f"{name}.json"
    path.unlink(missing_ok=True)
    print(f"\n=== {name} ({size}) ===", flush=True)
    started = time.perf_counter()
    done = subprocess.run(command(name, size, url), cwd=ROOT, check=False)
    seconds = round(time.perf_counter() - started, 1)
    if done.returncode != 0 or not path.exists():
        return {"benchmark": name, "failed": True, "returncode": done.returncode, "wall": seconds}
    result: dict[str, Any] = json.loads(path.read_text())
    result["wall"] = seconds
    return result


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def summary_rows(results: Sequence[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for r in results:
        if r.get("failed"):
            rows.append([r["benchmark"], "FAILED", None, None, None, None, False])
            continue
        rows.append(
            [r["title"], r["unit"], r["jifen"], r["baseline"], r["ratio"], r["target"], r["met"]]
        )
    return rows


HEADERS = ["benchmark", "unit", "Jifen", "baseline", "ratio", "target", "met"]


def write_summary(results: Sequence[dict[str, Any]], size: str, url: str) -> None:
    """``summary.json`` and ``summary.md`` (a markdown table with the machine line)."""
    info = machine_info(url)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "summary.json").write_text(
        json.dumps({"size": size, "machine": info, "results": list(results)}, indent=2) + "\n"
    )
    lines = [
        f"Machine: {machine_line(info)}. Size: `{size}`.",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join("---" for _ in HEADERS) + "|",
    ]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in summary_rows(results)]
    (RESULTS / "summary.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / 'summary.json'} and {RESULTS / 'summary.md'}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--quick", action="store_const", const="quick", dest="size")
    parser.add_argument("--only", default=",".join(ORDER), help="comma-separated benchmarks")
    parser.add_argument("--url", default=DEFAULT_PG_URL)
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - set(ORDER)
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    results = [run_one(n, args.size, args.url) for n in names]
    print()
    print_table(f"Jifen benchmarks ({args.size})", HEADERS, summary_rows(results))
    write_summary(results, args.size, args.url)
    return 1 if any(r.get("failed") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
