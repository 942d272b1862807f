"""Refunds and disputes of orders that earned points: freeze at once, then reverse or release.

Opening a refund (or a dispute) freezes its share of the order's points (see
:mod:`loyalty.domain.reversal`): first from the order's own lot, then, for points already
spent, from the member's other available points, soonest-expiring first. Points of the
order's lot that had already expired are not taken twice (``lapsed``); what cannot be found
is ``missing``.

* When the refund succeeds (the dispute is lost), its share is settled first: the share it
  froze was provisional (measured against the order's earlier refunds that still counted,
  pending ones included, and some of those may have failed since), so it becomes its share
  of the order measured against the order's refunds and lost disputes that went through
  before it (:func:`~loyalty.domain.reversal.settled_points`). The points taken back for an
  order then total the cumulative share of the money of its reversals that went through,
  whatever the order in which they opened, failed and went through. A smaller share needs
  fewer missing points, then gives frozen points back to their lots (the last frozen first,
  as a failure would). A larger one takes the extra points where a freeze would have found
  them: from the frozen points of the order's other open refunds and disputes (the latest
  opened first; their shares shrink by as much and are settled again when they go through),
  then from the order's own lot (deducted), and counts the rest as missing. Then the frozen
  points are reversed, the missing ones are taken from the points available by then, and the
  rest becomes a debt that later credits repay, or is waived when the program's
  ``refund_policy`` is ``within_balance``. A refund also gives back its share of the points
  redeemed on the order, into the lots they came from with their original expiry; points
  whose lot has expired meanwhile expire again at once (``expire_returned``). A lost dispute
  does not give redeemed points back.
* When the refund fails (the dispute is won), the frozen points go back where they were.

Every step is one transaction under the member's lock, idempotent by key (defaults:
``refund:<id>``, ``refund-succeeded:<id>``, ``refund-failed:<id>``, and ``dispute:<id>``,
``dispute-lost:<id>``, ``dispute-won:<id>``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, bindparam, func, select, update

from loyalty.db.models import EXPIRY_KINDS
from loyalty.db.tables import (
    earnings,
    entries,
    holds,
    lots,
    members,
    operations,
    programs,
    reversals,
)
from loyalty.domain.allocation import allocate_up_to
from loyalty.domain.checks import require_minor_units, require_order_id, require_program_code
from loyalty.domain.money import require_currency
from loyalty.domain.moves import Move
from loyalty.domain.reversal import (
    FrozenSlice,
    Share,
    cumulative_share,
    release_moves,
    return_slices,
    reversal_points,
    reverse_moves,
    settled_points,
    shrink_share,
    split_last,
)
from loyalty.errors import (
    AlreadyExists,
    InvalidAmount,
    OrderNotFound,
    ReversalNotFound,
    ReversalSettled,
)
from loyalty.events.outbox import emit_current
from loyalty.services.ledger import post_moves, record_operation
from loyalty.services.lots import HeldLot, hold_with_lots, spendable_lots
from loyalty.services.results import ReversalResult
from loyalty.services.tiers import record_qualifying, requalify_after
from loyalty.services.uow import Target
from loyalty.services.writes import (
    LedgerWrite,
    LockedMember,
    StoredResult,
    program_row,
    resolve_key,
)

# Statuses of reversals whose points are given back: they no longer count.
RELEASED_STATUSES = ("failed", "won")
OPEN_STATUSES = ("pending", "open")
LAPSED_KINDS = (*EXPIRY_KINDS, "expire_returned")


@dataclass(frozen=True)
class Kind:
    """What differs between refunds and disputes."""

    name: str
    opened: str
    reversed: str
    released: str
    returns_redeemed: bool

    def entry(self, step: str) -> str:
        """The entry kind of a step (freeze, reverse, release, deduct, debt)."""
        return f"{self.name}_{step}"


REFUND = Kind("refund", "pending", "succeeded", "failed", returns_redeemed=True)
DISPUTE = Kind("dispute", "open", "lost", "won", returns_redeemed=False)
KINDS = {kind.name: kind for kind in (REFUND, DISPUTE)}
# Statuses of reversals whose points were taken back for good.
REVERSED_STATUSES = (REFUND.reversed, DISPUTE.reversed)


def refund_order(
    db: Target,
    *,
    program: str,
    order_id: str,
    refund_id: str,
    amount_minor: int,
    currency: str,
    succeeded: bool = False,
    idempotency_key: str | None = None,
) -> ReversalResult:
    """Record a refund of ``amount_minor`` of an order: its share of the points is frozen.

    Call :func:`complete_refund` or :func:`fail_refund` when the refund's outcome is known,
    or pass ``succeeded=True`` for a refund that has already gone through.
    """
    opened = _open(
        db,
        REFUND,
        program=program,
        order_id=order_id,
        external_id=refund_id,
        amount_minor=amount_minor,
        currency=currency,
        idempotency_key=idempotency_key,
    )
    if not succeeded:
        return opened
    return complete_refund(db, program=program, refund_id=refund_id)


def complete_refund(
    db: Target, *, program: str, refund_id: str, idempotency_key: str | None = None
) -> ReversalResult:
    """The refund went through: reverse its frozen points and give back redeemed points."""
    return _settle(db, REFUND, program, refund_id, reverse=True, idempotency_key=idempotency_key)


def fail_refund(
    db: Target, *, program: str, refund_id: str, idempotency_key: str | None = None
) -> ReversalResult:
    """The refund failed: its frozen points go back to the member."""
    return _settle(db, REFUND, program, refund_id, reverse=False, idempotency_key=idempotency_key)


def open_dispute(
    db: Target,
    *,
    program: str,
    order_id: str,
    dispute_id: str,
    amount_minor: int,
    currency: str,
    idempotency_key: str | None = None,
) -> ReversalResult:
    """A chargeback of ``amount_minor`` of an order: its share of the points is frozen."""
    return _open(
        db,
        DISPUTE,
        program=program,
        order_id=order_id,
        external_id=dispute_id,
        amount_minor=amount_minor,
        currency=currency,
        idempotency_key=idempotency_key,
    )


def close_dispute(
    db: Target, *, program: str, dispute_id: str, won: bool, idempotency_key: str | None = None
) -> ReversalResult:
    """The dispute closed: lost reverses the frozen points, won releases them."""
    if not isinstance(won, bool):
        raise InvalidAmount(f"won must be True or False, got {won!r}", field="won")
    return _settle(
        db, DISPUTE, program, dispute_id, reverse=not won, idempotency_key=idempotency_key
    )


# --- opening: freeze ------------------------------------------------------------------------


def _open(
    db: Target,
    kind: Kind,
    *,
    program: str,
    order_id: str,
    external_id: str,
    amount_minor: int,
    currency: str,
    idempotency_key: str | None,
) -> ReversalResult:
    program = require_program_code(program)
    order_id = require_order_id(order_id)
    external_id = require_order_id(external_id, name=f"{kind.name}_id")
    require_minor_units("amount_minor", amount_minor)
    write = LedgerWrite.of(
        kind.name,
        key=resolve_key(idempotency_key, f"{kind.name}:{external_id}"),
        result_type=ReversalResult,
        request={
            "program": program,
            "order_id": order_id,
            "id": external_id,
            "amount": amount_minor,
            "currency": str(currency).upper(),
        },
    )
    now = db.clock.now()

    def work(conn: Connection) -> ReversalResult | StoredResult:
        earning = _find_earning(conn, program, order_id)
        row = write.lock(conn, program, earning.member, at=now, active=False)
        if isinstance(row, StoredResult):
            return row
        cur = require_currency(currency, earning.currency)
        _require_new(conn, row.program_id, kind, external_id)
        prior = _prior(conn, earning.id)
        points = reversal_points(
            granted=earning.points_granted,
            refundable=_refundable(earning),
            refunded_before=prior.amount,
            amount=amount_minor,
            reversed_before=prior.points,
        )
        op_id = record_operation(
            conn,
            program_id=row.program_id,
            **write.identity,
            member_id=row.id,
            result={},
            at=now,
        )
        freeze = _freeze(conn, kind, row.id, earning, points, prior.lapsed, now)
        post_moves(
            conn,
            program_id=row.program_id,
            member_id=row.id,
            operation_id=op_id,
            at=now,
            moves=freeze.moves,
        )
        values = {
            "program_id": row.program_id,
            "member_id": row.id,
            "earning_id": earning.id,
            "operation_id": op_id,
            "kind": kind.name,
            "external_id": external_id,
            "order_id": order_id,
            "amount_minor": amount_minor,
            "currency": cur,
            "status": kind.opened,
            "points": points,
            "frozen": freeze.frozen,
            "lapsed": freeze.lapsed,
            "missing": freeze.missing,
            "created_at": now,
            "resolved_at": None,
        }
        conn.execute(reversals.insert().values(values))
        result = _store(conn, op_id, _result(values, earning.member))
        _emit(conn, "points.frozen", row, (write.kind, write.key), op_id, result, now)
        return result

    return write.run(db, work)


def _find_earning(conn: Connection, program: str, order_id: str) -> Row[Any]:
    row = conn.execute(
        select(earnings, members.c.external_id.label("member"))
        .join(programs, programs.c.id == earnings.c.program_id)
        .join(members, members.c.id == earnings.c.member_id)
        .where(programs.c.code == program, earnings.c.order_id == order_id)
    ).first()
    if row is None:
        program_row(conn, program)
        raise OrderNotFound(
            f"order {order_id!r} earned no points in program {program!r}; "
            "record the purchase before its refund",
            order_id=order_id,
        )
    return row


def _require_new(conn: Connection, program_id: int, kind: Kind, external_id: str) -> None:
    found = conn.execute(
        select(reversals.c.id).where(
            reversals.c.program_id == program_id,
            reversals.c.kind == kind.name,
            reversals.c.external_id == external_id,
        )
    ).first()
    if found is not None:
        raise AlreadyExists(
            f"{kind.name} {external_id!r} was already recorded under another idempotency key",
            **{f"{kind.name}_id": external_id},
        )


@dataclass(frozen=True)
class _Prior:
    amount: int
    points: int
    lapsed: int


def _prior(conn: Connection, earning_id: int) -> _Prior:
    """Money and points of the order's earlier refunds and disputes that still count."""
    row = conn.execute(
        select(
            func.coalesce(func.sum(reversals.c.amount_minor), 0),
            func.coalesce(func.sum(reversals.c.points), 0),
            func.coalesce(func.sum(reversals.c.lapsed), 0),
        ).where(reversals.c.earning_id == earning_id, reversals.c.status.not_in(RELEASED_STATUSES))
    ).one()
    return _Prior(int(row[0]), int(row[1]), int(row[2]))


