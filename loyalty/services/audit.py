"""The audit log: who changed what, when, with the values before and after.

:func:`record_audit` writes one entry inside the caller's transaction, so an entry exists
exactly when its change does. :func:`list_audit` reads them back, newest first; given a
program, only that program's entries and those of no program (console accounts and
sign-ins), never another program's.

The rule-changing wrappers here (:func:`publish_rules_audited`,
:func:`cancel_scheduled_rules`, :func:`update_program_audited`) are what the admin console
calls: the program service makes the change and the entry records the values in force before
and the values after, all in one unit of work (the change and its entry commit together or
not at all).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, insert, or_, select

from loyalty.db.tables import audit_log, programs
from loyalty.domain.checks import require_int, require_text
from loyalty.domain.rules import RuleSet
from loyalty.errors import InvalidInput
from loyalty.services.programs import (
    SETTINGS,
    cancel_rules,
    get_program,
    publish_rules,
    rules_in_force,
    update_program,
)
from loyalty.services.results import ProgramInfo, RuleVersionInfo
from loyalty.services.uow import Target, UnitOfWork, run_in
from loyalty.services.writes import program_row

MAX_PAGE = 500


@dataclass(frozen=True)
class AuditRecord:
    """One audit entry: ``actor`` did ``action`` to ``target``; ``before`` and ``after``
    are the values that changed (``None`` when there was nothing before or after)."""

    id: int
    program: str | None
    actor: str
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    created_at: dt.datetime


@dataclass(frozen=True)
class AuditPage:
    """A page of audit entries, newest first, and how many match in all."""

    items: tuple[AuditRecord, ...]
    total: int


def record_audit(
    conn: Connection,
    *,
    actor: str,
    action: str,
    target: str,
    at: dt.datetime,
    program_id: int | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> int:
    """Insert one entry in the caller's transaction; returns its id."""
    actor = require_text("actor", actor, max_length=120)
    action = require_text("action", action, max_length=64)
    target = require_text("target", target, max_length=255)
    return int(
        conn.execute(
            insert(audit_log)
            .values(
                program_id=program_id,
                actor=actor,
                action=action,
                target=target,
                before=None if before is None else dict(before),
                after=None if after is None else dict(after),
                created_at=at,
            )
            .returning(audit_log.c.id)
        ).scalar_one()
    )


