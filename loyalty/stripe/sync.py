"""Applying Stripe events to the ledger: record each event once, then earn, refund, dispute.

What happens to a verified event (see :mod:`loyalty.stripe.webhook` for the door):

1. It is recorded once per program and event id (``stripe_events``). A delivery of an
   event already handled gets **200** ``duplicate`` and changes nothing.
2. It is applied in the request and the answer is **200** with what was done. An event that
   moves no points is ``ignored``. One whose member is unknown, or whose refund comes before
   its purchase, is ``parked``: kept, shown, and applied when the member is linked
   (:func:`apply_parked`) or the purchase arrives, or by hand (:func:`replay_event`). One that
   the rules refuse (another currency, a closed member) is ``failed`` with the reason, and
   nothing else it would have done is kept. An unexpected error (the database is down) is
   not caught: the host answers 5xx, nothing of the delivery is kept, and Stripe's retry
   applies it.

One delivery is one unit of work on one pooled connection: the order's lock, the event's row,
every service call (each in a savepoint) and the event's outcome commit together. A burst of
deliveries therefore needs at most one connection each, never two at once, and cannot starve
the pool it shares with the rest of the app.

Purchases earn once per PaymentIntent (its id is the order id), whichever of
``payment_intent.succeeded`` and ``checkout.session.completed`` comes first. Refunds and
disputes are brought to the state all the order's events describe (``loyalty.stripe.plan``),
under a lock per order (transaction-scoped on PostgreSQL, so it works behind PgBouncer in
transaction mode; see :mod:`loyalty.db.dialect`), so duplicated and reordered deliveries end
in the same ledger.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, bindparam, exists, or_, select, update

from loyalty import services as svc
from loyalty.db.database import Database
from loyalty.db.dialect import insert_ignoring, lock_key_for_transaction, writer_lock
from loyalty.db.tables import earnings, members, reversals, stripe_events
from loyalty.errors import InvalidStripeEvent, LoyaltyError, StripeEventNotFound
from loyalty.services.results import MemberInfo
from loyalty.services.uow import RetryUnit, Target, UnitOfWork, run_in, unit_of_work
from loyalty.services.writes import program_row
from loyalty.stripe.payloads import (
    CHARGE_REFUNDED,
    DISPUTE_PREFIX,
    MEMBER_METADATA_KEY,
    PURCHASE_TYPES,
    REFUND_TYPES,
    Envelope,
    Fact,
    Ignored,
    Purchase,
    order_of,
    parse_envelope,
    parse_fact,
)
from loyalty.stripe.plan import Call, Recorded, Seen, plan

FINAL_STATUSES = ("applied", "parked", "ignored", "failed")


@dataclass(frozen=True)
class WebhookResult:
    """The answer to one delivery: the HTTP status and what happened to the event.

    ``status`` is ``applied``, ``parked``, ``ignored``, ``failed`` (the rules refused it),
    ``duplicate`` (handled before; nothing changed) or ``rejected`` (400; nothing written).
    """

    http_status: int
    status: str
    message: str
    event_id: str | None = None
    event_type: str | None = None
    outcome: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON body to answer Stripe with."""
        return {
            "status": self.status,
            "message": self.message,
            "event_id": self.event_id,
            "type": self.event_type,
        }


@dataclass(frozen=True)
class _Outcome:
    status: str
    reason: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


# --- receiving --------------------------------------------------------------------------------


