"""The outbox on both databases: every service writes exactly its events, naming the member,
the operation (kind and key), the points and the balance right after the change, in the
write's own transaction.

A refused write and a rolled-back unit of work leave no event; an idempotent replay adds
none; a member's events are numbered in the order the member's writes happened.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import pytest
from helpers import PROGRAM, earn, enrol, hold, make_program
from sqlalchemy import select

from loyalty import services as s
from loyalty.db import Database
from loyalty.db.tables import events, members, operations
from loyalty.domain.clock import FixedClock
from loyalty.errors import InsufficientPoints, MemberNotFound, TransferLimit
from loyalty.events.outbox import BALANCE_FIELDS, EVENT_TYPES
from loyalty.services.uow import unit_of_work

MOMENT = dt.datetime(2026, 12, 31, 16, 0, tzinfo=dt.UTC)  # the end of 2026 in Shanghai
LADDER: dict[str, Any] = {
    "tiers": [
        {"code": "member", "name": "普通", "threshold": 0},
        {"code": "silver", "name": "银卡", "threshold": 1_000, "multiplier": "1.5"},
    ],
    "window": "rolling",
    "window_months": 12,
    "anchor": "upgrade",
    "period_months": 12,
}


@dataclass(frozen=True)
class Event:
    """An outbox row as a test reads it, with its member's code and its operation."""

    id: int
    event_id: str
    type: str
    member: str | None
    operation_id: int | None
    operation: tuple[str, str] | None  # (kind, key) of the operation row it points at
    occurred_at: dt.datetime
    data: dict[str, Any]
    dispatched: bool

    @property
    def points(self) -> int | None:
        value = self.data.get("points")
        return None if value is None else int(value)

    @property
    def named_operation(self) -> tuple[str, str] | None:
        """The operation the payload names."""
        op = self.data.get("operation")
        return None if op is None else (op["kind"], op["key"])


def outbox(db: Database, *, after: int = 0) -> list[Event]:
    """Every event after row ``after``, in order."""
    with db.read() as conn:
        rows = conn.execute(
            select(
                events,
                members.c.external_id.label("member"),
                operations.c.kind.label("op_kind"),
                operations.c.key.label("op_key"),
            )
            .outerjoin(members, members.c.id == events.c.member_id)
            .outerjoin(operations, operations.c.id == events.c.operation_id)
            .where(events.c.id > after)
            .order_by(events.c.id)
        ).all()
    return [
        Event(
            id=r.id,
            event_id=r.event_id,
            type=r.type,
            member=r.member,
            operation_id=r.operation_id,
            operation=None if r.op_kind is None else (r.op_kind, r.op_key),
            occurred_at=r.occurred_at,
            data=r.data if isinstance(r.data, dict) else json.loads(r.data),
            dispatched=r.dispatched_at is not None,
        )
        for r in rows
    ]


def last_id(db: Database) -> int:
    found = outbox(db)
    return found[-1].id if found else 0


def balance_now(db: Database, member: str) -> dict[str, int]:
    b = s.balance(db, program=PROGRAM, member=member)
    return {f: int(getattr(b, f)) for f in BALANCE_FIELDS}


def only(db: Database, after: int, type_: str, member: str) -> Event:
    """The one event written since ``after``, checked for type, member and its operation."""
    new = outbox(db, after=after)
    assert [(e.type, e.member) for e in new] == [(type_, member)], new
    return checked(new[0])


def checked(event: Event) -> Event:
    """An event's common shape: a known type, its id, not dispatched, the operation it points
    at named in its payload, the program."""
    assert event.type in EVENT_TYPES
    assert event.event_id.startswith("evt_") and len(event.event_id) == 36
    assert not event.dispatched
    assert event.data["program"] == PROGRAM
    if event.data.get("operation") is not None:
        assert event.operation == event.named_operation
    return event


def after_write(db: Database, event: Event, member: str) -> None:
    """The event's balance is the member's balance now (no write came after it)."""
    assert event.data["balance"] == balance_now(db, member)


# --- earning -----------------------------------------------------------------------------


