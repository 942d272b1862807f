"""Risk rules per program (风控规则): publishing a version, reading it, and the checks a write
makes inside its own transaction; and freezing a member's account (账户冻结).

A version is immutable and in force from its publication until the next one;
``programs.risk_version`` names it, so a write reads it with the program row it already
locks and parses it once per process (:class:`RiskRuleCache`). The in-write checks cover the
``block`` rules (``velocity`` on an earn, ``new_member_inflow`` on an earn or a transfer
received): one statement, built once per set of rules, reads every figure they need (the
member's, location's or device's recent earns or points, indexed; what a new member earned
and received so far), and only when the program has such a rule. A member's earns are
serialised by the member's lock; the earns a location or device ``block`` rule counts, by a
transaction-scoped lock on the location or device, so N earns at once never pass a limit of
N - 1. The ``flag`` and ``hold`` rules are the risk job's (:mod:`loyalty.services.risk_scan`).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update

from loyalty.db.dialect import lock_key_for_transaction
from loyalty.db.tables import earnings, members, programs, risk_rule_versions, transfers
from loyalty.domain.checks import require_text
from loyalty.domain.risk import RiskRule, RiskRules
from loyalty.errors import InvalidInput, RiskBlocked
from loyalty.services.audit import record_audit
from loyalty.services.members import set_member_status
from loyalty.services.results import MemberInfo, Record
from loyalty.services.uow import Target, writing
from loyalty.services.writes import program_row


@dataclass(frozen=True)
class RiskRulesInfo(Record):
    """A published version of a program's risk rules, each with its sentence."""

    program: str
    version: int
    rules: dict[str, Any]
    sentences: tuple[str, ...]
    sentences_zh: tuple[str, ...]
    note: str | None
    created_at: dt.datetime
    created_by: str | None


class RiskRuleCache:
    """Risk rule versions are immutable: parsed once per (program, version)."""

    def __init__(self) -> None:
        self._parsed: dict[tuple[int, int], RiskRules] = {}

    def get(self, conn: Connection, program_id: int, version: int | None) -> RiskRules:
        if version is None:
            return RiskRules()
        cached = self._parsed.get((program_id, version))
        if cached is None:
            data = conn.execute(
                select(risk_rule_versions.c.rules).where(
                    risk_rule_versions.c.program_id == program_id,
                    risk_rule_versions.c.version == version,
                )
            ).scalar_one()
            cached = RiskRules.from_dict(data)
            self._parsed[(program_id, version)] = cached
        return cached


def rules_of(db: Target, conn: Connection, program_id: int, version: int | None) -> RiskRules:
    """The risk rules in force (``version`` as the program row says), from the cache."""
    return db.cache(RiskRuleCache).get(conn, program_id, version)


def publish_risk_rules(
    db: Target,
    *,
    program: str,
    rules: Mapping[str, Any],
    actor: str = "system",
    note: str | None = None,
) -> RiskRulesInfo:
    """Put a new version of the program's risk rules in force now, audited.

    ``rules`` is ``{"rules": [...]}`` (see :mod:`loyalty.domain.risk`); an empty list turns
    risk control off. A bad rule raises :class:`~loyalty.errors.InvalidRule` naming it.
    """
    parsed = RiskRules.from_dict(rules)
    if note is not None:
        note = require_text("note", note, max_length=500, multiline=True)
    with db.write() as conn:
        prog = program_row(conn, program)
        conn.execute(select(programs.c.id).where(programs.c.id == prog.id).with_for_update())
        last = conn.execute(
            select(func.max(risk_rule_versions.c.version)).where(
                risk_rule_versions.c.program_id == prog.id
            )
        ).scalar()
        version = int(last or 0) + 1
        at = db.clock.now()
        conn.execute(
            insert(risk_rule_versions).values(
                program_id=prog.id,
                version=version,
                rules=parsed.to_dict(),
                note=note,
                created_at=at,
                created_by=actor,
            )
        )
        conn.execute(update(programs).where(programs.c.id == prog.id).values(risk_version=version))
        record_audit(
            conn,
            actor=actor,
            action="risk.rules_published",
            target=f"risk-rules:{version}",
            at=at,
            program_id=prog.id,
            before={"version": prog.risk_version},
            after={"version": version, **parsed.to_dict()},
        )
        return _info(prog.code, version, parsed, note, at, actor)