def _refundable(earning: Row[Any]) -> int:
    """The money paid for the order: what refunds are measured against."""
    refundable = int(earning.amount_minor or 0) - int(earning.points_paid_minor)
    if refundable <= 0:
        raise InvalidAmount(
            f"order {earning.order_id!r} was paid entirely with points; there is no money to "
            "refund (release or refund its points hold instead)",
            order_id=earning.order_id,
        )
    return refundable


@dataclass(frozen=True)
class _Freeze:
    moves: list[Move]
    frozen: int
    lapsed: int
    missing: int


def _freeze(
    conn: Connection,
    kind: Kind,
    member_id: int,
    earning: Row[Any],
    points: int,
    lapsed_before: int,
    now: dt.datetime,
) -> _Freeze:
    """Moves freezing ``points``: the order's lot first, then the member's other lots."""
    moves: list[Move] = []
    still = points
    lapsed = 0
    if earning.lot_id is not None and still:
        lot = conn.execute(select(lots).where(lots.c.id == earning.lot_id)).one()
        available = min(lot.available, still)
        pending = min(lot.pending, still - available)
        if available or pending:
            moves.append(
                Move(
                    kind.entry("freeze"),
                    lot.id,
                    available=-available,
                    pending=-pending,
                    frozen=available + pending,
                )
            )
            still -= available + pending
        if still and lot.expired_at is not None:
            lapsed = min(still, max(0, _lapsed_points(conn, lot.id) - lapsed_before))
            still -= lapsed
    others = [lot for lot in spendable_lots(conn, member_id, now) if lot.id != earning.lot_id]
    for lot_id, take in allocate_up_to(others, still):
        moves.append(Move(kind.entry("freeze"), lot_id, available=-take, frozen=take))
        still -= take
    return _Freeze(moves, frozen=points - lapsed - still, lapsed=lapsed, missing=still)


