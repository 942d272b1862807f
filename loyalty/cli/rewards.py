"""``jifen rewards``: the reward catalog from a shell: list and show rewards, fill coupon code
pools (import a CSV or generate codes, with progress) and list redemptions.

Every command calls the catalog's services; changes are audited with the actor ``cli:<OS
user>``. Times are shown in the program's time zone, numbers with thousands separators.
"""

from __future__ import annotations

import datetime as dt
import getpass
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from loyalty import services as svc
from loyalty.cli.options import friendly_errors, open_database, require_program
from loyalty.cli.options import url_option as database_option
from loyalty.cli.render import console, err_console, table
from loyalty.db.database import Database
from loyalty.domain.calendar import zone
from loyalty.domain.money import minor_unit_exponent
from loyalty.domain.rewards import (
    DEFAULT_ALPHABET,
    OPEN_STATES,
    RewardTerms,
    generate_codes,
    parse_code_csv,
)
from loyalty.errors import InvalidInput, LoyaltyError, RewardNotFound
from loyalty.services.reward_results import RewardInfo, RewardRedemptionResult

# Codes go into the pool in slices of this many, one transaction each, so a large file shows
# progress and no transaction holds a huge insert.
CODES_PER_SLICE = 10_000
STATES = (*OPEN_STATES, "delivered", "cancelled")

program_option = click.option(
    "--program", required=True, metavar="CODE", help="The program's code."
)
reward_argument = click.argument("reward", metavar="REWARD")


def cli_actor() -> str:
    """Who the audit log names for a change made here: ``cli:`` and the OS user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in the environment or the password database
        return "cli"


@contextmanager
def catalog(database_url: str | None, program: str) -> Iterator[Database]:
    """The database, with the program checked; an unknown reward says how to find the codes."""
    database = open_database(database_url)
    try:
        require_program(database, program)
        yield database
    except RewardNotFound as exc:
        raise RewardNotFound(
            f"{exc.message}; `jifen rewards list --program {program}` shows the rewards",
            **exc.details,
        ) from None
    finally:
        database.dispose()


@click.group("rewards")
def rewards_group() -> None:
    """The reward catalog (积分商城): rewards, coupon code pools and redemptions."""


# --- list and show ----------------------------------------------------------------------


def state_of(info: RewardInfo, now: dt.datetime) -> str:
    """A reward's state in a word: retired, hidden, not started, ended or on sale."""
    terms = RewardTerms.from_dict(info.terms, kind=info.kind)
    if info.retired_at is not None:
        return "retired"
    if terms.active_from is not None and now < terms.active_from:
        return "not started"
    if terms.active_until is not None and now >= terms.active_until:
        return "ended"
    if not terms.visible:
        return "hidden"
    if info.stock_left == 0:
        return "sold out"
    return "on sale"


def stock_text(value: int | None) -> str:
    """A stock figure; ``None`` is no limit."""
    return "no limit" if value is None else f"{value:,}"


@rewards_group.command("list")
@database_option
@program_option
@friendly_errors
def list_command(database_url: str | None, program: str) -> None:
    """List the program's rewards: price, stock left, issued and state.

    Hidden and retired rewards are listed too.
    """
    with catalog(database_url, program) as database:
        found = svc.list_catalog(database, program=program)
        now = database.clock.now()
    if not found:
        console.print(f"no rewards in {program} yet: create them in the console (/rewards)")
        return
    shown = table(
        f"Rewards of {program}",
        ("code", "kind", "name", "price", "stock left", "issued", "cancelled", "state"),
        right=("price", "stock left", "issued", "cancelled"),
    )
    for info in found:
        shown.add_row(
            info.code,
            info.kind,
            str(info.terms.get("name", "")),
            f"{int(info.terms['points']):,}",
            stock_text(info.stock_left),
            f"{info.issued:,}",
            f"{info.cancelled:,}",
            state_of(info, now),
        )
    console.print(shown)


def money(amount_minor: int, currency: str) -> str:
    """An amount in minor units in its currency: ``12.50 CNY``."""
    exponent = minor_unit_exponent(currency)
    return f"{amount_minor / 10**exponent:,.{exponent}f} {currency}"


def local(at: dt.datetime | None, timezone: str) -> str:
    """A moment in the program's time zone, or a dash."""
    return "-" if at is None else f"{at.astimezone(zone(timezone)):%Y-%m-%d %H:%M} {timezone}"


def stock_line(info: RewardInfo) -> str:
    """The stock in words: no limit, or what is left of what was added."""
    if info.stock_added is None:
        return "stock: no limit"
    return f"stock: {stock_text(info.stock_left)} left of {info.stock_added:,} added"