def audit(
    db: Target,
    *,
    actor: str,
    action: str,
    target: str,
    program: str | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> int:
    """Record one entry in ``db``'s unit of work (or in one of its own)."""
    with db.write() as conn:
        program_id = None if program is None else int(program_row(conn, program).id)
        return record_audit(
            conn,
            actor=actor,
            action=action,
            target=target,
            at=db.clock.now(),
            program_id=program_id,
            before=before,
            after=after,
        )


def _search_term(name: str, value: object) -> str | None:
    """A filter as given in a search field: cleaned, or ``None`` when blank."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return require_text(name, value, max_length=255)


def list_audit(
    db: Target,
    *,
    program: str | None = None,
    limit: int = 50,
    offset: int = 0,
    action: str | None = None,
    actor: str | None = None,
    target: str | None = None,
) -> AuditPage:
    """Entries newest first; ``action`` matches a prefix (``rules.`` gives every rule change).

    With ``program``, only that program's entries and those that belong to no program
    (console accounts, sign-ins); without it, every entry.
    """
    require_int("limit", limit, minimum=1)
    require_int("offset", offset, minimum=0)
    if limit > MAX_PAGE:
        raise InvalidInput(f"limit may be at most {MAX_PAGE}", field="limit")
    action, actor, target = (
        _search_term(name, value)
        for name, value in (("action", action), ("actor", actor), ("target", target))
    )
    where = []
    if program is not None:
        with db.read() as conn:
            program_id = int(program_row(conn, program).id)
        where.append(or_(audit_log.c.program_id == program_id, audit_log.c.program_id.is_(None)))
    if action:
        where.append(audit_log.c.action.startswith(action, autoescape=True))
    if actor:
        where.append(audit_log.c.actor == actor)
    if target:
        where.append(audit_log.c.target.contains(target, autoescape=True))
    with db.read() as conn:
        total = conn.execute(select(func.count()).select_from(audit_log).where(*where)).scalar()
        rows = conn.execute(
            select(audit_log, programs.c.code.label("program_code"))
            .outerjoin(programs, programs.c.id == audit_log.c.program_id)
            .where(*where)
            .order_by(audit_log.c.id.desc())
            .limit(limit)
            .offset(offset)
        ).all()
    items = tuple(
        AuditRecord(
            id=r.id,
            program=r.program_code,
            actor=r.actor,
            action=r.action,
            target=r.target,
            before=r.before,
            after=r.after,
            created_at=r.created_at,
        )
        for r in rows
    )
    return AuditPage(items=items, total=int(total or 0))


def _changed(
    before: Mapping[str, Any], after: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Only the keys whose values differ, from each side."""
    keys = [k for k in {**before, **after} if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after.get(k) for k in keys}


def publish_rules_audited(
    db: Target,
    *,
    program: str,
    rules: RuleSet | Mapping[str, Any],
    actor: str,
    effective_from: dt.datetime | None = None,
) -> RuleVersionInfo:
    """Publish a rule version (see :func:`~loyalty.services.publish_rules`) and audit it.

    The entry holds the rules in force when it was published (``before``) and the new
    version (``after``), each with their version and effective-from time.
    """
    actor = require_text("actor", actor, max_length=120)
    return run_in(db, lambda uow: _publish_audited(uow, program, rules, actor, effective_from))


def _publish_audited(
    uow: UnitOfWork,
    program: str,
    rules: RuleSet | Mapping[str, Any],
    actor: str,
    effective_from: dt.datetime | None,
) -> RuleVersionInfo:
    current_version, current = rules_in_force(uow, program=program)
    published = publish_rules(
        uow, program=program, rules=rules, effective_from=effective_from, created_by=actor
    )
    before = {"version": current_version, **current.to_dict()}
    after = {
        "version": published.version,
        "effective_from": published.effective_from_at.isoformat(),
        **published.rules,
    }
    old, new = _changed(before, after)
    old["version"], new["version"] = current_version, published.version
    new["effective_from"] = published.effective_from_at.isoformat()
    audit(
        uow,
        actor=actor,
        action="rules.publish",
        target=f"program {program} rules v{published.version}",
        program=program,
        before=old,
        after=new,
    )
    return published


def cancel_scheduled_rules(
    db: Target, *, program: str, version: int, actor: str
) -> RuleVersionInfo:
    """Cancel a rule version before it takes effect (see
    :func:`~loyalty.services.programs.cancel_rules`) and audit it: the entry holds the
    cancelled version's rules and effective-from time (``before``)."""
    actor = require_text("actor", actor, max_length=120)
    return run_in(db, lambda uow: _cancel_audited(uow, program, version, actor))


def _cancel_audited(uow: UnitOfWork, program: str, version: int, actor: str) -> RuleVersionInfo:
    cancelled = cancel_rules(uow, program=program, version=version, cancelled_by=actor)
    audit(
        uow,
        actor=actor,
        action="rules.cancel",
        target=f"program {program} rules v{version}",
        program=program,
        before={
            "version": version,
            "effective_from": cancelled.effective_from_at.isoformat(),
            **cancelled.rules,
        },
        after=None,
    )
    return cancelled


def update_program_audited(db: Target, *, program: str, actor: str, **settings: Any) -> ProgramInfo:
    """Change program settings (see :func:`~loyalty.services.update_program`) and audit the
    values that changed."""
    actor = require_text("actor", actor, max_length=120)
    return run_in(db, lambda uow: _update_audited(uow, program, actor, settings))


def _update_audited(
    uow: UnitOfWork, program: str, actor: str, settings: Mapping[str, Any]
) -> ProgramInfo:
    before = get_program(uow, program)
    after = update_program(uow, program=program, **settings)
    old, new = _changed(
        {k: getattr(before, k) for k in SETTINGS}, {k: getattr(after, k) for k in SETTINGS}
    )
    if old or new:
        audit(
            uow,
            actor=actor,
            action="program.update",
            target=f"program {program} settings",
            program=program,
            before=old,
            after=new,
        )
    return after
