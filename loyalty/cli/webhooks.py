"""``jifen webhooks``: a program's webhook endpoints from a shell: add, list, show, change,
rotate the secret, disable, enable, send a signed test, browse deliveries and their attempts,
and replay failed ones.

Every command calls :mod:`loyalty.events.endpoints` or :mod:`loyalty.events.delivery`;
changes are audited with the actor ``cli:<OS user>``. A secret is printed once, when an
endpoint is added or its secret rotated, with a warning to store it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

import click

from loyalty.cli.options import friendly_errors, open_database, print_error, require_program
from loyalty.cli.options import url_option as database_option
from loyalty.cli.render import console, table
from loyalty.cli.rewards import cli_actor, local
from loyalty.cli.tiers import parse_moment
from loyalty.db.database import Database
from loyalty.events import delivery as dl
from loyalty.events import endpoints as ep
from loyalty.events.outbox import EVENT_TYPES
from loyalty.services.programs import get_program

program_option = click.option(
    "--program", required=True, metavar="CODE", help="The program's code."
)
endpoint_argument = click.argument("endpoint", type=int, metavar="ENDPOINT")
types_option = click.option(
    "--type",
    "event_types",
    multiple=True,
    metavar="TYPE",
    help="An event type to send (repeat it; default: every type, *). "
    "`jifen webhooks types` lists them.",
)


@contextmanager
def webhooks_database(database_url: str | None, program: str) -> Iterator[Database]:
    """The database, with the program checked."""
    database = open_database(database_url)
    try:
        require_program(database, program)
        yield database
    finally:
        database.dispose()


def timezone_of(database: Database, program: str) -> str:
    return get_program(database, program).timezone


@click.group("webhooks")
def webhooks_group() -> None:
    """Webhook endpoints: where the program's events go, signed (Standard Webhooks)."""


@webhooks_group.command("types")
def types_command() -> None:
    """List the event types an endpoint can subscribe to."""
    shown = table("Event types", ("type", "what it says"))
    for name, description in EVENT_TYPES.items():
        shown.add_row(name, description)
    console.print(shown)


def print_secret(secret: str, endpoint: int) -> None:
    """The secret, once, with what to do with it."""
    click.echo(f"secret: {secret}")  # one line, never wrapped: it is copied
    click.echo(
        f"warning: store this secret now in the receiver of endpoint {endpoint}; it is not "
        "shown again (rotate it to get a new one)",
        err=True,
    )


@webhooks_group.command("add")
@database_option
@program_option
@click.argument("url")
@types_option
@click.option("--description", default=None, help="What the endpoint is for.")
@friendly_errors
def add_command(
    database_url: str | None,
    program: str,
    url: str,
    event_types: tuple[str, ...],
    description: str | None,
) -> None:
    """Add an endpoint at URL and print its signing secret (shown only now).

    URLs that resolve to loopback or private addresses are refused unless the program
    allows them (webhooks_allow_private).
    """
    with webhooks_database(database_url, program) as database:
        created = ep.add_endpoint(
            database,
            program=program,
            url=url,
            event_types=event_types or ("*",),
            description=description,
            actor=cli_actor(),
        )
    info = created.endpoint
    console.print(
        f"added endpoint {info.id} of {program}: {info.url} ({', '.join(info.event_types)})",
        markup=False,
        highlight=False,
    )
    print_secret(created.secret, info.id)


def state_text(info: ep.EndpointInfo) -> str:
    if info.enabled:
        return "enabled" if info.failing_since is None else "enabled, failing"
    return f"disabled: {info.disabled_reason}"


@webhooks_group.command("list")
@database_option
@program_option
@friendly_errors
def list_command(database_url: str | None, program: str) -> None:
    """List the program's endpoints with their deliveries by state and the last attempt."""
    with webhooks_database(database_url, program) as database:
        found = ep.list_endpoints(database, program=program)
        timezone = timezone_of(database, program)
    if not found:
        console.print(
            f"program {program} has no webhook endpoints; add one with "
            f"`jifen webhooks add --program {program} URL`",
            markup=False,
            highlight=False,
        )
        return
    shown = table(
        f"Webhook endpoints of {program} (times in {timezone})",
        ("id", "url", "types", "state", "pending", "failed", "delivered", "last attempt"),
        right=("id", "pending", "failed", "delivered"),
    )
    for info in found:
        shown.add_row(
            str(info.id), info.url, ", ".join(info.event_types), state_text(info),
            f"{info.pending:,}", f"{info.failed:,}", f"{info.delivered:,}",
            last_attempt(info, timezone),
        )  # fmt: skip
    console.print(shown)


def last_attempt(info: ep.EndpointInfo, timezone: str) -> str:
    if info.last_attempt_at is None:
        return "-"
    status = info.last_status_code if info.last_status_code is not None else "no answer"
    return f"{local(info.last_attempt_at, timezone)} ({status})"