def _lapsed_points(conn: Connection, lot_id: int) -> int:
    """Points that expired (or were cleared) from a lot."""
    gone = conn.execute(
        select(
            func.coalesce(func.sum(entries.c.available_delta + entries.c.pending_delta), 0)
        ).where(entries.c.lot_id == lot_id, entries.c.kind.in_(LAPSED_KINDS))
    ).scalar_one()
    return -int(gone)


# --- settling: reverse or release -----------------------------------------------------------


def _settle(
    db: Target,
    kind: Kind,
    program: str,
    external_id: str,
    *,
    reverse: bool,
    idempotency_key: str | None,
) -> ReversalResult:
    program = require_program_code(program)
    external_id = require_order_id(external_id, name=f"{kind.name}_id")
    target = kind.reversed if reverse else kind.released
    write = LedgerWrite.of(
        f"{kind.name}_{target}",
        key=resolve_key(idempotency_key, f"{kind.name}-{target}:{external_id}"),
        result_type=ReversalResult,
        request={"program": program, "id": external_id},
    )
    now = db.clock.now()

    def work(conn: Connection) -> ReversalResult | StoredResult:
        found = _find_reversal(conn, program, kind, external_id)
        row = write.lock(conn, program, found.member, at=now, active=False)
        if isinstance(row, StoredResult):
            return row
        rev = conn.execute(select(reversals).where(reversals.c.id == found.id)).one()
        if rev.status == target:  # settled this way before: answer, change nothing
            return _result(rev._mapping, found.member, replayed=True)
        if rev.status != kind.opened:
            raise ReversalSettled(
                _settled_message(kind, external_id, rev.status, target),
                status=rev.status,
            )
        op_id = record_operation(
            conn,
            program_id=row.program_id,
            **write.identity,
            member_id=row.id,
            result={},
            at=now,
        )
        post = _poster(conn, row, op_id, now)
        figures = (
            _reverse(conn, kind, row, rev, now, post)
            if reverse
            else _release(conn, kind, rev, now, post)
        )
        if reverse:
            _reduce_measure(db, conn, kind, row, rev, figures["points"], op_id, now)
        values = {**rev._mapping, **figures, "status": target, "resolved_at": now}
        conn.execute(
            update(reversals)
            .where(reversals.c.id == rev.id)
            .values(**figures, status=target, resolved_at=now)
        )
        result = _store(conn, op_id, _result(values, found.member))
        type_ = "points.reversed" if reverse else "points.released"
        _emit(conn, type_, row, (write.kind, write.key), op_id, result, now)
        return result

    return write.run(db, work)


