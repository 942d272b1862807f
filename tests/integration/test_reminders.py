"""Reminders: one notification per member and local due date, ever, and their delivery."""

from __future__ import annotations

import datetime as dt
import threading
from zoneinfo import ZoneInfo

import pytest
from helpers import PROGRAM, earn, enrol, execute, make_program, row_counts, scalar
from sqlalchemy import text

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.errors import InvalidAmount, InvalidInput, ProgramNotFound
from loyalty.services.reminders import (
    mark_delivered,
    mark_failed,
    on_reminder,
    pending_notifications,
    send_reminders,
)
from loyalty.services.results import Reminder, ReminderResult

START = dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.UTC)
MOMENT = dt.datetime(2026, 12, 31, 16, 0, tzinfo=dt.UTC)  # end of 31 Dec 2026 in Shanghai
DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)


def assert_clean(db: Database) -> None:
    report = s.verify_ledger(db)
    assert report.ok, [c for c in report.checks if not c.ok]


def notified(db: Database) -> list[tuple[str, str, int, str]]:
    """(member, due_on, points, status) of every notification."""
    with db.read() as conn:
        rows = conn.execute(
            text(
                "SELECT m.external_id, n.due_on, n.points, n.status FROM notifications n"
                " JOIN members m ON m.id = n.member_id ORDER BY n.due_on, m.external_id"
            )
        ).all()
    return [(r[0], r[1], int(r[2]), r[3]) for r in rows]


def _two_members(db: Database, clock: FixedClock) -> None:
    """Lots expiring 10 days after they were earned, over three local dates."""
    make_program(db, rules={"expiry": {"days": 10}})
    s.enrol_member(db, program=PROGRAM, external_id="alice", email="alice@example.com")
    enrol(db, "bob")
    earn(db, "alice", "a1", 10_000)  # expires 1 Dec 10:00 UTC, 18:00 local
    clock.advance(dt.timedelta(hours=5))
    earn(db, "alice", "a2", 2_000)  # 1 Dec 15:00 UTC, 23:00 local: the same date
    earn(db, "bob", "b1", 5_000)
    clock.advance(dt.timedelta(hours=1, minutes=30))
    earn(db, "alice", "a3", 3_000)  # 1 Dec 16:30 UTC, 00:30 local on 2 December
    clock.set(START + DAY)


def test_one_reminder_per_member_and_local_date(db: Database, clock: FixedClock) -> None:
    _two_members(db, clock)
    result = send_reminders(db)
    assert result == ReminderResult(created=3, already_sent=0, callback_errors=0)
    assert notified(db) == [
        ("alice", "2026-12-01", 120, "pending"),
        ("bob", "2026-12-01", 50, "pending"),
        ("alice", "2026-12-02", 30, "pending"),
    ]
    first = pending_notifications(db)[0]
    assert first == Reminder(
        id=first.id,
        program=PROGRAM,
        member="alice",
        email="alice@example.com",
        kind="expire",
        due_on="2026-12-01",
        due_at=START + 10 * DAY,
        points=120,
    )
    payload = scalar(db, "SELECT payload FROM notifications WHERE id = :i", i=first.id)
    assert payload in (
        {
            "program": PROGRAM,
            "member": "alice",
            "email": "alice@example.com",
            "points": 120,
            "due_at": "2026-12-01T10:00:00+00:00",
            "kind": "expire",
        },
        # SQLite hands the JSON column back as text through raw SQL
        '{"program": "shop", "member": "alice", "email": "alice@example.com", "points": 120, '
        '"due_at": "2026-12-01T10:00:00+00:00", "kind": "expire"}',
    )
    assert_clean(db)


def test_never_twice_for_the_same_date(db: Database, clock: FixedClock) -> None:
    _two_members(db, clock)
    send_reminders(db)
    counts = row_counts(db)
    assert send_reminders(db) == ReminderResult(created=0, already_sent=3)
    assert row_counts(db) == counts

    # a new lot due on an existing date adds nothing; one due on a new date does
    clock.set(START + dt.timedelta(hours=2))
    earn(db, "bob", "b2", 1_000)  # expires 1 Dec 12:00 UTC: bob already has 1 December
    clock.set(START + DAY + dt.timedelta(hours=1))
    earn(db, "bob", "b3", 1_000)  # expires 2 Dec 11:00 UTC
    assert send_reminders(db) == ReminderResult(created=1, already_sent=3)
    assert [n for n in notified(db) if n[0] == "bob"] == [
        ("bob", "2026-12-01", 50, "pending"),
        ("bob", "2026-12-02", 10, "pending"),
    ]
    assert_clean(db)


