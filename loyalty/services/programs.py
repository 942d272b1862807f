"""Programs and their rule versions: create a program, publish rules that take effect later,
cancel a version before its time."""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, Row, func, insert, select, update

from loyalty.db.dialect import insert_ignoring
from loyalty.db.tables import programs, rule_versions
from loyalty.domain.calendar import zone
from loyalty.domain.checks import (
    MAX_DAYS,
    MAX_MINOR_UNITS,
    MAX_POINTS,
    require_aware,
    require_int,
    require_program_code,
    require_text,
)
from loyalty.domain.money import normalize_currency
from loyalty.domain.rounding import Rounding
from loyalty.domain.rules import RuleSet
from loyalty.errors import AlreadyExists, Conflict, InvalidRule, NotFound
from loyalty.services.results import ProgramInfo, RuleVersionInfo
from loyalty.services.uow import Target
from loyalty.services.writes import program_row, rule_cache, rule_version_at


def program_info(row: Row[Any]) -> ProgramInfo:
    """The public view of a program row."""
    return ProgramInfo(**{f: getattr(row, f) for f in ProgramInfo.__dataclass_fields__})


def _rules(rules: RuleSet | Mapping[str, Any] | None) -> RuleSet:
    if rules is None:
        return RuleSet()
    if isinstance(rules, RuleSet):
        return rules
    return RuleSet.from_dict(rules)


SettingCheck = Callable[[str, Any], Any]


def _optional_points(name: str, value: Any) -> int | None:
    return None if value is None else require_int(name, value, maximum=MAX_POINTS)


def _between(low: int, high: int, unit: str = "") -> SettingCheck:
    def check(name: str, value: Any) -> int:
        require_int(name, value, minimum=low)
        if value > high:
            raise InvalidRule(f"{name} must be at most {high}{unit}, got {value}", field=name)
        return int(value)

    return check


def _choice(*choices: str) -> SettingCheck:
    def check(name: str, value: Any) -> str:
        if value not in choices:
            raise InvalidRule(
                f"{name} must be one of {', '.join(choices)}, got {value!r}", field=name
            )
        return str(value)

    return check


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidRule(f"{name} must be true or false, got {value!r}", field=name)
    return value


MAX_INT32 = 2**31 - 1  # what an Integer column holds on PostgreSQL

# Every program setting, its validation and its default. ``create_program`` and
# ``update_program`` accept exactly these keywords. Bounds: points at most MAX_POINTS (or
# what their Integer column holds), minor units at most MAX_MINOR_UNITS, the hold time-out
# at most MAX_DAYS.
SETTINGS: dict[str, tuple[SettingCheck, Any]] = {
    "rounding": (lambda _n, v: _rounding(v).value, "floor"),
    "points_per_unit": (_between(1, MAX_INT32), 100),
    "redeem_max_share_bp": (_between(0, 10_000, " basis points (100%)"), 10_000),
    "redeem_min_points": (_between(1, MAX_INT32), 1),
    "redeem_min_order_minor": (_between(0, MAX_MINOR_UNITS, " minor units"), 0),
    "hold_timeout_seconds": (_between(1, MAX_DAYS * 86_400, " seconds"), 900),
    "refund_policy": (_choice("debt", "within_balance"), "debt"),
    "transfers_enabled": (_flag, False),
    "transfer_min_points": (_between(1, MAX_POINTS), 1),
    "transfer_max_points": (_optional_points, None),
    "transfer_daily_limit": (_optional_points, None),
    "transfer_fee_points": (_between(0, MAX_POINTS), 0),
    "transfer_fee_bp": (_between(0, 10_000, " basis points (100%)"), 0),
    "clearing_policy": (_choice("none", "all", "before_cutoff"), "none"),
    "clearing_month": (_between(1, 12), 12),
    "clearing_day": (_between(1, 31), 31),
    "clearing_keep_months": (_between(0, 1200), 12),
    "reminder_days": (_between(0, 366), 15),
    "webhooks_allow_private": (_flag, False),
}


