"""Points-expiry reminders (积分到期提醒): the ``notifications`` table and its delivery state.

:func:`send_reminders` tells every member whose points will expire or be cleared within a
program's ``reminder_days`` (default 15; 0 turns reminders off): one ``points_expiring``
notification per member and local due date, ever. The unique ``(member_id, kind, due_on)``
with ``ON CONFLICT DO NOTHING`` makes a second run, a concurrent run or a new lot due the same
day add nothing. The points due come from the forecast (:func:`points_due`).

Delivery: each batch is a unit of work; once it commits (an after-commit hook), every new
reminder goes to the callbacks registered with :func:`on_reminder`. When they all succeed the
notification is ``delivered``; when one raises it stays ``pending`` with ``attempts`` and
``last_error`` (the other callbacks are still called). A channel that delivers later reads
:func:`pending_notifications` and answers with :func:`mark_delivered` or :func:`mark_failed`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Row, select, update

from loyalty.db.database import Database
from loyalty.db.dialect import insert_ignoring
from loyalty.db.tables import members, notifications, programs
from loyalty.domain.checks import require_int, scrub_text
from loyalty.errors import InvalidInput
from loyalty.events.outbox import BALANCE_FIELDS, balance, emit, event_row, member_data
from loyalty.services.forecast import DuePoints, points_due
from loyalty.services.results import Reminder, ReminderResult
from loyalty.services.uow import Target, database_of, unit_of_work
from loyalty.services.writes import program_row

KIND = "points_expiring"
BATCH = 1000
MAX_DAYS = 366
MAX_PAGE = 1000
ReminderCallback = Callable[[Reminder], object]

_INSERT_NOTIFICATIONS = insert_ignoring(
    notifications,
    conflict=["member_id", "kind", "due_on"],
    returning=[notifications.c.id, notifications.c.member_id, notifications.c.due_on],
)


class ReminderCallbacks:
    """The callbacks registered with :func:`on_reminder` on one database."""

    def __init__(self) -> None:
        self.callbacks: list[ReminderCallback] = []


def on_reminder(db: Target, callback: ReminderCallback) -> ReminderCallback:
    """Have ``callback`` called with every new reminder, after its transaction commits."""
    database_of(db).cache(ReminderCallbacks).callbacks.append(callback)
    return callback


def send_reminders(
    db: Database, *, program: str | None = None, days: int | None = None
) -> ReminderResult:
    """Remind members of points ending within ``days`` (default: each program's setting)."""
    if days is not None:
        require_int("days", days, minimum=0)
        if days > MAX_DAYS:
            raise InvalidInput(f"days may be at most {MAX_DAYS}, got {days}", field="days")
    now = db.clock.now()
    with db.read() as conn:
        progs = (
            [program_row(conn, program)]
            if program is not None
            else conn.execute(select(programs).order_by(programs.c.id)).all()
        )
    totals = ReminderResult(created=0, already_sent=0)
    for prog in progs:
        window = prog.reminder_days if days is None else days
        if window > 0:
            totals = _plus(totals, _remind(db, prog, window, now))
    return totals


def _remind(db: Database, prog: Row[Any], days: int, now: dt.datetime) -> ReminderResult:
    """One program's reminders, in batches: insert, commit, then hand the new ones over."""
    with db.read() as conn:
        due = points_due(conn, prog, now=now, days=days)
    result = ReminderResult(created=0, already_sent=0)
    for start in range(0, len(due), BATCH):
        batch = due[start : start + BATCH]
        result = _plus(result, _remind_batch(db, prog, batch, now))
    return result


def _remind_batch(
    db: Database, prog: Row[Any], batch: Sequence[DuePoints], now: dt.datetime
) -> ReminderResult:
    """One batch in a unit of work; its new reminders go to the callbacks after it commits."""
    errors: list[int] = []
    with unit_of_work(db) as uow:
        inserted = _insert(uow.connection, prog.code, prog.id, batch, now)
        _emit_expiring(uow.connection, prog, inserted, now)
        new = [reminder for _member_id, reminder in inserted]
        uow.after_commit(lambda: errors.append(_deliver(db, new)))
    return ReminderResult(len(new), len(batch) - len(new), sum(errors))


def _emit_expiring(
    conn: Connection, prog: Row[Any], new: Sequence[tuple[int, Reminder]], now: dt.datetime
) -> None:
    """A ``points.expiring`` event per new reminder (with its member's id), in the
    reminders' transaction."""
    if not new:
        return
    ids = sorted({member_id for member_id, _r in new})
    balances = {
        row.id: balance(row)
        for row in conn.execute(
            select(members.c.id, *(members.c[f] for f in BALANCE_FIELDS))
            .where(members.c.id.in_(ids))
            .order_by(members.c.id)
            .with_for_update()
        )
    }
    emit(
        conn,
        [
            event_row(
                "points.expiring",
                program_id=prog.id,
                member_id=member_id,
                operation_id=None,
                at=now,
                data=member_data(
                    prog.code,
                    r.member,
                    operation=None,
                    points=r.points,
                    balance=balances[member_id],
                    notification=r.id,
                    ends=r.kind,
                    due_on=r.due_on,
                    due_at=r.due_at,
                ),
            )
            for member_id, r in sorted(new, key=lambda pair: (pair[0], pair[1].due_on))
        ],
    )


def _plus(a: ReminderResult, b: ReminderResult) -> ReminderResult:
    return ReminderResult(
        a.created + b.created,
        a.already_sent + b.already_sent,
        a.callback_errors + b.callback_errors,
    )


def _insert(
    conn: Connection, program: str, program_id: int, due: Sequence[DuePoints], now: dt.datetime
) -> list[tuple[int, Reminder]]:
    """Insert one batch's notifications; the reminders of those that were not there yet,
    each with its member's id."""
    values = [_values(program, program_id, d, now) for d in due]
    rows = conn.execute(_INSERT_NOTIFICATIONS.on(conn), values).all()
    ids = {(r.member_id, r.due_on): r.id for r in rows}
    return [
        (v["member_id"], _reminder(ids[key], v))
        for v in values
        if (key := (v["member_id"], v["due_on"])) in ids
    ]


def _values(program: str, program_id: int, due: DuePoints, now: dt.datetime) -> dict[str, Any]:
    """The notifications row for one member's points due on one date."""
    return {
        "program_id": program_id,
        "member_id": due.member_id,
        "kind": KIND,
        "due_on": due.due_on,
        "due_at": due.due_at,
        "points": due.points,
        "payload": {
            "program": program,
            "member": due.member,
            "email": due.email,
            "points": due.points,
            "due_at": due.due_at.isoformat(),
            "kind": due.kind,
        },
        "status": "pending",
        "attempts": 0,
        "last_error": None,
        "created_at": now,
        "delivered_at": None,
        "email_status": "pending" if due.email else "skipped",
        "email_attempts": 0,
        "email_next_at": now if due.email else None,
        "email_error": None if due.email else "the member has no e-mail address",
        "email_sent_at": None,
    }


def _reminder(notification_id: int, row: Mapping[Any, Any]) -> Reminder:
    """A notification (row or inserted values) as the reminder callbacks receive it."""
    payload = row["payload"]
    return Reminder(
        id=notification_id,
        program=payload["program"],
        member=payload["member"],
        email=payload["email"],
        kind=payload["kind"],
        due_on=row["due_on"],
        due_at=row["due_at"],
        points=row["points"],
        attempts=row["attempts"],
        last_error=row["last_error"],
    )


def _deliver(db: Database, reminders: Sequence[Reminder]) -> int:
    """Hand reminders to every callback; returns how many calls raised."""
    callbacks = db.cache(ReminderCallbacks).callbacks
    if not callbacks or not reminders:
        return 0
    errors = 0
    delivered = []
    for reminder in reminders:
        failures = []
        for callback in callbacks:
            try:
                callback(reminder)
            except Exception as exc:  # a callback's failure must not lose the reminder
                failures.append(f"{type(exc).__name__}: {exc}")
        if failures:
            mark_failed(db, reminder.id, "; ".join(failures))
            errors += len(failures)
        else:
            delivered.append(reminder.id)
    mark_delivered(db, delivered)
    return errors


def pending_notifications(db: Database, *, limit: int = 100) -> list[Reminder]:
    """Reminders not delivered yet, oldest first, for a channel that delivers them."""
    require_int("limit", limit)
    if limit > MAX_PAGE:
        raise InvalidInput(f"limit may be at most {MAX_PAGE}", field="limit")
    with db.read() as conn:
        rows: Sequence[Row[Any]] = conn.execute(
            select(notifications)
            .where(notifications.c.status == "pending")
            .order_by(notifications.c.created_at, notifications.c.id)
            .limit(limit)
        ).all()
    return [_reminder(r.id, r._mapping) for r in rows]


def mark_delivered(db: Database, ids: Sequence[int]) -> int:
    """Mark pending notifications delivered; returns how many were still pending."""
    for notification_id in ids:
        require_int("id", notification_id)
    if not ids:
        return 0
    now = db.clock.now()
    with db.write() as conn:
        return conn.execute(
            update(notifications)
            .where(notifications.c.id.in_(ids), notifications.c.status == "pending")
            .values(status="delivered", delivered_at=now, attempts=notifications.c.attempts + 1)
        ).rowcount


def mark_failed(db: Database, notification_id: int, error: str) -> None:
    """Record a failed delivery attempt; the notification stays pending for a retry."""
    require_int("id", notification_id)
    error = scrub_text(error, max_length=2000)  # a callback's message: kept, made storable
    with db.write() as conn:
        conn.execute(
            update(notifications)
            .where(notifications.c.id == notification_id)
            .values(attempts=notifications.c.attempts + 1, last_error=error)
        )