def test_only_points_due_within_the_window(db: Database, clock: FixedClock) -> None:
    make_program(db, rules={"expiry": {"days": 20}}, reminder_days=15)
    enrol(db, "alice")
    earn(db, "alice", "a1", 10_000)  # expires 11 December 10:00 UTC, 18:00 local
    # 15 local calendar days before 11 December is 26 November, from local midnight
    clock.set(START + 4 * DAY + 6 * HOUR - dt.timedelta(seconds=1))  # 25 Nov 23:59:59 local
    assert send_reminders(db).created == 0
    clock.set(START + 4 * DAY + 6 * HOUR)  # 26 Nov 00:00 local
    assert send_reminders(db).created == 1
    assert send_reminders(db, days=30).created == 0
    assert notified(db) == [("alice", "2026-12-11", 100, "pending")]
    execute(db, "DELETE FROM notifications")
    clock.set(START + 20 * DAY)  # expired, not yet swept: too late to remind
    assert send_reminders(db) == ReminderResult(created=0, already_sent=0)


def test_zero_days_disables_reminders(db: Database, clock: FixedClock) -> None:
    _two_members(db, clock)
    assert send_reminders(db, days=0) == ReminderResult(created=0, already_sent=0)
    s.update_program(db, program=PROGRAM, reminder_days=0)
    assert send_reminders(db) == ReminderResult(created=0, already_sent=0)
    assert send_reminders(db, program=PROGRAM) == ReminderResult(created=0, already_sent=0)
    assert notified(db) == []
    assert send_reminders(db, days=10).created == 3  # explicit days override the setting
    with pytest.raises(InvalidAmount):
        send_reminders(db, days=-1)
    with pytest.raises(InvalidInput, match="at most"):
        send_reminders(db, days=400)
    with pytest.raises(ProgramNotFound):
        send_reminders(db, program="nope")


def test_year_end_clearing_is_reminded_on_its_local_date(db: Database, clock: FixedClock) -> None:
    make_program(db, rules={"expiry": None}, clearing_policy="all")
    make_program(db, "other", rules={"expiry": None})
    enrol(db, "alice")
    earn(db, "alice", "a1", 10_000)
    clock.set(MOMENT - 15 * DAY)
    result = send_reminders(db, program=PROGRAM)
    assert result.created == 1
    [reminder] = pending_notifications(db)
    assert (reminder.kind, reminder.due_on, reminder.due_at, reminder.points) == (
        "clear",
        "2026-12-31",  # the last day the points can be used (cleared at its end)
        MOMENT,
        100,
    )


def test_callbacks_get_new_reminders_after_commit(db: Database, clock: FixedClock) -> None:
    _two_members(db, clock)
    got: list[tuple[Reminder, int]] = []

    def callback(reminder: Reminder) -> None:
        # called after the commit: the notification can be read from another connection
        got.append((reminder, scalar(db, "SELECT count(*) FROM notifications")))

    assert on_reminder(db, callback) is callback
    assert send_reminders(db).created == 3
    assert [(r.member, r.due_on, r.points) for r, _seen in got] == [
        ("alice", "2026-12-01", 120),
        ("bob", "2026-12-01", 50),
        ("alice", "2026-12-02", 30),
    ]
    assert {seen for _r, seen in got} == {3}
    assert {n[3] for n in notified(db)} == {"delivered"}
    assert pending_notifications(db) == []
    assert send_reminders(db).created == 0
    assert len(got) == 3


def test_a_raising_callback_keeps_the_notification_pending(db: Database, clock: FixedClock) -> None:
    _two_members(db, clock)
    good: list[Reminder] = []

    def broken(reminder: Reminder) -> None:
        if reminder.member == "bob":
            raise ConnectionError("mail server down")

    on_reminder(db, broken)
    on_reminder(db, good.append)
    result = send_reminders(db)
    assert result == ReminderResult(created=3, already_sent=0, callback_errors=1)
    assert len(good) == 3  # the other callback was still called for every reminder
    [pending] = pending_notifications(db)
    assert (pending.member, pending.attempts) == ("bob", 1)
    assert pending.last_error == "ConnectionError: mail server down"
    assert [n[3] for n in notified(db)] == ["delivered", "pending", "delivered"]

    # an outbound channel retries later
    mark_failed(db, pending.id, "still down")
    [pending] = pending_notifications(db)
    assert (pending.attempts, pending.last_error) == (2, "still down")
    assert mark_delivered(db, [pending.id]) == 1
    assert mark_delivered(db, [pending.id]) == 0
    assert pending_notifications(db) == []
    assert scalar(db, "SELECT attempts FROM notifications WHERE id = :i", i=pending.id) == 3
    assert scalar(db, "SELECT delivered_at FROM notifications WHERE id = :i", i=pending.id)


def test_pending_notifications_pages_oldest_first(db: Database, clock: FixedClock) -> None:
    _two_members(db, clock)
    send_reminders(db)
    page = pending_notifications(db, limit=2)
    assert [r.points for r in page] == [120, 50]
    assert mark_delivered(db, [r.id for r in page]) == 2
    assert [r.points for r in pending_notifications(db)] == [30]
    assert mark_delivered(db, []) == 0
    with pytest.raises(InvalidInput):
        pending_notifications(db, limit=5_000)


