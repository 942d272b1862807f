"""``jifen verify`` on risk control, on both databases: a ledger that went through every risk
service passes, and each risk check catches a database changed by hand (and only that check,
but where one change breaks two invariants at once)."""

from __future__ import annotations

import datetime as dt

import pytest
from helpers import PROGRAM, earn, enrol, execute, make_program

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.services.risk_checks import RISK_CHECKS, RISK_RULES_CHECK

RISK = {name for name, _, _ in RISK_CHECKS} | {RISK_RULES_CHECK}
RULES = {
    "rules": [
        {"id": "burst", "kind": "velocity", "limit": 2, "window": "hour", "action": "hold"},
        {
            "id": "till",
            "kind": "velocity",
            "scope": "location",
            "measure": "points",
            "limit": 500,
            "window": "day",
            "action": "flag",
        },
    ]
}


def member_id(external_id: str) -> str:
    return f"(SELECT id FROM members WHERE external_id = '{external_id}')"


def case_of(external_id: str) -> str:
    return f"member_id = {member_id(external_id)}"


def failing(db: Database) -> set[str]:
    return {c.name for c in s.verify_ledger(db).checks if not c.ok}


def burst(db: Database, member: str, clock: FixedClock, *, tag: str = "") -> None:
    """Three earns at till-1 within the hour: over the burst rule's limit of two."""
    for i in range(3):
        clock.advance(dt.timedelta(minutes=5))
        earn(db, member, f"{member}-{tag}{i}", 10_000, location="till-1")


@pytest.fixture
def ledger(db: Database, clock: FixedClock) -> Database:
    """alice is on hold with points held (her burst case open) and the till's flag case
    dismissed; bob's case was released; dave's hold was lifted outside his case, which stays
    open; carol never tripped; erin is a member of another program."""
    make_program(db)
    make_program(db, "other")
    enrol(db, "alice", "bob", "carol", "dave")
    enrol(db, "erin", program="other")
    s.publish_risk_rules(db, program=PROGRAM, rules=RULES, actor="ops")
    for member in ("alice", "bob", "dave"):
        burst(db, member, clock)
    earn(db, "carol", "carol-1", 10_000)
    scanned = s.scan_risk(db)
    assert (scanned.opened, scanned.held) == (4, 3)
    for member in ("alice", "bob", "dave"):
        assert earn(db, member, f"{member}-held", 5_000).status == "pending"
    cases = {c.subject: c for c in s.list_risk_cases(db, program=PROGRAM).items}
    bob = s.list_risk_cases(db, program=PROGRAM, member="bob").items[0]
    s.resolve_risk_case(db, program=PROGRAM, case_id=bob.id, outcome="release", note="ok")
    s.resolve_risk_case(
        db, program=PROGRAM, case_id=cases["location:till-1"].id, outcome="dismiss", note="busy"
    )
    assert s.release_member_hold(db, program=PROGRAM, member="dave", note="vip") == 50
    assert failing(db) == set()
    return db


def test_a_ledger_with_risk_control_passes_every_check(ledger: Database) -> None:
    report = s.verify_ledger(ledger)
    assert {c.name for c in report.checks} >= RISK
    assert report.ok
    alice = s.list_risk_cases(ledger, program=PROGRAM, member="alice").items[0]
    assert (alice.status, alice.member_on_hold, alice.held_points) == ("open", True, 50)
    statuses = {
        c.subject: c.status for c in s.list_risk_cases(ledger, program=PROGRAM, status=None).items
    }
    assert sorted(statuses.values()) == ["dismissed", "open", "open", "resolved"]


# What the example of risk_cases_sound says is wrong.
OPEN = "an open case has a resolution"
CLOSED = "a closed case lacks its resolution, note, time or resolver"
MISMATCH = "the resolution does not match the status"
MEMBER_SUBJECT = "a member's case is not about member:<member id>"
NO_MEMBER_SUBJECT = "a case without a member is not about the program, a location or a device"
FOREIGN = "the member is of another program"
BLOCK = "a block rule opened a case"
HOLD = "a hold case names no member"
VERSION = "its rule version does not exist in its program"

