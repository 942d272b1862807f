"""Programs and their rule versions: create a program, publish rules that take effect later."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Row, func, insert, select

from loyalty.db.database import Database
from loyalty.domain.calendar import zone
from loyalty.domain.checks import require_aware, require_int, require_text
from loyalty.domain.money import normalize_currency
from loyalty.domain.rounding import Rounding
from loyalty.domain.rules import RuleSet
from loyalty.errors import AlreadyExists, InvalidRule
from loyalty.services.ledger import (
    program_row,
    programs,
    rule_cache,
    rule_version_at,
    rule_versions,
)
from loyalty.services.results import ProgramInfo, RuleVersionInfo


def program_info(row: Row[Any]) -> ProgramInfo:
    """The public view of a program row."""
    return ProgramInfo(**{f: getattr(row, f) for f in ProgramInfo.__dataclass_fields__})


def _rules(rules: RuleSet | Mapping[str, Any] | None) -> RuleSet:
    if rules is None:
        return RuleSet()
    if isinstance(rules, RuleSet):
        return rules
    return RuleSet.from_dict(rules)


def create_program(
    db: Database,
    *,
    code: str,
    name: str,
    currency: str,
    timezone: str = "UTC",
    rounding: str = "floor",
    points_per_unit: int = 100,
    redeem_max_share_bp: int = 10_000,
    redeem_min_points: int = 1,
    redeem_min_order_minor: int = 0,
    hold_timeout_seconds: int = 900,
    rules: RuleSet | Mapping[str, Any] | None = None,
) -> ProgramInfo:
    """Create a program and its first rule version, in force from now."""
    values = dict(
        code=require_text("code", code, max_length=64),
        name=require_text("name", name),
        currency=normalize_currency(currency),
        timezone=zone(timezone).key,
        rounding=_rounding(rounding).value,
        points_per_unit=require_int("points_per_unit", points_per_unit),
        redeem_max_share_bp=_share(redeem_max_share_bp),
        redeem_min_points=require_int("redeem_min_points", redeem_min_points),
        redeem_min_order_minor=require_int(
            "redeem_min_order_minor", redeem_min_order_minor, minimum=0
        ),
        hold_timeout_seconds=require_int("hold_timeout_seconds", hold_timeout_seconds),
    )
    rule_set = _rules(rules)
    now = db.clock.now()
    with db.write() as conn:
        if conn.execute(select(programs.c.id).where(programs.c.code == code)).first():
            raise AlreadyExists(f"a program with the code {code!r} already exists", program=code)
        program_id = conn.execute(
            insert(programs).values(**values, created_at=now).returning(programs.c.id)
        ).scalar_one()
        _insert_version(conn, program_id, 1, now, rule_set, None, now)
        return program_info(program_row(conn, code))


def _rounding(value: str) -> Rounding:
    try:
        return Rounding(value)
    except ValueError as exc:
        choices = ", ".join(r.value for r in Rounding)
        raise InvalidRule(f"rounding must be one of {choices}, got {value!r}") from exc


def _share(value: int) -> int:
    require_int("redeem_max_share_bp", value, minimum=0)
    if value > 10_000:
        raise InvalidRule("redeem_max_share_bp is in basis points: at most 10000 (100%)")
    return value


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


def get_program(db: Database, code: str) -> ProgramInfo:
    """A program's settings, or :class:`ProgramNotFound`."""
    with db.read() as conn:
        return program_info(program_row(conn, code))


def publish_rules(
    db: Database,
    *,
    program: str,
    rules: RuleSet | Mapping[str, Any],
    effective_from: dt.datetime | None = None,
    created_by: str | None = None,
) -> RuleVersionInfo:
    """Publish a new rule version, in force from ``effective_from`` (default: now).

    Rule changes never act retroactively: ``effective_from`` may not lie in the past.
    """
    rule_set = _rules(rules)
    now = db.clock.now()
    start = now if effective_from is None else require_aware("effective_from", effective_from)
    if start < now:
        raise InvalidRule("a rule change cannot take effect in the past", effective_from=start)
    with db.write() as conn:
        prog = program_row(conn, program)
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


def rules_in_force(
    db: Database, *, program: str, at: dt.datetime | None = None
) -> tuple[int, RuleSet]:
    """``(version, rules)`` in force at ``at`` (default: now)."""
    when = db.clock.now() if at is None else require_aware("at", at)
    with db.read() as conn:
        prog = program_row(conn, program)
        version_id = conn.execute(select(rule_version_at(prog.id)), {"at": when}).scalar_one()
        return rule_cache(db).get(conn, version_id)


def list_rule_versions(db: Database, *, program: str) -> list[RuleVersionInfo]:
    """Every rule version of a program, oldest first."""
    with db.read() as conn:
        prog = program_row(conn, program)
        rows = conn.execute(
            select(rule_versions)
            .where(rule_versions.c.program_id == prog.id)
            .order_by(rule_versions.c.version)
        ).all()
    return [
        RuleVersionInfo(
            program=program, version=r.version, effective_from_at=r.effective_from, rules=r.rules
        )
        for r in rows
    ]