def test_concurrent_runs_create_each_reminder_once(pg_db: Database, clock: FixedClock) -> None:
    make_program(pg_db, rules={"expiry": {"days": 10}})
    members = [f"m{n}" for n in range(40)]
    enrol(pg_db, *members)
    for n, member in enumerate(members):
        earn(pg_db, member, f"o{n}", 1_000)
        earn(pg_db, member, f"p{n}", 1_000)
        clock.advance(dt.timedelta(hours=3))
    clock.set(START + 3 * DAY)
    called: list[int] = []
    on_reminder(pg_db, lambda r: called.append(r.id))

    barrier = threading.Barrier(3)
    results: list[ReminderResult | BaseException] = []

    def remind() -> None:
        barrier.wait(timeout=30)
        try:
            results.append(send_reminders(pg_db))
        except BaseException as exc:  # the test asserts there are none
            results.append(exc)

    threads = [threading.Thread(target=remind) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(isinstance(r, ReminderResult) for r in results), results
    done = [r for r in results if isinstance(r, ReminderResult)]
    assert sum(r.created for r in done) == 40
    assert all(r.created + r.already_sent == 40 for r in done)
    assert sorted(called) == sorted(set(called)) and len(called) == 40
    assert scalar(pg_db, "SELECT count(*) FROM notifications") == 40
    assert_clean(pg_db)


def _daily_job_until_reminded(
    db: Database, clock: FixedClock, first: dt.datetime, runs: int
) -> tuple[dt.datetime, Reminder]:
    """Run the daily 01:00 UTC reminder job from ``first``; the run that reminded, and what."""
    for n in range(runs):
        clock.set(first + n * DAY)
        if send_reminders(db).created:
            [reminder] = pending_notifications(db)
            return clock.now(), reminder
    raise AssertionError("never reminded")


def test_fifteen_local_calendar_days_before_the_last_usable_day(
    db: Database, clock: FixedClock
) -> None:
    make_program(db, rules={"expiry": {"days": 30}})  # Asia/Shanghai, UTC+8
    enrol(db, "alice")
    clock.set(dt.datetime(2027, 3, 16, 2, 0, tzinfo=dt.UTC))
    earned = earn(db, "alice", "a1", 10_000)
    assert earned.expires_at == dt.datetime(2027, 4, 15, 2, 0, tzinfo=dt.UTC)  # 10:00 local
    at, reminder = _daily_job_until_reminded(
        db, clock, dt.datetime(2027, 3, 25, 1, 0, tzinfo=dt.UTC), runs=20
    )
    # 09:00 on 31 March in Shanghai: 15 local days before 15 April, not 14
    assert at == dt.datetime(2027, 3, 31, 1, 0, tzinfo=dt.UTC)
    assert (reminder.due_on, reminder.due_at, reminder.points) == (
        "2027-04-15",
        earned.expires_at,
        100,
    )


@pytest.mark.parametrize(
    ("tz", "first_run"),
    [
        # 09:00 on 15 April in Shanghai
        ("Asia/Shanghai", dt.datetime(2027, 4, 15, 1, 0, tzinfo=dt.UTC)),
        # 22:00 on 15 April in Sao Paulo (UTC-3): the first run on that local date
        ("America/Sao_Paulo", dt.datetime(2027, 4, 16, 1, 0, tzinfo=dt.UTC)),
    ],
)
def test_month_end_expiry_is_reminded_with_its_last_usable_day(
    db: Database, clock: FixedClock, tz: str, first_run: dt.datetime
) -> None:
    make_program(db, rules={"expiry": {"months": 1, "month_end": True}}, timezone=tz)
    enrol(db, "alice")
    clock.set(dt.datetime(2027, 3, 20, 15, 0, tzinfo=dt.UTC))
    earned = earn(db, "alice", "a1", 10_000)
    assert earned.expires_at is not None
    assert earned.expires_at.astimezone(ZoneInfo(tz)).isoformat().startswith("2027-05-01T00:00")
    at, reminder = _daily_job_until_reminded(
        db, clock, dt.datetime(2027, 4, 10, 1, 0, tzinfo=dt.UTC), runs=15
    )
    assert at == first_run
    assert (reminder.due_on, reminder.due_at) == ("2027-04-30", earned.expires_at)
    b = s.balance(db, program=PROGRAM, member="alice")
    assert [(e.expires_at, e.last_day) for e in b.expiring] == [
        (earned.expires_at, dt.date(2027, 4, 30))
    ]
    [item] = s.forecast(db, program=PROGRAM, days=30).items
    assert item.last_day == dt.date(2027, 4, 30)
    assert [d.day for d in s.forecast(db, program=PROGRAM, days=30).days] == ["2027-04-30"]