def test_a_purchase_writes_one_points_earned_with_the_balance_after(
    db: Database, clock: FixedClock
) -> None:
    make_program(db)
    enrol(db, "alice")
    start = last_id(db)
    result = earn(db, "alice", "o1", 12_345, idempotency_key="pay-o1")
    event = only(db, start, "points.earned", "alice")
    assert event.operation == ("earn_purchase", "pay-o1")
    assert event.points == result.points_granted == 123
    assert (event.data["status"], event.data["reference"]) == ("available", "o1")
    assert event.occurred_at == clock.now()
    after_write(db, event, "alice")
    # The same purchase again is a replay: no second event.
    replay = earn(db, "alice", "o1", 12_345, idempotency_key="pay-o1")
    assert replay.replayed and outbox(db, after=event.id) == []


def test_an_action_and_an_action_capped_to_nothing_each_write_their_event(db: Database) -> None:
    make_program(db, rules={"actions": {"sign_in": {"points": 5, "limit": 1, "period": "day"}}})
    enrol(db, "alice")
    start = last_id(db)
    for reference in ("d1", "d1b"):
        s.earn_action(db, program=PROGRAM, member="alice", action="sign_in", reference=reference)
    first, capped = outbox(db, after=start)
    assert [(e.type, e.points, e.data["capped_by"]) for e in (first, capped)] == [
        ("points.earned", 5, None),
        ("points.earned", 0, "action_limit"),
    ]
    assert [checked(e).operation[0] for e in (first, capped)] == ["earn_action"] * 2  # type: ignore[index]
    assert first.data["balance"]["available"] == capped.data["balance"]["available"] == 5
    after_write(db, capped, "alice")


def test_pending_points_are_earned_pending_then_matured(db: Database, clock: FixedClock) -> None:
    make_program(db, rules={"pending_days": 7})
    enrol(db, "alice", "bob")
    earn(db, "bob", "b1", 5_000)
    start = last_id(db)
    earn(db, "alice", "o1", 10_000)
    earned = only(db, start, "points.earned", "alice")
    assert (earned.points, earned.data["status"]) == (100, "pending")
    assert (earned.data["balance"]["pending"], earned.data["balance"]["available"]) == (100, 0)

    clock.advance(dt.timedelta(days=7))
    s.mature_pending(db)
    matured = outbox(db, after=earned.id)
    assert sorted((e.type, e.member, e.points) for e in matured) == [
        ("points.pending_matured", "alice", 100),
        ("points.pending_matured", "bob", 50),
    ]
    for event in matured:
        assert checked(event).operation is not None
        assert event.operation[0] == "mature"  # type: ignore[index]
        after_write(db, event, str(event.member))
    assert s.mature_pending(db).items == 0 and outbox(db, after=matured[-1].id) == []


def test_an_earn_that_repays_a_debt_says_so(db: Database) -> None:
    make_program(db)
    enrol(db, "alice")
    earn(db, "alice", "o1", 10_000)
    hold(db, "alice", "spend", 100)
    s.capture_hold(db, program=PROGRAM, order_id="spend")
    s.refund_order(
        db,
        program=PROGRAM,
        order_id="o1",
        refund_id="r1",
        amount_minor=10_000,
        currency="CNY",
        succeeded=True,
    )
    assert balance_now(db, "alice")["debt"] == 100
    start = last_id(db)
    earn(db, "alice", "o2", 6_000)
    event = only(db, start, "points.earned", "alice")
    assert (event.points, event.data["debt_repaid"]) == (60, 60)
    assert (event.data["balance"]["debt"], event.data["balance"]["available"]) == (40, 0)
    after_write(db, event, "alice")


# --- spending ------------------------------------------------------------------------------