def window(terms: RewardTerms, timezone: str) -> str:
    """When a reward is on sale, in the program's time zone."""
    parts = []
    if terms.active_from is not None:
        parts.append(f"from {local(terms.active_from, timezone)}")
    if terms.active_until is not None:
        parts.append(f"until {local(terms.active_until, timezone)}")
    return " ".join(parts) or "always"


def reward_lines(info: RewardInfo, currency: str, timezone: str, now: dt.datetime) -> list[str]:
    """What ``rewards show`` prints about a reward, line by line."""
    terms = RewardTerms.from_dict(info.terms, kind=info.kind)
    lines = [
        f"{info.code}: {terms.name} ({info.kind}, version {info.version}, {state_of(info, now)})",
        f"price: {terms.points:,} points",
        stock_line(info),
        f"issued: {info.issued:,} (cancelled {info.cancelled:,})",
    ]
    if info.kind == "coupon":
        lines.append(f"codes free in the pool: {info.codes_free:,}")
    if terms.description:
        lines.append(f"description: {terms.description}")
    lines.append(f"visible: {'yes' if terms.visible else 'no (hidden)'}")
    lines.append(f"on sale: {window(terms, timezone)}")
    if terms.limits:
        per = ", ".join(f"{n:,} per {period}" for period, n in terms.limits.items())
        lines.append(f"limits per member: {per}")
    if terms.min_balance:
        lines.append(f"minimum balance: {terms.min_balance:,} points")
    if info.kind == "voucher":
        lines.append(
            f"voucher: {money(terms.voucher_amount_minor, currency)} off an order, "
            f"valid {terms.voucher_valid_days:,} days"
        )
    for prize in terms.prizes:
        label = f" ({prize.label})" if prize.label else ""
        lines.append(f"prize: {prize.reward}{label}, {prize.chance_ppm / 10_000:g}% chance")
    for version, effective_from in info.scheduled:
        lines.append(f"version {version} takes effect {local(effective_from, timezone)}")
    lines.append(f"created: {local(info.created_at, timezone)}")
    if info.retired_at is not None:
        lines.append(f"retired: {local(info.retired_at, timezone)}")
    return lines


@rewards_group.command("show")
@database_option
@program_option
@reward_argument
@friendly_errors
def show_command(database_url: str | None, program: str, reward: str) -> None:
    """Show one reward: terms in force, stock, issued and its code pool.

    Versions that take effect later are listed with their time in the program's zone.
    """
    with catalog(database_url, program) as database:
        info = svc.get_reward(database, program=program, reward=reward)
        settings = svc.get_program(database, program)
        now = database.clock.now()
    for line in reward_lines(info, settings.currency, settings.timezone, now):
        console.print(line, markup=False, highlight=False)


# --- code pools ---------------------------------------------------------------------------


