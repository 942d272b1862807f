"""How the ``jifen`` commands show things: tables, progress bars and short formats (rich).

Nothing here reads the database or runs anything; the commands pass in what to show.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from loyalty.domain.calendar import zone
from loyalty.jobs.runs import JobRunInfo
from loyalty.jobs.schedule import ScheduledJob
from loyalty.services.results import Forecast, SweepResult
from loyalty.services.verify import VerifyReport

console = Console()
err_console = Console(stderr=True)
NUMBER_COLUMNS = ("items", "points", "batches")


def table(title: str, columns: Sequence[str], *, right: Sequence[str] = ()) -> Table:
    """A titled table with these columns, those in ``right`` right-aligned."""
    found = Table(title=title, title_justify="left")
    for column in columns:
        found.add_column(column, justify="right" if column in right else "left")
    return found


def print_report(report: VerifyReport, *, show_examples: bool = True) -> None:
    """Print a verification report as a table, then the offending rows."""
    checks = table("Ledger verification", ("check", "invariant", "result"), right=("result",))
    for check in report.checks:
        result = "[green]ok[/]" if check.ok else f"[bold red]{check.violations} failing[/]"
        checks.add_row(check.name, check.description, result)
    console.print(checks)
    counts = ", ".join(f"{n:,} {name}" for name, n in report.counts.items())
    console.print(f"checked {counts}")
    if show_examples:
        for check in report.checks:
            for example in check.examples:
                console.print(f"  [red]{check.name}[/]: {example}")
    verdict = (
        "[bold green]ledger is consistent[/]"
        if report.ok
        else "[bold red]ledger is NOT consistent[/]"
    )
    console.print(verdict)


def print_forecast(result: Forecast, *, by_member: bool = False) -> None:
    """Print a forecast: one row per last usable local day (and per instant for one member),
    then the total."""
    tz = zone(result.timezone)
    until = result.until_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
    days = table(
        f"Points ending in {result.program} until {until} ({result.timezone})",
        ("last day", "expiring", "cleared", "lots", "points"),
        right=("expiring", "cleared", "lots", "points"),
    )
    for d in result.days:
        days.add_row(d.day, f"{d.expiring:,}", f"{d.clearing:,}", f"{d.lots:,}", f"{d.points:,}")
    console.print(days)
    if by_member and result.items:
        instants = table(
            f"By instant, for {result.items[0].member}",
            ("when (local)", "last day", "how", "points", "lots", "in flight"),
            right=("points", "lots", "in flight"),
        )
        for i in result.items:
            when = i.due_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
            how = "expires" if i.kind == "expire" else "cleared"
            last = "" if i.last_day is None else i.last_day.isoformat()
            row = (when, last, how, f"{i.points:,}", f"{i.lots:,}", f"{i.in_flight:,}")
            instants.add_row(*row)
        console.print(instants)
    console.print(f"total: {result.points:,} points in {result.lots:,} lots")


def print_schedule(entries: list[ScheduledJob]) -> None:
    """Print the schedule: job, cron string (UTC), next run in UTC and in the program's zone."""
    schedule = table(
        "Jifen schedule (cron strings are UTC)",
        ("entry", "cron (UTC)", "next run (UTC)", "next run (local)", "what"),
    )
    for e in entries:
        local = ""
        if e.timezone:
            at = e.next_run_at.astimezone(zone(e.timezone))
            local = f"{at:%Y-%m-%d %H:%M} {e.timezone}"
        schedule.add_row(e.name, e.cron, f"{e.next_run_at:%Y-%m-%d %H:%M}", local, e.description)
    console.print(schedule)