Poster = Callable[[list[Move]], None]


def _reduce_measure(
    db: Target,
    conn: Connection,
    kind: Kind,
    row: LockedMember,
    rev: Row[Any],
    points: int,
    op_id: int,
    now: dt.datetime,
) -> None:
    """Take what the reversal reversed off the member's qualifying measure, counted at the
    order's earn (as if the reversed part had never been earned), and under the ``at_once``
    policy move the member down at once."""
    earned_at = conn.execute(
        select(earnings.c.created_at).where(earnings.c.id == rev.earning_id)
    ).scalar_one()
    record_qualifying(
        conn,
        program_id=row.program_id,
        member_id=row.id,
        operation_id=op_id,
        source=kind.name,
        points=-points,
        money_minor=-rev.amount_minor,
        counted_at=earned_at,
        now=now,
    )
    requalify_after(
        conn,
        db,
        member_id=row.id,
        tz=row.program_timezone,
        reason=kind.name,
        operation_id=op_id,
        now=now,
        direction="down",
    )


def _poster(conn: Connection, row: LockedMember, op_id: int, now: dt.datetime) -> Poster:
    def post(moves: list[Move]) -> None:
        post_moves(
            conn,
            program_id=row.program_id,
            member_id=row.id,
            operation_id=op_id,
            at=now,
            moves=moves,
        )

    return post


