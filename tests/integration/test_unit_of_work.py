"""The unit of work: composed actions commit together or not at all, hooks run after commit.

Each composed action is made to fail in its second step; nothing of its first step may remain.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from sqlalchemy import text

from loyalty import services as s
from loyalty.db import Database
from loyalty.errors import InsufficientPoints
from loyalty.services.uow import UnitOfWork, rolled_back, unit_of_work
from loyalty.services.writes import LockedMember, lock_member
from loyalty.stripe import onboarding
from loyalty.stripe.onboarding import enrol_applying_parked, link_applying_parked
from loyalty.stripe.sync import receive_event, replay_event_audited
from tests.integration import stripe_support as st
from tests.integration.helpers import (
    PROGRAM,
    earn,
    enrol,
    hold,
    make_program,
    row_counts,
    scalar,
)

audit_module = importlib.import_module("loyalty.services.audit")
services_module = importlib.import_module("loyalty.services")


class SecondStepFailed(Exception):
    """What the second step of a composed action raises in these tests."""


def fail(*_args: Any, **_kwargs: Any) -> Any:
    raise SecondStepFailed("the second step failed")


def test_publishing_rules_and_its_audit_entry_commit_together(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_program(db)
    before = row_counts(db)
    monkeypatch.setattr(audit_module, "audit", fail)
    with pytest.raises(SecondStepFailed):
        s.publish_rules_audited(db, program=PROGRAM, rules={"base_ratio": "2"}, actor="ana")
    assert row_counts(db) == before
    assert [v.version for v in s.list_rule_versions(db, program=PROGRAM)] == [1]

    monkeypatch.undo()
    published = s.publish_rules_audited(db, program=PROGRAM, rules={"base_ratio": "2"}, actor="ana")
    assert published.version == 2
    assert s.list_audit(db, program=PROGRAM, action="rules.").total == 1


def test_a_settings_change_and_its_audit_entry_commit_together(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_program(db)
    monkeypatch.setattr(audit_module, "audit", fail)
    with pytest.raises(SecondStepFailed):
        s.update_program_audited(db, program=PROGRAM, actor="ana", reminder_days=3)
    assert s.get_program(db, PROGRAM).reminder_days == 15
    assert s.list_audit(db, program=PROGRAM).total == 0


def _park_a_purchase(db: Database, customer: str) -> str:
    """A purchase of a Stripe customer no member has yet: parked, nothing earned."""
    event = st.payment_intent_succeeded(st.new_id("pi"), 10_000, customer=customer)
    assert receive_event(db, PROGRAM, event).status == "parked"
    return str(event["id"])


def test_enrolling_and_applying_parked_purchases_commit_together(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_program(db)
    _park_a_purchase(db, "cus_EARLY")
    before = row_counts(db)
    monkeypatch.setattr(onboarding, "apply_parked_for", fail)
    with pytest.raises(SecondStepFailed):
        enrol_applying_parked(
            db, program=PROGRAM, external_id="early", stripe_customer_id="cus_EARLY"
        )
    assert row_counts(db) == before  # no member without the points it had coming

    monkeypatch.undo()
    done = enrol_applying_parked(
        db, program=PROGRAM, external_id="early", stripe_customer_id="cus_EARLY"
    )
    assert [r.status for r in done.applied] == ["applied"]
    assert s.balance(db, program=PROGRAM, member="early").available == 100
    assert s.verify_ledger(db).ok


def test_linking_auditing_and_applying_parked_purchases_commit_together(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_program(db)
    enrol(db, "late")
    _park_a_purchase(db, "cus_LATE")
    before = row_counts(db)
    monkeypatch.setattr(onboarding, "apply_parked_for", fail)
    with pytest.raises(SecondStepFailed):
        link_applying_parked(
            db, program=PROGRAM, external_id="late", stripe_customer_id="cus_LATE", actor="ana"
        )
    assert row_counts(db) == before
    assert s.get_member(db, program=PROGRAM, external_id="late").stripe_customer_id is None

    monkeypatch.undo()
    done = link_applying_parked(
        db, program=PROGRAM, external_id="late", stripe_customer_id="cus_LATE", actor="ana"
    )
    assert done.member.stripe_customer_id == "cus_LATE"
    assert len(done.applied) == 1
    assert s.list_audit(db, program=PROGRAM, action="member.").total == 1
    assert s.balance(db, program=PROGRAM, member="late").available == 100


def test_a_door_composing_services_rolls_all_of_them_back(db: Database) -> None:
    make_program(db)
    enrol(db, "alice")
    before = row_counts(db)
    with pytest.raises(InsufficientPoints), unit_of_work(db) as uow:
        earn(uow, "alice", "o1", 10_000)  # 100 points
        hold(uow, "alice", "h1", 500)
    assert row_counts(db) == before


def test_after_commit_hooks_run_once_committed_and_never_after_a_rollback(db: Database) -> None:
    make_program(db)
    enrol(db, "alice")
    seen: list[int] = []

    def count_from_another_connection() -> None:
        with db.read() as conn:
            seen.append(int(conn.execute(text("SELECT count(*) FROM earnings")).scalar_one()))

    with unit_of_work(db) as uow:
        earn(uow, "alice", "o1", 10_000)
        uow.after_commit(count_from_another_connection)
        assert seen == []  # nothing runs inside the transaction
    assert seen == [1]  # and what runs after sees the committed earning

    with pytest.raises(RuntimeError), unit_of_work(db) as uow:
        earn(uow, "alice", "o2", 10_000)
        uow.after_commit(count_from_another_connection)
        raise RuntimeError("the door failed")
    assert seen == [1]
    assert scalar(db, "SELECT count(*) FROM earnings") == 1


def test_a_failing_hook_does_not_stop_the_others(db: Database) -> None:
    ran: list[str] = []
    with unit_of_work(db) as uow:
        uow.after_commit(lambda: fail())
        uow.after_commit(lambda: ran.append("second"))
    assert ran == ["second"]


def test_a_rolled_back_unit_sees_its_own_writes_and_keeps_none(db: Database) -> None:
    make_program(db)
    enrol(db, "alice")
    before = row_counts(db)
    with rolled_back(db) as uow:
        assert isinstance(uow, UnitOfWork)
        earned = earn(uow, "alice", "o1", 10_000)
        assert s.balance(uow, program=PROGRAM, member="alice").available == earned.points_granted
        assert s.verify_ledger(db).ok
    assert row_counts(db) == before


def test_reminder_callbacks_run_after_the_batch_commits(db: Database) -> None:
    make_program(db, rules={"expiry": {"days": 10}})
    enrol(db, "alice")
    earn(db, "alice", "o1", 10_000)
    committed: list[str] = []

    def callback(reminder: Any) -> None:
        with db.read() as conn:  # another connection: sees the row only after commit
            status = conn.execute(
                text("SELECT status FROM notifications WHERE id = :id"), {"id": reminder.id}
            ).scalar_one()
        committed.append(status)

    s.on_reminder(db, callback)
    assert s.send_reminders(db, program=PROGRAM).created == 1
    assert committed == ["pending"]


def test_the_typed_locked_member_names_exactly_what_the_lock_reads(db: Database) -> None:
    make_program(db)
    enrol(db, "alice")
    with unit_of_work(db) as uow:
        row = lock_member(uow.connection, PROGRAM, "alice", key="k", at=db.clock.now())
        read = set(row._mapping)  # type: ignore[attr-defined]
    typed = {
        name
        for cls in LockedMember.__mro__
        for name in getattr(cls, "__annotations__", {})
        if cls.__module__ == LockedMember.__module__
    }
    assert typed == read
    assert (row.external_id, row.program_code, row.existing_operation_id) == (
        "alice",
        PROGRAM,
        None,
    )


def test_a_console_replay_and_its_audit_entry_commit_together(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_program(db)
    parked = _park_a_purchase(db, "cus_REPLAY")
    enrol(db, "rep")
    s.link_stripe_customer(db, program=PROGRAM, external_id="rep", stripe_customer_id="cus_REPLAY")
    before = row_counts(db)
    monkeypatch.setattr(services_module, "audit", fail)
    with pytest.raises(SecondStepFailed):
        replay_event_audited(db, program=PROGRAM, event_id=parked, actor="ana")
    assert row_counts(db) == before  # the purchase did not earn without its audit entry
    assert s.balance(db, program=PROGRAM, member="rep").available == 0

    monkeypatch.undo()
    assert replay_event_audited(db, program=PROGRAM, event_id=parked, actor="ana").status == (
        "applied"
    )
    assert s.list_audit(db, program=PROGRAM, action="webhook.").total == 1
    assert s.balance(db, program=PROGRAM, member="rep").available == 100
