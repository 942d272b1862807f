"""Manual adjustments: grants make a lot (repaying debt first), deductions take available points."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from loyalty import services as s
from loyalty.db import Database
from loyalty.errors import (
    IdempotencyConflict,
    InsufficientPoints,
    InvalidAmount,
    InvalidIdempotencyKey,
    InvalidInput,
    LoyaltyError,
    MemberInactive,
    MemberNotFound,
)
from tests.integration.helpers import PROGRAM, earn, enrol, lots_of, make_program, row_counts


def adjust(db: Database, points: Any, adjustment_id: str = "adj-1", **kw: Any) -> Any:
    return s.adjust_points(
        db,
        program=PROGRAM,
        member=kw.pop("member", "alice"),
        points=points,
        reason=kw.pop("reason", "goodwill after a late delivery"),
        adjustment_id=adjustment_id,
        **kw,
    )


@pytest.fixture
def shop(db: Database) -> Database:
    make_program(db, rules={"expiry": {"days": 90}})
    enrol(db, "alice")
    return db


def test_a_grant_makes_a_lot_with_the_program_expiry(shop: Database) -> None:
    result = adjust(shop, 250, actor="ops@example.com")
    assert (result.points, result.actor, result.replayed) == (250, "ops@example.com", False)
    (lot,) = lots_of(shop, "alice")
    assert (lot.points, lot.available) == (250, 250)
    assert lot.expires_at == result.expires_at
    assert result.expires_at - lot.earned_at == dt.timedelta(days=90)
    balance = s.balance(shop, program=PROGRAM, member="alice")
    assert (balance.available, balance.lifetime_earned) == (250, 0)  # not an earning
    assert s.verify_ledger(shop).ok


def test_a_deduction_takes_available_points_soonest_expiring_first(shop: Database) -> None:
    earn(shop, "alice", "o1", 10_000)
    adjust(shop, 50, "adj-grant")
    adjust(shop, -120, "adj-deduct")
    assert s.balance(shop, program=PROGRAM, member="alice").available == 30
    kinds = [i.kind for i in s.history(shop, program=PROGRAM, member="alice").items]
    assert kinds[0] == "adjust_deduct" and "adjust_grant" in kinds
    assert s.verify_ledger(shop).ok


def test_a_retry_replays_and_other_parameters_conflict(shop: Database) -> None:
    first = adjust(shop, 10)
    counts = row_counts(shop)
    again = adjust(shop, 10)
    assert again.replayed and again.created_at == first.created_at
    with pytest.raises(IdempotencyConflict):
        adjust(shop, 11)
    assert row_counts(shop) == counts


BAD: list[tuple[str, type[LoyaltyError], dict[str, Any]]] = [
    ("zero", InvalidAmount, {"points": 0}),
    ("float", InvalidAmount, {"points": 1.5}),
    ("bool", InvalidAmount, {"points": True}),
    ("huge", InvalidAmount, {"points": 10**13}),
    ("no reason", InvalidInput, {"points": 5, "reason": "  "}),
    ("bad id", InvalidIdempotencyKey, {"points": 5, "adjustment_id": "a b"}),
    ("too much", InsufficientPoints, {"points": -1}),
    ("unknown member", MemberNotFound, {"points": 5, "member": "nobody"}),
]


@pytest.mark.parametrize(("case", "error", "kw"), BAD, ids=[c for c, _e, _k in BAD])
def test_bad_adjustments_write_nothing(
    shop: Database, case: str, error: type[LoyaltyError], kw: dict[str, Any]
) -> None:
    before = row_counts(shop)
    with pytest.raises(error) as raised:
        adjust(shop, **kw)
    assert type(raised.value) is error, case
    assert row_counts(shop) == before


def test_a_closed_member_cannot_be_adjusted(shop: Database) -> None:
    s.set_member_status(shop, program=PROGRAM, external_id="alice", status="closed")
    with pytest.raises(MemberInactive):
        adjust(shop, 5)


def test_an_adjustment_without_a_second_person_stops_at_the_threshold(db: Database) -> None:
    from loyalty.errors import ApprovalRequired
    from loyalty.services.approvals import adjust_within_threshold

    make_program(db)
    enrol(db, "alice")
    given = {"program": PROGRAM, "member": "alice", "reason": "goodwill", "actor": "api key x"}
    done = adjust_within_threshold(db, points=100, adjustment_id="a-1", threshold=100, **given)
    assert done.points == 100 and not done.replayed
    before = row_counts(db)
    with pytest.raises(ApprovalRequired) as refused:
        adjust_within_threshold(db, points=-101, adjustment_id="a-2", threshold=100, **given)
    assert refused.value.details == {"threshold": 100}
    assert row_counts(db) == before
    again = adjust_within_threshold(db, points=100, adjustment_id="a-1", threshold=100, **given)
    assert again.replayed