def _settled_message(kind: Kind, external_id: str, status: str, target: str) -> str:
    """Why a settled reversal cannot go the other way, and what to do instead.

    A refund that fails after it succeeded (a bank refund that bounced) keeps its points
    reversed: the money went back to the merchant, who still owes it to the customer and must
    refund them another way, so the order stays refunded and its points must not come back.
    """
    said = f"{kind.name} {external_id!r} is already {status}; it cannot become {target}"
    if kind is REFUND and status == REFUND.reversed:
        return (
            f"{said}: its points stay reversed. A refund that fails after it succeeded put the "
            "money back in your balance and the customer is still owed it: refund them another "
            "way; if the order stands after all, grant the points back with adjust_points"
        )
    return said


def _find_reversal(conn: Connection, program: str, kind: Kind, external_id: str) -> Row[Any]:
    row = conn.execute(
        select(reversals, members.c.external_id.label("member"))
        .join(programs, programs.c.id == reversals.c.program_id)
        .join(members, members.c.id == reversals.c.member_id)
        .where(
            programs.c.code == program,
            reversals.c.kind == kind.name,
            reversals.c.external_id == external_id,
        )
    ).first()
    if row is None:
        program_row(conn, program)
        raise ReversalNotFound(
            f"no {kind.name} {external_id!r} in program {program!r}; record it first",
            **{f"{kind.name}_id": external_id},
        )
    return row


def _live_freeze(conn: Connection, kind: Kind, rev: Row[Any]) -> list[FrozenSlice]:
    """What a reversal holds frozen now, in the order it froze it.

    That is its freeze, less the points at its end that were given back or passed on to
    another reversal of the order when one went through: ``rev.frozen`` is what is left.
    """
    slices = [
        FrozenSlice(
            e.lot_id,
            e.frozen_delta + e.pending_delta,
            -e.pending_delta,
            e.matures_at,
            e.expired_at,
            held=e.matures_at is None and bool(e.risk_hold),
        )
        for e in _frozen_entries(conn, kind, rev)
    ]
    kept, _ = split_last(slices, sum(s.points for s in slices) - rev.frozen)
    return kept


def _frozen_entries(conn: Connection, kind: Kind, rev: Row[Any]) -> list[Row[Any]]:
    """The freeze entries of a reversal, with their lots."""
    return list(
        conn.execute(
            select(
                entries.c.lot_id,
                entries.c.pending_delta,
                entries.c.frozen_delta,
                lots.c.matures_at,
                lots.c.expired_at,
                members.c.risk_hold,
            )
            .join(lots, lots.c.id == entries.c.lot_id)
            .join(members, members.c.id == lots.c.member_id)
            .where(
                entries.c.operation_id == rev.operation_id,
                entries.c.kind == kind.entry("freeze"),
            )
            .order_by(entries.c.id)
        )
    )