@webhooks_group.command("show")
@database_option
@program_option
@endpoint_argument
@friendly_errors
def show_command(database_url: str | None, program: str, endpoint: int) -> None:
    """Show one endpoint and its latest deliveries."""
    with webhooks_database(database_url, program) as database:
        info = ep.get_endpoint(database, program=program, endpoint=endpoint)
        timezone = timezone_of(database, program)
        latest = dl.list_deliveries(database, program=program, endpoint=endpoint, limit=10)
    lines = [
        f"endpoint {info.id} of {program}: {info.url}",
        f"description: {info.description or '-'}",
        f"types: {', '.join(info.event_types)}",
        f"state: {state_text(info)}",
        f"secret: whsec_…{info.secret_hint}"
        + (f" (previous one signs too until {local(info.rotating_until, timezone)})"
           if info.rotating_until else ""),
        f"failing since: {local(info.failing_since, timezone)}",
        f"deliveries: {info.pending:,} pending, {info.failed:,} failed, "
        f"{info.delivered:,} delivered; last attempt {last_attempt(info, timezone)}",
        f"added {local(info.created_at, timezone)}, changed {local(info.updated_at, timezone)}",
    ]  # fmt: skip
    for line in lines:
        console.print(line, markup=False, highlight=False)
    if latest:
        console.print(deliveries_table(latest, timezone, f"Latest deliveries to {info.id}"))


@webhooks_group.command("update")
@database_option
@program_option
@endpoint_argument
@click.option("--url", default=None, help="A new URL (checked like a new endpoint's).")
@types_option
@click.option("--description", default=None, help='A new description ("" clears it).')
@friendly_errors
def update_command(
    database_url: str | None,
    program: str,
    endpoint: int,
    url: str | None,
    event_types: tuple[str, ...],
    description: str | None,
) -> None:
    """Change an endpoint's URL, event types or description; only what is given changes."""
    with webhooks_database(database_url, program) as database:
        info = ep.update_endpoint(
            database,
            program=program,
            endpoint=endpoint,
            url=url,
            event_types=event_types or None,
            description=description,
            actor=cli_actor(),
        )
    console.print(
        f"endpoint {info.id}: {info.url} ({', '.join(info.event_types)})",
        markup=False,
        highlight=False,
    )


@webhooks_group.command("rotate")
@database_option
@program_option
@endpoint_argument
@click.option(
    "--overlap-hours",
    type=int,
    default=24,
    show_default=True,
    help="How long the previous secret keeps signing beside the new one (0: stop at once).",
)
@friendly_errors
def rotate_command(
    database_url: str | None, program: str, endpoint: int, overlap_hours: int
) -> None:
    """Give an endpoint a new signing secret and print it (shown only now)."""
    with webhooks_database(database_url, program) as database:
        created = ep.rotate_secret(
            database,
            program=program,
            endpoint=endpoint,
            overlap_hours=overlap_hours,
            actor=cli_actor(),
        )
        timezone = timezone_of(database, program)
    until = created.endpoint.rotating_until
    console.print(
        f"rotated the secret of endpoint {endpoint}; "
        + (
            f"the previous one signs too until {local(until, timezone)}"
            if until
            else "the previous one no longer signs"
        ),
        markup=False,
        highlight=False,
    )
    print_secret(created.secret, endpoint)


@webhooks_group.command("disable")
@database_option
@program_option
@endpoint_argument
@click.option("--reason", required=True, help="Why (shown in the console and the list).")
@friendly_errors
def disable_command(database_url: str | None, program: str, endpoint: int, reason: str) -> None:
    """Stop sending to an endpoint; its pending deliveries fail (replay them later)."""
    with webhooks_database(database_url, program) as database:
        info = ep.disable_endpoint(
            database, program=program, endpoint=endpoint, reason=reason, actor=cli_actor()
        )
    console.print(
        f"disabled endpoint {info.id}; {info.failed:,} failed deliveries can be replayed "
        f"after `jifen webhooks enable --program {program} {info.id}`",
        markup=False,
        highlight=False,
    )


@webhooks_group.command("enable")
@database_option
@program_option
@endpoint_argument
@friendly_errors
def enable_command(database_url: str | None, program: str, endpoint: int) -> None:
    """Send to an endpoint again (new events; replay failed deliveries to send those)."""
    with webhooks_database(database_url, program) as database:
        info = ep.enable_endpoint(database, program=program, endpoint=endpoint, actor=cli_actor())
    hint = (
        f"; replay its {info.failed:,} failed deliveries with "
        f"`jifen webhooks replay --program {program} --failed --endpoint {info.id}`"
        if info.failed
        else ""
    )
    console.print(f"enabled endpoint {info.id}{hint}", markup=False, highlight=False)


@webhooks_group.command("test")
@database_option
@program_option
@endpoint_argument
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True, max=300),
    default=dl.DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds to wait for the receiver.",
)
@friendly_errors
def test_command(database_url: str | None, program: str, endpoint: int, timeout: float) -> None:
    """Send a signed webhook.test event to an endpoint now and show the answer (exit status
    1 when it is not a 2xx)."""
    with webhooks_database(database_url, program) as database:
        attempt = dl.send_test(
            database, program=program, endpoint=endpoint, actor=cli_actor(), timeout=timeout
        )
    if attempt.ok:
        console.print(
            f"endpoint {endpoint} answered {attempt.status_code} in {attempt.latency_ms} ms",
            markup=False,
            highlight=False,
        )
        return
    print_error(
        f"endpoint {endpoint} did not accept the test: {attempt.error} "
        f"({attempt.latency_ms} ms); check the URL, that the receiver is up and that it "
        "answers 2xx"
    )
    raise SystemExit(1)


