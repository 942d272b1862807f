"""Read side: a member's balance (with points expiring soon) and paginated history."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    and_,
    bindparam,
    case,
    func,
    not_,
    or_,
    select,
    type_coerce,
)

from loyalty.db.tables import clearings, entries, lots, members, operations, programs
from loyalty.db.types import UTCDateTime
from loyalty.domain.calendar import (
    clearing_cutoff,
    clearing_moment,
    last_clearing_year,
    last_usable_day,
)
from loyalty.domain.checks import (
    require_days,
    require_int,
    require_member_id,
    require_program_code,
)
from loyalty.domain.tiers import Tier
from loyalty.errors import InvalidInput, MemberNotFound
from loyalty.services.clearing import scheduled_year
from loyalty.services.results import Balance, ExpiringPoints, HistoryItem, HistoryPage
from loyalty.services.tiers import tiers_at
from loyalty.services.uow import Target
from loyalty.services.writes import program_row

MAX_PAGE = 500


_MEMBER_BY_CODE = (
    select(
        members,
        programs.c.timezone,
        programs.c.clearing_policy,
        programs.c.clearing_month,
        programs.c.clearing_day,
        programs.c.clearing_keep_months,
        programs.c.clearing_enabled_at,
    )
    .join(programs, programs.c.id == members.c.program_id)
    .where(programs.c.code == bindparam("program"), members.c.external_id == bindparam("member"))
)


def _member(conn: Connection, program: str, member: str) -> Row[Any]:
    """The member row, found by program code and external id in one statement."""
    program = require_program_code(program)
    member = require_member_id(member)
    row = conn.execute(_MEMBER_BY_CODE, {"program": program, "member": member}).first()
    if row is None:
        program_row(conn, program)  # ProgramNotFound first, if that is what is wrong
        raise MemberNotFound(
            f"no member {member!r} in program {program!r}", program=program, member=member
        )
    return row


# A member's available points per expiry moment up to ``:until``, including moments that have
# passed but that the expiry sweep has not reached yet (those points can no longer be spent).
_EXPIRING = (
    select(lots.c.expires_at, func.sum(lots.c.available).label("points"))
    .where(
        lots.c.member_id == bindparam("member_id"),
        lots.c.available > 0,
        lots.c.expires_at <= bindparam("until"),
    )
    .group_by(lots.c.expires_at)
    .order_by(lots.c.expires_at)
)


def balance(db: Target, *, program: str, member: str, expiring_within_days: int = 30) -> Balance:
    """The member's balances now, and their available points that expire within the window.

    ``available`` leaves out points whose expiry or year-end clearing moment has passed even if
    the sweep has not removed them yet: they can no longer be spent. ``expiring`` counts a lot
    at the moment it stops being usable: its expiry, or the next clearing's moment when that
    clearing takes it first.
    """
    member = require_member_id(member)
    require_days("expiring_within_days", expiring_within_days, minimum=0)
    now = db.clock.now()
    until = now + dt.timedelta(days=expiring_within_days)
    with db.read() as conn:
        row = _member(conn, program, member)
        passed, ahead = _clearings_to_count(row, now, until)
        params = {"member_id": row.id, "until": until, "program_id": row.program_id}
        for name, clearing in (("passed", passed), ("ahead", ahead)):
            if clearing is not None:
                params.update({f"{name}_{k}": v for k, v in clearing.items()})
        stmt = _expiring(passed is not None, ahead is not None)
        moments = conn.execute(stmt, params).all()
        tier = member_tier(db, conn, row.program_id, row.tier, now)
    lapsed = sum(int(m.points) for m in moments if m.expires_at <= now)
    return Balance(
        member=member,
        available=row.available - lapsed,
        pending=row.pending,
        held=row.held,
        frozen=row.frozen,
        debt=row.debt,
        lifetime_earned=row.lifetime_earned,
        expiring=tuple(
            ExpiringPoints(m.expires_at, int(m.points), last_usable_day(m.expires_at, row.timezone))
            for m in moments
            if m.expires_at > now
        ),
        tier=None if tier is None else tier.code,
        tier_name=None if tier is None else tier.name,
    )


def member_tier(
    target: Target, conn: Connection, program_id: int, code: str | None, now: dt.datetime
) -> Tier | None:
    """The tier a member holds now (the lowest if never placed), or ``None`` without tiers."""
    tiers = tiers_at(target, conn, program_id, now)
    if tiers is None:
        return None
    return tiers.rules.tier(code) if tiers.rules.knows(code) else tiers.rules.lowest


def _clearings_to_count(
    row: Row[Any], now: dt.datetime, until: dt.datetime
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The year-end clearing whose moment passed (if its sweep may not be done) and the next
    one if its moment falls in the window: their year, moment and cutoff."""
    if row.clearing_policy == "none":
        return None, None
    tz, month, day = row.timezone, row.clearing_month, row.clearing_day

    def at(year: int) -> dict[str, Any]:
        moment = clearing_moment(year, month, day, tz)
        cutoff = clearing_cutoff(moment, tz, row.clearing_policy, row.clearing_keep_months)
        return {"year": year, "moment": moment, "cutoff": cutoff}

    year = scheduled_year(row, now)
    passed = None if year is None else at(year)
    following = at(last_clearing_year(now, tz, month, day) + 1)
    ahead = following if following["moment"] <= until else None
    return passed, ahead