def test_capture_release_and_timeout_write_redeemed_and_hold_released(
    db: Database, clock: FixedClock
) -> None:
    make_program(db)
    enrol(db, "alice")
    earn(db, "alice", "o1", 10_000)
    start = last_id(db)
    hold(db, "alice", "h1", 30)
    hold(db, "alice", "h2", 20)
    assert outbox(db, after=start) == []  # a hold is no event of its own
    s.capture_hold(db, program=PROGRAM, order_id="h1")
    captured = only(db, start, "points.redeemed", "alice")
    assert captured.operation is not None and captured.operation[0] == "capture"
    assert (captured.points, captured.data["order_id"]) == (30, "h1")
    assert captured.data["balance"] == {
        "available": 50,
        "pending": 0,
        "held": 20,
        "frozen": 0,
        "debt": 0,
    }
    s.capture_hold(db, program=PROGRAM, order_id="h1")  # a replay
    s.release_hold(db, program=PROGRAM, order_id="h2")
    released = only(db, captured.id, "points.hold_released", "alice")
    assert released.operation is not None and released.operation[0] == "release"
    assert (released.points, released.data["order_id"]) == (20, "h2")
    after_write(db, released, "alice")

    hold(db, "alice", "h3", 10)
    clock.advance(dt.timedelta(days=1))
    s.expire_holds(db)
    timed_out = only(db, released.id, "points.hold_released", "alice")
    assert timed_out.operation is not None and timed_out.operation[0] == "hold_timeout"
    assert (timed_out.points, timed_out.data["status"]) == (10, "expired")
    after_write(db, timed_out, "alice")


# --- refunds and disputes ------------------------------------------------------------------


def _refund(db: Database, refund_id: str, amount: int, **kw: Any) -> Any:
    return s.refund_order(
        db,
        program=PROGRAM,
        order_id="o1",
        refund_id=refund_id,
        amount_minor=amount,
        currency="CNY",
        **kw,
    )


@pytest.fixture
def bought(db: Database) -> Database:
    """alice earned 100 points for order o1."""
    make_program(db)
    enrol(db, "alice")
    earn(db, "alice", "o1", 10_000)
    return db


def test_a_refund_freezes_then_reverses(bought: Database) -> None:
    db = bought
    start = last_id(db)
    opened = _refund(db, "r1", 4_000)
    frozen = only(db, start, "points.frozen", "alice")
    assert (frozen.points, frozen.data["frozen"], frozen.data["status"]) == (40, 40, opened.status)
    assert frozen.data["balance"]["frozen"] == 40
    after_write(db, frozen, "alice")
    _refund(db, "r1", 4_000)  # a replay
    assert outbox(db, after=frozen.id) == []
    s.complete_refund(db, program=PROGRAM, refund_id="r1")
    reversed_ = only(db, frozen.id, "points.reversed", "alice")
    assert reversed_.points == 40 and reversed_.data["balance"]["frozen"] == 0
    assert reversed_.operation is not None and reversed_.operation != frozen.operation
    after_write(db, reversed_, "alice")
    s.complete_refund(db, program=PROGRAM, refund_id="r1")  # a replay
    assert outbox(db, after=reversed_.id) == []


def test_a_failed_refund_releases_and_a_refund_that_went_through_freezes_and_reverses(
    bought: Database,
) -> None:
    db = bought
    start = last_id(db)
    _refund(db, "r1", 3_000)
    s.fail_refund(db, program=PROGRAM, refund_id="r1")
    frozen, released = outbox(db, after=start)
    assert [(e.type, e.points) for e in (frozen, released)] == [
        ("points.frozen", 30),
        ("points.released", 30),
    ]
    assert released.data["balance"]["available"] == 100
    after_write(db, checked(released), "alice")

    _refund(db, "r2", 2_000, succeeded=True)
    frozen, reversed_ = outbox(db, after=released.id)
    assert [(e.type, e.points) for e in (frozen, reversed_)] == [
        ("points.frozen", 20),
        ("points.reversed", 20),
    ]
    assert frozen.data["balance"]["frozen"] == 20
    after_write(db, checked(reversed_), "alice")


@pytest.mark.parametrize(
    ("won", "settled"), [(True, "points.released"), (False, "points.reversed")]
)
def test_a_dispute_freezes_then_releases_if_won_or_reverses_if_lost(
    bought: Database, won: bool, settled: str
) -> None:
    db = bought
    start = last_id(db)
    s.open_dispute(
        db, program=PROGRAM, order_id="o1", dispute_id="dp1", amount_minor=10_000, currency="CNY"
    )
    s.close_dispute(db, program=PROGRAM, dispute_id="dp1", won=won)
    frozen, closed = outbox(db, after=start)
    assert [(e.type, e.points) for e in (frozen, closed)] == [
        ("points.frozen", 100),
        (settled, 100),
    ]
    assert [checked(e).data["reversal_kind"] for e in (frozen, closed)] == ["dispute"] * 2
    assert closed.data["balance"]["available"] == (100 if won else 0)
    after_write(db, closed, "alice")


