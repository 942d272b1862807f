"""The catalog as offered to a member counts only the points they can spend now: points past
their expiry that no sweep has taken yet are not offered (redeeming would refuse them)."""

from __future__ import annotations

import datetime as dt

import pytest
from helpers import PROGRAM, earn, enrol, make_program

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.errors import InsufficientPoints


def test_points_past_expiry_before_the_sweep_are_not_offered(
    db: Database, clock: FixedClock
) -> None:
    make_program(db, rules={"expiry": {"months": 1}})
    enrol(db, "alice")
    earn(db, "alice", "o-1", 30_000)  # 300 points, expiring in a month
    s.create_reward(
        db, program=PROGRAM, code="mug", kind="item", actor="mkt", stock=3,
        terms={"name": "Mug", "points": 200},
    )  # fmt: skip
    (offer,) = s.list_rewards(db, program=PROGRAM, member="alice")
    assert offer.redeemable

    clock.advance(dt.timedelta(days=40))  # past expiry, and no sweep has run
    (offer,) = s.list_rewards(db, program=PROGRAM, member="alice")
    assert not offer.redeemable
    assert offer.reasons == ("insufficient_points",)
    with pytest.raises(InsufficientPoints):
        s.redeem_reward(
            db, program=PROGRAM, member="alice", reward="mug",
            shipping={"name": "A", "phone": "1", "address": "x"},
        )  # fmt: skip
    assert s.verify_ledger(db).ok