CORRUPTIONS: list[tuple[str, set[str]] | tuple[str, set[str], str]] = [
    # a held lot of a member not on hold
    (
        f"UPDATE members SET risk_hold = false WHERE id = {member_id('alice')}",
        {"risk_held_lots_on_hold"},
    ),
    # a member on hold without an open hold case
    (
        f"UPDATE members SET risk_hold = true WHERE id = {member_id('carol')}",
        {"risk_hold_has_case"},
    ),
    (f"UPDATE risk_cases SET action = 'flag' WHERE {case_of('alice')}", {"risk_hold_has_case"}),
    (
        "UPDATE risk_cases SET status = 'dismissed', resolution = 'dismissed',"
        " resolution_note = 'x', resolved_at = opened_at, resolved_by = 'x'"
        f" WHERE {case_of('alice')}",
        {"risk_hold_has_case"},
    ),
    (
        f"UPDATE risk_cases SET status = 'resolved' WHERE {case_of('alice')}",
        {"risk_hold_has_case", "risk_cases_sound"},
    ),
    # cases that contradict themselves
    (
        "UPDATE risk_cases SET resolved_at = opened_at WHERE status = 'open'",
        {"risk_cases_sound"},
        OPEN,
    ),
    (
        "UPDATE risk_cases SET resolution = 'released' WHERE status = 'open'",
        {"risk_cases_sound"},
        OPEN,
    ),
    (
        "UPDATE risk_cases SET resolved_by = NULL WHERE status = 'resolved'",
        {"risk_cases_sound"},
        CLOSED,
    ),
    (
        "UPDATE risk_cases SET resolution_note = NULL WHERE status = 'dismissed'",
        {"risk_cases_sound"},
        CLOSED,
    ),
    (
        "UPDATE risk_cases SET resolution = 'dismissed' WHERE status = 'resolved'",
        {"risk_cases_sound"},
        MISMATCH,
    ),
    (
        "UPDATE risk_cases SET resolution = 'released' WHERE status = 'dismissed'",
        {"risk_cases_sound"},
        MISMATCH,
    ),
    (
        f"UPDATE risk_cases SET subject = 'member:999' WHERE {case_of('bob')}",
        {"risk_cases_sound"},
        MEMBER_SUBJECT,
    ),
    (
        f"UPDATE risk_cases SET subject = 'bob' WHERE {case_of('bob')}",
        {"risk_cases_sound"},
        MEMBER_SUBJECT,
    ),
    (
        f"UPDATE risk_cases SET member_id = NULL WHERE {case_of('bob')}",
        {"risk_cases_sound"},
        NO_MEMBER_SUBJECT,
    ),
    (
        "UPDATE risk_cases SET subject = 'till-1' WHERE subject = 'location:till-1'",
        {"risk_cases_sound"},
        NO_MEMBER_SUBJECT,
    ),
    (
        f"UPDATE risk_cases SET member_id = {member_id('erin')},"
        f" subject = 'member:' || {member_id('erin')} WHERE {case_of('bob')}",
        {"risk_cases_sound"},
        FOREIGN,
    ),
    (
        "UPDATE risk_cases SET action = 'block' WHERE subject = 'location:till-1'",
        {"risk_cases_sound"},
        BLOCK,
    ),
    (
        "UPDATE risk_cases SET action = 'hold' WHERE subject = 'location:till-1'",
        {"risk_cases_sound"},
        HOLD,
    ),
    (
        f"UPDATE risk_cases SET rule_version = 2 WHERE {case_of('bob')}",
        {"risk_cases_sound"},
        VERSION,
    ),
    # rule versions
    (
        """UPDATE risk_rule_versions SET rules = '{"rules": [{"id": "x", "kind": "nope"}]}'""",
        {RISK_RULES_CHECK},
    ),
    ("""UPDATE risk_rule_versions SET rules = '{"rules": "all"}'""", {RISK_RULES_CHECK}),
    ("UPDATE risk_rule_versions SET rules = 'null'", {RISK_RULES_CHECK}),
    ("UPDATE programs SET risk_version = 2 WHERE code = 'shop'", {RISK_RULES_CHECK}),
    ("UPDATE programs SET risk_version = 1 WHERE code = 'other'", {RISK_RULES_CHECK}),
]


@pytest.mark.parametrize(
    ("sql", "checks", "problem"),
    [(c[0], c[1], c[2] if len(c) == 3 else None) for c in CORRUPTIONS],
    ids=[f"{'+'.join(sorted(c[1]))}-{n}" for n, c in enumerate(CORRUPTIONS)],
)
def test_each_risk_check_catches_a_change_by_hand(
    ledger: Database, sql: str, checks: set[str], problem: str | None
) -> None:
    execute(ledger, sql)
    report = {c.name: c for c in s.verify_ledger(ledger).checks}
    assert {name for name, c in report.items() if not c.ok} == checks
    for name in checks:
        assert report[name].violations >= 1 and report[name].examples, report[name]
    if problem is not None:
        assert all(e.endswith(f"problem={problem}") for e in report["risk_cases_sound"].examples)


def test_a_case_example_says_what_is_wrong(ledger: Database) -> None:
    execute(ledger, f"UPDATE risk_cases SET subject = 'member:999' WHERE {case_of('bob')}")
    check = next(c for c in s.verify_ledger(ledger).checks if c.name == "risk_cases_sound")
    assert check.violations == 1
    assert "problem=a member's case is not about member:<member id>" in check.examples[0]