def _reverse(
    conn: Connection,
    kind: Kind,
    row: LockedMember,
    rev: Row[Any],
    now: dt.datetime,
    post: Poster,
) -> dict[str, int]:
    """Settle the share, reverse the frozen points, give back redeemed ones, settle what was
    missing."""
    returned = _return_redeemed(conn, rev, now, post) if kind.returns_redeemed else 0
    share = _true_up(conn, kind, rev, now)
    late = _lapsed_since_freeze(conn, rev, share.missing - share.deducted)
    missing = share.missing - late
    moves = list(share.moves)
    deducted = share.deducted
    for lot_id, take in allocate_up_to(spendable_lots(conn, row.id, now), missing - deducted):
        moves.append(Move(kind.entry("deduct"), lot_id, available=-take))
        deducted += take
    rest = missing - deducted
    debt = rest if row.program_refund_policy == "debt" else 0
    if debt:
        moves.append(Move(kind.entry("debt"), None, debt=debt))
    post(moves)
    return {
        "points": share.points,
        "frozen": share.frozen,
        "lapsed": share.lapsed + late,
        "missing": missing,
        "deducted": deducted,
        "debt": debt,
        "waived": rest - debt,
        "returned": returned,
    }


def _true_up(conn: Connection, kind: Kind, rev: Row[Any], now: dt.datetime) -> Share:
    """Settle a reversal's share against the order's reversals that went through before it."""
    earning = conn.execute(select(earnings).where(earnings.c.id == rev.earning_id)).one()
    done = conn.execute(
        select(
            func.coalesce(func.sum(reversals.c.amount_minor), 0),
            func.coalesce(func.sum(reversals.c.points), 0),
        ).where(
            reversals.c.earning_id == rev.earning_id,
            reversals.c.id != rev.id,
            reversals.c.status.in_(REVERSED_STATUSES),
        )
    ).one()
    points = settled_points(
        granted=earning.points_granted,
        refundable=_refundable(earning),
        settled_before=int(done[0]),
        amount=rev.amount_minor,
        reversed_before=int(done[1]),
    )
    own = _live_freeze(conn, kind, rev)
    if points < rev.points:
        return shrink_share(
            Share(rev.points, rev.frozen, rev.lapsed, rev.missing, []),
            own,
            points,
            release_kind=kind.entry("release"),
            reverse_kind=kind.entry("reverse"),
            now=now,
        )
    return _grow(conn, kind, rev, earning, own, points)


def _grow(
    conn: Connection,
    kind: Kind,
    rev: Row[Any],
    earning: Row[Any],
    own: Sequence[FrozenSlice],
    points: int,
) -> Share:
    """A share at least as large: the extra points come from where a freeze would have found
    them, the frozen points of the order's other open reversals, then the order's own lot
    (deducted at once); the rest is missing."""
    extra = points - rev.points
    taken = _from_siblings(conn, rev, extra) if extra else []
    got = sum(s.points for s in taken)
    from_lot = _from_order_lot(conn, kind, earning, extra - got)
    return Share(
        points=points,
        frozen=rev.frozen + got,
        lapsed=rev.lapsed,
        missing=rev.missing + extra - got,
        moves=reverse_moves(kind.entry("reverse"), [*own, *taken]) + from_lot,
        deducted=-sum(m.available + m.pending for m in from_lot),
    )


def _from_order_lot(conn: Connection, kind: Kind, earning: Row[Any], points: int) -> list[Move]:
    """The move deducting up to ``points`` from the order's own lot: available, then pending."""
    if points <= 0 or earning.lot_id is None:
        return []
    lot = conn.execute(select(lots).where(lots.c.id == earning.lot_id)).one()
    available = min(lot.available, points)
    pending = min(lot.pending, points - available)
    if not available + pending:
        return []
    return [Move(kind.entry("deduct"), lot.id, available=-available, pending=-pending)]


