"""``jifen tiers``: member tiers (会员等级) from a shell: the versions, the ladder in force,
publishing and cancelling a version, the evaluation sweep with progress, the forecast, one
member's progress and history, and a manual change or lock.

Every command calls the tier services; changes name the actor ``cli:<OS user>``. Times are
shown in the program's time zone, and times given without an offset are read in it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from loyalty import services as svc
from loyalty.cli.options import friendly_errors, open_database, require_program
from loyalty.cli.options import url_option as database_option
from loyalty.cli.render import console, err_console, table
from loyalty.cli.rewards import cli_actor, local
from loyalty.db.database import Database
from loyalty.domain.calendar import zone
from loyalty.domain.rules import format_ratio
from loyalty.domain.tiers import Tier, TierRules
from loyalty.errors import InvalidInput, MemberNotFound
from loyalty.jobs.runs import JobRunInfo, run_job
from loyalty.services.results import SweepResult
from loyalty.services.tier_results import TierChangeInfo, TierForecast, TierProgress

program_option = click.option(
    "--program", required=True, metavar="CODE", help="The program's code."
)
member_argument = click.argument("member", metavar="MEMBER")


@contextmanager
def tier_database(database_url: str | None, program: str) -> Iterator[Database]:
    """The database, with the program checked; an unknown member says how to look it up."""
    database = open_database(database_url)
    try:
        require_program(database, program)
        yield database
    except MemberNotFound as exc:
        raise MemberNotFound(
            f"{exc.message}; give the member's external id as your shop knows it "
            "(the console's Members page lists them)",
            **exc.details,
        ) from None
    finally:
        database.dispose()


def timezone_of(database: Database, program: str) -> str:
    return svc.get_program(database, program).timezone


def no_tiers(program: str) -> str:
    return (
        f"program {program} has no tiers in force; publish a ladder with "
        f"`jifen tiers publish --program {program} FILE.json`"
    )


def parse_moment(text: str, timezone: str, option: str) -> dt.datetime:
    """A date (its start) or a date and time; without an offset it is read in ``timezone``."""
    try:
        parsed = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(
            f"{option} {text!r:.40} is not a date or time; write 2027-01-01 or "
            f"2027-01-01T08:00 (read in {timezone}), or add an offset like +08:00"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone(timezone))
    return parsed.astimezone(dt.UTC)


@click.group("tiers")
def tiers_group() -> None:
    """Member tiers (会员等级): the ladder, evaluations, forecasts and manual changes."""


# --- versions and the ladder -------------------------------------------------------------


def ladder_text(rules: dict[str, Any]) -> str:
    """A version's ladder in one line: ``member 0 < silver 1,000 < gold 5,000``."""
    return " < ".join(f"{t['code']} {int(t['threshold']):,}" for t in rules["tiers"])


@tiers_group.command("list")
@database_option
@program_option
@friendly_errors
def list_command(database_url: str | None, program: str) -> None:
    """List the program's tier versions, oldest first: when each took (or takes) effect,
    its ladder, and which one is in force."""
    with tier_database(database_url, program) as database:
        versions = svc.list_tier_versions(database, program=program)
        in_force = svc.tiers_in_force(database, program=program)
        timezone = timezone_of(database, program)
        now = database.clock.now()
    if not versions:
        console.print(no_tiers(program), highlight=False)
        return
    current = None if in_force is None else in_force[0]
    shown = table(
        f"Tier versions of {program} (times in {timezone})",
        ("version", "effective from", "measure", "ladder", "state"),
        right=("version",),
    )
    for v in versions:
        state = (
            "in force"
            if v.version == current
            else "scheduled"
            if v.effective_from_at > now
            else "replaced"
        )
        measure = str(v.rules.get("measure", "points"))
        shown.add_row(
            str(v.version), local(v.effective_from_at, timezone), measure, ladder_text(v.rules),
            state,
        )  # fmt: skip
    console.print(shown)


def tier_row(tier: Tier, members: int | None) -> tuple[str, ...]:
    return (
        tier.code,
        tier.name,
        f"{tier.threshold:,}",
        format_ratio(tier.multiplier),
        "; ".join(tier.benefits),
        "-" if members is None else f"{members:,}",
    )


