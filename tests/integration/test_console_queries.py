"""What the console reads: the dashboard's figures, member search, open lots, webhook events and
the CSV exports' rows, against a small program seeded by the services, on both backends."""

from __future__ import annotations

import datetime as dt

import pytest

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.errors import MemberNotFound
from loyalty.services import console_queries as q
from loyalty.services.console_queries import DayFlows, TopEarner
from loyalty.stripe.sync import receive_event
from tests.integration import stripe_support as st
from tests.integration.helpers import PROGRAM, earn, enrol, hold, make_program

START = dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.UTC)  # 18:00 in Shanghai
DAY = dt.timedelta(days=1)
EXPIRY_DAYS = 10
SWEPT = START + EXPIRY_DAYS * DAY + dt.timedelta(hours=7)  # 17:00 UTC, 01:00 on 2 Dec local


def _seed(db: Database, clock: FixedClock) -> None:
    """alice earns 100 and spends 30, bob earns 50 just after local midnight, carol is granted
    20 a day later, dave joins and is closed; alice's and bob's lots then expire, swept just
    after local midnight of 2 December."""
    make_program(db, rules={"expiry": {"days": EXPIRY_DAYS}})
    enrol(db, "alice", "bob", "carol", "dave")
    earn(db, "alice", "a1", 10_000)  # 100 on 21 Nov
    clock.advance(dt.timedelta(hours=6, minutes=30))  # 16:30 UTC is 00:30 on 22 Nov local
    earn(db, "bob", "b1", 5_000)  # 50 on 22 Nov
    clock.set(START + DAY)
    hold(db, "alice", "spend", 30)
    s.capture_hold(db, program=PROGRAM, order_id="spend")  # 30 redeemed on 22 Nov
    s.adjust_points(
        db, program=PROGRAM, member="carol", points=20, reason="welcome", adjustment_id="c"
    )
    s.set_member_status(db, program=PROGRAM, external_id="dave", status="closed")
    clock.set(SWEPT)  # both lots expired by then
    assert s.expire_due(db).points == 70 + 50


def test_first_program_code_is_none_then_the_first_by_code(db: Database) -> None:
    assert q.first_program_code(db) is None
    make_program(db, "zeta")
    make_program(db, "beta")
    assert q.first_program_code(db) == "beta"


def test_daily_flows_on_the_programs_local_dates(db: Database, clock: FixedClock) -> None:
    _seed(db, clock)
    program = s.get_program(db, PROGRAM)
    flows = q.daily_flows(db, program, days=EXPIRY_DAYS + 2)
    assert flows[0].day == "2026-11-21" and flows[-1].day == "2026-12-02"
    assert [f for f in flows if (f.issued, f.redeemed, f.expired, f.cleared) != (0, 0, 0, 0)] == [
        DayFlows("2026-11-21", issued=100, redeemed=0, expired=0, cleared=0),
        DayFlows("2026-11-22", issued=50 + 20, redeemed=30, expired=0, cleared=0),
        DayFlows("2026-12-02", issued=0, redeemed=0, expired=120, cleared=0),
    ]
    assert len(q.daily_flows(db, program, days=2)) == 2


def test_member_totals_activity_and_top_earners(db: Database, clock: FixedClock) -> None:
    _seed(db, clock)
    assert q.member_totals(db, PROGRAM) == q.MemberTotals(outstanding=20, debt=0, total=4, active=3)
    assert q.members_with_entries_since(db, PROGRAM, START) == 3
    assert q.members_with_entries_since(db, PROGRAM, SWEPT) == 2  # the expiries
    assert q.top_earners(db, PROGRAM, START) == (  # carol's 20 were granted, not earned
        TopEarner("alice", None, earned=100, available=0),
        TopEarner("bob", None, earned=50, available=0),
    )
    assert q.top_earners(db, PROGRAM, START + dt.timedelta(hours=1), limit=1) == (
        TopEarner("bob", None, earned=50, available=0),
    )


def test_expiring_totals_and_the_dashboard(db: Database, clock: FixedClock) -> None:
    _seed(db, clock)
    assert q.expiring_totals(db, PROGRAM) == {30: 20, 60: 20, 90: 20}  # carol's, on 2 Dec
    figures = q.dashboard(db, s.get_program(db, PROGRAM), days=90, top=2)
    assert len(figures.days) == 90
    assert [figures.total(flow) for flow in q.FLOWS] == [170, 30, 120, 0]
    assert (figures.outstanding, figures.debt, figures.liability_minor) == (20, 0, 20)
    assert (figures.members_total, figures.members_active, figures.members_recent) == (4, 3, 3)
    assert figures.expiring == {30: 20, 60: 20, 90: 20}
    assert [t.member for t in figures.top_earners] == ["alice", "bob"]


