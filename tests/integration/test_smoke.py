"""A first end-to-end pass through the services on both backends."""

from loyalty import services as s
from loyalty.db import Database


def test_earn_hold_capture_and_verify(db: Database) -> None:
    s.create_program(db, code="shop", name="Shop", currency="CNY", timezone="Asia/Shanghai")
    s.enrol_member(db, program="shop", external_id="alice")
    earned = s.earn_purchase(
        db, program="shop", member="alice", order_id="o1", currency="CNY", amount_minor=12_345
    )
    assert earned.points_granted == 123
    s.hold_points(
        db,
        program="shop",
        member="alice",
        order_id="o2",
        points=100,
        order_total_minor=5_000,
        currency="CNY",
    )
    s.capture_hold(db, program="shop", order_id="o2")
    assert s.balance(db, program="shop", member="alice").available == 23
    assert s.verify_ledger(db).ok