def receive_event(
    db: Database,
    program: str,
    event: Mapping[str, Any],
    envelope: Envelope | None = None,
    *,
    program_id: int | None = None,
) -> WebhookResult:
    """Record a verified event once and apply it (the part after the signature check)."""
    envelope = envelope or parse_envelope(event)
    if program_id is None:
        with db.read() as conn:
            program_id = int(program_row(conn, program).id)
    fact = _fact_or_none(envelope)
    if isinstance(fact, Purchase):
        done = _receive_purchase(db, program, program_id, event, envelope, fact)
        if done is not None:
            return done
    with order_transaction(db, program, _order_or_none(fact)) as unit:
        row_id, status, is_new = _record(unit, program_id, event, envelope, fact)
        if not is_new and status in FINAL_STATUSES:
            return WebhookResult(
                200,
                "duplicate",
                f"event {envelope.event_id} was already handled ({status}); nothing changed",
                envelope.event_id,
                envelope.type,
            )
        return _apply_and_finish(unit, program, row_id, envelope)


def _fact_or_none(envelope: Envelope) -> Fact | None:
    """What the event means, or ``None`` when its object is broken (applying it says why)."""
    try:
        return parse_fact(envelope)
    except InvalidStripeEvent:
        return None


def _order_or_none(fact: Fact | None) -> str | None:
    """The order (PaymentIntent) an event belongs to, if it names one."""
    return None if fact is None or isinstance(fact, Ignored) else order_of(fact)


def _columns(envelope: Envelope, fact: Fact | None) -> dict[str, Any]:
    """What the console filters on, taken from the object when it has it."""
    obj = envelope.object
    order = order_of(fact) if fact is not None else None
    metadata = obj.get("metadata")
    ref = (metadata.get(MEMBER_METADATA_KEY) if isinstance(metadata, Mapping) else None) or obj.get(
        "client_reference_id"
    )
    customer = obj.get("customer")
    return {
        "object_id": _text(obj.get("id")),
        "payment_intent": _text(order),
        "customer": _text(customer),
        "member_ref": _text(ref, 128),
    }


def _text(value: Any, limit: int = 255) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _event_row(
    db: Target, program_id: int, event: Mapping[str, Any], envelope: Envelope, fact: Fact | None
) -> dict[str, Any]:
    """The ``stripe_events`` row of a new delivery, as ``received``."""
    return {
        "program_id": program_id,
        "event_id": envelope.event_id,
        "type": envelope.type,
        "livemode": envelope.livemode,
        "stripe_created": envelope.created,
        "payload": dict(event),
        "status": "received",
        "received_at": db.clock.now(),
        **_columns(envelope, fact),
    }


_INSERT_EVENT = insert_ignoring(
    stripe_events, conflict=["program_id", "event_id"], returning=[stripe_events.c.id]
)


def _insert_event(conn: Connection, values: Mapping[str, Any]) -> int | None:
    """Insert an event's row unless the program has it already; the new row's id, or None."""
    new_id = conn.execute(_INSERT_EVENT.on(conn), dict(values)).scalar()
    return None if new_id is None else int(new_id)


def _record(
    unit: UnitOfWork,
    program_id: int,
    event: Mapping[str, Any],
    envelope: Envelope,
    fact: Fact | None,
) -> tuple[int, str, bool]:
    """The event's row (inserted as ``received`` if new) in the unit's transaction:
    ``(id, status, is_new)``."""
    conn = unit.connection
    new_id = _insert_event(conn, _event_row(unit, program_id, event, envelope, fact))
    if new_id is not None:
        return int(new_id), "received", True
    found = _find(conn, program_id, envelope.event_id)  # delivered before (or concurrently)
    if found is None:  # pragma: no cover - rows are never deleted
        raise RuntimeError(f"event {envelope.event_id} vanished")
    return found[0], found[1], False


def _find(conn: Connection, program_id: int, event_id: str) -> tuple[int, str] | None:
    row = conn.execute(
        select(stripe_events.c.id, stripe_events.c.status).where(
            stripe_events.c.program_id == program_id, stripe_events.c.event_id == event_id
        )
    ).first()
    return (int(row.id), str(row.status)) if row else None


def _apply_recorded(db: Target, program: str, row_id: int, envelope: Envelope) -> WebhookResult:
    """Apply a recorded event in one transaction holding its order's lock."""
    with order_transaction(db, program, _order_or_none(_fact_or_none(envelope))) as unit:
        return _apply_and_finish(unit, program, row_id, envelope)


