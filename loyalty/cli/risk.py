"""``jifen risk``: risk control (风控) from a shell: the rules in force with their sentences,
publishing a version from a JSON file (``--dry-run`` shows the sentences and publishes
nothing), the version history, the risk scan, the cases (list, show, assign, resolve) and a
member's account freeze (账户冻结) and hold.

Every command calls the risk services; changes are audited with the actor ``cli:<OS
user>``. Times are shown in the program's time zone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from loyalty import services as svc
from loyalty.cli.options import friendly_errors, open_database, require_program
from loyalty.cli.options import url_option as database_option
from loyalty.cli.render import console, table
from loyalty.cli.rewards import cli_actor, local
from loyalty.cli.tiers import tier_database
from loyalty.db.database import Database
from loyalty.domain.risk import RiskRules
from loyalty.errors import InvalidInput, RiskCaseNotFound
from loyalty.jobs.runs import run_job
from loyalty.services.risk_cases import CASE_STATUSES, MAX_PAGE, OUTCOMES, RiskCaseInfo
from loyalty.services.risk_review import MemberRiskState, counted, member_risk_state, scan_words
from loyalty.services.risk_rules import RiskRulesInfo

program_option = click.option(
    "--program", required=True, metavar="CODE", help="The program's code."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead.")
member_argument = click.argument("member", metavar="MEMBER")
case_argument = click.argument("case_id", metavar="ID", type=click.IntRange(1, 2**63 - 1))


@contextmanager
def risk_database(database_url: str | None, program: str) -> Iterator[Database]:
    """The database, with the program checked; an unknown member or case says how to find one."""
    try:
        with tier_database(database_url, program) as database:
            yield database
    except RiskCaseNotFound as exc:
        raise RiskCaseNotFound(
            f"{exc.message}; `jifen risk cases list --program {program} --status all` "
            "lists the cases",
            **exc.details,
        ) from None


def timezone_of(database: Database, program: str) -> str:
    return svc.get_program(database, program).timezone


def echo_json(found: Any) -> None:
    click.echo(json.dumps(found, ensure_ascii=False, indent=2, default=str))


def say(text: str) -> None:
    """One plain line (no markup, no highlighting: ids and notes are printed as given)."""
    console.print(text, markup=False, highlight=False)


@click.group("risk")
def risk_group() -> None:
    """Risk control (风控): rules, the scan, cases, account freeze and holds."""


@risk_group.group("rules")
def rules_group() -> None:
    """The risk rules: show them in sentences, publish a version, list the versions."""


@risk_group.group("cases")
def cases_group() -> None:
    """Risk cases under review: list, show, assign and resolve them."""


# --- rules ----------------------------------------------------------------------------------


def no_rules(program: str) -> str:
    return (
        f"program {program} has no risk rules in force (risk control is off); publish some "
        f"with `jifen risk rules set --program {program} FILE.json`"
    )


def print_sentences(rules: dict[str, Any]) -> None:
    """Each rule: its id, kind and action, then its sentence in English and in Chinese."""
    for rule in RiskRules.from_dict(rules).rules:
        say(f"{rule.id} ({rule.kind}, {rule.action})")
        say(f"  {rule.explain()}")
        say(f"  {rule.explain_zh()}")


def version_line(info: RiskRulesInfo, timezone: str) -> str:
    note = f": {info.note}" if info.note else ""
    return (
        f"risk rules version {info.version} of {info.program}, "
        f"{counted(len(info.sentences), 'rule')}, published {local(info.created_at, timezone)} "
        f"by {info.created_by or '-'}{note}"
    )


@rules_group.command("show")
@database_option
@program_option
@click.option("--version", type=click.IntRange(1), help="A past version (default: in force).")
@json_option
@friendly_errors
def rules_show(database_url: str | None, program: str, version: int | None, as_json: bool) -> None:
    """Show the risk rules in force (or version N), each with its sentence in English and
    Chinese. With --json, the version as JSON: its "rules" is what `rules set` takes."""
    with risk_database(database_url, program) as database:
        info = svc.risk_rules(database, program=program, version=version)
        timezone = timezone_of(database, program)
    if as_json:
        echo_json(None if info is None else info.to_record())
        return
    if info is None:
        say(no_rules(program))
        return
    say(version_line(info, timezone))
    if not info.sentences:
        say("no rules: risk control is off")
    print_sentences(info.rules)


def read_rules(path: Path) -> dict[str, Any]:
    """The rule set in a JSON file: ``{"rules": [...]}``, or what `rules show --json` prints."""
    try:
        found = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(
            f"{path} is not UTF-8 JSON ({exc}); fix the file and try again"
        ) from None
    if isinstance(found, dict) and isinstance(found.get("rules"), dict):
        found = found["rules"]  # the output of `jifen risk rules show --json`
    if not isinstance(found, dict):
        raise InvalidInput(
            f"{path} holds a JSON {type(found).__name__}; it must hold an object with a "
            '"rules" list (`jifen risk rules show --json` prints one)'
        )
    return found


def changes_lines(before: dict[str, Any] | None, after: dict[str, Any]) -> list[str]:
    """What ``after`` changes from ``before``: rules added, removed and changed, by id."""
    old = {r.id: r.to_dict() for r in RiskRules.from_dict(before or {}).rules}
    new = {r.id: r.to_dict() for r in RiskRules.from_dict(after).rules}
    lines = [f"adds {rid}" for rid in new if rid not in old]
    lines += [f"removes {rid}" for rid in old if rid not in new]
    lines += [f"changes {rid}" for rid in new if rid in old and old[rid] != new[rid]]
    return lines or ["no change from the rules in force"]


@rules_group.command("set")
@database_option
@program_option
@click.argument(
    "file", metavar="FILE.json", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--note", help="Why this version (kept with it and in the audit log).")
@click.option(
    "--dry-run", is_flag=True, help="Check the file and print the sentences; publish nothing."
)
@friendly_errors
def rules_set(
    database_url: str | None, program: str, file: Path, note: str | None, dry_run: bool
) -> None:
    """Publish a new version of the risk rules from a JSON file, in force now.

    The file holds {"rules": [...]} (see `jifen risk rules show --json`); an empty list
    turns risk control off. A bad rule is refused, naming it, and nothing is published.
    """
    rules = read_rules(file)
    parsed = RiskRules.from_dict(rules).to_dict()
    with risk_database(database_url, program) as database:
        current = svc.risk_rules(database, program=program)
        lines = changes_lines(None if current is None else current.rules, parsed)
        if dry_run:
            print_sentences(parsed)
            for line in lines:
                say(line)
            say("dry run: nothing was published")
            return
        info = svc.publish_risk_rules(
            database, program=program, rules=rules, actor=cli_actor(), note=note
        )
        timezone = timezone_of(database, program)
    say(f"published {version_line(info, timezone)}; in force now")
    for line in lines:
        say(line)
    print_sentences(info.rules)


@rules_group.command("history")
@database_option
@program_option
@json_option
@friendly_errors
def rules_history(database_url: str | None, program: str, as_json: bool) -> None:
    """List the published versions of the risk rules, newest first: who, when, why."""
    with risk_database(database_url, program) as database:
        versions = svc.risk_rule_versions_of(database, program=program)
        current = svc.risk_rules(database, program=program)
        timezone = timezone_of(database, program)
    if as_json:
        echo_json([v.to_record() for v in versions])
        return
    if not versions:
        say(no_rules(program))
        return
    shown = table(
        f"Risk rule versions of {program} (times in {timezone})",
        ("version", "published", "by", "rules", "note", "state"),
        right=("version", "rules"),
    )
    for v in versions:
        state = "in force" if current is not None and v.version == current.version else ""
        shown.add_row(
            str(v.version), local(v.created_at, timezone), v.created_by or "-",
            str(len(v.sentences)), v.note or "", state,
        )  # fmt: skip
    console.print(shown)


# --- the scan -------------------------------------------------------------------------------


@risk_group.command("scan")
@database_option
@click.option("--program", metavar="CODE", help="Only this program (default: every program).")
@friendly_errors
def scan_command(database_url: str | None, program: str | None) -> None:
    """Evaluate the flag and hold rules now (the `risk` job, which also runs every minute):
    open cases, add to open ones, put members on hold. Recorded in job_runs (trigger
    'cli'); running it twice opens nothing new."""
    database = open_database(database_url)
    try:
        if program is not None:
            require_program(database, program)
        run = run_job(database, "risk", trigger="cli", program=program)
    finally:
        database.dispose()
    say(f"risk scan (run {run.id}): {scan_words(run.details, run.items)}")


# --- cases ----------------------------------------------------------------------------------


def subject_text(case: RiskCaseInfo) -> str:
    if case.member:
        return f"member {case.member}"
    return "the whole program" if case.subject == "program" else case.subject


@cases_group.command("list")
@database_option
@program_option
@click.option(
    "--status",
    type=click.Choice((*CASE_STATUSES, "all")),
    default="open",
    show_default=True,
    help="Which cases.",
)
@click.option("--rule", metavar="RULE_ID", help="Only the cases of this rule.")
@click.option("--member", metavar="MEMBER", help="Only the cases of this member.")
@click.option(
    "--limit", type=click.IntRange(1, MAX_PAGE), default=50, show_default=True,
    help="Cases shown.",
)  # fmt: skip
@json_option
@friendly_errors
def cases_list(
    database_url: str | None,
    program: str,
    status: str,
    rule: str | None,
    member: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List risk cases, newest tripped first (open ones by default)."""
    with risk_database(database_url, program) as database:
        found = svc.list_risk_cases(
            database,
            program=program,
            status=None if status == "all" else status,
            rule_id=rule,
            member=member,
            limit=limit,
        )
        timezone = timezone_of(database, program)
    if as_json:
        echo_json({"total": found.total, "items": [c.to_record() for c in found.items]})
        return
    if not found.items:
        say(f"no {'' if status == 'all' else status + ' '}risk cases in {program}")
        return
    shown = table(
        f"Risk cases of {program}: {len(found.items):,} of {found.total:,} "
        f"(newest tripped first, times in {timezone})",
        ("id", "last tripped", "rule", "action", "subject", "summary", "trips", "assigned",
         "status"),
        right=("id", "trips"),
    )  # fmt: skip
    for c in found.items:
        shown.add_row(
            str(c.id), local(c.last_tripped_at, timezone), c.rule_id, c.action,
            subject_text(c), c.summary, f"{c.trips:,}", c.assigned_to or "-", c.status,
        )  # fmt: skip
    console.print(shown)


