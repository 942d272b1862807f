"""Balance (with points expiring soon) and paginated history."""

from __future__ import annotations

import datetime as dt

import pytest
from helpers import PROGRAM, earn, enrol, hold, make_program, row_counts

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.errors import InvalidAmount, InvalidInput, MemberNotFound, ProgramNotFound
from loyalty.services.results import ExpiringPoints


def test_balance_of_a_new_member(db: Database) -> None:
    make_program(db)
    enrol(db, "alice")
    b = s.balance(db, program=PROGRAM, member="alice")
    assert (b.member, b.available, b.pending, b.held, b.frozen, b.debt) == ("alice", 0, 0, 0, 0, 0)
    assert (b.lifetime_earned, b.expiring, b.expiring_soon) == (0, (), 0)


def test_balance_fields(db: Database, clock: FixedClock) -> None:
    make_program(db, rules={"expiry": {"days": 10}})
    enrol(db, "alice")
    t0 = clock.now()
    earn(db, "alice", "o1", 10_000)
    earn(db, "alice", "o2", 5_000)  # same instant, same expiry: grouped with o1
    clock.advance(dt.timedelta(days=1))
    earn(db, "alice", "o3", 2_000)
    s.publish_rules(db, program=PROGRAM, rules={"expiry": {"days": 60}, "pending_days": 3})
    earn(db, "alice", "o4", 4_000)  # pending, expires in 60 days
    s.publish_rules(db, program=PROGRAM, rules={"expiry": {"days": 60}})
    earn(db, "alice", "o5", 7_000)  # available, expires in 60 days
    hold(db, "alice", "h1", 30)  # from the soonest lot (o1)

    b = s.balance(db, program=PROGRAM, member="alice")
    assert (b.available, b.pending, b.held, b.frozen, b.debt) == (210, 40, 30, 0, 0)
    assert b.lifetime_earned == 280
    first, second = t0 + dt.timedelta(days=10), t0 + dt.timedelta(days=11)
    assert b.expiring == (ExpiringPoints(first, 120), ExpiringPoints(second, 20))
    assert b.expiring_soon == 140

    # The window ends ``expiring_within_days`` after now, inclusive.
    now = clock.now()
    assert (second - now).days == 10
    within = s.balance(db, program=PROGRAM, member="alice", expiring_within_days=10).expiring
    assert within == (ExpiringPoints(first, 120), ExpiringPoints(second, 20))
    within = s.balance(db, program=PROGRAM, member="alice", expiring_within_days=9).expiring
    assert within == (ExpiringPoints(first, 120),)
    assert s.balance(db, program=PROGRAM, member="alice", expiring_within_days=0).expiring == ()
    wide = s.balance(db, program=PROGRAM, member="alice", expiring_within_days=365)
    assert wide.expiring[-1] == ExpiringPoints(now + dt.timedelta(days=60), 70)
    assert wide.expiring_soon == 210  # pending and held points are not "expiring available"

    # Once the first group's instant passes (no sweep yet), it is neither available nor soon.
    clock.set(first)
    b = s.balance(db, program=PROGRAM, member="alice")
    assert b.available == 210 - 120
    assert b.expiring == (ExpiringPoints(second, 20),)


def test_balance_errors(db: Database) -> None:
    make_program(db)
    with pytest.raises(MemberNotFound):
        s.balance(db, program=PROGRAM, member="zed")
    with pytest.raises(ProgramNotFound):
        s.balance(db, program="nope", member="zed")
    enrol(db, "alice")
    with pytest.raises(InvalidAmount):
        s.balance(db, program=PROGRAM, member="alice", expiring_within_days=-1)


def test_history_kinds_and_points(db: Database, clock: FixedClock) -> None:
    make_program(db, hold_timeout_seconds=60)
    enrol(db, "alice", "bob")
    earn(db, "alice", "o1", 10_000)
    earn(db, "bob", "b1", 10_000)  # someone else's history
    s.publish_rules(db, program=PROGRAM, rules={"pending_days": 1})
    earn(db, "alice", "o2", 5_000)
    clock.advance(dt.timedelta(days=1))
    s.mature_pending(db)
    hold(db, "alice", "h1", 40)
    s.capture_hold(db, program=PROGRAM, order_id="h1")
    hold(db, "alice", "h2", 20)
    s.release_hold(db, program=PROGRAM, order_id="h2")
    hold(db, "alice", "h3", 10)
    clock.advance(dt.timedelta(seconds=60))
    s.expire_holds(db)
    # A capped-to-zero earn has no entry and no history line.
    s.publish_rules(db, program=PROGRAM, rules={"caps": {"member_daily": 0}})
    earn(db, "alice", "o3", 10_000)

    page = s.history(db, program=PROGRAM, member="alice")
    assert page.next_cursor is None
    got = [(i.kind, i.reference, i.points, i.available, i.pending, i.held) for i in page.items]
    assert got == [
        ("release", "hold-timeout:h3", 0, 10, 0, -10),
        ("hold", "hold:h3", 0, -10, 0, 10),
        ("release", "release:h2", 0, 20, 0, -20),
        ("hold", "hold:h2", 0, -20, 0, 20),
        ("capture", "capture:h1", -40, 0, 0, -40),
        ("hold", "hold:h1", 0, -40, 0, 40),
        ("mature", got[6][1], 0, 50, -50, 0),
        ("earn_pending", "earn:o2", 50, 0, 50, 0),
        ("earn", "earn:o1", 100, 100, 0, 0),
    ]
    assert got[6][1].startswith("sweep:mature:")
    ids = [i.id for i in page.items]
    assert ids == sorted(ids, reverse=True)
    assert all(i.frozen == 0 and i.debt == 0 for i in page.items)
    assert page.items[-1].created_at == clock.now() - dt.timedelta(days=1, seconds=60)
    assert page.items[0].created_at == clock.now()
    assert page.items[0].created_at.tzinfo is not None
    # What the history says adds up to the balance.
    b = s.balance(db, program=PROGRAM, member="alice")
    assert sum(i.points for i in page.items) == b.available + b.pending + b.held == 110


