"""A member's hold across several cases and rule changes, on SQLite and PostgreSQL.

A member stays on hold, with their held points, while any hold case of theirs is open: closing
another case (a flag case, or one hold case of two) releases nothing; the resolution that
lifts the hold releases everything held. A rule changed from ``hold`` to ``flag`` leaves its
open case a hold case (the member stays on hold until a person resolves it); one changed from
``flag`` to ``hold`` makes its open case a hold case on new activity and holds the member. A
hold lifted outside its case leaves the case open. ``jifen verify`` holds after each step.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from helpers import PROGRAM, earn, enrol, make_program

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.services.risk_cases import RiskCaseInfo
from loyalty.services.risk_scan import RiskScanResult

BURST = {"id": "burst", "kind": "velocity", "limit": 2, "window": "hour", "action": "hold"}
BIG = {
    "id": "big",
    "kind": "velocity",
    "measure": "points",
    "limit": 200,
    "window": "day",
    "action": "flag",
}


def rules(*items: dict[str, Any]) -> dict[str, Any]:
    return {"rules": list(items)}


def assert_clean(db: Database) -> None:
    report = s.verify_ledger(db)
    assert report.ok, [(c.name, c.examples) for c in report.checks if not c.ok]


def three_earns(db: Database, clock: FixedClock, member: str = "alice", tag: str = "") -> None:
    """300 points in three earns within the hour: over both rules' limits."""
    for i in range(3):
        clock.advance(dt.timedelta(minutes=5))
        earn(db, member, f"{tag}o{i}", 10_000)


def case(db: Database, rule_id: str, member: str = "alice") -> RiskCaseInfo:
    [found] = s.list_risk_cases(
        db, program=PROGRAM, status=None, rule_id=rule_id, member=member
    ).items
    return found


def pending(db: Database, member: str = "alice") -> tuple[int, int]:
    balance = s.balance(db, program=PROGRAM, member=member)
    return balance.available, balance.pending


def tripped(db: Database, clock: FixedClock, *items: dict[str, Any]) -> RiskScanResult:
    """alice, under ``items``, over both rules' limits, scanned."""
    make_program(db)
    enrol(db, "alice")
    s.publish_risk_rules(db, program=PROGRAM, rules=rules(*items))
    three_earns(db, clock)
    return s.scan_risk(db)


def test_closing_a_flag_case_keeps_the_points_of_an_open_hold_case(
    db: Database, clock: FixedClock
) -> None:
    assert (tripped(db, clock, BURST, BIG).opened, pending(db)) == (2, (300, 0))
    assert earn(db, "alice", "held", 5_000).status == "pending"
    dismissed = s.resolve_risk_case(
        db, program=PROGRAM, case_id=case(db, "big").id, outcome="dismiss", note="big spender"
    )
    assert (dismissed.status, dismissed.member_on_hold, dismissed.held_points) == (
        "dismissed",
        True,
        50,
    )
    assert pending(db) == (300, 50)
    assert earn(db, "alice", "still-held", 5_000).status == "pending"
    assert_clean(db)
    released = s.resolve_risk_case(
        db, program=PROGRAM, case_id=case(db, "burst").id, outcome="release", note="checked"
    )
    assert (released.member_on_hold, released.held_points) == (False, 0)
    assert pending(db) == (400, 0)
    assert_clean(db)


def test_only_the_last_of_two_hold_cases_releases_the_points(
    db: Database, clock: FixedClock
) -> None:
    assert tripped(db, clock, BURST, {**BIG, "action": "hold"}).held == 2
    earn(db, "alice", "held", 5_000)
    s.resolve_risk_case(
        db, program=PROGRAM, case_id=case(db, "big").id, outcome="release", note="fine"
    )
    assert pending(db) == (300, 50)
    assert case(db, "burst").member_on_hold
    assert_clean(db)
    reversed_ = s.resolve_risk_case(
        db, program=PROGRAM, case_id=case(db, "burst").id, outcome="reverse", note="fraud"
    )
    assert (reversed_.resolution, reversed_.member_on_hold) == ("reversed", False)
    assert pending(db) == (300, 0)  # the 50 held points released, then deducted
    assert_clean(db)


def test_a_rule_changed_from_hold_to_flag_leaves_its_open_case_a_hold_case(
    db: Database, clock: FixedClock
) -> None:
    tripped(db, clock, BURST)
    s.publish_risk_rules(db, program=PROGRAM, rules=rules({**BURST, "action": "flag"}))
    three_earns(db, clock, tag="again-")
    scanned = s.scan_risk(db)
    assert (scanned.updated, scanned.held) == (1, 0)
    opened = case(db, "burst")
    assert (opened.action, opened.rule_version, opened.member_on_hold) == ("hold", 2, True)
    assert_clean(db)
    s.resolve_risk_case(db, program=PROGRAM, case_id=opened.id, outcome="release", note="ok")
    assert pending(db) == (600, 0)
    three_earns(db, clock, tag="third-")
    assert s.scan_risk(db).reopened == 1
    reopened = case(db, "burst")  # reopened under the rule as it is now
    assert (reopened.action, reopened.member_on_hold) == ("flag", False)
    assert_clean(db)