def _settings(given: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
    """Validated settings: ``base`` with ``given`` applied; unknown names are an error."""
    unknown = set(given) - set(SETTINGS)
    if unknown:
        raise InvalidRule(
            f"unknown program settings: {', '.join(sorted(unknown))}; known: {', '.join(SETTINGS)}",
            settings=sorted(unknown),
        )
    values = {**base, **{name: SETTINGS[name][0](name, value) for name, value in given.items()}}
    _check_consistent(values)
    return values


def _check_consistent(values: Mapping[str, Any]) -> None:
    top = values["transfer_max_points"]
    if top is not None and top < values["transfer_min_points"]:
        raise InvalidRule("transfer_max_points is below transfer_min_points")
    month, day = values["clearing_month"], values["clearing_day"]
    if day > calendar.monthrange(2024, month)[1]:  # 2024: a leap year allows 29 February
        raise InvalidRule(f"clearing day {month:02d}-{day:02d} does not exist")


def create_program(
    db: Target,
    *,
    code: str,
    name: str,
    currency: str,
    timezone: str = "UTC",
    rules: RuleSet | Mapping[str, Any] | None = None,
    **settings: Any,
) -> ProgramInfo:
    """Create a program and its first rule version, in force from now.

    ``settings`` are any of :data:`SETTINGS` (rounding, redemption, refund policy,
    transfers, year-end clearing, reminders); the rest keep their defaults.
    """
    code = require_program_code(code, name="code")
    values = dict(
        code=code,
        name=require_text("name", name),
        currency=normalize_currency(currency),
        timezone=zone(timezone).key,
        **_settings(settings, {n: default for n, (_check, default) in SETTINGS.items()}),
    )
    now = db.clock.now()
    values["clearing_enabled_at"] = None if values["clearing_policy"] == "none" else now
    rule_set = _rules(rules)
    with db.write() as conn:
        # one statement decides a race: the loser inserts nothing (on PostgreSQL after
        # waiting for the winner's commit) and gets AlreadyExists, the same on both backends
        program_id = conn.execute(_INSERT_PROGRAM.on(conn), {**values, "created_at": now}).scalar()
        if program_id is None:
            raise AlreadyExists(f"a program with the code {code!r} already exists", program=code)
        _insert_version(conn, program_id, 1, now, rule_set, None, now)
        return program_info(program_row(conn, code))


_INSERT_PROGRAM = insert_ignoring(programs, conflict=["code"], returning=[programs.c.id])


def update_program(db: Target, *, program: str, **settings: Any) -> ProgramInfo:
    """Change some of a program's :data:`SETTINGS`; returns the program as it is now.

    Switching year-end clearing on records the time: scheduled clearings only clear years
    whose moment comes after it.
    """
    with db.write() as conn:
        row = program_row(conn, program)
        values: dict[str, Any] = _settings(settings, {n: getattr(row, n) for n in SETTINGS})
        if values["clearing_policy"] == "none":
            values["clearing_enabled_at"] = None
        elif row.clearing_policy == "none":  # switched on now: no clearing of past years
            values["clearing_enabled_at"] = db.clock.now()
        conn.execute(update(programs).where(programs.c.id == row.id).values(**values))
        return program_info(program_row(conn, program))


def _rounding(value: str) -> Rounding:
    try:
        return Rounding(value)
    except ValueError as exc:
        choices = ", ".join(r.value for r in Rounding)
        raise InvalidRule(f"rounding must be one of {choices}, got {value!r}") from exc


def _insert_version(
    conn: Connection,
    program_id: int,
    version: int,
    effective_from: dt.datetime,
    rules: RuleSet,
    created_by: str | None,
    now: dt.datetime,
) -> None:
    conn.execute(
        insert(rule_versions).values(
            program_id=program_id,
            version=version,
            effective_from=effective_from,
            rules=rules.to_dict(),
            created_at=now,
            created_by=created_by,
        )
    )


def get_program(db: Target, code: str) -> ProgramInfo:
    """A program's settings, or :class:`ProgramNotFound`."""
    with db.read() as conn:
        return program_info(program_row(conn, code))


def publish_rules(
    db: Target,
    *,
    program: str,
    rules: RuleSet | Mapping[str, Any],
    effective_from: dt.datetime | None = None,
    created_by: str | None = None,
) -> RuleVersionInfo:
    """Publish a new rule version, in force from ``effective_from`` (default: now).

    Rule changes never act retroactively: ``effective_from`` may not lie in the past.
    """
    program = require_program_code(program)
    if created_by is not None:
        created_by = require_text("created_by", created_by, max_length=120)
    rule_set = _rules(rules)
    now = db.clock.now()
    start = now if effective_from is None else require_aware("effective_from", effective_from)
    if start < now:
        raise InvalidRule("a rule change cannot take effect in the past", effective_from=start)
    with db.write() as conn:
        prog = _lock_rule_versions(conn, program)
        version = (
            conn.execute(
                select(func.coalesce(func.max(rule_versions.c.version), 0)).where(
                    rule_versions.c.program_id == prog.id
                )
            ).scalar_one()
            + 1
        )
        _insert_version(conn, prog.id, version, start, rule_set, created_by, now)
    return RuleVersionInfo(
        program=program, version=version, effective_from_at=start, rules=rule_set.to_dict()
    )


def _lock_rule_versions(conn: Connection, program: str) -> Row[Any]:
    """The program's row, locked against other publications and cancellations of its rules
    until the end of the transaction (``FOR NO KEY UPDATE``: earns and other writes that
    only reference the program are not held up). SQLite serialises its writers anyway."""
    prog = program_row(conn, program)
    conn.execute(
        select(programs.c.id).where(programs.c.id == prog.id).with_for_update(key_share=True)
    )
    return prog


def cancel_rules(
    db: Target, *, program: str, version: int, cancelled_by: str | None = None
) -> RuleVersionInfo:
    """Cancel rule version ``version`` before it takes effect; it will never be in force.

    Refused (:class:`Conflict`) once it is in force, and while a version published after it
    takes effect at or after it (that one may build on it: cancel it first). Its number is
    never given again. Returns the cancelled version.
    """
    program = require_program_code(program)
    require_int("version", version, minimum=1)
    if cancelled_by is not None:
        cancelled_by = require_text("cancelled_by", cancelled_by, max_length=120)
    now = db.clock.now()
    with db.write() as conn:
        prog = _lock_rule_versions(conn, program)
        target = _live_version(conn, prog, version)
        if target.effective_from <= now:
            raise Conflict(
                f"rules version {version} has been in force since "
                f"{_local(target.effective_from, prog.timezone)} and cannot be cancelled; "
                "publish a new version with the rules you want instead",
                program=program,
                version=version,
            )
        _refuse_if_followed(conn, prog, target)
        conn.execute(
            update(rule_versions)
            .where(rule_versions.c.id == target.id)
            .values(cancelled_at=now, cancelled_by=cancelled_by)
        )
    return RuleVersionInfo(
        program=program,
        version=version,
        effective_from_at=target.effective_from,
        rules=target.rules,
    )


def _live_version(conn: Connection, prog: Row[Any], version: int) -> Row[Any]:
    row = conn.execute(
        select(rule_versions).where(
            rule_versions.c.program_id == prog.id, rule_versions.c.version == version
        )
    ).first()
    if row is None or row.cancelled_at is not None:
        state = "was cancelled" if row is not None else "does not exist"
        raise NotFound(
            f"rules version {version} of program {prog.code} {state}; "
            "reload the rules page to see the versions there are",
            program=prog.code,
            version=version,
        )
    return row


def _refuse_if_followed(conn: Connection, prog: Row[Any], target: Row[Any]) -> None:
    later = conn.execute(
        select(rule_versions.c.version, rule_versions.c.effective_from)
        .where(
            rule_versions.c.program_id == prog.id,
            rule_versions.c.version > target.version,
            rule_versions.c.effective_from >= target.effective_from,
            rule_versions.c.cancelled_at.is_(None),
        )
        .order_by(rule_versions.c.version.desc())
    ).first()
    if later is not None:
        raise Conflict(
            f"rules version {later.version} (from {_local(later.effective_from, prog.timezone)}) "
            f"was published after version {target.version} and follows it; "
            f"cancel version {later.version} first",
            program=prog.code,
            version=target.version,
            followed_by=later.version,
        )


def _local(instant: dt.datetime, tz: str) -> str:
    return f"{instant.astimezone(zone(tz)):%Y-%m-%d %H:%M} {tz}"


def rules_in_force(
    db: Target, *, program: str, at: dt.datetime | None = None
) -> tuple[int, RuleSet]:
    """``(version, rules)`` in force at ``at`` (default: now)."""
    when = db.clock.now() if at is None else require_aware("at", at)
    with db.read() as conn:
        prog = program_row(conn, program)
        version_id = conn.execute(select(rule_version_at(prog.id)), {"at": when}).scalar_one()
        return rule_cache(db).get(conn, version_id)


def list_rule_versions(db: Target, *, program: str) -> list[RuleVersionInfo]:
    """Every rule version of a program, oldest first (not those cancelled before their time)."""
    program = require_program_code(program)
    with db.read() as conn:
        prog = program_row(conn, program)
        rows = conn.execute(
            select(rule_versions)
            .where(rule_versions.c.program_id == prog.id, rule_versions.c.cancelled_at.is_(None))
            .order_by(rule_versions.c.version)
        ).all()
    return [
        RuleVersionInfo(
            program=program, version=r.version, effective_from_at=r.effective_from, rules=r.rules
        )
        for r in rows
    ]
