"""Points analytics on a small known ledger, on SQLite and PostgreSQL: every flow per local day
and in all for a week and the week before it (earns, an action, a redemption, a refund, an
expiry sweep, a year-end clearing, grants and a deduction, a transfer with its fee), rates,
points outstanding and their money value, members active and new, the breakdowns by action,
rule version and location, points outstanding by age and expiry month, top members and
transfers; the range's arithmetic and its refusals."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction

import pytest

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.services import analytics as a
from loyalty.services.analytics import Compared, DateRange, FlowTotals
from loyalty.services.console_queries import member_totals
from loyalty.services.results import ProgramInfo
from tests.integration.helpers import PROGRAM, TZ, earn, enrol, hold, local, make_program

D = dt.date
RULES = {
    "base_ratio": "1",
    "actions": {"review": {"points": 5}},
    "expiry": {"months": 0, "days": 4, "month_end": False},
}
THIS_WEEK = DateRange(D(2026, 11, 15), D(2026, 11, 21), TZ)


def _grant(db: Database, member: str, points: int, key: str) -> None:
    s.adjust_points(
        db, program=PROGRAM, member=member, points=points, reason="goodwill", adjustment_id=key
    )


def seed_two_weeks(db: Database, clock: FixedClock) -> None:
    """The week of 8-14 November (local dates, Asia/Shanghai) and the week after it.

    Week before: alice, bob and carol join on the 8th; alice earns 100 and bob 50 on the
    10th; carol is granted 30 and alice redeems 40 on the 12th; alice's and bob's lots expire
    on the 14th (60 + 50 left). This week: the year-end clearing (set to the end of 14
    November) takes carol's 30 at 01:00 on the 15th; alice earns 200 at store-1 and 5 for a
    review on the 15th; on the 16th half her order is refunded (100 taken back), rule version
    2 (2 points per yuan) takes effect at 12:00 with a campaign on the 18th-19th, dave joins
    and alice redeems 30; on the 17th bob earns 60 under version 2 and alice sends him 20
    (fee 2); on the 18th carol is granted 15 and 5 are deducted; on the 19th alice's last 53
    expire, and the 20 bob had from her, which kept her lot's expiry; on the 21st dave earns
    10 and 5 for a review."""
    clock.set(local(2026, 11, 8, 9))
    make_program(
        db,
        rules=RULES,
        transfers_enabled=True,
        transfer_fee_points=2,
        clearing_policy="all",
        clearing_month=11,
        clearing_day=14,
    )
    clock.set(local(2026, 11, 8, 10))
    enrol(db, "alice", "bob", "carol")
    clock.set(local(2026, 11, 10, 10))
    earn(db, "alice", "a1", 10_000)
    earn(db, "bob", "b1", 5_000)
    clock.set(local(2026, 11, 12, 10))
    _grant(db, "carol", 30, "g1")
    hold(db, "alice", "spend-1", 40)
    s.capture_hold(db, program=PROGRAM, order_id="spend-1")
    clock.set(local(2026, 11, 14, 11))
    assert s.expire_due(db).points == 60 + 50
    clock.set(local(2026, 11, 15, 1))
    assert s.clear_year_end(db, program=PROGRAM, year=2026).points == 30
    clock.set(local(2026, 11, 15, 10))
    earn(db, "alice", "a2", 20_000, location="store-1")
    s.earn_action(db, program=PROGRAM, member="alice", action="review", reference="r1")
    clock.set(local(2026, 11, 16, 9))
    s.refund_order(
        db,
        program=PROGRAM,
        order_id="a2",
        refund_id="re1",
        amount_minor=10_000,
        currency="CNY",
        succeeded=True,
    )
    clock.set(local(2026, 11, 16, 10))
    campaign = {
        "name": "double-days",
        "multiplier": "2",
        "starts_at": local(2026, 11, 18).isoformat(),
        "ends_at": local(2026, 11, 20).isoformat(),
    }
    s.publish_rules(
        db,
        program=PROGRAM,
        rules={**RULES, "base_ratio": "2", "campaigns": [campaign]},
        effective_from=local(2026, 11, 16, 12),
    )
    enrol(db, "dave")
    clock.set(local(2026, 11, 16, 11))
    hold(db, "alice", "spend-2", 30)
    s.capture_hold(db, program=PROGRAM, order_id="spend-2")
    clock.set(local(2026, 11, 17, 10))
    earn(db, "bob", "b2", 3_000)
    s.transfer_points(
        db, program=PROGRAM, sender="alice", recipient="bob", points=20, transfer_id="t1"
    )
    clock.set(local(2026, 11, 18, 10))
    _grant(db, "carol", 15, "g2")
    _grant(db, "carol", -5, "g3")
    clock.set(local(2026, 11, 19, 11))
    assert s.expire_due(db).points == 53 + 20
    clock.set(local(2026, 11, 21, 9))
    earn(db, "dave", "d1", 500)  # 5 yuan at 2 points per yuan
    s.earn_action(db, program=PROGRAM, member="dave", action="review", reference="r1")
    clock.set(local(2026, 11, 21, 18))


@pytest.fixture
def seeded(db: Database, clock: FixedClock) -> Database:
    seed_two_weeks(db, clock)
    return db


def program(db: Database) -> ProgramInfo:
    return s.get_program(db, PROGRAM)


def test_flows_per_local_day_and_in_all_against_the_week_before(seeded: Database) -> None:
    flows = a.flows(seeded, program(seeded), THIS_WEEK)
    now, before = flows.current, flows.previous
    assert before.range == DateRange(D(2026, 11, 8), D(2026, 11, 14), TZ)
    assert [b.first for b in now.buckets] == [D(2026, 11, 15 + n) for n in range(7)]
    assert {b.first.day: b.flows for b in now.buckets if b.flows != FlowTotals()} == {
        15: FlowTotals(issued=205, cleared=30),
        16: FlowTotals(redeemed=30, reversed=100),
        17: FlowTotals(issued=60, fees=2),
        18: FlowTotals(adjusted=10),
        19: FlowTotals(expired=73),
        21: FlowTotals(issued=15),
    }
    assert now.totals == FlowTotals(
        issued=280, redeemed=30, expired=73, cleared=30, reversed=100, adjusted=10, fees=2
    )
    assert before.totals == FlowTotals(issued=150, redeemed=40, expired=110, adjusted=30)
    assert (before.opening, before.closing, now.opening, now.closing) == (0, 30, 30, 85)
    assert [b.outstanding for b in now.buckets] == [205, 75, 133, 143, 70, 70, 85]
    assert now.liability_minor == 85  # 100 points to the yuan: 85 points are 0.85 yuan
    assert (now.new_members, before.new_members) == (1, 3)
    assert (now.active_members, before.active_members) == (4, 3)
    assert flows.compared("issued") == Compared(280, 150)
    assert flows.compared("closing") == Compared(85, 30)
    breakage = flows.rate("breakage")
    assert (breakage.value.percent, breakage.previous.percent) == (
        Fraction(103 * 100, 280),
        Fraction(110 * 100, 150),
    )
    assert flows.rate("redemption").value.percent == Fraction(30 * 100, 280)
    assert now.buckets[-1].to_date == now.totals


def test_points_outstanding_equal_the_members_balances(seeded: Database) -> None:
    """The flows' running total ends on what the members hold now, as the dashboard sums it
    (bob's 60 past their end count until the expiry sweep takes them)."""
    flows = a.flows(seeded, program(seeded), THIS_WEEK)
    assert member_totals(seeded, PROGRAM).outstanding == flows.current.closing == 85


def test_breakdowns_by_action_rule_version_and_location(seeded: Database) -> None:
    parts = a.breakdowns(seeded, program(seeded), THIS_WEEK)
    assert [(r.key, r.points, r.earns) for r in parts.actions] == [
        ("purchases", Compared(270, 150), Compared(3, 2)),
        ("review", Compared(10, 0), Compared(2, 0)),
    ]
    v1, v2 = parts.versions
    assert (v1.version, v1.points, v1.earns, v1.base_ratio) == (
        1,
        Compared(205, 150),
        Compared(2, 2),
        "1",
    )
    assert (v2.version, v2.points, v2.earns, v2.base_ratio) == (
        2,
        Compared(75, 0),
        Compared(3, 0),
        "2",
    )
    assert v1.per_unit(2) == (Fraction(1), Fraction(1))
    assert v2.per_unit(2) == (Fraction(2), None)
    assert v2.effective_from == local(2026, 11, 16, 12)
    assert [(r.key, r.points) for r in parts.locations] == [
        ("store-1", Compared(200, 0)),
        ("(none given)", Compared(80, 150)),
    ]
    assert [(m.version, m.day) for m in parts.markers] == [(2, D(2026, 11, 16))]
    assert [(c.name, c.multiplier, c.starts_at) for c in parts.campaigns] == [
        ("double-days", "2", local(2026, 11, 18))
    ]


def test_top_members_and_their_share(seeded: Database) -> None:
    top = a.top_members(seeded, program(seeded), THIS_WEEK)
    assert [(m.member, m.issued, m.share.percent) for m in top] == [
        ("alice", Compared(205, 100), Fraction(205 * 100, 280)),
        ("bob", Compared(60, 50), Fraction(60 * 100, 280)),
        ("dave", Compared(15, 0), Fraction(15 * 100, 280)),
    ]
    assert [m.member for m in a.top_members(seeded, program(seeded), THIS_WEEK, limit=1)] == [
        "alice"
    ]


def test_transfer_volume(seeded: Database) -> None:
    t = a.transfers_between_members(seeded, program(seeded), THIS_WEEK)
    assert (t.count, t.points, t.fees, t.senders, t.recipients) == (
        Compared(1, 0),
        Compared(20, 0),
        Compared(2, 0),
        Compared(1, 0),
        Compared(1, 0),
    )


def test_holdings_at_the_end_of_both_periods(seeded: Database) -> None:
    held = a.holdings(seeded, program(seeded), THIS_WEEK)
    assert held.current.at == local(2026, 11, 21, 18)  # the range ends today: now
    assert held.previous.at == local(2026, 11, 15)
    assert held.current.by_age == (85, 0, 0, 0, 0)
    assert held.previous.by_age == (30, 0, 0, 0, 0)
    assert held.current.total == 85 and held.previous.total == 30
    # bob's 60 ended at 10:00 today (the sweep has not run since); carol's 10 and dave's 15
    # last until 22 and 25 November
    assert held.current.by_month == (("overdue", 60), ("2026-11", 25))
    assert held.previous.by_month == (("2026-11", 30),)


def test_holdings_by_age_and_month_of_the_last_usable_day(db: Database, clock: FixedClock) -> None:
    """Lots earned 400, 200, 120, 45 and 10 days ago under a 12-month, month-end expiry, and
    7 points that never expire; now is 18:00 on 21 November 2026 in Shanghai."""
    now = clock.now()
    clock.set(now - dt.timedelta(days=401))
    make_program(db, rules={"expiry": {"months": 12, "days": 0, "month_end": True}})
    enrol(db, "alice")
    for days, amount in ((400, 4_000), (200, 2_000), (120, 1_200), (45, 4_500), (10, 1_000)):
        clock.set(now - dt.timedelta(days=days))
        earn(db, "alice", f"o{days}", amount)
    s.publish_rules(db, program=PROGRAM, rules={"expiry": None})
    clock.advance(dt.timedelta(minutes=1))
    earn(db, "alice", "forever", 700)
    clock.set(now)

    held = a.holdings(db, program(db), a.preset_range("30d", D(2026, 11, 21), TZ))
    assert held.current.by_age == (10 + 7, 45, 12, 20, 40)
    assert held.current.by_month == (
        ("overdue", 40),  # its last day was 31 October; no sweep has run
        ("2027-05", 20),
        ("2027-07", 12),
        ("2027-10", 45),
        ("2027-11", 10),
        ("never", 7),
    )
    assert held.previous.at == local(2026, 10, 23)  # the previous 30 days end there
    assert held.previous.by_age == (45, 12, 20, 0, 40)  # 15, 90, 170 and 370 days old then
    assert held.previous.by_month == (
        ("2026-10", 40),
        ("2027-05", 20),
        ("2027-07", 12),
        ("2027-10", 45),
    )
    assert [label for label, _c in held.age_rows()] == [
        "0–30 days",
        "31–90 days",
        "91–180 days",
        "181–365 days",
        ">365 days",
    ]
    assert [label for label, _c in held.month_rows()][:2] == ["overdue", "2026-10"]