@contextmanager
def demo_progress() -> Iterator[Callable[[str, int, int], None]]:
    """A progress hook for filling the demo: a bar per stage, with its count and time."""
    progress = Progress(
        TextColumn("{task.description:<18}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    tasks: dict[str, TaskID] = {}

    def show(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], completed=done)

    with progress:
        yield show


class JobLine:
    """One job's line in :func:`job_progress`: its running figures, then its final ones."""

    def __init__(self, progress: Progress, name: str) -> None:
        self.progress = progress
        self.task = progress.add_task(name, total=None, items=0, points=0, batches=0)

    def show(self, totals: SweepResult) -> None:
        """The running totals after a batch."""
        self.progress.update(
            self.task, items=totals.items, points=totals.points, batches=totals.batches
        )

    def done(self, run: JobRunInfo) -> None:
        """The finished run's figures, the bar full."""
        self.progress.update(
            self.task, total=1, completed=1, items=run.items, points=run.points, batches=run.batches
        )


@contextmanager
def job_progress() -> Iterator[Callable[[str], JobLine]]:
    """Live progress of jobs run one after the other: ``start(name)`` adds a job's line."""
    progress = Progress(
        TextColumn("{task.description:<14}"),
        BarColumn(),
        TextColumn("{task.fields[items]:>10,} items"),
        TextColumn("{task.fields[points]:>12,} points"),
        TextColumn("{task.fields[batches]:>6,} batches"),
        TimeElapsedColumn(),
        console=console,
    )
    with progress:
        yield lambda name: JobLine(progress, name)


def status(text: str) -> str:
    """A run's status, coloured."""
    color = {"succeeded": "green", "failed": "red"}.get(text, "yellow")
    return f"[{color}]{text}[/]"


def took(delta: dt.timedelta) -> str:
    """A duration in a few characters: ``4.2s``, ``3m07s``, ``2h05m``."""
    seconds = max(delta.total_seconds(), 0.0)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def run_details(details: dict[str, Any]) -> str:
    """What a run's details say beyond its figures, in a few words."""
    parts = []
    if "created" in details:
        parts.append(f"{details['created']:,} created, {details['already_sent']:,} already sent")
        if details.get("callback_errors"):
            parts.append(f"{details['callback_errors']:,} callback errors")
    for c in details.get("clearings", []):
        how = "replayed" if c.get("replayed") else c.get("status")
        parts.append(f"{c['program']} {c['year']}: {how}, {c['lots']:,} lots in all")
    if details.get("abandoned_runs"):
        runs = ", ".join(str(i) for i in details["abandoned_runs"])
        parts.append(f"marked abandoned: run {runs}")
    if "clearings" in details and not details["clearings"]:
        parts.append("no clearing due")
    if {"up", "kept", "down"} <= details.keys():
        parts.append(f"{details['up']:,} up, {details['kept']:,} kept, {details['down']:,} down")
    return "; ".join(parts)


def print_runs(runs: list[JobRunInfo]) -> None:
    """The runs just made: figures, time taken and what their details say."""
    done = table(
        "Job runs",
        ("job", "run", "status", "items", "points", "batches", "took", "details"),
        right=NUMBER_COLUMNS,
    )
    for r in runs:
        done.add_row(
            r.job,
            str(r.id),
            status(r.status),
            f"{r.items:,}",
            f"{r.points:,}",
            f"{r.batches:,}",
            took(r.duration),
            run_details(r.details),
        )
    console.print(done)


def print_last_runs(runs: list[JobRunInfo], now: dt.datetime, stale_after: dt.timedelta) -> None:
    """The last runs of each job; a running one without a heartbeat for ``stale_after`` says so."""
    last = table(
        "Last job runs",
        ("job", "run", "status", "trigger", "started (UTC)", "took", "items", "points"),
        right=NUMBER_COLUMNS,
    )
    last.add_column("error", overflow="fold")
    for r in runs:
        shown = status(r.status)
        if r.status == "running" and now - r.heartbeat_at > stale_after:
            shown += f" [red](no heartbeat for {took(now - r.heartbeat_at)})[/]"
        last.add_row(
            r.job,
            str(r.id),
            shown,
            r.trigger,
            f"{r.started_at:%Y-%m-%d %H:%M:%S}",
            took(r.duration),
            f"{r.items:,}",
            f"{r.points:,}",
            r.error_line or "",
        )
    console.print(last)