def test_history_paging(db: Database, clock: FixedClock) -> None:
    make_program(db)
    enrol(db, "alice")
    for i in range(7):
        earn(db, "alice", f"o{i}", (i + 1) * 100)
        clock.advance(dt.timedelta(minutes=1))
    counts = row_counts(db)

    pages = []
    cursor = None
    while True:
        page = s.history(db, program=PROGRAM, member="alice", limit=3, cursor=cursor)
        pages.append([i.reference for i in page.items])
        if page.next_cursor is None:
            break
        assert page.next_cursor == page.items[-1].id
        cursor = page.next_cursor
    assert pages == [
        ["earn:o6", "earn:o5", "earn:o4"],
        ["earn:o3", "earn:o2", "earn:o1"],
        ["earn:o0"],
    ]
    # A page that ends exactly at the last item has no next cursor.
    exact = s.history(db, program=PROGRAM, member="alice", limit=7)
    assert (len(exact.items), exact.next_cursor) == (7, None)
    assert [i.points for i in exact.items] == [7, 6, 5, 4, 3, 2, 1]
    assert row_counts(db) == counts


def test_history_errors(db: Database) -> None:
    make_program(db)
    enrol(db, "alice")
    assert s.history(db, program=PROGRAM, member="alice").items == ()
    with pytest.raises(MemberNotFound):
        s.history(db, program=PROGRAM, member="zed")
    with pytest.raises(InvalidAmount):
        s.history(db, program=PROGRAM, member="alice", limit=0)
    with pytest.raises(InvalidInput):
        s.history(db, program=PROGRAM, member="alice", limit=501)
    with pytest.raises(InvalidAmount):
        s.history(db, program=PROGRAM, member="alice", cursor=1.5)  # type: ignore[arg-type]


CLEARING_MOMENT = dt.datetime(2026, 12, 31, 16, 0, tzinfo=dt.UTC)  # end of 31 Dec, Shanghai


@pytest.mark.parametrize("policy", ["all", "before_cutoff"])
def test_a_passed_clearing_not_swept_yet_is_not_available(
    db: Database, clock: FixedClock, policy: str
) -> None:
    from loyalty.services.clearing import clear_year_end

    settings = {"clearing_keep_months": 1} if policy == "before_cutoff" else {}
    make_program(db, rules={"expiry": None}, clearing_policy=policy, **settings)
    enrol(db, "alice")
    earn(db, "alice", "o-1", 10_000)  # 21 November: cleared by either policy
    clock.set(dt.datetime(2026, 12, 20, 4, 0, tzinfo=dt.UTC))
    earn(db, "alice", "o-2", 3_000)  # 20 December: kept by before_cutoff (one month)
    kept = 30 if policy == "before_cutoff" else 0

    # before the moment: the clearing is ahead, with its date, inside a 30-day window
    b = s.balance(db, program=PROGRAM, member="alice", expiring_within_days=30)
    assert b.available == 130
    assert b.expiring == (ExpiringPoints(CLEARING_MOMENT, 130 - kept),)
    assert b.expiring[0].last_day == dt.date(2026, 12, 31)
    assert s.balance(db, program=PROGRAM, member="alice", expiring_within_days=5).expiring == ()

    # the moment passed, the sweep has not run: those points cannot be spent any more
    clock.set(CLEARING_MOMENT + dt.timedelta(minutes=5))
    before_sweep = s.balance(db, program=PROGRAM, member="alice", expiring_within_days=0)
    assert (before_sweep.available, before_sweep.expiring) == (kept, ())
    clear_year_end(db, program=PROGRAM)
    after_sweep = s.balance(db, program=PROGRAM, member="alice", expiring_within_days=0)
    assert (after_sweep.available, after_sweep.expiring) == (kept, ())
    report = s.verify_ledger(db)
    assert report.ok, [c for c in report.checks if not c.ok]


def test_a_clearing_enabled_after_its_moment_does_not_hide_points(
    db: Database, clock: FixedClock
) -> None:
    make_program(db, rules={"expiry": None})
    enrol(db, "alice")
    earn(db, "alice", "o-1", 10_000)
    clock.set(CLEARING_MOMENT + dt.timedelta(days=2))
    s.update_program(db, program=PROGRAM, clearing_policy="all")  # the first clearing is 2027's
    assert s.balance(db, program=PROGRAM, member="alice").available == 100