def _from_siblings(conn: Connection, rev: Row[Any], points: int) -> list[FrozenSlice]:
    """Up to ``points`` frozen points of the order's other open reversals, the latest opened
    first and the end of each freeze first; their shares shrink by what they give."""
    siblings = conn.execute(
        select(reversals)
        .where(
            reversals.c.earning_id == rev.earning_id,
            reversals.c.id != rev.id,
            reversals.c.status.in_(OPEN_STATUSES),
            reversals.c.frozen > 0,
        )
        .order_by(reversals.c.id.desc())
    ).all()
    taken: list[FrozenSlice] = []
    for sibling in siblings:
        want = min(points - sum(s.points for s in taken), sibling.frozen)
        if want <= 0:
            break
        _, given = split_last(_live_freeze(conn, KINDS[sibling.kind], sibling), want)
        conn.execute(
            update(reversals)
            .where(reversals.c.id == sibling.id)
            .values(points=reversals.c.points - want, frozen=reversals.c.frozen - want)
        )
        taken += given
    return taken


def _lapsed_since_freeze(conn: Connection, rev: Row[Any], missing: int) -> int:
    """Of a reversal's ``missing`` points, those that lapsed with the order's lot after its
    freeze.

    Redeemed points this very refund just gave back into the order's expired lot (and
    expired again) are the order's own points: they are not missing, whether the order is
    refunded in one go or in parts.
    """
    lot = conn.execute(
        select(lots.c.id, lots.c.expired_at)
        .join(earnings, earnings.c.lot_id == lots.c.id)
        .where(earnings.c.id == rev.earning_id)
    ).first()
    if lot is None or lot.expired_at is None or not missing:
        return 0
    counted = _prior(conn, rev.earning_id).lapsed  # includes this reversal's own
    return int(min(missing, max(0, _lapsed_points(conn, lot.id) - counted)))


# The order's refunds that went through, with the order's earning (found by its unique
# program and order id, then the reversals by their earning index), oldest first.
_REFUNDS_DONE = (
    select(
        reversals.c.id,
        reversals.c.amount_minor,
        reversals.c.returned,
        earnings.c.order_id,
        earnings.c.amount_minor.label("paid_minor"),
        earnings.c.points_paid_minor,
    )
    .join(earnings, earnings.c.id == reversals.c.earning_id)
    .where(
        earnings.c.program_id == bindparam("program_id"),
        earnings.c.order_id == bindparam("order_id"),
        reversals.c.kind == REFUND.name,
        reversals.c.status == REFUND.reversed,
    )
    .order_by(reversals.c.id)
)


def returns_at_capture(conn: Connection, hold: Row[Any], held: Sequence[HeldLot]) -> list[Move]:
    """What a capture gives back at once: the share of the redeemed points that the order's
    refunds that went through before it would have given back had it come first.

    Refunds and a capture of one order can arrive in either order (Stripe sends events out of
    order); the points the member ends with must not depend on it. The amount is recorded on
    the latest opened of those refunds (``returned``), so later refunds continue after it
    (a replay of that refund shows it).
    """
    params = {"program_id": hold.program_id, "order_id": hold.order_id}
    done = conn.execute(_REFUNDS_DONE, params).all()
    whole = int(done[0].paid_minor or 0) - int(done[0].points_paid_minor) if done else 0
    if whole <= 0:  # no refund went through (or nothing was paid in money)
        return []
    paid = sum(int(r.amount_minor) for r in done)
    before = sum(int(r.returned) for r in done)
    now_returned = max(0, cumulative_share(hold.points, paid, whole) - before)
    if not now_returned:
        return []
    conn.execute(
        update(reversals)
        .where(reversals.c.id == done[-1].id)
        .values(returned=reversals.c.returned + now_returned)
    )
    expired = {lot.lot_id for lot in held if lot.lot_expired}
    moves: list[Move] = []
    for lot_id, points in return_slices(
        [(lot.lot_id, lot.points) for lot in held], before, now_returned
    ):
        moves.append(Move("refund_return", lot_id, available=points))
        if lot_id in expired:
            moves.append(Move("expire_returned", lot_id, available=-points))
    return moves