def case_lines(case: RiskCaseInfo, timezone: str) -> list[str]:
    """What ``cases show`` prints about a case before its evidence."""
    lines = [
        f"case {case.id} of {case.program}: {case.status}",
        f"rule: {case.rule_id} ({case.action}, version {case.rule_version})",
        f"subject: {subject_text(case)}",
        f"summary: {case.summary}",
        f"trips: {case.trips:,}, opened {local(case.opened_at, timezone)}, last tripped "
        f"{local(case.last_tripped_at, timezone)}",
        f"assigned to: {case.assigned_to or '-'}",
    ]
    if case.member:
        hold = "on hold" if case.member_on_hold else "not on hold"
        lines.append(f"member: {hold}, {case.held_points:,} points held")
    if case.figures:
        lines.append("figures: " + ", ".join(f"{k} {v}" for k, v in case.figures.items()))
    if case.resolution:
        lines.append(
            f"resolution: {case.resolution} by {case.resolved_by} "
            f"{local(case.resolved_at, timezone)}: {case.resolution_note}"
        )
    return lines


def evidence_row(item: dict[str, Any], timezone: str) -> tuple[str, ...]:
    where = " ".join(f"{k} {item[k]}" for k in ("location", "device") if item.get(k))
    points = item.get("points")
    return (
        local(item["at"], timezone), item["kind"], "" if points is None else f"{points:,}",
        item.get("order_id") or "", where, item.get("refund") or "", item.get("sender") or "",
    )  # fmt: skip