def risk_rules(db: Target, *, program: str, version: int | None = None) -> RiskRulesInfo | None:
    """The version in force (or the one numbered ``version``); ``None`` if never published."""
    with db.read() as conn:
        prog = program_row(conn, program)
        wanted = version if version is not None else prog.risk_version
        if wanted is None:
            return None
        row = conn.execute(
            select(risk_rule_versions).where(
                risk_rule_versions.c.program_id == prog.id,
                risk_rule_versions.c.version == wanted,
            )
        ).first()
        if row is None:
            raise InvalidInput(f"program {program!r} has no risk rule version {wanted}")
        return _version_info(prog.code, row)


def risk_rule_versions_of(db: Target, *, program: str) -> list[RiskRulesInfo]:
    """Every published version, newest first."""
    with db.read() as conn:
        prog = program_row(conn, program)
        rows = conn.execute(
            select(risk_rule_versions)
            .where(risk_rule_versions.c.program_id == prog.id)
            .order_by(risk_rule_versions.c.version.desc())
        ).all()
        return [_version_info(prog.code, r) for r in rows]


def _version_info(program: str, row: Any) -> RiskRulesInfo:
    parsed = RiskRules.from_dict(row.rules)
    return _info(program, row.version, parsed, row.note, row.created_at, row.created_by)


def _info(
    program: str,
    version: int,
    rules: RiskRules,
    note: str | None,
    at: dt.datetime,
    actor: str | None,
) -> RiskRulesInfo:
    return RiskRulesInfo(
        program=program,
        version=version,
        rules=rules.to_dict(),
        sentences=tuple(r.explain() for r in rules.rules),
        sentences_zh=tuple(r.explain_zh() for r in rules.rules),
        note=note,
        created_at=at,
        created_by=actor,
    )


# --- the checks inside a write -------------------------------------------------------------


def check_earn(
    db: Target,
    conn: Connection,
    row: Any,
    *,
    points: int,
    location: str | None,
    device: str | None,
    now: dt.datetime,
) -> None:
    """Refuse an earn of ``points`` that a ``block`` rule forbids (:class:`RiskBlocked`).

    ``row`` is the locked member with its program's columns (``program_risk_version``).
    """
    if row.program_risk_version is None:
        return
    rules = rules_of(db, conn, row.program_id, row.program_risk_version)
    place = {"member": row.id, "location": location, "device": device}
    counted = [
        (rule, place[rule["scope"]])
        for rule in rules.blocking("velocity")
        if place[rule["scope"]] is not None
    ]
    _lock_shared_subjects(conn, row.program_id, counted)
    _check(conn, row, counted, _new_member_rules(rules, row, now), points, now)


def check_received(
    db: Target,
    conn: Connection,
    recipient: Any,
    *,
    risk_version: int | None,
    points: int,
    now: dt.datetime,
) -> None:
    """Refuse ``points`` transferred to a new member when a ``block`` rule forbids it.

    ``recipient`` is the locked member (``id``, ``program_id``, ``external_id``,
    ``created_at``); ``risk_version`` the program's risk rule version in force.
    """
    if risk_version is None:
        return
    rules = rules_of(db, conn, recipient.program_id, risk_version)
    _check(conn, recipient, [], _new_member_rules(rules, recipient, now), points, now)


def _new_member_rules(rules: RiskRules, row: Any, now: dt.datetime) -> list[RiskRule]:
    """The ``new_member_inflow`` block rules for which the member is still new."""
    return [
        rule
        for rule in rules.blocking("new_member_inflow")
        if row.created_at > now - dt.timedelta(days=rule["days"])
    ]


def _check(
    conn: Connection,
    row: Any,
    counted: list[tuple[RiskRule, Any]],
    inflow: list[RiskRule],
    points: int,
    now: dt.datetime,
) -> None:
    """Read every figure the rules need in one statement, then refuse if one is over."""
    if not counted and not inflow:
        return
    shape = tuple((rule["scope"], rule["measure"]) for rule, _ in counted)
    params: dict[str, Any] = {"program": row.program_id, "member": row.id}
    for i, (rule, subject) in enumerate(counted):
        params[f"since{i}"] = now - dt.timedelta(seconds=rule.window_seconds)
        params[f"subject{i}"] = subject
    figures = [int(x) for x in conn.execute(_figures(shape, bool(inflow)), params).one()]
    for (rule, _), before in zip(counted, figures, strict=False):
        measured = before + (1 if rule["measure"] == "earns" else points)
        if measured > rule["limit"]:
            _refuse(rule, row.external_id, measured)
    if inflow:
        total = figures[-2] + figures[-1] + points  # earned and received so far
        for rule in inflow:
            if total > rule["points"]:
                _refuse(rule, row.external_id, total)


