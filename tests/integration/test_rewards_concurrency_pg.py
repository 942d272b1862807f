"""The reward catalog under real concurrency on PostgreSQL: threads released together by a
barrier, each call on its own pooled connection, against one reward, one pool or one member.

Stock never oversells and the losers lose nothing: their points stay, their error says why.
Limits per member, idempotency keys and cancellations hold when the calls race, and
``jifen verify`` finds the stock, the codes and the entries consistent afterwards.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from helpers import PROGRAM, earn, enrol, make_program, scalar
from test_concurrency_pg import run_together

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.errors import FulfilmentConflict, LoyaltyError, OutOfStock, RewardLimit
from loyalty.services.reward_results import RewardRedemptionResult

pytestmark = pytest.mark.postgres

ACTOR = "ops@example.com"
SHIPPING = {"name": "Li Lei", "phone": "13800000000", "address": "1 Nanjing Road, Shanghai"}


@pytest.fixture
def shop_db(pg_db: Database, clock: FixedClock) -> Iterator[Database]:
    """The shop program on PostgreSQL, ready for a catalog.

    At most 40 connections (the server is shared): the threads beyond them wait for one at
    the pool, so the first 40 race in earnest and the rest join as connections come free.
    """
    url = pg_db.engine.url.render_as_string(hide_password=False)
    db = Database.from_url(url, clock=clock, pool_size=40, max_overflow=0, pool_timeout=60)
    make_program(db)
    yield db
    db.dispose()


def _ok(results: Sequence[Any]) -> list[Any]:
    return [r for r in results if not isinstance(r, BaseException)]


def _errors(results: Sequence[Any]) -> list[BaseException]:
    return [r for r in results if isinstance(r, BaseException)]


def _only(results: Sequence[Any], error: type[LoyaltyError]) -> list[Any]:
    """The errors among ``results``, all of them exactly ``error``."""
    errors = _errors(results)
    assert all(type(e) is error for e in errors), [repr(e) for e in errors]
    return errors


def _verified(db: Database) -> None:
    report = s.verify_ledger(db)
    assert report.ok, [c for c in report.checks if not c.ok]


def _members_with_points(db: Database, count: int, points: int) -> list[str]:
    members = [f"m{n:03}" for n in range(count)]
    enrol(db, *members)
    for member in members:
        earn(db, member, f"seed-{member}", points * 100)  # 1 point per yuan
    return members


def _reward(db: Database, code: str, kind: str, points: int, **kw: Any) -> None:
    terms = {"name": code.title(), "points": points, **kw.pop("terms", {})}
    s.create_reward(db, program=PROGRAM, code=code, kind=kind, terms=terms, actor=ACTOR, **kw)


def _redeem(db: Database, member: str, reward: str, **kw: Any) -> Callable[[], Any]:
    return lambda: s.redeem_reward(db, program=PROGRAM, member=member, reward=reward, **kw)


def _available(db: Database, member: str) -> int:
    return s.balance(db, program=PROGRAM, member=member).available


def test_100_members_racing_for_50_items(shop_db: Database) -> None:
    db = shop_db
    members = _members_with_points(db, 100, 500)
    _reward(db, "lamp", "item", 300, stock=50)

    results = run_together([_redeem(db, m, "lamp", shipping=SHIPPING) for m in members])

    won = _ok(results)
    assert len(won) == 50
    assert len(_only(results, OutOfStock)) == 50
    winners = {r.member for r in won}
    assert all(r.points == 300 and r.status == "issued" for r in won)
    assert {m: _available(db, m) for m in members} == {
        m: 200 if m in winners else 500 for m in members
    }
    info = s.get_reward(db, program=PROGRAM, reward="lamp")
    assert (info.stock_left, info.issued) == (0, 50)
    assert scalar(db, "SELECT COUNT(*) FROM reward_redemptions") == 50
    assert scalar(db, "SELECT COUNT(*) FROM entries WHERE kind = 'reward_spend'") == 50
    _verified(db)


@pytest.mark.parametrize("period", ["lifetime", "day"])
def test_a_limit_of_one_hit_by_ten_calls_of_one_member(shop_db: Database, period: str) -> None:
    db = shop_db
    (member,) = _members_with_points(db, 1, 1_000)
    _reward(db, "tote", "item", 50, stock=100, terms={"limits": {period: 1}})

    results = run_together(
        [
            _redeem(db, member, "tote", shipping=SHIPPING, idempotency_key=f"tote-{n}")
            for n in range(10)
        ]
    )

    assert len(_ok(results)) == 1
    limits = _only(results, RewardLimit)
    assert len(limits) == 9
    assert {e.details["period"] for e in limits} == {period}
    assert _available(db, member) == 950
    assert s.get_reward(db, program=PROGRAM, reward="tote").stock_left == 99
    _verified(db)


def test_one_idempotency_key_sent_twenty_times_at_once(shop_db: Database) -> None:
    db = shop_db
    (member,) = _members_with_points(db, 1, 1_000)
    _reward(db, "kettle", "item", 100, stock=100)

    results = run_together(
        [_redeem(db, member, "kettle", shipping=SHIPPING, idempotency_key="k-1") for _ in range(20)]
    )

    assert not _errors(results), _errors(results)
    done = _ok(results)
    (first,) = [r for r in done if not r.replayed]
    assert all(r == dataclasses.replace(first, replayed=True) for r in done if r.replayed)
    assert len({r.id for r in done}) == 1
    assert _available(db, member) == 900
    assert s.get_reward(db, program=PROGRAM, reward="kettle").stock_left == 99
    assert scalar(db, "SELECT COUNT(*) FROM reward_redemptions") == 1
    _verified(db)


def test_one_key_for_the_last_one_left_replays_instead_of_refusing(shop_db: Database) -> None:
    """The retries wait for the first call's member lock; once it commits, the last one is
    gone, the limit reached and the points spent, yet each retry answers the first result."""
    db = shop_db
    (member,) = _members_with_points(db, 1, 100)
    _reward(db, "vase", "item", 100, stock=1, terms={"limits": {"lifetime": 1}})

    results = run_together(
        [_redeem(db, member, "vase", shipping=SHIPPING, idempotency_key="v-1") for _ in range(10)]
    )

    assert not _errors(results), _errors(results)
    assert Counter(r.replayed for r in results) == {False: 1, True: 9}
    assert len({r.id for r in results}) == 1
    assert _available(db, member) == 0
    assert s.get_reward(db, program=PROGRAM, reward="vase").stock_left == 0
    _verified(db)


def test_40_members_racing_for_a_pool_of_30_codes(shop_db: Database) -> None:
    db = shop_db
    members = _members_with_points(db, 40, 100)
    _reward(db, "coffee", "coupon", 20)
    s.generate_reward_codes(db, program=PROGRAM, reward="coffee", count=30, actor=ACTOR)

    results = run_together([_redeem(db, m, "coffee") for m in members])

    won = _ok(results)
    assert len(won) == 30
    assert len(_only(results, OutOfStock)) == 10
    codes = [code for r in won for code in r.codes]
    assert len(codes) == len(set(codes)) == 30
    winners = {r.member for r in won}
    assert all(_available(db, m) == (80 if m in winners else 100) for m in members)
    info = s.get_reward(db, program=PROGRAM, reward="coffee")
    assert (info.stock_left, info.codes_free) == (0, 0)
    assert scalar(db, "SELECT COUNT(DISTINCT redemption_id) FROM reward_codes") == 30
    _verified(db)


def _one_cancel(db: Database, member: str, redemption: int, points_left: int) -> None:
    """The redemption is cancelled once: one return of its points, its stock back once."""
    assert _available(db, member) == points_left
    assert scalar(db, "SELECT COUNT(*) FROM entries WHERE kind = 'reward_return'") == 1
    assert s.get_redemption(db, program=PROGRAM, redemption=redemption).status == "cancelled"
    _verified(db)


def test_one_redemption_cancelled_by_many_at_once(shop_db: Database) -> None:
    db = shop_db
    (member,) = _members_with_points(db, 1, 1_000)
    _reward(db, "scarf", "item", 400, stock=5)
    first = s.redeem_reward(db, program=PROGRAM, member=member, reward="scarf", shipping=SHIPPING)

    # the same request (the key is derived from the redemption): one cancel, the rest replays
    same = run_together(
        [
            lambda: s.cancel_redemption(
                db, program=PROGRAM, redemption=first.id, reason="changed my mind", actor=ACTOR
            )
            for _ in range(12)
        ]
    )
    assert not _errors(same), _errors(same)
    assert Counter(r.replayed for r in same) == {False: 1, True: 11}
    assert {(r.id, r.status) for r in same} == {(first.id, "cancelled")}
    _one_cancel(db, member, first.id, 1_000)
    assert s.get_reward(db, program=PROGRAM, reward="scarf").stock_left == 5

    # staff each with their own key: one cancels, the others are told it is cancelled already
    second = s.redeem_reward(db, program=PROGRAM, member=member, reward="scarf", shipping=SHIPPING)
    raced = run_together(
        [
            lambda n=n: s.cancel_redemption(
                db,
                program=PROGRAM,
                redemption=second.id,
                reason="out of paper",
                actor=f"clerk{n}@example.com",
                idempotency_key=f"cancel-{n}",
            )
            for n in range(12)
        ]
    )
    assert len(_ok(raced)) == 1
    conflicts = _only(raced, FulfilmentConflict)
    assert len(conflicts) == 11
    assert all(e.details["status"] == "cancelled" for e in conflicts)
    assert _available(db, member) == 1_000
    assert scalar(db, "SELECT COUNT(*) FROM entries WHERE kind = 'reward_return'") == 2
    assert s.get_reward(db, program=PROGRAM, reward="scarf").stock_left == 5
    _verified(db)


def test_redeeming_while_staff_restock(shop_db: Database) -> None:
    db = shop_db
    members = _members_with_points(db, 40, 100)
    _reward(db, "cap", "item", 30, stock=10)

    def restock() -> Any:
        return s.restock_reward(db, program=PROGRAM, reward="cap", quantity=6, actor=ACTOR)

    results = run_together(
        [_redeem(db, m, "cap", shipping=SHIPPING) for m in members] + [restock] * 5
    )

    redeemed = [r for r in _ok(results) if isinstance(r, RewardRedemptionResult)]
    assert len(_ok(results)) == len(redeemed) + 5  # every restock went through
    out_of_stock = _only(results, OutOfStock)
    assert len(redeemed) + len(out_of_stock) == 40
    assert 10 <= len(redeemed) <= 40
    info = s.get_reward(db, program=PROGRAM, reward="cap")
    assert info.stock_added == 40
    assert info.stock_left == 40 - len(redeemed)
    assert sum(_available(db, m) for m in members) == 40 * 100 - 30 * len(redeemed)
    _verified(db)


def test_30_draws_for_a_prize_with_5_left(shop_db: Database) -> None:
    db = shop_db
    members = _members_with_points(db, 30, 100)
    _reward(db, "plush", "item", 1, stock=5, terms={"visible": False})
    # every draw lands on the prize, so only its stock decides what is awarded
    prizes = [{"reward": "plush", "chance_ppm": 1_000_000, "label": "a plush panda"}]
    _reward(db, "spin", "draw", 10, terms={"prizes": prizes})

    results = run_together([_redeem(db, m, "spin") for m in members])

    assert not _errors(results), _errors(results)
    draws = _ok(results)
    assert all(r.draw is not None and r.draw.drawn == "plush" for r in draws)
    reasons = Counter(r.draw.reason for r in draws if r.draw is not None)
    assert reasons == {"won": 5, "prize_out_of_stock": 25}
    awarded = [r.prize for r in draws if r.prize is not None]
    assert len(awarded) == 5 and len({p.id for p in awarded}) == 5
    assert all(p.reward == "plush" and p.points == 0 for p in awarded)
    assert all(_available(db, m) == 90 for m in members)  # a draw costs its points either way
    assert s.get_reward(db, program=PROGRAM, reward="plush").stock_left == 0
    assert scalar(db, "SELECT COUNT(*) FROM reward_redemptions WHERE parent_id IS NOT NULL") == 5
    _verified(db)
