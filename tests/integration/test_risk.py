"""Risk control on SQLite and PostgreSQL: the scenarios the product promises.

Buy-and-refund farming holds a member's new points; a ring of senders opens one case; an
issuance spike opens one case; dismissing and scanning again opens nothing new; a ``block``
rule refuses the write and leaves the ledger untouched; a frozen account cannot earn.
"""

from __future__ import annotations

import datetime as dt

import pytest

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.domain.risk import TYPICAL_RULES
from loyalty.errors import InvalidRule, MemberFrozen, RiskBlocked, RiskCaseClosed
from tests.integration.helpers import earn, enrol, make_program, row_counts, scalar

PROGRAM = "shop"


def rules(*items: dict[str, object]) -> dict[str, object]:
    return {"rules": list(items)}


def assert_clean(db: Database) -> None:
    report = s.verify_ledger(db)
    assert report.ok, [c for c in report.checks if not c.ok]


def test_buy_and_refund_farming_holds_the_members_new_points(
    db: Database, clock: FixedClock
) -> None:
    make_program(db)
    enrol(db, "farmer", "honest")
    s.publish_risk_rules(
        db,
        program=PROGRAM,
        rules=rules({"id": "farming", "kind": "farming", "action": "hold", "refunded_percent": 50}),
    )
    for i in range(50):  # 50 buy/refund cycles in a week
        clock.advance(dt.timedelta(hours=3))
        earn(db, "farmer", f"o{i}", 10_000)
        s.refund_order(
            db,
            program=PROGRAM,
            order_id=f"o{i}",
            refund_id=f"r{i}",
            amount_minor=10_000,
            currency="CNY",
            succeeded=True,
        )
    earn(db, "honest", "h1", 10_000)
    result = s.scan_risk(db)
    assert (result.opened, result.held) == (1, 1)
    page = s.list_risk_cases(db, program=PROGRAM)
    assert [(c.rule_id, c.member, c.action) for c in page.items] == [("farming", "farmer", "hold")]
    case = s.risk_case(db, program=PROGRAM, case_id=page.items[0].id)
    assert case.figures["refunds"] == 50 and len(case.evidence) == 50

    held = earn(db, "farmer", "after", 10_000)
    assert (held.status, held.matures_at) == ("pending", None)
    assert earn(db, "honest", "h2", 10_000).status == "available"
    balance = s.balance(db, program=PROGRAM, member="farmer")
    assert (balance.available, balance.pending) == (0, 100)
    assert s.scan_risk(db).opened == 0  # the same activity opens nothing new
    assert_clean(db)

    done = s.resolve_risk_case(
        db,
        program=PROGRAM,
        case_id=case.id,
        outcome="release",
        note="customer called, genuine returns",
        actor="ops",
    )
    assert (done.status, done.resolution, done.member_on_hold) == ("resolved", "released", False)
    balance = s.balance(db, program=PROGRAM, member="farmer")
    assert (balance.available, balance.pending) == (100, 0)
    assert earn(db, "farmer", "later", 10_000).status == "available"
    with pytest.raises(RiskCaseClosed):
        s.resolve_risk_case(db, program=PROGRAM, case_id=case.id, outcome="dismiss", note="x")
    assert_clean(db)


def test_a_ring_of_senders_opens_one_case_and_a_dismissal_stays_dismissed(
    db: Database, clock: FixedClock
) -> None:
    make_program(db, transfers_enabled=True)
    senders = [f"s{i}" for i in range(10)]
    enrol(db, "receiver", *senders)
    for name in senders:
        earn(db, name, f"o-{name}", 10_000)
    s.publish_risk_rules(
        db,
        program=PROGRAM,
        rules=rules({"id": "ring", "kind": "transfer_ring", "senders": 10, "hours": 24}),
    )
    for name in senders:
        clock.advance(dt.timedelta(minutes=5))
        s.transfer_points(
            db,
            program=PROGRAM,
            sender=name,
            recipient="receiver",
            points=50,
            transfer_id=f"t-{name}",
        )
    assert s.scan_risk(db).opened == 1
    assert s.scan_risk(db).opened == 0
    [case] = s.list_risk_cases(db, program=PROGRAM).items
    assert (case.member, case.figures["senders"]) == ("receiver", 10)
    s.assign_risk_case(db, program=PROGRAM, case_id=case.id, assignee="li.na", actor="lead")
    s.resolve_risk_case(
        db,
        program=PROGRAM,
        case_id=case.id,
        outcome="dismiss",
        note="family members",
        actor="li.na",
    )
    clock.advance(dt.timedelta(minutes=1))
    again = s.scan_risk(db)
    assert (again.opened, again.reopened, again.updated) == (0, 0, 0)
    assert s.list_risk_cases(db, program=PROGRAM).total == 0
    assert s.list_risk_cases(db, program=PROGRAM, status="dismissed").total == 1
    assert_clean(db)