def test_a_rule_changed_from_flag_to_hold_holds_the_member_of_its_open_case(
    db: Database, clock: FixedClock
) -> None:
    tripped(db, clock, {**BURST, "action": "flag"})
    assert case(db, "burst").action == "flag"
    s.publish_risk_rules(db, program=PROGRAM, rules=rules(BURST))
    assert s.scan_risk(db).updated == 0  # no new activity: nothing changes yet
    assert not case(db, "burst").member_on_hold
    clock.advance(dt.timedelta(minutes=1))
    earn(db, "alice", "more", 10_000)
    scanned = s.scan_risk(db)
    assert (scanned.updated, scanned.held) == (1, 1)
    held = case(db, "burst")
    assert (held.action, held.member_on_hold) == ("hold", True)
    assert earn(db, "alice", "held", 5_000).status == "pending"
    assert_clean(db)


def test_a_hold_lifted_outside_its_case_leaves_the_case_open(
    db: Database, clock: FixedClock
) -> None:
    tripped(db, clock, BURST)
    earn(db, "alice", "held", 5_000)
    assert s.release_member_hold(db, program=PROGRAM, member="alice", note="vip") == 50
    assert (case(db, "burst").status, pending(db)) == ("open", (350, 0))
    assert_clean(db)
    clock.advance(dt.timedelta(minutes=1))
    assert earn(db, "alice", "free", 5_000).status == "available"
    scanned = s.scan_risk(db)  # new activity adds to the open case; the hold stays lifted
    assert (scanned.updated, scanned.held) == (1, 0)
    assert not case(db, "burst").member_on_hold
    assert_clean(db)
    closed = s.resolve_risk_case(
        db, program=PROGRAM, case_id=case(db, "burst").id, outcome="dismiss", note="vip"
    )
    assert (closed.status, pending(db)) == ("dismissed", (400, 0))
    assert_clean(db)


def test_held_points_frozen_by_a_failed_refund_come_back_held(
    db: Database, clock: FixedClock
) -> None:
    tripped(db, clock, BURST)
    earn(db, "alice", "held", 10_000)
    s.refund_order(
        db, program=PROGRAM, order_id="held", refund_id="r1", amount_minor=10_000, currency="CNY"
    )
    s.fail_refund(db, program=PROGRAM, refund_id="r1")
    assert case(db, "burst").member_on_hold
    assert pending(db) == (300, 100)
    assert_clean(db)


def test_held_points_frozen_by_a_refund_that_fails_after_the_release_come_back_available(
    db: Database, clock: FixedClock
) -> None:
    tripped(db, clock, BURST)
    earn(db, "alice", "held", 10_000)
    s.refund_order(
        db, program=PROGRAM, order_id="held", refund_id="r1", amount_minor=10_000, currency="CNY"
    )
    assert s.release_member_hold(db, program=PROGRAM, member="alice", note="ok") == 0
    s.fail_refund(db, program=PROGRAM, refund_id="r1")
    assert not case(db, "burst").member_on_hold
    assert pending(db) == (400, 0)  # not stuck pending on a lot nobody will release
    assert_clean(db)


def test_held_points_frozen_by_a_refund_that_goes_through_are_taken(
    db: Database, clock: FixedClock
) -> None:
    tripped(db, clock, BURST)
    earn(db, "alice", "held", 10_000)
    s.refund_order(
        db, program=PROGRAM, order_id="held", refund_id="r1", amount_minor=10_000, currency="CNY"
    )
    s.complete_refund(db, program=PROGRAM, refund_id="r1")
    assert pending(db) == (300, 0)
    assert_clean(db)


def test_points_transferred_to_a_member_on_hold_are_held_until_released(
    db: Database, clock: FixedClock
) -> None:
    make_program(db, transfers_enabled=True)
    enrol(db, "alice", "bob")
    earn(db, "bob", "b1", 50_000)
    s.publish_risk_rules(db, program=PROGRAM, rules=rules(BURST))
    three_earns(db, clock)
    s.scan_risk(db)
    assert case(db, "burst").member_on_hold
    before = pending(db)
    s.transfer_points(
        db, program=PROGRAM, sender="bob", recipient="alice", points=120, transfer_id="t1"
    )
    assert pending(db) == (before[0], before[1] + 120)
    assert_clean(db)
    released = s.release_member_hold(db, program=PROGRAM, member="alice", note="ok")
    assert released == before[1] + 120
    assert pending(db) == (before[0] + before[1] + 120, 0)
    assert_clean(db)