def test_search_members_by_id_email_or_stripe_customer(db: Database) -> None:
    make_program(db)
    s.enrol_member(db, program=PROGRAM, external_id="alice", email="Alice@Example.com")
    s.enrol_member(db, program=PROGRAM, external_id="albert", stripe_customer_id="cus_al")
    s.enrol_member(db, program=PROGRAM, external_id="a_b")
    enrol(db, "bob")
    earn(db, "alice", "o1", 2_000)

    def ids(query: str = "", **paging: int) -> list[str]:
        return [
            m.external_id
            for m in q.search_members(db, program=PROGRAM, query=query, **paging).members
        ]

    assert ids() == ["a_b", "albert", "alice", "bob"]
    assert ids("al") == ["albert", "alice"]
    assert ids("alice@EXAMPLE") == ["alice"]
    assert ids("cus_al") == ["albert"]
    assert ids("a_") == ["a_b"]  # "_" is a character, not a wildcard
    assert ids(page=2, per_page=3) == ["bob"]
    found = q.search_members(db, program=PROGRAM, query="alice")
    assert found.total == 1
    assert found.members[0] == q.MemberSummary(
        "alice",
        "Alice@Example.com",
        None,
        "active",
        20,
        0,
        0,
        0,
        0,
        20,
        created_at=START,
        last_activity=START,
    )
    assert q.search_members(db, program=PROGRAM, per_page=1).total == 4


def test_open_lots_soonest_expiry_first_and_never_last(db: Database, clock: FixedClock) -> None:
    make_program(db, rules={"expiry": {"days": EXPIRY_DAYS}})
    enrol(db, "alice", "bob")
    earn(db, "alice", "ten-days", 1_000)
    clock.advance(dt.timedelta(minutes=1))
    s.publish_rules(db, program=PROGRAM, rules={"expiry": None})
    earn(db, "alice", "never", 2_000)
    clock.advance(dt.timedelta(minutes=1))
    s.publish_rules(db, program=PROGRAM, rules={"expiry": {"days": 5}})
    earn(db, "alice", "five-days", 3_000)
    hold(db, "alice", "spend", 10)  # the soonest lot's points are held, still open

    lots = q.open_lots(db, program=PROGRAM, member="alice")
    assert [(lot.points, lot.available, lot.held) for lot in lots] == [
        (30, 20, 10),
        (10, 10, 0),
        (20, 20, 0),
    ]
    assert lots[-1].expires_at is None
    assert lots[0].expires_at == START + dt.timedelta(minutes=2) + 5 * DAY
    assert q.open_lots(db, program=PROGRAM, member="bob") == ()
    with pytest.raises(MemberNotFound):
        q.open_lots(db, program=PROGRAM, member="nobody")


def test_stripe_events_filtered_paged_counted_and_one_in_detail(
    db: Database, clock: FixedClock
) -> None:
    make_program(db)
    s.enrol_member(db, program=PROGRAM, external_id="alice", stripe_customer_id="cus_alice")
    applied = st.payment_intent_succeeded("pi_1", 3000, customer="cus_alice")
    receive_event(db, PROGRAM, applied)
    clock.advance(dt.timedelta(minutes=1))
    parked = st.payment_intent_succeeded("pi_2", 5000, customer="cus_unknown")
    receive_event(db, PROGRAM, parked)

    listed = q.list_stripe_events(db, program=PROGRAM)
    assert [e.event_id for e in listed.events] == [parked["id"], applied["id"]]  # newest first
    assert (listed.total, dict(listed.counts)) == (2, {"applied": 1, "parked": 1})
    only = q.list_stripe_events(db, program=PROGRAM, status="parked")
    assert [e.event_id for e in only.events] == [parked["id"]]
    assert only.total == 1 and dict(only.counts) == {"applied": 1, "parked": 1}
    by_customer = q.list_stripe_events(db, program=PROGRAM, query="cus_alice")
    assert [e.event_id for e in by_customer.events] == [applied["id"]]
    assert q.list_stripe_events(db, program=PROGRAM, type_prefix="charge.").total == 0
    second = q.list_stripe_events(
        db, program=PROGRAM, type_prefix="payment_intent.", page=2, per_page=1
    )
    assert [e.event_id for e in second.events] == [applied["id"]]

    detail = q.get_stripe_event(db, program=PROGRAM, event_id=parked["id"])
    assert detail is not None
    assert (detail.status, detail.customer, detail.payment_intent) == (
        "parked",
        "cus_unknown",
        "pi_2",
    )
    assert detail.payload["id"] == parked["id"] and detail.received_at == START + dt.timedelta(
        minutes=1
    )
    assert q.get_stripe_event(db, program=PROGRAM, event_id="evt_nothing") is None


def test_export_rows_follow_their_headers(db: Database, clock: FixedClock) -> None:
    _seed(db, clock)

    def rows(name: q.ExportName) -> list[dict[str, object]]:
        header = q.EXPORT_HEADERS[name]
        chunks = list(q.export_rows(db, program=PROGRAM, name=name, chunk=2))
        assert all(len(chunk) <= 2 for chunk in chunks)
        return [dict(zip(header, row, strict=True)) for chunk in chunks for row in chunk]

    members = rows("members")
    assert [(m["external_id"], m["status"], m["available"]) for m in members] == [
        ("alice", "active", 0),
        ("bob", "active", 0),
        ("carol", "active", 20),
        ("dave", "closed", 0),
    ]
    lots = rows("lots")
    assert [(lot["member"], lot["points"], lot["last_day"]) for lot in lots] == [
        ("alice", 100, dt.date(2026, 12, 1)),
        ("bob", 50, dt.date(2026, 12, 2)),
        ("carol", 20, dt.date(2026, 12, 2)),
    ]
    ledger = rows("ledger")
    assert sum(int(str(e["available_delta"])) for e in ledger) == 20
    assert {e["operation"] for e in ledger if e["kind"] == "adjust_grant"} == {"adjust:c"}
