"""``jifen events``: outbound events from a shell: dispatch the outbox to deliveries, send the
deliveries that are due, or both until nothing is due (``run``), with progress on stderr.

The same work runs every minute as the ``events`` job (:mod:`loyalty.jobs.specs`); these
commands are for a first run, a backlog, or a shop without a scheduler.
"""

from __future__ import annotations

import click

from loyalty.cli.options import friendly_errors, open_database
from loyalty.cli.options import url_option as database_option
from loyalty.cli.render import console, err_console
from loyalty.events import delivery as dl
from loyalty.events.dispatch import MAX_BATCH, DispatchResult, dispatch_events

timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True, max=300),
    default=dl.DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds to wait for a receiver.",
)
workers_option = click.option(
    "--workers",
    type=click.IntRange(1, dl.MAX_WORKERS),
    default=4,
    show_default=True,
    help="Requests sent at once.",
)
limit_option = click.option(
    "--limit",
    type=click.IntRange(1, dl.MAX_LIMIT),
    default=200,
    show_default=True,
    help="Deliveries claimed per round.",
)


@click.group("events")
def events_group() -> None:
    """Outbound events: dispatch the outbox and deliver to webhook endpoints."""


def run_line(run: dl.DeliveryRun) -> str:
    return (
        f"{run.attempted:,} sent: {run.delivered:,} delivered, {run.retrying:,} to retry, "
        f"{run.failed:,} failed"
        + (f", {run.disabled_endpoints} endpoint(s) disabled" if run.disabled_endpoints else "")
    )


@events_group.command("dispatch")
@database_option
@click.option(
    "--batch-size",
    type=click.IntRange(1, MAX_BATCH),
    default=500,
    show_default=True,
    help="Events per transaction.",
)
@friendly_errors
def dispatch_command(database_url: str | None, batch_size: int) -> None:
    """Turn the events not dispatched yet into deliveries to the endpoints that want them."""

    def batch_line(totals: DispatchResult) -> None:
        err_console.print(
            f"batch {totals.batches}: {totals.events:,} events, {totals.deliveries:,} deliveries",
            highlight=False,
        )

    database = open_database(database_url)
    try:
        done = dispatch_events(database, batch_size=batch_size, on_batch=batch_line)
    finally:
        database.dispose()
    console.print(
        f"dispatched {done.events:,} events into {done.deliveries:,} deliveries",
        highlight=False,
    )


@events_group.command("deliver")
@database_option
@limit_option
@workers_option
@timeout_option
@friendly_errors
def deliver_command(database_url: str | None, limit: int, workers: int, timeout: float) -> None:
    """Send one round of due deliveries (each member's next one per endpoint)."""
    database = open_database(database_url)
    try:
        run = dl.deliver_due(database, limit=limit, workers=workers, timeout=timeout)
    finally:
        database.dispose()
    console.print(run_line(run), highlight=False)


@events_group.command("run")
@database_option
@limit_option
@workers_option
@timeout_option
@click.option(
    "--max-rounds",
    type=click.IntRange(1, dl.MAX_LIMIT),
    default=100,
    show_default=True,
    help="Stop after this many sending rounds even if more is due.",
)
@click.option("--no-email", is_flag=True, help="Do not send the due reminder e-mails.")
@friendly_errors
def run_command(
    database_url: str | None,
    limit: int,
    workers: int,
    timeout: float,
    max_rounds: int,
    no_email: bool,
) -> None:
    """Dispatch, then deliver round after round until nothing is due (or --max-rounds), then
    send the due reminder e-mails; a line per round on stderr."""

    def round_line(totals: dl.OutboundRun) -> None:
        err_console.print(
            f"round {totals.rounds}: {totals.dispatched:,} dispatched, "
            + run_line(totals.delivery),
            highlight=False,
        )

    database = open_database(database_url)
    try:
        done = dl.run_outbound(
            database,
            max_rounds=max_rounds,
            limit=limit,
            workers=workers,
            timeout=timeout,
            emails=not no_email,
            on_round=round_line,
        )
        left = dl.backlog(database)
    finally:
        database.dispose()
    console.print(
        f"dispatched {done.dispatched:,} events; {run_line(done.delivery)} "
        f"in {done.rounds} round(s)",
        highlight=False,
    )
    if done.emails is not None:
        e = done.emails
        console.print(
            f"e-mails: {e.sent:,} sent, {e.retrying:,} to retry, {e.failed:,} failed, "
            f"{e.skipped:,} skipped",
            highlight=False,
        )
    console.print(
        f"waiting: {left.pending:,} pending ({left.due:,} due now), {left.failed:,} failed",
        highlight=False,
    )