def add_in_slices(
    database: Database, program: str, reward: str, codes: Sequence[str], what: str
) -> RewardInfo:
    """Add ``codes`` to a coupon's pool in slices of :data:`CODES_PER_SLICE`, with a
    progress bar on stderr. A slice refused after others were added says how many were."""
    progress = Progress(
        TextColumn(f"{what:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    require_coupon(svc.get_reward(database, program=program, reward=reward))
    added = 0
    info: RewardInfo | None = None
    with progress:
        task = progress.add_task(what, total=len(codes))
        for start in range(0, len(codes), CODES_PER_SLICE):
            part = codes[start : start + CODES_PER_SLICE]
            try:
                info = svc.add_codes(
                    database, program=program, reward=reward, codes=part, actor=cli_actor()
                )
            except LoyaltyError as exc:
                if added:
                    exc.message = (
                        f"{exc.message} (the first {added:,} codes were added, the rest were "
                        f"not: import the codes after the first {added:,})"
                    )
                raise
            added += len(part)
            progress.update(task, completed=added)
    assert info is not None  # codes is never empty: parse_code_csv and --count refuse that
    return info


def require_coupon(info: RewardInfo) -> None:
    """Refuse a reward that is not a coupon before any code is read into it."""
    if info.kind != "coupon":
        raise InvalidInput(
            f"reward {info.code!r} is {'an' if info.kind == 'item' else 'a'} {info.kind}; "
            "only coupons have codes (`jifen rewards list` shows each reward's kind)"
        )


def print_added(added: int, info: RewardInfo) -> None:
    console.print(
        f"added {added:,} codes to {info.code}: {info.codes_free:,} free in its pool, "
        f"stock left {stock_text(info.stock_left)}",
        highlight=False,
    )


def read_codes(path: Path) -> list[str]:
    """The codes of a CSV file (see :func:`loyalty.domain.rewards.parse_code_csv`)."""
    try:
        content = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(
            f"{path} is not UTF-8 text; save it as CSV UTF-8 and import again"
        ) from None
    try:
        return parse_code_csv(content)
    except InvalidInput as exc:
        raise InvalidInput(f"{path}: {exc.message}; fix the file and import it again") from None


@rewards_group.command("import-codes")
@database_option
@program_option
@reward_argument
@click.argument(
    "file", metavar="FILE.csv", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@friendly_errors
def import_codes_command(database_url: str | None, program: str, reward: str, file: Path) -> None:
    """Import a coupon's codes from a CSV file into its pool.

    The file's "code" column is used if its first row names one, else its first column;
    blank lines are skipped. A bad or repeated code, or one the pool holds already, is named
    and nothing is added. Large files go in slices of 10,000 codes, with a progress bar.
    """
    codes = read_codes(file)
    with catalog(database_url, program) as database:
        info = add_in_slices(database, program, reward, codes, "importing")
    print_added(len(codes), info)


@rewards_group.command("generate-codes")
@database_option
@program_option
@reward_argument
@click.option(
    "--count", required=True, type=click.IntRange(1, 1_000_000), help="How many codes to make."
)
@click.option(
    "--length",
    type=click.IntRange(4, 64),
    default=10,
    show_default=True,
    help="Random characters per code (after the prefix).",
)
@click.option(
    "--alphabet",
    default=DEFAULT_ALPHABET,
    show_default=True,
    help="The characters codes are made of (ASCII letters and digits).",
)
@click.option("--prefix", default="", help="Put this before every code, e.g. SPRING-.")
@friendly_errors
def generate_codes_command(
    database_url: str | None,
    program: str,
    reward: str,
    count: int,
    length: int,
    alphabet: str,
    prefix: str,
) -> None:
    """Generate random codes into a coupon's pool.

    Codes are distinct and cryptographically random; an alphabet and length that make too
    few possible codes to be hard to guess are refused.
    """
    codes = generate_codes(count, length=length, alphabet=alphabet, prefix=prefix)
    with catalog(database_url, program) as database:
        info = add_in_slices(database, program, reward, codes, "adding")
    print_added(len(codes), info)


# --- redemptions --------------------------------------------------------------------------


def redemption_row(r: RewardRedemptionResult, timezone: str) -> tuple[str, ...]:
    """One redemption as a table row."""
    issued = ", ".join(r.codes) or ", ".join(v.code for v in r.vouchers)
    if r.draw is not None:
        issued = f"draw: {r.draw.awarded or r.draw.reason}"
    return (
        str(r.id),
        f"{r.created_at.astimezone(zone(timezone)):%Y-%m-%d %H:%M}",
        r.member,
        r.reward,
        f"{r.quantity:,}",
        f"{r.points:,}",
        r.status,
        issued,
    )


@rewards_group.command("redemptions")
@database_option
@program_option
@click.option("--status", type=click.Choice(STATES), help="Only redemptions in this state.")
@click.option("--reward", metavar="REWARD", help="Only redemptions of this reward.")
@click.option("--member", metavar="ID", help="Only this member's (their external id).")
@click.option(
    "--limit", type=click.IntRange(1, 200), default=50, show_default=True, help="At most this many."
)
@click.option("--cursor", type=int, metavar="ID", help="Older than this redemption (next page).")
@friendly_errors
def redemptions_command(
    database_url: str | None,
    program: str,
    status: str | None,
    reward: str | None,
    member: str | None,
    limit: int,
    cursor: int | None,
) -> None:
    """List redemptions, newest first, with what each issued."""
    with catalog(database_url, program) as database:
        if reward is not None:
            svc.get_reward(database, program=program, reward=reward)  # unknown: say so
        page = svc.list_redemptions(
            database,
            program=program,
            member=member,
            reward=reward,
            status=status,
            limit=limit,
            cursor=cursor,
        )
        timezone = svc.get_program(database, program).timezone
    if not page.items:
        console.print("no redemptions match", highlight=False)
        return
    shown = table(
        f"Redemptions in {program} (newest first, times in {timezone})",
        ("id", "when", "member", "reward", "qty", "points", "status", "issued"),
        right=("id", "qty", "points"),
    )
    for r in page.items:
        shown.add_row(*redemption_row(r, timezone))
    console.print(shown)
    if page.next_cursor is not None:
        console.print(f"more: add --cursor {page.next_cursor}", highlight=False)