def test_an_issuance_spike_opens_one_case(db: Database, clock: FixedClock) -> None:
    make_program(db)
    enrol(db, *[f"m{i}" for i in range(30)])
    s.publish_risk_rules(
        db,
        program=PROGRAM,
        rules=rules(
            {
                "id": "spike",
                "kind": "issuance_spike",
                "window": "day",
                "trailing_days": 14,
                "threshold": 6,
                "min_points": 1000,
            }
        ),
    )
    for day in range(14):  # a steady trailing history: about 300 points a day
        for i in range(3):
            earn(db, f"m{i}", f"d{day}-{i}", 10_000 + 500 * ((day + i) % 3))
        clock.advance(dt.timedelta(days=1))
    assert s.scan_risk(db).opened == 0
    for i in range(30):  # the spike: 30 orders of 1,000 yuan in one day
        earn(db, f"m{i}", f"spike-{i}", 100_000)
    assert s.scan_risk(db).opened == 1
    assert s.scan_risk(db).opened == 0
    [case] = s.list_risk_cases(db, program=PROGRAM).items
    assert case.subject == "program" and case.member is None
    assert case.figures["current"] == 30_000 and case.figures["score"] > 6


def test_a_block_rule_refuses_the_earn_and_writes_nothing(db: Database, clock: FixedClock) -> None:
    make_program(db)
    enrol(db, "alice")
    s.publish_risk_rules(
        db,
        program=PROGRAM,
        rules=rules(
            {
                "id": "fast",
                "kind": "velocity",
                "scope": "location",
                "measure": "earns",
                "limit": 3,
                "window": "hour",
                "action": "block",
            }
        ),
    )
    for i in range(3):
        earn(db, "alice", f"o{i}", 1_000, location="till-7")
    before = row_counts(db)
    with pytest.raises(RiskBlocked) as refused:
        earn(db, "alice", "o3", 1_000, location="till-7")
    assert refused.value.details["rule"] == "fast"
    assert row_counts(db) == before
    earn(db, "alice", "o4", 1_000, location="till-8")  # another till is fine
    clock.advance(dt.timedelta(hours=1, seconds=1))
    earn(db, "alice", "o5", 1_000, location="till-7")  # the window slid past
    assert_clean(db)


def test_a_frozen_account_cannot_earn_until_unfrozen(db: Database) -> None:
    make_program(db)
    enrol(db, "alice")
    earn(db, "alice", "o1", 10_000)
    s.freeze_member(db, program=PROGRAM, member="alice", reason="stolen card report", actor="ops")
    with pytest.raises(MemberFrozen, match="stolen card report"):
        earn(db, "alice", "o2", 10_000)
    assert s.balance(db, program=PROGRAM, member="alice").available == 100
    s.unfreeze_member(db, program=PROGRAM, member="alice", reason="card replaced", actor="ops")
    earn(db, "alice", "o2", 10_000)
    actions = scalar(db, "SELECT COUNT(*) FROM audit_log WHERE action LIKE 'member.%frozen'")
    assert actions == 2
    assert_clean(db)


def test_bad_rules_say_what_is_wrong(db: Database) -> None:
    make_program(db)
    for bad in (
        {"id": "x", "kind": "farming", "action": "block", "refunded_percent": 50},
        {"id": "x", "kind": "velocity", "limit": 0},
        {"id": "X Y", "kind": "velocity", "limit": 3},
        {"id": "x", "kind": "velocity", "limit": 3, "scope": "device", "action": "hold"},
        {"id": "x", "kind": "issuance_spike", "action": "hold"},
        {"id": "x", "kind": "velocity", "limit": 10**13},
    ):
        with pytest.raises(InvalidRule):
            s.publish_risk_rules(db, program=PROGRAM, rules=rules(bad))
    assert s.risk_rules(db, program=PROGRAM) is None