# --- sweeps and reminders -------------------------------------------------------------------


def test_reminders_then_expiry_write_expiring_then_expired_once_per_member(
    db: Database, clock: FixedClock
) -> None:
    make_program(db, rules={"expiry": {"days": 10}})
    s.enrol_member(db, program=PROGRAM, external_id="alice", email="alice@example.com")
    enrol(db, "bob")
    earn(db, "alice", "a1", 10_000)
    earn(db, "alice", "a2", 2_000)  # the same instant: one reminder, one expiry event
    earn(db, "bob", "b1", 5_000)
    clock.advance(dt.timedelta(days=1))
    start = last_id(db)
    s.send_reminders(db)
    expiring = outbox(db, after=start)
    assert sorted((e.type, e.member, e.points) for e in expiring) == [
        ("points.expiring", "alice", 120),
        ("points.expiring", "bob", 50),
    ]
    for event in expiring:
        assert checked(event).operation is None and event.data["ends"] == "expire"
        after_write(db, event, str(event.member))
    s.send_reminders(db)  # one reminder per member and date: nothing new
    assert outbox(db, after=expiring[-1].id) == []

    clock.advance(dt.timedelta(days=9))
    s.expire_due(db)
    expired = outbox(db, after=expiring[-1].id)
    assert sorted((e.type, e.member, e.points, e.data["lots"]) for e in expired) == [
        ("points.expired", "alice", 120, 2),
        ("points.expired", "bob", 50, 1),
    ]
    for event in expired:
        assert checked(event).operation is not None
        after_write(db, event, str(event.member))
    assert s.expire_due(db).items == 0 and outbox(db, after=expired[-1].id) == []


def test_the_year_end_clearing_writes_one_points_cleared_per_member(
    db: Database, clock: FixedClock
) -> None:
    make_program(db, rules={"expiry": None}, clearing_policy="all")
    enrol(db, "alice", "bob")
    earn(db, "alice", "o1", 10_000)
    earn(db, "alice", "o2", 2_000)
    earn(db, "bob", "o3", 5_000)
    hold(db, "bob", "spend", 20)
    clock.set(MOMENT)
    start = last_id(db)
    s.clear_year_end(db, program=PROGRAM)
    cleared = outbox(db, after=start)
    assert sorted((e.type, e.member, e.points) for e in cleared) == [
        ("points.cleared", "alice", 120),
        ("points.cleared", "bob", 30),
    ]
    for event in cleared:
        assert checked(event).operation is not None
        after_write(db, event, str(event.member))
    assert cleared[0].data["balance"]["held"] + cleared[1].data["balance"]["held"] == 20
    s.clear_year_end(db, program=PROGRAM)  # done already: a replay
    assert outbox(db, after=cleared[-1].id) == []


# --- adjustments and transfers --------------------------------------------------------------


def test_grants_and_deductions_write_points_adjusted(db: Database) -> None:
    make_program(db)
    enrol(db, "alice")
    start = last_id(db)
    for points, adjustment in ((300, "adj-1"), (-120, "adj-2")):
        s.adjust_points(
            db,
            program=PROGRAM,
            member="alice",
            points=points,
            reason="goodwill",
            adjustment_id=adjustment,
            actor="ops",
        )
    grant, deduction = outbox(db, after=start)
    assert [(e.type, e.points, e.data["adjustment_id"]) for e in (grant, deduction)] == [
        ("points.adjusted", 300, "adj-1"),
        ("points.adjusted", -120, "adj-2"),
    ]
    assert [checked(e).operation[0] for e in (grant, deduction)] == ["adjust"] * 2  # type: ignore[index]
    assert grant.data["balance"]["available"] == 300
    after_write(db, deduction, "alice")
    s.adjust_points(
        db,
        program=PROGRAM,
        member="alice",
        points=-120,
        reason="goodwill",
        adjustment_id="adj-2",
        actor="ops",
    )  # a replay
    assert outbox(db, after=deduction.id) == []
    with pytest.raises(InsufficientPoints):
        s.adjust_points(
            db, program=PROGRAM, member="alice", points=-999, reason="x", adjustment_id="adj-3"
        )
    assert outbox(db, after=deduction.id) == []


