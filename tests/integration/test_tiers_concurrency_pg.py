"""Member tiers under real concurrency on PostgreSQL: threads released together by a barrier,
each call on its own pooled connection.

Earns racing across a threshold upgrade the member once; evaluation sweeps racing each other
write each due evaluation once; a sweep racing earns for the same members neither deadlocks
nor loses an earn; manual changes racing with one change id make one change and replay it.
``jifen verify`` finds tiers and their history consistent afterwards.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from helpers import PROGRAM, earn, enrol, local, make_program, scalar
from test_concurrency_pg import run_together

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.services.tier_results import TierChangeInfo, TierSweepResult

pytestmark = pytest.mark.postgres

LADDER: dict[str, Any] = {
    "tiers": [
        {"code": "member", "name": "普通", "threshold": 0},
        {"code": "silver", "name": "银卡", "threshold": 1_000, "multiplier": "1.5"},
        {"code": "gold", "name": "金卡", "threshold": 5_000, "multiplier": "2"},
    ],
    "window": "rolling",
    "window_months": 3,
    "anchor": "upgrade",
    "period_months": 12,
}
DUE = 200


@pytest.fixture
def shop_db(pg_db: Database, clock: FixedClock) -> Iterator[Database]:
    """The shop with the ladder on PostgreSQL, from 1 March 2026 (at most 40 connections:
    the server is shared)."""
    url = pg_db.engine.url.render_as_string(hide_password=False)
    db = Database.from_url(url, clock=clock, pool_size=40, max_overflow=0, pool_timeout=60)
    clock.set(local(2026, 3, 1, 10))
    make_program(db, rules={"base_ratio": "1"})
    s.publish_tiers(db, program=PROGRAM, rules=LADDER, created_by="test")
    yield db
    db.dispose()


def _errors(results: Sequence[Any]) -> list[BaseException]:
    return [r for r in results if isinstance(r, BaseException)]


def _verified(db: Database) -> None:
    report = s.verify_ledger(db)
    assert report.ok, [(c.name, c.examples) for c in report.checks if not c.ok]


def _changes(db: Database, reason: str) -> int:
    return int(scalar(db, "SELECT count(*) FROM tier_changes WHERE reason = :r", r=reason))


def _due_members(db: Database, clock: FixedClock) -> list[str]:
    """``DUE`` silver members whose evaluation has come: the even ones earned again in
    January (within the 3-month window, so they keep silver), the odd ones did not."""
    members = [f"m{n:03}" for n in range(DUE)]
    enrol(db, *members)
    for member in members:
        earn(db, member, f"first-{member}", 120_000)  # 1,200 points: silver
    clock.set(local(2027, 1, 15, 10))
    for member in members[::2]:
        earn(db, member, f"again-{member}", 80_000)  # 800 x 1.5 = 1,200 in the window
    clock.set(local(2027, 3, 5, 10))  # every period of a year has ended
    return members


def test_earns_racing_across_a_threshold_upgrade_the_member_once(
    shop_db: Database, clock: FixedClock
) -> None:
    enrol(shop_db, "alice")
    earn(shop_db, "alice", "seed", 90_000)  # 900 points: 100 short of silver
    results = run_together(
        [lambda n=n: earn(shop_db, "alice", f"race-{n}", 1_000) for n in range(20)]
    )
    assert not _errors(results), _errors(results)
    upgrades = [r for r in results if r.tier_upgraded_from is not None]
    assert [(r.tier_upgraded_from, r.tier) for r in upgrades] == [("member", "silver")]
    history = s.tier_history(shop_db, program=PROGRAM, member="alice")
    assert [c.to_tier for c in history if c.reason == "earn"] == ["silver"]
    assert _changes(shop_db, "earn") == 1
    progress = s.tier_progress(shop_db, program=PROGRAM, member="alice")
    assert progress.tier == "silver"
    # Every earn after the upgrade committed earned 1.5 x; the measure counts them all.
    granted = sum(r.points_granted for r in results)
    assert sorted({r.points_granted for r in results}) <= [10, 15]
    assert progress.measure == 900 + granted
    _verified(shop_db)


def test_racing_evaluation_sweeps_write_each_evaluation_once(
    shop_db: Database, clock: FixedClock
) -> None:
    _due_members(shop_db, clock)
    results = run_together([lambda: s.evaluate_tiers(shop_db, batch_size=20) for _ in range(4)])
    assert not _errors(results), _errors(results)
    sweeps: list[TierSweepResult] = [r for r in results if isinstance(r, TierSweepResult)]
    assert sum(r.evaluated for r in sweeps) == DUE
    assert (sum(r.kept for r in sweeps), sum(r.down for r in sweeps)) == (DUE // 2, DUE // 2)
    assert sum(r.up for r in sweeps) == 0
    assert _changes(shop_db, "evaluation") == DUE
    per_member = scalar(
        shop_db,
        "SELECT max(n) FROM (SELECT count(*) AS n FROM tier_changes"
        " WHERE reason = 'evaluation' GROUP BY member_id) AS counted",
    )
    assert per_member == 1
    holding = {c.tier: c.members for c in s.tier_distribution(shop_db, program=PROGRAM)}
    assert (holding["member"], holding["silver"]) == (DUE // 2, DUE // 2)
    assert s.evaluate_tiers(shop_db).evaluated == 0  # nothing left
    _verified(shop_db)


def test_a_sweep_racing_earns_for_the_same_members_neither_deadlocks_nor_loses_an_earn(
    shop_db: Database, clock: FixedClock
) -> None:
    members = _due_members(shop_db, clock)
    racing = members[1::10]  # odd members, due to go down, earning while they are evaluated
    calls: list[Any] = [lambda: s.evaluate_tiers(shop_db, batch_size=10) for _ in range(2)]
    calls += [lambda m=m: earn(shop_db, m, f"race-{m}", 30_000) for m in racing]
    calls += [lambda m=m: earn(shop_db, m, f"race2-{m}", 30_000) for m in members[::20]]
    results = run_together(calls)
    assert not _errors(results), _errors(results)
    sweeps = [r for r in results if isinstance(r, TierSweepResult)]
    assert sum(r.evaluated for r in sweeps) <= DUE  # an earn may catch its member up first
    assert _changes(shop_db, "evaluation") == DUE  # each due evaluation once, by either
    earned = scalar(shop_db, "SELECT count(*) FROM earnings WHERE order_id LIKE 'race%'")
    assert earned == len(racing) + len(members[::20])
    for member in racing:  # 300 points (x1.5 if still silver) are short of silver: down
        tier = s.tier_progress(shop_db, program=PROGRAM, member=member).tier
        assert tier == "member", member
    _verified(shop_db)


def test_manual_changes_racing_with_one_change_id_make_one_change(
    shop_db: Database, clock: FixedClock
) -> None:
    enrol(shop_db, "carol")
    lock_until = local(2027, 6, 30)

    def promote() -> TierChangeInfo:
        return s.set_member_tier(
            shop_db,
            program=PROGRAM,
            member="carol",
            tier="gold",
            reason="VIP guest",
            change_id="vip-carol",
            actor="ops",
            locked_until=lock_until,
        )

    results = run_together([promote for _ in range(12)])
    assert not _errors(results), _errors(results)
    changes: list[TierChangeInfo] = [r for r in results if isinstance(r, TierChangeInfo)]
    assert Counter(c.replayed for c in changes) == {False: 1, True: 11}
    assert {(c.to_tier, c.reason, c.locked_until_at) for c in changes} == {
        ("gold", "lock", lock_until)
    }
    assert _changes(shop_db, "lock") == 1
    assert s.tier_progress(shop_db, program=PROGRAM, member="carol").tier == "gold"
    _verified(shop_db)
