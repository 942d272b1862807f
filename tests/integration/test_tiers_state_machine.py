"""A stateful test of member tiers: the real services on a real database against a plain
model.

Hypothesis drives random sequences of purchases (small to large), refunds (full or partial,
settled at once, in two steps, or failed), disputes (lost or won), manual grants, clock moves
from an hour to half a year with or without the evaluation sweep (so evaluations are also
caught up late, by the member's next earn, reversal, counted grant or manual change), manual
tier changes with and without a lock, and new tier versions effective now (the same codes
with other thresholds, windows, periods, grace and policies, on points or on money, counting
grants or not).

The model keeps the qualifying rows (an earn's points and money at its time; a settled
refund's or lost dispute's negative share dated at the order's earn) and applies the rules of
:mod:`loyalty.domain.tiers` as its docstring states them: the measure over ``[since,
until)``, upgrade at once on the earn or counted credit that crosses a threshold, reversals
that move down at once only under ``at_once``, evaluations due a grace after the local
midnight that ends the period weighing the better of the two windows, one down or to the
measure, locks as floors until they end. After every step every member's tier, next
evaluation and history (reasons and tiers) must equal the model's and the ledger verifies.

SQLite runs on a copy of a migrated template per run, PostgreSQL on one database for the
module, truncated between runs (the ledger machine's databases).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import test_ledger_state_machine as ledger_machine
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from test_ledger_state_machine import ledger_pg_database  # noqa: F401 (the fixture)

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.domain.rounding import Rounding, round_points
from loyalty.domain.rules import format_ratio
from loyalty.domain.tiers import TierRules

PROGRAM = "shop"
CURRENCY = "CNY"
TZ = "Asia/Shanghai"
MEMBERS = ("m0", "m1")
START = dt.datetime(2026, 1, 30, 10, 0, tzinfo=dt.UTC)  # 18:00 in Shanghai, near a month end
CODES = ("member", "silver", "gold")

POINT_LADDERS = ((0, 100, 300), (0, 60, 500), (0, 200, 250))
MONEY_LADDERS = ((0, 10_000, 30_000), (0, 5_000, 60_000))


@st.composite
def tier_versions(draw: st.DrawFn) -> dict[str, Any]:
    """A tier version with the three codes and drawn thresholds and settings."""
    measure = draw(st.sampled_from(["points", "points", "money"]))
    ladder = draw(st.sampled_from(POINT_LADDERS if measure == "points" else MONEY_LADDERS))
    window = draw(st.sampled_from(["rolling", "rolling", "calendar"]))
    anchor = draw(st.sampled_from(["upgrade", "upgrade", "join", "calendar"]))
    return {
        "tiers": [
            {"code": code, "threshold": threshold, "multiplier": multiplier}
            for code, threshold, multiplier in zip(CODES, ladder, ("1", "1.5", "2"), strict=True)
        ],
        "measure": measure,
        "window": window,
        "window_months": draw(st.sampled_from([3, 6] if window == "calendar" else [2, 3, 12])),
        "anchor": anchor,
        "period_months": draw(st.sampled_from([3, 6] if anchor == "calendar" else [1, 3, 4])),
        "grace_days": draw(st.sampled_from([0, 0, 10, 45])),
        "downgrade": draw(st.sampled_from(["one", "to_measure"])),
        "on_reversal": draw(st.sampled_from(["at_once", "next_evaluation"])),
        "count_adjustments": draw(st.booleans()),
    }


AMOUNTS = st.one_of(st.integers(100, 20_000), st.sampled_from([6_000, 10_000, 30_000]))
HOURS = st.one_of(st.integers(1, 48), st.sampled_from([7 * 24, 30 * 24, 75 * 24, 180 * 24]))


# --- the model --------------------------------------------------------------------------


@dataclass
class Row:
    """A qualifying row: where it comes from, its points and money, counted at ``at``."""

    member: int
    at: dt.datetime
    points: int
    money: int
    source: str


@dataclass
class Order:
    member: int
    amount: int
    earned_at: dt.datetime
    refunded: int = 0


@dataclass
class MState:
    """A member's tier columns as the model has them, and their history."""

    joined: dt.datetime
    tier: str | None = None
    since: dt.datetime | None = None
    period_end: dt.datetime | None = None
    evaluate_at: dt.datetime | None = None
    lock: str | None = None
    locked_until: dt.datetime | None = None
    history: list[tuple[str | None, str, str]] = field(default_factory=list)


@dataclass
class Sweep:
    evaluated: int = 0
    down: int = 0
    kept: int = 0
    up: int = 0