def _expiring(passed: bool, ahead: bool) -> Any:
    """A member's available points per moment they stop being usable, up to ``:until``,
    including moments that passed but that the sweeps have not reached yet.

    A lot's moment is its rolling expiry, or a year-end clearing's moment when that clearing
    takes it first (earned before its cutoff, not expiring by its moment): the one that
    passed (``passed``, unless its sweep is done) and the next one in the window (``ahead``).
    Built once per shape.
    """
    stmt = _EXPIRING_SHAPES.get((passed, ahead))
    if stmt is not None:
        return stmt
    whens = []
    for name, wanted in (("passed", passed), ("ahead", ahead)):
        if not wanted:
            continue
        moment = bindparam(f"{name}_moment", type_=UTCDateTime())
        taken = and_(
            lots.c.expired_at.is_(None),
            lots.c.earned_at < bindparam(f"{name}_cutoff", type_=UTCDateTime()),
            or_(lots.c.expires_at.is_(None), lots.c.expires_at > moment),
        )
        if name == "passed":
            done = (
                select(clearings.c.id)
                .where(
                    clearings.c.program_id == bindparam("program_id"),
                    clearings.c.year == bindparam("passed_year"),
                    clearings.c.status == "done",
                )
                .exists()
            )
            taken = and_(taken, not_(done))
        whens.append((taken, moment))
    due = type_coerce(case(*whens, else_=lots.c.expires_at), UTCDateTime()) if whens else None
    inner = (
        select((lots.c.expires_at if due is None else due).label("expires_at"), lots.c.available)
        .where(
            lots.c.member_id == bindparam("member_id"),
            lots.c.available > 0,
            or_(lots.c.expires_at <= bindparam("until"), *(w[0] for w in whens)),
        )
        .subquery()
    )
    stmt = (
        select(inner.c.expires_at, func.sum(inner.c.available).label("points"))
        .group_by(inner.c.expires_at)
        .order_by(inner.c.expires_at)
    )
    _EXPIRING_SHAPES[passed, ahead] = stmt
    return stmt


_EXPIRING_SHAPES: dict[tuple[bool, bool], Any] = {(False, False): _EXPIRING}


_DELTAS = [
    func.sum(entries.c[f"{b}_delta"]).label(b)
    for b in ("available", "pending", "held", "frozen", "debt")
]


def _page_items(cursor: int | None) -> Any:
    """One item per operation and entry kind of the member's ``:limit`` operations (before
    ``:cursor`` if given), newest first, built once per shape."""
    key = cursor is not None
    stmt = _PAGE_ITEMS.get(key)
    if stmt is None:
        page_ops = (
            select(entries.c.operation_id)
            .where(entries.c.member_id == bindparam("member_id"))
            .group_by(entries.c.operation_id)
            .order_by(entries.c.operation_id.desc())
            .limit(bindparam("limit"))
        )
        if key:
            page_ops = page_ops.where(entries.c.operation_id < bindparam("cursor"))
        # grouped by the operation's primary key, so its other columns (the stored result
        # that holds a reason, an order, a counterpart) come along in the same statement
        stmt = (
            select(
                operations.c.id.label("operation_id"),
                entries.c.kind,
                operations.c.key,
                operations.c.kind.label("operation_kind"),
                operations.c.result,
                func.min(entries.c.created_at).label("created_at"),
                *_DELTAS,
            )
            .join(operations, operations.c.id == entries.c.operation_id)
            .where(
                entries.c.member_id == bindparam("member_id"),
                entries.c.operation_id.in_(page_ops.scalar_subquery()),
            )
            .group_by(operations.c.id, entries.c.kind)
            .order_by(operations.c.id.desc(), func.min(entries.c.id).desc())
        )
        _PAGE_ITEMS[key] = stmt
    return stmt


_PAGE_ITEMS: dict[bool, Any] = {}