def deliveries_table(found: tuple[dl.DeliveryInfo, ...], timezone: str, title: str) -> object:
    shown = table(
        f"{title} (times in {timezone})",
        ("id", "endpoint", "event", "type", "member", "status", "attempts", "last", "next"),
        right=("id", "endpoint", "attempts"),
    )
    for d in found:
        last = "-" if d.last_attempt_at is None else (
            f"{local(d.last_attempt_at, timezone)} "
            f"({d.last_status_code if d.last_status_code is not None else d.last_error})"
        )  # fmt: skip
        upcoming = local(d.next_attempt_at, timezone) if d.status == "pending" else "-"
        shown.add_row(
            str(d.id), str(d.endpoint_id), d.event_id, d.event_type, d.member or "-", d.status,
            str(d.attempts), last, upcoming,
        )  # fmt: skip
    return shown


@webhooks_group.command("deliveries")
@database_option
@program_option
@click.option("--endpoint", type=int, default=None, help="Only this endpoint's.")
@click.option("--status", type=click.Choice(dl.STATUSES), default=None, help="Only these.")
@click.option("--limit", type=click.IntRange(1, dl.MAX_PAGE), default=50, show_default=True)
@click.option("--before", type=int, default=None, help="Page on: deliveries older than this id.")
@click.option("--id", "delivery", type=int, default=None, help="Show one, with every attempt.")
@friendly_errors
def deliveries_command(
    database_url: str | None,
    program: str,
    endpoint: int | None,
    status: str | None,
    limit: int,
    before: int | None,
    delivery: int | None,
) -> None:
    """List deliveries, newest first, or show one with its attempts (--id)."""
    with webhooks_database(database_url, program) as database:
        timezone = timezone_of(database, program)
        if delivery is not None:
            detail = dl.delivery_detail(database, program=program, delivery=delivery)
        else:
            found = dl.list_deliveries(
                database,
                program=program,
                endpoint=endpoint,
                status=status,
                limit=limit,
                before=before,
            )
    if delivery is not None:
        print_detail(detail, timezone)
        return
    if not found:
        console.print("no deliveries match", highlight=False)
        return
    console.print(deliveries_table(found, timezone, f"Webhook deliveries of {program}"))
    if len(found) == limit:
        console.print(f"older ones: --before {found[-1].id}", highlight=False)


def print_detail(detail: dl.DeliveryDetail, timezone: str) -> None:
    d = detail.delivery
    console.print(
        f"delivery {d.id}: {d.event_type} {d.event_id} to endpoint {d.endpoint_id}, "
        f"{d.status} after {d.attempts} attempt(s)",
        markup=False,
        highlight=False,
    )
    shown = table(
        f"Attempts (times in {timezone})",
        ("at", "status", "ms", "error", "response"),
        right=("ms",),
    )
    for a in detail.attempts:
        shown.add_row(
            local(a.attempted_at, timezone), "-" if a.status_code is None else str(a.status_code),
            str(a.latency_ms), a.error or "", (a.response_excerpt or "")[:80],
        )  # fmt: skip
    console.print(shown)


@webhooks_group.command("replay")
@database_option
@program_option
@click.argument("delivery", type=int, required=False, metavar="[DELIVERY]")
@click.option("--failed", "all_failed", is_flag=True, help="Every failed delivery.")
@click.option("--endpoint", type=int, default=None, help="With --failed: only this endpoint's.")
@click.option(
    "--since",
    default=None,
    metavar="WHEN",
    help="With --failed: only those last tried at or after WHEN (program time zone).",
)
@friendly_errors
def replay_command(
    database_url: str | None,
    program: str,
    delivery: int | None,
    all_failed: bool,
    endpoint: int | None,
    since: str | None,
) -> None:
    """Send a failed delivery again (DELIVERY), or every failed one (--failed); the next
    `jifen events deliver` sends them."""
    if (delivery is None) == (not all_failed):
        raise click.UsageError("give a DELIVERY id or --failed (not both)")
    if delivery is not None and (endpoint is not None or since is not None):
        raise click.UsageError("--endpoint and --since go with --failed")
    with webhooks_database(database_url, program) as database:
        if delivery is not None:
            info = dl.replay_delivery(
                database, program=program, delivery=delivery, actor=cli_actor()
            )
            console.print(f"delivery {info.id} is due again", highlight=False)
            return
        start = None if since is None else _moment(since, timezone_of(database, program))
        count = dl.replay_failed(
            database, program=program, endpoint=endpoint, since=start, actor=cli_actor()
        )
    console.print(f"{count:,} failed deliveries are due again", highlight=False)


def _moment(text: str, timezone: str) -> dt.datetime:
    return parse_moment(text, timezone, "--since")