def rules_lines(rules: TierRules) -> list[str]:
    """How the ladder qualifies and is kept, line by line."""
    window = (
        f"rolling {rules.window_months} months"
        if rules.window == "rolling"
        else f"{rules.window} window"
    )
    counted = ", ".join(rules.counted_sources())
    return [
        f"measure: {rules.measure} (counted: {counted}), window: {window}",
        f"period: {rules.period_months} months from the {rules.anchor}, grace {rules.grace_days}"
        f" days, downgrade: {rules.downgrade}, on reversal: {rules.on_reversal}",
    ]


@tiers_group.command("show")
@database_option
@program_option
@click.option("--json", "as_json", is_flag=True, help="Print the version in force as JSON.")
@friendly_errors
def show_command(database_url: str | None, program: str, as_json: bool) -> None:
    """Show the tiers in force: the ladder with multipliers, benefits and members per tier,
    and how members qualify and keep a tier. Later versions are listed with their time."""
    with tier_database(database_url, program) as database:
        in_force = svc.tiers_in_force(database, program=program)
        timezone = timezone_of(database, program)
        versions = svc.list_tier_versions(database, program=program)
        holding = (
            {} if in_force is None else
            {c.tier: c.members for c in svc.tier_distribution(database, program=program)}
        )  # fmt: skip
    current = None if in_force is None else in_force[0]
    later = [v for v in versions if current is None or v.version > current]
    if as_json:
        print_json(program, in_force, holding, later)
        return
    if in_force is None:
        console.print(no_tiers(program), highlight=False)
    else:
        version, rules = in_force
        shown = table(
            f"Tiers of {program}, version {version}",
            ("code", "name", "threshold", "multiplier", "benefits", "members"),
            right=("threshold", "multiplier", "members"),
        )
        for tier in rules.tiers:
            shown.add_row(*tier_row(tier, holding.get(tier.code, 0)))
        console.print(shown)
        for line in rules_lines(rules):
            console.print(line, markup=False, highlight=False)
    for v in later:
        when = local(v.effective_from_at, timezone)
        console.print(f"version {v.version} takes effect {when}", highlight=False)


def print_json(
    program: str,
    in_force: tuple[int, TierRules] | None,
    holding: dict[str, int],
    later: list[Any],
) -> None:
    """``show --json``: the version in force, members per tier and the versions to come."""
    found: dict[str, Any] = {"program": program, "tiers_enabled": in_force is not None}
    if in_force is not None:
        found.update(version=in_force[0], rules=in_force[1].to_dict(), members=holding)
    found["scheduled"] = [v.to_record() for v in later]
    click.echo(json.dumps(found, ensure_ascii=False, indent=2))


def read_rules(path: Path) -> dict[str, Any]:
    """The tier rules in a JSON file: an object with a ``tiers`` list."""
    try:
        found = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(
            f"{path} is not UTF-8 JSON ({exc}); fix the file and publish again"
        ) from None
    if not isinstance(found, dict):
        raise InvalidInput(
            f"{path} holds a JSON {type(found).__name__}; it must hold an object with a "
            '"tiers" list (`jifen tiers show --json` prints one)'
        )
    return found


@tiers_group.command("publish")
@database_option
@program_option
@click.argument(
    "file", metavar="FILE.json", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--effective-from",
    metavar="WHEN",
    help="When the version takes effect (default: now), e.g. 2027-01-01 or 2027-01-01T08:00, "
    "read in the program's time zone unless it has an offset.",
)
@friendly_errors
def publish_command(
    database_url: str | None, program: str, file: Path, effective_from: str | None
) -> None:
    """Publish a new tier version from a JSON file (the "rules" of `show --json`).

    A version never acts on the past, and it must keep every tier that members hold.
    """
    rules = read_rules(file)
    with tier_database(database_url, program) as database:
        timezone = timezone_of(database, program)
        start = None
        if effective_from is not None:
            start = parse_moment(effective_from, timezone, "--effective-from")
        info = svc.publish_tiers_audited(
            database, program=program, rules=rules, effective_from=start, actor=cli_actor()
        )
    console.print(
        f"published tier version {info.version} of {program}: {ladder_text(info.rules)}, "
        f"in force from {local(info.effective_from_at, timezone)}",
        highlight=False,
    )