def history(
    db: Target, *, program: str, member: str, limit: int = 50, cursor: int | None = None
) -> HistoryPage:
    """The member's history, newest first, one item per operation and entry kind.

    Pass the page's ``next_cursor`` as ``cursor`` to read the next (older) page.
    """
    require_int("limit", limit)
    if limit > MAX_PAGE:
        raise InvalidInput(f"limit may be at most {MAX_PAGE}", field="limit")
    if cursor is not None:
        require_int("cursor", cursor)
    with db.read() as conn:
        row = _member(conn, program, member)
        # one operation more than the page holds tells whether an older page exists
        params = {"member_id": row.id, "limit": limit + 1, "cursor": cursor}
        rows = conn.execute(_page_items(cursor), params).all()
    op_ids = list(dict.fromkeys(r.operation_id for r in rows))
    more = len(op_ids) > limit
    kept = set(op_ids[:limit])
    items = tuple(_item(r, row.external_id) for r in rows if r.operation_id in kept)
    return HistoryPage(items=items, next_cursor=op_ids[limit - 1] if more else None)


def _item(r: Row[Any], member: str) -> HistoryItem:
    available, pending, held, frozen, debt = (
        int(r.available),
        int(r.pending),
        int(r.held),
        int(r.frozen),
        int(r.debt),
    )
    created = r.created_at
    if isinstance(created, str):  # SQLite aggregate loses the column type
        created = dt.datetime.fromisoformat(created)
    if created.tzinfo is None:
        created = created.replace(tzinfo=dt.UTC)
    return HistoryItem(
        id=r.operation_id,
        kind=r.kind,
        reference=r.key,
        points=available + pending + held + frozen - debt,
        available=available,
        pending=pending,
        held=held,
        frozen=frozen,
        debt=debt,
        created_at=created,
        reason=_reason(r.operation_kind, r.result),
        description=describe(r.operation_kind, r.kind, r.key, r.result or {}, member),
    )


def _reason(operation_kind: str, result: Any) -> str | None:
    """The reason a person gave (an adjustment's), as stored with the operation."""
    if operation_kind == "adjust" and isinstance(result, dict):
        reason = result.get("reason")
        return reason if isinstance(reason, str) else None
    return None


# The steps of a refund or dispute (``refund_freeze``…), then entry kinds of their own.
STEP_WORDS = {
    "freeze": "points frozen",
    "reverse": "frozen points taken back",
    "release": "frozen points given back",
    "deduct": "taken from other points",
    "debt": "left as debt",
    "return": "redeemed points given back",
}
ENTRY_WORDS = {"debt_repay": "repaid debt", "transfer_fee": "transfer fee"}


def describe(
    operation_kind: str, entry_kind: str, key: str, result: dict[str, Any], member: str
) -> str:
    """Why a history item happened, in words, from its operation's stored result."""
    text = _headline(operation_kind, key, result, member)
    step = entry_kind.split("_", 1)[1] if entry_kind.startswith(("refund_", "dispute_")) else ""
    words = STEP_WORDS.get(step) if step else ENTRY_WORDS.get(entry_kind)
    return f"{text}: {words}" if words else text


def _headline(kind: str, key: str, r: dict[str, Any], member: str) -> str:
    """What the operation was: an order, a refund, a transfer, an adjustment, a sweep."""
    order = r.get("order_id") or r.get("reference") or key
    if kind == "earn_purchase":
        return f"purchase, order {order}"
    if kind == "earn_action":
        action = key.split(":")[1] if key.startswith("action:") and key.count(":") >= 2 else ""
        return f"{action or 'action'} ({r.get('reference', key)})"
    if kind == "adjust":
        by = f" by {r['actor']}" if r.get("actor") else ""
        return f"adjustment{by}: {r.get('reason', '')}".rstrip(": ")
    if kind == "transfer":
        if r.get("recipient") == member:
            return f"transfer from {r.get('sender')}"
        return f"transfer to {r.get('recipient')}"
    if kind in ("reward_redeem", "reward_cancel"):
        return _reward_words(kind, r)
    words = OPERATION_WORDS.get(kind)
    if words is not None:
        return words.format(order=order, id=r.get("reversal_id", key))
    return kind.replace("_", " ")


def _reward_words(kind: str, r: dict[str, Any]) -> str:
    """A reward redemption (``reward Mug ×2, redemption 7``) or its cancellation."""
    name = r.get("name") or r.get("reward") or "reward"
    quantity = f" ×{r['quantity']}" if (r.get("quantity") or 1) > 1 else ""
    what = f"reward {name}{quantity}, redemption {r.get('id', '?')}"
    if kind == "reward_cancel":
        reason = f": {r['reason']}" if r.get("reason") else ""
        return f"{what} cancelled{reason}"
    return what


OPERATION_WORDS = {
    "hold": "points held for order {order}",
    "capture": "points spent on order {order}",
    "release": "hold of order {order} released",
    "hold_timeout": "hold of order {order} timed out",
    "refund": "refund {id} of order {order}",
    "refund_succeeded": "refund {id} of order {order} succeeded",
    "refund_failed": "refund {id} of order {order} failed",
    "dispute": "dispute {id} of order {order}",
    "dispute_lost": "dispute {id} of order {order} lost",
    "dispute_won": "dispute {id} of order {order} won",
    "expire": "points expired",
    "clear": "year-end clearing",
    "mature": "pending points became available",
}