def _apply_and_finish(
    unit: UnitOfWork, program: str, row_id: int, envelope: Envelope
) -> WebhookResult:
    """Apply the event in a savepoint of the unit (all of it or, if refused, none of it) and
    record the outcome on its row."""
    try:
        with unit.write():
            outcome = _apply(unit, program, envelope)
    except LoyaltyError as exc:
        outcome = _Outcome("failed", exc.message, {"error": exc.code})
    _finish(unit, row_id, outcome)
    return _answer(envelope, outcome)


def _answer(envelope: Envelope, outcome: _Outcome) -> WebhookResult:
    message = outcome.reason or f"{envelope.type} applied"
    return WebhookResult(
        200, outcome.status, message, envelope.event_id, envelope.type, outcome.details
    )


def _finished(outcome: _Outcome, now: Any) -> dict[str, Any]:
    """The event row's columns once ``outcome`` is known (besides ``attempts``)."""
    return {
        "status": outcome.status,
        "reason": outcome.reason,
        "outcome": dict(outcome.details) or None,
        "applied_at": now if outcome.status == "applied" else None,
    }


def _finish(unit: UnitOfWork, row_id: int, outcome: _Outcome) -> None:
    unit.connection.execute(
        update(stripe_events)
        .where(stripe_events.c.id == row_id)
        .values(**_finished(outcome, unit.clock.now()), attempts=stripe_events.c.attempts + 1)
    )


# --- purchases in one transaction -------------------------------------------------------------


class _GeneralPath(Exception):
    """The delivery needs the general path; the one-transaction path rolls back."""


def _receive_purchase(
    db: Database,
    program: str,
    program_id: int,
    event: Mapping[str, Any],
    envelope: Envelope,
    fact: Purchase,
) -> WebhookResult | None:
    """A purchase delivered for the first time, in one transaction: lock the order, read its
    state, earn (or park), and record the event with its outcome.

    Returns ``None``, having written nothing, when the delivery needs the general path
    (record, apply, finish): the event was recorded before, refunds or disputes of the order
    wait for it, or the rules refuse it (the general path records why as ``failed``).
    """
    try:
        with writer_lock(db.engine), unit_of_work(db, isolate_calls=False) as uow:
            conn = uow.connection
            _lock_order_in(conn, program, fact.payment_intent)
            state = _purchase_state(conn, program_id, fact, event_id=envelope.event_id)
            if state.event_status is not None or state.has_reversal_events:
                raise _GeneralPath
            outcome = _purchase_outcome(uow, program, fact, state)
            row = _event_row(db, program_id, event, envelope, fact)
            row.update(_finished(outcome, row["received_at"]), attempts=1)
            if _insert_event(conn, row) is None:  # delivered concurrently by the general path
                raise _GeneralPath
    except (_GeneralPath, LoyaltyError, RetryUnit):
        return None
    return _answer(envelope, outcome)