class TierMachine(RuleBasedStateMachine):
    """Drives the tier services on a fresh database and keeps a plain model in step."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FixedClock(START)
        self.workdir: Path | None = None
        self.db = Database.from_url(self.fresh_database(), clock=self.clock)
        self.ready = False
        self.versions: list[tuple[dt.datetime, TierRules]] = []
        self.rows: list[Row] = []
        self.orders: dict[str, Order] = {}
        self.members = [MState(joined=START) for _ in MEMBERS]
        self.serial = 0

    def fresh_database(self) -> str:
        template = ledger_machine._sqlite_template()
        self.workdir = Path(tempfile.mkdtemp(dir=template.parent))
        path = self.workdir / "jifen.db"
        shutil.copy(template, path)
        return f"sqlite:///{path}"

    def teardown(self) -> None:
        self.db.dispose()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # the model's rules ------------------------------------------------------------------

    @property
    def now(self) -> dt.datetime:
        return self.clock.now()

    def next_id(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.serial}"

    def rules_at(self, at: dt.datetime) -> TierRules:
        """The version in force at ``at`` (the latest published of those already in force)."""
        return [rules for start, rules in self.versions if start <= at][-1]

    def measure(self, rules: TierRules, member: int, since: dt.datetime, until: dt.datetime) -> int:
        return sum(
            r.points if rules.measure == "points" else r.money
            for r in self.rows
            if r.member == member and since <= r.at < until and r.source in rules.counted_sources()
        )

    def measure_now(self, rules: TierRules, member: int) -> int:
        since = rules.window_since(self.now, TZ)
        return self.measure(rules, member, since, self.now + dt.timedelta(seconds=1))

    def rank(self, rules: TierRules, code: str | None) -> int:
        return rules.rank(code) if rules.knows(code) else 0

    def lock_rank(self, rules: TierRules, m: MState, at: dt.datetime) -> int | None:
        if m.lock is None or m.locked_until is None or m.locked_until <= at:
            return None
        return rules.rank(m.lock)

    def change(
        self,
        member: int,
        rules: TierRules,
        to_rank: int,
        reason: str,
        *,
        period_from: dt.datetime | None = None,
        keep: bool = False,
    ) -> None:
        """Move ``member`` to ``to_rank``: a period starts at ``period_from`` (default now),
        except that an evaluation keeping the tier rolls the period on from the one that
        ended; the lowest tier has no period."""
        m = self.members[member]
        code = rules.tiers[to_rank].code
        start = period_from or self.now
        m.history.append((m.tier or CODES[0], code, reason))  # members start at the lowest
        if to_rank == 0:
            m.since = m.since if m.tier == code else start
            m.period_end = m.evaluate_at = None
        else:
            if keep and m.tier == code and m.since is not None:
                after = m.period_end or self.now
            else:
                m.since, after = start, start
            m.period_end = rules.period_end(tz=TZ, after=after, tier_since=m.since, joined=m.joined)
            m.evaluate_at = rules.due(m.period_end, TZ)
        m.tier = code

    def evaluate_due(self, member: int, sweep: Sweep | None = None) -> None:
        """Do the member's evaluations that are due, one period after the other."""
        m = self.members[member]
        while m.evaluate_at is not None and m.evaluate_at <= self.now:
            due, end = m.evaluate_at, m.period_end or m.evaluate_at
            rules = self.rules_at(due)
            windows = [(rules.window_since(end, TZ), end)]
            if due != end:
                windows.append((rules.window_since(due, TZ), due))
            measure = max(self.measure(rules, member, since, until) for since, until in windows)
            current = self.rank(rules, m.tier)
            new = rules.evaluate(current, measure, self.lock_rank(rules, m, due))
            event(f"evaluation: {'kept' if new == current else 'up' if new > current else 'down'}")
            if sweep is not None:
                sweep.evaluated += 1
                sweep.kept += new == current
                sweep.up += new > current
                sweep.down += new < current
            self.change(member, rules, new, "evaluation", period_from=due, keep=new == current)

    def upgrade(self, member: int, rules: TierRules, reason: str) -> None:
        """Up at once to what the measure supports, if it is higher."""
        current = self.rank(rules, self.members[member].tier)
        supported = rules.supported(self.measure_now(rules, member))
        if supported > current:
            event(f"upgrade by {reason}")
            self.change(member, rules, supported, reason)

    # set-up -----------------------------------------------------------------------------

    @initialize(
        version=tier_versions(),
        seed=st.lists(st.tuples(st.integers(0, len(MEMBERS) - 1), AMOUNTS), max_size=4),
    )
    def setup_program(self, version: dict[str, Any], seed: list[tuple[int, int]]) -> None:
        s.create_program(
            self.db,
            code=PROGRAM,
            name="Shop",
            currency=CURRENCY,
            timezone=TZ,
            rules={"base_ratio": "1"},
        )
        for external_id in MEMBERS:
            s.enrol_member(self.db, program=PROGRAM, external_id=external_id)
        self.publish(version)
        self.ready = True
        for member, amount in seed:
            self.earn(member, amount)

    # rules ------------------------------------------------------------------------------

    @rule(member=st.integers(0, len(MEMBERS) - 1), amount=AMOUNTS)
    def earn(self, member: int, amount: int) -> None:
        order_id = self.next_id("o")
        rules = self.rules_at(self.now)
        self.evaluate_due(member)
        before = self.members[member].tier
        result = s.earn_purchase(
            self.db,
            program=PROGRAM,
            member=MEMBERS[member],
            order_id=order_id,
            currency=CURRENCY,
            amount_minor=amount,
        )
        assert result.tier_multiplier == format_ratio(rules.multiplier(before))
        exact = Fraction(amount, 100) * rules.multiplier(before)  # one point a yuan, then x
        assert result.points_granted == round_points(exact, Rounding.FLOOR)
        self.rows.append(Row(member, self.now, result.points_granted, amount, "purchase"))
        self.orders[order_id] = Order(member, amount, self.now)
        self.upgrade(member, rules, "earn")
        after = self.members[member]
        assert result.tier == rules.tier(after.tier).code
        crossed = after.tier != before and after.history[-1][2] == "earn"
        assert result.tier_upgraded_from == (rules.tier(before).code if crossed else None)

    @rule(
        data=st.data(),
        share=st.sampled_from([1, 2, 3]),
        how=st.sampled_from(["at_once", "two_steps", "failed", "dispute_lost", "dispute_won"]),
    )
    def refund(self, data: st.DataObject, share: int, how: str) -> None:
        open_orders = [o for o, order in self.orders.items() if order.refunded < order.amount]
        if not open_orders:
            return
        order_id = data.draw(st.sampled_from(open_orders))
        order = self.orders[order_id]
        amount = max(1, (order.amount - order.refunded) // share)
        done = self.reverse(order_id, amount, how)
        if done is None:
            return
        order.refunded += amount
        member = order.member
        kind = "dispute" if how.startswith("dispute") else "refund"
        self.rows.append(Row(member, order.earned_at, -done.points, -amount, kind))
        event(f"{kind} ({'full' if order.refunded == order.amount else 'partial'})")
        self.evaluate_due(member)
        rules = self.rules_at(self.now)
        m = self.members[member]
        current = self.rank(rules, m.tier)
        if current == 0 or rules.on_reversal != "at_once":
            return
        measure = self.measure_now(rules, member)
        new = rules.after_reversal(current, measure, self.lock_rank(rules, m, self.now))
        if new != current:
            event(f"down at once by a {kind}")
            self.change(member, rules, new, kind)

    def reverse(self, order_id: str, amount: int, how: str) -> Any:
        """Refund or dispute ``amount`` of an order as ``how`` says; the settled reversal, or
        ``None`` when it failed or the member won the dispute."""
        ref = self.next_id("r")
        common: dict[str, Any] = {"program": PROGRAM, "order_id": order_id, "amount_minor": amount}
        if how.startswith("dispute"):
            s.open_dispute(self.db, dispute_id=ref, currency=CURRENCY, **common)
            won = how == "dispute_won"
            done = s.close_dispute(self.db, program=PROGRAM, dispute_id=ref, won=won)
            assert done.status == ("won" if won else "lost")
            return None if won else done
        opened = s.refund_order(
            self.db, refund_id=ref, currency=CURRENCY, succeeded=how == "at_once", **common
        )
        if how == "failed":
            s.fail_refund(self.db, program=PROGRAM, refund_id=ref)
            return None
        done = (
            opened
            if how == "at_once"
            else s.complete_refund(self.db, program=PROGRAM, refund_id=ref)
        )
        assert done.status == "succeeded"
        return done

    @rule(member=st.integers(0, len(MEMBERS) - 1), amount=AMOUNTS)
    def earn_again(self, member: int, amount: int) -> None:
        """Earning is the commonest step (a second rule draws it twice as often)."""
        self.earn(member, amount)

    @rule(data=st.data(), how=st.sampled_from(["at_once", "two_steps"]))
    def refund_all(self, data: st.DataObject, how: str) -> None:
        """What is left of an order, refunded and settled."""
        self.refund(data, 1, how)

    @rule(member=st.integers(0, len(MEMBERS) - 1), points=st.sampled_from([40, 150, 600]))
    def grant(self, member: int, points: int) -> None:
        """A manual grant: it counts (and may move up at once) when the version says so."""
        s.adjust_points(
            self.db,
            program=PROGRAM,
            member=MEMBERS[member],
            points=points,
            reason="goodwill",
            adjustment_id=self.next_id("a"),
        )
        self.rows.append(Row(member, self.now, points, 0, "adjustment"))
        rules = self.rules_at(self.now)
        if rules.count_adjustments:
            self.evaluate_due(member)
            self.upgrade(member, rules, "adjustment")

    @rule(hours=HOURS, sweep=st.booleans())
    def advance_clock(self, hours: int, sweep: bool) -> None:
        self.clock.advance(dt.timedelta(hours=hours))
        if not sweep:
            return
        expected = Sweep()
        for member in range(len(MEMBERS)):
            self.evaluate_due(member, expected)
        result = s.evaluate_tiers(self.db)
        got = Sweep(result.evaluated, result.down, result.kept, result.up)
        assert got == expected

    @rule(
        member=st.integers(0, len(MEMBERS) - 1),
        tier=st.sampled_from(CODES),
        lock_days=st.sampled_from([None, None, 20, 200]),
    )
    def set_tier(self, member: int, tier: str, lock_days: int | None) -> None:
        locked_until = None if lock_days is None else self.now + dt.timedelta(days=lock_days)
        rules = self.rules_at(self.now)
        self.evaluate_due(member)
        info = s.set_member_tier(
            self.db,
            program=PROGRAM,
            member=MEMBERS[member],
            tier=tier,
            reason="service recovery",
            change_id=self.next_id("c"),
            actor="ops",
            locked_until=locked_until,
        )
        m = self.members[member]
        m.lock, m.locked_until = (tier if locked_until else None), locked_until
        reason = "lock" if locked_until else "manual"
        event(f"set tier by hand ({reason})")
        self.change(member, rules, rules.rank(tier), reason)
        assert (info.to_tier, info.reason) == (tier, reason)

    @rule(version=tier_versions())
    def publish(self, version: dict[str, Any]) -> None:
        info = s.publish_tiers(self.db, program=PROGRAM, rules=version, created_by="mkt")
        self.versions.append((self.now, TierRules.from_dict(version)))
        assert info.version == len(self.versions)

    # invariants ---------------------------------------------------------------------------

    @invariant()
    def tiers_match_model(self) -> None:
        if not self.ready:
            return
        rules = self.rules_at(self.now)
        for member, external_id in enumerate(MEMBERS):
            m = self.members[member]
            progress = s.tier_progress(self.db, program=PROGRAM, member=external_id)
            assert progress.tier == rules.tier(m.tier).code, f"{external_id} at {self.now}"
            ranked = self.rank(rules, m.tier) > 0
            assert progress.evaluate_at == (m.evaluate_at if ranked else None)
            history = s.tier_history(self.db, program=PROGRAM, member=external_id, limit=1000)
            got = [(h.from_tier, h.to_tier, h.reason) for h in reversed(history)]
            assert got == m.history, f"{external_id} at {self.now}"

    @invariant()
    def ledger_verifies(self) -> None:
        if not self.ready:
            return
        report = s.verify_ledger(self.db)
        failing = [f"{c.name}: {list(c.examples)}" for c in report.checks if not c.ok]
        assert report.ok, "verify_ledger failed:\n" + "\n".join(failing)


class PostgresTierMachine(TierMachine):
    """The same machine on PostgreSQL: one database for the module, truncated per run."""

    def fresh_database(self) -> str:
        url = ledger_machine._pg_run_url
        assert url is not None, "the ledger_pg_database fixture did not run"
        ledger_machine._truncate_all(url)
        return url


BASE = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

TestTiers = TierMachine.TestCase
TestTiers.settings = settings(BASE, max_examples=15, stateful_step_count=30)

TestTiersPostgres = pytest.mark.postgres(
    pytest.mark.usefixtures("ledger_pg_database")(PostgresTierMachine.TestCase)
)
TestTiersPostgres.settings = settings(BASE, max_examples=4, stateful_step_count=25)


class LongTierMachine(TierMachine):
    """More and longer runs (minutes): only when ``JIFEN_TEST_SLOW`` is set."""


TestTiersLong = pytest.mark.slow(
    pytest.mark.skipif(
        not os.environ.get("JIFEN_TEST_SLOW"), reason="set JIFEN_TEST_SLOW=1 for the long runs"
    )(LongTierMachine.TestCase)
)
TestTiersLong.settings = settings(BASE, max_examples=200, stateful_step_count=60)