@cases_group.command("show")
@database_option
@program_option
@case_argument
@json_option
@friendly_errors
def cases_show(database_url: str | None, program: str, case_id: int, as_json: bool) -> None:
    """Show a case: its rule, subject, figures, member's hold and the evidence (the
    operations that tripped the rule, newest first)."""
    with risk_database(database_url, program) as database:
        case = svc.risk_case(database, program=program, case_id=case_id)
        timezone = timezone_of(database, program)
    if as_json:
        echo_json(case.to_record())
        return
    for line in case_lines(case, timezone):
        say(line)
    if not case.evidence:
        return
    shown = table(
        f"Evidence of case {case.id} (newest first, times in {timezone})",
        ("when", "operation", "points", "order", "where", "refund", "from"),
        right=("points",),
    )
    for item in case.evidence:
        shown.add_row(*evidence_row(item, timezone))
    console.print(shown)


@cases_group.command("assign")
@database_option
@program_option
@case_argument
@click.argument("person", metavar="PERSON")
@friendly_errors
def cases_assign(database_url: str | None, program: str, case_id: int, person: str) -> None:
    """Give a case to PERSON (a name your team knows; "-" gives it to nobody)."""
    assignee = None if person.strip() == "-" else person
    with risk_database(database_url, program) as database:
        case = svc.assign_risk_case(
            database, program=program, case_id=case_id, assignee=assignee, actor=cli_actor()
        )
    say(f"case {case.id} {'assigned to ' + case.assigned_to if case.assigned_to else 'unassigned'}")