def _order_lock_key(program: str, order: str) -> int:
    digest = hashlib.blake2b(f"jifen:stripe:{program}:{order}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _lock_order_in(conn: Connection, program: str, order: str) -> None:
    """Hold the order's lock for the rest of ``conn``'s transaction."""
    lock_key_for_transaction(conn, _order_lock_key(program, order))


# --- applying ---------------------------------------------------------------------------------


def _apply(db: Target, program: str, envelope: Envelope) -> _Outcome:
    fact = parse_fact(envelope)
    if isinstance(fact, Ignored):
        return _Outcome("ignored", fact.reason)
    order = order_of(fact)
    if order is None:
        return _Outcome(
            "parked",
            f"the {envelope.type} event names no payment_intent; Jifen ties refunds and "
            "disputes to their purchase by PaymentIntent (replay it once that is known)",
        )
    if isinstance(fact, Purchase):
        return _apply_purchase(db, program, fact)
    return _reconcile(db, program, order)


def _apply_purchase(db: Target, program: str, fact: Purchase) -> _Outcome:
    with db.read() as conn:
        state = _purchase_state(conn, _program_id(conn, program), fact)
    outcome = _purchase_outcome(db, program, fact, state)
    if outcome.status == "applied" and state.has_reversal_events and state.earned is None:
        # refunds or disputes that waited for this purchase
        calls = _reconcile(db, program, fact.payment_intent).details.get("calls", [])
        outcome = _Outcome(outcome.status, outcome.reason, {**outcome.details, "reversals": calls})
    return outcome


def _purchase_outcome(
    db: Target,
    program: str,
    fact: Purchase,
    state: _PurchaseState,
) -> _Outcome:
    """Earn the purchase's points (in ``db``'s unit of work if it is one), or say why not."""
    order = fact.payment_intent
    if state.earned is not None:
        return _Outcome(
            "applied",
            f"order {order} had already earned {state.earned} points; nothing changed",
            {"already_earned": state.earned},
        )
    if state.member is None:
        return _Outcome("parked", _unknown_member(fact))
    result = svc.earn_purchase(
        db,
        program=program,
        member=state.member,
        order_id=order,
        amount_minor=fact.amount_minor,
        currency=fact.currency,
        location=fact.location,
        device=fact.device,
    )
    return _Outcome(
        "applied",
        f"{state.member} earned {result.points_granted} points for {order}",
        {"member": state.member, "points": result.points_granted},
    )


@dataclass(frozen=True)
class _PurchaseState:
    event_status: str | None  # the status of this very event, if recorded before
    earned: int | None  # points the order already earned, if it did
    member: str | None  # the member's external id, if found
    has_reversal_events: bool


def _program_id(conn: Connection, program: str) -> int:
    return int(program_row(conn, program).id)


_PROGRAM: Any = bindparam("program_id")


def _first_in_program(column: Any, condition: Any) -> Any:
    """Scalar subquery: ``column`` of the program's first row (of its table) matching."""
    return (
        select(column)
        .where(column.table.c.program_id == _PROGRAM, condition)
        .limit(1)
        .scalar_subquery()
    )


_PURCHASE_STATE = select(
    _first_in_program(
        stripe_events.c.status, stripe_events.c.event_id == bindparam("event_id")
    ).label("event_status"),
    _first_in_program(earnings.c.points_granted, earnings.c.order_id == bindparam("order")).label(
        "earned"
    ),
    _first_in_program(
        members.c.external_id, members.c.stripe_customer_id == bindparam("customer")
    ).label("by_customer"),
    _first_in_program(
        members.c.external_id, members.c.external_id == bindparam("member_ref")
    ).label("by_reference"),
    exists()
    .where(
        stripe_events.c.program_id == _PROGRAM,
        stripe_events.c.payment_intent == bindparam("order"),
        stripe_events.c.type.not_in(PURCHASE_TYPES),
    )
    .label("has_reversal_events"),
)


def _purchase_state(
    conn: Connection, program_id: int, fact: Purchase, *, event_id: str | None = None
) -> _PurchaseState:
    """In one statement: was the event recorded, has the order earned, whose is it (by Stripe
    customer, then by the metadata's member id), and did refunds or disputes come before it."""
    row = conn.execute(
        _PURCHASE_STATE,
        {
            "program_id": program_id,
            "event_id": event_id,
            "order": fact.payment_intent,
            "customer": fact.customer,
            "member_ref": fact.member_ref,
        },
    ).one()
    return _PurchaseState(
        event_status=row.event_status,
        earned=None if row.earned is None else int(row.earned),
        member=row.by_customer or row.by_reference,
        has_reversal_events=bool(row.has_reversal_events),
    )


def _unknown_member(fact: Purchase) -> str:
    named = []
    if fact.customer:
        named.append(f"no member is linked to Stripe customer {fact.customer}")
    if fact.member_ref:
        named.append(f"no member {fact.member_ref!r} is enrolled")
    if not named:
        named.append(f"the payment has no Stripe customer and no {MEMBER_METADATA_KEY!r} metadata")
    return "; ".join(named) + ": parked until the member is linked or enrolled"


# --- refunds and disputes ---------------------------------------------------------------------

_REVERSAL_TYPES = (*REFUND_TYPES, CHARGE_REFUNDED)


def _reconcile(db: Target, program: str, order: str) -> _Outcome:
    """Bring the order's refunds and disputes to what all its events say (lock held)."""
    with db.read() as conn:
        prog = program_row(conn, program)
        earning_id = conn.execute(
            select(earnings.c.id).where(
                earnings.c.program_id == prog.id, earnings.c.order_id == order
            )
        ).scalar()
        if earning_id is None:
            return _Outcome(
                "parked", f"the purchase of {order} has not been recorded yet: parked until then"
            )
        seen = _seen(conn, int(prog.id), order)
        recorded = _recorded(conn, int(earning_id))
    todo = plan(order, seen, recorded)
    for call in todo.calls:
        _call(db, program, order, call)
    _release_parked(db, int(prog.id), order)
    details: dict[str, Any] = {"calls": [f"{c.action} {c.external_id}" for c in todo.calls]}
    if todo.warnings:
        details["warnings"] = todo.warnings
    reason = "; ".join(todo.warnings) or None
    return _Outcome("applied", reason, details)


def _seen(conn: Connection, program_id: int, order: str) -> list[Seen]:
    rows = conn.execute(
        select(stripe_events.c.payload)
        .where(
            stripe_events.c.program_id == program_id,
            stripe_events.c.payment_intent == order,
            or_(
                stripe_events.c.type.in_(_REVERSAL_TYPES),
                stripe_events.c.type.startswith(DISPUTE_PREFIX),
            ),
            stripe_events.c.status != "failed",
        )
        .order_by(stripe_events.c.id)
    ).scalars()
    seen = []
    for payload in rows:
        envelope = parse_envelope(payload)
        seen.append(Seen(envelope.created, parse_fact(envelope)))
    return seen


def _recorded(conn: Connection, earning_id: int) -> list[Recorded]:
    rows = conn.execute(
        select(
            reversals.c.kind,
            reversals.c.external_id,
            reversals.c.status,
            reversals.c.amount_minor,
        ).where(reversals.c.earning_id == earning_id)
    )
    return [Recorded(r.kind, r.external_id, r.status, int(r.amount_minor)) for r in rows]


def _call(db: Target, program: str, order: str, call: Call) -> None:
    rid = call.external_id
    match call.action:
        case "refund":
            svc.refund_order(
                db,
                program=program,
                order_id=order,
                refund_id=rid,
                amount_minor=call.amount_minor,
                currency=call.currency,
                succeeded=call.succeeded,
            )
        case "complete_refund":
            svc.complete_refund(db, program=program, refund_id=rid)
        case "fail_refund":
            svc.fail_refund(db, program=program, refund_id=rid)
        case "open_dispute":
            svc.open_dispute(
                db,
                program=program,
                order_id=order,
                dispute_id=rid,
                amount_minor=call.amount_minor,
                currency=call.currency,
            )
        case "lost_dispute" | "won_dispute":
            svc.close_dispute(db, program=program, dispute_id=rid, won=call.action == "won_dispute")
        case _:  # pragma: no cover - plan() makes only the calls above
            raise ValueError(f"unknown call {call.action}")


def _release_parked(db: Target, program_id: int, order: str) -> None:
    """Refund and dispute events of the order that waited for its purchase are now applied."""
    with db.write() as conn:
        conn.execute(
            update(stripe_events)
            .where(
                stripe_events.c.program_id == program_id,
                stripe_events.c.payment_intent == order,
                stripe_events.c.status == "parked",
                stripe_events.c.type.not_in(PURCHASE_TYPES),
            )
            .values(status="applied", reason=None, applied_at=db.clock.now())
        )


@contextlib.contextmanager
def order_transaction(db: Target, program: str, order: str | None) -> Iterator[UnitOfWork]:
    """A unit of work that holds the order's lock until it ends.

    The service calls made in it run in savepoints on its one connection, so a delivery never
    needs a second connection while it holds the lock. The lock serialises deliveries of the
    same order (Stripe sends them concurrently): transaction-scoped on PostgreSQL, so it works
    behind PgBouncer in transaction mode; on SQLite, ``BEGIN IMMEDIATE`` and the process's
    writer lock (see :mod:`loyalty.db.dialect`). An event without an order (``order`` None)
    takes no lock of its own. Given a unit of work (a door applying parked events as part of
    a larger action), the lock is taken in it and the unit is yielded.
    """
    if isinstance(db, UnitOfWork):
        if order is not None:
            _lock_order_in(db.connection, program, order)
        yield db
        return
    with writer_lock(db.engine), unit_of_work(db) as unit:
        if order is not None:
            _lock_order_in(unit.connection, program, order)
        yield unit


# --- parked events and replays ----------------------------------------------------------------


def replay_event(db: Target, *, program: str, event_id: str) -> WebhookResult:
    """Apply a recorded event again (a parked or failed one); an applied one is left alone."""
    with db.read() as conn:
        prog = program_row(conn, program)
        row = conn.execute(
            select(stripe_events).where(
                stripe_events.c.program_id == prog.id, stripe_events.c.event_id == event_id
            )
        ).first()
    if row is None:
        raise StripeEventNotFound(
            f"no Stripe event {event_id!r} was received for program {program!r}",
            event_id=event_id,
        )
    envelope = parse_envelope(row.payload)
    if row.status in ("applied", "ignored"):
        return WebhookResult(
            200, "duplicate", f"event {event_id} is already {row.status}", event_id, row.type
        )
    return _apply_recorded(db, program, int(row.id), envelope)


def replay_event_audited(db: Target, *, program: str, event_id: str, actor: str) -> WebhookResult:
    """:func:`replay_event` done by a console user, and its audit entry, in one unit of work."""

    def replay(uow: UnitOfWork) -> WebhookResult:
        result = replay_event(uow, program=program, event_id=event_id)
        svc.audit(
            uow,
            actor=actor,
            action="webhook.replay",
            target=f"stripe event {event_id}",
            program=program,
            after={"status": result.status, "message": result.message},
        )
        return result

    return run_in(db, replay)


def apply_parked_for(db: Target, member: MemberInfo) -> list[WebhookResult]:
    """Apply what was parked for a member just enrolled or linked to a Stripe customer."""
    return apply_parked(
        db,
        program=member.program,
        customer=member.stripe_customer_id,
        member=member.external_id,
    )


def apply_parked(
    db: Target, *, program: str, customer: str | None = None, member: str | None = None
) -> list[WebhookResult]:
    """Apply the parked purchases of a Stripe customer or member (after linking or enrolling)."""
    if not customer and not member:
        return []
    matches = []
    if customer:
        matches.append(stripe_events.c.customer == customer)
    if member:
        matches.append(stripe_events.c.member_ref == member)
    with db.read() as conn:
        prog = program_row(conn, program)
        event_ids = conn.execute(
            select(stripe_events.c.event_id)
            .where(
                and_(
                    stripe_events.c.program_id == prog.id,
                    stripe_events.c.status == "parked",
                    stripe_events.c.type.in_(PURCHASE_TYPES),
                    or_(*matches),
                )
            )
            .order_by(stripe_events.c.stripe_created, stripe_events.c.id)
        ).scalars()
        ids: Sequence[str] = list(event_ids)
    return [replay_event(db, program=program, event_id=e) for e in ids]