@functools.lru_cache(maxsize=256)
def _figures(shape: tuple[tuple[str, str], ...], inflow: bool) -> Any:
    """One statement (built once per shape) reading, for each counted velocity rule
    (``(scope, measure)``), the earns or points of its subject since its window began
    (``:since<i>``, ``:subject<i>``); and with ``inflow``, what the member (``:member``)
    earned and received so far."""
    columns = []
    for i, (scope, measure) in enumerate(shape):
        where = [earnings.c.created_at > bindparam(f"since{i}")]
        if scope == "member":
            where.append(earnings.c.member_id == bindparam(f"subject{i}"))
        else:
            column = earnings.c.location if scope == "location" else earnings.c.device
            where += [
                earnings.c.program_id == bindparam("program"),
                column == bindparam(f"subject{i}"),
            ]
        figure = func.count() if measure == "earns" else func.sum(earnings.c.points_granted)
        columns.append(select(func.coalesce(figure, 0)).where(*where).scalar_subquery())
    if inflow:
        columns += [
            select(func.coalesce(func.sum(earnings.c.points_granted), 0))
            .where(earnings.c.member_id == bindparam("member"))
            .scalar_subquery(),
            select(func.coalesce(func.sum(transfers.c.points), 0))
            .where(transfers.c.recipient_id == bindparam("member"))
            .scalar_subquery(),
        ]
    return select(*columns)


def _lock_shared_subjects(
    conn: Connection, program_id: int, subjects: list[tuple[RiskRule, Any]]
) -> None:
    """Serialise the earns a location or device ``block`` rule counts, as the member's lock
    serialises a member's: otherwise two members' earns at one till could both take its last
    slot. Transaction-scoped locks (PostgreSQL; SQLite's writers are serialised already),
    taken in one order so two earns never wait for each other's."""
    keys = {
        _subject_lock_key(program_id, rule["scope"], str(subject))
        for rule, subject in subjects
        if rule["scope"] != "member"
    }
    for key in sorted(keys):
        lock_key_for_transaction(conn, key)


def _subject_lock_key(program_id: int, scope: str, subject: str) -> int:
    name = f"jifen:risk:{program_id}:{scope}:{subject}"
    return int.from_bytes(
        hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True
    )


def _refuse(rule: RiskRule, member: str, measured: int) -> None:
    raise RiskBlocked(
        f"refused by the risk rule {rule.id!r} ({rule.explain()}): member {member!r} would "
        f"reach {measured:,}; ask the program's operations team to review it",
        rule=rule.id,
        member=member,
        measured=measured,
    )


# --- account freeze (账户冻结) ----------------------------------------------------------------


def freeze_member(
    db: Target, *, program: str, member: str, reason: str, actor: str = "system"
) -> MemberInfo:
    """Freeze a member's account: no earning, spending or transfers; balances kept; audited.

    Refunds and disputes of past orders still freeze and reverse points, and the sweeps
    (expiry, clearing) still run: the ledger stays true while the account is frozen.
    """
    reason = require_text("reason", reason, max_length=500, multiline=True)
    return _set_frozen(db, program, member, True, reason, actor)


def unfreeze_member(
    db: Target, *, program: str, member: str, reason: str, actor: str = "system"
) -> MemberInfo:
    """Lift an account freeze, with the reason; audited."""
    reason = require_text("reason", reason, max_length=500, multiline=True)
    return _set_frozen(db, program, member, False, reason, actor)


def _set_frozen(
    db: Target, program: str, member: str, frozen: bool, reason: str, actor: str
) -> MemberInfo:
    with writing(db) as uow:
        with uow.read() as conn:
            prog = program_row(conn, program)
            before = conn.execute(
                select(members.c.status, members.c.status_reason).where(
                    members.c.program_id == prog.id, members.c.external_id == member
                )
            ).first()
        wanted = "suspended" if frozen else "active"
        if before is not None and before.status == "closed":
            raise InvalidInput(f"member {member!r} is closed: reopen the member first")
        info = set_member_status(
            uow, program=program, external_id=member, status=wanted, reason=reason
        )
        assert before is not None  # set_member_status raised MemberNotFound otherwise
        with uow.write() as conn:
            record_audit(
                conn,
                actor=actor,
                action="member.frozen" if frozen else "member.unfrozen",
                target=f"member:{member}",
                at=uow.clock.now(),
                program_id=prog.id,
                before={"status": before.status, "reason": before.status_reason},
                after={"status": wanted, "reason": reason},
            )
        return info
