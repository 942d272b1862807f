"""What staff read when they review risk control, whichever door they use (the console, the
``jifen`` command): one member's state under risk control (:func:`member_risk_state`: the
account, active or frozen 账户冻结 with the reason given; the hold, new points kept pending
until a person releases them, with the points held now; the member's open cases), and what a
run of the risk scan did, in words (:func:`scan_words`).

Read only; the changes are :func:`~loyalty.services.risk_rules.freeze_member`,
:func:`~loyalty.services.risk_rules.unfreeze_member`,
:func:`~loyalty.services.risk_cases.release_member_hold` and the risk job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from loyalty.db.tables import lots, members
from loyalty.domain.checks import require_member_id
from loyalty.errors import MemberNotFound
from loyalty.services.results import Record
from loyalty.services.risk_cases import HELD_LOT, RiskCaseInfo, list_risk_cases
from loyalty.services.uow import Target
from loyalty.services.writes import program_row

FROZEN_STATUS = "suspended"  # an account freeze is the member status "suspended"
OPEN_CASES_SHOWN = 10


@dataclass(frozen=True)
class MemberRiskState(Record):
    """One member under risk control.

    ``frozen`` is the account freeze (status ``suspended``), ``reason`` why the status is
    what it is (set with the freeze or unfreeze); ``on_hold`` the risk hold, ``held_points``
    the points it keeps pending now; ``open_cases`` the newest open cases naming the member
    (at most ``OPEN_CASES_SHOWN``), ``open_case_count`` all of them.
    """

    program: str
    member: str
    status: str
    frozen: bool
    reason: str | None
    on_hold: bool
    held_points: int
    open_cases: tuple[RiskCaseInfo, ...]
    open_case_count: int


def member_risk_state(db: Target, *, program: str, member: str) -> MemberRiskState:
    """The member's account state, hold and open cases; :class:`MemberNotFound` if unknown."""
    member = require_member_id(member, name="member")
    with db.read() as conn:
        prog = program_row(conn, program)
        row = conn.execute(
            select(
                members.c.id, members.c.status, members.c.status_reason, members.c.risk_hold
            ).where(members.c.program_id == prog.id, members.c.external_id == member)
        ).first()
        if row is None:
            raise MemberNotFound(f"no member {member!r} in program {program!r}", member=member)
        held = conn.execute(
            select(func.coalesce(func.sum(lots.c.pending), 0)).where(
                lots.c.member_id == row.id, HELD_LOT
            )
        ).scalar_one()
    cases = list_risk_cases(
        db, program=prog.code, status="open", member=member, limit=OPEN_CASES_SHOWN
    )
    return MemberRiskState(
        program=prog.code,
        member=member,
        status=row.status,
        frozen=row.status == FROZEN_STATUS,
        reason=row.status_reason,
        on_hold=bool(row.risk_hold),
        held_points=int(held),
        open_cases=cases.items,
        open_case_count=cases.total,
    )


def counted(n: int, word: str) -> str:
    """``1 rule``, ``4 rules``."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def scan_words(details: Mapping[str, Any], trips: int) -> str:
    """What a risk scan did, from its run's details (the ``risk`` job's) and its trips:
    ``2 rules evaluated, 1 over a limit; cases 1 opened, 0 added to, 0 reopened; 1 member
    put on hold``."""
    return (
        f"{counted(int(details.get('rules', 0)), 'rule')} evaluated, {trips:,} over a limit; "
        f"cases {int(details.get('opened', 0)):,} opened, "
        f"{int(details.get('updated', 0)):,} added to, "
        f"{int(details.get('reopened', 0)):,} reopened; "
        f"{counted(int(details.get('held', 0)), 'member')} put on hold"
    )
