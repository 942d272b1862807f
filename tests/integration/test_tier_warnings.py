"""``tier.will_downgrade``: before an evaluation that would move a member down (counting what
they hold now), one warning per member and evaluation, on both databases; none for members
who keep their tier, none outside the window, none twice (also concurrently)."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from helpers import PROGRAM, earn, enrol, local, make_program
from sqlalchemy import select

from loyalty import services as s
from loyalty.db import Database
from loyalty.db.tables import events
from loyalty.domain.clock import FixedClock
from loyalty.services.tier_warnings import warn_tier_downgrades

LADDER: dict[str, Any] = {
    "tiers": [
        {"code": "member", "threshold": 0},
        {"code": "silver", "threshold": 1_000},
        {"code": "gold", "threshold": 5_000},
    ],
    "period_months": 3,
    "window_months": 3,
}


def warnings(db: Database) -> list[dict[str, Any]]:
    with db.read() as conn:
        rows = conn.execute(
            select(events.c.data)
            .where(events.c.type == "tier.will_downgrade")
            .order_by(events.c.id)
        ).all()
    return [r.data for r in rows]


@pytest.fixture
def ladder(db: Database, clock: FixedClock) -> Database:
    """Alice reaches gold and then earns nothing; bob reaches silver and keeps earning."""
    clock.set(local(2026, 3, 1, 10))
    make_program(db, rules={"base_ratio": "1"})
    enrol(db, "alice", "bob")
    s.publish_tiers(db, program=PROGRAM, rules=LADDER)
    earn(db, "alice", "o-1", 600_000)  # 6,000: gold
    earn(db, "bob", "o-2", 120_000)  # 1,200: silver
    return db


def test_members_who_keep_their_tier_are_not_warned(ladder: Database, clock: FixedClock) -> None:
    """Alice's period ends on 1 June; her points stay counted until the window passes them,
    so the warning comes when the evaluation is within the window (15 days) and the measure
    at the period end would not keep gold."""
    alice = s.tier_progress(ladder, program=PROGRAM, member="alice")
    due = alice.evaluate_at
    assert due is not None
    clock.set(due - dt.timedelta(days=20))
    assert warn_tier_downgrades(ladder) == 0  # not within 15 days yet
    clock.set(due - dt.timedelta(days=10))
    earn(ladder, "bob", "o-3", 100_000)  # bob earns on: his window keeps silver
    assert warn_tier_downgrades(ladder) == 0  # alice's measure at the period end still counts
    assert warnings(ladder) == []


def test_the_warning_names_the_tier_the_date_and_what_keeps_it(
    db: Database, clock: FixedClock
) -> None:
    clock.set(local(2026, 3, 1, 10))
    make_program(db, rules={"base_ratio": "1"})
    enrol(db, "carol")
    s.publish_tiers(db, program=PROGRAM, rules={**LADDER, "window_months": 1})
    earn(db, "carol", "o-1", 600_000)  # gold on 1 March; the window is one month
    due = s.tier_progress(db, program=PROGRAM, member="carol").evaluate_at
    assert due is not None
    clock.set(due - dt.timedelta(days=10))  # the March earn has left the one-month window
    assert warn_tier_downgrades(db) == 1
    assert warn_tier_downgrades(db) == 0  # once per evaluation
    [warning] = warnings(db)
    assert warning["member"] == "carol"
    assert (warning["tier"], warning["to_tier"]) == ("gold", "silver")
    assert warning["needed"] == 5_000 - warning["measured"]
    assert warning["evaluate_at"].startswith(due.astimezone(dt.UTC).date().isoformat())
    assert s.verify_ledger(db).ok


def test_concurrent_warnings_warn_each_member_once(pg_db: Database, clock: FixedClock) -> None:
    clock.set(local(2026, 3, 1, 10))
    make_program(pg_db, rules={"base_ratio": "1"})
    names = [f"m{i}" for i in range(40)]
    enrol(pg_db, *names)
    s.publish_tiers(pg_db, program=PROGRAM, rules={**LADDER, "window_months": 1})
    for i, name in enumerate(names):
        earn(pg_db, name, f"o-{i}", 600_000)
    due = s.tier_progress(pg_db, program=PROGRAM, member="m0").evaluate_at
    assert due is not None
    clock.set(due - dt.timedelta(days=10))
    counts: list[int] = []
    threads = [
        threading.Thread(target=lambda: counts.append(warn_tier_downgrades(pg_db)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(counts) == 40
    assert sorted(w["member"] for w in warnings(pg_db)) == sorted(names)
