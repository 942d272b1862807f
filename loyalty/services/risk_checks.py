"""Risk control's invariants, for ``jifen verify``: each a query returning the rows that break it.

* a lot held by risk control (pending, with no maturity date) belongs to a member on hold:
  only an earn by a member on hold makes one, and lifting a hold releases every one of them
  under the member's lock, in the same transaction;
* a member on hold has an open ``hold`` case: the scan puts a member on hold only when it
  opens or reopens a hold case (or an open case becomes one), and resolving a case lifts the
  hold unless another hold case of the member is still open, which it checks under the
  member's lock; ``release_member_hold`` lifts a hold without closing cases, which keeps this
  true (the reverse, an open hold case of a member not on hold, is allowed);
* every case is consistent: an open one has no resolution, resolver, note or time; a closed
  one has all four, ``resolved`` with ``released`` or ``reversed``, ``dismissed`` with
  ``dismissed``; a case with a member is about ``member:<id>``, of the member's program; one
  without is about ``program``, a ``location:`` or a ``device:``; a ``hold`` case names a
  member; no case has the ``block`` action (a block refuses the write, it opens no case); the
  rule version it names exists in its program;
* every risk rule version parses as :meth:`RiskRules.from_dict` parses a new one, and
  ``programs.risk_version`` names a version of the program. Parsing is Python's, so this one
  reads the versions into Python (:func:`risk_rule_problems`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Connection,
    Select,
    String,
    and_,
    case,
    cast,
    false,
    literal,
    not_,
    or_,
    select,
    true,
)

from loyalty.db.tables import lots, members, programs, risk_cases, risk_rule_versions
from loyalty.domain.risk import RiskRules
from loyalty.errors import InvalidRule
from loyalty.services.risk_cases import HELD_LOT

RISK_RULES_CHECK = "risk_rules_sound"
RISK_RULES_DESCRIPTION = (
    "every risk rule version parses and each program's risk_version names one of its versions"
)


def held_lots_on_hold() -> Select[Any]:
    """Lots held by risk control (pending, no maturity date) of a member not on hold."""
    return (
        select(lots.c.id, lots.c.member_id, lots.c.pending)
        .join(members, members.c.id == lots.c.member_id)
        .where(HELD_LOT, members.c.risk_hold == false())
    )


def holds_have_a_case() -> Select[Any]:
    """Members on hold without an open ``hold`` case."""
    open_hold_case = (
        select(literal(1))
        .where(
            risk_cases.c.member_id == members.c.id,
            risk_cases.c.status == "open",
            risk_cases.c.action == "hold",
        )
        .exists()
    )
    return select(members.c.id, members.c.external_id).where(
        members.c.risk_hold == true(), ~open_hold_case
    )


def _case_problems() -> list[tuple[Any, str]]:
    """Each way a case can be inconsistent, with the words an example row carries."""
    c = risk_cases
    closing = (c.c.resolution, c.c.resolution_note, c.c.resolved_at, c.c.resolved_by)
    subject_of_member = literal("member:").concat(cast(c.c.member_id, String))
    memberless_subject = or_(
        c.c.subject == "program", c.c.subject.like("location:%"), c.c.subject.like("device:%")
    )
    return [
        (
            and_(c.c.status == "open", or_(*[col.is_not(None) for col in closing])),
            "an open case has a resolution",
        ),
        (
            and_(c.c.status != "open", or_(*[col.is_(None) for col in closing])),
            "a closed case lacks its resolution, note, time or resolver",
        ),
        (
            or_(
                and_(c.c.status == "resolved", c.c.resolution.not_in(("released", "reversed"))),
                and_(c.c.status == "dismissed", c.c.resolution != "dismissed"),
            ),
            "the resolution does not match the status",
        ),
        (
            and_(c.c.member_id.is_not(None), c.c.subject != subject_of_member),
            "a member's case is not about member:<member id>",
        ),
        (
            and_(c.c.member_id.is_(None), not_(memberless_subject)),
            "a case without a member is not about the program, a location or a device",
        ),
        (members.c.program_id != c.c.program_id, "the member is of another program"),
        (c.c.action == "block", "a block rule opened a case"),
        (and_(c.c.action == "hold", c.c.member_id.is_(None)), "a hold case names no member"),
        (risk_rule_versions.c.id.is_(None), "its rule version does not exist in its program"),
    ]


def cases_sound() -> Select[Any]:
    """Cases that break one of the rules above, with the first problem found."""
    problems = _case_problems()
    c = risk_cases
    version = and_(
        risk_rule_versions.c.program_id == c.c.program_id,
        risk_rule_versions.c.version == c.c.rule_version,
    )
    return (
        select(
            c.c.id,
            c.c.status,
            c.c.subject,
            c.c.member_id,
            case(*problems, else_=literal("")).label("problem"),
        )
        .select_from(
            c.outerjoin(members, members.c.id == c.c.member_id).outerjoin(
                risk_rule_versions, version
            )
        )
        .where(or_(*[condition for condition, _ in problems]))
    )


def risk_rule_problems(conn: Connection) -> list[str]:
    """Versions that do not parse, and programs whose ``risk_version`` is not theirs."""
    problems = [
        f"program {r.program_id} risk rule version {r.version}: {problem}"
        for r in conn.execute(
            select(
                risk_rule_versions.c.program_id,
                risk_rule_versions.c.version,
                risk_rule_versions.c.rules,
            ).order_by(risk_rule_versions.c.program_id, risk_rule_versions.c.version)
        )
        if (problem := _unparsable(r.rules)) is not None
    ]
    version = and_(
        risk_rule_versions.c.program_id == programs.c.id,
        risk_rule_versions.c.version == programs.c.risk_version,
    )
    missing = conn.execute(
        select(programs.c.code, programs.c.risk_version)
        .outerjoin(risk_rule_versions, version)
        .where(programs.c.risk_version.is_not(None), risk_rule_versions.c.id.is_(None))
        .order_by(programs.c.id)
    )
    problems += [
        f"program {r.code!r}: risk_version {r.risk_version} is none of its versions"
        for r in missing
    ]
    return problems


def _unparsable(rules: Any) -> str | None:
    try:
        RiskRules.from_dict(rules)
    except InvalidRule as exc:
        return exc.message
    return None


RISK_CHECKS = (
    (
        "risk_held_lots_on_hold",
        "every lot held by risk control (pending, no maturity date) is of a member on hold",
        held_lots_on_hold,
    ),
    ("risk_hold_has_case", "every member on hold has an open hold case", holds_have_a_case),
    (
        "risk_cases_sound",
        "every risk case's status, resolution, subject, member, program, action and rule "
        "version agree",
        cases_sound,
    ),
)