@cases_group.command("resolve")
@database_option
@program_option
@case_argument
@click.option(
    "--outcome",
    type=click.Choice(OUTCOMES),
    required=True,
    help="release: the held points become available; reverse: release, then deduct "
    "--points (default: the points held) as an adjustment; dismiss: a false alarm.",
)
@click.option("--note", required=True, help="Why (kept with the case and in the audit log).")
@click.option(
    "--points", type=click.IntRange(1), help="With --outcome reverse: the points to deduct."
)
@friendly_errors
def cases_resolve(
    database_url: str | None,
    program: str,
    case_id: int,
    outcome: str,
    note: str,
    points: int | None,
) -> None:
    """Close an open case with an outcome and a note; one audited unit of work."""
    if points is not None and outcome != "reverse":
        raise InvalidInput("--points goes with --outcome reverse only; leave it out")
    with risk_database(database_url, program) as database:
        before = svc.risk_case(database, program=program, case_id=case_id)
        case = svc.resolve_risk_case(
            database,
            program=program,
            case_id=case_id,
            outcome=outcome,
            note=note,
            actor=cli_actor(),
            points=points,
        )
    say(f"case {case.id} {case.status}: {case.resolution}")
    if case.member and case.member_on_hold:
        say(f"{case.member} stays on hold (another hold case is open): the points stay held")
    elif case.member and before.held_points:
        say(f"{case.member}'s {before.held_points:,} held points are available")
    if outcome == "reverse":
        deducted = points if points is not None else before.held_points
        say(f"{deducted:,} points deducted from {case.member}")


# --- a member: state, freeze, unfreeze, release the hold -------------------------------------


def state_lines(state: MemberRiskState) -> list[str]:
    account = f"frozen ({state.reason})" if state.frozen else state.status
    hold = "on hold" if state.on_hold else "not on hold"
    lines = [
        f"{state.member}: account {account}; {hold}, {state.held_points:,} points held; "
        f"{counted(state.open_case_count, 'open risk case')}"
    ]
    lines += [f"  case {c.id}: {c.rule_id} ({c.action}) {c.summary}" for c in state.open_cases]
    return lines


@risk_group.command("member")
@database_option
@program_option
@member_argument
@json_option
@friendly_errors
def member_command(database_url: str | None, program: str, member: str, as_json: bool) -> None:
    """Show a member's account state (frozen or not, why), hold, points held and open cases."""
    with risk_database(database_url, program) as database:
        state = member_risk_state(database, program=program, member=member)
    if as_json:
        echo_json(state.to_record())
        return
    for line in state_lines(state):
        say(line)


@risk_group.command("freeze")
@database_option
@program_option
@member_argument
@click.option("--reason", required=True, help="Why (kept with the member and audited).")
@friendly_errors
def freeze_command(database_url: str | None, program: str, member: str, reason: str) -> None:
    """Freeze a member's account (账户冻结): no earning, spending or transfers until it is
    unfrozen; the balances are kept, and refunds of past orders still apply."""
    with risk_database(database_url, program) as database:
        svc.freeze_member(
            database, program=program, member=member, reason=reason, actor=cli_actor()
        )
    say(f"froze {member}'s account: {reason}")
    say(f"unfreeze it with `jifen risk unfreeze --program {program} {member} --reason ...`")


@risk_group.command("unfreeze")
@database_option
@program_option
@member_argument
@click.option("--reason", required=True, help="Why (kept with the member and audited).")
@friendly_errors
def unfreeze_command(database_url: str | None, program: str, member: str, reason: str) -> None:
    """Lift a member's account freeze."""
    with risk_database(database_url, program) as database:
        svc.unfreeze_member(
            database, program=program, member=member, reason=reason, actor=cli_actor()
        )
    say(f"unfroze {member}'s account: {reason}")


@risk_group.command("release-hold")
@database_option
@program_option
@member_argument
@click.option("--note", required=True, help="Why (audited).")
@friendly_errors
def release_hold_command(database_url: str | None, program: str, member: str, note: str) -> None:
    """Lift a member's risk hold and make their held points available; their cases stay
    open (resolve them with `jifen risk cases resolve`)."""
    with risk_database(database_url, program) as database:
        released = svc.release_member_hold(
            database, program=program, member=member, note=note, actor=cli_actor()
        )
    say(f"released {member}'s hold: {released:,} held points are available")