def _return_redeemed(conn: Connection, rev: Row[Any], now: dt.datetime, post: Poster) -> int:
    """Give back this refund's share of the points redeemed on the order (if any)."""
    hold = conn.execute(
        select(holds).where(
            holds.c.program_id == rev.program_id,
            holds.c.order_id == rev.order_id,
            holds.c.status == "captured",
        )
    ).first()
    if hold is None:
        return 0
    earning = conn.execute(select(earnings).where(earnings.c.id == rev.earning_id)).one()
    done = conn.execute(
        select(
            func.coalesce(func.sum(reversals.c.amount_minor), 0),
            func.coalesce(func.sum(reversals.c.returned), 0),
        ).where(
            reversals.c.earning_id == rev.earning_id,
            reversals.c.kind == REFUND.name,
            reversals.c.status == REFUND.reversed,
        )
    ).one()
    target = cumulative_share(hold.points, int(done[0]) + rev.amount_minor, _refundable(earning))
    now_returned = max(0, target - int(done[1]))
    _hold, taken = hold_with_lots(conn, hold.id, hold.operation_id)
    expired = {t.lot_id for t in taken if t.lot_expired}
    moves: list[Move] = []
    for lot_id, points in return_slices(
        [(t.lot_id, t.points) for t in taken], int(done[1]), now_returned
    ):
        moves.append(Move("refund_return", lot_id, available=points))
        if lot_id in expired:
            moves.append(Move("expire_returned", lot_id, available=-points))
    post(moves)
    return now_returned


def _release(
    conn: Connection, kind: Kind, rev: Row[Any], now: dt.datetime, post: Poster
) -> dict[str, int]:
    """Give what is left of the freeze back (see :func:`~loyalty.domain.reversal.release_moves`)."""
    post(release_moves(kind.entry("release"), _live_freeze(conn, kind, rev), now))
    return {}


# --- results ---------------------------------------------------------------------------------


def _result(values: Any, member: str, *, replayed: bool = False) -> ReversalResult:
    return ReversalResult(
        kind=values["kind"],
        reversal_id=values["external_id"],
        order_id=values["order_id"],
        member=member,
        amount_minor=values["amount_minor"],
        currency=values["currency"],
        status=values["status"],
        points=values["points"],
        frozen=values["frozen"],
        lapsed=values["lapsed"],
        missing=values["missing"],
        deducted=values.get("deducted", 0),
        debt=values.get("debt", 0),
        waived=values.get("waived", 0),
        returned=values.get("returned", 0),
        replayed=replayed,
    )


def _emit(
    conn: Connection,
    type_: str,
    row: LockedMember,
    operation: tuple[str, str],
    op_id: int,
    result: ReversalResult,
    now: dt.datetime,
) -> None:
    """The reversal's event: frozen (opened), reversed or released (settled)."""
    points = {
        "points.frozen": result.frozen,
        "points.reversed": result.points,
        "points.released": result.frozen,
    }[type_]
    emit_current(
        conn,
        type_,
        member_id=row.id,
        operation=operation,
        operation_id=op_id,
        points=points,
        at=now,
        reversal_kind=result.kind,
        reversal_id=result.reversal_id,
        order_id=result.order_id,
        amount_minor=result.amount_minor,
        currency=result.currency,
        status=result.status,
        frozen=result.frozen,
        lapsed=result.lapsed,
        missing=result.missing,
        deducted=result.deducted,
        debt=result.debt,
        waived=result.waived,
        returned=result.returned,
    )


def _store(conn: Connection, op_id: int, result: ReversalResult) -> ReversalResult:
    """Store a result on its operation (written first, to win the race on the key)."""
    conn.execute(
        update(operations).where(operations.c.id == op_id).values(result=result.to_record())
    )
    return result
