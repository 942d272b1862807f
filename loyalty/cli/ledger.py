"""``jifen verify`` and ``jifen forecast``: reading the ledger, writing nothing."""

from __future__ import annotations

import click

from loyalty import services as svc
from loyalty.cli.options import friendly_errors, open_database, require_program, url_option
from loyalty.cli.render import print_forecast, print_report
from loyalty.services.forecast import forecast as forecast_points


@click.command()
@url_option
@click.option("--show-examples/--no-examples", default=True, help="List offending rows.")
@friendly_errors
def verify(database_url: str | None, show_examples: bool) -> None:
    """Check the ledger's invariants over the whole database; exit 1 if any fails."""
    database = open_database(database_url)
    try:
        report = svc.verify_ledger(database)
    finally:
        database.dispose()
    print_report(report, show_examples=show_examples)
    if not report.ok:
        raise SystemExit(1)


@click.command("forecast")
@url_option
@click.option("--program", required=True, metavar="CODE", help="The program's code.")
@click.option(
    "--days",
    type=click.IntRange(0, 3660),
    default=90,
    show_default=True,
    help="How many days ahead to look.",
)
@click.option("--member", metavar="ID", help="Only this member (their external id).")
@friendly_errors
def forecast_command(database_url: str | None, program: str, days: int, member: str | None) -> None:
    """Show the points that will expire or be cleared in the next DAYS days, per local date.

    Rolling expiry and year-end clearing both count, each lot once; points already due but not
    swept yet count as due now. Held and frozen points are in flight and shown apart. Nothing
    is written.
    """
    database = open_database(database_url)
    try:
        require_program(database, program)
        result = forecast_points(database, program=program, days=days, member=member)
    finally:
        database.dispose()
    print_forecast(result, by_member=member is not None)