def test_a_transfer_writes_one_event_per_side(db: Database) -> None:
    make_program(db, transfers_enabled=True, transfer_fee_points=1)
    enrol(db, "alice", "bob")
    earn(db, "alice", "o1", 10_000)
    earn(db, "bob", "o2", 1_000)
    start = last_id(db)

    def send() -> Any:
        return s.transfer_points(
            db, program=PROGRAM, sender="alice", recipient="bob", points=40, transfer_id="t1"
        )

    result = send()
    out, in_ = outbox(db, after=start)
    assert [(e.type, e.member, e.data["direction"], e.points) for e in (out, in_)] == [
        ("points.transferred", "alice", "out", 40),
        ("points.transferred", "bob", "in", 40),
    ]
    assert (out.data["counterparty"], in_.data["counterparty"]) == ("bob", "alice")
    assert (out.data["fee"], in_.data["fee"]) == (result.fee, 0)
    assert out.operation == in_.operation and checked(out).operation_id == in_.operation_id
    assert out.data["balance"]["available"] == 100 - 40 - result.fee
    after_write(db, out, "alice")
    after_write(db, in_, "bob")
    send()  # a replay
    assert outbox(db, after=in_.id) == []


# --- members and tiers ----------------------------------------------------------------------


def test_enrolling_and_closing_write_member_events(db: Database) -> None:
    make_program(db)
    start = last_id(db)
    s.enrol_member(db, program=PROGRAM, external_id="alice", email="alice@example.com")
    enrolled = only(db, start, "member.enrolled", "alice")
    assert (enrolled.data["email"], enrolled.data["status"]) == ("alice@example.com", "active")
    assert enrolled.operation_id is None
    s.enrol_member(db, program=PROGRAM, external_id="alice", email="alice@example.com")
    assert outbox(db, after=enrolled.id) == []  # the same member again

    s.set_member_status(db, program=PROGRAM, external_id="alice", status="closed")
    closed = only(db, enrolled.id, "member.closed", "alice")
    assert (closed.data["status"], closed.data["previous"]) == ("closed", "active")
    s.set_member_status(db, program=PROGRAM, external_id="alice", status="closed")
    assert outbox(db, after=closed.id) == []  # no change, no event


def test_an_earn_that_crosses_a_threshold_writes_earned_then_tier_changed(
    db: Database,
) -> None:
    make_program(db, rules={"base_ratio": "1"})
    enrol(db, "alice")
    s.publish_tiers(db, program=PROGRAM, rules=LADDER, created_by="mkt")
    earn(db, "alice", "o1", 90_000)
    start = last_id(db)
    earn(db, "alice", "o2", 20_000)
    earned, changed = outbox(db, after=start)
    assert [(e.type, e.member) for e in (earned, changed)] == [
        ("points.earned", "alice"),
        ("tier.changed", "alice"),
    ]
    assert (changed.data["from_tier"], changed.data["to_tier"]) == ("member", "silver")
    assert (changed.data["direction"], changed.data["reason"]) == ("up", "earn")
    assert "points" not in changed.data and changed.operation_id == earned.operation_id
    after_write(db, checked(changed), "alice")
    assert earned.data["balance"] == changed.data["balance"]


# --- rewards --------------------------------------------------------------------------------


def test_a_reward_redemption_its_fulfilment_and_its_cancellation(db: Database) -> None:
    make_program(db)
    enrol(db, "alice")
    earn(db, "alice", "o1", 100_000)
    s.create_reward(
        db, program=PROGRAM, code="mug", kind="item", actor="mkt", stock=3,
        terms={"name": "Mug", "points": 300},
    )  # fmt: skip
    shipping = {"name": "Li Lei", "phone": "13800000000", "address": "1 Nanjing Rd", "city": "上海"}
    start = last_id(db)
    result = s.redeem_reward(
        db, program=PROGRAM, member="alice", reward="mug", shipping=shipping, idempotency_key="k1"
    )
    redeemed = only(db, start, "reward.redeemed", "alice")
    assert redeemed.points == 300 and redeemed.data["redemption"]["id"] == result.id
    assert redeemed.data["balance"]["available"] == 700
    s.redeem_reward(
        db, program=PROGRAM, member="alice", reward="mug", shipping=shipping, idempotency_key="k1"
    )  # a replay
    assert outbox(db, after=redeemed.id) == []

    s.advance_fulfilment(db, program=PROGRAM, redemption=result.id, status="packing", actor="ops")
    advanced = only(db, redeemed.id, "reward.fulfilment_changed", "alice")
    assert (advanced.points, advanced.data["from_status"]) == (0, result.status)
    assert advanced.data["redemption"]["status"] == "packing" and advanced.operation_id is None

    s.cancel_redemption(db, program=PROGRAM, redemption=result.id, reason="gone", actor="ops")
    cancelled = only(db, advanced.id, "reward.fulfilment_changed", "alice")
    assert (cancelled.points, cancelled.data["from_status"]) == (300, "packing")
    assert cancelled.data["redemption"]["status"] == "cancelled"
    after_write(db, cancelled, "alice")


