"""Refunds and disputes of orders that earned points: freeze at once, then reverse or release.

Opening a refund (or a dispute) freezes its share of the order's points (see
:mod:`loyalty.domain.reversal`): first from the order's own lot, then, for points already
spent, from the member's other available points, soonest-expiring first. Points of the
order's lot that had already expired are not taken twice (``lapsed``); what cannot be found
is ``missing``.

* When the refund succeeds (the dispute is lost), the frozen points are reversed, the missing
  ones are taken from the points available by then, and the rest becomes a debt that later
  credits repay, or is waived when the program's ``refund_policy`` is ``within_balance``. A
  refund also gives back its share of the points redeemed on the order, into the lots they
  came from with their original expiry; points whose lot has expired meanwhile expire again
  at once (``expire_returned``). A lost dispute does not give redeemed points back.
* When the refund fails (the dispute is won), the frozen points go back where they were.

Every step is one transaction under the member's lock, idempotent by key (defaults:
``refund:<id>``, ``refund-succeeded:<id>``, ``refund-failed:<id>``, and ``dispute:<id>``,
``dispute-lost:<id>``, ``dispute-won:<id>``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Row, Table, func, select, update

from loyalty.db.database import Database
from loyalty.db.models import EXPIRY_KINDS, Reversal
from loyalty.domain.allocation import allocate_up_to
from loyalty.domain.checks import require_int, require_key
from loyalty.domain.money import require_currency
from loyalty.domain.reversal import cumulative_share, return_slices, reversal_points
from loyalty.errors import (
    AlreadyExists,
    InvalidAmount,
    OrderNotFound,
    ReversalNotFound,
    ReversalSettled,
)
from loyalty.services.earning import earnings
from loyalty.services.ledger import (
    Move,
    entries,
    lock_member,
    lots,
    members,
    operations,
    post_moves,
    program_row,
    programs,
    record_operation,
    replay,
    request_hash,
    resolve_key,
    run_write,
)
from loyalty.services.redemption import holds, spendable_lots
from loyalty.services.results import ReversalResult

reversals = cast(Table, Reversal.__table__)

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


def refund_order(
    db: Database,
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
    db: Database, *, program: str, refund_id: str, idempotency_key: str | None = None
) -> ReversalResult:
    """The refund went through: reverse its frozen points and give back redeemed points."""
    return _settle(db, REFUND, program, refund_id, reverse=True, idempotency_key=idempotency_key)


def fail_refund(
    db: Database, *, program: str, refund_id: str, idempotency_key: str | None = None
) -> ReversalResult:
    """The refund failed: its frozen points go back to the member."""
    return _settle(db, REFUND, program, refund_id, reverse=False, idempotency_key=idempotency_key)


def open_dispute(
    db: Database,
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
    db: Database, *, program: str, dispute_id: str, won: bool, idempotency_key: str | None = None
) -> ReversalResult:
    """The dispute closed: lost reverses the frozen points, won releases them."""
    if not isinstance(won, bool):
        raise InvalidAmount(f"won must be True or False, got {won!r}", field="won")
    return _settle(
        db, DISPUTE, program, dispute_id, reverse=not won, idempotency_key=idempotency_key
    )


# --- opening: freeze ------------------------------------------------------------------------


def _open(
    db: Database,
    kind: Kind,
    *,
    program: str,
    order_id: str,
    external_id: str,
    amount_minor: int,
    currency: str,
    idempotency_key: str | None,
) -> ReversalResult:
    require_key(order_id, name="order_id")
    require_key(external_id, name=f"{kind.name}_id")
    require_int("amount_minor", amount_minor)
    key = resolve_key(idempotency_key, f"{kind.name}:{external_id}")
    req_hash = request_hash(
        kind.name,
        {
            "program": program,
            "order_id": order_id,
            "id": external_id,
            "amount": amount_minor,
            "currency": str(currency).upper(),
        },
    )
    now = db.clock.now()

    def work(conn: Connection) -> ReversalResult:
        earning = _find_earning(conn, program, order_id)
        row = lock_member(conn, program, earning.member, key=key, at=now)
        replay(conn, row.existing_operation_id, kind.name, req_hash)
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
            key=key,
            kind=kind.name,
            member_id=row.id,
            req_hash=req_hash,
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
        return _store(conn, op_id, _result(values, earning.member))

    return run_write(
        db, work, result_type=ReversalResult, key=key, kind=kind.name, req_hash=req_hash
    )


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
    db: Database,
    kind: Kind,
    program: str,
    external_id: str,
    *,
    reverse: bool,
    idempotency_key: str | None,
) -> ReversalResult:
    require_key(external_id, name=f"{kind.name}_id")
    target = kind.reversed if reverse else kind.released
    key = resolve_key(idempotency_key, f"{kind.name}-{target}:{external_id}")
    op_kind = f"{kind.name}_{target}"
    req_hash = request_hash(op_kind, {"program": program, "id": external_id})
    now = db.clock.now()

    def work(conn: Connection) -> ReversalResult:
        found = _find_reversal(conn, program, kind, external_id)
        row = lock_member(conn, program, found.member, key=key, at=now)
        replay(conn, row.existing_operation_id, op_kind, req_hash)
        rev = conn.execute(select(reversals).where(reversals.c.id == found.id)).one()
        if rev.status == target:  # settled this way before: answer, change nothing
            return _result(rev._mapping, found.member, replayed=True)
        if rev.status != kind.opened:
            raise ReversalSettled(
                f"{kind.name} {external_id!r} is already {rev.status}; it cannot become {target}",
                status=rev.status,
            )
        op_id = record_operation(
            conn,
            program_id=row.program_id,
            key=key,
            kind=op_kind,
            member_id=row.id,
            req_hash=req_hash,
            result={},
            at=now,
        )
        post = _poster(conn, row, op_id, now)
        figures = (
            _reverse(conn, kind, row, rev, now, post)
            if reverse
            else _release(conn, kind, rev, now, post)
        )
        values = {**rev._mapping, **figures, "status": target, "resolved_at": now}
        conn.execute(
            update(reversals)
            .where(reversals.c.id == rev.id)
            .values(**figures, status=target, resolved_at=now)
        )
        return _store(conn, op_id, _result(values, found.member))

    return run_write(db, work, result_type=ReversalResult, key=key, kind=op_kind, req_hash=req_hash)


Poster = Callable[[list[Move]], None]


def _poster(conn: Connection, row: Row[Any], op_id: int, now: dt.datetime) -> Poster:
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
            )
            .join(lots, lots.c.id == entries.c.lot_id)
            .where(
                entries.c.operation_id == rev.operation_id,
                entries.c.kind == kind.entry("freeze"),
            )
            .order_by(entries.c.id)
        )
    )


def _reverse(
    conn: Connection, kind: Kind, row: Row[Any], rev: Row[Any], now: dt.datetime, post: Poster
) -> dict[str, int]:
    """Reverse the frozen points, give back redeemed ones, settle what was missing."""
    returned = _return_redeemed(conn, rev, now, post) if kind.returns_redeemed else 0
    late = _lapsed_since_freeze(conn, rev)
    missing = rev.missing - late
    moves = [
        Move(kind.entry("reverse"), e.lot_id, frozen=-e.frozen_delta)
        for e in _frozen_entries(conn, kind, rev)
    ]
    deducted = 0
    for lot_id, take in allocate_up_to(spendable_lots(conn, row.id, now), missing):
        moves.append(Move(kind.entry("deduct"), lot_id, available=-take))
        deducted += take
    rest = missing - deducted
    debt = rest if row.program_refund_policy == "debt" else 0
    if debt:
        moves.append(Move(kind.entry("debt"), None, debt=debt))
    post(moves)
    return {
        "lapsed": rev.lapsed + late,
        "missing": missing,
        "deducted": deducted,
        "debt": debt,
        "waived": rest - debt,
        "returned": returned,
    }


def _lapsed_since_freeze(conn: Connection, rev: Row[Any]) -> int:
    """Missing points of a reversal that lapsed with the order's lot after its freeze.

    Redeemed points this very refund just gave back into the order's expired lot (and
    expired again) are the order's own points: they are not missing, whether the order is
    refunded in one go or in parts.
    """
    lot = conn.execute(
        select(lots.c.id, lots.c.expired_at)
        .join(earnings, earnings.c.lot_id == lots.c.id)
        .where(earnings.c.id == rev.earning_id)
    ).first()
    if lot is None or lot.expired_at is None or not rev.missing:
        return 0
    counted = _prior(conn, rev.earning_id).lapsed  # includes this reversal's own
    return int(min(rev.missing, max(0, _lapsed_points(conn, lot.id) - counted)))


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
    taken = conn.execute(
        select(entries.c.lot_id, entries.c.held_delta, lots.c.expired_at)
        .join(lots, lots.c.id == entries.c.lot_id)
        .where(entries.c.operation_id == hold.operation_id, entries.c.kind == "hold")
        .order_by(entries.c.id)
    ).all()
    expired = {t.lot_id for t in taken if t.expired_at is not None}
    moves: list[Move] = []
    for lot_id, points in return_slices(
        [(t.lot_id, t.held_delta) for t in taken], int(done[1]), now_returned
    ):
        moves.append(Move("refund_return", lot_id, available=points))
        if lot_id in expired:
            moves.append(Move("expire_returned", lot_id, available=-points))
    post(moves)
    return now_returned


def _release(
    conn: Connection, kind: Kind, rev: Row[Any], now: dt.datetime, post: Poster
) -> dict[str, int]:
    """Give the frozen points back: pending ones to pending while the lot is not mature."""
    moves: list[Move] = []
    for e in _frozen_entries(conn, kind, rev):
        expired = e.expired_at is not None
        still_pending = e.matures_at is not None and e.matures_at > now and not expired
        pending = -e.pending_delta if still_pending else 0
        available = e.frozen_delta - pending
        moves.append(
            Move(
                kind.entry("release"),
                e.lot_id,
                frozen=-e.frozen_delta,
                available=available,
                pending=pending,
            )
        )
        if expired:  # the lot expired while its points were frozen: they don't come back
            moves.append(Move("expire_returned", e.lot_id, available=-available))
    post(moves)
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


def _store(conn: Connection, op_id: int, result: ReversalResult) -> ReversalResult:
    """Store a result on its operation (written first, to win the race on the key)."""
    conn.execute(
        update(operations).where(operations.c.id == op_id).values(result=result.to_record())
    )
    return result
