"""Risk control under real concurrency on PostgreSQL: threads released together by a barrier,
each call on its own pooled connection.

Scans racing each other open exactly one case per rule and subject, and add new activity to
each case exactly once (no duplicate, no lost update); a scan racing the resolutions of the
cases it is adding to leaves every case resolved and counted once; the two hold cases of a
member resolved at the same moment lift the hold (each resolution reads the other's case under
the member's lock); earns racing a ``block`` velocity rule of limit N, from 8 threads, let
exactly N through, for one member (the member's lock serialises them) and for one till shared
by 8 members. ``jifen verify`` is clean after each.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from helpers import PROGRAM, earn, enrol, make_program, scalar
from sqlalchemy import text
from test_concurrency_pg import run_together

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.errors import RiskBlocked
from loyalty.services.results import EarnResult
from loyalty.services.risk_scan import RiskScanResult

pytestmark = pytest.mark.postgres

BURST = {"id": "burst", "kind": "velocity", "limit": 2, "window": "hour", "action": "hold"}
BIG = {"id": "big", "kind": "velocity", "measure": "points", "limit": 200, "window": "day"}
TILL = {
    "id": "till",
    "kind": "velocity",
    "scope": "location",
    "measure": "points",
    "limit": 1_000,
    "window": "day",
}
MEMBERS = [f"m{n:02}" for n in range(30)]
TILLS = 3


@pytest.fixture
def shop_db(pg_db: Database, clock: FixedClock) -> Iterator[Database]:
    """The shop on PostgreSQL (at most 40 connections: the server is shared)."""
    url = pg_db.engine.url.render_as_string(hide_password=False)
    db = Database.from_url(url, clock=clock, pool_size=40, max_overflow=0, pool_timeout=60)
    make_program(db)
    yield db
    db.dispose()


def _errors(results: Sequence[Any]) -> list[BaseException]:
    return [r for r in results if isinstance(r, BaseException)]


def _verified(db: Database) -> None:
    report = s.verify_ledger(db)
    assert report.ok, [(c.name, c.examples) for c in report.checks if not c.ok]


def _scans(results: Sequence[Any]) -> Counter[str]:
    """The scans' outcomes added up."""
    total: Counter[str] = Counter()
    for r in results:
        if isinstance(r, RiskScanResult):
            total.update(opened=r.opened, updated=r.updated, reopened=r.reopened, held=r.held)
    return total


def _trips(db: Database) -> Counter[int]:
    """How many cases have tripped how many times."""
    with db.read() as conn:
        rows = conn.execute(text("SELECT trips, count(*) FROM risk_cases GROUP BY trips")).all()
    return Counter({int(trips): int(n) for trips, n in rows})


def _activity(db: Database, clock: FixedClock, tag: str, earns: int = 1) -> None:
    """Every member earns ``earns`` times at their till, a minute after the last activity."""
    for _ in range(earns):
        clock.advance(dt.timedelta(minutes=1))
        for n, member in enumerate(MEMBERS):
            earn(db, member, f"{tag}-{member}-{clock.now():%H%M}", 10_000, location=f"t{n % TILLS}")


def _tripped(db: Database, clock: FixedClock, *rules: dict[str, Any]) -> None:
    """Every member over ``rules``: three earns of 100 points each within the hour."""
    enrol(db, *MEMBERS)
    s.publish_risk_rules(db, program=PROGRAM, rules={"rules": list(rules)})
    _activity(db, clock, "first", earns=3)


def test_racing_scans_open_one_case_per_subject_and_add_to_it_once(
    shop_db: Database, clock: FixedClock
) -> None:
    _tripped(shop_db, clock, BURST, BIG, TILL)
    subjects = 2 * len(MEMBERS) + TILLS
    results = run_together([lambda: s.scan_risk(shop_db) for _ in range(4)])
    assert not _errors(results), _errors(results)
    assert _scans(results) == Counter(opened=subjects, held=len(MEMBERS))
    assert _trips(shop_db) == {1: subjects}
    on_hold = scalar(shop_db, "SELECT count(*) FROM members WHERE risk_hold")
    assert on_hold == len(MEMBERS)

    _activity(shop_db, clock, "again")  # held now: the new points stay pending
    results = run_together([lambda: s.scan_risk(shop_db) for _ in range(4)])
    assert not _errors(results), _errors(results)
    assert _scans(results) == Counter(updated=subjects)
    assert _trips(shop_db) == {2: subjects}
    assert s.scan_risk(shop_db).updated == 0
    _verified(shop_db)


def test_a_scan_racing_the_resolutions_of_its_cases_counts_each_once(
    shop_db: Database, clock: FixedClock
) -> None:
    _tripped(shop_db, clock, BURST, BIG)
    assert s.scan_risk(shop_db).opened == 2 * len(MEMBERS)
    _activity(shop_db, clock, "again")  # new activity for every case, its points held
    holds = s.list_risk_cases(shop_db, program=PROGRAM, rule_id="burst", limit=100).items
    calls: list[Callable[[], Any]] = [lambda: s.scan_risk(shop_db) for _ in range(2)]
    calls += [
        lambda case_id=case.id: s.resolve_risk_case(
            shop_db, program=PROGRAM, case_id=case_id, outcome="release", note="checked"
        )
        for case in holds
    ]
    results = run_together(calls)
    assert not _errors(results), _errors(results)
    scanned = _scans(results)
    assert (scanned["opened"], scanned["reopened"]) == (0, 0)  # nothing after a resolution
    trips = _trips(shop_db)
    assert scanned["updated"] == trips[2] and trips[1] + trips[2] == 2 * len(MEMBERS)
    statuses = scalar(shop_db, "SELECT count(*) FROM risk_cases WHERE status = 'resolved'")
    assert statuses == len(MEMBERS)
    assert scalar(shop_db, "SELECT count(*) FROM members WHERE risk_hold") == 0
    assert scalar(shop_db, "SELECT sum(pending) FROM members") == 0
    _verified(shop_db)


