"""The rules page says which version is in force and which are scheduled, cancels a version
before its time (the service, on both databases, and its button), and shows rule changes in
words with local times, on the rules page and in the audit log."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from admin import rules_form
from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.errors import Conflict, NotFound
from loyalty.services.audit import cancel_scheduled_rules
from tests.integration.helpers import PROGRAM, earn, enrol, make_program, row_counts
from tests.integration.test_admin_support import build_app, login, post

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
DEC_5 = dt.datetime(2026, 12, 5, 0, 0, tzinfo=SHANGHAI)  # the test clock stands at 11-21
DEC_10 = dt.datetime(2026, 12, 10, 0, 0, tzinfo=SHANGHAI)


def _schedule(db: Database, base_ratio: str, start: dt.datetime | None) -> int:
    return s.publish_rules_audited(
        db, program=PROGRAM, rules={"base_ratio": base_ratio}, actor="ann", effective_from=start
    ).version


# --- the service: cancel_scheduled_rules ------------------------------------------------


def test_a_cancelled_version_never_takes_effect_and_its_number_is_not_given_again(
    db: Database, clock: FixedClock
) -> None:
    make_program(db)
    enrol(db, "alice")
    assert _schedule(db, "2", DEC_5) == 2
    cancelled = cancel_scheduled_rules(db, program=PROGRAM, version=2, actor="ann")
    assert (cancelled.version, cancelled.rules["base_ratio"]) == (2, "2")
    assert [v.version for v in s.list_rule_versions(db, program=PROGRAM)] == [1]
    [entry] = s.list_audit(db, action="rules.cancel").items
    assert (entry.actor, entry.target) == ("ann", "program shop rules v2")
    assert entry.before and entry.before["base_ratio"] == "2" and entry.after is None
    assert entry.before["effective_from"] == "2026-12-04T16:00:00+00:00"

    clock.set(DEC_5 + dt.timedelta(hours=1))
    assert s.rules_in_force(db, program=PROGRAM)[0] == 1
    assert earn(db, "alice", "o-1", 10_000).points_granted == 100  # 1 point per CNY, not 2
    assert _schedule(db, "3", None) == 3


def test_a_version_in_force_cannot_be_cancelled_also_when_its_moment_just_passed(
    db: Database, clock: FixedClock
) -> None:
    make_program(db)
    _schedule(db, "2", DEC_5)
    clock.set(DEC_5)  # the page showed "scheduled"; the moment passed before the click
    before = row_counts(db)
    with pytest.raises(Conflict, match="in force since 2026-12-05 00:00 Asia/Shanghai"):
        cancel_scheduled_rules(db, program=PROGRAM, version=2, actor="ann")
    assert row_counts(db) == before
    assert s.rules_in_force(db, program=PROGRAM)[0] == 2
    with pytest.raises(Conflict, match="in force since"):
        cancel_scheduled_rules(db, program=PROGRAM, version=1, actor="ann")


def test_a_version_that_a_later_one_follows_is_cancelled_only_after_that_one(
    db: Database,
) -> None:
    make_program(db)
    _schedule(db, "2", DEC_5)
    _schedule(db, "3", DEC_10)  # published after v2 and follows it: it may build on v2
    before = row_counts(db)
    with pytest.raises(Conflict, match="cancel version 3 first"):
        cancel_scheduled_rules(db, program=PROGRAM, version=2, actor="ann")
    assert row_counts(db) == before
    cancel_scheduled_rules(db, program=PROGRAM, version=3, actor="ann")
    cancel_scheduled_rules(db, program=PROGRAM, version=2, actor="ann")
    assert [v.version for v in s.list_rule_versions(db, program=PROGRAM)] == [1]


def test_a_later_version_that_takes_effect_sooner_does_not_hold_a_cancellation(
    db: Database,
) -> None:
    make_program(db)
    _schedule(db, "3", DEC_10)
    _schedule(db, "2", DEC_5)  # v3 published later but in force before v2's moment
    cancel_scheduled_rules(db, program=PROGRAM, version=2, actor="ann")
    assert [v.version for v in s.list_rule_versions(db, program=PROGRAM)] == [1, 3]


def test_cancelling_an_unknown_or_cancelled_version_says_so_and_changes_nothing(
    db: Database,
) -> None:
    make_program(db)
    _schedule(db, "2", DEC_5)
    cancel_scheduled_rules(db, program=PROGRAM, version=2, actor="ann")
    before = row_counts(db)
    with pytest.raises(NotFound, match="version 2 of program shop was cancelled"):
        cancel_scheduled_rules(db, program=PROGRAM, version=2, actor="ann")
    with pytest.raises(NotFound, match="version 9 of program shop does not exist"):
        cancel_scheduled_rules(db, program=PROGRAM, version=9, actor="ann")
    assert row_counts(db) == before


def _together(calls: list[Callable[[], Any]]) -> list[Any]:
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait(timeout=30)
        try:
            return call()
        except Exception as exc:  # the test inspects what each call raised
            return exc

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls, timeout=120))


@pytest.mark.postgres
def test_concurrent_cancels_and_publishes_keep_one_story(pg_db: Database) -> None:
    make_program(pg_db)
    _schedule(pg_db, "2", DEC_5)
    results = _together(
        [lambda: cancel_scheduled_rules(pg_db, program=PROGRAM, version=2, actor="ann")] * 4
        + [lambda: _schedule(pg_db, "5", DEC_10)]
    )
    cancels, published = results[:4], results[4]
    assert sum(not isinstance(r, Exception) for r in cancels) <= 1
    assert published == 3
    versions = [v.version for v in s.list_rule_versions(pg_db, program=PROGRAM)]
    if all(isinstance(r, Exception) for r in cancels):  # the follower came first
        assert versions == [1, 2, 3] and all(isinstance(r, Conflict) for r in cancels)
    else:  # the cancel came first; the others found it cancelled
        assert versions == [1, 3]
        assert sum(isinstance(r, NotFound) for r in cancels) == 3
    assert len(s.list_audit(pg_db, action="rules.cancel").items) == (versions == [1, 3])