@tiers_group.command("cancel")
@database_option
@program_option
@click.argument("version", metavar="VERSION", type=click.IntRange(1))
@friendly_errors
def cancel_command(database_url: str | None, program: str, version: int) -> None:
    """Cancel a tier version before it takes effect (`jifen tiers list` shows the versions)."""
    with tier_database(database_url, program) as database:
        info = svc.cancel_tiers_audited(
            database, program=program, version=version, actor=cli_actor()
        )
    console.print(
        f"cancelled tier version {info.version} of {program}; its number is not given again",
        highlight=False,
    )


# --- the evaluation sweep and the forecast ------------------------------------------------


@tiers_group.command("evaluate")
@database_option
@click.option("--program", metavar="CODE", help="Only this program (default: every program).")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=500,
    show_default=True,
    help="Members per transaction.",
)
@friendly_errors
def evaluate_command(database_url: str | None, program: str | None, batch_size: int) -> None:
    """Evaluate every member whose tier evaluation is due: keep, move down or up.

    A line per batch shows the running count. The run is recorded in job_runs (job
    'tiers', trigger 'cli'); running it twice, or next to the scheduled job, is safe.
    """
    database = open_database(database_url)
    try:
        if program is not None:
            require_program(database, program)
        run = run_job(
            database,
            "tiers",
            trigger="cli",
            on_progress=batch_line,
            program=program,
            batch_size=batch_size,
        )
    finally:
        database.dispose()
    console.print(evaluated_text(run), highlight=False)


def batch_line(totals: SweepResult) -> None:
    """The progress line of one committed batch, on stderr."""
    err_console.print(
        f"batch {totals.batches:,}: {totals.items:,} members evaluated", highlight=False
    )


def evaluated_text(run: JobRunInfo) -> str:
    d = run.details
    if not run.items:
        return f"no tier evaluation was due (run {run.id})"
    return (
        f"evaluated {run.items:,} members in {run.batches:,} batches: {d.get('up', 0):,} up, "
        f"{d.get('kept', 0):,} kept, {d.get('down', 0):,} down (run {run.id})"
    )


@tiers_group.command("place")
@database_option
@program_option
@friendly_errors
def place_command(database_url: str | None, program: str) -> None:
    """Move every member up to the tier their measure supports (never down).

    Run it after switching tiers on, so members are placed by what they earned before, or
    after a version lowers a threshold; otherwise members move up at their next earn. Safe
    to run again: who is placed already stays. Audited as tiers.place.
    """
    with tier_database(database_url, program) as database:
        placed = svc.place_members_audited(database, program=program, actor=cli_actor())
    console.print(
        f"placed members of {program} by their measure: {placed.up:,} moved up "
        f"in {placed.batches:,} batches",
        highlight=False,
    )


@tiers_group.command("forecast")
@database_option
@program_option
@click.option(
    "--days",
    type=click.IntRange(1, 3660),
    default=90,
    show_default=True,
    help="Evaluations due within this many days.",
)
@friendly_errors
def forecast_command(database_url: str | None, program: str, days: int) -> None:
    """Show what the evaluations due in the next DAYS days would do if nobody earned more:
    members per tier now, and how many would move up, keep their tier or move down."""
    with tier_database(database_url, program) as database:
        if svc.tiers_in_force(database, program=program) is None:
            raise InvalidInput(no_tiers(program))
        found = svc.tier_forecast(database, program=program, days=days)
        timezone = timezone_of(database, program)
    print_tier_forecast(found, timezone)


def print_tier_forecast(found: TierForecast, timezone: str) -> None:
    until = local(found.until_at, timezone)
    shown = table(
        f"Tiers of {found.program} (version {found.tier_version}), evaluations until {until}",
        ("tier", "name", "threshold", "members now", "moving to"),
        right=("threshold", "members now"),
    )
    for count in found.holding:
        moves = found.moves.get(count.tier, {})
        moving = ", ".join(f"{to}: {n:,}" for to, n in moves.items() if to != count.tier)
        shown.add_row(
            count.tier, count.name, f"{count.threshold:,}", f"{count.members:,}", moving or "-"
        )
    console.print(shown)
    console.print(f"{found.up:,} up, {found.keep:,} keep, {found.down:,} down", highlight=False)


# --- one member ---------------------------------------------------------------------------