# --- nothing written, nothing emitted --------------------------------------------------------


def test_refused_writes_emit_nothing(db: Database) -> None:
    make_program(db, transfers_enabled=True, transfer_max_points=10)
    enrol(db, "alice", "bob")
    earn(db, "alice", "o1", 10_000)
    start = last_id(db)
    with pytest.raises(InsufficientPoints):
        hold(db, "alice", "h1", 1_000)
    with pytest.raises(TransferLimit):
        s.transfer_points(
            db, program=PROGRAM, sender="alice", recipient="bob", points=50, transfer_id="t1"
        )
    with pytest.raises(MemberNotFound):
        earn(db, "nobody", "o2", 10_000)
    assert outbox(db, after=start) == []


def test_a_rolled_back_unit_of_work_leaves_no_event(db: Database) -> None:
    make_program(db, transfers_enabled=True)
    enrol(db, "alice", "bob")
    start = last_id(db)
    with pytest.raises(RuntimeError, match="second step"), unit_of_work(db) as uow:
        s.enrol_member(uow, program=PROGRAM, external_id="carol")
        earn(uow, "alice", "o1", 10_000)  # type: ignore[arg-type]
        s.adjust_points(
            uow, program=PROGRAM, member="alice", points=5, reason="x", adjustment_id="a1"
        )
        s.transfer_points(
            uow, program=PROGRAM, sender="alice", recipient="bob", points=10, transfer_id="t1"
        )
        assert len(outbox_in(uow.connection, start)) == 5  # written, not committed
        raise RuntimeError("the second step failed")
    assert outbox(db, after=start) == []
    assert balance_now(db, "alice")["available"] == 0


def outbox_in(conn: Any, after: int) -> list[Any]:
    """The outbox after row ``after`` as the open transaction sees it."""
    return list(conn.execute(select(events.c.type).where(events.c.id > after)).all())


# --- order ----------------------------------------------------------------------------------


def test_a_members_event_ids_follow_the_order_of_the_writes(
    db: Database, clock: FixedClock
) -> None:
    make_program(db, transfers_enabled=True)
    enrol(db, "alice", "bob")
    earn(db, "bob", "b1", 1_000)
    earn(db, "alice", "o1", 10_000)
    hold(db, "alice", "h1", 10)
    s.capture_hold(db, program=PROGRAM, order_id="h1")
    s.transfer_points(
        db, program=PROGRAM, sender="bob", recipient="alice", points=5, transfer_id="t1"
    )
    s.adjust_points(db, program=PROGRAM, member="alice", points=-3, reason="x", adjustment_id="a")
    _refund(db, "r1", 5_000)
    s.complete_refund(db, program=PROGRAM, refund_id="r1")
    s.set_member_status(db, program=PROGRAM, external_id="alice", status="closed")
    alice = [e for e in outbox(db) if e.member == "alice"]
    assert [e.type for e in alice] == [
        "member.enrolled",
        "points.earned",
        "points.redeemed",
        "points.transferred",
        "points.adjusted",
        "points.frozen",
        "points.reversed",
        "member.closed",
    ]
    assert [e.id for e in alice] == sorted(e.id for e in alice)
    # Each points event's balance chains on from the one before it.
    availables = [e.data["balance"]["available"] for e in alice if e.type.startswith("points.")]
    assert availables == [100, 90, 95, 92, 42, 42]
    assert len({e.event_id for e in outbox(db)}) == len(outbox(db))