def test_a_new_member_inflow_rule_refuses_earns_and_transfers_past_its_points(
    db: Database, clock: FixedClock
) -> None:
    make_program(db, transfers_enabled=True)
    enrol(db, "veteran")
    earn(db, "veteran", "v1", 100_000)
    clock.advance(dt.timedelta(days=8))
    enrol(db, "newcomer")
    s.publish_risk_rules(
        db,
        program=PROGRAM,
        rules=rules(
            {"id": "inflow", "kind": "new_member_inflow", "points": 1_500, "days": 7,
             "action": "block"}
        ),
    )  # fmt: skip
    earn(db, "newcomer", "n1", 100_000)  # 1,000 points
    s.transfer_points(
        db, program=PROGRAM, sender="veteran", recipient="newcomer", points=400, transfer_id="t1"
    )
    before = row_counts(db)
    with pytest.raises(RiskBlocked) as refused:
        earn(db, "newcomer", "n2", 20_000)  # 1,400 + 200 > 1,500
    assert refused.value.details == {"rule": "inflow", "member": "newcomer", "measured": 1_600}
    with pytest.raises(RiskBlocked):
        s.transfer_points(
            db, program=PROGRAM, sender="veteran", recipient="newcomer", points=101,
            transfer_id="t2",
        )  # fmt: skip
    assert row_counts(db) == before
    earn(db, "newcomer", "n3", 10_000)  # exactly 1,500
    earn(db, "veteran", "v2", 1_000_000)  # enrolled long ago: no limit
    clock.advance(dt.timedelta(days=7))
    earn(db, "newcomer", "n4", 100_000)  # no longer new
    assert_clean(db)


def test_a_device_block_rule_counts_points_per_device(db: Database) -> None:
    make_program(db)
    enrol(db, "alice", "bob")
    s.publish_risk_rules(
        db,
        program=PROGRAM,
        rules=rules(
            {"id": "pos", "kind": "velocity", "scope": "device", "measure": "points",
             "limit": 250, "window": "day", "action": "block"}
        ),
    )  # fmt: skip
    earn(db, "alice", "o1", 10_000, device="pos-1")
    earn(db, "bob", "o2", 10_000, device="pos-1")
    with pytest.raises(RiskBlocked) as refused:
        earn(db, "bob", "o3", 10_000, device="pos-1")
    assert refused.value.details["measured"] == 300
    earn(db, "bob", "o3", 10_000, device="pos-2")
    earn(db, "bob", "o4", 10_000)  # no device: not counted
    assert_clean(db)


def test_several_block_rules_are_checked_together_in_their_order(
    db: Database, clock: FixedClock
) -> None:
    make_program(db)
    enrol(db, "old")
    clock.advance(dt.timedelta(days=10))
    enrol(db, "young")
    s.publish_risk_rules(
        db,
        program=PROGRAM,
        rules=rules(
            {"id": "burst", "kind": "velocity", "limit": 3, "action": "block"},
            {"id": "till", "kind": "velocity", "scope": "location", "measure": "points",
             "limit": 700, "window": "day", "action": "block"},
            {"id": "pos", "kind": "velocity", "scope": "device", "limit": 5, "action": "block"},
            {"id": "inflow", "kind": "new_member_inflow", "points": 10_000, "action": "block"},
        ),
    )  # fmt: skip
    for i in range(3):
        earn(db, "old", f"o{i}", 10_000, location="t1", device="p1")
    with pytest.raises(RiskBlocked) as refused:  # the burst rule comes first
        earn(db, "old", "o3", 10_000, location="t1", device="p1")
    assert (refused.value.details["rule"], refused.value.details["measured"]) == ("burst", 4)
    earn(db, "young", "y1", 30_000, location="t1", device="p1")  # t1: 600 points today
    with pytest.raises(RiskBlocked) as refused:
        earn(db, "young", "y2", 20_000, location="t1", device="p2")
    assert (refused.value.details["rule"], refused.value.details["measured"]) == ("till", 800)
    earn(db, "young", "y2", 20_000, location="t2", device="p1")  # the fifth earn at p1
    with pytest.raises(RiskBlocked) as refused:
        earn(db, "young", "y3", 1_000, location="t2", device="p1")
    assert refused.value.details["rule"] == "pos"
    with pytest.raises(RiskBlocked) as refused:
        earn(db, "young", "y3", 1_000_000)  # 500 + 10,000 points since enrolling
    assert (refused.value.details["rule"], refused.value.details["measured"]) == ("inflow", 10_500)
    assert earn(db, "young", "y3", 1_000).points_granted == 10
    assert_clean(db)


def test_the_typical_rule_set_publishes_as_it_is(db: Database) -> None:
    make_program(db)
    info = s.publish_risk_rules(db, program=PROGRAM, rules=TYPICAL_RULES)
    assert info.rules == TYPICAL_RULES
    assert len(info.sentences) == len(info.sentences_zh) == 6