def progress_lines(p: TierProgress, timezone: str) -> list[str]:
    """What ``member`` prints about where a member stands."""
    lines = [
        f"{p.member}: {p.tier_name} ({p.tier}), since {local(p.tier_since_at, timezone)}, "
        f"earns x{p.multiplier}",
        f"measure: {p.measure:,} {p.measure_kind} (tier version {p.tier_version})",
    ]
    if p.next_tier is not None and p.to_next_tier is not None:
        lines.append(
            f"next tier: {p.next_tier_name} ({p.next_tier}) at {p.next_threshold:,}, "
            f"{p.to_next_tier:,} to go"
        )
    else:
        lines.append("next tier: none (top tier)")
    if p.to_keep_tier is not None:
        lines.append(
            f"to keep the tier at the evaluation {local(p.evaluate_at, timezone)}: "
            f"{p.to_keep_tier:,} more"
        )
    if p.lock is not None:
        lines.append(f"locked at {p.lock} until {local(p.locked_until_at, timezone)}")
    if p.benefits:
        lines.append(f"benefits: {'; '.join(p.benefits)}")
    return lines


def history_row(c: TierChangeInfo, timezone: str) -> tuple[str, ...]:
    note = c.note or ""
    if c.locked_until_at is not None:
        note = f"{note} (locked until {local(c.locked_until_at, timezone)})".strip()
    return (
        local(c.created_at, timezone),
        c.from_tier or "-",
        c.to_tier or "-",
        c.reason,
        f"{c.measure:,}",
        str(c.tier_version),
        c.actor or "",
        note,
    )


@tiers_group.command("member")
@database_option
@program_option
@member_argument
@click.option(
    "--limit", type=click.IntRange(1, 1000), default=20, show_default=True,
    help="History entries shown.",
)  # fmt: skip
@friendly_errors
def member_command(database_url: str | None, program: str, member: str, limit: int) -> None:
    """Show a member's tier, measure, what the next tier and keeping this one need, and the
    tier history, newest first."""
    with tier_database(database_url, program) as database:
        progress = svc.tier_progress(database, program=program, member=member)
        history = svc.tier_history(database, program=program, member=member, limit=limit)
        timezone = timezone_of(database, program)
    if not progress.tiers_enabled:
        console.print(no_tiers(program), highlight=False)
    else:
        for line in progress_lines(progress, timezone):
            console.print(line, markup=False, highlight=False)
    if not history:
        console.print("no tier history yet", highlight=False)
        return
    shown = table(
        f"Tier history of {member} (newest first, times in {timezone})",
        ("when", "from", "to", "reason", "measure", "version", "actor", "note"),
        right=("measure", "version"),
    )
    for change in history:
        shown.add_row(*history_row(change, timezone))
    console.print(shown)


@tiers_group.command("set")
@database_option
@program_option
@member_argument
@click.argument("tier", metavar="TIER")
@click.option("--reason", required=True, help="Why (kept in the member's tier history).")
@click.option(
    "--change-id",
    required=True,
    metavar="ID",
    help="Your id for this change; running the command again with it changes nothing.",
)
@click.option(
    "--lock-until",
    metavar="WHEN",
    help="Also hold the member at TIER or above until then (e.g. 2027-06-30), read in the "
    "program's time zone unless it has an offset.",
)
@friendly_errors
def set_command(
    database_url: str | None,
    program: str,
    member: str,
    tier: str,
    reason: str,
    change_id: str,
    lock_until: str | None,
) -> None:
    """Put a member at TIER by hand (the tier code), with a reason; with --lock-until, lock
    them there: evaluations and refunds never move them below it until then."""
    with tier_database(database_url, program) as database:
        timezone = timezone_of(database, program)
        until = None if lock_until is None else parse_moment(lock_until, timezone, "--lock-until")
        change = svc.set_member_tier_audited(
            database,
            program=program,
            member=member,
            tier=tier,
            reason=reason,
            change_id=change_id,
            actor=cli_actor(),
            locked_until=until,
        )
    done = "already done: " if change.replayed else ""
    was = "" if change.from_tier is None else f" from {change.from_tier}"
    text = f"{done}{member} moved{was} to {change.to_tier}"
    if change.locked_until_at is not None:
        text += f", locked until {local(change.locked_until_at, timezone)}"
    console.print(text, highlight=False)