def test_a_scan_opening_hold_cases_racing_the_resolution_of_others_keeps_the_members_held(
    shop_db: Database, clock: FixedClock
) -> None:
    """Whichever goes first, the member ends on hold with the new hold case open: a
    resolution that sees the new case keeps the hold (and the points held); one that does
    not lifts it, and the scan, committing after, puts it back."""
    _tripped(shop_db, clock, BURST, BIG)
    s.scan_risk(shop_db)
    _activity(shop_db, clock, "held")
    s.publish_risk_rules(
        shop_db,
        program=PROGRAM,
        rules={"rules": [BURST, {**BIG, "id": "big-hold", "action": "hold"}]},
    )
    holds = s.list_risk_cases(shop_db, program=PROGRAM, rule_id="burst", limit=100).items
    calls: list[Callable[[], Any]] = [lambda: s.scan_risk(shop_db)]
    calls += [
        lambda case_id=case.id: s.resolve_risk_case(
            shop_db, program=PROGRAM, case_id=case_id, outcome="release", note="checked"
        )
        for case in holds
    ]
    results = run_together(calls)
    assert not _errors(results), _errors(results)
    assert _scans(results)["held"] == len(MEMBERS)
    assert scalar(shop_db, "SELECT count(*) FROM members WHERE risk_hold") == len(MEMBERS)
    _verified(shop_db)


def test_two_hold_cases_resolved_at_once_lift_the_hold(
    shop_db: Database, clock: FixedClock
) -> None:
    _tripped(shop_db, clock, BURST, {**BIG, "action": "hold"})
    assert s.scan_risk(shop_db).held == 2 * len(MEMBERS)
    _activity(shop_db, clock, "held")
    held = scalar(shop_db, "SELECT sum(pending) FROM members")
    assert held == 100 * len(MEMBERS)
    cases = s.list_risk_cases(shop_db, program=PROGRAM, limit=100).items
    results = run_together(
        [
            lambda case_id=case.id: s.resolve_risk_case(
                shop_db, program=PROGRAM, case_id=case_id, outcome="dismiss", note="fine"
            )
            for case in cases
        ]
    )
    assert not _errors(results), _errors(results)
    assert scalar(shop_db, "SELECT count(*) FROM members WHERE risk_hold") == 0
    assert scalar(shop_db, "SELECT sum(pending) FROM members") == 0
    assert scalar(shop_db, "SELECT sum(available) FROM members") == 400 * len(MEMBERS)
    _verified(shop_db)


def _earn_attempts(
    db: Database, members: Sequence[str], tries: int, **where: str
) -> list[Callable[[], list[EarnResult | BaseException]]]:
    """One call per member in ``members`` (a thread each), earning ``tries`` times in a row."""

    def attempts(thread: int, member: str) -> list[EarnResult | BaseException]:
        done: list[EarnResult | BaseException] = []
        for n in range(tries):
            try:
                done.append(earn(db, member, f"race-{thread}-{n}", 10_000, **where))
            except RiskBlocked as refused:
                done.append(refused)
        return done

    return [lambda t=t, m=m: attempts(t, m) for t, m in enumerate(members)]


def _outcomes(results: Sequence[Any]) -> tuple[list[EarnResult], list[RiskBlocked]]:
    assert not _errors(results), _errors(results)
    flat = [r for thread in results for r in thread]
    return (
        [r for r in flat if isinstance(r, EarnResult)],
        [r for r in flat if isinstance(r, RiskBlocked)],
    )


@pytest.mark.parametrize("limit", [1, 5, 12])
def test_earns_of_one_member_racing_a_block_rule_let_exactly_the_limit_through(
    shop_db: Database, limit: int
) -> None:
    enrol(shop_db, "alice")
    rule = {"id": "cap", "kind": "velocity", "limit": limit, "window": "hour", "action": "block"}
    s.publish_risk_rules(shop_db, program=PROGRAM, rules={"rules": [rule]})
    earned, refused = _outcomes(run_together(_earn_attempts(shop_db, ["alice"] * 8, 4)))
    assert (len(earned), len(refused)) == (limit, 32 - limit)
    assert {(r.details["rule"], r.details["measured"]) for r in refused} == {("cap", limit + 1)}
    assert scalar(shop_db, "SELECT count(*) FROM earnings") == limit
    assert s.balance(shop_db, program=PROGRAM, member="alice").available == 100 * limit
    _verified(shop_db)


def test_earns_of_eight_members_at_one_till_racing_a_block_rule_let_exactly_the_limit_through(
    shop_db: Database,
) -> None:
    members = [f"m{n}" for n in range(8)]
    enrol(shop_db, *members)
    rule = {
        "id": "till",
        "kind": "velocity",
        "scope": "location",
        "limit": 5,
        "window": "hour",
        "action": "block",
    }
    s.publish_risk_rules(shop_db, program=PROGRAM, rules={"rules": [rule]})
    earned, refused = _outcomes(
        run_together(_earn_attempts(shop_db, members, 4, location="till-1"))
    )
    assert (len(earned), len(refused)) == (5, 27)
    assert scalar(shop_db, "SELECT count(*) FROM earnings") == 5
    _verified(shop_db)
